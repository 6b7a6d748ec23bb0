"""Generators: SPADE / GauGAN (``--netG spade``) and DAGAN (``--netG dagan``, the default).

DAGAN = the SPADE backbone + the official DAGAN tail (position-wise SAM and scale-wise CAM summed
into the last conv); the paper's variants (CAM modes, more scales, SAM/CAM off) are options of the
DAGAN generator. ``--netG dagan --no_sam --no_cam`` is exactly SPADE
(same state-dict keys, same forward).
"""

import argparse
import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import OptionError

from .architecture import SPADEResnetBlock
from .attention import CAM_MODES, ChannelAttention, ScaleFusion, SpatialAttention
from .base_network import LRELU_SLOPE, BaseNetwork
from .normalization import PARAM_FREE_NORMS, parse_spade_config
from .ops.resize import upsample2x
from .ops.segmap import SegmapPyramid
from .ops.upsampled_conv import UpsampledConv2d

logger = logging.getLogger(__name__)

UPSAMPLING_LAYERS = {"normal": 5, "more": 6, "most": 7}


def compute_latent_vector_size(opt):
    """(sw, sh) of the latent grid: crop_size / 2**n_up wide, height from the aspect ratio."""
    mode = opt.num_upsampling_layers
    if mode not in UPSAMPLING_LAYERS:
        raise ValueError(
            f"--num_upsampling_layers {mode!r} not recognised; known: {', '.join(UPSAMPLING_LAYERS)}"
        )
    num_up = UPSAMPLING_LAYERS[mode]
    sw = opt.crop_size // (2 ** num_up)
    sh = round(sw / opt.aspect_ratio)
    if sw < 1 or sh < 1:
        raise ValueError(
            f"--crop_size {opt.crop_size} with --aspect_ratio {opt.aspect_ratio} and "
            f"--num_upsampling_layers {mode} gives an empty latent grid ({sh}x{sw}); "
            f"crop_size must be at least {2 ** num_up} and round((crop_size // {2 ** num_up}) / aspect_ratio) >= 1"
        )
    return sw, sh


def output_size(crop_size, aspect_ratio, num_upsampling_layers):
    """(width, height) of the generated image: the latent grid of :func:`compute_latent_vector_size`
    upsampled 2**n_up times; (0, 0) when the grid would be empty."""
    size = argparse.Namespace(crop_size=crop_size, aspect_ratio=aspect_ratio,
                              num_upsampling_layers=num_upsampling_layers)
    try:
        sw, sh = compute_latent_vector_size(size)
    except ValueError:
        return 0, 0
    scale = 2 ** UPSAMPLING_LAYERS[num_upsampling_layers]
    return sw * scale, sh * scale


def check_output_size(opt):
    """:class:`OptionError` (``--crop_size``) unless the generator's output is exactly the data's size,
    crop_size x round(crop_size / aspect_ratio): the latent grid is crop_size // 2**n_up wide, so
    other sizes would be rounded silently (``--crop_size 100`` gives 96x96)."""
    mode, crop, aspect = opt.num_upsampling_layers, opt.crop_size, opt.aspect_ratio

    def fits(c):
        return round(c / aspect) > 0 and output_size(c, aspect, mode) == (c, round(c / aspect))

    if fits(crop):
        return
    got = output_size(crop, aspect, mode)
    step = 2 ** UPSAMPLING_LAYERS[mode]
    nearest = sorted((c for c in range(step, 2 * max(crop, step) + step, step) if fits(c)),
                     key=lambda c: (abs(c - crop), c))[:2]
    suggestion = f"; nearest that fit: {' or '.join(str(c) for c in sorted(nearest))}" if nearest else ""
    raise OptionError(
        "--crop_size", crop,
        f"the generator would make {got[0]}x{got[1]} images, not {crop}x{round(crop / aspect)} "
        f"(--aspect_ratio {aspect}, --num_upsampling_layers {mode}: the width must be a multiple of {step} "
        f"and the height come out whole){suggestion}")


class LatentStart:
    """The start of SPADE-style generators (SPADE, DAGAN, CC-FPSE's condconv), a mixin of the generator
    class: ``fc`` (the official key) and the latent grid sh x sw.

    :meth:`init_latent` sets ``ngf``, ``use_vae``, ``z_dim``, ``sw``, ``sh`` and ``fc``: with ``--use_vae``
    a Linear z_dim -> 16 ngf * sh * sw, otherwise (deterministic) a 3x3 conv semantic_nc -> 16 ngf of the
    label map downsampled to the grid. :meth:`latent` -> [B,16ngf,sh,sw]."""

    def init_latent(self, opt):
        self.ngf = opt.ngf
        self.use_vae = bool(opt.use_vae)
        self.z_dim = opt.z_dim
        self.sw, self.sh = compute_latent_vector_size(opt)
        if self.use_vae:
            self.fc = nn.Linear(opt.z_dim, 16 * opt.ngf * self.sw * self.sh)
        else:
            self.fc = nn.Conv2d(opt.semantic_nc, 16 * opt.ngf, 3, padding=1)

    def latent(self, downsampled, batch, device, z=None):
        """``downsampled()``: the label map at sh x sw (called only without the VAE); ``z`` [B,z_dim] or
        None (drawn from N(0, I) with the VAE)."""
        if not self.use_vae:
            return self.fc(downsampled())
        if z is None:
            z = torch.randn(batch, self.z_dim, dtype=torch.float32, device=device)
        return self.fc(z).view(-1, 16 * self.ngf, self.sh, self.sw)


class SPADEGenerator(LatentStart, BaseNetwork):
    """SPADE / GauGAN generator (the paper's baseline B1).

    ``forward(semantics [B,semantic_nc,H,W], z=None, class_ids=None) -> image [B,3,H,W] in [-1,1]``
    where W = crop_size and H = round(crop_size / aspect_ratio) (the input's own size is not used for
    the latent grid, as in the reference).

    * ``semantics``: the one-hot label map (``onehot_channels`` = label_nc (+1 don't-care) channels),
      then the instance edge map when used;
    * ``z``: [B,z_dim] with ``use_vae`` (None draws z ~ N(0, I)); ignored without it;
    * ``class_ids``: int64 [B,H,W], the labels the one-hot channels encode (``Pix2PixModel`` passes
      the label map it built them from), for SPADE's look-up path. None: they are recovered from the
      map when it is exactly one-hot, else (a soft map) SPADE convolves densely. Same image either way.
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser.add_argument("--norm_G", type=str, default="spectralspadesyncbatch3x3",
                            help="normalisation of the generator's SPADE blocks: [spectral]spade<norm><k>x<k>, "
                                 "e.g. spectralspadesyncbatch3x3, spadeinstance3x3")
        parser.add_argument("--num_upsampling_layers", choices=tuple(UPSAMPLING_LAYERS), default="normal",
                            help="normal: 5 upsamplings; more: one between the middle blocks (Cityscapes); "
                                 "most: also one more block at the end")
        return parser

    @staticmethod
    def validate_options(opt):
        """The generator makes RGB images of exactly crop_size x round(crop_size / aspect_ratio)."""
        if opt.output_nc != 3:
            raise OptionError("--output_nc", opt.output_nc, f"must be 3: the {opt.netG} generator makes RGB images")
        try:
            parse_spade_config(opt.norm_G.replace("spectral", ""))
        except ValueError:
            raise OptionError("--norm_G", opt.norm_G,
                              f"must be [spectral]spade<norm><k>x<k> with norm one of {', '.join(PARAM_FREE_NORMS)} "
                              "and an odd k, e.g. spectralspadesyncbatch3x3") from None
        if opt.num_upsampling_layers == "most" and opt.ngf < 2:
            raise OptionError("--ngf", opt.ngf, "must be at least 2 with --num_upsampling_layers most "
                                                "(its last block has ngf // 2 channels)")
        check_output_size(opt)

    def __init__(self, opt):
        super().__init__()
        nf = opt.ngf
        self.num_upsampling_layers = opt.num_upsampling_layers
        semantic_nc = opt.semantic_nc
        # The label channels are one-hot (SPADE's fast path looks them up); any instance edge map
        # channel after them is convolved densely.
        dontcare = 1 if opt.contain_dontcare_label else 0
        self.onehot_channels = min(semantic_nc, opt.label_nc + dontcare)
        self.init_latent(opt)

        widths = {
            "head_0": (16 * nf, 16 * nf),
            "G_middle_0": (16 * nf, 16 * nf),
            "G_middle_1": (16 * nf, 16 * nf),
            "up_0": (16 * nf, 8 * nf),
            "up_1": (8 * nf, 4 * nf),
            "up_2": (4 * nf, 2 * nf),
            "up_3": (2 * nf, 1 * nf),
        }
        if self.num_upsampling_layers == "most":
            widths["up_4"] = (1 * nf, nf // 2)
        for name, (fin, fout) in widths.items():
            self.add_module(name, SPADEResnetBlock(fin, fout, opt.norm_G, semantic_nc, self.onehot_channels))
        self.block_names = list(widths)
        self.block_channels = {name: fout for name, (_, fout) in widths.items()}
        self.final_nc = widths[self.block_names[-1]][1]
        self.conv_img = nn.Conv2d(self.final_nc, 3, 3, padding=1)

    def _upsample_before(self, name):
        if name == "head_0":
            return False
        if name == "G_middle_1":
            return self.num_upsampling_layers in ("more", "most")
        return True

    def backbone(self, seg, z=None, class_ids=None):
        """Run fc and every block; returns [(block input, block output)] in block order."""
        # One resize per feature size, shared by all SPADE layers (see SegmapPyramid).
        pyramid = SegmapPyramid(seg, class_ids)
        x = self.latent(lambda: pyramid.at((self.sh, self.sw)), seg.size(0), seg.device, z)
        trace = []
        for name in self.block_names:
            if self._upsample_before(name):
                x = upsample2x(x)
            out = getattr(self, name)(x, pyramid)
            trace.append((x, out))
            x = out
        return trace

    def to_image(self, x):
        return torch.tanh(self.conv_img(F.leaky_relu(x, LRELU_SLOPE)))

    def forward(self, semantics, z=None, class_ids=None):
        return self.to_image(self.backbone(semantics, z, class_ids)[-1][1])


class DAGANGenerator(SPADEGenerator):
    """DAGAN generator: SPADE backbone + SAM + CAM on the last backbone feature.

    ``forward(semantics [B,semantic_nc,H,W], z=None, class_ids=None) -> image [B,3,H,W]`` and
    ``forward_with_attention(semantics, z=None, class_ids=None) -> (image, {'sam': A_s [B,1,H,W],
    'cam': delta [B,C]})`` (a key is absent when its branch is disabled), C = ngf (ngf // 2 with
    ``most``); the arguments as :class:`SPADEGenerator` takes them.

    Official tail (default): with F the last block's output (``up_3``, C channels) and X the
    upsampled output of the block before it (2C channels, the input of ``up_3``),
    F~ = conv3x3(X) (``conv_64``, 2C -> C), F_s = SAM(F), F_c = CAM-II(F~, F) = F~ + delta * F, and the
    image is tanh(conv_img(lReLU(F_c + F_s))). With one branch disabled the image comes from that
    branch alone; with both disabled it is SPADE's. With ``most`` the same tail sits on the last two
    blocks (X = upsampled ``up_3`` output, nf channels; F = ``up_4`` output, nf // 2 channels).

    ``--cam_scales K > 1`` (paper Eq. 5): F~ fuses K scales, counting back from the block before the
    last: conv3x3(X) as above (``conv_64``), plus each earlier block output through its own 1x1 conv
    to C channels at its own resolution, nearest-upsampled to F's size; the K maps are concatenated
    and fused by a 1x1 conv K*C -> C (``cam_fusion``, see :class:`ScaleFusion`). K=1 is the official
    model.

    X is the nearest-2x upsampling of the block before's output, so ``conv_64`` is an
    :class:`~models.networks.ops.upsampled_conv.UpsampledConv2d` applied to that output: it runs at
    that block's resolution (4/9 of the multiply-adds, same result up to float rounding) and holds the
    parameters of the official 3x3 conv (``conv_64.weight``, ``conv_64.bias``).
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        SPADEGenerator.modify_commandline_options(parser, is_train)
        parser.add_argument("--no_sam", action="store_true",
                            help="DAGAN: no position-wise spatial attention module (SAM)")
        parser.add_argument("--no_cam", action="store_true",
                            help="DAGAN: no scale-wise channel attention module (CAM)")
        parser.add_argument("--cam_mode", type=str, default="II", choices=CAM_MODES,
                            help="DAGAN CAM fusion: II (Eq. 9, official) F~ + delta*F; I (Eq. 8) delta*F~ + F")
        parser.add_argument("--cam_scales", type=int, default=1,
                            help="DAGAN: backbone scales fused into CAM's F~ (Eq. 5); 1 = official conv_64 only")
        return parser

    @staticmethod
    def validate_options(opt):
        SPADEGenerator.validate_options(opt)
        # Blocks head_0, G_middle_0/1, up_0..up_3 (+ up_4 with 'most'); CAM fuses those before the last.
        max_scales = 7 + (opt.num_upsampling_layers == "most") - 1
        if not opt.no_cam and not 1 <= opt.cam_scales <= max_scales:
            raise OptionError("--cam_scales", opt.cam_scales,
                              f"must be in [1, {max_scales}] with --num_upsampling_layers {opt.num_upsampling_layers}")

    def __init__(self, opt):
        super().__init__(opt)
        self.use_sam = not opt.no_sam
        self.use_cam = not opt.no_cam
        self.cam_scales = opt.cam_scales
        cam_mode = opt.cam_mode
        max_scales = len(self.block_names) - 1
        if self.use_cam and not 1 <= self.cam_scales <= max_scales:
            raise ValueError(
                f"--cam_scales must be in [1, {max_scales}] for --num_upsampling_layers "
                f"{self.num_upsampling_layers}, got {self.cam_scales}"
            )
        tail_nc = self.final_nc
        tail_in = self.block_channels[self.block_names[-2]]
        if self.use_cam:
            if not self._upsample_before(self.block_names[-1]):
                raise ValueError("DAGAN's CAM expects the last block's input to be upsampled")
            self.conv_64 = UpsampledConv2d(tail_in, tail_nc)
            self.cab = ChannelAttention(2 * tail_nc, tail_nc, mode=cam_mode)
            if self.cam_scales > 1:
                earlier = self.block_names[-2 - (self.cam_scales - 1):-2]
                # Ordered nearest scale first, matching the order of the feature list in forward.
                channels = [self.block_channels[name] for name in reversed(earlier)]
                self.cam_fusion = ScaleFusion(channels, tail_nc)
        if self.use_sam:
            self.spatialAtt = SpatialAttention()

    def attend(self, trace):
        """The DAGAN tail: (fused feature [B,C,H,W], attention dict)."""
        feat = trace[-1][1]
        attention = {}
        if self.use_cam:
            # conv3x3(X), X = the last block's input = upsample2x(the block before's output).
            previous = self.conv_64(trace[-2][1])
            if self.cam_scales > 1:
                others = [trace[-2 - k][1] for k in range(1, self.cam_scales)]
                previous = self.cam_fusion(previous, others)
            x_channel, delta = self.cab(previous, feat)
            attention["cam"] = delta
        if self.use_sam:
            x_spatial, attention["sam"] = self.spatialAtt(feat)
        if self.use_cam and self.use_sam:
            fused = x_channel + x_spatial
        elif self.use_cam:
            fused = x_channel
        elif self.use_sam:
            fused = x_spatial
        else:
            fused = feat
        return fused, attention

    def forward_with_attention(self, semantics, z=None, class_ids=None):
        fused, attention = self.attend(self.backbone(semantics, z, class_ids))
        return self.to_image(fused), attention

    def forward(self, semantics, z=None, class_ids=None):
        return self.forward_with_attention(semantics, z, class_ids)[0]
