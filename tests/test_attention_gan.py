"""AttentionGAN (--model attention_gan): official layout and sizes, the generator's output formula
against a plain re-implementation, the image pool, the losses, unaligned sampling, the official
checkpoints through test.py, fine-tuning from them against a plain official training step.

Expected values are computed here independently: the generator and PatchGAN written as plain
functional code from the SPEC (SPEC_PEERS.md, AttentionGAN), the losses from their formulas, the pool's
draws replayed with Python's ``random``, images read with PIL and normalised by hand.
"""

import json
import os
import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import test as test_script
import train
from conftest import build_options, first_adam_step_agrees
from models.attention_gan_model import ImagePool, cyclegan_lr_factor
from models.networks.attention_gan import AttentionGANGenerator, PatchDiscriminator

LAYOUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoint_layout")
SIZE = 32


def read_layout(name):
    with open(os.path.join(LAYOUT_DIR, name), encoding="utf-8") as f:
        return {k: json.loads(v) for k, v in (line.rstrip("\n").split("\t") for line in f if line.strip())}


# ------------------------------------------------------------------------------- plain references
def ref_generator(sd, x):
    """The official generator from the SPEC, functional, on a state dict."""
    def conv(h, name, stride=1, padding=0):
        return F.conv2d(h, sd[name + ".weight"], sd[name + ".bias"], stride=stride, padding=padding)

    def deconv(h, name):
        return F.conv_transpose2d(h, sd[name + ".weight"], sd[name + ".bias"], stride=2, padding=1, output_padding=1)

    def inorm(h):
        mean = h.mean(dim=(2, 3), keepdim=True)
        var = h.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + 1e-5)

    h = F.relu(inorm(conv(F.pad(x, (3,) * 4, mode="reflect"), "conv1")))
    h = F.relu(inorm(conv(h, "conv2", 2, 1)))
    h = F.relu(inorm(conv(h, "conv3", 2, 1)))
    for i in range(9):
        r = F.relu(inorm(conv(F.pad(h, (1,) * 4, mode="reflect"), f"resnet_blocks.{i}.conv1")))
        h = h + inorm(conv(F.pad(r, (1,) * 4, mode="reflect"), f"resnet_blocks.{i}.conv2"))
    c = F.relu(inorm(deconv(h, "deconv1_content")))
    c = F.relu(inorm(deconv(c, "deconv2_content")))
    content = torch.tanh(conv(F.pad(c, (3,) * 4, mode="reflect"), "deconv3_content"))
    a = F.relu(inorm(deconv(h, "deconv1_attention")))
    a = F.relu(inorm(deconv(a, "deconv2_attention")))
    logits = conv(a, "deconv3_attention")
    masks = torch.exp(logits - logits.logsumexp(dim=1, keepdim=True))
    out = 0
    for k in range(9):
        out = out + content[:, 3 * k:3 * k + 3] * masks[:, k:k + 1]
    return out + x * masks[:, 9:10], masks, content


def ref_patch_d(sd, x):
    def inorm(h):
        return (h - h.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(h.var(dim=(2, 3), unbiased=False, keepdim=True) + 1e-5)

    h = F.leaky_relu(F.conv2d(x, sd["model.0.weight"], sd["model.0.bias"], stride=2, padding=1), 0.2)
    for i, stride in ((2, 2), (5, 2), (8, 1)):
        h = F.leaky_relu(inorm(F.conv2d(h, sd[f"model.{i}.weight"], sd[f"model.{i}.bias"], stride=stride, padding=1)), 0.2)
    return F.conv2d(h, sd["model.11.weight"], sd["model.11.bias"], padding=1)


def randomised(net, seed, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(v.shape, generator=g) * scale for k, v in net.state_dict().items()}
    net.load_state_dict(sd)
    return sd


# ------------------------------------------------------------------------------- layout, sizes
def test_official_layout_and_dry_run_counts(tmp_path, capsys):
    assert {k: list(v.shape) for k, v in AttentionGANGenerator().state_dict().items()} == read_layout("attngan_netG_A.txt")
    assert {k: list(v.shape) for k, v in PatchDiscriminator().state_dict().items()} == read_layout("attngan_netD_A.txt")
    g_count = sum(int(np.prod(s)) for s in read_layout("attngan_netG_A.txt").values())
    d_count = sum(int(np.prod(s)) for s in read_layout("attngan_netD_A.txt").values())
    assert (g_count, d_count) == (11_822_949, 2_764_737)  # every tensor is a parameter (no buffers)
    assert train.main(["--dry_run", "--model", "attention_gan", "--dataroot", str(tmp_path / "x"),
                       "--gpu_ids", "-1"]) == 0
    out = capsys.readouterr().out
    for name, count in (("G_A", g_count), ("G_B", g_count), ("D_A", d_count), ("D_B", d_count)):
        assert f"net{name} parameters: {count:,}\n" in out


def test_generator_output_is_the_attention_weighted_sum():
    torch.manual_seed(0)
    net = AttentionGANGenerator().eval()
    sd = randomised(net, 1)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        out, parts = net.forward_with_attention(x)
        ref_out, ref_masks, ref_content = ref_generator(sd, x)
    assert parts["attention"].shape == (2, 10, 1, SIZE, SIZE) and parts["content"].shape == (2, 9, 3, SIZE, SIZE)
    assert torch.allclose(parts["attention"].sum(dim=1), torch.ones(2, 1, SIZE, SIZE), atol=1e-5)
    assert torch.allclose(parts["attention"][:, :, 0], ref_masks, atol=1e-4)
    assert torch.allclose(parts["content"].reshape(2, 27, SIZE, SIZE), ref_content, atol=2e-4)
    assert torch.allclose(out, ref_out, atol=2e-4)
    # mask 10 keeps the input: forcing it to 1 gives the input back
    sd2 = dict(sd)
    sd2["deconv3_attention.bias"] = torch.tensor([-1e4] * 9 + [1e4])
    net.load_state_dict(sd2)
    with torch.no_grad():
        assert torch.allclose(net(x), x, atol=1e-6)


def test_patch_discriminator_matches_the_plain_patchgan():
    net = PatchDiscriminator()
    sd = randomised(net, 2)
    x = torch.randn(1, 3, 70, 70)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (1, 1, 6, 6)  # the 70x70 receptive field: one score for the whole 70x70 input at the centre
    assert torch.allclose(out, ref_patch_d(sd, x), atol=1e-5)


# ------------------------------------------------------------------------------- pool, schedule
def test_image_pool_replays_with_python_random():
    pool = ImagePool(3)
    images = [torch.full((1, 1, 2, 2), float(i)) for i in range(8)]
    random.seed(5)
    got = [float(pool.query(im)[0, 0, 0, 0]) for im in images]
    # replay: the first 3 are stored and returned; then 50/50 a stored one (swapped in) or the new one
    random.seed(5)
    stored, expected = [], []
    for i in range(8):
        if len(stored) < 3:
            stored.append(i)
            expected.append(i)
        elif random.uniform(0, 1) > 0.5:
            k = random.randint(0, 2)
            expected.append(stored[k])
            stored[k] = i
        else:
            expected.append(i)
    assert got == expected and got[:3] == [0, 1, 2] and got != list(range(8))
    assert ImagePool(0).query(images[4]) is images[4]


def test_linear_decay_of_the_official_scheduler():
    opt = build_options(True, model="attention_gan", niter=2, niter_decay=3)
    # epoch k uses 1 - max(0, k - niter) / (niter_decay + 1)
    assert [cyclegan_lr_factor(opt, k) for k in range(1, 6)] == [1.0, 1.0, 0.75, 0.5, 0.25]


# ------------------------------------------------------------------------------- data
def write_unaligned(root, n_a=3, n_b=2, size=(40, 30), splits=("train", "test")):
    rng = np.random.default_rng(0)
    for split in splits:
        for domain, n in (("A", n_a), ("B", n_b)):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
                    folder / f"{domain.lower()}{i}.jpg", quality=95)
    return root


def test_unaligned_sampling(tmp_path):
    import data

    root = write_unaligned(tmp_path / "u", n_a=3, n_b=5)
    opt = build_options(True, model="attention_gan", dataset_mode="unaligned", dataroot=str(root),
                        load_size=SIZE, crop_size=SIZE, batch_size=1)
    ds = data.create_dataset(opt)
    assert len(ds) == 5  # max(|A|, |B|)
    items = [ds[i] for i in range(5)]
    assert [os.path.basename(it["A_paths"]) for it in items] == ["a0.jpg", "a1.jpg", "a2.jpg", "a0.jpg", "a1.jpg"]
    assert items[0]["A"].shape == (3, SIZE, SIZE) and -1 <= float(items[0]["A"].min()) <= float(items[0]["A"].max()) <= 1
    b_train = {os.path.basename(ds[i]["B_paths"]) for i in range(5) for ds.epoch in range(4)}
    assert len(b_train) > 2  # drawn at random in training
    test_opt = build_options(False, model="attention_gan", dataset_mode="unaligned", dataroot=str(root))
    test_ds = data.create_dataset(test_opt)
    assert [os.path.basename(test_ds[i]["B_paths"]) for i in range(5)] == [f"b{i}.jpg" for i in range(5)]
    # test: PIL bicubic resize straight to load_size (aspect not kept), no flip, [-1, 1] as ToTensor+Normalize
    photo = Image.open(root / "testA" / "a1.jpg").convert("RGB").resize((256, 256), Image.BICUBIC)
    expected = (torch.from_numpy(np.asarray(photo, np.float32) / 255.0).permute(2, 0, 1) - 0.5) / 0.5
    assert torch.allclose(test_ds[1]["A"], expected, atol=1e-6)
    swapped = data.create_dataset(build_options(False, model="attention_gan", dataset_mode="unaligned",
                                                dataroot=str(root), direction="BtoA"))
    assert os.path.basename(swapped[0]["A_paths"]) == "b0.jpg"


def test_missing_and_empty_folders_are_user_errors(tmp_path, capsys):
    root = write_unaligned(tmp_path / "u")
    shutil.rmtree(root / "trainB")
    base = ["--model", "attention_gan", "--dataset_mode", "unaligned", "--dataroot", str(root), "--gpu_ids", "-1",
            "--checkpoints_dir", str(tmp_path / "ck")]
    assert train.cli(base) == 2
    assert "trainB" in capsys.readouterr().err
    (root / "trainB").mkdir()
    assert train.cli(base) == 2
    err = capsys.readouterr().err
    assert "trainB" in err and "no image files" in err
    assert not (tmp_path / "ck").exists()


# ------------------------------------------------------------------------------- official checkpoints
def official_folder(tmp_path, names=("G_A", "G_B", "D_A", "D_B")):
    run = tmp_path / "checkpoints" / "official"
    run.mkdir(parents=True)
    for seed, name in enumerate(names):
        net = AttentionGANGenerator() if name.startswith("G") else PatchDiscriminator()
        torch.save(randomised(net, 10 + seed), run / f"latest_net_{name}.pth")
    return run


def quantise(image):
    return ((image[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).astype(np.uint8)


def test_official_checkpoints_give_the_official_test_images(tmp_path):
    root = write_unaligned(tmp_path / "u", n_a=2, n_b=2, size=(50, 37))
    run = official_folder(tmp_path, ("G_A", "G_B"))
    args = ["--model", "attention_gan", "--dataset_mode", "unaligned", "--dataroot", str(root), "--gpu_ids", "-1",
            "--name", "official", "--checkpoints_dir", str(tmp_path / "checkpoints"), "--epoch", "latest",
            "--load_size", str(SIZE), "--crop_size", str(SIZE), "--results_dir", str(tmp_path / "res"),
            "--save_attention"]
    out = test_script.main(args)
    assert out["num_images"] == 2
    folder = tmp_path / "res" / "official" / "test_latest" / "images"
    for sub in ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"):
        assert sorted(os.listdir(folder / sub)) == ["a0.png", "a1.png"], sub
    assert sorted(os.listdir(folder / "attention_B")) == sorted(f"a0_{k}.png" for k in range(1, 11)) + sorted(
        f"a1_{k}.png" for k in range(1, 11))
    assert len(os.listdir(folder / "content_B")) == 18 and len(os.listdir(folder / "attention_A")) == 20
    sd_a = torch.load(run / "latest_net_G_A.pth", weights_only=True)
    photo = Image.open(root / "testA" / "a1.jpg").convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)
    x = ((torch.from_numpy(np.asarray(photo, np.float32) / 255.0) - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = quantise(ref_generator(sd_a, x)[0])
    got = np.asarray(Image.open(folder / "fake_B" / "a1.png"))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    page = (tmp_path / "res" / "official" / "test_latest" / "index.html").read_text()
    assert "attention_B_heatmap 10" in page and "content_B 9" in page


def test_single_generator_needs_only_g_a_and_test_a(tmp_path):
    root = write_unaligned(tmp_path / "u", n_a=2, n_b=1, splits=("test",))
    shutil.rmtree(root / "testB")
    official_folder(tmp_path, ("G_A",))
    out = test_script.main(["--model", "attention_gan", "--dataset_mode", "unaligned", "--dataroot", str(root),
                            "--gpu_ids", "-1", "--name", "official", "--checkpoints_dir", str(tmp_path / "checkpoints"),
                            "--load_size", str(SIZE), "--crop_size", str(SIZE), "--results_dir", str(tmp_path / "r"),
                            "--single_generator"])
    assert out["num_images"] == 2
    assert sorted(os.listdir(tmp_path / "r" / "official" / "test_latest" / "images")) == ["fake_B", "real_A"]


def _official_step(run, real_A, real_B, lr=0.0002):
    """One iteration of the official trainer, plainly: G step over G_A+G_B (LSGAN, cycle, identity), then
    the D step on the pool's fakes (the pool is still filling: the fakes themselves)."""
    files = {n: torch.load(run / f"latest_net_{n}.pth", weights_only=True) for n in ("G_A", "G_B", "D_A", "D_B")}
    sds = {n: {k: v.clone().requires_grad_(True) for k, v in sd.items()} for n, sd in files.items()}
    G = lambda n, x: ref_generator(sds[n], x)[0]  # noqa: E731
    D = lambda n, x: ref_patch_d(sds[n], x)  # noqa: E731
    opt_g = torch.optim.Adam(list(sds["G_A"].values()) + list(sds["G_B"].values()), lr=lr, betas=(0.5, 0.999),
                             foreach=False)
    opt_d = torch.optim.Adam(list(sds["D_A"].values()) + list(sds["D_B"].values()), lr=lr, betas=(0.5, 0.999),
                             foreach=False)
    fake_B, fake_A = G("G_A", real_A), G("G_B", real_B)
    rec_A, rec_B = G("G_B", fake_B), G("G_A", fake_A)
    mse = lambda p, t: ((p - t) ** 2).mean()  # noqa: E731
    losses = {"G_A": mse(D("D_A", fake_B), 1.0), "G_B": mse(D("D_B", fake_A), 1.0),
              "cycle_A": (rec_A - real_A).abs().mean() * 10, "cycle_B": (rec_B - real_B).abs().mean() * 10,
              "idt_A": (G("G_A", real_B) - real_B).abs().mean() * 10 * 0.5,
              "idt_B": (G("G_B", real_A) - real_A).abs().mean() * 10 * 0.5}
    opt_g.zero_grad()
    sum(losses.values()).backward()
    grads = {n: {k: v.grad.clone() for k, v in sds[n].items()} for n in ("G_A", "G_B")}
    opt_g.step()
    opt_d.zero_grad()
    fb, fa = fake_B.detach(), fake_A.detach()
    losses["D_A"] = (mse(D("D_A", real_B), 1.0) + mse(D("D_A", fb), 0.0)) * 0.5
    losses["D_B"] = (mse(D("D_B", real_A), 1.0) + mse(D("D_B", fa), 0.0)) * 0.5
    (losses["D_A"] + losses["D_B"]).backward()
    grads.update({n: {k: v.grad.clone() for k, v in sds[n].items()} for n in ("D_A", "D_B")})
    opt_d.step()
    weights = {n: {k: v.detach() for k, v in sd.items()} for n, sd in sds.items()}
    return weights, grads, {k: v.item() for k, v in losses.items()}


def test_fine_tuning_official_checkpoints_is_the_official_step(tmp_path):
    root = write_unaligned(tmp_path / "u", n_a=1, n_b=1, size=(SIZE, SIZE), splits=("train",))
    run = official_folder(tmp_path)
    original = tmp_path / "original"
    shutil.copytree(run, original)
    train.main(["--model", "attention_gan", "--dataset_mode", "unaligned", "--dataroot", str(root), "--gpu_ids", "-1",
                "--name", "official", "--checkpoints_dir", str(tmp_path / "checkpoints"), "--continue_train",
                "--serial_batches", "--no_flip", "--load_size", str(SIZE), "--crop_size", str(SIZE),
                "--batch_size", "1", "--niter", "1", "--niter_decay", "0", "--print_freq", "1", "--no_html"])
    load = lambda p: ((torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0)  # noqa: E731
                       - 0.5) / 0.5).permute(2, 0, 1)[None]
    real_A, real_B = load(root / "trainA" / "a0.jpg"), load(root / "trainB" / "b0.jpg")
    want, grads, losses = _official_step(original, real_A, real_B)
    records = [json.loads(line) for line in (run / "loss_log.jsonl").read_text().splitlines()]
    records = [r for r in records if r["kind"] == "loss"]
    assert len(records) == 1
    for name, value in losses.items():
        assert records[0][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    for name in ("G_A", "G_B", "D_A", "D_B"):
        got = torch.load(run / f"latest_net_{name}.pth", weights_only=True)
        start = torch.load(original / f"latest_net_{name}.pth", weights_only=True)
        same = total = 0
        # gradients that are 0 in exact arithmetic (conv biases before InstanceNorm) are float noise
        floor = 1e-5 * max(float(g.abs().max()) for g in grads[name].values())
        for key, w in want[name].items():
            step_got, step_want = got[key] - start[key], w - start[key]
            same += int(first_adam_step_agrees(step_got, step_want, grads[name][key], 0.0002, floor, (name, key)).sum())
            total += w.numel()
        assert same >= 0.98 * total, (name, same, total)
        assert not torch.equal(got["model.11.weight" if name.startswith("D") else "conv1.weight"],
                               start["model.11.weight" if name.startswith("D") else "conv1.weight"])


def test_resume_is_exact_with_the_image_pools(tmp_path):
    """A run stopped after epoch 1 and continued ends with the weights of an uninterrupted run: the
    pools (extra state) and Python's random state (their draws) are in the full-state checkpoint."""
    root = write_unaligned(tmp_path / "u", n_a=3, n_b=2, size=(32, 32), splits=("train",))

    def args(ck):
        return ["--model", "attention_gan", "--dataset_mode", "unaligned", "--dataroot", str(root), "--gpu_ids", "-1",
                "--name", "r", "--checkpoints_dir", str(ck), "--load_size", "32", "--crop_size", "32", "--ngf", "4",
                "--ndf", "4", "--pool_size", "2", "--niter", "1", "--niter_decay", "1", "--no_html"]

    train.main(args(tmp_path / "a"), stop_after_epoch=1)
    train.main(args(tmp_path / "a") + ["--continue_train"])
    train.main(args(tmp_path / "b"))
    for name in ("G_A", "G_B", "D_A", "D_B"):
        resumed = torch.load(tmp_path / "a" / "r" / f"latest_net_{name}.pth", weights_only=True)
        straight = torch.load(tmp_path / "b" / "r" / f"latest_net_{name}.pth", weights_only=True)
        for k in straight:
            assert torch.equal(resumed[k], straight[k]), (name, k)


def test_synthetic_unpaired_task_and_its_exact_score(tmp_path):
    """The two palettes share no colour, each domain's exact segmenter labels its real images exactly,
    and the score is 1 for a perfect translation and low for copying the input."""
    import data
    from data.synthetic_unpaired_dataset import TranslationScorer, to_domain_b

    opt = build_options(False, model="attention_gan", dataroot=str(tmp_path / "s"), synthetic_num_train=2,
                        synthetic_num_val=3)
    ds = data.create_dataset(opt)
    assert opt.dataset_mode == "synthetic_unpaired" and len(ds) == 3
    palette_a = {tuple(c) for c in np.asarray(Image.open(ds.A_paths[0])).reshape(-1, 3)}
    palette_b = {tuple(c) for c in np.asarray(Image.open(ds.B_paths[0])).reshape(-1, 3)}
    assert not palette_a & palette_b
    batch = {k: torch.stack([ds[i][k] for i in range(3)]) for k in ("A", "B", "A_label", "B_label")}
    # the true translation of the A scenes into palette B, and of the B scenes back into palette A
    true_b = torch.stack([torch.from_numpy(to_domain_b(np.asarray(Image.open(ds.A_paths[i]))).astype(np.float32)
                                           / 127.5 - 1).permute(2, 0, 1) for i in range(3)])
    scorer = TranslationScorer(opt)
    scorer.add({"fake_B": true_b, "fake_A": ds_images_a(ds, batch)}, batch)
    assert scorer.scores()["A_to_B_accuracy"] == 1.0 and scorer.scores()["B_to_A_accuracy"] == 1.0
    copy = TranslationScorer(opt)
    copy.add({"fake_B": batch["A"], "fake_A": batch["B"],
              "attention_B": torch.ones(3, 10, 1, 32, 32) / 10}, batch)
    scores = copy.scores()
    assert scores["A_to_B_accuracy"] < 0.5 and scores["background_mask"] == pytest.approx(0.1)


def ds_images_a(ds, batch):
    """Palette A renderings of the B scenes: the synthetic renderer applied to their labels."""
    from data.synthetic import render_image

    return torch.stack([torch.from_numpy(render_image(batch["B_label"][i, 0].numpy()).astype(np.float32)
                                         / 127.5 - 1).permute(2, 0, 1) for i in range(batch["B"].size(0))])
