"""SPADE residual block (the building block of the SPADE / DAGAN generator backbone)."""

import torch.nn as nn
import torch.nn.functional as F

from .normalization import SPADE, SPADE_HIDDEN, as_pyramid
from .base_network import LRELU_SLOPE
from .ops.spectral_norm import spectral_norm


class SPADEResnetBlock(nn.Module):
    """Residual block with SPADE normalisation.

    ``SPADEResnetBlock(fin, fout, norm_G, semantic_nc, onehot_nc=0, onehot_start=0, norm_name=...)``;
    ``forward(x [B,fin,H,W], seg, class_ids=None) -> [B,fout,H,W]``, ``seg`` and ``class_ids`` as
    :meth:`SPADE.forward <models.networks.normalization.SPADE.forward>` takes them (a tensor
    [B,semantic_nc,h,w] and int64 [B,h,w] ids or None, or a shared ``SegmapPyramid``); ``onehot_nc``:
    how many segmap channels, from ``onehot_start`` on, are one-hot; ``norm_name``: the key of SPADE's
    parameter-free norm, ``spade_hidden`` the width of its shared layer (see
    :class:`~models.networks.normalization.SPADE`; OASIS uses this block).
    Main path: SPADE -> lReLU(0.2) -> 3x3 conv fin->fmid -> SPADE -> lReLU -> 3x3 conv fmid->fout,
    fmid = min(fin, fout). The shortcut is learned (SPADE -> 1x1 conv, no bias) only when fin != fout.
    With 'spectral' in ``norm_G`` every conv of the block is spectrally normalised.
    """

    def __init__(self, fin, fout, norm_G, semantic_nc, onehot_nc=0, onehot_start=0, norm_name="param_free_norm",
                 spade_hidden=SPADE_HIDDEN):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = nn.Conv2d(fin, fmiddle, kernel_size=3, padding=1)
        self.conv_1 = nn.Conv2d(fmiddle, fout, kernel_size=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, kernel_size=1, bias=False)
        if "spectral" in norm_G:
            self.conv_0 = spectral_norm(self.conv_0)
            self.conv_1 = spectral_norm(self.conv_1)
            if self.learned_shortcut:
                self.conv_s = spectral_norm(self.conv_s)
        spade_config = norm_G.replace("spectral", "")
        spade = dict(onehot_nc=onehot_nc, onehot_start=onehot_start, norm_name=norm_name, hidden=spade_hidden)
        self.norm_0 = SPADE(spade_config, fin, semantic_nc, **spade)
        self.norm_1 = SPADE(spade_config, fmiddle, semantic_nc, **spade)
        if self.learned_shortcut:
            self.norm_s = SPADE(spade_config, fin, semantic_nc, **spade)

    def forward(self, x, seg, class_ids=None):
        seg = as_pyramid(seg, class_ids)  # the three SPADE layers share one resize of the segmap
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), LRELU_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), LRELU_SLOPE))
        return x_s + dx
