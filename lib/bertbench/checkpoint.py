"""Resumable training state on disk: folders swapped in whole, RNG states, and the training loop's own state.

A checkpoint folder is written under a temporary name and renamed into place (the previous one kept until then), so
a crash or SIGKILL at any moment leaves either the old or the new checkpoint, never half of one. Weights go through
``save_pretrained`` (safetensors); optimizer, schedule, grad scaler and RNG states through ``torch.save`` of tensors
and plain numbers only, read back with ``torch.load(weights_only=True)``; the loop's counters as JSON. A checkpoint
that cannot be read back (damaged, or holding objects bertbench does not unpickle) is refused with the way out.

Every run starts in :func:`start_or_skip`, which also takes the run's lock (:func:`claim_run`): two copies of one
command would otherwise train into one checkpoint folder, each resuming from the other's half-written state.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import pickle
import random
import re
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from . import dist
from .models import check_safe_weights
from .paths import runs_dir

try:
    import fcntl
except ImportError:  # Windows has no flock: runs are not locked there
    fcntl = None

TRAINER_FILE = "trainer.pt"
STATE_FILE = "loop_state.json"
LOCKS_DIR = "locks"  # under runs/: one <run id>.lock per run being trained


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
    try:
        temporary.mkdir(parents=True)
        write(temporary)
    except (OSError, RuntimeError, SafetensorError) as err:  # a full disk: any of these (torch.save: RuntimeError)
        shutil.rmtree(temporary, ignore_errors=True)  # the space it took, back
        raise CheckpointWriteError(_write_failed(folder, err)) from err
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.replace(old)
    temporary.replace(folder)
    shutil.rmtree(old, ignore_errors=True)


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (a full disk, most often); the message says what is safe and what to do."""


def _write_failed(folder: Path, err: BaseException) -> str:
    try:
        free = f"; {shutil.disk_usage(folder.parent).free / 2**20:,.0f} MiB free there now"
    except OSError:
        free = ""
    kept = next((path for path in (folder, folder.with_name(folder.name + ".old")) if path.is_dir()), None)
    previous = (f"the previous complete checkpoint ({kept}) is untouched" if kept is not None else
                "no earlier checkpoint of this run exists, so it will start again")
    return (f"cannot write the checkpoint {folder}: {err}{free}. Nothing written before is lost: result rows are "
            f"only ever added whole, and {previous}. Free some space (or set BB_RUNS_DIR to a folder on another "
            "disk), then run the same command again: finished runs are skipped and this one resumes")


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
    # the run's wall time up to this checkpoint, over every process that worked on it: a resumed run reports its
    # total (the work after a process's last checkpoint is lost, and not counted)
    wall_seconds: float = 0.0

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


class ResumeStateError(ValueError):
    """A resume checkpoint that cannot be read back: damaged, or holding what bertbench does not load."""


def _unreadable(folder: Path, name: str, why: str) -> ResumeStateError:
    return ResumeStateError(f"{folder / name}: {why}. Set BB_RESUME=0 to start this run afresh (its resume "
                            f"checkpoint {folder} is then removed), or remove that folder")


def load_training_state(folder: str | Path, fingerprint: str, model) -> tuple[LoopState, dict] | None:
    """The saved state and trainer dict, with the weights loaded into ``model``; None when there is none.

    Raises:
        ValueError: the checkpoint belongs to another run (its fingerprint differs).
        ResumeStateError: a file of the checkpoint is damaged (cut short, edited) or not trusted (``trainer.pt``
            holding pickled objects rather than tensors and numbers); the message names it and says BB_RESUME=0.
    """
    found = existing_folder(folder, STATE_FILE)
    if found is None:
        return None
    try:
        state = LoopState(**json.loads((found / STATE_FILE).read_text()))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:  # not JSON, or not a loop state's keys
        raise _unreadable(found, STATE_FILE, f"damaged: not the loop state a checkpoint writes ({err})") from None
    if state.fingerprint != fingerprint:
        raise ValueError(f"{found} is a checkpoint of {state.fingerprint!r}, not {fingerprint!r}: remove it, or "
                         "set BB_RESUME=0 to start afresh")
    check_safe_weights(found)
    try:
        saved = type(model).from_pretrained(found, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # cut short, edited, or missing
        raise _unreadable(found, "model.safetensors", f"damaged: the weights cannot be read back "
                          f"({type(err).__name__}: {err})") from None
    model.load_state_dict(saved.state_dict())
    del saved
    try:
        trainer = torch.load(found / TRAINER_FILE, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError):
        # torch's own message suggests turning the safe mode off, i.e. running whatever the file holds: not offered
        raise _unreadable(found, TRAINER_FILE, "damaged, or not trusted: it holds something other than the tensors "
                          "and plain numbers a checkpoint writes, and bertbench unpickles nothing else (that could "
                          "run arbitrary code)") from None
    return state, trainer


def _remove_folders(folder: Path) -> None:
    for candidate in (folder, folder.with_name(folder.name + ".old"), folder.with_name(folder.name + ".tmp")):
        shutil.rmtree(candidate, ignore_errors=True)


def remove_training_state(folder: str | Path) -> None:
    """Drop a run's resume checkpoint once its results are written, and release the run's lock (:func:`claim_run`):
    the run is over (main process only)."""
    if dist.is_main_process():
        folder = Path(folder)
        _remove_folders(folder)
        for run_id, held in list(_HELD.items()):
            if held.resume_dir == folder.absolute():
                release_run(run_id)


# ------------------------------------------------------------------------------------------------------- run locks
class RunLockedError(RuntimeError):
    """Another process is running the same run (the same run id): the message names it."""


@dataclasses.dataclass
class _HeldLock:
    path: Path
    handle: object  # the open lock file: closing it (or exiting) releases the lock
    resume_dir: Path | None
    pid: int  # the process that took it (a forked child, e.g. a data loader worker, must not remove its file)


_HELD: dict[str, _HeldLock] = {}  # run id -> the lock this process holds on it


def lock_path(run_id: str) -> Path:
    """``runs/locks/<run id>.lock``; a run id that is no plain file name (it may hold ``/``) gets its safe
    characters and a hash of it, as the records of ``runs/finished/`` do."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)
    if name != run_id or name.startswith(".") or len(name) > 150:
        name = f"{name[:150].lstrip('.')}-{hashlib.sha1(run_id.encode()).hexdigest()[:10]}"
    return runs_dir() / LOCKS_DIR / f"{name}.lock"


def claim_run(run_id: str, resume_dir: str | Path | None = None) -> None:
    """Take this process's exclusive lock on ``run_id`` (``flock`` on :func:`lock_path`, the holder's pid, host,
    start time and command written into it), held until the run ends (:func:`remove_training_state`), this process
    starts another run (it runs one at a time: the last one ended, finished or failed) or exits.

    Two different runs never block each other (other run ids, other locks); the same run started again in this
    process (a notebook cell run again after an error) keeps its lock. Off the main process nothing is taken: the
    processes of one distributed launch share the run.

    Raises:
        RunLockedError: another process holds the lock, naming it. A second copy of a command is refused rather
            than left to skip to the next run: both copies would then work through the same list side by side,
            each ending with a partial table, on the cores the first copy was using.
    """
    if fcntl is None or not dist.is_main_process():
        return
    for other in [key for key in _HELD if key != run_id]:
        release_run(other)
    if run_id in _HELD:
        return
    path = lock_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+")  # kept open while the run lasts: closing it releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunLockedError(_locked_message(run_id, path)) from None
        try:  # the last holder removes the file on release: if it did after we opened it, lock the new one
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    handle.seek(0)
    handle.truncate()
    json.dump({"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
               "since": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
               "command": " ".join([Path(sys.executable).name, *sys.argv])}, handle)
    handle.flush()
    _HELD[run_id] = _HeldLock(path, handle, Path(resume_dir).absolute() if resume_dir is not None else None,
                              os.getpid())


def _locked_message(run_id: str, path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):  # the holder has not written itself in yet
        holder = {}
    who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, running it since {holder.get('since', '?')} "
           f"(command: {holder.get('command', '?')})") if holder else "a process that is just starting it"
    return (f"run {run_id} is already being trained by another process: {who}; lock file {path}. Two copies of one "
            "run would train into the same checkpoint folder. Wait for that process to finish (started again, this "
            "command then skips the run as done) or stop it. Runs that differ in any setting (another seed, task or "
            "learning rate) have other run ids and run side by side.")


def release_run(run_id: str) -> None:
    """Release this process's lock on ``run_id`` (nothing if it holds none); the lock file is removed."""
    held = _HELD.pop(run_id, None)
    if held is None:
        return
    if held.pid == os.getpid():
        held.path.unlink(missing_ok=True)  # while still locked: a process that opened it sees another file, retries
    held.handle.close()


atexit.register(lambda: [release_run(run_id) for run_id in list(_HELD)])


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
    checkpoint when ``resume`` is off (a fresh start). Every run starts here, so here it is locked
    (:func:`claim_run`): a run to train keeps its lock until :func:`remove_training_state`, a skipped one drops it.

    Rows in the results file that this machine did not write (a fresh clone's committed rows) return None with a
    line saying so, whatever ``label``: the run trains again, continuing from its resume checkpoint if it has one.

    Raises:
        RunLockedError: another process is training this run (the message names its pid, start time and command).
    """
    from .results import made_here

    claim_run(run_id, resume_dir)
    if not resume:
        if dist.is_main_process():
            _remove_folders(Path(resume_dir))
        return None
    rows = _rows_of(results_path, [run_id]).get(run_id)
    if rows is not None and not made_here(run_id, rows):
        print(f"{f'[{label}] ' if label else ''}rows of run {run_id} in {results_path} were not made on this machine: "
              "running it again to check that they reproduce")
        return None
    if rows is not None:
        release_run(run_id)
        if label:
            print(f"[{label}] already in {results_path} (run {run_id}); BB_RESUME=0 runs it again")
    return rows
