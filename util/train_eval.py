"""Evaluation during training (``--eval_freq``) and the EMA generator (``--ema_decay``).

Every ``--eval_freq`` iterations the val split is synthesized with the EMA generator (BatchNorm
statistics re-estimated on ``--bn_recalib_batches`` batches of training labels) or, without EMA,
with G itself, and scored:

- FID against the real val images (Inception from ``--inception_weights`` or the torch hub cache,
  util.metrics.fid conventions; generated images quantised to 8 bits like saved PNGs). When the
  default weight file is missing on the synthetic dataset, FID is skipped with one log line; on
  other datasets a missing file is an error at start-up (there would be nothing to evaluate).
- on the synthetic dataset, the layout score (util.layout_score).

Records go to loss_log.jsonl / the training page (``Visualizer.log_evaluation``). The best value
(lowest FID, or highest layout pixel accuracy when FID is not computed) keeps
``best_net_G.pth`` (+ ``best_net_G_ema.pth``) and ``best.json`` in checkpoints/<name>/.

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
from util.distributed import is_main_process
from util.ema import GeneratorEMA, has_batchnorm, recalibrate_batchnorm

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


@contextlib.contextmanager
def generator_swapped(model, net):
    """Temporarily make ``net`` the model's netG (mode='inference' then generates with it)."""
    original = model.netG
    model.netG = net
    try:
        yield
    finally:
        model.netG = original


def _write_json_atomic(path, obj):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)


class TrainEval:
    """EMA of G and periodic evaluation for train.py.

    model: the bare Pix2PixModel (netG may be a DDP wrapper); train_dataset: the training dataset
    (labels for the BatchNorm re-estimation); visualizer: util.visualizer.Visualizer.
    Hooks: ``after_generator_step()``, ``maybe_evaluate(epoch, total_iters)``,
    ``save_weights(label)``; ``state_dict()`` / ``load_state_dict()`` for the full-state checkpoint.
    ``metric_fn(model, opt) -> dict`` replaces the built-in scoring (tests).
    """

    def __init__(self, opt, model, train_dataset, visualizer, metric_fn=None):
        self.opt = opt
        self.model = model
        self.train_dataset = train_dataset
        self.visualizer = visualizer
        self.eval_freq = int(getattr(opt, 'eval_freq', 0) or 0)
        self.eval_batches = int(getattr(opt, 'eval_batches', 0) or 0)
        self.recalib_batches = int(getattr(opt, 'bn_recalib_batches', 0) or 0)
        decay = float(getattr(opt, 'ema_decay', 0.0) or 0.0)
        self.ema = GeneratorEMA(model.netG, decay) if decay > 0 else None
        self.metric_fn = metric_fn
        self.best = None
        self._eval_net = None  # (num_updates, re-estimated EMA copy)
        self.inception = None
        self._real_acts = None
        self.val_loader = None
        if self.eval_freq > 0 and is_main_process() and metric_fn is None:
            with preserved_rng():  # building the Inception draws random initial weights
                self._setup_evaluation()

    # -- set-up ----------------------------------------------------------------------------
    def _setup_evaluation(self):
        import data
        from util.metrics.fid import INCEPTION_WEIGHTS_FILE, load_fid_inception

        opt = self.opt
        explicit = getattr(opt, 'inception_weights', None)
        try:
            self.inception = load_fid_inception(explicit, dims=getattr(opt, 'fid_dims', None) or 2048,
                                                device=opt.device)
        except FileNotFoundError as e:
            if explicit or opt.dataset_mode != 'synthetic':
                raise FileNotFoundError(f'--eval_freq needs the FID Inception weights: {e}') from e
            self.visualizer.log_message(
                f'--eval_freq: FID is skipped ({INCEPTION_WEIGHTS_FILE} not found in the torch hub '
                f'cache; put it there or pass --inception_weights); the layout score is still computed.')
        self.val_loader = data.create_dataloader(val_options(opt))
        if self.inception is not None and len(self.val_loader.dataset) < 2:
            raise ValueError(f'--eval_freq: FID needs at least 2 val images, the {opt.dataset_mode} '
                             f'val split has {len(self.val_loader.dataset)}')

    # -- EMA -------------------------------------------------------------------------------
    def after_generator_step(self):
        if self.ema is not None:
            self.ema.update(self.model.netG)

    def _recalibration_inputs(self):
        """G inputs (semantics, z=None, class ids) of a fixed selection of training batches (same every
        time: deterministic)."""
        ds = self.train_dataset
        bs = max(1, self.opt.batchSize)
        n = min(len(ds), bs * max(1, self.recalib_batches))
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(self.opt.seed))[:n]
        loader = DataLoader(ds, batch_size=bs, sampler=order.tolist(), drop_last=n >= bs,
                            num_workers=0, generator=torch.Generator().manual_seed(self.opt.seed))
        for data_i in loader:
            semantics, _, class_ids = self.model.preprocess_input_with_class_ids(data_i)
            yield (semantics, None, class_ids)

    def evaluation_net(self):
        """The generator used for evaluation: the EMA with re-estimated BatchNorm statistics, or the
        bare G when EMA is off. The re-estimated copy is cached until the next EMA update."""
        if self.ema is None:
            return ckpt.unwrap(self.model.netG)
        if self._eval_net is None or self._eval_net[0] != self.ema.num_updates:
            net = self.ema.net
            if self.recalib_batches > 0 and has_batchnorm(net):
                with preserved_rng():
                    net = recalibrate_batchnorm(net, self._recalibration_inputs(), self.recalib_batches)
            self._eval_net = (self.ema.num_updates, net)
        return self._eval_net[1]

    def save_weights(self, label):
        """``<label>_net_G_ema.pth`` (re-estimated BatchNorm statistics) when EMA is on."""
        if self.ema is None or not is_main_process():
            return None
        path = ckpt.weight_path(self.opt, label, 'G_ema')
        ckpt.atomic_torch_save(ckpt.cpu_state_dict(self.evaluation_net()), path)
        return path

    # -- evaluation ------------------------------------------------------------------------
    def _scores(self):
        from util.layout_score import LayoutScorer
        from util.metrics.fid import ActivationAccumulator, fid_from_activations

        opt = self.opt
        layout = LayoutScorer(opt) if opt.dataset_mode == 'synthetic' else None
        fake_acc = ActivationAccumulator(self.inception) if self.inception is not None else None
        real_acc = (ActivationAccumulator(self.inception)
                    if self.inception is not None and self._real_acts is None else None)
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with generator_swapped(model, self.evaluation_net()), torch.no_grad():
                for i, data_i in enumerate(self.val_loader):
                    if self.eval_batches and i >= self.eval_batches:
                        break
                    fake = model(data_i, mode='inference').float()
                    if layout is not None:
                        layout.update(fake, data_i['label'])
                    if fake_acc is not None:
                        fake_acc.add(fake)
                    if real_acc is not None:
                        real_acc.add(data_i['image'])
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
        return scores

    def maybe_evaluate(self, epoch, total_iters):
        if self.eval_freq <= 0 or total_iters % self.eval_freq or not is_main_process():
            return None
        return self.evaluate(epoch, total_iters)

    def evaluate(self, epoch, total_iters):
        """Score the val split now, log it and keep the best checkpoint; returns the scores."""
        with preserved_rng():
            if self.metric_fn is not None:
                with generator_swapped(self.model, self.evaluation_net()):
                    scores = dict(self.metric_fn(self.model, self.opt))
            else:
                scores = self._scores()
        if not scores:
            return scores
        what = 'G_ema' if self.ema is not None else 'G'
        self.visualizer.log_evaluation(epoch, total_iters, scores, split='val', what=what)
        self._update_best(scores, epoch, total_iters)
        return scores

    def _update_best(self, scores, epoch, total_iters):
        metric = 'fid' if 'fid' in scores else 'pixel_accuracy' if 'pixel_accuracy' in scores else None
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
        ckpt.atomic_torch_save(ckpt.cpu_state_dict(ckpt.unwrap(self.model.netG)),
                               ckpt.weight_path(opt, BEST_LABEL, 'G'))
        if self.ema is not None:
            ckpt.atomic_torch_save(ckpt.cpu_state_dict(self.evaluation_net()),
                                   ckpt.weight_path(opt, BEST_LABEL, 'G_ema'))
        _write_json_atomic(os.path.join(ckpt.run_dir(opt), 'best.json'),
                           {**self.best, 'scores': {k: float(v) for k, v in scores.items()},
                            'files': ['best_net_G.pth'] + (['best_net_G_ema.pth'] if self.ema else [])})
        logger.info('new best %s %.4f at iteration %d: saved best_net_G.pth%s', metric, value,
                    total_iters, ' and best_net_G_ema.pth' if self.ema else '')
        return True

    # -- full-state checkpoint ---------------------------------------------------------------
    def state_dict(self):
        return {'ema': self.ema.state_dict() if self.ema is not None else None,
                'best': dict(self.best) if self.best else None}

    def load_state_dict(self, state, source='checkpoint'):
        state = state or {}
        ema_state = state.get('ema')
        if self.ema is not None:
            if ema_state is None:
                # A run started without --ema_decay: the average starts from the loaded G.
                logger.warning('%s holds no EMA of netG; the EMA starts from the loaded netG', source)
                self.ema = GeneratorEMA(self.model.netG, self.ema.decay)
            else:
                self.ema.load_state_dict(ema_state, source)
        self.best = dict(state['best']) if state.get('best') else None
        self._eval_net = None
