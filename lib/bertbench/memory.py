"""Peak memory of one run, for the cost columns of result rows.

- CUDA: ``torch.cuda.max_memory_allocated`` after resetting the device's peak at the start (``peak_gpu_mb``: what
  this run's tensors took at most; exact).
- CPU (Linux): the run's own peak resident memory, measured as the rise of the kernel's high-water mark: at the start
  the process's freed memory is handed back to the OS (``gc`` + glibc's ``malloc_trim``), the high-water mark is
  reset (``/proc/self/clear_refs``), and at the end ``VmHWM`` minus the resident memory at the start is the run's
  ``peak_rss_rise_mb``. The resident memory at the start (``rss_start_mb``: the interpreter, libraries and whatever
  earlier runs in the same process still hold) is recorded beside it, so neither run order nor an earlier run in the
  same kernel changes a run's number. Without ``/proc`` (macOS), resident memory is sampled every ``interval`` s by a
  thread instead (a spike shorter than that can be missed).
"""

from __future__ import annotations

import ctypes
import gc
import re
import threading
from pathlib import Path

import psutil
import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _release_freed_memory() -> None:
    """Collect garbage and return freed heap pages to the OS, so the start's resident memory is what is really held."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _high_water_mark_bytes() -> int | None:
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


# glibc serves a large allocation from its heap, not from a fresh mapping, once the process has freed a mapping that
# size (its mmap threshold rises to at most 32 MiB). A training step's activations are tensors of a few MiB to tens of
# MiB freed and reallocated at every step, so they end up in a fragmented heap that the OS never gets back: a MiniLM
# training step on 24 windows of 512 tokens raised resident memory by 2,510 MB this way, by 2,061 MB with the
# threshold fixed at 1 MiB, 5% slower (bench/longdoc_step_memory.py, docs/04's memory paragraph).
LARGE_BLOCK_BYTES = 1 << 20


def return_large_blocks_to_os(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Have glibc map every allocation of ``threshold`` bytes or more on its own and unmap it when freed (``mallopt
    M_MMAP_THRESHOLD``), so the resident memory of a run is what its live tensors take. Process-wide and lasting; a
    no-op returning False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD = -3 (malloc.h)
    except (OSError, AttributeError):
        return False


_peak_before_resets = 0  # the process's high-water mark before the last reset (for process_peak_bytes)


def process_peak_bytes() -> int:
    """The process's own peak resident memory since it started, resets by :class:`PeakMemory` notwithstanding (what
    ``getrusage``'s ``ru_maxrss`` would say had nothing reset it; the benchmarks use it)."""
    import resource

    current = _high_water_mark_bytes() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(_peak_before_resets, current)


def _reset_high_water_mark() -> bool:
    global _peak_before_resets
    _peak_before_resets = max(_peak_before_resets, _high_water_mark_bytes() or 0)
    try:
        _CLEAR_REFS.write_text("5")  # Linux: resets VmHWM to the current resident set size
    except OSError:
        return False
    return True


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.metrics()``: ``{"peak_gpu_mb": ...}`` on CUDA, else
    ``{"peak_rss_rise_mb": ..., "rss_start_mb": ...}`` (MiB); ``peak.mb`` is the first of them."""

    def __init__(self, device: torch.device | str | None = None, interval: float = 0.05):
        if device is None:  # where this process trains: its CUDA device when there is one
            device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.interval = interval
        self.kind = "gpu" if self.device.type == "cuda" else "rss_rise"
        self.mb = 0.0
        self.start_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled_peak = 0
        self._start = 0
        self._hwm = False

    def _sample(self) -> None:
        process = psutil.Process()
        while True:
            self._sampled_peak = max(self._sampled_peak, process.memory_info().rss)
            if self._stop.wait(self.interval):
                return

    def start(self) -> PeakMemory:
        """Begin measuring (``with PeakMemory(...)`` does this); returns itself."""
        return self.__enter__()

    def stop(self) -> None:
        """End measuring: ``mb`` and :meth:`metrics` are then set."""
        self.__exit__(None, None, None)

    def __enter__(self) -> PeakMemory:
        if self.kind == "gpu":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        _release_freed_memory()
        self._start = psutil.Process().memory_info().rss
        self._hwm = _reset_high_water_mark() and _high_water_mark_bytes() is not None
        if not self._hwm:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "gpu":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        if self._hwm:
            peak = _high_water_mark_bytes() or 0
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._sampled_peak, psutil.Process().memory_info().rss)
        self.mb = max(0, peak - self._start) / 2**20
        self.start_mb = self._start / 2**20

    def metrics(self) -> dict[str, float]:
        if self.kind == "gpu":
            return {"peak_gpu_mb": self.mb}
        return {"peak_rss_rise_mb": self.mb, "rss_start_mb": self.start_mb}
