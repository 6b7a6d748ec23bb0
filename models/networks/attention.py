"""DAGAN's attention modules: position-wise Spatial Attention (SAM) and scale-wise Channel Attention (CAM).

Submodule names (``conv``; ``conv1``/``conv2``) match the official checkpoints, where the generator
holds them as ``spatialAtt`` and ``cab``.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

CAM_MODES = ("I", "II")


class SpatialAttention(nn.Module):
    """SAM (paper Eqs. 2-4).

    ``forward(F [B,C,H,W]) -> (F_s [B,C,H,W], A_s [B,1,H,W])`` with
    A_s = sigmoid(conv3x3([mean_c(F), max_c(F)])) and F_s = A_s * F.
    The official code wraps this in try/except and silently returns F on error; errors propagate here.
    """

    def __init__(self, kernel_size=3):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"SpatialAttention kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention_map(self, x):
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out, _ = torch.max(x, dim=1, keepdim=True)
        return torch.sigmoid(self.conv(torch.cat([avg_out, max_out], dim=1)))

    def forward(self, x):
        attention = self.attention_map(x)
        return x * attention, attention


class ChannelAttention(nn.Module):
    """CAM (paper Eqs. 6-9) on two features of the same shape.

    ``forward(prev [B,C,H,W], feat [B,C,H,W]) -> (F_c [B,C,H,W], delta [B,C])`` where
    delta = sigmoid(conv2(relu(conv1(avgpool([prev, feat]))))), conv1 1x1 2C->C, conv2 1x1 C->C, and
    mode 'II' (Eq. 9, official): F_c = prev + delta * feat; mode 'I' (Eq. 8): F_c = delta * prev + feat.
    ``prev`` is the previous-scale feature F~ and ``feat`` the last backbone feature F.
    """

    def __init__(self, in_channels, out_channels, mode="II"):
        super().__init__()
        if mode not in CAM_MODES:
            raise ValueError(f"unknown CAM mode {mode!r}; known: {', '.join(CAM_MODES)}")
        self.mode = mode
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=1)

    def channel_weights(self, prev, feat):
        # avgpool(cat(prev, feat)) = cat(avgpool(prev), avgpool(feat)): the full-size concatenation
        # (and its backward) is never built.
        pooled = torch.cat([F.adaptive_avg_pool2d(prev, 1), F.adaptive_avg_pool2d(feat, 1)], dim=1)
        return torch.sigmoid(self.conv2(F.relu(self.conv1(pooled))))

    def forward(self, prev, feat):
        delta = self.channel_weights(prev, feat)
        if self.mode == "II":
            fused = delta * feat + prev
        else:
            fused = delta * prev + feat
        return fused, delta.flatten(1)


class ScaleFusion(nn.Module):
    """Paper Eq. 5 for ``--cam_scales K > 1``: fuse K backbone scales into F~.

    ``forward(first [B,C,H,W], others [list of B,C_k,h_k,w_k]) -> F~ [B,C,H,W]``.
    ``first`` is the previous-scale feature already mapped to C channels at full size (``conv_64``'s
    output, exactly as in the official K=1 model). Each further scale goes through its own 1x1 conv
    C_k -> C at its own resolution and is then nearest-upsampled to (H, W): the same result as
    "resize then 1x1 conv" at a fraction of the cost. The K maps are concatenated and fused by one
    1x1 conv K*C -> C. The paper does not give these kernel sizes; 1x1 keeps the CAM lightweight.
    """

    def __init__(self, other_channels, out_channels):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, kernel_size=1) for c in other_channels)
        self.fuse = nn.Conv2d(out_channels * (1 + len(other_channels)), out_channels, kernel_size=1)

    def forward(self, first, others):
        if len(others) != len(self.lateral):
            raise ValueError(f"ScaleFusion expects {len(self.lateral)} extra scales, got {len(others)}")
        maps = [first]
        for conv, feature in zip(self.lateral, others):
            maps.append(F.interpolate(conv(feature), size=first.shape[2:], mode="nearest"))
        return self.fuse(torch.cat(maps, dim=1))
