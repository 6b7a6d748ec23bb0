"""Loading a trained model for inference: the one path of test.py and demo.py.

:func:`check_checkpoint` (cheap: the run folder holds weights of --which_epoch), :func:`load_networks`
(the model's inference networks, strict; --use_ema: the EMA copies), :func:`inference_autocast`
(--amp), :func:`load_inference_model` (all of it: build, load, eval mode).
"""
import contextlib
import logging
import os

import torch

import models
from util import checkpoint
from util.errors import MissingFileError

logger = logging.getLogger(__name__)


def check_checkpoint(opt):
    """MissingFileError unless ``<checkpoints_dir>/<name>/`` holds weights of --which_epoch (a
    ``<which_epoch>_net_<X>.pth`` or ``<which_epoch>_state.pth``); the message lists the epochs it
    holds. Cheap: reads no file (load_networks checks each network's file and its fit)."""
    folder = checkpoint.run_dir(opt)
    wanted = checkpoint.weight_file(opt, opt.which_epoch, "<X>")
    if not os.path.isdir(folder):
        raise MissingFileError(f"--name {opt.name}: no run folder {folder}, so no weights "
                               f"{wanted} to load (train.py writes them there; check "
                               f"--name and --checkpoints_dir)")
    kind, _ = checkpoint.describe_resume_source(opt)
    averaged = models.find_model_using_name(opt.model).ema_network_names
    if kind is None and opt.use_ema and averaged and all(
            os.path.isfile(checkpoint.weight_path(opt, opt.which_epoch, name + "_ema")) for name in averaged):
        return  # a folder with only the EMA networks (load_networks checks each file)
    if kind is None:
        epochs = sorted(set(checkpoint.weight_epochs(opt))
                        | {f[:-len("_state.pth")] for f in os.listdir(folder) if f.endswith("_state.pth")})
        held = f"it holds {', '.join(epochs)}" if epochs else "it holds no weight files"
        raise MissingFileError(f"--which_epoch {opt.which_epoch}: {folder} holds neither "
                               f"{wanted} nor {opt.which_epoch}_state.pth ({held})")


def load_networks(model, opt):
    """Load the model's inference networks of ``opt.which_epoch``; returns {net name: file}.

    With --use_ema, the networks the model averages come from ``<which_epoch>_net_<X>_ema.pth``."""
    names = tuple(model.inference_network_names)
    loaded = {}
    if opt.use_ema:
        for name in model.ema_network_names:
            path = checkpoint.weight_path(opt, opt.which_epoch, name + "_ema")
            if not os.path.isfile(path):
                raise MissingFileError(f"--use_ema: {path} not found; it is written by train.py --ema_decay")
            checkpoint.load_state_dict_checked(model.networks()[name], checkpoint.safe_torch_load(path), path)
            loaded[name] = path
        names = tuple(n for n in names if n not in loaded)
    if names:
        loaded.update(checkpoint.load_network_weights(model, opt, opt.which_epoch, names=names, required=names))
    for name, path in loaded.items():
        logger.info("net%s loaded from %s", name, path)
    return loaded


def inference_autocast(opt):
    """Autocast context for --amp bf16|fp16 (fp16 only on CUDA); a no-op context for --amp none."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(opt.amp)
    if dtype is None:
        return contextlib.nullcontext()
    if dtype is torch.float16 and opt.device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 on CPU")
    return torch.autocast(device_type=opt.device.type, dtype=dtype)


def load_inference_model(opt):
    """Build the model of ``opt``, load its inference networks of --which_epoch (:func:`load_networks`)
    and put it in eval mode; returns (model, {net name: file})."""
    model = models.create_model(opt)
    loaded = load_networks(model, opt)
    model.eval()
    return model, loaded
