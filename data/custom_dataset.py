"""``--dataset_mode custom``: label maps, photos and (optionally) instance maps in three folders.

``--label_dir`` and ``--image_dir`` are required; ``--instance_dir`` is optional (without it pass
``--no_instance``). Files are paired by file stem after natural sorting, so ``label_dir/0001.png``
pairs with ``image_dir/0001.jpg``. Sub-folders are searched too.
"""

import logging
import os

from data.pix2pix_dataset import Pix2pixDataset, list_files
from util.errors import OptionError

logger = logging.getLogger(__name__)


def add_folder_options(parser, default_text):
    """--label_dir, --image_dir, --instance_dir; ``default_text`` says what an empty folder flag means."""
    parser.add_argument("--label_dir", type=str, default="",
                        help=f"folder of label maps (single-channel PNG of class ids) (default: {default_text})")
    parser.add_argument("--image_dir", type=str, default="",
                        help=f"folder of the photos paired with the label maps (default: {default_text})")
    parser.add_argument("--instance_dir", type=str, default="",
                        help="folder of instance-id maps (default: none; then pass --no_instance)")
    return parser


def split_folder(root, phase, kind):
    """``<root>/<phase>_<kind>``; for --phase test falls back to ``val`` when there is no test split."""
    folder = os.path.join(root, f"{phase}_{kind}")
    if phase == "test" and not os.path.isdir(folder):
        folder = os.path.join(root, f"val_{kind}")
    return folder


class CustomDataset(Pix2pixDataset):
    """Folders given on the command line. Samples as in Pix2pixDataset ([1,H,W] label/instance, [3,H,W] image)."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser.set_defaults(preprocess_mode="resize_and_crop", load_size=286 if is_train else 256, crop_size=256,
                            display_winsize=256, label_nc=13, contain_dontcare_label=False)
        return add_folder_options(parser, "none, required")

    @staticmethod
    def validate_options(opt):
        Pix2pixDataset.validate_options(opt)
        for flag, folder in (("--label_dir", opt.label_dir), ("--image_dir", opt.image_dir)):
            if not folder:
                raise OptionError(flag, None, f"required by --dataset_mode {opt.dataset_mode}")

    @staticmethod
    def input_folders(opt):
        folders = [("--label_dir", opt.label_dir), ("--image_dir", opt.image_dir)]
        if opt.instance_dir and not opt.no_instance:
            folders.append(("--instance_dir", opt.instance_dir))
        return folders

    def folders(self, opt):
        """(label_dir, image_dir, instance_dir or '') of this dataset."""
        return opt.label_dir, opt.image_dir, opt.instance_dir

    def get_paths(self, opt):
        label_dir, image_dir, instance_dir = self.folders(opt)
        label_paths = list_files(label_dir, "label maps (single-channel PNGs of class ids)")
        image_paths = list_files(image_dir, "photos paired by file name with the label maps")
        instance_paths = []
        if instance_dir and not opt.no_instance:
            instance_paths = list_files(instance_dir, "instance-id maps paired by file name with the label maps")
        elif instance_dir and getattr(opt, "model_uses_instances", True):
            logger.warning("--no_instance is set: the instance maps in %s are ignored", instance_dir)
        return label_paths, image_paths, instance_paths
