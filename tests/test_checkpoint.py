"""util/checkpoint.py: atomic writes, weights_only loading, RNG states, strict weight loading."""
import argparse
import os
import random

import numpy as np
import pytest
import torch

from models.base_model import BaseModel
from util import checkpoint as ckpt


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    path = tmp_path / 'rng.pth'
    ckpt.atomic_torch_save({'rng': ckpt.get_rng_states()}, str(path))
    expected = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.set_rng_states(torch.load(path, weights_only=True)['rng'])
    got = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3]
    assert torch.equal(got[3], expected[3])


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / 'latest_state.pth'
    ckpt.atomic_torch_save({'a': torch.ones(2)}, str(path))

    def broken_save(obj, f):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        ckpt.atomic_torch_save({'a': torch.zeros(2)}, str(path))
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)['a'], torch.ones(2))
    assert os.listdir(tmp_path) == ['latest_state.pth']  # no temporary file left behind


def test_loading_refuses_pickled_objects_and_names_the_file(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'opt': argparse.Namespace(a=1)}, path)
    with pytest.raises(RuntimeError, match='evil.pth'):
        ckpt.safe_torch_load(str(path))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        ckpt.safe_torch_load(str(tmp_path / 'missing.pth'))


def test_strict_weight_loading_names_file_and_keys():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.Conv2d(5, 2, 1))
    with pytest.raises(RuntimeError, match=r'G\.pth.*0\.weight file \(5, 3, 3, 3\) vs network \(4, 3, 3, 3\)'):
        ckpt.load_state_dict_checked(net, other.state_dict(), 'G.pth')
    sd = net.state_dict()
    del sd['1.bias']
    with pytest.raises(RuntimeError, match=r'missing keys: 1\.bias'):
        ckpt.load_state_dict_checked(net, sd, 'G.pth')
    # weights saved from a DataParallel/DDP wrapper load too
    wrapped = {'module.' + k: v + 1 for k, v in net.state_dict().items()}
    ckpt.load_state_dict_checked(net, wrapped, 'G.pth')
    assert torch.equal(net[0].bias, wrapped['module.0.bias'])


class _Model(BaseModel):
    """Two generators and a discriminator, named as an unpaired model names them."""

    network_names = ('G_A', 'G_B', 'D_A')

    def __init__(self):
        super().__init__(argparse.Namespace(device=torch.device('cpu')))
        self.netG_A = torch.nn.Linear(2, 2)
        self.netG_B = None  # declared, not built (e.g. a test-time model)
        self.netD_A = torch.nn.Linear(2, 1)


def test_weight_files_use_the_official_names_and_plain_state_dicts(tmp_path):
    opt = argparse.Namespace(checkpoints_dir=str(tmp_path), name='run')
    model = _Model()
    ckpt.save_network_weights(model, opt, 'latest')
    ckpt.save_network_weights(model, opt, 7)
    assert sorted(os.listdir(tmp_path / 'run')) == ['7_net_D_A.pth', '7_net_G_A.pth', 'latest_net_D_A.pth',
                                                      'latest_net_G_A.pth']
    sd = torch.load(tmp_path / 'run' / '7_net_G_A.pth', weights_only=True)
    assert set(sd) == {'weight', 'bias'} and torch.equal(sd['weight'], model.netG_A.weight)

    fresh = _Model()
    loaded = ckpt.load_network_weights(fresh, opt, '7', names=('G_A', 'G_B', 'D_A'), required=('G_A',))
    assert loaded == {'G_A': os.path.join(str(tmp_path), 'run', '7_net_G_A.pth'),
                      'D_A': os.path.join(str(tmp_path), 'run', '7_net_D_A.pth')}
    assert torch.equal(fresh.netD_A.weight, model.netD_A.weight)
    with pytest.raises(FileNotFoundError, match=r'3_net_G_A\.pth.*3_state\.pth'):
        ckpt.load_network_weights(fresh, opt, '3', names=('G_A',), required=('G_A',))


def test_checkpoint_size_estimate_matches_the_files_of_a_run(synth_root, tmp_path, caplog):
    """The estimate logged before training against what a tiny run writes: the full state, one set
    of weight files and the total within 10%, the number of epoch sets exactly."""
    import logging

    import models
    import train
    from options.train_options import TrainOptions
    from test_train import tiny_args

    # 3 epochs, weights every 2: latest + epochs 2 and 3 (the last)
    args = tiny_args(synth_root, tmp_path, 'size', '--niter', '2', '--niter_decay', '1', '--save_epoch_freq', '2',
                     '--ema_decay', '0.9')
    train.main(args)
    run = tmp_path / 'size'
    opt = TrainOptions().parse(args)
    with caplog.at_level(logging.INFO, logger='util.checkpoint'):
        est = ckpt.log_checkpoint_estimate(models.create_model(opt), opt)

    def size(*names):
        return sum(os.path.getsize(run / n) for n in names)

    pth = sorted(p for p in os.listdir(run) if p.endswith('.pth'))
    assert pth == ['2_net_D.pth', '2_net_G.pth', '2_net_G_ema.pth', '3_net_D.pth', '3_net_G.pth', '3_net_G_ema.pth',
                   'latest_net_D.pth', 'latest_net_G.pth', 'latest_net_G_ema.pth', 'latest_state.pth']
    assert est['epoch_sets'] == 2
    assert est['state'] == pytest.approx(size('latest_state.pth'), rel=0.1)
    assert est['weights'] == pytest.approx(size('latest_net_D.pth', 'latest_net_G.pth', 'latest_net_G_ema.pth'),
                                           rel=0.1)
    assert est['total'] == pytest.approx(size(*pth), rel=0.1)
    # parameters x 4 bytes x (1 + 2 Adam moments) dominate the state
    params = sum(p.numel() for p in models.create_model(opt).parameters())
    assert est['state'] > params * 4 * 3
    logged = [r.getMessage() for r in caplog.records if r.name == 'util.checkpoint']
    assert len(logged) == 1 and 'latest_state.pth' in logged[0] and '2 epoch set(s)' in logged[0]
    assert f'about {ckpt.format_bytes(est["total"])} in {ckpt.run_dir(opt)}' in logged[0]
