"""Tests of models/networks: attention formulas, SPADE equivalence, official key layout, sizes, losses."""

import ast
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import build_options
from models import networks
from models.networks import (
    ChannelAttention,
    ConvEncoder,
    DAGANGenerator,
    GANLoss,
    KLDLoss,
    MultiscaleDiscriminator,
    SPADEGenerator,
    SpatialAttention,
    VGGLoss,
    count_parameters,
)

LAYOUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoint_layout")

# The official settings per dataset: label_nc, dontcare, instance, crop, aspect, n_up.
DATASETS = {
    "cityscapes": dict(label_nc=35, contain_dontcare_label=False, no_instance=False, crop_size=512,
                       aspect_ratio=2.0, num_upsampling_layers="more"),
    "ade20k": dict(label_nc=150, contain_dontcare_label=True, no_instance=True, crop_size=256),
    "coco": dict(label_nc=182, contain_dontcare_label=True, no_instance=False, crop_size=256),
    "facades": dict(label_nc=13, contain_dontcare_label=False, no_instance=True, crop_size=1024),
    "celebamask_hq": dict(label_nc=19, contain_dontcare_label=False, no_instance=True, crop_size=512),
    "deepfashion": dict(label_nc=20, contain_dontcare_label=False, no_instance=True, crop_size=256),
}

# DAGAN paper, Table 3, millions of parameters: (GauGAN G, DAGAN G, D).
PAPER_SIZES = {
    "cityscapes": (93.0, 93.1, 5.6),
    "ade20k": (96.5, 96.6, 5.8),
    "facades": (92.4, 92.4, 5.6),
    "celebamask_hq": (92.5, 92.6, 5.6),
}


def make_opt(**overrides):
    """A tiny DAGAN configuration (5 classes, no instance map, 32x32), built by the parser."""
    values = dict(netG="dagan", ngf=8, z_dim=16, crop_size=32, load_size=32, aspect_ratio=1.0, label_nc=5,
                  no_instance=True, ndf=8, num_D=2, n_layers_D=4)
    values.update(overrides)
    values.setdefault("load_size", values["crop_size"])
    values["load_size"] = max(values["load_size"], values["crop_size"])
    return build_options(**values)


def random_semantics(opt, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    height = round(opt.crop_size / opt.aspect_ratio)
    labels = torch.randint(0, opt.semantic_nc, (batch, 1, height // 4, opt.crop_size // 4), generator=gen)
    labels = F.interpolate(labels.float(), size=(height, opt.crop_size), mode="nearest").long()
    return torch.zeros(batch, opt.semantic_nc, height, opt.crop_size).scatter_(1, labels, 1.0)


def calibrated(netG, seg):
    """Put BatchNorm running statistics at the statistics of ``seg`` and switch to eval mode.

    Fresh running statistics (mean 0, var 1) do not normalise, so activations blow up through the
    blocks and tanh saturates at +-1, which would hide any difference in the output.
    """
    for m in netG.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    netG.train()
    with torch.no_grad():
        netG(seg)
    return netG.eval()


def conv3x3_direct(x, weight):
    """Zero-padded 3x3 cross-correlation written out as a sum of shifted maps (no F.conv2d)."""
    _, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    out = torch.zeros(x.size(0), weight.size(0), h, w)
    for o in range(weight.size(0)):
        for c in range(weight.size(1)):
            for i in range(3):
                for j in range(3):
                    out[:, o] += weight[o, c, i, j] * padded[:, c, i:i + h, j:j + w]
    return out


def sam_direct(feat, weight):
    pooled = torch.stack([feat.sum(1) / feat.size(1), feat.amax(1)], dim=1)
    attention = 1 / (1 + torch.exp(-conv3x3_direct(pooled, weight)))
    return attention * feat, attention


def cam_weights_direct(prev, feat, cam):
    alpha = torch.cat([prev, feat], 1).mean(dim=(2, 3))  # [B, 2C]
    w1, b1 = cam.conv1.weight.flatten(1), cam.conv1.bias
    w2, b2 = cam.conv2.weight.flatten(1), cam.conv2.bias
    gamma = torch.clamp(alpha @ w1.T + b1, min=0) @ w2.T + b2
    return 1 / (1 + torch.exp(-gamma))  # [B, C]


# ---------------------------------------------------------------------------------------- attention
def test_sam_matches_paper_formula():
    torch.manual_seed(0)
    sam = SpatialAttention()
    nn.init.normal_(sam.conv.weight, 0, 1)
    feat = torch.randn(2, 6, 7, 5)
    out, attention = sam(feat)
    expected_out, expected_attention = sam_direct(feat, sam.conv.weight.detach())
    assert attention.shape == (2, 1, 7, 5)
    assert torch.allclose(attention, expected_attention, atol=1e-5)
    assert torch.allclose(out, expected_out, atol=1e-5)
    assert sam.conv.bias is None and sam.conv.weight.shape == (1, 2, 3, 3)


@pytest.mark.parametrize("mode", ["I", "II"])
def test_cam_matches_paper_formula(mode):
    torch.manual_seed(1)
    cam = ChannelAttention(8, 4, mode=mode)
    for p in cam.parameters():
        nn.init.normal_(p, 0, 0.5)
    prev, feat = torch.randn(3, 4, 6, 5), torch.randn(3, 4, 6, 5)
    fused, delta = cam(prev, feat)
    expected_delta = cam_weights_direct(prev, feat, cam)
    d = expected_delta[:, :, None, None]
    expected = d * prev + feat if mode == "I" else prev + d * feat  # Eq. 8 / Eq. 9
    assert delta.shape == (3, 4)
    assert torch.allclose(delta, expected_delta, atol=1e-6)
    assert torch.allclose(fused, expected, atol=1e-5)
    other = prev + d * feat if mode == "I" else d * prev + feat
    assert not torch.allclose(fused, other, atol=1e-3)


def test_cam_rejects_unknown_mode():
    with pytest.raises(ValueError, match="III"):
        ChannelAttention(8, 4, mode="III")


@pytest.mark.parametrize("no_sam,no_cam", [(False, False), (True, False), (False, True)])
def test_dagan_tail_is_spec_formula(no_sam, no_cam):
    """Whole generator output == tanh(conv_img(lReLU(F_c + F_s))) built from the backbone features."""
    torch.manual_seed(2)
    opt = make_opt(no_sam=no_sam, no_cam=no_cam)
    seg = random_semantics(opt)
    netG = calibrated(networks.define_G(opt), seg)
    # The 0.02-gain init makes conv_img nearly zero, which would hide errors in the tail.
    for name, param in netG.named_parameters():
        if name.startswith(("conv_img", "conv_64", "cab", "spatialAtt")):
            nn.init.normal_(param, 0.0, 0.05)
    with torch.no_grad():
        trace = netG.backbone(seg)
        x_in, feat = trace[-1]
        assert x_in.shape[1] == 2 * opt.ngf and feat.shape[1] == opt.ngf
        parts = []
        if not no_cam:
            prev = F.conv2d(x_in, netG.conv_64.weight, netG.conv_64.bias, padding=1)  # conv_64 on X
            delta = cam_weights_direct(prev, feat, netG.cab)[:, :, None, None]
            parts.append(prev + delta * feat)
        if not no_sam:
            parts.append(sam_direct(feat, netG.spatialAtt.conv.weight)[0])
        expected = torch.tanh(netG.conv_img(F.leaky_relu(sum(parts), 0.2)))
        image, attention = netG.forward_with_attention(seg)
    assert float((image.abs() < 0.99).float().mean()) > 0.5  # not saturated
    assert torch.allclose(image, expected, atol=1e-5)
    assert ("sam" in attention) == (not no_sam) and ("cam" in attention) == (not no_cam)


def test_attention_near_half_at_init():
    torch.manual_seed(3)
    opt = make_opt()
    netG = networks.define_G(opt)
    with torch.no_grad():
        _, attention = netG.forward_with_attention(random_semantics(opt))
    assert attention["cam"].shape == (2, opt.ngf)
    assert torch.allclose(attention["cam"], torch.full_like(attention["cam"], 0.5), atol=0.02)
    assert 0.4 < float(attention["sam"].mean()) < 0.6


# ---------------------------------------------------------------------------------------- backbone
def test_spade_norm_formula():
    torch.manual_seed(10)
    norm = networks.normalization.SPADE("spadebatch3x3", 6, 4)
    x = torch.randn(2, 6, 8, 8) * 3 + 1
    seg = torch.rand(2, 4, 4, 4)
    out = norm(x, seg)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    seg_up = seg.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2
    hidden = torch.relu(norm.mlp_shared[0](seg_up))
    gamma, beta = norm.mlp_gamma(hidden), norm.mlp_beta(hidden)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * (1 + gamma) + beta
    assert torch.allclose(out, expected, atol=1e-4)


def test_resnet_block_formula():
    from models.networks.architecture import SPADEResnetBlock

    torch.manual_seed(11)
    block = SPADEResnetBlock(8, 4, "spadeinstance3x3", 3).eval()
    assert not hasattr(block, "weight_orig") and block.conv_s.bias is None
    x, seg = torch.randn(2, 8, 8, 8), torch.rand(2, 3, 8, 8)
    lrelu = nn.LeakyReLU(0.2)
    main = block.conv_1(lrelu(block.norm_1(block.conv_0(lrelu(block.norm_0(x, seg))), seg)))
    assert block.conv_0.out_channels == 4
    assert torch.allclose(block(x, seg), block.conv_s(block.norm_s(x, seg)) + main, atol=1e-6)
    same = SPADEResnetBlock(4, 4, "spectralspadeinstance3x3", 3).eval()
    assert not hasattr(same, "conv_s") and hasattr(same.conv_0, "weight_orig")
    y = torch.randn(2, 4, 8, 8)
    main = same.conv_1(lrelu(same.norm_1(same.conv_0(lrelu(same.norm_0(y, seg))), seg)))
    assert torch.allclose(same(y, seg), y + main, atol=1e-6)


@pytest.mark.parametrize("mode,middle_1_scale", [("normal", 2), ("more", 4)])
def test_upsampling_schedule(mode, middle_1_scale):
    opt = make_opt(num_upsampling_layers=mode, crop_size=128, aspect_ratio=2.0, ngf=4)
    netG = SPADEGenerator(opt)
    with torch.no_grad():
        trace = netG.backbone(random_semantics(opt, batch=1))
    sizes = {name: out.shape[2:] for name, (_, out) in zip(netG.block_names, trace)}
    sw = 128 // 2 ** (5 if mode == "normal" else 6)
    sh = round(sw / 2.0)
    assert sizes["head_0"] == (sh, sw)
    assert sizes["G_middle_0"] == (2 * sh, 2 * sw)
    assert sizes["G_middle_1"] == (middle_1_scale * sh, middle_1_scale * sw)
    assert sizes["up_3"] == (64, 128)


# ---------------------------------------------------------------------------------------- SPADE equivalence
def test_dagan_without_attention_is_spade():
    torch.manual_seed(4)
    seg = random_semantics(make_opt())
    dagan = calibrated(networks.define_G(make_opt(netG="dagan", no_sam=True, no_cam=True)), seg)
    spade = networks.define_G(make_opt(netG="spade")).eval()
    assert type(spade) is SPADEGenerator
    assert list(dagan.state_dict()) == list(spade.state_dict())
    with torch.no_grad():
        assert not torch.allclose(dagan(seg), spade(seg))
    spade.load_state_dict(dagan.state_dict(), strict=True)
    with torch.no_grad():
        image = dagan(seg)
        assert float((image.abs() < 0.99).float().mean()) > 0.5
        assert torch.equal(image, spade(seg))


def test_single_branch_keys():
    spade_keys = set(SPADEGenerator(make_opt()).state_dict())
    sam_only = set(DAGANGenerator(make_opt(no_cam=True)).state_dict())
    cam_only = set(DAGANGenerator(make_opt(no_sam=True)).state_dict())
    full = set(DAGANGenerator(make_opt()).state_dict())
    assert sam_only - spade_keys == {"spatialAtt.conv.weight"}
    assert cam_only - spade_keys == {"conv_64.weight", "conv_64.bias", "cab.conv1.weight", "cab.conv1.bias",
                                     "cab.conv2.weight", "cab.conv2.bias"}
    assert full == sam_only | cam_only


def test_cam_modes_change_output():
    torch.manual_seed(5)
    seg = random_semantics(make_opt())
    g2 = calibrated(networks.define_G(make_opt(cam_mode="II")), seg)
    nn.init.normal_(g2.conv_img.weight, 0.0, 0.3)
    g1 = networks.define_G(make_opt(cam_mode="I")).eval()
    g1.load_state_dict(g2.state_dict())
    with torch.no_grad():
        assert not torch.allclose(g1(seg), g2(seg), atol=1e-3)


# ---------------------------------------------------------------------------------------- official layout
def read_layout(name):
    shapes = {}
    with open(os.path.join(LAYOUT_DIR, name), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                key, shape = line.rstrip("\n").split("\t")
                shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


def random_state(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


def test_generator_loads_official_cityscapes_layout():
    shapes = read_layout("dagan_netG_cityscapes.txt")
    opt = make_opt(ngf=64, z_dim=256, **DATASETS["cityscapes"])
    with torch.device("meta"):
        netG = DAGANGenerator(opt)
    assert {k: tuple(v.shape) for k, v in netG.state_dict().items()} == shapes
    state = random_state(shapes)
    # assign=True replaces the meta tensors, so this is a real strict load (keys and shapes) without
    # spending time on initialising 93M parameters first.
    netG.load_state_dict(state, strict=True, assign=True)
    assert torch.equal(netG.cab.conv1.weight, state["cab.conv1.weight"])
    assert torch.equal(netG.up_3.conv_0.weight_orig, state["up_3.conv_0.weight_orig"])
    # The SPADE generator takes the same file minus the DAGAN tail.
    tail = ("conv_64.", "cab.", "spatialAtt.")
    with torch.device("meta"):
        spade = SPADEGenerator(opt)
    spade.load_state_dict({k: v for k, v in state.items() if not k.startswith(tail)}, strict=True, assign=True)


def test_discriminator_loads_official_cityscapes_layout():
    shapes = read_layout("dagan_netD_cityscapes.txt")
    netD = MultiscaleDiscriminator(make_opt(ndf=64, **DATASETS["cityscapes"]))
    assert {k: tuple(v.shape) for k, v in netD.state_dict().items()} == shapes
    state = random_state(shapes, seed=1)
    netD.load_state_dict(state, strict=True)
    assert torch.equal(netD.discriminator_1.model3[0][0].weight_orig, state["discriminator_1.model3.0.0.weight_orig"])


def test_encoder_loads_official_ade20k_layout():
    shapes = read_layout("dagan_netE_ade20k_vae.txt")
    opt = make_opt(ngf=64, z_dim=256, use_vae=True, **DATASETS["ade20k"])
    netE = ConvEncoder(opt)
    assert {k: tuple(v.shape) for k, v in netE.state_dict().items()} == shapes
    assert count_parameters(netE) == 10_463_424
    netE.load_state_dict(random_state(shapes, seed=2), strict=True)
    mu, logvar = netE(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert mu.shape == logvar.shape == (1, 256)


def test_encoder_small_crop_runs():
    netE = networks.define_E(make_opt(use_vae=True, crop_size=64))
    mu, logvar = netE(torch.rand(2, 3, 64, 64))
    assert mu.shape == (2, 16) and not hasattr(netE, "layer6")


# ---------------------------------------------------------------------------------------- shapes
SMALL_CROPS = {"cityscapes": 128, "ade20k": 32, "coco": 32, "facades": 32, "celebamask_hq": 32, "deepfashion": 32}


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_output_shapes_every_dataset(dataset):
    torch.manual_seed(6)
    opt = make_opt(**{**DATASETS[dataset], "crop_size": SMALL_CROPS[dataset]})
    height = round(opt.crop_size / opt.aspect_ratio)
    netG = networks.define_G(opt)
    seg = random_semantics(opt)
    image = netG(seg)
    assert image.shape == (2, 3, height, opt.crop_size)
    assert float(image.detach().abs().max()) <= 1.0
    netD = networks.define_D(opt)
    out = netD(image.detach(), seg)
    assert len(out) == opt.num_D and all(len(scale) == opt.n_layers_D + 1 for scale in out)
    assert out[0][-1].shape[:2] == (2, 1) and out[1][0].shape[-1] < out[0][0].shape[-1]


@pytest.mark.parametrize("overrides", [
    dict(num_upsampling_layers="most", crop_size=128),
    dict(use_vae=True),
    dict(cam_scales=3),
    dict(ngf=12, norm_G="spadeinstance3x3", crop_size=64),  # instance norm needs > 1x1 latent
])
def test_generator_variants_shapes(overrides):
    opt = make_opt(**overrides)
    netG = networks.define_G(opt)
    image, attention = netG.forward_with_attention(random_semantics(opt), z=None)
    assert image.shape == (2, 3, opt.crop_size, opt.crop_size)
    assert attention["cam"].shape[1] == netG.final_nc


def test_vae_generator_uses_z():
    opt = make_opt(use_vae=True)
    seg = random_semantics(opt)
    netG = calibrated(networks.define_G(opt), seg)
    z = torch.randn(2, opt.z_dim)
    with torch.no_grad():
        assert torch.equal(netG(seg, z), netG(seg, z))
        assert not torch.allclose(netG(seg, z), netG(seg, z + 1))


def test_cam_scales_out_of_range(capsys):
    # 5 blocks before up_3 with 'normal' upsampling: at most 6 scales; caught by the options.
    with pytest.raises(SystemExit) as err:
        make_opt(cam_scales=7)
    assert err.value.code == 2 and "--cam_scales 7: must be in [1, 6]" in capsys.readouterr().err
    opt = make_opt()
    opt.cam_scales = 7  # built without the options' check: the generator refuses too
    with pytest.raises(ValueError, match="cam_scales"):
        DAGANGenerator(opt)


def test_too_small_crop_is_clear_error(capsys):
    # 16 px < 2**5: the latent grid would be empty.
    with pytest.raises(SystemExit) as err:
        make_opt(crop_size=16)
    assert err.value.code == 2 and "--crop_size 16" in capsys.readouterr().err
    opt = make_opt()
    opt.crop_size = 16
    with pytest.raises(ValueError, match="crop_size"):
        SPADEGenerator(opt)


@pytest.mark.parametrize("cam_scales", [1, 3])
def test_gradients_reach_attention_parameters(cam_scales):
    torch.manual_seed(7)
    opt = make_opt(cam_scales=cam_scales)
    netG = networks.define_G(opt)
    netG(random_semantics(opt)).square().mean().backward()
    modules = [netG.conv_64, netG.cab, netG.spatialAtt] + ([netG.cam_fusion] if cam_scales > 1 else [])
    params = [p for m in modules for p in m.parameters()]
    assert len(params) == 6 + 1 + (2 * (cam_scales - 1) + 2 if cam_scales > 1 else 0)
    for p in params:
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------------- sizes
def spade_norm_params(channels, semantic_nc, k=3):
    return semantic_nc * 128 * k * k + 128 + 2 * (128 * channels * k * k + channels)


def block_params(fin, fout, semantic_nc):
    fmid = min(fin, fout)
    total = fin * fmid * 9 + fmid + fmid * fout * 9 + fout
    total += spade_norm_params(fin, semantic_nc) + spade_norm_params(fmid, semantic_nc)
    if fin != fout:
        total += fin * fout + spade_norm_params(fin, semantic_nc)
    return total


def spade_g_closed_form(opt):
    nf, s = opt.ngf, opt.semantic_nc
    total = s * 16 * nf * 9 + 16 * nf  # fc (no VAE)
    widths = [(16, 16)] * 3 + [(16, 8), (8, 4), (4, 2), (2, 1)]
    total += sum(block_params(a * nf, b * nf, s) for a, b in widths)
    final = nf
    if opt.num_upsampling_layers == "most":
        total += block_params(nf, nf // 2, s)
        final = nf // 2
    return total + final * 3 * 9 + 3


def dagan_tail_closed_form(nf, tail_in=None):
    tail_in = 2 * nf if tail_in is None else tail_in
    return tail_in * nf * 9 + nf + (2 * nf * nf + nf) + (nf * nf + nf) + 18


def d_closed_form(opt):
    per_d, nf = (opt.semantic_nc + 3) * opt.ndf * 16 + opt.ndf, opt.ndf
    for _ in range(1, opt.n_layers_D):
        per_d += nf * min(2 * nf, 512) * 16
        nf = min(2 * nf, 512)
    return opt.num_D * (per_d + nf * 16 + 1)


@pytest.mark.parametrize("ngf", [8, 16, 32, 64, 96])
def test_dagan_tail_parameter_count(ngf):
    opt = make_opt(ngf=ngf)
    with torch.device("meta"):
        extra = count_parameters(DAGANGenerator(opt)) - count_parameters(SPADEGenerator(opt))
        most = make_opt(ngf=ngf, num_upsampling_layers="most", crop_size=128)
        extra_most = count_parameters(DAGANGenerator(most)) - count_parameters(SPADEGenerator(most))
    assert extra == dagan_tail_closed_form(ngf)
    assert extra_most == dagan_tail_closed_form(ngf // 2, tail_in=ngf)
    if ngf == 64:
        assert extra == 86_226


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_full_size_parameter_counts(dataset):
    opt = make_opt(ngf=64, ndf=64, z_dim=256, **DATASETS[dataset])
    with torch.device("meta"):
        n_spade = count_parameters(SPADEGenerator(opt))
        n_dagan = count_parameters(DAGANGenerator(opt))
        n_d = count_parameters(MultiscaleDiscriminator(opt))
    assert n_spade == spade_g_closed_form(opt)
    assert n_dagan == n_spade + dagan_tail_closed_form(64)
    assert n_d == d_closed_form(opt)
    if dataset in PAPER_SIZES:
        paper = PAPER_SIZES[dataset]
        assert (round(n_spade / 1e6, 1), round(n_dagan / 1e6, 1), round(n_d / 1e6, 1)) == paper
    if dataset == "cityscapes":
        assert n_dagan == 93_134_229


# ---------------------------------------------------------------------------------------- norms and init
def test_norm_layers_and_errors():
    block = networks.SPADEGenerator(make_opt(norm_G="spadeinstance3x3")).head_0
    assert isinstance(block.norm_0.param_free_norm, nn.InstanceNorm2d)
    assert not hasattr(block.conv_0, "weight_orig")
    bn = networks.SPADEGenerator(make_opt()).head_0.norm_0.param_free_norm
    # 'syncbatch': the official sync BN as it computes on one device (see test_ops)
    assert type(bn).__name__ == "SingleDeviceSyncBatchNorm2d" and isinstance(bn, nn.BatchNorm2d) and bn.weight is None
    with pytest.raises(SystemExit):  # the options refuse it
        make_opt(norm_G="spectralspadefoo3x3")
    opt = make_opt()
    opt.norm_G = "spectralspadefoo3x3"
    with pytest.raises(ValueError, match="spadefoo3x3"):  # and so does the network built without them
        SPADEGenerator(opt)
    with pytest.raises(ValueError, match="dagan, spade"):
        networks.find_network_using_name("generator", "pix2pixhd")


def test_convert_sync_batchnorm_keeps_keys():
    netG = SPADEGenerator(make_opt())
    keys = list(netG.state_dict())
    converted = networks.convert_sync_batchnorm(netG)
    assert list(converted.state_dict()) == keys
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())


def test_xavier_init_reaches_spectral_weights():
    torch.manual_seed(8)
    netG = networks.define_G(make_opt(ngf=16))
    weight = netG.head_0.conv_0.weight_orig
    fan = weight.size(1) * 9 + weight.size(0) * 9
    expected_std = 0.02 * (2.0 / fan) ** 0.5
    assert abs(weight.std().item() / expected_std - 1) < 0.05
    assert netG.head_0.conv_0.bias.abs().max().item() == 0.0
    assert netG.cab.conv1.bias.abs().max().item() == 0.0


# ---------------------------------------------------------------------------------------- options
def test_option_setter_adds_generator_flags():
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    opt = TrainOptions().parse(["--gpu_ids", "-1", "--no_sam", "--cam_mode", "I", "--cam_scales", "2",
                                "--num_D", "3"])
    assert opt.no_sam and not opt.no_cam and opt.cam_mode == "I" and opt.cam_scales == 2 and opt.num_D == 3
    assert opt.num_upsampling_layers == "normal" and opt.n_layers_D == 4 and opt.netD == "multiscale"
    with pytest.raises(SystemExit):  # a DAGAN flag is unknown to the SPADE generator
        TestOptions().parse(["--gpu_ids", "-1", "--netG", "spade", "--no_sam"])
    assert not hasattr(TestOptions().parse(["--gpu_ids", "-1", "--netG", "spade"]), "num_D")  # D: training only


# ---------------------------------------------------------------------------------------- losses
def test_hinge_loss_values():
    loss = GANLoss("hinge")
    pred = torch.tensor([[-1.0, 0.5, 2.0]])
    assert torch.isclose(loss(pred, True, for_discriminator=True), torch.tensor(2.5 / 3))
    assert torch.isclose(loss(pred, False, for_discriminator=True), torch.tensor(4.5 / 3))
    assert torch.isclose(loss(pred, True, for_discriminator=False), torch.tensor(-0.5))
    # Multiscale: last entry of each scale, averaged over scales.
    multiscale = [[torch.full((1, 2), 100.0), torch.tensor([[0.0, 0.0]])], [torch.tensor([[3.0]])]]
    assert torch.isclose(loss(multiscale, True, for_discriminator=True), torch.tensor((1.0 + 0.0) / 2))
    assert torch.isclose(loss(multiscale, True, for_discriminator=False), torch.tensor((0.0 - 3.0) / 2))


def test_other_gan_losses():
    pred = torch.tensor([[0.0, 2.0]])
    assert torch.isclose(GANLoss("ls")(pred, True), torch.tensor((1.0 + 1.0) / 2))
    assert torch.isclose(GANLoss("ls")(pred, False), torch.tensor((0.0 + 4.0) / 2))
    bce = (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(-2.0)))) / 2
    assert torch.isclose(GANLoss("original")(pred, True), bce)
    assert torch.isclose(GANLoss("w")(pred, True), torch.tensor(-1.0))
    assert torch.isclose(GANLoss("w")(pred, False), torch.tensor(1.0))
    with pytest.raises(ValueError, match="hinge"):
        GANLoss("wgan-gp")


def test_kld_value():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, 1.0]])
    expected = -0.5 * ((1 + 0 - 1 - 1) + (1 + 1 - 0 - torch.e))
    assert torch.isclose(KLDLoss()(mu, logvar), torch.tensor(expected))


def save_random_vgg19(path):
    from torchvision.models import vgg19

    with torch.device("meta"):
        model = vgg19(weights=None)
    model = model.to_empty(device="cpu")
    torch.manual_seed(9)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            # The classifier is never used by the loss; zeros keep the file's content defined.
            tensor.copy_(torch.randn_like(tensor) * 0.05 if name.startswith("features.") else 0)
    torch.save(model.state_dict(), path)
    return model


def test_vgg_loss_from_hub_cache(tmp_torch_home):
    path = os.path.join(torch.hub.get_dir(), "checkpoints", "vgg19-dcbb9e9d.pth")
    reference = save_random_vgg19(path)
    loss = VGGLoss()
    assert all(not p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        feats = []
        h = x
        for i, layer in enumerate(reference.features[:30]):
            h = layer(h.clone())
            if i in (1, 6, 11, 20, 29):
                feats.append(h)
        ref_y = reference.features[:30]
        h, feats_y = y, []
        for i, layer in enumerate(ref_y):
            h = layer(h.clone())
            if i in (1, 6, 11, 20, 29):
                feats_y.append(h)
        expected = sum(w * (a - b).abs().mean() for w, a, b in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1), feats, feats_y))
        assert torch.isclose(loss(x, y), expected, rtol=1e-4)
        assert float(loss(x, x)) == 0.0


def test_vgg_missing_file_error(tmp_torch_home):
    with pytest.raises(FileNotFoundError) as info:
        VGGLoss()
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message and "--no_vgg_loss" in message
    assert os.path.join(torch.hub.get_dir(), "checkpoints") in message


def test_vgg_explicit_path_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        VGGLoss(str(tmp_path / "nowhere.pth"))

