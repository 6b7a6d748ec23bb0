"""One trainer for every model: runs the phases a model declares (models/base_model.py).

Per iteration each :class:`~models.base_model.Phase` due on it runs in order: zero the phase's
optimiser, compute the model's loss dict with the phase's frozen networks not requiring grad (and,
under DDP, without gradient all-reduce), sum the losses (then ``.mean()``, as SPADE's trainer), step.
The trainer knows no network or loss by name: adding a loss or a phase touches only the model.
"""
import contextlib
import logging

import torch

from util.cpu import native_bf16
from util.ddp import no_sync
from util.errors import CheckpointError

logger = logging.getLogger(__name__)

AMP_DTYPES = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


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


class Trainer:
    """Holds a model (models.base_model.BaseModel), its optimisers and AMP state; runs iterations.

    ``run_iteration(data, i)`` runs the phases due on iteration ``i`` (0-based within the epoch);
    ``get_latest_losses()`` maps every loss name logged so far to its latest detached scalar, in
    phase order; ``update_learning_rate(epoch)`` applies the model's schedule before an epoch.
    """

    def __init__(self, opt, model):
        self.opt = opt
        self.model = model
        self.optimizers = model.create_optimizers()
        self.phases = list(model.training_phases())
        for phase in self.phases:
            if phase.optimizer not in self.optimizers:
                raise ValueError(f'phase {phase.name!r} steps optimiser {phase.optimizer!r}; the model '
                                 f'has {", ".join(self.optimizers)}')
            if phase.every < 1:
                raise ValueError(f'phase {phase.name!r}: every must be >= 1, got {phase.every}')
        self.losses = {}
        self.after_phase_hooks = []  # callables(phase), e.g. the EMA update (util.train_eval)
        self.current_lrs = {name: [g['lr'] for g in o.param_groups][0] for name, o in self.optimizers.items()}
        self.amp_dtype = AMP_DTYPES[opt.amp]
        device = torch.device(opt.device)
        self.device_type = device.type
        if self.amp_dtype is torch.float16 and self.device_type != 'cuda':
            raise ValueError('--amp fp16 needs a CUDA device; use --amp bf16 on CPU')
        if self.amp_dtype is torch.bfloat16 and not native_bf16(device):
            logger.warning('--amp bf16: this %s has no fast bf16 kernels (on CPU: no AVX-512 or AMX), so '
                           'bf16 runs through slow reference kernels, slower than fp32; '
                           'use --amp none here', 'GPU' if self.device_type == 'cuda' else 'CPU')
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range.
        self.scalers = ({name: torch.amp.GradScaler('cuda') for name in self.optimizers}
                        if self.amp_dtype is torch.float16 else {})

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.amp_dtype)

    def run_iteration(self, data, i):
        """Run the phases due on iteration ``i``; returns the names of the phases run."""
        ran = []
        for phase in self.phases:
            if i % phase.every == 0:
                self.run_phase(phase, data)
                ran.append(phase.name)
        return ran

    def run_phase(self, phase, data):
        optimizer = self.optimizers[phase.optimizer]
        optimizer.zero_grad()
        with contextlib.ExitStack() as stack:
            for name in phase.frozen:
                net = getattr(self.model, 'net' + name)
                stack.enter_context(no_sync(net))
                stack.enter_context(frozen(net))
            with self._autocast():
                losses = self.model.compute_losses(phase.name, data)
            # Same reduction as the reference trainer: sum of the dict's values, then mean.
            total = sum(losses.values()).mean()
            self._check_finite(losses, phase.name)
            scaler = self.scalers.get(phase.optimizer)
            if scaler is None:
                total.backward()
                optimizer.step()
            else:
                scaler.scale(total).backward()
                scaler.step(optimizer)
                scaler.update()
        self.losses[phase.name] = {k: v.detach() for k, v in losses.items()}
        for hook in self.after_phase_hooks:
            hook(phase)

    def _check_finite(self, losses, phase):
        # With fp16 the grad scaler handles inf/nan itself (it skips the step and lowers the scale).
        if self.scalers:
            return
        bad = [k for k, v in losses.items() if not torch.isfinite(v.detach()).all()]
        if bad:
            raise FloatingPointError(
                f'{phase} loss {", ".join(bad)} is not finite; training diverged (try a lower --lr)')

    def get_latest_losses(self):
        """{loss name: detached scalar tensor}, in phase order."""
        out = {}
        for phase in self.phases:
            out.update(self.losses.get(phase.name, {}))
        return out

    def update_learning_rate(self, epoch):
        """Set the learning rates used during ``epoch`` (1-based); call before the epoch starts."""
        lrs = self.model.learning_rates(epoch)
        changed = {name: lr for name, lr in lrs.items() if name in self.optimizers and lr != self.current_lrs[name]}
        for name, lr in changed.items():
            for group in self.optimizers[name].param_groups:
                group['lr'] = lr
            self.current_lrs[name] = lr
        if changed:
            logger.info('learning rates for epoch %d: %s', epoch,
                        ', '.join(f'{name} {lr:.7g}' for name, lr in self.current_lrs.items()))

    # -- checkpoint support ------------------------------------------------------------------
    def state_dict(self):
        return {'optimizers': {name: o.state_dict() for name, o in self.optimizers.items()},
                'scalers': {name: s.state_dict() for name, s in self.scalers.items()},
                'learning_rates': {name: float(lr) for name, lr in self.current_lrs.items()}}

    def load_state_dict(self, state, source='checkpoint'):
        saved = state['optimizers']
        if set(saved) != set(self.optimizers):
            raise CheckpointError(f'{source} holds the optimisers {sorted(saved)}, the model has '
                                  f'{sorted(self.optimizers)}')
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(saved[name])
        for name, scaler in self.scalers.items():
            if name in state.get('scalers', {}):
                scaler.load_state_dict(state['scalers'][name])
        self.current_lrs.update(state.get('learning_rates', {}))
