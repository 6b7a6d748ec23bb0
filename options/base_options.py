"""Command-line options shared by training and testing.

Flag names follow NVlabs SPADE so that existing command lines keep working. Every flag is declared
once, by the component that uses it:

- here and in ``train_options.py`` / ``test_options.py``: the experiment, the generic data loading
  (sizes, preprocessing, loader) and the schedule / logging / evaluation of a phase;
- the model's ``modify_commandline_options`` (``models/<model>_options.py``): its losses and
  optimiser, and through ``models.networks`` the flags of the chosen ``--netG`` (and ``--netD``
  when training);
- the dataset's ``modify_commandline_options`` (``data/<mode>_dataset.py``): its own flags and its
  data facts as defaults (label_nc, sizes, ...);
- ``options/spade_compat.py``: SPADE flags that are accepted but do nothing here.

:meth:`BaseOptions.gather_options` builds the parser in passes (base -> model + networks -> dataset);
the presets of the (model, dataset) pair (``models.get_presets``) and, with ``--load_from_opt_file``,
the saved options of the run override the declared defaults (flags on the command line still win).
The final parser, holding every flag with its effective default, handles ``--help``.

:meth:`BaseOptions.parse` then calls the ``validate_options(opt)`` hooks (these options, the dataset,
the model, which calls the networks'); they check their values and set derived ones (``semantic_nc``
by the semantic datasets). A bad value is an :class:`util.errors.OptionError`, reported as argparse's
one-line error (exit status 2) before any network or dataset is built and before anything is written.
"""

import argparse
import json
import logging
import os
import sys

import torch

from data.base_dataset import PREPROCESS_MODES
from options.spade_compat import add_noop_flags, pop_noop_flags
from util.errors import OptionError, require_non_negative, require_positive

logger = logging.getLogger(__name__)


# Values computed by the hooks; never written to opt.json / opt.txt and never read back from them.
DERIVED_OPTIONS = ("semantic_nc", "device", "isTrain", "world_size", "rank", "local_rank", "eval_freq_given",
                   "which_epoch_given")
# Choices of this process, not of the run: --load_from_opt_file does not take them from the file.
PROCESS_OPTIONS = ("memory_format", "cpu_malloc", "cpu_threads", "gpu_ids", "nThreads", "verbose", "dry_run",
                   "load_from_opt_file", "overwrite", "continue_train")
# Preprocessing modes that resize the image so that its width / short side is --load_size, then crop.
RESIZE_THEN_CROP_MODES = ("resize_and_crop", "scale_width_and_crop", "scale_shortside_and_crop")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's effective default and where it comes from when not from the declaration:
    ``(default: 4, preset pix2pix/synthetic)``. Help texts that state their default themselves
    (``(default: ...)``), and flags whose default is None (their text says what None means) get no
    automatic suffix, so no default is shown twice."""

    default_origins = {}

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.default is argparse.SUPPRESS or action.default is None
                or "%(default)" in text or "(default" in text):
            return text
        origin = self.default_origins.get(action.dest)
        if origin:
            return text + " (default: %(default)s, " + origin.replace("%", "%%") + ")"
        return text + " (default: %(default)s)"


class OptionParser(argparse.ArgumentParser):
    """The options' ArgumentParser.

    - Remembers the command line it parses, so that option setters can peek at the partly built
      options with ``parser.parse_known_args()`` (no arguments) and see the same arguments as
      ``BaseOptions.parse(args)`` instead of ``sys.argv``.
    - Holds *layered defaults* (the presets, then the saved options of ``--load_from_opt_file``):
      values that beat the declared defaults, including those declared later by a setter; every
      parse (the peeks too) starts from them.
    - Errors are one line, ``<prog>: error: <message>``, exit status 2 (no usage block: the list of
      flags is long; ``--help`` shows it).
    - No abbreviated flags: a partial parser of an early pass could expand an abbreviation to a
      different flag than the final one.
    """

    def __init__(self, command_line, **kwargs):
        super().__init__(add_help=False, allow_abbrev=False, formatter_class=HelpFormatter, **kwargs)
        self.command_line = list(command_line)
        self.layered_defaults = {}
        self.default_origins = {}

    def declared(self):
        """dest names of every flag declared so far."""
        return {action.dest for action in self._actions}

    def set_layers(self, *layers):
        """``layers``: (values dict, origin text) pairs, lowest priority first."""
        self.layered_defaults = {}
        for values, origin in layers:
            self.layered_defaults.update(values)
            self.default_origins.update({name: origin for name in values})

    def effective_defaults(self):
        """Make the layered defaults the parser's defaults (for --help and the opt.txt marks)."""
        declared = self.declared()
        self.set_defaults(**{k: v for k, v in self.layered_defaults.items() if k in declared})

    def parse_known_args(self, args=None, namespace=None):
        if args is None:
            args = self.command_line
        if namespace is None:
            declared = self.declared()
            namespace = argparse.Namespace(**{k: v for k, v in self.layered_defaults.items() if k in declared})
        return super().parse_known_args(args, namespace)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _get_formatter(self):
        formatter = super()._get_formatter()
        formatter.default_origins = self.default_origins
        return formatter


# Where runs live unless --checkpoints_dir says otherwise (the test suite points it at a temporary folder,
# so that runs of the README's main job in ./checkpoints do not reach the tests through their opt.json).
DEFAULT_CHECKPOINTS_DIR = "./checkpoints"


class BaseOptions:
    """Builds the parser in passes and validates the result; see the module docstring."""

    isTrain = False
    prog = None  # program name in messages ('train.py', 'test.py'); None = sys.argv[0]
    description = "DAGAN / SPADE semantic image synthesis"  # the first line of --help
    # Options of a saved run that --load_from_opt_file does not take over (the file was found by
    # --name / --checkpoints_dir: they stay as given).
    not_from_file = DERIVED_OPTIONS + PROCESS_OPTIONS + ("name", "checkpoints_dir")
    # The saved options file the last parse read (None: none was read).
    option_file_read = None

    def initialize(self, parser):
        import data
        import models

        # experiment
        parser.add_argument("--name", type=str, default="synthetic_dagan",
                            help="name of the experiment; checkpoints go to <checkpoints_dir>/<name>")
        parser.add_argument("--gpu_ids", type=str, default="0",
                            help="GPU ids, e.g. 0  0,1,2  or -1 for CPU; CPU is used when no GPU exists")
        parser.add_argument("--checkpoints_dir", type=str, default=DEFAULT_CHECKPOINTS_DIR,
                            help="models are saved here")
        parser.add_argument("--model", type=str, default="pix2pix",
                            help=f"which model to use (models/<model>_model.py): {', '.join(models.known_models())}")
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
        parser.add_argument("--cpu_threads", type=int, default=0,
                            help="CPU runs: torch threads; 0 = one per core left free by other processes, "
                                 "checked at start and during the run (util/cpu.py); a fixed count keeps a run "
                                 "bit-exact on a machine whose load changes (OMP_NUM_THREADS fixes it too)")
        parser.add_argument("--phase", type=str, default="train", choices=["train", "val", "test"],
                            help="train, val or test split")
        parser.add_argument("--load_from_opt_file", action="store_true",
                            help="take option defaults from <checkpoints_dir>/<name>/opt.json (flags given "
                                 "now still win)")

        # data loading, common to every dataset mode (each mode adds its own flags and defaults)
        parser.add_argument("--dataroot", type=str, default="./datasets/synthetic", help="root of the dataset")
        parser.add_argument("--dataset_mode", type=str, default="synthetic",
                            help=f"dataset mode (data/<mode>_dataset.py): {', '.join(data.known_dataset_modes())}")
        parser.add_argument("--batchSize", "--batch_size", type=int, default=1,
                            help="global batch size (split evenly across processes under torchrun)")
        parser.add_argument("--preprocess_mode", type=str, default="scale_width_and_crop",
                            choices=PREPROCESS_MODES, help="scaling and cropping of images at load time")
        parser.add_argument("--load_size", type=int, default=1024,
                            help="scale images to this size (meaning depends on --preprocess_mode)")
        parser.add_argument("--crop_size", type=int, default=512,
                            help="crop to this size; the generator's output width")
        parser.add_argument("--aspect_ratio", type=float, default=1.0,
                            help="width / height of the generated image")
        parser.add_argument("--serial_batches", action="store_true",
                            help="take images in order instead of shuffling")
        parser.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
        parser.add_argument("--nThreads", default=0, type=int, help="data loader worker processes")
        parser.add_argument("--max_dataset_size", type=int, default=sys.maxsize,
                            help="use at most this many samples, after natural sorting (default: all)")
        parser.add_argument("--display_winsize", type=int, default=400,
                            help="width of the images on the training page, kept within 256..512 pixels "
                                 "(smaller images are scaled up with sharp pixels)")
        return parser

    # ------------------------------------------------------------------ validation
    @staticmethod
    def validate_options(opt):
        """Checks of the flags declared in :meth:`initialize`."""
        require_positive(opt, "batchSize", "load_size", "crop_size", "display_winsize", "max_dataset_size")
        require_positive(opt, "aspect_ratio", kind="number")
        require_non_negative(opt, "nThreads", "cpu_threads")
        parse_gpu_ids(opt.gpu_ids)
        if opt.preprocess_mode in RESIZE_THEN_CROP_MODES and opt.load_size < opt.crop_size:
            raise OptionError("--load_size", opt.load_size,
                              f"must be at least --crop_size {opt.crop_size}: --preprocess_mode "
                              f"{opt.preprocess_mode} resizes to --load_size, then crops --crop_size")

    def apply_phase_rules(self, opt, given):
        """Values that depend on which flags were given (``given``: their dest names)."""

    # ------------------------------------------------------------------ parsing
    def gather_options(self, args=None):
        """Build the parser in passes and parse ``args`` (default: sys.argv) with it.

        1. base (this class's :meth:`initialize`);
        2. ``--load_from_opt_file``: the saved options become layered defaults (they may name the
           model and the dataset);
        3. the presets of (model, dataset_mode), below the saved options;
        4. the model's option setter (it adds the networks' flags), then the presets of the variant the
           model's presets select by an option's value (``VARIANT_OPTION``, e.g. pix2pix by ``--netG``);
        5. the dataset's option setter;
        6. the SPADE no-op flags, then the final parse with ``--help``: every flag applies, with its
           effective default.
        """
        import data
        import models

        command_line = list(sys.argv[1:] if args is None else args)
        parser = OptionParser(command_line, prog=self.prog, description=self.description)
        self.parser = parser
        self.initialize(parser)
        opt, _ = parser.parse_known_args()
        # Without --dataset_mode the model's embedded task is used (semantic models: the synthetic scenes),
        # and without --name the model's main-job run folder (DAGAN's, OASIS's ... do not collide).
        model_cls = models.find_model_using_name(opt.model)
        parser.set_defaults(dataset_mode=model_cls.default_dataset_mode, name=model_cls.default_name)
        opt, _ = parser.parse_known_args()

        saved, saved_origin = {}, None
        self.option_file_read = None
        if self.reads_option_file(opt):
            saved, saved_origin = self.read_option_file(opt), f"from {self.option_file_path(opt, 'json')}"
            self.option_file_read = self.option_file_path(opt, "json")
            parser.set_layers((saved, saved_origin))
            opt, _ = parser.parse_known_args()

        presets = models.get_presets(opt.model, opt.dataset_mode, self.isTrain)
        parser.set_layers((presets, f"preset {opt.model}/{opt.dataset_mode}"), (saved, saved_origin))

        models.get_option_setter(opt.model)(parser, self.isTrain)
        variant_option = models.preset_variant_option(opt.model)
        if variant_option is not None:
            # Presets of a variant (e.g. per --netG), known once the model's setter declared the option.
            variant = getattr(parser.parse_known_args()[0], variant_option, None)
            variant_presets = models.get_presets(opt.model, opt.dataset_mode, self.isTrain, variant=variant)
            if variant_presets:
                layers = [(presets, f"preset {opt.model}/{opt.dataset_mode}"),
                          (variant_presets, f"preset {opt.model}/{variant}/{opt.dataset_mode}")]
                parser.set_layers(*layers, (saved, saved_origin))
                # A variant with its own main-job run folder (a preset name): the saved options are that
                # folder's, not those of the folder the model's default name pointed at.
                renamed, _ = parser.parse_known_args()
                if renamed.name != opt.name:
                    saved, saved_origin, self.option_file_read = {}, None, None
                    if self.reads_option_file(renamed):
                        saved = self.read_option_file(renamed)
                        saved_origin = f"from {self.option_file_path(renamed, 'json')}"
                        self.option_file_read = self.option_file_path(renamed, "json")
                    parser.set_layers(*layers, (saved, saved_origin))

        before = {action.dest: action.default for action in parser._actions}
        data.get_option_setter(opt.dataset_mode)(parser, self.isTrain)
        for action in parser._actions:
            if (action.dest in before and action.default != before[action.dest]
                    and action.dest not in parser.layered_defaults):
                parser.default_origins[action.dest] = f"dataset {opt.dataset_mode}"

        add_noop_flags(parser, self.isTrain)
        parser.effective_defaults()
        parser.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                            help="show this help message (the flags of the chosen --model, --netG, --netD "
                                 "and --dataset_mode, with their effective defaults) and exit")
        return parser.parse_args()

    @staticmethod
    def option_file_path(opt, ext="json"):
        return os.path.join(opt.checkpoints_dir, opt.name, f"opt.{ext}")

    def reads_option_file(self, opt):
        """Whether the parse takes defaults from the run's saved options (``--load_from_opt_file``;
        test.py also when the file exists, see TestOptions)."""
        return opt.load_from_opt_file

    def read_option_file(self, opt):
        """The saved options of ``--load_from_opt_file`` that this run takes over."""
        path = self.option_file_path(opt, "json")
        if not os.path.isfile(path):
            raise OptionError("--load_from_opt_file", None,
                              f"{path} does not exist (train.py writes it at the start of a run)")
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        return {k: v for k, v in saved.items() if k not in self.not_from_file}

    def parse(self, args=None):
        """Parse ``args`` (default: sys.argv), validate, resolve the derived options. Writes nothing.

        A bad value exits with argparse's one-line error, status 2."""
        import data
        import models

        try:
            opt = self.gather_options(args)
            opt.isTrain = self.isTrain
            pop_noop_flags(opt)
            self.apply_phase_rules(opt, set(_explicit_flags(self.parser.command_line)))
            type(self).validate_options(opt)
            data.find_dataset_using_name(opt.dataset_mode).validate_options(opt)
            models.find_model_using_name(opt.model).validate_options(opt)
            resolve_device(opt)
        except OptionError as err:
            self.parser.error(str(err))
        self.opt = opt
        return opt

    # ------------------------------------------------------------------ saving
    def option_items(self, opt):
        """(name, value, default) of every option, sorted by name; derived values excluded."""
        items = {}
        for action in self.parser._actions:
            # help and the SPADE no-op flags (SUPPRESS) are no options; a second flag of the same
            # option (--vgg_loss for no_vgg_loss) adds nothing.
            if action.default is argparse.SUPPRESS or action.dest in DERIVED_OPTIONS or action.dest in items:
                continue
            value = getattr(opt, action.dest)
            if action.dest == "gpu_ids" and isinstance(value, list):
                value = ",".join(str(i) for i in value) if value else "-1"
            items[action.dest] = (action.dest, value, action.default)
        return sorted(items.values())

    def format_options(self, opt):
        lines = ["----------------- Options ---------------"]
        for name, value, default in self.option_items(opt):
            mark = "" if value == default else f"\t[default: {default}]"
            lines.append(f"{name:>25}: {value!s:<30}{mark}")
        for name in ("semantic_nc", "device"):
            if name in vars(opt):
                lines.append(f"{name:>25}: {vars(opt)[name]!s:<30}\t[derived]")
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


def parse_gpu_ids(text):
    try:
        ids = [int(t) for t in str(text).split(",") if t.strip() != ""]
    except ValueError:
        raise OptionError("--gpu_ids", text, "must be a comma-separated list of integers, or -1 for CPU") from None
    return [i for i in ids if i >= 0]


def resolve_device(opt):
    """Choose the device once. Under torchrun each process takes the GPU of its LOCAL_RANK.

    ``--gpu_ids -1`` means CPU; when no CUDA device exists CPU is chosen automatically (and said so).
    """
    opt.world_size = int(os.environ.get("WORLD_SIZE", "1"))
    opt.rank = int(os.environ.get("RANK", "0"))
    opt.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if opt.batchSize % opt.world_size != 0:
        raise OptionError("--batchSize", opt.batchSize,
                          f"is the global batch and must divide evenly across the {opt.world_size} processes")
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
    return opt.device


def _atomic_write(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
