"""util/cpu.py thread policy: decisions from controlled inputs (no timing)."""

import argparse
import logging

import pytest
import torch

from util import cpu


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    cpu.stop_adapting_threads()


# ------------------------------------------------------------------------------------------------
# thread count

@pytest.mark.parametrize("available, busy, expected", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.5, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 1.5, 1), (2, 3.0, 1),
    (8, 2.4, 6), (8, 0.0, 8), (8, None, 8), (1, 0.0, 1), (1, 5.0, 1), (4, -0.2, 4),
])
def test_choose_num_threads(available, busy, expected):
    assert cpu.choose_num_threads(available, busy) == expected


def test_choose_num_threads_limit():
    # 16 logical CPUs, torch's default 8 (its physical-core count): 4 busy still leaves room for 8.
    assert cpu.choose_num_threads(16, 4.0, limit=8) == 8
    assert cpu.choose_num_threads(16, 10.0, limit=8) == 6
    assert cpu.choose_num_threads(16, None, limit=8) == 8


PROC_STAT = """cpu  300 0 100 500 20 0 0 0 0 0
cpu0 100 0 50 240 10 0 0 0 0 0
cpu1 200 0 50 260 10 0 0 0 0 0
intr 12345
ctxt 678
"""


def test_read_cpu_jiffies(tmp_path):
    path = tmp_path / "stat"
    path.write_text(PROC_STAT)
    assert cpu.read_cpu_jiffies(path=str(path)) == (100 + 50 + 200 + 50, 400 + 520)
    assert cpu.read_cpu_jiffies({1}, path=str(path)) == (250, 520)  # only the CPUs of the affinity mask
    assert cpu.read_cpu_jiffies({7}, path=str(path)) is None
    assert cpu.read_cpu_jiffies(path=str(tmp_path / "missing")) is None


def test_read_cpu_jiffies_counts_steal_as_busy(tmp_path):
    path = tmp_path / "stat"
    path.write_text("cpu0 10 0 10 60 0 0 0 20 0 0\n")
    assert cpu.read_cpu_jiffies(path=str(path)) == (40, 100)


def test_busy_cores_from_samples():
    # 2 CPUs, 200 ticks elapsed in all, 150 of them busy: 1.5 cores busy.
    assert cpu.busy_cores_from_samples((1000, 5000), (1150, 5200), 2) == pytest.approx(1.5)
    # ... 0.3 core of which were this process: 1.2 cores of other processes.
    assert cpu.busy_cores_from_samples((1000, 5000), (1150, 5200), 2, own_cpu_seconds=0.3,
                                       seconds=1.0) == pytest.approx(1.2)
    assert cpu.busy_cores_from_samples((1000, 5000), (1010, 5200), 2, own_cpu_seconds=0.5,
                                       seconds=1.0) == 0.0
    assert cpu.busy_cores_from_samples(None, (1, 2), 2) is None
    assert cpu.busy_cores_from_samples((1, 2), (1, 2), 2) is None


def test_sample_busy_cores_without_proc_stat(tmp_path):
    assert cpu.sample_busy_cores(0.0, path=str(tmp_path / "missing")) is None


def _never():
    raise AssertionError("the load must not be sampled here")


def test_thread_count_explicit_and_environment():
    assert cpu.thread_count(3, environ={}, cores=2, sample=_never) == (3, "--cpu_threads")
    # OMP_NUM_THREADS: torch took it at start; left as it is.
    threads, how = cpu.thread_count(0, environ={"OMP_NUM_THREADS": "1"}, cores=2, sample=_never)
    assert threads is None and "OMP_NUM_THREADS=1" in how
    # An explicit count wins over OMP_NUM_THREADS.
    assert cpu.thread_count(2, environ={"OMP_NUM_THREADS": "1"}, sample=_never)[0] == 2
    with pytest.raises(ValueError, match="--cpu_threads"):
        cpu.thread_count(-1, environ={})


def test_thread_count_auto_from_free_cores():
    assert cpu.thread_count(0, environ={}, cores=2, sample=lambda: 0.1)[0] == 2
    assert cpu.thread_count(0, environ={}, cores=2, sample=lambda: 1.0)[0] == 1
    assert cpu.thread_count(None, environ={"OMP_NUM_THREADS": ""}, cores=2, sample=lambda: 1.0)[0] == 1
    assert cpu.thread_count(0, environ={}, cores=16, sample=lambda: 4.2)[0] == 12
    # Never more than torch's own default (e.g. its physical-core count).
    assert cpu.thread_count(0, environ={}, cores=16, default=8, sample=lambda: 0.0)[0] == 8
    # Load unknown: all available cores; one core: no sampling.
    threads, how = cpu.thread_count(0, environ={}, cores=4, sample=lambda: None)
    assert threads == 4 and "unknown" in how
    assert cpu.thread_count(0, environ={}, cores=1, sample=_never)[0] == 1


def test_apply_thread_settings(restore_threads):
    assert cpu.apply_thread_settings(2, environ={}, sample=_never)[0] == 2
    assert torch.get_num_threads() == 2
    assert cpu.apply_thread_settings(1, environ={}, sample=_never)[0] == 1
    assert torch.get_num_threads() == 1
    # OMP_NUM_THREADS set (as by tests/conftest.py): the count is left alone.
    torch.set_num_threads(2)
    assert cpu.apply_thread_settings(0, environ={"OMP_NUM_THREADS": "1"}, sample=_never)[0] == 2


def test_apply_cpu_settings_records_the_thread_count(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    opt = argparse.Namespace(cpu_malloc="system", device=torch.device("cpu"), cpu_threads=2)
    assert cpu.apply_cpu_settings(opt) is False
    assert opt.torch_threads == 2 == torch.get_num_threads()
    # CUDA runs: the CPU thread count is recorded, not changed.
    opt = argparse.Namespace(cpu_malloc="system", device=torch.device("cuda"), cpu_threads=1)
    cpu.apply_cpu_settings(opt)
    assert opt.torch_threads == 2 == torch.get_num_threads()
    # No --cpu_threads attribute: automatic, here OMP_NUM_THREADS.
    opt = argparse.Namespace(cpu_malloc="system", device=torch.device("cpu"), cpu_threads=0)
    cpu.apply_cpu_settings(opt)
    assert opt.torch_threads == 2


def test_apply_thread_settings_adapts_only_a_chosen_count(restore_threads, monkeypatch):
    monkeypatch.setattr(cpu, "available_cores", lambda: 4)
    monkeypatch.setattr(cpu, "_torch_default_threads", 4)
    cpu.apply_thread_settings(0, environ={}, sample=lambda: 1.0)
    assert torch.get_num_threads() == 3 and cpu._governor is not None
    for fixed in ({"requested": 2, "environ": {}}, {"requested": 0, "environ": {"OMP_NUM_THREADS": "2"}}):
        cpu.apply_thread_settings(sample=_never, **fixed)
        assert cpu._governor is None and cpu.adapt_threads() is None


class FakeMachine:
    """A clock, /proc/stat and this process's CPU time under the test's control (2 CPUs, 100 ticks/s)."""

    def __init__(self, threads=2):
        self.t, self.busy, self.total, self.own, self.threads = 0.0, 0, 0, 0.0, threads
        self.set_calls = []

    def advance(self, seconds, others_cores, own_cores=None):
        own_cores = self.threads if own_cores is None else own_cores
        self.t += seconds
        self.busy += round(100 * seconds * min(2.0, others_cores + own_cores))
        self.total += round(100 * seconds * 2)
        self.own += seconds * own_cores

    def set_threads(self, n):
        self.threads = n
        self.set_calls.append(n)

    def governor(self, **kw):
        return cpu.ThreadGovernor(2, limit=2, interval=5.0, raise_after=3, read=lambda: (self.busy, self.total),
                                  clock=lambda: self.t, own_cpu=lambda: self.own,
                                  get_threads=lambda: self.threads, set_threads=self.set_threads, **kw)


def test_governor_checks_only_once_an_interval():
    m = FakeMachine()
    g = m.governor()
    m.advance(4.9, others_cores=1.0, own_cores=1.0)
    assert g.step() is None and m.set_calls == []  # not yet an interval
    m.advance(0.2, others_cores=1.0, own_cores=1.0)
    assert g.step() == 1 and m.set_calls == [1]


def test_governor_down_at_once_up_after_calm_intervals():
    m = FakeMachine()
    opt = argparse.Namespace(torch_threads=2)
    g = m.governor(opt=opt)
    m.advance(5, others_cores=0.1)  # idle: stays at 2
    assert g.step() is None
    m.advance(5, others_cores=1.0, own_cores=1.0)  # a competing process: one thread at once
    assert g.step() == 1 and opt.torch_threads == 1
    m.advance(5, others_cores=1.0)  # still there
    assert g.step() is None
    for _ in range(2):  # gone, but not for long enough yet
        m.advance(5, others_cores=0.0)
        assert g.step() is None
    m.advance(5, others_cores=0.8)  # back for a moment: the calm count starts again
    assert g.step() is None
    for _ in range(2):
        m.advance(5, others_cores=0.0)
        assert g.step() is None
    m.advance(5, others_cores=0.0)  # third calm interval in a row: two threads again
    assert g.step() == 2 and opt.torch_threads == 2
    assert m.set_calls == [1, 2]


def test_governor_own_cpu_time_is_not_load():
    # Two threads of this process keep both CPUs busy (spinning included): no other load.
    m = FakeMachine()
    g = m.governor()
    for _ in range(5):
        m.advance(5, others_cores=0.0, own_cores=2.0)
        assert g.step() is None
    assert m.set_calls == []


def test_governor_without_proc_stat_does_nothing():
    m = FakeMachine()
    g = cpu.ThreadGovernor(2, interval=5.0, read=lambda: None, clock=lambda: m.t, own_cpu=lambda: 0.0,
                           get_threads=lambda: 2, set_threads=m.set_threads)
    m.advance(10, others_cores=2.0)
    assert g.step() is None and m.set_calls == []


# ------------------------------------------------------------------------------------------------
# resuming with another device or thread count

def _opt(device="cpu", cpu_threads=0):
    return argparse.Namespace(device=torch.device(device), cpu_threads=cpu_threads,
                              torch_threads=torch.get_num_threads())


def test_resume_same_environment_is_silent(restore_threads, caplog):
    torch.set_num_threads(1)
    with caplog.at_level(logging.WARNING, logger="util.cpu"):
        assert cpu.check_resume_environment({"device": "cpu", "torch_threads": 1}, _opt(), environ={}) == []
        # An older checkpoint without a recorded thread count: nothing to compare.
        assert cpu.check_resume_environment({"device": "cpu"}, _opt(), environ={}) == []
        # Another CUDA device index is the same device type (DDP ranks).
        assert cpu.check_resume_environment({"device": "cuda:0"}, _opt("cuda:1"), environ={}) == []
    assert caplog.records == []


def test_resume_on_another_device_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="util.cpu"):
        warnings = cpu.check_resume_environment({"device": "cuda:0", "torch_threads": 8}, _opt("cpu"), environ={})
    assert len(warnings) == 1 and "cuda" in warnings[0] and "not bit-exact" in warnings[0]
    assert [r.getMessage() for r in caplog.records] == warnings


def test_resume_with_a_chosen_thread_count_takes_the_runs(restore_threads, monkeypatch, caplog):
    monkeypatch.setattr(cpu, "available_cores", lambda: 4)
    torch.set_num_threads(1)
    opt = _opt()
    with caplog.at_level(logging.WARNING, logger="util.cpu"):
        assert cpu.check_resume_environment({"device": "cpu", "torch_threads": 2}, opt, environ={}) == []
    assert torch.get_num_threads() == 2 and opt.torch_threads == 2
    assert caplog.records == []


@pytest.mark.parametrize("cpu_threads, environ, cores", [
    (1, {}, 4),                            # --cpu_threads fixes the count
    (0, {"OMP_NUM_THREADS": "1"}, 4),      # so does OMP_NUM_THREADS
    (0, {}, 1),                            # the run's count is more than this process's cores
])
def test_resume_with_a_fixed_or_impossible_thread_count_warns(restore_threads, monkeypatch, caplog,
                                                              cpu_threads, environ, cores):
    monkeypatch.setattr(cpu, "available_cores", lambda: cores)
    torch.set_num_threads(1)
    opt = _opt(cpu_threads=cpu_threads)
    with caplog.at_level(logging.WARNING, logger="util.cpu"):
        warnings = cpu.check_resume_environment({"device": "cpu", "torch_threads": 2}, opt, environ=environ)
    assert len(warnings) == 1
    assert "2 torch CPU threads" in warnings[0] and "uses 1" in warnings[0] and "--cpu_threads 2" in warnings[0]
    assert torch.get_num_threads() == 1 and opt.torch_threads == 1
    assert [r.levelname for r in caplog.records] == ["WARNING"]
