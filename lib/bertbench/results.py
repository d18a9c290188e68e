"""The result schema, atomic writes, and the one loader.

Long format: one row per (run, task, split, step, metric) with the protocol columns that decide whether two rows may
be compared, and the full resolved config as JSON. Rows are written only here: the file is rewritten through a
temporary file and ``os.replace`` (a crash never leaves half a file), and a run's rows replace earlier rows with the
same ``run_id`` (re-running a configuration updates it instead of duplicating it). Per-example predictions, kept
beside the results in ``predictions/`` for paired comparisons and bootstrap intervals, are merged the same way.

Several runs may write one file at once (two notebooks, two seeds in parallel): each merge holds an exclusive lock
(``flock`` on ``.<name>.lock`` beside the file) from reading the old rows to replacing the file, so no run's rows are
lost. In a distributed launch (``torchrun``, ``accelerate launch``) only the main process writes; the others compute
the same return values and leave the files alone. The loader checks the file's shape itself (a truncated or
hand-edited row is named by file and line) before it checks the schema.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .dist import is_main_process

try:
    import fcntl
except ImportError:  # Windows has no flock: writes stay atomic, but two runs merging at once may drop rows
    fcntl = None

SCHEMA_VERSION = 3
# Columns added after version 1: column -> (the version that added it, the value rows of older files get).
ADDED_IN = {"variant": (2, ""), "layer": (3, -1)}
ADDED_COLUMNS = {column: default for column, (_version, default) in ADDED_IN.items()}

# column -> dtype kind ("str", "int", "float"); order is the file's column order
COLUMNS: dict[str, str] = {
    "schema_version": "int",
    "run_id": "str",
    "notebook": "str",
    "preset": "str",
    "model": "str",
    "task": "str",
    "variant": "str",  # what differs between runs of one model and task (notebook 04: strategy+aggregation)
    "layer": "int",  # the encoder layer a probe read (0 = embeddings); -1 for rows that are not per layer
    "seed": "int",
    "split": "str",
    "step": "int",
    "metric": "str",
    "value": "float",
    "init": "str",
    "head_init": "str",
    "selection": "str",
    "max_len": "int",
    "train_examples": "int",
    "device": "str",
    "wall_s": "float",
    "created_at": "str",
    "config": "str",
}
REQUIRED_NONEMPTY = ("run_id", "notebook", "preset", "model", "task", "split", "metric")
# check_writable refuses a disk with less free space: results are small, but a run that cannot write its checkpoints
# or results fails only after it has trained
MIN_FREE_BYTES = 100 * 2**20


class ResultsError(ValueError):
    """A result file or row does not follow the schema; the message names the file, line and column."""


def make_rows(common: Mapping[str, object], entries: Iterable[tuple[str, int, str, float]]) -> list[dict]:
    """Rows for one run: ``common`` columns (run_id, task, ...) plus each (split, step, metric, value) entry."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    base = {"schema_version": SCHEMA_VERSION, "created_at": now, **ADDED_COLUMNS, **common}
    return [{**base, "split": split, "step": step, "metric": metric, "value": float(value)}
            for split, step, metric, value in entries]


def validate(frame: pd.DataFrame, source: str = "rows", lines: Sequence[int] | None = None) -> pd.DataFrame:
    """Check columns, types and required values; return the frame with the schema's column order and dtypes.

    Args:
        lines: the file line each row starts on, for the messages (default: row i on line i + 2, below a header).
    """
    if len(frame) and "schema_version" in frame.columns:
        frame = frame.copy()
        versions = pd.to_numeric(frame["schema_version"], errors="coerce")
        newest = versions.max()
        if newest > SCHEMA_VERSION:  # before the column checks: a newer schema may have added columns
            position = int((versions > SCHEMA_VERSION).to_numpy().argmax())
            line = lines[position] if lines is not None else position + 2
            raise ResultsError(f"{source}:{line}: schema_version {frame['schema_version'].iloc[position]} is newer "
                               f"than this bertbench ({SCHEMA_VERSION}); upgrade bertbench to read it")
        for column, (version, default) in ADDED_IN.items():  # files written before the column existed
            if column not in frame.columns and newest < version:
                frame.insert(list(COLUMNS).index(column), column, default)
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ResultsError(f"{source}: missing column(s) {missing}")
    extra = [column for column in frame.columns if column not in COLUMNS]
    if extra:
        raise ResultsError(f"{source}: unknown column(s) {extra}; the schema has {list(COLUMNS)}")
    frame = frame[list(COLUMNS)].copy()
    for position, (_, row) in enumerate(frame.iterrows()):
        line = lines[position] if lines is not None else position + 2  # header is line 1
        for column in REQUIRED_NONEMPTY:
            if pd.isna(row[column]) or str(row[column]).strip() == "":
                raise ResultsError(f"{source}:{line}: column {column!r} is empty")
        for column, kind in COLUMNS.items():
            value = row[column]
            if kind in ("int", "float"):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise ResultsError(f"{source}:{line}: column {column!r}: {value!r} is not a number") from None
                if kind == "int" and number != int(number):
                    raise ResultsError(f"{source}:{line}: column {column!r}: {value!r} is not an integer")
        try:
            json.loads(row["config"])
        except (TypeError, json.JSONDecodeError):
            raise ResultsError(f"{source}:{line}: column 'config' is not valid JSON") from None
    for column, default in ADDED_COLUMNS.items():
        frame[column] = frame[column].fillna(default)
    for column, kind in COLUMNS.items():
        frame[column] = frame[column].astype({"int": "int64", "float": "float64", "str": "string"}[kind])
    return frame


def _atomic_write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Does nothing on a non-main process of a distributed launch: every process computes the same rows, one writes.
    """
    if not is_main_process():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as out:
            frame.to_csv(out, index=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared like any written file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path`` from reading its old rows to replacing it (read-merge-replace).

    Without it, two runs merging into one file at once both read the old rows and the later replace drops the
    other's run. The lock is ``flock`` on ``.<name>.lock`` beside the file, removed on release while still held; a
    waiter that then gets the lock of the removed file sees another file (inode) at the path and locks that instead.
    Not taken on non-main processes (they write nothing) or where there is no ``fcntl`` (Windows).
    """
    if fcntl is None or not is_main_process():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    while True:
        handle = open(lock_path, "a")  # closed when the lock is released
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()


def check_writable(path: str | Path, min_free_bytes: int = MIN_FREE_BYTES, variable: str = "BB_OUTPUT_DIR") -> None:
    """Fail now, not after an hour of training, if results cannot be written next to ``path``: the folder cannot be
    created or written, or its disk has less than ``min_free_bytes`` free. ``variable``: the setting that moves it."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise ResultsError(f"cannot write results to {folder}: {err.strerror or err}; "
                           f"set {variable} to a writable folder") from None
    if free < min_free_bytes:
        raise ResultsError(f"cannot write results to {folder}: its disk is (nearly) full, {free / 2**20:.1f} MiB free "
                           f"(at least {min_free_bytes / 2**20:.0f} MiB needed); free some space or set "
                           f"{variable} to a folder on another disk")


def write_results(rows: list[dict] | pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Validate ``rows`` and merge them into the CSV at ``path`` atomically.

    Earlier rows with the same ``run_id`` are replaced; all other rows are kept. Returns the whole file's frame
    (on a non-main process of a distributed launch: the frame it would write; the file is left alone).
    """
    path = Path(path)
    new = validate(pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows, "new rows")
    with _locked(path):
        if path.exists():
            old = load_results(path)
            old = old[~old["run_id"].isin(set(new["run_id"]))]
            merged = pd.concat([old, new], ignore_index=True) if len(old) else new
        else:
            merged = new
        _atomic_write_csv(merged, path)
    return merged


def replace_results(rows: list[dict] | pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Validate ``rows`` and make them the whole content of ``path`` (atomically): for derived files such as the
    aggregation, whose earlier rows must not linger. Zero rows write a header-only file."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(COLUMNS))
    frame = validate(frame, "new rows")
    with _locked(Path(path)):
        _atomic_write_csv(frame, Path(path))
    return frame


def predictions_path(results_path: str | Path) -> Path:
    """Per-example predictions live beside the results, in ``predictions/`` under the same name (not a results
    CSV: :func:`load_results` on the outputs folder does not read them)."""
    results_path = Path(results_path)
    return results_path.parent / "predictions" / results_path.name


def write_predictions(frame: pd.DataFrame, path: str | Path, digits: int = 6, exact: Iterable[str] = ()) -> None:
    """Merge the per-example predictions of one or more runs (a ``run_id`` column) into the CSV at ``path``.

    Earlier rows of the same run ids are replaced, all other rows are kept as they were (read back as text, so they
    are not re-rounded), and the file is rewritten atomically. Runs may have different columns (the union is written;
    a column a run lacks is empty). Only the main process of a distributed launch writes.

    Args:
        digits: significant digits of float columns.
        exact: float columns written in full instead: the shortest text that reads back to the same value at the
            column's dtype (float32 model outputs: at most 9 digits), for values whose metrics must be reproduced
            exactly from the file.
    """
    def text(value, full: bool) -> str:
        if np.isnan(value):
            return ""
        return np.format_float_positional(value, trim="-") if full else f"{value:.{digits}g}"

    path, exact = Path(path), set(exact)
    new = frame.copy()
    for column in new.columns:
        if pd.api.types.is_float_dtype(new[column]):
            new[column] = [text(value, column in exact) for value in new[column].to_numpy()]
    with _locked(path):
        if path.exists():
            old = pd.read_csv(path, dtype=str, keep_default_na=False)
            old = old[~old["run_id"].isin(set(new["run_id"].astype(str)))]
            new = pd.concat([old, new.astype(str)], ignore_index=True) if len(old) else new
        _atomic_write_csv(new, path)


def _read_csv(file: Path) -> tuple[pd.DataFrame, list[int]]:
    """The file's rows as text (empty fields missing) and the line each row starts on; a row that is not whole fails.

    Read with the csv module, not pandas: pandas fills a short row (a file cut mid-row, a deleted field) with NaN
    without a word. Line numbers are the file's own: a quoted field may span lines.
    """
    header: list[str] | None = None
    rows, lines = [], []
    start = 1  # the line the next row starts on
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, strict=True)
            for row in reader:
                if header is None:
                    header = row
                elif row and len(row) != len(header):  # a blank line is skipped, as pandas does
                    raise ResultsError(f"{file}:{start}: {len(row)} fields where the header has {len(header)} "
                                       f"(a row cut short or hand-edited)")
                elif row:
                    rows.append(row)
                    lines.append(start)
                start = reader.line_num + 1
    except csv.Error as err:
        raise ResultsError(f"{file}:{start}: not a readable CSV row ({err}): an unclosed quote, a stray quote "
                           f"or a file cut short") from None
    except UnicodeDecodeError as err:
        raise ResultsError(f"{file}: not UTF-8 text ({err})") from None
    if header is None:
        raise ResultsError(f"{file}: the file is empty")
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        raise ResultsError(f"{file}:1: column(s) {duplicated} appear more than once in the header")
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return frame.where(frame != ""), lines


def load_results(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Load and validate one or more result CSVs (a folder means every ``*.csv`` in it) into one frame."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for item in map(Path, paths):
        files.extend(sorted(item.glob("*.csv")) if item.is_dir() else [item])
    frames = []
    for file in files:
        frame, lines = _read_csv(file)
        frames.append(validate(frame, str(file), lines))
    if not frames:
        return validate(pd.DataFrame({column: [] for column in COLUMNS}))
    return pd.concat(frames, ignore_index=True)
