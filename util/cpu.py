"""CPU run-time settings that change speed, never results.

:func:`keep_freed_memory` tunes glibc's allocator for PyTorch on CPU. By default glibc serves every
block above a threshold (128 KiB, adapting up to 32 MiB) with a fresh ``mmap`` and gives it back on
``free``; a 256x256 SPADE/DAGAN iteration allocates hundreds of such tensors (tens of MB each), so
every one of them is page-faulted in again on first touch: a large share of the step time on CPU.
With ``mmap`` off and trimming raised, freed blocks stay in the heap and are reused, which is what
jemalloc / tcmalloc (the usual LD_PRELOAD advice for PyTorch on CPU) also achieve. The price is that
the process keeps its peak heap instead of returning it to the system between iterations.
"""

import ctypes
import ctypes.util
import logging
import sys

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
    """Apply ``--cpu_malloc`` for a run on the CPU (no effect on CUDA runs or with 'system')."""
    mode = getattr(opt, "cpu_malloc", "system")
    if mode not in CPU_MALLOC_MODES:
        raise ValueError(f"--cpu_malloc must be one of {', '.join(CPU_MALLOC_MODES)}, got {mode!r}")
    device = getattr(opt, "device", None)
    if mode == "keep" and (device is None or device.type == "cpu"):
        return keep_freed_memory()
    return False


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
