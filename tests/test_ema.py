"""util/ema.py: the EMA update formula and the BatchNorm re-estimation, against direct computations."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from util.ema import GeneratorEMA, recalibrate_batchnorm


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
                         nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2, affine=True))


def test_ema_update_formula_and_buffers():
    net = _net()
    ema = GeneratorEMA(net, decay=0.9)
    expected = {k: v.clone() for k, v in net.named_parameters()}
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net[1].running_mean.normal_()
        ema.update(net)
        for k, p in net.named_parameters():
            expected[k] = 0.9 * expected[k] + 0.1 * p.detach()
    own = dict(ema.net.named_parameters())
    for k, v in expected.items():
        torch.testing.assert_close(own[k], v, rtol=1e-6, atol=1e-6)
        assert not torch.allclose(own[k], dict(net.named_parameters())[k])
    # buffers are copies of the source's, not averages
    assert torch.equal(ema.net[1].running_mean, net[1].running_mean)
    assert ema.num_updates == 3
    assert not any(p.requires_grad for p in ema.net.parameters())

    restored = GeneratorEMA(_net(), decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 3
    for k, v in ema.net.state_dict().items():
        assert torch.equal(restored.net.state_dict()[k], v)


def test_ema_decay_out_of_range_is_rejected():
    with pytest.raises(ValueError, match='ema_decay'):
        GeneratorEMA(_net(), decay=1.0)


def test_batchnorm_reestimation_equals_batch_statistics():
    net = _net()
    with torch.no_grad():  # statistics that a mixed-up reset would not reproduce
        net[1].running_mean.fill_(5.0)
        net[4].running_var.fill_(7.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(1)
    batches = [torch.randn(3, 3, 6, 5) * (i + 1) + i for i in range(3)]
    out = recalibrate_batchnorm(net, [(b,) for b in batches])

    # direct computation: per-batch mean / unbiased variance of each BN input, averaged over batches
    stats = {1: [], 4: []}
    for x in batches:
        h = net[0](x)
        stats[1].append((h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=True)))
        h = F.relu((h - h.mean((0, 2, 3), keepdim=True))
                   / torch.sqrt(h.var((0, 2, 3), unbiased=False, keepdim=True) + net[1].eps))
        h = net[3](h)
        stats[4].append((h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=True)))
    for i, s in stats.items():
        mean = torch.stack([m for m, _ in s]).mean(0)
        var = torch.stack([v for _, v in s]).mean(0)
        torch.testing.assert_close(out[i].running_mean, mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[i].running_var, var, rtol=1e-5, atol=1e-5)
        assert out[i].momentum == net[i].momentum == 0.1
    assert not out.training
    for k, v in net.state_dict().items():  # the source network is untouched
        assert torch.equal(v, before[k]), k
    # max_batches limits the batches used
    first = recalibrate_batchnorm(net, [(b,) for b in batches], max_batches=1)
    torch.testing.assert_close(first[1].running_mean, stats[1][0][0], rtol=1e-5, atol=1e-5)


def test_reestimation_replaces_syncbatchnorm_on_cpu():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4))
    x = torch.randn(2, 3, 4, 4)
    out = recalibrate_batchnorm(net, [x])
    assert isinstance(out[1], nn.BatchNorm2d) and not isinstance(out[1], nn.SyncBatchNorm)
    torch.testing.assert_close(out[1].running_mean, net[0](x).mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
