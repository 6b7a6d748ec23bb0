"""Convolution of a one-hot label map by table look-up (SPADE's ``mlp_shared``), and its reference.

A kxk convolution of a one-hot map is, per output pixel, the sum of k*k weight columns picked by the
neighbouring labels: no multiplication is needed, and the zeros of the map are never read.

* fast: :func:`onehot_conv2d` (with :func:`onehot_table`, :func:`onehot_index`);
* reference: :func:`reference_onehot_conv2d`, the dense convolution of the one-hot map.

Shapes: ``labels [B,H,W]`` int64 in [0, n) stand for n input channels of ``conv`` (one-hot), the
channels ``start .. start + n - 1`` (``start`` 0: the first n); ``extra [B,E,H,W]`` or None are its
remaining E input channels, dense, in their order (those before ``start``, e.g. OASIS's noise, then
those after the one-hot block, e.g. an instance edge map); ``conv`` is an ``nn.Conv2d(n + E, O, k,
padding=k // 2)`` (odd k, stride 1). Output ``[B,O,H,W]``.
"""

import torch
import torch.nn.functional as F

__all__ = ["onehot_conv2d", "onehot_index", "onehot_table", "reference_onehot_conv2d"]


def onehot_table(conv, n, start=0):
    """The look-up table of :func:`onehot_conv2d` for the input channels ``start .. start + n - 1`` of
    ``conv``: [kh*kw*(n+1), out] with ``table[(i*kw + j)*(n+1) + c] = weight[:, start + c, i, j]``, row n of each tap
    all zero (the padding), and the bias added to the rows of tap 0 (every output pixel sums exactly
    one row per tap, so the bias is counted once)."""
    weight, bias = conv.weight, conv.bias
    out_c, _, kh, kw = weight.shape
    taps = weight[:, start:start + n].permute(2, 3, 1, 0).reshape(kh * kw, n, out_c)
    table = torch.cat([taps, taps.new_zeros(kh * kw, 1, out_c)], dim=1)
    if bias is not None:
        table = torch.cat([table[:1] + bias, table[1:]], dim=0)
    return table.reshape(-1, out_c)


def onehot_index(labels, kh, kw, n):
    """``labels [B,H,W]`` -> [B*H*W, kh*kw]: the rows of the table (:func:`onehot_table`) each output
    pixel sums (out-of-image neighbours read the all-zero row n of their tap)."""
    batch, height, width = labels.shape
    padded = F.pad(labels, (kw // 2, kw // 2, kh // 2, kh // 2), value=n)
    offsets = torch.arange(kh * kw, device=labels.device) * (n + 1)
    windows = padded.unfold(1, kh, 1).unfold(2, kw, 1)  # [B,H,W,kh,kw]
    return windows.reshape(batch * height * width, kh * kw) + offsets


def onehot_conv2d(labels, extra, conv, table=None, index=None, memory_format=torch.channels_last, dtype=None,
                  start=0):
    """Fast: ``conv`` applied to a segmap given as class indices: the same sums, without the zeros.

    ``labels [B,H,W]``, ``extra [B,E,H,W]`` or None, ``conv``: see the module doc. Zero padding is an
    extra all-zero row of the look-up table; the look-up runs as one ``embedding_bag`` (gradients
    reach ``conv.weight`` and ``conv.bias`` as usual, none reaches the labels).
    ``table`` / ``index``: :func:`onehot_table` / :func:`onehot_index` when already at hand.
    Returns [B,O,H,W] in ``memory_format``: channels-last is a view of the look-up's [B*H*W, O]
    output; contiguous (NCHW) is one 2-D transpose per image (a blocked copy, several times faster
    than a 4-D permute-and-copy, and so is its backward). ``dtype``: the result is cast to it after
    the layout change (SPADE passes the autocast dtype the next convolution would cast it to).
    ``start``: the first one-hot input channel (see the module doc)."""
    weight = conv.weight
    out_c, _, kh, kw = weight.shape
    batch, height, width = labels.shape
    n = weight.size(1) - (0 if extra is None else extra.size(1))
    if table is None:
        table = onehot_table(conv, n, start)
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
        dense = weight[:, n:] if start == 0 else torch.cat([weight[:, :start], weight[:, start + n:]], dim=1)
        out = out + F.conv2d(extra, dense, None, padding=(kh // 2, kw // 2))
    return out if dtype is None else out.to(dtype)


def reference_onehot_conv2d(labels, extra, conv, start=0):
    """Reference: ``conv`` of the dense map (``extra``'s first ``start`` channels, the one-hot map of
    ``labels``, the rest of ``extra``)."""
    n = conv.weight.size(1) - (0 if extra is None else extra.size(1))
    onehot = F.one_hot(labels, n).permute(0, 3, 1, 2).to(conv.weight.dtype)
    if extra is None:
        return conv(onehot)
    extra = extra.to(onehot.dtype)
    return conv(torch.cat([extra[:, :start], onehot, extra[:, start:]], dim=1))


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
