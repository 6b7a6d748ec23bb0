"""Options of the pix2pix model (SPADE's training model, used unchanged by DAGAN).

``Pix2PixModel.modify_commandline_options`` / ``validate_options`` are these two functions. The
model adds its training flags (losses, optimiser) and, through ``models.networks``, the flags of the
networks it builds; it checks them after parsing.
"""

from models import networks
from models.networks.loss import GAN_MODES, VGG19_FILE
from options.spade_compat import add_noop_flags, pop_noop_flags
from util.errors import OptionError, require_non_negative, require_positive

# Adam betas: under TTUR the model always uses (0.0, 0.9) (SPADE's defaults); with --no_TTUR it uses
# --beta1 / --beta2, whose defaults are then (0.5, 0.999) (SPADE options/train_options.py).
TTUR_BETAS = (0.0, 0.9)
NO_TTUR_BETAS = (0.5, 0.999)


_TORCHRUN = ("CC-FPSE's multi-process launch: run 'torchrun --nproc_per_node N train.py ...' "
             "(scripts/launch_train.sh) for DDP over N GPUs, with --batchSize the global batch "
             "(N x the official per-process --batchSize)")
_SEE_MPDIST = "a flag of CC-FPSE's multi-process launch (see --mpdist): use torchrun"

# The official CC-FPSE code (options/base_options.py) launches its own processes (mp.spawn + NCCL) with these
# flags; here multi-GPU training is torchrun + DDP, and --batchSize is the global batch. Accepted, warned about.
CCFPSE_NOOP_FLAGS = {
    "--mpdist": ("both", dict(action="store_true"), _TORCHRUN),
    "--dist_url": ("both", dict(type=str), _SEE_MPDIST),
    "--num_servers": ("both", dict(type=int), _SEE_MPDIST),
    "--idx_server": ("both", dict(type=int), _SEE_MPDIST),
    "--ngpus_per_node": ("both", dict(type=int), _SEE_MPDIST),
}


def modify_commandline_options(parser, is_train):
    """Add the networks' flags, and when training the losses' and the optimiser's."""
    networks.modify_commandline_options(parser, is_train)
    add_noop_flags(parser, is_train, CCFPSE_NOOP_FLAGS, "CC-FPSE flags accepted without effect here")
    if not is_train:
        parser.add_argument("--sample_z", action="store_true",
                            help="with --use_vae: z ~ N(0, I), seeded by --seed (multimodal, the same images on "
                                 "every run) instead of the default, SPADE's test: z = mu + sigma * eps from the "
                                 "encoding of each sample's real photo (which the official CC-FPSE test scripts "
                                 "use, unseeded)")
        return parser

    # optimiser and schedule of the updates
    parser.add_argument("--lr", type=float, default=0.0002,
                        help="initial learning rate of Adam (under TTUR: G lr/2, D lr*2)")
    parser.add_argument("--no_TTUR", action="store_true",
                        help="same lr for G and D and Adam betas (--beta1, --beta2); TTUR otherwise: "
                             "G lr/2, D lr*2, betas (0.0, 0.9)")
    opt, _ = parser.parse_known_args()
    beta1, beta2 = NO_TTUR_BETAS if opt.no_TTUR else TTUR_BETAS
    parser.add_argument("--beta1", type=float, default=beta1,
                        help="Adam beta1; only --no_TTUR reads it (TTUR runs with 0.0)")
    parser.add_argument("--beta2", type=float, default=beta2,
                        help="Adam beta2; only --no_TTUR reads it (TTUR runs with 0.9)")
    parser.add_argument("--D_steps_per_G", type=int, default=1,
                        help="discriminator steps per generator step")

    # losses
    parser.add_argument("--gan_mode", type=str, default="hinge", choices=GAN_MODES, help="GAN loss")
    parser.add_argument("--lambda_feat", type=float, default=10.0, help="weight of the feature matching loss")
    parser.add_argument("--lambda_vgg", type=float, default=10.0, help="weight of the VGG perceptual loss")
    parser.add_argument("--lambda_kld", type=float, default=0.05, help="weight of the KL divergence (--use_vae)")
    parser.add_argument("--no_ganFeat_loss", action="store_true", help="no discriminator feature matching loss")
    parser.add_argument("--no_vgg_loss", action="store_true", help="no VGG perceptual loss")
    parser.add_argument("--vgg_loss", dest="no_vgg_loss", action="store_false",
                        help="use the VGG perceptual loss where a preset turns it off (e.g. the synthetic "
                             "main job's) (default: see --no_vgg_loss)")
    parser.add_argument("--vgg_weights", type=str, default=None,
                        help=f"VGG19 ImageNet weights file (default: <torch hub dir>/checkpoints/{VGG19_FILE})")
    return parser


def validate_options(opt):
    """Check the networks' options, and when training the losses' and the optimiser's."""
    pop_noop_flags(opt, CCFPSE_NOOP_FLAGS, "CC-FPSE")
    if "semantic_nc" not in vars(opt):
        raise OptionError("--dataset_mode", opt.dataset_mode,
                          f"--model {opt.model} needs a dataset of label maps (a semantic dataset)")
    networks.validate_options(opt)
    if not opt.isTrain:
        if opt.sample_z and not opt.use_vae:
            raise OptionError("--sample_z", None, "needs --use_vae (without it the generator has no latent z)")
        return
    require_positive(opt, "lr", kind="number")
    require_positive(opt, "D_steps_per_G")
    require_non_negative(opt, "lambda_feat", "lambda_vgg", "lambda_kld", kind="number")
    for name in ("beta1", "beta2"):
        value = getattr(opt, name)
        if not 0.0 <= value < 1.0:
            raise OptionError(name, value, "must be in [0, 1)")
    if not opt.no_TTUR and (opt.beta1, opt.beta2) != TTUR_BETAS:
        name, value = ("beta1", opt.beta1) if opt.beta1 != TTUR_BETAS[0] else ("beta2", opt.beta2)
        raise OptionError(name, value, f"is read only with --no_TTUR (TTUR trains with Adam betas {TTUR_BETAS})")
