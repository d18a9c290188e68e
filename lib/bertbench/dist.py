"""Which process of a distributed launch this is (``accelerate launch``, ``torchrun``): only the main process writes
results, predictions and checkpoints; every process trains and evaluates.

Read from the initialised process group when there is one, else from ``RANK`` (set by both launchers before any
code runs), so a write made before the training loop starts is also guarded.
"""

from __future__ import annotations

import os


def rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait for every process (a no-op outside a distributed run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
