"""Normalisation layers: SPADE, parameter-free norms, the conv-norm wrapper of D / E, sync-BN conversion.

The speed code SPADE uses (the one-hot look-up convolution, the shared segmap pyramid) and spectral
normalisation live in ``ops/``, each beside its plain reference implementation.
"""

import logging
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops.onehot_conv import onehot_conv2d, onehot_table
from .ops.segmap import SegmapPyramid
from .ops.spectral_norm import spectral_norm

logger = logging.getLogger(__name__)

SPADE_HIDDEN = 128


PARAM_FREE_NORMS = ("instance", "syncbatch", "batch")


class SingleDeviceSyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d as the official codes' synchronised BatchNorm (``sync_batchnorm``'s
    SynchronizedBatchNorm2d, used by SPADE, DAGAN and OASIS) computes on one device: ``F.batch_norm``
    with the momentum, which leaves ``num_batches_tracked`` as it was (0 in the released checkpoints),
    so a training step changes the same state-dict entries as the official one. With ``momentum=None``
    (the cumulative average of BatchNorm re-estimation, util/ema.py) it is torch's BatchNorm2d."""

    def forward(self, x):
        if self.momentum is None:
            return super().forward(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)


def param_free_norm(kind, num_features):
    """A normalisation without learned affine parameters.

    ``syncbatch`` builds a :class:`SingleDeviceSyncBatchNorm2d`: torch's SyncBatchNorm raises on CPU
    tensors, so the cross-device version is swapped in by :func:`convert_sync_batchnorm` only under
    multi-GPU DDP. The state-dict keys (running_mean, running_var, num_batches_tracked) are the same
    either way. ``batch`` is torch's BatchNorm2d (the official codes' ``nn.BatchNorm2d``).
    """
    if kind == "instance":
        return nn.InstanceNorm2d(num_features, affine=False)
    if kind == "syncbatch":
        return SingleDeviceSyncBatchNorm2d(num_features, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(num_features, affine=False)
    raise ValueError(f"unknown parameter-free norm {kind!r}; known: {', '.join(PARAM_FREE_NORMS)}")


def parse_spade_config(config_text):
    """'spadesyncbatch3x3' -> ('syncbatch', 3). ``spectral`` must already be stripped."""
    match = re.fullmatch(r"spade(\D+)(\d+)x\d+", config_text)
    if match is None:
        raise ValueError(
            f"norm_G {config_text!r} is not of the form [spectral]spade<norm><k>x<k>, "
            "e.g. spectralspadesyncbatch3x3 or spadeinstance3x3"
        )
    kind, kernel = match.group(1), int(match.group(2))
    if kind not in PARAM_FREE_NORMS:
        raise ValueError(f"norm_G {config_text!r}: unknown norm {kind!r}; known: {', '.join(PARAM_FREE_NORMS)}")
    if kernel % 2 == 0:
        raise ValueError(f"norm_G {config_text!r}: the SPADE kernel size must be odd, got {kernel}")
    return kind, kernel


class SPADE(nn.Module):
    """Spatially-adaptive normalisation.

    ``SPADE(config_text, norm_nc, label_nc, onehot_nc=0, onehot_start=0, norm_name="param_free_norm")``;
    ``forward(x [B,norm_nc,H,W], segmap, class_ids=None) -> [B,norm_nc,H,W]``: x is normalised without
    learned parameters, then modulated as ``norm(x) * (1 + gamma) + beta`` where gamma and beta are
    predicted from the segmap resized (nearest) to (H, W) by ``mlp_shared`` (3x3 conv label_nc -> 128,
    ReLU), ``mlp_gamma`` and ``mlp_beta`` (3x3 convs 128 -> norm_nc).

    ``segmap``: a tensor [B,label_nc,h,w], or a :class:`~models.networks.ops.segmap.SegmapPyramid`
    shared by the SPADE layers of one generator forward (it then carries the class ids:
    ``SegmapPyramid(segmap, class_ids)``). ``class_ids``: int64 [B,h,w] or None, the labels whose
    one-hot encoding is the segmap's ``onehot_nc`` channels from channel ``onehot_start`` on (the other
    channels, e.g. an instance edge map after them or OASIS's noise before them, are dense); None
    recovers them from the map when it is exactly one-hot. ``norm_name``: the attribute (state-dict
    key) of the parameter-free norm: SPADE's ``param_free_norm``, OASIS's ``first_norm``. ``hidden``:
    the channels of ``mlp_shared`` (128 in every official network).

    Computation (the state-dict layout is the official one): with class ids at hand (``onehot_nc`` > 0)
    ``mlp_shared`` runs as a table look-up (:func:`~models.networks.ops.onehot_conv.onehot_conv2d`),
    otherwise as a convolution; ``mlp_gamma`` and ``mlp_beta`` run as one convolution with their weights
    concatenated at run time (cached in eval mode). Same results as the plain computation
    (:class:`~models.networks.ops.reference.ReferenceSPADE`) up to float rounding.
    """

    def __init__(self, config_text, norm_nc, label_nc, onehot_nc=0, onehot_start=0, norm_name="param_free_norm",
                 hidden=SPADE_HIDDEN):
        super().__init__()
        kind, kernel = parse_spade_config(config_text)
        if not (0 <= onehot_nc and 0 <= onehot_start and onehot_start + onehot_nc <= label_nc):
            raise ValueError(f"SPADE: the one-hot channels {onehot_start}..{onehot_start + onehot_nc - 1} must lie "
                             f"within the label_nc={label_nc} input channels")
        pad = kernel // 2
        self.onehot_nc = int(onehot_nc)
        self.onehot_start = int(onehot_start)
        self.norm_name = norm_name
        setattr(self, norm_name, param_free_norm(kind, norm_nc))
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel, padding=pad)
        self._fused_cache = None
        self._table_cache = None

    def forward(self, x, segmap, class_ids=None):
        normalized = getattr(self, self.norm_name)(x)
        pyramid = as_pyramid(segmap, class_ids)
        size = x.shape[2:]
        n, start = self.onehot_nc, self.onehot_start
        labels = pyramid.labels_at(size, n, start)
        if labels is not None:
            extra = pyramid.dense_at(size, n, start)
            # Straight into the layout of the rest of the network and, under autocast, the dtype
            # the next convolution would cast it to; ReLU in place on that fresh tensor.
            conv = self.mlp_shared[0]
            index = pyramid.index_at(size, *conv.kernel_size, n, start)
            fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                   else torch.contiguous_format)
            dtype = (torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type)
                     else None)
            actv = F.relu(onehot_conv2d(labels, extra, conv, self._onehot_table(n),
                                        index, memory_format=fmt, dtype=dtype, start=start), inplace=True)
        else:
            actv = self.mlp_shared(pyramid.at(size))
        weight, bias = self._gamma_beta_weights()
        # One convolution for gamma and beta; its gamma half already carries the "1 +".
        gamma_1, beta = F.conv2d(actv, weight, bias, padding=self.mlp_gamma.padding).chunk(2, dim=1)
        return torch.addcmul(beta, normalized, gamma_1)

    def _onehot_table(self, n):
        conv = self.mlp_shared[0]
        if self.training or torch.is_grad_enabled():
            self._table_cache = None
            return onehot_table(conv, n, self.onehot_start)
        # Inference: built once; the key notices in-place updates (optimizer steps, loading).
        key = (n, self.onehot_start) + tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in (conv.weight, conv.bias)
                          if p is not None)
        if self._table_cache is None or self._table_cache[0] != key:
            self._table_cache = (key, onehot_table(conv, n, self.onehot_start))
        return self._table_cache[1]

    def _gamma_beta_weights(self):
        """(cat(W_gamma, W_beta), cat(b_gamma + 1, b_beta)) for the fused convolution."""
        params = (self.mlp_gamma.weight, self.mlp_beta.weight, self.mlp_gamma.bias, self.mlp_beta.bias)
        if self.training or torch.is_grad_enabled():
            self._fused_cache = None
            return torch.cat(params[:2]), torch.cat([params[2] + 1, params[3]])
        # Inference: concatenate once; the key notices in-place updates (optimizer steps, loading).
        key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
        if self._fused_cache is None or self._fused_cache[0] != key:
            self._fused_cache = (key, torch.cat(params[:2]), torch.cat([params[2] + 1, params[3]]))
        return self._fused_cache[1], self._fused_cache[2]


def as_pyramid(segmap, class_ids=None):
    """``segmap`` (tensor) and ``class_ids`` as a :class:`SegmapPyramid`; a pyramid is returned as it
    is (it carries its own class ids: passing other ones with it is an error)."""
    if isinstance(segmap, SegmapPyramid):
        if class_ids is not None and class_ids is not segmap.class_ids:
            raise ValueError("class_ids given with a SegmapPyramid that holds other ones: build the "
                             "pyramid as SegmapPyramid(segmap, class_ids)")
        return segmap
    return SegmapPyramid(segmap, class_ids)


def _out_channels(layer):
    if hasattr(layer, "out_channels"):
        return layer.out_channels
    return layer.weight.size(0)


def get_nonspade_norm_layer(norm_type):
    """Return ``wrap(layer)`` applying ``norm_type`` (e.g. 'spectralinstance') to a conv layer.

    'spectral' wraps the layer in spectral norm; the rest names a norm appended after it:
    instance (affine=False), batch / syncbatch / sync_batch (affine=True, as SPADE), none / ''.
    When a norm follows, the conv's bias is removed (the norm would cancel it), which is what gives
    the official discriminator / encoder keys (``model1.0.0.weight_orig`` and no bias).
    """
    def wrap(layer):
        subnorm = norm_type
        if subnorm.startswith("spectral"):
            layer = spectral_norm(layer)
            subnorm = subnorm[len("spectral"):]
        if subnorm in ("none", ""):
            return layer
        if getattr(layer, "bias", None) is not None:
            delattr(layer, "bias")
            layer.register_parameter("bias", None)
        channels = _out_channels(layer)
        if subnorm == "instance":
            norm = nn.InstanceNorm2d(channels, affine=False)
        elif subnorm in ("batch", "syncbatch", "sync_batch"):
            norm = nn.BatchNorm2d(channels, affine=True)
        else:
            raise ValueError(
                f"unknown norm {norm_type!r}; expected [spectral](instance|batch|syncbatch|none)"
            )
        return nn.Sequential(layer, norm)

    return wrap


def convert_sync_batchnorm(module):
    """Swap every BatchNorm for torch's SyncBatchNorm (keys unchanged).

    Only for multi-GPU CUDA DDP: SyncBatchNorm raises on CPU tensors, and on one device it equals
    BatchNorm. Called by the training pipeline after the networks are on their CUDA device.
    """
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)
