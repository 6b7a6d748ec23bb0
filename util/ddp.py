"""DistributedDataParallel for SPADE / DAGAN training under torchrun (one process per device).

Launch: ``torchrun --nproc_per_node N train.py ...`` (one node) or ``torchrun --nnodes M
--node_rank R --nproc_per_node N --rdzv_backend c10d --rdzv_endpoint HOST:PORT train.py ...``.
``--batchSize`` stays the global batch; each rank loads ``batchSize // world_size`` samples.

Rank discipline (STYLE §8): the same seed for initialisation on every rank, per-rank seeds after;
only rank 0 writes files (``util.distributed.is_main_process``); the replicas are checked to agree
before a checkpoint is written (:func:`check_replicas_agree`).

Each network the model declares (``model.network_names``) is wrapped on its own, not the whole
model: the phases of an iteration touch different parameters (SPADE's D step regenerates the fake
under ``no_grad``), and one wrapper around all would need ``find_unused_parameters`` and would
all-reduce gradients that a phase throws away. A phase's frozen networks run under :func:`no_sync`.
"""
import contextlib
import datetime
import logging

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from util.distributed import unwrap

logger = logging.getLogger(__name__)

# Per-rank BatchNorm statistics are local by design (each rank normalises its own batch unless
# SyncBatchNorm is on): they are not expected to agree and are not compared.
LOCAL_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def backend_for(device):
    """'nccl' for CUDA devices, 'gloo' otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_distributed(opt, timeout_minutes=30):
    """Join the torchrun process group when ``opt.world_size > 1``.

    Returns True only when this call created the group (the caller then destroys it at the end);
    False in a single-process run or when the group already exists (e.g. made by a test harness).

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; the options module has already
    read them into ``opt`` and chosen ``opt.device`` (cuda:<local rank> on CUDA).
    """
    if opt.world_size <= 1:
        return False
    if dist.is_initialized():
        return False
    device = torch.device(opt.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = backend_for(device)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    if dist.get_world_size() != opt.world_size or dist.get_rank() != opt.rank:
        raise RuntimeError(
            f"process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not match the "
            f"torchrun environment read by the options (rank {opt.rank} of {opt.world_size})")
    logger.info("joined the %s process group: rank %d of %d on %s", backend, opt.rank, opt.world_size, device)
    return True


def destroy_distributed():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed, rank):
    """Seed of ``rank`` after initialisation: distinct per rank, reproducible, rank 0 keeps ``seed``."""
    return (int(seed) + 1_000_003 * int(rank)) % (2 ** 63)


def uses_sync_batchnorm(opt):
    """SyncBatchNorm only across several CUDA devices: torch's version raises on CPU tensors."""
    return torch.device(opt.device).type == "cuda" and opt.world_size > 1


def wrap_model(model, opt):
    """Wrap each of the model's networks in DistributedDataParallel, in place; returns the model.

    Must run on every rank after the networks are built (same seed -> same initial weights; DDP
    also broadcasts rank 0's parameters and buffers at construction) and moved to ``opt.device``.
    BatchNorm becomes SyncBatchNorm first on multi-GPU CUDA runs. A no-op outside torchrun.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return model
    device = torch.device(opt.device)
    for name, net in model.networks().items():
        if uses_sync_batchnorm(opt):
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        if not any(p.requires_grad for p in net.parameters()):
            model.set_network(name, net)
            continue
        # DDP's default buffer sync broadcasts rank 0's buffers (spectral-norm u/v, BatchNorm
        # statistics) before every forward, so every rank's power iteration starts from the same u.
        wrapped = DistributedDataParallel(
            net,
            device_ids=[device.index] if device.type == "cuda" else None,
            output_device=device.index if device.type == "cuda" else None,
        )
        model.set_network(name, wrapped)
    return model


def no_sync(net):
    """``net.no_sync()`` for a DDP-wrapped network (no gradient all-reduce), else a null context."""
    if isinstance(net, DistributedDataParallel):
        return net.no_sync()
    return contextlib.nullcontext()


def _checked_tensors(net):
    for name, param in unwrap(net).named_parameters():
        yield name, param
    for name, buf in unwrap(net).named_buffers():
        if not name.endswith(LOCAL_BUFFER_SUFFIXES):
            yield name, buf


def replica_checksums(net):
    """float64 [N, 2]: (sum, sum of squares) of every parameter and shared buffer of ``net``."""
    rows = []
    for _, tensor in _checked_tensors(net):
        t = tensor.detach().double()
        rows.append(torch.stack([t.sum(), t.square().sum()]))
    if not rows:
        return torch.zeros(0, 2, dtype=torch.float64)
    return torch.stack(rows)


def check_replicas_agree(model, rtol=1e-6, atol=1e-9):
    """Raise RuntimeError unless every rank holds the same networks as rank 0.

    Rank 0 broadcasts per-tensor checksums; every rank compares its own and the verdict is
    all-reduced, so all ranks raise together (none is left waiting in a later collective). Call on
    every rank before rank 0 writes a checkpoint. A no-op outside torchrun.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    bad = []
    device = None
    for attr, net in model.networks().items():
        names = [name for name, _ in _checked_tensors(net)]
        mine = replica_checksums(net)
        device = next(unwrap(net).parameters()).device
        mine = mine.to(device)
        reference = mine.clone()
        dist.broadcast(reference, src=0)
        close = torch.isclose(mine, reference, rtol=rtol, atol=atol).all(dim=1)
        bad += [f"net{attr}.{names[i]}" for i in torch.nonzero(~close).flatten().tolist()]
    flag = torch.tensor([len(bad)], dtype=torch.int64, device=device)
    dist.all_reduce(flag)
    if int(flag) > 0:
        here = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "") if bad else "none on this rank"
        raise RuntimeError(
            f"DDP replicas disagree: {int(flag)} tensor(s) differ from rank 0 across ranks "
            f"(rank {dist.get_rank()}: {here}). Refusing to write a checkpoint from diverged replicas; "
            f"check for rank-dependent code paths, unsynchronised parameter updates or non-finite values.")


def gather_rng_states():
    """Every rank's RNG states (a list indexed by rank) on every rank; None outside torchrun.

    Collective: all ranks must call it. Saved with the checkpoint so that a resumed DDP run
    continues each rank's own random streams (e.g. the VAE's noise), not rank 0's on every rank.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    from util.checkpoint import get_rng_states

    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, get_rng_states())
    return states


def rng_states_for_rank(state, opt):
    """The RNG states this rank restores from a loaded full-state checkpoint ``state``.

    A DDP checkpoint holds one entry per rank (``extra['rng_per_rank']``); with the same world
    size each rank takes its own. A single-process checkpoint, or a different world size, gives
    rank 0 the saved states and leaves the other ranks on their fresh per-rank seeds (so their
    random streams differ from the interrupted run's: logged as a warning).
    """
    per_rank = (state.get("extra") or {}).get("rng_per_rank")
    world_size, rank = opt.world_size, opt.rank
    if per_rank and len(per_rank) == world_size:
        return per_rank[rank]
    if world_size > 1:
        logger.warning("the checkpoint holds RNG states of %s process(es), this run has %d: rank %d %s",
                       len(per_rank) if per_rank else 1, world_size, rank,
                       "restores rank 0's saved states" if rank == 0 else "keeps its fresh per-rank seed")
        if rank != 0:
            from util.checkpoint import get_rng_states

            return get_rng_states()  # restoring the current state is a no-op
    return state["rng"]
