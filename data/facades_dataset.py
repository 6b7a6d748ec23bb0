"""``--dataset_mode facades``: CMP Facades as prepared for SPADE/DAGAN.

Layout under ``--dataroot``: ``{train,val}_img/*.jpg`` and ``{train,val}_label/*.png`` (palette or grey
PNGs with 13 class ids, 0..12). No instance maps. ``--phase test`` reads ``test_*`` if present, else
``val_*``.
"""

from data.class_names import FACADES_CLASSES
from data.custom_dataset import split_folder
from data.pix2pix_dataset import Pix2pixDataset, list_files


class FacadesDataset(Pix2pixDataset):
    """Facades at 1024x1024; samples as in Pix2pixDataset."""

    class_table = FACADES_CLASSES

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser.set_defaults(dataroot="./datasets/facades", preprocess_mode="resize_and_crop",
                            load_size=1054 if is_train else 1024, crop_size=1024, aspect_ratio=1.0,
                            display_winsize=1024, label_nc=13, contain_dontcare_label=False, no_instance=True)
        return parser

    def get_paths(self, opt):
        label_paths = list_files(split_folder(opt.dataroot, opt.phase, "label"), "facade label maps (*.png)",
                                 extensions=(".png",))
        image_paths = list_files(split_folder(opt.dataroot, opt.phase, "img"), "facade photos (*.jpg)")
        return label_paths, image_paths, []
