"""Which process of a distributed launch this is (``accelerate launch``, ``torchrun``): only the main process writes
results, predictions and checkpoints; every process trains and evaluates.

Read from the initialised process group when there is one, else from ``RANK`` (set by both launchers before any
code runs), so a write made before the training loop starts is also guarded.
"""

from __future__ import annotations

import contextlib
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


def agreed(value: float) -> float:
    """The main process's ``value`` on every process (itself outside a distributed run).

    For decisions every process must take alike although each measures its own clock: whether a time budget is
    spent, the learning rate taken from it. One small broadcast, so a host sync: call it once per optimizer step
    at most.
    """
    import torch.distributed as tdist

    if world_size() == 1 or not (tdist.is_available() and tdist.is_initialized()):
        return value
    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return float(box[0])


def sum_across(values, device) -> list[float]:
    """Each of ``values`` summed over every process (the values themselves outside a distributed run); ``device``:
    where the collective runs (the accelerator's device, which NCCL needs)."""
    import torch
    import torch.distributed as tdist

    if world_size() == 1 or not (tdist.is_available() and tdist.is_initialized()):
        return [float(value) for value in values]
    total = torch.tensor([float(value) for value in values], dtype=torch.float64, device=device)
    tdist.all_reduce(total)
    return total.tolist()


def sum_array(values, device):
    """A NumPy array summed element-wise over every process (itself outside a distributed run): how predictions
    made by several processes, each filling its own rows of a zero array, become one array on every process."""
    import numpy as np
    import torch
    import torch.distributed as tdist

    if world_size() == 1 or not (tdist.is_available() and tdist.is_initialized()):
        return values
    total = torch.from_numpy(np.ascontiguousarray(values)).to(device)
    tdist.all_reduce(total)
    return total.cpu().numpy()


@contextlib.contextmanager
def main_process_first():
    """In a distributed launch the main process runs the block first, then the others: for work that writes a file
    the others then read (a token cache, a saved split, a tokenizer trained on first use). Joins the process group
    if no Accelerator has yet; a no-op in a single process."""
    if world_size() == 1:
        yield
        return
    import torch
    from accelerate import PartialState

    # on CPU, as train.new_accelerator does: without cpu=True accelerate takes torchrun's processes as unrelated
    with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
        yield
