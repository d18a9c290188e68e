"""Peak memory of a block of work, for the cost columns of result rows.

On a CUDA device: ``torch.cuda.max_memory_allocated`` after resetting the peak (exact). On CPU: the process's
resident set size sampled every ``interval`` seconds by a background thread (the peak of the samples, so a spike
shorter than the interval can be missed; the process's memory before the block is included).
"""

from __future__ import annotations

import threading

import psutil
import torch


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.mb`` (MiB) and ``peak.kind`` (``gpu`` / ``rss``)."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.05):
        self.device = torch.device(device)
        self.interval = interval
        self.kind = "gpu" if self.device.type == "cuda" else "rss"
        self.mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_bytes = 0

    def _sample(self) -> None:
        process = psutil.Process()
        while True:
            self._peak_bytes = max(self._peak_bytes, process.memory_info().rss)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakMemory:
        if self.kind == "gpu":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "gpu":
            self._peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self._peak_bytes = max(self._peak_bytes, psutil.Process().memory_info().rss)
        self.mb = self._peak_bytes / 2**20
