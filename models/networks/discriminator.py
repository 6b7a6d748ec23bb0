"""Multiscale PatchGAN discriminator (SPADE's, unchanged by DAGAN)."""

import logging
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import OptionError, require_positive

from .base_network import BaseNetwork
from .normalization import get_nonspade_norm_layer

logger = logging.getLogger(__name__)

LRELU_SLOPE = 0.2


def check_conv_norm(flag, norm):
    """:class:`OptionError` unless ``norm`` (``--norm_D``, ``--norm_E``) is a norm that
    :func:`get_nonspade_norm_layer` builds (tried on a 1x1 conv)."""
    try:
        get_nonspade_norm_layer(norm)(nn.Conv2d(1, 1, 1))
    except ValueError:
        raise OptionError(flag, norm, "must be [spectral](instance|batch|syncbatch|none), "
                                      "e.g. spectralinstance") from None


class NLayerDiscriminator(BaseNetwork):
    """PatchGAN. ``forward(x [B, semantic_nc+3, H, W])`` -> list of every layer's output; the last is
    the patch score map [B,1,h,w]. Kernel 4, padding 2; first conv with bias and no norm; then
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
        sequence = [[nn.Conv2d(input_nc, nf, kernel_size=kw, stride=2, padding=padw),
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

    def forward(self, input):
        """``input``: the tensor above, or the pair (semantics [b,S,H,W], images [k*b,3,H,W]) standing
        for the channel concatenation of each group of b images with the same b label maps."""
        layers = list(self.children())
        if isinstance(input, (tuple, list)):
            results = [self.first_layer_of_pair(*input)]
        else:
            results = [layers[0](input)]
        for submodel in layers[1:]:
            results.append(submodel(results[-1]))
        return results

    def first_layer_of_pair(self, semantics, images):
        """``model0`` on the concatenation of each image group with the label maps, computed without
        building it. A convolution is linear in its input channels: conv(cat(S, I), W) =
        conv(S, W[:, :s]) + conv(I, W[:, s:]) + bias, so the label maps' part (s of the s+3 input
        channels) is computed once for all k groups (fake and real) instead of k times, and needs no
        backward in the G step; the checkpoint keeps the one weight tensor. Same values up to rounding."""
        conv, activation = self.model0[0], self.model0[1:]
        b, s = semantics.shape[:2]
        shared = F.conv2d(semantics, conv.weight[:, :s], None, conv.stride, conv.padding)
        own = F.conv2d(images, conv.weight[:, s:], conv.bias, conv.stride, conv.padding)
        return activation((own.unflatten(0, (images.size(0) // b, b)) + shared).flatten(0, 1))


class MultiscaleDiscriminator(BaseNetwork):
    """``num_D`` PatchGANs; D_k sees the input average-pooled k times (k3, s2, p1, no pad counting).

    ``forward(x [B, semantic_nc+3, H, W]) -> list (per scale) of lists of features`` (each inner list
    as :class:`NLayerDiscriminator` returns it, the score map last). Feature matching uses all but the
    last entry; the GAN loss uses the last.
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser.add_argument("--ndf", type=int, default=64,
                            help="number of discriminator filters in the first conv layer")
        parser.add_argument("--norm_D", type=str, default="spectralinstance",
                            help="normalisation of the discriminator: [spectral](instance|batch|syncbatch|none)")
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
        input_nc = opt.semantic_nc + getattr(opt, "output_nc", 3)
        for i in range(opt.num_D):
            self.add_module(f"discriminator_{i}",
                            NLayerDiscriminator(input_nc, opt.ndf, opt.n_layers_D, opt.norm_D))

    @staticmethod
    def downsample(x):
        return F.avg_pool2d(x, kernel_size=3, stride=2, padding=[1, 1], count_include_pad=False)

    def forward(self, input):
        """``input``: the tensor above, or the pair (semantics [b,S,H,W], images [k*b,3,H,W]) standing
        for the channel concatenation of each group of b images with the same b label maps (k = 2:
        fake and real). The pair is the same computation (average pooling is per channel) with less
        work: the label maps are pooled once per scale, without a backward, never duplicated or
        concatenated with the images, and each scale's first convolution covers them once for all
        groups (:meth:`NLayerDiscriminator.first_layer_of_pair`); under autocast both parts are cast
        once, before pooling, instead of the whole input at every scale's first convolution. The
        input is not pooled after the last scale (the reference does, unused)."""
        pair = isinstance(input, (tuple, list))
        if pair:
            semantics, images = input
            if semantics.size(0) == 0 or images.size(0) % semantics.size(0):
                raise ValueError(f"D pair input: {images.size(0)} images for {semantics.size(0)} label maps; "
                                 f"the images must be whole groups of the label-map batch")
            device_type = images.device.type
            if torch.is_autocast_enabled(device_type):
                dtype = torch.get_autocast_dtype(device_type)
                semantics, images = semantics.to(dtype), images.to(dtype)
            semantics = semantics.to(images.dtype)
        discriminators = list(self.children())
        result = []
        for k, discriminator in enumerate(discriminators):
            if k > 0:
                if pair:
                    semantics, images = self.downsample(semantics), self.downsample(images)
                else:
                    input = self.downsample(input)
            result.append(discriminator((semantics, images) if pair else input))
        return result
