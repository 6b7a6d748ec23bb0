"""VAE image encoder for ``--use_vae`` (style from a reference image)."""

import logging

import torch.nn as nn
import torch.nn.functional as F

from .base_network import LRELU_SLOPE, BaseNetwork
from .normalization import get_nonspade_norm_layer

logger = logging.getLogger(__name__)


class ConvEncoder(BaseNetwork):
    """``forward(image [B,3,H,W] in [-1,1]) -> (mu [B,z_dim], logvar [B,z_dim])``.

    The image is resized (bilinear) to 256x256, then stride-2 3x3 convs of width ngf x 1, 2, 4, 8, 8
    and a sixth of width 8*ngf when ``crop_size >= 256`` (``layer1`` .. ``layer6``, each norm_E conv +
    lReLU 0.2) bring it to 4x4, and ``fc_mu`` / ``fc_var`` map 8*ngf*4*4 -> z_dim.

    Deviation from the reference: with ``crop_size < 256`` the reference builds five layers but still
    resizes to 256, so the 8x8 result does not fit its fc layers and it crashes. Here the image is
    resized to 128x128 in that case, so the five layers end at 4x4 as the fc layers expect; the
    parameters and keys are the reference's.
    """

    def __init__(self, opt):
        super().__init__()
        kw = 3
        pw = 1
        ndf = opt.ngf
        norm_layer = get_nonspade_norm_layer(opt.norm_E)
        self.layer1 = norm_layer(nn.Conv2d(3, ndf, kw, stride=2, padding=pw))
        self.layer2 = norm_layer(nn.Conv2d(ndf * 1, ndf * 2, kw, stride=2, padding=pw))
        self.layer3 = norm_layer(nn.Conv2d(ndf * 2, ndf * 4, kw, stride=2, padding=pw))
        self.layer4 = norm_layer(nn.Conv2d(ndf * 4, ndf * 8, kw, stride=2, padding=pw))
        self.layer5 = norm_layer(nn.Conv2d(ndf * 8, ndf * 8, kw, stride=2, padding=pw))
        self.six_layers = opt.crop_size >= 256
        if self.six_layers:
            self.layer6 = norm_layer(nn.Conv2d(ndf * 8, ndf * 8, kw, stride=2, padding=pw))
        self.input_size = 256 if self.six_layers else 128
        self.so = s0 = 4
        self.fc_mu = nn.Linear(ndf * 8 * s0 * s0, opt.z_dim)
        self.fc_var = nn.Linear(ndf * 8 * s0 * s0, opt.z_dim)

    def forward(self, x):
        size = self.input_size
        if x.size(2) != size or x.size(3) != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = self.layer1(x)
        x = self.layer2(F.leaky_relu(x, LRELU_SLOPE))
        x = self.layer3(F.leaky_relu(x, LRELU_SLOPE))
        x = self.layer4(F.leaky_relu(x, LRELU_SLOPE))
        x = self.layer5(F.leaky_relu(x, LRELU_SLOPE))
        if self.six_layers:
            x = self.layer6(F.leaky_relu(x, LRELU_SLOPE))
        x = F.leaky_relu(x, LRELU_SLOPE)
        x = x.view(x.size(0), -1)
        return self.fc_mu(x), self.fc_var(x)
