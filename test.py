"""Synthesize images for a split with a trained generator and write a results page.

    python test.py --name NAME --dataset_mode MODE --dataroot DIR [--which_epoch latest]
                   [--how_many N] [--evaluate] [--save_attention]

Loads ``<checkpoints_dir>/<name>/<which_epoch>_net_G.pth`` (ours, or an official weight-only file;
strict key/shape check) and writes, under ``<results_dir>/<name>/test_<which_epoch>/``:

    index.html                                  one row per image
    images/input_label/<stem>.png               colourised label map
    images/synthesized_image/<stem>.png         generator output
    images/real_image/<stem>.png                the real photo at the generated size
    images/sam_attention/<stem>.png             (--save_attention) SAM map, grey: 0 black .. 1 white
    images/sam_heatmap/<stem>.png               (--save_attention) the same map as a heat map
    images/cam_weights/<stem>.json / .png       (--save_attention) CAM channel weights + bar chart
    metrics.json                                synthetic layout score and/or --evaluate metrics
    opt.json                                    the options of this test run

``<stem>`` is the source photo's file name without extension (Cityscapes: the ``*_leftImg8bit``
name), the names the metric scripts pair files by. A new run of the same epoch replaces these folders.

On the synthetic dataset the layout score (pixel accuracy / mIoU of the dataset's exact segmenter on
the generated images against the input labels) is printed, written to metrics.json and shown on the
page. ``--evaluate`` adds the dataset's protocol (see DEFAULT_EVAL_METRICS / DEFAULT_SEG_MODEL) through
util.metrics: FID etc. of synthesized_image/ against real_image/, and segmentation scores of the
generated images against the dataset's label files; weight files come from the torch hub cache.
Testing is one process on one device (``--gpu_ids``); no torchrun needed.
"""
import contextlib
import json
import logging
import os
import shutil
import sys

import torch
from tqdm import tqdm

import data
import models
from options.test_options import TestOptions
from util import checkpoint, util
from util.cpu import apply_cpu_settings
from util.html import HTML, write_text_atomic
from util.layout_score import LayoutScorer  # noqa: F401 - re-exported (shared with train.py)

logger = logging.getLogger(__name__)

IMAGE_KINDS = ("input_label", "synthesized_image", "real_image")
ATTENTION_KINDS = ("sam_attention", "sam_heatmap", "cam_weights")


def results_dir(opt):
    """``<results_dir>/<name>/test_<which_epoch>``."""
    return os.path.join(opt.results_dir, opt.name, f"test_{opt.which_epoch}")


def source_stem(path):
    """File name of the source image without its extension."""
    return os.path.splitext(os.path.basename(path))[0]


def load_generator(model, opt):
    """Load G (and E with --use_vae) of ``opt.which_epoch``; returns {net name: file}."""
    required = ("G", "E") if opt.use_vae else ("G",)
    if getattr(opt, "use_ema", False):
        # The EMA generator of --ema_decay: same network, its own file (BatchNorm stats re-estimated).
        path = checkpoint.weight_path(opt, opt.which_epoch, "G_ema")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--use_ema: {path} not found; it is written by train.py --ema_decay")
        checkpoint.load_state_dict_checked(checkpoint.unwrap(model.netG), checkpoint.safe_torch_load(path), path)
        required = tuple(n for n in required if n != "G")
        loaded = {"G": path}
        if required:
            loaded.update(checkpoint.load_network_weights(model, opt, opt.which_epoch, names=required,
                                                          required=required))
    else:
        loaded = checkpoint.load_network_weights(model, opt, opt.which_epoch, names=required, required=required)
    for name, path in loaded.items():
        logger.info("net%s loaded from %s", name, path)
    return loaded


def inference_autocast(opt):
    """Autocast context for --amp bf16|fp16 (fp16 only on CUDA); a no-op context for --amp none."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(opt.amp)
    if dtype is None:
        return contextlib.nullcontext()
    if dtype is torch.float16 and opt.device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 on CPU")
    return torch.autocast(device_type=opt.device.type, dtype=dtype)


def attention_maps(model, batch, opt):
    """Run G with its attention maps: (fake [B,3,H,W], {'sam': [B,1,H,W], 'cam': [B,C]} or subset)."""
    net_g = checkpoint.unwrap(model.netG)
    if not hasattr(net_g, "forward_with_attention"):
        raise ValueError(
            f"--save_attention needs a generator with attention maps (--netG dagan); "
            f"{type(net_g).__name__} (--netG {opt.netG}) has none"
        )
    input_semantics, _, class_ids = model.preprocess_input_with_class_ids(batch)
    z = None
    if opt.use_vae:
        z, _, _ = model(batch, mode="encode")
    fake, maps = net_g.forward_with_attention(input_semantics, z, class_ids=class_ids)
    return fake, {k: v for k, v in maps.items() if v is not None}


def save_attention_outputs(maps, index, stem, web_dir):
    """Write the SAM map (grey + heat map) and CAM weights (JSON + bar chart) of batch item ``index``.

    Returns {column name: relative image path} for the page.
    """
    images = {}
    if "sam" in maps:
        sam = maps["sam"][index].detach().float().cpu()
        grey = (sam.clamp(0, 1)[0] * 255).round().to(torch.uint8).numpy()
        rel = os.path.join("images", "sam_attention", stem + ".png")
        util.save_image(grey, os.path.join(web_dir, rel))
        images["sam_attention"] = rel
        rel_heat = os.path.join("images", "sam_heatmap", stem + ".png")
        util.save_image(util.attention_heatmap(sam), os.path.join(web_dir, rel_heat))
        images["sam_heatmap"] = rel_heat
    if "cam" in maps:
        cam = maps["cam"][index].detach().float().cpu().reshape(-1)
        json_path = os.path.join(web_dir, "images", "cam_weights", stem + ".json")
        write_text_atomic(json_path, json.dumps({"stem": stem, "cam_channel_weights": cam.tolist()}) + "\n")
        rel = os.path.join("images", "cam_weights", stem + ".png")
        util.save_image(util.bar_chart(cam), os.path.join(web_dir, rel))
        images["cam_weights"] = rel
    return images


# --evaluate protocol per dataset (the papers'): distribution metrics on every dataset, the paired
# LPIPS / FRD where DAGAN reports them, segmentation scores with the paper's segmenter where there is
# one. The synthetic dataset is scored for layout by its exact segmenter in any case.
DEFAULT_EVAL_METRICS = {
    "cityscapes": "fid",
    "ade20k": "fid",
    "coco": "fid",
    "facades": "fid,lpips,frd",
    "celebamask_hq": "fid,lpips,frd",
    "deepfashion": "fid,lpips,frd",
}
DEFAULT_SEG_MODEL = {"cityscapes": "drn", "ade20k": "upernet", "coco": "deeplab"}
FID_DIMS = 2048  # the standard Inception pool3 features


class Evaluation:
    """--evaluate: FID etc. between images/real_image and images/synthesized_image (paired by stem)
    and segmentation scores of the synthesized images against the dataset's label maps.

    Built before generation so that a missing weight file (Inception, LPIPS/FRD backbones, segmenter)
    stops the run at once, naming the file, instead of after all images were generated.
    Optional settings are read from the options when present: eval_metrics ('fid,kid,...'),
    inception_weights, lpips_weights, frd_weights, fid_dims, seg_model, segmenter_weights,
    seg_size ('WxH').
    ``run(web_dir, label_paths) -> dict`` (floats; segmentation scores under 'segmentation').
    """

    def __init__(self, opt):
        from util.metrics import evaluation
        from util.metrics.fid import INCEPTION_WEIGHTS_FILE
        from util.metrics.perceptual import LPIPS_BACKBONE_FILES, RESNET50_FILE
        from util.metrics.weights import resolve_weights

        self.opt = opt
        self.evaluation = evaluation
        self.device = str(opt.device)
        requested = getattr(opt, "eval_metrics", None)  # '' = no image metrics (segmentation only)
        if requested is None:
            requested = DEFAULT_EVAL_METRICS.get(opt.dataset_mode, "fid")
        self.metrics = evaluation.parse_metrics(requested)
        self.inception_weights = getattr(opt, "inception_weights", None)
        self.lpips_weights = getattr(opt, "lpips_weights", None)
        self.frd_weights = getattr(opt, "frd_weights", None)
        self.fid_dims = getattr(opt, "fid_dims", None) or FID_DIMS
        if "fid" in self.metrics or "kid" in self.metrics:
            resolve_weights(INCEPTION_WEIGHTS_FILE, self.inception_weights, "FID Inception", "--inception_weights")
        if "lpips" in self.metrics:
            resolve_weights(LPIPS_BACKBONE_FILES["alex"], self.lpips_weights, "LPIPS alex backbone")
        if "frd" in self.metrics:
            resolve_weights(RESNET50_FILE, self.frd_weights, "FRD ResNet-50", "--frd_weights")
        self.seg_model = getattr(opt, "seg_model", None) or DEFAULT_SEG_MODEL.get(opt.dataset_mode)
        self.seg_size = getattr(opt, "seg_size", None)
        self.segmenter = self.num_classes = None
        if self.seg_model is not None:
            self.segmenter, self.num_classes = evaluation.build_named_segmenter(
                self.seg_model, getattr(opt, "segmenter_weights", None), self.device)

    def run(self, web_dir, label_paths):
        real_dir = os.path.join(web_dir, "images", "real_image")
        fake_dir = os.path.join(web_dir, "images", "synthesized_image")
        results = {}
        if self.metrics:
            results.update(self.evaluation.evaluate_folders(
                real_dir, fake_dir, self.metrics, inception_weights=self.inception_weights,
                lpips_weights=self.lpips_weights, frd_weights=self.frd_weights, device=self.device,
                fid_dims=self.fid_dims))
        if self.segmenter is not None:
            # The label maps as the dataset ships them, paired with the generated images by stem.
            label_dir = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in label_paths])
            seg = self.evaluation.segmentation_scores(
                fake_dir, label_dir, self.seg_model, segmenter=self.segmenter, num_classes=self.num_classes,
                eval_size=self.seg_size, device=self.device)
            seg.pop("per_class_iou", None)
            seg["seg_model"] = self.seg_model
            results["segmentation"] = seg
        return results


def clear_previous_results(web_dir):
    """Remove the image folders and metrics a previous test run of this epoch wrote, so the page,
    metrics and any later evaluate.py run of these folders see this run's images only."""
    for kind in IMAGE_KINDS + ATTENTION_KINDS:
        folder = os.path.join(web_dir, "images", kind)
        if os.path.isdir(folder):
            logger.info("replacing the previous results in %s", folder)
            shutil.rmtree(folder)
    stale_metrics = os.path.join(web_dir, "metrics.json")
    if os.path.isfile(stale_metrics):
        os.remove(stale_metrics)


def write_page(opt, web_dir, rows, metric_tables, loaded):
    page = HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.which_epoch}")
    page.add_header(f"{opt.name}: {opt.dataset_mode} {opt.phase} split, epoch {opt.which_epoch}")
    page.add_text(
        f"{len(rows)} images. Generator: {opt.netG}, weights from "
        + ", ".join(f"net{k}: {os.path.basename(v)}" for k, v in loaded.items())
    )
    for title, table in metric_tables:
        page.add_header(title)
        page.add_table(table, header=["metric", "value"])
    page.add_header("Images")
    for stem, images in rows:
        page.add_header(stem)
        names = list(images)
        page.add_images([images[n] for n in names], names, None, width=256)
    return page.save()


def main(argv=None):
    """Run the test; returns {'web_dir', 'index', 'num_images', 'metrics'}."""
    opt = TestOptions().parse(argv)
    logging.basicConfig(level=logging.DEBUG if opt.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.manual_seed(opt.seed)
    apply_cpu_settings(opt)

    dataloader = data.create_dataloader(opt)
    model = models.create_model(opt)
    loaded = load_generator(model, opt)
    model.eval()

    evaluation = Evaluation(opt) if opt.evaluate else None
    web_dir = results_dir(opt)
    clear_previous_results(web_dir)
    os.makedirs(web_dir, exist_ok=True)
    write_text_atomic(os.path.join(web_dir, "opt.json"),
                      json.dumps(checkpoint.opt_to_plain(opt), indent=2, sort_keys=True) + "\n")

    layout = LayoutScorer(opt) if opt.dataset_mode == "synthetic" else None
    n_label = opt.label_nc + (1 if opt.contain_dontcare_label else 0)
    total = min(len(dataloader.dataset), opt.how_many)
    rows = []
    label_paths = []
    seen = {}
    with torch.no_grad(), tqdm(total=total, desc="test", unit="img", file=sys.stderr) as bar:
        for batch in dataloader:
            if len(rows) >= total:
                break
            with inference_autocast(opt):
                if opt.save_attention:
                    fake, maps = attention_maps(model, batch, opt)
                else:
                    fake, maps = model(batch, mode="inference"), {}
            fake = fake.float()
            start = len(rows)
            for i, path in enumerate(batch["path"]):
                if len(rows) >= total:
                    break
                stem = source_stem(path)
                if stem in seen:
                    raise ValueError(
                        f"two source images share the stem {stem!r} ({seen[stem]} and {path}); result "
                        f"files are named by stem, so they would overwrite each other"
                    )
                seen[stem] = path
                label_paths.append(batch["label_path"][i])
                arrays = {
                    "input_label": util.tensor2label(batch["label"][i], n_label, opt.dataset_mode),
                    "synthesized_image": util.tensor2im(fake[i]),
                    "real_image": util.tensor2im(batch["image"][i]),
                }
                images = {}
                for kind in IMAGE_KINDS:
                    rel = os.path.join("images", kind, stem + ".png")
                    util.save_image(arrays[kind], os.path.join(web_dir, rel))
                    images[kind] = rel
                if maps:
                    images.update(save_attention_outputs(maps, i, stem, web_dir))
                rows.append((stem, images))
                bar.update(1)
            if layout is not None:
                kept = len(rows) - start
                layout.update(fake[:kept], batch["label"][:kept])

    metrics = {}
    metric_tables = []
    if layout is not None:
        metrics["layout"] = layout.scores()
        metric_tables.append(("Layout faithfulness (synthetic segmenter vs input labels)",
                              [[k, v] for k, v in metrics["layout"].items()]))
        layout_scores = metrics["layout"]
        print(f"layout score on {len(rows)} {opt.phase} images: pixel accuracy "
              f"{layout_scores['pixel_accuracy']:.4f}, mIoU {layout_scores['mIoU']:.4f}")
    if evaluation is not None:
        metrics["evaluate"] = evaluation.run(web_dir, label_paths)
        metric_tables.append(("Evaluation (--evaluate)", _flatten(metrics["evaluate"])))
        for name, value in _flatten(metrics["evaluate"]):
            print(f"{name:>24}: {value}")
    if metrics:
        write_text_atomic(os.path.join(web_dir, "metrics.json"), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    index = write_page(opt, web_dir, rows, metric_tables, loaded)
    print(f"{len(rows)} images written; results page: {index}")
    return {"web_dir": web_dir, "index": index, "num_images": len(rows), "metrics": metrics}


def _flatten(d, prefix=""):
    """Nested metric dict -> [[dotted name, value], ...] for a two-column table."""
    rows = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append([name, value])
    return rows


if __name__ == "__main__":
    main()
