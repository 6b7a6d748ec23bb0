"""The segmentation map of one generator forward, resized once per feature size, with its class ids.

Every SPADE layer of the reference code resizes the full segmap (nearest) to its own feature size
itself. Nearest resizing is pure index selection, so resizing once per size and sharing the result
between the layers of that size gives bit-identical inputs (the reference: ``F.interpolate`` per
layer, as :class:`~models.networks.ops.reference.ReferenceSPADE` does).
"""

import torch
import torch.nn.functional as F

from .onehot_conv import onehot_index
from .resize import nearest_resize

__all__ = ["SegmapPyramid"]


class SegmapPyramid:
    """``SegmapPyramid(segmap [B,S,H,W], class_ids=None)``, shared by the SPADE layers of one forward.

    * ``at(size) -> [B,S,h,w]``: the segmap nearest-resized to ``size`` (cached; ``segmap`` itself at
      its own size);
    * ``labels_at(size, n, start=0) -> [B,h,w] int64`` or None: the class ids whose one-hot encoding
      is the ``n`` channels of the segmap from channel ``start`` on (0: the first n), at ``size`` (cached). They are ``class_ids`` (int64 [B,H,W])
      when given: the caller vouches for them (``Pix2PixModel`` passes the label map it built the
      one-hot map from). Otherwise they are recovered from the map when its first ``n`` channels are
      exactly one-hot (checked once, three passes over the map); None when they are not (a soft or
      malformed map: SPADE then runs its dense convolution), when ``n`` is 0, or when the segmap
      requires grad (the look-up would give it no gradient);
    * ``index_at(size, kh, kw, n, start=0)``: :func:`~models.networks.ops.onehot_conv.onehot_index` of
      ``labels_at(size, n, start)`` (cached: shared by the SPADE layers of a size);
    * ``dense_at(size, n, start=0) -> [B,S-n,h,w]`` or None: the channels outside the one-hot block, in
      their order (the ``extra`` of ``onehot_conv2d``).
    """

    def __init__(self, segmap, class_ids=None):
        if class_ids is not None:
            expected = (segmap.size(0),) + tuple(segmap.shape[2:])
            if segmap.dim() != 4 or tuple(class_ids.shape) != expected:
                raise ValueError(f"class_ids must be [B,H,W] = {list(expected)} for a segmap of shape "
                                 f"{list(segmap.shape)}, got {list(class_ids.shape)}")
            if class_ids.dtype != torch.int64:
                raise ValueError(f"class_ids must be int64, got {class_ids.dtype}")
        self.segmap = segmap
        self.class_ids = class_ids
        self._dense = {}
        self._full_labels = {}
        self._labels = {}
        self._index = {}

    def at(self, size):
        size = tuple(int(s) for s in size)
        if size not in self._dense:
            if tuple(self.segmap.shape[2:]) == size:
                self._dense[size] = self.segmap
            else:
                self._dense[size] = nearest_resize(self.segmap, size)
        return self._dense[size]

    def _one_hot_labels(self, n, start=0):
        if self.segmap.dim() != 4 or self.segmap.size(1) < start + n or self.segmap.requires_grad:
            return None
        if self.class_ids is not None:
            return self.class_ids
        onehot = self.segmap[:, start:start + n]
        with torch.no_grad():
            # Exactly one-hot <=> no negative value, and per pixel a maximum of 1 and a sum of 1
            # (the other, non-negative, values then sum to 0). Three passes over the map.
            if bool((onehot.amin() < 0)):
                return None
            top, labels = onehot.max(dim=1)
            if not bool((top == 1).all()) or not bool((onehot.sum(dim=1) == 1).all()):
                return None
            return labels

    def labels_at(self, size, n, start=0):
        if n <= 0:
            return None
        if (n, start) not in self._full_labels:
            # Checked once per forward, on first use: soft or malformed maps take the dense path.
            self._full_labels[(n, start)] = self._one_hot_labels(n, start)
        full = self._full_labels[(n, start)]
        if full is None:
            return None
        key = (tuple(int(s) for s in size), n, start)
        if key not in self._labels:
            labels = full
            if tuple(labels.shape[1:]) != key[0]:
                # float32 holds class ids exactly; nearest picks the same source pixels as for the map.
                labels = F.interpolate(labels[:, None].float(), size=key[0], mode="nearest")[:, 0].long()
            self._labels[key] = labels
        return self._labels[key]

    def index_at(self, size, kh, kw, n, start=0):
        key = (tuple(int(v) for v in size), kh, kw, n, start)
        if key not in self._index:
            self._index[key] = onehot_index(self.labels_at(size, n, start), kh, kw, n)
        return self._index[key]

    def dense_at(self, size, n, start=0):
        channels = self.segmap.size(1)
        if channels <= n:
            return None
        full = self.at(size)
        if start == 0:
            return full[:, n:]
        if start + n >= channels:
            return full[:, :start]
        return torch.cat([full[:, :start], full[:, start + n:]], dim=1)
