"""Pooling per-window outputs into one prediction per document, and the document-level loss.

Rules (``n`` = the document's number of windows):

- ``mean_prob`` / ``max_prob``: per-window probabilities (softmax over classes; sigmoid per label for multi-label)
  pooled by mean or max — torch_long_bert's and BELT 1.0's design.
- ``custom_agg``: torch_long_bert's ``(max + mean * n / c) / (1 + n / c)`` of the window probabilities (``c`` = 2).
- ``mean_logits`` / ``max_logits``: window logits pooled first, then softmax or sigmoid — BELT 1.1.

For single-label tasks a pooled max (or custom_agg) of softmax probabilities does not sum to one; it is renormalised
over the classes before the negative log-likelihood, so every rule trains a proper distribution. Binary tasks are two
classes under softmax (never one output under cross-entropy + argmax). With one window per document every rule
reduces to the plain classifier (the truncation strategies go through the same code).

Regression (one number per document, :func:`doc_values`): a number has no probability, so the ``mean_*`` rules
average the windows' outputs, the ``max_*`` rules take the largest, ``custom_agg`` combines the two as above; the
loss is the squared error of the pooled prediction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RULES = ("mean_prob", "max_prob", "custom_agg", "mean_logits", "max_logits")
_EPS = 1e-7


def pool(values: torch.Tensor, doc_index: torch.Tensor, n_docs: int, how: str) -> torch.Tensor:
    """(W, K) window values -> (N, K) per document, by ``mean`` or ``max`` over the windows in ``doc_index``."""
    index = doc_index.unsqueeze(1).expand_as(values)
    if how == "mean":
        total = values.new_zeros((n_docs, values.shape[1])).scatter_add(0, index, values)
        counts = torch.bincount(doc_index, minlength=n_docs).clamp(min=1).unsqueeze(1)
        return total / counts
    if how == "max":
        start = values.new_full((n_docs, values.shape[1]), -torch.inf)
        return start.scatter_reduce(0, index, values, reduce="amax", include_self=True)
    raise ValueError(f"unknown pooling {how!r}")


def doc_outputs(logits: torch.Tensor, doc_index: torch.Tensor, n_docs: int, rule: str, multilabel: bool = False,
                c: float = 2.0) -> tuple[torch.Tensor, bool]:
    """Pool (W, K) window logits into (N, K) document outputs.

    Returns:
        (outputs, are_logits): pooled logits for the ``*_logits`` rules, pooled probabilities otherwise (renormalised
        over classes for single-label tasks).
    """
    if rule not in RULES:
        raise ValueError(f"aggregation: {rule!r} is not one of {RULES}")
    logits = logits.float()
    if rule.endswith("_logits"):
        return pool(logits, doc_index, n_docs, rule.removesuffix("_logits")), True
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)
    if rule == "mean_prob":
        pooled = pool(probs, doc_index, n_docs, "mean")
    elif rule == "max_prob":
        pooled = pool(probs, doc_index, n_docs, "max")
    else:
        n = torch.bincount(doc_index, minlength=n_docs).clamp(min=1).unsqueeze(1).to(probs.dtype)
        ratio = n / c
        pooled = (pool(probs, doc_index, n_docs, "max") + pool(probs, doc_index, n_docs, "mean") * ratio) / (1 + ratio)
    if not multilabel:
        pooled = pooled / pooled.sum(dim=-1, keepdim=True)
    return pooled, False


def doc_probabilities(logits: torch.Tensor, doc_index: torch.Tensor, n_docs: int, rule: str,
                      multilabel: bool = False, c: float = 2.0) -> torch.Tensor:
    """(N, K) document probabilities: class distribution (single-label) or per-label probability (multi-label)."""
    outputs, are_logits = doc_outputs(logits, doc_index, n_docs, rule, multilabel, c)
    if not are_logits:
        return outputs
    return torch.sigmoid(outputs) if multilabel else torch.softmax(outputs, dim=-1)


def doc_loss(logits: torch.Tensor, doc_index: torch.Tensor, labels: torch.Tensor, rule: str,
             multilabel: bool = False, c: float = 2.0) -> torch.Tensor:
    """Mean document loss: cross-entropy (single-label, ``labels`` (N,) class indices) or binary cross-entropy per
    label (multi-label, ``labels`` (N, K) in {0, 1})."""
    outputs, are_logits = doc_outputs(logits, doc_index, labels.shape[0], rule, multilabel, c)
    if multilabel:
        target = labels.float()
        if are_logits:
            return F.binary_cross_entropy_with_logits(outputs, target)
        return F.binary_cross_entropy(outputs.clamp(_EPS, 1 - _EPS), target)
    if are_logits:
        return F.cross_entropy(outputs, labels)
    return F.nll_loss(torch.log(outputs.clamp(min=_EPS)), labels)


def doc_values(logits: torch.Tensor, doc_index: torch.Tensor, n_docs: int, rule: str, c: float = 2.0) -> torch.Tensor:
    """(W, 1) window outputs of a regression head -> (N, 1) document predictions under ``rule`` (module docstring)."""
    if rule not in RULES:
        raise ValueError(f"aggregation: {rule!r} is not one of {RULES}")
    values = logits.float()
    if rule != "custom_agg":
        return pool(values, doc_index, n_docs, "mean" if rule.startswith("mean") else "max")
    ratio = torch.bincount(doc_index, minlength=n_docs).clamp(min=1).unsqueeze(1).to(values.dtype) / c
    return (pool(values, doc_index, n_docs, "max") + pool(values, doc_index, n_docs, "mean") * ratio) / (1 + ratio)


def doc_regression_loss(logits: torch.Tensor, doc_index: torch.Tensor, targets: torch.Tensor, rule: str,
                        c: float = 2.0) -> torch.Tensor:
    """Mean squared error of the pooled document predictions against ``targets`` (N,)."""
    return F.mse_loss(doc_values(logits, doc_index, targets.shape[0], rule, c).squeeze(1), targets.float())
