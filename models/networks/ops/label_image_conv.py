"""The first convolution of a conditional discriminator, on [label maps, images] without building it.

A conditional D sees ``cat([semantics, image], 1)``. When k images share the same B label maps (fake
and real: k = 2), a convolution is linear in its input channels, conv(cat(S, I), W) = conv(S, W[:, :s])
+ conv(I, W[:, s:]) + bias, so the label maps' part is computed once for all k groups instead of k
times, the label maps are never repeated nor concatenated with the images, and (as label maps need no
gradient) no input gradient is computed for that part. Same values up to float rounding; the layer
keeps the one weight tensor of the plain convolution (checkpoint keys unchanged).

Shapes: ``images [k*B,C,H,W]``, ``semantics [B,S,H,W]``; image j is paired with label map j % B;
``weight [O,S+C,kh,kw]``, ``bias [O]`` or None -> ``[k*B,O,h,w]``.

* fast: :func:`label_image_conv2d`, and the layer :class:`LabelImageConv2d`;
* reference: :func:`reference_label_image_conv2d` (the concatenation, built in full, convolved), and
  :class:`ReferenceLabelImageConv2d`.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LabelImageConv2d", "ReferenceLabelImageConv2d", "label_image_conv2d", "reference_label_image_conv2d"]


def _groups(images, semantics, weight):
    b, s = semantics.shape[:2]
    if b == 0 or images.size(0) % b:
        raise ValueError(f"{images.size(0)} images for {b} label maps: the images must be whole groups "
                         f"of the label-map batch (image j is paired with label map j % {b})")
    if s + images.size(1) != weight.size(1):
        raise ValueError(f"label maps ({s} channels) + images ({images.size(1)} channels) do not make the "
                         f"{weight.size(1)} input channels of the convolution")
    if images.shape[2:] != semantics.shape[2:]:
        raise ValueError(f"images {tuple(images.shape[2:])} and label maps {tuple(semantics.shape[2:])} "
                         "differ in size")
    return images.size(0) // b, s


def label_image_conv2d(images, semantics, weight, bias=None, stride=1, padding=0):
    """Fast: ``conv2d(cat([semantics repeated k times, images], 1), weight, bias, stride, padding)``
    with the label maps' part computed once (module doc)."""
    k, s = _groups(images, semantics, weight)
    shared = F.conv2d(semantics, weight[:, :s], None, stride, padding)
    own = F.conv2d(images, weight[:, s:], bias, stride, padding)
    return (own.unflatten(0, (k, semantics.size(0))) + shared).flatten(0, 1)


def reference_label_image_conv2d(images, semantics, weight, bias=None, stride=1, padding=0):
    """Reference: the concatenated input built in full, then one plain convolution."""
    k, _ = _groups(images, semantics, weight)
    full = torch.cat([semantics.repeat(k, 1, 1, 1).to(images.dtype), images], dim=1)
    return F.conv2d(full, weight, bias, stride, padding)


class LabelImageConv2d(nn.Conv2d):
    """Fast layer: ``forward(images [k*B,C,H,W], semantics [B,S,H,W]) -> [k*B,O,h,w]`` by
    :func:`label_image_conv2d`. Constructed and stored as ``nn.Conv2d(S + C, O, ...)`` (zero padding,
    no dilation, no groups)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or self.groups != 1 or self.dilation != (1, 1) or isinstance(self.padding, str):
            raise ValueError("LabelImageConv2d supports numeric zero padding, groups=1 and dilation=1 only")

    def forward(self, images, semantics):
        return label_image_conv2d(images, semantics, self.weight, self.bias, self.stride, self.padding)


class ReferenceLabelImageConv2d(nn.Conv2d):
    """Reference layer: same constructor, parameters and forward as :class:`LabelImageConv2d`, by
    :func:`reference_label_image_conv2d`."""

    def forward(self, images, semantics):
        return reference_label_image_conv2d(images, semantics, self.weight, self.bias, self.stride, self.padding)
