"""Image helpers: tensors to uint8 arrays, label colourisation, atomic image writing, small plots.

Arrays returned here are numpy uint8 in HWC layout (RGB), the form PIL writes directly.
"""
import contextlib
import logging
import os
import re
import uuid

import numpy as np
import torch
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)


TEMP_PREFIX = ".tmp_"


def temp_path_for(path):
    """A fresh hidden file name next to ``path`` (same folder, so the final rename is atomic)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}_{name}")


@contextlib.contextmanager
def atomic_open(path, binary=True, fsync=False):
    """Write ``path`` atomically: yields a file object on a hidden temp file in the same folder, which
    replaces ``path`` when the block ends without error and is removed otherwise (also on
    KeyboardInterrupt), so a crash never leaves a truncated file under the final name.

    The temp file is created with open(..., 'x'): the result has the usual umask permissions
    (mkstemp's would be owner-only, unreadable for a web server serving the pages). ``fsync``
    flushes the data to disk before the rename (checkpoints).
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "xb" if binary else "x", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path, binary=False) as f:
        f.write(text)


def natural_sort_key(text):
    """Sort key comparing digit runs as numbers: 'img2' < 'img10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


# ---------------------------------------------------------------------------------------------------
# Colour palettes
# ---------------------------------------------------------------------------------------------------

# Official Cityscapes colours for label ids 0..33 (cityscapesscripts/helpers/labels.py), plus id 34 for
# 'license plate' (id -1 in that table, never present in labelIds PNGs), which also uses car blue.
_CITYSCAPES_COLORS = (
    (0, 0, 0),        # 0 unlabeled
    (0, 0, 0),        # 1 ego vehicle
    (0, 0, 0),        # 2 rectification border
    (0, 0, 0),        # 3 out of roi
    (0, 0, 0),        # 4 static
    (111, 74, 0),     # 5 dynamic
    (81, 0, 81),      # 6 ground
    (128, 64, 128),   # 7 road
    (244, 35, 232),   # 8 sidewalk
    (250, 170, 160),  # 9 parking
    (230, 150, 140),  # 10 rail track
    (70, 70, 70),     # 11 building
    (102, 102, 156),  # 12 wall
    (190, 153, 153),  # 13 fence
    (180, 165, 180),  # 14 guard rail
    (150, 100, 100),  # 15 bridge
    (150, 120, 90),   # 16 tunnel
    (153, 153, 153),  # 17 pole
    (153, 153, 153),  # 18 polegroup
    (250, 170, 30),   # 19 traffic light
    (220, 220, 0),    # 20 traffic sign
    (107, 142, 35),   # 21 vegetation
    (152, 251, 152),  # 22 terrain
    (70, 130, 180),   # 23 sky
    (220, 20, 60),    # 24 person
    (255, 0, 0),      # 25 rider
    (0, 0, 142),      # 26 car
    (0, 0, 70),       # 27 truck
    (0, 60, 100),     # 28 bus
    (0, 0, 90),       # 29 caravan
    (0, 0, 110),      # 30 trailer
    (0, 80, 100),     # 31 train
    (0, 0, 230),      # 32 motorcycle
    (119, 11, 32),    # 33 bicycle
    (0, 0, 142),      # 34 license plate
)


def cityscapes_palette():
    """uint8 array [35, 3]: colour of each Cityscapes label id (official colours)."""
    return np.array(_CITYSCAPES_COLORS, dtype=np.uint8)


def bit_interleave_palette(n):
    """uint8 array [n, 3]: the PASCAL VOC colour map (deterministic, distinct colours, 0 = black).

    The bits of the class index are dealt out in turn to R, G, B, most significant colour bit first.
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        value = index
        rgb = [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[index] = rgb
    return palette


def label_palette(n, dataset_mode=None):
    """uint8 array [n, 3] of colours for label values 0..n-1 of a dataset.

    A dataset with colours of its own (``class_colours`` of its class: Cityscapes' official colours
    for its 35 label ids, the synthetic scenes' class colours) uses them for its first values, the
    PASCAL bit-interleaving palette for the rest and for every other dataset.
    """
    palette = bit_interleave_palette(max(n, 1))[:n]
    own = None
    if dataset_mode is not None:
        import data

        if dataset_mode in data.known_dataset_modes():
            own = getattr(data.find_dataset_using_name(dataset_mode), "class_colours", None)
    if own is not None:
        k = min(n, len(own))
        palette[:k] = np.asarray(own, dtype=np.uint8)[:k]
    return palette


def tensor2label(label, n_label, dataset_mode=None, dontcare_index=None):
    """Colourise a label map.

    Args:
        label: int tensor/array [H,W] or [1,H,W] of label values, or a float one-hot / score tensor
            [C,H,W] with C > 1 (its argmax is used). A leading batch dim of size 1 is accepted.
        n_label: number of label values (palette length).
        dataset_mode: 'cityscapes' selects the official Cityscapes colours.
        dontcare_index: label value drawn black (the extra 'don't care' channel), if any.
    Returns:
        uint8 array [H,W,3].
    """
    if isinstance(label, np.ndarray):
        label = torch.from_numpy(label)
    label = label.detach().cpu()
    if label.dim() == 4:
        if label.size(0) != 1:
            raise ValueError(f"tensor2label takes one label map, got a batch of shape {tuple(label.shape)}")
        label = label[0]
    if label.dim() == 3:
        label = label.argmax(dim=0) if label.size(0) > 1 else label[0]
    if label.dim() != 2:
        raise ValueError(f"tensor2label expects [H,W], [1,H,W] or [C,H,W], got shape {tuple(label.shape)}")
    label = label.long().numpy()
    if label.size and (label.min() < 0 or label.max() >= n_label):
        raise ValueError(
            f"label values must be in [0, {n_label}), got range [{label.min()}, {label.max()}]"
        )
    return label_colours(n_label, dataset_mode, dontcare_index)[label]


def label_colours(n_label, dataset_mode=None, dontcare_index=None):
    """uint8 array [n_label, 3]: the colour :func:`tensor2label` gives each label value (the dataset's
    palette, the dontcare value black). Black is then the dontcare value's alone: where the palette
    gives another value black too (value 0 of the PASCAL colour map, e.g. COCO-Stuff's 'person'), that
    value takes the map's next unused colour, so pictures (and the demo's uploads) tell them apart."""
    palette = label_palette(n_label, dataset_mode)
    if dontcare_index is not None and 0 <= dontcare_index < n_label:
        palette = palette.copy()
        if dontcare_index != 0 and not palette[0].any():
            palette[0] = bit_interleave_palette(n_label + 1)[n_label]
        palette[dontcare_index] = 0
    return palette


def tensor2im(image, rounding="round"):
    """Image tensor [3,H,W] (or [1,3,H,W], or 1 channel) in [-1,1] -> uint8 array [H,W,3].

    Values outside [-1,1] are clipped; a single channel is repeated to grey RGB. ``rounding``:
    "round" (nearest of (x+1)*127.5) or "truncate", the official OASIS / CycleGAN-style
    ``uint8((x + 1) / 2 * 255)`` (float32, truncated towards zero).
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    image = image.detach().cpu().float()
    if image.dim() == 4:
        if image.size(0) != 1:
            raise ValueError(f"tensor2im takes one image, got a batch of shape {tuple(image.shape)}")
        image = image[0]
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3 or image.size(0) not in (1, 3):
        raise ValueError(f"tensor2im expects [3,H,W] or [1,H,W], got shape {tuple(image.shape)}")
    if image.size(0) == 1:
        image = image.expand(3, -1, -1)
    if rounding == "truncate":
        array = ((image.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)
    elif rounding == "round":
        array = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    else:
        raise ValueError(f"rounding must be 'round' or 'truncate', got {rounding!r}")
    return array.permute(1, 2, 0).contiguous().numpy()


def save_image(image_numpy, path):
    """Write a uint8 array [H,W,3] or [H,W] as an image file (format from the extension), atomically.

    The image goes to a temp file in the target folder and is then renamed, so a crash never leaves
    a truncated PNG under the final name.
    """
    path = os.fspath(path)
    array = np.asarray(image_numpy)
    if array.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8, got {array.dtype} for {path}")
    ext = os.path.splitext(path)[1]
    fmt = Image.registered_extensions().get(ext.lower())
    if fmt is None:
        raise ValueError(f"save_image: unknown image extension {ext!r} in {path}")
    with atomic_open(path) as f:
        Image.fromarray(array).save(f, format=fmt)


# ---------------------------------------------------------------------------------------------------
# Attention visualisation
# ---------------------------------------------------------------------------------------------------

def attention_heatmap(attention):
    """Spatial attention map [H,W] / [1,H,W] / [1,1,H,W] with values in [0,1] -> uint8 RGB [H,W,3].

    A fixed (not per-image normalised) black-red-yellow-white ramp, so maps of different images and
    models compare directly: 0 is black, 1 is white.
    """
    a = torch.as_tensor(attention).detach().cpu().float()
    while a.dim() > 2:
        if a.size(0) != 1:
            raise ValueError(f"attention_heatmap expects one map, got shape {tuple(a.shape)}")
        a = a[0]
    a = a.clamp(0, 1).numpy()
    r = np.clip(3 * a, 0, 1)
    g = np.clip(3 * a - 1, 0, 1)
    b = np.clip(3 * a - 2, 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).round().astype(np.uint8)


def bar_chart(values, height=80, bar_width=3, max_value=1.0):
    """Bar chart of a 1-D sequence of values in [0, max_value] -> uint8 RGB [height, len*bar_width, 3].

    Drawn with PIL (no plotting library): one blue bar per value on white, a grey line at 0.5.
    Used for the CAM channel weights, which are sigmoid outputs in (0,1).
    """
    values = np.asarray(torch.as_tensor(values).detach().cpu().float().reshape(-1))
    width = max(1, len(values) * bar_width)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    mid = height - 1 - round(0.5 / max_value * (height - 1))
    draw.line([(0, mid), (width - 1, mid)], fill=(180, 180, 180))
    for i, v in enumerate(values):
        frac = float(np.clip(v / max_value, 0.0, 1.0))
        top = height - 1 - round(frac * (height - 1))
        x0 = i * bar_width
        draw.rectangle([x0, top, x0 + bar_width - 2 if bar_width > 1 else x0, height - 1], fill=(40, 90, 200))
    return np.asarray(canvas, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------
# Visuals of any model (the convention of models/base_model.py)
# ---------------------------------------------------------------------------------------------------

def label_colouring(opt):
    """Keyword arguments of :func:`tensor2label` for the label maps of the semantic options: the
    dataset's unknown value (``unknown_label``: COCO-Stuff's unlabeled, ADE20K's 'other objects') black."""
    import data

    return {"n_label": opt.label_nc + (1 if opt.contain_dontcare_label else 0),
            "dataset_mode": opt.dataset_mode,
            "dontcare_index": data.find_dataset_using_name(opt.dataset_mode).unknown_label(opt)}


def visual_arrays(name, item, opt, rounding="round"):
    """One sample of one visual -> {picture name: uint8 array [H,W,3] (or [H,W])}, by the tensor's kind.

    int [1,H,W]: a label map, colourised (``opt`` gives the label count); float [3,H,W] in [-1,1]:
    an image (quantised by ``rounding``, see :func:`tensor2im`); float [1,H,W] in [0,1]: a map, as grey
    [H,W] (``name``) and as a heat map (``name + '_heatmap'``); float [C]: a vector of weights in
    [0,1], as a bar chart.
    """
    item = item.detach().cpu()
    if item.dim() == 1:
        return {name: bar_chart(item.float())}
    if item.dim() != 3:
        raise ValueError(f"visual {name!r}: expected [C] or [C,H,W] per sample, got {tuple(item.shape)}")
    if not item.is_floating_point():
        return {name: tensor2label(item, **label_colouring(opt))}
    if item.size(0) == 1:
        grey = (item.float().clamp(0, 1)[0] * 255).round().to(torch.uint8).numpy()
        return {name: grey, name + "_heatmap": attention_heatmap(item)}
    return {name: tensor2im(item, rounding)}
