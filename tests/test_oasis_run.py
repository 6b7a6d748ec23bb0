"""OASIS end to end: an official run folder (``models/latest_EMA.pth`` ...) through test.py on COCO-Stuff
files, fine-tuning from it with train.py against a plain re-implementation of the official training
step, our own runs' files, multimodal sampling, the main job's preset.

Expected values come from plain computations written here: torch's own spectral norm and the plain
SPADE (``ops.to_reference``), the one-hot channels from the label PNG by numpy, the losses from the
SPEC formulas, ``torch.optim.Adam`` without the fused kernel, PNG quantisation ``uint8((x+1)/2*255)``.
"""

import copy
import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import test as test_script
import train
from conftest import build_options, first_adam_step_agrees
from models.networks.oasis import OASISDiscriminator, OASISGenerator
from models.networks.ops import to_reference

SIZE = 64
COMMON = ["--model", "oasis", "--dataset_mode", "coco", "--gpu_ids", "-1", "--crop_size", str(SIZE),
          "--load_size", str(SIZE), "--channels_G", "4", "--no_3dnoise", "--spade_hidden", "16"]


def write_coco(root, n=1):
    """SPADE's COCO-Stuff layout, ``n`` 64x64 pairs per split; label values 0, 5, 181 and 255."""
    rng = np.random.default_rng(3)
    for split in ("train", "val"):
        os.makedirs(root / f"{split}_img", exist_ok=True)
        os.makedirs(root / f"{split}_label", exist_ok=True)
        for i in range(n):
            label = np.full((SIZE, SIZE), 5, np.uint8)
            label[:20] = 181
            label[40:, :30] = 255
            label[50:, 40:] = 0
            Image.fromarray(label).save(root / f"{split}_label" / f"{split}{i}.png")
            photo = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(photo).save(root / f"{split}_img" / f"{split}{i}.jpg", quality=95)
    return root


def oasis_onehot(label_png, nc=183):
    """COCO-Stuff value v -> channel v+1, 255 -> channel 0 (the official encoding), [1,nc,H,W]."""
    v = np.asarray(Image.open(label_png)).astype(np.int64)
    channels = np.where(v == 255, 0, v + 1)
    onehot = np.zeros((1, nc) + v.shape, np.float32)
    np.put_along_axis(onehot, channels[None, None], 1.0, axis=1)
    return torch.from_numpy(onehot)


def photo_tensor(path):
    a = np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255.0
    return torch.from_numpy((a - 0.5) / 0.5).permute(2, 0, 1)[None]


def randomise(net, seed):
    """Non-trivial weights, BatchNorm statistics and spectral-norm vectors (a stand-in for a release)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = v
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith(("weight_u", "weight_v")):
            state[k] = F.normalize(torch.randn(v.shape, generator=g), dim=0)
        else:
            state[k] = torch.randn(v.shape, generator=g) * 0.1
    net.load_state_dict(state)
    return state


def official_folder(tmp_path, opt, iteration="0"):
    """checkpoints/official/models/latest_{G,D,EMA}.pth + latest_iter.txt, random weights."""
    models_dir = tmp_path / "checkpoints" / "official" / "models"
    models_dir.mkdir(parents=True)
    torch.save(randomise(OASISGenerator(opt), 1), models_dir / "latest_G.pth")
    torch.save(randomise(OASISGenerator(opt), 2), models_dir / "latest_EMA.pth")
    torch.save(randomise(OASISDiscriminator(opt), 3), models_dir / "latest_D.pth")
    (tmp_path / "checkpoints" / "official" / "latest_iter.txt").write_text(iteration)
    return models_dir


def reference_generator(opt, path):
    net = OASISGenerator(opt)
    net.load_state_dict(torch.load(path, weights_only=True))
    return to_reference(net).eval()


def quantise(image):
    """The official test's PNG: uint8((x + 1) / 2 * 255) in float32, truncated."""
    return ((image[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).astype(np.uint8)


@pytest.fixture
def coco(tmp_path):
    return write_coco(tmp_path / "coco")


def test_official_run_folder_gives_the_official_test_images(tmp_path, coco):
    opt = build_options(False, **{"model": "oasis", "dataset_mode": "coco", "dataroot": str(coco),
                                  "crop_size": SIZE, "load_size": SIZE, "channels_G": 4, "no_3dnoise": True,
                                  "spade_hidden": 16})
    assert opt.semantic_nc == 183 and opt.no_instance and opt.use_ema and opt.which_epoch == "best"
    models_dir = official_folder(tmp_path, build_options(True, **{
        "model": "oasis", "dataset_mode": "coco", "dataroot": str(coco), "crop_size": SIZE, "load_size": SIZE,
        "channels_G": 4, "no_3dnoise": True, "spade_hidden": 16}))
    onehot = oasis_onehot(coco / "val_label" / "val0.png")
    for extra, weights in (([], "latest_EMA.pth"), (["--no_EMA"], "latest_G.pth")):
        results = tmp_path / ("results" + "".join(extra))
        out = test_script.main(COMMON + ["--dataroot", str(coco), "--name", "official", "--checkpoints_dir",
                                         str(tmp_path / "checkpoints"), "--which_epoch", "latest",
                                         "--results_dir", str(results)] + extra)
        assert out["num_images"] == 1
        got = np.asarray(Image.open(results / "official" / "test_latest" / "images" / "synthesized_image"
                                    / "val0.png"))
        with torch.no_grad():
            expected = quantise(reference_generator(opt, models_dir / weights)(onehot))
        diff = np.abs(got.astype(int) - expected.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (weights, diff.max())


def test_ckpt_iter_is_the_official_name_of_which_epoch(tmp_path, coco):
    opt = build_options(False, model="oasis", dataset_mode="coco", dataroot=str(coco), ckpt_iter="20000",
                        no_EMA=True)
    assert opt.which_epoch == "20000" and not opt.use_ema


def _official_step_reference(opt, models_dir, coco, lr_g=1e-4, lr_d=4e-4):
    """One iteration of the official OASIS trainer, written plainly: G step (G(y), D(G(y)), balanced
    CE to channel+1), then D step (G(y) again without grad, D on fake -> 0, D on real -> channel+1),
    Adam (0, 0.999), no LabelMix."""
    G = to_reference(OASISGenerator(opt))
    G.load_state_dict(torch.load(models_dir / "latest_G.pth", weights_only=True))
    D = to_reference(OASISDiscriminator(opt))
    D.load_state_dict(torch.load(models_dir / "latest_D.pth", weights_only=True))
    G.train()
    D.train()
    opt_g = torch.optim.Adam(G.parameters(), lr=lr_g, betas=(0.0, 0.999), foreach=False)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=(0.0, 0.999), foreach=False)
    onehot = oasis_onehot(coco / "train_label" / "train0.png")
    real = photo_tensor(coco / "train_img" / "train0.jpg")
    channel = onehot.argmax(1)  # [1,H,W]
    counts = onehot.sum(dim=(0, 2, 3))
    counts[0] = 0  # unknown: not counted
    present = int((counts > 0).sum())
    pixels = channel.numel()
    alpha = torch.where(counts > 0, pixels / (present * counts.clamp(min=1)), torch.zeros_like(counts))

    def ce(logits, target, weights=None):
        logp = logits.log_softmax(dim=1).gather(1, target[:, None])[:, 0]
        per_pixel = -logp if weights is None else -logp * weights
        return per_pixel.mean()

    opt_g.zero_grad()
    fake = G(onehot)
    loss_g = ce(D(fake), channel + 1, alpha[channel])
    loss_g.backward()
    D.zero_grad()
    G.grads = {k: p.grad.clone() for k, p in G.named_parameters()}
    opt_g.step()
    opt_d.zero_grad()
    with torch.no_grad():
        fake = G(onehot)
    loss_fake = ce(D(fake), torch.zeros_like(channel))
    loss_real = ce(D(real), channel + 1, alpha[channel])
    (loss_fake + loss_real).backward()
    D.grads = {k: p.grad.clone() for k, p in D.named_parameters()}
    opt_d.step()
    return G, D, {"Generator": loss_g.item(), "D_fake": loss_fake.item(), "D_real": loss_real.item()}


def test_fine_tuning_an_official_run_folder_is_the_official_step(tmp_path, coco):
    tr_args = {"model": "oasis", "dataset_mode": "coco", "dataroot": str(coco), "crop_size": SIZE,
               "load_size": SIZE, "channels_G": 4, "no_3dnoise": True, "spade_hidden": 16}
    opt = build_options(True, **tr_args)
    models_dir = official_folder(tmp_path, opt, iteration="1")
    original = tmp_path / "original"
    shutil.copytree(models_dir, original)  # the run overwrites the folder's latest_* files
    before_ema = torch.load(original / "latest_EMA.pth", weights_only=True)
    # latest_iter.txt says iterations 0 and 1 were done: with one image per epoch the official trainer
    # (get_start_iters) runs epoch 2 of --num_epochs 3, i.e. exactly one more iteration.
    train.main(COMMON + ["--dataroot", str(coco), "--name", "official", "--checkpoints_dir",
                         str(tmp_path / "checkpoints"), "--continue_train", "--which_iter", "latest",
                         "--no_labelmix", "--no_flip", "--batch_size", "1", "--num_epochs", "3",
                         "--freq_print", "1", "--freq_fid", "0", "--no_html"])
    G_ref, D_ref, losses = _official_step_reference(opt, original, coco)
    run = tmp_path / "checkpoints" / "official"
    assert (run / "latest_iter.txt").read_text() == "2"
    records = [json.loads(line) for line in (run / "loss_log.jsonl").read_text().splitlines()]
    records = [r for r in records if r["kind"] == "loss"]
    assert [r["iter"] for r in records] == [3]
    for name, value in losses.items():
        assert records[0][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    for path, ref, lr in (("latest_G.pth", G_ref, 1e-4), ("latest_D.pth", D_ref, 4e-4)):
        got = torch.load(run / "models" / path, weights_only=True)
        start = torch.load(original / path, weights_only=True)
        want = ref.state_dict()
        assert set(got) == set(want)
        same, total = 0, 0
        for key in want:
            if key.endswith("num_batches_tracked"):  # the official sync BN does not count batches
                assert got[key] == start[key] == want[key], key
                continue
            if key not in ref.grads:  # buffers: BatchNorm statistics, spectral-norm u / v
                # after a G step whose near-zero gradient elements may differ in sign (first_adam_step_agrees)
                assert torch.allclose(got[key], want[key], rtol=1e-3, atol=1e-4), (path, key)
                assert not key.endswith("running_mean") or not torch.equal(got[key], start[key]), key
                continue
            step_got, step_want = got[key] - start[key], want[key] - start[key]
            same += int(first_adam_step_agrees(step_got, step_want, ref.grads[key], lr, what=(path, key)).sum())
            total += step_want.numel()
        # Training runs the official computation, so (measured) no element flips; a few may on other CPUs.
        assert same >= 0.999 * total, (path, same, total)
        # the step moved the weights (the comparison is not vacuous)
        assert not torch.equal(got["conv_img.weight" if "G" in path else "layer_up_last.weight"],
                               start["conv_img.weight" if "G" in path else "layer_up_last.weight"])
    # The EMA continued from the folder's latest_EMA.pth (decay 0.9999: still close to it), not from G.
    ema = torch.load(run / "models" / "latest_EMA.pth", weights_only=True)
    assert torch.allclose(ema["conv_img.weight"], before_ema["conv_img.weight"], atol=1e-3)


def test_our_oasis_run_writes_the_official_run_folder_and_resumes(tmp_path, coco):
    write_coco(coco, n=2)
    args = COMMON + ["--dataroot", str(coco), "--name", "ours", "--checkpoints_dir", str(tmp_path / "ck"),
                     "--batch_size", "1", "--num_epochs", "2", "--freq_fid", "0", "--no_html", "--print_freq", "1",
                     "--EMA_decay", "0.9"]
    train.main(args, stop_after_epoch=1)
    run = tmp_path / "ck" / "ours"
    assert (run / "latest_state.pth").is_file()
    assert sorted(os.listdir(run / "models")) == ["latest_D.pth", "latest_EMA.pth", "latest_G.pth"]
    train.main(args + ["--continue_train"])
    resumed = torch.load(run / "models" / "latest_G.pth", weights_only=True)
    assert (run / "latest_iter.txt").read_text() == "3"  # 4 iterations done
    assert sorted(os.listdir(run / "models")) == ["2_D.pth", "2_EMA.pth", "2_G.pth", "latest_D.pth",
                                                  "latest_EMA.pth", "latest_G.pth"]
    straight = tmp_path / "ck2"
    train.main([a if a != str(tmp_path / "ck") else str(straight) for a in args])
    uninterrupted = torch.load(straight / "ours" / "models" / "latest_G.pth", weights_only=True)
    for k in resumed:
        assert torch.equal(resumed[k], uninterrupted[k]), k


def test_n_samples_and_resample_class(tmp_path, coco):
    run_args = ["--model", "oasis", "--dataset_mode", "coco", "--gpu_ids", "-1", "--crop_size", str(SIZE),
                "--load_size", str(SIZE), "--channels_G", "4", "--spade_hidden", "16", "--z_dim", "8",
                "--dataroot", str(coco), "--name", "noise", "--checkpoints_dir", str(tmp_path / "ck")]
    opt = build_options(True, **{"model": "oasis", "dataset_mode": "coco", "dataroot": str(coco), "crop_size": SIZE,
                                 "load_size": SIZE, "channels_G": 4, "spade_hidden": 16, "z_dim": 8})
    models_dir = tmp_path / "ck" / "noise" / "models"
    models_dir.mkdir(parents=True)
    G = OASISGenerator(opt)
    torch.save(randomise(G, 5), models_dir / "best_EMA.pth")
    results = tmp_path / "results"
    test_script.main(run_args + ["--results_dir", str(results), "--n_samples", "3", "--resample_class", "181"])
    folder = results / "noise" / "test_best" / "images" / "synthesized_image"
    assert sorted(os.listdir(folder)) == ["val0_0.png", "val0_1.png", "val0_2.png"]
    images = [np.asarray(Image.open(folder / f"val0_{k}.png")).astype(int) for k in range(3)]
    inside = np.asarray(Image.open(coco / "val_label" / "val0.png")) == 181
    for k in (1, 2):  # re-sampling the noise of class 181 changes the image there
        assert np.abs(images[k] - images[0])[inside].mean() > 1
    # The noise maps the generator gets: sample k > 0 differs from sample 0 exactly inside class 181
    # (COCO value 181 = OASIS channel 182), sample 0 is one vector per image.
    test_opt = build_options(False, **{"model": "oasis", "dataset_mode": "coco", "dataroot": str(coco),
                                       "crop_size": SIZE, "load_size": SIZE, "channels_G": 4, "spade_hidden": 16,
                                       "z_dim": 8, "checkpoints_dir": str(tmp_path / "ck"), "name": "noise"})
    import data
    import models
    model = models.create_model(test_opt).eval()
    seen = []
    real_forward = model.netG.forward
    model.netG.forward = lambda sem, z=None, class_ids=None: seen.append(z) or real_forward(sem, z, class_ids)
    batch = next(iter(data.create_dataloader(test_opt)))
    model.inference_samples(batch, 3, resample_class=181, generator=torch.Generator().manual_seed(0))
    assert seen[0].shape == (1, 8)
    base = seen[0][:, :, None, None].expand(1, 8, SIZE, SIZE)
    for z in seen[1:]:
        assert z.shape == (1, 8, SIZE, SIZE)
        changed = (z != base).any(dim=1)[0].numpy()
        assert np.array_equal(changed, inside)
    # seeded: a second run gives the same files
    test_script.main(run_args + ["--results_dir", str(tmp_path / "again"), "--n_samples", "3",
                                 "--resample_class", "181"])
    again = tmp_path / "again" / "noise" / "test_best" / "images" / "synthesized_image"
    for k in range(3):
        assert np.array_equal(np.asarray(Image.open(again / f"val0_{k}.png")), images[k])
    # plain --n_samples: every sample differs everywhere
    test_script.main(run_args + ["--results_dir", str(tmp_path / "plain"), "--n_samples", "2"])
    plain = tmp_path / "plain" / "noise" / "test_best" / "images" / "synthesized_image"
    a, b = (np.asarray(Image.open(plain / f"val0_{k}.png")).astype(int) for k in range(2))
    assert np.abs(a - b)[~inside].mean() > 1


def test_oasis_option_errors_exit_2(tmp_path, coco, capsys):
    runs = tmp_path / "runs"
    base = ["--model", "oasis", "--dataset_mode", "coco", "--dataroot", str(coco), "--gpu_ids", "-1",
            "--checkpoints_dir", str(runs)]
    with pytest.raises(SystemExit) as exit_info:
        train.cli(base + ["--crop_size", "96"])
    assert exit_info.value.code == 2
    assert "train.py: error: --crop_size 96" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        test_script.cli(base + ["--no_3dnoise", "--n_samples", "2"])
    assert exit_info.value.code == 2
    assert "test.py: error: --n_samples 2" in capsys.readouterr().err
    assert not runs.exists()


def test_synthetic_preset_is_the_main_job_for_oasis():
    opt = build_options(True, model="oasis")
    assert (opt.dataset_mode, opt.crop_size, opt.no_instance, opt.semantic_nc) == ("synthetic", 64, True, 8)
    assert opt.oasis_unknown_label is None  # every synthetic class is a class: no channel weighs 0
    coco = build_options(True, model="oasis", dataset_mode="coco")
    assert (coco.batchSize, coco.niter, coco.niter_decay, coco.crop_size, coco.preprocess_mode) == (
        32, 100, 0, 256, "fixed")
    city = build_options(True, model="oasis", dataset_mode="cityscapes")
    assert (city.batchSize, city.lr_g, city.lambda_labelmix, city.ema_decay, city.semantic_nc,
            city.oasis_unknown_label) == (20, 0.0004, 5.0, 0.999, 35, 0)
    ade = build_options(True, model="oasis", dataset_mode="ade20k", no_EMA=True)
    assert (ade.batchSize, ade.niter, ade.ema_decay, ade.semantic_nc, ade.oasis_unknown_label) == (
        32, 200, 0.0, 151, 0)
    assert copy.copy(ade).lr_d == 0.0004


def test_latest_iter_zero_means_not_started(tmp_path):
    """The official get_start_iters: a saved iteration n > 0 resumes after it; n = 0 starts over."""
    from models.oasis_model import OasisModel

    opt = build_options(True, model="oasis", checkpoints_dir=str(tmp_path), name="run")
    (tmp_path / "run").mkdir()
    for text, done in (("0", None), ("5", 6), ("123", 124)):
        (tmp_path / "run" / "latest_iter.txt").write_text(text)
        assert OasisModel.iterations_done(opt, "latest") == done
    assert OasisModel.iterations_done(opt, "40") == 41 and OasisModel.iterations_done(opt, "0") is None
    assert OasisModel.iterations_done(opt, "best") is None  # no best_iter.txt
