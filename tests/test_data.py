"""Data pipeline core: registry, loader, transforms of every preprocess mode, validation errors,
and the embedded synthetic dataset with its segmenter."""

import argparse
import filecmp
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data import synthetic
from data.base_dataset import PREPROCESS_MODES
from data.pix2pix_dataset import natural_sorted
from util.metrics.segmentation import confusion_matrix, scores_from_confusion

# Distinct colour per class so a photo tells which label it was drawn from.
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8)


def make_opt(**overrides):
    opt = dict(dataset_mode="custom", dataroot="", phase="train", isTrain=True, batchSize=2, serial_batches=False,
               nThreads=0, seed=0, preprocess_mode="none", load_size=64, crop_size=64, aspect_ratio=1.0,
               label_nc=6, contain_dontcare_label=False, no_instance=True, no_flip=False,
               max_dataset_size=sys.maxsize, device=torch.device("cpu"), label_dir="", image_dir="", instance_dir="",
               no_pairing_check=False)
    opt.update(overrides)
    return argparse.Namespace(**opt)


def write_custom(root, n=4, size=(40, 24), names=None, label_values=None):
    """Custom layout: label_dir/<stem>.png (class ids), image_dir/<stem>.jpg|png (class colours)."""
    w, h = size
    label_dir, image_dir = root / "labels", root / "images"
    label_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    names = names or [f"{i:03d}" for i in range(n)]
    rng = np.random.default_rng(1)
    for name in names:
        label = rng.integers(0, 6, size=(h, w)).astype(np.uint8)
        if label_values is not None:
            label[0, : len(label_values)] = label_values
        Image.fromarray(label).save(label_dir / f"{name}.png")
        Image.fromarray(PALETTE[np.minimum(label, 5)]).save(image_dir / f"{name}.png")
    return str(label_dir), str(image_dir)


# ---------------------------------------------------------------- registry
def test_registry_finds_every_mode_and_rejects_unknown():
    modes = data.known_dataset_modes()
    for mode in ("cityscapes", "ade20k", "coco", "facades", "celebamask_hq", "deepfashion", "custom", "synthetic"):
        assert mode in modes
        cls = data.find_dataset_using_name(mode)
        assert cls.__name__.lower() == mode.replace("_", "") + "dataset"
        assert callable(data.get_option_setter(mode))
    with pytest.raises(ValueError, match="--dataset_mode nope: unknown dataset mode; known: .*cityscapes.*synthetic"):
        data.find_dataset_using_name("nope")


def test_natural_sort_compares_digit_runs_as_numbers():
    paths = ["a/img10.png", "a/img2.png", "a/img1.png", "a/img2b.png", "a/img010x.png"]
    assert natural_sorted(paths) == ["a/img1.png", "a/img2.png", "a/img2b.png", "a/img10.png", "a/img010x.png"]


# ---------------------------------------------------------------- loader
def test_dataloader_batch_contract_and_alignment(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, n=5, size=(64, 32))
    opt = make_opt(label_dir=label_dir, image_dir=image_dir, preprocess_mode="crop", crop_size=32)
    loader = data.create_dataloader(opt)
    assert len(loader) == 2  # 5 samples, batch 2, last incomplete batch dropped when training
    assert hasattr(loader.sampler, "set_epoch")
    batch = next(iter(loader))
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (2, 1, 32, 32)
    assert batch["instance"].dtype == torch.int64 and not batch["instance"].any()
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (2, 3, 32, 32)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert all(os.path.basename(p) == os.path.basename(q) for p, q in zip(batch["path"], batch["label_path"]))
    # crop and flip are shared: every photo pixel still has its label's colour
    colours = torch.from_numpy(PALETTE.astype(np.float32) / 127.5 - 1)
    expected = colours[batch["label"][:, 0]].permute(0, 3, 1, 2)
    assert torch.allclose(batch["image"], expected, atol=1e-5)


def test_flip_and_crop_are_seeded_by_epoch_and_shared(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, n=8, size=(48, 40))
    opt = make_opt(label_dir=label_dir, image_dir=image_dir, preprocess_mode="crop", crop_size=32,
                   serial_batches=True, batchSize=8)

    def labels(epoch):
        loader = data.create_dataloader(opt)
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))["label"]

    assert torch.equal(labels(3), labels(3))  # same (seed, epoch) -> same crops and flips
    assert not torch.equal(labels(3), labels(4))


def test_shuffle_and_test_phase_order(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, n=6)
    train = data.create_dataloader(make_opt(label_dir=label_dir, image_dir=image_dir, batchSize=1))
    order = [os.path.basename(b["path"][0]) for b in train]
    assert sorted(order) == [f"{i:03d}.png" for i in range(6)] and order != sorted(order)
    test = data.create_dataloader(make_opt(label_dir=label_dir, image_dir=image_dir, batchSize=4, isTrain=False,
                                           phase="test"))
    batches = list(test)
    assert [len(b["path"]) for b in batches] == [4, 2]  # nothing dropped at test time
    assert [os.path.basename(p) for b in batches for p in b["path"]] == [f"{i:03d}.png" for i in range(6)]


def test_distributed_loader_splits_batch_and_shards(tmp_path, monkeypatch):
    label_dir, image_dir = write_custom(tmp_path, n=8)
    monkeypatch.setattr(data.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(data.dist, "get_world_size", lambda: 2)
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(data.dist, "get_rank", lambda rank=rank: rank)
        loader = data.create_dataloader(make_opt(label_dir=label_dir, image_dir=image_dir, batchSize=4))
        loader.sampler.set_epoch(2)
        batches = list(loader)
        assert loader.batch_size == 2 and len(batches) == 2
        seen.append({p for b in batches for p in b["path"]})
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 8  # disjoint shards covering the data


def test_options_module_applies_synthetic_data_facts_and_preset():
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    train = TrainOptions().parse(["--dataset_mode", "synthetic"])
    assert train.label_nc == synthetic.NUM_CLASSES and not train.no_instance and not train.contain_dontcare_label
    assert train.semantic_nc == synthetic.NUM_CLASSES + 1  # + the instance edge map
    assert (train.preprocess_mode, train.load_size, train.crop_size) == ("fixed", 32, 32)
    # The main job's documented preset: batch 4, ngf/ndf 16, lr 4e-4, 4 + 2 epochs, no VGG loss.
    assert (train.batchSize, train.ngf, train.ndf, train.lr) == (4, 16, 16, 0.0004)
    assert (train.niter, train.niter_decay, train.no_vgg_loss) == (4, 2, True)
    test = TestOptions().parse(["--dataset_mode", "synthetic"])
    assert test.batchSize == 1 and test.ngf == 16
    assert test.crop_size == train.crop_size


def test_max_dataset_size_cuts_after_natural_sort(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, names=["x10", "x9", "x1"])
    ds = data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir, max_dataset_size=2))
    assert [os.path.basename(p) for p in ds.label_paths] == ["x1.png", "x9.png"]


# ---------------------------------------------------------------- preprocess modes
@pytest.mark.parametrize("mode,load,crop,aspect,expected", [
    ("resize_and_crop", 40, 32, 1.0, (32, 32)),
    ("crop", 64, 16, 1.0, (16, 16)),
    ("scale_width", 50, 32, 1.0, (30, 50)),          # 100x60 -> width 50, height 50*60/100
    ("scale_width_and_crop", 64, 32, 1.0, (32, 32)),
    ("scale_shortside", 40, 32, 1.0, (40, 66)),      # short side 60 -> 40, long 100 -> 66
    ("scale_shortside_and_crop", 40, 32, 1.0, (32, 32)),
    ("fixed", 64, 64, 2.0, (32, 64)),                 # width crop_size, height crop_size / aspect
    ("none", 64, 64, 1.0, (64, 96)),                  # sides rounded to multiples of 32
])
def test_every_preprocess_mode_output_size(tmp_path, mode, load, crop, aspect, expected):
    label_dir, image_dir = write_custom(tmp_path, n=1, size=(100, 60))
    opt = make_opt(label_dir=label_dir, image_dir=image_dir, preprocess_mode=mode, load_size=load, crop_size=crop,
                   aspect_ratio=aspect)
    sample = data.create_dataset(opt)[0]
    assert tuple(sample["label"].shape) == (1,) + expected
    assert tuple(sample["image"].shape) == (3,) + expected
    # NEAREST for labels: no interpolated class ids appear
    assert set(sample["label"].unique().tolist()) <= set(range(6))


def test_unknown_preprocess_mode_and_too_small_image(tmp_path):
    assert len(PREPROCESS_MODES) == 8
    label_dir, image_dir = write_custom(tmp_path, n=1, size=(40, 24))
    with pytest.raises(ValueError, match="unknown --preprocess_mode 'zoom'.*resize_and_crop"):
        data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir, preprocess_mode="zoom"))
    ds = data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir, preprocess_mode="crop",
                                      crop_size=32))
    with pytest.raises(ValueError, match="smaller than --crop_size 32"):
        ds[0]


# ---------------------------------------------------------------- bad inputs
def test_label_value_out_of_range_names_file_and_value(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, n=1, label_values=[20])
    ds = data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir))
    with pytest.raises(ValueError, match=r"000\.png contains value\(s\) 20 outside"):
        ds[0]


def test_dontcare_255_maps_to_label_nc_and_is_rejected_without_flag(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, n=1, size=(64, 32), label_values=[255, 255, 3])
    ds = data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir, contain_dontcare_label=True,
                                      no_flip=True))
    label = ds[0]["label"]
    assert label[0, 0, :3].tolist() == [6, 6, 3] and label.max() == 6
    ds = data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir))
    with pytest.raises(ValueError, match="value\\(s\\) 255"):
        ds[0]


def test_mismatched_pair_names_both_files(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, names=["a1", "a2", "a3"])
    os.rename(os.path.join(image_dir, "a2.png"), os.path.join(image_dir, "b2.png"))
    with pytest.raises(ValueError, match=r"labels/a2\.png.*images/a3\.png"):
        data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir))
    assert len(data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir, no_pairing_check=True))) == 3
    os.rename(os.path.join(image_dir, "b2.png"), os.path.join(image_dir, "a2.png"))
    os.remove(os.path.join(image_dir, "a3.png"))
    for skip_names in (False, True):  # the counts are checked even with --no_pairing_check
        with pytest.raises(ValueError, match=r"3 label files but 2 image files; first unpaired file: .*a3\.png"):
            data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir, no_pairing_check=skip_names))


def test_missing_folder_names_folder_and_expectation(tmp_path):
    label_dir, _ = write_custom(tmp_path, n=1)
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=f"{missing} does not exist; expected photos"):
        data.create_dataset(make_opt(label_dir=label_dir, image_dir=missing))
    with pytest.raises(ValueError, match="--no_instance"):
        data.create_dataset(make_opt(label_dir=label_dir, image_dir=label_dir, no_instance=False))


def test_corrupt_image_and_label_name_the_file(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, n=2)
    with open(os.path.join(image_dir, "001.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really a png")
    ds = data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir))
    ds[0]
    with pytest.raises(OSError, match=r"cannot read image .*images/001\.png"):
        ds[1]
    with open(os.path.join(label_dir, "000.png"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(OSError, match=r"cannot read label map .*labels/000\.png"):
        ds[0]


def test_colour_label_map_is_rejected(tmp_path):
    label_dir, image_dir = write_custom(tmp_path, n=1)
    Image.fromarray(PALETTE[np.zeros((24, 40), int) + 1]).save(os.path.join(label_dir, "000.png"))
    with pytest.raises(ValueError, match=r"000\.png is a colour image"):
        data.create_dataset(make_opt(label_dir=label_dir, image_dir=image_dir))[0]


# ---------------------------------------------------------------- synthetic data
def test_synthetic_generation_is_deterministic_and_atomic(tmp_path, monkeypatch):
    kw = dict(seed=3, num_train=5, num_val=2, size=32)
    a = synthetic.ensure_synthetic_dataset(str(tmp_path / "a"), **kw)
    b = synthetic.ensure_synthetic_dataset(str(tmp_path / "b"), **kw)
    for sub in ("train_label", "train_img", "train_inst", "val_label", "val_img", "val_inst"):
        names = sorted(os.listdir(os.path.join(a, sub)))
        assert len(names) == (5 if sub.startswith("train") else 2)
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(a, sub), os.path.join(b, sub), names, shallow=False)
        assert not mismatch and not errors
    c = synthetic.ensure_synthetic_dataset(str(tmp_path / "c"), **dict(kw, seed=4))
    assert not filecmp.cmp(os.path.join(a, "train_img", "train_00000.png"),
                           os.path.join(c, "train_img", "train_00000.png"), shallow=False)
    # an existing identical dataset is reused, a different one is refused
    assert synthetic.ensure_synthetic_dataset(a, **kw) == a
    with pytest.raises(ValueError, match="delete the folder"):
        synthetic.ensure_synthetic_dataset(a, **dict(kw, num_train=6))
    # a dataset written by an older generator version is ours to replace
    meta = os.path.join(b, synthetic.META_FILE)
    with open(meta) as f:
        text = f.read()
    with open(meta, "w") as f:
        f.write(text.replace(f'"version": {synthetic.GENERATOR_VERSION}', '"version": 0'))
    os.remove(os.path.join(b, "val_img", "val_00001.png"))
    synthetic.ensure_synthetic_dataset(b, **kw)
    assert filecmp.cmp(os.path.join(a, "val_img", "val_00001.png"), os.path.join(b, "val_img", "val_00001.png"),
                       shallow=False)
    # a generation killed half-way leaves neither the dataset nor a visible partial folder
    calls = []

    def failing(rng, size):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(rng, size)

    real = synthetic.generate_scene
    monkeypatch.setattr(synthetic, "generate_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        synthetic.ensure_synthetic_dataset(str(tmp_path / "d"), **kw)
    assert not (tmp_path / "d").exists()
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c"]


def test_synthetic_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a generated synthetic dataset"):
        synthetic.ensure_synthetic_dataset(str(tmp_path / "mine"), num_train=2, num_val=1, size=32)


def test_synthetic_dataset_samples(tmp_path):
    opt = make_opt(dataset_mode="synthetic", dataroot=str(tmp_path / "syn"), label_nc=synthetic.NUM_CLASSES,
                   no_instance=False, preprocess_mode="fixed", synthetic_seed=0, synthetic_num_train=6,
                   synthetic_num_val=3, synthetic_size=32, crop_size=32, load_size=32)
    ds = data.create_dataset(opt)
    assert len(ds) == 6
    sample = ds[0]
    assert sample["label"].shape == (1, 32, 32) and sample["label"].max() < synthetic.NUM_CLASSES
    ids = sample["instance"].unique()
    assert (ids >= 1000).any()  # 16-bit Cityscapes-style ids survive
    # every object instance lies inside one class: id // 1000 is its class
    objects = sample["instance"] > 0
    assert torch.equal(sample["instance"][objects] // 1000, sample["label"][objects])
    opt.phase, opt.isTrain = "test", False
    assert len(data.create_dataset(opt)) == 3  # test reads the val split


def _scores(pred, target):
    return scores_from_confusion(confusion_matrix(pred, target, synthetic.NUM_CLASSES))


def test_synthetic_segmenter_is_exact_on_real_images_and_low_on_others():
    rng = np.random.default_rng(0)
    scenes = [synthetic.generate_scene(rng, 64) for _ in range(12)]
    labels = torch.from_numpy(np.stack([s[0] for s in scenes]).astype(np.int64))
    images = torch.from_numpy(np.stack([s[2] for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
    segmenter = synthetic.SyntheticSegmenter()
    pred = segmenter.segment(images)
    assert pred.dtype == torch.int64 and pred.shape == labels.shape
    real = _scores(pred, labels)
    assert real["pixel_accuracy"] >= 0.99 and real["mIoU"] >= 0.99
    grey = _scores(segmenter.segment(torch.zeros_like(images)), labels)
    assert grey["pixel_accuracy"] < 0.6 and grey["mIoU"] < 0.1
    shuffled = _scores(segmenter.segment(images.roll(1, dims=0)), labels)  # right appearance, wrong layout
    assert shuffled["pixel_accuracy"] < 0.6 and shuffled["mIoU"] < 0.3
    # colour decides the class even with noise of the texture's size
    noisy = (images + torch.empty_like(images).uniform_(-0.1, 0.1, generator=torch.Generator().manual_seed(0)))
    assert _scores(segmenter.segment(noisy), labels)["pixel_accuracy"] >= 0.99
