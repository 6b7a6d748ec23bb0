"""Shared network utilities: weight initialisation, parameter counting, the leaky-ReLU slope."""

import logging

import torch.nn as nn
from torch.nn import init

logger = logging.getLogger(__name__)

INIT_TYPES = ("xavier", "xavier_uniform", "normal", "kaiming", "orthogonal", "none")
# Negative slope of every leaky ReLU in the SPADE / DAGAN networks (the reference code's 0.2).
LRELU_SLOPE = 0.2


def count_parameters(module):
    """Number of learnable parameters (spectral-norm u/v and BatchNorm statistics are buffers)."""
    return sum(p.numel() for p in module.parameters())


def init_weights(net, init_type="xavier", gain=0.02):
    """Initialise every Conv / Linear weight of ``net`` in place; biases to zero (SPADE's scheme).

    For spectrally-normalised layers ``m.weight`` is a tensor sharing storage with ``weight_orig``,
    so the in-place init reaches the stored parameter. Affine BatchNorm weights ~ N(1, gain).
    ``none`` keeps PyTorch's default initialisation.
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r}; known: {', '.join(INIT_TYPES)}")
    if init_type == "none":
        return net

    def init_module(m):
        classname = type(m).__name__
        weight = getattr(m, "weight", None)
        bias = getattr(m, "bias", None)
        if "BatchNorm2d" in classname:
            if weight is not None:
                init.normal_(weight, 1.0, gain)
            if bias is not None:
                init.constant_(bias, 0.0)
        elif weight is not None and ("Conv" in classname or "Linear" in classname):
            if init_type == "normal":
                init.normal_(weight, 0.0, gain)
            elif init_type == "xavier":
                init.xavier_normal_(weight, gain=gain)
            elif init_type == "xavier_uniform":
                init.xavier_uniform_(weight, gain=1.0)
            elif init_type == "kaiming":
                init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                init.orthogonal_(weight, gain=gain)
            if bias is not None:
                init.constant_(bias, 0.0)

    net.apply(init_module)
    return net


class BaseNetwork(nn.Module):
    """Base class of G, D and E: option hook and initialisation."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    @staticmethod
    def validate_options(opt):
        """Check this network's option values after parsing; raise ``util.errors.OptionError``."""

    def init_weights(self, init_type="xavier", gain=0.02):
        return init_weights(self, init_type, gain)
