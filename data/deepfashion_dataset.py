"""``--dataset_mode deepfashion``: DeepFashion human parsing maps (20 classes) and photos.

Folders: ``--label_dir`` / ``--image_dir`` when given (as in the DAGAN scripts), else
``<dataroot>/{train,test}_label`` and ``_img``. Files pair by stem. No instance maps.
"""

from data.class_names import DEEPFASHION_CLASSES
from data.custom_dataset import CustomDataset, add_folder_options, split_folder
from data.pix2pix_dataset import Pix2pixDataset


class DeepFashionDataset(CustomDataset):
    """DeepFashion at 256x256; samples as in Pix2pixDataset."""

    class_table = DEEPFASHION_CLASSES

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser = add_folder_options(parser, "<dataroot>/<phase>_label, <dataroot>/<phase>_img")
        parser.set_defaults(dataroot="./datasets/deepfashion", preprocess_mode="resize_and_crop",
                            load_size=286 if is_train else 256, crop_size=256, aspect_ratio=1.0,
                            display_winsize=256, label_nc=20, contain_dontcare_label=False, no_instance=True)
        return parser

    @staticmethod
    def validate_options(opt):
        Pix2pixDataset.validate_options(opt)  # the folders default to <dataroot>/<phase>_label, _img

    def folders(self, opt):
        return (opt.label_dir or split_folder(opt.dataroot, opt.phase, "label"),
                opt.image_dir or split_folder(opt.dataroot, opt.phase, "img"),
                opt.instance_dir)
