"""Network registry: ``--netG``, ``--netD`` and the VAE encoder are found by name here.

``define_G/D/E(opt)`` build a network, initialise it (``--init_type``, ``--init_variance``) and move
it to ``opt.device``. ``modify_commandline_options`` adds the flags of the chosen networks.

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

from .attention import ChannelAttention, ScaleFusion, SpatialAttention
from .base_network import BaseNetwork, count_parameters, init_weights
from .discriminator import MultiscaleDiscriminator, NLayerDiscriminator, add_argument_once
from .encoder import ConvEncoder
from .generator import UPSAMPLING_LAYERS, DAGANGenerator, SPADEGenerator
from .loss import GANLoss, KLDLoss, VGGLoss
from .normalization import convert_sync_batchnorm

logger = logging.getLogger(__name__)

NETWORKS = {
    "generator": {"dagan": DAGANGenerator, "spade": SPADEGenerator},
    "discriminator": {"multiscale": MultiscaleDiscriminator},
    "encoder": {"conv": ConvEncoder},
}

__all__ = [
    "BaseNetwork", "ChannelAttention", "ConvEncoder", "DAGANGenerator", "GANLoss", "KLDLoss",
    "MultiscaleDiscriminator", "NLayerDiscriminator", "SPADEGenerator", "ScaleFusion", "SpatialAttention", "VGGLoss",
    "convert_sync_batchnorm", "count_parameters",
    "define_D", "define_E", "define_G", "find_network_using_name", "init_weights",
    "modify_commandline_options",
]


def find_network_using_name(kind, name):
    """The class registered as ``name`` for ``kind`` ('generator' | 'discriminator' | 'encoder')."""
    if kind not in NETWORKS:
        raise ValueError(f"unknown network kind {kind!r}; known: {', '.join(NETWORKS)}")
    known = NETWORKS[kind]
    if name not in known:
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known))}")
    return known[name]


def modify_commandline_options(parser, is_train, args=None):
    """Add the flags of the generator chosen by ``--netG`` (and of D when training).

    ``args``: the command line being parsed; ``None`` lets the options module's ``OptionParser`` supply
    the arguments it is parsing (``sys.argv`` for a plain parser). Read to see which generator is chosen. Flags the options module already declares are not re-added.
    """
    add_argument_once(parser, "--num_upsampling_layers", choices=tuple(UPSAMPLING_LAYERS), default="normal",
                      help="normal: 5 upsamplings; more: one between the middle blocks (Cityscapes); "
                           "most: also one more block at the end")
    add_argument_once(parser, "--netG", type=str, default="dagan",
                      help=f"generator: {', '.join(sorted(NETWORKS['generator']))}")
    opt, _ = parser.parse_known_args(args)
    parser = find_network_using_name("generator", opt.netG).modify_commandline_options(parser, is_train)
    if is_train:
        add_argument_once(parser, "--netD", type=str, default="multiscale",
                          help=f"discriminator: {', '.join(sorted(NETWORKS['discriminator']))}")
        opt, _ = parser.parse_known_args(args)
        parser = find_network_using_name("discriminator", opt.netD).modify_commandline_options(parser, is_train)
    return parser


def _build(cls, opt):
    net = cls(opt)
    net.init_weights(getattr(opt, "init_type", "xavier"), getattr(opt, "init_variance", 0.02))
    device = getattr(opt, "device", None)
    if device is not None:
        net.to(device)
    logger.info("network [%s] was created: %s parameters", cls.__name__, f"{count_parameters(net):,}")
    return net


def define_G(opt):
    """The generator named by ``opt.netG``, initialised, on ``opt.device``."""
    return _build(find_network_using_name("generator", opt.netG), opt)


def define_D(opt):
    """The discriminator named by ``opt.netD``, initialised, on ``opt.device``."""
    return _build(find_network_using_name("discriminator", getattr(opt, "netD", "multiscale")), opt)


def define_E(opt):
    """The VAE image encoder, initialised, on ``opt.device``."""
    return _build(find_network_using_name("encoder", "conv"), opt)
