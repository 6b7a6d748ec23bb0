"""test.py end to end on the synthetic dataset with a tiny generator (ngf 8, crop 64).

The checkpoint is a freshly built G's state dict with perturbed weights, saved as the official
weight-only file ``latest_net_G.pth``; the outputs must be that G's images, under the source stems.
"""
import json
import os
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_py
from util.html import url_to_path

# Default norm_G (sync-BN, plain BatchNorm on CPU, running statistics in eval mode): instance norm
# cannot normalise the 1x1 latent grid of a 32-pixel crop.
TINY = ["--ngf", "8", "--crop_size", "32", "--gpu_ids", "-1", "--nThreads", "0",
        "--synthetic_num_train", "2", "--synthetic_num_val", "4"]


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href")]


def page_refs(index):
    parser = _Refs()
    with open(index, encoding="utf-8") as f:
        parser.feed(f.read())
    return parser.refs


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("synthetic"))


def base_args(tmp_path, synthetic_root, name="tiny", extra=()):
    return ["--name", name, "--dataset_mode", "synthetic", "--dataroot", synthetic_root,
            "--checkpoints_dir", str(tmp_path / "checkpoints"), "--results_dir", str(tmp_path / "results"),
            *TINY, *extra]


def build_model(args):
    import models
    from options.test_options import TestOptions

    opt = TestOptions().parse(args)
    model = models.create_model(opt)
    model.eval()
    return opt, model


def save_perturbed_generator(args, path, seed=1):
    """Build G from the options, move its weights away from the seeded init, save a plain state dict."""
    opt, model = build_model(args)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.netG.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({k: v.clone() for k, v in model.netG.state_dict().items()}, path)
    return opt, model


def expected_stems(opt, n):
    import data

    loader = data.create_dataloader(opt)
    stems = []
    for batch in loader:
        stems += [os.path.splitext(os.path.basename(p))[0] for p in batch["path"]]
        if len(stems) >= n:
            break
    return stems[:n], loader


def test_output_layout_names_and_loaded_weights(tmp_path, synthetic_root):
    args = base_args(tmp_path, synthetic_root, extra=["--how_many", "3"])
    ckpt = tmp_path / "checkpoints" / "tiny" / "latest_net_G.pth"
    opt, model = save_perturbed_generator(args, str(ckpt))

    result = test_py.main(args)

    web_dir = tmp_path / "results" / "tiny" / "test_latest"
    assert result["web_dir"] == str(web_dir) and result["num_images"] == 3
    stems, loader = expected_stems(opt, 3)
    for kind in ("input_label", "synthesized_image", "real_image"):
        files = sorted(os.listdir(web_dir / "images" / kind))
        assert files == sorted(s + ".png" for s in stems), kind
    # Every image the page references exists, and every result image is on the page.
    refs = page_refs(web_dir / "index.html")
    targets = {os.path.normpath(url_to_path(r, str(web_dir))) for r in refs}
    assert targets and all(os.path.isfile(t) for t in targets)
    for kind in ("input_label", "synthesized_image", "real_image"):
        for s in stems:
            assert os.path.normpath(str(web_dir / "images" / kind / (s + ".png"))) in targets
    # The synthesized images are those of the saved (perturbed) generator, not of a fresh init.
    batch = next(iter(loader))
    with torch.no_grad():
        fake = model.inference(batch)["synthesized_image"][0]
    expected = ((fake.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    saved = np.asarray(Image.open(web_dir / "images" / "synthesized_image" / (stems[0] + ".png")), dtype=np.float64)
    assert np.abs(saved - expected).max() <= 1.0
    # Real image and label are the dataset's.
    real = ((batch["image"][0] + 1) * 127.5).permute(1, 2, 0).numpy()
    saved_real = np.asarray(Image.open(web_dir / "images" / "real_image" / (stems[0] + ".png")), dtype=np.float64)
    assert np.abs(saved_real - real).max() <= 1.0
    # Layout score on the synthetic dataset: printed, in metrics.json and on the page.
    metrics = json.loads((web_dir / "metrics.json").read_text())
    layout = metrics["layout"]
    assert set(layout) >= {"pixel_accuracy", "mIoU"}
    assert 0.0 <= layout["pixel_accuracy"] <= 1.0 and 0.0 <= layout["mIoU"] <= 1.0
    assert "pixel_accuracy" in (web_dir / "index.html").read_text()


def test_layout_scorer_is_exact_on_real_images(tmp_path, synthetic_root):
    """The scorer compares segmenter output with the input labels: real images score 100%."""
    # At the native 64 pixels (no bicubic resize blurring the class borders).
    args = base_args(tmp_path, synthetic_root, extra=["--how_many", "2", "--crop_size", "64"])
    import data
    from options.test_options import TestOptions

    opt = TestOptions().parse(args)
    scorer = test_py.LayoutScorer(opt)
    batch = next(iter(data.create_dataloader(opt)))
    scorer.update(batch["image"], batch["label"])
    assert scorer.scores()["pixel_accuracy"] > 0.99
    wrong = torch.roll(batch["label"], shifts=7, dims=3)
    scorer2 = test_py.LayoutScorer(opt)
    scorer2.update(batch["image"], wrong)
    assert scorer2.scores()["pixel_accuracy"] < scorer.scores()["pixel_accuracy"]


def test_official_layout_key_names(tmp_path, synthetic_root):
    """Our DAGAN G has exactly the key names of the released checkpoints (shapes depend on sizes)."""
    layout = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoint_layout", "dagan_netG_cityscapes.txt")
    if not os.path.isfile(layout):
        pytest.skip("checkpoint layout file not available")
    with open(layout) as f:
        official = {line.split()[0] for line in f if line.strip()}
    _, model = build_model(base_args(tmp_path, synthetic_root))
    assert set(model.netG.state_dict()) == official


def test_weight_file_errors_name_the_file(tmp_path, synthetic_root):
    args = base_args(tmp_path, synthetic_root, name="broken", extra=["--how_many", "1"])
    # Checked before anything is built: the run folder does not exist.
    with pytest.raises(FileNotFoundError, match=r"no run folder .*broken.*latest_net_<X>\.pth"):
        test_py.main(args)
    ckpt = tmp_path / "checkpoints" / "broken" / "latest_net_G.pth"
    _, model = build_model(args)
    sd = model.netG.state_dict()
    sd.pop(next(k for k in sd if k.startswith("spatialAtt")))
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, ckpt)
    with pytest.raises(RuntimeError, match="latest_net_G.pth.*missing keys: spatialAtt"):
        test_py.main(args)


def test_module_prefixed_weights_and_numbered_epoch(tmp_path, synthetic_root):
    """A file saved from a DDP/DataParallel-wrapped G ('module.' keys) loads; --which_epoch picks it."""
    args = base_args(tmp_path, synthetic_root, name="ep", extra=["--how_many", "1", "--which_epoch", "7"])
    _, model = build_model(args)
    sd = {"module." + k: v for k, v in model.netG.state_dict().items()}
    os.makedirs(tmp_path / "checkpoints" / "ep")
    torch.save(sd, tmp_path / "checkpoints" / "ep" / "7_net_G.pth")
    result = test_py.main(args)
    assert result["web_dir"].endswith(os.path.join("ep", "test_7")) and result["num_images"] == 1


def test_save_attention(tmp_path, synthetic_root):
    args = base_args(tmp_path, synthetic_root, name="att", extra=["--how_many", "2", "--save_attention"])
    ckpt = tmp_path / "checkpoints" / "att" / "latest_net_G.pth"
    opt, model = save_perturbed_generator(args, str(ckpt), seed=3)
    result = test_py.main(args)
    web_dir = result["web_dir"]
    stems, loader = expected_stems(opt, 2)
    batch = next(iter(loader))
    with torch.no_grad():
        semantics, _ = model.preprocess_input(batch)
        fake, maps = model.netG.forward_with_attention(semantics)
    assert set(maps) == {"sam", "cam"}
    saved = np.asarray(Image.open(os.path.join(web_dir, "images", "synthesized_image", stems[0] + ".png")),
                       dtype=np.float64)
    assert np.abs(saved - ((fake[0].clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()).max() <= 1.0
    sam = np.asarray(Image.open(os.path.join(web_dir, "images", "sam_attention", stems[0] + ".png")), dtype=np.float64)
    assert sam.shape == tuple(maps["sam"].shape[-2:])
    assert np.abs(sam - maps["sam"][0, 0].numpy() * 255).max() <= 1.0
    with open(os.path.join(web_dir, "images", "cam_weights", stems[0] + ".json")) as f:
        cam = json.load(f)["cam_weights"]
    assert len(cam) == 8 and np.allclose(cam, maps["cam"][0].numpy(), atol=1e-6)
    for s in stems:
        for rel in (("sam_attention_heatmap", s + ".png"), ("cam_weights", s + ".png")):
            assert os.path.isfile(os.path.join(web_dir, "images", *rel))
    refs = page_refs(result["index"])
    targets = {os.path.normpath(url_to_path(r, web_dir)) for r in refs}
    assert all(os.path.isfile(t) for t in targets)
    assert os.path.normpath(os.path.join(web_dir, "images", "sam_attention", stems[1] + ".png")) in targets
    assert os.path.normpath(os.path.join(web_dir, "images", "cam_weights", stems[1] + ".png")) in targets


def test_save_attention_branch_disabled_and_spade(tmp_path, synthetic_root):
    args = base_args(tmp_path, synthetic_root, name="nosam",
                     extra=["--how_many", "1", "--save_attention", "--no_sam"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "nosam" / "latest_net_G.pth"))
    web_dir = test_py.main(args)["web_dir"]
    assert not os.path.exists(os.path.join(web_dir, "images", "sam_attention"))
    assert len(os.listdir(os.path.join(web_dir, "images", "cam_weights"))) == 2  # .json + .png

    args = base_args(tmp_path, synthetic_root, name="spade", extra=["--how_many", "1", "--save_attention",
                                                                      "--netG", "spade"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "spade" / "latest_net_G.pth"))
    with pytest.raises(ValueError, match="--save_attention needs a model with attention"):
        test_py.main(args)


def test_command_line(tmp_path, synthetic_root):
    """`python test.py ...` as a user runs it: exit code 0, the score printed, the page written."""
    import subprocess
    import sys

    args = base_args(tmp_path, synthetic_root, name="cli", extra=["--how_many", "1"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "cli" / "latest_net_G.pth"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(root, "test.py"), *args], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pixel accuracy" in proc.stdout
    assert (tmp_path / "results" / "cli" / "test_latest" / "index.html").is_file()


def test_use_vae_needs_and_loads_encoder(tmp_path, synthetic_root):
    args = base_args(tmp_path, synthetic_root, name="vae", extra=["--how_many", "1", "--use_vae",
                                                                    "--save_attention"])
    _, model = save_perturbed_generator(args, str(tmp_path / "checkpoints" / "vae" / "latest_net_G.pth"))
    with pytest.raises(FileNotFoundError, match="latest_net_E.pth"):
        test_py.main(args)
    torch.save(model.netE.state_dict(), tmp_path / "checkpoints" / "vae" / "latest_net_E.pth")
    result = test_py.main(args)
    assert result["num_images"] == 1
    assert len(os.listdir(os.path.join(result["web_dir"], "images", "sam_attention"))) == 1


def test_evaluate_writes_metrics_and_table(tmp_path, synthetic_root, random_inception, monkeypatch):
    from util.metrics import evaluation as ev_mod

    # 64-d Inception features: the same code path, without the 2048x2048 matrix square root.
    monkeypatch.setattr(test_py, "FID_DIMS", 64)
    calls = []
    real_evaluate_folders = ev_mod.evaluate_folders

    def spy(real_dir, fake_dir, metrics, **kwargs):
        calls.append((real_dir, fake_dir, list(metrics), kwargs))
        return real_evaluate_folders(real_dir, fake_dir, metrics, **kwargs)

    monkeypatch.setattr(ev_mod, "evaluate_folders", spy)
    args = base_args(tmp_path, synthetic_root, name="ev", extra=["--how_many", "2", "--evaluate"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "ev" / "latest_net_G.pth"))
    result = test_py.main(args)
    web_dir = result["web_dir"]
    # Synthesized images against the real images of the split (not a folder against itself).
    ((real_dir, fake_dir, metrics_requested, kwargs),) = calls
    assert real_dir == os.path.join(web_dir, "images", "real_image")
    assert fake_dir == os.path.join(web_dir, "images", "synthesized_image")
    assert metrics_requested == ["fid"] and kwargs["fid_dims"] == 64
    with open(os.path.join(web_dir, "metrics.json")) as f:
        metrics = json.load(f)
    ev = metrics["evaluate"]
    assert ev["num_images"] == 2 and np.isfinite(ev["fid"]) and ev["fid"] > 0
    with open(result["index"], encoding="utf-8") as f:
        page = f.read()
    assert "Evaluation (--evaluate)" in page and f"{ev['fid']:.4f}" in page
    assert "layout" in metrics  # the synthetic layout score is kept alongside


def test_evaluate_fails_fast_without_weights(tmp_path, synthetic_root, tmp_torch_home):
    args = base_args(tmp_path, synthetic_root, name="evmiss", extra=["--how_many", "1", "--evaluate"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "evmiss" / "latest_net_G.pth"))
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        test_py.main(args)
    assert not (tmp_path / "results" / "evmiss" / "test_latest" / "images" / "synthesized_image").exists()


def test_evaluate_segmentation_matches_layout_score(tmp_path, synthetic_root):
    """Segmentation through util.metrics (label maps from the dataset files) agrees with the in-loop
    layout score on the same generated images."""
    from options.test_options import TestOptions

    args = base_args(tmp_path, synthetic_root, name="seg", extra=["--how_many", "3"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "seg" / "latest_net_G.pth"))
    result = test_py.main(args)
    opt = TestOptions().parse(args)
    # The settings test.py reads when the options declare them: segmentation only, synthetic segmenter.
    opt.seg_model, opt.eval_metrics = "synthetic", ""
    evaluation = test_py.Evaluation(opt)
    _, loader = expected_stems(opt, 3)
    label_paths = []
    for batch in loader:
        label_paths += batch["label_path"]
    seg = evaluation.run(result["web_dir"], label_paths[:3], ("real_image", "synthesized_image"))["segmentation"]
    assert seg["num_images"] == 3
    assert abs(seg["pixel_accuracy"] - result["metrics"]["layout"]["pixel_accuracy"]) < 0.02


def test_rerun_replaces_previous_results(tmp_path, synthetic_root):
    """A second, smaller run of the same epoch leaves no stale images (evaluation reads the folders)."""
    args = base_args(tmp_path, synthetic_root, name="rerun", extra=["--how_many", "2"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "rerun" / "latest_net_G.pth"))
    first = test_py.main(args)
    assert len(os.listdir(os.path.join(first["web_dir"], "images", "synthesized_image"))) == 2
    second = test_py.main(args[:-1] + ["1"])
    assert second["web_dir"] == first["web_dir"]
    for kind in ("input_label", "synthesized_image", "real_image"):
        assert len(os.listdir(os.path.join(second["web_dir"], "images", kind))) == 1


def _write_tiny_cityscapes(root, frames, size=(64, 32)):
    """gtFine/val/<city>/*_gtFine_{labelIds,instanceIds}.png + leftImg8bit/val/<city>/*_leftImg8bit.png."""
    w, h = size
    rng = np.random.RandomState(0)
    for city, seq, frame in frames:
        stem = f"{city}_{seq:06d}_{frame:06d}"
        gt = root / "gtFine" / "val" / city
        left = root / "leftImg8bit" / "val" / city
        gt.mkdir(parents=True, exist_ok=True)
        left.mkdir(parents=True, exist_ok=True)
        label = np.full((h, w), 7, np.uint8)  # road
        label[:, w // 2:] = 26  # car
        inst = label.astype(np.uint16)
        inst[:, w // 2:] = 26001
        Image.fromarray(label).save(gt / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(inst).save(gt / f"{stem}_gtFine_instanceIds.png")
        Image.fromarray(rng.randint(0, 256, (h, w, 3)).astype(np.uint8)).save(left / f"{stem}_leftImg8bit.png")


def test_cityscapes_layout_stems_and_official_colours(tmp_path):
    """Cityscapes: result files are named by the leftImg8bit stem; labels use the official colours."""
    root = tmp_path / "cityscapes"
    _write_tiny_cityscapes(root, [("frankfurt", 0, 294), ("lindau", 0, 19)])
    args = ["--name", "cs", "--dataset_mode", "cityscapes", "--dataroot", str(root),
            "--checkpoints_dir", str(tmp_path / "checkpoints"), "--results_dir", str(tmp_path / "results"),
            "--ngf", "8", "--crop_size", "64", "--num_upsampling_layers", "normal", "--gpu_ids", "-1"]
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "cs" / "latest_net_G.pth"))
    result = test_py.main(args)
    web_dir = result["web_dir"]
    stems = ["frankfurt_000000_000294_leftImg8bit", "lindau_000000_000019_leftImg8bit"]
    for kind in ("input_label", "synthesized_image", "real_image"):
        assert sorted(os.listdir(os.path.join(web_dir, "images", kind))) == [s + ".png" for s in stems]
    label_rgb = np.asarray(Image.open(os.path.join(web_dir, "images", "input_label", stems[0] + ".png")))
    assert label_rgb.shape == (32, 64, 3)  # 2:1 aspect
    assert label_rgb[5, 5].tolist() == [128, 64, 128]  # road
    assert label_rgb[5, 60].tolist() == [0, 0, 142]  # car
    assert "layout" not in result["metrics"]


def test_amp_bf16_inference_close_to_fp32(tmp_path, synthetic_root):
    args = base_args(tmp_path, synthetic_root, name="amp", extra=["--how_many", "1"])
    save_perturbed_generator(args, str(tmp_path / "checkpoints" / "amp" / "latest_net_G.pth"))
    web_dir = test_py.main(args)["web_dir"]
    (name,) = os.listdir(os.path.join(web_dir, "images", "synthesized_image"))
    fp32 = np.asarray(Image.open(os.path.join(web_dir, "images", "synthesized_image", name)), dtype=np.float64)
    test_py.main(args + ["--amp", "bf16"])
    bf16 = np.asarray(Image.open(os.path.join(web_dir, "images", "synthesized_image", name)), dtype=np.float64)
    # autocast took effect (some pixels change) and bf16 keeps ~3 significant digits
    assert 0 < np.abs(bf16 - fp32).mean() < 8.0
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        test_py.main(args + ["--amp", "fp16"])
