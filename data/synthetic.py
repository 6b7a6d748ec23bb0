"""The embedded synthetic dataset: generator and exact segmenter.

Scenes are 64x64 (default) label maps: a background class plus random rectangles, ellipses and blobs of
seven object classes, several instances per image with Cityscapes-style instance ids
(``class * 1000 + k``, stored as 16-bit PNGs). Each class is rendered as its own flat colour plus a
low-amplitude texture (stripes, checks or dots of period 4 or 8). The eight colours are corners of a
cube in RGB space, 195 apart per channel, while textures change a channel by at most 15: the class of a
pixel is therefore decided by colour alone, which is what :class:`SyntheticSegmenter` does. Because it
knows the appearance exactly, it scores 100% on real synthetic images, and scoring generated images
with it measures how faithfully they follow the input layout.

Generation is deterministic in (seed, split, index) and written atomically: into a hidden temporary
folder next to the target, renamed into place when complete, so an interrupted generation never leaves
a half dataset behind.
"""

import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

# Bump when the rendering changes, so an old dataset on disk is not silently reused.
GENERATOR_VERSION = 2
META_FILE = "synthetic.json"

_LOW, _HIGH = 30, 225
TEXTURE_AMPLITUDE = 15

# (name, RGB colour, texture, texture period)
CLASSES = (
    ("background", (_LOW, _LOW, _LOW), "hstripes", 8),
    ("red", (_HIGH, _LOW, _LOW), "vstripes", 4),
    ("green", (_LOW, _HIGH, _LOW), "checks", 4),
    ("blue", (_LOW, _LOW, _HIGH), "dots", 4),
    ("yellow", (_HIGH, _HIGH, _LOW), "diagonal", 4),
    ("magenta", (_HIGH, _LOW, _HIGH), "hstripes", 4),
    ("cyan", (_LOW, _HIGH, _HIGH), "checks", 8),
    ("white", (_HIGH, _HIGH, _HIGH), "flat", 1),
)
NUM_CLASSES = len(CLASSES)
CLASS_NAMES = tuple(c[0] for c in CLASSES)
CLASS_COLOURS = np.array([c[1] for c in CLASSES], dtype=np.float32)

DEFAULT_SEED = 0
DEFAULT_NUM_TRAIN = 400
DEFAULT_NUM_VAL = 40
DEFAULT_SIZE = 64

_SPLIT_INDEX = {"train": 0, "val": 1}


def add_generation_flags(parser, size=DEFAULT_SIZE, what="scenes"):
    """The flags of a generated dataset (synthetic, synthetic_unpaired): seed, counts, size."""
    parser.add_argument("--synthetic_seed", type=int, default=DEFAULT_SEED, help=f"seed of the generated {what}")
    parser.add_argument("--synthetic_num_train", type=int, default=DEFAULT_NUM_TRAIN,
                        help=f"number of generated training {what}")
    parser.add_argument("--synthetic_num_val", type=int, default=DEFAULT_NUM_VAL,
                        help=f"number of generated validation / test {what}")
    parser.add_argument("--synthetic_size", type=int, default=size, help="side of the generated square scenes in pixels")
    return parser


def texture_pattern(kind, period, size):
    """Zero-mean pattern in [-1, 1] of shape [size, size] (means over one period are exactly 0)."""
    y, x = np.mgrid[0:size, 0:size]
    half = max(period // 2, 1)
    if kind == "flat":
        return np.zeros((size, size), np.float32)
    if kind == "hstripes":
        pattern = np.where((y % period) < half, 1.0, -1.0)
    elif kind == "vstripes":
        pattern = np.where((x % period) < half, 1.0, -1.0)
    elif kind == "checks":
        pattern = np.where(((x % period) < half) ^ ((y % period) < half), 1.0, -1.0)
    elif kind == "diagonal":
        pattern = np.where(((x + y) % period) < half, 1.0, -1.0)
    elif kind == "dots":
        # one bright half-period square per cell; the rest slightly dark so the cell mean is zero
        inside = ((x % period) < half) & ((y % period) < half)
        pattern = np.where(inside, 1.0, -1.0 / 3.0)
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return pattern.astype(np.float32)


def render_image(label):
    """Label map [H,W] of class ids -> uint8 RGB image [H,W,3]: class colour + class texture."""
    size_h, size_w = label.shape
    size = max(size_h, size_w)
    image = CLASS_COLOURS[label].copy()
    for cls, (_, _, kind, period) in enumerate(CLASSES):
        mask = label == cls
        if kind == "flat" or not mask.any():
            continue
        pattern = texture_pattern(kind, period, size)[:size_h, :size_w]
        image[mask] += TEXTURE_AMPLITUDE * pattern[mask][:, None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _shape_mask(rng, size):
    """Boolean mask of one random rectangle, ellipse or blob."""
    y, x = np.mgrid[0:size, 0:size]
    cx, cy = rng.uniform(0, size, 2)
    half_w, half_h = rng.uniform(size / 10, size / 3.5, 2)
    kind = rng.integers(0, 3)
    if kind == 0:
        return (np.abs(x - cx) <= half_w) & (np.abs(y - cy) <= half_h)
    if kind == 1:
        return ((x - cx) / half_w) ** 2 + ((y - cy) / half_h) ** 2 <= 1.0
    mask = np.zeros((size, size), bool)
    for _ in range(3):  # blob: union of discs around the centre
        ox, oy = rng.uniform(-half_w, half_w), rng.uniform(-half_h, half_h)
        radius = rng.uniform(size / 14, size / 6)
        mask |= (x - cx - ox) ** 2 + (y - cy - oy) ** 2 <= radius ** 2
    return mask


def generate_scene(rng, size=DEFAULT_SIZE):
    """One scene: (label uint8 [H,W], instance uint16 [H,W], image uint8 [H,W,3]).

    Instance ids follow Cityscapes: background 0, object k of class c -> c*1000 + k.
    """
    label = np.zeros((size, size), np.uint8)
    instance = np.zeros((size, size), np.uint16)
    counters = [0] * NUM_CLASSES
    for _ in range(int(rng.integers(5, 13))):
        cls = int(rng.integers(1, NUM_CLASSES))
        mask = _shape_mask(rng, size)
        if not mask.any():
            continue
        label[mask] = cls
        instance[mask] = cls * 1000 + counters[cls]
        counters[cls] += 1
    return label, instance, render_image(label)


def _settings(seed, num_train, num_val, size):
    return {"version": GENERATOR_VERSION, "seed": int(seed), "num_train": int(num_train),
            "num_val": int(num_val), "size": int(size), "classes": list(CLASS_NAMES)}


def _write_split(root, split, count, seed, size):
    folders = {kind: os.path.join(root, f"{split}_{kind}") for kind in ("label", "img", "inst")}
    for folder in folders.values():
        os.makedirs(folder)
    for index in range(count):
        rng = np.random.default_rng([seed, _SPLIT_INDEX[split], index])
        label, instance, image = generate_scene(rng, size)
        name = f"{split}_{index:05d}.png"
        Image.fromarray(label).save(os.path.join(folders["label"], name))
        Image.fromarray(instance).save(os.path.join(folders["inst"], name))
        Image.fromarray(image).save(os.path.join(folders["img"], name))


def _read_meta(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the synthetic dataset description {path}: {err}") from err


def ensure_synthetic_dataset(root, seed=DEFAULT_SEED, num_train=DEFAULT_NUM_TRAIN, num_val=DEFAULT_NUM_VAL,
                             size=DEFAULT_SIZE):
    """Generate the dataset under ``root`` unless an identical one is already there. Returns ``root``.

    Layout: ``{train,val}_label/`` (uint8 class ids), ``{train,val}_img/`` (RGB), ``{train,val}_inst/``
    (uint16 instance ids), ``synthetic.json`` (the generation settings, written last).
    """
    wanted = _settings(seed, num_train, num_val, size)
    meta_path = os.path.join(root, META_FILE)
    outdated = False
    if os.path.isfile(meta_path):
        found = _read_meta(meta_path)
        if found == wanted:
            return root
        if found.get("version") == GENERATOR_VERSION:
            raise ValueError(
                f"{root} holds a synthetic dataset generated with {found}, but {wanted} was requested; delete "
                "the folder to regenerate it, or choose another --dataroot"
            )
        # Written by an older generator: it is ours, so replace it (atomically, below).
        logger.warning("%s was generated by synthetic-data version %s; regenerating with version %d", root,
                       found.get("version"), GENERATOR_VERSION)
        outdated = True
    elif os.path.isdir(root) and os.listdir(root):
        raise ValueError(
            f"{root} exists and is not empty but has no {META_FILE}: it is not a generated synthetic dataset. "
            "Choose an empty or missing --dataroot for --dataset_mode synthetic"
        )
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    start = time.time()
    tmp = tempfile.mkdtemp(prefix=".synthetic-tmp-", dir=parent)
    try:
        _write_split(tmp, "train", num_train, seed, size)
        _write_split(tmp, "val", num_val, seed, size)
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as f:
            json.dump(wanted, f, indent=2, sort_keys=True)
        if outdated:
            trash = tempfile.mkdtemp(prefix=".synthetic-old-", dir=parent)
            os.rename(root, os.path.join(trash, "old"))
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, root)  # atomic; replaces an empty directory
        except OSError:
            # Another process (e.g. another DDP rank) finished first: use its copy if it is the same.
            if not (os.path.isfile(meta_path) and _read_meta(meta_path) == wanted):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("generated the synthetic dataset (%d train / %d val, %dx%d) in %s in %.1f s", num_train, num_val,
                size, size, root, time.time() - start)
    return root


class SyntheticSegmenter:
    """Exact segmenter of synthetic images: nearest class colour per pixel.

    ``segment(images)``: float tensor [B,3,H,W] in [-1,1] -> int64 tensor [B,H,W] of class ids in
    [0, NUM_CLASSES). The textures change a channel by at most 15 while the class colours differ by 195
    per channel, so colour alone decides the class; textures are ignored. ``smooth`` > 1 averages the
    colour over a ``smooth`` x ``smooth`` box first (less sensitive to pixel noise in generated images,
    but it blurs class borders; off by default).
    """

    def __init__(self, smooth=1):
        self.smooth = int(smooth)
        self.colours = torch.from_numpy(CLASS_COLOURS / 127.5 - 1.0)  # [K,3] in [-1,1]

    def segment(self, images):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [B,3,H,W], got {tuple(images.shape)}")
        images = images.detach().float()
        if self.smooth > 1:
            pad = self.smooth // 2
            padded = torch.nn.functional.pad(images, (pad, self.smooth - 1 - pad, pad, self.smooth - 1 - pad),
                                             mode="replicate")
            images = torch.nn.functional.avg_pool2d(padded, self.smooth, stride=1)
        colours = self.colours.to(images.device)
        # squared distance of every pixel to every class colour: [B,K,H,W]
        dist = ((images[:, None] - colours[None, :, :, None, None]) ** 2).sum(dim=2)
        return dist.argmin(dim=1)

    __call__ = segment


def colourise(label):
    """Class ids [H,W] -> uint8 RGB [H,W,3] with the class colours (without texture)."""
    return CLASS_COLOURS[np.asarray(label)].astype(np.uint8)
