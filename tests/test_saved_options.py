"""test.py reads the run's saved options (<checkpoints_dir>/<name>/opt.json) by default: a run of the
custom dataset mode tests with ``--name`` alone, flags given override the saved values,
``--no_opt_file`` ignores the file."""
import json
import logging
import os
import shutil

import pytest

import test as test_py
import train
from data import synthetic
from options.test_options import TestOptions


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory):
    """A tiny training run of --dataset_mode custom; returns (checkpoints_dir, name, data root)."""
    base = tmp_path_factory.mktemp("custom_run")
    root = str(base / "data")
    synthetic.ensure_synthetic_dataset(root, num_train=4, num_val=3, size=32)
    ckpt = str(base / "checkpoints")
    train.main(["--dataset_mode", "custom", "--label_dir", os.path.join(root, "train_label"),
                "--image_dir", os.path.join(root, "train_img"), "--instance_dir", os.path.join(root, "train_inst"),
                "--label_nc", str(synthetic.NUM_CLASSES), "--checkpoints_dir", ckpt, "--name", "mine",
                "--gpu_ids", "-1", "--ngf", "8", "--ndf", "8", "--crop_size", "32", "--load_size", "32",
                "--num_D", "2", "--n_layers_D", "2", "--batchSize", "2", "--no_vgg_loss", "--print_freq", "1",
                "--display_freq", "2", "--niter", "1", "--niter_decay", "0"])
    return ckpt, "mine", root


def cli_args(ckpt, name, results, *extra):
    return ["--name", name, "--checkpoints_dir", ckpt, "--results_dir", str(results), "--gpu_ids", "-1", *extra]


def stems(result):
    return sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(result["web_dir"], "images",
                                                                            "synthesized_image")))


def used_options(result):
    with open(os.path.join(result["web_dir"], "opt.json"), encoding="utf-8") as f:
        return json.load(f)


def test_name_alone_tests_a_custom_run_with_its_saved_options(custom_run, tmp_path, caplog):
    ckpt, name, root = custom_run
    with caplog.at_level(logging.INFO):
        result = test_py.main(cli_args(ckpt, name, tmp_path))
    opt = used_options(result)
    assert opt["dataset_mode"] == "custom" and opt["label_dir"] == os.path.join(root, "train_label")
    assert (opt["ngf"], opt["crop_size"], opt["label_nc"], opt["no_instance"]) == (8, 32, synthetic.NUM_CLASSES, False)
    # the test phase's own settings are not the training run's
    assert (opt["phase"], opt["batchSize"], opt["serial_batches"], opt["no_flip"]) == ("test", 1, True, True)
    assert stems(result) == [f"train_{i:05d}" for i in range(4)]
    saved = os.path.join(ckpt, name, "opt.json")
    assert sum(saved in r.getMessage() and "options of the run" in r.getMessage() for r in caplog.records) == 1


def test_flags_given_override_the_saved_options(custom_run, tmp_path):
    ckpt, name, root = custom_run
    result = test_py.main(cli_args(ckpt, name, tmp_path, "--label_dir", os.path.join(root, "val_label"),
                                    "--image_dir", os.path.join(root, "val_img"),
                                    "--instance_dir", os.path.join(root, "val_inst")))
    assert stems(result) == [f"val_{i:05d}" for i in range(3)]
    assert used_options(result)["ngf"] == 8  # the rest still from the file


def test_no_opt_file_ignores_the_saved_options(custom_run, tmp_path):
    ckpt, name, _ = custom_run
    options = TestOptions()
    opt = options.parse(cli_args(ckpt, name, tmp_path, "--no_opt_file"))
    assert options.option_file_read is None
    assert opt.dataset_mode == "synthetic" and opt.ngf != 8
    with pytest.raises(SystemExit) as exit_info:
        TestOptions().parse(cli_args(ckpt, name, tmp_path, "--no_opt_file", "--load_from_opt_file"))
    assert exit_info.value.code == 2


def test_the_file_found_by_name_and_checkpoints_dir_does_not_move_them(custom_run, tmp_path):
    # A copied run: its opt.json still names the old checkpoints folder; the weights next to the file
    # are the ones to load.
    ckpt, name, _ = custom_run
    moved = tmp_path / "moved"
    shutil.copytree(os.path.join(ckpt, name), moved / "renamed")
    options = TestOptions()
    opt = options.parse(cli_args(str(moved), "renamed", tmp_path))
    assert options.option_file_read == str(moved / "renamed" / "opt.json")
    assert (opt.checkpoints_dir, opt.name, opt.dataset_mode) == (str(moved), "renamed", "custom")


def test_without_a_saved_file_the_defaults_apply(tmp_path):
    options = TestOptions()
    opt = options.parse(cli_args(str(tmp_path), "never_trained", tmp_path))
    assert options.option_file_read is None and opt.dataset_mode == "synthetic"
