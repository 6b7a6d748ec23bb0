"""CC-FPSE end to end: official weight-only files (``latest_net_G.pth`` ...) through test.py on COCO-Stuff
files (SPADE's layout, instance maps in ``val_inst``), and fine-tuning from them with train.py against a
plain re-implementation of the official training step.

Expected values come from plain computations written here: the network with torch's own spectral norm,
the unfold per-pixel convolution and the plain SPADE (``ops.to_reference``), the input channels from the
label and instance PNGs by numpy (SPADE's encoding: value v -> channel v, 255 -> channel 182, then the
instance-edge channel), the losses from the formulas of the official trainer (hinge; feature matching
over the four bottom-up D features, each weighted lambda_feat / 4), ``torch.optim.Adam`` without the
fused kernel, PNG quantisation ``uint8((x + 1) / 2 * 255)`` (truncated, as the official test).
"""

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
from models.networks import CondConvGenerator, ConvEncoder, FPSEDiscriminator
from models.networks.ops import to_reference
from test_oasis_run import photo_tensor, randomise

SIZE = 64
NETS = ["--netG", "condconv", "--ngf", "4", "--condconv_hidden", "16"]
COMMON = NETS + ["--dataset_mode", "coco", "--gpu_ids", "-1", "--crop_size", str(SIZE), "--load_size", str(SIZE)]
OPTIONS = dict(netG="condconv", ngf=4, condconv_hidden=16, dataset_mode="coco", crop_size=SIZE, load_size=SIZE)


def write_coco(root):
    """SPADE's COCO-Stuff layout, one 64x64 sample per split: label values 0, 5, 181 and 255, 8-bit
    instance maps with three instances, a random photo."""
    rng = np.random.default_rng(7)
    for split in ("train", "val"):
        for kind in ("img", "label", "inst"):
            os.makedirs(root / f"{split}_{kind}", exist_ok=True)
        label = np.full((SIZE, SIZE), 5, np.uint8)
        label[:20] = 181
        label[40:, :30] = 255
        label[50:, 40:] = 0
        Image.fromarray(label).save(root / f"{split}_label" / f"{split}0.png")
        inst = np.zeros((SIZE, SIZE), np.uint8)
        inst[10:30, 10:30] = 3
        inst[35:60, 20:50] = 9
        Image.fromarray(inst).save(root / f"{split}_inst" / f"{split}0.png")
        photo = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(photo).save(root / f"{split}_img" / f"{split}0.jpg", quality=95)
    return root


def coco_semantics(root, split):
    """[1,184,H,W]: one-hot of the label PNG (value v -> channel v, 255 -> 182), then the instance edges:
    1 where a pixel's id differs from a 4-neighbour's."""
    v = np.asarray(Image.open(root / f"{split}_label" / f"{split}0.png")).astype(np.int64)
    channels = np.where(v == 255, 182, v)
    onehot = np.zeros((1, 184) + v.shape, np.float32)
    np.put_along_axis(onehot, channels[None, None], 1.0, axis=1)
    inst = np.asarray(Image.open(root / f"{split}_inst" / f"{split}0.png")).astype(np.int64)
    edge = np.zeros(inst.shape, bool)
    dx, dy = inst[:, 1:] != inst[:, :-1], inst[1:] != inst[:-1]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:] |= dy
    edge[:-1] |= dy
    onehot[0, 183] = edge
    return torch.from_numpy(onehot)


def quantise(image):
    """The official test's PNG: (x + 1) / 2 * 255, clipped, truncated to uint8."""
    return np.clip((image[0].permute(1, 2, 0).numpy() + 1) / 2 * 255, 0, 255).astype(np.uint8)


def official_files(folder, opt, vae=False):
    """Weight-only files of random official-layout networks (non-trivial BatchNorm statistics and
    spectral-norm vectors too), a stand-in for a release."""
    folder.mkdir(parents=True)
    generator = randomise(CondConvGenerator(opt), 1)
    generator["conv_img.weight"] *= 0.01  # the image mostly inside tanh's range: PNGs worth comparing
    torch.save(generator, folder / "latest_net_G.pth")
    torch.save(randomise(FPSEDiscriminator(opt), 2), folder / "latest_net_D.pth")
    if vae:
        torch.save(randomise(ConvEncoder(opt), 3), folder / "latest_net_E.pth")
    return folder


@pytest.fixture
def coco(tmp_path):
    return write_coco(tmp_path / "coco")


def test_official_weights_give_the_official_test_images(tmp_path, coco):
    opt = build_options(True, netD="fpse", ndf=4, dataroot=str(coco), **OPTIONS)
    assert opt.semantic_nc == 184 and not opt.no_instance
    folder = official_files(tmp_path / "checkpoints" / "official", opt)
    results = tmp_path / "results"
    out = test_script.main(COMMON + ["--dataroot", str(coco), "--name", "official", "--checkpoints_dir",
                                     str(tmp_path / "checkpoints"), "--which_epoch", "latest",
                                     "--results_dir", str(results)])
    assert out["num_images"] == 1
    got = np.asarray(Image.open(results / "official" / "test_latest" / "images" / "synthesized_image" / "val0.png"))
    G = to_reference(CondConvGenerator(opt))
    G.load_state_dict(torch.load(folder / "latest_net_G.pth", weights_only=True))
    with torch.no_grad():
        image = G.eval()(coco_semantics(coco, "val"))
    assert 0.2 < float(image.std()) and float((image.abs() < 0.95).float().mean()) > 0.5  # a real picture
    expected = quantise(image)
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99, diff.max()


def test_vae_test_default_encodes_the_photo_and_sample_z_is_seeded(tmp_path, coco):
    opt = build_options(True, netD="fpse", ndf=4, dataroot=str(coco), use_vae=True, **OPTIONS)
    official_files(tmp_path / "ck" / "vae", opt, vae=True)
    args = COMMON + ["--use_vae", "--dataroot", str(coco), "--name", "vae", "--checkpoints_dir", str(tmp_path / "ck")]

    def run(name, *extra):
        test_script.main(args + ["--results_dir", str(tmp_path / name), *extra])
        return np.asarray(Image.open(tmp_path / name / "vae" / "test_latest" / "images" / "synthesized_image"
                                     / "val0.png")).astype(int)

    sampled, again, other_seed = run("a", "--sample_z"), run("b", "--sample_z"), run("c", "--sample_z", "--seed", "3")
    assert np.array_equal(sampled, again) and np.abs(sampled - other_seed).mean() > 1
    encoded = run("d")
    assert np.abs(encoded - sampled).mean() > 1  # the default takes z from the photo's encoding


def _official_step_reference(opt, folder, coco, lambda_feat=20.0, lr=0.0002):
    """One iteration of the official trainer (TTUR: Adam (0, 0.9), G lr/2, D 2 lr), written plainly:
    G step (fake and real through D in one batch; hinge -mean(D(fake)) averaged over the 3 scores,
    feature matching over the 4 bottom-up features, each L1 * lambda_feat / 4), then D step (a fresh
    fake without grad, fake and real in one batch, hinge mean(relu(1 + D(fake))), mean(relu(1 - D(real))))."""
    G = to_reference(CondConvGenerator(opt))
    G.load_state_dict(torch.load(folder / "latest_net_G.pth", weights_only=True))
    D = to_reference(FPSEDiscriminator(opt))
    D.load_state_dict(torch.load(folder / "latest_net_D.pth", weights_only=True))
    G.train()
    D.train()
    opt_g = torch.optim.Adam(G.parameters(), lr=lr / 2, betas=(0.0, 0.9), foreach=False)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr * 2, betas=(0.0, 0.9), foreach=False)
    sem = coco_semantics(coco, "train")
    real = photo_tensor(coco / "train_img" / "train0.jpg")

    opt_g.zero_grad()
    fake = G(sem)
    out = D(torch.cat([fake, real]), sem)
    scores_fake = [group[-1][:1] for group in out]
    features = out[0][:4]
    gan = sum(-s.mean() for s in scores_fake) / 3
    feat = sum(F.l1_loss(f[:1], f[1:].detach()) for f in features) * lambda_feat / 4
    (gan + feat).backward()
    G.grads = {k: p.grad.clone() for k, p in G.named_parameters() if p.grad is not None}
    opt_g.step()

    opt_d.zero_grad()
    with torch.no_grad():
        fake = G(sem)
    out = D(torch.cat([fake, real]), sem)
    d_fake = sum(F.relu(1 + group[-1][:1]).mean() for group in out) / 3
    d_real = sum(F.relu(1 - group[-1][1:]).mean() for group in out) / 3
    (d_fake + d_real).backward()
    D.grads = {k: p.grad.clone() for k, p in D.named_parameters() if p.grad is not None}
    opt_d.step()
    losses = {"GAN": gan.item(), "GAN_Feat": feat.item(), "D_Fake": d_fake.item(), "D_real": d_real.item()}
    return G, D, losses


def test_fine_tuning_official_weights_is_the_official_step(tmp_path, coco):
    opt = build_options(True, netD="fpse", ndf=4, dataroot=str(coco), **OPTIONS)
    folder = official_files(tmp_path / "checkpoints" / "official", opt)
    original = tmp_path / "original"
    shutil.copytree(folder, original)  # the run writes its own latest_net_* files into the folder
    train.main(COMMON + ["--netD", "fpse", "--ndf", "4", "--dataroot", str(coco), "--name", "official",
                         "--checkpoints_dir", str(tmp_path / "checkpoints"), "--continue_train",
                         "--lambda_feat", "20", "--no_vgg_loss", "--batchSize", "1", "--niter", "1",
                         "--niter_decay", "0", "--no_flip", "--print_freq", "1", "--no_html"])
    G_ref, D_ref, losses = _official_step_reference(opt, original, coco)
    records = [json.loads(line) for line in (folder / "loss_log.jsonl").read_text().splitlines()]
    records = [r for r in records if r["kind"] == "loss"]
    assert len(records) == 1
    for name, value in losses.items():
        assert records[0][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    for path, ref, lr in (("latest_net_G.pth", G_ref, 1e-4), ("latest_net_D.pth", D_ref, 4e-4)):
        got = torch.load(folder / path, weights_only=True)
        start = torch.load(original / path, weights_only=True)
        want = ref.state_dict()
        assert set(got) == set(want)
        same, total = 0, 0
        largest = max(float(g.abs().max()) for g in ref.grads.values())
        for key in want:
            never_run = ".norm_0." in key or ".norm_layer." in key  # built and saved, never used by the forward
            if never_run:
                assert torch.equal(got[key], start[key]) and torch.equal(want[key], start[key]), key
                continue
            if key not in ref.grads:  # buffers: BatchNorm statistics and counts, spectral-norm u / v
                assert torch.allclose(got[key].float(), want[key].float(), rtol=1e-3, atol=1e-4), (path, key)
                if key.endswith("num_batches_tracked"):
                    assert int(got[key]) == int(start[key]) + 2, key  # two G forwards: G step and D step
                continue
            agree = first_adam_step_agrees(got[key] - start[key], want[key] - start[key], ref.grads[key], lr,
                                           noise_floor=1e-5 * largest, what=(path, key))
            same += int(agree.sum())
            total += agree.numel()
        assert same >= 0.99 * total, (path, same, total)
        moved = "conv_img.weight" if "G" in path else "tf.weight"
        assert not torch.equal(got[moved], start[moved])  # the comparison is not vacuous
