"""Tokenising single texts and pairs once, padding per batch, and length-grouped shuffled batching.

Special tokens come from the tokenizer (its post-processor adds CLS/SEP or ``<s>``/``</s>``); padding uses the
tokenizer's own ``pad_token_id`` and padding side, and the attention mask is built from sequence lengths, so it is 0
exactly on padding whatever the pad id is. Nothing here hard-codes a token id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from .data.examples import Examples


class EncodedDataset(Dataset):
    """Token ids (unpadded) per example, with labels; built once per split and reused every epoch."""

    def __init__(self, features: list[dict[str, list[int]]], labels: Sequence | None, ids: Sequence[str]):
        self.features = features
        self.labels = labels
        self.ids = list(ids)
        self.lengths = [len(feature["input_ids"]) for feature in features]

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.features[index])
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item


def encode(examples: Examples, tokenizer, max_len: int, batch_size: int = 1000) -> EncodedDataset:
    """Tokenise every example once (fast tokenizer, batched), truncating pairs longest-first to ``max_len``."""
    features: list[dict[str, list[int]]] = []
    for start in range(0, len(examples), batch_size):
        stop = start + batch_size
        second = examples.text_b[start:stop] if examples.text_b is not None else None
        encoded = tokenizer(
            examples.text_a[start:stop], second, truncation=True, max_length=max_len,
            return_attention_mask=False, return_token_type_ids="token_type_ids" in tokenizer.model_input_names,
        )
        keys = [key for key in ("input_ids", "token_type_ids") if key in encoded]
        features.extend({key: encoded[key][row] for key in keys} for row in range(len(encoded["input_ids"])))
    return EncodedDataset(features, examples.labels, examples.ids)


class PadCollator:
    """Pad a list of encoded examples to the longest in the batch; attention mask from lengths.

    Returns tensors: input_ids (B, T), attention_mask (B, T), token_type_ids (B, T) when present, labels (B,).
    """

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None, regression: bool = False):
        if tokenizer.pad_token_id is None:
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no pad token; set tokenizer.pad_token first")
        self.pad_id = tokenizer.pad_token_id
        self.left = tokenizer.padding_side == "left"
        self.multiple = pad_to_multiple_of
        self.regression = regression

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(item["input_ids"]) for item in items]
        width = max(lengths)
        if self.multiple:
            width = math.ceil(width / self.multiple) * self.multiple
        batch = {
            "input_ids": torch.full((len(items), width), self.pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(items), width), dtype=torch.long),
        }
        if "token_type_ids" in items[0]:
            batch["token_type_ids"] = torch.zeros((len(items), width), dtype=torch.long)
        for row, (item, length) in enumerate(zip(items, lengths, strict=True)):
            span = slice(width - length, width) if self.left else slice(0, length)
            batch["input_ids"][row, span] = torch.tensor(item["input_ids"])
            batch["attention_mask"][row, span] = 1
            if "token_type_ids" in batch:
                batch["token_type_ids"][row, span] = torch.tensor(item["token_type_ids"])
        if "labels" in items[0]:
            dtype = torch.float if self.regression else torch.long
            batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=dtype)
        return batch


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar length: less padding, still a different random order every epoch.

    Each epoch: shuffle all indices, cut them into mega-batches of ``batch_size * group_factor``, sort each mega-batch
    by length, cut into batches, and shuffle the batch order. ``group_factor=0`` gives plain shuffled batches.
    The permutation depends on (seed, epoch) only, so a resumed run sees the same order.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group_factor: int = 50,
                 drop_last: bool = False):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_factor = group_factor
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.group_factor > 0:
            size = self.batch_size * self.group_factor
            groups = [sorted(order[i:i + size], key=self.lengths.__getitem__, reverse=True)
                      for i in range(0, len(order), size)]
            order = [index for group in groups for index in group]
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        rng.shuffle(batches)
        yield from batches


# padded tokens per prediction batch on a CPU (train.predict), where large batches of long inputs are slower (512
# tokens: 4 a batch, 1.36x faster than 32 on a 2-core EPYC; docs/benchmarks.md)
CPU_PREDICT_TOKENS = 2048


class SortedBatchSampler(Sampler[list[int]]):
    """Evaluation batches sorted by length (least padding); callers restore the original order from the indices.

    ``max_tokens``: a batch also holds at most this many padded tokens (its longest example x its size; never fewer
    than one example), so long inputs come in smaller batches than short ones.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, max_tokens: int | None = None):
        self.batches: list[list[int]] = []
        for index in sorted(range(len(lengths)), key=lengths.__getitem__):  # ascending: the newest is the longest
            last = self.batches[-1] if self.batches else None
            if last is None or len(last) >= batch_size or (
                    max_tokens is not None and (len(last) + 1) * lengths[index] > max_tokens):
                self.batches.append([index])
            else:
                last.append(index)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches
