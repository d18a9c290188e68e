"""GLUE cells (the median over runs of one system and task, with its bootstrap CI), the GLUE table and its means,
comparisons within a protocol, and the tables of the other notebooks' results."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ... import metrics as M
from ...config import check_choice, config_differences, pooling_key, study_of
from ...data.glue import get_task
from ..long_documents import longdoc_summary
from .protocol import GLUE_TASKS, OPTIMISTIC, PROTOCOL, SYSTEM, ProtocolError, protocol_frame


# --------------------------------------------------------------------------------------------------------- bootstrap
def _resampled_metric(name: str, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """``name`` of each resample: ``pred`` and ``gold`` are (B, N), one resample of the dev set per row (the same
    row-wise functions that score a single run)."""
    functions = {"accuracy": lambda p, g: (p == g).mean(axis=1), "f1": M.binary_f1, "mcc": M.matthews,
                 "pearson": M.pearson, "spearman": M.spearman}
    if name not in functions:
        raise KeyError(f"no resampled version of metric {name!r}")
    return functions[name](pred, gold)


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


def _separate_configurations(scores: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """bertbench's runs pool only over seeds (:func:`bertbench.config.pooling_key`). A system run in several studies
    (:func:`bertbench.config.study_of`) gets one variant per study, tagged with what differs; within a study a
    task's learning-rate sweep keeps the configuration it chose (its other points are selection, not results: notebook
    03's table shows them); other configurations of one task are tagged apart. Imported runs (no bertbench config)
    pass unchanged."""
    from ..glue_finetune import lr_choices

    own = scores["notebook"].str.match(r"^\d\d_")
    if not own.any():
        return scores
    scores = scores.copy()
    scores["_study"] = scores["config"].where(own, "").map(lambda text: study_of(text) if text else "")
    scores["_key"] = scores["config"].where(own, "").map(lambda text: pooling_key(text) if text else "")
    for _, rows in scores[own].groupby(["source", "model", "variant"], sort=False):
        studies = rows.drop_duplicates("_study")
        if len(studies) > 1:
            tags = dict(zip(studies["_study"], config_differences(list(studies["_study"])), strict=True))
            scores.loc[rows.index, "variant"] = (rows["variant"] + " [" + rows["_study"].map(tags) + "]").str.strip()
    keep = pd.Series(True, index=scores.index)
    for (*_, task), rows in scores[own].groupby(["source", "model", "variant", "task"], sort=False):
        configs = rows.drop_duplicates("_key")
        choices = lr_choices(frame, list(configs["config"]), task)
        if len(configs) < 2 and not any(choice.startswith("sweep") for choice in choices):
            continue
        if any(choices):
            chosen = {key for key, choice in zip(configs["_key"], choices, strict=True) if choice.startswith("chosen")}
            keep[rows.index] = rows["_key"].isin(chosen)
        else:
            tags = dict(zip(configs["_key"], config_differences(list(configs["config"])), strict=True))
            scores.loc[rows.index, "variant"] = (rows["variant"] + " [" + rows["_key"].map(tags) + "]").str.strip()
    return scores[keep].drop(columns=["_study", "_key"])


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
    scores = _separate_configurations(scores, frame)
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


def glue_table(cells: pd.DataFrame, convention: str = M.DEFAULT_CONVENTION,
               across_protocols: bool = False) -> pd.DataFrame:
    """One row per system: each task's median score, the arithmetic and harmonic means over the tasks present under
    ``convention`` (:data:`bertbench.metrics.GLUE_CONVENTIONS`; by default WNLI left out, MNLI once), the tasks
    missing, and ``shared_amean``: the mean over the tasks that every row of the same protocol group and source has
    on the same number of training examples (the only mean that compares rows). Systems are grouped by protocol
    (``group``); with ``across_protocols`` all share group 0 and ``protocol_mixed`` is true when their protocols
    differ."""
    if not len(cells):
        return pd.DataFrame(columns=[*SYSTEM, "group", "amean", "hmean", "n_tasks", "missing", "hmean_note",
                                     "shared_tasks", "shared_amean", "protocol_mixed", "unshared_budget"])
    wide = cells.pivot_table(index=list(SYSTEM), columns="task", values="median", aggfunc="first", sort=False)
    budgets = cells.pivot_table(index=list(SYSTEM), columns="task", values="train_examples", aggfunc="first",
                                sort=False)
    wide = wide.reindex(columns=[task for task in GLUE_TASKS if task in wide.columns]).reset_index()
    budgets = budgets.reindex(columns=[task for task in GLUE_TASKS if task in budgets.columns]).reset_index()
    groups = protocol_frame(wide).astype(str).agg(" | ".join, axis=1)
    wide["group"] = 0 if across_protocols else pd.factorize(groups)[0]
    expected = list(M.GLUE_CONVENTIONS[convention])
    out = []
    for _, row in wide.iterrows():
        # a cell that exists but is not a number is passed on, so the mean names it instead of dropping it
        scores = {task: row[task] for task in expected if task in wide.columns
                  and (pd.notna(row[task]) or task in set(present_tasks(cells, row)))}
        means = M.glue_means(scores, convention)
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
        wide.loc[members.index, "protocol_mixed"] = len(protocol_frame(members).drop_duplicates()) > 1
    return wide


def present_tasks(cells: pd.DataFrame, system: pd.Series) -> list[str]:
    """The tasks ``cells`` has a cell for, for the system (``SYSTEM`` columns) of ``system``."""
    mask = np.logical_and.reduce([cells[column].astype(str) == str(system[column]) for column in SYSTEM])
    return list(cells[mask]["task"])


def comparable_pair(cells: pd.DataFrame, source: str) -> tuple[dict, dict] | None:
    """Two systems of ``source`` to compare by default: different models under one protocol, the pair sharing the
    most tasks (ties: the first in the cells' order); as :func:`compare_systems` specs, or None when there is none."""
    systems = cells[cells["source"] == source].groupby(list(SYSTEM), sort=False, dropna=False)["task"].apply(set)
    keys = list(systems.index)
    protocol = {key: tuple(protocol_frame(pd.DataFrame([dict(zip(SYSTEM, key, strict=True))])).iloc[0])
                for key in keys}
    pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:] if a[1] != b[1] and protocol[a] == protocol[b]]
    if not pairs:
        return None
    best = max(pairs, key=lambda pair: len(systems[pair[0]] & systems[pair[1]]))
    return tuple({column: value for column, value in zip(SYSTEM, key, strict=True)} for key in best)


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
    protocols = protocol_frame(left.iloc[:1]).iloc[0], protocol_frame(right.iloc[:1]).iloc[0]
    differing = [column for column in PROTOCOL if protocols[0][column] != protocols[1][column]]
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
                        "protocol_mixed": bool(reasons) and across_protocols, "differs_in": "; ".join(reasons),
                        "checkpoints": f"{left['init'].iloc[0]} vs {right['init'].iloc[0]}"})
    return pd.DataFrame(records, columns=["task", "a", "b", "difference", "protocol_mixed", "differs_in",
                                          "checkpoints"])


# ------------------------------------------------------------------------------------------- the other notebooks
def longdoc_table(frame: pd.DataFrame, predictions: pd.DataFrame | None = None, samples: int = 1000) -> pd.DataFrame:
    """Notebook 04's runs (pooled over seeds and folds only, :func:`longdoc_summary`): test accuracy and F1 with
    their intervals against encoder tokens per document. ``predictions``: notebook 04's per-document predictions."""
    table = longdoc_summary(frame, predictions, samples)
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
