"""SPADE residual block (the building block of the SPADE / DAGAN generator backbone)."""

import torch.nn as nn
import torch.nn.functional as F
from .normalization import SPADE, spectral_norm

LRELU_SLOPE = 0.2


class SPADEResnetBlock(nn.Module):
    """Residual block with SPADE normalisation.

    ``forward(x [B,fin,H,W], seg [B,semantic_nc,h,w]) -> [B,fout,H,W]``.
    Main path: SPADE -> lReLU(0.2) -> 3x3 conv fin->fmid -> SPADE -> lReLU -> 3x3 conv fmid->fout,
    fmid = min(fin, fout). The shortcut is learned (SPADE -> 1x1 conv, no bias) only when fin != fout.
    With 'spectral' in ``norm_G`` every conv of the block is spectrally normalised.
    """

    def __init__(self, fin, fout, norm_G, semantic_nc):
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
        self.norm_0 = SPADE(spade_config, fin, semantic_nc)
        self.norm_1 = SPADE(spade_config, fmiddle, semantic_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(spade_config, fin, semantic_nc)

    def forward(self, x, seg):
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), LRELU_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), LRELU_SLOPE))
        return x_s + dx
