"""Tests of OASIS (``--model oasis``): models/networks/oasis.py and models/oasis_model.py.

Every expected value comes from the SPEC (shared/SPEC_PEERS.md, section OASIS) and the API contract,
never from the code under test: class-balance weights and losses worked out by hand, a replay of
LabelMix's random bits, the official key layout and parameter counts (with a closed-form count written
out here from the layer list), and a plain functional re-implementation of both networks' forward
passes, compared with the modules' eval-mode outputs on tiny configurations.
"""

import ast
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from conftest import build_options
from models.networks.oasis import OASISDiscriminator, OASISGenerator
from models.oasis_model import (
    class_balance_weights,
    labelmix,
    labelmix_loss,
    n1_cross_entropy,
    n1_targets,
)

LAYOUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoint_layout")

# SPEC_PEERS.md, OASIS, "Exact counts (all parameters)": dataset -> (semantic_nc, G, G --no_3dnoise, D).
OFFICIAL = {
    "ade20k": (151, 74_314_691, 72_545_219, 22_258_904),
    "cityscapes": (35, 71_107_523, 69_338_051, 22_251_364),
    "coco": (183, 75_199_427, 73_429_955, 22_260_984),
}
D_CHANNELS = [3, 128, 128, 256, 256, 512, 512]  # the encoder of the U-Net discriminator
# Decoder outputs: body_up.0 keeps 512 at the deepest level, body_up.i (i = 1..4) ends at the channels
# of the encoder level it rises to (D_CHANNELS[5 - i]), body_up.5 ends at 64.
D_UP_OUT = [512, 256, 256, 128, 128, 64]
SLOPE = 0.2  # leaky ReLU slope everywhere


def oasis_options(is_train=True, **values):
    """``--model oasis`` options through the real parser. conftest.build_options adds the pix2pix flag
    ``--no_vgg_loss`` unless told ``no_vgg_loss=False`` (OASIS has ``--add_vgg_loss`` instead)."""
    return build_options(is_train, **{"model": "oasis", "no_vgg_loss": False, **values})


def tiny_opt(semantic_nc=5, **values):
    """A tiny network configuration: 64x64, channels_G 4, z_dim 8, ``semantic_nc`` one-hot channels."""
    opt = oasis_options(**{"dataset_mode": "ade20k", "crop_size": 64, "load_size": 64, "channels_G": 4,
                           "z_dim": 8, **values})
    opt.semantic_nc = semantic_nc
    return opt


def random_onehot(nc, batch=2, size=64, seed=0):
    """One-hot maps of random 8x8-pixel blocks of classes 0..nc-1, and the class ids [B,H,W]."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, nc, (batch, 1, size // 8, size // 8), generator=gen)
    labels = F.interpolate(labels.float(), size=(size, size), mode="nearest").long()
    return torch.zeros(batch, nc, size, size).scatter_(1, labels, 1.0), labels[:, 0]


def count(net):
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------------------- closed-form sizes
def conv_size(cin, cout, k, bias=True):
    return cout * cin * k * k + (cout if bias else 0)


def spade_size(norm_nc, cond_nc, ks=3, hidden=128):
    # mlp_shared cond -> 128, then the gamma and beta heads 128 -> norm_nc; the first norm has no parameters.
    return conv_size(cond_nc, hidden, ks) + 2 * conv_size(hidden, norm_nc, ks)


def generator_size(semantic_nc, ch=64, z_dim=64, noise=True):
    cond = semantic_nc + (z_dim if noise else 0)
    chans = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    n = conv_size(cond, 16 * ch, 3)  # fc
    for fin, fout in zip(chans[:-1], chans[1:]):
        mid = min(fin, fout)
        n += conv_size(fin, mid, 3) + conv_size(mid, fout, 3) + spade_size(fin, cond) + spade_size(mid, cond)
        if fin != fout:  # learned shortcut: SPADE + 1x1 without bias
            n += conv_size(fin, fout, 1, bias=False) + spade_size(fin, cond)
    return n + conv_size(ch, 3, 3)  # conv_img


def discriminator_size(semantic_nc):
    n = 0
    for cin, cout in zip(D_CHANNELS[:-1], D_CHANNELS[1:]):
        n += conv_size(cin, cout, 3) + conv_size(cout, cout, 3) + (conv_size(cin, cout, 1) if cin != cout else 0)
    up_in = [512, 1024, 512, 512, 256, 256]  # the skip concatenation doubles the decoder's inputs
    for cin, cout in zip(up_in, D_UP_OUT):
        n += conv_size(cin, cout, 3) + conv_size(cout, cout, 3) + (conv_size(cin, cout, 1) if cin != cout else 0)
    return n + conv_size(64, semantic_nc + 1, 1)


def read_layout(name):
    shapes = {}
    with open(os.path.join(LAYOUT_DIR, name), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                key, shape = line.rstrip("\n").split("\t")
                shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


# ---------------------------------------------------------------------------- hand-made label maps
# B=2, 3x3, 4 channels (channel 0 = unknown).
HAND_LABELS = torch.tensor([[[1, 1, 2],
                             [1, 0, 2],
                             [3, 3, 2]],
                            [[1, 1, 1],
                             [0, 0, 2],
                             [1, 1, 1]]])
HAND_ONEHOT = torch.zeros(2, 4, 3, 3).scatter_(1, HAND_LABELS[:, None], 1.0)
# Pixel counts over the batch (18 pixels): N0 = 1+2 = 3, N1 = 3+6 = 9, N2 = 3+1 = 4, N3 = 2+0 = 2.
# ignore_channel0: K = 3 (classes 1, 2, 3); alpha_c = 18 / (3 N_c): a1 = 18/27 = 2/3, a2 = 18/12 = 3/2,
# a3 = 18/6 = 3; a0 = 0.
ALPHA_IGNORE0 = {0: 0.0, 1: 2 / 3, 2: 3 / 2, 3: 3.0}
# ignore_channel0=False: K = 4; alpha_c = 18 / (4 N_c): a0 = 18/12 = 3/2, a1 = 18/36 = 1/2, a2 = 18/16 = 9/8,
# a3 = 18/8 = 9/4.
ALPHA_ALL = {0: 3 / 2, 1: 1 / 2, 2: 9 / 8, 3: 9 / 4}


def weight_map(table):
    return torch.tensor([[[table[int(v)] for v in row] for row in img] for img in HAND_LABELS], dtype=torch.float32)


def reference_ce(logits, onehot, for_real, balance=True, ignore0=True):
    """Plain vectorised reference of the SPEC's loss (checked against a pixel loop below)."""
    labels = onehot.argmax(1)
    target = labels + 1 if for_real else torch.zeros_like(labels)
    ce = torch.logsumexp(logits, 1) - logits.gather(1, target[:, None])[:, 0]
    if for_real and balance:
        counts = onehot.sum((0, 2, 3))
        if ignore0:
            counts[0] = 0
        k = (counts > 0).sum()
        per_class = torch.where(counts > 0, labels.numel() / (k * counts.clamp(min=1)), torch.zeros_like(counts))
        ce = ce * per_class[labels]
    return ce.mean()


# ---------------------------------------------------------------------------- 1. class balancing
def test_class_balance_weights_by_hand():
    w = class_balance_weights(HAND_ONEHOT)
    assert w.shape == (2, 3, 3) and w.dtype.is_floating_point
    torch.testing.assert_close(w, weight_map(ALPHA_IGNORE0))
    w_all = class_balance_weights(HAND_ONEHOT, ignore_channel0=False)
    torch.testing.assert_close(w_all, weight_map(ALPHA_ALL))
    # Each counted class carries B*H*W/K of the total weight, so the weights sum to B*H*W either way.
    assert float(w.sum()) == pytest.approx(18) and float(w_all.sum()) == pytest.approx(18)


# ---------------------------------------------------------------------------- 2. targets and loss
def test_n1_targets_real_is_channel_plus_one_fake_is_zero():
    real = n1_targets(HAND_ONEHOT, for_real=True)
    fake = n1_targets(HAND_ONEHOT, for_real=False)
    assert real.dtype == torch.int64 and fake.dtype == torch.int64
    assert torch.equal(real, HAND_LABELS + 1)  # e.g. the unknown pixel (channel 0) -> 1, class 3 -> 4
    assert torch.equal(fake, torch.zeros(2, 3, 3, dtype=torch.int64))


def test_n1_cross_entropy_against_a_pixel_loop():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 3, 3, generator=gen) * 2  # C+1 = 5 outputs, output 0 = fake

    def loop(for_real, table):
        total = 0.0
        for b in range(2):
            for i in range(3):
                for j in range(3):
                    k = int(HAND_LABELS[b, i, j])
                    t = k + 1 if for_real else 0
                    ce = float(torch.logsumexp(logits[b, :, i, j], 0)) - float(logits[b, t, i, j])
                    total += (table[k] if table else 1.0) * ce
        return torch.tensor(total / 18)

    cases = [
        (n1_cross_entropy(logits, HAND_ONEHOT, for_real=True), loop(True, ALPHA_IGNORE0)),
        (n1_cross_entropy(logits, HAND_ONEHOT, for_real=True, balance=False), loop(True, None)),
        (n1_cross_entropy(logits, HAND_ONEHOT, for_real=True, ignore_channel0=False), loop(True, ALPHA_ALL)),
        (n1_cross_entropy(logits, HAND_ONEHOT, for_real=False), loop(False, None)),  # fake: never weighted
    ]
    for got, expected in cases:
        assert got.dim() == 0
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    expected_values = [float(e) for _, e in cases]
    assert len({round(v, 4) for v in expected_values}) == 4  # the four cases really differ
    # The vectorised reference the model tests use agrees with the loop.
    torch.testing.assert_close(reference_ce(logits, HAND_ONEHOT, True), loop(True, ALPHA_IGNORE0))
    torch.testing.assert_close(reference_ce(logits, HAND_ONEHOT, True, ignore0=False), loop(True, ALPHA_ALL))
    torch.testing.assert_close(reference_ce(logits, HAND_ONEHOT, False), loop(False, None))


# ---------------------------------------------------------------------------- 3. LabelMix
# 5 channels, class 2 absent: only the present classes 0, 1, 3, 4 draw a bit.
LM_LABELS = torch.tensor([[[0, 0, 1, 1],
                           [0, 3, 3, 1],
                           [4, 4, 3, 1],
                           [4, 4, 0, 0]],
                          [[1, 1, 1, 1],
                           [3, 3, 4, 4],
                           [3, 3, 4, 4],
                           [0, 1, 1, 1]]])
LM_ONEHOT = torch.zeros(2, 5, 4, 4).scatter_(1, LM_LABELS[:, None], 1.0)
LM_PRESENT = [0, 1, 3, 4]


def replay_bits(seed, classes):
    g = torch.Generator().manual_seed(seed)
    return {c: int(torch.randint(0, 2, (1,), generator=g)) for c in classes}


def lm_seed(class0_bit):
    """A seed whose bits tell likely mistakes apart: they differ from a draw for every channel (a bit drawn
    for the absent class 2 shifts the others), they are not all equal, and class 0 draws ``class0_bit``
    while class 1 draws 0. (With class0_bit 1 this catches a mask built by overwriting the label map class
    by class in place: class 0's pixels, set to 1, would then be taken for class 1 and get its bit.)"""
    for seed in range(200):
        bits = replay_bits(seed, LM_PRESENT)
        every = replay_bits(seed, range(5))
        if (bits[0] == class0_bit and bits[1] == 0 and len(set(bits.values())) == 2
                and any(bits[c] != every[c] for c in LM_PRESENT)):
            return seed
    raise AssertionError("no suitable seed")


def expected_mask(bits):
    return torch.tensor([[[bits[int(v)] for v in row] for row in img] for img in LM_LABELS],
                        dtype=torch.float32)[:, None]


def test_labelmix_mask_follows_the_official_in_place_procedure():
    """One bit per present class (ascending), written into the label map in place as the official code
    does: when class 0 draws 1 and class 1 is present, class 0's pixels (now 1) then get class 1's bit
    (the official quirk, kept on purpose: see models/oasis_model.labelmix). Classes >= 2 are never hit
    again (bits are 0 or 1)."""
    gen = torch.Generator().manual_seed(7)
    fake = torch.randn(2, 3, 4, 4, generator=gen)
    real = torch.randn(2, 3, 4, 4, generator=gen)
    seed = lm_seed(class0_bit=1)
    mixed, mask = labelmix(LM_ONEHOT, fake, real, generator=torch.Generator().manual_seed(seed))
    assert mixed.shape == (2, 3, 4, 4) and mask.shape == (2, 1, 4, 4) and mask.dtype.is_floating_point
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    for c in LM_PRESENT:  # one value per class over the whole batch
        assert len(mask[:, 0][LM_LABELS == c].unique()) == 1
    bits = replay_bits(seed, LM_PRESENT)
    assert bits[0] == 1 and bits[1] == 0
    official = {**bits, 0: bits[1]}  # class 0's pixels, set to 1, are overwritten by class 1's bit
    assert torch.equal(mask, expected_mask(official))
    assert torch.equal(mixed, torch.where(mask.bool(), real, fake))


def test_labelmix_uses_the_global_rng_without_generator():
    fake, real = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    torch.manual_seed(lm_seed(class0_bit=0))
    g_state = torch.get_rng_state()
    mixed, mask = labelmix(LM_ONEHOT, fake, real)
    torch.set_rng_state(g_state)
    bits = {c: int(torch.randint(0, 2, (1,))) for c in LM_PRESENT}
    assert torch.equal(mask, expected_mask(bits))
    assert torch.equal(mixed, mask.expand(-1, 3, -1, -1))


def test_labelmix_loss_by_hand():
    mask = torch.tensor([[[[1.0, 0.0]]]])  # [1,1,1,2]
    d_real = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1,2,1,2]
    d_fake = torch.tensor([[[[5.0, 6.0]], [[7.0, 8.0]]]])
    d_mixed = torch.tensor([[[[2.0, 6.0]], [[3.0, 5.0]]]])
    # target = mask*d_real + (1-mask)*d_fake = [[1, 6], [3, 8]]; errors [1, 0], [0, -3]; mean (1+0+0+9)/4
    loss = labelmix_loss(mask, d_mixed, d_fake, d_real)
    assert loss.dim() == 0
    assert float(loss) == pytest.approx(2.5)


# ---------------------------------------------------------------------------- 4./5. layout and sizes
def test_generator_state_dict_is_the_official_ade20k_layout():
    opt = oasis_options(dataset_mode="ade20k")
    assert (opt.semantic_nc, opt.channels_G, opt.z_dim, opt.num_res_blocks) == (151, 64, 64, 6)
    shapes = read_layout("oasis_netG_ade20k.txt")
    with torch.device("meta"):
        netG = OASISGenerator(opt)
    assert {k: tuple(v.shape) for k, v in netG.state_dict().items()} == shapes


def test_discriminator_state_dict_is_the_official_ade20k_layout():
    opt = oasis_options(dataset_mode="ade20k")
    shapes = read_layout("oasis_netD_ade20k.txt")
    with torch.device("meta"):
        netD = OASISDiscriminator(opt)
    assert {k: tuple(v.shape) for k, v in netD.state_dict().items()} == shapes


@pytest.mark.parametrize("dataset", ["ade20k", "cityscapes", "coco"])
def test_parameter_counts_are_the_official_ones(dataset):
    nc, g, g_no3d, d = OFFICIAL[dataset]
    # The closed form written from the SPEC's layer list gives the official numbers (so it can be
    # trusted for the tiny configurations below).
    assert (generator_size(nc), generator_size(nc, noise=False), discriminator_size(nc)) == (g, g_no3d, d)
    opt = oasis_options(dataset_mode=dataset)
    assert opt.semantic_nc == nc  # OASIS encoding: no instance-edge channel, unknown = channel 0
    with torch.device("meta"):
        assert count(OASISGenerator(opt)) == g
        assert count(OASISDiscriminator(opt)) == d
        assert count(OASISGenerator(oasis_options(dataset_mode=dataset, no_3dnoise=True))) == g_no3d


@pytest.mark.parametrize("no_3dnoise", [False, True])
def test_tiny_generator_size_and_noise_channels(no_3dnoise):
    opt = tiny_opt(no_3dnoise=no_3dnoise)
    netG = OASISGenerator(opt)
    assert count(netG) == generator_size(5, ch=4, z_dim=8, noise=not no_3dnoise)
    cond = 5 if no_3dnoise else 8 + 5
    state = netG.state_dict()
    assert state["fc.weight"].shape == (64, cond, 3, 3)
    shared = [k for k in state if k.endswith("mlp_shared.0.weight")]
    assert len(shared) == 16 and all(state[k].shape[1] == cond for k in shared)


def test_dry_run_prints_the_official_ade20k_sizes(tmp_path, capsys):
    import train

    args = ["--dry_run", "--model", "oasis", "--dataset_mode", "ade20k", "--dataroot", str(tmp_path / "no_data"),
            "--gpu_ids", "-1", "--checkpoints_dir", str(tmp_path), "--name", "dry"]
    assert train.main(args) == 0
    out = capsys.readouterr().out
    assert "netG parameters: 74,314,691\n" in out and "netD parameters: 22,258,904\n" in out
    assert not (tmp_path / "dry").exists()


def test_option_aliases_and_semantic_nc():
    opt = oasis_options(dataset_mode="coco", batch_size=3, num_epochs=7)
    assert opt.batchSize == 3 and opt.niter == 7 and opt.semantic_nc == 183


def ema_decay(opt):
    """The value of --EMA_decay, whatever the attribute it is stored under (e.g. the generic ema_decay)."""
    return opt.EMA_decay if "EMA_decay" in vars(opt) else opt.ema_decay


@pytest.mark.parametrize("dataset,expected,ema", [
    ("ade20k", dict(lr_g=1e-4, lr_d=4e-4, lambda_labelmix=10.0, batchSize=32, niter=200), 0.9999),
    ("cityscapes", dict(lr_g=4e-4, lr_d=4e-4, lambda_labelmix=5.0, batchSize=20, niter=200), 0.999),
    ("coco", dict(lr_g=1e-4, lr_d=4e-4, lambda_labelmix=10.0, batchSize=32, niter=100), 0.9999),
])
def test_training_defaults_follow_the_spec(dataset, expected, ema):
    opt = oasis_options(dataset_mode=dataset)
    assert {k: getattr(opt, k) for k in expected} == pytest.approx(expected)
    assert ema_decay(opt) == pytest.approx(ema)
    assert ema_decay(oasis_options(dataset_mode=dataset, EMA_decay=0.5)) == 0.5


# ---------------------------------------------------------------------------- 6. reference forward passes
class RecordingState(dict):
    """A state dict that records the keys the reference reads (to find tensors it never uses)."""

    def __init__(self, state):
        super().__init__(state)
        self.used = set()

    def __getitem__(self, key):
        self.used.add(key)
        return super().__getitem__(key)


def unused_keys(sd):
    return {k for k in sd if k not in sd.used and not k.endswith("num_batches_tracked")}


def spectral_weight(sd, prefix):
    """Eval-mode spectral norm: weight_orig / sigma, sigma = u^T W v with the stored u, v (no iteration)."""
    w = sd[prefix + "weight_orig"]
    sigma = torch.dot(sd[prefix + "weight_u"], w.reshape(w.shape[0], -1) @ sd[prefix + "weight_v"])
    return w / sigma


def conv(x, sd, prefix, sn, bias=True, padding=0):
    weight = spectral_weight(sd, prefix) if sn else sd[prefix + "weight"]
    return F.conv2d(x, weight, sd[prefix + "bias"] if bias else None, padding=padding)


def up2(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def reference_spade(sd, prefix, x, cond, norm, ks):
    if norm == "instance":
        mean = x.mean((2, 3), keepdim=True)
        var = x.var((2, 3), unbiased=False, keepdim=True)
    else:  # batch / syncbatch in eval mode: the running statistics
        mean = sd[prefix + "first_norm.running_mean"].view(1, -1, 1, 1)
        var = sd[prefix + "first_norm.running_var"].view(1, -1, 1, 1)
    normalized = (x - mean) / torch.sqrt(var + 1e-5)
    seg = F.interpolate(cond, size=x.shape[2:], mode="nearest")
    actv = F.relu(conv(seg, sd, prefix + "mlp_shared.0.", sn=False, padding=ks // 2))
    gamma = conv(actv, sd, prefix + "mlp_gamma.", sn=False, padding=ks // 2)
    beta = conv(actv, sd, prefix + "mlp_beta.", sn=False, padding=ks // 2)
    return normalized * (1 + gamma) + beta


def reference_generator(sd, opt, semantics, z, pre_tanh=False):
    _, _, h, w = semantics.shape
    if opt.no_3dnoise:
        cond = semantics
    else:
        zmap = z[:, :, None, None].expand(-1, -1, h, w) if z.dim() == 2 else z
        cond = torch.cat([zmap, semantics], 1)  # z first, then the one-hot map
    ch, sn, norm, ks = opt.channels_G, not opt.no_spectral_norm, opt.param_free_norm, opt.spade_ks
    chans = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    x = conv(F.interpolate(cond, size=(h // 32, w // 32), mode="nearest"), sd, "fc.", sn=False, padding=1)
    for i in range(6):
        p = f"body.{i}."
        if chans[i] != chans[i + 1]:
            x_s = conv(reference_spade(sd, p + "norm_s.", x, cond, norm, ks), sd, p + "conv_s.", sn, bias=False)
        else:
            x_s = x
        dx = conv(F.leaky_relu(reference_spade(sd, p + "norm_0.", x, cond, norm, ks), SLOPE), sd, p + "conv_0.",
                  sn, padding=1)
        dx = conv(F.leaky_relu(reference_spade(sd, p + "norm_1.", dx, cond, norm, ks), SLOPE), sd, p + "conv_1.",
                  sn, padding=1)
        x = x_s + dx
        if i < 5:
            x = up2(x)
    out = conv(F.leaky_relu(x, SLOPE), sd, "conv_img.", sn=False, padding=1)
    return out if pre_tanh else torch.tanh(out)


def reference_discriminator(sd, images, sn=True):
    def down(i, x):
        p = f"body_down.{i}."
        cin, cout = D_CHANNELS[i], D_CHANNELS[i + 1]
        if i == 0:  # no pre-activation; the shortcut pools before its 1x1
            h = conv(x, sd, p + "conv1.0.", sn, padding=1)
            shortcut = conv(F.avg_pool2d(x, 2), sd, p + "conv_s.", sn)
        else:
            h = conv(F.leaky_relu(x, SLOPE), sd, p + "conv1.1.", sn, padding=1)
            shortcut = F.avg_pool2d(conv(x, sd, p + "conv_s.", sn) if cin != cout else x, 2)
        h = conv(F.leaky_relu(h, SLOPE), sd, p + "conv2.1.", sn, padding=1)
        return shortcut + F.avg_pool2d(h, 2)

    def up(i, x):
        p = f"body_up.{i}."
        h = conv(up2(F.leaky_relu(x, SLOPE)), sd, p + "conv1.2.", sn, padding=1)
        h = conv(F.leaky_relu(h, SLOPE), sd, p + "conv2.1.", sn, padding=1)
        shortcut = conv(up2(x), sd, p + "conv_s.", sn) if x.shape[1] != D_UP_OUT[i] else up2(x)
        return shortcut + h

    feats, x = [], images
    for i in range(6):
        x = down(i, x)
        feats.append(x)
    x = up(0, feats[-1])
    for i in range(1, 6):
        x = up(i, torch.cat([feats[-i - 1], x], 1))  # encoder feature first
    return conv(x, sd, "layer_up_last.", sn=False)


def randomize_(net, seed):
    """Non-trivial weights: every weight ~ N(0, 1/fan_in), every bias ~ N(0, 0.1^2); the spectral-norm
    vectors near the top singular pair of their weight (so sigma > 0, as after training)."""
    gen = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    buffers = dict(net.named_buffers())
    with torch.no_grad():
        for p in params.values():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for name, u in buffers.items():
            if name.endswith("weight_u"):
                prefix = name[: -len("weight_u")]
                mat = params[prefix + "weight_orig"].reshape(u.numel(), -1)
                v = torch.randn(mat.shape[1], generator=gen)
                for _ in range(5):
                    u_new = F.normalize(mat @ v, dim=0)
                    v = F.normalize(mat.T @ u_new, dim=0)
                u.copy_(u_new)
                buffers[prefix + "weight_v"].copy_(v)
    return net


def calibrate_(netG, semantics, z):
    """Running statistics of one batch (a different one from the batch compared later, so eval mode with
    running statistics differs from normalising by the batch's own statistics), then eval mode."""
    for m in netG.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    netG.train()
    with torch.no_grad():
        netG(semantics, z)
    return netG.eval()


def tiny_generator(seed=0, **values):
    """A tiny random generator in eval mode with calibrated statistics and an unsaturated output."""
    opt = tiny_opt(**values)
    torch.manual_seed(seed)
    netG = randomize_(OASISGenerator(opt), seed)
    sem, _ = random_onehot(5, seed=seed + 100)
    calibrate_(netG, sem, torch.randn(2, opt.z_dim))
    # Scale conv_img so that the pre-tanh output has unit spread (tanh would hide differences otherwise).
    sem, _ = random_onehot(5, seed=seed + 200)
    with torch.no_grad():
        pre = reference_generator(RecordingState(netG.state_dict()), opt, sem, torch.randn(2, opt.z_dim),
                                  pre_tanh=True)
        scale = 1.0 / float(pre.std())
        netG.state_dict()["conv_img.weight"].mul_(scale)
        netG.state_dict()["conv_img.bias"].mul_(scale)
    return netG, opt


@pytest.mark.parametrize("norm,z_kind", [("syncbatch", "2d"), ("batch", "3d"), ("instance", "2d"),
                                         ("batch", "none")])
def test_generator_matches_a_plain_reimplementation_of_the_spec(norm, z_kind):
    values = dict(param_free_norm=norm, no_3dnoise=z_kind == "none")
    netG, opt = tiny_generator(seed=1, **values)
    semantics, ids = random_onehot(5, seed=2)
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(2, 8, 64, 64, generator=gen) if z_kind == "3d" else torch.randn(2, 8, generator=gen)
    with torch.no_grad():
        out = netG(semantics, z)
        sd = RecordingState(netG.state_dict())
        expected = reference_generator(sd, opt, semantics, z)
    assert out.shape == (2, 3, 64, 64)
    # A meaningful comparison: outputs spread out, mostly away from tanh's saturation.
    assert float(expected.std()) > 0.2 and float((expected.abs() < 0.95).float().mean()) > 0.5
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    assert unused_keys(sd) == set()  # no tensor outside the SPEC's architecture
    with torch.no_grad():
        # The class-id path gives the same image.
        torch.testing.assert_close(netG(semantics, z, class_ids=ids), out, rtol=1e-5, atol=1e-5)
        # Statistics of the batch instead of the running ones would give something else (last: this
        # updates the running statistics).
        if norm != "instance":
            netG.train()
            assert not torch.allclose(netG(semantics, z), expected, atol=1e-2)


def test_discriminator_matches_a_plain_reimplementation_of_the_spec():
    opt = tiny_opt(semantic_nc=5)
    torch.manual_seed(0)
    netD = randomize_(OASISDiscriminator(opt), 5).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        out = netD(images)
        sd = RecordingState(netD.state_dict())
        expected = reference_discriminator(sd, images)
    assert out.shape == (2, 6, 64, 64)  # semantic_nc + 1 at full resolution
    assert float(expected.std()) > 0.1
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    assert unused_keys(sd) == set()
    assert not any(k.startswith("layer_up_last.weight_") for k in sd)  # no spectral norm on the last layer


def test_no_spectral_norm_keeps_plain_weights_and_sizes():
    netG = OASISGenerator(tiny_opt(no_spectral_norm=True))
    netD = OASISDiscriminator(tiny_opt(no_spectral_norm=True))
    for net in (netG, netD):
        assert not any(k.endswith(("weight_orig", "weight_u", "weight_v")) for k in net.state_dict())
    assert count(netG) == generator_size(5, ch=4, z_dim=8) and count(netD) == discriminator_size(5)


# ---------------------------------------------------------------------------- 7. 3D noise
def test_noise_vector_equals_its_broadcast_map_and_changes_the_image():
    netG, _ = tiny_generator(seed=3)
    semantics, _ = random_onehot(5, seed=4)
    gen = torch.Generator().manual_seed(5)
    z1, z2 = torch.randn(2, 8, generator=gen), torch.randn(2, 8, generator=gen)
    with torch.no_grad():
        out1 = netG(semantics, z1)
        torch.testing.assert_close(netG(semantics, z1[:, :, None, None].expand(-1, -1, 64, 64)), out1,
                                   rtol=1e-5, atol=1e-6)
        assert float((netG(semantics, z2) - out1).abs().max()) > 1e-2
        # z=None draws torch.randn(B, z_dim) from the global generator.
        torch.manual_seed(11)
        drawn = netG(semantics)
        torch.manual_seed(11)
        torch.testing.assert_close(drawn, netG(semantics, torch.randn(2, 8)), rtol=1e-5, atol=1e-6)
        assert float((netG(semantics) - drawn).abs().max()) > 1e-2  # a new draw, a new image
    assert drawn.shape == (2, 3, 64, 64) and float(drawn.abs().max()) <= 1


def test_no_3dnoise_ignores_z():
    netG, opt = tiny_generator(seed=4, no_3dnoise=True)
    assert netG.state_dict()["fc.weight"].shape[1] == opt.semantic_nc
    semantics, _ = random_onehot(5, seed=6)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        out = netG(semantics, torch.randn(2, 8, generator=gen))
        assert torch.equal(netG(semantics, torch.randn(2, 8, generator=gen)), out)
        assert torch.equal(netG(semantics, torch.randn(2, 8, 64, 64, generator=gen)), out)
        assert torch.equal(netG(semantics), out)


# ---------------------------------------------------------------------------- 8. COCO-Stuff through the loader
COCO_STEMS = ("000000000009", "000000000025")


def coco_label(index):
    label = np.zeros((64, 64), np.uint8)
    if index == 0:  # quadrants 0 | 5 over 181 | 255
        label[:32, 32:] = 5
        label[32:, :32] = 181
        label[32:, 32:] = 255
    else:  # stripes 255, 7, 0, 181 and a block of 5
        label[:, :16] = 255
        label[:, 16:32] = 7
        label[:, 48:] = 181
        label[40:56, 8:24] = 5
    return label


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """COCO-Stuff in SPADE's layout ({train,val}_img/*.jpg, {train,val}_label/*.png, 8-bit), no instance maps."""
    root = tmp_path_factory.mktemp("coco")
    for split in ("train", "val"):
        os.makedirs(root / f"{split}_img")
        os.makedirs(root / f"{split}_label")
        for i, stem in enumerate(COCO_STEMS):
            Image.fromarray(coco_label(i)).save(root / f"{split}_label" / f"{stem}.png")
            photo = np.random.default_rng(i).integers(0, 256, size=(64, 64, 3)).astype(np.uint8)
            Image.fromarray(photo).save(root / f"{split}_img" / f"{stem}.jpg")
    return str(root)


def coco_options(root, **values):
    return oasis_options(**{"dataset_mode": "coco", "dataroot": root, "crop_size": 64, "load_size": 64,
                            "batchSize": 2, "no_flip": True, "serial_batches": True, "channels_G": 4,
                            "z_dim": 8, **values})


@pytest.fixture(scope="module")
def coco_model(coco_root):
    """The model as built (G keeps its initialisation), D with random N(0, 1/fan_in) weights: at its
    initialisation (xavier, gain 0.02) D's logits are ~1e-3, every cross entropy is ~log(184) whatever
    the targets and weights, and the loss tests could not tell them apart."""
    import models

    torch.manual_seed(0)
    model = models.create_model(coco_options(coco_root))
    randomize_(model.netD, 9)
    return model


@pytest.fixture(scope="module")
def coco_batch(coco_root):
    import data

    return next(iter(data.create_dataloader(coco_options(coco_root))))


def test_coco_label_encoding_through_the_loader(coco_model, coco_batch):
    assert coco_model.opt.semantic_nc == 183
    onehot, real = coco_model.preprocess_input(coco_batch)
    assert onehot.shape == (2, 183, 64, 64)
    assert set(onehot.unique().tolist()) == {0.0, 1.0} and torch.equal(onehot.sum(1), torch.ones(2, 64, 64))
    seen = set()
    for i, path in enumerate(coco_batch["label_path"]):
        raw = np.array(Image.open(path)).astype(np.int64)
        seen |= set(np.unique(raw).tolist())
        expected = np.where(raw == 255, 0, raw + 1)  # v -> v+1, 255 (unlabeled) -> channel 0
        assert torch.equal(onehot[i].argmax(0), torch.from_numpy(expected))
    assert {0, 5, 181, 255} <= seen
    assert real.shape == (2, 3, 64, 64) and torch.equal(real, coco_batch["image"])


def test_ade20k_label_encoding_through_the_loader(tmp_path):
    """ADE20K: raw value v (0 = unknown) -> channel v of 151, no shift; test options (G only)."""
    import data
    import models

    label = np.zeros((64, 64), np.uint8)
    label[:, 16:32] = 3
    label[:, 32:48] = 150
    label[:, 48:] = 1
    os.makedirs(tmp_path / "annotations" / "validation")
    os.makedirs(tmp_path / "images" / "validation")
    Image.fromarray(label).save(tmp_path / "annotations" / "validation" / "ADE_val_00000001.png")
    photo = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3)).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "images" / "validation" / "ADE_val_00000001.jpg")
    opt = oasis_options(False, dataset_mode="ade20k", dataroot=str(tmp_path), crop_size=64, load_size=64,
                        channels_G=4, z_dim=8)
    assert opt.semantic_nc == 151
    model = models.create_model(opt)
    batch = next(iter(data.create_dataloader(opt)))
    onehot, _ = model.preprocess_input(batch)
    assert onehot.shape == (1, 151, 64, 64) and torch.equal(onehot.sum(1), torch.ones(1, 64, 64))
    assert torch.equal(onehot[0].argmax(0), torch.from_numpy(label.astype(np.int64)))


def recording_hooks(model):
    calls = {"G": [], "D": []}
    hooks = [model.netG.register_forward_hook(lambda m, i, o: calls["G"].append(o.detach())),
             model.netD.register_forward_hook(lambda m, i, o: calls["D"].append((i[0].detach(), o.detach())))]
    return calls, hooks


def split_d_calls(calls, real, fake):
    """D's inputs and outputs over all its calls, split into the rows of the real, the fake and the other
    (mixed) images, in batch order."""
    images = torch.cat([i for i, _ in calls["D"]])
    logits = torch.cat([o for _, o in calls["D"]])
    rows = {"real": [], "fake": [], "mixed": []}
    for b in range(real.shape[0]):
        rows["real"] += [k for k in range(len(images)) if torch.equal(images[k], real[b])]
        rows["fake"] += [k for k in range(len(images)) if torch.equal(images[k], fake[b])]
    rows["mixed"] = [k for k in range(len(images)) if k not in rows["real"] + rows["fake"]]
    return images, logits, rows


def test_discriminator_losses_follow_the_spec(coco_model, coco_batch):
    model = coco_model
    model.train()
    calls, hooks = recording_hooks(model)
    try:
        torch.manual_seed(1)
        losses = model.compute_losses("discriminator", coco_batch)
    finally:
        for h in hooks:
            h.remove()
    assert set(losses) == {"D_fake", "D_real", "LabelMix"}
    onehot, real = model.preprocess_input(coco_batch)
    assert len(calls["G"]) == 1
    fake = calls["G"][0]
    images, logits, rows = split_d_calls(calls, real, fake)
    assert [len(rows[k]) for k in ("real", "fake", "mixed")] == [2, 2, 2]
    d_real, d_fake, d_mixed = (logits[rows[k]] for k in ("real", "fake", "mixed"))
    assert d_real.shape == (2, 184, 64, 64)
    # The mixed images: per pixel the real or the fake one, chosen by one bit per class.
    mixed = images[rows["mixed"]]
    mask = (mixed == real).all(1, keepdim=True).float()
    assert torch.equal(mixed, torch.where(mask.bool(), real, fake))
    labels = onehot.argmax(1)
    for c in labels.unique():
        assert len(mask[:, 0][labels == c].unique()) == 1
    assert 0 < float(mask.mean()) < 1
    torch.testing.assert_close(losses["D_fake"], reference_ce(d_fake, onehot, for_real=False), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses["D_real"], reference_ce(d_real, onehot, for_real=True), rtol=1e-5, atol=1e-6)
    lm = ((d_mixed - (mask * d_real + (1 - mask) * d_fake)) ** 2).mean()
    torch.testing.assert_close(losses["LabelMix"], model.opt.lambda_labelmix * lm, rtol=1e-5, atol=1e-7)
    assert model.opt.lambda_labelmix == 10  # COCO-Stuff


def test_generator_loss_is_the_balanced_cross_entropy_to_the_real_classes(coco_model, coco_batch):
    model = coco_model
    model.train()
    model.zero_grad(set_to_none=True)
    calls, hooks = recording_hooks(model)
    try:
        losses = model.compute_losses("generator", coco_batch)
    finally:
        for h in hooks:
            h.remove()
    assert set(losses) == {"Generator"}  # no VGG without --add_vgg_loss, no feature matching
    onehot, _ = model.preprocess_input(coco_batch)
    assert len(calls["G"]) == 1 and len(calls["D"]) == 1
    images, logits = calls["D"][0]
    assert torch.equal(images, calls["G"][0])  # D sees the fake only
    torch.testing.assert_close(losses["Generator"], reference_ce(logits, onehot, for_real=True), rtol=1e-5,
                               atol=1e-6)
    losses["Generator"].backward()
    assert all(p.grad is not None for p in model.netG.parameters())
    model.zero_grad(set_to_none=True)


def test_no_labelmix_drops_the_term(coco_root, coco_batch):
    import models

    model = models.create_model(coco_options(coco_root, no_labelmix=True))
    model.train()
    calls, hooks = recording_hooks(model)
    try:
        losses = model.compute_losses("discriminator", coco_batch)
    finally:
        for h in hooks:
            h.remove()
    assert set(losses) == {"D_fake", "D_real"}
    assert sum(i.shape[0] for i, _ in calls["D"]) == 4  # fake and real only


def test_optimizers_follow_the_spec(coco_model):
    opt = coco_model.opt
    optimizers = coco_model.create_optimizers()
    g_ids = {id(p) for p in coco_model.netG.parameters()}
    d_ids = {id(p) for p in coco_model.netD.parameters()}
    rates = coco_model.learning_rates(1)
    later = coco_model.learning_rates(opt.niter)
    found = {}
    for name, optimizer in optimizers.items():
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        which = "G" if ids == g_ids else "D" if ids == d_ids else None
        assert which is not None, f"optimizer {name} holds neither exactly G's nor D's parameters"
        found[which] = name
        for group in optimizer.param_groups:
            assert tuple(group["betas"]) == (0.0, 0.999)
        expected_lr = opt.lr_g if which == "G" else opt.lr_d
        assert rates[name] == pytest.approx(expected_lr) and later[name] == pytest.approx(expected_lr)  # no decay
    assert set(found) == {"G", "D"}
    assert (opt.lr_g, opt.lr_d) == pytest.approx((1e-4, 4e-4))


def test_inference_synthesizes_an_image(coco_model, coco_batch):
    out = coco_model.inference(coco_batch)
    image = out["synthesized_image"]
    assert image.shape == (2, 3, 64, 64) and float(image.abs().max()) <= 1
    assert torch.isfinite(image).all()


def test_generator_init_is_xavier_with_gain_002(coco_model):
    w = coco_model.netG.state_dict()["fc.weight"]  # [64, 8 + 183, 3, 3]: fan_in 191*9, fan_out 64*9
    assert w.shape == (64, 191, 3, 3)
    expected = 0.02 * math.sqrt(2.0 / (191 * 9 + 64 * 9))
    assert float(w.std()) == pytest.approx(expected, rel=0.05)
