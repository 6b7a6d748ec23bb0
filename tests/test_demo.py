"""The painting demo (demo.py, util/demo/): label values and names of the datasets, the engine's input
checks, label-map uploads, generation against the model's own inference, seeds (OASIS' per-class noise,
a VAE's z), the generation queue, the HTTP routes in-process and demo.py's command-line errors.

Expected values come from plain computations written here: the PASCAL VOC colour map by its bit rule,
label maps decoded from base64 / PNG with numpy and PIL, images quantised as round((x + 1) / 2 * 255),
noise vectors drawn with ``torch.randn`` from a seeded ``torch.Generator``, names typed from the
datasets' published lists.
"""

import base64
import http.client
import io
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

import data
import demo
import models
from conftest import build_options, demo_engine
from data import synthetic
from util import util
from util.demo.engine import DemoInputError, GenerationQueue
from util.demo.server import DemoServer

SIDE = 32  # the synthetic DAGAN of demo_engine paints 32x32 maps of 8 values
SYNTHETIC_NAMES = ("background", "red", "green", "blue", "yellow", "magenta", "cyan", "white")
# the synthetic scenes' class colours (corners of the RGB cube 30..225, data/synthetic.py), its palette
SYNTHETIC_COLOURS = ((30, 30, 30), (225, 30, 30), (30, 225, 30), (30, 30, 225), (225, 225, 30), (225, 30, 225),
                     (30, 225, 225), (225, 225, 225))


# ------------------------------------------------------------------------------------------------
# plain helpers

def voc_colour(index):
    """The PASCAL VOC colour map: bits 0, 1, 2 of the index go to the top bit of R, G, B, the next
    three bits to the next colour bit, and so on."""
    rgb = [0, 0, 0]
    for bit in range(7, -1, -1):
        for channel in range(3):
            rgb[channel] |= ((index >> channel) & 1) << bit
        index >>= 3
    return tuple(rgb)


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode(labels):
    return base64.b64encode(np.ascontiguousarray(labels, dtype=np.uint8).tobytes()).decode("ascii")


def decode_b64_labels(text, side=SIDE):
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(side, side).astype(np.int64)


def decode_data_url(url):
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix), url[:40]
    content = base64.b64decode(url[len(prefix):])
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(content)))


def quantise(image):
    """[3,H,W] in [-1, 1] -> uint8 [H,W,3], nearest of (x + 1) / 2 * 255."""
    x = image.detach().double().clamp(-1, 1).numpy()
    return np.rint((x + 1) / 2 * 255).astype(np.uint8).transpose(1, 2, 0)


def painting(side=SIDE):
    """A label map with every synthetic value 0..7 in bands and boxes."""
    labels = np.zeros((side, side), np.int64)
    labels[:, 8:16] = 1
    labels[4:12, 20:30] = 2
    labels[16:24, :] = 3
    labels[26:30, 2:10] = 4
    labels[26:30, 12:20] = 5
    labels[26:30, 22:26] = 6
    labels[30:, 26:] = 7
    return labels


def plain_batch(labels, side=SIDE):
    label = torch.from_numpy(labels)[None, None].long()
    return {"label": label, "instance": label.clone(), "image": torch.zeros(1, 3, side, side), "path": ["p"]}


def payload(labels, side=SIDE, **extra):
    return {"width": side, "height": side, "labels": encode(labels), **extra}


def wait_until(condition, what, timeout=20.0):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def lively_dagan(**values):
    """The synthetic DAGAN of demo_engine, initialised so that its images depend on the label map.

    At the default initialisation (variance 0.02) an untrained generator makes a useless picture: with
    spectral norm (whose power iteration never ran) every pixel saturates at -1 or 1 whatever the map,
    without it the output is ~1e-8 (one grey). Without spectral norm and with variance 1 the pixels
    spread over the whole range and follow the map, so comparing images tests something."""
    return demo_engine(**{"norm_G": "spadesyncbatch3x3", "init_variance": 1.0, **values})


def oasis_engine(lively=False, **values):
    """A tiny OASIS on the synthetic data at 32x32 (6 blocks: a 1x1 latent grid), noise of 8 values.
    ``lively``: no spectral norm and every conv weight re-drawn (xavier, gain 1), so that the image
    depends on the map and the noise (the official initialisation, gain 0.02, makes a flat or saturated
    picture when untrained)."""
    engine = demo_engine(**{"model": "oasis", "ngf": None, "crop_size": SIDE, "load_size": SIDE, "channels_G": 2,
                            "z_dim": 8, "spade_hidden": 8, "no_spectral_norm": lively, **values})
    if lively:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for module in engine.model.netG.modules():
                if isinstance(module, torch.nn.Conv2d):
                    fan_in, fan_out = module.weight[0].numel(), module.weight[:, 0].numel()
                    std = (2.0 / (fan_in + fan_out)) ** 0.5
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
    return engine


def spy_on_z(monkeypatch, net):
    """Record the z each call of ``net`` receives, as a per-pixel map [B,z_dim,H,W]."""
    seen = []
    forward = net.forward

    def spy(semantics, z=None, class_ids=None):
        assert z is not None, "the generator drew its own noise"
        b, _, h, w = semantics.shape
        seen.append((z.view(b, -1, 1, 1).expand(b, -1, h, w) if z.dim() == 2 else z).clone())
        return forward(semantics, z=z, class_ids=class_ids)

    monkeypatch.setattr(net, "forward", spy)
    return seen


def noise_vector(seed, dim=8):
    return torch.randn(1, dim, generator=torch.Generator().manual_seed(seed))


def noise_map(labels, seed, class_seeds=None, dim=8, channels=None):
    """The expected per-pixel z: ``seed``'s vector, the vector of ``class_seeds[v]`` where the OASIS
    channel (``channels`` maps label values to channels; default the value itself) is that of v."""
    channels = channels or (lambda v: v)
    ids = np.vectorize(channels)(labels)
    h, w = labels.shape
    z = noise_vector(seed, dim).view(1, dim, 1, 1).expand(1, dim, h, w).clone()
    for value, s in (class_seeds or {}).items():
        inside = torch.from_numpy(ids == channels(value))
        z[0][:, inside] = noise_vector(s, dim)[0][:, None]
    return z


# ------------------------------------------------------------------------------------------------
# 1. label values and names

def dataset_options(mode, tmp_path, **values):
    return build_options(False, dataset_mode=mode, dataroot=str(tmp_path), no_opt_file=True, **values)


def test_coco_label_values_and_names(tmp_path):
    opt = dataset_options("coco", tmp_path)
    cls = data.find_dataset_using_name("coco")
    values = cls.label_values(opt, np.array([[0, 1, 5], [100, 181, 255]], np.int64))
    assert values.tolist() == [[0, 1, 5], [100, 181, 182]]
    assert cls.label_values(opt, np.arange(182)).tolist() == list(range(182))
    names = cls.class_names(opt)
    assert len(names) == 183
    assert (names[0], names[1], names[181], names[182]) == ("person", "bicycle", "wood", "unlabeled")


def test_ade20k_label_values_and_names_raw_and_shifted(tmp_path):
    cls = data.find_dataset_using_name("ade20k")
    raw = dataset_options("ade20k", tmp_path)
    names = cls.class_names(raw)
    assert len(names) == 151
    assert (names[0], names[1], names[150]) == ("other objects", "wall", "flag")
    assert cls.label_values(raw, np.array([0, 1, 75, 150])).tolist() == [0, 1, 75, 150]

    shifted = dataset_options("ade20k", tmp_path, ade20k_label_shift=True)
    names = cls.class_names(shifted)
    assert len(names) == 151
    assert (names[0], names[149], names[150]) == ("wall", "flag", "other objects")
    assert cls.label_values(shifted, np.array([0, 1, 2, 75, 150])).tolist() == [150, 0, 1, 74, 149]


def test_cityscapes_and_synthetic_names(tmp_path):
    city = dataset_options("cityscapes", tmp_path)
    names = data.find_dataset_using_name("cityscapes").class_names(city)
    assert len(names) == 35
    assert (names[0], names[7], names[24], names[26]) == ("unlabeled", "road", "person", "car")

    synth = dataset_options("synthetic", tmp_path)
    names = data.find_dataset_using_name("synthetic").class_names(synth)
    assert tuple(names) == tuple(synthetic.CLASS_NAMES) == SYNTHETIC_NAMES


def test_label_colouring_blacks_the_unknown_value_only(tmp_path):
    ade = util.label_colours(**util.label_colouring(dataset_options("ade20k", tmp_path)))
    assert ade.shape == (151, 3)
    assert tuple(ade[0]) == (0, 0, 0)
    assert voc_colour(150) != (0, 0, 0)
    assert tuple(ade[150]) == voc_colour(150)  # 'flag' is a class: its own colour
    assert tuple(ade[1]) == voc_colour(1)

    shifted = util.label_colours(**util.label_colouring(dataset_options("ade20k", tmp_path, ade20k_label_shift=True)))
    assert tuple(shifted[150]) == (0, 0, 0)  # 'other objects' after the shift
    assert tuple(shifted[149]) == voc_colour(149)
    assert tuple(shifted[0]) == voc_colour(151)  # 'wall': black is the unknown value's alone

    coco = util.label_colours(**util.label_colouring(dataset_options("coco", tmp_path)))
    assert coco.shape == (183, 3)
    assert tuple(coco[182]) == (0, 0, 0)
    assert voc_colour(182) != (0, 0, 0)
    # black is the unknown value's alone: value 0 ('person', black in the VOC map) takes index 183's colour
    assert tuple(coco[181]) == voc_colour(181) and voc_colour(0) == (0, 0, 0) and tuple(coco[0]) == voc_colour(183)

    synth = util.label_colours(**util.label_colouring(dataset_options("synthetic", tmp_path)))
    assert [tuple(int(v) for v in c) for c in synth] == list(SYNTHETIC_COLOURS)  # no unknown value

    city = util.label_colours(**util.label_colouring(dataset_options("cityscapes", tmp_path)))
    assert tuple(city[7]) == (128, 64, 128) and tuple(city[26]) == (0, 0, 142)  # the official colours


# ------------------------------------------------------------------------------------------------
# 2. the engine's input checks

def test_engine_takes_the_size_and_palette_of_the_model():
    engine = demo_engine()
    assert (engine.width, engine.height, engine.num_values) == (SIDE, SIDE, 8)
    assert engine.names == list(SYNTHETIC_NAMES)
    assert [tuple(int(v) for v in c) for c in engine.palette] == list(SYNTHETIC_COLOURS)
    info = engine.info()
    assert (info["width"], info["height"], info["bytes_per_value"]) == (SIDE, SIDE, 1)
    assert [(c["value"], c["name"], tuple(c["color"])) for c in info["classes"]] == [
        (i, SYNTHETIC_NAMES[i], SYNTHETIC_COLOURS[i]) for i in range(8)]
    assert info["noise"] is False and info["style_image"] is False and info["resample_class"] is False


@pytest.mark.parametrize("change, fragments", [
    ({"width": 16}, ["16x32", "32x32"]),
    ({"height": 64}, ["32x64", "32x32"]),
    ({"labels": "not base64 !!"}, ["base64"]),
    ({"labels": base64.b64encode(bytes(100)).decode()}, ["100 bytes", "1024"]),
    ({"labels": None}, ["labels"]),
])
def test_generate_rejects_a_malformed_label_map(change, fragments):
    engine = demo_engine()
    request = {**payload(painting()), **change}
    with pytest.raises(DemoInputError) as err:
        engine.generate(request)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    assert engine.generations == 0 and len(engine.received) == 0


def test_generate_names_the_first_bad_label_value_and_its_pixel():
    engine = demo_engine()
    labels = painting()
    labels[10, 5] = 8  # later in row-major order
    labels[3, 20] = 9  # the first bad pixel: x=20, y=3
    with pytest.raises(DemoInputError) as err:
        engine.generate(payload(labels))
    message = str(err.value)
    assert "8, 9" in message and "2 pixels" in message, message
    assert "x=20, y=3" in message, message
    assert "0..7" in message, message
    assert engine.generations == 0


def test_class_seeds_need_a_model_that_resamples_and_a_style_image_needs_a_vae():
    engine = demo_engine()
    with pytest.raises(DemoInputError, match="cannot re-sample"):
        engine.generate(payload(painting(), class_seeds={"1": 5}))
    style = "data:image/png;base64," + base64.b64encode(png(np.zeros((SIDE, SIDE, 3), np.uint8))).decode()
    with pytest.raises(DemoInputError, match="no style image"):
        engine.generate(payload(painting(), style=style))
    oasis = oasis_engine()
    with pytest.raises(DemoInputError, match="not a label value"):
        oasis.generate(payload(painting(), class_seeds={"8": 5}))
    with pytest.raises(DemoInputError, match="integer"):
        oasis.generate(payload(painting(), seed="12"))
    assert engine.generations == 0 and oasis.generations == 0


# ------------------------------------------------------------------------------------------------
# 3. uploads

def test_upload_of_a_grey_png_of_ids_comes_back_exactly():
    engine = demo_engine()
    labels = np.random.default_rng(1).integers(0, 8, (SIDE, SIDE))
    out = engine.decode_upload(png(labels.astype(np.uint8)), "ids.png")
    assert out["notes"] == []
    assert np.array_equal(decode_b64_labels(out["labels"]), labels)


def test_upload_of_palette_colours_with_noise_snaps_back():
    engine = demo_engine()
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 8, (SIDE, SIDE))
    palette = np.array(SYNTHETIC_COLOURS, np.int64)
    noisy = np.clip(palette[labels] + rng.integers(-6, 7, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
    assert not np.array_equal(noisy, palette[labels])
    out = engine.decode_upload(png(noisy), "colours.png")
    assert np.array_equal(decode_b64_labels(out["labels"]), labels)
    # RGBA holds colours too
    rgba = np.concatenate([noisy, np.full((SIDE, SIDE, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(decode_b64_labels(engine.decode_upload(png(rgba), "a.png")["labels"]), labels)


def test_upload_of_an_off_palette_colour_names_it_and_its_pixel():
    engine = demo_engine()
    palette = np.array(SYNTHETIC_COLOURS, np.float64)
    off = np.array([255, 0, 255])
    assert np.linalg.norm(palette - off, axis=1).min() > 24
    rgb = np.array(SYNTHETIC_COLOURS[3], np.uint8)[None, None].repeat(SIDE, 0).repeat(SIDE, 1)
    rgb[4, 7] = off  # the first off pixel in row-major order: x=7, y=4
    rgb[20, 1] = (128, 128, 128)
    with pytest.raises(DemoInputError) as err:
        engine.decode_upload(png(rgb), "bad.png")
    message = str(err.value)
    assert "(255, 0, 255)" in message and "x=7, y=4" in message and "bad.png" in message, message


def test_upload_of_another_size_is_resized_nearest_with_a_note():
    engine = demo_engine()
    blocks = np.random.default_rng(3).integers(0, 8, (SIDE, SIDE))
    big = blocks.repeat(2, axis=0).repeat(2, axis=1)  # 64x64 of 2x2 blocks
    out = engine.decode_upload(png(big.astype(np.uint8)), "big.png")
    assert np.array_equal(decode_b64_labels(out["labels"]), blocks)
    assert len(out["notes"]) == 1 and "64x64" in out["notes"][0] and "32x32" in out["notes"][0], out["notes"]
    # any size: nearest neighbour by pixel centres, source index floor((i + 0.5) * old / new)
    ids = np.random.default_rng(4).integers(0, 8, (40, 48))
    rows = np.floor((np.arange(SIDE) + 0.5) * 40 / SIDE).astype(int)
    cols = np.floor((np.arange(SIDE) + 0.5) * 48 / SIDE).astype(int)
    out = engine.decode_upload(png(ids.astype(np.uint8)), "odd.png")
    assert np.array_equal(decode_b64_labels(out["labels"]), ids[rows][:, cols])
    assert "48x40" in out["notes"][0], out["notes"]


def test_upload_of_garbage_or_a_bad_value_is_an_input_error():
    engine = demo_engine()
    with pytest.raises(DemoInputError, match="not an image"):
        engine.decode_upload(b"certainly not a PNG file", "junk.png")
    grey = np.zeros((SIDE, SIDE), np.uint8)
    grey[6, 9] = 200
    with pytest.raises(DemoInputError) as err:
        engine.decode_upload(png(grey), "ids.png")
    assert "200" in str(err.value) and "x=9, y=6" in str(err.value), str(err.value)


def test_upload_of_a_test_py_colour_label_map_round_trips():
    engine = demo_engine()
    labels = painting()
    colour = util.tensor2label(torch.from_numpy(labels)[None], **util.label_colouring(engine.opt))
    assert colour.shape == (SIDE, SIDE, 3) and colour.dtype == np.uint8
    out = engine.decode_upload(png(colour), "input_label.png")
    assert np.array_equal(decode_b64_labels(out["labels"]), labels)


def test_coco_grey_upload_maps_255_to_unlabeled():
    engine = demo_engine(dataset_mode="coco", crop_size=SIDE, load_size=SIDE)
    assert engine.num_values == 183 and engine.unknown == 182
    grey = np.full((SIDE, SIDE), 7, np.uint8)
    grey[:10] = 255
    grey[20:, 5:9] = 181
    out = engine.decode_upload(png(grey), "coco.png")
    want = grey.astype(np.int64)
    want[want == 255] = 182
    assert np.array_equal(decode_b64_labels(out["labels"]), want)
    # A colour upload in the COCO palette: the VOC colours, value 182 (unlabeled) black and value 0
    # ('person', black in the VOC map) the map's next colour, index 183: every value comes back exactly.
    palette = np.array([voc_colour(i) for i in range(183)], np.uint8)
    palette[182] = 0
    palette[0] = voc_colour(183)
    want[:3, :3] = 0
    got = decode_b64_labels(engine.decode_upload(png(palette[want]), "c.png")["labels"])
    assert np.array_equal(got, want)


# ------------------------------------------------------------------------------------------------
# 4. generation

def test_generate_returns_the_models_own_image_and_the_dagan_extras():
    engine = lively_dagan()
    labels = painting()
    result = engine.generate(payload(labels, seed=3, ticket="t1"))
    image = decode_data_url(result["image"])
    assert image.shape == (SIDE, SIDE, 3) and (result["width"], result["height"]) == (SIDE, SIDE)
    assert result["ahead"] == 0 and result["seed"] == 3

    torch.manual_seed(123)
    plain = engine.model.inference(plain_batch(labels))
    assert np.array_equal(image, quantise(plain["synthesized_image"][0]))
    assert len(np.unique(image)) > 50  # a picture, not a flat or saturated one
    assert np.array_equal(engine.received[-1], labels)
    assert engine.generations == 1

    extras = engine.model.inference(plain_batch(labels), extras=True)
    by_name = {entry["name"]: entry for entry in result["extras"]}
    assert set(by_name) == {"sam_attention", "cam_weights"}
    pictures = by_name["sam_attention"]["pictures"]
    assert set(pictures) == {"sam_attention", "sam_attention_heatmap"}
    grey = decode_data_url(pictures["sam_attention"])
    sam = extras["sam_attention"][0, 0].double().clamp(0, 1).numpy()
    assert grey.shape == (SIDE, SIDE) and np.array_equal(grey, np.rint(sam * 255).astype(np.uint8))
    heat = decode_data_url(pictures["sam_attention_heatmap"])
    assert heat.shape == (SIDE, SIDE, 3)
    brightness = heat.astype(np.int64).sum(axis=2).reshape(-1)[np.argsort(sam.reshape(-1), kind="stable")]
    assert (np.diff(brightness) >= 0).all()  # a ramp: more attention, a brighter colour

    cam = extras["cam_weights"][0]
    assert cam.dim() == 1 and cam.numel() == engine.opt.ngf  # one weight per channel of the last feature
    values = by_name["cam_weights"]["values"]
    assert len(values) == cam.numel()
    assert np.allclose(values, cam.numpy(), atol=1e-6)
    assert all(0 < v < 1 for v in values)
    assert decode_data_url(by_name["cam_weights"]["pictures"]["cam_weights"]).ndim == 3


def test_generate_of_a_second_map_sees_the_new_map():
    engine = lively_dagan()
    first = engine.generate(payload(painting()))
    other = np.zeros((SIDE, SIDE), np.int64)
    other[:, 16:] = 5
    second = engine.generate(payload(other))
    assert not np.array_equal(decode_data_url(first["image"]), decode_data_url(second["image"]))
    assert np.array_equal(decode_data_url(second["image"]),
                          quantise(engine.model.inference(plain_batch(other))["synthesized_image"][0]))
    assert np.array_equal(engine.received[-1], other) and np.array_equal(engine.received[-2], painting())


# ------------------------------------------------------------------------------------------------
# 5. seeds

def test_oasis_inference_seeded_draws_z_from_the_seed_and_the_class_seeds(monkeypatch):
    engine = oasis_engine()
    model = engine.model
    assert model.draws_noise and model.resamples_classes
    seen = spy_on_z(monkeypatch, model.netG)
    labels = painting()
    batch = plain_batch(labels)

    model.inference_seeded(batch, 11)
    assert torch.equal(seen[-1], noise_map(labels, 11))

    model.inference_seeded(batch, 11, {3: 25})
    want = noise_map(labels, 11, {3: 25})
    assert torch.equal(seen[-1], want)
    inside = torch.from_numpy(labels == 3)
    assert torch.equal(seen[-1][0][:, inside][:, 0], noise_vector(25)[0])
    assert torch.equal(seen[-1][0][:, ~inside][:, 0], noise_vector(11)[0])

    model.inference_seeded(batch, 11, {1: 7, 6: 8})
    z = seen[-1][0]
    assert torch.equal(seen[-1], noise_map(labels, 11, {1: 7, 6: 8}))
    for value, s in ((1, 7), (6, 8), (0, 11), (3, 11)):
        assert torch.equal(z[:, torch.from_numpy(labels == value)][:, 0], noise_vector(s)[0]), value


def test_oasis_generate_same_seed_same_image_and_class_seeds_pass_through(monkeypatch):
    engine = oasis_engine(lively=True)
    seen = spy_on_z(monkeypatch, engine.model.netG)
    labels = painting()
    a = decode_data_url(engine.generate(payload(labels, seed=5))["image"])
    b = decode_data_url(engine.generate(payload(labels, seed=5))["image"])
    c = decode_data_url(engine.generate(payload(labels, seed=6))["image"])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) > 50
    assert torch.equal(seen[0], noise_map(labels, 5)) and torch.equal(seen[2], noise_map(labels, 6))
    d = decode_data_url(engine.generate(payload(labels, seed=5, class_seeds={"2": 9}))["image"])  # JSON keys: str
    z = noise_map(labels, 5, {2: 9})
    assert torch.equal(seen[-1], z)
    assert not np.array_equal(a, d)
    # the model's own image of that noise, quantised as the official OASIS code: uint8((x + 1) / 2 * 255)
    monkeypatch.undo()
    fake = engine.model.inference(plain_batch(labels), z=z)["synthesized_image"][0]
    x = fake.clamp(-1, 1).numpy().astype(np.float32)
    assert np.array_equal(d, ((x + np.float32(1)) / np.float32(2) * np.float32(255)).astype(np.uint8).transpose(1, 2, 0))
    assert engine.info()["resample_class"] is True


def test_oasis_class_seeds_follow_the_unknown_value_to_channel_0(monkeypatch):
    """COCO-Stuff: OASIS channel 0 is the unknown value 182, value v is channel v + 1."""
    engine = oasis_engine(dataset_mode="coco")
    assert engine.model.oasis_channels(torch.tensor([182, 0, 5])).tolist() == [0, 1, 6]
    seen = spy_on_z(monkeypatch, engine.model.netG)
    labels = np.full((SIDE, SIDE), 5, np.int64)
    labels[:8] = 182
    labels[20:, :] = 0
    labels[10:14, 10:14] = 1

    def channel(v):
        return 0 if v == 182 else v + 1

    engine.model.inference_seeded(plain_batch(labels), 3, {182: 4, 0: 6})
    want = noise_map(labels, 3, {182: 4, 0: 6}, channels=channel)
    assert torch.equal(seen[-1], want)
    z = seen[-1][0]
    assert torch.equal(z[:, torch.from_numpy(labels == 182)][:, 0], noise_vector(4)[0])
    assert torch.equal(z[:, torch.from_numpy(labels == 0)][:, 0], noise_vector(6)[0])
    assert torch.equal(z[:, torch.from_numpy(labels == 1)][:, 0], noise_vector(3)[0])
    assert torch.equal(z[:, torch.from_numpy(labels == 5)][:, 0], noise_vector(3)[0])


def test_pix2pix_without_vae_ignores_the_seed():
    engine = lively_dagan()
    assert engine.model.draws_noise is False and engine.model.takes_style_image is False
    labels = painting()
    a = engine.generate(payload(labels, seed=1))["image"]
    b = engine.generate(payload(labels, seed=2))["image"]
    assert a == b
    with torch.no_grad():
        direct = engine.model.inference_seeded(plain_batch(labels), 99)["synthesized_image"][0]
    assert np.array_equal(decode_data_url(a), quantise(direct))


def test_pix2pix_with_vae_draws_z_from_the_seed():
    engine = lively_dagan(use_vae=True)
    model = engine.model
    with torch.no_grad():  # biases off zero: the encoding of a blank photo is then not N(0, I) itself
        for module in model.netE.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.fill_(0.3)
    assert model.draws_noise is True and model.takes_style_image is True
    assert model.netE is not None
    info = engine.info()
    assert info["noise"] is True and info["style_image"] is True and info["resample_class"] is False
    labels = painting()
    a = engine.generate(payload(labels, seed=1))["image"]
    b = engine.generate(payload(labels, seed=1))["image"]
    c = engine.generate(payload(labels, seed=2))["image"]
    assert a == b
    assert a != c
    assert not engine.opt.sample_z  # restored after the generation
    # the seed's z: N(0, I) from the RNG seeded with it, through the plain generator
    torch.manual_seed(2)
    z = torch.randn(1, engine.opt.z_dim)
    batch = plain_batch(labels)
    semantics, _ = model.preprocess_input(batch)
    with torch.no_grad():
        fake = model.netG(semantics, z=z, class_ids=batch["label"][:, 0])
    assert np.array_equal(decode_data_url(c), quantise(fake[0]))
    # a style image is taken
    style = "data:image/png;base64," + base64.b64encode(png(np.full((SIDE, SIDE, 3), 90, np.uint8))).decode()
    assert decode_data_url(engine.generate(payload(labels, seed=1, style=style))["image"]).shape == (SIDE, SIDE, 3)


# ------------------------------------------------------------------------------------------------
# 6. the generation queue

def test_generation_queue_runs_one_at_a_time_in_arrival_order():
    queue = GenerationQueue()
    release = threading.Event()
    order, aheads, errors = [], {}, []

    def work(ticket, hold):
        try:
            with queue.turn(ticket) as ahead:
                aheads[ticket] = ahead
                order.append(ticket)
                if hold:
                    assert release.wait(20)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = []
    try:
        for ticket, hold, where in (("a", True, "running"), ("b", False, 1), ("c", False, 2)):
            thread = threading.Thread(target=work, args=(ticket, hold), daemon=True)
            thread.start()
            threads.append(thread)
            wait_until(lambda t=ticket, w=where: queue.position(t) == w, f"{ticket} at {where}")
        assert (queue.position("a"), queue.position("b"), queue.position("c")) == ("running", 1, 2)
        assert queue.position("nobody") is None and queue.position(None) is None
        assert order == ["a"]
    finally:
        release.set()
        for thread in threads:
            thread.join(20)
    assert not errors, errors
    assert order == ["a", "b", "c"]
    assert aheads == {"a": 0, "b": 1, "c": 2}
    assert queue.most_at_once == 1
    assert [queue.position(t) for t in "abc"] == [None, None, None]


# ------------------------------------------------------------------------------------------------
# 7. the HTTP server

@pytest.fixture
def serve():
    """serve(engine) -> base URL of a DemoServer on a free port, served in a daemon thread."""
    running = []

    def start(engine):
        server = DemoServer(engine, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(10)


def fetch(url, body=None, headers=None):
    """(status, content type, body bytes); error statuses too."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("Content-Type"), err.read()


def post_json(url, obj):
    return fetch(url, json.dumps(obj).encode(), {"Content-Type": "application/json"})


def raw_request(base, method, path, headers=()):
    host, port = base.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers:
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_server_pages_and_info(serve):
    base = serve(demo_engine())
    status, kind, body = fetch(base + "/")
    assert status == 200 and kind.startswith("text/html") and b'id="label-canvas"' in body
    status, kind, body = fetch(base + "/static/demo.js")
    assert status == 200 and "javascript" in kind and len(body) > 0
    assert raw_request(base, "GET", "/static/../demo.py")[0] == 404
    assert raw_request(base, "GET", "/static/%2e%2e/demo.py")[0] == 404
    assert fetch(base + "/no/such/page")[0] == 404
    status, kind, body = fetch(base + "/api/info")
    info = json.loads(body)
    assert status == 200 and kind == "application/json"
    assert (info["width"], info["height"]) == (SIDE, SIDE)
    assert [c["name"] for c in info["classes"]] == list(SYNTHETIC_NAMES)
    assert info["val"] == [] and info["val_total"] == 0
    status, _, body = fetch(base + "/api/queue?ticket=x")
    assert status == 200 and json.loads(body)["state"] == "unknown"


def test_server_generate_and_its_errors(serve):
    engine = lively_dagan()
    base = serve(engine)
    labels = painting()
    status, _, body = post_json(base + "/api/generate", payload(labels, seed=4, ticket="k"))
    assert status == 200
    result = json.loads(body)
    assert np.array_equal(decode_data_url(result["image"]),
                          quantise(engine.model.inference(plain_batch(labels))["synthesized_image"][0]))
    assert np.array_equal(engine.received[-1], labels)

    bad = painting()
    bad[2, 30] = 13
    status, kind, body = post_json(base + "/api/generate", payload(bad))
    assert status == 400 and kind == "application/json"
    error = json.loads(body)["error"]
    assert "13" in error and "x=30, y=2" in error, error

    status, _, body = fetch(base + "/api/generate", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON" in json.loads(body)["error"]

    status, body = raw_request(base, "POST", "/api/generate", [("Content-Length", str(10**9))])
    assert status == 413, body
    assert "error" in json.loads(body)
    assert engine.generations == 1


def test_server_queue_reports_where_a_ticket_is(serve, monkeypatch):
    engine = demo_engine()
    base = serve(engine)
    release = threading.Event()
    seeded = engine.model.inference_seeded

    def held(*args, **kwargs):
        assert release.wait(20)
        return seeded(*args, **kwargs)

    monkeypatch.setattr(engine.model, "inference_seeded", held)
    results = {}

    def post(ticket):
        results[ticket] = post_json(base + "/api/generate", payload(painting(), ticket=ticket))

    def state(ticket):
        return json.loads(fetch(base + f"/api/queue?ticket={ticket}")[2])

    threads = [threading.Thread(target=post, args=(t,), daemon=True) for t in ("first", "second")]
    try:
        threads[0].start()
        wait_until(lambda: state("first")["state"] == "running", "the first request running")
        threads[1].start()
        wait_until(lambda: state("second") == {"state": "waiting", "ahead": 1}, "the second request waiting")
        assert state("first") == {"state": "running", "ahead": 0}
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert results["first"][0] == 200 and results["second"][0] == 200
    assert json.loads(results["first"][2])["ahead"] == 0 and json.loads(results["second"][2])["ahead"] == 1
    assert state("first")["state"] == "unknown" and engine.queue.most_at_once == 1


def test_server_label_png_and_uploads(serve):
    base = serve(demo_engine())
    labels = painting()
    status, kind, body = post_json(base + "/api/label_png", payload(labels))
    assert status == 200 and kind == "image/png"
    img = Image.open(io.BytesIO(body))
    assert img.mode == "L" and np.array_equal(np.asarray(img), labels)

    grey = np.random.default_rng(5).integers(0, 8, (SIDE, SIDE))
    status, _, body = fetch(base + "/api/upload_labels", png(grey.astype(np.uint8)), {"X-Filename": "mine.png"})
    assert status == 200 and np.array_equal(decode_b64_labels(json.loads(body)["labels"]), grey)

    rgb = np.array(SYNTHETIC_COLOURS, np.uint8)[painting()]
    rgb[9, 2] = (255, 0, 255)
    status, _, body = fetch(base + "/api/upload_labels", png(rgb), {"X-Filename": "off.png"})
    error = json.loads(body)["error"]
    assert status == 400 and "(255, 0, 255)" in error and "x=2, y=9" in error and "off.png" in error, error


def test_server_val_picks(serve, synth_root):
    engine = demo_engine(with_val=True, dataroot=synth_root)
    base = serve(engine)
    path = engine.val.label_paths[0]
    stored = Image.open(path)
    assert stored.mode == "L"
    want = np.array(Image.fromarray(np.asarray(stored).astype(np.int32)).resize((SIDE, SIDE), Image.NEAREST),
                    dtype=np.int64)
    status, _, body = fetch(base + "/api/val/0")
    assert status == 200
    got = decode_b64_labels(json.loads(body)["labels"])
    assert np.array_equal(got, want)
    assert len(np.unique(got)) > 1

    status, kind, body = fetch(base + "/api/val/0.png")
    assert status == 200 and kind == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
    thumb = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    side = thumb.shape[0]
    assert thumb.shape == (side, side, 3) and side % SIDE == 0
    palette = np.array(SYNTHETIC_COLOURS, np.uint8)
    step = side // SIDE
    assert np.array_equal(thumb[::step, ::step], palette[want])

    info = json.loads(fetch(base + "/api/info")[2])
    assert info["val_total"] == len(engine.val) and info["val"][0]["stem"] == os.path.basename(path)[:-4]
    status, _, body = fetch(base + f"/api/val/{len(info['val'])}")
    assert status == 400 and "error" in json.loads(body)


# ------------------------------------------------------------------------------------------------
# 8. demo.py's command line

def exit_status(argv):
    """demo.cli's status; an option error exits through argparse (SystemExit 2)."""
    try:
        return demo.cli(argv)
    except SystemExit as exit_:
        return exit_.code


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("demo.py: error: "), err
    return err[0]


def test_cli_rejects_a_photo_translation_model(capsys):
    assert exit_status(["--model", "attention_gan"]) == 2
    line = error_line(capsys)
    assert "attention_gan" in line and "label maps" in line, line


def test_cli_names_a_missing_run_folder_and_creates_nothing(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    assert exit_status(["--name", "no_such_run", "--checkpoints_dir", str(ckpt)]) == 2
    line = error_line(capsys)
    assert os.path.join(str(ckpt), "no_such_run") in line, line
    assert os.listdir(ckpt) == []


def test_cli_main_job_without_a_terminal_says_how_to_train(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert not sys.stdin.isatty()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    called = []
    monkeypatch.setattr(demo.subprocess, "call", lambda *a, **k: called.append(a) or 0)
    assert exit_status(["--checkpoints_dir", str(ckpt)]) == 2
    line = error_line(capsys)
    assert "--train_main_job" in line and "train.py" in line, line
    assert os.listdir(ckpt) == [] and called == []


def write_run(ckpt, name):
    """A run folder with the weights of a tiny synthetic DAGAN (ngf 8): ``latest_net_G.pth``."""
    opt = build_options(False, ngf=8, no_opt_file=True)
    torch.manual_seed(7)
    model = models.create_model(opt)
    state = {k: v.clone() for k, v in model.netG.state_dict().items()}
    os.makedirs(ckpt / name)
    torch.save(state, ckpt / name / "latest_net_G.pth")
    return state


def test_cli_trains_the_main_job_when_asked_and_only_when_its_run_is_absent(tmp_path, capsys, monkeypatch):
    """--train_main_job runs train.py with the flags that choose the run, then loads it; a main-job run
    that exists but lacks the asked epoch is an error, never a new training (train.py would refuse)."""
    ckpt = tmp_path / "ckpt"
    commands = []

    def fake_train(command):
        commands.append(command)
        write_run(ckpt, "synthetic_dagan")  # what train.py leaves: the run's weights
        return 0

    monkeypatch.setattr(demo.subprocess, "call", fake_train)
    monkeypatch.setattr(DemoServer, "serve_forever", lambda self, poll_interval=0.5: None)
    argv = ["--checkpoints_dir", str(ckpt), "--train_main_job", "--port", "0", "--ngf", "8", "--dataroot",
            str(tmp_path / "data"), "--cpu_threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert exit_status(argv) == 0
    finally:
        torch.set_num_threads(threads)
    (command,) = commands
    assert command[0] == sys.executable and command[1].endswith("train.py")
    assert command[2:] == ["--checkpoints_dir", str(ckpt), "--cpu_threads", "1"]
    assert f"training the main job first: python train.py --checkpoints_dir {ckpt}" in capsys.readouterr().out

    commands.clear()
    assert exit_status(["--checkpoints_dir", str(ckpt), "--train_main_job", "--which_epoch", "3", "--ngf", "8"]) == 2
    line = error_line(capsys)
    assert "--which_epoch 3" in line and "it holds latest" in line, line
    assert "train it first" not in line and "--train_main_job" not in line, line
    assert commands == []


def test_cli_busy_port_is_an_error_before_the_model_loads(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "ckpt"
    write_run(ckpt, "tiny")
    loads = []
    monkeypatch.setattr(demo, "load_inference_model", lambda opt: loads.append(opt) or pytest.fail("model loaded"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        status = exit_status(["--name", "tiny", "--checkpoints_dir", str(ckpt), "--ngf", "8",
                              "--port", str(port), "--dataroot", str(tmp_path / "data")])
    assert status == 2
    line = error_line(capsys)
    assert "--port" in line and str(port) in line, line
    assert loads == []


def test_cli_port_out_of_range(capsys):
    assert exit_status(["--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_cli_serves_the_runs_weights(tmp_path, capsys, monkeypatch, synth_root):
    """The whole start: the weights of the run folder loaded, the val split of --dataroot, the page's
    URL printed; Ctrl+C (KeyboardInterrupt in serve_forever) stops it with status 0."""
    ckpt = tmp_path / "ckpt"
    state = write_run(ckpt, "tiny")
    started = []

    def serve_forever(self, poll_interval=0.5):
        started.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(DemoServer, "serve_forever", serve_forever)
    threads = torch.get_num_threads()
    try:
        status = exit_status(["--name", "tiny", "--checkpoints_dir", str(ckpt), "--ngf", "8", "--port", "0",
                              "--dataroot", synth_root, "--cpu_threads", "1", "--synthetic_num_train", "8",
                              "--synthetic_num_val", "4"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert status == 0, out
    (server,) = started
    engine = server.engine
    loaded = engine.model.netG.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not engine.model.training
    assert engine.val is not None and len(engine.val) > 0
    assert f"127.0.0.1:{server.server_address[1]}/" in out and "demo stopped" in out, out
    # The line the README quotes, with this run's name and port.
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md"),
                  encoding="utf-8").read()
    quoted = re.search(r"It prints `(demo of run [^`]*)`", readme).group(1)
    want = quoted.replace("synthetic_dagan", "tiny").replace(":7860/", f":{server.server_address[1]}/")
    assert want in out.splitlines(), (want, out)
