"""Evaluate generated images: FID, KID, LPIPS, FRD against real images, and segmentation
mIoU / accuracy of the generated images against the ground-truth label maps.

  python evaluate.py --real DIR --fake DIR --metrics fid,kid,lpips,frd [--inception_weights F] \
      [--device cpu] [--json out.json]
  python evaluate.py --fake DIR --seg_model drn|upernet|deeplab|synthetic --label_dir DIR \
      [--segmenter_weights F] [--seg_size WxH]

Pretrained weights are read from local files only (torch hub cache or the *_weights options).
"""
import argparse
import json
import logging
import math
import os
import sys

import torch

from util.cpu import apply_thread_settings, keep_freed_memory
from util.errors import UserError, run_cli
from util.metrics.evaluation import KNOWN_METRICS, SEG_MODELS, evaluate_folders, segmentation_scores
from util.metrics.fid import INCEPTION_WEIGHTS_FILE
from util.metrics.perceptual import LPIPS_BACKBONE_FILES, RESNET50_FILE
from util.metrics.segmentation import SCORE_LABELS

logger = logging.getLogger(__name__)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", help="folder of real images (FID/KID: any names and number; LPIPS/FRD pair them "
                                  "with --fake by file stem)")
    p.add_argument("--fake", required=True, help="folder of generated images")
    p.add_argument("--metrics", default="", help=f"comma-separated subset of {','.join(KNOWN_METRICS)}")
    p.add_argument("--inception_weights", default=None,
                   help=f"FID Inception file (default: <torch hub>/checkpoints/{INCEPTION_WEIGHTS_FILE})")
    p.add_argument("--fid_dims", type=int, default=2048, choices=(64, 192, 768, 2048),
                   help="Inception feature size for FID/KID (2048 = the standard)")
    p.add_argument("--kid_subsets", type=int, default=100)
    p.add_argument("--kid_subset_size", type=int, default=1000, help="capped at the number of images")
    p.add_argument("--lpips_net", default="alex", choices=("alex", "vgg"))
    p.add_argument("--lpips_weights", default=None,
                   help="torchvision backbone file (default: hub cache " + " / ".join(LPIPS_BACKBONE_FILES.values()) + ")")
    p.add_argument("--frd_weights", default=None, help=f"ResNet-50 file (default: hub cache {RESNET50_FILE})")
    p.add_argument("--frd_distance", default="frechet", choices=("frechet", "l2"),
                   help="per-pair distance of the ResNet-50 outputs (see util/metrics/perceptual.py)")
    p.add_argument("--seg_model", default=None, choices=SEG_MODELS, help="segmenter for mIoU / accuracy")
    p.add_argument("--label_dir", default=None, help="ground-truth label maps (searched recursively)")
    p.add_argument("--segmenter_weights", default=None,
                   help="segmenter weight file (upernet: folder or ENCODER.pth,DECODER.pth)")
    p.add_argument("--seg_size", default=None,
                   help="evaluate segmentation at WIDTHxHEIGHT (generated images resized bilinearly, labels "
                        "nearest); default: the generated image size")
    p.add_argument("--upernet_input", default="rgb", choices=("rgb", "bgr_legacy"),
                   help="UperNet input normalisation: rgb (current CSAIL code) or bgr_legacy (2018 code)")
    p.add_argument("--seg_test_sizes", default=None,
                   help="multi-scale segmentation: comma-separated shorter-side sizes whose softmax is averaged "
                        "(CSAIL's UperNet eval uses 300,375,450,525,600); default one pass at --seg_size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--verbose", action="store_true")
    return p


def run(args):
    """Run the requested evaluations; returns the results dict."""
    results = {}
    metrics = [m for m in args.metrics.split(",") if m.strip()] if args.metrics else []
    if not metrics and not args.seg_model:
        raise UserError("nothing to do: give --metrics and/or --seg_model")
    if metrics:
        if not args.real:
            raise UserError("--metrics needs --real")
        results.update(evaluate_folders(
            args.real, args.fake, metrics, inception_weights=args.inception_weights, lpips_net=args.lpips_net,
            lpips_weights=args.lpips_weights, frd_weights=args.frd_weights, frd_distance=args.frd_distance,
            device=args.device, batch_size=args.batch_size, kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size, fid_dims=args.fid_dims))
    if args.seg_model:
        if not args.label_dir:
            raise UserError("--seg_model needs --label_dir")
        seg = segmentation_scores(args.fake, args.label_dir, args.seg_model,
                                  segmenter_weights=args.segmenter_weights, eval_size=args.seg_size,
                                  device=args.device, upernet_input=args.upernet_input,
                                  test_sizes=[int(v) for v in args.seg_test_sizes.split(",")]
                                  if args.seg_test_sizes else None)
        seg["seg_model"] = args.seg_model
        results["segmentation"] = seg
    return results


def format_table(results):
    rows = []
    for k, v in results.items():
        if k == "segmentation":
            for sk in ("pixel_accuracy", "mIoU", "mean_accuracy"):
                rows.append((f"{SCORE_LABELS[sk]} ({v['seg_model']})", f"{v[sk]:.4f}"))
        elif isinstance(v, float):
            rows.append((k, f"{v:.4f}" if math.isfinite(v) else str(v)))
        else:
            rows.append((k, str(v)))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {val}" for name, val in rows)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if str(args.device).startswith("cpu"):
        keep_freed_memory()  # speed only (see util/cpu.py)
        apply_thread_settings()  # threads for the cores free at start, unless OMP_NUM_THREADS is set
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    results = run(args)
    print(format_table(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


def cli(argv=None):
    """main() with bad input (missing files, unmatched stems, bad labels: user errors and the
    ValueErrors of util.metrics about the input folders) reported as one line ``evaluate.py: error:
    ...`` on stderr and exit status 2, as argparse does, instead of a traceback (``--verbose``: the
    traceback). Returns the exit status."""
    return run_cli("evaluate.py", main, argv, also=(ValueError,))


if __name__ == "__main__":
    sys.exit(cli())
