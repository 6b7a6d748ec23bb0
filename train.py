"""Train DAGAN / SPADE.

``python train.py`` with no arguments trains DAGAN on the embedded synthetic dataset (generated on
first use) with a small preset and reports the layout faithfulness of the synthesized val images.
SPADE command lines work as they are, e.g.
``python train.py --name city --dataset_mode cityscapes --dataroot ... --niter 100 --niter_decay 100``.

Per iteration the model's training phases run in order (SPADE/DAGAN: a generator step, then a
discriminator step on a freshly generated fake). Checkpoints: ``checkpoints/<name>/latest_state.pth``
(full state, exact resume with ``--continue_train``) and the official weight-only
``<epoch>_net_<name>.pth`` of each network.
"""
import copy
import logging
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

import data
import models
from models.networks import count_parameters
from models.trainer import Trainer
from options.train_options import TrainOptions
from util import checkpoint as ckpt
from util import ddp
from util.cpu import adapt_threads, apply_cpu_settings, check_resume_environment
from util.distributed import barrier, is_main_process
from util.errors import MissingFileError, UserError, run_cli
from util.layout_score import exact_scorer
from util.metrics.segmentation import format_scores
from util.preflight import check_data_folders, check_model_files
from util.train_eval import TrainEval, val_options
from util.visualizer import Visualizer

logger = logging.getLogger('train')

class RunExistsError(UserError, RuntimeError):
    """checkpoints/<name>/ already holds a run and neither --continue_train nor --overwrite was given."""


def configure_logging(verbose=False):
    # Under torchrun only rank 0 logs progress; the other ranks report warnings and errors only.
    level = logging.DEBUG if verbose else logging.INFO
    if not is_main_process():
        level = logging.WARNING
    logging.basicConfig(level=level,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s', datefmt='%H:%M:%S')


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# run directory: refuse to overwrite, resume or fine-tune

def check_run_dir(opt):
    """Read-only check of checkpoints/<name>/ against the options, before any work.

    Returns (mode, source, existing): mode 'new' | 'state' (full-state resume) | 'weights'
    (fine-tuning from weight-only files), the file it starts from, and the files of a previous run
    that ``--overwrite`` replaces. Raises RunExistsError / MissingFileError with what to do.
    """
    # Every rank decides from the same directory contents: none looks before all have arrived.
    barrier()
    existing = ckpt.run_files(opt)
    kind, path = ckpt.describe_resume_source(opt)
    shown = ', '.join(os.path.basename(p) for p in existing[:6]) + (' ...' if len(existing) > 6 else '')
    if existing and kind is None and (opt.continue_train or not opt.overwrite):
        # e.g. killed during its first checkpoint: logs and a page, nothing to resume from.
        raise RunExistsError(
            f'{ckpt.run_dir(opt)} holds a run that stopped before its first checkpoint ({shown}): there is '
            f'nothing to resume. Start it afresh with --overwrite, or choose another --name.')
    if opt.continue_train:
        if kind is None:
            raise MissingFileError(
                f'--continue_train: {ckpt.run_dir(opt)} holds neither our full-state checkpoint '
                f'{os.path.basename(ckpt.state_path(opt, opt.which_epoch))} nor official weights '
                f'{ckpt.weight_file(opt, opt.which_epoch, "<name>")} (--which_epoch {opt.which_epoch}).')
        return kind, path, []
    if existing and not opt.overwrite:
        raise RunExistsError(
            f'{ckpt.run_dir(opt)} already holds a training run ({shown}). Refusing to overwrite it: '
            f'use --continue_train to resume it, --overwrite to replace it, or choose another --name.')
    return 'new', None, existing


def check_inputs(opt):
    """The cheap checks of a start, in the order a newcomer meets the problems: the data folders, the
    run folder, the pretrained-weight files. Each failure is a user error (util.errors) with one
    message. Every rank runs them before joining the process group and before building any network
    or dataset, so under torchrun every worker stops alike with that message (exit status 2 by
    cli()). ``_setup`` checks the run folder again once every rank has arrived."""
    check_data_folders(opt)
    check_run_dir(opt)
    check_model_files(opt)
    TrainEval.check_files(opt)


def clear_run_dir(opt, existing):
    """The first writes of a start whose checks passed: --overwrite removes the previous run's files;
    temporary files an earlier run left behind when it was killed mid-write are removed."""
    if is_main_process():
        if existing:
            logger.warning('--overwrite: removing the previous run in %s (%s)', ckpt.run_dir(opt),
                           ', '.join(os.path.basename(p) for p in existing))
        for path in existing:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        for path in ckpt.leftover_temp_files(opt):
            logger.info('removing %s, left behind by an interrupted write', path)
            os.remove(path)
    # None goes on while rank 0 may still be deleting.
    barrier()


# ------------------------------------------------------------------------------------------------

def dry_run(opt, options):
    """Print the resolved options and the parameter count of every network; build no dataset."""
    print(options.format_options(opt))
    build_opt = copy.copy(opt)
    # The VGG loss is a frozen feature extractor, not one of the trained networks: not needed here.
    build_opt.no_vgg_loss = True
    model = models.create_model(build_opt)
    for name, net in model.networks().items():
        print(f'net{name} parameters: {count_parameters(net):,}')
    return 0


def loader_skipping(loader, n_batches):
    """A DataLoader over the same epoch order without its first ``n_batches`` batches.

    The sampler and each sample's augmentation are seeded by (seed, epoch, index), so the skipped
    samples need not be loaded for the rest of the epoch to be the same as in an uninterrupted run.
    """
    indices = list(iter(loader.sampler))[n_batches * loader.batch_size:]
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=indices,
                      num_workers=loader.num_workers, drop_last=loader.drop_last,
                      pin_memory=loader.pin_memory)


def save_checkpoint(trainer, opt, epoch, epoch_iter, total_iters, epoch_done, train_eval):
    # Collective calls first (every rank takes part), then rank 0 alone writes.
    ddp.check_replicas_agree(trainer.model)
    rng_per_rank = ddp.gather_rng_states()
    if not is_main_process():
        return
    # The weight files first: writing the EMA files may re-estimate the EMA's BatchNorm statistics in
    # place (OASIS), which the full state must then hold, so that a resumed run continues from them.
    save_weight_files(trainer.model, opt, 'latest', total_iters, train_eval)
    extra = {'train_eval': train_eval.state_dict()}  # EMA networks and the best evaluation so far
    if rng_per_rank is not None:
        extra['rng_per_rank'] = rng_per_rank
    ckpt.save_training_state(trainer, opt, epoch, epoch_iter, total_iters, epoch_done, extra=extra)


def save_weight_files(model, opt, label, total_iters, train_eval):
    """The weight-only files of ``label`` (networks and EMA copies) and the model's own record of them
    (OASIS: ``<label>_iter.txt``). Rank 0 only."""
    ckpt.save_network_weights(model, opt, label)
    train_eval.save_weights(label)
    model.weights_saved(opt, label, total_iters)


def evaluate_exactly(opt, model, visualizer, epoch, total_iters, train_eval, scorer):
    """A generated dataset: synthesize the val split (with the EMA networks of --ema_decay) and score it
    with the dataset's exact scorer (synthetic: pixel accuracy, mean class accuracy, mIoU of the
    dataset's exact segmenter vs the input labels)."""
    from util.layout_score import score_model

    loader = data.create_dataloader(val_options(opt))
    with train_eval.evaluation_networks():
        scores = score_model(model, loader, scorer)
    visualizer.log_evaluation(epoch, total_iters, scores, split='val', what=f'{scorer.kind} ({train_eval.what})')
    return scores


def main(argv=None, stop_after_epoch=None, stop_after_iter=None):
    """Train; returns the final layout scores (synthetic) or an empty dict (0 for --dry_run).

    stop_after_epoch / stop_after_iter: stop as if killed after that epoch's checkpoint / after
    that (total) iteration; used by the tests of resuming.
    """
    options = TrainOptions()
    opt = options.parse(argv)
    if opt.dry_run:
        configure_logging(opt.verbose)
        return dry_run(opt, options)
    check_inputs(opt)
    created_group = ddp.init_distributed(opt)
    configure_logging(opt.verbose)
    apply_cpu_settings(opt)
    try:
        return _train(opt, options, stop_after_epoch, stop_after_iter)
    finally:
        if created_group:
            barrier()  # rank 0 may still be writing its last files
            ddp.destroy_distributed()


class Run:
    """What a training run resumes from: counters, RNG states and messages for the log."""

    def __init__(self):
        self.start_epoch, self.start_epoch_iter, self.total_iters = 1, 0, 0
        self.rng = None
        self.restore_rng_after_iterator = False
        self.resume_iter = None
        self.state = None
        self.messages = []

    def resume_from_state(self, trainer, source, opt):
        state = ckpt.load_training_state(trainer, source)
        self.state = state
        self.total_iters = self.resume_iter = state['total_iters']
        if state['epoch_done']:
            self.start_epoch, self.start_epoch_iter = state['epoch'] + 1, 0
        else:
            self.start_epoch, self.start_epoch_iter = state['epoch'], state['epoch_iter']
            # The uninterrupted run drew the epoch's loader seed before these iterations; the saved
            # RNG state is from after that draw, so it is restored after building the iterator.
            self.restore_rng_after_iterator = True
        self.rng = ddp.rng_states_for_rank(state, opt)
        check_resume_environment(state['opt'], opt)  # another device or thread count: not bit-exact
        self.messages.append(f'resuming from {source}: epoch {self.start_epoch}, iteration '
                             f'{self.total_iters} (full state: networks, optimizers, RNG)')

    def fine_tune_from_weights(self, model, opt, iters_per_epoch):
        names = tuple(model.networks())
        loaded = ckpt.load_network_weights(model, opt, opt.which_epoch, names=names,
                                           required=model.inference_network_names[:1])
        done = model.iterations_done(opt, opt.which_epoch)
        if done:
            # The official counter of the run (OASIS's latest_iter.txt): continue its schedule where it stopped.
            self.total_iters = done
            self.start_epoch, self.start_epoch_iter = done // iters_per_epoch + 1, done % iters_per_epoch
            where = f'at epoch {self.start_epoch}, iteration {done} (the run\'s own counter)'
        else:
            where = 'starting at epoch 1'
        self.messages.append('fine-tuning from weight-only files ' + ', '.join(
            f'net{k}: {os.path.relpath(v, ckpt.run_dir(opt))}' for k, v in loaded.items() if v)
            + f'; fresh optimizers, {where}')
        for k, v in loaded.items():
            if v is None:
                self.messages.append(f'net{k}: no {ckpt.weight_file(opt, opt.which_epoch, k)}, starting from a '
                                     'fresh initialisation')

    def extra(self, key):
        return (self.state or {}).get('extra', {}).get(key)


def _setup(opt, options):
    """Model, trainer, data and the resume state of a training run, then its folder and options file.

    Everything is checked (run folder, model, data, checkpoint) before the first file is written,
    so a start that fails leaves an earlier run in the folder untouched and creates no folder."""
    data.check_dataset(opt)
    mode, source, existing = check_run_dir(opt)
    seed_everything(opt.seed)  # the same initial weights on every rank
    model = models.create_model(opt)
    if opt.world_size > 1:
        ddp.wrap_model(model, opt)
        seed_everything(ddp.rank_seed(opt.seed, opt.rank))  # per-rank random streams from here on
    trainer = Trainer(opt, model)
    dataloader = data.create_dataloader(opt)
    if len(dataloader) == 0:
        raise ValueError(f'the training set of {opt.dataset_mode!r} gives no complete batch of {opt.batchSize}')
    run = Run()
    if mode == 'state':
        run.resume_from_state(trainer, source, opt)
    elif mode == 'weights':
        run.fine_tune_from_weights(model, opt, len(dataloader))
    clear_run_dir(opt, existing)
    if is_main_process():
        options.save_options(opt)
    logger.info('\n%s', options.format_options(opt))
    ckpt.log_checkpoint_estimate(model, opt)
    return model, trainer, dataloader, run


def _train(opt, options, stop_after_epoch, stop_after_iter):
    model, trainer, dataloader, run = _setup(opt, options)
    total_epochs = opt.niter + opt.niter_decay
    if run.start_epoch > total_epochs:
        logger.warning('the checkpoint has already finished all %d epochs; nothing to train', total_epochs)
    visualizer = Visualizer(opt, resume_iter=run.resume_iter, loss_order=model.loss_names)
    for m in run.messages:
        visualizer.log_message(m)
    train_eval = TrainEval(opt, model, dataloader.dataset, visualizer)
    trainer.after_phase_hooks.append(train_eval.after_phase)
    if run.state is not None:
        train_eval.load_state_dict(run.extra('train_eval'), ckpt.state_path(opt, opt.which_epoch))
    elif opt.continue_train:
        for path in train_eval.load_weights(opt.which_epoch):
            visualizer.log_message(f'EMA continued from {os.path.relpath(path, ckpt.run_dir(opt))}')
    if run.rng is not None and not run.restore_rng_after_iterator:
        ckpt.set_rng_states(run.rng)
    for k, net in model.networks().items():
        logger.info('net%s parameters: %s', k, f'{count_parameters(net):,}')
    epochs = f'{total_epochs} epoch' + ('s' if total_epochs != 1 else '')
    visualizer.log_message(f'training {epochs} x {len(dataloader)} iterations (batch {opt.batchSize}) on '
                           f'{opt.device}')

    loop = TrainingLoop(opt, trainer, dataloader, visualizer, train_eval, run)
    t_start = time.time()
    with logging_redirect_tqdm():
        for epoch in range(run.start_epoch, total_epochs + 1):
            if not loop.run_epoch(epoch, stop_after_iter):
                return {}
            logger.info('end of epoch %d / %d (%d iterations, %.0f s so far)', epoch, total_epochs,
                        loop.total_iters, time.time() - t_start)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                return {}
    if is_main_process():
        visualizer.save_page()

    scores = {}
    scorer = exact_scorer(opt)
    if scorer is not None and is_main_process():
        scores = evaluate_exactly(opt, model, visualizer, max(loop.epoch, 0), loop.total_iters, train_eval, scorer)
        print(f'{scorer.kind} score of the {scorer.what} val images: {format_scores(scores)}')
    logger.info('training finished in %.1f s; checkpoints and web page in %s', time.time() - t_start,
                ckpt.run_dir(opt))
    return scores


class TrainingLoop:
    """The epochs of a run: the model's phases per batch, logs, pages, evaluation, checkpoints."""

    def __init__(self, opt, trainer, dataloader, visualizer, train_eval, run):
        self.opt, self.trainer, self.dataloader = opt, trainer, dataloader
        self.visualizer, self.train_eval, self.run = visualizer, train_eval, run
        self.total_iters = run.total_iters
        self.epoch = run.start_epoch - 1

    def run_epoch(self, epoch, stop_after_iter=None):
        """Train one epoch and save its checkpoints; False when stopped early (stop_after_iter)."""
        opt, trainer, run = self.opt, self.trainer, self.run
        self.epoch = epoch
        n_iters = len(self.dataloader)
        total_epochs = opt.niter + opt.niter_decay
        self.dataloader.sampler.set_epoch(epoch)
        trainer.update_learning_rate(epoch)
        skip = run.start_epoch_iter if epoch == run.start_epoch else 0
        epoch_iterator = iter(self.dataloader if skip == 0 else loader_skipping(self.dataloader, skip))
        if run.restore_rng_after_iterator:
            ckpt.set_rng_states(run.rng)
            run.restore_rng_after_iterator = False
        epoch_iter = skip
        bar = tqdm(total=n_iters, initial=skip, desc=f'epoch {epoch}/{total_epochs}', unit='it',
                   disable=not is_main_process(), dynamic_ncols=True, leave=False)
        t_iter = time.time()
        try:
            for i, data_i in enumerate(epoch_iterator, start=skip):
                adapt_threads()  # the CPU thread count follows the machine's load (util/cpu.py)
                trainer.run_iteration(data_i, i)
                epoch_iter += 1
                self.total_iters += 1
                bar.update(1)
                t_iter = self._log(epoch, epoch_iter, data_i, t_iter, bar)
                if opt.save_iter_freq and self.total_iters % opt.save_iter_freq == 0 and is_main_process():
                    save_weight_files(trainer.model, opt, self.total_iters, self.total_iters, self.train_eval)
                if self.total_iters % opt.save_latest_freq == 0 and epoch_iter < n_iters:
                    save_checkpoint(trainer, opt, epoch, epoch_iter, self.total_iters, False, self.train_eval)
                    logger.info('saved the latest state (epoch %d, iteration %d)', epoch, self.total_iters)
                if stop_after_iter is not None and self.total_iters >= stop_after_iter:
                    bar.close()
                    return False
        except Exception as err:
            bar.close()
            self._save_after_fault(epoch, epoch_iter, err)
            raise
        bar.close()
        save_checkpoint(trainer, opt, epoch, epoch_iter, self.total_iters, True, self.train_eval)
        if is_main_process() and (epoch % opt.save_epoch_freq == 0 or epoch == total_epochs):
            save_weight_files(trainer.model, opt, epoch, self.total_iters, self.train_eval)
        return True

    def _save_after_fault(self, epoch, epoch_iter, err):
        """A fault mid-run (a non-finite loss, a disk or data error): write a last full-state
        checkpoint of the iterations completed, so that no more than the failing iteration is lost,
        and say where it is. The phases of the failing iteration that had already stepped stay in
        the saved weights. Not under DDP: the other ranks may not reach the collective calls."""
        if self.opt.world_size > 1:
            logger.error('training stopped at epoch %d after iteration %d (%s); under DDP no further '
                         'checkpoint is written: resume from the last one with --continue_train',
                         epoch, self.total_iters, type(err).__name__)
            return
        try:
            save_checkpoint(self.trainer, self.opt, epoch, epoch_iter, self.total_iters, False, self.train_eval)
        except Exception as save_err:  # noqa: BLE001 - the original fault is re-raised by the caller
            logger.error('training stopped at epoch %d after iteration %d (%s), and the last checkpoint '
                         'could not be written either: %s', epoch, self.total_iters, type(err).__name__, save_err)
            return
        logger.error('training stopped at epoch %d after iteration %d (%s: %s); the state after those '
                     'iterations is saved in %s: fix the cause and resume with --continue_train',
                     epoch, self.total_iters, type(err).__name__, err, ckpt.state_path(self.opt))

    def _log(self, epoch, epoch_iter, data_i, t_iter, bar):
        opt, total = self.opt, self.total_iters
        # The run's last iteration is logged and displayed too: a run shorter than --print_freq /
        # --display_freq still has its losses and images on the page.
        last = epoch == opt.niter + opt.niter_decay and epoch_iter == len(self.dataloader)
        if total % opt.print_freq == 0 or last:
            now = time.time()
            self.visualizer.print_current_errors(epoch, epoch_iter, total, self.trainer.losses, now - t_iter)
            bar.set_postfix({k: f'{v.item():.3f}' for k, v in self.trainer.get_latest_losses().items()},
                            refresh=False)
        t_iter = time.time()
        if total % opt.display_freq == 0 or last:
            self.visualizer.display_current_results(self.trainer.model.get_current_visuals(), epoch, total)
        self.train_eval.maybe_evaluate(epoch, total)
        return t_iter


def cli(argv=None):
    """Command-line entry: exit status 0, or 2 with the one-line message ``train.py: error: ...`` of a
    user error (util.errors.run_cli; ``--verbose`` shows its traceback instead)."""
    return run_cli('train.py', main, argv)


if __name__ == '__main__':
    sys.exit(cli())
