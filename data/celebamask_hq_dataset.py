"""``--dataset_mode celebamask_hq``: CelebAMask-HQ faces with 19-class part label maps.

The label maps are made from the released per-part masks by ``datasets/prepare_celebamask_hq.py``
(class order: background, skin, nose, eye_g, l_eye, r_eye, l_brow, r_brow, l_ear, r_ear, mouth, u_lip,
l_lip, hair, hat, ear_r, neck_l, neck, cloth). Folders: ``--label_dir`` / ``--image_dir`` when given,
else ``<dataroot>/{train,val,test}_label`` and ``_img`` as written by that script.
"""

from data.custom_dataset import CustomDataset, add_folder_options, split_folder
from data.pix2pix_dataset import Pix2pixDataset

CELEBAMASK_HQ_CLASSES = ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
                         "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")


class CelebAMaskHQDataset(CustomDataset):
    """CelebAMask-HQ at 512x512; samples as in Pix2pixDataset."""

    class_table = CELEBAMASK_HQ_CLASSES

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser = add_folder_options(parser, "<dataroot>/<phase>_label, <dataroot>/<phase>_img")
        parser.set_defaults(dataroot="./datasets/celebamask_hq", preprocess_mode="resize_and_crop",
                            load_size=542 if is_train else 512, crop_size=512, aspect_ratio=1.0,
                            display_winsize=512, label_nc=len(CELEBAMASK_HQ_CLASSES), contain_dontcare_label=False,
                            no_instance=True)
        return parser

    @staticmethod
    def validate_options(opt):
        Pix2pixDataset.validate_options(opt)  # the folders default to <dataroot>/<phase>_label, _img

    def folders(self, opt):
        return (opt.label_dir or split_folder(opt.dataroot, opt.phase, "label"),
                opt.image_dir or split_folder(opt.dataroot, opt.phase, "img"),
                "")
