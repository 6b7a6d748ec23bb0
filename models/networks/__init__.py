"""Network registry: ``--netG``, ``--netD`` and the VAE encoder are found by name here.

``define_G/D/E(opt)`` build a network, initialise it (``--init_type``, ``--init_variance``) and move
it to ``opt.device``. ``modify_commandline_options`` adds the flags of the chosen networks and
``validate_options`` checks them (called by the model's option hooks, see ``models/pix2pix_options.py``).

Interfaces every registered network keeps (the model calls nothing else):

* generator: ``forward(semantics [B,semantic_nc,H,W], z=None, class_ids=None) -> image [B,3,H,W]``;
  ``z`` [B,z_dim] for a VAE / noise-conditioned G (None: drawn or unused); ``class_ids`` int64
  [B,H,W], the labels the one-hot channels of ``semantics`` encode (None: recovered from the map, or
  a plain path; same image). Generators with attention maps add
  ``forward_with_attention(semantics, z=None, class_ids=None) -> (image, {name: map})``.
* discriminator: ``forward(images [k*B,3,H,W], semantics [B,S,H,W]) -> list (per scale / head) of
  lists of features``, the score map last; image j is paired with label map j % B (fake and real go
  through in one batch, k = 2). A conditional D uses ``semantics`` (the multiscale PatchGAN concatenates
  them, computing their share of its first convolution once for the k groups; a projection D would
  embed them), an unconditional one (a U-Net segmenter) ignores them.
* encoder: ``forward(image [B,3,H,W]) -> (mu, logvar) [B,z_dim]``.

Speed code lives in ``ops/``, each fast op beside its plain reference; ``ops.to_reference(net)``
swaps a built network's fast layers for reference twins (tests, benchmarks).
"""

import logging

from util.errors import OptionError, require_positive

from .attention import ChannelAttention, ScaleFusion, SpatialAttention
from .ccfpse import CondConvGenerator, FPSEDiscriminator
from .base_network import INIT_TYPES, BaseNetwork, count_parameters, init_weights
from .discriminator import MultiscaleDiscriminator, NLayerDiscriminator, check_conv_norm
from .encoder import ConvEncoder
from .generator import DAGANGenerator, SPADEGenerator
from .loss import GANLoss, KLDLoss, VGGLoss
from .normalization import convert_sync_batchnorm

logger = logging.getLogger(__name__)

NETWORKS = {
    "generator": {"dagan": DAGANGenerator, "spade": SPADEGenerator, "condconv": CondConvGenerator},
    "discriminator": {"multiscale": MultiscaleDiscriminator, "fpse": FPSEDiscriminator},
    "encoder": {"conv": ConvEncoder},
}

__all__ = [
    "BaseNetwork", "ChannelAttention", "CondConvGenerator", "ConvEncoder", "DAGANGenerator", "FPSEDiscriminator",
    "GANLoss", "KLDLoss",
    "MultiscaleDiscriminator", "NLayerDiscriminator", "SPADEGenerator", "ScaleFusion", "SpatialAttention", "VGGLoss",
    "convert_sync_batchnorm", "count_parameters",
    "define_D", "define_E", "define_G", "discriminator_class", "find_network_using_name", "generator_class",
    "init_weights", "modify_commandline_options", "validate_options",
]


def find_network_using_name(kind, name):
    """The class registered as ``name`` for ``kind`` ('generator' | 'discriminator' | 'encoder')."""
    if kind not in NETWORKS:
        raise ValueError(f"unknown network kind {kind!r}; known: {', '.join(NETWORKS)}")
    known = NETWORKS[kind]
    if name not in known:
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known))}")
    return known[name]


def generator_class(name):
    """The generator class registered as ``name``; :class:`OptionError` (``--netG``) otherwise."""
    return _registered("generator", "--netG", name)


def discriminator_class(name):
    """The discriminator class registered as ``name``; :class:`OptionError` (``--netD``) otherwise."""
    return _registered("discriminator", "--netD", name)


def _registered(kind, flag, name):
    known = NETWORKS[kind]
    if name not in known:
        raise OptionError(flag, name, sorted(known), kind=kind)
    return known[name]


def modify_commandline_options(parser, is_train):
    """Add the networks' flags: the generator's (``--netG`` and the chosen class's own), the VAE
    encoder's, and when training the discriminator's (``--netD`` and the chosen class's own).

    Peeks at the partly built options with ``parser.parse_known_args()`` to see which networks are
    chosen (the options module's parser parses the command line being parsed).
    """
    parser.add_argument("--netG", type=str, default="dagan",
                        help=f"generator: {', '.join(sorted(NETWORKS['generator']))}")
    parser.add_argument("--ngf", type=int, default=64, help="number of generator filters in the last conv layer")
    parser.add_argument("--output_nc", type=int, default=3, help="number of channels of the generated image")
    parser.add_argument("--init_type", type=str, default="xavier", choices=INIT_TYPES,
                        help="initialisation of every network")
    parser.add_argument("--init_variance", type=float, default=0.02, help="variance (gain) of the initialisation")
    parser.add_argument("--use_vae", action="store_true",
                        help="style from a reference image: train/test with the VAE image encoder netE")
    parser.add_argument("--z_dim", type=int, default=256, help="dimension of the latent z vector (--use_vae)")
    parser.add_argument("--norm_E", type=str, default="spectralinstance",
                        help="normalisation of the encoder (--use_vae): [spectral](instance|batch|syncbatch|none)")
    opt, _ = parser.parse_known_args()
    generator_class(opt.netG).modify_commandline_options(parser, is_train)
    if is_train:
        parser.add_argument("--netD", type=str, default="multiscale",
                            help=f"discriminator: {', '.join(sorted(NETWORKS['discriminator']))}")
        opt, _ = parser.parse_known_args()
        discriminator_class(opt.netD).modify_commandline_options(parser, is_train)
    return parser


def validate_options(opt):
    """Check the networks' options (the discriminator's only when training); :class:`OptionError`."""
    require_positive(opt, "ngf", "z_dim")
    require_positive(opt, "init_variance", kind="number")
    check_conv_norm("--norm_E", opt.norm_E)
    generator_class(opt.netG).validate_options(opt)
    if opt.isTrain:
        discriminator_class(opt.netD).validate_options(opt)


def _build(cls, opt):
    net = cls(opt)
    net.init_weights(opt.init_type, opt.init_variance)
    net.to(opt.device)
    logger.info("network [%s] was created: %s parameters", cls.__name__, f"{count_parameters(net):,}")
    return net


def define_G(opt):
    """The generator named by ``opt.netG``, initialised, on ``opt.device``."""
    return _build(find_network_using_name("generator", opt.netG), opt)


def define_D(opt):
    """The discriminator named by ``opt.netD``, initialised, on ``opt.device``."""
    return _build(find_network_using_name("discriminator", opt.netD), opt)


def define_E(opt):
    """The VAE image encoder, initialised, on ``opt.device``."""
    return _build(find_network_using_name("encoder", "conv"), opt)
