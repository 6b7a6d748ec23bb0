"""Evaluation during training (``--eval_freq``) and the EMA of generators (``--ema_decay``).

The model declares which networks may be averaged (``model.ema_network_names``, e.g. ``G``) and
after which training phase the average is updated (``model.ema_after_phase``). Every
``--eval_freq`` iterations the val split is synthesized by ``model.inference`` with the EMA networks
swapped in (BatchNorm statistics re-estimated on ``--bn_recalib_batches`` training batches) or,
without EMA, with the trained networks, and scored:

- FID against the real val images (Inception from ``--inception_weights`` or the torch hub cache,
  util.metrics.fid conventions; generated images quantised to 8 bits like saved PNGs). When the
  default weight file is missing on the synthetic dataset, FID is skipped with one log line; on
  other datasets a missing file is an error at start-up (there would be nothing to evaluate).
- on the synthetic dataset, the layout score (util.layout_score).

FID compares the two images named by ``model.evaluation_pair`` in the inference output (real,
generated). Records go to loss_log.jsonl / the training page (``Visualizer.log_evaluation``). The
best value (lowest FID, or highest layout pixel accuracy when FID is not computed) keeps
``best_net_<name>.pth`` of the networks test.py loads (+ ``best_net_<name>_ema.pth``) and
``best.json`` in checkpoints/<name>/.

Evaluation leaves training untouched: the RNG states are restored afterwards and the EMA is
re-estimated on a copy, so a run with evaluation trains the same weights as one without, and
``--continue_train`` stays exact (the EMA and the best value are in the full-state checkpoint).
"""
import contextlib
import copy
import json
import logging
import math
import os

import torch
from torch.utils.data import DataLoader

from util import checkpoint as ckpt
from util.distributed import is_main_process, unwrap
from util.errors import MissingFileError
from util.util import write_text_atomic
from util.ema import GeneratorEMA, has_batchnorm, recalibrate_batchnorm, recalibrate_in_place

logger = logging.getLogger(__name__)

BEST_LABEL = 'best'


def val_options(opt):
    """Options of the val split as evaluation sees it: fixed order, no flip, no resize beyond crop."""
    vopt = copy.copy(opt)
    vopt.phase, vopt.isTrain = 'val', False
    vopt.serial_batches, vopt.no_flip = True, True
    vopt.load_size = opt.crop_size
    return vopt


@contextlib.contextmanager
def preserved_rng():
    """Restore the Python/NumPy/torch RNG states on exit (evaluation must not shift training)."""
    states = ckpt.get_rng_states()
    try:
        yield
    finally:
        ckpt.set_rng_states(states)


class TrainEval:
    """EMA networks and periodic evaluation for train.py.

    model: the models.base_model.BaseModel being trained (its networks may be DDP wrappers);
    train_dataset: the training dataset (inputs for the BatchNorm re-estimation); visualizer:
    util.visualizer.Visualizer. Hooks: ``after_phase(phase)`` (the trainer calls it after every
    phase), ``maybe_evaluate(epoch, total_iters)``, ``save_weights(label)``; ``state_dict()`` /
    ``load_state_dict()`` for the full-state checkpoint. ``metric_fn(model, opt) -> dict`` replaces
    the built-in scoring (tests).
    """

    @staticmethod
    def check_files(opt):
        """The weight file --eval_freq needs: a MissingFileError when the FID Inception file is
        missing where FID cannot be skipped (an explicit --inception_weights, or a dataset other than
        the synthetic one). Cheap: reads nothing; train.py calls it before building anything."""
        from util.metrics.fid import INCEPTION_WEIGHTS_FILE
        from util.metrics.weights import resolve_weights

        if opt.eval_freq <= 0:
            return
        try:
            resolve_weights(INCEPTION_WEIGHTS_FILE, opt.inception_weights, "FID Inception", "--inception_weights")
        except FileNotFoundError as e:
            if TrainEval.fid_required(opt):
                raise MissingFileError(f'--eval_freq needs the FID Inception weights: {e}') from e

    @staticmethod
    def fid_required(opt):
        """Whether a missing Inception file stops the run: an explicit --inception_weights, or FID asked
        for on the command line on a dataset other than the synthetic one. Otherwise (the synthetic
        data, or an evaluation frequency that is a model's default, e.g. OASIS's --freq_fid 5000) FID is
        skipped with a warning."""
        from util.layout_score import has_exact_score

        return bool(opt.inception_weights) or (not has_exact_score(opt) and getattr(opt, 'eval_freq_given', True))

    def __init__(self, opt, model, train_dataset, visualizer, metric_fn=None):
        self.opt = opt
        self.model = model
        self.train_dataset = train_dataset
        self.visualizer = visualizer
        self.eval_freq = opt.eval_freq
        self.eval_batches = opt.eval_batches
        self.recalib_batches = opt.bn_recalib_batches
        self.decay = opt.ema_decay
        self.emas = {name: self._new_ema(name) for name in model.ema_network_names} if self.decay > 0 else {}
        self.metric_fn = metric_fn
        self.best = None
        self._eval_nets = {}  # name -> (num_updates, re-estimated EMA copy)
        self.inception = None
        self._real_acts = None
        self.val_loader = None
        if self.eval_freq > 0 and is_main_process() and metric_fn is None:
            with preserved_rng():  # building the Inception draws random initial weights
                self._setup_evaluation()

    def _new_ema(self, name):
        return GeneratorEMA(getattr(self.model, 'net' + name), self.decay, self.model.ema_average_buffers)

    # -- set-up ----------------------------------------------------------------------------
    def _setup_evaluation(self):
        import data
        from util.metrics.fid import INCEPTION_WEIGHTS_FILE, load_fid_inception

        opt = self.opt
        explicit = opt.inception_weights
        try:
            self.inception = load_fid_inception(explicit, dims=opt.fid_dims, device=opt.device)
        except FileNotFoundError as e:
            if self.fid_required(opt):
                raise MissingFileError(f'--eval_freq needs the FID Inception weights: {e}') from e
            from util.layout_score import has_exact_score

            still = ("the dataset's exact score is still computed" if has_exact_score(opt)
                     else 'no best checkpoint is kept')
            self.visualizer.log_message(
                f'--eval_freq {opt.eval_freq}: FID is skipped ({INCEPTION_WEIGHTS_FILE} not found in the torch '
                f'hub cache; put it there or pass --inception_weights); {still}.')
        self.val_loader = data.create_dataloader(val_options(opt))
        if self.inception is not None and len(self.val_loader.dataset) < 2:
            raise ValueError(f'--eval_freq: FID needs at least 2 val images, the {opt.dataset_mode} '
                             f'val split has {len(self.val_loader.dataset)}')

    # -- EMA -------------------------------------------------------------------------------
    def after_phase(self, phase):
        if phase.name != self.model.ema_after_phase:
            return
        for name, ema in self.emas.items():
            ema.update(getattr(self.model, 'net' + name))

    def _recalibration_inputs(self, name):
        """Inputs of network ``name`` for a fixed selection of training batches (deterministic)."""
        ds = self.train_dataset
        bs = max(1, self.opt.batchSize)
        n = min(len(ds), bs * max(1, self.recalib_batches))
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(self.opt.seed))[:n]
        loader = DataLoader(ds, batch_size=bs, sampler=order.tolist(), drop_last=n >= bs,
                            num_workers=0, generator=torch.Generator().manual_seed(self.opt.seed))
        for data_i in loader:
            yield self.model.network_inputs(name, data_i)

    def evaluation_net(self, name):
        """The network ``name`` as evaluated: its EMA with re-estimated BatchNorm statistics, or the
        bare trained network when it has no EMA. The re-estimated copy is cached until the next update."""
        ema = self.emas.get(name)
        if ema is None:
            return unwrap(getattr(self.model, 'net' + name))
        cached = self._eval_nets.get(name)
        if cached is None or cached[0] != ema.num_updates:
            net = ema.net
            if self.recalib_batches > 0 and has_batchnorm(net):
                with preserved_rng():
                    inputs = self._recalibration_inputs(name)
                    if self.model.ema_recalibration == 'in_place':
                        net = recalibrate_in_place(net, inputs, self.recalib_batches)
                    else:
                        net = recalibrate_batchnorm(net, inputs, self.recalib_batches)
            self._eval_nets[name] = cached = (ema.num_updates, net)
        return cached[1]

    @contextlib.contextmanager
    def evaluation_networks(self):
        """The model with its EMA networks (if any) swapped in, for ``model.inference``."""
        with contextlib.ExitStack() as stack:
            for name in self.emas:
                stack.enter_context(self.model.network_swapped(name, self.evaluation_net(name)))
            yield self.model

    @property
    def what(self):
        """How the evaluated networks are named in logs: 'G' or 'G_ema'."""
        names = self.model.ema_network_names if self.emas else self.model.inference_network_names[:1]
        return ', '.join(n + ('_ema' if self.emas else '') for n in names)

    def save_weights(self, label):
        """``<label>_net_<name>_ema.pth`` (re-estimated BatchNorm statistics) of every EMA network."""
        if not self.emas or not is_main_process():
            return []
        paths = []
        for name in self.emas:
            path = ckpt.weight_path(self.opt, label, name + '_ema')
            ckpt.atomic_torch_save(ckpt.cpu_state_dict(self.evaluation_net(name)), path)
            paths.append(path)
        return paths

    def load_weights(self, label):
        """Start every EMA from its weight file of ``label`` where one exists (fine-tuning from weight
        files, e.g. an official OASIS run's ``models/latest_EMA.pth``); returns the paths loaded."""
        paths = []
        for name, ema in self.emas.items():
            path = ckpt.weight_path(self.opt, label, name + '_ema')
            if os.path.isfile(path):
                ckpt.load_state_dict_checked(ema.net, ckpt.safe_torch_load(path), path)
                paths.append(path)
        self._eval_nets = {}
        return paths

    # -- evaluation ------------------------------------------------------------------------
    def _scores(self):
        from util.layout_score import exact_scorer
        from util.metrics.fid import ActivationAccumulator, fid_from_activations

        opt = self.opt
        real_name, fake_name = self.model.evaluation_pair
        layout = exact_scorer(opt)
        fake_acc = ActivationAccumulator(self.inception) if self.inception is not None else None
        real_acc = (ActivationAccumulator(self.inception)
                    if self.inception is not None and self._real_acts is None else None)
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with self.evaluation_networks(), torch.no_grad():
                for i, data_i in enumerate(self.val_loader):
                    if self.eval_batches and i >= self.eval_batches:
                        break
                    out = model.inference(data_i, extras=layout is not None and layout.needs_extras)
                    fake = out[fake_name].float()
                    if layout is not None:
                        layout.add(out, data_i, fake_name)
                    if fake_acc is not None:
                        fake_acc.add(fake)
                    if real_acc is not None:
                        real_acc.add(out[real_name])
        finally:
            model.train(was_training)
        scores = {}
        if fake_acc is not None:
            if real_acc is not None:
                # The val images are read in a fixed order without augmentation: computed once.
                self._real_acts = real_acc.activations()
            scores['fid'] = fid_from_activations(self._real_acts, fake_acc.activations())
        if layout is not None:
            scores.update(layout.scores())
            self._exact_metric = layout.main_metric
        return scores

    def maybe_evaluate(self, epoch, total_iters):
        if self.eval_freq <= 0 or total_iters % self.eval_freq or not is_main_process():
            return None
        from util.layout_score import has_exact_score

        if self.metric_fn is None and self.inception is None and not has_exact_score(self.opt):
            return None  # FID skipped (no Inception weights) and no layout score on this dataset
        return self.evaluate(epoch, total_iters)

    def evaluate(self, epoch, total_iters):
        """Score the val split now, log it and keep the best checkpoint; returns the scores."""
        with preserved_rng():
            if self.metric_fn is not None:
                with self.evaluation_networks():
                    scores = dict(self.metric_fn(self.model, self.opt))
            else:
                scores = self._scores()
        if not scores:
            return scores
        self.visualizer.log_evaluation(epoch, total_iters, scores, split='val', what=self.what)
        self._update_best(scores, epoch, total_iters)
        return scores

    def _update_best(self, scores, epoch, total_iters):
        exact = getattr(self, '_exact_metric', 'pixel_accuracy')
        metric = 'fid' if 'fid' in scores else exact if exact in scores else None
        if metric is None:
            return False
        value = float(scores[metric])
        if not math.isfinite(value):
            return False
        if self.best is not None and self.best['metric'] == metric:
            better = value < self.best['value'] if metric == 'fid' else value > self.best['value']
            if not better:
                return False
        self.best = {'metric': metric, 'value': value, 'epoch': int(epoch), 'iter': int(total_iters)}
        opt = self.opt
        files = []
        for name in self.model.inference_network_names:
            path = ckpt.weight_path(opt, BEST_LABEL, name)
            ckpt.atomic_torch_save(ckpt.cpu_state_dict(unwrap(getattr(self.model, 'net' + name))), path)
            files.append(os.path.basename(path))
        files += [os.path.basename(p) for p in self.save_weights(BEST_LABEL)]
        self.model.weights_saved(opt, BEST_LABEL, total_iters)
        write_text_atomic(os.path.join(ckpt.run_dir(opt), 'best.json'), json.dumps(
            {**self.best, 'scores': {k: float(v) for k, v in scores.items()}, 'files': files},
            indent=2, sort_keys=True) + '\n')
        logger.info('new best %s %.4f at iteration %d: saved %s', metric, value, total_iters, ', '.join(files))
        return True

    # -- full-state checkpoint ---------------------------------------------------------------
    def state_dict(self):
        return {'ema': {name: ema.state_dict() for name, ema in self.emas.items()},
                'best': dict(self.best) if self.best else None}

    def load_state_dict(self, state, source='checkpoint'):
        state = state or {}
        saved = state.get('ema') or {}
        if saved and 'net' in saved:  # written before EMA networks were named: the EMA of G
            saved = {'G': saved}
        for name, ema in self.emas.items():
            if name not in saved:
                # A run started without --ema_decay: the average starts from the loaded network.
                logger.warning('%s holds no EMA of net%s; the EMA starts from the loaded net%s', source, name, name)
                self.emas[name] = self._new_ema(name)
            else:
                ema.load_state_dict(saved[name], f'{source} [EMA of net{name}]')
        self.best = dict(state['best']) if state.get('best') else None
        self._eval_nets = {}
