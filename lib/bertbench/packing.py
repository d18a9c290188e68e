"""Padding-free (packed) batches for sequence classification: a batch's examples concatenated into one row, each
example's positions restarting at 0, no padding token anywhere.

transformers finds the examples' boundaries from the position ids: flash-attention's variable-length kernel
(``flash_attention_2``) then attends within each example with no padding computed at all, which is where packing
pays; SDPA and eager attention get a block-diagonal mask over the whole row instead (correct, but quadratic in the
row's length, so slower than padding on them). Hence ``BB_PACKING=auto`` (the default) packs only where the model runs
flash-attention's kernel, and the padded path (``encoding.PadCollator``) is taken everywhere else; ``on`` packs on any
kernel (how the tests check packed against padded logits on CPU), ``off`` never.

Classification reads one vector per example: the [CLS] token (first position of each example, through the
checkpoint's own pooler for a transformers ``*ForSequenceClassification`` of the BERT kind) or a pooling of its tokens
(bertbench's own :class:`~bertbench.heads.SequenceClassifier`), both computed per example from the packed row.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .heads import SequenceClassifier, head_loss

PACKING = ("auto", "on", "off")


def packing_setting() -> str:
    """``BB_PACKING`` (default ``auto``), checked against :data:`PACKING`."""
    value = os.environ.get("BB_PACKING", "").strip() or "auto"
    if value not in PACKING:
        raise ValueError(f"BB_PACKING={value!r}: choose one of {', '.join(PACKING)}")
    return value


class PackedCollator:
    """Encoded examples -> one packed row: ``input_ids``, ``token_type_ids`` (when the examples have them) and
    ``position_ids`` (1, N); ``example_index`` (N,) the example each token belongs to; ``starts`` (B,) the first
    token of each; ``labels`` (B,); ``num_examples`` B (an int: the loop counts examples with it)."""

    def __init__(self, regression: bool = False):
        self.regression = regression

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor | int]:
        lengths = torch.tensor([len(item["input_ids"]) for item in items])
        if (lengths == 0).any():
            raise ValueError("an empty example cannot be packed (it has no [CLS] token)")
        starts = torch.cumsum(lengths, 0) - lengths
        batch: dict[str, torch.Tensor | int] = {
            "input_ids": torch.tensor([token for item in items for token in item["input_ids"]]).unsqueeze(0),
            "position_ids": torch.cat([torch.arange(int(n)) for n in lengths]).unsqueeze(0),
            "example_index": torch.repeat_interleave(torch.arange(len(items)), lengths),
            "starts": starts,
            "num_examples": len(items),
        }
        if "token_type_ids" in items[0]:
            batch["token_type_ids"] = torch.tensor([t for item in items for t in item["token_type_ids"]]).unsqueeze(0)
        if "labels" in items[0]:
            dtype = torch.float if self.regression else torch.long
            batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=dtype)
        return batch


def _encoder_inputs(batch: dict) -> dict[str, torch.Tensor]:
    # no attention mask: transformers reads the examples' boundaries from the restarting position ids
    return {key: batch[key] for key in ("input_ids", "token_type_ids", "position_ids") if key in batch}


def _bert_kind(model) -> bool:
    """A transformers ``*ForSequenceClassification`` that classifies the pooled [CLS] vector (BERT, MiniLM, ...)."""
    base = getattr(model, "base_model", None)
    return (base is not None and base is not model and isinstance(getattr(model, "classifier", None), nn.Linear)
            and getattr(base, "pooler", None) is not None and isinstance(getattr(model, "dropout", None), nn.Dropout))


def packable(model) -> bool:
    """Whether :func:`packed_logits` knows ``model``'s head: bertbench's :class:`SequenceClassifier` (any pooling but
    ``pooler``) or a BERT-kind transformers classifier (:func:`_bert_kind`)."""
    if isinstance(model, SequenceClassifier):
        return model.pooling != "pooler"
    return _bert_kind(model)


def _segment_pool(hidden: torch.Tensor, batch: dict, how: str) -> torch.Tensor:
    """(N, H) packed token states -> (B, H), pooled within each example as ``heads.pool`` does on a padded batch."""
    index, count = batch["example_index"], int(batch["starts"].shape[0])
    if how == "cls":
        return hidden[batch["starts"]]
    zeros = hidden.new_zeros(count, hidden.shape[1])
    if how in ("sum", "mean"):
        total = zeros.index_add(0, index, hidden)
        if how == "sum":
            return total
        sizes = torch.bincount(index, minlength=count).clamp(min=1).to(hidden.dtype).unsqueeze(1)
        return total / sizes
    if how == "max":
        return zeros.scatter_reduce(0, index.unsqueeze(1).expand_as(hidden), hidden, "amax", include_self=False)
    raise ValueError(f"pooling {how!r} cannot be packed")


def packed_logits(model, batch: dict) -> torch.Tensor:
    """(B, K) logits of a packed batch, equal (to float tolerance) to the model's on the same examples padded."""
    if isinstance(model, SequenceClassifier):
        hidden = model.encoder(**_encoder_inputs(batch)).last_hidden_state[0]  # (N, H)
        return model.classifier(_segment_pool(hidden, batch, model.pooling))
    if not _bert_kind(model):
        raise ValueError(f"{type(model).__name__}: no packed path for this head (BB_PACKING=off pads instead)")
    base = model.base_model
    hidden = base(**_encoder_inputs(batch)).last_hidden_state[0]  # (N, H)
    pooled = base.pooler(hidden[batch["starts"]].unsqueeze(1))  # the pooler reads position 0 of each row
    return model.classifier(model.dropout(pooled))


def _problem_type(model) -> str:
    if isinstance(model, SequenceClassifier):
        return model.problem_type
    config = model.config
    return config.problem_type or ("regression" if config.num_labels == 1 else "single_label_classification")


class PackedObjective(nn.Module):
    """``model`` with the loss of a packed batch as its forward: what the training loop hands to Accelerate when it
    packs (DDP syncs gradients only through the forward of the module it wraps)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> torch.Tensor:
        return head_loss(packed_logits(self.model, batch), batch["labels"], _problem_type(self.model))


def use_packing(model, setting: str | None = None) -> bool:
    """Whether to train ``model`` on packed batches: ``BB_PACKING`` (:func:`packing_setting`); ``auto`` packs where the
    model runs flash-attention's variable-length kernel and its head has a packed path."""
    from .models import attention_of

    setting = setting or packing_setting()
    if setting == "off":
        return False
    if not packable(model):
        if setting == "on":
            raise ValueError(f"BB_PACKING=on: {type(model).__name__} has no packed path (BB_PACKING=auto or off)")
        return False
    return setting == "on" or attention_of(model) == "flash_attention_2"
