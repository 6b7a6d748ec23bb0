"""``--dataset_mode cityscapes``: the Cityscapes fine annotations as they ship.

Layout under ``--dataroot``::

    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      (8-bit, 35 label ids)
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   (16-bit, ids like 26001)
    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png

Files pair by ``<city>_<seq>_<frame>``. ``--phase test`` reads ``val`` (the test labels are not public).
Instance ids are read as integers (``class * 1000 + k`` for things, the label id for stuff).
"""

import os

from data.class_names import CITYSCAPES_CLASSES
from data.pix2pix_dataset import Pix2pixDataset, list_files
from util.util import cityscapes_palette


class CityscapesDataset(Pix2pixDataset):
    """Cityscapes at 512x256 (``fixed``, aspect 2); samples as in Pix2pixDataset."""

    class_table = CITYSCAPES_CLASSES
    class_colours = cityscapes_palette()  # the official colours (pictures of label maps, the demo)

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser.set_defaults(dataroot="./datasets/cityscapes", preprocess_mode="fixed", load_size=512, crop_size=512,
                            aspect_ratio=2.0, display_winsize=512, label_nc=35, contain_dontcare_label=False,
                            no_instance=False)
        return parser

    @staticmethod
    def unknown_label(opt):
        """labelId 0 is "unlabeled"."""
        return 0

    def get_paths(self, opt):
        split = "val" if opt.phase == "test" else opt.phase
        label_dir = os.path.join(opt.dataroot, "gtFine", split)
        image_dir = os.path.join(opt.dataroot, "leftImg8bit", split)
        label_paths = list_files(label_dir, "<city>/*_gtFine_labelIds.png (Cityscapes gtFine)",
                                 suffix="_gtFine_labelIds.png")
        image_paths = list_files(image_dir, "<city>/*_leftImg8bit.png (Cityscapes leftImg8bit)",
                                 suffix="_leftImg8bit.png")
        instance_paths = []
        if not opt.no_instance:
            instance_paths = list_files(label_dir, "<city>/*_gtFine_instanceIds.png (Cityscapes gtFine)",
                                        suffix="_gtFine_instanceIds.png")
        return label_paths, image_paths, instance_paths

    def pair_key(self, path):
        return "_".join(os.path.basename(path).split("_")[:3])
