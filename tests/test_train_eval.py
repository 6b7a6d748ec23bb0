"""train.py --eval_freq / --ema_decay (util/train_eval.py): eval records and page, the best
checkpoint, FID during training against util.metrics, EMA files and exact resume with EMA."""
import argparse
import json
import re

import pytest
import torch

import models
import test as test_py
import train
from options.test_options import TestOptions
from options.train_options import TrainOptions
from test_train import assert_same_state, load_sd, read_jsonl, tiny_args
from util.metrics.fid import (INCEPTION_WEIGHTS_FILE, activations_from_tensors, fid_from_activations, load_fid_inception)
from util.train_eval import TrainEval


def eval_records(run_dir, what=None):
    return [r for r in read_jsonl(run_dir / 'loss_log.jsonl')
            if r['kind'] == 'eval' and (what is None or r['what'] == what)]


def test_eval_freq_logs_plots_and_keeps_the_best(synth_root, tmp_path, tmp_torch_home, monkeypatch):
    fake_fids = iter([5.0, 3.0, 4.0, 6.0])
    g_at_eval = []

    def fake_scores(self):
        g_at_eval.append({k: v.clone() for k, v in self.model.netG.state_dict().items()})
        return {'fid': next(fake_fids), 'pixel_accuracy': 0.5}

    monkeypatch.setattr(TrainEval, '_scores', fake_scores)
    train.main(tiny_args(synth_root, tmp_path, 'ev', '--niter', '2', '--eval_freq', '1'))
    run = tmp_path / 'ev'
    evals = eval_records(run, 'G')
    assert [(r['iter'], r['fid']) for r in evals] == [(1, 5.0), (2, 3.0), (3, 4.0), (4, 6.0)]
    best = json.loads((run / 'best.json').read_text())
    assert (best['metric'], best['value'], best['iter'], best['epoch']) == ('fid', 3.0, 2, 1)
    # saved at the improvement (iteration 2), not overwritten by the worse iterations 3 and 4
    assert_same_state(load_sd(run / 'best_net_G.pth'), g_at_eval[1])
    assert any(not torch.equal(g_at_eval[1][k], g_at_eval[3][k]) for k in g_at_eval[1])
    assert not (run / 'best_net_G_ema.pth').exists()
    page = (run / 'web' / 'index.html').read_text(encoding='utf-8')
    # FID on its own axis, the [0,1] scores on another
    assert '>evaluation: fid<' in page and re.search(r'>evaluation: [^<]*pixel_accuracy[^<]*<', page)
    assert re.search(r'>G</td>\s*<td[^>]*>6.0000</td>', page)
    # no Inception in the (empty) hub cache: one clear line, and the layout score still runs
    log = (run / 'loss_log.txt').read_text(encoding='utf-8')
    assert log.count('FID is skipped') == 1 and INCEPTION_WEIGHTS_FILE in log


def test_layout_only_evaluation_picks_highest_accuracy(synth_root, tmp_path, tmp_torch_home):
    train.main(tiny_args(synth_root, tmp_path, 'lay', '--niter', '2', '--eval_freq', '2'))
    run = tmp_path / 'lay'
    evals = eval_records(run, 'G')
    assert [r['iter'] for r in evals] == [2, 4] and all('fid' not in r for r in evals)
    best = json.loads((run / 'best.json').read_text())
    assert best['metric'] == 'pixel_accuracy'
    assert best['value'] == max(r['pixel_accuracy'] for r in evals)


def test_fid_during_training_with_ema_equals_util_metrics(synth_root, tmp_path, random_inception):
    args = tiny_args(synth_root, tmp_path, 'fid', '--niter', '1', '--eval_freq', '2', '--ema_decay', '0.9',
                     '--fid_dims', '192', '--bn_recalib_batches', '2')
    train.main(args)
    run = tmp_path / 'fid'
    (record,) = eval_records(run, 'G_ema')
    assert record['iter'] == 2 and {'fid', 'pixel_accuracy', 'mIoU'} <= set(record)

    # Recompute: the saved EMA generator on the val split, FID with util.metrics on the same images.
    opt = TrainOptions().parse(args)
    opt.no_vgg_loss = True
    model = models.create_model(opt)
    ema_sd = load_sd(run / 'best_net_G_ema.pth')
    assert_same_state(ema_sd, load_sd(run / 'latest_net_G_ema.pth'))
    assert_same_state(ema_sd, load_sd(run / '1_net_G_ema.pth'))
    # the EMA differs from G, and its BatchNorm statistics were re-estimated (not G's copied ones)
    g_sd = load_sd(run / 'latest_net_G.pth')
    assert any(not torch.equal(ema_sd[k], g_sd[k]) for k in g_sd if k.endswith('weight_orig'))
    assert any(not torch.equal(ema_sd[k], g_sd[k]) for k in g_sd if k.endswith('running_mean'))
    model.netG.load_state_dict(ema_sd)
    model.eval()
    import data
    from util.train_eval import val_options
    fakes, reals = [], []
    with torch.no_grad():
        for batch in data.create_dataloader(val_options(opt)):
            fakes.append(model.inference(batch)['synthesized_image'])
            reals.append(batch['image'])
    inception = load_fid_inception(dims=192)
    expected = fid_from_activations(activations_from_tensors(torch.cat(reals), inception),
                                    activations_from_tensors(torch.cat(fakes), inception))
    assert expected > 0 and record['fid'] == pytest.approx(expected, rel=1e-6)


def test_ema_resume_is_exact_and_evaluation_does_not_change_training(synth_root, tmp_path, tmp_torch_home):
    common = ('--niter', '1', '--niter_decay', '1', '--ema_decay', '0.8', '--eval_freq', '1',
              '--bn_recalib_batches', '1')
    train.main(tiny_args(synth_root, tmp_path, 'full', *common))
    train.main(tiny_args(synth_root, tmp_path, 'split', *common), stop_after_epoch=1)
    state = torch.load(tmp_path / 'split' / 'latest_state.pth', weights_only=True)
    assert state['extra']['train_eval']['ema']['G']['num_updates'] == 2
    train.main(tiny_args(synth_root, tmp_path, 'split', *common, '--continue_train'))
    for f in ('latest_net_G.pth', 'latest_net_G_ema.pth', 'best_net_G.pth', 'best_net_G_ema.pth'):
        assert_same_state(load_sd(tmp_path / 'full' / f), load_sd(tmp_path / 'split' / f))
    assert eval_records(tmp_path / 'full') == eval_records(tmp_path / 'split')
    assert (json.loads((tmp_path / 'full' / 'best.json').read_text())
            == json.loads((tmp_path / 'split' / 'best.json').read_text()))

    # the same run without EMA and evaluation trains bit-identical weights
    train.main(tiny_args(synth_root, tmp_path, 'plain', '--niter', '1', '--niter_decay', '1'))
    assert_same_state(load_sd(tmp_path / 'full' / 'latest_net_G.pth'),
                      load_sd(tmp_path / 'plain' / 'latest_net_G.pth'))
    assert not (tmp_path / 'plain' / 'latest_net_G_ema.pth').exists()

    # test.py --use_ema loads the EMA file into G
    topt = TestOptions().parse(['--dataroot', synth_root, '--checkpoints_dir', str(tmp_path), '--name', 'full',
                                '--gpu_ids', '-1', '--ngf', '8', '--crop_size', '32', '--load_size', '32',
                                '--use_ema'])
    model = models.create_model(topt)
    loaded = test_py.load_networks(model, topt)
    assert loaded['G'].endswith('latest_net_G_ema.pth')
    assert_same_state({k: v.cpu() for k, v in model.netG.state_dict().items()},
                      load_sd(tmp_path / 'full' / 'latest_net_G_ema.pth'))


def test_network_swapped_restores_the_network():
    from models.base_model import BaseModel

    model = BaseModel(argparse.Namespace(device=torch.device('cpu')))
    model.network_names = ('G',)
    model.netG = torch.nn.Linear(1, 1)
    original, other = model.netG, torch.nn.Linear(1, 1)
    with pytest.raises(RuntimeError):
        with model.network_swapped('G', other):
            assert model.netG is other and model.networks() == {'G': other}
            raise RuntimeError('boom')
    assert model.netG is original
