"""``--dataset_mode synthetic``: the embedded default data, generated on first use.

The data (see ``data/synthetic.py``) is written under ``--dataroot`` (default ``./datasets/synthetic``)
in the ``custom`` layout: ``{train,val}_label/``, ``{train,val}_img/``, ``{train,val}_inst/``.
``--phase test`` reads the ``val`` split. The model's hyper-parameters for this data (the main job:
``python train.py`` with no arguments) are the pix2pix presets, ``models/pix2pix_presets.py``.
"""

from data import synthetic
from data.custom_dataset import CustomDataset, split_folder
from data.pix2pix_dataset import Pix2pixDataset
from util.errors import require_positive


class SyntheticDataset(CustomDataset):
    """Generated scenes, 8 classes with instance maps; samples as in Pix2pixDataset."""

    class_table = synthetic.CLASS_NAMES
    class_colours = synthetic.CLASS_COLOURS.astype("uint8")  # each class's flat colour (without texture)

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        synthetic.add_generation_flags(parser)
        # The scenes are generated at --synthetic_size and used at 32x32 (resized, no crop), train and test.
        parser.set_defaults(dataroot="./datasets/synthetic", label_nc=synthetic.NUM_CLASSES,
                            contain_dontcare_label=False, no_instance=False, display_winsize=64,
                            preprocess_mode="fixed", load_size=32, crop_size=32, aspect_ratio=1.0)
        return parser

    @staticmethod
    def validate_options(opt):
        Pix2pixDataset.validate_options(opt)  # the folders are generated under --dataroot
        require_positive(opt, "synthetic_num_train", "synthetic_num_val", "synthetic_size")

    @staticmethod
    def input_folders(opt):
        return []  # generated under --dataroot on first use

    @staticmethod
    def exact_scorer(opt):
        from util.layout_score import LayoutScorer

        return LayoutScorer(opt)

    def folders(self, opt):
        root = synthetic.ensure_synthetic_dataset(
            opt.dataroot,
            seed=opt.synthetic_seed,
            num_train=opt.synthetic_num_train,
            num_val=opt.synthetic_num_val,
            size=opt.synthetic_size,
        )
        phase = "val" if opt.phase == "test" else opt.phase
        return tuple(split_folder(root, phase, kind) for kind in ("label", "img", "inst"))
