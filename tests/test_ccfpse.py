"""CC-FPSE networks (``--netG condconv --netD fpse``): official key layout and exact sizes, the forward of
both networks against plain functional re-implementations of the official structure (written here
from SPEC_PEERS.md, on tiny sizes), the pix2pix model's use of them (feature matching over the four D
features, PNG truncation), presets per --netG, option errors.
"""

import ast
import os

import pytest
import torch
import torch.nn.functional as F

import test as test_script
import train
from conftest import build_options
from models import networks
from models.networks import CondConvGenerator, ConvEncoder, FPSEDiscriminator, count_parameters
from test_oasis_run import randomise

LAYOUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoint_layout")
BUFFERS = ("weight_u", "weight_v", "running_mean", "running_var", "num_batches_tracked")
CC = dict(netG="condconv", netD="fpse")


def read_layout(name):
    shapes = {}
    with open(os.path.join(LAYOUT_DIR, name), encoding="utf-8") as f:
        for line in f:
            key, shape = line.rstrip("\n").split("\t")
            shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


def meta_build(cls, opt):
    with torch.device("meta"):
        return cls(opt)


# ---------------------------------------------------------------------------------------- layout, sizes
def test_official_ade20k_layout_loads_strictly():
    opt = build_options(True, dataset_mode="ade20k", dataroot="X", use_vae=True, **CC)
    for cls, name in ((CondConvGenerator, "G"), (FPSEDiscriminator, "D"), (ConvEncoder, "E")):
        shapes = read_layout(f"ccfpse_net{name}_ade20k.txt")
        net = meta_build(cls, opt)
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == shapes, name
        gen = torch.Generator().manual_seed(0)
        state = {k: (torch.tensor(0) if k.endswith("num_batches_tracked") else torch.randn(s, generator=gen))
                 for k, s in shapes.items() if name != "G" or not k.startswith("up_")}
        if name == "G":  # the largest part, up_*, loaded too but without filling 60M random numbers
            state.update({k: torch.zeros(s) if s else torch.tensor(0) for k, s in shapes.items() if k.startswith("up_")})
        net.load_state_dict(state, strict=True, assign=True)


# (dataset, use_vae) -> G parameters; D per dataset (SPEC_PEERS.md, measured on the official classes)
COUNTS_G = {("ade20k", True): 140_704_323, ("ade20k", False): 125_254_211,
            ("cityscapes", True): 128_055_555, ("cityscapes", False): 119_966_979,
            ("coco", True): 141_939_843, ("coco", False): 126_793_859}
COUNTS_D = {"ade20k": 5_190_593, "cityscapes": 5_175_873, "coco": 5_194_817}


@pytest.mark.parametrize("dataset,use_vae", sorted(COUNTS_G))
def test_exact_sizes(dataset, use_vae):
    opt = build_options(True, dataset_mode=dataset, dataroot="X", use_vae=use_vae, **CC)
    G = meta_build(CondConvGenerator, opt)
    assert count_parameters(G) == COUNTS_G[dataset, use_vae]
    # 26,112 of them are BatchNorm parameters the official forward never runs (SPEC_PEERS.md)
    unused = sum(p.numel() for n, p in G.named_parameters() if ".norm_0." in n or ".norm_layer." in n)
    assert unused == 26_112
    assert count_parameters(meta_build(FPSEDiscriminator, opt)) == COUNTS_D[dataset]


def test_dry_run_prints_the_official_counts(tmp_path, capsys):
    args = ["--dry_run", "--netG", "condconv", "--netD", "fpse", "--dataset_mode", "ade20k", "--dataroot", "X",
            "--use_vae", "--gpu_ids", "-1", "--checkpoints_dir", str(tmp_path)]
    assert train.main(args) == 0
    out = capsys.readouterr().out
    for line in ("netG parameters: 140,704,323\n", "netD parameters: 5,190,593\n", "netE parameters: 10,463,424\n"):
        assert line in out


# ---------------------------------------------------------------------------------------- plain forwards
def sn(state, prefix):
    """The spectrally normalised weight in eval mode: W / (u^T W v) with the stored u, v."""
    w = state[prefix + "weight_orig"]
    sigma = torch.dot(state[prefix + "weight_u"], w.reshape(w.size(0), -1) @ state[prefix + "weight_v"])
    return w / sigma


def bn(x, state, prefix, affine=True):
    y = (x - state[prefix + "running_mean"][None, :, None, None]) / torch.sqrt(
        state[prefix + "running_var"][None, :, None, None] + 1e-5)
    if affine:
        y = y * state[prefix + "weight"][None, :, None, None] + state[prefix + "bias"][None, :, None, None]
    return y


def conv(x, state, prefix, stride=1):
    w = state[prefix + "weight"]
    return F.conv2d(x, w, state.get(prefix + "bias"), stride=stride, padding=w.size(-1) // 2)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def sn_bn_lrelu(x, state, prefix, stride=1):
    w = sn(state, prefix + ".0.0.")
    return lrelu(bn(F.conv2d(x, w, None, stride=stride, padding=w.size(-1) // 2), state, prefix + ".0.1."))


def per_pixel_conv(x, kernels):
    """out[n,c] = sum over the 3x3 taps t of kernels[n, 9c + t] * (tap t of the zero-padded x)."""
    n, c, h, w = x.shape
    patches = F.unfold(x, 3, padding=1).view(n, c, 9, h, w)
    return torch.einsum("nckhw,nckhw->nchw", kernels.view(n, c, 9, h, w), patches)


def plain_block(state, p, x, cond):
    cond = F.interpolate(cond, size=x.shape[2:], mode="nearest")

    def head(name):
        return conv(F.relu(conv(cond, state, f"{p}.{name}.0.")), state, f"{p}.{name}.2.")

    w1, w2 = head("gen_weights1"), head("gen_weights2")
    s1, s2 = torch.sigmoid(head("gen_se_weights1")), torch.sigmoid(head("gen_se_weights2"))
    if f"{p}.conv_s.weight_orig" in state:
        actv = F.relu(conv(cond, state, f"{p}.norm_s.mlp_shared.0."))
        normed = bn(x, state, f"{p}.norm_s.param_free_norm.", affine=False)
        spade = normed * (1 + conv(actv, state, f"{p}.norm_s.mlp_gamma.")) + conv(actv, state, f"{p}.norm_s.mlp_beta.")
        x_s = F.conv2d(spade, sn(state, f"{p}.conv_s."))
    else:
        x_s = x
    dx = per_pixel_conv(bn(x, state, f"{p}.norm_1."), w1)
    dx = lrelu(conv(dx, state, f"{p}.conv_1.") * s1)
    dx = per_pixel_conv(bn(dx, state, f"{p}.norm_2."), w2)
    dx = lrelu(conv(dx, state, f"{p}.conv_3.") * s2)
    return x_s + dx


def plain_generator(state, seg, sh, sw, ngf, levels, z=None):
    """The official CondConvGenerator forward (normal: 6 pyramid levels; more: 7), written plainly."""
    if z is not None:
        x = (z @ state["fc.weight"].t() + state["fc.bias"]).view(-1, 16 * ngf, sh, sw)
    else:
        x = conv(F.interpolate(seg, size=(sh, sw), mode="nearest"), state, "fc.")
    enc = [sn_bn_lrelu(seg, state, "labelenc1")]
    for k in range(2, levels + 1):
        enc.append(sn_bn_lrelu(enc[-1], state, f"labelenc{k}", stride=2))
    segout = [enc[-1]]
    for k in range(1, levels):
        up = F.interpolate(segout[-1], scale_factor=2, mode="nearest")
        segout.append(sn_bn_lrelu(up + sn_bn_lrelu(enc[-1 - k], state, f"labellat{k}"), state, f"labeldec{k}"))
    more = levels == 7
    # which pyramid output each block takes (official forward): normal 1,2,2,3,4,5,6; more 1..7
    order = [0, 1, 2, 3, 4, 5, 6] if more else [0, 1, 1, 2, 3, 4, 5]
    for b, name in enumerate(["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]):
        if name != "head_0" and (name != "G_middle_1" or more):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        feature = segout[order[b]]
        cond = torch.cat([F.interpolate(seg, size=x.shape[2:], mode="nearest"), feature], 1)
        x = plain_block(state, name, x, cond)
    return torch.tanh(conv(lrelu(x), state, "conv_img."))


def tiny_semantics(batch, nc, h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, nc - 1, (batch, 1, h // 8, w // 8), generator=gen)
    labels = F.interpolate(labels.float(), size=(h, w), mode="nearest").long()
    onehot = torch.zeros(batch, nc - 1, h, w).scatter_(1, labels, 1.0)
    edges = (torch.rand(batch, 1, h, w, generator=gen) > 0.8).float()
    return torch.cat([onehot, edges], 1)


@pytest.mark.parametrize("dataset,use_vae", [("coco", False), ("cityscapes", True)])
def test_generator_is_the_official_forward(dataset, use_vae):
    size = dict(crop_size=64, load_size=64) if dataset == "coco" else dict(crop_size=128, load_size=128)
    opt = build_options(True, dataset_mode=dataset, dataroot="X", use_vae=use_vae, ngf=4, condconv_hidden=8,
                        label_nc=5, contain_dontcare_label=False, **size, **CC)
    assert opt.num_upsampling_layers == ("more" if dataset == "cityscapes" else "normal")
    G = CondConvGenerator(opt)
    randomise(G, 1)
    with torch.no_grad():
        G.conv_img.weight.mul_(1e-3)  # the output in tanh's linear range: a comparison of real values
    G.double().eval()  # float64: the comparison is not blurred by float32 rounding through 7 blocks
    state = G.state_dict()
    h, w = (64, 64) if dataset == "coco" else (64, 128)
    seg = tiny_semantics(2, opt.semantic_nc, h, w).double()
    z = torch.randn(2, opt.z_dim, dtype=torch.float64) if use_vae else None
    with torch.no_grad():
        got = G(seg, z=z)
        want = plain_generator(state, seg, G.sh, G.sw, 4, 7 if dataset == "cityscapes" else 6, z=z)
    assert got.shape == (2, 3, h, w)
    assert (got - want).abs().max() < 1e-9
    assert 0.05 < got.std() and (got.abs() < 0.99).double().mean() > 0.5  # mostly unsaturated: a real comparison


def plain_fpse(state, images, seg):
    feats = [images]
    for k in range(1, 6):
        w = sn(state, f"enc{k}.0.0.")
        feats.append(lrelu(F.instance_norm(F.conv2d(feats[-1], w, None, stride=2, padding=1))))

    def lat(k):
        return lrelu(F.instance_norm(F.conv2d(feats[k], sn(state, f"lat{k}.0.0."))))

    def up(x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    top = {5: lat(5)}
    for k in (4, 3, 2):
        top[k] = up(top[k + 1]) + lat(k)
    emb = conv(seg, state, "embedding.")
    scores = []
    for k in (2, 3, 4):
        f = lrelu(F.instance_norm(F.conv2d(top[k], sn(state, f"final{k}.0.0."), None, padding=1)))
        e = F.avg_pool2d(emb, 2 ** k)  # successive 2x2 poolings of the full-size embedding
        scores.append(conv(f, state, "tf.") + (conv(f, state, "seg.") * e).sum(1, keepdim=True))
    return feats[2:], scores


def test_fpse_discriminator_is_the_official_forward():
    opt = build_options(True, dataset_mode="coco", dataroot="X", ndf=4, crop_size=64, load_size=64, **CC)
    D = FPSEDiscriminator(opt)
    randomise(D, 2)
    D.double().eval()
    state = D.state_dict()
    seg = tiny_semantics(2, opt.semantic_nc, 64, 64, seed=3).double()
    images = torch.rand(4, 3, 64, 64, dtype=torch.float64) * 2 - 1  # fake and real of the two label maps
    with torch.no_grad():
        out = D(images, seg)
        feats, scores = plain_fpse(state, images, torch.cat([seg, seg]))
    assert len(out) == 3 and [len(o) for o in out] == [5, 1, 1]
    for got, want in zip(out[0][:4], feats):
        assert got.shape == want.shape and (got - want).abs().max() < 1e-9
    for got, want in zip([out[0][4], out[1][0], out[2][0]], scores):
        assert got.shape == want.shape and (got - want).abs().max() < 1e-9


def test_fpse_d_works_with_any_generator_and_feature_matching_averages_its_four_features():
    import models

    opt = build_options(True, dataset_mode="synthetic", netD="fpse", netG="spade", crop_size=64, load_size=64,
                        ngf=4, ndf=4, lambda_feat=20)
    model = models.create_model(opt).eval()  # eval: no power iteration between the two D calls below
    assert model.image_rounding == "round"  # the SPADE generator: our rounding
    sem = tiny_semantics(1, opt.semantic_nc, 64, 64)
    real = torch.rand(1, 3, 64, 64) * 2 - 1
    losses, fake = model.compute_generator_loss(sem, real)
    with torch.no_grad():
        out = model.netD(torch.cat([fake, real]), sem)
    want = sum(F.l1_loss(f[:1], f[1:]) for f in out[0][:4]) * 20 / 4
    assert losses["GAN_Feat"].item() == pytest.approx(want.item(), rel=1e-5)
    want_gan = -sum(o[-1][:1].mean() for o in out) / 3
    assert losses["GAN"].item() == pytest.approx(want_gan.item(), rel=1e-5, abs=1e-7)


# ---------------------------------------------------------------------------------------- options
def test_condconv_presets_and_truncation():
    import models

    coco = build_options(True, dataset_mode="coco", **CC)
    assert (coco.batchSize, coco.niter, coco.niter_decay, coco.lambda_feat, coco.use_vae) == (8, 100, 100, 20.0, False)
    dagan = build_options(True, dataset_mode="coco")
    assert (dagan.batchSize, dagan.niter, dagan.lambda_feat) == (32, 50, 10.0)  # DAGAN's presets unchanged
    city = build_options(True, dataset_mode="cityscapes", **CC)
    assert (city.num_upsampling_layers, city.batchSize) == ("more", 8)
    synthetic = build_options(True, **CC)
    assert (synthetic.crop_size, synthetic.ngf, synthetic.condconv_hidden, synthetic.name) == (
        64, 16, 16, "synthetic_ccfpse")
    tested = build_options(False, netG="condconv")  # test.py rebuilds the same network from its own folder
    assert (tested.crop_size, tested.ngf, tested.condconv_hidden, tested.name) == (64, 16, 16, "synthetic_ccfpse")
    assert build_options(True).name == build_options(False).name == "synthetic_dagan"  # DAGAN's unchanged
    model = models.create_model(build_options(False, netG="condconv", ngf=4, condconv_hidden=4))
    assert model.image_rounding == "truncate"


@pytest.mark.parametrize("argv,entry,expected", [
    (["--netG", "condconv", "--num_upsampling_layers", "most"], train, "argument --num_upsampling_layers: invalid choice"),
    (["--netG", "condconv", "--netD", "fpse", "--crop_size", "32", "--load_size", "32"], train,
     "--crop_size 32: the fpse discriminator"),
    (["--netG", "condconv", "--condconv_hidden", "0"], train, "--condconv_hidden 0: must be a positive integer"),
    (["--netG", "condconv", "--norm_G", "group"], train, "--norm_G group"),
    (["--netG", "condconv", "--sample_z"], test_script, "--sample_z: needs --use_vae"),
])
def test_option_errors_exit_2_before_writing(tmp_path, capsys, argv, entry, expected):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        entry.cli(argv + ["--gpu_ids", "-1", "--checkpoints_dir", str(runs)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{entry.__name__}.py: error: {expected}" in err and err.count("\n") == 1, err
    assert not runs.exists()


def test_official_multiprocess_flags_are_accepted_with_a_message(caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        opt = build_options(True, mpdist=True, dist_url="tcp://10.0.0.1:8000", num_servers=1, **CC)
    assert not hasattr(opt, "mpdist")
    text = caplog.text
    assert "--mpdist is accepted" in text and "torchrun" in text and "--num_servers" in text


def test_networks_registry_names():
    assert networks.generator_class("condconv") is CondConvGenerator
    assert networks.discriminator_class("fpse") is FPSEDiscriminator


def test_test_py_finds_the_condconv_main_job_not_dagans(tmp_path):
    """Both main jobs trained: test.py --netG condconv reads synthetic_ccfpse/opt.json, not DAGAN's."""
    import json

    for name, values in (("synthetic_dagan", {"netG": "dagan", "crop_size": 32, "ngf": 16}),
                         ("synthetic_ccfpse", {"netG": "condconv", "crop_size": 64, "ngf": 16, "condconv_hidden": 16})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "opt.json").write_text(json.dumps(values))
    opt = build_options(False, netG="condconv", checkpoints_dir=str(tmp_path))
    assert (opt.name, opt.crop_size, opt.condconv_hidden) == ("synthetic_ccfpse", 64, 16)
    dagan = build_options(False, checkpoints_dir=str(tmp_path))
    assert (dagan.name, dagan.netG, dagan.crop_size) == ("synthetic_dagan", "dagan", 32)
