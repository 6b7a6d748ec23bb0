"""Mixed precision (--amp): fp32 losses, fp32 spectral-norm power iteration, bf16 close to fp32 on CPU."""


import pytest
import torch
import torch.nn as nn

from models.networks.ops import FP32SpectralNorm, spectral_norm
from models.pix2pix_model import Pix2PixModel
from models.trainer import Trainer
from test_model import make_opt as model_opt


def make_opt(**overrides):
    # test_model's tiny configuration, with a 3-layer D and a one-epoch schedule for the trainer.
    values = dict(n_layers_D=3, niter=1, niter_decay=0, amp="none")
    values.update(overrides)
    return model_opt(**values)


def make_batch(opt, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    nc = opt.label_nc + (1 if opt.contain_dontcare_label else 0)
    coarse = torch.randint(0, nc, (batch, 1, 8, 8), generator=gen)
    label = nn.functional.interpolate(coarse.float(), size=(opt.crop_size, opt.crop_size)).long()
    return {
        "label": label,
        "instance": label * 1000,
        "image": torch.rand(batch, 3, opt.crop_size, opt.crop_size, generator=gen) * 2 - 1,
        "path": [f"img_{i}.jpg" for i in range(batch)],
        "label_path": [f"label_{i}.png" for i in range(batch)],
    }


def test_spectral_norm_power_iteration_runs_outside_autocast(monkeypatch):
    conv = spectral_norm(nn.Conv2d(3, 4, 3, padding=1))
    hooks = [h for h in conv._forward_pre_hooks.values() if isinstance(h, FP32SpectralNorm)]
    assert len(hooks) == 1
    seen = []
    real_mv = torch.mv

    def recording_mv(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real_mv(*args, **kwargs)

    monkeypatch.setattr(torch, "mv", recording_mv)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(torch.randn(1, 3, 8, 8))
    assert seen and not any(seen)  # every power-iteration product ran with autocast off
    assert out.dtype == torch.bfloat16  # ... while the convolution itself is autocast
    assert conv.weight_u.dtype == torch.float32 and conv.weight.dtype == torch.float32
    assert set(conv.state_dict()) == {"bias", "weight_orig", "weight_u", "weight_v"}


def first_step_losses(amp):
    opt = make_opt()
    torch.manual_seed(0)
    model = Pix2PixModel(opt)
    data = make_batch(opt)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if amp else torch.autocast("cpu", enabled=False)
    with context:
        g_losses = model.compute_losses("generator", data)
        fake = model.get_current_visuals()["synthesized_image"]
        d_losses = model.compute_losses("discriminator", data)
    return {**g_losses, **d_losses}, fake


def test_bf16_first_step_losses_finite_and_close_to_fp32():
    fp32, fake32 = first_step_losses(amp=False)
    bf16, fake16 = first_step_losses(amp=True)
    assert set(bf16) == {"GAN", "GAN_Feat", "D_Fake", "D_real"} == set(fp32)
    assert fake16.dtype == torch.float32
    assert float((fake16 - fake32).detach().abs().max()) < 0.05
    for name in fp32:
        assert bf16[name].dtype == torch.float32, name
        assert torch.isfinite(bf16[name]), name
        # bf16 keeps ~3 significant digits; the first step's losses agree to a few percent.
        assert abs(float(bf16[name]) - float(fp32[name])) <= 0.05 * abs(float(fp32[name])) + 1e-3, name


def test_bf16_training_step_keeps_fp32_parameters():
    opt = make_opt(amp="bf16")
    torch.manual_seed(0)
    trainer = Trainer(opt, Pix2PixModel(opt))
    before = {k: v.clone() for k, v in trainer.model.netG.state_dict().items()}
    data = make_batch(opt)
    assert trainer.run_iteration(data, 0) == ["generator", "discriminator"]
    after = trainer.model.netG.state_dict()
    assert all(v.dtype == torch.float32 for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in trainer.get_latest_losses().values())


def test_fp16_on_cpu_is_a_clear_error():
    opt = make_opt(amp="fp16")
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        Trainer(opt, Pix2PixModel(opt))


@pytest.mark.parametrize("fast", [False, True])
def test_bf16_without_fast_kernels_warns(monkeypatch, caplog, fast):
    # On a CPU without AVX-512/AMX, bf16 convolutions fall back to slow reference kernels: the
    # trainer says so instead of silently running slower than fp32.
    import models.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "native_bf16", lambda device: fast)
    opt = make_opt(amp="bf16")
    with caplog.at_level("WARNING", logger="models.trainer"):
        Trainer(opt, Pix2PixModel(opt))
    warned = [r for r in caplog.records if "no fast bf16 kernels" in r.getMessage()]
    assert len(warned) == (0 if fast else 1)

