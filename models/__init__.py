"""Model registry: ``--model NAME`` selects the class in ``models/<NAME>_model.py``.

The class is the one whose lower-cased name equals ``NAME + 'model'`` (e.g. ``Pix2PixModel``).
"""

import importlib
import logging
import pkgutil

import torch

logger = logging.getLogger(__name__)


def known_models():
    import models as package

    return sorted(
        name[: -len("_model")]
        for _, name, _ in pkgutil.iter_modules(package.__path__)
        if name.endswith("_model")
    )


def find_model_using_name(model_name):
    known = known_models()
    if model_name not in known:
        raise ValueError(f"unknown --model {model_name!r}; known models: {', '.join(known)}")
    module = importlib.import_module(f"models.{model_name}_model")
    target = model_name.replace("_", "") + "model"
    for name, cls in vars(module).items():
        if name.lower() == target and isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            return cls
    raise ValueError(f"models/{model_name}_model.py defines no torch.nn.Module subclass named like {target!r}")


def get_option_setter(model_name):
    return find_model_using_name(model_name).modify_commandline_options


def create_model(opt):
    model = find_model_using_name(opt.model)(opt)
    logger.info("model [%s] was created", type(model).__name__)
    return model
