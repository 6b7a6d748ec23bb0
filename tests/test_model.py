"""Tests of models/pix2pix_model.py: input preprocessing, loss modes, optimisers."""

import pytest
import torch
import torch.nn as nn

from conftest import build_options
from models.pix2pix_model import Pix2PixModel, instance_edges


def make_opt(**overrides):
    """A tiny DAGAN configuration (4 classes + dontcare + instance edges, 32x32), through the parser."""
    is_train = overrides.pop("isTrain", True)
    values = dict(netG="dagan", ngf=8, z_dim=16, crop_size=32, load_size=32, aspect_ratio=1.0, label_nc=4,
                  contain_dontcare_label=True)
    if is_train:
        values.update(ndf=8, num_D=2, n_layers_D=4, lr=2e-4)
    values.update(overrides)
    return build_options(is_train, **values)


def make_batch(opt, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h = round(opt.crop_size / opt.aspect_ratio)
    nc = opt.label_nc + (1 if opt.contain_dontcare_label else 0)
    return {
        "label": torch.randint(0, nc, (batch, 1, h, opt.crop_size), generator=gen),
        "instance": torch.randint(0, 3, (batch, 1, h, opt.crop_size), generator=gen) * 1000,
        "image": torch.rand(batch, 3, h, opt.crop_size, generator=gen) * 2 - 1,
        "path": [f"img_{i}.jpg" for i in range(batch)],
        "label_path": [f"/data/labels/label_{i}.png" for i in range(batch)],
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Pix2PixModel(make_opt())


def test_instance_edges_by_hand():
    inst = torch.tensor([[[[1, 1, 2],
                           [1, 1, 2],
                           [3, 3, 3]]]])
    expected = torch.tensor([[[[0, 1, 1],
                               [1, 1, 1],
                               [1, 1, 1]]]], dtype=torch.float32)
    assert torch.equal(instance_edges(inst), expected)
    assert instance_edges(torch.full((1, 1, 4, 5), 26001)).sum() == 0


def test_preprocess_one_hot_and_edges(model):
    opt = model.opt
    data = make_batch(opt)
    semantics, image = model.preprocess_input(data)
    assert semantics.shape == (2, opt.semantic_nc, 32, 32)
    one_hot = semantics[:, :-1]
    assert torch.equal(one_hot.sum(1), torch.ones(2, 32, 32))
    assert torch.equal(one_hot.argmax(1, keepdim=True), data["label"])
    assert torch.equal(semantics[:, -1:], instance_edges(data["instance"]))
    assert torch.equal(image, data["image"])


def test_preprocess_without_instance():
    m = Pix2PixModel(make_opt(no_instance=True, contain_dontcare_label=False, isTrain=False))
    semantics, _ = m.preprocess_input(make_batch(m.opt))
    assert semantics.shape[1] == 4 and m.netD is None and m.netE is None


def test_label_out_of_range_is_clear_error(model):
    data = make_batch(model.opt)
    data["label"][1, 0, 3, 7] = 9
    with pytest.raises(ValueError, match=r"label value 9 .*label_1\.png"):
        model.preprocess_input(data)
    data["label"][1, 0, 3, 7] = -1
    with pytest.raises(ValueError, match="label value -1"):
        model.preprocess_input(data)


def test_generator_mode_losses_and_gradients(model):
    model.zero_grad(set_to_none=True)
    losses, fake = model.compute_generator_loss(*model.preprocess_input(make_batch(model.opt)))
    assert set(losses) == {"GAN", "GAN_Feat"}
    assert fake.shape == (2, 3, 32, 32) and fake.requires_grad
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.netG.parameters())
    assert float(model.netG.spatialAtt.conv.weight.grad.abs().sum()) > 0


def test_discriminator_mode_does_not_touch_generator(model):
    model.zero_grad(set_to_none=True)
    losses = model.compute_losses("discriminator", make_batch(model.opt))
    assert set(losses) == {"D_Fake", "D_real"}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.netG.parameters())
    assert all(p.grad is not None for p in model.netD.parameters())
    # Hinge at init: D outputs are near 0, so each term is near 1.
    assert 0.5 < losses["D_Fake"].item() < 1.5 and 0.5 < losses["D_real"].item() < 1.5


def test_fake_and_real_go_through_D_in_one_pass(model, monkeypatch):
    calls = []
    original = model.netD.forward

    def counting(images, semantics):
        # D's interface: fake and real images in one batch, paired with the same label maps.
        calls.append((semantics.shape[0], images.shape[0]))
        return original(images, semantics)

    monkeypatch.setattr(model.netD, "forward", counting)
    model.compute_losses("discriminator", make_batch(model.opt))
    assert calls == [(2, 4)]


def test_preprocess_returns_the_class_ids_and_g_uses_them(monkeypatch):
    """The label map the one-hot channels encode goes to G as ``class_ids`` (SPADE's look-up path)."""
    model = Pix2PixModel(make_opt())
    data = make_batch(model.opt)
    semantics, image, ids = model.preprocess_input_with_class_ids(data)
    assert ids.dtype == torch.int64 and torch.equal(ids, data["label"][:, 0])
    n = model.opt.label_nc + 1  # + dontcare
    assert torch.equal(semantics[:, :n].argmax(dim=1), ids)
    plain_semantics, plain_image = model.preprocess_input(data)
    assert torch.equal(plain_semantics, semantics) and torch.equal(plain_image, image)
    seen = []
    original = model.netG.forward

    def spy(semantics, z=None, class_ids=None):
        seen.append(class_ids)
        return original(semantics, z=z, class_ids=class_ids)

    monkeypatch.setattr(model.netG, "forward", spy)
    model.compute_losses("generator", data)
    model.compute_losses("discriminator", data)
    model.inference(data)
    assert len(seen) == 3 and all(c is not None and torch.equal(c, ids) for c in seen)


def test_feature_matching_value():
    torch.manual_seed(1)
    m = Pix2PixModel(make_opt(no_instance=True)).eval()  # eval: spectral norm without power iteration
    data = make_batch(m.opt)
    semantics, real = m.preprocess_input(data)
    losses, fake = m.compute_generator_loss(semantics, real)
    with torch.no_grad():
        out_fake = m.netD(fake, semantics)
        out_real = m.netD(real, semantics)
    expected = 0.0
    for f_scale, r_scale in zip(out_fake, out_real):
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            expected += (f - r).abs().mean() * 10.0 / 2
    gan = sum(-s[-1].mean() for s in out_fake) / 2
    assert torch.allclose(losses["GAN_Feat"].detach(), expected, rtol=1e-4)
    assert torch.allclose(losses["GAN"].detach(), gan, rtol=1e-4, atol=1e-6)


def test_inference_returns_the_visuals():
    torch.manual_seed(0)
    model = Pix2PixModel(make_opt()).eval()  # eval: the same weights and statistics for both calls
    data = make_batch(model.opt)
    out = model.inference(data)
    assert list(out) == ["input_label", "synthesized_image", "real_image"]
    fake = out["synthesized_image"]
    assert fake.shape == (2, 3, 32, 32) and not fake.requires_grad
    assert float(fake.abs().max()) <= 1.0
    assert out["input_label"] is data["label"] and out["real_image"] is data["image"]
    extras = model.inference(data, extras=True)
    assert extras["sam_attention"].shape == (2, 1, 32, 32) and extras["cam_weights"].dim() == 2
    # the same generator, the same image, with or without the attention maps
    assert torch.allclose(extras["synthesized_image"], fake, atol=1e-6)


def test_vae_modes():
    torch.manual_seed(2)
    m = Pix2PixModel(make_opt(use_vae=True))
    data = make_batch(m.opt)
    z, mu, logvar = m.encode_z(m.preprocess_input(data)[1])
    assert z.shape == mu.shape == logvar.shape == (2, 16)
    losses = m.compute_losses("generator", data)
    expected_kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * 0.05
    assert set(losses) == {"GAN", "GAN_Feat", "KLD"}
    assert torch.allclose(losses["KLD"], expected_kld, rtol=1e-4)
    optG = m.create_optimizers()["G"]
    assert len(optG.param_groups[0]["params"]) == len(list(m.netG.parameters())) + len(list(m.netE.parameters()))


def test_encode_without_vae_is_clear_error(model):
    with pytest.raises(ValueError, match="--use_vae"):
        model.encode_z(make_batch(model.opt)["image"])
    with pytest.raises(ValueError, match="known: generator, discriminator"):
        model.compute_losses("train", make_batch(model.opt))


def test_optimizers_ttur(model):
    opts = model.create_optimizers()
    optG, optD = opts["G"], opts["D"]
    assert optG.param_groups[0]["lr"] == pytest.approx(1e-4) and optD.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert optG.param_groups[0]["betas"] == (0.0, 0.9) == optD.param_groups[0]["betas"]
    model.opt = make_opt(no_TTUR=True)
    opts = model.create_optimizers()
    optG, optD = opts["G"], opts["D"]
    assert optG.param_groups[0]["lr"] == optD.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert optG.param_groups[0]["betas"] == (0.5, 0.999)


def test_missing_vgg_weights_names_file(tmp_torch_home):
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth.*--no_vgg_loss"):
        Pix2PixModel(make_opt(vgg_loss=True))


def test_gan_mode_option_reaches_loss():
    m = Pix2PixModel(make_opt(gan_mode="ls", ngf=4, ndf=4))
    assert isinstance(m.criterionGAN, nn.Module) and m.criterionGAN.gan_mode == "ls"
    losses = m.compute_losses("discriminator", make_batch(m.opt))
    # LSGAN at init (D outputs near 0): real term near 1, fake term near 0.
    assert 0.5 < losses["D_real"].item() < 1.5 and losses["D_Fake"].item() < 0.5


def test_reference_layers_give_the_same_losses_and_gradients():
    """The model with reference layers (D's input concatenated in full; plain SPADE layers and conv_64)
    gives the same losses and the same gradients for G and D (the benchmark's reference computation)."""
    import copy

    from models.networks.ops import ReferenceLabelImageConv2d, ReferenceSPADE, to_reference

    torch.manual_seed(4)
    base = Pix2PixModel(make_opt())
    data = make_batch(base.opt)
    results = []
    # (kinds, gradient tolerance relative to the largest gradient): the plain SPADE layers sum in
    # another order through the whole generator, D's input form only in D's first convolutions.
    variants = (((), 0.0), (("label_image_conv",), 1e-6), (("spade", "upsampled_conv", "label_image_conv"), 1e-5))
    for kinds, _ in variants:
        m = to_reference(copy.deepcopy(base), kinds=kinds)
        types = {type(x) for x in m.modules()}
        assert (ReferenceLabelImageConv2d in types) == ("label_image_conv" in kinds)
        assert (ReferenceSPADE in types) == ("spade" in kinds)
        torch.manual_seed(0)
        g_losses = m.compute_losses("generator", data)
        d_losses = m.compute_losses("discriminator", data)
        (sum(g_losses.values()) + sum(d_losses.values())).backward()
        grads = {n: p.grad.clone() for net in (m.netG, m.netD) for n, p in net.named_parameters()
                 if p.grad is not None}
        results.append(({**g_losses, **d_losses}, grads))
    loss_a, grad_a = results[0]
    for (loss_b, grad_b), (_, tolerance) in zip(results[1:], variants[1:]):
        assert set(grad_a) == set(grad_b) and len(grad_a) > 0
        for k in loss_a:
            assert torch.allclose(loss_a[k], loss_b[k], rtol=1e-5, atol=1e-6), k
        # Gradients that a following normalisation cancels (e.g. the biases before a BatchNorm) are
        # rounding noise in both forms: the tolerance is set by the net's largest gradient.
        scale = max(float(g.abs().max()) for g in grad_a.values())
        for k, g in grad_a.items():
            assert torch.allclose(g, grad_b[k], rtol=1e-4, atol=tolerance * scale), (k, float((g - grad_b[k]).abs().max()))
