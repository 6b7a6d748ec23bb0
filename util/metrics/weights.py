"""Locating pretrained weight files on disk. Nothing here downloads: evaluation must be reproducible
offline, so a missing file is an error that says which file is needed and where to put it."""
import logging
import os

import torch

logger = logging.getLogger(__name__)


def hub_checkpoint_dir():
    """torch hub's checkpoint cache, ``torch.hub.get_dir()/checkpoints`` (honours $TORCH_HOME)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def resolve_weights(filename, explicit_path=None, what="weights", option=None):
    """Return the path of a weight file: ``explicit_path`` if given, else the hub cache entry.

    Raises FileNotFoundError naming the file, the places looked at and how to provide it.
    """
    if explicit_path:
        if not os.path.isfile(explicit_path):
            raise FileNotFoundError(
                f"{what}: weight file '{explicit_path}' does not exist"
                + (f" (given by {option})" if option else ""))
        return explicit_path
    cached = os.path.join(hub_checkpoint_dir(), filename)
    if os.path.isfile(cached):
        return cached
    hint = f", or pass its path with {option}" if option else ""
    raise FileNotFoundError(
        f"{what}: weight file '{filename}' not found. Put it at '{cached}' "
        f"(torch hub cache; set $TORCH_HOME to move it){hint}. Nothing is downloaded.")


def load_state_dict_file(path, what="weights"):
    """Load a state dict saved with torch.save (weights_only, on CPU).

    Unwraps the common containers ({'state_dict': ...}, {'model': ...}) and strips a 'module.'
    prefix left by DataParallel, so files saved by other code bases load unchanged.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{what}: cannot read weight file '{path}': {err}") from err
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: '{path}' does not contain a state dict (got {type(obj).__name__})")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_into(module, state_dict, path, what="weights"):
    """``module.load_state_dict(strict=True)`` with an error message naming the file and the keys."""
    own = set(module.state_dict().keys())
    theirs = set(state_dict.keys())
    missing = sorted(own - theirs)
    unexpected = sorted(theirs - own)
    if missing or unexpected:
        raise ValueError(
            f"{what}: '{path}' does not match the expected key layout: "
            f"{len(missing)} missing (e.g. {missing[:5]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:5]})")
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{what}: '{path}' has tensors of the wrong shape: {err}") from err
    return module
