"""scripts/benchmark.py runs end to end on a tiny configuration and its accounting adds up.

Nothing here checks a speed: the figures of a 2-core CI machine are noise. What is checked is that
the report has its fields, that the FLOP counts are consistent with each other, and that the
bare-kernel replay of the convolutions sees every convolution a step runs.
"""

import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import benchmark  # noqa: E402

TINY = ["--ngf", "4", "--ndf", "4", "--crop_size", "64", "--load_size", "64", "--label_nc", "5",
        "--num_D", "2", "--n_layers_D", "2", "--no_vgg_loss"]


def test_conv_kernel_bound_sees_every_convolution_of_a_step():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    w1 = torch.randn(8, 3, 3, 3, requires_grad=True)
    w2 = torch.randn(4, 8, 1, 1)  # no weight gradient: convolution_backward with a partial mask

    def step():
        y = F.conv2d(F.relu(F.conv2d(x, w1, padding=1)), w2)
        y.square().mean().backward()

    bound = benchmark.conv_kernel_bound(step, torch.device("cpu"), repeats=1)
    assert bound["calls"] == 4  # two forward convolutions, two backward ones
    assert bound["unique"] == 4
    assert bound["time_s"] > 0
    # Every FLOP of this step is a convolution's (relu / square / mean count none).
    assert bound["flops"] == benchmark.count_flops(step)


def test_benchmark_runs_and_its_figures_are_consistent(tmp_path):
    out = tmp_path / "bench.json"
    report = benchmark.main(["--configs", "dagan,spade", "--resolutions", "64", "--repeats", "2", "--warmup", "1",
                             "--threads", "1", "--json", str(out), "--"] + TINY)
    assert json.loads(out.read_text())["configs"].keys() == {"dagan", "spade"}
    peak = report["conv_peak_flops"]["fp32"]
    assert peak > 0
    for name in ("dagan", "spade"):
        r = report["configs"][name]
        assert r["train_step_s"]["n"] == 2 and len(r["train_step_s"]["all"]) == 2
        assert 0 < r["train_flops_executed"] <= r["train_flops_model"]
        assert 0 < r["infer_flops_executed"] <= r["infer_flops_model"]
        assert r["train_fraction_of_peak"] == pytest.approx(r["train_flops_model"] / r["train_step_s_median"] / peak)
    # The attention adds FLOPs, so DAGAN counts more than SPADE.
    assert report["derived"]["attention_flops_overhead_train"] > 0
    kernels = report["configs"]["dagan"]["train_conv_kernels"]
    assert "train_conv_kernels" not in report["configs"]["spade"]
    # The replayed convolutions are part of what the step executes (plus norms, look-ups, losses).
    assert 0 < kernels["flops"] <= report["configs"]["dagan"]["train_flops_executed"]
    assert kernels["share_of_step"] == pytest.approx(kernels["time_s"] / report["configs"]["dagan"]["train_step_s_median"])
    assert [s["crop_size"] for s in report["resolution_sweep"]] == [64]
    tail = report["configs"]["dagan"]["attention_tail"]
    for part in ("dagan", "spade"):
        assert 0 < tail["tail"][part]["forward_s"] and 0 < tail["tail"][part]["forward_backward_s"]
    assert report["derived"]["attention_tail_overhead_train"] == pytest.approx(
        tail["added_train_iteration_s"] / report["configs"]["spade"]["train_step_s_median"])
    # The attention adds executed FLOPs (conv_64, SAM's convolution) even with the fast conv_64.
    assert report["derived"]["attention_executed_flops_overhead_train"] > 0
