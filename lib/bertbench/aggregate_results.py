"""Notebook 06: every result side by side, pooled and compared only within one protocol.

Three sources meet in one GLUE table: the notebooks' result CSVs (read through :func:`bertbench.results.load_results`),
the seed project's DitBERT run folders (:func:`import_ditbert`: ``GLUE-Outputs/<run>/results_<task>.csv``, one row per
epoch with ``validation_*`` columns), and a small table of published numbers shipped with the package
(``references/glue_published.csv``, each number with its paper or repository). Rows are pooled over seeds (median,
min–max, a bootstrap CI of the median where per-example predictions exist) only when their protocol agrees —
``init``, ``selection``, ``max_len``, ``preset`` and, per task, ``train_examples`` — and two systems are compared only
under the same protocol unless the caller asks for a cross-protocol comparison, which is then marked.

Selection rules: ``as_recorded`` keeps each run's own choice (notebooks 03/05: the epoch chosen on a held-out part of
the training data; DitBERT's per-epoch files: the last epoch, a fixed budget that never looked at dev).
``best_on_dev`` is DitBERT's published rule — the best epoch of the best run, picked and reported on the same dev
split — available only as a labelled, optimistic option.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from .config import BaseConfig, check_choice, check_range
from .data.glue import get_task
from .glue_finetune import PREDICTION_COLUMNS
from .glue_finetune import read_predictions as read_glue_predictions
from .longdoc_finetune import longdoc_summary
from .paths import data_dir, outputs_dir, repo_root
from .results import ResultsError, load_results, make_rows, replace_results

NOTEBOOK = "06_aggregate_results"
GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
# Columns that must agree before rows are pooled or compared (``train_examples`` is checked per task).
PROTOCOL = ("init", "selection", "max_len", "preset")
SYSTEM = ("source", "model", "variant", *PROTOCOL)
REFERENCES = Path(__file__).with_name("references") / "glue_published.csv"
OPTIMISTIC = "best_epoch_best_run_on_dev (optimistic: chosen and reported on dev)"

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


class ProtocolError(ValueError):
    """Rows or systems with different protocols were about to be pooled or compared."""


@dataclasses.dataclass(frozen=True)
class AggregateConfig(BaseConfig):
    """What notebook 06 reads and how it pools.

    Attributes:
        results_dir: folder of the notebooks' result CSVs ("" = ``outputs/``, or ``runs/tiny-outputs`` for tiny).
        ditbert_dir: DitBERT run folders ("" = ``<data>/ditbert_glue_outputs``; "none" skips the import).
        references: show the published reference rows.
        selection_rule: ``as_recorded`` or ``best_on_dev`` (DitBERT's optimistic rule, labelled as such).
        across_protocols: put systems with different protocols in one table (marked) instead of one per protocol.
        include_wnli: count WNLI in the GLUE means (the BERT paper and DitBERT leave it out; so does the default).
        bootstrap_samples: resamples of the dev examples for the CI of a median score (0 = no CIs).
    """

    results_dir: str = ""
    ditbert_dir: str = ""
    references: bool = True
    selection_rule: str = "as_recorded"
    across_protocols: bool = False
    include_wnli: bool = False
    bootstrap_samples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    PRESETS = {"tiny": {"bootstrap_samples": 200}, "cpu": {}, "full": {}}

    def validate(self) -> None:
        super().validate()
        check_choice("selection_rule", self.selection_rule, ("as_recorded", "best_on_dev"))
        check_range("bootstrap_samples", self.bootstrap_samples, 0, 100_000)
        check_range("ci_level", self.ci_level, 0, 1, low_open=True)
        if self.ci_level >= 1:
            raise ValueError(f"ci_level: {self.ci_level!r} must be < 1")

    def results_folder(self) -> Path:
        return Path(self.results_dir).expanduser() if self.results_dir else outputs_dir(self.preset)

    def ditbert_folder(self) -> Path | None:
        if self.ditbert_dir.lower() == "none":
            return None
        return Path(self.ditbert_dir).expanduser() if self.ditbert_dir else data_dir() / "ditbert_glue_outputs"


# ----------------------------------------------------------------------------------------------------------- reading
def _shown(path: Path) -> str:
    """``path`` as the summary shows it, the same on every machine: ``<data>/...`` inside the data folder, else
    relative to the repository root."""
    path = Path(path).resolve()
    if path.is_relative_to(data_dir()):
        return (Path("<data>") / path.relative_to(data_dir())).as_posix()
    return os.path.relpath(path, repo_root())


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

    ``init`` is ``intermediate:mnli`` for ``-mnli`` runs, else ``pretrained``; ``selection`` is ``per_epoch_dev``
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
                "init": "intermediate:mnli" if name.endswith("-mnli") else "pretrained", "head_init": "new",
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
        cells.append({"source": "published", "model": model, "variant": source, "init": "pretrained",
                      "selection": "as published", "max_len": 0, "preset": "published", "task": task_name,
                      "train_examples": 0, "split": split, "n": 1, "median": value, "min": value, "max": value,
                      "ci_low": np.nan, "ci_high": np.nan, "runs": "", "seeds": "", "score_is": score_is,
                      "protocol_text": rows["protocol"].iloc[0], "url": rows["url"].iloc[0]})
    return pd.DataFrame(cells)


# --------------------------------------------------------------------------------------------------------- bootstrap
def _resampled_metric(name: str, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """``name`` of each resample: ``pred`` and ``gold`` are (B, N), one resample of the dev set per row."""
    if name == "accuracy":
        return (pred == gold).mean(axis=1)
    if name == "f1":  # binary F1 of class 1, as GLUE reports it for MRPC/QQP
        tp = ((pred == 1) & (gold == 1)).sum(axis=1)
        denominator = (pred == 1).sum(axis=1) + (gold == 1).sum(axis=1)
        return np.divide(2 * tp, denominator, out=np.zeros(len(pred)), where=denominator > 0)
    if name == "mcc":
        return M.matthews(pred, gold)
    if name in ("pearson", "spearman"):
        if name == "spearman":  # Pearson of average ranks, per resample
            pred = pd.DataFrame(pred).rank(axis=1).to_numpy()
            gold = pd.DataFrame(gold).rank(axis=1).to_numpy()
        pred = pred - pred.mean(axis=1, keepdims=True)
        gold = gold - gold.mean(axis=1, keepdims=True)
        denominator = np.sqrt((pred**2).sum(axis=1) * (gold**2).sum(axis=1))
        return np.divide((pred * gold).sum(axis=1), denominator, out=np.zeros(len(pred)), where=denominator > 0)
    raise KeyError(f"no resampled version of metric {name!r}")


def resampled_scores(task_name: str, predictions: np.ndarray, labels: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """The GLUE task score of one run on each resample ``picks`` (B, N) of its dev examples."""
    task = get_task(task_name)
    pred, gold = np.asarray(predictions)[picks], np.asarray(labels)[picks]
    return np.mean([_resampled_metric(name, pred, gold) for name in task.score_metrics], axis=0)


def median_score_interval(task_name: str, runs: Sequence[tuple[np.ndarray, np.ndarray]], samples: int,
                          level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the median-over-runs score: dev examples are resampled jointly for all runs (the
    same resample for every seed, since they share the dev set), each run scored, the median taken.

    Args:
        runs: (predictions (N,), labels (N,)) per run, every run over the same N dev examples in the same order.
    """
    sizes = {len(labels) for _, labels in runs}
    if len(sizes) != 1:
        raise ValueError(f"runs were evaluated on different dev sets (sizes {sorted(sizes)})")
    size = sizes.pop()
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // size)  # resamples per step: memory stays bounded for QQP/MNLI-sized dev sets
    medians = []
    for start in range(0, samples, chunk):
        picks = rng.integers(0, size, size=(min(chunk, samples - start), size))
        per_run = np.stack([resampled_scores(task_name, pred, gold, picks) for pred, gold in runs])  # (R, B)
        medians.append(np.median(per_run, axis=0))
    medians = np.concatenate(medians)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))


def read_predictions(folder: str | Path) -> pd.DataFrame:
    """Per-example dev predictions of GLUE runs: every ``<folder>/predictions/*.csv`` in notebook 03's format
    (:func:`bertbench.glue_finetune.read_predictions`); other prediction files (notebook 04's) are skipped."""
    frames = [read_glue_predictions(path) for path in sorted((Path(folder) / "predictions").glob("*.csv"))
              if set(PREDICTION_COLUMNS) <= set(pd.read_csv(path, nrows=0).columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(PREDICTION_COLUMNS))


# -------------------------------------------------------------------------------------------------------- GLUE cells
def protocol_of(rows: pd.DataFrame) -> dict[str, object]:
    """The shared protocol of ``rows``; raises ProtocolError naming each column on which they differ."""
    differing = {column: sorted(map(str, set(rows[column]))) for column in PROTOCOL if rows[column].nunique() > 1}
    if differing:
        raise ProtocolError("rows with different protocols cannot be pooled: " +
                            "; ".join(f"{column} = {values}" for column, values in differing.items()) +
                            " (pass across_protocols=True to pool them anyway; the result is marked)")
    return {column: rows[column].iloc[0] for column in PROTOCOL}


def pool_runs(rows: pd.DataFrame, across_protocols: bool = False) -> dict[str, object]:
    """Median, min, max and count of the per-run ``value`` of ``rows`` (one row per run), refusing to pool runs of
    different protocols or data subsets unless ``across_protocols``."""
    if not across_protocols:
        protocol_of(rows)
        if rows["train_examples"].nunique() > 1:
            raise ProtocolError(f"runs trained on different data subsets cannot be pooled: train_examples = "
                                f"{sorted(set(rows['train_examples']))} (pass across_protocols=True to pool them)")
    values = rows["value"].astype(float).tolist()
    mixed = any(rows[column].nunique() > 1 for column in (*PROTOCOL, "train_examples"))
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "protocol_mixed": mixed}


def _per_run_scores(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """One dev score per (run, task): the recorded one, or for per-epoch sources the epoch the rule picks."""
    scores = frame[frame["task"].isin(GLUE_TASKS) & (frame["split"] == "dev") & (frame["metric"] == "score")]
    scores = scores.copy()
    per_epoch = scores["selection"] == "per_epoch_dev"
    kept = [scores[~per_epoch]]
    if per_epoch.any():
        epochs = scores[per_epoch].sort_values("step", kind="stable")
        if rule == "best_on_dev":
            chosen = epochs.loc[epochs.groupby("run_id")["value"].idxmax()]
        else:
            chosen = epochs.groupby("run_id").tail(1).assign(selection="last_epoch")
        kept.append(chosen)
    scores = pd.concat(kept, ignore_index=True)
    scores["source"] = scores["notebook"]
    return scores


def glue_cells(frame: pd.DataFrame, rule: str = "as_recorded", predictions: pd.DataFrame | None = None,
               samples: int = 1000, level: float = 0.95, seed: int = 0,
               scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (system, task): the median dev score over runs with min, max, n and its bootstrap CI.

    A system is (source notebook, model, variant) under one protocol; runs of one system and task on different
    ``train_examples`` are separate cells (their variant says the subset). With ``rule="best_on_dev"`` each cell
    keeps only its best run (and per-epoch sources their best epoch), labelled :data:`OPTIMISTIC`. ``scores``: the
    per-run scores of ``frame`` under ``rule`` if the caller already has them.
    """
    columns = [*SYSTEM, "task", "train_examples", "split", "n", "median", "min", "max", "ci_low", "ci_high", "runs",
               "seeds", "score_is", "protocol_text", "url"]
    check_choice("rule", rule, ("as_recorded", "best_on_dev"))
    scores = (_per_run_scores(frame, rule) if scores is None else scores).copy()
    if not len(scores):
        return pd.DataFrame(columns=columns)
    subsets = scores.groupby(["source", "model", "variant", *PROTOCOL, "task"])["train_examples"].transform("nunique")
    tagged = subsets > 1  # one system, one task, several data subsets: never pooled, told apart by the variant
    scores.loc[tagged, "variant"] = (scores.loc[tagged, "variant"] + " [" +
                                     scores.loc[tagged, "train_examples"].astype(str) + " train]").str.strip()
    predictions = predictions if predictions is not None else pd.DataFrame(columns=["run_id"])
    by_run = dict(tuple(predictions.groupby("run_id"))) if len(predictions) else {}
    cells = []
    for key, rows in scores.groupby([*SYSTEM, "task", "train_examples"], sort=False):
        if rule == "best_on_dev":
            rows = rows.loc[[rows["value"].astype(float).idxmax()]]
        pooled = pool_runs(rows)
        record = dict(zip([*SYSTEM, "task", "train_examples"], key, strict=True))
        if rule == "best_on_dev":
            record["selection"] = OPTIMISTIC
        ci = (np.nan, np.nan)
        run_ids = list(rows["run_id"])
        task = get_task(record["task"])
        if samples and task.eval_splits == ("dev",) and all(run in by_run for run in run_ids):
            runs = []
            for run in run_ids:
                dev = by_run[run][by_run[run]["split"] == "dev"].sort_values("example", kind="stable")
                runs.append((dev["prediction"].to_numpy(), dev["label"].to_numpy()))
            if task.is_regression:
                runs = [(pred.astype(float), gold.astype(float)) for pred, gold in runs]
            else:
                runs = [(pred.astype(int), gold.astype(int)) for pred, gold in runs]
            ci = median_score_interval(record["task"], runs, samples, level, seed)
        cells.append({**record, "split": "dev", "n": pooled["n"], "median": pooled["median"], "min": pooled["min"],
                      "max": pooled["max"], "ci_low": ci[0], "ci_high": ci[1], "runs": " ".join(run_ids),
                      "seeds": " ".join(str(seed_) for seed_ in sorted(rows["seed"])), "score_is": "GLUE score",
                      "protocol_text": "", "url": ""})
    return pd.DataFrame(cells, columns=columns)


def _mean_tasks(tasks: Iterable[str], include_wnli: bool) -> list[str]:
    return [task for task in tasks if include_wnli or task != "wnli"]


def glue_table(cells: pd.DataFrame, include_wnli: bool = False, across_protocols: bool = False) -> pd.DataFrame:
    """One row per system: each task's median score, the arithmetic and harmonic means over the tasks present (WNLI
    left out unless ``include_wnli``), the tasks missing, and ``shared_amean``: the mean over the tasks that every
    row of the same protocol group and source has on the same number of training examples (the only mean that
    compares rows). Systems are grouped by protocol (``group``); with ``across_protocols`` all share group 0 and
    ``protocol_mixed`` is true when their protocols differ."""
    if not len(cells):
        return pd.DataFrame(columns=[*SYSTEM, "group", "amean", "hmean", "n_tasks", "missing", "hmean_note",
                                     "shared_tasks", "shared_amean", "protocol_mixed", "unshared_budget"])
    wide = cells.pivot_table(index=list(SYSTEM), columns="task", values="median", aggfunc="first", sort=False)
    budgets = cells.pivot_table(index=list(SYSTEM), columns="task", values="train_examples", aggfunc="first",
                                sort=False)
    wide = wide.reindex(columns=[task for task in GLUE_TASKS if task in wide.columns]).reset_index()
    budgets = budgets.reindex(columns=[task for task in GLUE_TASKS if task in budgets.columns]).reset_index()
    groups = wide[list(PROTOCOL)].astype(str).agg(" | ".join, axis=1)
    wide["group"] = 0 if across_protocols else pd.factorize(groups)[0]
    expected = _mean_tasks(GLUE_TASKS, include_wnli)
    out = []
    for _, row in wide.iterrows():
        scores = {task: row[task] for task in expected if task in wide.columns and pd.notna(row[task])}
        means = M.glue_means(scores, expected=expected)
        low = [task for task, value in scores.items() if value <= 0]
        note = f"undefined: {', '.join(low)} ≤ 0" if low else ""
        out.append({"amean": means["amean"], "hmean": means["hmean"], "n_tasks": means["n_tasks"],
                    "missing": ", ".join(means["missing"]), "hmean_note": note})
    wide = pd.concat([wide, pd.DataFrame(out)], axis=1)
    wide["shared_tasks"], wide["shared_amean"], wide["protocol_mixed"], wide["unshared_budget"] = "", np.nan, False, ""
    for _, members in wide.groupby(["group", "source"], sort=False):
        present = [task for task in expected if task in wide.columns and members[task].notna().all()]
        unequal = [task for task in present if budgets.loc[members.index, task].nunique() > 1]
        tasks = [task for task in present if task not in unequal]
        wide.loc[members.index, "shared_tasks"] = ", ".join(tasks)
        wide.loc[members.index, "unshared_budget"] = ", ".join(unequal)
        if tasks:
            wide.loc[members.index, "shared_amean"] = members[tasks].mean(axis=1)
        wide.loc[members.index, "protocol_mixed"] = len(members[list(PROTOCOL)].drop_duplicates()) > 1
    return wide


def compare_systems(cells: pd.DataFrame, a: dict, b: dict, across_protocols: bool = False) -> pd.DataFrame:
    """Per shared task: ``median(a) - median(b)``, where ``a``/``b`` select a system by column values (e.g.
    ``{"model": "minilm", "source": "03_glue_finetune"}``).

    Refuses (ProtocolError) when the two systems differ in a protocol column; a task trained on different
    ``train_examples`` gets no difference (NaN, ``differs_in`` says why). ``across_protocols=True`` compares anyway
    and marks every row that mixes protocols (``protocol_mixed``)."""
    picked = []
    for which, spec in (("a", a), ("b", b)):
        mask = np.logical_and.reduce([cells[column] == value for column, value in spec.items()])
        systems = cells[mask][list(SYSTEM)].drop_duplicates()
        if len(systems) != 1:
            raise ValueError(f"{which} = {spec} selects {len(systems)} systems; name it by more columns (source, "
                             "model, variant, protocol)")
        picked.append(cells[mask].set_index("task"))
    left, right = picked
    differing = [column for column in PROTOCOL if left[column].iloc[0] != right[column].iloc[0]]
    if differing and not across_protocols:
        raise ProtocolError(f"{a} and {b} differ in {', '.join(differing)}; comparing them needs "
                            "across_protocols=True (the comparison is then marked)")
    records = []
    for task in [task for task in left.index if task in right.index]:
        budgets = (left.loc[task, "train_examples"], right.loc[task, "train_examples"])
        reasons = differing + ([f"train_examples {budgets[0]} vs {budgets[1]}"] if budgets[0] != budgets[1] else [])
        difference = left.loc[task, "median"] - right.loc[task, "median"]
        records.append({"task": task, "a": left.loc[task, "median"], "b": right.loc[task, "median"],
                        "difference": difference if across_protocols or not reasons else np.nan,
                        "protocol_mixed": bool(reasons) and across_protocols, "differs_in": "; ".join(reasons)})
    return pd.DataFrame(records, columns=["task", "a", "b", "difference", "protocol_mixed", "differs_in"])


# ------------------------------------------------------------------------------------------- the other notebooks
def longdoc_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Notebook 04's runs: test accuracy and F1 with their bootstrap CIs against encoder tokens per document."""
    table = longdoc_summary(frame)
    if not len(table):
        return table
    parts = table["variant"].str.split("+", n=1)
    table["strategy"] = parts.str[0]
    table["aggregation"] = parts.str[1].fillna("–")
    protocol = (frame[frame["notebook"] == "04_long_documents"].rename(columns={"task": "dataset"})
                .drop_duplicates(["dataset", "model", "preset"])[["dataset", "model", "preset", "init", "selection",
                                                                   "max_len"]])
    return table.merge(protocol, on=["dataset", "model", "preset"], how="left")


def probe_best_layers(frame: pd.DataFrame) -> pd.DataFrame:
    """Notebook 05's probe curves: per (task, init, probe), the best layer on dev, layer 0 and the last layer,
    next to the majority-class floor. (The best layer is chosen on dev: a description of the curve, not a score.)"""
    dev = frame[(frame["notebook"] == "05_layer_probes") & (frame["split"] == "dev") & (frame["metric"] == "accuracy")
                & (frame["task"] != "squad2")]
    records = []
    for (task, init), part in dev.groupby(["task", "init"], sort=False):
        floor = part[part["variant"] == "majority"]["value"]
        for variant, curve in part[part["layer"] >= 0].groupby("variant", sort=False):
            curve = curve.sort_values("layer", kind="stable")
            best = curve.loc[curve["value"].idxmax()]
            records.append({"task": task, "init": init, "variant": variant, "layers": len(curve),
                            "model": curve["model"].iloc[0], "preset": curve["preset"].iloc[0],
                            "layer0": curve["value"].iloc[0], "last": curve["value"].iloc[-1],
                            "best": best["value"], "best_layer": int(best["layer"]),
                            "majority": float(floor.iloc[0]) if len(floor) else np.nan})
    return pd.DataFrame(records)


def pretraining_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Notebook 02's learning curves: loss (train and held out), MLM accuracy and pseudo-perplexity per step."""
    rows = frame[(frame["notebook"] == "02_pretrain_mlm") & frame["metric"].isin(["loss", "accuracy", "pppl"])]
    return rows[["run_id", "model", "split", "step", "metric", "value"]].sort_values(["run_id", "metric", "step"])


# --------------------------------------------------------------------------------------------------------- figures
def _save(grid_or_fig, path: Path) -> Path:
    figure = getattr(grid_or_fig, "figure", grid_or_fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def _seaborn():
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only; a kernel with a GUI backend keeps it
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return sns


def plot_glue(runs: pd.DataFrame, path: str | Path) -> Path | None:
    """Dev score per task: median over runs with the min–max range, one colour per model, one panel per source and
    protocol (panels are not pooled with each other)."""
    if not len(runs):
        return None
    sns = _seaborn()
    runs = runs.assign(system=runs["model"] + np.where(runs["variant"] != "", " · " + runs["variant"], ""),
                       panel=runs["source"] + "\n" + runs["init"] + ", " + runs["selection"] + ", " +
                       runs["preset"])
    order = [task for task in GLUE_TASKS if task in set(runs["task"])]
    grid = sns.catplot(runs, x="task", y="value", hue="system", col="panel", col_wrap=2, order=order, kind="point",
                       estimator=np.median, errorbar=("pi", 100), dodge=0.4, linestyle="none", markers="D",
                       height=3.6, aspect=1.6, sharex=False)
    grid.set_titles("{col_name}", size=9)
    grid.set_axis_labels("GLUE task", "dev score (median, min–max)")
    return _save(grid, Path(path))


def plot_longdoc(table: pd.DataFrame, path: str | Path, metric: str = "f1") -> Path | None:
    """Test ``metric`` with its bootstrap CI against encoder tokens per document; one panel per dataset."""
    if not len(table):
        return None
    sns = _seaborn()
    grid = sns.relplot(table, x="test_tokens_per_doc", y=metric, hue="strategy", style="aggregation",
                       col="dataset", kind="scatter", s=90, height=3.8, facet_kws={"sharey": False, "sharex": False})
    for dataset, ax in grid.axes_dict.items():
        part = table[table["dataset"] == dataset]
        ax.errorbar(part["test_tokens_per_doc"], part[metric], fmt="none", ecolor="grey", elinewidth=1,
                    yerr=[part[metric] - part[f"{metric}_ci_low"], part[f"{metric}_ci_high"] - part[metric]])
    grid.set_axis_labels("encoder tokens per document (test)", f"test {metric} (95% bootstrap CI)")
    return _save(grid, Path(path))


def plot_probes(frame: pd.DataFrame, path: str | Path) -> Path | None:
    """Probe dev accuracy per layer: pretrained vs fine-tuned (colour), probe vs control task (style), one panel
    per (task, pooling), the majority-class floor dashed."""
    dev = frame[(frame["notebook"] == "05_layer_probes") & (frame["split"] == "dev") & (frame["metric"] == "accuracy")
                & (frame["task"] != "squad2")]
    curves = dev[(dev["layer"] >= 0) & dev["variant"].str.startswith(("probe:", "control:"))].copy()
    if not len(curves):
        return None
    sns = _seaborn()
    curves["kind"] = curves["variant"].str.split(":").str[0]
    curves["pooling"] = curves["variant"].str.split(":").str[1]
    grid = sns.relplot(curves, x="layer", y="value", hue="init", style="kind", row="task", col="pooling",
                       kind="line", markers=True, height=3.2, aspect=1.3, facet_kws={"sharey": "row"})
    for (task, _pooling), ax in grid.axes_dict.items():
        floor = dev[(dev["task"] == task) & (dev["variant"] == "majority")]["value"]
        if len(floor):
            ax.axhline(float(floor.iloc[0]), color="grey", linestyle="--", linewidth=1)
    grid.set_axis_labels("layer (0 = embeddings)", "dev accuracy")
    grid.figure.suptitle("probe vs control task per layer; dashed grey: majority class", y=1.02, size=10)
    return _save(grid, Path(path))


def plot_pretraining(curves: pd.DataFrame, path: str | Path) -> Path | None:
    """Loss, MLM accuracy and pseudo-perplexity against the training step, per evaluation split."""
    if not len(curves):
        return None
    sns = _seaborn()
    grid = sns.relplot(curves, x="step", y="value", hue="split", style="model", col="metric", kind="line",
                       markers=True, height=3.4, facet_kws={"sharey": False})
    grid.set_axis_labels("training step", "")
    if "pppl" in grid.axes_dict:
        grid.axes_dict["pppl"].set_yscale("log")
    return _save(grid, Path(path))


# ------------------------------------------------------------------------------------------------------ the whole
@dataclasses.dataclass
class Aggregation:
    """Everything notebook 06 computed; :func:`summary_markdown` renders it."""

    config: AggregateConfig
    files: pd.DataFrame  # one line per result file read
    messages: list[str]  # what is missing, in words
    runs: pd.DataFrame  # one GLUE dev score per (run, task) after the selection rule
    cells: pd.DataFrame  # GLUE cells of bertbench's and imported runs
    table: pd.DataFrame  # glue_table(cells)
    optimistic: pd.DataFrame  # glue_table of the imported runs under DitBERT's own rule (labelled)
    references: pd.DataFrame  # reference_cells of the published table
    published_means: pd.DataFrame  # the sources' own GLUE averages
    longdoc: pd.DataFrame
    probes: pd.DataFrame
    pretraining: pd.DataFrame
    figures: dict[str, Path]


def aggregate_outputs(cfg: AggregateConfig, figures_dir: str | Path | None = None) -> Aggregation:
    """Read every source ``cfg`` names, pool within protocols, and draw the figures (``figures_dir``, if given)."""
    rows, files, messages = read_outputs(cfg.results_folder())
    imported = load_results([])
    ditbert = cfg.ditbert_folder()
    if ditbert is not None:
        if ditbert.is_dir():
            imported = import_ditbert(ditbert)
            folders = imported["run_id"].str.rsplit("-", n=1).str[0].nunique()
            messages.append(f"imported {folders} DitBERT run folders from `{_shown(ditbert)}`")
        else:
            messages.append(f"no DitBERT run folders at `{_shown(ditbert)}` (set BB_DITBERT_DIR, or "
                            "BB_DITBERT_DIR=none)")
    everything = pd.concat([rows, imported], ignore_index=True) if len(imported) else rows
    predictions = read_predictions(cfg.results_folder())
    runs = _per_run_scores(everything, cfg.selection_rule)
    cells = glue_cells(everything, cfg.selection_rule, predictions, cfg.bootstrap_samples, cfg.ci_level, cfg.seed,
                       scores=runs)
    optimistic_cells = glue_cells(imported, "best_on_dev", samples=0)
    references = load_references() if cfg.references else pd.DataFrame()
    refs = reference_cells(references) if len(references) else pd.DataFrame()
    means = references[references["task"] == "glue"] if len(references) else pd.DataFrame()
    figures: dict[str, Path] = {}
    longdoc, probes, curves = longdoc_table(rows), probe_best_layers(rows), pretraining_curves(rows)
    if figures_dir is not None:
        folder = Path(figures_dir)
        drawn = {"glue": plot_glue(runs, folder / f"{NOTEBOOK[:2]}_glue.png"),
                 "long_documents": plot_longdoc(longdoc, folder / f"{NOTEBOOK[:2]}_long_documents.png"),
                 "layer_probes": plot_probes(rows, folder / f"{NOTEBOOK[:2]}_layer_probes.png"),
                 "pretraining": plot_pretraining(curves, folder / f"{NOTEBOOK[:2]}_pretraining.png")}
        figures = {name: path for name, path in drawn.items() if path is not None}
    return Aggregation(cfg, files, messages, runs, cells,
                       glue_table(cells, cfg.include_wnli, cfg.across_protocols),
                       glue_table(optimistic_cells, cfg.include_wnli), refs, means, longdoc, probes, curves, figures)


def _system_id(values: Sequence[object]) -> str:
    return hashlib.sha1(json.dumps([str(value) for value in values]).encode()).hexdigest()[:10]


def aggregate_rows(result: Aggregation) -> list[dict]:
    """The aggregation as result rows (schema of :mod:`bertbench.results`): per GLUE cell its median, range, count
    and CI; per system its GLUE means; per long-document variant its test scores; per probe curve its best layer."""
    cfg = result.config
    settings = {"selection_rule": cfg.selection_rule, "across_protocols": cfg.across_protocols,
                "include_wnli": cfg.include_wnli, "bootstrap_samples": cfg.bootstrap_samples, "ci_level": cfg.ci_level}
    out: list[dict] = []

    def emit(system: dict, task: str, split: str, entries: dict, extra: dict, train_examples: int = 0) -> None:
        key = [system.get(column, "") for column in SYSTEM]
        common = {"run_id": f"agg-{_system_id(key)}", "notebook": NOTEBOOK, "preset": str(system["preset"]),
                  "model": str(system["model"]), "task": task,
                  "variant": f"{system['source']}:{system['variant']}".rstrip(":"), "seed": -1,
                  "init": str(system["init"]), "head_init": "", "selection": str(system["selection"]),
                  "max_len": int(system["max_len"]), "train_examples": int(train_examples), "device": "",
                  "wall_s": 0.0, "config": json.dumps({**settings, **extra}, default=str)}
        out.extend(make_rows(common, [(split, -1, metric, value) for metric, value in entries.items()
                                      if pd.notna(value)]))

    for cell in pd.concat([result.cells, result.references], ignore_index=True).to_dict("records"):
        emit(cell, cell["task"], cell["split"], {"score_median": cell["median"], "score_min": cell["min"],
             "score_max": cell["max"], "runs": cell["n"], "score_ci_low": cell["ci_low"],
             "score_ci_high": cell["ci_high"]},
             {"runs": cell["runs"], "seeds": cell["seeds"], "score_is": cell["score_is"], "url": cell["url"],
              "protocol_text": cell["protocol_text"]}, cell["train_examples"])
    for system in result.table.to_dict("records"):
        emit(system, "glue", "dev", {"amean": system["amean"], "hmean": system["hmean"], "tasks": system["n_tasks"],
             "shared_amean": system["shared_amean"]},
             {"missing": system["missing"], "hmean_note": system["hmean_note"], "group": system["group"],
              "shared_tasks": system["shared_tasks"], "protocol_mixed": system["protocol_mixed"]})
    for row in result.longdoc.to_dict("records"):
        system = {"source": "04_long_documents", **{key: row[key] for key in (
            "model", "variant", "init", "selection", "max_len", "preset")}}
        emit(system, row["dataset"], "test", {name: row[name] for name in (
            "accuracy", "accuracy_ci_low", "accuracy_ci_high", "f1", "f1_ci_low", "f1_ci_high",
            "test_tokens_per_doc", "train_s")}, {"runs": row["runs"]}, row["train_docs"])
    for row in result.probes.to_dict("records"):
        system = {"source": "05_layer_probes", "model": row["model"], "variant": row["variant"], "init": row["init"],
                  "selection": "best_layer_on_dev (descriptive)", "max_len": 0, "preset": row["preset"]}
        emit(system, row["task"], "dev", {"best_accuracy": row["best"], "best_layer": row["best_layer"],
             "layer0_accuracy": row["layer0"], "last_layer_accuracy": row["last"], "majority": row["majority"]}, {})
    return out


# ------------------------------------------------------------------------------------------------------- markdown
def _number(value, digits: int = 3) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _cell_text(cell: dict) -> str:
    text = f"**{_number(cell['median'])}**"
    if cell["n"] > 1:
        text += f" {_number(cell['min'], 2)}–{_number(cell['max'], 2)} ×{cell['n']}"
    if pd.notna(cell["ci_low"]):
        text += f" [{_number(cell['ci_low'], 2)}, {_number(cell['ci_high'], 2)}]"
    return text


def _glue_markdown(table: pd.DataFrame, cells: pd.DataFrame, tasks: Sequence[str], mean_label: str) -> list[str]:
    """Markdown tables of ``glue_table`` rows, one per (protocol group, source)."""
    lines: list[str] = []
    sources_per_group = table.groupby("group")["source"].nunique()
    for (group, source), members in table.groupby(["group", "source"], sort=True):
        first = members.iloc[0]
        if bool(first["protocol_mixed"]):
            lines += [f"**⚠ `{source}`: protocols differ between these rows (compared across protocols on "
                      "request)**", ""]
        else:
            also = " (other tables of this protocol number compare directly)" if sources_per_group[group] > 1 else ""
            lines += [f"**Protocol {group + 1}** · `{source}`{also}: init `{first['init']}` · selection "
                      f"`{first['selection']}` · max_len {first['max_len'] or 'not recorded'} · preset "
                      f"`{first['preset']}`", ""]
        shown = [task for task in tasks if task in members.columns and members[task].notna().any()]
        lines += ["| model | " + " | ".join(shown) + f" | {mean_label} | hmean | mean over shared tasks |",
                  "|---|" + "---:|" * (len(shown) + 3)]
        system_cells = cells.merge(members[list(SYSTEM)], on=list(SYSTEM))
        # the usual training budget of each task in this table; None when no budget is the most common one
        budgets = system_cells.groupby("task")["train_examples"].agg(
            lambda values: values.mode().iloc[0] if len(values.mode()) == 1 else None)
        all_budgets = system_cells.groupby("task")["train_examples"].agg(lambda values: sorted(set(values)))
        odd = []
        for row in members.to_dict("records"):
            mine = system_cells[(system_cells[list(SYSTEM)] == pd.Series({c: row[c] for c in SYSTEM})).all(axis=1)]
            by_task = {cell["task"]: cell for cell in mine.to_dict("records")}
            name = row["model"] + (f" · {row['variant']}" if row["variant"] else "")
            if bool(first["protocol_mixed"]):
                name += f" ({row['init']}, {row['selection']}, max_len {row['max_len']}, {row['preset']})"
            texts = []
            for task in shown:
                if task not in by_task:
                    texts.append("–")
                    continue
                text = _cell_text(by_task[task])
                usual = budgets[task]
                if pd.isna(usual) or by_task[task]["train_examples"] != usual:
                    text += " †"
                    others = int(usual) if pd.notna(usual) else "/".join(map(str, all_budgets[task]))
                    odd.append(f"{name} on {task}: {by_task[task]['train_examples']} training examples "
                               f"(the rows of this table: {others})")
                texts.append(text)
            hmean = _number(row["hmean"]) if pd.notna(row["hmean"]) else f"n/a ({row['hmean_note']})"
            lines.append(f"| {name} | " + " | ".join(texts) +
                         f" | {_number(row['amean'])} ({row['n_tasks']}) | {hmean} | {_number(row['shared_amean'])} |")
        shared = first["shared_tasks"] or "none"
        lines += ["", f"Mean over shared tasks = over {shared}: the tasks every row above has, on equal training "
                      "data" + (f" ({first['unshared_budget']} left out: unequal training data)"
                                if first["unshared_budget"] else "") + "."]
        lines += [f"† {text}: not the same data subset, compare with care." for text in odd]
        if any(budget != [0] for budget in all_budgets):
            lines.append("Training examples per task: " + ", ".join(
                f"{task} {'/'.join(str(value) if value else 'all' for value in budget)}"
                for task, budget in all_budgets.items()) + ".")
        lines.append("")
    return lines


def summary_markdown(result: Aggregation, link_prefix: str = "") -> str:
    """The aggregation as markdown (README includes it); figures linked as ``<link_prefix>figures/<name>.png``."""
    cfg = result.config
    lines = ["### What was aggregated", ""]
    if len(result.files):
        lines += ["| results file | rows | runs | notebooks |", "|---|---:|---:|---|"]
        lines += [f"| `{row.file}` | {row.rows} | {row.runs} | {row.notebooks} |" for row in result.files.itertuples()]
        lines.append("")
    lines += [f"- {message}" for message in result.messages]
    lines += [f"- selection rule `{cfg.selection_rule}`; cross-protocol comparison "
              f"{'ON (marked)' if cfg.across_protocols else 'off'}; GLUE means over the tasks present, WNLI "
              f"{'included' if cfg.include_wnli else 'left out'}; bootstrap {cfg.bootstrap_samples} resamples, "
              f"{cfg.ci_level:.0%} CI", ""]
    lines += ["### GLUE dev: bertbench runs and imported runs", "",
              "Cell: **median** over runs, min–max ×runs, [bootstrap CI of the median over dev resamples] where "
              "per-example predictions exist. Task score as GLUE defines it (CoLA MCC, STS-B mean of Pearson and "
              "Spearman, MRPC/QQP mean of accuracy and F1, MNLI mean of matched and mismatched, else accuracy). "
              "Rows are pooled and compared only within one protocol; a missing task is `–` and counts in no mean.",
              ""]
    if len(result.table):
        lines += _glue_markdown(result.table, result.cells, GLUE_TASKS, "amean (tasks)")
    else:
        lines += ["No GLUE runs found.", ""]
    if len(result.optimistic):
        honest = result.table[result.table["source"] == "ditbert_import"]
        lines += ["**DitBERT's own rule, for reference only (optimistic: best epoch of the best run, chosen and "
                  "reported on the same dev split)**", "",
                  "| model | init | tasks | amean, best epoch of best run on dev | amean, last epoch (median of "
                  "runs) |", "|---|---|---:|---:|---:|"]
        for row in result.optimistic.to_dict("records"):
            match = honest[(honest["model"] == row["model"]) & (honest["init"] == row["init"])]
            lines.append(f"| {row['model']} | {row['init']} | {row['n_tasks']} | {_number(row['amean'])} | "
                         f"{_number(match['amean'].iloc[0]) if len(match) else '–'} |")
        lines += ["", f"Caveat on the imported runs: {DITBERT_CAVEAT}.", ""]
    if len(result.references):
        lines += ["### Published reference numbers (never pooled with the rows above)", "",
                  "From `lib/bertbench/references/glue_published.csv`: each number with its paper or repository and "
                  "what it measures. Published single numbers for two-metric tasks are often one metric (e.g. MRPC "
                  "F1), not GLUE's mean, so these rows compare only roughly with the tables above. DitBERT published "
                  "no summary table that could be found; its runs are the imported rows above, and its own "
                  "aggregation rule is the optimistic table.", ""]
        for split, refs in result.references.groupby("split", sort=True):
            ref_table = glue_table(refs, cfg.include_wnli, across_protocols=True)
            shown = [task for task in GLUE_TASKS if task in ref_table.columns]
            lines += [f"**GLUE {split}**", "", "| model | source | " + " | ".join(shown) +
                      " | amean here (tasks) | the source's average |", "|---|---|" + "---:|" * (len(shown) + 2)]
            for row in ref_table.to_dict("records"):
                own = result.published_means[(result.published_means["model"] == row["model"])]
                own_mean = ", ".join(f"{value:.1f}" for value in own["value"]) or "–"
                source = refs[(refs["model"] == row["model"]) & (refs["variant"] == row["variant"])]
                url = source["url"].iloc[0]
                lines.append(f"| {row['model']} | [{row['variant']}]({url}) | " +
                             " | ".join(_number(row[task] * 100, 1) if pd.notna(row[task]) else "–"
                                        for task in shown) +
                             f" | {_number(row['amean'] * 100, 1)} ({row['n_tasks']}) | {own_mean} |")
            lines.append("")
    if len(result.longdoc):
        lines += ["### Long documents (notebook 04): test scores against encoder tokens", "",
                  "| dataset | strategy | aggregation | F1 [95% CI] | accuracy [95% CI] | encoder tokens/doc | "
                  "train s | runs |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for row in result.longdoc.to_dict("records"):
            lines.append(f"| {row['dataset']} | {row['strategy']} | {row['aggregation']} | {_number(row['f1'])} "
                         f"[{_number(row['f1_ci_low'])}, {_number(row['f1_ci_high'])}] | {_number(row['accuracy'])} "
                         f"[{_number(row['accuracy_ci_low'])}, {_number(row['accuracy_ci_high'])}] | "
                         f"{row['test_tokens_per_doc']:.0f} | {row['train_s']:.0f} | {row['runs']} |")
        lines.append("")
    if len(result.probes):
        lines += ["### Layer probes (notebook 05): dev accuracy along the layers", "",
                  "| task | model | probe | layer 0 | best (layer) | last layer | majority class |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for row in result.probes[result.probes["variant"].str.startswith("probe:")].to_dict("records"):
            lines.append(f"| {row['task']} | {row['init']} | {row['variant']} | {_number(row['layer0'])} | "
                         f"{_number(row['best'])} ({row['best_layer']}) | {_number(row['last'])} | "
                         f"{_number(row['majority'])} |")
        lines += ["", "The best layer is read off the dev curve: it describes the curve, it is not a held-out "
                      "score.", ""]
    if len(result.pretraining):
        lines += ["### Pretraining (notebook 02): where the curves end", "", "| run | split | step | loss | "
                  "MLM accuracy | pseudo-perplexity |", "|---|---|---:|---:|---:|---:|"]
        curves = result.pretraining
        for (run_id, split), part in curves.groupby(["run_id", "split"], sort=False):
            last = part[part["step"] == part["step"].max()].set_index("metric")["value"]
            lines.append(f"| `{run_id}` | {split} | {int(part['step'].max())} | {_number(last.get('loss'))} | "
                         f"{_number(last.get('accuracy'))} | {_number(last.get('pppl'), 1)} |")
        lines.append("")
    if result.figures:
        lines += ["### Figures", ""]
        lines += [f"![{name}]({link_prefix}figures/{path.name})" for name, path in result.figures.items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_aggregation(result: Aggregation, results_path: str | Path) -> tuple[pd.DataFrame, Path]:
    """Write the aggregation's rows to ``results_path`` (replacing the file's earlier aggregation) and its
    markdown summary beside it (``.md``). Returns (rows, markdown path)."""
    results_path = Path(results_path)
    frame = replace_results(aggregate_rows(result), results_path)
    markdown_path = results_path.with_suffix(".md")
    temporary = markdown_path.with_name(f".{markdown_path.name}.tmp")
    temporary.write_text(summary_markdown(result))
    temporary.replace(markdown_path)  # a crash never leaves half a summary
    return frame, markdown_path
