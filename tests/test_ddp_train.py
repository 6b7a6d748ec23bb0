"""train.py under DDP on CPU (gloo, 2 processes as torchrun would start them): exact resume with
--continue_train, and rank discipline (one loss log, written once)."""
import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import data
from options.train_options import TrainOptions


def tiny_args(root, ckpt_dir, name, *extra):
    # 4 training samples, global batch 2 = 1 per rank: 2 iterations per epoch.
    return ['--dataroot', root, '--synthetic_num_train', '8', '--synthetic_num_val', '2',
            '--checkpoints_dir', str(ckpt_dir), '--name', name, '--gpu_ids', '-1',
            '--ngf', '4', '--ndf', '4', '--crop_size', '64', '--load_size', '64',
            '--norm_G', 'spectralspadeinstance3x3',  # per-rank batch 1: no batch statistics
            '--num_D', '1', '--n_layers_D', '2', '--batchSize', '2', '--max_dataset_size', '4',
            '--no_vgg_loss', '--print_freq', '1', '--display_freq', '100', '--no_html',
            '--niter', '2', '--niter_decay', '0', '--save_latest_freq', '1', *extra]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, root, ckpt_dir):
    # What torchrun sets for each process.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import train

    # One process group for the three runs (train.main joins an existing group and leaves it open).
    dist.init_process_group('gloo')
    try:
        train.main(tiny_args(root, ckpt_dir, 'full'))
        # Killed after iteration 3 = the first iteration of epoch 2 (its state was saved then).
        train.main(tiny_args(root, ckpt_dir, 'split'), stop_after_iter=3)
        train.main(tiny_args(root, ckpt_dir, 'split', '--continue_train'))
    finally:
        dist.destroy_process_group()


def loss_records(path):
    with open(path, encoding='utf-8') as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in r.items() if k != 'time'} for r in records if r['kind'] == 'loss']


def test_ddp_resume_is_exact_and_only_rank0_writes(tmp_path):
    root = str(tmp_path / 'data')
    data.create_dataset(TrainOptions().parse(tiny_args(root, tmp_path, 'prepare')))  # generate once
    mp.spawn(_worker, args=(2, free_port(), root, str(tmp_path)), nprocs=2, join=True)

    state = torch.load(tmp_path / 'split' / 'latest_state.pth', weights_only=True)
    assert (state['epoch'], state['total_iters']) == (2, 4)
    for net in ('G', 'D'):
        full = torch.load(tmp_path / 'full' / f'latest_net_{net}.pth', weights_only=True)
        split = torch.load(tmp_path / 'split' / f'latest_net_{net}.pth', weights_only=True)
        assert full.keys() == split.keys() and not any(k.startswith('module.') for k in full)
        for k in full:
            assert torch.equal(full[k], split[k]), f'net{net}.{k}'
    full_log = loss_records(tmp_path / 'full' / 'loss_log.jsonl')
    assert [r['iter'] for r in full_log] == [1, 2, 3, 4]  # rank 0 alone logs: no duplicate lines
    assert full_log == loss_records(tmp_path / 'split' / 'loss_log.jsonl')
