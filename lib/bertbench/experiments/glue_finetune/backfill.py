"""Per-example predictions for runs made before they were kept, rebuilt from the runs' best checkpoints and written
only where they reproduce the reported dev metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from ...data.glue import get_task
from ...encoding import PadCollator, encode
from ...models import (
    check_safe_weights,
    configure_threads,
    load_tokenizer,
)
from ...results import load_results, predictions_path, write_predictions
from ...train import make_accelerator, predict
from .predictions import PREDICTION_EXACT, prediction_frame, prediction_metrics, read_predictions
from .runs import GlueConfig, load_eval_splits


def _metric_differences(recomputed: pd.DataFrame, results: pd.DataFrame) -> pd.Series:
    """|recomputed - reported| per (split, metric) of one run; NaN where the results have no such row."""
    reported = results.drop_duplicates(["split", "metric"], keep="last").set_index(["split", "metric"])["value"]
    recomputed = recomputed.set_index(["split", "metric"])["value"]
    return (recomputed - reported.reindex(recomputed.index).astype(float)).abs()


def predict_saved_runs(results_path: str | Path, runs_dir: str | Path | None = None, *, overwrite: bool = False,
                       tolerance: float = 1e-6, verbose: bool = True) -> pd.DataFrame:
    """Backfill the per-example predictions of runs written before they were kept, from their best checkpoints.

    For each run in ``results_path`` with a checkpoint ``<runs_dir>/glue/<run_id>/best`` and no rows in
    :func:`~bertbench.results.predictions_path` yet (all of them with ``overwrite``): rebuild the run's config from its
    ``config`` column, read its evaluation splits as it did (data source, ``max_eval_examples``), encode them with the
    checkpoint's tokenizer at the run's ``max_len``, predict, recompute the task metrics from the predictions as they
    will be written, and merge the predictions only if every recomputed value equals the run's reported dev value
    within ``tolerance``. Runs without a checkpoint are listed and skipped.

    Returns:
        One row per run: ``run_id, task, status, examples, max_abs_diff, seconds``; status is ``written``,
        ``has_predictions``, ``no_checkpoint`` or ``mismatch`` (nothing written; ``max_abs_diff`` says by how much).

    Raises:
        ValueError: naming every mismatched run, after the runs that matched are written.
    """
    from transformers import AutoModelForSequenceClassification

    from ...paths import runs_dir as default_runs_dir

    checkpoints = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    results = load_results(results_path)
    target = predictions_path(results_path)
    done = set(read_predictions(target)["run_id"]) if not overwrite else set()
    summary = []
    for run_id, rows in results.groupby("run_id", sort=False):
        started = time.perf_counter()
        task = get_task(rows["task"].iloc[0])
        best = checkpoints / "glue" / run_id / "best"
        status = {"run_id": run_id, "task": task.name, "status": "", "examples": 0, "max_abs_diff": float("nan")}
        if run_id in done:
            summary.append({**status, "status": "has_predictions", "seconds": 0.0})
            continue
        if not (best / "config.json").is_file() or rows["task"].nunique() != 1:
            if verbose:
                print(f"[{run_id}] skipped: no checkpoint at {best}")
            summary.append({**status, "status": "no_checkpoint", "seconds": 0.0})
            continue
        # a subclass's row (notebook 05's HeadsConfig) read as the GLUE fields that decide the evaluation
        cfg = GlueConfig.from_dict(json.loads(rows["config"].iloc[0]), ignore_unknown=True)
        configure_threads(cfg.num_threads)
        evals = load_eval_splits(cfg, task)
        tokenizer = load_tokenizer(str(best), trust_remote_code=cfg.trust_remote_code)
        check_safe_weights(best)
        model = AutoModelForSequenceClassification.from_pretrained(best, use_safetensors=True,
                                                                   trust_remote_code=cfg.trust_remote_code)
        if model.config.num_labels != max(task.num_labels, 1):
            raise ValueError(f"{run_id}: checkpoint {best} has {model.config.num_labels} outputs, {task.name} needs "
                             f"{task.num_labels}")
        accelerator = make_accelerator(cfg.train_settings(regression=task.is_regression))
        model.to(accelerator.device)
        collate = PadCollator(tokenizer, regression=task.is_regression)
        logits = {split: predict(model, encode(examples, tokenizer, cfg.max_len), collate, cfg.eval_batch_size,
                                 accelerator, desc=split) for split, examples in evals.items()}
        frame = prediction_frame(run_id, task, evals, logits)
        differences = _metric_differences(prediction_metrics(frame), rows)
        status.update(examples=len(frame), max_abs_diff=float(differences.max(skipna=False)))
        if differences.isna().any() or differences.max() >= tolerance:
            status["status"] = "mismatch"
            if verbose:
                print(f"[{run_id}] MISMATCH, not written: |recomputed - reported| = "
                      + ", ".join(f"{split}/{metric} {diff:.3g}" for (split, metric), diff in differences.items()))
        else:
            write_predictions(frame, target, exact=PREDICTION_EXACT)
            status["status"] = "written"
            if verbose:
                print(f"[{run_id}] {len(frame)} predictions written; metrics reproduced (max |diff| "
                      f"{status['max_abs_diff']:.1e})")
        summary.append({**status, "seconds": round(time.perf_counter() - started, 2)})
    summary = pd.DataFrame(summary, columns=["run_id", "task", "status", "examples", "max_abs_diff", "seconds"])
    mismatched = summary[summary["status"] == "mismatch"]
    if len(mismatched):
        raise ValueError(f"{results_path}: recomputed dev metrics differ from the reported ones for "
                         + ", ".join(f"{row.run_id} (max |diff| {row.max_abs_diff:.3g})"
                                     for row in mismatched.itertuples()) + "; their predictions were not written")
    return summary
