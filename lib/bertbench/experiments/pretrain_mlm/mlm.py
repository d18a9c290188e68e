"""Notebook 02's masked-LM pieces: the encoder and its sizes, the packed token stream, dynamic masking with sparse
prediction, and the held-out evaluations (MLM loss and accuracy, pseudo-perplexity)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ... import dist
from ...data.corpus import batched

# name -> (layers, hidden); heads = hidden / 64 and feed-forward = 4 * hidden as in BERT
SIZES = {"nano": (2, 64), "tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512),
         "base": (12, 768)}
ARCHS = ("bert", "roberta-preln")


# ---------------------------------------------------------------- model


def build_mlm_model(arch: str, size: str, tokenizer, max_len: int = 128, dropout: float = 0.1):
    """A randomly initialised masked-LM encoder sized ``size``, with the tokenizer's vocabulary and special ids."""
    from transformers import BertConfig, BertForMaskedLM, RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM

    layers, hidden = SIZES[size]
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, pad_token_id=tokenizer.pad_token_id, type_vocab_size=2)
    if arch == "bert":
        return BertForMaskedLM(BertConfig(max_position_embeddings=max(512, max_len), **common))
    # RoBERTa counts positions from pad_token_id + 1 (padding sits at position pad_token_id), so the table needs that
    # many extra rows: max_len + 2 with RoBERTa's <pad> = 1, as roberta-base's 514
    config = RobertaPreLayerNormConfig(max_position_embeddings=max(512, max_len) + tokenizer.pad_token_id + 1,
                                       bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                                       **common)
    return RobertaPreLayerNormForMaskedLM(config)


def mlm_head(model) -> torch.nn.Module:
    """The prediction head (transform + vocabulary projection) of a ``*ForMaskedLM`` model."""
    for name in ("cls", "lm_head"):
        if hasattr(model, name):
            return getattr(model, name)
    raise TypeError(f"{type(model).__name__} has no MLM head (cls / lm_head)")


def mlm_outputs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the labelled positions only, and their labels.

    Args:
        batch: input_ids, attention_mask, token_type_ids (B, T) and labels (B, T) with -100 where unlabelled.

    Returns:
        logits (M, V) and labels (M,), M = number of labelled positions.
    """
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              token_type_ids=batch["token_type_ids"]).last_hidden_state  # (B, T, H)
    selected = batch["labels"] != -100  # (B, T)
    return mlm_head(model)(hidden[selected]), batch["labels"][selected]  # (M, V), (M,)


def mlm_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits, labels = mlm_outputs(model, batch)
    if labels.numel() == 0:  # nothing masked in this batch (possible only for tiny batches)
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)


class MaskedLMObjective(torch.nn.Module):
    """An MLM model whose forward is the masked-LM loss of a batch (:func:`mlm_loss`): the module a training loop
    hands to Accelerate, since DDP syncs gradients only through the forward of the module it wraps, and the loss
    calls the encoder and its head separately (logits only at the masked positions)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return mlm_loss(self.model, batch)


def train_flops_per_token(model, seq_len: int, mask_prob: float) -> float:
    """Training FLOPs per token: 6 x encoder weights + attention (PaLM's 12 L H T), plus the head on masked tokens."""
    config = model.config
    encoder = sum(p.numel() for p in model.base_model.encoder.parameters())
    head = sum(p.numel() for p in mlm_head(model).parameters() if p.ndim == 2)  # transform + vocabulary projection
    attention = 12 * config.num_hidden_layers * config.hidden_size * seq_len
    return 6.0 * encoder + attention + 6.0 * mask_prob * head


# ---------------------------------------------------------------- data


def token_stream(corpus, tokenizer, cache_dir: Path, desc: str = "tokenise") -> np.ndarray:
    """All documents of ``corpus`` tokenised without special tokens, each followed by SEP, as one flat array.

    Written once to ``cache_dir`` (keyed by corpus and tokenizer) and memory-mapped afterwards, so a corpus larger
    than memory works and later runs skip tokenisation.
    """
    from ..train_tokenizer import plain_backend

    backend = plain_backend(tokenizer)
    key = hashlib.sha1((backend.to_str() + f"|{corpus.name}|{corpus.max_docs}").encode()).hexdigest()[:16]
    path = cache_dir / f"{key}.bin"
    dtype = np.uint16 if len(tokenizer) < 2**16 else np.int32
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        sep = tokenizer.sep_token_id
        with open(temporary, "wb") as handle:
            for batch in tqdm(batched(corpus, 256), desc=desc, unit=" x256 docs", mininterval=2.0, leave=False):
                for encoding in backend.encode_batch(batch, add_special_tokens=False):
                    np.asarray(encoding.ids + [sep], dtype=dtype).tofile(handle)
        temporary.replace(path)  # atomic: an interrupted run never leaves a half cache
    return np.memmap(path, dtype=dtype, mode="r")


def pack(stream: np.ndarray, block_indices, content_len: int, cls_id: int, sep_id: int) -> torch.Tensor:
    """``[CLS] block [SEP]`` for each block index: (B, content_len + 2) token ids."""
    rows = [np.asarray(stream[i * content_len:(i + 1) * content_len], dtype=np.int64) for i in block_indices]
    body = torch.from_numpy(np.stack(rows))  # (B, C)
    column = lambda token_id: torch.full((len(rows), 1), token_id, dtype=torch.long)  # noqa: E731
    return torch.cat([column(cls_id), body, column(sep_id)], dim=1)  # (B, C + 2)


@dataclasses.dataclass(frozen=True)
class Masker:
    """BERT's dynamic masking with the tokenizer's own ids (nothing hard-coded)."""

    special_ids: torch.Tensor  # ids never selected (CLS, SEP, PAD, MASK, UNK ...)
    mask_id: int
    random_ids: torch.Tensor  # ids a selected position may be replaced with (the non-special vocabulary)
    mask_prob: float = 0.15
    mask_replace: float = 0.8
    random_replace: float = 0.1

    @classmethod
    def from_tokenizer(cls, tokenizer, **rates: float) -> Masker:
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        vocabulary = torch.arange(len(tokenizer))
        return cls(special, tokenizer.mask_token_id, vocabulary[~torch.isin(vocabulary, special)], **rates)

    def __call__(self, input_ids: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Mask a (B, T) batch; returns input_ids, labels (-100 where not selected), attention_mask, token_type_ids.

        Every draw is made for every position (no data-dependent shapes), so the generator advances identically
        whatever the batch holds — a resumed run draws the same masks.
        """
        eligible = ~torch.isin(input_ids, self.special_ids)  # (B, T)
        selected = (torch.rand(input_ids.shape, generator=generator) < self.mask_prob) & eligible
        roll = torch.rand(input_ids.shape, generator=generator)
        replacement = self.random_ids[torch.randint(len(self.random_ids), input_ids.shape, generator=generator)]
        corrupted = torch.where(selected & (roll < self.mask_replace), self.mask_id, input_ids)
        to_random = selected & (roll >= self.mask_replace) & (roll < self.mask_replace + self.random_replace)
        corrupted = torch.where(to_random, replacement, corrupted)
        return {"input_ids": corrupted, "labels": torch.where(selected, input_ids, -100),
                "attention_mask": torch.ones_like(input_ids), "token_type_ids": torch.zeros_like(input_ids)}


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_mlm(model, batches: list[dict[str, torch.Tensor]], device, autocast) -> dict[str, float]:
    """Mean MLM loss and accuracy over fixed pre-masked batches (the same masks at every evaluation). In a
    distributed launch each process scores every ``world``-th batch and the sums are added up."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    count = 0
    for batch in batches[dist.rank()::dist.world_size()]:
        batch = {key: value.to(device) for key, value in batch.items()}
        with autocast():
            logits, labels = mlm_outputs(model, batch)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        correct += (logits.argmax(-1) == labels).sum()
        count += labels.numel()
    model.train(was_training)
    loss_total, correct_total, count = dist.sum_across([loss_sum, correct, count], device)
    return {"loss": loss_total / max(1, count), "accuracy": correct_total / max(1, count)}


@torch.no_grad()
def pseudo_perplexity(model, blocks: torch.Tensor, masker: Masker, device, autocast, batch_size: int = 64) -> float:
    """exp of the mean negative log-likelihood of each non-special token with only that token masked.

    Args:
        blocks: (N, T) packed token ids (in a distributed launch each process scores every ``world``-th block).
    """
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    for block in blocks[dist.rank()::dist.world_size()]:
        positions = torch.nonzero(~torch.isin(block, masker.special_ids)).flatten()  # (P,)
        for chunk in positions.split(batch_size):
            inputs = block.repeat(len(chunk), 1)  # (n, T): row r has position chunk[r] masked
            rows = torch.arange(len(chunk))
            inputs[rows, chunk] = masker.mask_id
            inputs = inputs.to(device)
            with autocast():
                hidden = model.base_model(input_ids=inputs, attention_mask=torch.ones_like(inputs),
                                          token_type_ids=torch.zeros_like(inputs)).last_hidden_state  # (n, T, H)
                logits = mlm_head(model)(hidden[rows.to(device), chunk.to(device)])  # (n, V)
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            nll -= float(log_probs.gather(1, block[chunk].to(device).unsqueeze(1)).sum())
            count += len(chunk)
    model.train(was_training)
    nll, count = dist.sum_across([nll, count], device)
    return math.exp(nll / max(1, count))


