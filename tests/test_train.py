"""train.py end to end on a tiny synthetic configuration: exact resume, fine-tuning from official
weight-only files, refusing to overwrite a run, the JSON-lines loss log, the first-iteration losses
against the loss formulas of SPADE's trainer (hinge, feature matching), the training web page, --dry_run, and the learning-rate schedule."""
import json
import logging
import os
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models
import train
from models.pix2pix_model import spade_learning_rate
from models.trainer import Trainer
from options.train_options import TrainOptions
from util.html import url_to_path

LOSS_KEYS = {'GAN', 'GAN_Feat', 'D_Fake', 'D_real'}


def tiny_args(synth_root, ckpt_dir, name, *extra):
    # 4 training samples, batch 2: 2 iterations per epoch.
    return ['--dataroot', synth_root, '--synthetic_num_train', '8', '--synthetic_num_val', '4',
            '--checkpoints_dir', str(ckpt_dir), '--name', name, '--gpu_ids', '-1',
            '--ngf', '8', '--ndf', '8', '--crop_size', '32', '--load_size', '32',
            '--num_D', '2', '--n_layers_D', '2', '--batchSize', '2', '--max_dataset_size', '4',
            '--no_vgg_loss', '--print_freq', '1', '--display_freq', '2', '--niter', '1', '--niter_decay', '0',
            *extra]


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def load_sd(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def loss_records(path):
    return [{k: v for k, v in r.items() if k != 'time'} for r in read_jsonl(path) if r['kind'] == 'loss']


# ------------------------------------------------------------------------------------------------
# resume

def test_resume_after_epoch_gives_identical_weights(synth_root, tmp_path):
    # niter 1 + niter_decay 2: the learning rate changes in epoch 3, after the resume.
    common = ('--niter', '1', '--niter_decay', '2')
    train.main(tiny_args(synth_root, tmp_path, 'full', *common))
    train.main(tiny_args(synth_root, tmp_path, 'split', *common), stop_after_epoch=1)
    assert not os.path.exists(tmp_path / 'split' / '3_net_G.pth')
    state = torch.load(tmp_path / 'split' / 'latest_state.pth', weights_only=True)
    assert (state['epoch'], state['epoch_iter'], state['total_iters'], state['epoch_done']) == (1, 2, 2, True)
    train.main(tiny_args(synth_root, tmp_path, 'split', *common, '--continue_train'))

    for net in ('G', 'D'):
        assert_same_state(load_sd(tmp_path / 'full' / f'latest_net_{net}.pth'),
                          load_sd(tmp_path / 'split' / f'latest_net_{net}.pth'))
    full, split = loss_records(tmp_path / 'full' / 'loss_log.jsonl'), loss_records(
        tmp_path / 'split' / 'loss_log.jsonl')
    assert [r['iter'] for r in split] == [1, 2, 3, 4, 5, 6]
    assert full == split


def test_resume_mid_epoch_gives_identical_weights(synth_root, tmp_path):
    common = ('--niter', '2', '--niter_decay', '0', '--save_latest_freq', '1')
    train.main(tiny_args(synth_root, tmp_path, 'full', *common))
    # Killed after iteration 3 = first iteration of epoch 2 (its state was saved at iteration 3).
    train.main(tiny_args(synth_root, tmp_path, 'split', *common), stop_after_iter=3)
    state = torch.load(tmp_path / 'split' / 'latest_state.pth', weights_only=True)
    assert (state['epoch'], state['epoch_iter'], state['epoch_done']) == (2, 1, False)
    train.main(tiny_args(synth_root, tmp_path, 'split', *common, '--continue_train'))
    for net in ('G', 'D'):
        assert_same_state(load_sd(tmp_path / 'full' / f'latest_net_{net}.pth'),
                          load_sd(tmp_path / 'split' / f'latest_net_{net}.pth'))
    assert loss_records(tmp_path / 'full' / 'loss_log.jsonl') == loss_records(
        tmp_path / 'split' / 'loss_log.jsonl')


# ------------------------------------------------------------------------------------------------
# fine-tuning from official weight-only files

def test_finetune_from_official_weight_files(synth_root, tmp_path, monkeypatch, caplog):
    args = tiny_args(synth_root, tmp_path, 'ft', '--niter', '1')
    opt = TrainOptions().parse(args)
    torch.manual_seed(1234)  # not the run's seed: these weights differ from a fresh run's
    official = models.create_model(opt)
    run_dir = tmp_path / 'ft'
    run_dir.mkdir()
    files = {}
    for net in ('G', 'D'):
        files[net] = {k: v.clone() for k, v in getattr(official, 'net' + net).state_dict().items()}
        torch.save(files[net], run_dir / f'latest_net_{net}.pth')

    seen = {}
    original = Trainer.run_phase

    def spy(self, phase, data):
        if not seen:
            seen['G'] = {k: v.clone() for k, v in self.model.netG.state_dict().items()}
            seen['D'] = {k: v.clone() for k, v in self.model.netD.state_dict().items()}
            seen['optimizer_state'] = sum(len(o.state) for o in self.optimizers.values())
        return original(self, phase, data)

    monkeypatch.setattr(Trainer, 'run_phase', spy)
    caplog.set_level(logging.INFO)
    train.main(args + ['--continue_train'])

    assert_same_state(seen['G'], files['G'])
    assert_same_state(seen['D'], files['D'])
    assert seen['optimizer_state'] == 0  # fresh optimizers
    assert 'fine-tuning from weight-only files' in caplog.text
    with open(run_dir / 'loss_log.txt', encoding='utf-8') as f:
        assert 'fine-tuning from weight-only files netG: latest_net_G.pth, netD: latest_net_D.pth' in f.read()
    records = loss_records(run_dir / 'loss_log.jsonl')
    assert (records[0]['epoch'], records[0]['iter']) == (1, 1)
    state = torch.load(run_dir / 'latest_state.pth', weights_only=True)
    assert state['epoch'] == 1 and state['total_iters'] == 2


def test_finetune_from_numbered_epoch_files(synth_root, tmp_path, caplog):
    args = tiny_args(synth_root, tmp_path, 'ft', '--niter', '1')
    opt = TrainOptions().parse(args)
    official = models.create_model(opt)
    (tmp_path / 'ft').mkdir()
    torch.save(official.netG.state_dict(), tmp_path / 'ft' / '20_net_G.pth')
    caplog.set_level(logging.INFO)
    train.main(args + ['--continue_train', '--which_epoch', '20'])
    assert 'netG: 20_net_G.pth' in caplog.text
    assert 'netD: no 20_net_D.pth, starting from a fresh initialisation' in caplog.text


def test_continue_train_without_checkpoint_fails_clearly(synth_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'latest_state\.pth.*latest_net_<name>\.pth'):
        train.main(tiny_args(synth_root, tmp_path, 'none', '--niter', '1', '--continue_train'))


# ------------------------------------------------------------------------------------------------
# refusing to overwrite

def test_refuses_to_overwrite_an_existing_run(synth_root, tmp_path, capsys):
    args = tiny_args(synth_root, tmp_path, 'run', '--niter', '1')
    train.main(args)
    log = tmp_path / 'run' / 'loss_log.jsonl'
    before = log.read_bytes()
    with pytest.raises(train.RunExistsError, match='--continue_train.*--overwrite'):
        train.main(args)
    capsys.readouterr()
    assert train.cli(args) == 2
    err = capsys.readouterr().err
    assert 'Refusing to overwrite' in err and 'run' in err
    assert log.read_bytes() == before

    (tmp_path / 'run' / 'web' / 'images' / 'epoch099_iter00000999_real_image_0.png').write_bytes(b'x')
    train.main(args + ['--overwrite', '--seed', '5'])
    assert log.read_bytes() != before
    assert not (tmp_path / 'run' / 'web' / 'images' / 'epoch099_iter00000999_real_image_0.png').exists()


# ------------------------------------------------------------------------------------------------
# logs

def test_loss_log_jsonl_every_iteration(synth_root, tmp_path):
    scores = train.main(tiny_args(synth_root, tmp_path, 'log', '--niter', '1', '--niter_decay', '1'))
    records = read_jsonl(tmp_path / 'log' / 'loss_log.jsonl')
    losses = [r for r in records if r['kind'] == 'loss']
    assert [r['iter'] for r in losses] == [1, 2, 3, 4]
    assert [r['epoch'] for r in losses] == [1, 1, 2, 2]
    for r in losses:
        assert LOSS_KEYS <= set(r) and 'VGG' not in r and 'KLD' not in r
        for k in LOSS_KEYS:
            # full precision: the float32 value itself, not a rounded print
            assert isinstance(r[k], float) and float(np.float32(r[k])) == r[k]
    assert any(round(r['GAN_Feat'], 3) != r['GAN_Feat'] for r in losses)
    evals = [r for r in records if r['kind'] == 'eval']
    assert len(evals) == 1 and evals[0]['iter'] == 4 and evals[0]['split'] == 'val'
    assert evals[0]['pixel_accuracy'] == pytest.approx(scores['pixel_accuracy'])
    assert 0.0 <= evals[0]['mIoU'] <= 1.0
    with open(tmp_path / 'log' / 'loss_log.txt', encoding='utf-8') as f:
        text = f.read()
    assert len(re.findall(r'^\(epoch: \d+, iters: \d+, time', text, re.M)) == 4
    # the score in the one format train.py, test.py and evaluate.py print
    assert f"pixel accuracy {evals[0]['pixel_accuracy']:.4f}, mIoU {evals[0]['mIoU']:.4f}, " in text


def _instance_edges(instance):
    inst = instance[:, 0].numpy()
    edge = np.zeros_like(inst, dtype=bool)
    dx = inst[:, :, 1:] != inst[:, :, :-1]
    dy = inst[:, 1:, :] != inst[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return torch.from_numpy(edge).float()[:, None]


def test_first_iteration_losses_follow_the_spec_formulas(synth_root, tmp_path, monkeypatch):
    args = tiny_args(synth_root, tmp_path, 'formula', '--niter', '1', '--serial_batches', '--no_flip')
    snaps = {}
    run_phase = Trainer.run_phase

    def snapshot(self):
        return {n: {k: v.clone() for k, v in getattr(self.model, 'net' + n).state_dict().items()}
                for n in ('G', 'D')}

    def spy(self, phase, data):
        if phase.name == 'generator':
            snaps.setdefault('g', (snapshot(self), data))
        else:
            snaps.setdefault('d', snapshot(self))
        return run_phase(self, phase, data)

    monkeypatch.setattr(Trainer, 'run_phase', spy)
    train.main(args)
    logged = loss_records(tmp_path / 'formula' / 'loss_log.jsonl')[0]

    opt = TrainOptions().parse(args)
    opt.no_vgg_loss = True
    nets = models.create_model(opt)
    (g_state, data), d_snap = snaps['g'], snaps['d']
    label, real = data['label'], data['image']
    semantics = torch.cat([F.one_hot(label[:, 0], opt.label_nc).permute(0, 3, 1, 2).float(),
                           _instance_edges(data['instance'])], 1)
    n = real.size(0)

    def run_d(states):
        nets.netG.load_state_dict(states['G'])
        nets.netD.load_state_dict(states['D'])
        fake = nets.netG(semantics)
        out = nets.netD(torch.cat([fake, real], 0), semantics)
        return [[t[:n] for t in scale] for scale in out], [[t[n:] for t in scale] for scale in out]

    with torch.no_grad():
        fake_out, real_out = run_d(g_state)
        gan = sum(-f[-1].mean() for f in fake_out) / opt.num_D
        feat = sum((f - r).abs().mean() for fs, rs in zip(fake_out, real_out) for f, r in zip(fs[:-1], rs[:-1]))
        feat = feat * opt.lambda_feat / opt.num_D
        fake_out, real_out = run_d(d_snap)
        d_fake = sum(torch.relu(1 + f[-1]).mean() for f in fake_out) / opt.num_D
        d_real = sum(torch.relu(1 - r[-1]).mean() for r in real_out) / opt.num_D
    expected = {'GAN': gan, 'GAN_Feat': feat, 'D_Fake': d_fake, 'D_real': d_real}
    for k, v in expected.items():
        assert logged[k] == pytest.approx(float(v), rel=1e-5, abs=1e-6), k
    # the G step changed G; D's fake is generated by the updated G
    assert any(not torch.equal(g_state['G'][k], d_snap['G'][k]) for k in g_state['G'])


# ------------------------------------------------------------------------------------------------
# training web page

class _ImgCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == 'img':
            self.srcs.append(dict(attrs)['src'])


def test_training_page_references_existing_images_and_escapes_names(synth_root, tmp_path):
    name = 'x<b>&"y'
    train.main(tiny_args(synth_root, tmp_path, name, '--niter', '2', '--display_freq', '1'))
    web = tmp_path / name / 'web'
    page = (web / 'index.html').read_text(encoding='utf-8')
    parser = _ImgCollector()
    parser.feed(page)
    # 4 display steps x 2 samples x (input_label, synthesized_image, real_image)
    assert len(parser.srcs) == 24
    for src in parser.srcs:
        assert os.path.isfile(url_to_path(src, str(web))), src
    assert '<b>' not in page and '&lt;b&gt;' in page
    assert page.count('<svg') == 2 and 'GAN_Feat' in page and 'D_real' in page
    assert 'pixel_accuracy' in page
    newest = page.index('iteration [4]')
    assert newest < page.index('iteration [1]')


# ------------------------------------------------------------------------------------------------
# dry run, learning rates

BUFFER_SUFFIXES = ('.weight_u', '.weight_v', '.running_mean', '.running_var', '.num_batches_tracked')


def official_parameter_count(layout_file):
    """Element count of the parameter tensors of an official checkpoint layout (buffers excluded)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'checkpoint_layout', layout_file)
    total = 0
    with open(path, encoding='utf-8') as f:
        for line in f:
            key, shape = line.rstrip('\n').split('\t')
            if not key.endswith(BUFFER_SUFFIXES):
                total += int(np.prod(json.loads(shape)))
    return total


def test_dry_run_prints_options_and_network_sizes(tmp_path, capsys):
    # The Cityscapes configuration of the official checkpoints: the counts printed by --dry_run are
    # those of the released files' parameter tensors (paper Table 3: 93.1M / 5.6M).
    args = ['--dry_run', '--dataset_mode', 'cityscapes', '--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path),
            '--name', 'dry']
    assert train.main(args) == 0
    out = capsys.readouterr().out
    assert 'num_upsampling_layers' in out and 'label_nc' in out
    g, d = official_parameter_count('dagan_netG_cityscapes.txt'), official_parameter_count('dagan_netD_cityscapes.txt')
    assert round(g / 1e5) == 931 and round(d / 1e5) == 56
    assert f'netG parameters: {g:,}\n' in out and f'netD parameters: {d:,}\n' in out
    assert not (tmp_path / 'dry').exists()


def test_learning_rate_schedule_and_ttur_ratio(synth_root, tmp_path):
    opt = TrainOptions().parse(tiny_args(synth_root, tmp_path, 'lr', '--niter', '2', '--niter_decay', '4',
                                         '--lr', '0.001'))
    assert [spade_learning_rate(opt, e) for e in (1, 2, 3)] == [0.001] * 3
    expected = 0.001
    for e in (4, 5, 6):
        expected -= 0.001 / 4
        assert spade_learning_rate(opt, e) == expected
    trainer = Trainer(opt, models.create_model(opt))
    assert trainer.optimizers['G'].param_groups[0]['betas'] == (0.0, 0.9)
    trainer.update_learning_rate(5)
    lr_g = trainer.optimizers['G'].param_groups[0]['lr']
    lr_d = trainer.optimizers['D'].param_groups[0]['lr']
    assert lr_g == pytest.approx(0.0005 / 2) and lr_d == pytest.approx(0.0005 * 2)
