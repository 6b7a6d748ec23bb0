"""Dataset registry and the DataLoader factory.

``--dataset_mode <name>`` selects the module ``data/<name>_dataset.py`` and, inside it, the class whose
lower-cased name equals ``<name>`` without underscores plus ``dataset`` (``celebamask_hq`` ->
``CelebAMaskHQDataset``). An unknown name raises ``util.errors.OptionError`` (a ``ValueError``) listing
the known modes.
"""

import importlib
import logging
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from data.base_dataset import BaseDataset
from util.errors import OptionError

logger = logging.getLogger(__name__)

_DATA_DIR = os.path.dirname(os.path.abspath(__file__))


def known_dataset_modes():
    """Names of every ``data/<name>_dataset.py`` module, sorted."""
    return sorted(
        f[: -len("_dataset.py")]
        for f in os.listdir(_DATA_DIR)
        if f.endswith("_dataset.py") and f not in ("base_dataset.py", "pix2pix_dataset.py")
    )


def find_dataset_using_name(name):
    """Return the dataset class registered as ``name``; ``OptionError`` listing known modes otherwise."""
    known = known_dataset_modes()
    if name not in known:
        raise OptionError("--dataset_mode", name, known, kind="dataset mode")
    module = importlib.import_module(f"data.{name}_dataset")
    target = name.replace("_", "") + "dataset"
    for attr, cls in vars(module).items():
        if attr.lower() == target and isinstance(cls, type) and issubclass(cls, BaseDataset):
            return cls
    raise ValueError(
        f"data/{name}_dataset.py defines no subclass of BaseDataset named {target!r} (case-insensitive)"
    )


def get_option_setter(name):
    """The static ``modify_commandline_options(parser, is_train)`` of dataset mode ``name``."""
    return find_dataset_using_name(name).modify_commandline_options


class EpochSampler(DistributedSampler):
    """Index sampler whose order and per-sample randomness depend only on (seed, epoch, rank).

    A ``DistributedSampler`` (with one replica outside torchrun) so the trainer always has
    ``loader.sampler.set_epoch``. ``set_epoch`` also tells the dataset the epoch, which seeds the
    random crop/flip of each sample: a resumed run therefore sees exactly the samples an uninterrupted
    run would, independent of global RNG state and of the number of loader workers.
    """

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def create_dataset(opt):
    """Instantiate the dataset of ``opt.dataset_mode``."""
    dataset = find_dataset_using_name(opt.dataset_mode)(opt)
    logger.info("dataset [%s] of size %d was created (phase %s)", type(dataset).__name__, len(dataset),
                opt.phase)
    return dataset


def create_dataloader(opt):
    """Build the DataLoader of ``opt.dataset_mode``.

    Batches are dicts (see ``Pix2pixDataset.__getitem__``): 'label' int64 [B,1,H,W], 'instance' int64
    [B,1,H,W], 'image' float32 [B,3,H,W] in [-1,1], 'path' and 'label_path' lists of str.
    Shuffled when training unless --serial_batches; the last incomplete batch is dropped when training.
    Under torch.distributed each rank loads ``batchSize // world_size`` samples of its own shard; call
    ``loader.sampler.set_epoch(epoch)`` at the start of every epoch.
    """
    dataset = create_dataset(opt)
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    else:
        world_size, rank = 1, 0
    batch_size = opt.batchSize // world_size
    if batch_size < 1:
        raise ValueError(f"--batchSize {opt.batchSize} is smaller than the number of processes ({world_size})")
    if opt.batchSize % world_size:
        logger.warning("--batchSize %d is not divisible by %d processes: each loads %d", opt.batchSize,
                       world_size, batch_size)
    shuffle = bool(opt.isTrain and not opt.serial_batches)
    sampler = EpochSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                           seed=getattr(opt, "seed", 0), drop_last=False)
    sampler.set_epoch(0)
    per_rank = len(sampler)
    if opt.isTrain and per_rank < batch_size:
        raise ValueError(
            f"dataset {opt.dataset_mode!r} has {len(dataset)} samples ({per_rank} per process), fewer than one "
            f"batch of {batch_size}; the training loader drops incomplete batches, so it would be empty"
        )
    device = getattr(opt, "device", None)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=opt.nThreads,
        drop_last=bool(opt.isTrain),
        pin_memory=isinstance(device, torch.device) and device.type == "cuda",
    )
    return loader


def check_dataset(opt):
    """Check every file the run will read before it starts (data/data_check.py): returns quietly when
    all are fine, raises ``util.errors.DataError`` listing every bad file otherwise. ``--skip_data_check``
    turns it off. train.py and test.py call it right after parsing the options."""
    from data.data_check import check_dataset as check

    check(opt)
