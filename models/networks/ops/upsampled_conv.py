"""A 3x3 convolution of a nearest-2x-upsampled map, computed at the map's own resolution.

``conv2d(upsample2x(x), weight, bias, padding=1)``: every output pixel of the upsampled grid sees only
2x2 distinct input pixels, so each of its four phases (row parity a, column parity b) is a 2x2
convolution of x with the 3x3 kernel's taps summed accordingly; the four phases run as one convolution
with 4*O outputs over x padded by 1, and are interleaved into the 2h x 2w grid. Same result up to float
rounding (the taps are summed before, not after, the multiplication) at 4/9 of the multiply-adds, and
the upsampled input is never built.

Shapes: ``x [B,C,h,w]``, ``weight [O,C,3,3]``, ``bias [O]`` or None -> ``[B,O,2h,2w]``.

* fast: :func:`conv3x3_of_upsampled`, and the layer :class:`UpsampledConv2d`;
* reference: :func:`reference_conv3x3_of_upsampled`, and :class:`ReferenceUpsampledConv2d`.
Both layers hold the parameters of ``nn.Conv2d(C, O, 3, padding=1)`` (keys ``weight``, ``bias``).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .resize import reference_upsample2x

__all__ = ["ReferenceUpsampledConv2d", "UpsampledConv2d", "conv3x3_of_upsampled", "reference_conv3x3_of_upsampled"]

# Which of a 3x3 kernel's three taps (along one axis) fall on each of the two input pixels that
# an output pixel of phase a sees when the input was nearest-upsampled 2x: output row 2i reads the
# upsampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i; row 2i+1 reads 2i, 2i+1, 2i+2 = rows i, i, i+1.
_UPSAMPLED_TAPS = (((1, 0, 0), (0, 1, 1)),   # phase 0: row i-1 <- k0, row i <- k1 + k2
                   ((1, 1, 0), (0, 0, 1)))   # phase 1: row i <- k0 + k1, row i+1 <- k2


def conv3x3_of_upsampled(x, weight, bias=None):
    """Fast: ``conv2d(upsample2x(x), weight, bias, padding=1)`` computed at x's resolution (module doc)."""
    batch, channels, h, w = x.shape
    out_channels = weight.size(0)
    if weight.shape[1:] != (channels, 3, 3):
        raise ValueError(f"conv3x3_of_upsampled needs a [O,{channels},3,3] weight, got {list(weight.shape)}")
    taps = torch.tensor(_UPSAMPLED_TAPS, dtype=weight.dtype, device=weight.device)  # [phase, tap, k]
    phase_weight = torch.einsum("apk,bql,oikl->oabipq", taps, taps, weight).reshape(4 * out_channels, channels, 2, 2)
    phase_bias = None if bias is None else bias.repeat_interleave(4)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), phase_weight, phase_bias)  # [B, 4*O, h+1, w+1]
    return _InterleavePhases.apply(y.unflatten(1, (out_channels, 2, 2)))  # [B, O, a, b, h+1, w+1] -> grid


def reference_conv3x3_of_upsampled(x, weight, bias=None):
    """Reference: the 3x3 convolution (padding 1) of the nearest-2x-upsampled x."""
    return F.conv2d(reference_upsample2x(x), weight, bias, padding=1)


class _InterleavePhases(torch.autograd.Function):
    """[B,O,2,2,h+1,w+1] -> [B,O,2h,2w]: out[..., 2i+a, 2j+b] = y[:, :, a, b, i+a, j+b] (phase (a, b)
    starts a pixel later along each axis where it reads (i, i+1) instead of (i-1, i)). Four strided
    copies each way; the backward zeroes only the row and column of each phase that the forward did
    not read (autograd's slicing would zero-fill and then sum four full-size gradients)."""

    @staticmethod
    def forward(ctx, y):
        batch, channels, _, _, h1, w1 = y.shape
        h, w = h1 - 1, w1 - 1
        out = y.new_empty(batch, channels, h, 2, w, 2)
        for a in (0, 1):
            for b in (0, 1):
                out[:, :, :, a, :, b] = y[:, :, a, b, a:a + h, b:b + w]
        return out.view(batch, channels, 2 * h, 2 * w)

    @staticmethod
    def backward(ctx, grad):
        batch, channels, h2, w2 = grad.shape
        h, w = h2 // 2, w2 // 2
        grad = grad.reshape(batch, channels, h, 2, w, 2)
        grad_y = grad.new_empty(batch, channels, 2, 2, h + 1, w + 1)
        for a in (0, 1):
            for b in (0, 1):
                grad_y[:, :, a, b, a:a + h, b:b + w] = grad[:, :, :, a, :, b]
                grad_y[:, :, a, b, h if a == 0 else 0, :] = 0
                grad_y[:, :, a, b, :, w if b == 0 else 0] = 0
        return grad_y


class UpsampledConv2d(nn.Conv2d):
    """Fast layer: ``forward(x [B,C,h,w]) -> [B,O,2h,2w]`` = a 3x3 conv (padding 1) of the nearest-2x
    upsampling of x, by :func:`conv3x3_of_upsampled`. Parameters and keys of ``nn.Conv2d(C, O, 3,
    padding=1)``; the input is the map *before* upsampling."""

    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x):
        return conv3x3_of_upsampled(x, self.weight, self.bias)


class ReferenceUpsampledConv2d(nn.Conv2d):
    """Reference layer: upsamples x (nearest 2x) and applies the plain 3x3 convolution. Same
    constructor, parameters and ``forward(x [B,C,h,w]) -> [B,O,2h,2w]`` as :class:`UpsampledConv2d`."""

    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x):
        return self._conv_forward(reference_upsample2x(x), self.weight, self.bias)
