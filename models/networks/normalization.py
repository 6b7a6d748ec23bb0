"""Normalisation layers: SPADE, parameter-free norms, spectral norm helpers, sync-BN conversion.

Spectral normalisation uses the old-style ``torch.nn.utils.spectral_norm`` on purpose: it stores
``weight_orig``, ``weight_u`` and ``weight_v`` in the state dict, which is the key layout of the
official SPADE / DAGAN checkpoints (see ``checkpoint_layout/``). The parametrization-based variant
would name the keys differently and official files would not load with ``strict=True``.
"""

import logging
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as _torch_spectral_norm
from torch.nn.utils.spectral_norm import SpectralNorm

logger = logging.getLogger(__name__)

SPADE_HIDDEN = 128


class FP32SpectralNorm(SpectralNorm):
    """torch's spectral-norm hook (same buffers, state-dict keys and hooks) with three changes that
    leave the normalised weight W / sigma the same up to float rounding:

    * the power iteration and sigma run outside autocast: under CUDA fp16 ``torch.mv`` / ``torch.dot``
      would run in half precision and sigma (the scale of every normalised weight) would carry fp16
      rounding; ``weight_u`` / ``weight_v`` stay fp32 for checkpoints. The convolution is autocast;
    * inference (eval mode, no grad) caches W / sigma until the weight or u, v change;
    * on an :class:`SNConv2d` whose output is smaller than its weight (1024-channel layers on a
      small grid), the division moves to the output: conv(x, W) / sigma + b is conv(x, W / sigma) + b
      without dividing (and differentiating) the whole weight at every forward.
    """

    def __call__(self, module, inputs):
        weight = getattr(module, self.name + "_orig")
        module.__dict__.pop("_sn_sigma", None)
        if not module.training and not torch.is_grad_enabled():
            # Inference: W / sigma is the same tensor at every call until the weight or the power
            # iteration vectors change (optimizer step, state-dict load), which bumps their versions.
            u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
            key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in (weight, u, v))
            cached = module.__dict__.get("_sn_eval_cache")
            if cached is None or cached[0] != key:
                with torch.autocast(device_type=weight.device.type, enabled=False):
                    super().__call__(module, inputs)
                module.__dict__["_sn_eval_cache"] = (key, getattr(module, self.name))
            else:
                setattr(module, self.name, cached[1])
            return
        module.__dict__.pop("_sn_eval_cache", None)
        with torch.autocast(device_type=weight.device.type, enabled=False):
            if isinstance(module, SNConv2d) and self.name == "weight" and module.scales_output(inputs[0]):
                # The conv uses W itself (a view: not a Parameter, so not re-registered) and divides
                # its output by sigma (SNConv2d.forward).
                module.__dict__["_sn_sigma"] = self.sigma(module, do_power_iteration=module.training)
                setattr(module, self.name, weight.view_as(weight))
            else:
                super().__call__(module, inputs)

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        return weight / self.sigma(module, do_power_iteration)

    def sigma(self, module, do_power_iteration):
        """sigma = u^T W v after the power iteration (u, v updated in place, as torch does). For a
        channels-last conv weight the matrix is taken in the weight's own memory order, columns
        (kh, kw, in) instead of (in, kh, kw): a view instead of a copy of the whole weight. A column
        permutation leaves sigma unchanged; ``v`` is stored in torch's (official) order."""
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        channels_last = (self.dim == 0 and weight.dim() == 4 and not weight.is_contiguous()
                         and weight.is_contiguous(memory_format=torch.channels_last))
        if channels_last:
            out_c, in_c, kh, kw = weight.shape
            weight_mat = weight.permute(0, 2, 3, 1).reshape(out_c, -1)  # a view: memory order
            v_used = v.view(in_c, kh, kw).permute(1, 2, 0).reshape(-1)
        else:
            weight_mat = self.reshape_weight_to_matrix(weight)
            v_used = v
        if do_power_iteration:
            with torch.no_grad():
                for _ in range(self.n_power_iterations):
                    v_used = F.normalize(torch.mv(weight_mat.t(), u), dim=0, eps=self.eps,
                                         out=None if channels_last else v)
                    u = F.normalize(torch.mv(weight_mat, v_used), dim=0, eps=self.eps, out=u)
                if self.n_power_iterations > 0:
                    if channels_last:  # back to torch's order, in place (buffers shared with replicas)
                        v.copy_(v_used.view(kh, kw, in_c).permute(2, 0, 1).reshape(-1))
                    # Cloned, as torch does: a later forward's in-place update must not touch this
                    # graph's u and v.
                    u = u.clone(memory_format=torch.contiguous_format)
                    v_used = v_used.clone(memory_format=torch.contiguous_format)
        return torch.dot(u, torch.mv(weight_mat, v_used))


class SNConv2d(nn.Conv2d):
    """The Conv2d that :func:`spectral_norm` returns: same parameters and keys; when the hook has
    left ``_sn_sigma`` (see :class:`FP32SpectralNorm`) the output, not the weight, is divided."""

    def scales_output(self, x):
        """True when dividing this call's output is cheaper than dividing the weight: one sample's
        output smaller than the weight. Per sample, so that the choice (and the rounding) does not
        depend on how a batch is split across DDP ranks."""
        if x.dim() != 4 or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return False
        out_hw = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, p, d, k, s in
                  zip(x.shape[2:], self.padding, self.dilation, self.kernel_size, self.stride)]
        return self.out_channels * out_hw[0] * out_hw[1] < self.weight_orig.numel()

    def forward(self, x):
        sigma = self.__dict__.pop("_sn_sigma", None)
        if sigma is None:
            return super().forward(x)
        out = self._conv_forward(x, self.weight, None) / sigma  # a 0-dim fp32 sigma keeps out's dtype
        if self.bias is not None:
            out = out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        return out


def spectral_norm(module, name="weight"):
    """``torch.nn.utils.spectral_norm`` (official key layout: weight_orig, weight_u, weight_v) with
    the hook of :class:`FP32SpectralNorm`; a plain Conv2d becomes an :class:`SNConv2d`."""
    module = _torch_spectral_norm(module, name=name)
    for hook in module._forward_pre_hooks.values():
        if type(hook) is SpectralNorm and hook.name == name:
            hook.__class__ = FP32SpectralNorm
    if type(module) is nn.Conv2d:
        module.__class__ = SNConv2d
    return module


PARAM_FREE_NORMS = ("instance", "syncbatch", "batch")


def param_free_norm(kind, num_features):
    """A normalisation without learned affine parameters.

    ``syncbatch`` builds a plain BatchNorm2d: torch's SyncBatchNorm raises on CPU tensors, so the
    cross-device version is swapped in by :func:`convert_sync_batchnorm` only under multi-GPU DDP.
    The state-dict keys (running_mean, running_var, num_batches_tracked) are the same either way.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(num_features, affine=False)
    if kind in ("syncbatch", "batch"):
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


SPADE_IMPLS = ("fast", "ref")


# Attribute under which Pix2PixModel.preprocess_input leaves, on the one-hot map it builds, the
# [B,H,W] class ids it was built from, so the pyramid needs not recover (and check) them.
ONEHOT_LABELS_ATTR = "onehot_labels"


def nearest_resize(x, size):
    """``F.interpolate(x, size, mode="nearest")`` as two index selections: the same source rows and
    columns (found by interpolate itself, on a ramp of indices), so the same values bit for bit, in
    x's memory format. On CPU, interpolate first copies a large many-channel input in full (a
    [1,151,256,256] label map: ~85 ms to make an 8x8 map); this reads only the selected pixels."""
    height, width = x.shape[-2:]
    ramp = dict(dtype=torch.float32, device=x.device)  # exact for indices below 2**24
    rows = F.interpolate(torch.arange(height, **ramp).view(1, 1, height, 1), size=(size[0], 1), mode="nearest")
    cols = F.interpolate(torch.arange(width, **ramp).view(1, 1, 1, width), size=(1, size[1]), mode="nearest")
    out = x.index_select(2, rows.view(-1).long()).index_select(3, cols.view(-1).long())
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


class SegmapPyramid:
    """The segmentation map of one generator forward, nearest-resized once per feature size.

    ``SegmapPyramid(segmap [B,C,H,W], onehot_channels=n)``; ``at(size) -> [B,C,h,w]`` (cached), and
    ``labels_at(size) -> [B,h,w] int64`` class indices of the first ``n`` channels, or ``None`` when
    those channels are not exactly one-hot (then SPADE falls back to dense convolutions).
    Every SPADE layer of the reference resizes the full segmap itself; nearest resizing is pure index
    selection, so resizing once per size and sharing it gives bit-identical inputs.
    """

    def __init__(self, segmap, onehot_channels=0):
        self.segmap = segmap
        self.onehot_channels = int(onehot_channels)
        self._dense = {}
        self._labels = {}
        self._index = {}
        self._full_labels = None
        self._checked = False

    def _one_hot_labels(self):
        n = self.onehot_channels
        if self.segmap.dim() != 4 or self.segmap.size(1) < n or self.segmap.requires_grad:
            return None
        known = getattr(self.segmap, ONEHOT_LABELS_ATTR, None)
        if known is not None and known.shape == (self.segmap.size(0),) + tuple(self.segmap.shape[2:]):
            return known  # the class ids this map was built from (Pix2PixModel.preprocess_input)
        onehot = self.segmap[:, :n]
        with torch.no_grad():
            # Exactly one-hot <=> no negative value, and per pixel a maximum of 1 and a sum of 1
            # (the other, non-negative, values then sum to 0). Three passes over the map.
            if bool((onehot.amin() < 0)):
                return None
            top, labels = onehot.max(dim=1)
            if not bool((top == 1).all()) or not bool((onehot.sum(dim=1) == 1).all()):
                return None
            return labels

    def index_at(self, size, kh, kw):
        """:func:`onehot_index` of ``labels_at(size)`` (cached: shared by the SPADE layers of a size)."""
        key = (tuple(int(v) for v in size), kh, kw)
        if key not in self._index:
            self._index[key] = onehot_index(self.labels_at(size), kh, kw, self.onehot_channels)
        return self._index[key]

    @property
    def extra_channels(self):
        return self.segmap.size(1) - self.onehot_channels

    def at(self, size):
        size = tuple(int(s) for s in size)
        if size not in self._dense:
            if tuple(self.segmap.shape[2:]) == size:
                self._dense[size] = self.segmap
            else:
                self._dense[size] = nearest_resize(self.segmap, size)
        return self._dense[size]

    def labels_at(self, size):
        if not self._checked:
            # Checked once per forward, on first use: soft or malformed maps take the dense path.
            self._checked = True
            self._full_labels = self._one_hot_labels() if self.onehot_channels > 0 else None
        if self._full_labels is None:
            return None
        size = tuple(int(s) for s in size)
        if size not in self._labels:
            labels = self._full_labels
            if tuple(labels.shape[1:]) != size:
                # float32 holds class ids exactly; nearest picks the same source pixels as for the map.
                labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
            self._labels[size] = labels
        return self._labels[size]


def onehot_table(conv, n):
    """The look-up table of :func:`onehot_conv2d` for the first ``n`` input channels of ``conv``:
    [kh*kw*(n+1), out] with ``table[(i*kw + j)*(n+1) + c] = weight[:, c, i, j]``, row n of each tap
    all zero (the padding), and the bias added to the rows of tap 0 (every output pixel sums exactly
    one row per tap, so the bias is counted once)."""
    weight, bias = conv.weight, conv.bias
    out_c, _, kh, kw = weight.shape
    taps = weight[:, :n].permute(2, 3, 1, 0).reshape(kh * kw, n, out_c)
    table = torch.cat([taps, taps.new_zeros(kh * kw, 1, out_c)], dim=1)
    if bias is not None:
        table = torch.cat([table[:1] + bias, table[1:]], dim=0)
    return table.reshape(-1, out_c)


def onehot_index(labels, kh, kw, n):
    """[B*H*W, kh*kw] rows of the table each output pixel sums (see :func:`onehot_table`)."""
    batch, height, width = labels.shape
    padded = F.pad(labels, (kw // 2, kw // 2, kh // 2, kh // 2), value=n)
    offsets = torch.arange(kh * kw, device=labels.device) * (n + 1)
    windows = padded.unfold(1, kh, 1).unfold(2, kw, 1)  # [B,H,W,kh,kw]
    return windows.reshape(batch * height * width, kh * kw) + offsets


def onehot_conv2d(labels, extra, conv, table=None, index=None, memory_format=torch.channels_last, dtype=None):
    """``conv`` applied to a segmap given as class indices: the same sums, without the zeros.

    ``labels [B,H,W]`` int64 in [0, n) stand for the first n one-hot input channels of ``conv``;
    ``extra [B,E,H,W]`` (or None) are its remaining input channels, convolved densely. Zero padding
    is an extra all-zero row of the lookup table. A kxk convolution of a one-hot map is, per output
    pixel, the sum of k*k weight columns picked by the neighbouring labels, so it runs as one
    ``embedding_bag`` (gradients reach ``conv.weight`` and ``conv.bias`` as usual).
    ``table`` / ``index``: :func:`onehot_table` / :func:`onehot_index` when already at hand.
    Returns [B,O,H,W] in ``memory_format``: channels-last is a view of the look-up's [B*H*W, O]
    output; contiguous (NCHW) is one 2-D transpose per image (a blocked copy, several times faster
    than a 4-D permute-and-copy, and so is its backward). ``dtype``: the result cast to it (SPADE
    passes the autocast dtype the next convolution would cast it to)."""
    weight = conv.weight
    out_c, _, kh, kw = weight.shape
    batch, height, width = labels.shape
    n = weight.size(1) - (0 if extra is None else extra.size(1))
    if table is None:
        table = onehot_table(conv, n)
    if index is None:
        index = onehot_index(labels, kh, kw, n)
    out = F.embedding_bag(index, table, mode="sum")  # [B*H*W, O]
    if memory_format == torch.channels_last:
        out = out.view(batch, height, width, out_c).permute(0, 3, 1, 2)
    elif memory_format == torch.contiguous_format:
        out = _PixelRowsToNCHW.apply(out, batch, height, width)
    else:
        raise ValueError(f"onehot_conv2d: memory_format must be channels_last or contiguous_format, got {memory_format}")
    if extra is not None:
        out = out + F.conv2d(extra, weight[:, n:], None, padding=(kh // 2, kw // 2))
    return out if dtype is None else out.to(dtype)


class _PixelRowsToNCHW(torch.autograd.Function):
    """[B*H*W, C] pixel rows -> [B,C,H,W] contiguous, and the gradient back: one 2-D transpose per
    image each way, which torch copies blockwise (a 4-D permute-and-copy, or autograd's copy into
    slices of a fresh tensor, costs several passes more)."""

    @staticmethod
    def forward(ctx, rows, batch, height, width):
        pixels, channels = height * width, rows.size(1)
        out = rows.new_empty(batch, channels, height, width)  # returned as is: not a view
        for b in range(batch):
            out[b].view(channels, pixels).copy_(rows[b * pixels:(b + 1) * pixels].t())
        return out

    @staticmethod
    def backward(ctx, grad):
        batch, channels = grad.shape[:2]
        grad = grad.reshape(batch, channels, -1)
        pixels = grad.size(2)
        rows = grad.new_empty(batch * pixels, channels)
        for b in range(batch):
            rows[b * pixels:(b + 1) * pixels].copy_(grad[b].t())
        return rows, None, None, None


class SPADE(nn.Module):
    """Spatially-adaptive normalisation.

    ``forward(x [B,C,H,W], segmap) -> [B,C,H,W]``: x is normalised without learned
    parameters, then modulated as ``norm(x) * (1 + gamma) + beta`` where gamma and beta are predicted
    from the segmap resized (nearest) to (H, W). ``segmap`` is a tensor [B,label_nc,h,w] or a
    :class:`SegmapPyramid` shared by the generator's SPADE layers.

    ``impl`` selects the computation (same parameters, same results to float rounding):
    'fast' (default) convolves one-hot segmaps by table lookup (:func:`onehot_conv2d`) and runs
    ``mlp_gamma`` and ``mlp_beta`` as one convolution with their weights concatenated at run time
    (cached in eval mode); 'ref' is the plain SPADE computation, kept as the reference for tests.
    The state-dict layout is the official one either way.
    """

    def __init__(self, config_text, norm_nc, label_nc):
        super().__init__()
        kind, kernel = parse_spade_config(config_text)
        pad = kernel // 2
        self.impl = "fast"
        self.param_free_norm = param_free_norm(kind, norm_nc)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, SPADE_HIDDEN, kernel, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(SPADE_HIDDEN, norm_nc, kernel, padding=pad)
        self.mlp_beta = nn.Conv2d(SPADE_HIDDEN, norm_nc, kernel, padding=pad)
        self._fused_cache = None
        self._table_cache = None

    def forward(self, x, segmap):
        if self.impl == "ref":
            return self.forward_reference(x, segmap)
        if self.impl != "fast":
            raise ValueError(f"SPADE.impl must be one of {', '.join(SPADE_IMPLS)}, got {self.impl!r}")
        normalized = self.param_free_norm(x)
        if not isinstance(segmap, SegmapPyramid):
            segmap = SegmapPyramid(segmap)
        size = x.shape[2:]
        labels = segmap.labels_at(size)
        if labels is not None:
            extra = segmap.at(size)[:, segmap.onehot_channels:] if segmap.extra_channels else None
            # Straight into the layout of the rest of the network and, under autocast, the dtype
            # the next convolution would cast it to; ReLU in place on that fresh tensor.
            conv = self.mlp_shared[0]
            index = segmap.index_at(size, *conv.kernel_size)
            fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                   else torch.contiguous_format)
            dtype = (torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type)
                     else None)
            actv = F.relu(onehot_conv2d(labels, extra, conv, self._onehot_table(segmap.onehot_channels),
                                        index, memory_format=fmt, dtype=dtype), inplace=True)
        else:
            actv = self.mlp_shared(segmap.at(size))
        weight, bias = self._gamma_beta_weights()
        # One convolution for gamma and beta; its gamma half already carries the "1 +".
        gamma_1, beta = F.conv2d(actv, weight, bias, padding=self.mlp_gamma.padding).chunk(2, dim=1)
        return torch.addcmul(beta, normalized, gamma_1)

    def _onehot_table(self, n):
        conv = self.mlp_shared[0]
        if self.training or torch.is_grad_enabled():
            self._table_cache = None
            return onehot_table(conv, n)
        # Inference: built once; the key notices in-place updates (optimizer steps, loading).
        key = (n,) + tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in (conv.weight, conv.bias)
                          if p is not None)
        if self._table_cache is None or self._table_cache[0] != key:
            self._table_cache = (key, onehot_table(conv, n))
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

    def forward_reference(self, x, segmap):
        if isinstance(segmap, SegmapPyramid):
            segmap = segmap.segmap
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        gamma = self.mlp_gamma(actv)
        beta = self.mlp_beta(actv)
        return normalized * (1 + gamma) + beta


def set_spade_impl(module, impl):
    """Set ``impl`` ('fast' | 'ref') of every SPADE layer inside ``module``, and of every other module
    with a fast and a reference computation (an ``impl`` attribute: the DAGAN tail); returns ``module``."""
    if impl not in SPADE_IMPLS:
        raise ValueError(f"unknown SPADE impl {impl!r}; known: {', '.join(SPADE_IMPLS)}")
    for m in module.modules():
        if isinstance(m, SPADE) or isinstance(getattr(m, "impl", None), str):
            m.impl = impl
    return module


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
