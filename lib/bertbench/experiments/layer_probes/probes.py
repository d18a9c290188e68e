"""The probes themselves: a softmax-regression probe on standardised features (sentence probes), a start/end
probe over token states (span probes, trained on states read from disk a chunk at a time), their training on cached
features, and the control-task labels."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.examples import Examples
from .states import default_device

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
    mask = np.zeros((len(features), width), dtype=bool)  # filled row by row: SQuAD train is ~50 M positions
    for row, offsets in enumerate(features.offsets):
        mask[row, :len(offsets)] = [offset is not None for offset in offsets]
    mask[:, 0] = True
    return torch.from_numpy(mask)


DEFAULT_CHUNK_BYTES = 1 << 30  # token states held at once by a span probe (float16 bytes): ProbeConfig.probe_memory_mb


class _ChunkedStates:
    """Mini-batches of (F, T, H) token states on ``device``, read ``max_bytes`` of windows at a time.

    ``states`` is a tensor or an array; a memory-mapped layer (:meth:`.token_store.TokenStates.layer`) is read only
    where indexed, so at most one chunk of it is in memory. A layer that fits in ``max_bytes`` is moved to the device
    once and indexed there: every epoch then runs without reading the file again.
    """

    def __init__(self, states, device: torch.device, max_bytes: int):
        self.states, self.device = states, device
        self.windows, width, hidden = states.shape
        self.window_bytes = width * hidden * 2  # float16 on disk
        self.chunk = max(1, max_bytes // self.window_bytes)
        self.resident = None
        if self.windows <= self.chunk:
            whole = states if isinstance(states, torch.Tensor) else _take(states, torch.arange(self.windows))
            self.resident = whole.to(device)

    def batches(self, order: torch.Tensor, batch_size: int):
        """(index, states (B, T, H) on the device) for consecutive ``batch_size`` slices of ``order``: the same
        mini-batches, in the same order, whatever the chunk size."""
        if self.resident is not None:
            for begin in range(0, len(order), batch_size):
                index = order[begin:begin + batch_size]
                yield index, self.resident[index.to(self.device)]
            return
        per_chunk = max(1, self.chunk // batch_size) * batch_size  # whole mini-batches per chunk
        for first in range(0, len(order), per_chunk):
            block_index = order[first:first + per_chunk]
            block = _take(self.states, block_index).to(self.device, non_blocking=True)  # (C, T, H) float16
            for begin in range(0, len(block_index), batch_size):
                yield block_index[begin:begin + batch_size], block[begin:begin + batch_size]
            del block


def _take(states, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of a tensor or (memory-mapped) array, as a CPU tensor: a memory map reads just those rows."""
    if isinstance(states, torch.Tensor):
        return states[index]
    return torch.from_numpy(np.ascontiguousarray(states[index.numpy()]))


def _token_statistics(chunks: _ChunkedStates, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) standard deviation over the allowed positions of every window, one chunk at a time
    (Chan et al.'s pairwise update of count, mean and squared deviations, in float64: a quarter of a chunk at a time,
    so the float64 copy is no larger than the chunk)."""
    count, mean, squares = 0, None, None
    for index, block in chunks.batches(torch.arange(chunks.windows), max(1, chunks.chunk // 4)):
        flat = block[mask[index].to(block.device)].double()  # (tokens, H)
        if not len(flat):
            continue
        part_mean = flat.mean(dim=0)
        part_squares = (flat - part_mean).pow(2).sum(dim=0)
        if mean is None:
            count, mean, squares = len(flat), part_mean, part_squares
            continue
        total = count + len(flat)
        delta = part_mean - mean
        mean = mean + delta * len(flat) / total
        squares = squares + part_squares + delta.pow(2) * count * len(flat) / total
        count = total
    if mean is None:
        raise ValueError("span probe: no allowed position in any window")
    std = (squares / max(1, count - 1)).sqrt()
    return mean.float().cpu(), std.float().cpu()


def fit_span_probe(states, mask: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, *, dropout: float = 0.1,
                   weight_decay: float = 1e-4, epochs: int = 30, lr: float = 1e-3, batch_size: int = 32,
                   seed: int = 0, device: torch.device | str | None = None,
                   max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> SpanProbe:
    """Train start and end probes with cross-entropy over the allowed positions of each window.

    Args:
        states: (F, T, H) token states: a tensor, or a memory-mapped layer of
            :class:`~bertbench.experiments.layer_probes.token_store.TokenStates`, read in chunks of at most
            ``max_chunk_bytes`` (whole mini-batches), so memory does not grow with the number of windows.
        mask: (F, T) True where a span may start or end (context tokens and position 0, :func:`context_mask`).
        starts, ends: (F,) gold start and end positions (0 = no answer in this window).
        device: where the probe trains (default: the GPU when there is one).

    Each epoch draws one permutation of the windows and steps through it in mini-batches of ``batch_size``; the
    chunks only decide when windows are read, so the probe does not depend on ``max_chunk_bytes``. Features are
    standardised with the mean and standard deviation of the allowed positions (stored in the probe).
    """
    device = torch.device(device) if device is not None else default_device()
    chunks = _ChunkedStates(states, device, max_chunk_bytes)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    probe = SpanProbe(states.shape[-1], dropout)
    mean, std = _token_statistics(chunks, mask)
    probe.mean.copy_(mean)
    probe.std.copy_(std.clamp(min=1e-6))
    probe.to(device)
    starts, ends = starts.to(device), ends.to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    probe.train()
    for _ in range(epochs):
        order = torch.randperm(chunks.windows, generator=generator)
        for index, batch in chunks.batches(order, batch_size):
            on_device = index.to(device)
            start_logits, end_logits = probe(batch, mask[index].to(device))  # (B, T) each
            loss = (F.cross_entropy(start_logits, starts[on_device]) + F.cross_entropy(end_logits, ends[on_device])) / 2
            opt.zero_grad()
            (loss + weight_decay * probe.penalty()).backward()
            opt.step()
    probe.eval()
    return probe.cpu()


@torch.no_grad()
def span_logits(probe: SpanProbe, states, mask: torch.Tensor, batch_size: int = 256,
                device: torch.device | str | None = None,
                max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits (F, T) float32 of every window; ``states`` read as in :func:`fit_span_probe`."""
    device = torch.device(device) if device is not None else default_device()
    probe.eval().to(device)
    chunks = _ChunkedStates(states, device, max_chunk_bytes)
    starts, ends = [], []
    for index, batch in chunks.batches(torch.arange(chunks.windows), batch_size):
        start, end = probe(batch, mask[index].to(device))  # (B, T) each
        starts.append(start.cpu())
        ends.append(end.cpu())
    probe.cpu()
    return torch.cat(starts).numpy(), torch.cat(ends).numpy()
