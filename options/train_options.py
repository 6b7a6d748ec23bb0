"""Options of train.py (SPADE flag names): the schedule, logging, saving and evaluation of a run.

The model adds its losses and optimiser flags, the networks their architecture flags (D's only when
training); see ``options/base_options.py``.
"""

from util.errors import OptionError, require_non_negative, require_positive
from util.metrics.fid import INCEPTION_WEIGHTS_FILE

from .base_options import BaseOptions


class TrainOptions(BaseOptions):
    isTrain = True
    prog = "train.py"

    def initialize(self, parser):
        parser = super().initialize(parser)
        # display and saving
        parser.add_argument("--display_freq", type=int, default=100,
                            help="iterations between visual results on the training page")
        parser.add_argument("--print_freq", type=int, default=100, help="iterations between loss log lines")
        parser.add_argument("--save_latest_freq", type=int, default=5000,
                            help="iterations between full-state 'latest' checkpoints")
        parser.add_argument("--save_epoch_freq", type=int, default=10,
                            help="epochs between <epoch>_net_*.pth weight files")
        parser.add_argument("--save_iter_freq", type=int, default=0,
                            help="iterations between weight files labelled by the iteration, <iter>_net_*.pth "
                                 "(0 = none)")
        parser.add_argument("--no_html", action="store_true", help="do not write the training HTML page")
        parser.add_argument("--overwrite", action="store_true",
                            help="start a new run even if checkpoints/<name> already holds one (it is replaced)")

        # resuming / fine-tuning
        parser.add_argument("--continue_train", action="store_true",
                            help="resume from our full-state checkpoint, or fine-tune from official weight files")
        parser.add_argument("--which_epoch", type=str, default="latest",
                            help="which epoch to load: a number or 'latest'")

        # schedule (the optimiser's flags belong to the model)
        parser.add_argument("--niter", type=int, default=50, help="epochs at the initial learning rate")
        parser.add_argument("--niter_decay", type=int, default=0,
                            help="epochs of linear decay of the learning rate to zero")

        # evaluation during training and the EMA generator (util/train_eval.py, util/ema.py)
        parser.add_argument("--eval_freq", type=int, default=0,
                            help="iterations between FID / layout-score evaluations on the val split "
                                 "(keeps best_net_G.pth); 0 = off")
        parser.add_argument("--eval_batches", type=int, default=0,
                            help="val batches used by --eval_freq; 0 = the whole val split")
        parser.add_argument("--inception_weights", type=str, default=None,
                            help=f"{INCEPTION_WEIGHTS_FILE} for FID (default: the torch hub cache)")
        parser.add_argument("--fid_dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                            help="Inception feature dimension of FID during training")
        parser.add_argument("--ema_decay", type=float, default=0.0,
                            help="keep an exponential moving average of G with this decay (e.g. 0.999), "
                                 "used for evaluation and saved as *_net_G_ema.pth; 0 = off")
        parser.add_argument("--bn_recalib_batches", type=int, default=20,
                            help="training batches over which the EMA G's BatchNorm statistics are "
                                 "re-estimated before it is used")
        return parser

    def apply_phase_rules(self, opt, given):
        # Whether FID during training was asked for on the command line (--eval_freq, or OASIS's
        # --freq_fid) or is a default (a model's or preset's): a default is skipped with a warning
        # when the Inception weights are missing, an explicit request is an error (util/train_eval.py).
        opt.eval_freq_given = bool({"eval_freq", "freq_fid"} & set(given))

    @staticmethod
    def validate_options(opt):
        BaseOptions.validate_options(opt)
        require_positive(opt, "display_freq", "print_freq", "save_latest_freq", "save_epoch_freq")
        require_non_negative(opt, "niter", "niter_decay", "eval_freq", "eval_batches", "bn_recalib_batches",
                             "save_iter_freq")
        if opt.niter + opt.niter_decay < 1:
            raise OptionError("--niter", opt.niter, f"--niter + --niter_decay ({opt.niter_decay}) must be at "
                                                    "least one epoch")
        if not 0.0 <= opt.ema_decay < 1.0:
            raise OptionError("--ema_decay", opt.ema_decay, "must be in [0, 1) (0 = no EMA generator)")
        if opt.memory_format == "channels_last":
            raise OptionError(
                "--memory_format", opt.memory_format,
                "is for inference only (test.py): with torch's kernels, channels-last training gave wrong "
                "gradients in this model (tests/test_perf.py keeps the reproduction); train with the default "
                "--memory_format contiguous")
