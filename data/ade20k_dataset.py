"""``--dataset_mode ade20k``: the SceneParsing release ``ADEChallengeData2016`` as it ships.

Layout under ``--dataroot`` (searched recursively; the split is chosen by ``_train_`` / ``_val_`` in the
file name, so a flat folder works too)::

    images/training/ADE_train_00000001.jpg        annotations/training/ADE_train_00000001.png
    images/validation/ADE_val_00000001.jpg        annotations/validation/ADE_val_00000001.png

Label encoding: raw value v (0 = unlabeled, 1..150 = classes) goes to one-hot channel v of 151 channels
(``--label_nc 150 --contain_dontcare_label``). The SPADE reference code intends a shift (v - 1, with
0 moved to the extra "unlabeled" channel 150) in ``postprocess``, but that function rebinds a local
variable and returns nothing, so the shift never takes effect and the official checkpoints were trained
with v -> v. That effective mapping is the default here; ``--ade20k_label_shift`` applies the intended
shift instead (not compatible with official checkpoints). ``--phase test`` reads the validation split.
"""

import os

import numpy as np

from data.class_names import ADE20K_CLASSES
from data.pix2pix_dataset import Pix2pixDataset, list_files


class ADE20KDataset(Pix2pixDataset):
    """ADE20K at 256x256; samples as in Pix2pixDataset."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser.add_argument("--ade20k_label_shift", action="store_true",
                            help="map v -> v-1 and 0 -> label_nc (the shift the reference code intends but "
                                 "never applies; official checkpoints use v -> v)")
        parser.set_defaults(dataroot="./datasets/ADEChallengeData2016", preprocess_mode="resize_and_crop",
                            load_size=286 if is_train else 256, crop_size=256, aspect_ratio=1.0,
                            display_winsize=256, label_nc=150, contain_dontcare_label=True, no_instance=True)
        return parser

    @staticmethod
    def unknown_label(opt):
        """Raw value 0 is "unlabelled" (channel label_nc after --ade20k_label_shift)."""
        return opt.label_nc if opt.ade20k_label_shift else 0

    @classmethod
    def class_names(cls, opt):
        """Raw values: 0 'other objects', v the v-th class; with --ade20k_label_shift class v is value
        v - 1 and 'other objects' value label_nc."""
        names = list(ADE20K_CLASSES[:opt.label_nc + 1]) + [f"class {v}" for v in range(151, opt.label_nc + 1)]
        return names[1:] + names[:1] if opt.ade20k_label_shift else names

    def get_paths(self, opt):
        split = "train" if opt.phase == "train" else "val"
        tag = f"_{split}_"
        expected = f"ADE_{split}_*.jpg photos and ADE_{split}_*.png label maps (ADEChallengeData2016 layout)"
        files = list_files(opt.dataroot, expected, extensions=(".jpg", ".png"))
        image_paths = [p for p in files if tag in os.path.basename(p) and p.lower().endswith(".jpg")]
        label_paths = [p for p in files if tag in os.path.basename(p) and p.lower().endswith(".png")]
        if not image_paths or not label_paths:
            raise FileNotFoundError(
                f"found {len(image_paths)} photos and {len(label_paths)} label maps with {tag!r} in the name under "
                f"{opt.dataroot}; expected {expected}"
            )
        return label_paths, image_paths, []

    @staticmethod
    def remap_label(opt, array):
        if opt.ade20k_label_shift:
            return np.where(array == 0, opt.label_nc, array - 1)
        return array
