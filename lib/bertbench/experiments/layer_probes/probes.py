"""The probes themselves: a softmax-regression probe on standardised features (sentence probes), a start/end
probe over token states (span probes), their training on cached features, and the control-task labels."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.examples import Examples

CONTROLS = ("", "word_type", "example")  # no control, Hewitt & Liang's word types, random per example


# ---------------------------------------------------------------------------------------------------------------------
# The probe: standardisation, dropout, linear; trained on cached features.


class LinearProbe(nn.Module):
    """Softmax-regression probe: (x - mean) / std -> dropout -> linear, ``out_features`` classes (or 1 score)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout((features - self.mean) / self.std))

    def penalty(self) -> torch.Tensor:
        return 0.5 * self.linear.weight.pow(2).sum()


def fit_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, dropout: float = 0.1,
              weight_decay: float = 1e-4, epochs: int = 30, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
              optimizer: str = "adam", standardize: bool = True) -> LinearProbe:
    """Train a :class:`LinearProbe` on (N, H) features and (N,) class labels.

    ``optimizer="adam"``: shuffled mini-batches for ``epochs`` epochs (the notebook's default). ``"lbfgs"``: full-batch
    L-BFGS to convergence (``epochs`` iterations of up to 100 steps), the exact regularised logistic regression.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    features = features.float()
    labels = labels.long()
    probe = LinearProbe(features.shape[1], num_classes, dropout)
    if standardize:
        probe.mean.copy_(features.mean(dim=0))
        probe.std.copy_(features.std(dim=0).clamp(min=1e-6))
    n = features.shape[0]

    def objective(x, y):
        return F.cross_entropy(probe(x), y) + weight_decay * probe.penalty()

    probe.train()
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=100, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=50, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = objective(features, labels)
            loss.backward()
            return loss

        for _ in range(epochs):
            opt.step(closure)
    elif optimizer == "adam":
        opt = torch.optim.Adam(probe.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                opt.zero_grad()
                objective(features[index], labels[index]).backward()
                opt.step()
    else:
        raise ValueError(f"optimizer: {optimizer!r} is not 'adam' or 'lbfgs'")
    probe.eval()
    return probe


@torch.no_grad()
def probe_logits(probe: LinearProbe, features: torch.Tensor) -> np.ndarray:
    probe.eval()
    return probe(features.float()).numpy()


def majority_label(labels) -> int:
    """The most frequent training label (ties: the smallest)."""
    counts = Counter(int(label) for label in labels)
    return min(counts, key=lambda label: (-counts[label], label))


_WORD = re.compile(r"\w+")


def control_labels(examples: Examples, kind: str, num_classes: int, distribution: np.ndarray, seed: int) -> list[int]:
    """Control-task labels: a fixed function of the input that carries no task meaning.

    ``word_type``: every lower-cased word type draws a label from ``distribution`` (seeded by the type, so train and
    dev agree) and an example takes the label of its first word — decodable only by a probe that reads word identity
    off the states and memorises a random type -> label map (Hewitt & Liang's control, on sentences).
    ``example``: every example draws its own label (seeded by its text): nothing to generalise, only to memorise.
    """
    texts = examples.text_a if examples.text_b is None else [f"{a} {b}" for a, b in
                                                            zip(examples.text_a, examples.text_b, strict=True)]
    classes = list(range(num_classes))
    weights = list(np.asarray(distribution, dtype=float))
    draw = lambda key: random.Random(f"{seed}|{key}").choices(classes, weights)[0]  # noqa: E731
    if kind == "example":
        return [draw(text) for text in texts]
    if kind != "word_type":
        raise ValueError(f"control: {kind!r} is not one of {CONTROLS[1:]}")
    return [draw((_WORD.findall(text.lower()) or [""])[0]) for text in texts]



# ---------------------------------------------------------------------------------------------------------------------
# Span probes (SQuAD 2.0).


class SpanProbe(nn.Module):
    """A start and an end probe over token states: (F, T, H) -> start and end logits (F, T)."""

    def __init__(self, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("mean", torch.zeros(hidden_size))
        self.register_buffer("std", torch.ones(hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.start = nn.Linear(hidden_size, 1)
        self.end = nn.Linear(hidden_size, 1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.dropout((states.float() - self.mean) / self.std)
        fill = torch.finfo(torch.float32).min
        start = self.start(hidden).squeeze(-1).masked_fill(~mask, fill)  # (F, T)
        end = self.end(hidden).squeeze(-1).masked_fill(~mask, fill)
        return start, end

    def penalty(self) -> torch.Tensor:
        return 0.5 * (self.start.weight.pow(2).sum() + self.end.weight.pow(2).sum())


def context_mask(features, width: int) -> torch.Tensor:
    """(F, T) True on positions a span may use: context tokens and position 0 (no answer)."""
    mask = torch.zeros(len(features), width, dtype=torch.bool)
    for row, offsets in enumerate(features.offsets):
        for position, offset in enumerate(offsets):
            if offset is not None:
                mask[row, position] = True
        mask[row, 0] = True
    return mask


def fit_span_probe(states: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, *,
                   dropout: float = 0.1, weight_decay: float = 1e-4, epochs: int = 30, lr: float = 1e-3,
                   batch_size: int = 32, seed: int = 0) -> SpanProbe:
    """Train start and end probes with cross-entropy over the allowed positions of each window."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    probe = SpanProbe(states.shape[-1], dropout)
    flat = states[mask].float()  # (tokens, H): standardise with the statistics of real positions only
    probe.mean.copy_(flat.mean(dim=0))
    probe.std.copy_(flat.std(dim=0).clamp(min=1e-6))
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    probe.train()
    for _ in range(epochs):
        order = torch.randperm(states.shape[0], generator=generator)
        for begin in range(0, len(order), batch_size):
            index = order[begin:begin + batch_size]
            start_logits, end_logits = probe(states[index], mask[index])
            loss = (F.cross_entropy(start_logits, starts[index]) + F.cross_entropy(end_logits, ends[index])) / 2
            opt.zero_grad()
            (loss + weight_decay * probe.penalty()).backward()
            opt.step()
    probe.eval()
    return probe


@torch.no_grad()
def span_logits(probe: SpanProbe, states: torch.Tensor, mask: torch.Tensor, batch_size: int = 256):
    probe.eval()
    starts, ends = [], []
    for begin in range(0, states.shape[0], batch_size):
        start, end = probe(states[begin:begin + batch_size], mask[begin:begin + batch_size])
        starts.append(start)
        ends.append(end)
    return torch.cat(starts).numpy(), torch.cat(ends).numpy()
