"""Turning a long document's tokens into model inputs: truncation-style selections and overlapping windows.

A document is tokenised once, without special tokens. Each strategy then picks content tokens:

- ``head`` / ``tail``: the first / last ``budget`` tokens.
- ``head_tail``: the first ``head_tokens`` and the last ``tail_tokens`` (0: the rest of the budget, ``budget -
  head_tokens``; Sun et al. 2019 and the GCP sequence functions' ``ht``: 128 + 382). Any split that fits the budget.
- ``rs``: the document cut into consecutive spans of ``span_len``; spans drawn at random without repeats until the
  budget is full, kept in document order. ``rso``: spans starting at random positions (they may overlap), in
  document order. ``rsd``: draw a span at a random position, delete it from the document, draw the next from what is
  left, in the order drawn. (The strategies of the HF-sequence-classification-on-GCP tool; here every span has at
  least one token and any length works, including documents shorter than one span.)
- ``windows``: overlapping windows over the whole document (BELT / torch_long_bert parameters): ``chunk_size``
  tokens every ``stride`` tokens over the first ``maximal_text_length`` tokens; no window starts after one that
  already reached the end (BELT adds windows wholly inside earlier ones); a trailing window shorter than
  ``minimal_chunk_length`` is dropped when there is more than one; at most ``max_num_segments`` windows. As in
  BELT, ``stride`` and ``minimal_chunk_length`` may not exceed ``chunk_size`` (either would lose text: windows that
  skip tokens, or a last window dropped although it is full).

Every selection or window is wrapped with the tokenizer's own special tokens (:class:`SpecialTokens`, read from the
tokenizer by encoding a probe text with and without them), so ``[CLS] ... [SEP]``, ``<s> ... </s>`` or any other
template comes out right and no id is hard-coded. A document with no text becomes one window holding only the
special tokens.

Text pairs (a question or claim beside the document, :class:`PairDocumentWindows`): the windows are built over the
document alone, and the pair's tokens, cut beforehand to a budget the caller reserves in every window, are appended to
each one in the tokenizer's pair template (:class:`PairTemplate`: ``[CLS] window [SEP] pair [SEP]`` for BERT,
``<s> window </s></s> pair </s>`` for RoBERTa), so every window sees the whole pair.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from .encoding import LengthGroupedBatchSampler

SINGLE_STRATEGIES = ("head", "tail", "head_tail", "rs", "rso", "rsd")
STRATEGIES = SINGLE_STRATEGIES + ("windows",)
RANDOM_STRATEGIES = ("rs", "rso", "rsd")


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The tokenizer's single-sequence template: ``prefix + content + suffix`` with their token type ids."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    content_type: int
    with_types: bool  # the model reads token_type_ids

    @classmethod
    def from_tokenizer(cls, tokenizer, probe: str = "probe text") -> SpecialTokens:
        with_types = "token_type_ids" in tokenizer.model_input_names
        full = tokenizer(probe, add_special_tokens=True, return_token_type_ids=True)
        plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
        ids, types = list(full["input_ids"]), list(full.get("token_type_ids") or [0] * len(full["input_ids"]))
        for start in range(len(ids) - len(plain) + 1):
            if ids[start:start + len(plain)] == plain:
                stop = start + len(plain)
                return cls(tuple(ids[:start]), tuple(ids[stop:]), tuple(types[:start]), tuple(types[stop:]),
                           types[start] if plain else 0, with_types)
        raise ValueError(f"tokenizer {type(tokenizer).__name__}: cannot find the text inside its own special-token "
                         f"template ({ids} vs {plain})")

    @property
    def count(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def wrap(self, content: Sequence[int]) -> dict[str, list[int]]:
        item = {"input_ids": [*self.prefix, *content, *self.suffix]}
        if self.with_types:
            item["token_type_ids"] = [*self.prefix_types, *([self.content_type] * len(content)), *self.suffix_types]
        return item


def check_window_lengths(chunk_size: int, stride: int, minimal_chunk_length: int) -> None:
    """ValueError for window settings that lose text (BELT refuses the same): ``stride`` > ``chunk_size`` skips
    tokens between windows; ``minimal_chunk_length`` > ``chunk_size`` drops a last window even when it is full."""
    if chunk_size < 1 or stride < 1:
        raise ValueError(f"chunk_size ({chunk_size}) and stride ({stride}) must be >= 1")
    if stride > chunk_size:
        raise ValueError(f"stride: {stride} > chunk_size {chunk_size} would skip text between windows")
    if minimal_chunk_length > chunk_size:
        raise ValueError(f"minimal_chunk_length: {minimal_chunk_length} > chunk_size {chunk_size} would drop a "
                         f"full last window (no window can be that long)")


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How to turn a document's tokens into windows (see the module docstring for each field)."""

    strategy: str = "windows"
    budget: int = 510  # content tokens per selection (single-sequence strategies)
    head_tokens: int = 128  # head_tail: tokens from the start
    tail_tokens: int = 0  # head_tail: tokens from the end; 0 = the rest of the budget
    span_len: int = 64  # rs / rso / rsd span length
    chunk_size: int = 510
    stride: int = 510
    minimal_chunk_length: int = 1
    maximal_text_length: int = 0  # 0 = the whole document
    max_num_segments: int = 0  # 0 = no cap

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: {self.strategy!r} is not one of {STRATEGIES}")
        for name in ("budget", "span_len", "chunk_size", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: {getattr(self, name)} must be >= 1")
        for name in ("head_tokens", "tail_tokens", "minimal_chunk_length", "maximal_text_length", "max_num_segments"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: {getattr(self, name)} must be >= 0")
        if self.strategy == "head_tail" and self.head_tokens + self.tail_tokens > self.budget:
            raise ValueError(f"head_tokens + tail_tokens: {self.head_tokens} + {self.tail_tokens} is more than the "
                             f"budget of {self.budget} tokens")
        check_window_lengths(self.chunk_size, self.stride, self.minimal_chunk_length)

    @property
    def is_random(self) -> bool:
        return self.strategy in RANDOM_STRATEGIES


def head_tail(tokens: Sequence[int], budget: int, head_tokens: int, tail_tokens: int = 0) -> list[int]:
    """The first ``head_tokens`` and the last ``tail_tokens`` (0: ``budget - head_tokens``); the whole text when it is
    no longer than the two together."""
    tail = tail_tokens or budget - head_tokens
    if len(tokens) <= head_tokens + tail:
        return list(tokens)
    return [*tokens[:head_tokens], *(tokens[len(tokens) - tail:] if tail else [])]


def random_spans(tokens: Sequence[int], budget: int, span_len: int, rng: random.Random, mode: str) -> list[int]:
    """``rs``, ``rso`` or ``rsd`` selection of at most ``budget`` tokens; the whole text when it fits."""
    n = len(tokens)
    if n <= budget:
        return list(tokens)
    span_len = min(span_len, budget)
    if mode == "rs":
        starts = list(range(0, n, span_len))
        rng.shuffle(starts)
        chosen, total = [], 0
        for start in starts:
            length = min(span_len, n - start, budget - total)
            chosen.append((start, length))
            total += length
            if total == budget:
                break
        return [token for start, length in sorted(chosen) for token in tokens[start:start + length]]
    if mode == "rso":
        count = -(-budget // span_len)
        starts = sorted(rng.randint(0, n - span_len) for _ in range(count))
        out: list[int] = []
        for start in starts:
            out.extend(tokens[start:start + min(span_len, budget - len(out))])
        return out
    if mode == "rsd":
        remaining, out = list(tokens), []
        while len(out) < budget and remaining:
            length = min(span_len, len(remaining), budget - len(out))
            start = rng.randint(0, len(remaining) - length)
            out.extend(remaining[start:start + length])
            del remaining[start:start + length]
        return out
    raise ValueError(f"unknown random-span mode {mode!r}")


def chunk_windows(tokens: Sequence[int], chunk_size: int, stride: int, minimal_chunk_length: int = 1,
                  maximal_text_length: int = 0, max_num_segments: int = 0) -> list[list[int]]:
    """Overlapping windows of content tokens; always at least one (empty for an empty document).

    Raises:
        ValueError: ``stride`` or ``minimal_chunk_length`` greater than ``chunk_size`` (see
            :func:`check_window_lengths`).
    """
    check_window_lengths(chunk_size, stride, minimal_chunk_length)
    if maximal_text_length:
        tokens = tokens[:maximal_text_length]
    windows: list[list[int]] = []
    for start in range(0, max(1, len(tokens)), stride):
        windows.append(list(tokens[start:start + chunk_size]))
        if start + chunk_size >= len(tokens):
            break  # this window reached the end: any later one would lie inside it
    if len(windows) > 1 and len(windows[-1]) < minimal_chunk_length:
        windows.pop()
    if max_num_segments:
        windows = windows[:max_num_segments]
    return windows


def select_windows(tokens: Sequence[int], spec: WindowSpec, rng: random.Random | None = None) -> list[list[int]]:
    """The content tokens of each model input for one document under ``spec``."""
    if spec.strategy == "windows":
        return chunk_windows(tokens, spec.chunk_size, spec.stride, spec.minimal_chunk_length,
                             spec.maximal_text_length, spec.max_num_segments)
    if spec.strategy == "head":
        return [list(tokens[:spec.budget])]
    if spec.strategy == "tail":
        return [list(tokens[max(0, len(tokens) - spec.budget):])]
    if spec.strategy == "head_tail":
        return [head_tail(tokens, spec.budget, spec.head_tokens, spec.tail_tokens)]
    return [random_spans(tokens, spec.budget, spec.span_len, rng or random.Random(0), spec.strategy)]


class DocumentWindows(Dataset):
    """Documents as lists of wrapped windows, with labels. Random strategies draw anew every epoch (training) or
    once with a fixed seed (evaluation): ``set_epoch`` picks the draw, which depends on (seed, epoch, document)."""

    def __init__(self, tokens: list[list[int]], labels: Sequence | None, spec: WindowSpec, special: SpecialTokens,
                 seed: int = 0):
        self.tokens, self.labels, self.spec, self.special, self.seed = tokens, labels, spec, special, seed
        self.epoch = 0
        self.lengths = [len(doc) for doc in tokens]  # for length-grouped batching
        self.tokens_served = 0  # encoder tokens (special tokens included) handed out so far
        self.windows_served = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict:
        """The counters a resumed run continues from (the windows themselves depend on (seed, epoch) only)."""
        return {"tokens_served": self.tokens_served, "windows_served": self.windows_served}

    def load_state_dict(self, state: dict) -> None:
        self.tokens_served, self.windows_served = int(state["tokens_served"]), int(state["windows_served"])

    def __len__(self) -> int:
        return len(self.tokens)

    def windows(self, index: int) -> list[dict[str, list[int]]]:
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}") if self.spec.is_random else None
        return [self.special.wrap(content) for content in select_windows(self.tokens[index], self.spec, rng)]

    def __getitem__(self, index: int) -> dict:
        windows = self.windows(index)
        self.tokens_served += sum(len(window["input_ids"]) for window in windows)
        self.windows_served += len(windows)
        item = {"windows": windows}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item


class DocumentBatchSampler(LengthGroupedBatchSampler):
    """Length-grouped shuffled batches of documents that also tell the dataset the epoch (new random spans)."""

    def __init__(self, dataset: DocumentWindows, batch_size: int, seed: int, group_factor: int = 50):
        super().__init__(dataset.lengths, batch_size, seed=seed, group_factor=group_factor)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)


class WindowCollator:
    """Flatten the windows of a batch of documents: input_ids / attention_mask / token_type_ids (W, T) padded with
    the tokenizer's pad id to the longest window, ``doc_index`` (W,) naming each window's document (0..B-1), and
    ``labels`` (B,) class indices or (B, K) multi-hot floats."""

    def __init__(self, pad_token_id: int, multilabel: bool = False):
        if pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token first")
        self.pad_id = pad_token_id
        self.multilabel = multilabel

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        windows = [window for item in items for window in item["windows"]]
        width = max(len(window["input_ids"]) for window in windows)
        batch = {"input_ids": torch.full((len(windows), width), self.pad_id, dtype=torch.long),
                 "attention_mask": torch.zeros((len(windows), width), dtype=torch.long)}
        with_types = "token_type_ids" in windows[0]
        if with_types:
            batch["token_type_ids"] = torch.zeros((len(windows), width), dtype=torch.long)
        for row, window in enumerate(windows):
            length = len(window["input_ids"])
            batch["input_ids"][row, :length] = torch.tensor(window["input_ids"])
            batch["attention_mask"][row, :length] = 1
            if with_types:
                batch["token_type_ids"][row, :length] = torch.tensor(window["token_type_ids"])
        batch["doc_index"] = torch.tensor([doc for doc, item in enumerate(items) for _ in item["windows"]])
        if "labels" in items[0]:
            dtype = torch.float if self.multilabel else torch.long
            batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=dtype)
        return batch


# ---------------------------------------------------------------------------------------------------- text pairs
@dataclasses.dataclass(frozen=True)
class PairTemplate:
    """The tokenizer's pair template: ``prefix + first + middle + second + suffix`` with their token type ids."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    first_type: int
    second_type: int
    with_types: bool  # the model reads token_type_ids

    @classmethod
    def from_tokenizer(cls, tokenizer, probe: tuple[str, str] = ("first probe", "second text")) -> PairTemplate:
        """Read the template by encoding a probe pair with and without special tokens (as :class:`SpecialTokens`)."""
        full = tokenizer(*probe, add_special_tokens=True, return_token_type_ids=True)
        first, second = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in probe)
        ids, types = list(full["input_ids"]), list(full.get("token_type_ids") or [0] * len(full["input_ids"]))
        at = lambda part, start: next((i for i in range(start, len(ids) - len(part) + 1)  # noqa: E731
                                       if ids[i:i + len(part)] == part), None)
        start_a = at(first, 0)
        start_b = at(second, start_a + len(first)) if start_a is not None else None
        if start_b is None:
            raise ValueError(f"tokenizer {type(tokenizer).__name__}: cannot find a text pair inside its own template "
                             f"({ids} vs {first} and {second})")
        stop_a, stop_b = start_a + len(first), start_b + len(second)
        return cls(tuple(ids[:start_a]), tuple(ids[stop_a:start_b]), tuple(ids[stop_b:]), tuple(types[:start_a]),
                   tuple(types[stop_a:start_b]), tuple(types[stop_b:]), types[start_a], types[start_b],
                   "token_type_ids" in tokenizer.model_input_names)

    @property
    def count(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    def wrap(self, content: Sequence[int], pair: Sequence[int]) -> dict[str, list[int]]:
        item = {"input_ids": [*self.prefix, *content, *self.middle, *pair, *self.suffix]}
        if self.with_types:
            item["token_type_ids"] = [*self.prefix_types, *([self.first_type] * len(content)), *self.middle_types,
                                      *([self.second_type] * len(pair)), *self.suffix_types]
        return item


class PairDocumentWindows(DocumentWindows):
    """Documents with a second text: each window of a document's tokens (under ``spec``, whose budget leaves room
    for the pair) followed by the document's ``pairs`` tokens in the tokenizer's pair template."""

    def __init__(self, tokens: list[list[int]], pairs: list[list[int]], labels: Sequence | None, spec: WindowSpec,
                 template: PairTemplate, seed: int = 0):
        super().__init__(tokens, labels, spec, template, seed)
        self.pairs = pairs
        self.lengths = [len(doc) + len(pair) for doc, pair in zip(tokens, pairs, strict=True)]

    def windows(self, index: int) -> list[dict[str, list[int]]]:
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}") if self.spec.is_random else None
        return [self.special.wrap(content, self.pairs[index])
                for content in select_windows(self.tokens[index], self.spec, rng)]
