"""models/networks/ops: every fast op against its plain reference (STYLE §9), values and gradients,
and the swap of a built network's fast layers for reference twins (``ops.to_reference``).

Nothing here is timed; speed is measured by scripts/benchmark.py.
"""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import build_options
from models import networks
from models.networks import ops
from models.networks.normalization import SPADE
from models.networks.ops import (
    LabelImageConv2d,
    ReferenceLabelImageConv2d,
    ReferenceSPADE,
    ReferenceUpsampledConv2d,
    SegmapPyramid,
    SNConv2d,
    UpsampledConv2d,
    conv3x3_of_upsampled,
    label_image_conv2d,
    nearest_resize,
    onehot_conv2d,
    reference_conv3x3_of_upsampled,
    reference_label_image_conv2d,
    reference_nearest_resize,
    reference_onehot_conv2d,
    reference_upsample2x,
    spectral_norm,
    to_fast,
    to_reference,
    upsample2x,
)
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


# ---------------------------------------------------------------------------------------- resize
@pytest.mark.parametrize("channels_last", [False, True])
def test_nearest_resize_is_bit_identical_to_interpolate(channels_last):
    x = torch.randn(2, 5, 24, 32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for size in ((3, 4), (12, 16), (24, 32), (48, 64), (7, 5), (17, 45)):
        out = nearest_resize(x, size)
        assert torch.equal(out, reference_nearest_resize(x, size))
        assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_upsample2x_keeps_the_dtype_under_autocast():
    x = torch.randn(2, 3, 5, 7)
    assert torch.equal(upsample2x(x), reference_upsample2x(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb = x.to(torch.bfloat16)
        out = upsample2x(xb)
        assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 10, 14)
        assert torch.equal(out.float(), reference_upsample2x(xb).float())


# ---------------------------------------------------------------------------------------- pyramid
@pytest.mark.parametrize("channels_last", [False, True])
def test_pyramid_resize_is_bit_identical_and_shared(channels_last):
    seg, labels = one_hot_semantics()
    if channels_last:
        seg = seg.contiguous(memory_format=torch.channels_last)
    pyramid = SegmapPyramid(seg)
    # Halvings as in the generator, and odd ratios either way (nearest's rounding of the scale).
    for size in ((3, 4), (6, 8), (12, 16), (24, 32), (48, 64), (7, 5), (17, 45)):
        expected = F.interpolate(seg, size=size, mode="nearest")
        assert torch.equal(pyramid.at(size), expected)
        assert pyramid.at(size).is_contiguous(memory_format=torch.channels_last if channels_last
                                              else torch.contiguous_format)
        assert pyramid.at(size) is pyramid.at(size)  # computed once per size
        assert torch.equal(pyramid.labels_at(size, 6), expected.argmax(dim=1))
    assert pyramid.at((24, 32)) is seg


def test_pyramid_refuses_maps_that_are_not_one_hot():
    seg, _ = one_hot_semantics()
    assert SegmapPyramid(seg).labels_at((24, 32), 6) is not None
    assert SegmapPyramid(seg * 0.5).labels_at((24, 32), 6) is None  # soft
    two_hot = seg.clone()
    two_hot[:, 0] = 1.0
    assert SegmapPyramid(two_hot).labels_at((24, 32), 6) is None
    assert SegmapPyramid(seg).labels_at((24, 32), 0) is None


def test_pyramid_takes_the_class_ids_it_is_given():
    seg, labels = one_hot_semantics()
    pyramid = SegmapPyramid(seg, labels)
    assert pyramid.labels_at((24, 32), 6) is labels  # taken, not recovered from the map
    assert torch.equal(pyramid.labels_at((6, 8), 6), F.interpolate(seg, size=(6, 8)).argmax(dim=1))
    with pytest.raises(ValueError, match=r"\[B,H,W\]"):
        SegmapPyramid(seg, labels[:, :-1])
    with pytest.raises(ValueError, match="int64"):
        SegmapPyramid(seg, labels.int())


# ---------------------------------------------------------------------------------------- one-hot conv
@pytest.mark.parametrize("with_edges,kernel", [(False, 3), (True, 3), (False, 1), (True, 5)])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_onehot_conv_matches_dense_conv(with_edges, kernel, memory_format):
    torch.manual_seed(1)
    seg, labels = one_hot_semantics(with_edges=with_edges)
    conv = nn.Conv2d(seg.size(1), 16, kernel, padding=kernel // 2)
    ref = copy.deepcopy(conv)
    extra = seg[:, 6:] if with_edges else None
    if extra is not None and memory_format == torch.channels_last:
        extra = extra.contiguous(memory_format=torch.channels_last)
    out = onehot_conv2d(labels, extra, conv, memory_format=memory_format)
    expected = ref(seg)
    assert torch.equal(reference_onehot_conv2d(labels, None if extra is None else seg[:, 6:], ref), expected)
    assert out.shape == expected.shape
    assert out.is_contiguous(memory_format=memory_format)
    assert torch.allclose(out, expected, atol=1e-5)
    weight = torch.randn_like(expected)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    assert torch.allclose(conv.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(conv.bias.grad, ref.bias.grad, atol=1e-4)


@pytest.mark.parametrize("with_edges", [False, True])
def test_onehot_conv_with_dense_channels_in_front(with_edges):
    """OASIS's condition [noise || one-hot (|| more)]: the one-hot block starts at channel ``start``."""
    torch.manual_seed(4)
    seg, labels = one_hot_semantics(with_edges=with_edges)
    noise = torch.randn(seg.size(0), 3, *seg.shape[2:])
    full = torch.cat([noise, seg], dim=1)  # 3 dense, 6 one-hot, (1 dense)
    conv = nn.Conv2d(full.size(1), 16, 3, padding=1)
    ref = copy.deepcopy(conv)
    extra = torch.cat([noise, seg[:, 6:]], dim=1) if with_edges else noise
    out = onehot_conv2d(labels, extra, conv, memory_format=torch.contiguous_format, start=3)
    expected = ref(full)
    assert torch.allclose(reference_onehot_conv2d(labels, extra, ref, start=3), expected, atol=1e-6)
    assert torch.allclose(out, expected, atol=1e-5)
    weight = torch.randn_like(expected)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    assert torch.allclose(conv.weight.grad, ref.weight.grad, atol=1e-4)


def test_spade_with_noise_in_front_matches_reference():
    torch.manual_seed(5)
    fast = SPADE("spadesyncbatch3x3", 8, 3 + 6, onehot_nc=6, onehot_start=3, norm_name="first_norm", hidden=16)
    assert "first_norm.running_mean" in fast.state_dict() and fast.mlp_shared[0].out_channels == 16
    ref = to_reference(copy.deepcopy(fast))
    seg, labels = one_hot_semantics(with_edges=False)
    cond = torch.cat([torch.randn(seg.size(0), 3, *seg.shape[2:]), seg], dim=1)
    x = torch.randn(2, 8, 12, 16)
    assert torch.allclose(fast(x, cond, class_ids=labels), ref(x, cond), atol=1e-5)
    assert torch.allclose(fast(x, cond), ref(x, cond), atol=1e-5)  # ids recovered from channels 3..8


def test_single_device_sync_batchnorm_leaves_the_batch_count():
    """As the official sync BN on one device: same normalisation and running statistics as BatchNorm2d
    with momentum 0.1, num_batches_tracked not counted (momentum None: torch's cumulative average)."""
    from models.networks.normalization import SingleDeviceSyncBatchNorm2d

    torch.manual_seed(6)
    x = torch.randn(4, 5, 6, 6)
    ours, plain = SingleDeviceSyncBatchNorm2d(5, affine=False), nn.BatchNorm2d(5, affine=False)
    assert torch.allclose(ours(x), plain(x), atol=1e-6)
    assert torch.allclose(ours.running_var, plain.running_var) and int(ours.num_batches_tracked) == 0
    assert int(plain.num_batches_tracked) == 1
    ours.momentum = None
    ours(x)
    assert int(ours.num_batches_tracked) == 1


# ---------------------------------------------------------------------------------------- SPADE
@pytest.mark.parametrize("config", ["spadebatch3x3", "spadeinstance3x3"])
def test_spade_fast_matches_reference(config):
    torch.manual_seed(2)
    fast = SPADE(config, 8, 7, onehot_nc=6)
    ref = to_reference(copy.deepcopy(fast))
    assert type(fast) is SPADE and type(ref) is ReferenceSPADE
    seg, labels = one_hot_semantics(with_edges=True)
    x = torch.randn(2, 8, 12, 16)
    out_fast = fast(x, seg, class_ids=labels)
    out_ref = ref(x, seg)
    assert torch.allclose(out_fast, out_ref, atol=1e-5)
    weight = torch.randn_like(out_ref)
    (out_fast * weight).sum().backward()
    (out_ref * weight).sum().backward()
    grads_close(fast, ref)
    # Recovered class ids (a pyramid or a plain one-hot tensor), and a soft map (dense fallback).
    for segmap in (SegmapPyramid(seg), seg, seg * 0.7):
        assert torch.allclose(fast(x, segmap), ref(x, segmap), atol=1e-5)
    # A pyramid carries its own class ids: other ones given with it are a mistake.
    with pytest.raises(ValueError, match="SegmapPyramid"):
        fast(x, SegmapPyramid(seg, labels), class_ids=labels.clone())


def test_spade_reads_the_class_ids_it_is_given():
    """The look-up path really uses ``class_ids`` (not the map): wrong ids give another result."""
    torch.manual_seed(3)
    fast = SPADE("spadeinstance3x3", 4, 6, onehot_nc=6)
    seg, labels = one_hot_semantics()
    x = torch.randn(2, 4, 24, 32)
    with torch.no_grad():
        right = fast(x, seg, class_ids=labels)
        assert torch.equal(right, fast(x, seg))  # the same ids recovered from the map
        wrong = fast(x, seg, class_ids=(labels + 1) % 6)
    assert not torch.allclose(right, wrong, atol=1e-3)


def test_spade_eval_cache_follows_weight_updates():
    torch.manual_seed(3)
    fast = SPADE("spadeinstance3x3", 4, 6, onehot_nc=6).eval()
    ref = to_reference(copy.deepcopy(fast))
    seg, labels = one_hot_semantics()
    x = torch.randn(2, 4, 24, 32)
    with torch.no_grad():
        assert torch.allclose(fast(x, seg, labels), ref(x, seg), atol=1e-5)
        for module in (fast, ref):
            module.mlp_gamma.weight.add_(0.5)  # an optimizer step / load_state_dict writes in place
            module.mlp_beta.bias.sub_(0.25)
            module.mlp_shared[0].weight.mul_(1.5)  # the look-up table is cached too
            module.mlp_shared[0].bias.add_(0.1)
        assert torch.allclose(fast(x, seg, labels), ref(x, seg), atol=1e-5)


# ---------------------------------------------------------------------------------------- swap helper
def test_to_reference_rejects_unknown_kind():
    with pytest.raises(ValueError, match="spade, upsampled_conv, label_image_conv, pixel_conv, spectral_norm"):
        to_reference(SPADE("spadeinstance3x3", 4, 3), kinds=("cuda",))


def generator_opt(**overrides):
    """A tiny DAGAN configuration (5 classes + dontcare + instance edges, 32x32), built by the parser."""
    values = dict(netG="dagan", ngf=4, z_dim=8, crop_size=32, load_size=32, aspect_ratio=1.0, label_nc=5,
                  contain_dontcare_label=True, ndf=4, num_D=2, n_layers_D=3)
    values.update(overrides)
    values["load_size"] = max(values["load_size"], values["crop_size"])
    return build_options(**values)


def layer_types(net):
    return {name: type(m) for name, m in net.named_modules()}


def test_swap_shares_tensors_and_round_trips():
    """A twin shares the layer's parameters and buffers (same state dict, same tensors: an optimizer
    built on the fast network trains the reference one); to_fast restores every class and hook and
    the exact output."""
    from torch.nn.utils.spectral_norm import SpectralNorm

    opt = generator_opt()
    torch.manual_seed(4)
    net = networks.define_G(opt).eval()  # eval: no power iteration, no BatchNorm update between calls
    seg, labels = one_hot_semantics(batch=2, size=(32, 32), with_edges=True)
    with torch.no_grad():
        before = net(seg, class_ids=labels)
    fast_types = layer_types(net)
    state = net.state_dict(keep_vars=True)
    params = dict(net.named_parameters())

    assert to_reference(net) is net
    types = layer_types(net)
    assert types.keys() == fast_types.keys()
    assert types["head_0.norm_0"] is ReferenceSPADE and types["conv_64"] is ReferenceUpsampledConv2d
    assert types["head_0.conv_0"] is nn.Conv2d and fast_types["head_0.conv_0"] is SNConv2d
    hooks = list(net.head_0.conv_0._forward_pre_hooks.values())
    assert [type(h) for h in hooks] == [SpectralNorm]
    assert not any(isinstance(m, (SPADE, UpsampledConv2d, SNConv2d)) for m in net.modules())
    ref_state = net.state_dict(keep_vars=True)
    assert list(ref_state) == list(state) and all(ref_state[k] is v for k, v in state.items())
    assert all(p is params[n] for n, p in net.named_parameters())
    with torch.no_grad():
        assert torch.allclose(net(seg, class_ids=labels), before, atol=1e-5)

    assert to_fast(net) is net
    assert layer_types(net) == fast_types
    assert [type(h) for h in net.head_0.conv_0._forward_pre_hooks.values()] == [ops.FP32SpectralNorm]
    with torch.no_grad():
        assert torch.equal(net(seg, class_ids=labels), before)

    # Only the kinds asked for; the context manager undoes the swap on exit.
    to_reference(net, kinds=("upsampled_conv",))
    assert type(net.conv_64) is ReferenceUpsampledConv2d and type(net.head_0.norm_0) is SPADE
    to_fast(net)
    with ops.reference_layers(net, kinds=("spade",)):
        assert type(net.head_0.norm_0) is ReferenceSPADE and type(net.conv_64) is UpsampledConv2d
    assert layer_types(net) == fast_types


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
    ref = to_reference(copy.deepcopy(fast))
    assert list(fast.state_dict()) == list(ref.state_dict())
    assert any(type(m) is ReferenceSPADE for m in ref.modules())
    size = (opt.crop_size, opt.crop_size)
    seg, labels = one_hot_semantics(batch=batch, classes=6, size=size, with_edges=not opt.no_instance)
    z = torch.randn(batch, opt.z_dim) if opt.use_vae else None
    out_fast, out_ref = fast(seg, z=z, class_ids=labels), ref(seg, z=z)
    assert float(out_ref.detach().abs().mean()) > 1e-4  # not a trivially zero output
    assert torch.allclose(out_fast, out_ref, atol=1e-5)
    weight = torch.randn_like(out_ref)
    (out_fast * weight).sum().backward()
    (out_ref * weight).sum().backward()
    grads_close(fast, ref)
    # The power iteration ran the same number of times: the spectral-norm buffers agree too.
    for (key, a), b in zip(fast.state_dict().items(), ref.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), key


def test_generator_class_ids_explicit_recovered_or_dense_give_the_same_image():
    """class_ids given, recovered from the one-hot map (None), or the plain path: one image; ids
    that do not match the map give another one (they are read, not ignored)."""
    opt = generator_opt(crop_size=64)
    torch.manual_seed(5)
    net = networks.define_G(opt).eval()
    seg, labels = one_hot_semantics(batch=2, classes=6, size=(64, 64), with_edges=True)
    with torch.no_grad():
        given = net(seg, class_ids=labels)
        assert torch.equal(given, net(seg))
        image, attention = net.forward_with_attention(seg, None, class_ids=labels)
        assert torch.equal(image, given) and set(attention) == {"sam", "cam"}
        assert torch.allclose(given, to_reference(copy.deepcopy(net))(seg), atol=1e-5)
        wrong = net(seg, class_ids=torch.flip(labels, dims=[2]))
    assert float((given - wrong).abs().max()) > 1e-3


# ---------------------------------------------------------------------------------------- conv of upsampled
@pytest.mark.parametrize("batch,size,bias,channels_last", [
    (2, (5, 7), True, False), (1, (4, 4), False, False), (1, (6, 3), True, True)])
def test_conv3x3_of_upsampled_matches_conv_of_the_upsampled_input(batch, size, bias, channels_last):
    torch.manual_seed(5)
    x = torch.randn(batch, 6, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weight = torch.randn(4, 6, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True) if bias else None
    expected = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, b, padding=1)
    assert torch.equal(reference_conv3x3_of_upsampled(x, weight, b), expected)
    got = conv3x3_of_upsampled(x, weight, b)
    assert got.shape == expected.shape == (batch, 4, 2 * size[0], 2 * size[1])
    assert torch.allclose(got, expected, atol=1e-5)
    probe = torch.randn_like(expected)
    inputs = [t for t in (x, weight, b) if t is not None]
    for g_got, g_exp in zip(torch.autograd.grad((got * probe).sum(), inputs),
                            torch.autograd.grad((expected * probe).sum(), inputs)):
        assert torch.allclose(g_got, g_exp, atol=1e-5 * float(g_exp.abs().max()))


@pytest.mark.parametrize("overrides", [
    {"crop_size": 64, "aspect_ratio": 2.0},                         # 32x64 output, 'normal'
    {"num_upsampling_layers": "most", "crop_size": 128, "no_sam": True},
])
def test_dagan_fast_conv_64_matches_reference(overrides):
    """conv_64 run at the previous block's resolution: same image, same gradients for conv_64 and
    for the backbone feeding it (to_reference switches the tail with the other layers by default)."""
    opt = generator_opt(**overrides)
    torch.manual_seed(6)
    fast = networks.define_G(opt)
    for name, param in fast.named_parameters():  # the 0.02-gain init would make the tail negligible
        if name.startswith(("conv_64", "conv_img")):
            nn.init.normal_(param, 0.0, 0.1)
    assert type(fast.conv_64) is UpsampledConv2d
    assert type(to_reference(copy.deepcopy(fast)).conv_64) is ReferenceUpsampledConv2d
    # Only the tail: the SPADE layers' own rounding differences stay out of the comparison.
    ref = to_reference(copy.deepcopy(fast), kinds=("upsampled_conv",))
    assert type(ref.conv_64) is ReferenceUpsampledConv2d and type(ref.up_0.norm_0) is SPADE
    n_up = {"normal": 5, "most": 7}[opt.num_upsampling_layers]
    height = round(opt.crop_size // 2 ** n_up / opt.aspect_ratio) * 2 ** n_up
    seg, _ = one_hot_semantics(batch=2, classes=6, size=(height, opt.crop_size), with_edges=True)
    out_fast, out_ref = fast(seg), ref(seg)
    assert out_fast.shape == seg.shape[:1] + (3,) + seg.shape[2:]
    assert float(out_ref.detach().std()) > 1e-2
    assert torch.allclose(out_fast, out_ref, atol=1e-5)
    probe = torch.randn_like(out_ref)
    (out_fast * probe).sum().backward()
    (out_ref * probe).sum().backward()
    for name in ("conv_64.weight", "conv_64.bias"):
        g_fast, g_ref = fast.get_parameter(name).grad, ref.get_parameter(name).grad
        assert torch.allclose(g_fast, g_ref, atol=1e-4 * float(g_ref.abs().max())), name
    grads_close(fast, ref)


# ---------------------------------------------------------------------------------------- D input
@pytest.mark.parametrize("groups,stride,bias", [(2, 2, True), (1, 1, False), (3, 2, True)])
def test_label_image_conv_matches_the_concatenated_input(groups, stride, bias):
    torch.manual_seed(7)
    semantics = torch.rand(2, 5, 12, 10).requires_grad_()
    images = torch.randn(groups * 2, 3, 12, 10, requires_grad=True)
    weight = torch.randn(8, 8, 4, 4, requires_grad=True)
    b = torch.randn(8, requires_grad=True) if bias else None
    # Image j is paired with label map j % B.
    full = torch.cat([torch.cat([semantics] * groups, 0), images], 1)
    expected = F.conv2d(full, weight, b, stride, 2)
    assert torch.equal(reference_label_image_conv2d(images, semantics, weight, b, stride, 2), expected)
    got = label_image_conv2d(images, semantics, weight, b, stride, 2)
    assert got.shape == expected.shape == (groups * 2, 8) + expected.shape[2:]
    assert torch.allclose(got, expected, atol=1e-5)
    probe = torch.randn_like(expected)
    inputs = [t for t in (semantics, images, weight, b) if t is not None]
    for g_got, g_exp in zip(torch.autograd.grad((got * probe).sum(), inputs),
                            torch.autograd.grad((expected * probe).sum(), inputs)):
        assert torch.allclose(g_got, g_exp, atol=1e-5 * float(g_exp.abs().max()))
    with pytest.raises(ValueError, match="whole groups"):
        label_image_conv2d(images[:1], semantics, weight, b, stride, 2)
    with pytest.raises(ValueError, match="input channels"):
        label_image_conv2d(images, semantics[:, :4], weight, b, stride, 2)


def plain_multiscale_D(netD, images, semantics):
    """The reference computation of SPADE's multiscale D, written out with netD's weights: each
    scale's PatchGAN on cat([semantics repeated, images], 1) average-pooled k times."""
    k = images.size(0) // semantics.size(0)
    x = torch.cat([semantics.repeat(k, 1, 1, 1), images], 1)
    result = []
    for i, d in enumerate(netD.children()):
        if i > 0:
            x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
        conv = d.model0[0]
        feats = [F.leaky_relu(F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding), 0.2)]
        for layer in list(d.children())[1:]:
            feats.append(layer(feats[-1]))
        result.append(feats)
    return result


@pytest.mark.parametrize("groups", [2, 1])
def test_discriminator_equals_plain_reference(groups):
    """D(images, semantics) = the plain computation on the concatenated input (same values, same
    gradients for D's weights and the images); the D with reference layers gives the same."""
    opt = generator_opt(no_instance=False)
    torch.manual_seed(3)
    netD = networks.define_D(opt)
    assert type(netD.discriminator_0.model0[0]) is LabelImageConv2d
    ref_net = to_reference(copy.deepcopy(netD), kinds=("label_image_conv",))
    assert type(ref_net.discriminator_1.model0[0]) is ReferenceLabelImageConv2d
    semantics, _ = one_hot_semantics(batch=2, classes=6, size=(32, 32), with_edges=True)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    results = []
    for net, run in ((netD, lambda n, i, s: n(i, s)), (copy.deepcopy(netD), plain_multiscale_D),
                     (ref_net, lambda n, i, s: n(i, s))):
        images = real.clone().requires_grad_()
        # Groups (as fake and real) sharing the label maps.
        both = torch.cat([images, images.flip(0), -images][:groups], 0)
        out = run(net, both, semantics)
        assert len(out) == opt.num_D and all(len(scale) == opt.n_layers_D + 1 for scale in out)
        assert out[0][-1].shape[0] == groups * 2
        loss = sum((t * torch.linspace(-1, 1, t.numel()).view_as(t)).sum() for scale in out for t in scale)
        loss.backward()
        results.append((out, images.grad, {n: p.grad for n, p in net.named_parameters()}))
    (out_a, img_a, w_a) = results[0]
    for out_b, img_b, w_b in results[1:]:
        for scale_a, scale_b in zip(out_a, out_b):
            for a, b in zip(scale_a, scale_b):
                assert torch.allclose(a, b, atol=1e-5)
        assert float(img_a.abs().max()) > 0 and torch.allclose(img_a, img_b, atol=1e-5)
        for name, g in w_a.items():
            assert torch.allclose(g, w_b[name], rtol=1e-4, atol=1e-4 * float(g.abs().max())), name
    with pytest.raises(ValueError, match="whole groups"):
        netD(real[:1].repeat(3, 1, 1, 1), semantics)


# ---------------------------------------------------------------------------------------- spectral norm
def test_spectral_norm_eval_cache_follows_weight_updates():
    torch.manual_seed(5)
    conv = spectral_norm(nn.Conv2d(6, 8, 3, padding=1))
    x = torch.randn(2, 6, 10, 10)
    conv.train()
    with torch.no_grad():
        conv(x)  # one power iteration: u, v no longer the initial ones
    conv.eval()
    plain = copy.deepcopy(conv)
    with torch.no_grad():
        first = conv(x)
        cached_weight = conv.weight
        conv(x)
        assert conv.weight is cached_weight  # W / sigma computed once for repeated inference calls
        # torch's own eval-mode computation (grad enabled: the cache is not used) gives the same.
    with torch.enable_grad():
        expected = plain(x)
    assert torch.allclose(first, expected, atol=1e-6)
    with torch.no_grad():
        conv.weight_orig.mul_(1.5)  # an optimizer step / load_state_dict writes in place
        plain.weight_orig.mul_(1.5)
        conv.weight_u.copy_(torch.nn.functional.normalize(torch.randn(8), dim=0))
        plain.weight_u.copy_(conv.weight_u)
        after = conv(x)
    assert conv.weight is not cached_weight
    with torch.enable_grad():
        assert torch.allclose(after, plain(x), atol=1e-6)
    # Training mode never uses the cache: the power iteration runs and moves u.
    conv.train()
    u_before = conv.weight_u.clone()
    with torch.no_grad():
        conv(x)
    assert not torch.equal(conv.weight_u, u_before)


def test_spectral_norm_channels_last_weight_matches_contiguous():
    torch.manual_seed(6)
    a = spectral_norm(nn.Conv2d(16, 32, 3, padding=1))
    b = copy.deepcopy(a).to(memory_format=torch.channels_last)
    assert b.weight_orig.is_contiguous(memory_format=torch.channels_last) and not b.weight_orig.is_contiguous()
    x = torch.randn(2, 16, 8, 8)
    for _ in range(3):  # three power iterations, u and v stored in torch's order
        ya, yb = a(x), b(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(ya, yb, atol=1e-5)
        assert torch.allclose(a.weight_u, b.weight_u, atol=1e-6)
        assert torch.allclose(a.weight_v, b.weight_v, atol=1e-6)
    weight = torch.randn_like(ya)
    (ya * weight).sum().backward()
    (yb * weight).sum().backward()
    scale = float(a.weight_orig.grad.abs().max())
    assert torch.allclose(a.weight_orig.grad, b.weight_orig.grad, atol=1e-5 * scale)
    assert list(a.state_dict()) == list(b.state_dict())


@pytest.mark.parametrize("bias", [True, False])
def test_spectral_norm_output_scaling_matches_weight_scaling(bias):
    """A conv whose output is smaller than its weight divides the output by sigma instead of the
    weight: same output, same gradients, same power-iteration buffers as torch's spectral norm."""
    torch.manual_seed(7)
    conv = spectral_norm(nn.Conv2d(32, 48, 3, padding=1, bias=bias))
    assert isinstance(conv, SNConv2d)
    x_small, x_large = torch.randn(1, 32, 4, 4), torch.randn(2, 32, 32, 32)
    assert conv.scales_output(x_small) and not conv.scales_output(x_large)
    plain = to_reference(copy.deepcopy(conv))  # torch's hook: always divides the weight
    assert type(plain) is nn.Conv2d
    for x in (x_small, x_small, x_large):  # the power iteration runs at every call
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = conv(xa), plain(xb)
        assert torch.allclose(ya, yb, atol=1e-5)
        weight = torch.randn_like(ya)
        (ya * weight).sum().backward()
        (yb * weight).sum().backward()
        assert torch.allclose(xa.grad, xb.grad, atol=1e-5)
        assert torch.allclose(conv.weight_orig.grad, plain.weight_orig.grad, atol=1e-5)
        if bias:
            assert torch.allclose(conv.bias.grad, plain.bias.grad, atol=1e-5)
        assert torch.allclose(conv.weight_u, plain.weight_u, atol=1e-6)
        assert torch.allclose(conv.weight_v, plain.weight_v, atol=1e-6)
    assert "_sn_sigma" not in conv.__dict__  # consumed by the forward
    assert list(conv.state_dict()) == list(plain.state_dict())


# ---------------------------------------------------------------------------------------- per-pixel conv
def plain_per_pixel_conv(x, kernels):
    """The definition: out[n,c,h,w] = sum_{i,j} kernels[n, 9c + 3i + j, h, w] * x_pad[n, c, h + i, w + j]."""
    n, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    out = torch.zeros_like(x)
    for i in range(3):
        for j in range(3):
            out += kernels[:, (3 * i + j)::9] * padded[:, :, i:i + h, j:j + w]
    return out


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 3, 1, 4), (3, 16, 8, 8)])
def test_pixel_depthwise_conv_fast_matches_unfold_reference(shape):
    gen = torch.Generator().manual_seed(11)
    n, c, h, w = shape
    x = torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(n, 9 * c, h, w, generator=gen, dtype=torch.float64, requires_grad=True)
    fast = ops.pixel_depthwise_conv3x3(x, kernels)
    ref = ops.reference_pixel_depthwise_conv3x3(x, kernels)
    assert torch.allclose(fast, ref, atol=1e-12) and torch.allclose(ref, plain_per_pixel_conv(x, kernels), atol=1e-12)
    weight = torch.randn(fast.shape, generator=gen, dtype=torch.float64)
    grads_fast = torch.autograd.grad((fast * weight).sum(), (x, kernels))
    grads_ref = torch.autograd.grad((ref * weight).sum(), (x, kernels))
    for a, b in zip(grads_fast, grads_ref):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.autograd.gradcheck(ops.pixel_depthwise_conv3x3, (x[:1, :2, :4, :3].detach().requires_grad_(),
                                                                  kernels[:1, :18, :4, :3].detach().requires_grad_()))


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_pixel_depthwise_conv_in_other_layouts(layout):
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(2, 6, 10, 12, generator=gen, dtype=torch.float64)
    kernels = torch.randn(2, 54, 10, 12, generator=gen, dtype=torch.float64)
    if layout == "channels_last":
        xs, ks = (t.contiguous(memory_format=torch.channels_last) for t in (x, kernels))
    else:  # H and W swapped in memory: neither NCHW nor channels-last
        xs, ks = (t.transpose(2, 3).contiguous().transpose(2, 3) for t in (x, kernels))
        assert not ks.is_contiguous() and not ks.is_contiguous(memory_format=torch.channels_last)
    xs.requires_grad_()
    ks.requires_grad_()
    out = ops.pixel_depthwise_conv3x3(xs, ks)
    assert torch.allclose(out, ops.reference_pixel_depthwise_conv3x3(x, kernels), atol=1e-12)
    weight = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    gx, gk = torch.autograd.grad((out * weight).sum(), (xs, ks))
    x_ref, k_ref = x.clone().requires_grad_(), kernels.clone().requires_grad_()
    rx, rk = torch.autograd.grad((ops.reference_pixel_depthwise_conv3x3(x_ref, k_ref) * weight).sum(), (x_ref, k_ref))
    assert torch.allclose(gx, rx, atol=1e-12) and torch.allclose(gk, rk, atol=1e-12)


def test_pixel_depthwise_conv_fast_is_float32_exact_enough_and_keeps_no_unfold_copy():
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    kernels = torch.randn(2, 72, 16, 16, requires_grad=True)
    out = ops.pixel_depthwise_conv3x3(x, kernels)
    assert torch.allclose(out, ops.reference_pixel_depthwise_conv3x3(x, kernels), atol=1e-5)
    # What autograd keeps for the backward: the padded input and the kernels, nothing of 9xCxHxW beyond them.
    saved = out.grad_fn.saved_tensors
    assert sorted(t.numel() for t in saved) == sorted([2 * 8 * 18 * 18, kernels.numel()])
    with pytest.raises(ValueError, match=r"per-pixel 3x3 kernels must be \[2,72,16,16\]"):
        ops.pixel_depthwise_conv3x3(x, kernels[:, :71])


def test_condconv_generator_and_fpse_fast_match_reference():
    opt = build_options(True, netG="condconv", netD="fpse", ngf=4, ndf=4, condconv_hidden=8)
    torch.manual_seed(5)
    for net in (networks.define_G(opt), networks.define_D(opt)):
        ref = to_reference(copy.deepcopy(net))
        kinds = {type(m).__name__ for m in ref.modules()}
        assert "PixelDepthwiseConv2d" not in kinds and "SNConv2d" not in kinds
        assert ("ReferencePixelDepthwiseConv2d" in kinds) == hasattr(net, "up_3")
        seg, _ = one_hot_semantics(batch=2, classes=8, size=(64, 64), with_edges=True)
        if hasattr(net, "up_3"):
            out_fast, out_ref = net(seg), ref(seg)
            outs = [(out_fast, out_ref)]
        else:
            images = torch.rand(4, 3, 64, 64) * 2 - 1
            a, b = net(images, seg), ref(images, seg)
            outs = [(x, y) for la, lb in zip(a, b) for x, y in zip(la, lb)]
        for x, y in outs:
            assert torch.allclose(x, y, atol=1e-5)
        total = sum((x * torch.linspace(-1, 1, x.numel()).view_as(x)).sum() for x, _ in outs)
        total_ref = sum((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum() for _, y in outs)
        total.backward()
        total_ref.backward()
        grads_close(net, ref)
        to_fast(ref)
        assert {type(m).__name__ for m in ref.modules()} == {type(m).__name__ for m in net.modules()}
