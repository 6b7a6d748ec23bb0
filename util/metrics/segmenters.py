"""The papers' segmentation networks, built so that the public weight files load as they are.

- ``drn``: DRN-D-105 (fyu/drn ``DRNSeg``), Cityscapes 19 train ids; file ``drn-d-105_ms_cityscapes.pth``.
- ``upernet``: UperNet-101 (CSAILVision semantic-segmentation-pytorch, ``resnet101`` encoder + ``upernet``
  decoder), ADE20K 150 classes; files ``encoder_epoch_50.pth`` + ``decoder_epoch_50.pth``
  (model ``ade20k-resnet101-upernet``; the name cited for SPADE's evaluation is the 2018 release
  ``baseline-resnet101-upernet``).
- ``deeplab``: DeepLab-v2 ResNet-101 with multi-scale inputs (kazuto1011/deeplab-pytorch v1.x), COCO-Stuff
  182 classes; file ``deeplabv2_resnet101_msc-cocostuff164k-100000.pth``.

The module and parameter names below reproduce those code bases' state-dict keys (facts read from the
public code; the code here is written independently). Every segmenter has the same interface as the
synthetic dataset's exact segmenter: ``segment(images [B,3,H,W] in [-1,1]) -> int64 [B,H,W]`` at the
input resolution.
"""
import logging
import math
import os
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.metrics.weights import hub_checkpoint_dir, load_into, load_state_dict_file, resolve_weights

logger = logging.getLogger(__name__)


def _bn_keys_tolerant(state_dict, module):
    """Old checkpoints (PyTorch < 0.4) have no BatchNorm ``num_batches_tracked``: take ours."""
    own = module.state_dict()
    out = dict(state_dict)
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in out:
            out[k] = v
    return out


# ================================================================================== DRN-D-105
class _DRNBottleneck(nn.Module):
    """Residual bottleneck (DRN; torchvision ResNet when dilation=1): 1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), projection shortcut."""

    def __init__(self, cin, width, stride=1, dilation=1, project=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, width * 4, 1, stride, bias=False),
                                         nn.BatchNorm2d(width * 4)) if project else None)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


def _drn_conv_stage(cin, cout, n, stride=1, dilation=1):
    mods = []
    for i in range(n):
        mods += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride if i == 0 else 1, padding=dilation,
                           dilation=dilation, bias=False),
                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*mods)


def _drn_res_stage(cin, width, n, stride=1, dilation=1, first_dilation=None):
    first_dilation = dilation if first_dilation is None else first_dilation
    blocks = [_DRNBottleneck(cin, width, stride, first_dilation,
                             project=stride != 1 or cin != width * 4)]
    blocks += [_DRNBottleneck(width * 4, width, 1, dilation) for _ in range(1, n)]
    return nn.Sequential(*blocks)


def _bilinear_upsample_kernel(channels, size):
    """Fixed bilinear kernel of a depthwise transposed conv (the DRN ``up`` layer's weights)."""
    f = math.ceil(size / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - torch.abs(torch.arange(size, dtype=torch.float64) / f - c)
    k = (ramp[:, None] * ramp[None, :]).float()
    return k.expand(channels, 1, size, size).clone()


class DRNSegD105(nn.Module):
    """DRN-D-105 semantic segmentation (DRNSeg): dilated ResNet, output stride 8, 1x1 classifier,
    fixed bilinear x8 transposed-conv upsampling.

    Input: ImageNet-style normalised float [B,3,H,W] (H, W multiples of 8 give an exact x8 output).
    Output: logits [B,num_classes,H,W].
    Keys: ``base.0``..``base.8`` (layer0..layer8 of DRN-D), ``seg``, ``up``.
    """
    # DRN-D-105: blocks per level [1, 1, 3, 4, 23, 3, 1, 1], channels (16, 32, 64, 128, 256, 512, 512, 512).
    # ``blocks`` (residual levels 3..6) exists so tests can run a shallow copy quickly.
    def __init__(self, num_classes=19, blocks=(3, 4, 23, 3)):
        super().__init__()
        self.base = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 16, 7, 1, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)),
            _drn_conv_stage(16, 16, 1),
            _drn_conv_stage(16, 32, 1, stride=2),
            _drn_res_stage(32, 64, blocks[0], stride=2),
            _drn_res_stage(256, 128, blocks[1], stride=2),
            # "new_level=False": the first block already uses the full dilation
            _drn_res_stage(512, 256, blocks[2], dilation=2),
            _drn_res_stage(1024, 512, blocks[3], dilation=4),
            _drn_conv_stage(2048, 512, 1, dilation=2),
            _drn_conv_stage(512, 512, 1, dilation=1),
        )
        self.seg = nn.Conv2d(512, num_classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, groups=num_classes,
                                     bias=False)
        with torch.no_grad():
            self.up.weight.copy_(_bilinear_upsample_kernel(num_classes, 16))
        self.up.weight.requires_grad_(False)

    def forward(self, x):
        return self.up(self.seg(self.base(x)))


# ================================================================================= UperNet-101
def _conv_bn_relu(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _TVBottleneck(_DRNBottleneck):
    """ResNet v1.5-style bottleneck (stride on the 3x3), keys conv1..3, bn1..3, downsample.0/1:
    the DRN bottleneck without dilation."""

    def __init__(self, cin, width, stride=1, project=False):
        super().__init__(cin, width, stride, dilation=1, project=project)


class UperNetEncoderResNet101(nn.Module):
    """CSAIL ResNet-101 encoder (deep stem 3x3 convs 64-64-128, maxpool, layer1..4).

    Input [B,3,H,W] -> list of 4 feature maps (256, 512, 1024, 2048 channels; strides 4, 8, 16, 32).
    """

    def __init__(self, blocks=(3, 4, 23, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        cin = 128
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            stride = 1 if i == 0 else 2
            layer = [_TVBottleneck(cin, width, stride, project=True)]
            layer += [_TVBottleneck(width * 4, width) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            cin = width * 4

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        feats = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats


class UperNetDecoder(nn.Module):
    """CSAIL UPerNet head: pyramid pooling (scales 1,2,3,6) on the last map, FPN top-down path,
    fusion of all levels at stride 4, 3x3 conv-BN-ReLU, 1x1 classifier.

    Input: 4 feature maps as from UperNetEncoderResNet101. Output: logits [B,num_classes,H/4,W/4].
    """

    def __init__(self, num_classes=150, fc_dim=2048, pool_scales=(1, 2, 3, 6),
                 fpn_inplanes=(256, 512, 1024, 2048), fpn_dim=512):
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm_conv = nn.ModuleList(_conv_bn_relu(fc_dim, 512, 1) for _ in pool_scales)
        self.ppm_last_conv = _conv_bn_relu(fc_dim + len(pool_scales) * 512, fpn_dim, 3)
        self.fpn_in = nn.ModuleList(_conv_bn_relu(c, fpn_dim, 1) for c in fpn_inplanes[:-1])
        # the extra Sequential level reproduces the public key names fpn_out.<i>.0.<j>
        self.fpn_out = nn.ModuleList(nn.Sequential(_conv_bn_relu(fpn_dim, fpn_dim, 3))
                                     for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(_conv_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim, 3),
                                       nn.Conv2d(fpn_dim, num_classes, 1))

    def forward(self, feats):
        top = feats[-1]
        size = top.shape[2:]
        pyramid = [top]
        for scale, conv in zip(self.pool_scales, self.ppm_conv):
            pooled = F.adaptive_avg_pool2d(top, scale)
            pyramid.append(conv(F.interpolate(pooled, size, mode="bilinear", align_corners=False)))
        f = self.ppm_last_conv(torch.cat(pyramid, 1))
        levels = [f]
        for i in reversed(range(len(feats) - 1)):
            lateral = self.fpn_in[i](feats[i])
            f = lateral + F.interpolate(f, lateral.shape[2:], mode="bilinear", align_corners=False)
            levels.append(self.fpn_out[i](f))
        levels.reverse()
        out_size = levels[0].shape[2:]
        fused = [levels[0]] + [F.interpolate(t, out_size, mode="bilinear", align_corners=False)
                               for t in levels[1:]]
        return self.conv_last(torch.cat(fused, 1))


class UperNet101(nn.Module):
    """UperNet-101 for ADE20K: ``encoder`` + ``decoder``. Input [B,3,H,W] (normalised) ->
    logits [B,150,H,W] (bilinear upsampling of the stride-4 prediction)."""

    def __init__(self, num_classes=150, blocks=(3, 4, 23, 3)):
        super().__init__()
        self.encoder = UperNetEncoderResNet101(blocks)
        self.decoder = UperNetDecoder(num_classes)

    def forward(self, x):
        logits = self.decoder(self.encoder(x))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=False)


# =============================================================================== DeepLab-v2
class _ConvBn(nn.Sequential):
    """conv (no bias) + BN, optional ReLU; keys ``conv``, ``bn`` as deeplab-pytorch's _ConvBnReLU."""

    def __init__(self, cin, cout, k, stride, padding, dilation, relu):
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, k, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout, eps=1e-5))
        if relu:
            self.add_module("relu", nn.ReLU())


class _DLBottleneck(nn.Module):
    """MSRA bottleneck (stride on the 1x1 reduce): reduce, conv3x3, increase, shortcut."""

    def __init__(self, cin, cout, stride, dilation, project):
        super().__init__()
        mid = cout // 4
        self.reduce = _ConvBn(cin, mid, 1, stride, 0, 1, True)
        self.conv3x3 = _ConvBn(mid, mid, 3, 1, dilation, dilation, True)
        self.increase = _ConvBn(mid, cout, 1, 1, 0, 1, False)
        self.shortcut = _ConvBn(cin, cout, 1, stride, 0, 1, False) if project else nn.Identity()

    def forward(self, x):
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


def _dl_layer(n, cin, cout, stride, dilation):
    return nn.Sequential(OrderedDict(
        (f"block{i + 1}", _DLBottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, dilation,
                                        project=i == 0))
        for i in range(n)))


class _ASPPSum(nn.Module):
    """DeepLab-v2 ASPP: parallel 3x3 convs with dilations 6, 12, 18, 24 -> classes, summed."""

    def __init__(self, cin, num_classes, rates=(6, 12, 18, 24)):
        super().__init__()
        for i, r in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(cin, num_classes, 3, 1, padding=r, dilation=r, bias=True))

    def forward(self, x):
        return sum(m(x) for m in self.children())


class DeepLabV2ResNet101(nn.Module):
    """DeepLab-v2 (dilated ResNet-101, output stride 8, ASPP) with multi-scale inputs (MSC).

    Input: Caffe-style BGR mean-subtracted float [B,3,H,W]. Output: logits [B,num_classes,H,W]:
    the pixel-wise max of the logits at scales 1, 0.5, 0.75 (MSC in eval mode), bilinearly resized to
    the input size. Keys ``base.layer1``..``base.layer5``, ``base.aspp.c0``..``c3``.
    """

    def __init__(self, num_classes=182, scales=(0.5, 0.75), blocks=(3, 4, 23, 3)):
        super().__init__()
        self.scales = tuple(scales)
        self.base = nn.Sequential(OrderedDict([
            ("layer1", nn.Sequential(OrderedDict([
                ("conv1", _ConvBn(3, 64, 7, 2, 3, 1, True)),
                ("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))]))),
            ("layer2", _dl_layer(blocks[0], 64, 256, 1, 1)),
            ("layer3", _dl_layer(blocks[1], 256, 512, 2, 1)),
            ("layer4", _dl_layer(blocks[2], 512, 1024, 1, 2)),
            ("layer5", _dl_layer(blocks[3], 1024, 2048, 1, 4)),
            ("aspp", _ASPPSum(2048, num_classes)),
        ]))

    def forward(self, x):
        logits = self.base(x)
        size = logits.shape[2:]
        for s in self.scales:
            xs = F.interpolate(x, [int(d * s) for d in x.shape[2:]], mode="bilinear", align_corners=False)
            ls = F.interpolate(self.base(xs), size, mode="bilinear", align_corners=False)
            logits = torch.maximum(logits, ls)
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=False)


# ============================================================================ wrappers
class NetworkSegmenter(nn.Module):
    """A segmentation network with its input normalisation.

    ``segment(images)``: float [B,3,H,W] in [-1,1] (RGB) -> int64 [B,H,W] class ids (argmax at H,W).
    ``mode`` is 'rgb' (x in [0,1], (x - mean) / std) or 'bgr255' (BGR in 0..255 minus mean, Caffe).
    """

    def __init__(self, net, num_classes, mean, std=None, mode="rgb", test_sizes=None, max_size=1000,
                 size_multiple=32):
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.mode = mode
        # Multi-scale testing as CSAIL's eval script: shorter side resized to each size (longer side
        # capped at max_size, both rounded up to size_multiple), softmax averaged at the input size.
        self.test_sizes = tuple(test_sizes or ())
        self.max_size = max_size
        self.size_multiple = size_multiple
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or (1.0, 1.0, 1.0), dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def normalise(self, images):
        x = (images.float().clamp(-1, 1) + 1) / 2
        if self.mode == "bgr255":
            x = x.flip(1) * 255.0
        return (x - self.mean) / self.std

    @torch.no_grad()
    def segment(self, images):
        dev = self.mean.device
        x = self.normalise(images.to(dev))
        size = x.shape[2:]
        if not self.test_sizes:
            logits = self.net(x)
            if logits.shape[2:] != size:
                logits = F.interpolate(logits, size, mode="bilinear", align_corners=False)
            return logits.argmax(1).cpu()
        probs = 0
        h, w = size
        for s in self.test_sizes:
            scale = min(s / min(h, w), self.max_size / max(h, w))
            m = self.size_multiple
            th, tw = (int(math.ceil(h * scale / m) * m), int(math.ceil(w * scale / m) * m))
            xs = F.interpolate(x, (th, tw), mode="bilinear", align_corners=False)
            logits = F.interpolate(self.net(xs), size, mode="bilinear", align_corners=False)
            probs = probs + F.softmax(logits, dim=1)
        return probs.argmax(1).cpu()

    __call__ = segment


# Per-segmenter facts: classes, default weight file name(s), normalisation.
DRN_CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)  # fyu/drn info.json
DRN_CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN_COCOSTUFF = (104.008, 116.669, 122.675)  # deeplab-pytorch cocostuff164k config
CAFFE_BGR_MEAN_CSAIL_LEGACY = (102.9801, 115.9465, 122.7717)

SEGMENTER_FILES = {
    "drn": "drn-d-105_ms_cityscapes.pth",
    "upernet": "ade20k-resnet101-upernet",  # a folder with encoder_epoch_50.pth, decoder_epoch_50.pth
    "deeplab": "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
}
SEGMENTER_CLASSES = {"drn": 19, "upernet": 150, "deeplab": 182}


def _strip(state, prefixes):
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            return {k[len(p):]: v for k, v in state.items()}
    return state


def _upernet_files(weights):
    """(encoder_path, decoder_path) from 'ENC,DEC' or a folder holding encoder_epoch_*.pth/decoder_epoch_*.pth."""
    if weights and "," in weights:
        enc, dec = [w.strip() for w in weights.split(",", 1)]
        for p in (enc, dec):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"UperNet-101: weight file '{p}' does not exist")
        return enc, dec
    folder = weights or os.path.join(hub_checkpoint_dir(), SEGMENTER_FILES["upernet"])
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"UperNet-101: weights folder '{folder}' not found. Put the CSAIL ade20k-resnet101-upernet files "
            f"encoder_epoch_50.pth and decoder_epoch_50.pth there, or pass --segmenter_weights FOLDER or "
            f"--segmenter_weights ENCODER.pth,DECODER.pth. Nothing is downloaded.")

    def pick(prefix):
        found = sorted(f for f in os.listdir(folder) if f.startswith(prefix) and f.endswith(".pth"))
        if not found:
            raise FileNotFoundError(f"UperNet-101: no {prefix}*.pth in '{folder}'")
        if len(found) > 1:
            raise ValueError(f"UperNet-101: several {prefix}*.pth in '{folder}': {found}; pass ENC,DEC explicitly")
        return os.path.join(folder, found[0])
    return pick("encoder_epoch_"), pick("decoder_epoch_")


def build_segmenter(name, weights=None, device="cpu", upernet_input="rgb", test_sizes=None):
    """A NetworkSegmenter with public weights loaded (strict key match).

    name: 'drn' | 'upernet' | 'deeplab'. weights: path (for upernet a folder or 'ENC,DEC'); default the
    file name in SEGMENTER_FILES under the torch hub checkpoint folder. upernet_input: 'rgb' (ImageNet
    mean/std, current CSAIL code and model zoo) or 'bgr_legacy' (BGR minus Caffe mean, the 2018 CSAIL code).
    test_sizes: shorter-side sizes for multi-scale testing (e.g. CSAIL's 300,375,450,525,600); default
    one pass at the input size.
    """
    if name == "drn":
        path = resolve_weights(SEGMENTER_FILES["drn"], weights, "DRN-D-105 (Cityscapes)", "--segmenter_weights")
        net = DRNSegD105(SEGMENTER_CLASSES["drn"])
        state = _strip(load_state_dict_file(path, "DRN-D-105"), ("module.",))
        load_into(net, _bn_keys_tolerant(state, net), path, "DRN-D-105")
        seg = NetworkSegmenter(net, 19, DRN_CITYSCAPES_MEAN, DRN_CITYSCAPES_STD)
    elif name == "upernet":
        enc, dec = _upernet_files(weights)
        net = UperNet101(SEGMENTER_CLASSES["upernet"])
        load_into(net.encoder, _bn_keys_tolerant(load_state_dict_file(enc, "UperNet-101 encoder"), net.encoder),
                  enc, "UperNet-101 encoder")
        load_into(net.decoder, _bn_keys_tolerant(load_state_dict_file(dec, "UperNet-101 decoder"), net.decoder),
                  dec, "UperNet-101 decoder")
        path = f"{enc},{dec}"
        if upernet_input == "rgb":
            seg = NetworkSegmenter(net, 150, IMAGENET_MEAN, IMAGENET_STD)
        elif upernet_input == "bgr_legacy":
            seg = NetworkSegmenter(net, 150, CAFFE_BGR_MEAN_CSAIL_LEGACY, mode="bgr255")
        else:
            raise ValueError(f"upernet_input must be 'rgb' or 'bgr_legacy', got '{upernet_input}'")
    elif name == "deeplab":
        path = resolve_weights(SEGMENTER_FILES["deeplab"], weights, "DeepLab-v2 (COCO-Stuff)",
                               "--segmenter_weights")
        net = DeepLabV2ResNet101(SEGMENTER_CLASSES["deeplab"])
        state = _strip(load_state_dict_file(path, "DeepLab-v2"), ("module.",))
        if not any(k.startswith("base.") for k in state):
            state = {"base." + k: v for k, v in state.items()}  # a bare DeepLabV2 (no MSC wrapper) file
        load_into(net, _bn_keys_tolerant(state, net), path, "DeepLab-v2")
        seg = NetworkSegmenter(net, 182, CAFFE_BGR_MEAN_COCOSTUFF, mode="bgr255")
    else:
        raise ValueError(f"unknown segmenter '{name}'; known: drn, upernet, deeplab, synthetic")
    seg.test_sizes = tuple(test_sizes or ())
    logger.info("segmenter %s: weights %s, test sizes %s", name, path, seg.test_sizes or "input size")
    return seg.to(device).eval()
