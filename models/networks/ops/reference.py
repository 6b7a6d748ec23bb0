"""Reference twins of the fast layers, and the swap between the two (for tests and benchmarks).

The networks are built with the fast layers only; nothing in them reads a switch. To run a built
network the plain way, its fast layers are replaced by reference *twins*:

    ref = to_reference(copy.deepcopy(netG))     # a reference copy, to compare against
    to_reference(model, kinds=("spade",))       # in place: only the SPADE layers
    with reference_layers(model):               # in place, undone on exit (same model, same trainer)
        ...

A twin is a new module instance of the reference class that shares the parameters, buffers and
submodules of the layer it replaces (the same tensors: the state dict, its keys, an optimizer built
on the parameters and DDP keep working) and has its own class and hooks. :func:`to_fast` is the
inverse. ``kinds`` (default: all of :data:`REFERENCE_KINDS`):

* ``"spade"``: ``SPADE`` -> :class:`ReferenceSPADE` (the segmap resized with ``F.interpolate`` in every
  layer, ``mlp_shared`` as a dense convolution, ``mlp_gamma`` and ``mlp_beta`` separately);
* ``"upsampled_conv"``: ``UpsampledConv2d`` -> ``ReferenceUpsampledConv2d`` (DAGAN's ``conv_64`` on
  the upsampled map);
* ``"label_image_conv"``: ``LabelImageConv2d`` -> ``ReferenceLabelImageConv2d`` (D's input
  concatenated in full, label maps repeated for fake and real);
* ``"pixel_conv"``: ``PixelDepthwiseConv2d`` -> ``ReferencePixelDepthwiseConv2d`` (CC-FPSE's per-pixel
  depthwise convolution by ``F.unfold``);
* ``"spectral_norm"``: ``SNConv2d`` with the ``FP32SpectralNorm`` hook -> ``nn.Conv2d`` with torch's
  ``SpectralNorm`` hook (eval cache, output scaling and fp32 power iteration under autocast gone).
"""

import contextlib
import copy

import torch.nn as nn
import torch.nn.functional as F

from .label_image_conv import LabelImageConv2d, ReferenceLabelImageConv2d
from .pixel_conv import PixelDepthwiseConv2d, ReferencePixelDepthwiseConv2d
from .segmap import SegmapPyramid
from .spectral_norm import FP32SpectralNorm, SNConv2d, SpectralNorm
from .upsampled_conv import ReferenceUpsampledConv2d, UpsampledConv2d

__all__ = ["REFERENCE_KINDS", "ReferenceSPADE", "reference_layers", "to_fast", "to_reference"]

REFERENCE_KINDS = ("spade", "upsampled_conv", "label_image_conv", "pixel_conv", "spectral_norm")


class ReferenceSPADE(nn.Module):
    """Reference twin of :class:`~models.networks.normalization.SPADE` (built by :func:`to_reference`
    from one; same submodules and keys): the plain computation of the reference code.

    ``forward(x [B,C,H,W], segmap, class_ids=None) -> [B,C,H,W]`` =
    ``norm(x) * (1 + mlp_gamma(a)) + mlp_beta(a)``, ``a = mlp_shared(interpolate(segmap, (H, W)))``.
    ``segmap``: a tensor or a ``SegmapPyramid`` (its full-size map is used); ``class_ids`` is ignored.
    """

    def forward(self, x, segmap, class_ids=None):
        if isinstance(segmap, SegmapPyramid):
            segmap = segmap.segmap
        normalized = getattr(self, self.norm_name)(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        gamma = self.mlp_gamma(actv)
        beta = self.mlp_beta(actv)
        return normalized * (1 + gamma) + beta


def _twin(module, cls):
    """A new ``cls`` instance sharing ``module``'s parameters, buffers, submodules and attributes
    (the registries are copied, their entries shared)."""
    twin = cls.__new__(cls)
    twin.__dict__.update({k: copy.copy(v) if isinstance(v, (dict, set)) else v for k, v in module.__dict__.items()})
    return twin


def _retyped_hooks(module, old_cls, new_cls):
    """Replace, in ``module``'s own (copied) hook registry, each hook of exactly ``old_cls`` by a
    ``new_cls`` copy of it (same name, dim, eps, iteration count). True if one was replaced."""
    found = False
    for key, hook in list(module._forward_pre_hooks.items()):
        if type(hook) is old_cls:
            new = new_cls.__new__(new_cls)
            new.__dict__.update(hook.__dict__)
            module._forward_pre_hooks[key] = new
            found = True
    return found


def _has_hook(module, cls):
    return any(type(h) is cls for h in module._forward_pre_hooks.values())


def _spade_classes():
    from ..normalization import SPADE  # normalization imports ops: imported when first needed

    return SPADE, ReferenceSPADE


def _class_swap(pair, caches=()):
    """Swap between the classes of ``pair`` (fast, reference), or of ``pair()``; the attributes
    ``caches`` of the twin start empty (None)."""
    def swap(module, to_ref):
        fast, ref = pair() if callable(pair) else pair
        src, dst = (fast, ref) if to_ref else (ref, fast)
        if type(module) is not src:
            return module
        twin = _twin(module, dst)
        for name in caches:
            twin.__dict__[name] = None
        return twin
    return swap


def _spectral_swap(module, to_ref):
    src_hook, dst_hook = (FP32SpectralNorm, SpectralNorm) if to_ref else (SpectralNorm, FP32SpectralNorm)
    if not _has_hook(module, src_hook):
        return module
    src_cls, dst_cls = (SNConv2d, nn.Conv2d) if to_ref else (nn.Conv2d, SNConv2d)
    twin = _twin(module, dst_cls if type(module) is src_cls else type(module))
    _retyped_hooks(twin, src_hook, dst_hook)
    for key in ("_sn_eval_cache", "_sn_sigma"):
        twin.__dict__.pop(key, None)
    return twin


_SWAPS = {
    "spade": _class_swap(_spade_classes, caches=("_fused_cache", "_table_cache")),
    "upsampled_conv": _class_swap((UpsampledConv2d, ReferenceUpsampledConv2d)),
    "label_image_conv": _class_swap((LabelImageConv2d, ReferenceLabelImageConv2d)),
    "pixel_conv": _class_swap((PixelDepthwiseConv2d, ReferencePixelDepthwiseConv2d)),
    "spectral_norm": _spectral_swap,
}


def _swap_all(net, kinds, to_ref):
    kinds = REFERENCE_KINDS if kinds is None else tuple(kinds)
    unknown = [k for k in kinds if k not in _SWAPS]
    if unknown:
        raise ValueError(f"unknown reference kind(s) {', '.join(map(repr, unknown))}; known: {', '.join(REFERENCE_KINDS)}")
    memo = {}

    def visit(module):
        if id(module) in memo:
            return memo[id(module)]
        new = module
        for kind in kinds:
            new = _SWAPS[kind](new, to_ref)
        memo[id(module)] = new
        for name, child in list(new._modules.items()):
            if child is not None:
                new_child = visit(child)
                if new_child is not child:
                    new._modules[name] = new_child
        return new

    return visit(net)


def to_reference(net, kinds=None):
    """Replace, in place, every fast layer of ``kinds`` inside ``net`` by its reference twin; returns
    ``net`` (or its twin when ``net`` itself is such a layer)."""
    return _swap_all(net, kinds, to_ref=True)


def to_fast(net, kinds=None):
    """The inverse of :func:`to_reference`: reference twins back to fast layers, in place."""
    return _swap_all(net, kinds, to_ref=False)


@contextlib.contextmanager
def reference_layers(net, kinds=None):
    """``with reference_layers(model): ...`` runs ``model`` (a container: a model or a network, not
    itself a swappable layer) with reference layers, and puts the fast ones back on exit."""
    swapped = to_reference(net, kinds)
    if swapped is not net:
        raise ValueError(f"reference_layers needs a container of layers, got a {type(net).__name__} layer itself")
    try:
        yield net
    finally:
        to_fast(net, kinds)
