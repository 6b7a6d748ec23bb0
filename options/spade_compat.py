"""Flags of NVlabs SPADE that are accepted here although they do nothing.

A SPADE command line must run unchanged. Every SPADE flag that has a working counterpart here is a
real option, declared by the component that uses it; the rest are in :data:`SPADE_NOOP_FLAGS`: they
parse (with SPADE's value type), never reach the options object, and log one warning each when given.
"""

import argparse
import logging

logger = logging.getLogger(__name__)

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
}


def noop_dest(flag):
    return flag.lstrip("-")


def add_noop_flags(parser, is_train, table=None, title="SPADE flags accepted for compatibility, without effect here"):
    """Declare the no-op flags of this phase (``table``: flag -> (phases, kwargs, reason); default
    SPADE's), in their own group of ``--help``. Phases: "train", "test" or "both". Their default is
    ``SUPPRESS``: absent from the options object unless given."""
    group = parser.add_argument_group(title)
    for flag, (phases, kwargs, reason) in (SPADE_NOOP_FLAGS if table is None else table).items():
        if (phases == "train" and not is_train) or (phases == "test" and is_train):
            continue
        if flag.lstrip("-") in parser.declared():
            continue  # a real option of this model / dataset
        group.add_argument(flag, default=argparse.SUPPRESS, **kwargs, help=reason)
    return parser


def pop_noop_flags(opt, table=None, source="SPADE"):
    """Remove the given no-op flags of ``table`` (default SPADE's) from ``opt``, warning once for
    each ("<flag> is accepted for <source> compatibility but has no effect here (<why>)"); returns
    their flags."""
    given = []
    table = SPADE_NOOP_FLAGS if table is None else table
    for flag in table:
        dest = noop_dest(flag)
        if dest in vars(opt):
            delattr(opt, dest)
            given.append(flag)
            logger.warning("%s is accepted for %s compatibility but has no effect here (%s)", flag, source,
                           table[flag][2])
    return given
