"""Synthesize images for a split with a trained generator and write a results page.

    python test.py --name NAME --dataset_mode MODE --dataroot DIR [--which_epoch latest]
                   [--how_many N] [--evaluate] [--save_attention]

Loads the networks the model uses for inference, ``<checkpoints_dir>/<name>/<which_epoch>_net_<X>.pth``
(ours, or an official weight-only file; strict key/shape check; SPADE/DAGAN: ``G``, plus ``E`` with
--use_vae), runs ``model.inference`` on every test sample and writes, under
``<results_dir>/<name>/test_<which_epoch>/``, one folder per visual the model returns
(models/base_model.py), e.g. for SPADE/DAGAN:

    index.html                                  one row per image
    images/input_label/<stem>.png               colourised label map
    images/synthesized_image/<stem>.png         generator output
    images/real_image/<stem>.png                the real photo at the generated size
    images/sam_attention/<stem>.png             (--save_attention) SAM map, grey: 0 black .. 1 white
    images/sam_attention_heatmap/<stem>.png     (--save_attention) the same map as a heat map
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
from util.cpu import adapt_threads, apply_cpu_settings
from util.errors import run_cli
from util.inference import check_checkpoint, inference_autocast, load_networks  # noqa: F401 - re-exported
from util.html import HTML
from util.util import write_text_atomic
from util.layout_score import LayoutScorer, exact_scorer  # noqa: F401 - LayoutScorer re-exported
from util.metrics.segmentation import format_scores
from util.preflight import check_data_folders, check_model_files

logger = logging.getLogger(__name__)

def results_dir(opt):
    """``<results_dir>/<name>/test_<which_epoch>``."""
    return os.path.join(opt.results_dir, opt.name, f"test_{opt.which_epoch}")


def source_stem(path):
    """File name of the source image without its extension."""
    return os.path.splitext(os.path.basename(path))[0]


def save_visuals(visuals, index, stem, web_dir, opt, rounding="round"):
    """Write every visual of batch item ``index`` as ``images/<picture>/<stem>.png`` (vectors also as
    ``.json``; images quantised by ``rounding``, the model's ``image_rounding``); returns {picture
    name: relative path} for the page."""
    images = {}
    for name, batch in visuals.items():
        item = batch[index]
        if item.dim() == 4:  # a stack of K maps or images [K,C,H,W]: images/<picture>/<stem>_<k>.png, k from 1
            for k in range(item.size(0)):
                for picture, array in util.visual_arrays(name, item[k], opt, rounding).items():
                    rel = os.path.join("images", picture, f"{stem}_{k + 1}.png")
                    util.save_image(array, os.path.join(web_dir, rel))
                    images[f"{picture} {k + 1}"] = rel
            continue
        for picture, array in util.visual_arrays(name, item, opt, rounding).items():
            rel = os.path.join("images", picture, stem + ".png")
            util.save_image(array, os.path.join(web_dir, rel))
            images[picture] = rel
        if item.dim() == 1:
            write_text_atomic(os.path.join(web_dir, "images", name, stem + ".json"),
                              json.dumps({"stem": stem, name: item.detach().float().cpu().tolist()}) + "\n")
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
    """--evaluate: FID etc. between the real and the generated images of ``model.evaluation_pair`` (FID/KID
    over the two sets, LPIPS/FRD paired by stem)
    and segmentation scores of the synthesized images against the dataset's label maps.

    Built before generation so that a missing weight file (Inception, LPIPS/FRD backbones, segmenter)
    stops the run at once, naming the file, instead of after all images were generated.
    Settings from the test options: eval_metrics ('fid,kid,...'), inception_weights, lpips_weights,
    frd_weights, fid_dims, seg_model, segmenter_weights, seg_size ('WxH').
    ``run(web_dir, label_paths) -> dict`` (floats; segmentation scores under 'segmentation').
    """

    @staticmethod
    def check_files(opt):
        """The metrics of the options (a list); FileNotFoundError naming the weight file of one of
        them (FID/KID Inception, LPIPS / FRD backbone) that does not exist. Reads no weights."""
        from util.metrics import evaluation
        from util.metrics.fid import INCEPTION_WEIGHTS_FILE
        from util.metrics.perceptual import LPIPS_BACKBONE_FILES, RESNET50_FILE
        from util.metrics.weights import resolve_weights

        requested = opt.eval_metrics  # '' = no image metrics (segmentation only)
        if requested is None:
            requested = DEFAULT_EVAL_METRICS.get(opt.dataset_mode, "fid")
        metrics = evaluation.parse_metrics(requested)
        if "fid" in metrics or "kid" in metrics:
            resolve_weights(INCEPTION_WEIGHTS_FILE, opt.inception_weights, "FID Inception", "--inception_weights")
        if "lpips" in metrics:
            resolve_weights(LPIPS_BACKBONE_FILES["alex"], opt.lpips_weights, "LPIPS alex backbone")
        if "frd" in metrics:
            resolve_weights(RESNET50_FILE, opt.frd_weights, "FRD ResNet-50", "--frd_weights")
        return metrics

    def __init__(self, opt):
        from util.metrics import evaluation

        self.opt = opt
        self.evaluation = evaluation
        self.device = str(opt.device)
        self.metrics = self.check_files(opt)
        self.inception_weights = opt.inception_weights
        self.lpips_weights = opt.lpips_weights
        self.frd_weights = opt.frd_weights
        self.fid_dims = opt.fid_dims or FID_DIMS
        self.seg_model = opt.seg_model or DEFAULT_SEG_MODEL.get(opt.dataset_mode)
        self.seg_size = opt.seg_size
        self.segmenter = self.num_classes = None
        if self.seg_model is not None:
            self.segmenter, self.num_classes = evaluation.build_named_segmenter(
                self.seg_model, opt.segmenter_weights, self.device)

    def run(self, web_dir, label_paths, evaluation_pair):
        real_dir = os.path.join(web_dir, "images", evaluation_pair[0])
        fake_dir = os.path.join(web_dir, "images", evaluation_pair[1])
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
    images = os.path.join(web_dir, "images")
    if os.path.isdir(images):
        logger.info("replacing the previous results in %s", images)
        shutil.rmtree(images)
    stale_metrics = os.path.join(web_dir, "metrics.json")
    if os.path.isfile(stale_metrics):
        os.remove(stale_metrics)


def write_page(opt, model, web_dir, rows, metric_tables, loaded):
    page = HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.which_epoch}")
    page.add_header(f"{opt.name}: {opt.dataset_mode} {opt.phase} split, epoch {opt.which_epoch}")
    page.add_text(
        f"{len(rows)} images. Model: {type(model).__name__}, weights from "
        + ", ".join(f"net{k}: {os.path.basename(v)}" for k, v in loaded.items())
    )
    for title, table in metric_tables:
        page.add_header(title)
        page.add_table(table, header=["metric", "value"])
    page.add_header("Images")
    for stem, images in rows:
        page.add_header(stem)
        # One row of the single pictures, then one row per stack (the K samples of --n_samples, the K
        # masks / content images of --save_attention): a grid per image.
        groups = {}
        for name in images:
            groups.setdefault(name.split(" ")[0] if " " in name else "", []).append(name)
        for names in groups.values():
            page.add_images([images[n] for n in names], names, None, width=256 if len(names) <= 6 else 128)
    return page.save()


def check_inputs(opt):
    """The cheap checks before anything is built, in this order: the data folders, the checkpoint,
    the pretrained-weight files of the model and of --evaluate. Each failure is a user error with
    one message (util.errors; cli() prints it, exit status 2)."""
    check_data_folders(opt)
    check_checkpoint(opt)
    check_model_files(opt)
    if opt.evaluate:
        Evaluation.check_files(opt)


def main(argv=None):
    """Run the test; returns {'web_dir', 'index', 'num_images', 'metrics'}."""
    options = TestOptions()
    opt = options.parse(argv)
    check_inputs(opt)
    logging.basicConfig(level=logging.DEBUG if opt.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if options.option_file_read:
        logger.info("options of the run from %s; flags given on the command line override them "
                    "(--no_opt_file ignores the file)", options.option_file_read)
    torch.manual_seed(opt.seed)
    apply_cpu_settings(opt)
    data.check_dataset(opt)

    dataloader = data.create_dataloader(opt)
    model = models.create_model(opt)
    if opt.save_attention and not model.extra_visual_names:
        raise ValueError(f"--save_attention needs a model with attention maps (--netG dagan); "
                         f"{type(model).__name__} with these options has none")
    if opt.resample_class is not None and not model.resamples_classes:
        raise ValueError(f"--resample_class: {type(model).__name__} cannot re-sample the noise of one class "
                         f"(--model oasis can)")
    loaded = load_networks(model, opt)
    model.eval()

    evaluation = Evaluation(opt) if opt.evaluate else None
    web_dir = results_dir(opt)
    clear_previous_results(web_dir)
    os.makedirs(web_dir, exist_ok=True)
    write_text_atomic(os.path.join(web_dir, "opt.json"),
                      json.dumps(checkpoint.opt_to_plain(opt), indent=2, sort_keys=True) + "\n")
    rows, label_paths, layout = generate(opt, model, dataloader, web_dir)

    metrics = {}
    metric_tables = []
    if layout is not None:
        metrics["layout"] = layout.scores()
        metric_tables.append((f"{layout.kind.capitalize()} score (the dataset's exact segmenter)",
                              [[k, v] for k, v in metrics["layout"].items()]))
        print(f"{layout.kind} score of the {len(rows)} {layout.what} {opt.phase} images: "
              f"{format_scores(metrics['layout'])}")
    if evaluation is not None:
        metrics["evaluate"] = evaluation.run(web_dir, label_paths, model.evaluation_pair)
        metric_tables.append(("Evaluation (--evaluate)", _flatten(metrics["evaluate"])))
        for name, value in _flatten(metrics["evaluate"]):
            print(f"{name:>24}: {value}")
    if metrics:
        write_text_atomic(os.path.join(web_dir, "metrics.json"), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    index = write_page(opt, model, web_dir, rows, metric_tables, loaded)
    print(f"{len(rows)} images written; results page: {index}")
    return {"web_dir": web_dir, "index": index, "num_images": len(rows), "metrics": metrics}


def generate(opt, model, dataloader, web_dir):
    """Run ``model.inference`` over the split and save the visuals; returns (rows [(stem, {picture:
    path})], label paths, the dataset's exact scorer or None)."""
    layout = exact_scorer(opt)
    total = min(len(dataloader.dataset), opt.how_many)
    rows, label_paths, seen = [], [], {}
    fake_name = model.evaluation_pair[1] if model.evaluation_pair else None
    with torch.no_grad(), tqdm(total=total, desc="test", unit="img", file=sys.stderr) as bar:
        for batch_index, batch in enumerate(dataloader):
            adapt_threads()  # the CPU thread count follows the machine's load (util/cpu.py)
            if len(rows) >= total:
                break
            samples = []
            with inference_autocast(opt):
                if opt.n_samples > 1:
                    # Seeded per batch: the same samples on every run (and with --how_many).
                    generator = torch.Generator().manual_seed(opt.seed * 1_000_003 + batch_index)
                    samples = model.inference_samples(batch, opt.n_samples, opt.resample_class, generator)
                    visuals = dict(samples[0])
                    samples = [{fake_name: out[fake_name].float()} for out in samples]
                    visuals.pop(fake_name)
                else:
                    scored_extras = layout is not None and layout.needs_extras
                    outputs = model.inference(batch, extras=opt.save_attention or scored_extras)
                    # extras computed for the score only are not saved
                    visuals = {k: v for k, v in outputs.items()
                               if opt.save_attention or k not in model.extra_visual_names}
            visuals = {k: v.float() if v.is_floating_point() else v for k, v in visuals.items()}
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
                if "label_path" in batch:
                    label_paths.append(batch["label_path"][i])
                images = save_visuals(visuals, i, stem, web_dir, opt, model.image_rounding)
                for k, sample in enumerate(samples):
                    saved = save_visuals(sample, i, f"{stem}_{k}", web_dir, opt, model.image_rounding)
                    images.update({f"{picture} {k}": path for picture, path in saved.items()})
                rows.append((stem, images))
                bar.update(1)
            if layout is not None:
                layout.add(samples[0] if samples else outputs, batch, fake_name, kept=len(rows) - start)
    return rows, label_paths, layout


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


def cli(argv=None):
    """Command-line entry: exit status 0, or 2 with the one-line message ``test.py: error: ...`` of a
    user error (util.errors.run_cli; ``--verbose`` shows its traceback instead)."""
    return run_cli("test.py", main, argv)


if __name__ == "__main__":
    sys.exit(cli())
