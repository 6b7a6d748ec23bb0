"""``--dataset_mode coco``: COCO-Stuff as prepared for SPADE.

Layout under ``--dataroot``: ``{train,val}_img/*.jpg``, ``{train,val}_label/*.png`` (8-bit, 182 classes,
255 = unlabeled -> channel 182), ``{train,val}_inst/*.png`` (8-bit instance ids). ``--phase test`` reads
``val``.
"""

import os

from data.class_names import COCO_STUFF_CLASSES
from data.pix2pix_dataset import Pix2pixDataset, list_files


class CocoDataset(Pix2pixDataset):
    """COCO-Stuff at 256x256; samples as in Pix2pixDataset."""

    class_table = COCO_STUFF_CLASSES  # file values 0..181; 255 (unlabeled) is the dontcare value 182

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser.set_defaults(dataroot="./datasets/coco_stuff", preprocess_mode="resize_and_crop",
                            load_size=286 if is_train else 256, crop_size=256, aspect_ratio=1.0,
                            display_winsize=256, label_nc=182, contain_dontcare_label=True, no_instance=False)
        return parser

    def get_paths(self, opt):
        split = "val" if opt.phase == "test" else opt.phase
        root = opt.dataroot
        label_paths = list_files(os.path.join(root, f"{split}_label"), "COCO-Stuff label maps (*.png)",
                                 extensions=(".png",))
        image_paths = list_files(os.path.join(root, f"{split}_img"), "COCO photos (*.jpg)")
        instance_paths = []
        if not opt.no_instance:
            instance_paths = list_files(os.path.join(root, f"{split}_inst"), "COCO instance maps (*.png)",
                                        extensions=(".png",))
        return label_paths, image_paths, instance_paths
