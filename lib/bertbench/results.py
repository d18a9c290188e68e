"""The result schema, atomic writes, and the one loader.

Long format: one row per (run, task, split, step, metric) with the protocol columns that decide whether two rows may
be compared, and the full resolved config as JSON. Rows are written only here: the file is rewritten through a
temporary file and ``os.replace`` (a crash never leaves half a file), and a run's rows replace earlier rows with the
same ``run_id`` (re-running a configuration updates it instead of duplicating it). Per-example predictions, kept
beside the results in ``predictions/`` for paired comparisons and bootstrap intervals, are merged the same way.

Rows in a results file do not say that this machine made them: ``outputs/`` is committed, so a fresh clone has the
rows of every run. Each write therefore also records its runs as finished here, under ``runs/finished/`` (never
committed), and :func:`bertbench.checkpoint.finished_runs` skips a run only when both agree. A run that replaces
earlier rows of its run id prints whether it reproduced them (:func:`reproduction_report`), so re-running committed
results is a reproducibility check.

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
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from .dist import is_main_process
from .paths import runs_dir

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
# under runs_dir(): one JSON record per run whose rows this machine wrote (runs_dir() is machine-local, outputs/ is not)
FINISHED_DIR = "finished"
# what identifies a metric within a run: probes have one per (variant, layer), multitask runs one per task
METRIC_KEY = ["task", "variant", "layer", "split", "step", "metric"]
SHOWN_DIFFERENCES = 3  # a report lists this many differing metrics, then counts the rest


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
    if is_main_process():
        _atomic_write(path, lambda out: frame.to_csv(out, index=False))


def _atomic_write(path: Path, write: Callable[[TextIO], object]) -> None:
    """Call ``write(handle)`` on a temporary file in ``path``'s folder and ``os.replace`` it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as out:
            write(out)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared like any written file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, content: dict) -> None:
    _atomic_write(path, lambda out: json.dump(content, out, indent=1))


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

    Earlier rows with the same ``run_id`` are replaced; all other rows are kept. Each run is then recorded as
    finished on this machine (:func:`made_here`), and each run that replaced earlier rows prints whether it
    reproduced them (:func:`reproduction_report`). Returns the whole file's frame (on a non-main process of a
    distributed launch: the frame it would write; the file, the records and the output are left alone).
    """
    path = Path(path)
    new = validate(pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows, "new rows")
    replaced = new.iloc[:0]
    with _locked(path):
        if path.exists():
            earlier = load_results(path)
            same_run = earlier["run_id"].isin(set(new["run_id"]))
            replaced, kept = earlier[same_run], earlier[~same_run]
            merged = pd.concat([kept, new], ignore_index=True) if len(kept) else new
        else:
            merged = new
        _atomic_write_csv(merged, path)
    if is_main_process():
        _record_finished(new, path)
        for run_id, old in replaced.groupby("run_id", sort=False):
            line = reproduction_report(run_id, old, new[new["run_id"] == run_id])
            if line:
                print(line)
    return merged


def replace_results(rows: list[dict] | pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Validate ``rows`` and make them the whole content of ``path`` (atomically): for derived files such as the
    aggregation, whose earlier rows must not linger. Zero rows write a header-only file."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(COLUMNS))
    frame = validate(frame, "new rows")
    with _locked(Path(path)):
        _atomic_write_csv(frame, Path(path))
    return frame


def _record_path(run_id: str) -> Path:
    """The record of ``run_id`` in ``runs/finished/``: named by the run id where it is a plain file name; else by its
    safe characters and a hash of it (run ids are built from configs and model names, which may hold ``/``)."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)
    if name != run_id or name.startswith(".") or len(name) > 150:
        name = f"{name[:150].lstrip('.')}-{hashlib.sha1(run_id.encode()).hexdigest()[:10]}"
    return runs_dir() / FINISHED_DIR / f"{name}.json"


def _created(rows: pd.DataFrame) -> list[str]:
    """What tells one writing of a run's rows from another: their ``created_at`` values (set when they are made)."""
    return sorted(set(rows["created_at"].fillna("").astype(str)))


def _record_finished(frame: pd.DataFrame, path: Path) -> None:
    """Record each run of ``frame`` as written to ``path`` by this machine (see :func:`made_here`).

    A folder that cannot be written only costs a re-run later, so it is reported, not raised: the rows are written.
    """
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        for run_id, rows in frame.groupby("run_id", sort=False):
            _write_json(_record_path(run_id), {"run_id": run_id, "results": path.name, "rows": len(rows),
                                               "created_at": _created(rows), "recorded_at": now})
    except OSError as err:
        print(f"warning: cannot record the runs written to {path} as finished on this machine ({err}); they will "
              "run again next time")


def made_here(run_id: str, rows: pd.DataFrame) -> bool:
    """Whether this machine wrote ``rows``, the rows of ``run_id`` read from a results file.

    True when its record in ``runs/finished/`` names the same rows (their ``created_at`` and count). Rows committed
    from another machine, written by a bertbench older than the records, or brought back by git have no record or
    another one: the run has not finished here, whatever the file says.
    """
    try:
        record = json.loads(_record_path(run_id).read_text())
    except (OSError, ValueError):  # none, or cut short: the run runs again, which is always safe
        return False
    return (record.get("run_id") == run_id and record.get("rows") == len(rows)
            and record.get("created_at") == _created(rows))


def varies_by_machine(metric: str) -> bool:
    """Whether ``metric`` measures the machine rather than the computation: times and speeds (``*_s``, which covers
    ``*_per_s``, ``train_s``, ``cpu_s``), memory (``peak_*``, ``rss_*``) and throughput (``mfu``, ``tflops``). Two runs
    of the same computation differ in these, so a reproduction check leaves them out."""
    return metric.endswith("_s") or metric.startswith(("peak_", "rss_")) or metric in ("mfu", "tflops")


def compare_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The metrics of two writings of one run, side by side: one row per metric of either (those that do not
    :func:`varies_by_machine`), matched on :data:`METRIC_KEY`.

    Returns:
        :data:`METRIC_KEY` columns, ``old`` and ``new`` (NaN on a side that lacks the metric), and ``status``:
        ``equal`` (the same float; NaN equals NaN), ``differs``, ``only old`` or ``only new``.
    """
    def metrics(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[~frame["metric"].astype(str).map(varies_by_machine)]
        frame = frame[METRIC_KEY + ["value"]].astype(
            {"task": str, "variant": str, "layer": int, "split": str, "step": int, "metric": str, "value": float})
        return frame.assign(occurrence=frame.groupby(METRIC_KEY).cumcount())  # a key repeated in a run: by order

    both = metrics(old).merge(metrics(new), on=METRIC_KEY + ["occurrence"], how="outer", suffixes=("_old", "_new"),
                              indicator=True)
    old_values, new_values = both["value_old"].to_numpy(), both["value_new"].to_numpy()
    equal = (old_values == new_values) | (np.isnan(old_values) & np.isnan(new_values))
    side = both["_merge"].astype(str)
    status = np.where(side == "left_only", "only old", np.where(side == "right_only", "only new",
                                                                 np.where(equal, "equal", "differs")))
    return both[METRIC_KEY].assign(old=old_values, new=new_values, status=status).reset_index(drop=True)


def reproduction_report(run_id: str, old: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """The line to print when ``new`` rows of ``run_id`` replace ``old`` ones: ``reproduced: ...`` when every metric
    they share is the same float, else ``not reproduced: ...`` with the first :data:`SHOWN_DIFFERENCES` differences
    (dev scores, then other dev metrics, then the rest) and a count; metrics on one side only are counted. On one
    CPU a re-run gives the same floats, so a difference there is a finding; across devices or thread counts small
    ones are expected.

    None when ``new`` only continues ``old`` (the same values, plus metrics of later steps): a run that writes its
    rows as it goes (pretraining, at every evaluation) replacing its own earlier rows, not a re-run.
    """
    comparison = compare_rows(old, new)
    counts = comparison["status"].value_counts()
    shared = int(counts.get("equal", 0) + counts.get("differs", 0))
    added = comparison[comparison["status"] == "only new"]
    if not counts.get("differs", 0) and not counts.get("only old", 0) and len(added) and (
            not shared or added["step"].min() > comparison.loc[comparison["status"] == "equal", "step"].max()):
        return None
    made = ", ".join(_created(old))
    devices = sorted(set(old["device"].astype(str))), sorted(set(new["device"].astype(str)))
    notes = [f"{count} metric(s) only in the {'new rows' if status == 'only new' else 'rows it replaced'}"
             for status in ("only new", "only old") if (count := int(counts.get(status, 0)))]
    if devices[0] != devices[1]:
        notes.append(f"the replaced rows were made on {', '.join(devices[0])}, these on {', '.join(devices[1])}")
    tail = "".join(f"; {note}" for note in notes)
    if not shared:
        return f"nothing to compare: run {run_id} shares no metric with the rows it replaced (made {made}){tail}"
    differs = comparison[comparison["status"] == "differs"]
    if differs.empty:
        return f"reproduced: {shared} metrics of run {run_id} equal to the last digit (the rows it replaced, made " \
               f"{made}){tail}"
    headline_first = 2 * ~differs["split"].str.startswith("dev").to_numpy() + (differs["metric"] != "score").to_numpy()
    differs = differs.iloc[np.argsort(headline_first, kind="stable")]
    shown = [f"{_metric_label(comparison, row)} {_difference(row.old, row.new)}"
             for row in differs.head(SHOWN_DIFFERENCES).itertuples()]
    more = f" and {len(differs) - SHOWN_DIFFERENCES} more" if len(differs) > SHOWN_DIFFERENCES else ""
    return f"not reproduced: run {run_id} differs from the rows it replaced (made {made}) in {len(differs)} of " \
           f"{shared} metrics: {', '.join(shown)}{more}{tail}"


def _metric_label(comparison: pd.DataFrame, row) -> str:
    """``dev score``, with what else tells the metric apart within the run: the task where it has several, the
    variant and layer where it has them (probes), the step where the metric has several (per-epoch rows)."""
    parts = [row.task] if comparison["task"].nunique() > 1 else []
    parts += [row.variant] if row.variant else []
    parts += [f"layer {row.layer}"] if row.layer >= 0 else []
    parts += [row.split, row.metric]
    same = comparison[(comparison[["task", "variant", "layer", "split", "metric"]]
                       == [row.task, row.variant, row.layer, row.split, row.metric]).all(axis=1)]
    return " ".join(parts + ([f"step {row.step}"] if same["step"].nunique() > 1 else []))


def _difference(old: float, new: float) -> str:
    """``0.8956 -> 0.8950 (-0.0006)``: at least 4 significant digits, more until the two values read differently."""
    digits = next((digits for digits in range(4, 18) if f"{old:.{digits}g}" != f"{new:.{digits}g}"), 17)
    return f"{old:#.{digits}g} -> {new:#.{digits}g} ({new - old:+.2g})"


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
