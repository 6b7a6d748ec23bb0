"""The data check before a run (data.check_dataset): every bad file reported at once, before anything
is built or written; the facts cached by (path, size, mtime); the aspect-ratio warning."""
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data
import test as test_py
import train
from conftest import build_options
from data import data_check
from util.errors import DataError

LABEL_NC = 5


def write_scenes(root, n=8, size=(64, 48), bad_value_at=4, truncated_at=6):
    """A custom dataset in the real formats: 8-bit label PNGs ``labels/scene_<i>.png`` (values 0..4,
    plus value 9 in scene ``bad_value_at``) and JPEG photos ``images/scene_<i>.jpg`` (scene
    ``truncated_at`` cut in half, as by an interrupted copy)."""
    w, h = size
    labels, images = root / "labels", root / "images"
    labels.mkdir(parents=True)
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        label = np.kron(rng.integers(0, LABEL_NC, (h // 8, w // 8)), np.ones((8, 8))).astype(np.uint8)
        if i == bad_value_at:
            label[0, 0] = 9
        Image.fromarray(label).save(labels / f"scene_{i:03d}.png")
        photo = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        Image.fromarray(photo).save(images / f"scene_{i:03d}.jpg", quality=90)
    if truncated_at is not None:
        path = images / f"scene_{truncated_at:03d}.jpg"
        content = path.read_bytes()
        path.write_bytes(content[: len(content) // 2])
    return labels, images


def custom_values(root, labels, images, **extra):
    return dict(dataset_mode="custom", dataroot=str(root), label_dir=str(labels), image_dir=str(images),
                label_nc=LABEL_NC, no_instance=True, **extra)


def as_argv(values):
    argv = []
    for name, value in values.items():
        argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return argv


@pytest.fixture
def count_reads(monkeypatch):
    """Counts the files the check reads (calls of data_check.inspect_file)."""
    calls = []
    real = data_check.inspect_file

    def counting(path, kind):
        calls.append((path, kind))
        return real(path, kind)

    monkeypatch.setattr(data_check, "inspect_file", counting)
    return calls


# ------------------------------------------------------------------------------------------------
# what a PIL read catches (the measurement behind inspect_file)

def test_truncated_jpeg_passes_verify_and_fails_the_reduced_decode(tmp_path):
    _, images = write_scenes(tmp_path, n=7)
    truncated, intact = images / "scene_006.jpg", images / "scene_005.jpg"
    with Image.open(truncated) as img:
        img.verify()  # checks nothing for JPEG: why the check decodes JPEGs
    found = data_check.inspect_file(str(truncated), "image")
    assert found["error"].startswith(f"cannot read image {truncated}: ")
    assert "truncated" in found["error"]
    assert data_check.inspect_file(str(intact), "image") == {"size": [64, 48]}


def test_truncated_png_photo_and_instance_map_fail_verify(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (40, 50, 3)).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(np.full((40, 50), 26001, np.uint16)).save(tmp_path / "inst.png")
    assert data_check.inspect_file(str(tmp_path / "photo.png"), "image") == {"size": [50, 40]}
    assert data_check.inspect_file(str(tmp_path / "inst.png"), "instance") == {"size": [50, 40]}
    for name, kind, what in (("photo.png", "image", "image"), ("inst.png", "instance", "instance map")):
        path = tmp_path / name
        content = path.read_bytes()
        path.write_bytes(content[: len(content) - 20])  # IDAT end and IEND missing
        assert data_check.inspect_file(str(path), kind)["error"].startswith(f"cannot read {what} {path}: ")


def test_label_values_of_8_and_16_bit_maps(tmp_path):
    label = np.zeros((6, 7), np.uint8)
    label[1, 2], label[3, 4] = 3, 255
    Image.fromarray(label).save(tmp_path / "l8.png")
    Image.fromarray(label.astype(np.uint16) * 200).save(tmp_path / "l16.png")
    assert data_check.inspect_file(str(tmp_path / "l8.png"), "label") == {"size": [7, 6], "values": [0, 3, 255]}
    assert data_check.inspect_file(str(tmp_path / "l16.png"), "label")["values"] == [0, 600, 51000]


# ------------------------------------------------------------------------------------------------
# every bad file at once, before anything is built or written

def test_train_reports_every_bad_file_at_once_and_writes_nothing(tmp_path, monkeypatch):
    labels, images = write_scenes(tmp_path / "data")
    built = []
    monkeypatch.setattr(train.models, "create_model", lambda opt: built.append(opt))
    ckpt_dir = tmp_path / "checkpoints"
    argv = as_argv(custom_values(tmp_path / "data", labels, images, checkpoints_dir=ckpt_dir, name="run",
                                 gpu_ids=-1, no_vgg_loss=True))
    with pytest.raises(DataError) as err:
        train.main(argv)
    bad_label, bad_photo = labels / "scene_004.png", images / "scene_006.jpg"
    assert [p for p, _ in err.value.problems] == [str(bad_label), str(bad_photo)]
    text = str(err.value)
    assert text.startswith("data check: 2 of 16 files of the train split (--dataset_mode custom) cannot be used")
    assert (f"label map {bad_label} contains value(s) 9 outside the valid range [0, 4] for --label_nc 5"
            in text)
    assert f"cannot read image {bad_photo}: image file is truncated" in text
    assert built == []  # no network constructed
    assert not ckpt_dir.exists()


def test_test_py_stops_before_its_results_folder(tmp_path):
    labels, images = write_scenes(tmp_path / "data")
    results = tmp_path / "results"
    argv = as_argv(custom_values(tmp_path / "data", labels, images, checkpoints_dir=tmp_path / "ck",
                                 results_dir=results, name="run", gpu_ids=-1))
    # A weight file is there (the cheaper check, run first, passes): the data check is what stops it.
    (tmp_path / "ck" / "run").mkdir(parents=True)
    (tmp_path / "ck" / "run" / "latest_net_G.pth").write_bytes(b"not read")
    with pytest.raises(DataError, match="2 of 16 files of the test split"):
        test_py.main(argv)
    assert not results.exists()


def test_loader_raises_the_same_messages(tmp_path):
    """Defence in depth: with --skip_data_check nothing is read up front, and the loader stops at the
    bad files with the text the check reports."""
    labels, images = write_scenes(tmp_path / "data")
    values = custom_values(tmp_path / "data", labels, images)
    with pytest.raises(DataError) as err:
        data.check_dataset(build_options(True, **values))
    reported = [message for _, message in err.value.problems]
    opt = build_options(True, skip_data_check=True, **values)
    data.check_dataset(opt)  # quiet
    dataset = data.create_dataset(opt)
    raised = []
    for index in (4, 6):
        with pytest.raises((ValueError, OSError)) as loader_err:
            dataset[index]
        raised.append(str(loader_err.value))
    assert raised == reported


def test_sizes_that_do_not_fit_are_reported(tmp_path):
    labels, images = write_scenes(tmp_path / "data", n=3, bad_value_at=None, truncated_at=None)
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(images / "scene_001.jpg")
    values = custom_values(tmp_path / "data", labels, images, preprocess_mode="none", load_size=32, crop_size=32)
    with pytest.raises(DataError) as err:
        data.check_dataset(build_options(True, **values))
    assert err.value.problems == [(str(images / "scene_001.jpg"),
                                   f"image {images / 'scene_001.jpg'} is 64x40 but its label map "
                                   f"{labels / 'scene_001.png'} is 64x48; --preprocess_mode none needs equal sizes")]
    # Too small for the crop: every file named, with the loader's text.
    values.update(preprocess_mode="crop", crop_size=64, load_size=64)
    with pytest.raises(DataError) as err:
        data.check_dataset(build_options(True, **values))
    assert [p for p, _ in err.value.problems] == [str(labels / "scene_000.png"), str(labels / "scene_001.png"),
                                                  str(images / "scene_001.jpg"), str(labels / "scene_002.png")]
    assert err.value.problems[0][1] == (f"label map {labels / 'scene_000.png'}: --preprocess_mode crop: a 64x48 image "
                                        "is smaller than --crop_size 64; raise --load_size or lower --crop_size")


def test_the_val_split_of_a_training_run_is_checked(tmp_path):
    root = tmp_path / "synthetic"
    opt = build_options(True, dataroot=root, synthetic_num_train=4, synthetic_num_val=2)
    data.check_dataset(opt)  # generates the data; all fine
    bad = root / "val_label" / "val_00001.png"
    Image.fromarray(np.full((64, 64), 8, np.uint8)).save(bad)
    with pytest.raises(DataError) as err:
        data.check_dataset(opt)
    assert err.value.problems == [(str(bad), f"label map {bad} contains value(s) 8 outside the valid range "
                                             "[0, 7] for --label_nc 8")]
    assert "of the val split (evaluated during training)" in str(err.value)


def test_many_problems_go_to_a_report_file(tmp_path, monkeypatch):
    labels, images = write_scenes(tmp_path / "data")
    monkeypatch.setattr(data_check, "MAX_LISTED", 1)
    with pytest.raises(DataError) as err:
        data.check_dataset(build_options(True, **custom_values(tmp_path / "data", labels, images)))
    report = tmp_path / "data" / ".dagan_data_check_problems.txt"
    assert f"... and 1 more (all 2 are listed in {report})" in str(err.value)
    assert report.read_text().splitlines() == [m for _, m in err.value.problems]


# ------------------------------------------------------------------------------------------------
# the cache

def test_second_start_reads_no_file(tmp_path, count_reads):
    labels, images = write_scenes(tmp_path / "data")
    values = custom_values(tmp_path / "data", labels, images)
    for _ in range(2):
        with pytest.raises(DataError):
            data.check_dataset(build_options(True, **values))
    assert len(count_reads) == 16  # the first start read every file once, the second none
    cache = tmp_path / "data" / data_check.CACHE_NAME
    assert len(json.loads(cache.read_text())["files"]) == 16

    # Facts are cached, not verdicts: with 10 classes the value 9 is valid, still nothing read.
    with pytest.raises(DataError) as err:
        data.check_dataset(build_options(True, **{**values, "label_nc": 10}))
    assert [os.path.basename(p) for p, _ in err.value.problems] == ["scene_006.jpg"]
    assert len(count_reads) == 16

    # A replaced file (new size and mtime) is read again, only it.
    photo = images / "scene_006.jpg"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(photo)
    os.utime(photo, ns=(1, 1))
    data.check_dataset(build_options(True, **{**values, "label_nc": 10}))
    assert count_reads[16:] == [(str(photo), "image")]


def test_cache_goes_to_the_user_cache_dir_when_the_data_folder_is_read_only(tmp_path, monkeypatch, count_reads):
    labels, images = write_scenes(tmp_path / "data", bad_value_at=None, truncated_at=None)
    monkeypatch.setattr(data_check, "_writable_dir", lambda folder: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    opt = build_options(True, **custom_values(tmp_path / "data", labels, images))
    data.check_dataset(opt)
    data.check_dataset(opt)
    assert len(count_reads) == 16
    assert not (tmp_path / "data" / data_check.CACHE_NAME).exists()
    cached = list((tmp_path / "xdg" / "dagan" / "data_check").glob("*.json"))
    assert cached == [Path(data_check.cache_path(str(tmp_path / "data"), [str(labels / "scene_000.png")]))]


def test_skip_data_check_reads_nothing(tmp_path, count_reads):
    labels, images = write_scenes(tmp_path / "data")
    data.check_dataset(build_options(True, skip_data_check=True, **custom_values(tmp_path / "data", labels, images)))
    assert count_reads == []
    assert not (tmp_path / "data" / data_check.CACHE_NAME).exists()


# ------------------------------------------------------------------------------------------------
# the aspect-ratio warning

def test_aspect_ratio_warning_once_with_an_example(tmp_path, caplog):
    labels, images = write_scenes(tmp_path / "data", bad_value_at=None, truncated_at=None)  # 64x48 photos
    values = custom_values(tmp_path / "data", labels, images)
    with caplog.at_level(logging.WARNING, logger="data.data_check"):
        data.check_dataset(build_options(True, **values))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"8 of 8 images have another aspect ratio than --aspect_ratio 1, e.g. "
                                  f"{images / 'scene_000.jpg'}: 64x48 (aspect 1.33); --preprocess_mode "
                                  "resize_and_crop resizes it to 286x286 (distorting it) and crops 256x256")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data.data_check"):
        data.check_dataset(build_options(True, preprocess_mode="fixed", aspect_ratio=4 / 3, crop_size=128,
                                         **values))
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
