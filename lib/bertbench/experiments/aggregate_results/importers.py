"""Results from outside the notebooks' own CSVs: the result folder read through the one loader, DitBERT's run
folders, the published reference table, and the per-example predictions of notebooks 03 and 04 (read and checked
like results: :func:`bertbench.results.load_predictions`)."""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ... import metrics as M
from ...data.glue import get_task
from ...paths import portable_path, repo_root
from ...results import (
    DOCUMENT_PREDICTIONS,
    GLUE_PREDICTIONS,
    ResultsError,
    load_predictions,
    load_results,
    make_rows,
    prediction_schema,
    predictions_path,
)
from ..glue_finetune import PREDICTION_COLUMNS
from ..glue_finetune import read_predictions as read_glue_predictions
from .protocol import GLUE_TASKS, NOTEBOOK

REFERENCES = Path(str(resources.files("bertbench") / "references" / "glue_published.csv"))
# DitBERT's run folders: run-01 (DitBERT itself), run-Bert-01 (bert-base-cased), run-RoBERTa-01 (roberta-base);
# a -mnli suffix means the run started from that run's MNLI-fine-tuned model (../shared/data/MANIFEST.md, section 6).
DITBERT_MODELS = {"": "DitBERT", "Bert": "bert-base-cased", "RoBERTa": "roberta-base"}
DITBERT_COLUMNS = {  # validation column -> (split, metric) in bertbench's names
    "validation_accuracy": ("dev", "accuracy"), "validation_f1": ("dev", "f1"),
    "validation_matthews_correlation": ("dev", "mcc"), "validation_pearson": ("dev", "pearson"),
    "validation_spearmanr": ("dev", "spearman"), "validation_matched_accuracy": ("dev_matched", "accuracy"),
    "validation_mismatched_accuracy": ("dev_mismatched", "accuracy"),
}
DITBERT_CAVEAT = ("DitBERT's notebooks never shuffled the fine-tuning data; its bert-base/roberta-base baselines ran "
                  "without attention masks and with <s>, </s>, <pad> hard-coded ([UNK] for BERT's vocabulary); its "
                  "STS-B head was sigmoid x 5 under MSE (../shared/PEERS.md)")


def _shown(path: Path) -> str:
    """``path`` as the summary shows it, the same on every machine (:func:`bertbench.paths.portable_path`)."""
    return portable_path(path)


def read_outputs(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Every result CSV in ``folder`` through the one loader (this notebook's own output left out).

    Returns:
        (rows, files, messages): all rows; one line per file (rows, runs, notebooks); what is missing, in words.
    """
    folder = Path(folder)
    paths = sorted(path for path in folder.glob("*.csv") if path.stem != NOTEBOOK) if folder.is_dir() else []
    frames, files = [], []
    for path in paths:
        frame = load_results(path)  # a broken file raises ResultsError naming the file and line
        frame = frame[frame["notebook"] != NOTEBOOK]
        frames.append(frame)
        files.append({"file": path.name, "rows": len(frame), "runs": frame["run_id"].nunique(),
                      "notebooks": ", ".join(sorted(set(frame["notebook"])))})
    rows = pd.concat(frames, ignore_index=True) if frames else load_results([])
    messages = []
    if not paths:
        messages.append(f"`{_shown(folder)}` has no result CSVs yet: run the notebooks (README) to fill it; the "
                        "tables below show only imported and published results")
    present = {Path(name).stem for name in (entry["file"] for entry in files)}
    notebooks = sorted(path.stem for path in (repo_root() / "notebooks").glob("*.py"))
    missing = [name for name in notebooks if name != NOTEBOOK and name not in present]
    if paths and missing:
        messages.append(f"not run yet (no `{_shown(folder)}/<name>.csv`): {', '.join(missing)}")
    return rows, pd.DataFrame(files, columns=["file", "rows", "runs", "notebooks"]), messages


def _parse_params(path: Path) -> dict[str, str]:
    """DitBERT's ``finetune_params.txt``: free-text ``key: value`` lines, kept as strings (never evaluated)."""
    params: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and value.strip():
                params[key.strip()] = value.strip()
    return params


def import_ditbert(folder: str | Path) -> pd.DataFrame:
    """DitBERT's ``GLUE-Outputs/<run>/results_<task>.csv`` folders as result rows (one per run, task, epoch, metric).

    ``init`` is ``intermediate:mnli`` for ``-mnli`` runs, else ``mlm-pretrained`` (DitBERT's own MLM pretraining,
    bert-base-cased, roberta-base); ``selection`` is ``per_epoch_dev``
    (every epoch is recorded, none chosen: :func:`glue_cells` applies the selection rule); ``max_len`` and
    ``train_examples`` are 0 = not recorded (DitBERT trained on the full training sets); seed -1 = not recorded.

    Raises:
        ResultsError: a results file without ``epoch`` or ``validation_*`` columns, or with a non-number, naming the
            file and line.
    """
    folder = Path(folder)
    rows: list[dict] = []
    for run_dir in sorted(path for path in folder.glob("run-*") if path.is_dir()):
        name = run_dir.name
        base = name.removesuffix("-mnli")
        prefix, _, _number = base.removeprefix("run-").rpartition("-")
        model = DITBERT_MODELS.get(prefix, prefix or "DitBERT")
        params = _parse_params(run_dir / "finetune_params.txt")
        for path in sorted(run_dir.glob("results_*.csv")):
            task_name = path.stem.removeprefix("results_")
            task = get_task(task_name)
            table = pd.read_csv(path)
            columns = [column for column in table.columns if column in DITBERT_COLUMNS]
            if "epoch" not in table.columns or not columns:
                raise ResultsError(f"{path}: expected an 'epoch' column and validation_* columns, found "
                                   f"{list(table.columns)}")
            common = {
                "run_id": f"ditbert-{name}-{task.name}", "notebook": "ditbert_import", "preset": "external",
                "model": model, "task": task.name, "variant": "", "seed": -1,  # runs are pooled per model
                "init": "intermediate:mnli" if name.endswith("-mnli") else "mlm-pretrained", "head_init": "new",
                "selection": "per_epoch_dev", "max_len": 0, "train_examples": 0, "device": "", "wall_s": 0.0,
                "config": json.dumps({"source": str(path), "run": name, "finetune_params": params,
                                      "caveat": DITBERT_CAVEAT}),
            }
            entries = []
            for line, record in zip(range(2, len(table) + 2), table.to_dict("records"), strict=True):
                try:
                    epoch = int(record["epoch"])
                    values = {DITBERT_COLUMNS[column]: float(record[column]) for column in columns}
                except (TypeError, ValueError):
                    raise ResultsError(f"{path}:{line}: not a number in {record}") from None
                entries += [(split, epoch, metric, value) for (split, metric), value in values.items()]
                by_split = {}
                for (split, metric), value in values.items():
                    by_split.setdefault(split, {})[metric] = value
                if all(set(task.score_metrics) <= set(by_split.get(split, {})) for split in task.eval_splits):
                    score = float(np.mean([M.task_score(task, by_split[split]) for split in task.eval_splits]))
                    entries.append(("dev", epoch, "score", score))
            rows += make_rows(common, entries)
    if not rows:
        return load_results([])
    return pd.DataFrame(rows)


def load_references(path: str | Path = REFERENCES) -> pd.DataFrame:
    """The published reference table: one row per (model, source, task, metric), values in percent as printed.

    Raises:
        ResultsError: a row with an unknown task, a non-number or no source, naming the file and line.
    """
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    required = ["model", "params_m", "task", "metric", "value", "split", "protocol", "source", "url"]
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {missing}")
    for line, row in zip(range(2, len(table) + 2), table.itertuples(index=False), strict=True):
        if row.task != "glue" and row.task not in GLUE_TASKS:
            raise ResultsError(f"{path}:{line}: unknown task {row.task!r}")
        try:
            float(row.value)
        except ValueError:
            raise ResultsError(f"{path}:{line}: value {row.value!r} is not a number") from None
        if not row.source.strip() or not row.url.strip():
            raise ResultsError(f"{path}:{line}: every number needs its source and url")
    table["value"] = table["value"].astype(float)
    return table


def reference_cells(references: pd.DataFrame) -> pd.DataFrame:
    """Published per-task numbers as GLUE cells (fractions). Where a source gives both metrics of a two-metric task,
    the cell is their mean, as GLUE scores it; where it gives one, the cell says which (``score_is``)."""
    cells = []
    tasks = references[references["task"] != "glue"]
    for (model, source, split, task_name), rows in tasks.groupby(["model", "source", "split", "task"], sort=False):
        task = get_task(task_name)
        values = dict(zip(rows["metric"], rows["value"] / 100, strict=True))
        if "score" in values:
            value, score_is = values["score"], rows[rows["metric"] == "score"]["protocol"].iloc[0]
        elif task.name == "mnli" and {"accuracy_matched", "accuracy_mismatched"} <= set(values):
            value, score_is = (values["accuracy_matched"] + values["accuracy_mismatched"]) / 2, "GLUE score"
        elif set(task.score_metrics) <= set(values):
            value, score_is = float(np.mean([values[name] for name in task.score_metrics])), "GLUE score"
        else:
            value, score_is = float(np.mean(list(values.values()))), "only " + ", ".join(values)
        cells.append({"source": "published", "model": model, "variant": source, "init": "published checkpoint",
                      "selection": "as published", "max_len": 0, "preset": "published", "task": task_name,
                      "train_examples": 0, "split": split, "n": 1, "median": value, "min": value, "max": value,
                      "ci_low": np.nan, "ci_high": np.nan, "runs": "", "seeds": "", "score_is": score_is,
                      "protocol_text": rows["protocol"].iloc[0], "url": rows["url"].iloc[0]})
    return pd.DataFrame(cells)


def _header(path: Path) -> list[str]:
    """The column names of a CSV file (its byte-order mark dropped); [] for an empty file."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        return next(csv.reader(handle), [])


def read_predictions(folder: str | Path) -> pd.DataFrame:
    """Per-example dev predictions of GLUE runs: every ``<folder>/predictions/*.csv`` whose header makes it a GLUE
    predictions file (:func:`bertbench.results.prediction_schema`, which a deleted column does not change), read and
    checked (:func:`bertbench.experiments.glue_finetune.read_predictions`: a broken file is an error naming
    file:line, not a silently shorter table); other prediction files (notebook 04's) are skipped."""
    frames = [read_glue_predictions(path) for path in sorted((Path(folder) / "predictions").glob("*.csv"))
              if prediction_schema(_header(path)) is GLUE_PREDICTIONS]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(PREDICTION_COLUMNS))


def read_document_predictions(results_path: str | Path) -> pd.DataFrame | None:
    """Notebook 04's per-document test predictions beside ``results_path``, read and checked (``label`` and
    ``doc_id`` as text, ``p_*`` as floats, NaN for another dataset's labels); None if there are none."""
    path = predictions_path(results_path)
    return load_predictions(path, DOCUMENT_PREDICTIONS) if path.is_file() else None
