"""Resumable training state on disk: folders swapped in whole, RNG states, and the training loop's own state.

A checkpoint folder is written under a temporary name and renamed into place (the previous one kept until then), so
a crash or SIGKILL at any moment leaves either the old or the new checkpoint, never half of one. Weights go through
``save_pretrained`` (safetensors); optimizer, schedule, grad scaler and RNG states through ``torch.save`` of tensors
and plain numbers only, read back with ``torch.load(weights_only=True)``; the loop's counters as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import dist
from .models import check_safe_weights

TRAINER_FILE = "trainer.pt"
STATE_FILE = "loop_state.json"


def replace_folder(folder: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)`` and swap the temporary folder in for ``folder``; no-op off the main process.

    The old folder is moved aside first and removed last: at every instant one complete folder exists under
    ``folder`` or ``folder.old`` (:func:`existing_folder` finds it).
    """
    if not dist.is_main_process():
        return
    folder = Path(folder)
    temporary, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    write(temporary)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.replace(old)
    temporary.replace(folder)
    shutil.rmtree(old, ignore_errors=True)


def existing_folder(folder: str | Path, marker: str) -> Path | None:
    """``folder`` if it holds ``marker``; else the ``.old`` copy a crash mid-swap left behind; else None."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / marker).is_file():
            return candidate
    return None


def rng_state() -> dict:
    """This process's RNG states (torch CPU and CUDA, numpy, Python) as tensors and plain numbers."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
            "python": list(random.getstate()[1]), "python_gauss": random.getstate()[2]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))


def all_rng_states() -> list[dict]:
    """Every process's RNG states, in rank order (each process draws its own dropout masks)."""
    import torch.distributed as tdist

    if dist.world_size() > 1 and tdist.is_initialized():
        gathered: list = [None] * dist.world_size()
        tdist.all_gather_object(gathered, rng_state())
        return gathered
    return [rng_state()]


def restore_rng(states: list[dict]) -> None:
    """This process's entry of :func:`all_rng_states` (rank 0's when the process count changed)."""
    set_rng_state(states[dist.rank()] if dist.rank() < len(states) else states[0])


@dataclasses.dataclass
class LoopState:
    """The training loop's position and everything it has measured so far (saved as JSON with the checkpoint)."""

    fingerprint: str  # what is being trained (a run id): a checkpoint of anything else is refused
    epoch: int = 0  # the epoch in progress, or the next one when ``batches_done`` is 0
    batches_done: int = 0  # batches of ``epoch`` already trained
    step: int = 0  # optimizer steps
    loss_sum: float = 0.0  # sum of the batch losses of ``epoch`` so far
    examples_seen: int = 0
    train_seconds: float = 0.0
    history: list = dataclasses.field(default_factory=list)  # one record per finished epoch
    best_value: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped_early: bool = False
    finished: bool = False  # the loop has ended; the best weights are in the run's best/ folder

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def save_training_state(folder: str | Path, model, state: LoopState, trainer: dict) -> None:
    """Weights (``save_pretrained``, safetensors), ``trainer`` (optimizer/schedule/scaler/RNG) and ``state``,
    swapped in whole (:func:`replace_folder`). Every process must call it (the RNG states are gathered)."""
    rng = all_rng_states()

    def write(temporary: Path) -> None:
        model.save_pretrained(temporary, safe_serialization=True)
        torch.save({**trainer, "rng": rng}, temporary / TRAINER_FILE)
        (temporary / STATE_FILE).write_text(state.to_json())

    replace_folder(folder, write)
    dist.barrier()


def load_training_state(folder: str | Path, fingerprint: str, model) -> tuple[LoopState, dict] | None:
    """The saved state and trainer dict, with the weights loaded into ``model``; None when there is none.

    Raises:
        ValueError: the checkpoint belongs to another run (its fingerprint differs).
    """
    found = existing_folder(folder, STATE_FILE)
    if found is None:
        return None
    state = LoopState(**json.loads((found / STATE_FILE).read_text()))
    if state.fingerprint != fingerprint:
        raise ValueError(f"{found} is a checkpoint of {state.fingerprint!r}, not {fingerprint!r}: remove it, or "
                         "set BB_RESUME=0 to start afresh")
    check_safe_weights(found)
    saved = type(model).from_pretrained(found, use_safetensors=True)
    model.load_state_dict(saved.state_dict())
    del saved
    trainer = torch.load(found / TRAINER_FILE, weights_only=True)
    return state, trainer


def remove_training_state(folder: str | Path) -> None:
    """Drop a run's resume checkpoint once its results are written (main process only)."""
    if dist.is_main_process():
        folder = Path(folder)
        for candidate in (folder, folder.with_name(folder.name + ".old"), folder.with_name(folder.name + ".tmp")):
            shutil.rmtree(candidate, ignore_errors=True)


def _rows_of(results_path: str | Path, run_ids: list[str]) -> dict:
    """run id -> its rows, for those of ``run_ids`` the results file has; the file is read once."""
    from .results import load_results

    path = Path(results_path)
    if not path.exists():
        return {}
    frame = load_results(path)
    frame = frame[frame["run_id"].isin(run_ids)]
    return {run_id: rows.reset_index(drop=True) for run_id, rows in frame.groupby("run_id", sort=False)}


def finished_runs(results_path: str | Path, run_ids: list[str]) -> dict:
    """run id -> its rows, for those of ``run_ids`` that finished on this machine: the results file has their rows
    (a run's rows are written last) and this machine recorded writing those rows (:func:`bertbench.results.made_here`).

    The file alone is not enough: ``outputs/`` is committed, so a fresh clone has rows of runs it never ran, and
    skipping them would re-report another machine's numbers as its own. Without the record a run is run again, and
    its rows then say whether they reproduced the ones they replace.
    """
    from .results import made_here

    return {run_id: rows for run_id, rows in _rows_of(results_path, run_ids).items() if made_here(run_id, rows)}


def start_or_skip(resume: bool, results_path: str | Path, run_id: str, resume_dir: str | Path, label: str = ""):
    """Before a run: its rows if it finished on this machine (:func:`finished_runs`) and ``resume`` is on (the
    caller skips it, and ``label``, if given, is printed with the reason); else None, after removing its resume
    checkpoint when ``resume`` is off (a fresh start).

    Rows in the results file that this machine did not write (a fresh clone's committed rows) return None with a
    line saying so, whatever ``label``: the run trains again, continuing from its resume checkpoint if it has one.
    """
    from .results import made_here

    if not resume:
        remove_training_state(resume_dir)
        return None
    rows = _rows_of(results_path, [run_id]).get(run_id)
    if rows is not None and not made_here(run_id, rows):
        print(f"{f'[{label}] ' if label else ''}rows of run {run_id} in {results_path} were not made on this machine: "
              "running it again to check that they reproduce")
        return None
    if rows is not None and label:
        print(f"[{label}] already in {results_path} (run {run_id}); BB_RESUME=0 runs it again")
    return rows
