"""Speed of DAGAN / SPADE training and inference, measured against this machine's own limit.

Times full training iterations (a G step and a D step with every loss on: GAN, feature matching,
VGG) and inference, after warm-up, at a given configuration (default: ADE20K, 256x256, batch 1;
any train.py flag can be appended and overrides the defaults). In the same run it measures the
dense-convolution peak of this machine (one large 3x3 convolution, fp32 and bf16), so the achieved
FLOP/s are reported as a fraction of what this machine can do, not of a datasheet figure.

    python scripts/benchmark.py                       # default set, a few minutes to ~half an hour on 2 CPU cores
    python scripts/benchmark.py --quick --json bench.json
    python scripts/benchmark.py --configs dagan --resolutions 64,128 -- --ngf 32

Variants measured (``--configs``): ``dagan`` (fp32, fast path), ``spade`` (``--netG spade``, for the
attention overhead), ``dagan_ref`` (the plain reference SPADE computation, for the speed-up of the
fast path), ``dagan_bf16`` (``--amp bf16``). FLOPs are counted with ``torch.utils.flop_counter``:
``model`` FLOPs are those of the reference computation (what the network is), ``executed`` FLOPs
those of the path that ran (the one-hot lookup of the fast path does no counted FLOPs). Achieved
FLOP/s = model FLOPs / median step time. With no VGG19 weights file the perceptual loss uses a
randomly initialised VGG19 (same cost; said so in the output). Nothing is written except --json.
"""
import argparse
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import models  # noqa: E402
from models.networks.loss import VGGLoss, vgg19_weights_path  # noqa: E402
from models.networks.normalization import set_spade_impl  # noqa: E402
from models.trainer import Pix2PixTrainer  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402

logger = logging.getLogger("benchmark")

# SPEC section 6, ADE20K: 150 classes + dontcare, no instance maps, 256x256, 5 upsamplings.
ADE20K_FLAGS = [
    "--label_nc", "150", "--contain_dontcare_label", "--no_instance", "--crop_size", "256",
    "--load_size", "256", "--aspect_ratio", "1", "--num_upsampling_layers", "normal",
    "--ngf", "64", "--ndf", "64", "--num_D", "2", "--n_layers_D", "4", "--batchSize", "1",
    "--norm_G", "spectralspadesyncbatch3x3",
]
CONFIGS = {
    "dagan": dict(flags=[], impl="fast"),
    "spade": dict(flags=["--netG", "spade"], impl="fast"),
    "dagan_ref": dict(flags=[], impl="ref"),
    "dagan_bf16": dict(flags=["--amp", "bf16"], impl="fast"),
}
DEFAULT_CONFIGS = "dagan,spade,dagan_ref,dagan_bf16"


# ------------------------------------------------------------------------------------------------
# machine

def machine_info():
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count()}
    model = None
    flags = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and model is None:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    info["cpu"] = model or platform.processor()
    info["bf16_units"] = sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"))
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_conv_peak(device, dtype, repeats=5):
    """FLOP/s of a large dense 3x3 convolution (the best of ``repeats`` timed runs, after warm-up)."""
    batch, channels, size = (8, 256, 128) if device.type == "cuda" else (2, 256, 64)
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
    w = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype) * 0.01
    flops = 2 * batch * channels * channels * 9 * size * size
    with torch.no_grad():
        for _ in range(2):
            F.conv2d(x, w, padding=1)
        synchronize(device)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            F.conv2d(x, w, padding=1)
            synchronize(device)
            best = min(best, time.perf_counter() - t0)
    return flops / best


# ------------------------------------------------------------------------------------------------
# model and data

def build(flags, impl, device_flag, random_vgg):
    opt = TrainOptions().parse(["--name", "benchmark", "--checkpoints_dir", tempfile.gettempdir(),
                                "--dataset_mode", "synthetic"] + ADE20K_FLAGS + device_flag + flags)
    want_vgg = not opt.no_vgg_loss
    if want_vgg and random_vgg:
        opt.no_vgg_loss = True  # build without the file, then attach a randomly initialised VGG19
    torch.manual_seed(opt.seed)
    model = models.create_model(opt)
    if want_vgg and random_vgg:
        model.criterionVGG = VGGLoss(pretrained=False).to(opt.device)
        opt.no_vgg_loss = False
    set_spade_impl(model, impl)
    return opt, model


def make_batch(opt, seed=0):
    """A label map of random blobs (as real maps: regions, not noise) and a random photo."""
    gen = torch.Generator().manual_seed(seed)
    h, w = round(opt.crop_size / opt.aspect_ratio), opt.crop_size
    nc = opt.label_nc + (1 if opt.contain_dontcare_label else 0)
    coarse = torch.randint(0, nc, (opt.batchSize, 1, max(1, h // 16), max(1, w // 16)), generator=gen)
    label = F.interpolate(coarse.float(), size=(h, w), mode="nearest").long()
    return {"label": label, "instance": torch.zeros_like(label),
            "image": torch.rand(opt.batchSize, 3, h, w, generator=gen) * 2 - 1,
            "path": ["bench.jpg"] * opt.batchSize, "label_path": ["bench.png"] * opt.batchSize}


def count_flops(fn):
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def timed(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def summarize(times):
    times = sorted(times)
    out = {"median": statistics.median(times), "min": times[0], "max": times[-1], "n": len(times)}
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4)
        out["iqr"] = q[2] - q[0]
    return out


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss: KiB on Linux; the whole process's peak so far (so measure the main config first).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_config(name, extra, args, device_flag, random_vgg, crop=None, infer=True, flops="both",
                 warmup=None, repeats=None):
    spec = CONFIGS[name]
    flags = list(spec["flags"]) + list(extra)
    if crop:
        flags += ["--crop_size", str(crop), "--load_size", str(crop)]
    opt, model = build(flags, spec["impl"], device_flag, random_vgg)
    device = opt.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Pix2PixTrainer(opt, model)
    data = make_batch(opt)
    warmup = args.warmup if warmup is None else warmup
    repeats = args.repeats if repeats is None else repeats

    def train_step():
        trainer.run_generator_one_step(data)
        trainer.run_discriminator_one_step(data)

    result = {"config": name, "flags": flags, "crop_size": opt.crop_size, "batch": opt.batchSize,
              "amp": opt.amp, "spade_impl": spec["impl"]}
    times = timed(train_step, device, warmup, repeats)
    stats = summarize(times)
    result.update(train_step_s_median=stats["median"], train_step_s=stats,
                  train_images_per_s=opt.batchSize / stats["median"], train_peak_memory_mb=peak_memory_mb(device))
    if flops == "both":
        result["train_flops_executed"] = count_flops(train_step)
    if flops:
        set_spade_impl(model, "ref")
        result["train_flops_model"] = count_flops(train_step)
        set_spade_impl(model, spec["impl"])
    if infer:
        model.eval()
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if opt.amp == "bf16" else torch.autocast(
            device.type, enabled=False)

        def infer_step():
            with amp:
                model(data, mode="inference")

        stats = summarize(timed(infer_step, device, warmup, repeats))
        result.update(infer_s_median=stats["median"], infer_s=stats,
                      infer_images_per_s=opt.batchSize / stats["median"])
        if flops == "both":
            result["infer_flops_executed"] = count_flops(infer_step)
        if flops:
            set_spade_impl(model, "ref")
            result["infer_flops_model"] = count_flops(infer_step)
            set_spade_impl(model, spec["impl"])
    return result


# ------------------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help=f"comma-separated variants to time, of: {', '.join(CONFIGS)}")
    parser.add_argument("--resolutions", default="64,128,256,512",
                        help="crop sizes for the step-time-versus-resolution sweep (dagan fp32); '' to skip")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing")
    parser.add_argument("--large_repeats", type=int, default=1,
                        help="timed iterations (and no warm-up) in the sweep at crops above 256")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and a sweep without 512: a smoke run of a few minutes")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="write all figures to this JSON file")
    args, extra = parser.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    args.extra = extra
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 2), min(args.warmup, 1)
        args.resolutions = ",".join(r for r in args.resolutions.split(",") if r and int(r) <= 256)
    unknown = [c for c in args.configs.split(",") if c and c not in CONFIGS]
    if unknown:
        parser.error(f"unknown --configs {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    return args


def pct(x):
    return f"{100 * x:.1f}%"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    device_flag = [] if torch.cuda.is_available() else ["--gpu_ids", "-1"]
    probe = TrainOptions().parse(["--dataset_mode", "synthetic"] + ADE20K_FLAGS + device_flag + args.extra)
    device = probe.device
    random_vgg = not probe.no_vgg_loss and not os.path.isfile(vgg19_weights_path(probe.vgg_weights))
    report = {"machine": machine_info(), "device": str(device), "extra_flags": args.extra,
              "vgg": "none (--no_vgg_loss)" if probe.no_vgg_loss else (
                  "randomly initialised VGG19 (weights file absent)" if random_vgg else "ImageNet VGG19"),
              "repeats": args.repeats, "warmup": args.warmup}
    if random_vgg:
        print(f"note: {vgg19_weights_path(probe.vgg_weights)} not found: the VGG loss runs on a randomly "
              f"initialised VGG19 (same cost)", flush=True)

    peak = {"fp32": measure_conv_peak(device, torch.float32)}
    try:
        peak["bf16"] = measure_conv_peak(device, torch.bfloat16)
    except RuntimeError as err:  # no bf16 convolution kernel on this device
        logger.warning("bf16 convolution not available: %s", err)
    report["conv_peak_flops"] = peak
    print("dense 3x3 conv peak: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peak.items()), flush=True)

    results = {}
    for name in [c for c in args.configs.split(",") if c]:
        print(f"timing {name} ...", flush=True)
        # dagan_ref and dagan_bf16 are the dagan network: same FLOPs, not counted twice.
        same_as = "dagan" if name in ("dagan_ref", "dagan_bf16") and "dagan" in results else None
        results[name] = bench_config(name, args.extra, args, device_flag, random_vgg,
                                     flops=None if same_as else "both")
        r = results[name]
        if same_as:
            for key in ("train_flops_model", "infer_flops_model"):
                r[key] = results[same_as][key]
            for key in ("train_flops_executed", "infer_flops_executed"):
                # The reference path executes exactly the model's FLOPs.
                r[key] = r[key.replace("executed", "model")] if name == "dagan_ref" else results[same_as][key]
        print(f"  train {r['train_step_s_median']:.3f} s/it, infer {r['infer_s_median']:.3f} s", flush=True)
    report["configs"] = results

    sweep = []
    for crop in [int(r) for r in args.resolutions.split(",") if r]:
        large = crop > 256
        print(f"timing dagan at {crop}x{crop} ...", flush=True)
        # FLOPs grow with the pixels; counting them costs another step, skipped above 256.
        try:
            r = bench_config("dagan", args.extra, args, device_flag, random_vgg, crop=crop, infer=False,
                             flops=None if large else "model", warmup=0 if large else None,
                             repeats=args.large_repeats if large else None)
        except ValueError as err:  # e.g. a 1x1 latent grid with BatchNorm at batch 1
            print(f"  skipped {crop}x{crop}: {err}", flush=True)
            continue
        sweep.append({k: r.get(k) for k in ("crop_size", "train_step_s_median", "train_step_s",
                                            "train_flops_model", "train_peak_memory_mb")})
    report["resolution_sweep"] = sweep

    # ---- derived figures
    derived = {}
    for r in results.values():
        dtype = "bf16" if r["amp"] == "bf16" else "fp32"
        if dtype in peak and "train_flops_model" in r:
            r["train_flops_per_s"] = r["train_flops_model"] / r["train_step_s_median"]
            r["train_fraction_of_peak"] = r["train_flops_per_s"] / peak[dtype]
            r["infer_flops_per_s"] = r["infer_flops_model"] / r["infer_s_median"]
            r["infer_fraction_of_peak"] = r["infer_flops_per_s"] / peak[dtype]
            r["train_executed_fraction_of_peak"] = (r["train_flops_executed"] / r["train_step_s_median"]) / peak[dtype]
            r["infer_executed_fraction_of_peak"] = (r["infer_flops_executed"] / r["infer_s_median"]) / peak[dtype]
            r["peak_used"] = dtype

    def ratio(a, b, key):
        return results[a][key] / results[b][key]

    if "dagan" in results and "spade" in results:
        derived["attention_overhead_train"] = ratio("dagan", "spade", "train_step_s_median") - 1
        derived["attention_overhead_infer"] = ratio("dagan", "spade", "infer_s_median") - 1
    if "dagan" in results and "dagan_ref" in results:
        derived["fast_path_speedup_train"] = ratio("dagan_ref", "dagan", "train_step_s_median")
        derived["fast_path_speedup_infer"] = ratio("dagan_ref", "dagan", "infer_s_median")
    if "dagan" in results and "dagan_bf16" in results:
        derived["bf16_speedup_train"] = ratio("dagan", "dagan_bf16", "train_step_s_median")
        derived["bf16_speedup_infer"] = ratio("dagan", "dagan_bf16", "infer_s_median")
    if "bf16" in peak:
        derived["bf16_conv_peak_ratio"] = peak["bf16"] / peak["fp32"]
    report["derived"] = derived
    report["total_runtime_s"] = time.time() - t_start

    # ---- table
    print()
    print(f"machine: {report['machine']['cpu']} ({report['machine']['cpu_count']} logical CPUs, "
          f"{report['machine']['threads']} torch threads), device {device}, torch {torch.__version__}; "
          f"VGG: {report['vgg']}")
    header = (f"{'config':<11} {'train s/it':>11} {'spread':>17} {'img/s':>7} {'infer s':>8} {'img/s':>7} "
              f"{'peak MB':>8} {'GFLOP/it':>9} {'exec GF':>8} {'train %pk':>9} {'(exec)':>7} "
              f"{'infer %pk':>9} {'(exec)':>7}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        spread = f"{r['train_step_s']['min']:.2f}-{r['train_step_s']['max']:.2f}"
        print(f"{name:<11} {r['train_step_s_median']:>11.3f} {spread:>17} {r['train_images_per_s']:>7.3f} "
              f"{r['infer_s_median']:>8.3f} {r['infer_images_per_s']:>7.3f} {r['train_peak_memory_mb']:>8.0f} "
              f"{r.get('train_flops_model', 0) / 1e9:>9.1f} {r.get('train_flops_executed', 0) / 1e9:>8.1f} "
              f"{pct(r.get('train_fraction_of_peak', 0)):>9} {pct(r.get('train_executed_fraction_of_peak', 0)):>7} "
              f"{pct(r.get('infer_fraction_of_peak', 0)):>9} {pct(r.get('infer_executed_fraction_of_peak', 0)):>7}")
    print("GFLOP/it and %pk: FLOPs of the reference computation (model FLOPs); exec: FLOPs the run executed "
          "(the fast path looks one-hot convolutions up instead of multiplying zeros)")
    if sweep:
        print()
        print(f"{'crop':>6} {'train s/it':>11} {'GFLOP/it':>9} {'s per Mpixel':>13}")
        for s in sweep:
            mpix = s["crop_size"] ** 2 / 1e6
            gflops = f"{s['train_flops_model'] / 1e9:>9.1f}" if s["train_flops_model"] else f"{'-':>9}"
            print(f"{s['crop_size']:>6} {s['train_step_s_median']:>11.3f} {gflops} "
                  f"{s['train_step_s_median'] / mpix:>13.2f}")
    print()
    for k, v in derived.items():
        print(f"{k}: {pct(v) if 'overhead' in k else f'{v:.2f}x'}")
    print(f"total benchmark time: {report['total_runtime_s']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, default=str)
    return report


if __name__ == "__main__":
    main()
