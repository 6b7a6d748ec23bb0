"""Multiscale PatchGAN discriminator (SPADE's, unchanged by DAGAN).

Discriminator interface (every ``--netD``): ``forward(images, semantics)`` with ``images [k*B,3,H,W]``
(e.g. fake and real concatenated, k = 2) and ``semantics [B,S,H,W]`` the label maps; image j is
paired with label map j % B. A conditional D uses the label maps (this one concatenates them with the
images; a projection D would embed them), an unconditional one (a U-Net segmenter) ignores them.
"""

import logging
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import OptionError, require_positive

from .base_network import LRELU_SLOPE, BaseNetwork
from .normalization import get_nonspade_norm_layer
from .ops.label_image_conv import LabelImageConv2d

logger = logging.getLogger(__name__)


def check_conv_norm(flag, norm):
    """:class:`OptionError` unless ``norm`` (``--norm_D``, ``--norm_E``) is a norm that
    :func:`get_nonspade_norm_layer` builds (tried on a 1x1 conv)."""
    try:
        get_nonspade_norm_layer(norm)(nn.Conv2d(1, 1, 1))
    except ValueError:
        raise OptionError(flag, norm, "must be [spectral](instance|batch|syncbatch|none), "
                                      "e.g. spectralinstance") from None


def add_conv_discriminator_options(parser):
    """``--ndf`` and ``--norm_D``: the flags every convolutional discriminator here declares."""
    parser.add_argument("--ndf", type=int, default=64,
                        help="number of discriminator filters in the first conv layer")
    parser.add_argument("--norm_D", type=str, default="spectralinstance",
                        help="normalisation of the discriminator: [spectral](instance|batch|syncbatch|none)")
    return parser


class NLayerDiscriminator(BaseNetwork):
    """PatchGAN on the channel concatenation [label map, image] (``input_nc`` = S + 3 channels).

    ``forward(images [k*B,3,H,W], semantics [B,S,H,W])`` -> list of every layer's output, each for the
    k*B images (image j with label map j % B); the last is the patch score map [k*B,1,h,w]. The first
    conv (:class:`~models.networks.ops.label_image_conv.LabelImageConv2d`) computes the label maps'
    share of it once for the k groups, without building the concatenation (same values up to
    rounding as ``model0`` on ``cat([semantics repeated k times, images], 1)``).
    Kernel 4, padding 2; first conv with bias and no norm; then
    ``n_layers_D - 1`` norm_D convs (stride 2, the last stride 1, width doubling up to 512); final conv
    to 1 channel with bias. Submodules ``model0`` .. ``model<n_layers_D>`` (official key layout).
    """

    def __init__(self, input_nc, ndf=64, n_layers_D=4, norm_D="spectralinstance"):
        super().__init__()
        if n_layers_D < 1:
            raise ValueError(f"--n_layers_D must be >= 1, got {n_layers_D}")
        kw = 4
        padw = int(math.ceil((kw - 1.0) / 2))
        nf = ndf
        norm_layer = get_nonspade_norm_layer(norm_D)
        sequence = [[LabelImageConv2d(input_nc, nf, kernel_size=kw, stride=2, padding=padw),
                     nn.LeakyReLU(LRELU_SLOPE, False)]]
        for n in range(1, n_layers_D):
            nf_prev = nf
            nf = min(nf * 2, 512)
            stride = 1 if n == n_layers_D - 1 else 2
            sequence += [[norm_layer(nn.Conv2d(nf_prev, nf, kernel_size=kw, stride=stride, padding=padw)),
                          nn.LeakyReLU(LRELU_SLOPE, False)]]
        sequence += [[nn.Conv2d(nf, 1, kernel_size=kw, stride=1, padding=padw)]]
        for n, layers in enumerate(sequence):
            self.add_module(f"model{n}", nn.Sequential(*layers))

    def forward(self, images, semantics):
        layers = list(self.children())
        results = [layers[0][1:](layers[0][0](images, semantics))]
        for submodel in layers[1:]:
            results.append(submodel(results[-1]))
        return results


class MultiscaleDiscriminator(BaseNetwork):
    """``num_D`` PatchGANs; D_k sees its input average-pooled k times (k3, s2, p1, no pad counting).

    ``forward(images [k*B,3,H,W], semantics [B,S,H,W]) -> list (per scale) of lists of features``,
    image j paired with label map j % B (the module doc's interface). Each inner list is what
    :class:`NLayerDiscriminator` returns for the k*B images, the score map last: feature matching
    uses all but the last entry, the GAN loss the last. Same values, up to rounding, as the reference:
    each scale's PatchGAN on ``cat([semantics repeated k times, images], 1)`` pooled k times. Less work:
    the label maps are pooled once per scale, never repeated or concatenated with the images, and each
    scale's first convolution covers them once for all k groups; under autocast both are cast once,
    before pooling; the input is not pooled after the last scale (the reference does, unused).
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        add_conv_discriminator_options(parser)
        parser.add_argument("--num_D", type=int, default=2,
                            help="number of discriminators at different scales")
        parser.add_argument("--n_layers_D", type=int, default=4,
                            help="number of layers of each PatchGAN discriminator")
        return parser

    @staticmethod
    def validate_options(opt):
        require_positive(opt, "ndf", "num_D", "n_layers_D")
        check_conv_norm("--norm_D", opt.norm_D)

    def __init__(self, opt):
        super().__init__()
        if opt.num_D < 1:
            raise ValueError(f"--num_D must be >= 1, got {opt.num_D}")
        input_nc = opt.semantic_nc + opt.output_nc
        for i in range(opt.num_D):
            self.add_module(f"discriminator_{i}",
                            NLayerDiscriminator(input_nc, opt.ndf, opt.n_layers_D, opt.norm_D))

    @staticmethod
    def downsample(x):
        return F.avg_pool2d(x, kernel_size=3, stride=2, padding=[1, 1], count_include_pad=False)

    def forward(self, images, semantics):
        if semantics.size(0) == 0 or images.size(0) % semantics.size(0):
            raise ValueError(f"D input: {images.size(0)} images for {semantics.size(0)} label maps; "
                             f"the images must be whole groups of the label-map batch")
        device_type = images.device.type
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            semantics, images = semantics.to(dtype), images.to(dtype)
        semantics = semantics.to(images.dtype)
        result = []
        for k, discriminator in enumerate(self.children()):
            if k > 0:
                semantics, images = self.downsample(semantics), self.downsample(images)
            result.append(discriminator(images, semantics))
        return result
