"""Task metrics, GLUE task scores, and GLUE means.

GLUE task score = the mean of the task's metrics (MRPC/QQP: accuracy and F1; STS-B: Pearson and Spearman; CoLA:
Matthews correlation; the rest: accuracy). bertbench scores MNLI as one task, the mean of matched and mismatched
accuracy, and keeps both as separate metric rows. The GLUE summary is reported both as the arithmetic and the
harmonic mean over the tasks present (cramming's GLUE_amean / GLUE_hmean), with the missing tasks named.

The metrics are computed here in float64 NumPy, row-wise so that the bootstrap of notebook 06 scores thousands of
resamples at once with the same code, and checked against scikit-learn and SciPy in ``tests/test_metrics.py``.
Not torchmetrics (the house convention), for three measured reasons: its MCC of a constant prediction is 0.0256 where
GLUE's scorer says 0 (torchmetrics #3355); its Spearman adds an epsilon (0.0 for a constant prediction, off SciPy by up
to 4e-6 at n = 2-3) while its Pearson of a constant is NaN or about 0 depending on the constant; and importing it
took 4.2 s of the 8.3 s that ``import bertbench`` cost (it pulls scipy.signal and its text metrics' transformers
code), in every notebook, kernel and test process.

A correlation or MCC that is undefined (a constant prediction or label row) is 0, never NaN: no skill, and a number
every mean can take (SciPy returns NaN there, which would silently drop the task from a GLUE mean).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import numpy as np

from .data.glue import GlueTask


def _rows(values) -> np.ndarray:
    array = np.asarray(values)
    return array[None] if array.ndim == 1 else array


def matthews(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Matthews correlation of each row of (B, N) class-id arrays, 0 where it is undefined (a constant prediction or
    label row), as scikit-learn and GLUE's own scorer define it."""
    predictions, labels = _rows(predictions).astype(np.int64), _rows(labels).astype(np.int64)
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


def binary_f1(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """F1 of class 1 for each row of (B, N) 0/1 arrays (GLUE's F1 for MRPC/QQP); 0 where class 1 is neither predicted
    nor present."""
    predictions, labels = _rows(predictions) == 1, _rows(labels) == 1
    tp = (predictions & labels).sum(axis=1)
    denominator = predictions.sum(axis=1) + labels.sum(axis=1)
    return np.divide(2.0 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)


def pearson(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of (B, N) float arrays (float64), 0 where a row is constant."""
    predictions = _rows(predictions).astype(np.float64)
    labels = _rows(labels).astype(np.float64)
    # constant means max == min, decided on the values themselves (centring a constant row can leave rounding noise)
    varies = (np.ptp(predictions, axis=1) > 0) & (np.ptp(labels, axis=1) > 0)
    predictions = predictions - predictions.mean(axis=1, keepdims=True)
    labels = labels - labels.mean(axis=1, keepdims=True)
    denominator = np.sqrt((predictions**2).sum(axis=1)) * np.sqrt((labels**2).sum(axis=1))
    out = np.divide((predictions * labels).sum(axis=1), denominator, out=np.zeros(len(predictions)),
                    where=varies & (denominator > 0))
    return np.clip(out, -1.0, 1.0)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of each row of (B, N), ties given their average rank (SciPy's ``rankdata(method="average")``)."""
    values = _rows(values)
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    ranks = np.empty(values.shape, dtype=np.float64)
    for row in range(len(values)):  # ties differ per row; each row is one vectorised pass
        new = np.r_[True, ordered[row, 1:] != ordered[row, :-1]]
        starts = np.flatnonzero(new)
        counts = np.diff(np.r_[starts, values.shape[1]])
        ranks[row, order[row]] = (starts + (counts + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


def spearman(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of (B, N): Pearson of average ranks, 0 where a row is constant."""
    return pearson(average_ranks(predictions), average_ranks(labels))


def classification_metrics(predictions: Sequence[int], labels: Sequence[int], num_classes: int,
                           names: Sequence[str]) -> dict[str, float]:
    """Metrics of hard class predictions. F1 is binary (positive = class 1) for two classes, as GLUE reports it for
    MRPC/QQP, and macro-averaged over the classes present in either array otherwise (scikit-learn's ``macro``)."""
    preds, target = np.asarray(predictions, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    out: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            out[name] = float((preds == target).mean()) if len(target) else 0.0
        elif name == "f1":
            if num_classes == 2:
                out[name] = float(binary_f1(preds, target)[0])
            else:
                present = np.union1d(preds, target)
                out[name] = float(np.mean([binary_f1(preds == k, target == k)[0] for k in present])) \
                    if len(present) else 0.0
        elif name == "mcc":
            out[name] = float(matthews(preds, target)[0])
        else:
            raise KeyError(f"unknown classification metric {name!r}")
    return out


def regression_metrics(predictions: Sequence[float], labels: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """Pearson, Spearman (0 for a constant prediction) and MSE of float predictions."""
    preds, target = np.asarray(predictions, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    out: dict[str, float] = {}
    for name in names:
        if name == "pearson":
            out[name] = float(pearson(preds, target)[0])
        elif name == "spearman":
            out[name] = float(spearman(preds, target)[0])
        elif name == "mse":
            out[name] = float(np.mean((preds - target) ** 2))
        else:
            raise KeyError(f"unknown regression metric {name!r}")
    return out


def task_metrics(task: GlueTask, logits: np.ndarray, labels: Sequence) -> dict[str, float]:
    """Metrics of ``task`` from model outputs (N, K) — argmax over K classes, or the single regression output."""
    if task.is_regression:
        return regression_metrics(np.asarray(logits).reshape(-1), labels, task.metrics)
    return classification_metrics(np.asarray(logits).argmax(axis=-1), labels, task.num_labels, task.metrics)


def task_loss(task: GlueTask, logits: np.ndarray, labels: Sequence) -> float:
    """The loss the model trains on, from its outputs: cross-entropy over the classes, or MSE for regression."""
    logits = np.asarray(logits, dtype=np.float64)
    if task.is_regression:
        return float(np.mean((logits.reshape(-1) - np.asarray(labels, dtype=np.float64)) ** 2))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(logits)), np.asarray(labels, dtype=np.int64)].mean())


def task_score(task: GlueTask, metrics: Mapping[str, float]) -> float:
    """The GLUE score of one task from its metrics (the mean of ``task.score_metrics``)."""
    return float(np.mean([metrics[name] for name in task.score_metrics]))


# The GLUE means, by name. One convention everywhere (every table header says which), the one GLUE-dev tables use:
# WNLI left out (the BERT paper excludes "the problematic WNLI set"; its dev set is built against its training set,
# so fine-tuned models score at or below the majority class; DitBERT's aggregation drops it too), and MNLI counted
# once, as its task score (the mean of matched and mismatched accuracy): 8 tasks. "with_wnli" counts all nine.
GLUE_CONVENTIONS = {
    "glue_dev": ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"),
    "with_wnli": ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"),
}
DEFAULT_CONVENTION = "glue_dev"
CONVENTION_TEXT = {
    "glue_dev": "glue_dev: WNLI out, MNLI once as the mean of m/mm",
    "with_wnli": "with_wnli: all nine tasks, MNLI once as the mean of m/mm",
}


def glue_means(scores: Mapping[str, float], convention: str = DEFAULT_CONVENTION) -> dict[str, object]:
    """Arithmetic and harmonic mean of per-task scores under a named convention (:data:`GLUE_CONVENTIONS`).

    Only the convention's tasks count; ``missing`` names its tasks without a score, ``left_out`` the scored tasks it
    does not count (WNLI under ``glue_dev``), and ``undefined`` the tasks whose score is not a number (they are named,
    never silently dropped: such a mean says so in ``missing`` too). The harmonic mean is undefined when a score is
    <= 0 (CoLA's MCC can be); it is then NaN, not a silent clip.
    """
    if convention not in GLUE_CONVENTIONS:
        raise ValueError(f"unknown GLUE convention {convention!r}; conventions are {sorted(GLUE_CONVENTIONS)}")
    counted = GLUE_CONVENTIONS[convention]
    undefined = [task for task in counted if task in scores and not math.isfinite(float(scores[task]))]
    values = [float(scores[task]) for task in counted if task in scores and task not in undefined]
    amean = statistics.fmean(values) if values else math.nan
    hmean = statistics.harmonic_mean(values) if values and min(values) > 0 else math.nan
    missing = [task for task in counted if task not in scores] + [f"{task} (score not a number)"
                                                                   for task in undefined]
    return {"amean": amean, "hmean": hmean, "n_tasks": len(values), "missing": missing,
            "left_out": [task for task in scores if task not in counted], "convention": convention,
            "convention_text": CONVENTION_TEXT[convention]}


def _f1_per_class(pred_hot: np.ndarray, true_hot: np.ndarray) -> np.ndarray:
    """F1 of each column of (N, K) 0/1 arrays; 0 where a class is neither predicted nor present."""
    tp = (pred_hot & true_hot).sum(axis=0)
    denominator = pred_hot.sum(axis=0) + true_hot.sum(axis=0)
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)


def document_metrics(probs: np.ndarray, labels: np.ndarray, problem: str) -> dict[str, float]:
    """Accuracy and F1 of document probabilities (N, K).

    binary: F1 of class 1 (the positive class). multiclass: macro F1. multilabel: threshold 0.5, ``accuracy`` is the
    exact-match (subset) accuracy, ``f1`` micro-averaged, ``f1_macro`` macro-averaged. regression: ``probs`` are the
    predicted numbers (N, 1), scored by Pearson, Spearman and MSE.
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if problem == "regression":
        return regression_metrics(probs.reshape(-1), labels, ("pearson", "spearman", "mse"))
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
