"""Notebook 04's tables: one row per variant, pooled only over runs whose configuration differs by seed (and fold)
alone, with intervals from the pooled per-document predictions; paired comparisons against a baseline; the plot.

Pooling rules (``bertbench.config.pooling_key``): runs of one dataset, model and variant whose recorded configs differ
in anything but the seed, the fold or the sweep's other runs (say two learning rates) are separate rows, and the
``differs`` column names what tells them apart. Within a row:

- one run: its test metrics and the percentile bootstrap interval of its own test predictions;
- several seeds on the fixed split, or the folds of cross-validation: each seed's test predictions (under
  cross-validation its folds' out-of-fold predictions, each document once) are scored, the scores averaged over
  seeds, and the interval comes from resampling the documents jointly for every seed (the same resample for all),
  so it is an interval of the pooled estimate, never a mean of per-run intervals;
- several runs but no per-document predictions: the mean of the runs' metrics, and no interval (``ci_from`` says so).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ... import metrics as M
from ...config import config_differences, pooling_key
from .runs import NOTEBOOK

# test metrics of a row: classification's, then regression's (Pearson, Spearman, MSE: those columns are left out of a
# table without regression rows, and are NaN on its classification rows, as accuracy and F1 are on regression rows)
METRICS = ("accuracy", "f1", "pearson", "spearman", "mse")
PEAK_METRICS = {  # metric -> what the peak_mb column then is
    "peak_rss_rise_mb": "run's own: rise of the resident-memory high-water mark reset at the run's start",
    "peak_gpu_mb": "run's own: CUDA memory allocated at most",
    "peak_rss_mb": "process resident memory during the run (rows before the fix: includes what earlier runs in the "
                   "same process still held)",
}


def _value(rows: pd.DataFrame, split: str, metric: str) -> float:
    picked = rows[(rows["split"] == split) & (rows["metric"] == metric)]["value"]
    return float(picked.iloc[-1]) if len(picked) else float("nan")


def _runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One record per run: its test metrics, costs and protocol, with the key of the runs it may be pooled with."""
    frame = frame[frame["notebook"] == NOTEBOOK]
    records = []
    for run_id, rows in frame.groupby("run_id", sort=False):
        peak = next(((rows[rows["metric"] == name]["value"].iloc[0], kind) for name, kind in PEAK_METRICS.items()
                     if (rows["metric"] == name).any()), (float("nan"), ""))
        variant = str(rows["variant"].iloc[0])
        records.append({
            "run_id": run_id, "dataset": rows["task"].iloc[0], "model": rows["model"].iloc[0],
            "variant": variant.split(" fold")[0], "fold": " fold" in variant, "preset": rows["preset"].iloc[0],
            "seed": int(rows["seed"].iloc[0]), "config": rows["config"].iloc[0],
            "config_key": pooling_key(rows["config"].iloc[0]),
            **{f"{name}{suffix}": _value(rows, "test", f"{name}{suffix}")
               for name in METRICS for suffix in ("", "_ci_low", "_ci_high")},
            "train_tokens_per_doc": _value(rows, "train", "encoder_tokens_per_doc"),
            "test_tokens_per_doc": _value(rows, "test", "encoder_tokens_per_doc"),
            "windows_per_doc": _value(rows, "test", "windows_per_doc"),
            "train_s": _value(rows, "train", "train_s"), "predict_s": _value(rows, "test", "predict_s"),
            "peak_mb": peak[0], "peak_is": peak[1],
            "best_epoch": int(rows[rows["split"] == "test"]["step"].iloc[0]) + 1,
            "epochs_run": int(rows[(rows["split"] == "train") & (rows["metric"] == "loss")]["step"].nunique()),
            "train_docs": int(rows["train_examples"].iloc[0]), "device": rows["device"].iloc[0],
        })
    return pd.DataFrame(records)


def _per_seed(run_ids_by_seed: dict[int, list[str]], predictions: pd.DataFrame | None):
    """(labels (N,) or (N, K), [probabilities (N, K) per seed], problem) for runs grouped by seed, each seed's runs'
    test documents pooled (the folds of cross-validation: each document once) in doc_id order; None when some run
    has no predictions or the seeds were tested on different documents."""
    if predictions is None or not len(predictions):
        return None
    labels, per_seed, problem = None, [], ""
    for run_ids in run_ids_by_seed.values():
        rows = predictions[predictions["run_id"].isin(set(run_ids))].sort_values("doc_id", kind="stable")
        if set(rows["run_id"]) != set(run_ids) or rows["doc_id"].duplicated().any():
            return None
        columns = [column for column in rows.columns if column.startswith("p_") and rows[column].notna().all()]
        these = np.asarray([json.loads(value) for value in rows["label"]])
        if labels is not None and (len(these) != len(labels) or not np.array_equal(these, labels)):
            return None
        labels = these
        problem = "multilabel" if labels.ndim == 2 else ("binary" if len(columns) == 2 else "multiclass")
        per_seed.append(rows[columns].to_numpy(dtype=float))
    return labels, per_seed, problem


def _seed_mean(per_seed: list[np.ndarray], labels: np.ndarray, problem: str, pick=None) -> dict[str, float]:
    scores = [M.document_metrics(probs if pick is None else probs[pick], labels if pick is None else labels[pick],
                                 problem) for probs in per_seed]
    return {name: float(np.mean([score[name] for score in scores])) for name in ("accuracy", "f1")}


def pooled_interval(per_seed: list[np.ndarray], labels: np.ndarray, problem: str, samples: int = 1000,
                    level: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Accuracy and F1 averaged over seeds, each with a percentile bootstrap interval from resampling the documents
    jointly for every seed: {metric: (estimate, low, high)}."""
    estimate = _seed_mean(per_seed, labels, problem)
    if not samples:
        return {name: (value, float("nan"), float("nan")) for name, value in estimate.items()}
    rng = np.random.default_rng(seed)
    draws = [_seed_mean(per_seed, labels, problem, rng.integers(0, len(labels), len(labels))) for _ in range(samples)]
    tail = (1 - level) / 2 * 100
    return {name: (value, float(np.percentile([draw[name] for draw in draws], tail)),
                   float(np.percentile([draw[name] for draw in draws], 100 - tail)))
            for name, value in estimate.items()}


def longdoc_summary(frame: pd.DataFrame, predictions: pd.DataFrame | None = None, samples: int = 1000,
                    level: float = 0.95) -> pd.DataFrame:
    """One row per (dataset, model, variant, preset, configuration): test accuracy and F1 with their interval and
    the cost columns, pooled over seeds and folds only (the module docstring has the rules).

    Args:
        predictions: notebook 04's per-document test predictions (``outputs/predictions/04_long_documents.csv``):
            needed for the interval of a row that pools several runs.
    """
    runs = _runs(frame)
    if not len(runs):
        return pd.DataFrame()
    keys = ["dataset", "model", "variant", "preset", "config_key"]
    cost = ["train_tokens_per_doc", "test_tokens_per_doc", "windows_per_doc", "train_s", "predict_s", "peak_mb",
            "best_epoch", "epochs_run", "train_docs"]
    records = []
    for key, group in runs.groupby(keys, sort=False):
        record = dict(zip(keys, key, strict=True))
        record.update(group[cost].mean().to_dict())
        seeds = sorted(set(group["seed"]))
        record.update(runs=len(group), seeds=" ".join(map(str, seeds)),
                      folds=int(group.groupby("seed").size().max()) if group["fold"].any() else 0,
                      peak_is=group["peak_is"].iloc[0], device=group["device"].iloc[0], config=group["config"].iloc[0])
        by_seed = {seed: list(part["run_id"]) for seed, part in group.groupby("seed", sort=True)}
        pooled = _per_seed(by_seed, predictions) if len(group) > 1 else None
        if pooled is not None:
            labels, per_seed, problem = pooled
            for name, (value, low, high) in pooled_interval(per_seed, labels, problem, samples, level).items():
                record.update({name: value, f"{name}_ci_low": low, f"{name}_ci_high": high})
            record["ci_from"] = (f"bootstrap of the pooled predictions: {len(labels)} documents x {len(per_seed)} "
                                 f"seed(s){', out of fold' if group['fold'].any() else ''}")
        elif len(group) == 1:
            record.update({column: group[column].iloc[0] for column in runs.columns if column.startswith(METRICS)})
            record["ci_from"] = "bootstrap of the run's test predictions"
        else:
            for name in METRICS:
                record.update({name: float(group[name].mean()), f"{name}_ci_low": float("nan"),
                               f"{name}_ci_high": float("nan")})
            record["ci_from"] = "none: several runs and no per-document predictions to pool"
        records.append(record)
    table = pd.DataFrame(records)
    table["differs"] = ""
    for _, alike in table.groupby(["dataset", "model", "variant", "preset"], sort=False):
        if len(alike) > 1:  # the same variant under several configurations: say what tells the rows apart
            table.loc[alike.index, "differs"] = config_differences(list(alike["config"]))
    unused = [column for column in table.columns if column.startswith(METRICS[2:]) and table[column].isna().all()]
    return table.drop(columns=["config", *unused])


def _paired_bootstrap(a: list[np.ndarray], b: list[np.ndarray], labels: np.ndarray, problem: str, metric: str,
                      samples: int, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """mean-over-seeds ``metric`` of ``a`` minus that of ``b`` on the same documents, with a percentile interval from
    resampling the documents jointly for both systems and every seed (the paired comparison)."""
    rng = np.random.default_rng(seed)
    observed = _seed_mean(a, labels, problem)[metric] - _seed_mean(b, labels, problem)[metric]
    diffs = []
    for _ in range(samples):
        pick = rng.integers(0, len(labels), len(labels))
        diffs.append(_seed_mean(a, labels, problem, pick)[metric] - _seed_mean(b, labels, problem, pick)[metric])
    tail = (1 - level) / 2 * 100
    return float(observed), float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))


def compare_to(frame: pd.DataFrame, predictions: pd.DataFrame, baseline: str = "head", metric: str = "f1",
               samples: int = 1000) -> pd.DataFrame:
    """Each variant against ``baseline`` on the same test documents: the difference in ``metric`` (mean over the
    seeds both have) with a paired bootstrap 95% interval, and whether it excludes 0. Variants are compared only
    within one configuration (``pooling_key``); each seed's folds are pooled out of fold. Needs the per-document
    predictions."""
    columns = ["dataset", "model", "seeds", "variant", "baseline", f"{metric}_difference", "ci_low", "ci_high",
               "beyond_noise", "test_docs"]
    runs = _runs(frame)
    out = []
    if not len(runs):
        return pd.DataFrame(columns=columns)
    for (dataset, model, _key), group in runs.groupby(["dataset", "model", "config_key"], sort=False):
        by_variant = {variant: part for variant, part in group.groupby("variant", sort=False)}
        if baseline not in by_variant:
            continue
        for variant, part in by_variant.items():
            seeds = sorted(set(part["seed"]) & set(by_variant[baseline]["seed"]))
            if variant == baseline or not seeds:
                continue
            ours = _per_seed({s: list(part[part["seed"] == s]["run_id"]) for s in seeds}, predictions)
            theirs = _per_seed({s: list(by_variant[baseline][by_variant[baseline]["seed"] == s]["run_id"])
                                for s in seeds}, predictions)
            if ours is None or theirs is None or not np.array_equal(ours[0], theirs[0]):
                continue  # no predictions, or not the same test documents: not a paired comparison
            diff, low, high = _paired_bootstrap(ours[1], theirs[1], ours[0], ours[2], metric, samples)
            out.append({"dataset": dataset, "model": model, "seeds": " ".join(map(str, seeds)), "variant": variant,
                        "baseline": baseline, f"{metric}_difference": diff, "ci_low": low, "ci_high": high,
                        "beyond_noise": bool(low > 0 or high < 0), "test_docs": len(ours[0])})
    return pd.DataFrame(out, columns=columns)


def plot_score_vs_tokens(table: pd.DataFrame, path: str | Path, metric: str = "f1"):
    """Test score (with its interval) against encoder tokens per document at inference; one panel per dataset."""
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = table[table["dataset"] == dataset]
        for row in part.itertuples(index=False):
            value, low, high = getattr(row, metric), getattr(row, f"{metric}_ci_low"), getattr(row, f"{metric}_ci_high")
            error = [[value - low], [high - value]] if np.isfinite(low) else None
            label = row.variant + (f" ({row.differs})" if row.differs else "")
            ax.errorbar(row.test_tokens_per_doc, value, yerr=error, fmt="o", capsize=3, label=label)
            ax.annotate(label, (row.test_tokens_per_doc, value), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        ax.set_xlabel("encoder tokens per document (inference)")
        ax.set_ylabel(f"test {metric} (95% bootstrap CI)")
        ax.set_title(f"{dataset} ({part['model'].iloc[0]}, {part['preset'].iloc[0]} preset)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return fig
