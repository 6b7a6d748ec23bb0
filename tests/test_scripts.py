"""scripts/*.sh: valid bash, the official settings of DAGAN's scripts, every flag accepted by the options.

The scripts are run for real with ``torchrun`` / ``python`` replaced by a shim that records its
arguments, so what is checked is exactly what bash would pass to train.py / test.py.
"""
import glob
import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")

# dataset -> (global batch, GPUs, niter, niter_decay, label_nc, crop_size, aspect_ratio, n_up)  (DAGAN's official scripts)
OFFICIAL = {
    "cityscapes": (8, 1, 100, 100, 35, 512, 2.0, "more"),
    "ade20k": (8, 1, 100, 100, 150, 256, 1.0, "normal"),
    "coco": (32, 8, 50, 50, 182, 256, 1.0, "normal"),
    "facades": (4, 4, 50, 50, 13, 1024, 1.0, "normal"),
    "celebamask_hq": (16, 4, 50, 50, 19, 512, 1.0, "normal"),
    "deepfashion": (32, 4, 50, 50, 20, 256, 1.0, "normal"),
}
LOAD_SIZE = {"cityscapes": 512, "ade20k": 286, "coco": 286, "facades": 1054, "celebamask_hq": 542,
             "deepfashion": 286}
DONTCARE = {"ade20k", "coco"}
INSTANCE = {"cityscapes", "coco"}
# Set by the dataset modules (data facts) and the pix2pix presets (hyper-parameters): the scripts
# rely on them instead of repeating them.
NOT_REPEATED = {"--label_nc", "--contain_dontcare_label", "--no_instance", "--preprocess_mode", "--load_size",
                "--crop_size", "--aspect_ratio", "--num_upsampling_layers", "--batchSize", "--niter",
                "--niter_decay", "--lr", "--ngf", "--ndf"}

SHIM = """#!/bin/sh
n=$(ls "$RECORD_DIR" | wc -l)
: > "$RECORD_DIR/call_$(printf %03d "$n")"
for a in "$@"; do printf '%s\\n' "$a" >> "$RECORD_DIR/call_$(printf %03d "$n")"; done
"""


def all_scripts():
    return sorted(glob.glob(os.path.join(SCRIPTS, "*.sh")))


def run_script(tmp_path, name, *args, env=None):
    """Run scripts/<name> with the shim; returns the recorded argv lists, in call order."""
    record = tmp_path / f"record_{name}_{'_'.join(args)}"
    record.mkdir()
    shim = tmp_path / "shim"
    if not shim.exists():
        shim.write_text(SHIM)
        shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    full_env = dict(os.environ, TORCHRUN=str(shim), PYTHON=str(shim), RECORD_DIR=str(record))
    full_env.update(env or {})
    for key in ("NAME", "NGPU", "NNODES", "NODE_RANK", "RDZV_ENDPOINT", "EPOCH"):
        if env is None or key not in env:
            full_env.pop(key, None)
    subprocess.run(["bash", os.path.join(SCRIPTS, name), *args], check=True, env=full_env, timeout=60)
    calls = []
    for f in sorted(os.listdir(record)):
        calls.append((record / f).read_text().splitlines())
    return calls


def split_entry(argv, entry):
    """(launcher args, entry-point args) around 'train.py' / 'test.py'."""
    i = argv.index(entry)
    return argv[:i], argv[i + 1:]


def parse(options_cls, args):
    """Parse as the command line would: components that peek at sys.argv (to pick the generator
    whose flags to add) must see these arguments too."""
    saved = sys.argv
    sys.argv = ["script.py", *args]
    try:
        return options_cls().parse(args)
    finally:
        sys.argv = saved


def test_expected_scripts_exist():
    names = {os.path.basename(p) for p in all_scripts()}
    for ds in OFFICIAL:
        assert f"train_{ds}.sh" in names and f"test_{ds}.sh" in names
    assert "ablation_cityscapes.sh" in names


@pytest.mark.parametrize("path", all_scripts(), ids=os.path.basename)
def test_bash_syntax(path):
    result = subprocess.run(["bash", "-n", path], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dataset", sorted(OFFICIAL))
def test_train_script_official_settings(tmp_path, dataset):
    from options.train_options import TrainOptions

    batch, ngpu, niter, decay, label_nc, crop, aspect, n_up = OFFICIAL[dataset]
    root = str(tmp_path / "data root")
    env = {dataset.upper() + "_DATAROOT": root}
    (call,) = run_script(tmp_path, f"train_{dataset}.sh", "--no_vgg_loss", env=env)
    launcher, args = split_entry(call, "train.py")
    assert launcher == ["--standalone", f"--nproc_per_node={ngpu}"]
    assert args[-1] == "--no_vgg_loss"  # extra flags are passed through
    assert not NOT_REPEATED & set(args)
    opt = parse(TrainOptions, args)
    assert opt.dataset_mode == dataset and opt.dataroot == root and opt.name == f"{dataset}_dagan"
    assert (opt.batchSize, opt.niter, opt.niter_decay) == (batch, niter, decay)
    assert (opt.label_nc, opt.crop_size, opt.load_size) == (label_nc, crop, LOAD_SIZE[dataset])
    assert opt.aspect_ratio == aspect and opt.num_upsampling_layers == n_up
    assert opt.contain_dontcare_label == (dataset in DONTCARE)
    assert opt.no_instance == (dataset not in INSTANCE)
    assert opt.batchSize % ngpu == 0


@pytest.mark.parametrize("dataset", sorted(OFFICIAL))
def test_test_script_flags(tmp_path, dataset):
    from options.test_options import TestOptions

    _, _, _, _, label_nc, crop, aspect, n_up = OFFICIAL[dataset]
    (call,) = run_script(tmp_path, f"test_{dataset}.sh", "--how_many", "3", env={"EPOCH": "20"})
    launcher, args = split_entry(call, "test.py")
    assert launcher == []
    assert not NOT_REPEATED & set(args)
    opt = parse(TestOptions, args)
    assert opt.which_epoch == "20" and opt.how_many == 3 and opt.dataset_mode == dataset
    assert (opt.label_nc, opt.crop_size, opt.aspect_ratio, opt.num_upsampling_layers) == (label_nc, crop, aspect, n_up)
    assert opt.load_size == crop  # no random crop at test time
    assert opt.contain_dontcare_label == (dataset in DONTCARE)
    assert opt.no_instance == (dataset not in INSTANCE)


def test_multi_node_launch(tmp_path):
    env = {"NNODES": "2", "NODE_RANK": "1", "RDZV_ENDPOINT": "node0:29500", "NGPU": "8"}
    (call,) = run_script(tmp_path, "train_coco.sh", env=env)
    launcher, _ = split_entry(call, "train.py")
    assert launcher == ["--nnodes", "2", "--node_rank", "1", "--nproc_per_node=8",
                        "--rdzv_backend", "c10d", "--rdzv_endpoint", "node0:29500"]


def test_multi_node_requires_rendezvous(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        run_script(tmp_path, "train_coco.sh", env={"NNODES": "2"})


def test_ablation_variants(tmp_path):
    from options.train_options import TrainOptions

    calls = run_script(tmp_path, "ablation_cityscapes.sh", "all")
    assert len(calls) == 6
    expected = {  # variant -> (netG, no_sam, no_cam, cam_mode)
        "B1": ("spade", None, None, None),
        "B2": ("dagan", False, True, "II"),
        "B3": ("dagan", True, False, "I"),
        "B4": ("dagan", True, False, "II"),
        "B5": ("dagan", False, False, "I"),
        "B6": ("dagan", False, False, "II"),
    }
    for variant, call in zip(sorted(expected), calls):
        _, args = split_entry(call, "train.py")
        opt = parse(TrainOptions, args)
        net_g, no_sam, no_cam, cam_mode = expected[variant]
        assert opt.name == f"cityscapes_ablation_{variant}"
        assert opt.netG == net_g and opt.dataset_mode == "cityscapes" and opt.batchSize == 8
        if net_g == "dagan":
            assert (opt.no_sam, opt.no_cam, opt.cam_mode) == (no_sam, no_cam, cam_mode)


def test_ablation_rejects_unknown_variant(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        run_script(tmp_path, "ablation_cityscapes.sh", "B7")


def test_parse_helper_rejects_flags_the_options_do_not_know():
    """Guards the checks above: a flag no component declares (or one of another generator) fails."""
    from options.train_options import TrainOptions

    with pytest.raises(SystemExit):
        parse(TrainOptions, ["--dataset_mode", "cityscapes", "--no_such_flag"])
    with pytest.raises(SystemExit):
        parse(TrainOptions, ["--dataset_mode", "cityscapes", "--netG", "spade", "--no_cam"])


# ------------------------------------------------------------------------------------------------
# the repository's .venv (the README's set-up creates it and activates nothing)

def dataset_scripts():
    return sorted(glob.glob(os.path.join(SCRIPTS, "train_*.sh")) + glob.glob(os.path.join(SCRIPTS, "test_*.sh")))


@pytest.mark.parametrize("path", dataset_scripts(), ids=os.path.basename)
def test_dataset_scripts_source_the_venv_snippet(path):
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    # after the cd to the repository root, before any command runs
    assert lines.index("source scripts/env.sh") == lines.index('cd "$(dirname "$0")/.."') + 2


def fake_repo(tmp_path, venv):
    """A copy of scripts/ in tmp_path/repo (with .venv/bin/{torchrun,python} shims when ``venv``) and a
    PATH holding only the tools the scripts and the shim use: no python, no torchrun."""
    repo = tmp_path / "repo"
    shutil.copytree(SCRIPTS, repo / "scripts")
    if venv:
        (repo / ".venv" / "bin").mkdir(parents=True)
        for name in ("torchrun", "python"):
            shim = repo / ".venv" / "bin" / name
            shim.write_text(SHIM)
            shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("dirname", "ls", "wc"):
        os.symlink(shutil.which(tool), tools / tool)
    record = tmp_path / "record"
    record.mkdir()
    env = {"PATH": str(tools), "RECORD_DIR": str(record), "HOME": str(tmp_path)}
    return repo, record, env


def recorded(record):
    return [(record / f).read_text().splitlines() for f in sorted(os.listdir(record))]


def test_scripts_use_the_repository_venv_without_activation(tmp_path):
    repo, record, env = fake_repo(tmp_path, venv=True)
    for script, args in (("train_cityscapes.sh", []), ("test_cityscapes.sh", ["--how_many", "1"])):
        result = subprocess.run([shutil.which("bash"), str(repo / "scripts" / script), *args],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
    train_call, test_call = recorded(record)
    assert train_call[:2] == ["--standalone", "--nproc_per_node=1"] and "train.py" in train_call
    assert test_call[0] == "test.py" and test_call[-2:] == ["--how_many", "1"]


def test_without_a_venv_the_path_is_left_as_it_is(tmp_path):
    repo, record, env = fake_repo(tmp_path, venv=False)
    result = subprocess.run([shutil.which("bash"), str(repo / "scripts" / "train_cityscapes.sh")], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 127 and "torchrun: not found" in result.stderr
    # a python of the caller's PATH (an activated environment) is used
    python = tmp_path / "tools" / "python"
    python.write_text(SHIM)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    result = subprocess.run([shutil.which("bash"), str(repo / "scripts" / "test_cityscapes.sh")], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert recorded(record)[0][0] == "test.py"


@pytest.mark.parametrize("dataset", ["ade20k", "cityscapes", "coco"])
def test_ccfpse_scripts_official_settings(tmp_path, dataset):
    """CC-FPSE's official train.sh: --netG condconv --netD fpse --use_vae --lambda_feat 20, batch 1 on each
    of 8 processes (global 8), 100 + 100 epochs; its test scripts pass --use_vae."""
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    root = str(tmp_path / "data")
    env = {dataset.upper() + "_DATAROOT": root}
    (call,) = run_script(tmp_path, f"train_ccfpse_{dataset}.sh", "--no_vgg_loss", env=env)
    launcher, args = split_entry(call, "train.py")
    assert launcher == ["--standalone", "--nproc_per_node=8"]
    assert not NOT_REPEATED & set(args)
    opt = parse(TrainOptions, args)
    assert (opt.netG, opt.netD, opt.use_vae, opt.lambda_feat, opt.lambda_vgg, opt.lambda_kld) == (
        "condconv", "fpse", True, 20.0, 10.0, 0.05)
    assert (opt.batchSize, opt.niter, opt.niter_decay, opt.lr, opt.ngf, opt.ndf) == (8, 100, 100, 0.0002, 64, 64)
    assert opt.dataroot == root and opt.name == f"ccfpse_{dataset}"
    assert opt.num_upsampling_layers == ("more" if dataset == "cityscapes" else "normal")
    (call,) = run_script(tmp_path, f"test_ccfpse_{dataset}.sh", env={"EPOCH": "200"})
    launcher, args = split_entry(call, "test.py")
    opt = parse(TestOptions, args)
    assert (opt.netG, opt.use_vae, opt.which_epoch, opt.sample_z) == ("condconv", True, "200", False)
    (call,) = run_script(tmp_path, f"test_ccfpse_{dataset}.sh", "--how_many", "1", env={"USE_VAE": "0"})
    assert "--use_vae" not in split_entry(call, "test.py")[1]


# OASIS (the official repository's scripts and config.py): dataset -> (batch, epochs, lr_g, lambda_labelmix,
# EMA decay, FID frequency, semantic_nc, crop, aspect)
OASIS = {
    "ade20k": (32, 200, 0.0001, 10.0, 0.9999, 5000, 151, 256, 1.0),
    "cityscapes": (20, 200, 0.0004, 5.0, 0.999, 2500, 35, 512, 2.0),
    "coco": (32, 100, 0.0001, 10.0, 0.9999, 5000, 183, 256, 1.0),
}


@pytest.mark.parametrize("dataset", sorted(OASIS))
def test_oasis_scripts_official_settings(tmp_path, dataset):
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    batch, epochs, lr_g, lm, ema, fid, nc, crop, aspect = OASIS[dataset]
    root = str(tmp_path / "root")
    (call,) = run_script(tmp_path, f"train_oasis_{dataset}.sh", env={dataset.upper() + "_DATAROOT": root})
    _, args = split_entry(call, "train.py")
    opt = parse(TrainOptions, args)
    assert (opt.model, opt.dataset_mode, opt.dataroot, opt.name) == ("oasis", dataset, root, f"oasis_{dataset}")
    assert (opt.batchSize, opt.niter, opt.niter_decay, opt.lr_g, opt.lr_d) == (batch, epochs, 0, lr_g, 0.0004)
    assert (opt.lambda_labelmix, opt.ema_decay, opt.eval_freq, opt.semantic_nc) == (lm, ema, fid, nc)
    assert (opt.crop_size, opt.load_size, opt.aspect_ratio, opt.preprocess_mode, opt.no_instance) == (
        crop, crop, aspect, "fixed", True)
    (call,) = run_script(tmp_path, f"test_oasis_{dataset}.sh")
    _, args = split_entry(call, "test.py")
    opt = parse(TestOptions, args)
    assert (opt.model, opt.which_epoch, opt.use_ema, opt.semantic_nc, opt.crop_size) == ("oasis", "best", True, nc, crop)


@pytest.mark.parametrize("dataset", ["horse2zebra", "apple2orange", "maps", "selfie2anime"])
def test_attentiongan_scripts_official_settings(tmp_path, dataset):
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    root = str(tmp_path / "root")
    (call,) = run_script(tmp_path, f"train_attentiongan_{dataset}.sh", env={"DATAROOT": root})
    _, args = split_entry(call, "train.py")
    opt = parse(TrainOptions, args)
    assert (opt.model, opt.dataset_mode, opt.dataroot) == ("attention_gan", "unaligned", root)
    # the official train_attentiongan.sh (horse2zebra): 60 + 0 epochs at batch 4; otherwise the defaults
    expected = (4, 60, 0) if dataset == "horse2zebra" else (1, 100, 100)
    assert (opt.batchSize, opt.niter, opt.niter_decay) == expected
    assert (opt.load_size, opt.crop_size, opt.pool_size, opt.norm, opt.lambda_identity) == (286, 256, 50, "instance", 0.5)
    assert (opt.lr, opt.beta1, opt.gan_mode) == (0.0002, 0.5, "lsgan")
    (call,) = run_script(tmp_path, f"test_attentiongan_{dataset}.sh", env={"DATAROOT": root})
    _, args = split_entry(call, "test.py")
    opt = parse(TestOptions, args)
    assert (opt.load_size, opt.crop_size, opt.which_epoch, opt.no_flip) == (256, 256, "latest", True)
