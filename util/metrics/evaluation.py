"""Folder-level evaluation: the functions behind evaluate.py and test.py --evaluate.

evaluate_folders(real_dir, fake_dir, metrics, ...) -> {'fid': ..., 'kid': ..., 'lpips': ..., 'frd': ...}
segmentation_scores(fake_dir, label_dir, seg_model, ...) -> {'mIoU', 'pixel_accuracy', 'mean_accuracy', ...}
"""
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from util.metrics import segmentation as segm
from util.metrics.images import list_images, load_image01, pair_by_stem, stem

logger = logging.getLogger(__name__)

KNOWN_METRICS = ("fid", "kid", "lpips", "frd")
# Metrics of image pairs (real and fake paired by file stem); the others compare two sets of images.
PAIRED_METRICS = ("lpips", "frd")
SEG_MODELS = ("drn", "upernet", "deeplab", "synthetic")


def parse_metrics(metrics):
    """'fid,kid' or ['fid', 'kid'] -> ['fid', 'kid']; unknown names raise listing the known ones."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    metrics = [m.lower() for m in metrics]
    unknown = [m for m in metrics if m not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(KNOWN_METRICS)}")
    return metrics


def evaluate_folders(real_dir, fake_dir, metrics=("fid",), inception_weights=None, lpips_net="alex",
                     lpips_weights=None, frd_weights=None, frd_distance="frechet", device="cpu",
                     batch_size=16, kid_subsets=100, kid_subset_size=1000, fid_dims=2048):
    """Distribution and paired metrics between the images of two folders.

    FID and KID compare the two sets of images as they are, like pytorch-fid: any file names, any
    numbers of images. LPIPS and FRD compare pairs: every fake image must have a real image with the
    same file stem and vice versa (ValueError listing the unmatched stems otherwise). Returns a dict
    of floats: 'fid', 'kid' (+ 'kid_std'), 'lpips', 'frd' for the requested metrics, plus
    'num_images' (generated images scored) and 'num_real' (real images).
    """
    metrics = parse_metrics(metrics)
    real_files, fake_files = list_images(real_dir), list_images(fake_dir)
    pairs = None
    if any(m in PAIRED_METRICS for m in metrics):
        pairs = pair_by_stem(real_files, fake_files, real_dir, fake_dir)
    results = {"num_images": len(fake_files), "num_real": len(real_files)}
    if "fid" in metrics or "kid" in metrics:
        from util.metrics import fid as fidm
        model = fidm.load_fid_inception(inception_weights, dims=fid_dims, device=device)
        act_real = fidm.activations_from_files(real_files, model, batch_size, device)
        act_fake = fidm.activations_from_files(fake_files, model, batch_size, device)
        del model
        if "fid" in metrics:
            results["fid"] = fidm.fid_from_activations(act_real, act_fake)
        if "kid" in metrics:
            results["kid"], results["kid_std"] = fidm.kid_from_activations(
                act_real, act_fake, num_subsets=kid_subsets, max_subset_size=kid_subset_size)
    if "lpips" in metrics:
        from util.metrics import perceptual
        model = perceptual.load_lpips(lpips_net, lpips_weights, device)
        results["lpips"] = perceptual.lpips_pairs(pairs, model, batch_size)
        del model
    if "frd" in metrics:
        from util.metrics import perceptual
        model = perceptual.load_resnet50(frd_weights, device)
        results["frd"] = perceptual.frd_pairs(pairs, model, frd_distance, batch_size)
        del model
    return results


# ------------------------------------------------------------------------------ segmentation
def cityscapes_key(name):
    """Cityscapes files pair by '<city>_<seq>_<frame>' (the first three '_'-separated parts)."""
    return "_".join(name.split("_")[:3])


def _label_files(label_dir, seg_model):
    if not os.path.isdir(label_dir):
        raise FileNotFoundError(f"label folder '{label_dir}' does not exist")
    files = []
    for root, _, names in os.walk(label_dir):
        files += [os.path.join(root, n) for n in names if n.lower().endswith(".png")]
    if seg_model == "drn" and any(f.endswith("_labelIds.png") for f in files):
        # gtFine folders also hold *_color.png and *_instanceIds.png
        files = [f for f in files if f.endswith("_labelIds.png")]
    if not files:
        raise ValueError(f"label folder '{label_dir}' contains no .png label maps")
    return sorted(files)


def map_labels(label, seg_model, path=""):
    """Dataset label ids -> the segmenter's class ids (int64 array, 255 = ignore).

    drn: Cityscapes label ids -> 19 train ids. upernet: ADE20K 0 (unlabeled) -> 255, v -> v-1.
    deeplab: COCO-Stuff ids 0..181 as they are, 255 ignored. synthetic: as they are.
    """
    label = np.asarray(label).astype(np.int64)
    if seg_model == "drn":
        return segm.cityscapes_labelid_to_trainid(label)
    if seg_model == "upernet":
        if label.max(initial=0) > 150:
            raise ValueError(f"ADE20K label '{path}' has value {int(label.max())} > 150")
        return np.where(label == 0, 255, label - 1)
    return label


def build_named_segmenter(seg_model, segmenter_weights=None, device="cpu", upernet_input="rgb", test_sizes=None):
    """(segmenter, num_classes) for a name in SEG_MODELS."""
    if seg_model == "synthetic":
        from data.synthetic import NUM_CLASSES, SyntheticSegmenter
        return SyntheticSegmenter(), NUM_CLASSES
    if seg_model not in SEG_MODELS:
        raise ValueError(f"unknown --seg_model '{seg_model}'; known: {', '.join(SEG_MODELS)}")
    from util.metrics.segmenters import build_segmenter
    seg = build_segmenter(seg_model, segmenter_weights, device, upernet_input, test_sizes)
    return seg, seg.num_classes


def parse_size(size):
    """'WxH' -> (H, W); None passes through."""
    if size is None or isinstance(size, tuple):
        return size
    try:
        w, h = (int(v) for v in str(size).lower().split("x"))
    except ValueError as err:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 512x256), got '{size}'") from err
    return (h, w)


@torch.no_grad()
def segmentation_scores(fake_dir, label_dir, seg_model, segmenter=None, num_classes=None,
                        segmenter_weights=None, eval_size=None, device="cpu", upernet_input="rgb",
                        test_sizes=None, return_confusion=False):
    """Segment every generated image and score it against its ground-truth label map.

    fake_dir: generated images; label_dir: dataset label maps (searched recursively, paired by stem;
    Cityscapes by '<city>_<seq>_<frame>'). Each label map is resized (nearest) to the evaluation size:
    ``eval_size`` (H, W) or 'WxH' if given — the generated image is then resized bilinearly to it —
    else the generated image's own size. Returns pixel_accuracy, mean_accuracy, mIoU (fractions),
    num_images and per_class_iou (NaN for classes absent from labels and predictions).
    ``segmenter``/``num_classes`` may be passed in to reuse a loaded network.
    """
    if segmenter is None:
        segmenter, num_classes = build_named_segmenter(seg_model, segmenter_weights, device, upernet_input,
                                                       test_sizes)
    eval_size = parse_size(eval_size)
    key = cityscapes_key if seg_model == "drn" else (lambda s: s)
    labels = {}
    for f in _label_files(label_dir, seg_model):
        k = key(stem(f))
        if k in labels:
            raise ValueError(f"two label maps for '{k}': '{labels[k]}' and '{f}'")
        labels[k] = f
    fakes = list_images(fake_dir)
    missing = [stem(f) for f in fakes if key(stem(f)) not in labels]
    if missing:
        raise ValueError(f"no label map in '{label_dir}' for generated image(s): "
                         f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for f in fakes:
        img = load_image01(f)[None] * 2 - 1
        size = eval_size or tuple(img.shape[2:])
        if tuple(img.shape[2:]) != size:
            img = F.interpolate(img, size, mode="bilinear", align_corners=False)
        lpath = labels[key(stem(f))]
        with Image.open(lpath) as lab:
            # 'I' keeps 16/32-bit label PNGs intact; NEAREST never invents label values
            if lab.mode not in ("L", "I", "I;16", "P"):
                raise ValueError(f"label map '{lpath}' has image mode {lab.mode}; expected a "
                                 f"single-channel map of class ids (8/16/32-bit or palette PNG)")
            if lab.size != (size[1], size[0]):
                lab = lab.resize((size[1], size[0]), Image.NEAREST)
            target = map_labels(np.array(lab), seg_model, lpath)
        pred = segmenter.segment(img)[0]
        try:
            conf += segm.confusion_matrix(pred, torch.from_numpy(target), num_classes)
        except ValueError as err:
            raise ValueError(f"label map '{lpath}' (for '{f}'): {err}") from err
    scores = segm.scores_from_confusion(conf)
    scores["num_images"] = len(fakes)
    scores["per_class_iou"] = [None if np.isnan(v) else float(v) for v in segm.per_class_iou(conf).tolist()]
    if return_confusion:
        scores["confusion"] = conf
    return scores
