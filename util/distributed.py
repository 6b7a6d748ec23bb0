"""Rank helpers. Single-process runs behave as rank 0 of a world of size 1.

Everything that writes files (checkpoints, logs, HTML pages) asks ``is_main_process()`` first, so a
multi-process (torchrun + DDP) run writes each file once.
"""
import logging

import torch.distributed as dist

logger = logging.getLogger(__name__)


def is_dist_initialized():
    return dist.is_available() and dist.is_initialized()


def get_rank():
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_dist_initialized() else 0


def get_world_size():
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_dist_initialized() else 1


def is_main_process():
    return get_rank() == 0


def barrier():
    """Wait for all ranks; a no-op in a single-process run."""
    if is_dist_initialized():
        dist.barrier()


def unwrap(net):
    """The bare network inside a DistributedDataParallel / DataParallel wrapper (or ``net`` itself)."""
    return net.module if hasattr(net, "module") else net
