"""The AttentionGAN networks (Tang et al., the official code's ``ResnetGenerator_our`` and CycleGAN's
PatchGAN), with the official state-dict layout (``checkpoint_layout/attngan_net*``).

Generator (:class:`AttentionGANGenerator`): reflect-pad 3, 7x7 conv 3->ngf, two 3x3 stride-2 convs to
4ngf, nine residual blocks (reflect padding, 3x3 convs), then two decoders with their own weights,
each two 3x3 stride-2 transposed convs back to ngf: the content decoder ends in a reflect-padded 7x7
conv to 27 channels and tanh (nine RGB content images, channels 3(k-1)..3k-1), the attention decoder
in a 1x1 conv to 10 channels and a softmax over them (ten masks). Every norm is InstanceNorm without
affine parameters or running statistics, every activation ReLU. Output, summed left to right as the
official code does: C_1*A_1 + ... + C_9*A_9 + input*A_10 (mask 10 keeps the input: the background).

Discriminator (:class:`PatchDiscriminator`): CycleGAN's NLayerDiscriminator: 4x4 convs stride 2, 2, 2
(n_layers 3), then 1, 1; leaky ReLU 0.2; the norm from the second conv on (``--norm``); conv biases
only where no affine norm follows (as CycleGAN: with InstanceNorm they are kept).
"""

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import OptionError

NUM_MASKS = 10  # nine content masks + the background mask
GENERATOR_BLOCKS = 9


def _instance_norm(x):
    """InstanceNorm2d(affine=False, track_running_stats=False): stateless, so a function."""
    return F.instance_norm(x)


class _ResidualBlock(nn.Module):
    """x + IN(conv2(pad(relu(IN(conv1(pad(x))))))), reflect padding 1 (keys ``conv1``, ``conv2``)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)

    def forward(self, x):
        y = F.relu(_instance_norm(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        return x + _instance_norm(self.conv2(F.pad(y, (1, 1, 1, 1), mode="reflect")))


class AttentionGANGenerator(nn.Module):
    """``forward(x [B,3,H,W] in [-1,1]) -> [B,3,H,W]``; ``forward_with_attention(x) -> (image,
    {'attention': [B,10,1,H,W] masks (softmax over the 10), 'content': [B,9,3,H,W] content images})``.
    H and W must be multiples of 4."""

    def __init__(self, ngf=64, channels=3):
        super().__init__()
        if channels != 3:
            raise ValueError("the AttentionGAN generator makes 9 RGB content images: 3 input and output channels")
        self.conv1 = nn.Conv2d(channels, ngf, 7)
        self.conv2 = nn.Conv2d(ngf, ngf * 2, 3, 2, 1)
        self.conv3 = nn.Conv2d(ngf * 2, ngf * 4, 3, 2, 1)
        self.resnet_blocks = nn.Sequential(*[_ResidualBlock(ngf * 4) for _ in range(GENERATOR_BLOCKS)])
        for branch in ("content", "attention"):
            setattr(self, f"deconv1_{branch}", nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, 2, 1, 1))
            setattr(self, f"deconv2_{branch}", nn.ConvTranspose2d(ngf * 2, ngf, 3, 2, 1, 1))
        self.deconv3_content = nn.Conv2d(ngf, 3 * (NUM_MASKS - 1), 7)
        self.deconv3_attention = nn.Conv2d(ngf, NUM_MASKS, 1)

    def _decode(self, x, branch):
        x = F.relu(_instance_norm(getattr(self, f"deconv1_{branch}")(x)))
        return F.relu(_instance_norm(getattr(self, f"deconv2_{branch}")(x)))

    def forward_with_attention(self, x):
        h = F.relu(_instance_norm(self.conv1(F.pad(x, (3, 3, 3, 3), mode="reflect"))))
        h = F.relu(_instance_norm(self.conv2(h)))
        h = F.relu(_instance_norm(self.conv3(h)))
        h = self.resnet_blocks(h)
        content = torch.tanh(self.deconv3_content(F.pad(self._decode(h, "content"), (3, 3, 3, 3), mode="reflect")))
        attention = torch.softmax(self.deconv3_attention(self._decode(h, "attention")), dim=1)
        b, _, height, width = content.shape
        content = content.view(b, NUM_MASKS - 1, 3, height, width)
        masks = attention.view(b, NUM_MASKS, 1, height, width)
        out = content[:, 0] * masks[:, 0]
        for k in range(1, NUM_MASKS - 1):
            out = out + content[:, k] * masks[:, k]
        out = out + x * masks[:, NUM_MASKS - 1]
        return out, {"attention": masks, "content": content}

    def forward(self, x):
        return self.forward_with_attention(x)[0]


NORMS = ("instance", "batch", "none")


def norm_layer(kind):
    """CycleGAN's --norm: InstanceNorm without affine parameters or statistics, BatchNorm with both,
    or none."""
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "none":
        return None
    raise OptionError("--norm", kind, list(NORMS), kind="norm")


class PatchDiscriminator(nn.Module):
    """``forward(images [B,3,H,W]) -> score map [B,1,h,w]``: the 70x70 PatchGAN for n_layers 3
    (``--netD basic``; ``n_layers`` with ``--n_layers_D``). Keys ``model.<i>`` as CycleGAN's."""

    def __init__(self, input_nc=3, ndf=64, n_layers=3, norm="instance"):
        super().__init__()
        make_norm = norm_layer(norm)
        bias = make_norm is None or norm == "instance"  # CycleGAN: no bias before an affine norm
        layers = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers.append(nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias))
            if make_norm is not None:
                layers.append(make_norm(ndf * mult))
            layers.append(nn.LeakyReLU(0.2, True))
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, images):
        return self.model(images)


class PixelDiscriminator(nn.Module):
    """CycleGAN's ``--netD pixel``: a 1x1 PatchGAN (conv ndf, lReLU, conv 2ndf, norm, lReLU, conv 1)."""

    def __init__(self, input_nc=3, ndf=64, norm="instance"):
        super().__init__()
        make_norm = norm_layer(norm)
        bias = make_norm is None or norm == "instance"
        layers = [nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(ndf, ndf * 2, 1, bias=bias)]
        if make_norm is not None:
            layers.append(make_norm(ndf * 2))
        layers += [nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 2, 1, 1, bias=bias)]
        self.net = nn.Sequential(*layers)

    def forward(self, images):
        return self.net(images)


def define_discriminator(opt):
    if opt.netD == "basic":
        return PatchDiscriminator(3, opt.ndf, 3, opt.norm)
    if opt.netD == "n_layers":
        return PatchDiscriminator(3, opt.ndf, opt.n_layers_D, opt.norm)
    if opt.netD == "pixel":
        return PixelDiscriminator(3, opt.ndf, opt.norm)
    raise OptionError("--netD", opt.netD, ["basic", "n_layers", "pixel"], kind="discriminator")
