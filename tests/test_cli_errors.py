"""User errors of train.py / test.py / evaluate.py: one line ``<prog>: error: ...`` on stderr and exit
status 2, no traceback (``--verbose``: the traceback); the cheap checks come first (options, data
folder, run folder, weight files, then networks); bugs keep their traceback; under torchrun the
message ends torchrun's failure summary.

The command lines run as a user types them (subprocesses from the repository root) with an empty
torch hub cache, so the VGG19 weights are missing unless a test provides them.
"""
import os
import subprocess
import sys

import pytest

import train
from test_train import tiny_args
from util import errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, torch_home, launcher=(), timeout=300):
    env = dict(os.environ, TORCH_HOME=str(torch_home), OMP_NUM_THREADS="1")
    env.pop("TORCHELASTIC_ERROR_FILE", None)
    return subprocess.run([sys.executable, *launcher, script, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def assert_one_line_error(result, prog, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def hub(tmp_path):
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    return home


# ------------------------------------------------------------------------------------------------
# the hierarchy

def test_user_errors_share_one_base_and_keep_their_builtin_kinds():
    assert issubclass(errors.OptionError, errors.UserError) and issubclass(errors.OptionError, ValueError)
    assert issubclass(errors.MissingFileError, errors.UserError)
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.CheckpointError, errors.UserError) and issubclass(errors.CheckpointError, RuntimeError)
    assert issubclass(train.RunExistsError, errors.UserError)


def test_one_line_joins_the_lines_of_a_message():
    assert errors.one_line(ValueError("first\n  second\n\nthird")) == "first; second; third"


def test_cli_reports_user_errors_and_lets_bugs_through(monkeypatch, capsys):
    def user_error(argv):
        raise errors.MissingFileError("weights.pth not found")

    def bug(argv):
        raise KeyError("a bug")

    assert errors.run_cli("x.py", user_error, []) == 2
    assert capsys.readouterr().err == "x.py: error: weights.pth not found\n"
    with pytest.raises(errors.MissingFileError):
        errors.run_cli("x.py", user_error, ["--verbose"])
    with pytest.raises(KeyError):
        errors.run_cli("x.py", bug, [])
    monkeypatch.setattr(train, "main", bug)
    with pytest.raises(KeyError):
        train.cli([])


# ------------------------------------------------------------------------------------------------
# train.py

def test_train_missing_dataroot_comes_before_the_missing_vgg_weights(tmp_path, hub):
    # Cityscapes trains with the VGG loss, whose weights are not in this hub cache either.
    missing = tmp_path / "no_such_data"
    result = run("train.py", "--dataset_mode", "cityscapes", "--dataroot", str(missing), "--gpu_ids", "-1",
                 "--checkpoints_dir", str(tmp_path / "ck"), torch_home=hub)
    assert_one_line_error(result, "train.py", f"--dataroot {missing}: no such folder")
    assert not (tmp_path / "ck").exists()

    result = run("train.py", "--dataset_mode", "cityscapes", "--dataroot", str(missing), "--gpu_ids", "-1",
                 "--checkpoints_dir", str(tmp_path / "ck"), "--verbose", torch_home=hub)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "MissingFileError" in result.stderr


def test_train_missing_vgg_weights_reported_before_any_network_is_built(tmp_path, hub):
    (tmp_path / "data").mkdir()  # exists; its sub-folders are read when the dataset is built
    result = run("train.py", "--dataset_mode", "cityscapes", "--dataroot", str(tmp_path / "data"), "--gpu_ids", "-1",
                 "--checkpoints_dir", str(tmp_path / "ck"), torch_home=hub)
    # one line: nothing was built (the model logs its networks when it builds them)
    assert_one_line_error(result, "train.py", "VGG19 weights", "--no_vgg_loss")


def test_train_bad_option(tmp_path, hub):
    result = run("train.py", "--batchSize", "0", "--checkpoints_dir", str(tmp_path), torch_home=hub)
    assert_one_line_error(result, "train.py", "--batchSize 0: must be a positive integer")


def test_train_existing_run(tmp_path, hub):
    run_dir = tmp_path / "ck" / "mine"
    run_dir.mkdir(parents=True)
    (run_dir / "latest_net_G.pth").write_bytes(b"weights of an earlier run")
    result = run("train.py", "--name", "mine", "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1",
                 "--dataroot", str(tmp_path / "synthetic"), torch_home=hub)
    assert_one_line_error(result, "train.py", "already holds a training run", "--overwrite")
    assert os.listdir(run_dir) == ["latest_net_G.pth"]
    assert not (tmp_path / "synthetic").exists()  # refused before the data was generated


def test_train_checkpoint_that_does_not_fit_is_a_user_error(synth_root, tmp_path, capsys):
    train.main(tiny_args(synth_root, tmp_path, "fit"))
    capsys.readouterr()
    assert train.cli(tiny_args(synth_root, tmp_path, "fit", "--continue_train", "--ngf", "16", "--niter", "2")) == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("train.py: error: ") and "does not fit" in line


def test_torchrun_summary_ends_with_the_message(tmp_path, hub):
    missing = tmp_path / "no_such_data"
    result = run("train.py", "--dataset_mode", "cityscapes", "--dataroot", str(missing), "--gpu_ids", "-1",
                 "--batchSize", "2", launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
                 torch_home=hub)
    assert result.returncode != 0
    message = f"train.py: error: --dataroot {missing}: no such folder"
    # A worker printed the line and exited with status 2 (torchrun stops the other one at the first
    # failure: it may be terminated before it prints its own line).
    assert any(line.startswith(message) for line in result.stderr.splitlines())
    assert "exitcode  : 2" in result.stderr
    # torchrun's summary, printed last, shows the message as its root cause's 'traceback' (not N/A)
    tail = [line.strip() for line in result.stderr.splitlines() if line.strip() and set(line.strip()) != {"="}]
    assert tail[-1].startswith("traceback : " + message), tail[-6:]
    assert tail[-8].startswith("Root Cause")


# ------------------------------------------------------------------------------------------------
# test.py

def test_test_missing_dataroot_missing_run_and_bad_option(tmp_path, hub):
    missing = tmp_path / "no_such_data"
    result = run("test.py", "--dataset_mode", "cityscapes", "--dataroot", str(missing), "--gpu_ids", "-1",
                 "--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(tmp_path / "res"), torch_home=hub)
    assert_one_line_error(result, "test.py", f"--dataroot {missing}: no such folder")

    (tmp_path / "data").mkdir()
    result = run("test.py", "--dataset_mode", "cityscapes", "--dataroot", str(tmp_path / "data"), "--gpu_ids", "-1",
                 "--name", "nothing_here", "--checkpoints_dir", str(tmp_path / "ck"),
                 "--results_dir", str(tmp_path / "res"), torch_home=hub)
    assert_one_line_error(result, "test.py", "--name nothing_here: no run folder", "latest_net_<X>.pth")
    assert not (tmp_path / "res").exists()

    result = run("test.py", "--how_many", "0", torch_home=hub)
    assert_one_line_error(result, "test.py", "--how_many 0: must be a positive integer")


def test_test_names_the_epochs_a_run_holds(tmp_path, hub):
    run_dir = tmp_path / "ck" / "mine"
    run_dir.mkdir(parents=True)
    for f in ("10_net_G.pth", "latest_net_G.pth", "latest_state.pth"):
        (run_dir / f).write_bytes(b"x")
    (tmp_path / "data").mkdir()
    result = run("test.py", "--dataset_mode", "cityscapes", "--dataroot", str(tmp_path / "data"), "--gpu_ids", "-1",
                 "--name", "mine", "--checkpoints_dir", str(tmp_path / "ck"), "--which_epoch", "20",
                 torch_home=hub)
    assert_one_line_error(result, "test.py", "--which_epoch 20:", "holds neither 20_net_<X>.pth nor 20_state.pth",
                          "it holds 10, latest")
