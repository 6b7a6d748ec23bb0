"""Image folders for evaluation: listing, pairing by file stem, loading as tensors."""
import logging
import os

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

# Same extension set as pytorch-fid, so a folder scores the same files in both tools.
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")


def list_images(folder):
    """Sorted image paths directly inside ``folder`` (not recursive, like pytorch-fid)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder '{folder}' does not exist")
    files = sorted(
        os.path.join(folder, f) for f in os.listdir(folder)
        if f.lower().rsplit(".", 1)[-1] in IMAGE_EXTENSIONS and "." in f
        and os.path.isfile(os.path.join(folder, f)))
    if not files:
        raise ValueError(f"image folder '{folder}' contains no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def pair_by_stem(real_files, fake_files, real_dir="real", fake_dir="fake"):
    """Pair two file lists by file stem. Returns [(real, fake), ...] sorted by stem.

    Raises ValueError listing the stems present on one side only (and duplicated stems), because
    a silently partial evaluation gives numbers that cannot be compared.
    """
    def by_stem(files, where):
        table = {}
        for f in files:
            s = stem(f)
            if s in table:
                raise ValueError(f"two files with stem '{s}' in {where}: '{table[s]}' and '{f}'")
            table[s] = f
        return table

    real = by_stem(real_files, real_dir)
    fake = by_stem(fake_files, fake_dir)
    only_real = sorted(set(real) - set(fake))
    only_fake = sorted(set(fake) - set(real))
    if only_real or only_fake:
        def show(names):
            return ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        msg = ["real and fake images do not match by file stem."]
        if only_real:
            msg.append(f"Only in {real_dir}: {show(only_real)}.")
        if only_fake:
            msg.append(f"Only in {fake_dir}: {show(only_fake)}.")
        raise ValueError(" ".join(msg))
    return [(real[s], fake[s]) for s in sorted(real)]


def load_image01(path):
    """RGB image as float32 tensor [3,H,W] in [0,1] (uint8 / 255, as torchvision's ToTensor)."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read image '{path}': {err}") from err
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def batches(items, batch_size):
    for i in range(0, len(items), batch_size):
        yield items[i:i + batch_size]
