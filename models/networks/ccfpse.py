"""CC-FPSE (Liu et al., NeurIPS 2019): the conditional-convolution generator (``--netG condconv``) and
the feature-pyramid semantics-embedding discriminator (``--netD fpse``), with the official key layout.

Structure, order of operations and key names are those of the official code (xh-liu/CC-FPSE), so its
released ``<epoch>_net_G.pth`` / ``_D.pth`` load with ``strict=True``. The per-pixel depthwise
convolution is the memory-lean form of ``ops/pixel_conv.py`` (the official unfold is its reference twin).
"""

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import OptionError, require_positive

from .base_network import LRELU_SLOPE, BaseNetwork
from .discriminator import add_conv_discriminator_options, check_conv_norm
from .generator import UPSAMPLING_LAYERS, LatentStart, check_output_size
from .normalization import SPADE, get_nonspade_norm_layer
from .ops.pixel_conv import PixelDepthwiseConv2d
from .ops.resize import nearest_resize, upsample2x
from .ops.spectral_norm import spectral_norm

logger = logging.getLogger(__name__)

WEIGHT_HIDDEN = 128  # official width of the kernel / attention prediction heads and of the shortcut's SPADE
CONDCONV_UPSAMPLING = ("normal", "more")


def _conv_norm_lrelu(norm_layer, conv):
    """``Sequential(norm_layer(conv), LeakyReLU(0.2))``: keys ``<name>.0.0.weight_orig``, ``<name>.0.1.*``."""
    return nn.Sequential(norm_layer(conv), nn.LeakyReLU(LRELU_SLOPE, inplace=True))


def _prediction_head(cond_nc, out_nc, hidden, sigmoid=False):
    """3x3 cond -> hidden (128), ReLU, 3x3 hidden -> out (then sigmoid for an attention map)."""
    layers = [nn.Conv2d(cond_nc, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, out_nc, 3, padding=1)]
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def add_label_pyramid(module, in_nc, nf, levels, norm):
    """Build the weight-prediction network's label encoder as submodules of ``module`` (the official keys
    ``labelenc<k>``, ``labellat<k>``, ``labeldec<k>`` sit on the generator itself); see :func:`label_pyramid`."""
    norm_layer = get_nonspade_norm_layer(norm)
    for k in range(1, levels + 1):
        conv = nn.Conv2d(in_nc if k == 1 else nf, nf, 3, padding=1, stride=1 if k == 1 else 2)
        module.add_module(f"labelenc{k}", _conv_norm_lrelu(norm_layer, conv))
    for k in range(1, levels):
        module.add_module(f"labellat{k}", _conv_norm_lrelu(norm_layer, nn.Conv2d(nf, nf, 1)))
    for k in range(1, levels):
        module.add_module(f"labeldec{k}", _conv_norm_lrelu(norm_layer, nn.Conv2d(nf, nf, 3, padding=1)))


def label_pyramid(module, semantics, levels):
    """The label encoder's features, ``{(h, w): [B,nf,h,w]}``, one per level, H x W down to H/2^(levels-1).

    Bottom-up ``labelenc1`` (3x3, stride 1) and ``labelenc2..<levels>`` (3x3, stride 2); top-down from the
    deepest: feature_k = ``labeldec<k>``(nearest-up x2(feature_{k-1}) + ``labellat<k>``(the encoder output
    of that size)); every conv ``--norm_G`` (spectral + BatchNorm in the official model) + lReLU 0.2."""
    encoded = []
    x = semantics
    for k in range(1, levels + 1):
        x = getattr(module, f"labelenc{k}")(x)
        encoded.append(x)
    feature = encoded[-1]
    features = {tuple(feature.shape[2:]): feature}
    for k in range(1, levels):
        lateral = getattr(module, f"labellat{k}")(encoded[-1 - k])
        feature = getattr(module, f"labeldec{k}")(upsample2x(feature) + lateral)
        features[tuple(feature.shape[2:])] = feature
    return features


class CondConvBlock(nn.Module):
    """The conditional-convolution residual block (official ``DepthsepCCBlock``).

    ``CondConvBlock(fin, fout, cond_nc, hidden=128)``; ``forward(x [B,fin,H,W], cond [B,cond_nc,h,w]) -> [B,fout,H,W]``
    (``cond``: the label map and the label pyramid's feature, resized nearest to H x W here).
    Four heads predict, per pixel, the depthwise 3x3 kernels W1 (``gen_weights1``, 9*fin channels) and
    W2 (``gen_weights2``, 9*fout) and the sigmoid gates S1 (``gen_se_weights1``, fmid) and S2
    (``gen_se_weights2``, fout), fmid = min(fin, fout) = fout. Main path: ``norm_1`` (BatchNorm fin) ->
    depthwise W1 (``conv_0``) -> 1x1 ``conv_1`` -> x S1 -> lReLU -> ``norm_2`` (BatchNorm fmid) ->
    depthwise W2 (``conv_2``) -> 1x1 ``conv_3`` -> x S2 -> lReLU; plus the shortcut, SPADE (``norm_s``,
    batch norm) -> spectral 1x1 without bias (``conv_s``) when fin != fout, else x. ``norm_0`` and the
    depthwise layers' ``norm_layer`` are built and saved by the official code but never run. ``hidden``:
    the width of the heads' and the SPADE's hidden layer (128 in the official model).
    """

    def __init__(self, fin, fout, cond_nc, hidden=WEIGHT_HIDDEN):
        super().__init__()
        if fout > fin:
            raise ValueError(f"CondConvBlock({fin}, {fout}): the official W2 kernels fit only fout <= fin")
        self.learned_shortcut = fin != fout
        fmid = min(fin, fout)
        self.gen_weights1 = _prediction_head(cond_nc, 9 * fin, hidden)
        self.gen_weights2 = _prediction_head(cond_nc, 9 * fout, hidden)
        self.gen_se_weights1 = _prediction_head(cond_nc, fmid, hidden, sigmoid=True)
        self.gen_se_weights2 = _prediction_head(cond_nc, fout, hidden, sigmoid=True)
        self.conv_0 = PixelDepthwiseConv2d(fin)
        self.norm_0 = nn.BatchNorm2d(fmid, affine=True)  # never run (official layout)
        self.conv_1 = nn.Conv2d(fin, fmid, kernel_size=1)
        self.norm_1 = nn.BatchNorm2d(fin, affine=True)
        self.conv_2 = PixelDepthwiseConv2d(fmid)
        self.norm_2 = nn.BatchNorm2d(fmid, affine=True)
        self.conv_3 = nn.Conv2d(fmid, fout, kernel_size=1)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, kernel_size=1, bias=False))
            self.norm_s = SPADE("spadebatch3x3", fin, cond_nc, hidden=hidden)

    def forward(self, x, cond):
        if cond.shape[2:] != x.shape[2:]:
            cond = nearest_resize(cond, x.shape[2:])
        kernels1 = self.gen_weights1(cond)
        kernels2 = self.gen_weights2(cond)
        gate1 = self.gen_se_weights1(cond)
        gate2 = self.gen_se_weights2(cond)
        x_s = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv_1(self.conv_0(self.norm_1(x), kernels1))
        dx = F.leaky_relu(dx * gate1, LRELU_SLOPE)
        dx = self.conv_3(self.conv_2(self.norm_2(dx), kernels2))
        dx = F.leaky_relu(dx * gate2, LRELU_SLOPE)
        return x_s + dx


class CondConvGenerator(LatentStart, BaseNetwork):
    """CC-FPSE generator (``--netG condconv``).

    ``forward(semantics [B,semantic_nc,H,W], z=None, class_ids=None) -> image [B,3,H,W]`` in [-1, 1],
    W = crop_size, H = round(crop_size / aspect_ratio); ``z`` [B,z_dim] with ``--use_vae`` (None: drawn
    from N(0, I)); ``class_ids`` is not used.

    Latent: with ``--use_vae`` ``fc`` (Linear z_dim -> 16 ngf * sh * sw) reshaped to [B,16ngf,sh,sw];
    without, ``fc`` (3x3 conv semantic_nc -> 16 ngf) on the label map resized nearest to sh x sw. The label
    pyramid (:func:`label_pyramid`, ngf channels, 6 levels; 7 with ``--num_upsampling_layers more``)
    gives one feature per size; every block is conditioned on cat(label map resized nearest, the
    feature of its size). Blocks (:class:`CondConvBlock`): ``head_0`` 16ngf (at sh x sw), x2,
    ``G_middle_0``, (x2 with ``more``), ``G_middle_1``, then x2 before each of ``up_0..up_3``
    (16ngf -> 8 -> 4 -> 2 -> 1 ngf); output lReLU 0.2, 3x3 conv to 3, tanh. Upsampling: nearest.
    """

    # PNGs as the official test writes them: uint8((x + 1) / 2 * 255), truncated (the pix2pix model reports it).
    image_rounding = "truncate"

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser.add_argument("--norm_G", type=str, default="spectralsyncbatch",
                            help="normalisation of the condconv generator's label encoder: "
                                 "[spectral](instance|batch|syncbatch|none) (official: spectral + BatchNorm)")
        parser.add_argument("--num_upsampling_layers", choices=CONDCONV_UPSAMPLING, default="normal",
                            help="normal: 5 upsamplings; more: one between the middle blocks and a 7th "
                                 "label-encoder level (Cityscapes, as the official code)")
        parser.add_argument("--condconv_hidden", type=int, default=WEIGHT_HIDDEN,
                            help="width of the hidden layer of the condconv blocks' kernel / attention heads and "
                                 "shortcut SPADE (official: 128; smaller for small images, e.g. the synthetic preset)")
        return parser

    @staticmethod
    def validate_options(opt):
        if opt.output_nc != 3:
            raise OptionError("--output_nc", opt.output_nc, "must be 3: the condconv generator makes RGB images")
        check_conv_norm("--norm_G", opt.norm_G)
        require_positive(opt, "condconv_hidden")
        check_output_size(opt)
        levels = UPSAMPLING_LAYERS[opt.num_upsampling_layers] + 1
        height = round(opt.crop_size / opt.aspect_ratio)
        if opt.crop_size % 2 ** (levels - 1) or height % 2 ** (levels - 1):
            raise OptionError("--crop_size", opt.crop_size,
                              f"the condconv label encoder halves the map {levels - 1} times: width and height "
                              f"must be multiples of {2 ** (levels - 1)}")

    def __init__(self, opt):
        super().__init__()
        nf = opt.ngf
        self.more = opt.num_upsampling_layers == "more"
        semantic_nc = opt.semantic_nc
        self.init_latent(opt)
        self.levels = 7 if self.more else 6
        add_label_pyramid(self, semantic_nc, nf, self.levels, opt.norm_G)
        cond_nc = semantic_nc + nf
        widths = {"head_0": (16 * nf, 16 * nf), "G_middle_0": (16 * nf, 16 * nf), "G_middle_1": (16 * nf, 16 * nf),
                  "up_0": (16 * nf, 8 * nf), "up_1": (8 * nf, 4 * nf), "up_2": (4 * nf, 2 * nf),
                  "up_3": (2 * nf, 1 * nf)}
        for name, (fin, fout) in widths.items():
            self.add_module(name, CondConvBlock(fin, fout, cond_nc, opt.condconv_hidden))
        self.block_names = list(widths)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

    def _upsample_before(self, name):
        if name == "head_0":
            return False
        if name == "G_middle_1":
            return self.more
        return True

    def forward(self, semantics, z=None, class_ids=None):
        x = self.latent(lambda: nearest_resize(semantics, (self.sh, self.sw)), semantics.size(0), semantics.device, z)
        features = label_pyramid(self, semantics, self.levels)
        for name in self.block_names:
            if self._upsample_before(name):
                x = upsample2x(x)
            size = tuple(x.shape[2:])
            cond = torch.cat((nearest_resize(semantics, size), features[size]), dim=1)
            x = getattr(self, name)(x, cond)
        return torch.tanh(self.conv_img(F.leaky_relu(x, LRELU_SLOPE)))


class FPSEDiscriminator(BaseNetwork):
    """Feature-pyramid semantics-embedding discriminator (``--netD fpse``), usable with any generator.

    ``forward(images [k*B,3,H,W], semantics [B,S,H,W]) -> [[f2, f3, f4, f5, score2], [score3], [score4]]``
    (the discriminator interface of ``models/networks``: image j is paired with label map j % B; the
    score maps last). Bottom-up on the image alone: ``enc1..enc5`` (3x3 stride 2, ndf x 1, 2, 4, 8, 8;
    ``--norm_D`` = spectral + InstanceNorm, lReLU 0.2) give f1..f5 at H/2..H/32; top-down: ``lat5``(f5),
    then bilinear x2 + ``lat4``(f4), + ``lat3``(f3), + ``lat2``(f2) (1x1 to 4 ndf); ``final2..4`` (3x3
    4ndf -> 2ndf) at H/4, H/8, H/16. Scores: ``tf`` (1x1 -> 1) plus the projection term
    sum_c ``seg``(f)_c * e_c, with e the label embedding (``embedding``, 1x1 S -> 2ndf on the full-size
    map) average-pooled (2x2) to the scale. Feature matching uses f2..f5, averaged over those four
    (:attr:`feature_matching_mean`).
    """

    # The pix2pix model's feature-matching loss: lambda / (number of features) per feature, as the official
    # model (the multiscale D averages over its scales instead).
    feature_matching_mean = "features"

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return add_conv_discriminator_options(parser)

    @staticmethod
    def validate_options(opt):
        require_positive(opt, "ndf")
        check_conv_norm("--norm_D", opt.norm_D)
        height = round(opt.crop_size / opt.aspect_ratio)
        if opt.crop_size % 32 or height % 32 or min(opt.crop_size, height) < 64:
            raise OptionError("--crop_size", opt.crop_size,
                              "the fpse discriminator halves the image 5 times and instance-normalises the "
                              "result: width and height must be multiples of 32, at least 64")

    def __init__(self, opt):
        super().__init__()
        nf = opt.ndf
        norm_layer = get_nonspade_norm_layer(opt.norm_D)
        widths = [opt.output_nc, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
        for k in range(1, 6):
            conv = nn.Conv2d(widths[k - 1], widths[k], 3, stride=2, padding=1)
            self.add_module(f"enc{k}", _conv_norm_lrelu(norm_layer, conv))
        for k in range(2, 6):
            self.add_module(f"lat{k}", _conv_norm_lrelu(norm_layer, nn.Conv2d(widths[k], 4 * nf, 1)))
        for k in range(2, 5):
            self.add_module(f"final{k}", _conv_norm_lrelu(norm_layer, nn.Conv2d(4 * nf, 2 * nf, 3, padding=1)))
        self.tf = nn.Conv2d(2 * nf, 1, 1)
        self.seg = nn.Conv2d(2 * nf, 2 * nf, 1)
        self.embedding = nn.Conv2d(opt.semantic_nc, 2 * nf, 1)

    @staticmethod
    def upsample(x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, images, semantics):
        if semantics.size(0) == 0 or images.size(0) % semantics.size(0):
            raise ValueError(f"D input: {images.size(0)} images for {semantics.size(0)} label maps; "
                             f"the images must be whole groups of the label-map batch")
        groups = images.size(0) // semantics.size(0)
        feats = []
        x = images
        for k in range(1, 6):
            x = getattr(self, f"enc{k}")(x)
            feats.append(x)
        top = self.lat5(feats[4])
        pyramid = {5: top}
        for k in (4, 3, 2):
            top = self.upsample(top) + getattr(self, f"lat{k}")(feats[k - 1])
            pyramid[k] = top
        # The label embedding once per label map, pooled to each scale, then shared by its k images.
        embedded = F.avg_pool2d(self.embedding(semantics.to(images.dtype)), 2)
        scores = []
        for k in (2, 3, 4):
            embedded = F.avg_pool2d(embedded, 2)
            feature = getattr(self, f"final{k}")(pyramid[k])
            projection = (self.seg(feature) * embedded.repeat(groups, 1, 1, 1)).sum(dim=1, keepdim=True)
            scores.append(self.tf(feature) + projection)
        return [feats[1:] + [scores[0]], [scores[1]], [scores[2]]]
