"""Task metrics (torchmetrics), GLUE task scores, and GLUE means.

GLUE task score = the mean of the task's metrics (MRPC/QQP: accuracy and F1; STS-B: Pearson and Spearman; CoLA:
Matthews correlation; the rest: accuracy). bertbench scores MNLI as one task, the mean of matched and mismatched
accuracy, and keeps both as separate metric rows. The GLUE summary is reported both as the arithmetic and the
harmonic mean over the tasks present (cramming's GLUE_amean / GLUE_hmean), with the missing tasks named.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torchmetrics.functional import accuracy, f1_score, matthews_corrcoef, pearson_corrcoef, spearman_corrcoef

from .data.glue import GlueTask


def classification_metrics(predictions: Sequence[int], labels: Sequence[int], num_classes: int,
                           names: Sequence[str]) -> dict[str, float]:
    """Metrics of hard class predictions. F1 is binary (positive = class 1), as GLUE reports it for MRPC/QQP."""
    preds = torch.as_tensor(np.asarray(predictions), dtype=torch.long)
    target = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    task = "binary" if num_classes == 2 else "multiclass"
    out: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            out[name] = float(accuracy(preds, target, task=task, num_classes=num_classes))
        elif name == "f1":
            out[name] = float(f1_score(preds, target, task=task, num_classes=num_classes, average="macro"
                                       if task == "multiclass" else "micro"))
        elif name == "mcc":
            out[name] = float(matthews_corrcoef(preds, target, task=task, num_classes=num_classes))
        else:
            raise KeyError(f"unknown classification metric {name!r}")
    return out


def regression_metrics(predictions: Sequence[float], labels: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    preds = torch.as_tensor(np.asarray(predictions), dtype=torch.float64)
    target = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    out: dict[str, float] = {}
    for name in names:
        if name == "pearson":
            out[name] = float(pearson_corrcoef(preds, target))
        elif name == "spearman":
            out[name] = float(spearman_corrcoef(preds, target))
        elif name == "mse":
            out[name] = float(torch.mean((preds - target) ** 2))
        else:
            raise KeyError(f"unknown regression metric {name!r}")
    return out


def task_metrics(task: GlueTask, logits: np.ndarray, labels: Sequence) -> dict[str, float]:
    """Metrics of ``task`` from model outputs (N, K) — argmax over K classes, or the single regression output."""
    if task.is_regression:
        return regression_metrics(np.asarray(logits).reshape(-1), labels, task.metrics)
    return classification_metrics(np.asarray(logits).argmax(axis=-1), labels, task.num_labels, task.metrics)


def task_score(task: GlueTask, metrics: Mapping[str, float]) -> float:
    """The GLUE score of one task from its metrics (the mean of ``task.score_metrics``)."""
    return float(np.mean([metrics[name] for name in task.score_metrics]))


def glue_means(scores: Mapping[str, float], expected: Sequence[str] = ()) -> dict[str, object]:
    """Arithmetic and harmonic mean of per-task scores, and which of ``expected`` are missing.

    The harmonic mean is undefined when a score is <= 0 (CoLA's MCC can be); it is then NaN, not a silent clip.
    """
    values = [float(value) for value in scores.values()]
    amean = statistics.fmean(values) if values else math.nan
    hmean = statistics.harmonic_mean(values) if values and min(values) > 0 else math.nan
    return {"amean": amean, "hmean": hmean, "n_tasks": len(values),
            "missing": [task for task in expected if task not in scores]}
