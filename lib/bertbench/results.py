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
hand-edited row is named by file and line) before it checks the schema: a number column holds finite numbers (a
metric that was not computed is absent, never NaN), an integer column integers, each named by file:line:field.

Predictions files get the same treatment (:func:`load_predictions`, :class:`PredictionSchema`), and a run's
predictions and rows are written together (:func:`write_results` with ``predictions``): both new files are written
in full before either replaces its old one, so a full disk or a broken results file leaves both as they were.
:func:`check_writable` reads a run's results and predictions files before it trains, not after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .csv_files import ResultsError as ResultsError  # re-exported: the error of every file this module reads
from .csv_files import atomic_write, check_folder, locked, read_rows, updating, write_files
from .dist import barrier, is_main_process
from .paths import runs_dir
from .reproduction import METRIC_KEY as METRIC_KEY  # re-exported: the comparison of a re-run's rows lives there
from .reproduction import compare_rows as compare_rows
from .reproduction import created_values, reproduction_report
from .reproduction import varies_by_machine as varies_by_machine

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
SHOWN_SKIPPED = 5  # make_rows names this many values it left out, then "..."


def make_rows(common: Mapping[str, object], entries: Iterable[tuple[str, int, str, float]]) -> list[dict]:
    """Rows for one run: ``common`` columns (run_id, task, ...) plus each (split, step, metric, value) entry.

    An entry whose value is NaN or infinite was not computed (an interval with bootstrapping off, a mean of nothing):
    it gets no row, since a metric that was not computed is absent (the loader refuses non-finite values), and a
    warning names it, so that a value a writer did not mean to leave out is seen.
    """
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    base = {"schema_version": SCHEMA_VERSION, "created_at": now, **ADDED_COLUMNS, **common}
    rows, skipped = [], []
    for split, step, metric, value in entries:
        if math.isfinite(float(value)):
            rows.append({**base, "split": split, "step": step, "metric": metric, "value": float(value)})
        else:
            skipped.append(f"{split} {metric} (step {step}) = {value}")
    if skipped:
        print(f"warning: run {common.get('run_id')}: {len(skipped)} value(s) not a finite number, not written: "
              + ", ".join(skipped[:SHOWN_SKIPPED]) + (" ..." if len(skipped) > SHOWN_SKIPPED else ""))
    return rows


def _number(value: object, kind: str) -> tuple[int | float | None, str]:
    """``value`` (text read from a file, or a number of new rows) as a finite number of ``kind`` (``int`` or
    ``float``): ``(number, "")``, or ``(None, why not)`` for the message."""
    if value is None or (not isinstance(value, str) and pd.isna(value)) or str(value).strip() == "":
        return None, "is empty"
    if isinstance(value, str) and kind == "int":
        try:
            return int(value.strip()), ""
        except ValueError:
            pass  # "3.0", "nan", "high": said below
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"{value!r} is not a number"
    if not math.isfinite(number):
        return None, f"{value!r} is not a finite number"
    if kind == "int":
        if isinstance(value, str) or number != int(number):  # text "3.0": not what a writer of integers writes
            return None, f"{value!r} is not an integer (write a whole number without a decimal point)"
        return int(number), ""
    return number, ""


def validate(frame: pd.DataFrame, source: str = "rows", lines: Sequence[int] | None = None) -> pd.DataFrame:
    """Check columns, types and required values; return the frame with the schema's column order and dtypes.

    Number columns must hold finite numbers and integer columns integers (``value``: NaN, ``inf`` or empty is
    refused, not kept: a metric that was not computed has no row). Messages name ``source:line:field`` for a file
    (``field``: the column's position in its header, counted from 1), ``source:line`` for new rows.

    Args:
        lines: the file line each row starts on; given for a file (default: row i is line i + 2, below a header).
    """
    fields = {column: position + 1 for position, column in enumerate(frame.columns)}

    def where(position: int, column: str) -> str:
        line = lines[position] if lines is not None else position + 2  # header is line 1
        return f"{source}:{line}:{fields[column]}" if lines is not None and column in fields else f"{source}:{line}"

    if len(frame) and "schema_version" in frame.columns:
        frame = frame.copy()
        versions = pd.to_numeric(frame["schema_version"], errors="coerce")
        versions = versions.where(np.isfinite(versions))  # "inf" is refused as a non-number below, not as "newer"
        newest = versions.max()
        if newest > SCHEMA_VERSION:  # before the column checks: a newer schema may have added columns
            position = int((versions > SCHEMA_VERSION).to_numpy().argmax())
            line = lines[position] if lines is not None else position + 2
            raise ResultsError(f"{source}:{line}: schema_version {frame['schema_version'].iloc[position]} is newer "
                               f"than this bertbench ({SCHEMA_VERSION}); upgrade bertbench to read it")
        for column, (version, default) in ADDED_IN.items():  # files written before the column existed
            if column not in frame.columns and not newest >= version:
                frame.insert(list(COLUMNS).index(column), column, default)
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ResultsError(f"{source}: missing column(s) {missing}")
    extra = [column for column in frame.columns if column not in COLUMNS]
    if extra:
        raise ResultsError(f"{source}: unknown column(s) {extra}; the schema has {list(COLUMNS)}")
    frame = frame[list(COLUMNS)].copy()
    for column, default in ADDED_COLUMNS.items():
        if COLUMNS[column] == "str":  # an empty text field reads back as missing
            frame[column] = frame[column].fillna(default)
    cells = {column: frame[column].tolist() for column in COLUMNS}
    numbers: dict[str, list] = {column: [] for column, kind in COLUMNS.items() if kind != "str"}
    for position in range(len(frame)):
        for column in REQUIRED_NONEMPTY:
            value = cells[column][position]
            if (not isinstance(value, str) and pd.isna(value)) or str(value).strip() == "":
                raise ResultsError(f"{where(position, column)}: column {column!r} is empty")
        for column, parsed in numbers.items():
            number, problem = _number(cells[column][position], COLUMNS[column])
            if problem:
                said = f"column {column!r} {problem}" if problem == "is empty" else f"column {column!r}: {problem}"
                hint = ("; a metric value must be a finite number: correct it, or delete the row if the metric "
                        "was not computed") if column == "value" else ""
                raise ResultsError(f"{where(position, column)}: {said}{hint}")
            parsed.append(number)
        try:
            json.loads(cells["config"][position])
        except (TypeError, json.JSONDecodeError):
            raise ResultsError(f"{where(position, 'config')}: column 'config' is not valid JSON") from None
    for column, kind in COLUMNS.items():
        values = numbers[column] if column in numbers else frame[column]
        frame[column] = pd.Series(values, index=frame.index, dtype={"int": "int64", "float": "float64",
                                                                    "str": "string"}[kind])
    return frame


def check_writable(path: str | Path, min_free_bytes: int = MIN_FREE_BYTES, variable: str = "BB_OUTPUT_DIR",
                   read: bool = True) -> None:
    """Fail now, not after an hour of training, if results cannot be written next to ``path``: the folder cannot be
    created or written (read-only, a file in the way), or its disk has less than ``min_free_bytes`` free.
    ``variable``: the setting that moves it.

    For a results CSV (``path`` ends in ``.csv``) the ``predictions/`` folder beside it is checked too where it
    exists, and with ``read`` the file and its predictions file are read now (:func:`check_results_files`), so that
    a broken file fails before training rather than at the write after it (``BB_RESUME=0`` reads nothing else).
    """
    path = Path(path)
    check_folder(path.parent, min_free_bytes, variable)
    if path.suffix != ".csv":
        return
    if path.is_dir():
        raise ResultsError(f"cannot write results to {path}: it is a folder, not a results file")
    if predictions_path(path).parent.exists():
        check_folder(predictions_path(path).parent, 0, variable)
    if read:
        check_results_files(path)


def check_results_files(results_path: str | Path) -> None:
    """Read the results CSV at ``results_path`` and its predictions file (where they exist) through the loaders, which
    raise :class:`ResultsError` naming file:line:field for anything broken (hand-edited, cut short)."""
    path = Path(results_path)
    if path.is_file():
        load_results(path)
    if predictions_path(path).is_file():
        load_predictions(predictions_path(path))


def write_results(rows: list[dict] | pd.DataFrame, path: str | Path, predictions: pd.DataFrame | None = None,
                  schema: PredictionSchema | None = None, exact: Iterable[str] = ()) -> pd.DataFrame:
    """Validate ``rows`` and merge them into the CSV at ``path`` atomically.

    Earlier rows with the same ``run_id`` are replaced; all other rows are kept. Each run is then recorded as
    finished on this machine (:func:`made_here`), and each run that replaced earlier rows prints whether it
    reproduced them (:func:`reproduction_report`). Returns the whole file's frame (on a non-main process of a
    distributed launch: the frame it would write; the file, the records and the output are left alone). In a
    distributed launch every process calls it, and returns once the main process has written.

    Args:
        predictions: the same runs' per-example predictions, merged into :func:`predictions_path` in the same write
            (as :func:`write_predictions`, checked against ``schema``, ``exact`` as there). Both files are read and
            checked and both new versions written in full before the predictions, then the results, replace their
            old versions: a run in the results file always has its predictions, and a broken file or a full disk
            changes neither (predictions written on their own first would stay behind, without rows, when the
            results write then failed).
    """
    path = Path(path)
    new = validate(pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows, "new rows")
    replaced = new.iloc[:0]
    target = predictions_path(path)
    with updating(path), locked(path), locked(target) if predictions is not None else contextlib.nullcontext():
        if path.exists():
            earlier = load_results(path)
            same_run = earlier["run_id"].isin(set(new["run_id"]))
            replaced, kept = earlier[same_run], earlier[~same_run]
            merged = pd.concat([kept, new], ignore_index=True) if len(kept) else new
        else:
            merged = new
        files = [(path, lambda out: merged.to_csv(out, index=False))]
        if predictions is not None:  # checked before anything is written, like the rows
            texts = _merged_predictions(target, predictions, schema, exact=exact)
            files.insert(0, (target, lambda out: texts.to_csv(out, index=False)))
        if is_main_process():
            write_files(files)
    if is_main_process():
        _record_finished(new, path)
        for run_id, old in replaced.groupby("run_id", sort=False):
            line = reproduction_report(run_id, old, new[new["run_id"] == run_id])
            if line:
                print(line)
    barrier()  # in a distributed launch: no process reads the file before the main one has written it
    return merged


def replace_results(rows: list[dict] | pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Validate ``rows`` and make them the whole content of ``path`` (atomically): for derived files such as the
    aggregation, whose earlier rows must not linger. Zero rows write a header-only file."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(COLUMNS))
    frame = validate(frame, "new rows")
    path = Path(path)
    with updating(path), locked(path):
        if is_main_process():
            atomic_write(path, lambda out: frame.to_csv(out, index=False))
    return frame


def _record_path(run_id: str) -> Path:
    """The record of ``run_id`` in ``runs/finished/``: named by the run id where it is a plain file name; else by its
    safe characters and a hash of it (run ids are built from configs and model names, which may hold ``/``)."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)
    if name != run_id or name.startswith(".") or len(name) > 150:
        name = f"{name[:150].lstrip('.')}-{hashlib.sha1(run_id.encode()).hexdigest()[:10]}"
    return runs_dir() / FINISHED_DIR / f"{name}.json"


def _record_finished(frame: pd.DataFrame, path: Path) -> None:
    """Record each run of ``frame`` as written to ``path`` by this machine (see :func:`made_here`).

    A folder that cannot be written only costs a re-run later, so it is reported, not raised: the rows are written.
    """
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        for run_id, rows in frame.groupby("run_id", sort=False):
            record = {"run_id": run_id, "results": path.name, "rows": len(rows), "created_at": created_values(rows),
                      "recorded_at": now}
            atomic_write(_record_path(run_id), lambda out, record=record: json.dump(record, out, indent=1))
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
            and record.get("created_at") == created_values(rows))


def adopt_results(path: str | Path) -> list[str]:
    """Record every run in the results file at ``path`` as finished on this machine, so the notebooks skip them
    instead of training them again: for rows you trust that another machine wrote (a cluster's outputs copied
    here) or a long job continued in a fresh checkout. Adopted runs are not re-run, so they are not checked for
    reproduction. Returns the run ids. ``python -m bertbench.results adopt outputs/03_glue_finetune.csv``."""
    path = Path(path)
    frame = load_results(path)
    _record_finished(frame, path)
    return sorted(set(frame["run_id"]))


def predictions_path(results_path: str | Path) -> Path:
    """Per-example predictions live beside the results, in ``predictions/`` under the same name (not a results
    CSV: :func:`load_results` on the outputs folder does not read them)."""
    results_path = Path(results_path)
    return results_path.parent / "predictions" / results_path.name


@dataclasses.dataclass(frozen=True)
class PredictionSchema:
    """What one kind of predictions file needs. ``columns``: name -> ``str`` (non-empty text), ``int``, ``number``
    (finite) or ``label`` (a class id, or a JSON list of 0/1 per label); ``prefix``: the per-label probability
    columns (``p_<label>``, finite numbers: each run has a value in the same ones on every row, and as many as its
    labels; a union of datasets leaves other datasets' label columns empty); ``marks``: columns that tell a file of
    this kind from the others (:func:`prediction_schema`)."""

    name: str
    columns: Mapping[str, str]
    prefix: str = ""
    marks: tuple[str, ...] = ()


GLUE_PREDICTIONS = PredictionSchema("GLUE", {"run_id": "str", "task": "str", "split": "str", "example": "int",
                                             "label": "number", "prediction": "number"},
                                    marks=("task", "split", "example", "prediction"))
DOCUMENT_PREDICTIONS = PredictionSchema("long-document", {"run_id": "str", "doc_id": "str", "label": "label"},
                                        prefix="p_", marks=("doc_id",))
ANY_PREDICTIONS = PredictionSchema("predictions", {"run_id": "str"})  # a file of no known kind: its runs only


def prediction_schema(columns: Sequence[str]) -> PredictionSchema:
    """The kind of a predictions file with these header ``columns``, told by its marks (a column lost still tells)."""
    for schema in (DOCUMENT_PREDICTIONS, GLUE_PREDICTIONS):
        if any(column in schema.marks or (schema.prefix and column.startswith(schema.prefix)) for column in columns):
            return schema
    return ANY_PREDICTIONS


def _label_width(text: str) -> int | None:
    """How many probability columns a long-document label needs: class id + 1, or the length of a 0/1 list."""
    try:
        label = json.loads(text)
    except ValueError:
        return None
    if isinstance(label, int) and not isinstance(label, bool) and label >= 0:
        return label + 1
    if isinstance(label, list) and label and all(value in (0, 1) for value in label):
        return -len(label)  # negative: exactly this many (multi-label), not at least
    return None


def check_predictions(frame: pd.DataFrame, schema: PredictionSchema, source: str,
                      lines: Sequence[int] | None = None) -> None:
    """Refuse a predictions frame (text, empty fields missing) that does not follow ``schema``, naming
    ``source:line:field`` of the first problem (``source:row`` for new predictions, ``lines`` not given)."""
    missing = [column for column in schema.columns if column not in frame.columns]
    if missing:
        raise ResultsError(f"{source}: missing column(s) {missing}: a {schema.name} predictions file has "
                           f"{list(schema.columns)}{' and ' + schema.prefix + '<label>' if schema.prefix else ''}")
    fields = {column: position + 1 for position, column in enumerate(frame.columns)}
    problems: list[tuple[int, int, str]] = []  # (row position, field, message): the first row's first is reported

    def first(bad: np.ndarray, column: str, message: str | Callable[[int], str]) -> None:
        """Note the first row where ``bad`` holds: the column, its value, then ``message``."""
        if bad.any():
            position = int(bad.argmax())
            said = message(position) if callable(message) else message
            problems.append((position, fields[column], f"column {column!r}: {frame[column].iloc[position]!r} {said}"))

    for column, kind in schema.columns.items():
        values = frame[column]
        if kind == "str":
            first((values.isna() | (values.astype(str).str.strip() == "")).to_numpy(), column, "is empty")
        elif kind == "int":
            first(~values.astype(str).str.fullmatch(r"\s*[+-]?\d+\s*").to_numpy(dtype=bool), column,
                  "is not an integer (empty, or a row cut short?)")
        elif kind == "number":
            first(~np.isfinite(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)), column,
                  "is not a finite number")
        else:  # label: checked against the run's probability columns below
            first(np.array([_label_width(str(value)) is None for value in values], dtype=bool), column,
                  "is not a class id or a list of 0/1")
    probabilities = [column for column in frame.columns if schema.prefix and column.startswith(schema.prefix)]
    if schema.prefix and not probabilities:
        raise ResultsError(f"{source}: no {schema.prefix}<label> columns: a {schema.name} predictions file has one "
                           "probability column per label")
    if probabilities:
        present = frame[probabilities].notna().to_numpy()
        for index, column in enumerate(probabilities):
            numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            first(present[:, index] & ~np.isfinite(numbers), column, "is not a finite number")
        # each run has values in the same probability columns on every row: its first row's
        runs = frame["run_id"].astype(str).to_numpy()
        first_rows = pd.Series(np.arange(len(frame))).groupby(runs, sort=False).transform("first").to_numpy()
        differs = (present != present[first_rows]).any(axis=1)
        first(differs, "run_id", f"has values in other {schema.prefix}* columns in this row than in its first "
                                 "(a value deleted or added)")
        counts = present.sum(axis=1)
        widths = np.array([_label_width(str(value)) or 0 for value in frame["label"]])
        short = np.where(widths < 0, counts != -widths, counts < widths) & ~differs
        first(short, "label", lambda position: f"needs {abs(widths[position])} {schema.prefix}* values, the row has "
                                               f"{counts[position]} (a column deleted?)")
    if problems:
        position, field, message = min(problems)
        where = f"{source}:{lines[position]}:{field}" if lines is not None else f"{source}:row {position + 1}"
        raise ResultsError(f"{where}: {message}")


def load_predictions(path: str | Path, schema: PredictionSchema | None = None) -> pd.DataFrame:
    """A predictions file read and checked (as :func:`load_results` does results): a row cut short, a field too many,
    a duplicated header, a missing column or a value of the wrong kind is a :class:`ResultsError` naming
    file:line:field. ``schema``: the kind it must be (default: the kind its header shows, :func:`prediction_schema`).

    Returns:
        ``str`` and ``label`` columns as text, ``int`` as int64, ``number`` and probability columns as float64
        (NaN where a run has no such label); other columns as text.
    """
    path = Path(path)
    frame, lines = read_rows(path)
    schema = schema or prediction_schema(list(frame.columns))
    check_predictions(frame, schema, str(path), lines)
    for column in frame.columns:
        kind = schema.columns.get(column, "number" if schema.prefix and column.startswith(schema.prefix) else "str")
        if kind in ("int", "number"):
            frame[column] = frame[column].astype(float if kind == "number" else np.int64)
    return frame


def _merged_predictions(path: Path, frame: pd.DataFrame, schema: PredictionSchema | None, digits: int = 6,
                        exact: Iterable[str] = ()) -> pd.DataFrame:
    """The predictions file at ``path`` with ``frame``'s runs merged in, as text (see :func:`write_predictions`)."""
    def text(value, full: bool) -> str:
        if np.isnan(value):
            return ""
        return np.format_float_positional(value, trim="-") if full else f"{value:.{digits}g}"

    exact = set(exact)
    new = frame.copy()
    for column in new.columns:
        if pd.api.types.is_float_dtype(new[column]):
            new[column] = [text(value, column in exact) for value in new[column].to_numpy()]
        else:
            new[column] = ["" if not isinstance(value, str) and pd.isna(value) else str(value) for value in new[column]]
    new = new.where(new != "")
    check_predictions(new, schema or ANY_PREDICTIONS, "new predictions")
    if not path.exists():
        return new
    old, lines = read_rows(path)
    check_predictions(old, schema or ANY_PREDICTIONS, str(path), lines)
    old = old[~old["run_id"].isin(set(new["run_id"]))]
    return pd.concat([old, new], ignore_index=True) if len(old) else new


def write_predictions(frame: pd.DataFrame, path: str | Path, digits: int = 6, exact: Iterable[str] = (),
                      schema: PredictionSchema | None = None) -> None:
    """Merge the per-example predictions of one or more runs (a ``run_id`` column) into the CSV at ``path``.

    Earlier rows of the same run ids are replaced, all other rows are kept as they were (read back as text, so they
    are not re-rounded), and the file is rewritten atomically. Runs may have different columns (the union is written;
    a column a run lacks is empty). The old file is read strictly and checked, and so are the new rows, against
    ``schema`` (default: only that every row has a run id), so that a broken file is refused, not rewritten as
    normal-looking rows. Only the main process of a distributed launch writes. A run's predictions go with its rows:
    :func:`write_results` with ``predictions`` writes both.

    Args:
        digits: significant digits of float columns.
        exact: float columns written in full instead: the shortest text that reads back to the same value at the
            column's dtype (float32 model outputs: at most 9 digits), for values whose metrics must be reproduced
            exactly from the file.
    """
    path = Path(path)
    with updating(path), locked(path):
        merged = _merged_predictions(path, frame, schema, digits, exact)
        if is_main_process():
            write_files([(path, lambda out: merged.to_csv(out, index=False))])


def load_results(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Load and validate one or more result CSVs (a folder means every ``*.csv`` in it) into one frame."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for item in map(Path, paths):
        files.extend(sorted(item.glob("*.csv")) if item.is_dir() else [item])
    frames = []
    for file in files:
        frame, lines = read_rows(file)
        frames.append(validate(frame, str(file), lines))
    if not frames:
        return validate(pd.DataFrame({column: [] for column in COLUMNS}))
    return pd.concat(frames, ignore_index=True)


if __name__ == "__main__":  # python -m bertbench.results adopt <results.csv> ...
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "adopt":
        sys.exit("usage: python -m bertbench.results adopt <results.csv> [<results.csv> ...]")
    for name in sys.argv[2:]:
        print(f"{name}: {len(adopt_results(name))} runs recorded as finished on this machine")
