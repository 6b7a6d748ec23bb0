"""Options of the AttentionGAN model (``--model attention_gan``): the official code's flag names
(Ha0Tang/AttentionGAN, on CycleGAN's options) and defaults.

Accepted with the official meaning: ``--ngf --ndf --netD basic|n_layers|pixel --n_layers_D --norm
--init_type --init_gain --input_nc --output_nc --lambda_A --lambda_B --lambda_identity --pool_size
--gan_mode lsgan|vanilla --lr --beta1 --lr_policy linear --niter --niter_decay`` (``--n_epochs``,
``--n_epochs_decay`` too), ``--epoch`` (= ``--which_epoch``), ``--num_test`` (= ``--how_many``),
``--num_threads`` (= ``--nThreads``), ``--batch_size``, ``--direction``, ``--serial_batches``,
``--no_flip``, ``--load_size --crop_size --preprocess``.

Accepted but without effect, as in the official code: ``--netG`` (the generator is always AttentionGAN's
attention-guided ResNet generator with 9 blocks and InstanceNorm; ``--norm`` reaches only the
discriminators) and ``--no_dropout`` (that generator has no dropout). Accepted without effect here:
the visdom display flags, ``--update_html_freq``, ``--saveDisk``, ``--suffix``, ``--load_iter``,
``--epoch_count`` and ``--lr_decay_iters`` (see ``NOOP_FLAGS``).
"""

from models.networks.attention_gan import NORMS
from models.networks.base_network import INIT_TYPES
from options.spade_compat import add_noop_flags, pop_noop_flags
from util.errors import OptionError, require_non_negative, require_positive

CYCLEGAN_GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")

# flag -> (phases, argparse keyword arguments, why it does nothing here)
NOOP_FLAGS = {
    "--display_id": ("both", dict(type=int), "no visdom display: the training page replaces it"),
    "--display_server": ("train", dict(type=str), "no visdom display: the training page replaces it"),
    "--display_env": ("train", dict(type=str), "no visdom display: the training page replaces it"),
    "--display_port": ("train", dict(type=int), "no visdom display: the training page replaces it"),
    "--display_ncols": ("train", dict(type=int), "no visdom display: the training page replaces it"),
    "--update_html_freq": ("train", dict(type=int), "the training page is written every --display_freq"),
    "--saveDisk": ("both", dict(action="store_true"), "the saved visuals are those of --save_attention"),
    "--suffix": ("both", dict(type=str), "the run name is --name as given"),
    "--load_iter": ("both", dict(type=int), "weights are chosen by --epoch / --which_epoch"),
    "--epoch_count": ("train", dict(type=int), "--continue_train resumes the epoch count from the checkpoint"),
    "--lr_decay_iters": ("train", dict(type=int), "only --lr_policy linear exists"),
    "--eval": ("test", dict(action="store_true"), "test.py always runs the networks in eval mode"),
}


def modify_commandline_options(parser, is_train):
    parser.add_argument("--ngf", type=int, default=64, help="generator width (first conv layer)")
    parser.add_argument("--netG", type=str, default="resnet_9blocks", choices=CYCLEGAN_GENERATORS,
                        help="accepted for the official command lines and, as in the official code, without effect: "
                             "the generator is always AttentionGAN's (9 residual blocks, InstanceNorm, no dropout)")
    parser.add_argument("--no_dropout", action="store_true", default=True,
                        help="accepted without effect: the AttentionGAN generator has no dropout (official default)")
    parser.add_argument("--input_nc", type=int, default=3, help="channels of domain A images (3)")
    parser.add_argument("--output_nc", type=int, default=3, help="channels of domain B images (3)")
    parser.add_argument("--init_type", type=str, default="normal", choices=INIT_TYPES, help="initialisation")
    parser.add_argument("--init_gain", type=float, default=0.02, help="scale of the initialisation")
    parser.add_argument("--epoch", dest="which_epoch", type=str, help="the official name of --which_epoch")
    if not is_train:
        parser.add_argument("--num_test", dest="how_many", type=int, help="the official name of --how_many")
        parser.add_argument("--single_generator", action="store_true",
                            help="load and run only G_A (A->B; with --direction BtoA the folders swap), for "
                                 "users who have one generator (the official 'test' model)")
    parser.add_argument("--num_threads", dest="nThreads", type=int, help="the official name of --nThreads")
    add_noop_flags(parser, is_train, NOOP_FLAGS, "AttentionGAN / CycleGAN flags accepted without effect here")
    if not is_train:
        return parser
    parser.add_argument("--ndf", type=int, default=64, help="discriminator width (first conv layer)")
    parser.add_argument("--netD", type=str, default="basic", choices=("basic", "n_layers", "pixel"),
                        help="basic: 70x70 PatchGAN; n_layers: --n_layers_D layers; pixel: 1x1 PatchGAN")
    parser.add_argument("--n_layers_D", type=int, default=3, help="layers of --netD n_layers")
    parser.add_argument("--norm", type=str, default="instance", choices=NORMS,
                        help="normalisation of the discriminators (the official code passes it to them only)")
    parser.add_argument("--lambda_A", type=float, default=10.0, help="weight of the cycle loss A -> B -> A")
    parser.add_argument("--lambda_B", type=float, default=10.0, help="weight of the cycle loss B -> A -> B")
    parser.add_argument("--lambda_identity", type=float, default=0.5,
                        help="weight of the identity loss, relative to the cycle weight of the domain")
    parser.add_argument("--pool_size", type=int, default=50, help="fakes kept for the discriminator updates (0: none)")
    parser.add_argument("--gan_mode", type=str, default="lsgan", choices=("lsgan", "vanilla"), help="GAN loss")
    parser.add_argument("--lr", type=float, default=0.0002, help="Adam learning rate")
    parser.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (beta2 0.999)")
    parser.add_argument("--lr_policy", type=str, default="linear", choices=("linear",),
                        help="learning rate schedule: constant for --niter epochs, then linear to 0 over --niter_decay")
    parser.add_argument("--n_epochs", dest="niter", type=int, help="the newer CycleGAN name of --niter")
    parser.add_argument("--n_epochs_decay", dest="niter_decay", type=int, help="the newer CycleGAN name of --niter_decay")
    parser.set_defaults(niter=100, niter_decay=100, print_freq=100, display_freq=400, save_epoch_freq=5)
    return parser


def validate_options(opt):
    require_positive(opt, "ngf", "input_nc", "output_nc")
    if opt.input_nc != 3 or opt.output_nc != 3:
        raise OptionError("--input_nc" if opt.input_nc != 3 else "--output_nc", opt.input_nc if opt.input_nc != 3
                          else opt.output_nc, "the AttentionGAN generator works on RGB images (9 RGB content images)")
    pop_noop_flags(opt, NOOP_FLAGS, "AttentionGAN / CycleGAN")
    if opt.crop_size % 4:
        raise OptionError("--crop_size", opt.crop_size, "must be a multiple of 4 (the generator halves the image twice)")
    if not opt.isTrain:
        return
    require_positive(opt, "ndf", "n_layers_D")
    require_positive(opt, "lr", kind="number")
    require_non_negative(opt, "pool_size")
    require_non_negative(opt, "lambda_A", "lambda_B", "lambda_identity", kind="number")
