"""Shared test set-up: small thread count, repo root on sys.path, a private torch hub cache."""

import os
import sys

import pytest

# One thread: on a shared 2-core machine two OpenMP threads per process stall 5-10x under load. Also in
# the environment, so that util.cpu's automatic thread count (train.main / test.main called in-process)
# keeps it, and subprocesses inherit it.
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

torch.set_num_threads(1)


@pytest.fixture
def tmp_torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache: pretrained-weight files must be put there by the test itself."""
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    # torch.hub.get_dir() reads TORCH_HOME on every call (no set_dir, so nothing global leaks).
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert torch.hub.get_dir() == str(home / "hub")
    return home


@pytest.fixture(autouse=True)
def no_runs_of_the_working_tree(tmp_path_factory, monkeypatch):
    """The default --checkpoints_dir is an empty temporary folder in every test: the runs a user made in
    ./checkpoints (the README's main job first, then the tests) must not reach a test's options through
    their saved opt.json."""
    from options import base_options

    monkeypatch.setattr(base_options, "DEFAULT_CHECKPOINTS_DIR",
                        str(tmp_path_factory.getbasetemp() / "default_checkpoints"))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """Root of a small generated synthetic dataset, shared by the training tests of one session."""
    return str(tmp_path_factory.mktemp("synthetic") / "data")


@pytest.fixture
def random_inception(tmp_torch_home):
    """Random-weight FID Inception saved under the TF-Inception file name in the temp hub cache."""
    from util.metrics.fid import INCEPTION_WEIGHTS_FILE, build_fid_inception_structure

    torch.manual_seed(0)
    net = build_fid_inception_structure()
    # Non-trivial BatchNorm statistics, so a test would notice a mixed-up eval/train mode.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_torch_home / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path


# The synthetic split sizes the tests generate in ``synth_root`` (one dataset per session: every test that
# reads it asks for the same sizes, see tests/test_train.py tiny_args).
SYNTH_SPLIT = {"synthetic_num_train": 8, "synthetic_num_val": 4}


def build_options(is_train=True, **values):
    """Options built by the real parser from keyword values: ``flag=True`` gives ``--flag``, a
    False flag is left out, anything else ``--name value``. CPU; the VGG loss off unless asked for."""
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    values = {"gpu_ids": "-1", **values}
    if is_train and not values.get("vgg_loss") and values.get("model", "pix2pix") != "attention_gan":
        values = {"no_vgg_loss": True, **values}
    args = []
    for name, value in values.items():
        if value is True:
            args.append(f"--{name}")
        elif value is not False and value is not None:
            args += [f"--{name}", str(value)]
    return (TrainOptions() if is_train else TestOptions()).parse(args)


def first_adam_step_agrees(step_got, step_want, grad, lr, noise_floor=0.0, what=None):
    """Check one tensor's first Adam step (``step_got`` = weights after - before, ``step_want`` the
    reference's, ``grad`` the reference gradient); returns the bool mask of elements that agree to float
    precision.

    Adam's first step moves each weight by about +-lr (m / sqrt(v) = the sign of the gradient), so an
    element whose gradient is within float rounding of 0 may flip its step: every element must agree to
    within 2 lr, and those that differ only where the reference gradient is rounding noise: tiny against
    the tensor's largest, or below ``noise_floor`` (for a tensor whose gradient is 0 in exact arithmetic,
    e.g. a conv bias before a normalisation: give a floor relative to the network's largest gradient)."""
    diff = (step_got - step_want).abs()
    assert diff.max() <= 2 * lr + 1e-6, what
    differ = diff > 1e-3 * lr + 1e-7
    if differ.any():
        grad = grad.abs()
        assert float(grad[differ].max()) <= max(1e-3 * float(grad.max()), noise_floor, 1e-7), what
    return ~differ


def demo_engine(with_val=False, **values):
    """A painting-demo engine (util/demo/engine.py) over a model with random, seeded weights, built
    from test options as demo.py builds it (CPU; ``values`` as :func:`build_options`; the default: the
    synthetic DAGAN at 32x32 with ngf 8). ``with_val``: the picker reads the synthetic val split
    (pass ``dataroot``)."""
    import data
    import models
    from util.demo.engine import DemoEngine

    values = {"no_opt_file": True, **values}
    if with_val and values.get("dataset_mode", "synthetic") == "synthetic":
        values = {**SYNTH_SPLIT, **values}  # the split sizes of the other tests sharing synth_root
    if values.get("model", "pix2pix") == "pix2pix":
        values.setdefault("ngf", 8)
    opt = build_options(False, **values)
    torch.manual_seed(0)
    model = models.create_model(opt)
    model.eval()
    val = data.create_dataset(opt) if with_val else None
    return DemoEngine(opt, model, {}, val, None if with_val else "no val split in this test")


def pytest_terminal_summary(terminalreporter):
    """Say why tests were skipped (e.g. no browser for the demo's browser test), also under ``-q``."""
    reasons = set()
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            reasons.add(report.longrepr[2].removeprefix("Skipped: "))
    for reason in sorted(reasons):
        terminalreporter.write_line(f"skipped: {reason}")
