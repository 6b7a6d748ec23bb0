"""Speed of DAGAN / SPADE training and inference, measured against this machine's own limit.

Times full training iterations (a G step and a D step with every loss on: GAN, feature matching,
VGG) and inference, after warm-up, at a given configuration (default: ADE20K, 256x256, batch 1;
any train.py flag can be appended and overrides the defaults). In the same run it measures the
dense-convolution peak of this machine (a large 3x3 convolution in fp32 and bf16, the faster of the
NCHW and channels-last layouts), so achieved FLOP/s are a fraction of what this machine can do, not
of a datasheet figure.

    python scripts/benchmark.py --threads 1 --json bench.json   # the default set, ~18 min on 2 CPU cores
    python scripts/benchmark.py --quick --threads 1             # smoke run, ~2 min here (see below)
    python scripts/benchmark.py --configs dagan,dagan_nchw --resolutions '' -- --ngf 32

The default run: dagan and spade interleaved, dagan_bf16 (where bf16 is fast), reference (own
process), 3 timed iterations each, the bare-kernel replay of dagan's training step, and the sweep
64/128/256/512 (docs/performance.md: 1071 s on 2 idle cores; measured 2026-12-01 under a load average of 4-5 from
other jobs, the run getting 52% of a core: 24 min 46 s wall, peak RSS 9.36 GB, the 256x256
configurations' first iterations 3.0-3.3 GB of it). ``--quick`` runs dagan alone (and dagan_bf16 where the device has fast bf16 kernels)
at 128x128 instead of 256x256, 2 timed iterations, the sweep at 64 only, with no spade, no reference
child process and no bare-kernel replay (:func:`make_plan` lists what a run will time).
Measured (2026-12-01, ``/usr/bin/time -v python scripts/benchmark.py --quick --threads 1 --json q.json``):
AMD EPYC with AVX-512 and bf16 units (so dagan_bf16 ran), 2 cores of a VM shared with other jobs
(load average 4.5-5.5, the run got 57% of a core): 1 min 49 s wall, peak RSS 3.48 GB.
Its peak RSS is the ADE20K network's own training state, not the crop: G has 97M parameters, held
as weights, spectral-normalised weights, gradients and two Adam moments (about 1.9 GB), plus the
process before any model is built (about 0.55 GB: torch and its libraries) and inference's eval-mode
caches; ``-- --ngf 32`` (a quarter of G's parameters) is the lever for a smaller smoke run
(measured the same way: 59 s, peak RSS 2.26 GB).

Variants (``--configs``; each a set of train.py flags and the benchmark's own switches, see CONFIGS):
  dagan       the default fp32 paths: training as train.py (NCHW, the fast layers, D in the generator
              phase's ``frozen`` set, fused Adam), inference as test.py (the same, channels-last)
  spade       ``--netG spade``; timed interleaved with dagan (alternating iterations), so the
              attention overhead is not a difference of two runs minutes apart (reported both as the
              ratio of the medians and as the median of the per-round ratios, ``*_paired``)
  dagan_bf16  ``--amp bf16``; skipped where the device has no fast bf16 kernels (CPUs without
              AVX-512/AMX, GPUs before Ampere), unless ``--force_bf16``
  dagan_nchw  dagan with inference in the NCHW layout too (``--memory_format contiguous``)
  dagan_ref   dagan with G's fast layers swapped for their reference twins (``ops.to_reference`` kinds
              ``spade``: per-layer resize, dense one-hot conv, separate gamma/beta; ``upsampled_conv``:
              CAM's conv_64 on the upsampled map); D and the phases as dagan
  reference   the reference code's computation: the kinds of dagan_ref and ``label_image_conv`` (D's
              first convolution of each scale on the full concatenation of label maps and image,
              label maps repeated for fake and real) as reference twins, every training phase with
              an empty ``frozen`` set (D's weight gradients computed in the G step and thrown away),
              NCHW inference, glibc's default allocator (``--cpu_malloc system``); still fused Adam
              and this code's spectral norm (kind ``spectral_norm`` is not swapped); run in a child
              process because the allocator setting is per process
  condconv    CC-FPSE: ``--netG condconv --netD fpse`` at the official widths (ngf/ndf 64, 128-wide
              prediction heads), no VAE (as dagan), the memory-lean per-pixel depthwise convolution
  condconv_ref  condconv with its per-pixel convolutions in the official unfold form (a 9xCxHxW copy per
              layer) and plain SPADE shortcuts (kinds ``pixel_conv``, ``spade``); run it in its own
              process (``--configs condconv_ref``) for its peak memory
These switches belong to the benchmark, not to the model: a built model has only its fast layers
and declares its phases (models/base_model.py ``Phase``, run by models/trainer.py ``Trainer``); the
benchmark swaps layers with ``ops.to_reference`` / ``ops.to_fast`` and replaces the trainer's phases
(:func:`set_frozen_d`). Each configuration's JSON record reads them back from the model and trainer
as they ran: ``reference_kinds`` (the ``ops.to_reference`` kinds whose twins are in the model) and
``frozen_in_phase`` ({phase name: networks frozen in it}, e.g. ``{"generator": ["D"],
"discriminator": []}`` for dagan, empty lists for reference).
FLOPs are counted with ``torch.utils.flop_counter``: ``model`` FLOPs are those of the reference
computation (what the network is), ``executed`` FLOPs those of the path that ran (the fast path's
one-hot look-ups, the frozen D's skipped weight gradients and the second copy of D's label-map
convolution are not executed). Achieved FLOP/s = FLOPs / median step time. Bare-kernel bound
(dagan, training; ``--no_kernel_bound`` skips it): every convolution of one training step (forward
and backward) is recorded with its shapes, strides and arguments and replayed on its own, best of
the repeats; the sum is the time the step's convolutions take as bare kernels, so the report says
how fast those kernels run at this network's own shapes, what the rest of the step costs, and the
executed-FLOP fraction of peak the step would reach if nothing but its convolutions took time. Peak
memory is the process's peak RSS during the configuration's first iteration (CPU; reset through
/proc/self/clear_refs), or max allocated (CUDA); it is reported for configurations measured first in
their process. Between configurations the last one's models are freed and the heap given back to
the system (:func:`release_memory`), so a run's peak is that of its largest configuration, not the
sum. With no VGG19 weights file the perceptual loss uses a randomly initialised VGG19 (same cost;
said so in the output). Nothing is written except --json.
"""
import argparse
import collections
import ctypes
import ctypes.util
import dataclasses
import gc
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import models  # noqa: E402
from models.networks.loss import VGGLoss, vgg19_weights_path  # noqa: E402
from models.networks.ops import (  # noqa: E402
    ReferenceLabelImageConv2d,
    ReferencePixelDepthwiseConv2d,
    ReferenceSPADE,
    ReferenceUpsampledConv2d,
    to_fast,
    to_reference,
)
from models.trainer import Trainer  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402
from util.cpu import apply_cpu_settings, native_bf16  # noqa: E402

logger = logging.getLogger("benchmark")

# The official ADE20K setting: 150 classes + dontcare, no instance maps, 256x256, 5 upsamplings; with the
# VGG loss (--vgg_loss: the synthetic data's preset turns it off).
ADE20K_DATA_FLAGS = [
    "--label_nc", "150", "--contain_dontcare_label", "--no_instance", "--crop_size", "256",
    "--load_size", "256", "--aspect_ratio", "1", "--num_upsampling_layers", "normal",
    "--ngf", "64", "--ndf", "64", "--batchSize", "1", "--vgg_loss",
]
# The networks' own official flags: SPADE / DAGAN (multiscale D) and CC-FPSE (condconv G, FPSE D; its
# label encoder's norm and the official 128-wide prediction heads).
SPADE_NET_FLAGS = ["--num_D", "2", "--n_layers_D", "4", "--norm_G", "spectralspadesyncbatch3x3"]
CCFPSE_NET_FLAGS = ["--netG", "condconv", "--netD", "fpse", "--norm_G", "spectralsyncbatch", "--condconv_hidden", "128"]
ADE20K_FLAGS = ADE20K_DATA_FLAGS + SPADE_NET_FLAGS
# A configuration: train.py flags, and the benchmark's own switches to the reference computation
# (applied to the built model and trainer by Prepared; no train.py flag or model attribute sets them):
#   impl="ref"           ops.to_reference(model, SPADE_REF_KINDS): plain SPADE layers and DAGAN's conv_64
#                        on the upsampled map;
#   d_pair_input=False   ops.to_reference(model, D_REF_KINDS): D's first convolution of each scale as the
#                        ``label_image_conv`` reference twin (input concatenated in full, label maps
#                        repeated for fake and real) instead of covering the label maps once for the pair;
#   freeze_d=False       set_frozen_d(trainer, False): the trainer's phases with empty ``frozen`` sets, so D's
#                        weight gradients are computed in the G step (and thrown away), as the reference does;
#   infer_format         layout of the inference steps (training is always NCHW, as train.py);
#   own_process          timed in a child process (process-wide flags such as --cpu_malloc);
#   net_flags            the network flags after ADE20K_DATA_FLAGS (default SPADE_NET_FLAGS);
#   ref_kinds            the kinds impl="ref" swaps (default SPADE_REF_KINDS).
CONFIGS = {
    "dagan": dict(flags=[], impl="fast"),
    "spade": dict(flags=["--netG", "spade"], impl="fast"),
    "dagan_bf16": dict(flags=["--amp", "bf16"], impl="fast"),
    "dagan_nchw": dict(flags=[], impl="fast", infer_format="contiguous"),
    "dagan_ref": dict(flags=[], impl="ref"),
    "reference": dict(flags=["--cpu_malloc", "system"], impl="ref", infer_format="contiguous", freeze_d=False,
                      d_pair_input=False, own_process=True),
    # CC-FPSE (official network widths, no VAE, as dagan): the fast per-pixel convolution, and its
    # official unfold form (plus the plain SPADE of the shortcuts) in condconv_ref.
    "condconv": dict(flags=[], impl="fast", net_flags=CCFPSE_NET_FLAGS),
    "condconv_ref": dict(flags=[], impl="ref", net_flags=CCFPSE_NET_FLAGS, ref_kinds=("spade", "pixel_conv")),
}
SPADE_REF_KINDS = ("spade", "upsampled_conv")
D_REF_KINDS = ("label_image_conv",)
# The reference twin class of each kind the benchmark swaps (what the JSON's reference_kinds reads back).
REFERENCE_CLASSES = {"spade": ReferenceSPADE, "upsampled_conv": ReferenceUpsampledConv2d,
                     "label_image_conv": ReferenceLabelImageConv2d, "pixel_conv": ReferencePixelDepthwiseConv2d}
DEFAULT_CONFIGS = "dagan,spade,dagan_bf16,reference"
DEFAULT_RESOLUTIONS = "64,128,256,512"
DEFAULT_REPEATS = 3
# --quick: a smoke run at a 128x128 crop instead of 256x256 (a quarter of the pixels), without the slow
# parts (the reference child process, the bare-kernel replay, sweep points above 64) and without spade
# (interleaving needs both models in memory: twice the peak RSS).
QUICK_CONFIGS = "dagan,dagan_bf16"
QUICK_RESOLUTIONS = "64"
QUICK_REPEATS = 2
QUICK_FLAGS = ["--crop_size", "128", "--load_size", "128"]
# Sweep points above this crop: no warm-up, --large_repeats timed iterations, no FLOP count.
LARGE_CROP = 256
# Timed in alternation when both are asked for (the attention overhead is a few percent).
INTERLEAVED = ("dagan", "spade")


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
    info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # the vector ISA torch dispatches to
    info["bf16_units"] = sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"))
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_conv_peak(device, dtype, repeats=5):
    """{layout: FLOP/s} of a large dense 3x3 convolution (best of ``repeats`` timed runs after
    warm-up) in the NCHW and the channels-last layout; the machine's peak is the larger."""
    batch, channels, size = (8, 256, 128) if device.type == "cuda" else (2, 256, 64)
    flops = 2 * batch * channels * channels * 9 * size * size
    out = {}
    for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        x = torch.randn(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=fmt)
        w = (torch.randn(channels, channels, 3, 3, device=device, dtype=dtype) * 0.01).contiguous(memory_format=fmt)
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
        out[layout] = flops / best
    return out


# ------------------------------------------------------------------------------------------------
# model and data

def set_frozen_d(trainer, freeze):
    """Set ``trainer.phases`` to the model's ``training_phases()`` as declared (``freeze``: the
    generator phase's ``frozen`` set holds "D", so D's parameters need no gradient in the G step) or
    with every phase's ``frozen`` set emptied (the reference's work: D's weight gradients computed in
    the G step and thrown away; the same updates)."""
    trainer.phases = [dataclasses.replace(p, frozen=p.frozen if freeze else ())
                      for p in trainer.model.training_phases()]


def build(flags, impl, device_flag, random_vgg, net_flags=SPADE_NET_FLAGS, ref_kinds=None):
    opt = TrainOptions().parse(["--name", "benchmark", "--checkpoints_dir", tempfile.gettempdir(),
                                "--dataset_mode", "synthetic"] + ADE20K_DATA_FLAGS + net_flags + device_flag + flags)
    want_vgg = not opt.no_vgg_loss
    if want_vgg and random_vgg:
        opt.no_vgg_loss = True  # build without the file, then attach a randomly initialised VGG19
    torch.manual_seed(opt.seed)
    model = models.create_model(opt)
    if want_vgg and random_vgg:
        model.criterionVGG = VGGLoss(pretrained=False).to(opt.device)
        opt.no_vgg_loss = False
    if impl == "ref":
        to_reference(model, kinds=ref_kinds or SPADE_REF_KINDS)
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


class ConvRecorder(TorchDispatchMode):
    """Counts every convolution a step dispatches (forward and backward), keyed by op and by the
    sizes, strides and dtypes of its tensors and its other arguments."""

    OPS = (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default)

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.OPS:
            self.calls[(func, tuple(_describe(a) for a in args))] += 1
        return func(*args, **(kwargs or {}))


def _describe(arg):
    if isinstance(arg, torch.Tensor):
        return ("tensor", tuple(arg.shape), tuple(arg.stride()), arg.dtype, str(arg.device))
    return tuple(arg) if isinstance(arg, list) else arg


def _materialize(desc):
    if isinstance(desc, tuple) and desc and desc[0] == "tensor":
        _, shape, stride, dtype, device = desc
        return torch.empty_strided(shape, stride, dtype=dtype, device=device).normal_(0, 0.1)
    return list(desc) if isinstance(desc, tuple) else desc


def conv_kernel_bound(step, device, repeats):
    """The convolutions of one call of ``step``, each replayed on its own (same op, shapes, strides,
    dtypes; random values) and timed (best of ``repeats`` after one warm-up), times its count.
    Returns {calls, unique, time_s, flops}: the time the step's convolutions take as bare kernels,
    i.e. the step time if everything else cost nothing."""
    from torch.utils.flop_counter import FlopCounterMode

    recorder = ConvRecorder()
    with recorder:
        step()
    total_time, total_flops = 0.0, 0
    with torch.no_grad():
        for (func, descs), count in recorder.calls.items():
            args = [_materialize(d) for d in descs]
            counter = FlopCounterMode(display=False)
            with counter:
                func(*args)
            synchronize(device)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                func(*args)
                synchronize(device)
                best = min(best, time.perf_counter() - t0)
            total_time += count * best
            total_flops += count * counter.get_total_flops()
            del args
    return {"calls": sum(recorder.calls.values()), "unique": len(recorder.calls), "time_s": total_time,
            "flops": total_flops}


def attention_tail_cost(prepared, repeats):
    """What DAGAN's attention adds to the generator, timed on its own at the configuration's real
    feature maps: the tail (CAM's conv_64 and pooling, SAM, their sum, then conv_img) against SPADE's
    tail (conv_img on the last feature), forward without gradients and forward + backward, median of
    ``repeats`` (>= 5) after warm-up. A training iteration runs the generator forward twice (G step,
    and the D step's fresh fake without gradients) and backward once."""
    model, device = prepared.model, prepared.device
    net = model.netG
    if not hasattr(net, "attend"):
        return None
    prepared.phase("train_step")
    model.train()
    semantics, _ = model.preprocess_input(prepared.data)
    with torch.no_grad():
        trace = net.backbone(semantics)
    # Every block's input and output as leaves with gradients (the tail reads the last ones).
    trace = [(x.detach().requires_grad_(), out.detach().requires_grad_()) for x, out in trace]
    feat = trace[-1][1]
    tails = {"dagan": lambda: net.to_image(net.attend(trace)[0]), "spade": lambda: net.to_image(feat)}
    probe = torch.randn_like(tails["spade"]())

    def median_time(fn):
        fn()
        synchronize(device)
        times = []
        for _ in range(max(5, repeats)):
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    out = {}
    for name, tail in tails.items():
        with torch.no_grad():
            forward = median_time(tail)
        backward = median_time(lambda tail=tail: tail().backward(probe))
        out[name] = {"forward_s": forward, "forward_backward_s": backward, "train_iteration_s": forward + backward}
    return {"tail": out,
            "added_train_iteration_s": out["dagan"]["train_iteration_s"] - out["spade"]["train_iteration_s"],
            "added_inference_s": out["dagan"]["forward_s"] - out["spade"]["forward_s"]}


def summarize(times):
    in_order = list(times)
    times = sorted(times)
    out = {"median": statistics.median(times), "min": times[0], "max": times[-1], "n": len(times),
           "all": in_order}
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4)
        out["iqr"] = q[2] - q[0]
    return out


def reset_peak_memory(device):
    """Start a new peak-memory window; False where the peak cannot be reset (then the process's
    peak so far is reported)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux >= 4.0: resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def release_memory():
    """Between configurations: free the last one's models now (they sit in reference cycles, closures
    over self and hooks, which only the cyclic collector frees) and give the freed heap back to the
    system (``--cpu_malloc keep`` never trims it), so the next configuration does not start from the
    last one's peak. The next configuration's first, untimed iteration faults its memory in again."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Prepared:
    """One configuration built and ready: ``train_step()`` and ``infer_step()`` closures."""

    def __init__(self, name, extra, device_flag, random_vgg, crop=None):
        spec = CONFIGS[name]
        self.name, self.spec = name, spec
        self.flags = list(spec["flags"]) + list(extra)
        if crop:
            self.flags += ["--crop_size", str(crop), "--load_size", str(crop)]
        self.opt, self.model = build(self.flags, spec["impl"], device_flag, random_vgg,
                                     spec.get("net_flags", SPADE_NET_FLAGS), spec.get("ref_kinds"))
        self.device = self.opt.device
        self.trainer = Trainer(self.opt, self.model)
        self.freeze_d = spec.get("freeze_d", True)
        set_frozen_d(self.trainer, self.freeze_d)
        self.d_pair_input = spec.get("d_pair_input", True)  # False: D's label_image_conv reference twin
        if not self.d_pair_input:
            to_reference(self.model, kinds=D_REF_KINDS)
        self.data = make_batch(self.opt)
        amp = self.opt.amp == "bf16"
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if amp else (
            lambda: torch.autocast(self.device.type, enabled=False))

    def reference_kinds(self):
        """The ops.to_reference kinds whose reference twins are in the model now (read back from it)."""
        present = {type(m) for m in self.model.modules()}
        return [kind for kind, cls in REFERENCE_CLASSES.items() if cls in present]

    def frozen_in_phase(self):
        """{training phase: networks frozen in it}, as the trainer runs them now."""
        return {phase.name: list(phase.frozen) for phase in self.trainer.phases}

    def phase(self, kind):
        """Layout for the steps that follow: training NCHW (as train.py), inference as test.py."""
        self.model.set_memory_format(self.spec.get("infer_format", "channels_last") if kind == "infer_step"
                                     else "contiguous")

    def train_step(self):
        self.model.train()
        self.trainer.run_iteration(self.data, 0)

    def infer_step(self):
        self.model.eval()
        with self._autocast():
            self.model.inference(self.data)

    def count(self, step):
        """(executed FLOPs, model FLOPs) of one call of ``step``: the path that runs, and the same
        step in the reference computation (every kind of SPADE_REF_KINDS and D_REF_KINDS swapped to its
        reference twin, no phase's ``frozen`` set); the configuration's own state is restored after."""
        self.phase(step.__name__)
        executed = count_flops(step)
        kinds = SPADE_REF_KINDS + D_REF_KINDS
        swapped = tuple(self.spec.get("ref_kinds", SPADE_REF_KINDS)) if self.spec["impl"] == "ref" else ()
        already = swapped + (() if self.d_pair_input else D_REF_KINDS)
        to_reference(self.model, kinds=kinds)
        set_frozen_d(self.trainer, False)
        try:
            model = count_flops(step)
        finally:
            to_fast(self.model, kinds=[k for k in kinds if k not in already])
            set_frozen_d(self.trainer, self.freeze_d)
        return executed, model


def time_interleaved(prepared, kind, warmup, repeats):
    """{name: [seconds]}: ``repeats`` rounds, each timing one step of every configuration in turn."""
    for p in prepared:
        p.phase(kind)
        for _ in range(warmup):
            getattr(p, kind)()
    times = {p.name: [] for p in prepared}
    for _ in range(repeats):
        for p in prepared:
            synchronize(p.device)
            t0 = time.perf_counter()
            getattr(p, kind)()
            synchronize(p.device)
            times[p.name].append(time.perf_counter() - t0)
    return times


def bench_group(names, args, device_flag, random_vgg, crop=None, infer=True, flops=True, warmup=None,
                repeats=None, kernel_bound=()):
    """Time the configurations ``names`` (interleaved when more than one) -> {name: result dict};
    for those in ``kernel_bound`` also the bare-kernel time of the training step's convolutions."""
    warmup = args.warmup if warmup is None else warmup
    repeats = args.repeats if repeats is None else repeats
    prepared = []
    results = {}
    for name in names:
        p = Prepared(name, args.extra, device_flag, random_vgg, crop=crop)
        # Peak memory of the first training iteration (measured before the next configuration is
        # built; meaningful for the first configuration of a process, see the module doc).
        first = not prepared and not args.memory_measured
        reset_peak_memory(p.device)
        p.train_step()
        results[name] = {"config": name, "flags": p.flags, "crop_size": p.opt.crop_size, "batch": p.opt.batchSize,
                         "amp": p.opt.amp, "infer_memory_format": p.spec.get("infer_format", "channels_last"),
                         "cpu_malloc": p.opt.cpu_malloc, "reference_kinds": p.reference_kinds(),
                         "frozen_in_phase": p.frozen_in_phase(),
                         "train_peak_memory_mb": peak_memory_mb(p.device) if first else None}
        prepared.append(p)
    args.memory_measured = True
    # The warm-up iteration above counts as one of the warm-up iterations.
    train_times = time_interleaved(prepared, "train_step", max(0, warmup - 1), repeats)
    infer_times = time_interleaved(prepared, "infer_step", warmup, repeats) if infer else {}
    for p in prepared:
        r = results[p.name]
        stats = summarize(train_times[p.name])
        r.update(train_step_s_median=stats["median"], train_step_s=stats,
                 train_images_per_s=p.opt.batchSize / stats["median"])
        if infer:
            stats = summarize(infer_times[p.name])
            r.update(infer_s_median=stats["median"], infer_s=stats, infer_images_per_s=p.opt.batchSize / stats["median"])
        if flops:
            r["train_flops_executed"], r["train_flops_model"] = p.count(p.train_step)
            if infer:
                r["infer_flops_executed"], r["infer_flops_model"] = p.count(p.infer_step)
        if p.name == "dagan" and "spade" in results and crop is None:
            r["attention_tail"] = attention_tail_cost(p, repeats)
        if p.name in kernel_bound:
            p.phase("train_step")
            r["train_conv_kernels"] = conv_kernel_bound(p.train_step, p.device, max(2, repeats))
    del prepared, p
    release_memory()
    return results


def bench_in_child(name, args):
    """Run configuration ``name`` in a fresh Python process (its own allocator settings) -> result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "child.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--configs", name, "--resolutions", "",
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--json", out, "--child"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        # The child takes the configuration's own flags (e.g. --cpu_malloc system) as process-wide.
        cmd += ["--"] + list(args.extra)
        subprocess.run(cmd, check=True)
        with open(out, encoding="utf-8") as f:
            return json.load(f)["configs"][name]


# ------------------------------------------------------------------------------------------------
# the plan: what a run times, decided from the arguments before anything is timed

QUICK_HELP = ("a smoke run: dagan (and dagan_bf16 where the device has fast bf16 kernels) at 128x128 instead "
              "of 256x256, 2 timed iterations each, a sweep at 64x64 only; no spade, no reference child "
              "process, no bare-kernel replay. Measured on a shared 2-core AMD EPYC with bf16 units (load "
              "4.5-5.5, --threads 1): 1 min 49 s wall, peak RSS 3.48 GB (the network's training state; "
              "with -- --ngf 32: 59 s, 2.26 GB). Explicit --configs, --resolutions, --repeats and train.py "
              "flags after -- (e.g. --crop_size 256) override")


@dataclasses.dataclass
class Plan:
    """What one run times, in this order (built by :func:`make_plan`)."""

    peak_dtypes: tuple   # the dense 3x3 conv peak is measured in these dtypes ("fp32", "bf16")
    groups: list         # [[config, ...]] timed in turn; the configurations of one group are interleaved
    own_process: tuple   # configurations of ``groups`` timed in a child process
    kernel_bound: tuple  # configurations whose training-step convolutions are replayed as bare kernels
    sweep: list          # [{crop, warmup, repeats, flops}]: dagan training at other crop sizes
    skipped: tuple       # configurations asked for but not timed (bf16 without fast bf16 kernels)
    warmup: int
    repeats: int
    train_flags: list    # train.py flags given to every configuration (after ADE20K_FLAGS)


def make_plan(args, bf16):
    """The plan of a run with the (parsed) ``args``; ``bf16``: whether bf16 configurations are timed
    (the device has fast bf16 kernels, or --force_bf16)."""
    names = [c for c in args.configs.split(",") if c]
    skipped = () if bf16 else tuple(n for n in names if CONFIGS[n]["flags"][:2] == ["--amp", "bf16"])
    names = [n for n in names if n not in skipped]
    groups = []
    for name in names:
        if name not in INTERLEAVED or not all(n in names for n in INTERLEAVED):
            groups.append([name])
        elif name == INTERLEAVED[0]:
            groups.append(list(INTERLEAVED))
    sweep = []
    for crop in ([] if args.child else [int(r) for r in args.resolutions.split(",") if r]):
        large = crop > LARGE_CROP  # FLOPs grow with the pixels; counting them costs more steps
        sweep.append({"crop": crop, "warmup": 0 if large else args.warmup,
                      "repeats": args.large_repeats if large else args.repeats, "flops": not large})
    return Plan(peak_dtypes=() if args.child else ("fp32", "bf16") if bf16 else ("fp32",),
                groups=groups,
                own_process=() if args.child else tuple(n for n in names if CONFIGS[n].get("own_process")),
                kernel_bound=() if args.no_kernel_bound else tuple(n for n in ("dagan",) if n in names),
                sweep=sweep, skipped=skipped, warmup=args.warmup, repeats=args.repeats,
                train_flags=list(args.extra))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated variants to time, of: {', '.join(CONFIGS)} "
                             f"(default: {DEFAULT_CONFIGS}; --quick: {QUICK_CONFIGS})")
    parser.add_argument("--resolutions", default=None,
                        help="crop sizes for the step-time-versus-resolution sweep (dagan fp32); '' to skip "
                             f"(default: {DEFAULT_RESOLUTIONS}; --quick: {QUICK_RESOLUTIONS})")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed iterations per measurement (default: {DEFAULT_REPEATS}; --quick: {QUICK_REPEATS})")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing")
    parser.add_argument("--large_repeats", type=int, default=1,
                        help=f"timed iterations (and no warm-up) in the sweep at crops above {LARGE_CROP}")
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the cores free at start, see util/cpu.py)")
    parser.add_argument("--json", default=None, help="write all figures to this JSON file")
    parser.add_argument("--force_bf16", action="store_true",
                        help="time bf16 even where the device has no fast bf16 kernels (skipped by default: "
                             "there bf16 runs through slow reference kernels)")
    parser.add_argument("--no_kernel_bound", action="store_true",
                        help="skip replaying dagan's training-step convolutions as bare kernels (~1.5 min; "
                             "always skipped with --quick)")
    parser.add_argument("--demo", action="store_true",
                        help="time the painting demo's generation requests instead (DEMO_CONFIGS: the main "
                             "job's model at 32x32, DAGAN / SPADE / OASIS at 256x256; --repeats, default 5)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # run 'own process' configs here
    args, extra = parser.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    if args.configs is None:
        args.configs = QUICK_CONFIGS if args.quick else DEFAULT_CONFIGS
    if args.resolutions is None:
        args.resolutions = QUICK_RESOLUTIONS if args.quick else DEFAULT_RESOLUTIONS
    if args.repeats is None:
        args.repeats = 5 if args.demo else QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if args.quick:
        args.no_kernel_bound = True
        extra = QUICK_FLAGS + extra  # flags given after -- come later and win
    args.extra = extra
    args.memory_measured = False
    unknown = [c for c in args.configs.split(",") if c and c not in CONFIGS]
    if unknown:
        parser.error(f"unknown --configs {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    return args


# ------------------------------------------------------------------------------------------------
# the run

def describe_setup(args):
    """Apply the process-wide settings of this process's configurations (the allocator) and describe
    the machine and the settings -> (device, device_flag, random_vgg, report)."""
    device_flag = [] if torch.cuda.is_available() else ["--gpu_ids", "-1"]
    names = [c for c in args.configs.split(",") if c]
    # The process-wide settings come from the flags shared by this process's configurations.
    shared = args.extra + (CONFIGS[names[0]]["flags"] if args.child and len(names) == 1 else [])
    threads = ["--cpu_threads", str(args.threads)] if args.threads else []
    probe = TrainOptions().parse(["--dataset_mode", "synthetic"] + ADE20K_FLAGS + device_flag + shared + threads)
    malloc_applied = apply_cpu_settings(probe)
    random_vgg = not probe.no_vgg_loss and not os.path.isfile(vgg19_weights_path(probe.vgg_weights))
    report = {"machine": machine_info(), "device": str(probe.device), "quick": args.quick, "extra_flags": args.extra,
              "cpu_malloc": f"{probe.cpu_malloc} (applied: {malloc_applied})",
              "vgg": "none (--no_vgg_loss)" if probe.no_vgg_loss else (
                  "randomly initialised VGG19 (weights file absent)" if random_vgg else "ImageNet VGG19"),
              "repeats": args.repeats, "warmup": args.warmup, "bf16_fast_kernels": native_bf16(probe.device)}
    if random_vgg and not args.child:
        print(f"note: {vgg19_weights_path(probe.vgg_weights)} not found: the VGG loss runs on a randomly "
              f"initialised VGG19 (same cost)", flush=True)
    return probe.device, device_flag, random_vgg, report


def note_bf16_skip(report, plan, device, args):
    """Say in the report (and on stdout) why bf16 is not timed, where it is not."""
    if report["bf16_fast_kernels"] or args.force_bf16:
        return
    why = ("a GPU before Ampere" if device.type == "cuda" else
           f"CPU capability {report['machine']['cpu_capability']}; oneDNN needs AVX-512 or AMX")
    report["bf16_skipped"] = (f"{device} has no fast bf16 kernels ({why}): bf16 would run through slow "
                              f"reference kernels; --force_bf16 times it anyway")
    if not args.child:
        print(f"bf16 skipped ({', '.join(plan.skipped) or 'peak only'}): {report['bf16_skipped']}", flush=True)


def measure_peaks(plan, device, report):
    """The dense 3x3 conv peak in the plan's dtypes -> {dtype: FLOP/s} (also put in the report)."""
    if not plan.peak_dtypes:
        return {}
    layouts = {"fp32": measure_conv_peak(device, torch.float32)}
    try:
        if "bf16" in plan.peak_dtypes:
            layouts["bf16"] = measure_conv_peak(device, torch.bfloat16)
    except RuntimeError as err:  # no bf16 convolution kernel on this device
        logger.warning("bf16 convolution not available: %s", err)
    peak = {k: max(v.values()) for k, v in layouts.items()}
    report["conv_peak_flops"] = peak
    report["conv_peak_flops_by_layout"] = layouts
    print("dense 3x3 conv peak: " + ", ".join(
        f"{k} {v / 1e9:.1f} GFLOP/s (" + ", ".join(f"{lay} {x / 1e9:.1f}" for lay, x in layouts[k].items()) + ")"
        for k, v in peak.items()), flush=True)
    return peak


def time_group_here(group, results, plan, args, device_flag, random_vgg):
    """Time ``group`` in this process -> {name: result}; variants of the dagan network timed after
    dagan take its FLOP counts instead of counting again."""
    same_as = "dagan" if group[0] in ("dagan_ref", "dagan_bf16", "dagan_nchw") and "dagan" in results else None
    out = bench_group(group, args, device_flag, random_vgg, flops=same_as is None, kernel_bound=plan.kernel_bound)
    if same_as:
        r = out[group[0]]
        for key in ("train_flops_model", "infer_flops_model", "train_flops_executed", "infer_flops_executed"):
            r[key] = results[same_as][key]
        if group[0] == "dagan_ref":  # executes the plain SPADE layers, with D frozen
            for kind in ("train", "infer"):
                r[f"{kind}_flops_executed"] = None
    return out


def run_configs(plan, args, device_flag, random_vgg):
    """Time the plan's configurations -> {name: result}."""
    results = {}
    for group in plan.groups:
        if group[0] in plan.own_process:
            print(f"timing {group[0]} (own process) ...", flush=True)
            results[group[0]] = bench_in_child(group[0], args)
        else:
            print(f"timing {' and '.join(group)}{' (interleaved)' if len(group) > 1 else ''} ...", flush=True)
            results.update(time_group_here(group, results, plan, args, device_flag, random_vgg))
        for n in group:
            r = results[n]
            print(f"  {n}: train {r['train_step_s_median']:.3f} s/it, infer {r['infer_s_median']:.3f} s", flush=True)
    return results


def run_sweep(plan, args, device_flag, random_vgg):
    """dagan's training step at the plan's sweep crops -> [result]."""
    sweep = []
    for point in plan.sweep:
        crop = point["crop"]
        print(f"timing dagan at {crop}x{crop} ...", flush=True)
        try:
            r = bench_group(["dagan"], args, device_flag, random_vgg, crop=crop, infer=False, flops=point["flops"],
                            warmup=point["warmup"], repeats=point["repeats"])["dagan"]
        except ValueError as err:  # e.g. a 1x1 latent grid with BatchNorm at batch 1
            print(f"  skipped {crop}x{crop}: {err}", flush=True)
            continue
        sweep.append({k: r.get(k) for k in ("crop_size", "train_step_s_median", "train_step_s",
                                            "train_flops_model", "train_flops_executed")})
    return sweep


# ------------------------------------------------------------------------------------------------
# derived figures

def add_peak_fractions(results, peak):
    """Add to each result its FLOP/s and fractions of the peak of its dtype, and the derived figures
    of its bare-kernel bound."""
    for r in results.values():
        dtype = "bf16" if r["amp"] == "bf16" else "fp32"
        if dtype not in peak:
            continue
        r["peak_used"] = dtype
        for kind, t in (("train", r["train_step_s_median"]), ("infer", r["infer_s_median"])):
            if r.get(f"{kind}_flops_model"):
                r[f"{kind}_flops_per_s"] = r[f"{kind}_flops_model"] / t
                r[f"{kind}_fraction_of_peak"] = r[f"{kind}_flops_per_s"] / peak[dtype]
            if r.get(f"{kind}_flops_executed"):
                r[f"{kind}_executed_fraction_of_peak"] = r[f"{kind}_flops_executed"] / t / peak[dtype]
        kernels = r.get("train_conv_kernels")
        if kernels and kernels["time_s"] > 0:
            # How fast the convolutions run as bare kernels at this network's own shapes, how much of
            # the step they account for, and the executed-FLOP fraction of peak the step would reach
            # if everything but those kernels cost nothing.
            kernels["fraction_of_peak"] = kernels["flops"] / kernels["time_s"] / peak[dtype]
            kernels["share_of_step"] = kernels["time_s"] / r["train_step_s_median"]
            kernels["rest_of_step_s"] = r["train_step_s_median"] - kernels["time_s"]
            if r.get("train_flops_executed"):
                kernels["executed_fraction_of_peak_bound"] = r["train_flops_executed"] / kernels["time_s"] / peak[dtype]


def attention_overheads(results):
    """DAGAN over SPADE: step times (ratio of medians, and median of the per-round ratios), FLOPs,
    and the attention tail timed on its own -> {name: fraction}."""
    dagan, spade = results["dagan"], results["spade"]
    derived = {"attention_overhead_train": dagan["train_step_s_median"] / spade["train_step_s_median"] - 1,
               "attention_overhead_infer": dagan["infer_s_median"] / spade["infer_s_median"] - 1}
    # Timed in alternation: the median of the per-round ratios cancels the machine's slow and fast
    # phases better than the ratio of the two medians.
    for kind, key in (("train", "train_step_s"), ("infer", "infer_s")):
        d, sp = dagan.get(key, {}).get("all"), spade.get(key, {}).get("all")
        if d and sp and len(d) == len(sp):
            derived[f"attention_overhead_{kind}_paired"] = statistics.median(a / b for a, b in zip(d, sp)) - 1
    for counted, prefix in (("model", "attention_flops_overhead"), ("executed", "attention_executed_flops_overhead")):
        if spade.get(f"train_flops_{counted}") and dagan.get(f"train_flops_{counted}"):
            for kind in ("train", "infer"):
                derived[f"{prefix}_{kind}"] = dagan[f"{kind}_flops_{counted}"] / spade[f"{kind}_flops_{counted}"] - 1
    tail = dagan.get("attention_tail")
    if tail:
        # The attention's own time (timed in isolation, so not lost in the steps' spread) relative
        # to SPADE's step.
        derived["attention_tail_overhead_train"] = tail["added_train_iteration_s"] / spade["train_step_s_median"]
        derived["attention_tail_overhead_infer"] = tail["added_inference_s"] / spade["infer_s_median"]
    return derived


def compare_configs(results, peak):
    """The figures comparing configurations (and the bf16 peak with fp32's) -> {name: value}."""
    derived = attention_overheads(results) if "dagan" in results and "spade" in results else {}
    for other, label in (("reference", "vs_reference"), ("dagan_ref", "vs_plain_spade_layers"),
                         ("dagan_nchw", "vs_nchw")):
        if "dagan" in results and other in results:
            derived[f"speedup_train_{label}"] = results[other]["train_step_s_median"] / results["dagan"]["train_step_s_median"]
            derived[f"speedup_infer_{label}"] = results[other]["infer_s_median"] / results["dagan"]["infer_s_median"]
    if "dagan" in results and "dagan_bf16" in results:
        derived["bf16_speedup_train"] = results["dagan"]["train_step_s_median"] / results["dagan_bf16"]["train_step_s_median"]
        derived["bf16_speedup_infer"] = results["dagan"]["infer_s_median"] / results["dagan_bf16"]["infer_s_median"]
    if "bf16" in peak:
        derived["bf16_conv_peak_ratio"] = peak["bf16"] / peak["fp32"]
    return derived


# ------------------------------------------------------------------------------------------------
# the printed report

def pct(x):
    return f"{100 * x:.1f}%"


def _fmt_pct(r, key):
    return pct(r[key]) if r.get(key) is not None else "-"


def print_config_table(report, device):
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cpu_capability']} ({m['cpu_count']} logical CPUs, {m['threads']} torch "
          f"threads), device {device}, torch {torch.__version__}; VGG: {report['vgg']}; malloc: {report['cpu_malloc']}")
    header = (f"{'config':<11} {'train s/it':>11} {'spread':>13} {'img/s':>7} {'infer s':>8} {'img/s':>7} "
              f"{'peak MB':>8} {'GFLOP/it':>9} {'exec GF':>8} {'train %pk':>9} {'(exec)':>7} "
              f"{'infer %pk':>9} {'(exec)':>7}")
    print(header)
    print("-" * len(header))
    for name, r in report["configs"].items():
        spread = f"{r['train_step_s']['min']:.2f}-{r['train_step_s']['max']:.2f}"
        mem = f"{r['train_peak_memory_mb']:.0f}" if r.get("train_peak_memory_mb") else "-"
        executed = f"{r['train_flops_executed'] / 1e9:.1f}" if r.get("train_flops_executed") else "-"
        print(f"{name:<11} {r['train_step_s_median']:>11.3f} {spread:>13} {r['train_images_per_s']:>7.3f} "
              f"{r['infer_s_median']:>8.3f} {r['infer_images_per_s']:>7.3f} {mem:>8} "
              f"{r.get('train_flops_model', 0) / 1e9:>9.1f} {executed:>8} "
              f"{_fmt_pct(r, 'train_fraction_of_peak'):>9} {_fmt_pct(r, 'train_executed_fraction_of_peak'):>7} "
              f"{_fmt_pct(r, 'infer_fraction_of_peak'):>9} {_fmt_pct(r, 'infer_executed_fraction_of_peak'):>7}")
    print("GFLOP/it and %pk: FLOPs of the reference computation (model FLOPs); exec: FLOPs the run executed "
          "(one-hot look-ups instead of multiplying zeros; no D weight gradients in the G step; D's label-map "
          "part once for fake and real)")


def print_kernel_bound_and_tail(results, derived):
    for name, r in results.items():
        k = r.get("train_conv_kernels")
        if k and "fraction_of_peak" in k:
            print(f"{name} training step, convolutions replayed as bare kernels ({k['calls']} calls, {k['unique']} "
                  f"distinct): {k['time_s']:.2f} s = {pct(k['share_of_step'])} of the step, at "
                  f"{pct(k['fraction_of_peak'])} of peak; the rest of the step {k['rest_of_step_s']:.2f} s; "
                  f"with nothing else, the step would run at "
                  f"{pct(k.get('executed_fraction_of_peak_bound', float('nan')))} of peak (executed FLOPs)")
    tail = results.get("dagan", {}).get("attention_tail")
    if tail and "attention_tail_overhead_train" in derived:
        print(f"dagan's attention tail timed on its own (over SPADE's conv_img): "
              f"+{1000 * tail['added_train_iteration_s']:.0f} ms per training iteration "
              f"({pct(derived['attention_tail_overhead_train'])} of spade's step), "
              f"+{1000 * tail['added_inference_s']:.0f} ms per inference "
              f"({pct(derived['attention_tail_overhead_infer'])})")


def print_sweep(sweep, peak):
    if not sweep:
        return
    print()
    print(f"{'crop':>6} {'train s/it':>11} {'GFLOP/it':>9} {'s per Mpixel':>13} {'exec %pk':>9}")
    for s in sweep:
        mpix = s["crop_size"] ** 2 / 1e6
        gflops = f"{s['train_flops_model'] / 1e9:>9.1f}" if s["train_flops_model"] else f"{'-':>9}"
        frac = (pct(s["train_flops_executed"] / s["train_step_s_median"] / peak["fp32"])
                if s.get("train_flops_executed") and "fp32" in peak else "-")
        print(f"{s['crop_size']:>6} {s['train_step_s_median']:>11.3f} {gflops} "
              f"{s['train_step_s_median'] / mpix:>13.2f} {frac:>9}")


def print_report(report, device, peak):
    print()
    print_config_table(report, device)
    print_kernel_bound_and_tail(report["configs"], report["derived"])
    print_sweep(report["resolution_sweep"], peak)
    print()
    for k, v in report["derived"].items():
        print(f"{k}: {pct(v) if 'overhead' in k else f'{v:.2f}x'}")
    print(f"total benchmark time: {report['total_runtime_s']:.0f} s")


# ------------------------------------------------------------------------------------------------
# the painting demo's generation latency (python scripts/benchmark.py --demo)

# (name, test-time flags): the main job's model (its preset: synthetic, 32x32, ngf 16) and the ADE20K
# models at 256x256; random weights (the cost of a generation does not depend on the values).
DEMO_CONFIGS = (
    ("dagan main job 32x32", ["--dataset_mode", "synthetic"]),
    ("dagan ade20k 256x256", ["--dataset_mode", "ade20k"]),
    ("dagan ade20k 256x256 bf16", ["--dataset_mode", "ade20k", "--amp", "bf16"]),
    ("spade ade20k 256x256", ["--dataset_mode", "ade20k", "--netG", "spade"]),
    ("oasis ade20k 256x256", ["--model", "oasis", "--dataset_mode", "ade20k"]),
)


def demo_layout(height, width, num_values, seed=0):
    """A painted-looking label map: 12 random rectangles of random classes on class 1."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.ones(height, width, dtype=torch.int64)
    for _ in range(12):
        y0, x0 = (int(torch.randint(0, s - 8, (1,), generator=g)) for s in (height, width))
        h, w = (int(torch.randint(4, max(5, s // 2), (1,), generator=g)) for s in (height, width))
        labels[y0:y0 + h, x0:x0 + w] = int(torch.randint(0, num_values, (1,), generator=g))
    return labels.numpy()


def demo_latency(args, device_flag):
    """Median wall time of the demo's whole generation request (label map check, the model in eval
    mode, PNG encoding of the image and the extras) per configuration."""
    from options.test_options import TestOptions
    from util.demo.engine import DemoEngine

    threads = ["--cpu_threads", str(args.threads)] if args.threads else []
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for name, flags in DEMO_CONFIGS:
            if "bf16" in flags and not (native_bf16(torch.device("cpu")) or args.force_bf16):
                results[name] = {"skipped": "no fast bf16 kernels"}
                continue
            opt = TestOptions().parse(flags + ["--dataroot", root, "--checkpoints_dir", root, "--no_opt_file"]
                                      + device_flag + threads)
            apply_cpu_settings(opt)
            torch.manual_seed(0)
            model = models.create_model(opt)
            model.eval()
            engine = DemoEngine(opt, model)
            labels = demo_layout(engine.height, engine.width, engine.num_values)
            payload = {"width": engine.width, "height": engine.height, "labels": engine.encode_labels(labels),
                       "seed": 0}
            times = []
            for i in range(args.warmup + args.repeats):
                start = time.perf_counter()
                engine.generate(payload)
                if i >= args.warmup:
                    times.append(time.perf_counter() - start)
            results[name] = {"size": f"{engine.width}x{engine.height}", "median_ms": 1000 * statistics.median(times),
                             "min_ms": 1000 * min(times), "repeats": args.repeats,
                             "threads": torch.get_num_threads()}
            print(f"{name:>28}: median {results[name]['median_ms']:8.1f} ms, min {results[name]['min_ms']:8.1f} ms "
                  f"({args.repeats} requests after {args.warmup} warm-up, {torch.get_num_threads()} threads)",
                  flush=True)
            del engine, model
            release_memory()
    return results


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.demo:
        device_flag = [] if torch.cuda.is_available() else ["--gpu_ids", "-1"]
        report = {"machine": machine_info(), "demo_latency": demo_latency(args, device_flag)}
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2, default=str)
        return report
    t_start = time.time()
    device, device_flag, random_vgg, report = describe_setup(args)
    plan = make_plan(args, bf16=report["bf16_fast_kernels"] or args.force_bf16)
    report["plan"] = dataclasses.asdict(plan)
    note_bf16_skip(report, plan, device, args)
    peak = measure_peaks(plan, device, report)
    results = report["configs"] = run_configs(plan, args, device_flag, random_vgg)
    report["resolution_sweep"] = run_sweep(plan, args, device_flag, random_vgg)
    add_peak_fractions(results, peak)
    report["derived"] = compare_configs(results, peak)
    report["total_runtime_s"] = time.time() - t_start
    if not args.child:
        print_report(report, device, peak)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, default=str)
    return report


if __name__ == "__main__":
    main()
