"""scripts/benchmark.py runs end to end on a tiny configuration and its accounting adds up.

Nothing here checks a speed: the figures of a 2-core CI machine are noise. What is checked is that
the report has its fields, that the FLOP counts are consistent with each other, that the
bare-kernel replay of the convolutions sees every convolution a step runs, that the JSON says which
reference switches a configuration ran with, and what --quick leaves out (on its plan, untimed).
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
    assert report["plan"]["groups"] == [["dagan", "spade"]]
    peak = report["conv_peak_flops"]["fp32"]
    assert peak > 0
    for name in ("dagan", "spade"):
        r = report["configs"][name]
        assert r["train_step_s"]["n"] == 2 and len(r["train_step_s"]["all"]) == 2
        assert 0 < r["train_flops_executed"] <= r["train_flops_model"]
        assert 0 < r["infer_flops_executed"] <= r["infer_flops_model"]
        assert r["train_fraction_of_peak"] == pytest.approx(r["train_flops_model"] / r["train_step_s_median"] / peak)
        # The fast layers and the model's own phases (D frozen in the G step), read back after the run.
        assert r["reference_kinds"] == []
        assert r["frozen_in_phase"] == {"generator": ["D"], "discriminator": []}
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


def test_reference_switches_are_reported_as_they_ran_and_restored_after_counting():
    cpu = ["--gpu_ids", "-1"]
    ref = benchmark.Prepared("reference", TINY, cpu, random_vgg=False)
    kinds = ["spade", "upsampled_conv", "label_image_conv"]
    assert ref.reference_kinds() == kinds
    assert ref.frozen_in_phase() == {"generator": [], "discriminator": []}
    fast = benchmark.Prepared("dagan_ref", TINY, cpu, random_vgg=False)
    assert fast.reference_kinds() == ["spade", "upsampled_conv"]
    assert fast.frozen_in_phase() == {"generator": ["D"], "discriminator": []}
    # Counting the model FLOPs swaps in the whole reference computation, then puts each back as it was.
    executed, model = fast.count(fast.train_step)
    assert 0 < executed < model
    assert fast.reference_kinds() == ["spade", "upsampled_conv"]
    assert fast.frozen_in_phase() == {"generator": ["D"], "discriminator": []}


def _timed(plan):
    return [name for group in plan.groups for name in group]


def _last_value(flags, name):
    return flags[len(flags) - 1 - flags[::-1].index(name) + 1]


@pytest.mark.parametrize("bf16", [False, True])
def test_quick_plan_leaves_out_the_slow_parts(bf16):
    """--quick is a smoke run of a few minutes: compared with the default plan it has no reference
    child process, no bare-kernel replay, no sweep point at 128 or above (the default sweeps up to
    512), a 128x128 crop instead of 256x256 and fewer repeats. Checked on the plan; nothing is timed."""
    full = benchmark.make_plan(benchmark.parse_args([]), bf16=bf16)
    quick = benchmark.make_plan(benchmark.parse_args(["--quick"]), bf16=bf16)
    # What the default run does, and --quick must not.
    assert "reference" in _timed(full) and full.own_process == ("reference",)
    assert full.kernel_bound == ("dagan",)
    assert [p["crop"] for p in full.sweep] == [64, 128, 256, 512]
    assert "--crop_size" not in full.train_flags  # ADE20K's 256
    assert "reference" not in _timed(quick) and quick.own_process == ()
    assert quick.kernel_bound == ()
    assert quick.sweep and all(p["crop"] < 128 for p in quick.sweep)
    assert _last_value(quick.train_flags, "--crop_size") == "128"
    assert quick.repeats < full.repeats
    # dagan alone (two models interleaved would double the peak memory); bf16 only where it is fast.
    assert _timed(quick) == (["dagan", "dagan_bf16"] if bf16 else ["dagan"])
    assert quick.peak_dtypes == (("fp32", "bf16") if bf16 else ("fp32",))


def test_quick_plan_takes_explicit_choices():
    args = benchmark.parse_args(["--quick", "--configs", "dagan,spade", "--resolutions", "", "--", "--crop_size", "64"])
    plan = benchmark.make_plan(args, bf16=False)
    assert plan.groups == [["dagan", "spade"]] and plan.sweep == []
    assert _last_value(plan.train_flags, "--crop_size") == "64"  # flags after -- win
    assert plan.kernel_bound == ()  # never with --quick


def test_condconv_configurations_build_time_and_count():
    tiny = ["--ngf", "4", "--ndf", "4", "--condconv_hidden", "8", "--crop_size", "64", "--load_size", "64",
            "--label_nc", "5", "--no_vgg_loss", "--gpu_ids", "-1"]
    fast = benchmark.Prepared("condconv", tiny[:-2], tiny[-2:], random_vgg=False)
    ref = benchmark.Prepared("condconv_ref", tiny[:-2], tiny[-2:], random_vgg=False)
    assert (fast.opt.netG, fast.opt.netD) == ("condconv", "fpse")
    assert fast.reference_kinds() == [] and ref.reference_kinds() == ["spade", "pixel_conv"]
    for p in (fast, ref):
        p.train_step()
        executed, model = p.count(p.train_step)
        assert 0 < executed <= model
    assert ref.reference_kinds() == ["spade", "pixel_conv"] and fast.reference_kinds() == []
