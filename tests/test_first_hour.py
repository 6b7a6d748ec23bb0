"""A newcomer's first hour: one score format, nothing of a run overwritten by a failed start,
nothing left behind by a kill."""
import os

import pytest
import torch

import evaluate
import train
from test_train import tiny_args
from util.metrics.segmentation import format_scores


def _files(folder):
    """{relative path: bytes} of every file under ``folder``."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


# ------------------------------------------------------------------------------------------------
# one format for the score

def test_scores_print_as_fractions_in_one_format():
    scores = {'mIoU': 0.85254, 'mean_accuracy': 0.9, 'pixel_accuracy': 0.93411, 'fid': 31.25}
    assert format_scores(scores) == 'pixel accuracy 0.9341, mIoU 0.8525, mean class accuracy 0.9000, FID 31.2500'
    table = evaluate.format_table({'segmentation': {'seg_model': 'drn', 'mIoU': 0.85254, 'pixel_accuracy': 0.93411,
                                                    'mean_accuracy': 0.9}})
    assert 'mIoU (drn)' in table and '0.8525' in table and '85.25' not in table


def test_train_prints_the_score_line_the_readme_quotes(synth_root, tmp_path, capsys):
    scores = train.main(tiny_args(synth_root, tmp_path, 'score'))
    out = capsys.readouterr().out
    expected = (f"layout score of the synthesized val images: pixel accuracy {scores['pixel_accuracy']:.4f}, "
                f"mIoU {scores['mIoU']:.4f}, mean class accuracy {scores['mean_accuracy']:.4f}\n")
    assert expected in out
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.md'),
              encoding='utf-8') as f:
        readme = f.read()
    # The README quotes the same line (with its own measured figures).
    assert 'layout score of the synthesized val images: pixel accuracy 0.' in readme
    assert ', mean class accuracy 0.' in readme


# ------------------------------------------------------------------------------------------------
# a failed start leaves the earlier run untouched

def test_failed_resume_changes_nothing_of_the_earlier_run(synth_root, tmp_path):
    train.main(tiny_args(synth_root, tmp_path, 'keep'))
    before = _files(tmp_path / 'keep')
    assert 'opt.json' in before and 'latest_state.pth' in before
    # Another architecture than the saved run's: the checkpoint does not fit.
    with pytest.raises(RuntimeError, match='does not fit'):
        train.main(tiny_args(synth_root, tmp_path, 'keep', '--continue_train', '--ngf', '16', '--niter', '2'))
    assert _files(tmp_path / 'keep') == before


def test_failed_start_creates_no_folder(synth_root, tmp_path):
    # A training set smaller than one batch fails after the options, before anything is written.
    with pytest.raises(ValueError, match='fewer than one batch'):
        train.main(tiny_args(synth_root, tmp_path, 'never', '--batchSize', '8'))
    assert not (tmp_path / 'never').exists()


# ------------------------------------------------------------------------------------------------
# nothing left behind by a kill

def test_leftover_temp_files_are_removed_at_the_next_start(synth_root, tmp_path):
    train.main(tiny_args(synth_root, tmp_path, 'killed'))
    run = tmp_path / 'killed'
    leftovers = [run / '.tmp_4242_0badc0de_latest_state.pth', run / '.latest_net_G.pth.x1y2.tmp',
                 run / 'web' / 'images' / '.tmp_4242_0badc0de_epoch001_iter00000002_real_image_0.png']
    for path in leftovers:
        path.write_bytes(b'partial')
    keep = run / 'notes.tmp'  # not ours (not hidden): never touched
    keep.write_text('mine')
    train.main(tiny_args(synth_root, tmp_path, 'killed', '--continue_train', '--niter', '2'))
    assert not any(p.exists() for p in leftovers)
    assert keep.read_text() == 'mine'


def test_run_killed_before_its_first_checkpoint_gets_the_same_answer_both_ways(synth_root, tmp_path):
    run = tmp_path / 'early'
    (run / 'web').mkdir(parents=True)
    (run / 'loss_log.txt').write_text('================ Training Loss ================\n')
    messages = []
    for extra in ((), ('--continue_train',)):
        with pytest.raises(train.RunExistsError) as err:
            train.main(tiny_args(synth_root, tmp_path, 'early', *extra))
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert 'stopped before its first checkpoint' in messages[0] and '--overwrite' in messages[0]
    # --overwrite starts it afresh
    train.main(tiny_args(synth_root, tmp_path, 'early', '--overwrite'))
    assert (run / 'latest_state.pth').is_file()


# ------------------------------------------------------------------------------------------------
# a fault mid-run keeps the iterations done

def test_fault_mid_run_writes_a_last_checkpoint_and_resumes(synth_root, tmp_path, monkeypatch, caplog):
    from models.trainer import Trainer

    run_phase = Trainer.run_phase
    calls = []

    def failing(self, phase, data):
        calls.append(phase.name)
        if len(calls) == 7:  # iteration 4's generator phase (2 phases per iteration)
            raise FloatingPointError('generator loss GAN is not finite')
        return run_phase(self, phase, data)

    monkeypatch.setattr(Trainer, 'run_phase', failing)
    args = tiny_args(synth_root, tmp_path, 'fault', '--niter', '3')  # 2 iterations per epoch
    with pytest.raises(FloatingPointError):
        train.main(args)
    state = torch.load(tmp_path / 'fault' / 'latest_state.pth', weights_only=True)
    # Epoch 2's first iteration (total 3) was completed; the epoch-1 checkpoint alone would say 2.
    assert (state['epoch'], state['epoch_iter'], state['total_iters'], state['epoch_done']) == (2, 1, 3, False)
    assert 'latest_state.pth: fix the cause and resume with --continue_train' in caplog.text
    monkeypatch.setattr(Trainer, 'run_phase', run_phase)
    train.main(args + ['--continue_train'])
    state = torch.load(tmp_path / 'fault' / 'latest_state.pth', weights_only=True)
    assert (state['epoch'], state['total_iters'], state['epoch_done']) == (3, 6, True)
