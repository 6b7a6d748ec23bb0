"""The options system: flags declared once by their components, checked at parse time (one-line
argparse error, exit status 2, before anything is built or written), presets per (model, dataset),
``--help`` with the effective defaults, ``--load_from_opt_file``, and SPADE's no-op flags."""

import json
import logging
import re

import pytest

import data
import models
from models.pix2pix_presets import ARCHITECTURE_KEYS, PRESETS
from options.spade_compat import SPADE_NOOP_FLAGS
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import OptionError

CPU = ["--gpu_ids", "-1"]


def parse_error(options_cls, args, capsys):
    """Parse ``args`` expecting an option error; returns the stderr text."""
    with pytest.raises(SystemExit) as exit_info:
        options_cls().parse(CPU + list(args))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def help_text(options_cls, args, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        options_cls().parse(list(args) + ["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def help_entries(text):
    """{flag: its help entry with whitespace collapsed} of an argparse help text."""
    entries, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^  (-\S+)", line)
        if match:
            current = match.group(1).split(",")[0]
            if current == "-h":
                current = "--help"
            entries[current] = line
        elif current is not None and line.startswith("    "):
            entries[current] += " " + line
        else:
            current = None
    return {flag: " ".join(entry.split()) for flag, entry in entries.items()}


# ---------------------------------------------------------------------------------------- errors
def test_option_error_carries_flag_value_and_requirement():
    err = OptionError("D_steps_per_G", 0, "must be a positive integer")
    assert (err.flag, err.value, err.allowed) == ("--D_steps_per_G", 0, "must be a positive integer")
    assert str(err) == "--D_steps_per_G 0: must be a positive integer"
    assert isinstance(err, ValueError)
    names = OptionError("--netG", "foo", ["dagan", "spade"], kind="generator")
    assert str(names) == "--netG foo: unknown generator; known: dagan, spade"


def test_bad_value_is_one_argparse_line_with_status_2(capsys):
    err = parse_error(TrainOptions, ["--D_steps_per_G", "0"], capsys)
    assert err == "train.py: error: --D_steps_per_G 0: must be a positive integer\n"
    err = parse_error(TestOptions, ["--netG", "nope"], capsys)
    assert err == "test.py: error: --netG nope: unknown generator; known: condconv, dagan, spade\n"


@pytest.mark.parametrize("args,expected", [
    (["--D_steps_per_G", "0"], "--D_steps_per_G 0: must be a positive integer"),
    (["--print_freq", "0"], "--print_freq 0: must be a positive integer"),
    (["--display_freq", "0"], "--display_freq 0: must be a positive integer"),
    (["--save_latest_freq", "0"], "--save_latest_freq 0: must be a positive integer"),
    (["--save_epoch_freq", "-1"], "--save_epoch_freq -1: must be a positive integer"),
    (["--lr", "0"], "--lr 0.0: must be a positive number"),
    (["--lr", "-0.001"], "--lr -0.001: must be a positive number"),
    (["--ngf", "0"], "--ngf 0: must be a positive integer"),
    (["--ndf", "-4"], "--ndf -4: must be a positive integer"),
    (["--batchSize", "0"], "--batchSize 0: must be a positive integer"),
    (["--output_nc", "4"], "--output_nc 4: must be 3"),
    (["--crop_size", "100"], "--crop_size 100: the generator would make 96x96 images, not 100x100"),
    (["--netG", "pix2pixhd"], "--netG pix2pixhd: unknown generator; known: condconv, dagan, spade"),
    (["--netD", "patch"], "--netD patch: unknown discriminator; known: fpse, multiscale"),
    (["--dataset_mode", "horse2zebra"], "--dataset_mode horse2zebra: unknown dataset mode; known: ade20k, "
                                        "celebamask_hq, cityscapes, coco, custom, deepfashion, facades, synthetic"),
    (["--model", "cyclegan"], "--model cyclegan: unknown model; known: attention_gan, oasis, pix2pix"),
    (["--memory_format", "channels_last"], "--memory_format channels_last: is for inference only"),
    (["--gpu_ids", "0;1"], "--gpu_ids 0;1: must be a comma-separated list of integers"),
    (["--niter", "0", "--niter_decay", "0"], "--niter 0: --niter + --niter_decay (0) must be at least one epoch"),
    (["--beta1", "0.5"], "--beta1 0.5: is read only with --no_TTUR"),
    (["--cam_scales", "7"], "--cam_scales 7: must be in [1, 6] with --num_upsampling_layers normal"),
    (["--norm_D", "group"], "--norm_D group: must be [spectral](instance|batch|syncbatch|none)"),
    (["--norm_G", "spectralspadegroup3x3"], "--norm_G spectralspadegroup3x3: must be [spectral]spade<norm><k>x<k>"),
    (["--label_nc", "0"], "--label_nc 0: must be a positive integer"),
    (["--dataset_mode", "custom", "--image_dir", "x"], "--label_dir: required by --dataset_mode custom"),
    (["--preprocess_mode", "resize_and_crop", "--load_size", "16"],
     "--load_size 16: must be at least --crop_size 32"),
])
def test_training_option_errors_name_the_flag(args, expected, capsys):
    err = parse_error(TrainOptions, args, capsys)
    assert err.startswith("train.py: error: " + expected), err
    assert err.count("\n") == 1  # one line, no usage block


@pytest.mark.parametrize("args,expected", [
    (["--crop_size", "100"], "--crop_size 100: the generator would make 96x96 images"),
    (["--netG", "sean"], "--netG sean: unknown generator; known: condconv, dagan, spade"),
    (["--ngf", "0"], "--ngf 0: must be a positive integer"),
    (["--how_many", "0"], "--how_many 0: must be a positive integer"),
    (["--seg_size", "512"], "--seg_size 512: must be WxH"),
])
def test_test_option_errors_name_the_flag(args, expected, capsys):
    err = parse_error(TestOptions, args, capsys)
    assert err.startswith("test.py: error: " + expected), err


def test_crop_size_check_follows_the_generator_geometry(capsys):
    # 512x256 with 'more' (Cityscapes): latent 8x4, output 512x256 -> accepted.
    opt = TrainOptions().parse(CPU + ["--dataset_mode", "cityscapes"])
    assert (opt.crop_size, opt.aspect_ratio, opt.num_upsampling_layers) == (512, 2.0, "more")
    assert TrainOptions().parse(CPU + ["--crop_size", "96", "--load_size", "96"]).crop_size == 96
    # aspect 1.5 at 256: latent 8 x round(5.33) = 5 -> 256x160, not 256x171.
    err = parse_error(TrainOptions, ["--crop_size", "256", "--load_size", "256", "--aspect_ratio", "1.5"], capsys)
    assert "--crop_size 256: the generator would make 256x160 images, not 256x171" in err
    err = parse_error(TrainOptions, ["--dataset_mode", "cityscapes", "--crop_size", "500"], capsys)
    assert "nearest that fit: 384 or 512" in err


def test_batch_must_divide_across_processes(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    err = parse_error(TrainOptions, ["--batchSize", "4"], capsys)
    assert "--batchSize 4: is the global batch and must divide evenly across the 3 processes" in err


def test_errors_stop_train_and_test_before_anything_is_built_or_written(tmp_path, capsys, monkeypatch):
    import test as test_py
    import train

    def must_not_build(*args, **kwargs):
        raise AssertionError("a network or dataset was built")

    monkeypatch.setattr(models, "create_model", must_not_build)
    monkeypatch.setattr(data, "create_dataloader", must_not_build)
    results = ["--results_dir", str(tmp_path / "results")]
    for main, bad in ((train.main, ["--D_steps_per_G", "0"]), (train.main, ["--netG", "nope"]),
                      (test_py.main, results + ["--crop_size", "100"]),
                      (test_py.main, results + ["--dataset_mode", "nope"])):
        with pytest.raises(SystemExit) as exit_info:
            main(CPU + ["--checkpoints_dir", str(tmp_path / "checkpoints")] + bad)
        assert exit_info.value.code == 2
        assert f"error: {bad[-2]} {bad[-1]}: " in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize("options_cls", [TrainOptions, TestOptions])
def test_every_dataset_and_generator_combination_parses(options_cls):
    """No flag is declared twice (argparse would raise on the second declaration)."""
    from data.pix2pix_dataset import Pix2pixDataset

    semantic = [m for m in data.known_dataset_modes() if issubclass(data.find_dataset_using_name(m), Pix2pixDataset)]
    assert {"synthetic", "cityscapes", "ade20k", "coco", "custom"} <= set(semantic)
    for mode in semantic:
        extra = ["--label_dir", "l", "--image_dir", "i"] if mode == "custom" else []
        for net_g in ("dagan", "spade"):
            opt = options_cls().parse(CPU + ["--dataset_mode", mode, "--netG", net_g] + extra)
            assert (opt.dataset_mode, opt.netG, opt.isTrain) == (mode, net_g, options_cls.isTrain)
            assert ("no_sam" in vars(opt)) == (net_g == "dagan")
            assert ("num_D" in vars(opt)) == options_cls.isTrain  # D flags: training only
            assert ("lambda_vgg" in vars(opt)) == options_cls.isTrain


def test_removed_options_and_declarations():
    import models.networks.discriminator as discriminator
    import options.base_options as base_options

    assert not hasattr(discriminator, "add_argument_once")
    assert not hasattr(base_options, "str2bool")
    opt = TrainOptions().parse(CPU)
    assert "nef" not in vars(opt) and "optimizer" not in vars(opt)


def test_semantic_nc_is_set_by_the_dataset_hook():
    expected = {"cityscapes": 35 + 1, "ade20k": 150 + 1, "coco": 182 + 1 + 1, "facades": 13, "synthetic": 8 + 1}
    for mode, semantic_nc in expected.items():
        assert TrainOptions().parse(CPU + ["--dataset_mode", mode]).semantic_nc == semantic_nc
    assert TestOptions().parse(CPU + ["--dataset_mode", "cityscapes", "--no_instance"]).semantic_nc == 35
    opt = TrainOptions().parse(CPU + ["--dataset_mode", "custom", "--label_dir", "l", "--image_dir", "i",
                                      "--label_nc", "5", "--contain_dontcare_label"])
    assert opt.semantic_nc == 5 + 1 + 1


def test_ttur_betas_and_vgg_switches():
    opt = TrainOptions().parse(CPU)
    assert (opt.beta1, opt.beta2, opt.no_TTUR) == (0.0, 0.9, False)
    opt = TrainOptions().parse(CPU + ["--no_TTUR"])
    assert (opt.beta1, opt.beta2) == (0.5, 0.999)
    assert TrainOptions().parse(CPU + ["--no_TTUR", "--beta1", "0.3"]).beta1 == 0.3
    assert TrainOptions().parse(CPU).no_vgg_loss  # the synthetic preset
    assert not TrainOptions().parse(CPU + ["--vgg_loss"]).no_vgg_loss
    assert not TrainOptions().parse(CPU + ["--dataset_mode", "ade20k"]).no_vgg_loss


# ---------------------------------------------------------------------------------------- presets
def test_presets_cover_known_datasets_with_declared_options():
    assert set(PRESETS) <= set(data.known_dataset_modes())
    for mode, preset in PRESETS.items():
        extra = ["--label_dir", "l", "--image_dir", "i"] if mode == "custom" else []
        opt = TrainOptions().parse(CPU + ["--dataset_mode", mode] + extra)
        assert {k: getattr(opt, k) for k in preset} == preset, mode
        test_opt = TestOptions().parse(CPU + ["--dataset_mode", mode] + extra)
        for key in preset:
            if key in ARCHITECTURE_KEYS:
                assert getattr(test_opt, key) == preset[key], (mode, key)
        assert test_opt.batchSize == 1


def test_get_presets_by_phase_and_for_models_without_presets(monkeypatch):
    train = models.get_presets("pix2pix", "cityscapes", True)
    assert (train["batchSize"], train["niter"], train["niter_decay"], train["num_upsampling_layers"]) == (
        8, 100, 100, "more")
    assert models.get_presets("pix2pix", "cityscapes", False) == {"ngf": 64, "num_upsampling_layers": "more"}
    assert models.get_presets("pix2pix", "custom", True) == {}
    with pytest.raises(OptionError, match="--model nope"):
        models.get_presets("nope", "cityscapes", True)
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)  # a model without presets
    assert models.get_presets("pix2pix", "synthetic", True) == {}


def test_command_line_beats_presets_which_beat_dataset_defaults():
    opt = TrainOptions().parse(CPU + ["--dataset_mode", "cityscapes", "--batchSize", "2", "--niter", "3",
                                      "--num_upsampling_layers", "normal", "--crop_size", "256"])
    assert (opt.batchSize, opt.niter, opt.niter_decay, opt.num_upsampling_layers) == (2, 3, 100, "normal")
    assert (opt.label_nc, opt.aspect_ratio, opt.preprocess_mode) == (35, 2.0, "fixed")  # data facts
    # The synthetic main job: dataset sizes and the model preset; test rebuilds the same G.
    train, test = TrainOptions().parse(CPU), TestOptions().parse(CPU)
    assert (train.ngf, train.ndf, train.lr, train.batchSize, train.crop_size) == (16, 16, 0.0004, 4, 32)
    assert (test.ngf, test.crop_size, test.load_size, test.batchSize) == (16, 32, 32, 1)


# ---------------------------------------------------------------------------------------- option file
def test_load_from_opt_file_beats_presets_and_loses_to_the_command_line(tmp_path, capsys):
    run = ["--checkpoints_dir", str(tmp_path), "--name", "run"]
    options = TrainOptions()
    opt = options.parse(CPU + run + ["--netG", "spade", "--ngf", "8", "--batchSize", "2", "--no_TTUR",
                                     "--beta1", "0.3", "--tf_log"])
    options.save_options(opt)
    saved = json.loads((tmp_path / "run" / "opt.json").read_text())
    assert saved["netG"] == "spade" and saved["ngf"] == 8 and "tf_log" not in saved and "semantic_nc" not in saved
    assert "[default: 16]" in (tmp_path / "run" / "opt.txt").read_text()  # ngf 8, preset 16

    again = TrainOptions().parse(CPU + run + ["--load_from_opt_file", "--lr", "0.001"])
    assert (again.netG, again.ngf, again.batchSize, again.no_TTUR, again.beta1) == ("spade", 8, 2, True, 0.3)
    assert again.lr == 0.001 and "no_sam" not in vars(again)  # the saved netG chose the generator's flags
    test = TestOptions().parse(CPU + run + ["--load_from_opt_file", "--ngf", "4"])
    assert (test.netG, test.ngf, test.batchSize, test.phase, test.load_size) == ("spade", 4, 1, "test", 32)

    err = parse_error(TestOptions, ["--checkpoints_dir", str(tmp_path), "--name", "none", "--load_from_opt_file"],
                      capsys)
    assert "--load_from_opt_file: " in err and "opt.json does not exist" in err


def test_option_file_round_trip_reproduces_every_option(tmp_path):
    run = CPU + ["--checkpoints_dir", str(tmp_path), "--name", "rt", "--dataset_mode", "ade20k"]
    options = TrainOptions()
    opt = options.parse(run + ["--no_sam", "--cam_mode", "I", "--lambda_feat", "20", "--vgg_loss"])
    options.save_options(opt)
    again = TrainOptions().parse(CPU + ["--checkpoints_dir", str(tmp_path), "--name", "rt", "--load_from_opt_file"])
    ignored = {"load_from_opt_file", "gpu_ids"}
    assert {k: v for k, v in vars(again).items() if k not in ignored} == {
        k: v for k, v in vars(opt).items() if k not in ignored}


# ---------------------------------------------------------------------------------------- help
def test_train_help_lists_component_flags_with_effective_defaults(capsys, monkeypatch):
    entries = help_entries(help_text(TrainOptions, CPU, capsys, monkeypatch))
    for flag in ("--cam_mode", "--no_sam", "--no_cam", "--cam_scales", "--num_upsampling_layers", "--num_D",
                 "--n_layers_D", "--ndf", "--lambda_vgg", "--synthetic_seed", "--synthetic_num_train",
                 "--synthetic_num_val", "--synthetic_size", "--label_nc", "--no_pairing_check", *SPADE_NOOP_FLAGS):
        assert flag in entries, flag
    assert entries["--ngf"].endswith("(default: 16, preset pix2pix/synthetic)")
    assert entries["--batchSize"].endswith("(default: 4, preset pix2pix/synthetic)")
    assert entries["--no_vgg_loss"].endswith("(default: True, preset pix2pix/synthetic)")
    assert entries["--crop_size"].endswith("(default: 32, dataset synthetic)")
    assert entries["--label_nc"].endswith("(default: 8)")
    for entry in entries.values():
        assert entry.count("(default") <= 1, entry
        assert "(default: None)" not in entry, entry

    city = help_entries(help_text(TrainOptions, ["--dataset_mode", "cityscapes"], capsys, monkeypatch))
    assert city["--num_upsampling_layers"].endswith("(default: more, preset pix2pix/cityscapes)")
    assert city["--niter"].endswith("(default: 100, preset pix2pix/cityscapes)")
    assert city["--label_nc"].endswith("(default: 35)") and "--synthetic_seed" not in city


def test_test_help_lists_component_flags(capsys, monkeypatch):
    entries = help_entries(help_text(TestOptions, [], capsys, monkeypatch))
    for flag in ("--cam_mode", "--no_sam", "--no_cam", "--cam_scales", "--num_upsampling_layers", "--how_many",
                 "--synthetic_size", "--fid_dims"):
        assert flag in entries, flag
    for flag in ("--num_D", "--n_layers_D", "--ndf", "--lr", "--tf_log"):  # training only
        assert flag not in entries, flag
    assert entries["--ngf"].endswith("(default: 16, preset pix2pix/synthetic)")
    assert entries["--fid_dims"].count("(default") == 1
    for entry in entries.values():
        assert entry.count("(default") <= 1, entry

    spade = help_entries(help_text(TestOptions, ["--netG", "spade"], capsys, monkeypatch))
    assert "--num_upsampling_layers" in spade and "--no_sam" not in spade
    custom = help_entries(help_text(TestOptions, ["--dataset_mode", "custom"], capsys, monkeypatch))
    for flag in ("--label_dir", "--image_dir", "--instance_dir", "--no_pairing_check"):
        assert flag in custom, flag
    ade = help_entries(help_text(TrainOptions, ["--dataset_mode", "ade20k"], capsys, monkeypatch))
    assert "--ade20k_label_shift" in ade and ade["--label_nc"].endswith("(default: 150)")


# ---------------------------------------------------------------------------------------- SPADE
def test_spade_noop_flags_parse_and_warn_once(caplog):
    values = {"--optimizer": ["adam"], "--nef": ["16"], "--netD_subarch": ["n_layer"]}
    args = [a for flag in SPADE_NOOP_FLAGS for a in [flag] + values.get(flag, [])]
    with caplog.at_level(logging.WARNING):
        opt = TrainOptions().parse(CPU + args)
    for flag in SPADE_NOOP_FLAGS:
        message = f"{flag} is accepted for SPADE compatibility but has no effect here"
        assert sum(r.getMessage().startswith(message) for r in caplog.records) == 1, flag
        assert flag.lstrip("-") not in vars(opt)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        TrainOptions().parse(CPU)
    assert not caplog.records  # nothing given, nothing said


def test_spade_noop_flags_of_training_only_are_rejected_at_test_and_values_checked(capsys, caplog):
    with caplog.at_level(logging.WARNING):
        TestOptions().parse(CPU + ["--cache_filelist_read", "--coco_no_portraits"])
    assert len(caplog.records) == 2
    assert "unrecognized arguments: --tf_log" in parse_error(TestOptions, ["--tf_log"], capsys)
    assert "--netD_subarch" in parse_error(TrainOptions, ["--netD_subarch", "resnet"], capsys)


def test_spade_command_line_runs_unchanged():
    """A SPADE training command line (README of NVlabs/SPADE, with its old-style flags) parses."""
    opt = TrainOptions().parse([
        "--name", "city", "--dataset_mode", "cityscapes", "--dataroot", "/data/cityscapes", "--niter", "100",
        "--niter_decay", "100", "--gpu_ids", "-1", "--batchSize", "8", "--save_epoch_freq", "5",
        "--save_latest_freq", "1000", "--tf_log", "--nThreads", "0", "--display_winsize", "512",
        "--norm_E", "spectralinstance", "--netD_subarch", "n_layer", "--num_D", "2", "--n_layers_D", "4",
        "--no_instance", "--cache_filelist_write", "--lambda_kld", "0.05", "--gan_mode", "hinge",
    ])
    assert (opt.dataset_mode, opt.save_latest_freq, opt.semantic_nc, opt.display_winsize) == (
        "cityscapes", 1000, 35, 512)


def test_a_model_without_label_maps_is_refused_on_them_and_vice_versa(capsys):
    """pix2pix / OASIS need label maps; each model names its embedded task as the default dataset."""
    err = parse_error(TrainOptions, ["--dataset_mode", "unaligned"], capsys)
    assert "--dataset_mode unaligned: --model pix2pix needs a dataset of label maps" in err
    assert TrainOptions().parse(CPU + ["--model", "attention_gan"]).dataset_mode == "synthetic_unpaired"
    assert TrainOptions().parse(CPU + ["--model", "oasis"]).dataset_mode == "synthetic"
    assert TrainOptions().parse(CPU).dataset_mode == "synthetic"
