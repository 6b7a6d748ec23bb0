"""``--dataset_mode unaligned``: two unpaired image folders, as CycleGAN / AttentionGAN read them.

Layout under ``--dataroot``: ``trainA/``, ``trainB/`` (training), ``testA/``, ``testB/`` (``--phase test``;
``--phase val``, the split evaluation during training reads, is the test split too), images of any
format PIL opens, read in sorted (natural) order; grey-scale, palette and RGBA images are converted to
RGB, as the official code does. An epoch has max(|A|, |B|) samples: sample i is A[i mod |A|] with
B[i mod |B|] at test time and a random B in training (seeded by (--seed, epoch, i)). ``--direction
BtoA`` swaps the two folders.

Sample: 'A', 'B' float32 [3,H,W] in [-1,1] (ToTensor then Normalize(0.5, 0.5), as torchvision
computes them); 'A_paths', 'B_paths' and 'path' (= the A file: results are named by it).

Preprocessing (CycleGAN's ``--preprocess``; ``--preprocess_mode`` is the same flag):
``resize_and_crop`` (resize to load_size x load_size, PIL bicubic, aspect not kept, then crop
crop_size), ``crop``, ``scale_width`` (width load_size, height kept in proportion but at least
crop_size), ``scale_width_and_crop``, ``none`` (sides rounded to multiples of 4); horizontal flip in
training unless ``--no_flip``. Crops are random in training and centred at test time (the official
test crops at random; with its settings, load_size = crop_size, there is nothing to crop).
"""

import logging
import os

import numpy as np
import torch
from PIL import Image

from data.base_dataset import BaseDataset
from data.pix2pix_dataset import natural_sorted, read_rgb, require_dir
from util.errors import OptionError

logger = logging.getLogger(__name__)

CYCLEGAN_PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
POWER_BASE = 4  # 'none': sides rounded to multiples of this (CycleGAN's __make_power_2)


def image_files(folder):
    """Every image file PIL can open directly under ``folder`` (recursively), natural order."""
    found = []
    extensions = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        found += [os.path.join(dirpath, n) for n in filenames if os.path.splitext(n)[1].lower() in extensions]
    return natural_sorted(found)


def cyclegan_size(opt, w, h):
    """(width, height) after the resize step of ``opt.preprocess_mode`` for a w x h image."""
    mode, load, crop = opt.preprocess_mode, opt.load_size, opt.crop_size
    if mode == "resize_and_crop":
        return load, load
    if mode in ("scale_width", "scale_width_and_crop") and not (w == load and h >= crop):
        return load, int(max(load * h / w, crop))
    if mode == "none":
        return tuple(int(round(s / POWER_BASE) * POWER_BASE) for s in (w, h))
    return w, h


def cyclegan_resize(img, opt):
    """The resize step of ``opt.preprocess_mode`` (PIL bicubic)."""
    size = cyclegan_size(opt, *img.size)
    return img if size == img.size else img.resize(size, Image.BICUBIC)


def to_normalised_tensor(img):
    """PIL RGB -> float32 [3,H,W]: x / 255, then (x - 0.5) / 0.5, as ToTensor + Normalize compute it."""
    t = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    return t.float().div(255).sub(0.5).div(0.5)


class UnalignedDataset(BaseDataset):
    """Unpaired A and B images; samples as in the module docstring."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = BaseDataset.modify_commandline_options(parser, is_train)
        parser.add_argument("--direction", type=str, default="AtoB", choices=("AtoB", "BtoA"),
                            help="AtoB: A is the source domain; BtoA swaps the A and B folders")
        parser.set_defaults(dataroot="./datasets/horse2zebra", preprocess_mode="resize_and_crop", load_size=286,
                            crop_size=256, aspect_ratio=1.0, display_winsize=256)
        return parser

    @staticmethod
    def validate_options(opt):
        if opt.preprocess_mode not in CYCLEGAN_PREPROCESS:
            raise OptionError("--preprocess", opt.preprocess_mode, list(CYCLEGAN_PREPROCESS), kind="preprocessing")
        if "crop" in opt.preprocess_mode and opt.preprocess_mode != "crop" and opt.load_size < opt.crop_size:
            raise OptionError("--load_size", opt.load_size, f"must be at least --crop_size {opt.crop_size}")

    @staticmethod
    def split_folders(opt):
        """(A folder, B folder) of the phase; --direction BtoA swaps them."""
        split = "train" if opt.phase == "train" else "test"
        a, b = (os.path.join(opt.dataroot, split + s) for s in ("A", "B"))
        return (b, a) if opt.direction == "BtoA" else (a, b)

    @classmethod
    def input_folders(cls, opt):
        folders = cls.split_folders(opt)
        if getattr(opt, "single_generator", False) and not opt.isTrain:
            folders = folders[:1]
        return [("--dataroot", folder) for folder in folders]

    def __init__(self, opt):
        self.opt = opt
        self.train = opt.isTrain and opt.phase == "train"
        folder_a, folder_b = self.split_folders(opt)
        self.A_paths = self._list(folder_a, "A")[:opt.max_dataset_size]
        # test.py --single_generator translates A only: no B folder needed
        self.single = bool(getattr(opt, "single_generator", False)) and not opt.isTrain
        self.B_paths = [] if self.single else self._list(folder_b, "B")[:opt.max_dataset_size]
        self._told_about_mode = False

    @staticmethod
    def _list(folder, domain):
        require_dir(folder, f"the images of domain {domain} (CycleGAN layout: trainA/, trainB/, testA/, testB/)")
        files = image_files(folder)
        if not files:
            raise FileNotFoundError(f"folder {folder} contains no image files; expected the images of domain {domain}")
        return files

    def __len__(self):
        return max(len(self.A_paths), len(self.B_paths))

    def _load(self, path, rng):
        img = read_rgb(path)
        with Image.open(path) as raw:
            mode = raw.mode
        if mode != "RGB" and not self._told_about_mode:
            logger.info("%s is a %s image: converted to RGB (as the official code does); further such files "
                        "are converted without notice", path, mode)
            self._told_about_mode = True
        img = cyclegan_resize(img, self.opt)
        if "crop" in self.opt.preprocess_mode:
            size = self.opt.crop_size
            w, h = img.size
            if w < size or h < size:
                raise ValueError(f"image {path} is {w}x{h} after resizing, smaller than --crop_size {size}")
            if self.train:
                x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
            else:
                x, y = (w - size) // 2, (h - size) // 2
            img = img.crop((x, y, x + size, y + size))
        if self.train and not self.opt.no_flip and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_normalised_tensor(img)

    def __getitem__(self, index):
        rng = np.random.default_rng([int(self.opt.seed), int(self.epoch), int(index)])
        a_path = self.A_paths[index % len(self.A_paths)]
        if self.single:
            return {"A": self._load(a_path, rng), "A_paths": a_path, "path": a_path}
        if self.train and not self.opt.serial_batches:
            b_path = self.B_paths[int(rng.integers(0, len(self.B_paths)))]
        else:
            b_path = self.B_paths[index % len(self.B_paths)]
        return {"A": self._load(a_path, rng), "B": self._load(b_path, rng), "A_paths": a_path, "B_paths": b_path,
                "path": a_path}

    # -- the data check before a run --------------------------------------------------------------
    def data_files(self):
        return [(p, "image") for p in dict.fromkeys(self.A_paths + self.B_paths)]

    def data_problems(self, facts):
        problems = []
        for path, _ in self.data_files():
            found = facts[path]["image"]
            if "error" in found:
                problems.append((path, found["error"]))
                continue
            if "crop" in self.opt.preprocess_mode:
                w, h = cyclegan_size(self.opt, *found["size"])
                if w < self.opt.crop_size or h < self.opt.crop_size:
                    problems.append((path, f"image {path} is {w}x{h} after resizing, smaller than --crop_size "
                                           f"{self.opt.crop_size}"))
        return problems
