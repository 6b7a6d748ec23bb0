"""Options of the OASIS model (``--model oasis``): the official OASIS flag names and defaults.

The official command lines (``train.py`` / ``test.py`` of boschresearch/OASIS) run unchanged with
``--model oasis``; flags that name a generic setting of this repository are second names of it:

=========================  =========================================================================
official flag              here
=========================  =========================================================================
``--batch_size``           ``--batchSize`` (global batch)
``--num_epochs``           ``--niter`` (no decay: ``--niter_decay 0``)
``--EMA_decay``            ``--ema_decay`` (default 0.9999; ``--no_EMA``: no EMA / test the plain G)
``--freq_fid``             ``--eval_freq`` (FID on the val split, best checkpoint kept)
``--freq_print``           ``--print_freq`` and ``--display_freq``
``--freq_save_latest``     ``--save_latest_freq`` (iterations)
``--freq_save_ckpt``       ``--save_iter_freq`` (iterations between ``models/<iter>_G.pth`` files)
``--which_iter`` (train)   ``--which_epoch`` (what ``--continue_train`` loads)
``--ckpt_iter`` (test)     ``--which_epoch`` (default ``best``, as the official test)
=========================  =========================================================================

``--freq_smooth_loss`` / ``--freq_save_loss`` (the official loss plot's smoothing) are accepted and have
no effect. ``--channels_D``, which the official code ignores, scales the D's channels here (its
default 64 gives the official D).
"""

import argparse

import logging
import os

from models.networks import oasis as oasis_networks
from models.networks.loss import VGG19_FILE
from util.errors import OptionError, require_non_negative, require_positive

logger = logging.getLogger(__name__)


class _BothFreqs(argparse.Action):
    """``--freq_print N``: the official flag sets both the loss-log and the image frequency."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.print_freq = values
        namespace.display_freq = values


def modify_commandline_options(parser, is_train):
    oasis_networks.modify_commandline_options(parser, is_train)
    parser.add_argument("--no_EMA", action="store_true",
                        help="training: keep no EMA of G; testing: use the plain G (<epoch>_G.pth) instead of "
                             "the EMA (<epoch>_EMA.pth)")
    if not is_train:
        parser.add_argument("--ckpt_iter", dest="which_epoch", type=str,
                            help="the official name of --which_epoch (default: best)")
        parser.set_defaults(which_epoch="best", use_ema=True)
        return parser

    parser.add_argument("--lr_g", type=float, default=0.0001, help="G learning rate (Adam, constant)")
    parser.add_argument("--lr_d", type=float, default=0.0004, help="D learning rate (Adam, constant)")
    parser.add_argument("--beta1", type=float, default=0.0, help="Adam beta1")
    parser.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    parser.add_argument("--lambda_labelmix", type=float, default=10.0, help="weight of the LabelMix loss")
    parser.add_argument("--no_labelmix", action="store_true", help="no LabelMix regularisation of D")
    parser.add_argument("--no_balancing_inloss", action="store_true",
                        help="no class balancing of the cross entropy (every pixel weighs 1)")
    parser.add_argument("--add_vgg_loss", action="store_true", help="add the VGG perceptual loss to G's loss")
    parser.add_argument("--no_vgg_loss", dest="add_vgg_loss", action="store_false",
                        help="no VGG loss (the OASIS default; the flag of the pix2pix model, accepted)")
    parser.add_argument("--lambda_vgg", type=float, default=10.0, help="weight of the VGG loss (--add_vgg_loss)")
    parser.add_argument("--fast_ops", action="store_true",
                        help="train with the fast layers of models/networks/ops (same values up to float rounding, "
                             "which Adam's first steps can amplify); default: the official computation")
    parser.add_argument("--vgg_weights", type=str, default=None,
                        help=f"VGG19 ImageNet weights file (default: <torch hub dir>/checkpoints/{VGG19_FILE})")
    # second names of generic settings (see the module docstring)
    parser.add_argument("--num_epochs", dest="niter", type=int, help="the official name of --niter (epochs)")
    parser.add_argument("--EMA_decay", dest="ema_decay", type=float, help="the official name of --ema_decay")
    parser.add_argument("--freq_fid", dest="eval_freq", type=int, help="the official name of --eval_freq")
    parser.add_argument("--freq_print", action=_BothFreqs, type=int, dest="freq_print", default=argparse.SUPPRESS,
                        help="the official flag: sets --print_freq and --display_freq")
    parser.add_argument("--freq_save_latest", dest="save_latest_freq", type=int,
                        help="the official name of --save_latest_freq")
    parser.add_argument("--freq_save_ckpt", dest="save_iter_freq", type=int,
                        help="the official name of --save_iter_freq")
    parser.add_argument("--which_iter", dest="which_epoch", type=str,
                        help="the official name of --which_epoch")
    parser.add_argument("--freq_smooth_loss", type=int, default=250,
                        help="accepted for the official command lines (smoothing of its loss plot); no effect")
    parser.add_argument("--freq_save_loss", type=int, default=2500,
                        help="accepted for the official command lines (its loss-plot updates); no effect")
    # The official defaults (config.py); the presets per dataset (models/oasis_presets.py) refine them.
    parser.set_defaults(niter=200, niter_decay=0, ema_decay=0.9999, eval_freq=5000, print_freq=1000,
                        display_freq=1000, save_latest_freq=10000, save_iter_freq=20000, bn_recalib_batches=51,
                        seed=42)
    return parser


def validate_options(opt):
    """Checks, and the settings OASIS derives: no instance maps, ``semantic_nc`` = the label channels
    (unknown first), ``oasis_unknown_label`` (the dataset's unknown value or None), ``--no_EMA``."""
    import data
    from data.pix2pix_dataset import label_channels

    if "semantic_nc" not in vars(opt):
        raise OptionError("--dataset_mode", opt.dataset_mode,
                          f"--model {opt.model} needs a dataset of label maps (a semantic dataset)")
    opt.no_instance = True  # OASIS conditions on the label map alone
    opt.model_uses_instances = False  # (the datasets say nothing about instance maps they skip)
    opt.semantic_nc = label_channels(opt)
    opt.oasis_unknown_label = data.find_dataset_using_name(opt.dataset_mode).unknown_label(opt)
    oasis_networks.validate_options(opt)
    if not opt.isTrain:
        if opt.no_EMA:
            opt.use_ema = False
        run = os.path.join(opt.checkpoints_dir, opt.name)
        if (opt.which_epoch == "best" and not getattr(opt, "which_epoch_given", True)
                and not os.path.exists(os.path.join(run, "best_iter.txt"))
                and os.path.exists(os.path.join(run, "latest_iter.txt"))):
            # The official default is the best checkpoint, which exists only when FID ran during training
            # (the synthetic main job does not compute it): then the latest one, said in the log.
            logger.info("%s holds no best checkpoint (no FID during training): testing the latest one", run)
            opt.which_epoch = "latest"
        if opt.n_samples > 1 and opt.no_3dnoise:
            raise OptionError("--n_samples", opt.n_samples, "needs the noise input: with --no_3dnoise the OASIS "
                                                           "generator is deterministic (every sample the same image)")
        return
    require_positive(opt, "lr_g", "lr_d", kind="number")
    require_non_negative(opt, "lambda_labelmix", "lambda_vgg", kind="number")
    if opt.no_EMA:
        opt.ema_decay = 0.0
