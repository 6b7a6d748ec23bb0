"""util/util.py: palettes, tensor conversions, atomic image saving, attention plots."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from util import util


def test_cityscapes_official_colours():
    label = torch.tensor([[7, 8, 11], [24, 26, 33]])  # road, sidewalk, building / person, car, bicycle
    rgb = util.tensor2label(label, 35, dataset_mode="cityscapes")
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [128, 64, 128]
    assert rgb[0, 1].tolist() == [244, 35, 232]
    assert rgb[0, 2].tolist() == [70, 70, 70]
    assert rgb[1, 0].tolist() == [220, 20, 60]
    assert rgb[1, 1].tolist() == [0, 0, 142]
    assert rgb[1, 2].tolist() == [119, 11, 32]
    assert util.cityscapes_palette()[23].tolist() == [70, 130, 180]  # sky


def test_generic_palette_is_pascal_and_distinct():
    p = util.label_palette(256, "ade20k")
    assert p[0].tolist() == [0, 0, 0]
    assert p[1].tolist() == [128, 0, 0]
    assert p[15].tolist() == [192, 128, 128]  # VOC 'person'
    assert p[20].tolist() == [0, 64, 128]  # VOC 'tvmonitor'
    assert len({tuple(c) for c in p}) == 256
    assert np.array_equal(util.label_palette(256, "coco"), p)


def test_tensor2label_onehot_batch_and_dontcare():
    label = torch.tensor([[0, 1], [2, 3]])
    onehot = torch.zeros(1, 4, 2, 2).scatter_(1, label[None, None], 1.0)
    a = util.tensor2label(onehot, 4)
    b = util.tensor2label(label[None, None], 4)
    assert np.array_equal(a, b)
    c = util.tensor2label(label, 4, dontcare_index=3)
    assert c[1, 1].tolist() == [0, 0, 0] and b[1, 1].tolist() != [0, 0, 0]
    with pytest.raises(ValueError, match="label values"):
        util.tensor2label(torch.tensor([[5]]), 4)


def test_tensor2im_range_and_grey():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).view(1, 1, 4).expand(3, 1, 4)
    im = util.tensor2im(x[None])
    assert im.shape == (1, 4, 3) and im.dtype == np.uint8
    assert im[0, :, 0].tolist() == [0, 128, 255, 255]
    grey = util.tensor2im(torch.zeros(1, 2, 2))
    assert grey.shape == (2, 2, 3)
    with pytest.raises(ValueError):
        util.tensor2im(torch.zeros(2, 3, 4, 4))


def test_save_image_roundtrip_and_atomic(tmp_path, monkeypatch):
    arr = np.random.RandomState(0).randint(0, 256, (5, 7, 3)).astype(np.uint8)
    path = tmp_path / "sub" / "x.png"
    util.save_image(arr, path)
    assert np.array_equal(np.asarray(Image.open(path)), arr)

    def broken_replace(src, dst):
        raise OSError("boom")

    monkeypatch.setattr(util.os, "replace", broken_replace)
    with pytest.raises(OSError, match="boom"):
        util.save_image(np.zeros_like(arr), path)
    monkeypatch.undo()
    assert np.array_equal(np.asarray(Image.open(path)), arr)
    assert os.listdir(tmp_path / "sub") == ["x.png"]
    with pytest.raises(ValueError, match="uint8"):
        util.save_image(arr.astype(np.float32), tmp_path / "y.png")


def test_natural_sort_key():
    names = ["img10.png", "img2.png", "Img1.png"]
    assert sorted(names, key=util.natural_sort_key) == ["Img1.png", "img2.png", "img10.png"]


def test_attention_heatmap_and_bar_chart():
    a = torch.tensor([[0.0, 1.0], [0.5, 0.25]]).view(1, 1, 2, 2)
    h = util.attention_heatmap(a)
    assert h.shape == (2, 2, 3)
    assert h[0, 0].tolist() == [0, 0, 0] and h[0, 1].tolist() == [255, 255, 255]
    assert h[1, 0].sum() > h[1, 1].sum()  # monotone brightness
    chart = util.bar_chart(torch.tensor([0.0, 1.0, 0.5]), height=20, bar_width=4)
    assert chart.shape == (20, 12, 3)
    bar_colour = np.array([40, 90, 200])
    column_heights = [(chart[:, 4 * i] == bar_colour).all(axis=1).sum() for i in range(3)]
    assert column_heights[1] > column_heights[2] > column_heights[0]


def test_saved_files_get_umask_permissions(tmp_path):
    """Not owner-only (mkstemp's 0600): result pages and images must be servable."""
    from util.util import write_text_atomic

    old = os.umask(0o022)
    try:
        util.save_image(np.zeros((2, 2, 3), np.uint8), tmp_path / "a.png")
        write_text_atomic(tmp_path / "a.html", "x")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "a.png").st_mode & 0o777) == 0o644
    assert (os.stat(tmp_path / "a.html").st_mode & 0o777) == 0o644
