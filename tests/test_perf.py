"""The fast SPADE path against the plain reference path (STYLE §9): same results to float rounding.

Nothing here is timed; speed is measured by scripts/benchmark.py.
"""

import argparse
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models import networks
from models.networks.normalization import SPADE, SegmapPyramid, onehot_conv2d, set_spade_impl
from models.pix2pix_model import instance_edges


def one_hot_semantics(batch=2, classes=6, size=(24, 32), with_edges=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, classes, (batch, 1, size[0] // 4, size[1] // 4), generator=gen)
    labels = F.interpolate(coarse.float(), size=size, mode="nearest").long()
    seg = torch.zeros(batch, classes, *size).scatter_(1, labels, 1.0)
    if with_edges:
        seg = torch.cat([seg, instance_edges(labels)], dim=1)
    return seg, labels[:, 0]


def grads_close(net_a, net_b, rel=1e-3):
    """Gradients equal up to rounding, relative to the largest gradient of the network: biases in
    front of a normalisation have a true gradient of 0 and only rounding noise to compare."""
    pairs = [(name, pa.grad, pb.grad) for (name, pa), pb in zip(net_a.named_parameters(), net_b.parameters())
             if pa.grad is not None or pb.grad is not None]
    scale = max(float(gb.abs().max()) for _, _, gb in pairs)
    assert scale > 0
    for name, ga, gb in pairs:
        assert torch.allclose(ga, gb, rtol=rel, atol=rel * scale), name


# ---------------------------------------------------------------------------------------- pyramid
def test_pyramid_resize_is_bit_identical_and_shared():
    seg, labels = one_hot_semantics()
    pyramid = SegmapPyramid(seg, onehot_channels=6)
    for size in ((3, 4), (6, 8), (12, 16), (24, 32), (48, 64)):
        expected = F.interpolate(seg, size=size, mode="nearest")
        assert torch.equal(pyramid.at(size), expected)
        assert pyramid.at(size) is pyramid.at(size)  # computed once per size
        assert torch.equal(pyramid.labels_at(size), expected.argmax(dim=1))
    assert pyramid.at((24, 32)) is seg


def test_pyramid_refuses_maps_that_are_not_one_hot():
    seg, _ = one_hot_semantics()
    assert SegmapPyramid(seg, 6).labels_at((24, 32)) is not None
    assert SegmapPyramid(seg * 0.5, 6).labels_at((24, 32)) is None  # soft
    two_hot = seg.clone()
    two_hot[:, 0] = 1.0
    assert SegmapPyramid(two_hot, 6).labels_at((24, 32)) is None
    assert SegmapPyramid(seg, 0).labels_at((24, 32)) is None


# ---------------------------------------------------------------------------------------- one-hot conv
@pytest.mark.parametrize("with_edges,kernel", [(False, 3), (True, 3), (False, 1), (True, 5)])
def test_onehot_conv_matches_dense_conv(with_edges, kernel):
    torch.manual_seed(1)
    seg, labels = one_hot_semantics(with_edges=with_edges)
    conv = nn.Conv2d(seg.size(1), 16, kernel, padding=kernel // 2)
    ref = copy.deepcopy(conv)
    extra = seg[:, 6:] if with_edges else None
    out = onehot_conv2d(labels, extra, conv)
    expected = ref(seg)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-5)
    weight = torch.randn_like(expected)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    assert torch.allclose(conv.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(conv.bias.grad, ref.bias.grad, atol=1e-4)


# ---------------------------------------------------------------------------------------- SPADE
@pytest.mark.parametrize("config", ["spadebatch3x3", "spadeinstance3x3"])
def test_spade_fast_matches_reference(config):
    torch.manual_seed(2)
    fast = SPADE(config, 8, 7)
    ref = set_spade_impl(copy.deepcopy(fast), "ref")
    assert fast.impl == "fast" and ref.impl == "ref"
    seg, _ = one_hot_semantics(with_edges=True)
    x = torch.randn(2, 8, 12, 16)
    out_fast = fast(x, SegmapPyramid(seg, 6))
    out_ref = ref(x, seg)
    assert torch.allclose(out_fast, out_ref, atol=1e-5)
    weight = torch.randn_like(out_ref)
    (out_fast * weight).sum().backward()
    (out_ref * weight).sum().backward()
    grads_close(fast, ref)
    # A plain tensor (no pyramid) and a soft map take the dense fallback, still equal.
    soft = seg * 0.7
    assert torch.allclose(fast(x, soft), ref(x, soft), atol=1e-5)


def test_spade_eval_cache_follows_weight_updates():
    torch.manual_seed(3)
    fast = SPADE("spadeinstance3x3", 4, 6).eval()
    ref = set_spade_impl(copy.deepcopy(fast), "ref")
    seg, _ = one_hot_semantics()
    x = torch.randn(2, 4, 24, 32)
    with torch.no_grad():
        assert torch.allclose(fast(x, seg), ref(x, seg), atol=1e-5)
        for module in (fast, ref):
            module.mlp_gamma.weight.add_(0.5)  # an optimizer step / load_state_dict writes in place
            module.mlp_beta.bias.sub_(0.25)
        assert torch.allclose(fast(x, seg), ref(x, seg), atol=1e-5)


def test_set_spade_impl_rejects_unknown():
    with pytest.raises(ValueError, match="fast, ref"):
        set_spade_impl(SPADE("spadeinstance3x3", 4, 3), "cuda")


# ---------------------------------------------------------------------------------------- generator
def generator_opt(**overrides):
    values = dict(
        netG="dagan", ngf=4, init_type="xavier", init_variance=0.02, z_dim=8, use_vae=False,
        norm_G="spectralspadesyncbatch3x3", num_upsampling_layers="normal", crop_size=32,
        aspect_ratio=1.0, label_nc=5, contain_dontcare_label=True, no_instance=False,
        no_sam=False, no_cam=False, cam_mode="II", cam_scales=1, device=torch.device("cpu"),
    )
    values.update(overrides)
    values["semantic_nc"] = (values["label_nc"] + (1 if values["contain_dontcare_label"] else 0)
                             + (0 if values["no_instance"] else 1))
    return argparse.Namespace(**values)


@pytest.mark.parametrize("overrides,batch", [
    ({}, 2),
    # Batch 1 once gave wrong weight gradients when the lookup's channels-last output reached
    # oneDNN convolutions (found by the DDP equivalence test): the fast path now returns NCHW.
    ({"norm_G": "spectralspadeinstance3x3", "crop_size": 64, "no_instance": True}, 1),
    ({"netG": "spade", "use_vae": True, "no_instance": True}, 2),
])
def test_generator_fast_matches_reference(overrides, batch):
    opt = generator_opt(**overrides)
    torch.manual_seed(4)
    fast = networks.define_G(opt)
    ref = set_spade_impl(copy.deepcopy(fast), "ref")
    assert list(fast.state_dict()) == list(ref.state_dict())
    size = (opt.crop_size, opt.crop_size)
    seg, _ = one_hot_semantics(batch=batch, classes=6, size=size, with_edges=not opt.no_instance)
    z = torch.randn(batch, opt.z_dim) if opt.use_vae else None
    out_fast, out_ref = fast(seg, z=z), ref(seg, z=z)
    assert float(out_ref.detach().abs().mean()) > 1e-4  # not a trivially zero output
    assert torch.allclose(out_fast, out_ref, atol=1e-5)
    weight = torch.randn_like(out_ref)
    (out_fast * weight).sum().backward()
    (out_ref * weight).sum().backward()
    grads_close(fast, ref)
    # The power iteration ran the same number of times: the spectral-norm buffers agree too.
    for (key, a), b in zip(fast.state_dict().items(), ref.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), key
