"""Checkpoints in two forms, both under ``checkpoints/<name>/``.

1. Full training state, ``latest_state.pth``: every network the model declares, every optimiser (and
   AMP grad scaler), the model's extra state (image pools, ...), epoch, iteration counters, all RNG
   states and the options. It is what ``--continue_train`` resumes
   from, exactly: a run stopped and continued ends with the same weights as an uninterrupted run.
2. Official weight-only files, ``<epoch>_net_<name>.pth`` per network (``_G``, ``_D``, ``_E``;
   ``_G_A``, ...) and ``latest_net_*``: plain state dicts with the layout of the released checkpoints, so released models and ours
   are interchangeable (test.py loads either; ``--continue_train`` fine-tunes from released ones).

Every file is written to a temporary name in the same directory and moved into place with
``os.replace``, so an interrupted save never leaves a truncated checkpoint behind. Files are read
with ``torch.load(weights_only=True)``; therefore only tensors and plain Python containers are
stored (RNG states are converted to tensors / ints, the options to a JSON-compatible dict).
"""
import glob
import logging
import os
import random
import re
import shutil

import numpy as np
import torch

from util.distributed import is_main_process, unwrap
from util.errors import CheckpointError, MissingFileError
from util.util import TEMP_PREFIX, atomic_open

logger = logging.getLogger(__name__)

STATE_FORMAT = 'dagan-train-state'
STATE_VERSION = 2  # 1: optimizers {'G', 'D', 'current_lr', 'scaler_G', 'scaler_D'} (still read)


# ----------------------------------------------------------------------------------------------
# paths

def run_dir(opt):
    return os.path.join(opt.checkpoints_dir, opt.name)


def state_path(opt, epoch='latest'):
    return os.path.join(run_dir(opt), f'{epoch}_state.pth')


def weight_file(opt, epoch, net_name):
    """The weight file of network ``net_name`` (``G``, ``D_A``, ``G_ema`` for an EMA copy ...) at
    ``epoch``, relative to the run folder, as ``opt.model``'s official code names it
    (``BaseModel.weight_file``: ``<epoch>_net_<net_name>.pth``; OASIS: ``models/<epoch>_G.pth``).
    ``'*'`` for ``epoch`` / ``net_name`` gives a glob pattern."""
    import models

    return models.find_model_using_name(opt.model).weight_file(epoch, net_name)


def weight_path(opt, epoch, net_name):
    """``checkpoints/<name>/`` + :func:`weight_file` (the official file name)."""
    return os.path.join(run_dir(opt), weight_file(opt, epoch, net_name))


def weight_files_of(opt, epoch):
    """The weight files of ``epoch`` in the run folder, EMA copies excluded (sorted paths)."""
    pattern = os.path.join(glob.escape(run_dir(opt)), weight_file(opt, glob.escape(str(epoch)), '*'))
    ema = {os.path.basename(weight_file(opt, epoch, 'G_ema'))}
    return sorted(p for p in glob.glob(pattern)
                  if not p.endswith('_ema.pth') and os.path.basename(p) not in ema)


def weight_epochs(opt):
    """The epoch labels of the weight files in the run folder (sorted)."""
    template = re.escape(weight_file(opt, 'EPOCH', 'NAME')).replace('EPOCH', '(.+?)', 1).replace('NAME', '.+', 1)
    labels = set()
    for path in glob.glob(os.path.join(glob.escape(run_dir(opt)), weight_file(opt, '*', '*'))):
        match = re.fullmatch(template, os.path.relpath(path, run_dir(opt)).replace(os.sep, '/'))
        if match:
            labels.add(match.group(1))
    return sorted(labels)


# ----------------------------------------------------------------------------------------------
# atomic IO

def atomic_torch_save(obj, path):
    """torch.save through a temporary file next to ``path``, flushed to disk, then os.replace."""
    with atomic_open(path, fsync=True) as f:
        torch.save(obj, f)


def safe_torch_load(path, map_location='cpu'):
    """torch.load(weights_only=True) with errors that name the file."""
    if not os.path.isfile(path):
        raise MissingFileError(f'checkpoint file not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(
            f'cannot read checkpoint {path}: {e}. The file is truncated, not a PyTorch file, or '
            f'contains pickled Python objects (only tensors and plain containers are accepted).'
        ) from e


# ----------------------------------------------------------------------------------------------
# networks

def cpu_state_dict(net):
    """A state dict with every tensor copied to CPU in the plain contiguous layout (also when the
    network runs channels-last), so files match the official ones tensor for tensor."""
    return {k: v.detach().to('cpu', copy=True, memory_format=torch.contiguous_format)
            for k, v in net.state_dict().items()}


def load_state_dict_checked(net, state_dict, source):
    """Strict load; a :class:`util.errors.CheckpointError` names the file and the mismatching keys/shapes."""
    # Weights saved from a DataParallel/DDP-wrapped network carry a 'module.' prefix.
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    own = net.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state_dict)
                         if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong_shape:
        def show(keys):
            return ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        parts = []
        if missing:
            parts.append(f'missing keys: {show(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {show(unexpected)}')
        if wrong_shape:
            parts.append('shape mismatch: ' + show(
                [f'{k} file {tuple(state_dict[k].shape)} vs network {tuple(own[k].shape)}'
                 for k in wrong_shape]))
        raise CheckpointError(
            f'{source} does not fit the {type(net).__name__} built from the options '
            f'({"; ".join(parts)}). Check --netG/--ngf/--label_nc/--no_instance/'
            f'--contain_dontcare_label/--num_upsampling_layers/--crop_size against the run that '
            f'wrote the file.')
    net.load_state_dict(state_dict, strict=True)


def save_network_weights(model, opt, epoch):
    """Write ``<epoch>_net_<name>.pth`` for every network of the model: plain CPU state dicts."""
    paths = []
    for name, net in model.networks().items():
        path = weight_path(opt, epoch, name)
        atomic_torch_save(cpu_state_dict(net), path)
        paths.append(path)
    return paths


def load_network_weights(model, opt, which_epoch, names, required):
    """Load ``<which_epoch>_net_<X>.pth`` into the model's networks (ours or the official files).

    When a weight-only file is missing but our ``<which_epoch>_state.pth`` exists, the weights are
    taken from that. Names in ``required`` raise MissingFileError (a FileNotFoundError) when neither
    file exists; the others are skipped (and reported in the returned dict as None).
    Returns {name: path the weights came from or None}.
    """
    nets = model.networks()
    loaded = {}
    full_state = None
    for name in names:
        if name not in nets:
            continue
        path = weight_path(opt, which_epoch, name)
        if os.path.isfile(path):
            load_state_dict_checked(nets[name], safe_torch_load(path), path)
            loaded[name] = path
            continue
        spath = state_path(opt, which_epoch)
        if full_state is None and os.path.isfile(spath):
            full_state = _load_state_file(spath)
        if full_state is not None and name in full_state['networks']:
            load_state_dict_checked(nets[name], full_state['networks'][name], f'{spath} [net{name}]')
            loaded[name] = spath
            continue
        if name in required:
            raise MissingFileError(
                f'no weights for net{name}: neither {path} nor {spath} exists. Put the official '
                f'{weight_file(opt, which_epoch, name)} into {run_dir(opt)}/ or check --name/--checkpoints_dir/'
                f'--which_epoch.')
        loaded[name] = None
    return loaded


# ----------------------------------------------------------------------------------------------
# RNG states as tensors / plain values (loadable with weights_only=True)

def get_rng_states():
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    states = {
        'python': {'version': int(py_version),
                   'state': torch.tensor(py_state, dtype=torch.int64),
                   'gauss_next': py_gauss},
        'numpy': {'name': str(np_name),
                  'keys': torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  'pos': int(np_pos), 'has_gauss': int(np_has_gauss),
                  'cached_gaussian': float(np_gauss)},
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return states


def set_rng_states(states):
    py = states['python']
    random.setstate((py['version'], tuple(int(x) for x in py['state'].tolist()), py['gauss_next']))
    n = states['numpy']
    np.random.set_state((n['name'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'],
                         n['cached_gaussian']))
    torch.set_rng_state(states['torch'])
    cuda_states = states.get('cuda') or []
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning('checkpoint holds CUDA RNG states of %d devices, this machine has %d: '
                           'CUDA random streams are not restored', len(cuda_states),
                           torch.cuda.device_count())


# ----------------------------------------------------------------------------------------------
# full training state

def opt_to_plain(opt):
    """The options as a JSON-compatible dict (torch.device and other objects become strings)."""
    plain = {}
    for k, v in sorted(vars(opt).items()):
        if isinstance(v, (bool, int, float, str)) or v is None:
            plain[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in v):
            plain[k] = list(v)
        else:
            plain[k] = str(v)
    return plain


def save_training_state(trainer, opt, epoch, epoch_iter, total_iters, epoch_done, extra=None,
                        label='latest'):
    """Atomically write ``<label>_state.pth`` of ``trainer`` (models.trainer.Trainer) and its model.

    epoch: the epoch being trained (1-based); epoch_iter: iterations of it already done;
    epoch_done: True when the epoch is complete (resume then starts at epoch + 1). The data order
    needs no saved state: the loader's sampler and per-sample augmentation are seeded by
    (seed, epoch, index) (data.EpochSampler), so a resumed epoch can skip its first epoch_iter
    batches without loading them.
    """
    state = {
        'format': STATE_FORMAT,
        'version': STATE_VERSION,
        'networks': {name: cpu_state_dict(net) for name, net in trainer.model.networks().items()},
        'optimizers': trainer.state_dict(),
        'model_extra': trainer.model.extra_state_dict(),
        'epoch': int(epoch),
        'epoch_iter': int(epoch_iter),
        'total_iters': int(total_iters),
        'epoch_done': bool(epoch_done),
        'rng': get_rng_states(),
        'opt': opt_to_plain(opt),
        'extra': extra or {},
    }
    path = state_path(opt, label)
    atomic_torch_save(state, path)
    return path


def _load_state_file(path):
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get('format') != STATE_FORMAT:
        raise CheckpointError(f'{path} is not a training-state file written by this repo '
                           f'(expected format {STATE_FORMAT!r})')
    if state.get('version') == 1:
        old = state['optimizers']
        state['optimizers'] = {
            'optimizers': {k: old[k] for k in ('G', 'D') if k in old},
            'scalers': {k[len('scaler_'):]: old[k] for k in ('scaler_G', 'scaler_D') if k in old}}
        state['version'] = STATE_VERSION
    if state.get('version') != STATE_VERSION:
        raise CheckpointError(f'{path} has state version {state.get("version")}, this code reads '
                           f'versions 1 and {STATE_VERSION}')
    return state


def load_training_state(trainer, path):
    """Restore networks, optimisers and the model's extra state from a full-state file; returns it.

    RNG states are NOT applied here: the caller applies them at the right moment (see train.py).
    """
    state = _load_state_file(path)
    nets = trainer.model.networks()
    for name, sd in state['networks'].items():
        if name not in nets:
            raise CheckpointError(f'{path} holds net{name} but the options build no net{name} '
                               f'(e.g. --model or --use_vae differs from the saved run)')
        load_state_dict_checked(nets[name], sd, f'{path} [net{name}]')
    for name in nets:
        if name not in state['networks']:
            raise CheckpointError(f'{path} holds no net{name} but the options build one')
    trainer.load_state_dict(state['optimizers'], path)
    trainer.model.load_extra_state_dict(state.get('model_extra') or {})
    return state


# ----------------------------------------------------------------------------------------------
# what is in a run directory

def run_files(opt):
    """Files in checkpoints/<name>/ that belong to a training run (not opt.txt/opt.json alone)."""
    d = run_dir(opt)
    patterns = ['*_state.pth', weight_file(opt, '*', '*'), 'best.json', 'loss_log.txt', 'loss_log.jsonl']
    found = []
    for p in patterns:
        found.extend(glob.glob(os.path.join(glob.escape(d), p)))
    found = list(dict.fromkeys(found))
    if os.path.isdir(os.path.join(d, 'web')):
        found.append(os.path.join(d, 'web'))
    return sorted(found)


def leftover_temp_files(opt):
    """Temporary files of interrupted atomic writes in the run folder and its page folders: the
    hidden ``.tmp_*`` files of util.util.atomic_open (and ``.*.tmp`` of earlier versions)."""
    found = []
    for folder in (run_dir(opt), os.path.join(run_dir(opt), 'web'), os.path.join(run_dir(opt), 'web', 'images')):
        if os.path.isdir(folder):
            found += [os.path.join(folder, f) for f in os.listdir(folder)
                      if f.startswith(TEMP_PREFIX) or (f.startswith('.') and f.endswith('.tmp'))]
    return sorted(found)


def describe_resume_source(opt):
    """('state', path) | ('weights', path of a weight-only file) | (None, None) for --continue_train."""
    spath = state_path(opt, opt.which_epoch)
    if os.path.isfile(spath):
        return 'state', spath
    weights = weight_files_of(opt, opt.which_epoch)
    if weights:
        return 'weights', weights[0]
    return None, None


# ----------------------------------------------------------------------------------------------
# how much disk a run's checkpoints take

# Bytes torch.save adds per stored tensor (zip entry, 64-byte alignment, pickled key and metadata),
# measured with torch 2.14: 250-320 depending on the key length.
TENSOR_FILE_OVERHEAD = 300
# The rest of a full-state file: RNG states (~10 KB), options, counters.
STATE_FILE_OVERHEAD = 32 * 1024


def _tensor_file_bytes(tensors):
    return sum(t.numel() * t.element_size() + TENSOR_FILE_OVERHEAD for t in tensors)


def checkpoint_size_estimate(model, opt):
    """Bytes on disk of the checkpoints train.py writes for ``model`` under ``opt``, before any is
    written. Returns a dict:

    - ``weights``: one set of weight-only files ``<label>_net_<X>.pth`` (every network's parameters
      and buffers; plus ``_ema`` files with --ema_decay);
    - ``state``: ``latest_state.pth``: the networks, Adam's two moments per trainable parameter
      (parameters x 4 bytes x (1 + 2) in fp32), the EMA networks, RNG states and options;
    - ``epoch_sets``: the number of ``<epoch>_net_*`` sets kept (every --save_epoch_freq epochs and
      the last epoch); ``best``: ``best_net_*`` with --eval_freq (0 otherwise);
    - ``total``: everything at the end of the run: the state and ``latest_net_*`` (each overwritten
      in place), the epoch sets and the best weights.
    """
    nets = {name: unwrap(net) for name, net in model.networks().items()}
    net_bytes = {name: _tensor_file_bytes(net.state_dict().values()) for name, net in nets.items()}
    ema_bytes = sum(net_bytes[n] for n in model.ema_network_names if n in nets) if opt.ema_decay > 0 else 0
    weights = sum(net_bytes.values()) + ema_bytes
    trainable = [p for net in nets.values() for p in net.parameters() if p.requires_grad]
    # exp_avg and exp_avg_sq like the parameter, plus one 'step' scalar per parameter
    adam = 2 * _tensor_file_bytes(trainable) + len(trainable) * (4 + TENSOR_FILE_OVERHEAD)
    state = sum(net_bytes.values()) + adam + ema_bytes + STATE_FILE_OVERHEAD
    total_epochs = opt.niter + opt.niter_decay
    epoch_sets = len([e for e in range(1, total_epochs + 1) if e % opt.save_epoch_freq == 0 or e == total_epochs])
    best = 0
    if opt.eval_freq > 0:
        best = sum(net_bytes[n] for n in model.inference_network_names if n in nets) + ema_bytes
    return {"weights": weights, "state": state, "epoch_sets": epoch_sets, "best": best,
            "total": state + weights * (1 + epoch_sets) + best}


def format_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def log_checkpoint_estimate(model, opt):
    """Log what the run's checkpoints will take on disk (:func:`checkpoint_size_estimate`); a
    warning when that exceeds the free space of --checkpoints_dir. Returns the estimate."""
    est = checkpoint_size_estimate(model, opt)
    if not is_main_process():
        return est
    logger.info(
        "checkpoints: %s for the full state (latest_state.pth) + %s per set of weight files, "
        "latest_net_* and %d epoch set(s) <epoch>_net_* (--save_epoch_freq %d and the last epoch)%s: "
        "about %s in %s at the end",
        format_bytes(est["state"]), format_bytes(est["weights"]), est["epoch_sets"], opt.save_epoch_freq,
        f" + {format_bytes(est['best'])} best_net_*" if est["best"] else "", format_bytes(est["total"]),
        run_dir(opt))
    folder = os.path.abspath(run_dir(opt))
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    free = shutil.disk_usage(folder).free
    if est["total"] > free:
        logger.warning("the checkpoints of this run will need about %s, but %s has only %s free: raise "
                       "--save_epoch_freq, or train a smaller network (--ngf, --ndf)",
                       format_bytes(est["total"]), folder, format_bytes(free))
    return est
