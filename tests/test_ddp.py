"""DDP on CPU (gloo): 2 processes x batch 1 train to the same weights as 1 process x batch 2.

The configuration has no batch-statistics coupling (instance-norm SPADE, instance-norm D), and every
loss is a mean over the batch, so DDP's gradient averaging over 2 ranks equals the batch-2 gradient.
"""
import argparse
import contextlib
import os
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from conftest import build_options
from models.pix2pix_model import Pix2PixModel
from util.distributed import unwrap
from models.trainer import Trainer
from util import ddp

ITERATIONS = 3
GLOBAL_BATCH = 2
SIZE = 64


def make_opt(world_size=1, rank=0):
    opt = build_options(netG="dagan", ngf=4, z_dim=8, norm_G="spectralspadeinstance3x3", crop_size=SIZE,
                        load_size=SIZE, aspect_ratio=1.0, label_nc=4, no_instance=True, ndf=4, num_D=2,
                        n_layers_D=3, lr=2e-4, niter=1, niter_decay=0, batchSize=GLOBAL_BATCH,
                        serial_batches=True, seed=0)
    # What torchrun's environment gives each process (read by the options at parse time).
    opt.world_size, opt.rank, opt.local_rank = world_size, rank, rank
    return opt


def global_batch(iteration):
    """The same global batch for every run: sample i of iteration k is seeded by (k, i)."""
    gen = torch.Generator().manual_seed(100 + iteration)
    coarse = torch.randint(0, 4, (GLOBAL_BATCH, 1, 8, 8), generator=gen)
    label = F.interpolate(coarse.float(), size=(SIZE, SIZE), mode="nearest").long()
    return {
        "label": label,
        "instance": torch.zeros_like(label),
        "image": torch.rand(GLOBAL_BATCH, 3, SIZE, SIZE, generator=gen) * 2 - 1,
        "path": [f"img_{i}.jpg" for i in range(GLOBAL_BATCH)],
        "label_path": [f"label_{i}.png" for i in range(GLOBAL_BATCH)],
    }


def shard(batch, rank, world_size):
    """Rank r takes samples r, r + world_size, ... (DistributedSampler's split)."""
    return {k: v[rank::world_size] for k, v in batch.items()}


@contextlib.contextmanager
def float64():
    """The whole run in float64. GAN training at this toy size is chaotic: a difference of 1e-7
    in a weight (float32 rounding, which differs between a batch of 2 and two batches of 1) becomes
    a gradient difference of 1e-2 an iteration later (hinge kinks, instance norm over 2x2 maps), so
    float32 runs of the two layouts legitimately drift apart by whole Adam steps. float64's rounding
    (1e-16) leaves the comparison sharp: a wrong or missing all-reduce still changes every weight."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def train(opt, rank=0, world_size=1):
    with float64():
        return _train(opt, rank, world_size)


def _train(opt, rank, world_size):
    torch.manual_seed(opt.seed)  # the same initialisation on every rank
    model = Pix2PixModel(opt)
    ddp.wrap_model(model, opt)
    torch.manual_seed(ddp.rank_seed(opt.seed, rank))
    trainer = Trainer(opt, model)
    for iteration in range(ITERATIONS):
        local = shard(global_batch(iteration), rank, world_size)
        trainer.run_iteration(local, iteration)
    return model


def state_of(model):
    return {name: {k: v.detach().clone() for k, v in unwrap(getattr(model, name)).state_dict().items()}
            for name in ("netG", "netD")}


def _worker(rank, world_size, init_file, out_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        opt = make_opt(world_size, rank)
        model = train(opt, rank, world_size)
        assert isinstance(model.netG, torch.nn.parallel.DistributedDataParallel)
        verdicts = []
        for sabotage in (False, True):
            if sabotage and rank == 1:
                with torch.no_grad():
                    next(unwrap(model.netD).parameters()).add_(1e-3)
            try:
                ddp.check_replicas_agree(model)
                verdicts.append("agree")
            except RuntimeError as err:
                verdicts.append(str(err))
            if rank == 0 and not sabotage:
                state = state_of(model)
        per_rank = [None] * world_size
        dist.all_gather_object(per_rank, verdicts)
        if rank == 0:
            torch.save({"state": state, "verdicts": verdicts, "verdicts_per_rank": per_rank}, out_path)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_result(tmp_path_factory):
    # Gloo's rendezvous between two spawned processes failed once (not reproducible) on a loaded
    # 2-core machine; one retry with a fresh store keeps the suite stable. A real bug fails both times.
    first_error = None
    for attempt in range(2):
        tmp_path = tmp_path_factory.mktemp(f"ddp{attempt}")
        out_path = tmp_path / "rank0.pt"
        try:
            mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(out_path)), nprocs=2, join=True)
            return torch.load(out_path, weights_only=True)
        except mp.ProcessRaisedException as err:
            if first_error is not None:
                raise RuntimeError(f"2-process run failed twice; first error:\n{first_error}") from err
            first_error = err
            warnings.warn(f"2-process run failed, retrying once: {err}", stacklevel=1)


@pytest.fixture(scope="module")
def single_process_state():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers; also avoids thread contention with them
    try:
        return state_of(train(make_opt()))
    finally:
        torch.set_num_threads(threads)


def test_two_ranks_batch_one_equal_one_rank_batch_two(two_process_result, single_process_state):
    result = two_process_result
    assert result["verdicts"][0] == "agree"
    with float64():
        torch.manual_seed(0)
        initial = state_of(Pix2PixModel(make_opt()))
    for net in ("netG", "netD"):
        moved = compared = 0
        for key, expected in single_process_state[net].items():
            got = result["state"][net][key]
            assert got.dtype == expected.dtype == torch.float64, key
            # float64 rounding differs between the layouts by ~1e-16 (seen: <= 5e-12 after Adam's
            # division on the few gradients that are pure rounding noise); one Adam step is lr
            # (1e-4 for G, 4e-4 for D), which a wrong or missing all-reduce moves weights by.
            diff = float((got - expected).abs().max())
            assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (f"{net}.{key}", diff)
            if not key.endswith(("_u", "_v")):
                moved += int(not torch.allclose(expected, initial[net][key], rtol=0, atol=1e-6))
                compared += 1
        assert moved >= compared // 2, (net, moved, compared)  # training really changed the weights


def test_replica_check_names_the_diverged_tensor(two_process_result):
    # After training rank 1 nudged one weight of D; both ranks raise together, each naming its own.
    (agree0, verdict0), (agree1, verdict1) = two_process_result["verdicts_per_rank"]
    assert agree0 == agree1 == "agree"
    for verdict in (verdict0, verdict1):
        assert "DDP replicas disagree: 1 tensor(s) differ from rank 0" in verdict
    assert "(rank 1: netD.discriminator_0.model0.0.weight)" in verdict1
    assert "(rank 0: none on this rank)" in verdict0


def test_wrap_and_check_are_no_ops_without_torchrun():
    opt = make_opt()
    model = Pix2PixModel(opt)
    assert ddp.wrap_model(model, opt) is model and not hasattr(model.netG, "module")
    ddp.check_replicas_agree(model)  # nothing to compare with: must not raise
    assert ddp.backend_for("cpu") == "gloo" and ddp.backend_for("cuda:1") == "nccl"
    assert not ddp.uses_sync_batchnorm(argparse.Namespace(device=torch.device("cpu"), world_size=4))
    assert ddp.rank_seed(5, 0) == 5 and ddp.rank_seed(5, 1) != ddp.rank_seed(5, 2)
    assert os.environ.get("WORLD_SIZE", "1") == "1"
