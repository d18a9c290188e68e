"""The result schema, atomic writes, and the one loader.

Long format: one row per (run, task, split, step, metric) with the protocol columns that decide whether two rows may
be compared, and the full resolved config as JSON. Rows are written only here: the file is rewritten through a
temporary file and ``os.replace`` (a crash never leaves half a file), and a run's rows replace earlier rows with the
same ``run_id`` (re-running a configuration updates it instead of duplicating it). Per-example predictions, kept
beside the results in ``predictions/`` for paired comparisons and bootstrap intervals, are merged the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

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


class ResultsError(ValueError):
    """A result file or row does not follow the schema; the message names the file, line and column."""


def make_rows(common: Mapping[str, object], entries: Iterable[tuple[str, int, str, float]]) -> list[dict]:
    """Rows for one run: ``common`` columns (run_id, task, ...) plus each (split, step, metric, value) entry."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    base = {"schema_version": SCHEMA_VERSION, "created_at": now, **ADDED_COLUMNS, **common}
    return [{**base, "split": split, "step": step, "metric": metric, "value": float(value)}
            for split, step, metric, value in entries]


def validate(frame: pd.DataFrame, source: str = "rows") -> pd.DataFrame:
    """Check columns, types and required values; return the frame with the schema's column order and dtypes."""
    if len(frame) and "schema_version" in frame.columns:
        frame = frame.copy()
        newest = pd.to_numeric(frame["schema_version"], errors="coerce").max()
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
        line = position + 2  # header is line 1
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
        if int(row["schema_version"]) > SCHEMA_VERSION:
            raise ResultsError(f"{source}:{line}: schema_version {row['schema_version']} is newer than this "
                               f"bertbench ({SCHEMA_VERSION}); upgrade bertbench to read it")
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
    """Write ``frame`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
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


def check_writable(path: str | Path) -> None:
    """Fail now, not after an hour of training, if results cannot be written next to ``path``."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise ResultsError(f"cannot write results to {folder}: {err.strerror or err}; "
                           f"set BB_OUTPUT_DIR to a writable folder") from None


def write_results(rows: list[dict] | pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Validate ``rows`` and merge them into the CSV at ``path`` atomically.

    Earlier rows with the same ``run_id`` are replaced; all other rows are kept. Returns the whole file's frame.
    """
    path = Path(path)
    new = validate(pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows, "new rows")
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
    a column a run lacks is empty).

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
    if path.exists():
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
        old = old[~old["run_id"].isin(set(new["run_id"].astype(str)))]
        new = pd.concat([old, new.astype(str)], ignore_index=True) if len(old) else new
    _atomic_write_csv(new, path)


def load_results(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Load and validate one or more result CSVs (a folder means every ``*.csv`` in it) into one frame."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for item in map(Path, paths):
        files.extend(sorted(item.glob("*.csv")) if item.is_dir() else [item])
    frames = []
    for file in files:
        try:
            frame = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
        except pd.errors.ParserError as err:
            raise ResultsError(f"{file}: not a readable CSV ({err})") from None
        except pd.errors.EmptyDataError:
            raise ResultsError(f"{file}: the file is empty") from None
        frames.append(validate(frame, str(file)))
    if not frames:
        return validate(pd.DataFrame({column: [] for column in COLUMNS}))
    return pd.concat(frames, ignore_index=True)
