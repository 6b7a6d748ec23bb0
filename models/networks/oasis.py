"""The OASIS networks (Sushko et al., ICLR 2021): the 3D-noise SPADE generator and the U-Net
segmentation discriminator, with the official state-dict layout (``checkpoint_layout/oasis_net*``).

Generator (``OASISGenerator``): the condition is ``[z ‖ one-hot]`` (64-d noise per image, or per
pixel, in front of the label channels; none with ``--no_3dnoise``). It is nearest-downsampled to the
latent grid (crop_size / 2**(num_res_blocks-1) wide), ``fc`` (3x3 conv) -> 16ch, then
``num_res_blocks`` SPADE residual blocks (16ch,16ch,16ch,8ch,4ch,2ch,1ch with the default 6) with nearest
x2 upsampling between them, every SPADE conditioned on the full condition; lReLU 0.2, ``conv_img``
3x3 -> 3, tanh. The blocks are the SPADE / DAGAN ``SPADEResnetBlock`` (parameter-free norm under the
key ``first_norm``; the one-hot channels after the noise take the look-up path of ``ops.onehot_conv``).

Discriminator (``OASISDiscriminator``): image only; encoder of residual down blocks (channels
3,128,128,256,256,512,512 = 64 x (2,2,4,4,8,8): ``--channels_D``, which the official code declares but
ignores, scales them here; its default 64 is the official D), decoder of residual up blocks whose input is the skip feature concatenated
in front of the upsampled one, a 1x1 conv to ``semantic_nc + 1`` logits at full resolution (logit 0 =
"fake"). Spectral norm on every conv but the last (``--no_spectral_norm``: none), no normalisation.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import OptionError, require_positive

from .architecture import SPADEResnetBlock
from .base_network import LRELU_SLOPE, BaseNetwork
from .normalization import PARAM_FREE_NORMS, SPADE_HIDDEN
from .ops.resize import upsample2x
from .ops.segmap import SegmapPyramid
from .ops.spectral_norm import spectral_norm

D_WIDTHS = (2, 2, 4, 4, 8, 8)  # x --channels_D (64: the official 3,128,128,256,256,512,512)


def discriminator_channels(channels_D):
    return (3,) + tuple(w * channels_D for w in D_WIDTHS)


def generator_channels(ch, num_res_blocks):
    """Channels entering each block and leaving the last: 16ch x3, 8ch, 4ch, 2ch, ch for 6 blocks (the
    official list; fewer blocks drop its first entries)."""
    full = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, 1 * ch]
    if num_res_blocks > len(full) - 1:
        raise ValueError(f"num_res_blocks {num_res_blocks}: the OASIS generator has at most {len(full) - 1} blocks")
    return full[len(full) - 1 - num_res_blocks:]


def latent_size(opt):
    """(h, w) of the generator's first feature map: w = crop_size // 2**(num_res_blocks-1),
    h = round(w / aspect_ratio) (the official rule)."""
    w = opt.crop_size // (2 ** (opt.num_res_blocks - 1))
    return round(w / opt.aspect_ratio), w


def check_oasis_size(opt):
    """:class:`OptionError` unless the generator's output is the data's size, crop_size x
    round(crop_size / aspect_ratio)."""
    h, w = latent_size(opt)
    scale = 2 ** (opt.num_res_blocks - 1)
    want = (round(opt.crop_size / opt.aspect_ratio), opt.crop_size)
    if h < 1 or w < 1 or (h * scale, w * scale) != want:
        raise OptionError("--crop_size", opt.crop_size,
                          f"the OASIS generator makes {w * scale}x{h * scale} images from a {w}x{h} grid "
                          f"(--num_res_blocks {opt.num_res_blocks}: crop_size / {scale}), not the data's "
                          f"{want[1]}x{want[0]}: use a multiple of {scale} that the aspect ratio divides evenly")


class OASISGenerator(BaseNetwork):
    """``forward(semantics [B,semantic_nc,H,W], z=None, class_ids=None) -> [B,3,H,W]``.

    ``z``: None draws N(0, I) [B,z_dim] (torch's global RNG); [B,z_dim] is broadcast over H x W;
    [B,z_dim,H,W] is a per-pixel noise map (the paper's local re-sampling). Ignored with
    ``no_3dnoise``. ``class_ids`` int64 [B,H,W]: the labels of the one-hot map (look-up path)."""

    def __init__(self, opt):
        super().__init__()
        self.semantic_nc = opt.semantic_nc
        self.z_dim = 0 if opt.no_3dnoise else opt.z_dim
        self.num_res_blocks = opt.num_res_blocks
        self.init_h, self.init_w = latent_size(opt)
        channels = generator_channels(opt.channels_G, opt.num_res_blocks)
        cond_nc = self.semantic_nc + self.z_dim
        norm_G = ("" if opt.no_spectral_norm else "spectral") + f"spade{opt.param_free_norm}{opt.spade_ks}x{opt.spade_ks}"
        self.fc = nn.Conv2d(cond_nc, channels[0], 3, padding=1)
        self.body = nn.ModuleList(
            SPADEResnetBlock(channels[i], channels[i + 1], norm_G, cond_nc, onehot_nc=self.semantic_nc,
                             onehot_start=self.z_dim, norm_name="first_norm",
                             spade_hidden=getattr(opt, "spade_hidden", SPADE_HIDDEN))
            for i in range(len(channels) - 1))
        self.conv_img = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def noise_map(self, semantics, z=None):
        """The noise channels [B,z_dim,H,W] of the condition for ``z`` (see the class doc)."""
        b, _, h, w = semantics.shape
        if z is None:
            z = torch.randn(b, self.z_dim, dtype=torch.float32, device=semantics.device)
        if z.dim() == 2:
            z = z.view(b, self.z_dim, 1, 1).expand(b, self.z_dim, h, w)
        if tuple(z.shape) != (b, self.z_dim, h, w):
            raise ValueError(f"z must be [B,{self.z_dim}] or [B,{self.z_dim},H,W] = {[b, self.z_dim, h, w]}, "
                             f"got {list(z.shape)}")
        return z.to(semantics.dtype)

    def forward(self, semantics, z=None, class_ids=None):
        cond = semantics
        if self.z_dim:
            cond = torch.cat([self.noise_map(semantics, z), semantics], dim=1)
        seg = SegmapPyramid(cond, class_ids)
        x = self.fc(F.interpolate(cond, size=(self.init_h, self.init_w), mode="nearest"))
        for i, block in enumerate(self.body):
            x = block(x, seg)
            if i < len(self.body) - 1:
                x = upsample2x(x)
        return torch.tanh(self.conv_img(F.leaky_relu(x, LRELU_SLOPE)))


class _DBlock(nn.Module):
    """A residual block of the OASIS discriminator (keys ``conv1.<i>``, ``conv2.1``, ``conv_s``).

    down (``up=False``): out = shortcut + avgpool2(conv2(conv1(x))); shortcut = avgpool2(conv_s(x))
    (conv_s when the channels change), for the first block conv_s(avgpool2(x)) and conv1 without the
    leading lReLU. up: conv1 upsamples (nearest x2) before its conv, shortcut = conv_s(up(x)) or up(x).
    """

    def __init__(self, fin, fout, sn, up=False, first=False):
        super().__init__()
        self.up, self.first = up, first
        if first:
            self.conv1 = nn.Sequential(sn(nn.Conv2d(fin, fout, 3, padding=1)))
        elif up:
            self.conv1 = nn.Sequential(nn.LeakyReLU(LRELU_SLOPE), nn.Upsample(scale_factor=2),
                                       sn(nn.Conv2d(fin, fout, 3, padding=1)))
        else:
            self.conv1 = nn.Sequential(nn.LeakyReLU(LRELU_SLOPE), sn(nn.Conv2d(fin, fout, 3, padding=1)))
        self.conv2 = nn.Sequential(nn.LeakyReLU(LRELU_SLOPE), sn(nn.Conv2d(fout, fout, 3, padding=1)))
        self.conv_s = sn(nn.Conv2d(fin, fout, 1)) if fin != fout else None

    def shortcut(self, x):
        if self.up:
            x = upsample2x(x)
            return x if self.conv_s is None else self.conv_s(x)
        if self.first:
            x = F.avg_pool2d(x, 2)
            return x if self.conv_s is None else self.conv_s(x)
        if self.conv_s is not None:
            x = self.conv_s(x)
        return F.avg_pool2d(x, 2)

    def forward(self, x):
        dx = self.conv2(self.conv1(x))
        if not self.up:
            dx = F.avg_pool2d(dx, 2)
        return self.shortcut(x) + dx


class OASISDiscriminator(BaseNetwork):
    """``forward(images [B,3,H,W], semantics=None) -> logits [B, semantic_nc+1, H, W]`` (the label map
    is not an input: the D segments the image; ``semantics`` is accepted for the generic D interface
    and ignored). H and W must be multiples of 2**num_res_blocks."""

    def __init__(self, opt):
        super().__init__()
        n = opt.num_res_blocks
        if n != len(D_WIDTHS):
            # The official list of channels has exactly six blocks.
            raise ValueError(f"the OASIS discriminator has {len(D_WIDTHS)} residual blocks, got num_res_blocks {n}")
        sn = (lambda m: m) if opt.no_spectral_norm else spectral_norm
        ch = discriminator_channels(getattr(opt, "channels_D", 64))
        self.body_down = nn.ModuleList(_DBlock(ch[i], ch[i + 1], sn, first=i == 0) for i in range(n))
        ups = [_DBlock(ch[-1], ch[-2], sn, up=True)]
        ups += [_DBlock(2 * ch[-1 - i], ch[-2 - i], sn, up=True) for i in range(1, n - 1)]
        last = ch[1] // 2  # 64 in the official D
        ups.append(_DBlock(2 * ch[1], last, sn, up=True))
        self.body_up = nn.ModuleList(ups)
        self.layer_up_last = nn.Conv2d(last, opt.semantic_nc + 1, 1)

    def forward(self, images, semantics=None):
        x = images
        features = []
        for block in self.body_down:
            x = block(x)
            features.append(x)
        x = self.body_up[0](x)
        for i in range(1, len(self.body_down)):
            x = self.body_up[i](torch.cat([features[-i - 1], x], dim=1))
        return self.layer_up_last(x)


def modify_commandline_options(parser, is_train):
    """The official OASIS network flags."""
    parser.add_argument("--channels_G", type=int, default=64, help="ch of the OASIS generator (blocks 16ch ... ch)")
    parser.add_argument("--num_res_blocks", type=int, default=6, help="residual blocks of the OASIS G (and D: 6)")
    parser.add_argument("--param_free_norm", type=str, default="syncbatch", choices=PARAM_FREE_NORMS,
                        help="parameter-free norm inside SPADE (syncbatch = BatchNorm synchronised under "
                             "multi-GPU DDP)")
    parser.add_argument("--spade_ks", type=int, default=3, help="kernel size of the convs inside SPADE")
    parser.add_argument("--spade_hidden", type=int, default=SPADE_HIDDEN,
                        help="channels of SPADE's shared layer (128 in the official code, which has no such flag; "
                             "smaller for small images, e.g. the synthetic preset)")
    parser.add_argument("--no_spectral_norm", action="store_true", help="no spectral norm in G and D")
    parser.add_argument("--no_3dnoise", action="store_true",
                        help="no noise channels in front of the label map (the generator is deterministic)")
    parser.add_argument("--z_dim", type=int, default=64, help="dimension of the noise vector (3D noise)")
    if is_train:
        parser.add_argument("--channels_D", type=int, default=64,
                            help="width of the OASIS D: channels 3, 2c,2c,4c,4c,8c,8c (the official code declares "
                                 "this flag but ignores it, its D is always the one of the default 64)")
    return parser


def validate_options(opt):
    require_positive(opt, "channels_G", "num_res_blocks", "z_dim", "spade_ks", "spade_hidden")
    if opt.isTrain:
        require_positive(opt, "channels_D")
        scale = 2 ** len(D_WIDTHS)
        h = round(opt.crop_size / opt.aspect_ratio)
        if opt.crop_size % scale or h % scale:
            raise OptionError("--crop_size", opt.crop_size,
                              f"the OASIS discriminator halves the image {len(D_WIDTHS)} times: width and height "
                              f"({opt.crop_size}x{h}) must be multiples of {scale}")
    if opt.spade_ks % 2 == 0:
        raise OptionError("--spade_ks", opt.spade_ks, "must be odd (same-size convolutions)")
    if opt.num_res_blocks > 6 or (opt.isTrain and opt.num_res_blocks != 6):
        raise OptionError("--num_res_blocks", opt.num_res_blocks,
                          "the OASIS discriminator has exactly 6 residual blocks (and the generator at most 6)")
    check_oasis_size(opt)
