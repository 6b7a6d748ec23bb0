"""Model registry: ``--model NAME`` selects the class in ``models/<NAME>_model.py``.

The class is the one whose lower-cased name equals ``NAME + 'model'`` (e.g. ``Pix2PixModel``). A model
may keep presets, its hyper-parameters per dataset mode, in ``models/<NAME>_presets.py`` (see
:func:`get_presets`).
"""

import importlib
import importlib.util
import logging
import pkgutil

import torch

from util.errors import OptionError

logger = logging.getLogger(__name__)


def known_models():
    import models as package

    # base_model.py holds the contract every model follows (BaseModel), not a model.
    return sorted(
        name[: -len("_model")]
        for _, name, _ in pkgutil.iter_modules(package.__path__)
        if name.endswith("_model") and name != "base_model"
    )


def find_model_using_name(model_name):
    known = known_models()
    if model_name not in known:
        raise OptionError("--model", model_name, known, kind="model")
    module = importlib.import_module(f"models.{model_name}_model")
    target = model_name.replace("_", "") + "model"
    for name, cls in vars(module).items():
        if name.lower() == target and isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            return cls
    raise ValueError(f"models/{model_name}_model.py defines no torch.nn.Module subclass named like {target!r}")


def get_option_setter(model_name):
    return find_model_using_name(model_name).modify_commandline_options


def _presets_module(model_name):
    find_model_using_name(model_name)  # an unknown --model is reported here, before any preset
    module_name = f"models.{model_name}_presets"
    if importlib.util.find_spec(module_name) is None:
        return None
    return importlib.import_module(module_name)


def get_presets(model_name, dataset_mode, is_train, variant=None):
    """{option: value} that model ``model_name`` presets for ``dataset_mode`` ({} when none).

    ``models/<model>_presets.py`` (optional) defines ``PRESETS = {dataset_mode: {option: value}}``
    and ``ARCHITECTURE_KEYS``, the options that shape the networks test.py rebuilds: when testing,
    only those apply (the others are training hyper-parameters). The options module applies the
    result as defaults above the dataset's (flags given on the command line still win).

    ``variant``: the value of the module's ``VARIANT_OPTION`` (see :func:`preset_variant_option`);
    then only the presets of that variant, ``VARIANT_PRESETS[variant][dataset_mode]``, which the options
    module layers above the plain ones.
    """
    module = _presets_module(model_name)
    if module is None:
        return {}
    if variant is None:
        presets = dict(module.PRESETS.get(dataset_mode, {}))
    else:
        presets = dict(getattr(module, "VARIANT_PRESETS", {}).get(variant, {}).get(dataset_mode, {}))
    if not is_train:
        presets = {k: v for k, v in presets.items() if k in module.ARCHITECTURE_KEYS}
    return presets


def preset_variant_option(model_name):
    """The option (dest name) whose value selects a variant of the model's presets, declared by its
    presets module as ``VARIANT_OPTION`` (e.g. the pix2pix model's ``netG``), or None."""
    module = _presets_module(model_name)
    return getattr(module, "VARIANT_OPTION", None) if module is not None else None


def create_model(opt):
    model = find_model_using_name(opt.model)(opt)
    logger.info("model [%s] was created", type(model).__name__)
    return model
