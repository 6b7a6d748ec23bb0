"""One training iteration of SPADE/DAGAN: a generator step, then a discriminator step (SPEC §5).

The model returns loss dictionaries; the trainer sums whatever is in them, steps the optimizers
and keeps the latest values for logging, so adding a loss touches only the model.
"""
import contextlib
import logging

import torch

import models
from util.cpu import native_bf16
from util.ddp import no_sync

logger = logging.getLogger(__name__)


def lr_for_epoch(opt, epoch):
    """Base learning rate used during ``epoch`` (1-based) under SPADE's linear decay.

    The reference trainer lowers the rate at the end of every epoch > niter by lr / niter_decay,
    so epochs 1..niter+1 run at ``lr`` and epoch niter+niter_decay runs at lr / niter_decay. The
    same repeated subtraction is done here (not a closed form) so the rates are bit-identical to
    the reference's, and the result depends only on the epoch, which makes resuming trivial.
    """
    new_lr = opt.lr
    if opt.niter_decay > 0:
        lrd = opt.lr / opt.niter_decay
        for _ in range(max(0, epoch - 1 - opt.niter)):
            new_lr -= lrd
    return max(new_lr, 0.0)


def g_d_learning_rates(opt, base_lr):
    """(lr of G, lr of D): TTUR halves G's and doubles D's rate; --no_TTUR uses base_lr for both."""
    if opt.no_TTUR:
        return base_lr, base_lr
    return base_lr / 2, base_lr * 2


@contextlib.contextmanager
def frozen(net):
    """Parameters of ``net`` (a module, a DDP wrapper or None) do not require grad inside the block;
    afterwards each gets its own previous setting back."""
    params = [p for p in net.parameters() if p.requires_grad] if net is not None else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Pix2PixTrainer:
    """Holds the Pix2PixModel and its two Adam optimizers and runs the per-iteration steps.

    Input ``data`` is a batch dict of the data contract ('label' int64 [B,1,H,W], 'instance'
    int64 [B,1,H,W], 'image' float [B,3,H,W] in [-1,1], ...). After a G step,
    ``get_latest_generated()`` is the fake batch [B,3,H,W] in [-1,1] (detached) and
    ``get_latest_losses()`` maps loss names ('GAN', 'GAN_Feat', 'VGG', 'KLD', 'D_Fake', 'D_real')
    to detached scalar tensors.
    """

    def __init__(self, opt, model=None):
        self.opt = opt
        self.model = model if model is not None else models.create_model(opt)
        # Under DDP self.model is the wrapper; optimizers and checkpoints use the bare module.
        self.model_on_one_device = self.model.module if hasattr(self.model, 'module') else self.model
        self.optimizer_G, self.optimizer_D = self.model_on_one_device.create_optimizers(opt)
        # False reproduces the reference's work (D's weight gradients computed in the G step and
        # discarded); the benchmark's 'reference' configuration uses it. Same updates either way.
        self.freeze_D_in_G_step = True
        self.g_losses = {}
        self.d_losses = {}
        self.generated = None
        self.current_lr = opt.lr
        amp = getattr(opt, 'amp', 'none') or 'none'
        self.amp_dtype = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp)
        if amp not in ('none', 'bf16', 'fp16'):
            raise ValueError(f"--amp must be one of none, bf16, fp16; got {amp!r}")
        device = torch.device(getattr(opt, 'device', 'cpu'))
        self.device_type = device.type
        if self.amp_dtype is torch.float16 and self.device_type != 'cuda':
            raise ValueError('--amp fp16 needs a CUDA device; use --amp bf16 on CPU')
        if self.amp_dtype is torch.bfloat16 and not native_bf16(device):
            logger.warning('--amp bf16: this %s has no fast bf16 kernels (on CPU: no AVX-512 or AMX), so '
                           'bf16 runs through slow reference kernels, slower than fp32; '
                           'use --amp none here', 'GPU' if self.device_type == 'cuda' else 'CPU')
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range.
        use_scaler = self.amp_dtype is torch.float16
        self.scaler_G = torch.amp.GradScaler('cuda') if use_scaler else None
        self.scaler_D = torch.amp.GradScaler('cuda') if use_scaler else None

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.amp_dtype)

    @staticmethod
    def _total(losses):
        # Same reduction as the reference trainer: sum of the dict's values, then mean.
        return sum(losses.values()).mean()

    def _step(self, optimizer, scaler, loss):
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    def run_generator_one_step(self, data):
        self.optimizer_G.zero_grad()
        # The reference back-propagates the G loss into D's weights too and the D step throws those
        # gradients away (it zeroes them first). Here D's parameters are frozen during the G step:
        # the same updates, without computing D's weight gradients (the G loss still flows through
        # D to the fake image). Under DDP, D also runs under no_sync (a no-op otherwise).
        netD = getattr(self.model_on_one_device, 'netD', None)
        with no_sync(netD), frozen(netD if self.freeze_D_in_G_step else None):
            with self._autocast():
                g_losses, generated = self.model(data, mode='generator')
            g_loss = self._total(g_losses)
            self._check_finite(g_losses, 'generator')
            self._step(self.optimizer_G, self.scaler_G, g_loss)
        self.g_losses = {k: v.detach() for k, v in g_losses.items()}
        self.generated = generated.detach()

    def run_discriminator_one_step(self, data):
        self.optimizer_D.zero_grad()
        with self._autocast():
            d_losses = self.model(data, mode='discriminator')
        d_loss = self._total(d_losses)
        self._check_finite(d_losses, 'discriminator')
        self._step(self.optimizer_D, self.scaler_D, d_loss)
        self.d_losses = {k: v.detach() for k, v in d_losses.items()}

    def _check_finite(self, losses, which):
        # With fp16 the grad scaler handles inf/nan itself (it skips the step and lowers the scale).
        if self.scaler_G is not None:
            return
        bad = [k for k, v in losses.items() if not torch.isfinite(v.detach()).all()]
        if bad:
            raise FloatingPointError(
                f'{which} loss {", ".join(bad)} is not finite; training diverged (try a lower --lr)')

    def get_latest_losses(self):
        """{loss name: detached scalar tensor}, G losses first, then D losses."""
        return {**self.g_losses, **self.d_losses}

    def get_latest_generated(self):
        return self.generated

    def update_learning_rate(self, epoch):
        """Set the learning rates used during ``epoch`` (1-based); call before the epoch starts."""
        new_lr = lr_for_epoch(self.opt, epoch)
        if new_lr != self.current_lr:
            lr_g, lr_d = g_d_learning_rates(self.opt, new_lr)
            for group in self.optimizer_G.param_groups:
                group['lr'] = lr_g
            for group in self.optimizer_D.param_groups:
                group['lr'] = lr_d
            logger.info('learning rate for epoch %d: %.7g (G %.7g, D %.7g)', epoch, new_lr, lr_g, lr_d)
            self.current_lr = new_lr

    # -- checkpoint support ------------------------------------------------------------------
    def optimizer_state_dicts(self):
        out = {'G': self.optimizer_G.state_dict(), 'D': self.optimizer_D.state_dict(),
               'current_lr': float(self.current_lr)}
        if self.scaler_G is not None:
            out['scaler_G'] = self.scaler_G.state_dict()
            out['scaler_D'] = self.scaler_D.state_dict()
        return out

    def load_optimizer_state_dicts(self, states, device=None):
        self.optimizer_G.load_state_dict(states['G'])
        self.optimizer_D.load_state_dict(states['D'])
        self.current_lr = states.get('current_lr', self.current_lr)
        if self.scaler_G is not None and 'scaler_G' in states:
            self.scaler_G.load_state_dict(states['scaler_G'])
            self.scaler_D.load_state_dict(states['scaler_D'])
