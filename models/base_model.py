"""The model contract: what a model declares, so that one trainer, one checkpointing, DDP, EMA,
evaluation, the training page and ``test.py`` serve every model without naming its networks.

A model (``models/<name>_model.py``, class ``<Name>Model(BaseModel)``) declares:

- ``network_names``: the names of its networks, e.g. ``['G', 'D', 'E']`` or ``['G_A', 'G_B', 'D_A',
  'D_B']``; network ``X`` is the attribute ``netX``. Weight files are ``<epoch>_net_<X>.pth``.
- :meth:`create_optimizers` -> ``{optimizer name: torch.optim.Optimizer}`` and
  :meth:`learning_rates` ``(epoch) -> {optimizer name: lr}`` (the schedule, e.g. TTUR + linear decay).
- :meth:`training_phases` -> ordered list of :class:`Phase`: which optimiser a phase steps, which
  networks are frozen during it, on which iterations it runs (``every``).
- :meth:`compute_losses` ``(phase name, data) -> {loss name: scalar tensor}``; the trainer sums them
  (then ``.mean()``) and steps the phase's optimiser.
- ``loss_names`` (log order) and :meth:`get_current_visuals` ``-> {name: tensor}`` of the last step.
- :meth:`inference` ``(data, extras=False) -> {name: tensor}``: what a results page shows (inputs,
  outputs; with ``extras`` also the visuals named in ``extra_visual_names``: attention maps, masks,
  weights). There is no other inference path.
- ``inference_network_names``: the networks ``test.py`` loads; ``ema_network_names``: the networks
  of which an exponential moving average may be kept (``--ema_decay``), updated after the phase
  named ``ema_after_phase``; ``evaluation_pair``: the
  (real, generated) names in :meth:`inference`'s output that FID compares during training.
- :meth:`check_files` ``(opt)``: the pretrained-weight files the options need exist (before building).
- Optional extra state (image pools, ...) through :meth:`extra_state_dict` /
  :meth:`load_extra_state_dict`, saved in the full-state checkpoint.

Visual tensors follow one convention, so pages and result folders need no per-model code:
int64 ``[B,1,H,W]`` is a label map (colourised), float ``[B,3,H,W]`` in [-1, 1] an image, float
``[B,1,H,W]`` in [0, 1] a map (grey and heat map), float ``[B,C]`` a vector of weights (JSON + bars).
"""

import contextlib
import dataclasses
import logging

import torch
import torch.nn as nn

from util.distributed import unwrap

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimisation step of a training iteration.

    name: passed to :meth:`BaseModel.compute_losses`; optimizer: the name of the optimiser it steps;
    frozen: networks whose parameters need no gradient during the phase (their weight gradients
    would be thrown away; under DDP they also run without gradient all-reduce);
    every: the phase runs on the iterations ``i`` (0-based within the epoch) with ``i % every == 0``.
    """

    name: str
    optimizer: str
    frozen: tuple = ()
    every: int = 1


class BaseModel(nn.Module):
    """Base class of every model; see the module docstring for the contract."""

    network_names = ()
    inference_network_names = ()
    ema_network_names = ()
    ema_after_phase = None
    ema_average_buffers = False  # EMA of floating buffers too (BN statistics, spectral-norm u/v), or copies
    # How the EMA networks' BatchNorm statistics are re-estimated before use (util/train_eval.py):
    # "copy" = on a copy, equal-weight average from scratch; "in_place" = the EMA network itself runs in
    # train mode with its BatchNorm momentum (the official OASIS code).
    ema_recalibration = "copy"
    image_rounding = "round"  # how saved PNGs quantise [-1, 1]: "round" or the official "truncate"
    resamples_classes = False  # inference_samples(..., resample_class=C) re-draws noise inside class C
    draws_noise = False  # inference draws random noise (OASIS' 3D noise, a VAE's z): outputs depend on a seed
    takes_style_image = False  # inference encodes data['image'] as the style (a VAE)
    label_input = True  # inference takes a label map (data['label']); False: a photo (image translation)
    default_dataset_mode = "synthetic"  # --dataset_mode when none is given (the model's embedded task)
    default_name = "synthetic_dagan"  # --name when none is given (the main job's run folder)
    loss_names = ()
    evaluation_pair = None
    extra_visual_names = ()

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    @staticmethod
    def validate_options(opt):
        """Check this model's option values after parsing; raise ``options.OptionError``."""

    @staticmethod
    def weight_file(epoch, name):
        """The weight file of network ``name`` at ``epoch`` relative to the run folder, as the official
        code names it (``<epoch>_net_<name>.pth``; an EMA copy is ``<name>_ema``). Models whose
        official run folders differ override it (OASIS: ``models/<epoch>_G.pth``)."""
        return f"{epoch}_net_{name}.pth"

    def weights_saved(self, opt, label, total_iters):
        """Called after the weight files of ``label`` were written, ``total_iters`` iterations into the
        run (the official OASIS code records the iteration in ``<label>_iter.txt``). Default: nothing."""

    @staticmethod
    def iterations_done(opt, label):
        """Iterations the official run folder records for the weights of ``label`` (None: unknown);
        fine-tuning from those weight files continues the run's counter from there."""
        return None

    @staticmethod
    def check_files(opt):
        """Raise ``util.errors.MissingFileError`` when a pretrained-weight file these options need
        (e.g. a perceptual loss's backbone) does not exist. Cheap: reads and builds nothing; called
        by train.py / test.py before any network is built."""

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.device = opt.device

    # ------------------------------------------------------------------ networks
    def networks(self):
        """{name: network} of the networks this model has (DDP wrappers unwrapped)."""
        out = {}
        for name in self.network_names:
            net = getattr(self, 'net' + name, None)
            if net is not None:
                out[name] = unwrap(net)
        return out

    def set_network(self, name, net):
        """Replace network ``name`` (a DDP wrapper, an EMA copy, ...)."""
        setattr(self, 'net' + name, net)

    @contextlib.contextmanager
    def network_swapped(self, name, net):
        """Temporarily make ``net`` the model's network ``name`` (e.g. the EMA generator)."""
        original = getattr(self, 'net' + name)
        self.set_network(name, net)
        try:
            yield
        finally:
            self.set_network(name, original)

    # ------------------------------------------------------------------ training
    def create_optimizers(self):
        raise NotImplementedError

    def learning_rates(self, epoch):
        raise NotImplementedError

    def training_phases(self):
        raise NotImplementedError

    def compute_losses(self, phase, data):
        raise NotImplementedError

    def get_current_visuals(self):
        """The visuals of the last training step: a copy of ``self._visuals``, which
        :meth:`compute_losses` sets (empty before the first step)."""
        return dict(getattr(self, '_visuals', {}))

    def network_inputs(self, name, data):
        """Positional arguments of network ``name``'s forward for ``data`` (BatchNorm re-estimation
        of its EMA copy)."""
        raise NotImplementedError

    def extra_state_dict(self):
        return {}

    def load_extra_state_dict(self, state):
        pass

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def inference(self, data, extras=False):
        raise NotImplementedError

    @torch.no_grad()
    def inference_samples(self, data, n_samples, resample_class=None, generator=None):
        """``n_samples`` outputs of :meth:`inference` for ``data`` (multimodal synthesis, ``test.py
        --n_samples``). Default: the global torch RNG re-seeded from ``generator`` before each sample,
        so any model whose inference draws noise gives different, reproducible samples."""
        if resample_class is not None:
            raise ValueError(f"{type(self).__name__} cannot re-sample the noise of one class")
        outs = []
        for _ in range(n_samples):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            outs.append(self.inference(data))
        return outs

    @torch.no_grad()
    def inference_seeded(self, data, seed, class_seeds=None, extras=False):
        """:meth:`inference` with its noise fixed by ``seed`` (the painting demo: the same seed gives the
        same image). ``class_seeds`` {label value: seed}: the noise inside the pixels of those label
        values comes from their own seeds, the rest from ``seed`` (models with ``resamples_classes``).
        Default: the global torch RNG seeded, then :meth:`inference`."""
        if class_seeds:
            raise ValueError(f"{type(self).__name__} cannot re-sample the noise of one class")
        torch.manual_seed(int(seed))
        return self.inference(data, extras=extras)
