"""Exponential moving average (EMA) of the generator's weights, and BatchNorm re-estimation.

After every generator step ``ema = decay * ema + (1 - decay) * G`` for every parameter; buffers
(BatchNorm running statistics, spectral-norm u/v vectors) are copied from G, because an average of
running statistics does not describe the activations of the averaged weights (``average_buffers``:
floating buffers are averaged too, as the official OASIS code averages the whole state dict). Before the EMA
generator is used in eval mode (evaluation, the ``*_net_G_ema.pth`` files) its BatchNorm statistics
are therefore re-estimated: :func:`recalibrate_batchnorm` runs it in train mode over batches of
training labels with ``momentum=None`` (cumulative averages: every batch counts equally).
"""
import copy
import logging

import torch
import torch.nn as nn

from util.distributed import unwrap

logger = logging.getLogger(__name__)


class GeneratorEMA:
    """EMA copy of a generator network.

    ``net`` (nn.Module) is the averaged copy: same input/output shapes as the source G
    (semantics [B,semantic_nc,H,W] -> image [B,3,H,W]); never trained, requires_grad off.
    ``update(netG)`` after each G step; ``state_dict()`` / ``load_state_dict()`` for the full-state
    checkpoint ({'net': state dict, 'decay', 'num_updates'}).
    """

    def __init__(self, netG, decay, average_buffers=False):
        if not 0.0 < decay < 1.0:
            raise ValueError(f'--ema_decay must be in (0, 1) (0 turns the EMA off), got {decay}')
        self.decay = float(decay)
        self.average_buffers = bool(average_buffers)
        self.net = copy.deepcopy(unwrap(netG))
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, netG):
        src = unwrap(netG)
        own_params = dict(self.net.named_parameters())
        for name, p in src.named_parameters():
            # lerp_: ema + (1 - decay) * (p - ema) = decay * ema + (1 - decay) * p
            own_params[name].lerp_(p.detach().to(own_params[name].dtype), 1.0 - self.decay)
        own_buffers = dict(self.net.named_buffers())
        for name, b in src.named_buffers():
            if self.average_buffers and b.is_floating_point():
                own_buffers[name].lerp_(b.to(own_buffers[name].dtype), 1.0 - self.decay)
            else:
                own_buffers[name].copy_(b)
        self.num_updates += 1

    def state_dict(self):
        return {'net': {k: v.detach().to('cpu', copy=True) for k, v in self.net.state_dict().items()},
                'decay': self.decay, 'num_updates': int(self.num_updates)}

    def load_state_dict(self, state, source='checkpoint'):
        from util.checkpoint import load_state_dict_checked
        load_state_dict_checked(self.net, state['net'], source)
        self.num_updates = int(state.get('num_updates', 0))


def _plain_batchnorm(module):
    """Replace SyncBatchNorm by BatchNorm2d (same state): re-estimation runs on one process, where
    SyncBatchNorm would wait for the other ranks (and it raises on CPU tensors)."""
    for name, child in module.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            bn = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                child.track_running_stats).to(next(child.buffers()).device)
            bn.load_state_dict(child.state_dict())
            setattr(module, name, bn)
        else:
            _plain_batchnorm(child)
    return module


@torch.no_grad()
def recalibrate_in_place(net, inputs, max_batches):
    """The official OASIS way: ``net`` itself runs in train mode over at most ``max_batches`` of
    ``inputs`` (its BatchNorm layers update their statistics with their momentum, its spectral-norm
    layers do their power iteration), then goes back to eval mode. Returns ``net``."""
    net.train()
    for n, args in enumerate(inputs):
        if n >= max_batches:
            break
        net(*args) if isinstance(args, (tuple, list)) else net(args)
    return net.eval()


def has_batchnorm(net):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


@torch.no_grad()
def recalibrate_batchnorm(net, inputs, max_batches=0):
    """A copy of ``net`` whose BatchNorm running statistics are re-estimated; ``net`` is unchanged.

    inputs: an iterable of positional-argument tuples (or single tensors) for ``net``'s forward,
    e.g. the one-hot semantics [B,semantic_nc,H,W] of training label maps. Each BatchNorm layer's
    running_mean / running_var become the average over the batches of the per-batch mean and
    unbiased variance of its input (PyTorch's momentum=None cumulative average). The copy is
    returned in eval mode. max_batches: 0 = all of ``inputs``.
    """
    net = _plain_batchnorm(copy.deepcopy(unwrap(net)))
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return net.eval()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    n = 0
    for args in inputs:
        if max_batches and n >= max_batches:
            break
        net(*args) if isinstance(args, (tuple, list)) else net(args)
        n += 1
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    if n == 0:
        raise ValueError('BatchNorm re-estimation got no batches')
    logger.debug('BatchNorm statistics re-estimated on %d batches', n)
    return net.eval()
