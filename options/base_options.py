"""Command-line options shared by training and testing.

Flag names follow NVlabs SPADE so that existing command lines keep working. Components add their own
flags next to their code: the model (and through it the networks) via ``models.get_option_setter`` and
the dataset via ``data.get_option_setter``. Derived values (``semantic_nc``, ``gpu_ids`` as a list,
``device``) are computed once, here, in :meth:`BaseOptions.parse`.
"""

import argparse
import json
import logging
import os
import sys

import torch

from data.base_dataset import PREPROCESS_MODES

logger = logging.getLogger(__name__)


# Options computed from others; never written to opt.json / opt.txt and never read back from them.
PROCESS_OPTIONS = ("memory_format", "cpu_malloc")
DERIVED_OPTIONS = ("semantic_nc", "device", "isTrain", "world_size", "rank", "local_rank")


def str2bool(value):
    """argparse type for explicit booleans (``--flag true``)."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "1", "y"):
        return True
    if value.lower() in ("no", "false", "f", "0", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


class OptionParser(argparse.ArgumentParser):
    """An ArgumentParser that remembers the command line it is parsing.

    Option setters of models, networks and datasets peek at the partly built options with
    ``parser.parse_known_args()``; they then see the same arguments as ``BaseOptions.parse(args)``
    instead of ``sys.argv``.
    """

    command_line = None

    def parse_known_args(self, args=None, namespace=None):
        if args is None and self.command_line is not None:
            args = self.command_line
        return super().parse_known_args(args, namespace)


class BaseOptions:
    """Builds the parser in three passes (base -> model/networks -> dataset) and resolves derived values."""

    isTrain = False

    def initialize(self, parser):
        # experiment
        parser.add_argument("--name", type=str, default="synthetic_dagan",
                            help="name of the experiment; checkpoints go to <checkpoints_dir>/<name>")
        parser.add_argument("--gpu_ids", type=str, default="0",
                            help="GPU ids, e.g. 0  0,1,2  or -1 for CPU; CPU is used when no GPU exists")
        parser.add_argument("--checkpoints_dir", type=str, default="./checkpoints", help="models are saved here")
        parser.add_argument("--model", type=str, default="pix2pix", help="which model to use")
        parser.add_argument("--seed", type=int, default=0, help="random seed (initialisation, data order, noise)")
        parser.add_argument("--verbose", action="store_true", help="debug-level logging")
        parser.add_argument("--dry_run", action="store_true",
                            help="build the networks from the options alone, print options and sizes, exit")
        parser.add_argument("--amp", type=str, default="none", choices=["none", "bf16", "fp16"],
                            help="mixed precision: autocast in bf16 (CPU or CUDA) or fp16 (CUDA, grad scaler)")
        parser.add_argument("--memory_format", type=str, default="contiguous",
                            choices=["channels_last", "contiguous"],
                            help="layout of weights and activations: contiguous (NCHW, as the reference code) or "
                                 "channels_last (NHWC, faster convolutions; inference only, the default of test.py)")
        parser.add_argument("--cpu_malloc", type=str, default="keep", choices=["keep", "system"],
                            help="CPU runs: 'keep' makes glibc reuse freed memory instead of page-faulting every "
                                 "large tensor in again (faster; peak memory stays reserved), 'system' leaves it as is")

        # normalisation
        parser.add_argument("--norm_G", type=str, default="spectralspadesyncbatch3x3",
                            help="normalisation of the generator, e.g. spectralspadesyncbatch3x3, spadeinstance3x3")
        parser.add_argument("--norm_D", type=str, default="spectralinstance",
                            help="normalisation of the discriminator")
        parser.add_argument("--norm_E", type=str, default="spectralinstance", help="normalisation of the encoder")
        parser.add_argument("--phase", type=str, default="train", choices=["train", "val", "test"],
                            help="train, val or test split")

        # input / output sizes
        parser.add_argument("--batchSize", type=int, default=1,
                            help="global batch size (split evenly across processes under torchrun)")
        parser.add_argument("--preprocess_mode", type=str, default="scale_width_and_crop",
                            choices=PREPROCESS_MODES, help="scaling and cropping of images at load time")
        parser.add_argument("--load_size", type=int, default=1024,
                            help="scale images to this size (meaning depends on --preprocess_mode)")
        parser.add_argument("--crop_size", type=int, default=512,
                            help="crop to this size; the generator's output width")
        parser.add_argument("--aspect_ratio", type=float, default=1.0,
                            help="width / height of the generated image")
        parser.add_argument("--label_nc", type=int, default=182,
                            help="number of label classes, without the dontcare label")
        parser.add_argument("--contain_dontcare_label", action="store_true",
                            help="the label map has a dontcare value 255, mapped to channel label_nc")
        parser.add_argument("--output_nc", type=int, default=3, help="number of output image channels")

        # dataset loading
        parser.add_argument("--dataroot", type=str, default="./datasets/synthetic", help="root of the dataset")
        parser.add_argument("--dataset_mode", type=str, default="synthetic",
                            help="cityscapes, ade20k, coco, facades, celebamask_hq, deepfashion, custom, synthetic")
        parser.add_argument("--serial_batches", action="store_true",
                            help="take images in order instead of shuffling")
        parser.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
        parser.add_argument("--nThreads", default=0, type=int, help="data loader worker processes")
        parser.add_argument("--max_dataset_size", type=int, default=sys.maxsize,
                            help="use at most this many samples (after natural sorting)")
        parser.add_argument("--load_from_opt_file", action="store_true",
                            help="take option defaults from <checkpoints_dir>/<name>/opt.json")
        parser.add_argument("--display_winsize", type=int, default=400, help="display window size")

        # generator
        parser.add_argument("--netG", type=str, default="dagan",
                            help="generator architecture: dagan (SPADE backbone + SAM/CAM) or spade")
        parser.add_argument("--ngf", type=int, default=64, help="number of generator filters in the last conv layer")
        parser.add_argument("--init_type", type=str, default="xavier",
                            choices=["normal", "xavier", "xavier_uniform", "kaiming", "orthogonal", "none"],
                            help="network initialisation")
        parser.add_argument("--init_variance", type=float, default=0.02, help="variance (gain) of the initialisation")
        parser.add_argument("--z_dim", type=int, default=256, help="dimension of the latent z vector")

        # instance-wise features and style encoder
        parser.add_argument("--no_instance", action="store_true", help="do not add the instance edge map as input")
        parser.add_argument("--nef", type=int, default=16, help="encoder filters in the first conv layer")
        parser.add_argument("--use_vae", action="store_true", help="enable training with an image encoder")
        return parser

    # ------------------------------------------------------------------ parsing
    def gather_options(self, args=None):
        """Three-pass parse so that the chosen model and dataset can add flags and set defaults."""
        import data
        import models

        parser = OptionParser(
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            description="DAGAN / SPADE semantic image synthesis",
        )
        parser.command_line = list(sys.argv[1:] if args is None else args)
        parser = self.initialize(parser)
        opt, _ = parser.parse_known_args(args)

        parser = models.get_option_setter(opt.model)(parser, self.isTrain)
        opt, _ = parser.parse_known_args(args)

        parser = data.get_option_setter(opt.dataset_mode)(parser, self.isTrain)
        opt, _ = parser.parse_known_args(args)

        if opt.load_from_opt_file:
            parser = self.update_options_from_file(parser, opt)

        # The final, strict parse: unknown flags and bad values stop here with argparse's message.
        opt = parser.parse_args(args)
        self.parser = parser
        return opt

    @staticmethod
    def option_file_path(opt, ext="json"):
        return os.path.join(opt.checkpoints_dir, opt.name, f"opt.{ext}")

    def update_options_from_file(self, parser, opt):
        path = self.option_file_path(opt, "json")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"--load_from_opt_file: {path} does not exist (it is written by train.py at the start of a run)"
            )
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        known = {action.dest for action in parser._actions}
        # Options of the run being loaded become defaults; flags given now still win. The layout and
        # allocator are choices of this process (test.py runs channels-last), not of the model.
        parser.set_defaults(**{k: v for k, v in saved.items()
                               if k in known and k not in DERIVED_OPTIONS and k not in PROCESS_OPTIONS})
        return parser

    def parse(self, args=None):
        """Parse ``args`` (default: sys.argv) and resolve the derived options. Writes nothing."""
        opt = self.gather_options(args)
        opt.isTrain = self.isTrain
        given = set(_explicit_flags(args if args is not None else sys.argv[1:]))

        if not self.isTrain and "load_size" not in given:
            # Test phase: no random crop, the network sees the whole (resized) image.
            opt.load_size = opt.crop_size

        if self.isTrain and opt.memory_format == "channels_last":
            raise ValueError(
                "--memory_format channels_last is for inference only (test.py): with torch's kernels, "
                "channels-last training gave wrong gradients in this model (tests/test_perf.py keeps the "
                "reproduction); train with the default --memory_format contiguous")
        opt.semantic_nc = opt.label_nc + (1 if opt.contain_dontcare_label else 0) + (0 if opt.no_instance else 1)
        _check_positive(opt)
        resolve_device(opt)
        self.opt = opt
        return opt

    # ------------------------------------------------------------------ saving
    def option_items(self, opt):
        """(name, value, default) of every parser option, sorted by name; derived values excluded."""
        items = []
        for action in self.parser._actions:
            if action.dest in ("help",) or action.dest in DERIVED_OPTIONS:
                continue
            value = getattr(opt, action.dest)
            if action.dest == "gpu_ids" and isinstance(value, list):
                value = ",".join(str(i) for i in value) if value else "-1"
            items.append((action.dest, value, action.default))
        return sorted(items)

    def format_options(self, opt):
        lines = ["----------------- Options ---------------"]
        for name, value, default in self.option_items(opt):
            mark = "" if value == default else f"\t[default: {default}]"
            lines.append(f"{name:>25}: {value!s:<30}{mark}")
        lines.append(f"{'semantic_nc':>25}: {opt.semantic_nc!s:<30}\t[derived]")
        lines.append(f"{'device':>25}: {opt.device!s:<30}\t[derived]")
        lines.append("----------------- End -------------------")
        return "\n".join(lines)

    def save_options(self, opt):
        """Write opt.txt (human) and opt.json (machine) into the experiment folder, atomically."""
        exp_dir = os.path.join(opt.checkpoints_dir, opt.name)
        os.makedirs(exp_dir, exist_ok=True)
        values = {name: value for name, value, _ in self.option_items(opt)}
        _atomic_write(self.option_file_path(opt, "txt"), self.format_options(opt) + "\n")
        _atomic_write(self.option_file_path(opt, "json"), json.dumps(values, indent=2, sort_keys=True) + "\n")


def _explicit_flags(argv):
    for token in argv:
        if token.startswith("--"):
            yield token[2:].split("=", 1)[0]


def _check_positive(opt):
    for name in ("batchSize", "crop_size", "load_size", "label_nc", "ngf"):
        if getattr(opt, name) <= 0:
            raise ValueError(f"--{name} must be positive, got {getattr(opt, name)}")
    if opt.aspect_ratio <= 0:
        raise ValueError(f"--aspect_ratio must be positive, got {opt.aspect_ratio}")


def parse_gpu_ids(text):
    try:
        ids = [int(t) for t in str(text).split(",") if t.strip() != ""]
    except ValueError:
        raise ValueError(f"--gpu_ids must be a comma-separated list of integers or -1, got {text!r}") from None
    return [i for i in ids if i >= 0]


def resolve_device(opt):
    """Choose the device once. Under torchrun each process takes the GPU of its LOCAL_RANK.

    ``--gpu_ids -1`` means CPU; when no CUDA device exists CPU is chosen automatically (and said so).
    """
    opt.world_size = int(os.environ.get("WORLD_SIZE", "1"))
    opt.rank = int(os.environ.get("RANK", "0"))
    opt.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    requested = parse_gpu_ids(opt.gpu_ids)
    if requested and torch.cuda.is_available():
        if opt.world_size > 1:
            index = requested[opt.local_rank] if opt.local_rank < len(requested) else opt.local_rank
        else:
            index = requested[0]
        opt.gpu_ids = requested
        opt.device = torch.device("cuda", index)
    else:
        if requested and str(opt.gpu_ids) != "0":
            logger.warning("--gpu_ids %s requested but CUDA is not available: running on CPU", opt.gpu_ids)
        opt.gpu_ids = []
        opt.device = torch.device("cpu")
    if opt.batchSize % opt.world_size != 0:
        raise ValueError(
            f"--batchSize {opt.batchSize} is the global batch and must divide evenly across "
            f"{opt.world_size} processes"
        )
    return opt.device


def _atomic_write(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
