"""Every dataset mode on a tiny fixture written in that dataset's real on-disk format."""

import argparse
import importlib.util
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASE = dict(phase="train", batchSize=1, serial_batches=True, nThreads=0, seed=0, no_flip=True, aspect_ratio=1.0,
            max_dataset_size=sys.maxsize, no_instance=False, contain_dontcare_label=False, label_nc=1,
            preprocess_mode="none", load_size=1, crop_size=1, display_winsize=1, device=torch.device("cpu"))


def dataset_opt(mode, is_train=True, args=(), **overrides):
    """Options as the options module builds them: base defaults, then the dataset's own setter."""
    parser = argparse.ArgumentParser()
    parser.set_defaults(**BASE)
    parser = data.get_option_setter(mode)(parser, is_train)
    opt = parser.parse_args(list(args))
    opt.dataset_mode, opt.isTrain = mode, is_train
    if not is_train:
        opt.phase = "test"
        opt.load_size = opt.crop_size
    for key, value in overrides.items():
        setattr(opt, key, value)
    return opt


def save(array, path, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def photo(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3)).astype(np.uint8)


def loader_items(opt):
    return list(data.create_dataloader(opt))


# ---------------------------------------------------------------- the official defaults per dataset
@pytest.mark.parametrize("mode,expected", [
    ("cityscapes", dict(label_nc=35, contain_dontcare_label=False, no_instance=False, preprocess_mode="fixed",
                        load_size=512, crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more", niter=100,
                        niter_decay=100, batchSize=8)),
    ("ade20k", dict(label_nc=150, contain_dontcare_label=True, no_instance=True, preprocess_mode="resize_and_crop",
                    load_size=286, crop_size=256, aspect_ratio=1.0, niter=100, niter_decay=100, batchSize=8)),
    ("coco", dict(label_nc=182, contain_dontcare_label=True, no_instance=False, preprocess_mode="resize_and_crop",
                  load_size=286, crop_size=256, niter=50, niter_decay=50, batchSize=32)),
    ("facades", dict(label_nc=13, contain_dontcare_label=False, no_instance=True, preprocess_mode="resize_and_crop",
                     load_size=1054, crop_size=1024, niter=50, niter_decay=50, batchSize=4)),
    ("celebamask_hq", dict(label_nc=19, contain_dontcare_label=False, no_instance=True,
                           preprocess_mode="resize_and_crop", load_size=542, crop_size=512, niter=50, niter_decay=50,
                           batchSize=16)),
    ("deepfashion", dict(label_nc=20, contain_dontcare_label=False, no_instance=True,
                         preprocess_mode="resize_and_crop", load_size=286, crop_size=256, niter=50, niter_decay=50,
                         batchSize=32)),
])
def test_training_defaults_follow_the_spec(mode, expected):
    """The data facts (dataset module) and the model's presets (models/pix2pix_presets.py) together."""
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    opt = TrainOptions().parse(["--dataset_mode", mode, "--gpu_ids", "-1"])
    assert {k: getattr(opt, k) for k in expected} == expected
    test_opt = TestOptions().parse(["--dataset_mode", mode, "--gpu_ids", "-1"])
    assert test_opt.batchSize == 1  # the training batch is not forced on test runs
    assert test_opt.num_upsampling_layers == opt.num_upsampling_layers  # the same generator is rebuilt


# ---------------------------------------------------------------- Cityscapes
def write_cityscapes(root, split, city, frames, size=(64, 32)):
    w, h = size
    for seq, frame in frames:
        stem = f"{city}_{seq:06d}_{frame:06d}"
        label = np.full((h, w), 7, np.uint8)                 # road
        label[:, w // 2:] = 26                                 # car
        label[0, 0] = 33
        inst = np.full((h, w), 7, np.uint16)                  # stuff: the label id
        inst[:, w // 2: 3 * w // 4] = 26001                    # two touching cars
        inst[:, 3 * w // 4:] = 26002
        gt = os.path.join(root, "gtFine", split, city)
        save(label, os.path.join(gt, f"{stem}_gtFine_labelIds.png"))
        save(inst, os.path.join(gt, f"{stem}_gtFine_instanceIds.png"))
        save(np.zeros((h, w, 3), np.uint8), os.path.join(gt, f"{stem}_gtFine_color.png"))  # must be ignored
        with open(os.path.join(gt, f"{stem}_gtFine_polygons.json"), "w") as f:
            f.write("{}")
        save(photo(h, w, seq + frame), os.path.join(root, "leftImg8bit", split, city, f"{stem}_leftImg8bit.png"))


def test_cityscapes_real_layout(tmp_path):
    write_cityscapes(tmp_path, "train", "aachen", [(0, 19), (0, 2)])
    write_cityscapes(tmp_path, "train", "bochum", [(10, 5)])
    write_cityscapes(tmp_path, "val", "frankfurt", [(1, 1)])
    assert np.array(Image.open(next((tmp_path / "gtFine/train/aachen").glob("*instanceIds.png")))).dtype == np.uint16
    opt = dataset_opt("cityscapes", dataroot=str(tmp_path), crop_size=32, batchSize=1)
    batches = loader_items(opt)
    stems = [os.path.basename(b["path"][0]) for b in batches]
    assert stems == ["aachen_000000_000002_leftImg8bit.png", "aachen_000000_000019_leftImg8bit.png",
                     "bochum_000010_000005_leftImg8bit.png"]  # natural order, pairs by city_seq_frame
    batch = batches[0]
    assert batch["label"].shape == (1, 1, 16, 32)  # fixed: crop_size wide, aspect 2
    assert set(batch["label"].unique().tolist()) <= {7, 26, 33}
    ids = set(batch["instance"].unique().tolist())
    assert {26001, 26002} <= ids and ids <= {7, 26001, 26002}  # 16-bit ids read as integers, never rescaled
    # the two cars touch: the border between ids 26001 and 26002 is still there for the edge map
    inst = batch["instance"][0, 0]
    assert ((inst[:, 1:] != inst[:, :-1]) & (inst[:, 1:] > 26000) & (inst[:, :-1] > 26000)).any()
    test = dataset_opt("cityscapes", is_train=False, dataroot=str(tmp_path), crop_size=32)
    assert [os.path.basename(p) for p in data.create_dataset(test).image_paths] == \
        ["frankfurt_000001_000001_leftImg8bit.png"]


def test_cityscapes_mismatched_frame_names_both(tmp_path):
    write_cityscapes(tmp_path, "train", "aachen", [(0, 19)])
    src = tmp_path / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    src.rename(src.with_name("aachen_000000_000020_leftImg8bit.png"))
    with pytest.raises(ValueError, match="aachen_000000_000019_gtFine_labelIds.png.*aachen_000000_000020_leftImg8bit"):
        data.create_dataset(dataset_opt("cityscapes", dataroot=str(tmp_path), crop_size=32))


def test_cityscapes_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gtFine/train does not exist; expected <city>/\*_gtFine_labelIds"):
        data.create_dataset(dataset_opt("cityscapes", dataroot=str(tmp_path)))


# ---------------------------------------------------------------- ADE20K
def write_ade(root):
    for split, folder, n in (("train", "training", 2), ("val", "validation", 1)):
        for i in range(1, n + 1):
            label = np.zeros((24, 32), np.uint8)
            label[:, 10:20] = 150
            label[:, 20:] = i
            save(label, os.path.join(root, "annotations", folder, f"ADE_{split}_{i:08d}.png"))
            save(photo(24, 32, i), os.path.join(root, "images", folder, f"ADE_{split}_{i:08d}.jpg"))


def test_ade20k_real_layout_and_label_mapping(tmp_path):
    write_ade(tmp_path)
    opt = dataset_opt("ade20k", dataroot=str(tmp_path), load_size=40, crop_size=32)
    ds = data.create_dataset(opt)
    assert [os.path.basename(p) for p in ds.image_paths] == ["ADE_train_00000001.jpg", "ADE_train_00000002.jpg"]
    label = ds[0]["label"]
    assert set(label.unique().tolist()) == {0, 1, 150}  # raw v -> channel v of 151 (the effective reference mapping)
    test = dataset_opt("ade20k", is_train=False, dataroot=str(tmp_path), crop_size=32)
    assert [os.path.basename(p) for p in data.create_dataset(test).label_paths] == ["ADE_val_00000001.png"]
    shifted = data.create_dataset(dataset_opt("ade20k", dataroot=str(tmp_path), load_size=40, crop_size=32,
                                              ade20k_label_shift=True))
    assert set(shifted[0]["label"].unique().tolist()) == {150, 0, 149}  # 0 -> unlabeled channel, v -> v-1


def test_ade20k_value_above_150_names_file(tmp_path):
    write_ade(tmp_path)
    bad = np.full((24, 32), 151, np.uint8)
    save(bad, os.path.join(tmp_path, "annotations", "training", "ADE_train_00000002.png"))
    ds = data.create_dataset(dataset_opt("ade20k", dataroot=str(tmp_path), load_size=40, crop_size=32))
    with pytest.raises(ValueError, match=r"ADE_train_00000002\.png contains value\(s\) 151"):
        ds[1]


# ---------------------------------------------------------------- COCO-Stuff
def test_coco_dontcare_and_8bit_instances(tmp_path):
    for stem in ("000000000009", "000000000025"):
        label = np.full((32, 32), 181, np.uint8)
        label[:8] = 255
        label[8:16] = 0
        inst = np.zeros((32, 32), np.uint8)
        inst[16:, :16] = 3
        inst[16:, 16:] = 4
        save(label, os.path.join(tmp_path, "train_label", f"{stem}.png"))
        save(inst, os.path.join(tmp_path, "train_inst", f"{stem}.png"))
        save(photo(32, 32), os.path.join(tmp_path, "train_img", f"{stem}.jpg"))
    opt = dataset_opt("coco", dataroot=str(tmp_path), load_size=32, crop_size=32)
    sample = data.create_dataset(opt)[0]
    assert sample["label"][0, 0, 0] == 182 and sample["label"][0, 10, 0] == 0 and sample["label"][0, 20, 0] == 181
    assert set(sample["instance"].unique().tolist()) == {0, 3, 4}
    assert sample["image"].shape == (3, 32, 32)
    os.remove(os.path.join(tmp_path, "train_inst", "000000000025.png"))
    with pytest.raises(ValueError, match="2 label files but 1 instance map files"):
        data.create_dataset(opt)


# ---------------------------------------------------------------- Facades
def test_facades_palette_labels(tmp_path):
    for split in ("train", "val"):
        label = Image.fromarray(np.tile(np.arange(1, 13, dtype=np.uint8), (16, 2))[:, :16], mode="P")
        label.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 3 % 256, 255 - i)])
        os.makedirs(tmp_path / f"{split}_label", exist_ok=True)
        label.save(tmp_path / f"{split}_label" / "cmp_b0001.png")
        save(photo(16, 16), os.path.join(tmp_path, f"{split}_img", "cmp_b0001.jpg"))
    opt = dataset_opt("facades", dataroot=str(tmp_path), load_size=16, crop_size=16)
    sample = data.create_dataset(opt)[0]
    assert sample["label"][0, 0].tolist() == list(range(1, 13)) + list(range(1, 5))  # palette indices, not colours
    test = data.create_dataset(dataset_opt("facades", is_train=False, dataroot=str(tmp_path), crop_size=16))
    assert "val_label" in test.label_paths[0]


# ---------------------------------------------------------------- CelebAMask-HQ
def load_prepare_script():
    spec = importlib.util.spec_from_file_location("prepare_celebamask_hq",
                                                  os.path.join(ROOT, "datasets", "prepare_celebamask_hq.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_celebamask_hq_prepare_script_and_dataset(tmp_path):
    src = tmp_path / "CelebAMask-HQ"
    for image_id in (0, 1, 2001):
        save(photo(64, 64, image_id), str(src / "CelebA-HQ-img" / f"{image_id}.jpg"))
        anno = src / "CelebAMask-HQ-mask-anno" / str(image_id // 2000)
        skin = np.zeros((32, 32, 3), np.uint8)
        skin[4:28, 4:28] = 255
        hair = np.zeros((32, 32, 3), np.uint8)
        hair[:10] = 255
        save(skin, str(anno / f"{image_id:05d}_skin.png"))
        save(hair, str(anno / f"{image_id:05d}_hair.png"))
        if image_id == 1:
            cloth = np.zeros((32, 32), np.uint8)
            cloth[28:] = 255
            save(cloth, str(anno / f"{image_id:05d}_cloth.png"))
    dst = tmp_path / "out"
    script = load_prepare_script()
    assert script.PARTS.index("hair") == 13 and script.PARTS.index("cloth") == 18 and len(script.PARTS) == 19
    assert script.main(["--src", str(src), "--dst", str(dst), "--test_count", "1", "--image_size", "48",
                        "--workers", "1"]) == 0
    assert sorted(os.listdir(dst / "train_label")) == ["0.png", "1.png"] and os.listdir(dst / "test_label") == \
        ["2001.png"]
    label = np.array(Image.open(dst / "train_label" / "1.png"))
    assert label[0, 16] == 13 and label[20, 16] == 1 and label[30, 16] == 18 and label[20, 1] == 0  # hair over skin
    assert Image.open(dst / "train_img" / "1.jpg").size == (48, 48)

    opt = dataset_opt("celebamask_hq", dataroot=str(dst), load_size=34, crop_size=32, batchSize=1)
    batch = next(iter(data.create_dataloader(opt)))
    assert batch["label"].shape == (1, 1, 32, 32) and batch["image"].shape == (1, 3, 32, 32)
    assert set(batch["label"].unique().tolist()) <= {0, 1, 13, 18}
    test = data.create_dataset(dataset_opt("celebamask_hq", is_train=False, dataroot=str(dst), crop_size=32))
    assert [os.path.basename(p) for p in test.image_paths] == ["2001.jpg"]  # no val split: test reads test_*


def test_celebamask_hq_prepare_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="CelebA-HQ-img does not exist"):
        load_prepare_script().main(["--src", str(tmp_path), "--dst", str(tmp_path / "o"), "--workers", "1"])


# ---------------------------------------------------------------- DeepFashion and custom
def test_deepfashion_folders(tmp_path):
    for split in ("train", "test"):
        for stem in ("MEN_Denim_id_00000080_01_1_front", "WOMEN_Tees_id_00000001_02_7_additional"):
            save(np.full((32, 16), 19, np.uint8), os.path.join(tmp_path, f"{split}_label", f"{stem}.png"))
            save(photo(32, 16), os.path.join(tmp_path, f"{split}_img", f"{stem}.jpg"))
    opt = dataset_opt("deepfashion", dataroot=str(tmp_path), load_size=16, crop_size=16)
    sample = data.create_dataset(opt)[0]
    assert sample["label"].shape == (1, 16, 16) and sample["label"].unique().tolist() == [19]
    explicit = dataset_opt("deepfashion", dataroot="/nonexistent", label_dir=str(tmp_path / "test_label"),
                           image_dir=str(tmp_path / "test_img"), load_size=16, crop_size=16)
    assert all("test_label" in p for p in data.create_dataset(explicit).label_paths)


def test_custom_with_instance_dir(tmp_path):
    for stem in ("a", "b"):
        save(np.ones((16, 16), np.uint8), str(tmp_path / "lab" / f"{stem}.png"))
        save(photo(16, 16), str(tmp_path / "img" / f"{stem}.png"))
        save(np.full((16, 16), 40000, np.uint16), str(tmp_path / "ins" / f"{stem}.png"))
    args = ["--label_dir", str(tmp_path / "lab"), "--image_dir", str(tmp_path / "img"), "--instance_dir",
            str(tmp_path / "ins")]
    opt = dataset_opt("custom", args=args, load_size=16, crop_size=16)
    assert opt.label_nc == 13
    sample = data.create_dataset(opt)[1]
    assert sample["instance"].unique().tolist() == [40000] and sample["label"].unique().tolist() == [1]



def test_custom_requires_its_folders(capsys):
    from options.train_options import TrainOptions

    with pytest.raises(SystemExit) as exit_info:  # --label_dir and --image_dir are required for custom
        TrainOptions().parse(["--dataset_mode", "custom", "--image_dir", "photos"])
    assert exit_info.value.code == 2
    assert "error: --label_dir: required by --dataset_mode custom" in capsys.readouterr().err
