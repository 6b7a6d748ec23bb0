"""CPU run-time settings: the allocator (speed only) and the number of torch threads (speed, and float
rounding: see below).

:func:`keep_freed_memory` tunes glibc's allocator for PyTorch on CPU. By default glibc serves every
block above a threshold (128 KiB, adapting up to 32 MiB) with a fresh ``mmap`` and gives it back on
``free``; a 256x256 SPADE/DAGAN iteration allocates hundreds of such tensors (tens of MB each), so
every one of them is page-faulted in again on first touch: a large share of the step time on CPU.
With ``mmap`` off and trimming raised, freed blocks stay in the heap and are reused, which is what
jemalloc / tcmalloc (the usual LD_PRELOAD advice for PyTorch on CPU) also achieve. The price is that
the process keeps its peak heap instead of returning it to the system between iterations.

:func:`apply_thread_settings` and :func:`adapt_threads` choose torch's intra-op thread count. torch's
default is one OpenMP thread per core, and an OpenMP thread that waits for the next parallel region
busy-waits first (libgomp, the runtime of the pip wheels: 300,000 spins, about as long as the Python
work between two small ops, so the threads of a training loop hold their cores all the time). On an idle
machine that is the fastest setting; when another process wants a core, every parallel region waits for
the thread that lost its core to the other process while its partner spins, and a 2-core run gets 10-20x
slower. A passive wait policy (``OMP_WAIT_POLICY=PASSIVE``, set before torch loads) stops the spinning,
but waking a sleeping thread for every parallel region costs more than the second core gains: on a
2-core VM two passive threads were slower than one thread, idle (by 5-10%) and busy (by 30%), and 35%
slower than two spinning threads on an idle machine. One thread per *free* core is both safe and fast,
so the count follows the cores that are free: at start, the cores this process may use (affinity mask,
at most torch's default) minus those other processes kept busy over a short sample of ``/proc/stat``
(instantaneous, unlike the load averages, which lag by minutes and count this run's own past); during
training, every :data:`CHECK_SECONDS` over the last interval (:class:`ThreadGovernor`: down at once, up
after :data:`RAISE_AFTER_CHECKS` calm intervals). ``--cpu_threads N`` or ``OMP_NUM_THREADS`` fix the
count.

The thread count changes how some reductions (e.g. convolution weight gradients) are split, so results
differ at float-rounding level between thread counts: a run is bit-exact (and resumes bit-exactly) only
with the same thread count all along, i.e. a fixed count or a machine whose load does not change it;
:func:`check_resume_environment` warns otherwise.
"""

import ctypes
import ctypes.util
import logging
import os
import sys
import time

logger = logging.getLogger(__name__)

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 2**31 - 1  # the largest value mallopt takes (an int): trim only above ~2 GB free

CPU_MALLOC_MODES = ("keep", "system")

_applied = None


def keep_freed_memory():
    """Switch glibc malloc to reuse freed memory (see module doc). Returns True when applied, False
    where it does not apply (not Linux/glibc); idempotent, process-wide."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        logger.debug("malloc tuning not available (%s)", name)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success.
    _applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    logger.debug("glibc malloc: mmap off, trim threshold %d bytes: %s", TRIM_THRESHOLD_BYTES, _applied)
    return _applied


def apply_cpu_settings(opt):
    """Apply ``--cpu_malloc`` and ``--cpu_threads`` for a run on the CPU (the allocator is left alone on
    CUDA runs or with 'system', the thread count on CUDA runs). Records the torch thread count in use as
    ``opt.torch_threads`` (saved with the options of a full-state checkpoint; kept up to date by
    :func:`adapt_threads`). Returns True when the allocator setting was applied."""
    mode = opt.cpu_malloc
    if mode not in CPU_MALLOC_MODES:
        raise ValueError(f"--cpu_malloc must be one of {', '.join(CPU_MALLOC_MODES)}, got {mode!r}")
    device = opt.device
    on_cpu = device is None or _device_type(device) == "cpu"
    if on_cpu:
        threads, how = apply_thread_settings(opt.cpu_threads, opt=opt)
        logger.info("torch CPU threads: %d (%s)", threads, how)
    else:
        import torch

        stop_adapting_threads()
        threads = torch.get_num_threads()
    opt.torch_threads = threads
    if mode == "keep" and on_cpu:
        return keep_freed_memory()
    return False


# ------------------------------------------------------------------------------------------------
# torch's intra-op thread count

THREADS_AUTO = 0
LOAD_SAMPLE_SECONDS = 0.3  # the sample at start
CHECK_SECONDS = 5.0  # the interval of the checks during training
RAISE_AFTER_CHECKS = 6  # more threads only after this many intervals in a row with free cores for them
PROC_STAT = "/proc/stat"

_torch_default_threads = None
_governor = None


def _affinity():
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


def available_cores():
    """The CPUs this process may run on (its affinity mask; all CPUs where that is unknown)."""
    cpus = _affinity()
    return len(cpus) if cpus else (os.cpu_count() or 1)


def choose_num_threads(available, busy, limit=None):
    """Threads for the cores left free: ``available`` cores minus ``busy`` (cores kept busy by other
    processes, a float; None = unknown, then all available cores), rounded to the nearest integer
    (half up), at least 1 and at most ``available`` and ``limit``."""
    available = max(1, int(available))
    threads = available if busy is None else max(1, min(available, int(available - busy + 0.5)))
    return threads if limit is None else max(1, min(threads, int(limit)))


def read_cpu_jiffies(cpus=None, path=PROC_STAT):
    """(busy, total) clock ticks since boot, summed over the CPUs numbered in ``cpus`` (all CPUs when
    None), from ``/proc/stat``; None where that cannot be read. Busy counts user, nice, system, irq,
    softirq and steal (a hypervisor's other guests); idle and iowait are free."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    busy = total = 0
    found = False
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        ticks = [int(x) for x in rest.split()[:8]]
        ticks += [0] * (8 - len(ticks))
        user, nice, system, idle, iowait, irq, softirq, steal = ticks
        busy += user + nice + system + irq + softirq + steal
        total += user + nice + system + idle + iowait + irq + softirq + steal
        found = True
    return (busy, total) if found else None


def busy_cores_from_samples(before, after, n_cpus, own_cpu_seconds=0.0, seconds=None):
    """Cores kept busy by other processes between two :func:`read_cpu_jiffies` samples of ``n_cpus``
    CPUs, minus this process's own CPU time over the ``seconds`` between them; None when unknown."""
    if before is None or after is None:
        return None
    busy, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return None
    cores = busy / total * n_cpus
    if seconds:
        cores -= own_cpu_seconds / seconds
    return max(0.0, cores)


def sample_busy_cores(seconds=LOAD_SAMPLE_SECONDS, path=PROC_STAT):
    """Cores of this process's affinity mask that other processes keep busy, measured over ``seconds``
    (this process sleeps meanwhile); None where ``/proc/stat`` is not available."""
    cpus = _affinity()
    before, own_before, t0 = read_cpu_jiffies(cpus, path), time.process_time(), time.monotonic()
    if before is None:
        return None
    time.sleep(seconds)
    after, own_after, t1 = read_cpu_jiffies(cpus, path), time.process_time(), time.monotonic()
    n_cpus = len(cpus) if cpus else available_cores()
    return busy_cores_from_samples(before, after, n_cpus, own_after - own_before, t1 - t0)


def torch_default_threads():
    """torch's intra-op thread count before this module first changed it."""
    global _torch_default_threads
    if _torch_default_threads is None:
        import torch

        _torch_default_threads = torch.get_num_threads()
    return _torch_default_threads


def thread_count(requested=THREADS_AUTO, environ=None, cores=None, default=None, sample=sample_busy_cores):
    """The thread count the settings ask for, as ``(threads or None, how)``; None: leave torch's as it is.

    requested > 0: exactly that many. 0 (auto): ``OMP_NUM_THREADS`` when set in ``environ`` (torch read it
    at start: None); otherwise :func:`choose_num_threads` of ``cores`` (default: :func:`available_cores`)
    and ``sample()``, the cores busy with other work, at most ``default`` (torch's default count)."""
    if requested is None:
        requested = THREADS_AUTO
    requested = int(requested)
    if requested < 0:
        raise ValueError(f"--cpu_threads must be 0 (auto) or a positive count, got {requested}")
    if requested > 0:
        return requested, "--cpu_threads"
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS", "").strip():
        return None, f"OMP_NUM_THREADS={environ['OMP_NUM_THREADS']}"
    cores = available_cores() if cores is None else cores
    if min(cores, default or cores) <= 1:
        return 1, "1 core available"
    busy = sample()
    threads = choose_num_threads(cores, busy, default)
    if busy is None:
        return threads, f"{cores} cores available, their load unknown"
    return threads, (f"{cores} cores available, {busy:.1f} busy with other processes; adapted to the load "
                     f"during training, --cpu_threads N or OMP_NUM_THREADS=N fix the count")


def apply_thread_settings(requested=THREADS_AUTO, environ=None, sample=sample_busy_cores, opt=None):
    """Set torch's intra-op thread count per :func:`thread_count`; when this module chose it from the
    load, :func:`adapt_threads` follows the load from then on (and keeps ``opt.torch_threads`` up to
    date). Returns ``(threads in use, how)``."""
    global _governor
    import torch

    cores = available_cores()
    threads, how = thread_count(requested, environ, cores=cores, default=torch_default_threads(), sample=sample)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    auto = threads is not None and requested in (None, THREADS_AUTO) and min(cores, torch_default_threads()) > 1
    _governor = ThreadGovernor(cores, limit=torch_default_threads(), opt=opt) if auto else None
    return torch.get_num_threads(), how


class ThreadGovernor:
    """Follows the load during a run: :meth:`step` (once per training iteration) costs a clock read,
    except every ``interval`` seconds, when it measures the cores other processes kept busy since the
    last check (``/proc/stat`` minus this process's own CPU time) and sets the thread count
    :func:`choose_num_threads` gives: fewer at once, more only after ``raise_after`` intervals in a row
    that had room for them (a passing load does not make the count flap). Must be called from the
    thread that runs the model (OpenMP's thread count is a per-thread setting)."""

    def __init__(self, cores, limit=None, interval=CHECK_SECONDS, raise_after=RAISE_AFTER_CHECKS, opt=None,
                 read=None, clock=time.monotonic, own_cpu=time.process_time, get_threads=None, set_threads=None):
        import torch

        cpus = _affinity()
        self.cores, self.limit, self.interval, self.raise_after, self.opt = cores, limit, interval, raise_after, opt
        self.read = read if read is not None else (lambda: read_cpu_jiffies(cpus))
        self.clock, self.own_cpu = clock, own_cpu
        self.get_threads = get_threads or torch.get_num_threads
        self.set_threads = set_threads or torch.set_num_threads
        self.calm = 0
        self.t0, self.sample0, self.own0 = clock(), self.read(), own_cpu()

    def step(self):
        """Check the load when an interval has passed; returns the new thread count when it changed."""
        now = self.clock()
        if now - self.t0 < self.interval:
            return None
        sample, own = self.read(), self.own_cpu()
        busy = busy_cores_from_samples(self.sample0, sample, self.cores, own - self.own0, now - self.t0)
        seconds = now - self.t0
        self.t0, self.sample0, self.own0 = now, sample, own
        if busy is None:
            return None
        target, current = choose_num_threads(self.cores, busy, self.limit), self.get_threads()
        if target > current:
            self.calm += 1
            if self.calm < self.raise_after:
                return None
        self.calm = 0
        if target == current:
            return None
        self.set_threads(target)
        if self.opt is not None:
            self.opt.torch_threads = target
        logger.info("torch CPU threads %d -> %d: %.1f of %d cores busy with other processes over the last %.0f s",
                    current, target, busy, self.cores, seconds)
        return target


def adapt_threads():
    """Once per training iteration: let the thread count follow the load (when this module chose it;
    see :class:`ThreadGovernor`). Returns the new count when it changed, else None."""
    return _governor.step() if _governor is not None else None


def stop_adapting_threads():
    global _governor
    _governor = None


def thread_count_is_auto(opt, environ=None):
    """True when neither ``--cpu_threads`` nor ``OMP_NUM_THREADS`` fixes the thread count."""
    environ = os.environ if environ is None else environ
    return not opt.cpu_threads and not environ.get("OMP_NUM_THREADS", "").strip()


def _device_type(device):
    return str(getattr(device, "type", device)).split(":")[0] if device is not None else None


def check_resume_environment(saved_opt, opt, environ=None):
    """Compare the device and torch thread count of the run being resumed with this process's, before
    training goes on. ``saved_opt``: the options stored in the run's full-state checkpoint
    (``state['opt']``; its ``torch_threads`` is recorded by :func:`apply_cpu_settings`); ``opt``: this
    run's options, after :func:`apply_cpu_settings`.

    Another device or thread count splits reductions differently, so the resumed run is then not
    bit-exact with an uninterrupted one. When this run chose its thread count itself (neither
    ``--cpu_threads`` nor ``OMP_NUM_THREADS``), it takes the run's count instead (if this process has
    that many cores; the load may change it again later, see :func:`adapt_threads`). Returns the
    warnings, each also logged; an older checkpoint without a recorded thread count is checked for its
    device only."""
    saved_opt = saved_opt or {}
    warnings = []
    saved_device, device = _device_type(saved_opt.get("device")), _device_type(opt.device)
    if saved_device and device and saved_device != device:
        warnings.append(f"the run being resumed was trained on {saved_device}, this process runs on {device}: "
                        f"the resumed run is not bit-exact with an uninterrupted one")
    saved_threads = saved_opt.get("torch_threads")
    if saved_device == device == "cpu" and saved_threads:
        import torch

        saved_threads = int(saved_threads)
        threads = torch.get_num_threads()
        if saved_threads != threads:
            if thread_count_is_auto(opt, environ) and saved_threads <= available_cores():
                torch.set_num_threads(saved_threads)
                opt.torch_threads = saved_threads
                logger.info("torch CPU threads: %d, as the run being resumed (exact resume; --cpu_threads N "
                            "to choose another count)", saved_threads)
            else:
                warnings.append(f"the run being resumed was trained with {saved_threads} torch CPU threads, this "
                                f"process uses {threads}: the resumed run is not bit-exact with an uninterrupted "
                                f"one (--cpu_threads {saved_threads} resumes exactly)")
    for w in warnings:
        logger.warning(w)
    return warnings


def native_bf16(device):
    """True where ``device`` has fast bf16 convolution kernels: CUDA GPUs that report bf16 support
    (Ampere and newer); CPUs where oneDNN takes bf16 (AVX-512, native with AVX512-BF16 or AMX).
    Elsewhere (e.g. AVX2-only CPUs) PyTorch still runs bf16, but through slow reference kernels:
    several times slower than fp32."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN
            return False
    return False
