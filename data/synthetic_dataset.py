"""``--dataset_mode synthetic``: the embedded default data, generated on first use.

The data (see ``data/synthetic.py``) is written under ``--dataroot`` (default ``./datasets/synthetic``)
in the ``custom`` layout: ``{train,val}_label/``, ``{train,val}_img/``, ``{train,val}_inst/``.
``--phase test`` reads the ``val`` split.
"""

from data import synthetic
from data.custom_dataset import CustomDataset, split_folder
from data.pix2pix_dataset import Pix2pixDataset

# Preset of the main job: `python train.py` with no arguments must finish within ~10 minutes on 2 CPU
# cores. Applied as parser defaults when training (flags given on the command line still win); the
# architecture keys among them are also applied at test time so test.py rebuilds the same network.
# Tuned by measurement (PIPELINE-TRAIN helper, 1 torch thread, no VGG loss, seed 0): DAGAN at 32x32
# with ngf 16 costs ~0.43 CPU-s per iteration at batch 4 (crop 64 costs ~3x more, the 128-channel
# SPADE MLPs dominate); 600 iterations reach 94% pixel accuracy on val, while lr 2e-4 reached only 90%
# after 700 iterations, hence lr 4e-4 (G 2e-4, D 8e-4 under TTUR).
SYNTHETIC_TRAIN_DEFAULTS = dict(
    preprocess_mode="fixed",
    load_size=32,
    crop_size=32,
    aspect_ratio=1.0,
    ngf=16,
    ndf=16,
    batchSize=4,
    lr=0.0004,
    niter=4,
    niter_decay=2,
    print_freq=10,  # 600 iterations: 60 points on the loss curves of the training page
)

# Keys of the preset that define the network or the data geometry (needed again by test.py).
_TEST_KEYS = ("preprocess_mode", "load_size", "crop_size", "aspect_ratio", "ngf", "norm_G", "netG",
              "num_upsampling_layers", "z_dim", "use_vae", "no_sam", "no_cam", "cam_mode", "cam_scales")


class SyntheticDataset(CustomDataset):
    """Generated scenes, 8 classes with instance maps; samples as in Pix2pixDataset."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = Pix2pixDataset.modify_commandline_options(parser, is_train)
        parser.add_argument("--synthetic_seed", type=int, default=synthetic.DEFAULT_SEED,
                            help="seed of the generated synthetic dataset")
        parser.add_argument("--synthetic_num_train", type=int, default=synthetic.DEFAULT_NUM_TRAIN,
                            help="number of generated training scenes")
        parser.add_argument("--synthetic_num_val", type=int, default=synthetic.DEFAULT_NUM_VAL,
                            help="number of generated validation scenes")
        parser.add_argument("--synthetic_size", type=int, default=synthetic.DEFAULT_SIZE,
                            help="side of the generated square scenes in pixels")
        parser.set_defaults(dataroot="./datasets/synthetic", label_nc=synthetic.NUM_CLASSES,
                            contain_dontcare_label=False, no_instance=False, display_winsize=64,
                            preprocess_mode="fixed", load_size=64, crop_size=64, aspect_ratio=1.0)
        if is_train:
            parser.set_defaults(**SYNTHETIC_TRAIN_DEFAULTS)
        else:
            parser.set_defaults(**{k: v for k, v in SYNTHETIC_TRAIN_DEFAULTS.items() if k in _TEST_KEYS})
        return parser

    def folders(self, opt):
        root = synthetic.ensure_synthetic_dataset(
            opt.dataroot,
            seed=getattr(opt, "synthetic_seed", synthetic.DEFAULT_SEED),
            num_train=getattr(opt, "synthetic_num_train", synthetic.DEFAULT_NUM_TRAIN),
            num_val=getattr(opt, "synthetic_num_val", synthetic.DEFAULT_NUM_VAL),
            size=getattr(opt, "synthetic_size", synthetic.DEFAULT_SIZE),
        )
        phase = "val" if opt.phase == "test" else opt.phase
        return tuple(split_folder(root, phase, kind) for kind in ("label", "img", "inst"))
