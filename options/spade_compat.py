"""Flags of NVlabs SPADE (and of SPADE-derived official code: CC-FPSE) accepted here although they do nothing.

A SPADE command line must run unchanged. Every SPADE flag that has a working counterpart here is a
real option, declared by the component that uses it; the rest are in :data:`SPADE_NOOP_FLAGS`: they
parse (with SPADE's value type), never reach the options object, and log one warning each when given.
"""

import argparse
import logging

logger = logging.getLogger(__name__)

_TORCHRUN = ("CC-FPSE's multi-process launch: run 'torchrun --nproc_per_node N train.py ...' "
             "(scripts/launch_train.sh) for DDP over N GPUs, with --batchSize the global batch "
             "(N x the official per-process --batchSize)")

_SEE_MPDIST = "a flag of CC-FPSE's multi-process launch (see --mpdist): use torchrun"

# flag -> (phases where SPADE declares it, argparse keyword arguments, why it does nothing here).
# Phases: "train" = train.py only, "both" = train.py and test.py. Values with choices accept only
# the value this code behaves like (SPADE's default), so nothing else is silently ignored.
SPADE_NOOP_FLAGS = {
    # SPADE options/train_options.py
    "--tf_log": ("train", dict(action="store_true"),
                 "the training page and loss_log.jsonl replace TensorBoard logging"),
    "--debug": ("train", dict(action="store_true"),
                "use --max_dataset_size / --niter for a short run"),
    "--optimizer": ("train", dict(type=str, choices=("adam",)), "Adam is the only optimiser"),
    # SPADE options/base_options.py
    "--cache_filelist_write": ("both", dict(action="store_true"), "file lists are not cached"),
    "--cache_filelist_read": ("both", dict(action="store_true"), "file lists are not cached"),
    "--nef": ("both", dict(type=int), "no network reads it, in SPADE neither"),
    # SPADE models/networks/discriminator.py (MultiscaleDiscriminator)
    "--netD_subarch": ("train", dict(type=str, choices=("n_layer",)),
                       "the multiscale discriminator is always made of n_layer PatchGANs"),
    # SPADE data/coco_dataset.py
    "--coco_no_portraits": ("both", dict(action="store_true"), "no dataset reads it, in SPADE neither"),
    # CC-FPSE options/base_options.py: its own multi-process launcher (mp.spawn + NCCL). Here multi-GPU
    # training is torchrun + DDP, and --batchSize is the global batch (the official one is per process).
    "--mpdist": ("both", dict(action="store_true"), _TORCHRUN),
    "--dist_url": ("both", dict(type=str), _SEE_MPDIST),
    "--num_servers": ("both", dict(type=int), _SEE_MPDIST),
    "--idx_server": ("both", dict(type=int), _SEE_MPDIST),
    "--ngpus_per_node": ("both", dict(type=int), _SEE_MPDIST),
}


def noop_dest(flag):
    return flag.lstrip("-")


def add_noop_flags(parser, is_train):
    """Declare the no-op flags of this phase, in their own group of ``--help``. Their default is
    ``SUPPRESS``: absent from the options object unless given."""
    group = parser.add_argument_group("SPADE flags accepted for compatibility, without effect here")
    for flag, (phases, kwargs, reason) in SPADE_NOOP_FLAGS.items():
        if phases == "train" and not is_train:
            continue
        group.add_argument(flag, default=argparse.SUPPRESS, **kwargs, help=reason)
    return parser


def pop_noop_flags(opt):
    """Remove the given no-op flags from ``opt``, warning once for each; returns their flags."""
    given = []
    for flag in SPADE_NOOP_FLAGS:
        dest = noop_dest(flag)
        if dest in vars(opt):
            delattr(opt, dest)
            given.append(flag)
            logger.warning("%s is accepted for SPADE compatibility but has no effect here (%s)",
                           flag, SPADE_NOOP_FLAGS[flag][2])
    return given
