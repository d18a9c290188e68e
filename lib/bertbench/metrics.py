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
from torchmetrics.functional import accuracy, f1_score, pearson_corrcoef, spearman_corrcoef

from .data.glue import GlueTask


def matthews(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Matthews correlation of each row of (B, N) class-id arrays, 0 where it is undefined (a constant prediction or
    label row), as scikit-learn and GLUE's own scorer define it.

    torchmetrics 1.9 returns a small non-zero value for a constant prediction instead (0.0256 for an all-"acceptable"
    CoLA dev prediction; torchmetrics issue #3355), which would credit a majority-class model with skill.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    rows = len(predictions)
    k = int(max(predictions.max(initial=0), labels.max(initial=0))) + 1
    offsets = np.arange(rows)[:, None] * k * k
    counts = np.bincount((offsets + labels * k + predictions).ravel(), minlength=rows * k * k)
    confusion = counts.reshape(rows, k, k).astype(float)  # (B, true, predicted)
    true_counts, predicted_counts = confusion.sum(axis=2), confusion.sum(axis=1)  # (B, K)
    n = confusion.sum(axis=(1, 2))
    correct = np.trace(confusion, axis1=1, axis2=2)
    numerator = correct * n - (true_counts * predicted_counts).sum(axis=1)
    denominator = np.sqrt((n**2 - (predicted_counts**2).sum(axis=1)) * (n**2 - (true_counts**2).sum(axis=1)))
    return np.divide(numerator, denominator, out=np.zeros(rows), where=denominator > 0)


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
            out[name] = float(matthews(preds.numpy()[None], target.numpy()[None])[0])
        else:
            raise KeyError(f"unknown classification metric {name!r}")
    return out


def regression_metrics(predictions: Sequence[float], labels: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    preds = torch.tensor(np.asarray(predictions, dtype=np.float64))  # a copy: pandas may hand over read-only arrays
    target = torch.tensor(np.asarray(labels, dtype=np.float64))
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


def _f1_per_class(pred_hot: np.ndarray, true_hot: np.ndarray) -> np.ndarray:
    """F1 of each column of (N, K) 0/1 arrays; 0 where a class is neither predicted nor present."""
    tp = (pred_hot & true_hot).sum(axis=0)
    denominator = pred_hot.sum(axis=0) + true_hot.sum(axis=0)
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)


def document_metrics(probs: np.ndarray, labels: np.ndarray, problem: str) -> dict[str, float]:
    """Accuracy and F1 of document probabilities (N, K).

    binary: F1 of class 1 (the positive class). multiclass: macro F1. multilabel: threshold 0.5, ``accuracy`` is the
    exact-match (subset) accuracy, ``f1`` micro-averaged, ``f1_macro`` macro-averaged.
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if problem == "multilabel":
        pred = probs >= 0.5
        true = labels.astype(bool)
        tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
        micro = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
        return {"accuracy": float((pred == true).all(axis=1).mean()), "f1": float(micro),
                "f1_macro": float(_f1_per_class(pred, true).mean())}
    pred = probs.argmax(axis=1)
    k = probs.shape[1]
    classes = np.arange(k)
    f1 = _f1_per_class(pred[:, None] == classes, labels[:, None] == classes)
    return {"accuracy": float((pred == labels).mean()), "f1": float(f1[1] if problem == "binary" else f1.mean())}


def bootstrap_intervals(probs: np.ndarray, labels: np.ndarray, problem: str, samples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of :func:`document_metrics` (documents resampled with
    replacement ``samples`` times, fixed ``seed``)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if samples == 0:  # intervals switched off (BB_BOOTSTRAP_SAMPLES=0): NaN, but every metric still has its pair
        return {name: (float("nan"), float("nan")) for name in document_metrics(probs, labels, problem)}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(samples):
        pick = rng.integers(0, len(labels), len(labels))
        for name, value in document_metrics(probs[pick], labels[pick], problem).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    return {name: (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
            for name, values in draws.items()}


def paired_bootstrap_difference(probs_a: np.ndarray, probs_b: np.ndarray, labels: np.ndarray, problem: str,
                                metric: str = "f1", samples: int = 1000, seed: int = 0,
                                level: float = 0.95) -> tuple[float, float, float]:
    """``metric(a) - metric(b)`` on the same documents, with a percentile CI from resampling documents jointly
    (the paired comparison: both systems see the same resample). Returns (difference, low, high)."""
    probs_a, probs_b, labels = np.asarray(probs_a), np.asarray(probs_b), np.asarray(labels)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(samples):
        pick = rng.integers(0, len(labels), len(labels))
        diffs.append(document_metrics(probs_a[pick], labels[pick], problem)[metric]
                     - document_metrics(probs_b[pick], labels[pick], problem)[metric])
    tail = (1 - level) / 2 * 100
    observed = (document_metrics(probs_a, labels, problem)[metric]
                - document_metrics(probs_b, labels, problem)[metric])
    return float(observed), float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))
