"""Per-pixel depthwise 3x3 convolution (CC-FPSE's conditional convolution), fast and reference.

Every output pixel of every channel has its own 3x3 kernel, predicted by the generator from the label
map: ``out[n,c,h,w] = sum_{i,j in 0..2} W[n, 9c + 3i + j, h, w] * x_pad[n, c, h + i, w + j]`` with
``x_pad`` the input zero-padded by one pixel (no bias; kernels used as predicted, not normalised).
The kernel channels of channel c are the 9 consecutive channels 9c .. 9c+8, tap (i, j) at 3i + j,
which is the order of ``F.unfold``'s patches.

* fast: :func:`pixel_depthwise_conv3x3` -- the sum over the 9 shifted views of the padded input, each
  times its kernel slice, accumulated in place: no 9xCxHxW copy of the input (the reference's unfold
  materialises one per call, the largest tensor of the layer at 256x256), and the backward keeps only
  the padded input and the kernels;
* reference: :func:`reference_pixel_depthwise_conv3x3` -- ``F.unfold`` of the input, times the
  kernels, summed over the 9 taps.

Layers: :class:`PixelDepthwiseConv2d` (fast) and its reference twin
:class:`ReferencePixelDepthwiseConv2d` (``ops.to_reference(net, kinds=("pixel_conv",))``). Both carry
the official layer's BatchNorm ``norm_layer``, which the official code builds and saves but never runs.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PixelDepthwiseConv2d", "ReferencePixelDepthwiseConv2d", "pixel_depthwise_conv3x3",
           "reference_pixel_depthwise_conv3x3"]

TAPS = 9


def _check(x, weights):
    n, c, h, w = x.shape
    if weights.shape != (n, TAPS * c, h, w):
        raise ValueError(f"per-pixel 3x3 kernels must be [{n},{TAPS * c},{h},{w}] for an input of shape "
                         f"{tuple(x.shape)}, got {tuple(weights.shape)}")


class _PixelDepthwiseConv3x3(torch.autograd.Function):
    """out = sum_k W_k * shift_k(x); grad_x = sum_k unshift_k(W_k * g); grad_W_k = g * shift_k(x)."""

    @staticmethod
    def forward(ctx, x, weights):
        n, c, h, w = x.shape
        padded = F.pad(x, (1, 1, 1, 1))
        kernels = weights.view(n, c, TAPS, h, w)
        out = torch.mul(kernels[:, :, 0], padded[:, :, 0:h, 0:w])
        for k in range(1, TAPS):
            i, j = divmod(k, 3)
            out.addcmul_(kernels[:, :, k], padded[:, :, i:i + h, j:j + w])
        ctx.save_for_backward(padded, weights)
        return out

    @staticmethod
    def backward(ctx, grad):
        padded, weights = ctx.saved_tensors
        n, c, h, w = grad.shape
        kernels = weights.view(n, c, TAPS, h, w)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_padded = grad.new_zeros(n, c, h + 2, w + 2)
            for k in range(TAPS):
                i, j = divmod(k, 3)
                grad_padded[:, :, i:i + h, j:j + w].addcmul_(kernels[:, :, k], grad)
            grad_x = grad_padded[:, :, 1:h + 1, 1:w + 1]
        if ctx.needs_input_grad[1]:
            grad_w = grad.new_empty(n, c, TAPS, h, w)
            for k in range(TAPS):
                i, j = divmod(k, 3)
                torch.mul(grad, padded[:, :, i:i + h, j:j + w], out=grad_w[:, :, k])
            grad_w = grad_w.view(n, TAPS * c, h, w)
        return grad_x, grad_w


def _in_a_plain_layout(t):
    """``t`` itself when NCHW- or channels-last-contiguous (its channel dimension then splits into
    (C, 9) as a view), else an NCHW copy."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return t
    return t.contiguous()


def pixel_depthwise_conv3x3(x, weights):
    """Fast: ``x [N,C,H,W]``, ``weights [N,9C,H,W]`` (see the module doc) -> ``[N,C,H,W]``. Runs in the
    inputs' own layout, NCHW or channels-last (test.py's default): converting the 9C-channel kernels
    between layouts costs more than the convolution itself."""
    _check(x, weights)
    dtype = torch.promote_types(x.dtype, weights.dtype)
    return _PixelDepthwiseConv3x3.apply(_in_a_plain_layout(x.to(dtype)), _in_a_plain_layout(weights.to(dtype)))


def reference_pixel_depthwise_conv3x3(x, weights):
    """Reference: the unfold form (a [N,9C,H*W] copy of the input), as the official ``DepthConv``."""
    _check(x, weights)
    n, c, h, w = x.shape
    patches = F.unfold(x, kernel_size=3, padding=1).view(n * c, TAPS, h, w)
    return (weights.view(n * c, TAPS, h, w) * patches).sum(dim=1).view(n, c, h, w)


class PixelDepthwiseConv2d(nn.Module):
    """``forward(x [N,C,H,W], weights [N,9C,H,W]) -> [N,C,H,W]``: :func:`pixel_depthwise_conv3x3`.

    ``norm_layer``: BatchNorm2d(C), a parameter of the official layer (key ``<layer>.norm_layer.*``)
    that its forward never uses; kept so that official checkpoints load strictly."""

    def __init__(self, channels):
        super().__init__()
        self.norm_layer = nn.BatchNorm2d(channels, affine=True)

    def forward(self, x, weights):
        return pixel_depthwise_conv3x3(x, weights)


class ReferencePixelDepthwiseConv2d(PixelDepthwiseConv2d):
    """Reference twin of :class:`PixelDepthwiseConv2d` (:func:`reference_pixel_depthwise_conv3x3`)."""

    def forward(self, x, weights):
        return reference_pixel_depthwise_conv3x3(x, weights)
