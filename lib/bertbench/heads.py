"""Sentence representations and the small heads researchers put on an encoder, saved and loaded with it.

- :func:`pool`: ``cls`` (the first non-padding token: CLS / ``<s>``, also under left padding), ``pooler`` (the
  model's ``pooler_output``, where it has a pooler), ``mean`` / ``max`` / ``sum`` over non-padding tokens.
- :class:`SequenceClassifier`: representation -> dropout -> linear. ``problem_type`` follows transformers:
  ``single_label_classification`` (softmax + cross-entropy; binary is two classes, never one output under argmax),
  ``regression`` (one output, MSE) or ``multi_label_classification`` (sigmoid + BCE per label). ``-100`` labels are
  ignored.
- :class:`MultitaskModel`: one shared encoder, one head per task; every batch names its task and goes to that
  task's head only (:class:`MultitaskBatchSampler` builds single-task batches and mixes them across tasks).
- :class:`TwoInputModel`: the bi-encoder. The shared encoder reads the two texts separately, their representations
  ``u``, ``v`` are fused (``mean``, ``max``, ``concat`` = [u; v], or ``concat_diff`` = [u; v; |u - v|], Sentence-BERT's
  classification input) and one head decides — against the cross-encoder that reads ``[CLS] a [SEP] b [SEP]``.

Every model returns a transformers ``SequenceClassifierOutput`` and saves as a folder: ``encoder/`` (the encoder's
own ``save_pretrained``, safetensors, loadable by ``AutoModel`` alone), ``head.safetensors`` and ``head_config.json``
(the head's kind and arguments, read back as JSON data, never executed). Head widths come from the encoder's
``hidden_size``; nothing is sized for BERT-base.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Sampler

from .encoding import EncodedDataset, LengthGroupedBatchSampler, PadCollator

POOLINGS = ("cls", "pooler", "mean", "max", "sum")
FUSIONS = ("mean", "max", "concat", "concat_diff")
PROBLEM_TYPES = ("single_label_classification", "regression", "multi_label_classification")
HEAD_FILE, HEAD_CONFIG, ENCODER_DIR = "head.safetensors", "head_config.json", "encoder"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str,
         pooler_output: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, H) token states -> (B, H) sentence vectors, ignoring padding (``attention_mask`` 0)."""
    mask = attention_mask.bool()  # (B, T)
    if how == "cls":
        first = mask.int().argmax(dim=1)  # first attended position: CLS under right and left padding
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    if how == "pooler":
        if pooler_output is None:
            raise ValueError("pooling 'pooler': this encoder has no pooler (pooler_output is None); "
                             "use 'cls', 'mean', 'max' or 'sum'")
        return pooler_output
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if how == "sum":
        return (hidden * weights).sum(dim=1)
    if how == "mean":
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    if how == "max":
        return hidden.masked_fill(~mask.unsqueeze(-1), torch.finfo(hidden.dtype).min).amax(dim=1)
    raise ValueError(f"pooling: {how!r} is not one of {POOLINGS}")


def head_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str) -> torch.Tensor:
    """The loss of ``problem_type`` with ``-100`` labels ignored (every row ignored -> 0, not NaN)."""
    if problem_type == "single_label_classification":
        if (labels != -100).any():
            return F.cross_entropy(logits.float(), labels.long(), ignore_index=-100)
        return logits.sum() * 0.0
    if problem_type == "regression":
        target = labels.float().view(-1)
        keep = target != -100
        return F.mse_loss(logits.float().view(-1)[keep], target[keep]) if keep.any() else logits.sum() * 0.0
    if problem_type == "multi_label_classification":
        target = labels.float()
        keep = target != -100
        losses = F.binary_cross_entropy_with_logits(logits.float(), target.clamp(min=0), reduction="none")
        return losses[keep].mean() if keep.any() else logits.sum() * 0.0
    raise ValueError(f"problem_type: {problem_type!r} is not one of {PROBLEM_TYPES}")


def check_problem(num_labels: int, problem_type: str) -> None:
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type: {problem_type!r} is not one of {PROBLEM_TYPES}")
    if problem_type == "regression" and num_labels != 1:
        raise ValueError(f"regression has one output, not num_labels={num_labels}")
    if problem_type == "single_label_classification" and num_labels < 2:
        raise ValueError(f"single-label classification needs num_labels >= 2 (got {num_labels}): a binary task is "
                         "two classes under softmax; one output under cross-entropy + argmax learns nothing")


class LinearHead(nn.Module):
    """Dropout then one linear layer: the simplest custom classifier (and the probes' form)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(features))


def load_encoder(name: str, tokenizer=None, max_len: int = 512, dropout: float | None = None,
                 attention_dropout: float | None = None, trust_remote_code: bool = False):
    """A bare encoder (``AutoModel``): packaged alias, folder, hub name, or ``random-bert-LxH`` sized to
    ``tokenizer``. A fine-tuned ``*ForSequenceClassification`` folder gives its encoder (its head is dropped)."""
    from transformers import AutoConfig, AutoModel, BertModel

    from .models import check_safe_weights, is_random, random_bert_config, resolve_model

    if is_random(name):
        if tokenizer is None:
            raise ValueError(f"{name}: a random encoder takes its vocabulary from a tokenizer; pass one")
        config = random_bert_config(name, tokenizer, max_len)
        if dropout is not None:
            config.hidden_dropout_prob = dropout
        if attention_dropout is not None:
            config.attention_probs_dropout_prob = attention_dropout
        return BertModel(config)
    path = resolve_model(name)
    check_safe_weights(path)
    extra = {}
    if dropout is not None:
        extra["hidden_dropout_prob"] = dropout
    if attention_dropout is not None:
        extra["attention_probs_dropout_prob"] = attention_dropout
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
    return AutoModel.from_pretrained(path, config=config, trust_remote_code=trust_remote_code, use_safetensors=True)


class HeadModel(nn.Module):
    """An encoder with an own head; subclasses set ``kind`` and build their head from JSON-able arguments."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[HeadModel]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            HeadModel.registry[cls.kind] = cls

    def __init__(self, encoder: nn.Module, **head_args):
        super().__init__()
        self.encoder = encoder
        self.head_args = head_args

    @property
    def config(self):
        return self.encoder.config

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def represent(self, input_ids, attention_mask, token_type_ids=None, pooling: str = "mean") -> torch.Tensor:
        """(B, H) pooled sentence vectors from the encoder's last layer."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        out = self.encoder(**inputs)
        return pool(out.last_hidden_state, attention_mask, pooling, getattr(out, "pooler_output", None))

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {key: value.contiguous() for key, value in self.state_dict().items()
                if not key.startswith(ENCODER_DIR + ".")}

    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True, **_ignored) -> None:
        """``folder/encoder`` (the encoder's save_pretrained), ``head.safetensors``, ``head_config.json``."""
        from safetensors.torch import save_file

        if not safe_serialization:
            raise ValueError("bertbench saves weights as safetensors only")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder / ENCODER_DIR, safe_serialization=True)
        save_file(self.head_state_dict(), str(folder / HEAD_FILE))
        (folder / HEAD_CONFIG).write_text(json.dumps({"kind": self.kind, "args": self.head_args}, indent=1) + "\n")

    @classmethod
    def from_pretrained(cls, folder: str | Path, use_safetensors: bool = True, trust_remote_code: bool = False,
                        **_ignored) -> HeadModel:
        """Rebuild the model saved by :meth:`save_pretrained` (``HeadModel.from_pretrained`` reads any kind)."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        from .models import check_safe_weights

        folder = Path(folder)
        config_file = folder / HEAD_CONFIG
        if not config_file.is_file():
            raise FileNotFoundError(f"{folder}: no {HEAD_CONFIG}; not a folder saved by a bertbench head model")
        spec = json.loads(config_file.read_text())
        kind = spec.get("kind")
        if kind not in HeadModel.registry:
            raise ValueError(f"{config_file}: unknown head kind {kind!r}; known: {sorted(HeadModel.registry)}")
        target = HeadModel.registry[kind]
        if cls is not HeadModel and target is not cls:
            raise ValueError(f"{folder} holds a {target.__name__}, not a {cls.__name__}")
        check_safe_weights(folder / ENCODER_DIR)
        encoder = AutoModel.from_pretrained(folder / ENCODER_DIR, use_safetensors=True,
                                            trust_remote_code=trust_remote_code)
        model = target(encoder, **spec.get("args", {}))
        missing, unexpected = model.load_state_dict(load_file(str(folder / HEAD_FILE)), strict=False)
        missing = [key for key in missing if not key.startswith(ENCODER_DIR + ".")]
        if missing or unexpected:
            raise ValueError(f"{folder / HEAD_FILE}: missing {missing}, unexpected {unexpected} head weights")
        return model


def _output(loss, logits):
    from transformers.modeling_outputs import SequenceClassifierOutput

    return SequenceClassifierOutput(loss=loss, logits=logits)


class SequenceClassifier(HeadModel):
    """Encoder -> pooled representation -> dropout -> linear, for one task."""

    kind = "sequence_classifier"

    def __init__(self, encoder: nn.Module, num_labels: int, problem_type: str = "single_label_classification",
                 pooling: str = "mean", dropout: float = 0.1):
        check_problem(num_labels, problem_type)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: {pooling!r} is not one of {POOLINGS}")
        super().__init__(encoder, num_labels=num_labels, problem_type=problem_type, pooling=pooling, dropout=dropout)
        self.problem_type, self.pooling = problem_type, pooling
        self.classifier = LinearHead(self.hidden_size, num_labels, dropout)

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None, **_unused):
        logits = self.classifier(self.represent(input_ids, attention_mask, token_type_ids, self.pooling))  # (B, K)
        loss = head_loss(logits, labels, self.problem_type) if labels is not None else None
        return _output(loss, logits)


class MultitaskModel(HeadModel):
    """One shared encoder, one head per task; ``forward(..., task=name)`` uses that task's head only.

    ``tasks`` maps a task name to ``{"num_labels": K, "problem_type": ...}``.
    """

    kind = "multitask"

    def __init__(self, encoder: nn.Module, tasks: Mapping[str, Mapping[str, object]], pooling: str = "mean",
                 dropout: float = 0.1):
        if not tasks:
            raise ValueError("tasks: at least one task")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: {pooling!r} is not one of {POOLINGS}")
        tasks = {name: {"num_labels": int(spec["num_labels"]), "problem_type": str(spec["problem_type"])}
                 for name, spec in tasks.items()}
        for spec in tasks.values():
            check_problem(spec["num_labels"], spec["problem_type"])
        super().__init__(encoder, tasks=tasks, pooling=pooling, dropout=dropout)
        self.tasks, self.pooling = tasks, pooling
        self.heads = nn.ModuleDict({name: LinearHead(self.hidden_size, spec["num_labels"], dropout)
                                    for name, spec in tasks.items()})

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None, task: str | None = None,
                **_unused):
        if task not in self.heads:
            raise KeyError(f"batch for task {task!r}, but the heads are {sorted(self.heads)}")
        logits = self.heads[task](self.represent(input_ids, attention_mask, token_type_ids, self.pooling))
        loss = head_loss(logits, labels, self.tasks[task]["problem_type"]) if labels is not None else None
        return _output(loss, logits)


class TwoInputModel(HeadModel):
    """Bi-encoder: both texts through the same encoder separately, representations fused, one head."""

    kind = "two_input"

    def __init__(self, encoder: nn.Module, num_labels: int, problem_type: str = "single_label_classification",
                 pooling: str = "mean", fusion: str = "concat_diff", dropout: float = 0.1):
        check_problem(num_labels, problem_type)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: {pooling!r} is not one of {POOLINGS}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion: {fusion!r} is not one of {FUSIONS}")
        super().__init__(encoder, num_labels=num_labels, problem_type=problem_type, pooling=pooling,
                         fusion=fusion, dropout=dropout)
        self.problem_type, self.pooling, self.fusion = problem_type, pooling, fusion
        width = {"mean": 1, "max": 1, "concat": 2, "concat_diff": 3}[fusion] * self.hidden_size
        self.classifier = LinearHead(width, num_labels, dropout)

    def fuse(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, H), (B, H) -> (B, H) for mean/max, (B, 2H) for concat, (B, 3H) for concat_diff."""
        if self.fusion == "mean":
            return (u + v) / 2
        if self.fusion == "max":
            return torch.maximum(u, v)
        if self.fusion == "concat":
            return torch.cat([u, v], dim=-1)
        return torch.cat([u, v, (u - v).abs()], dim=-1)

    def forward(self, input_ids, attention_mask, input_ids_b, attention_mask_b, token_type_ids=None,
                token_type_ids_b=None, labels=None, **_unused):
        u = self.represent(input_ids, attention_mask, token_type_ids, self.pooling)  # (B, H)
        v = self.represent(input_ids_b, attention_mask_b, token_type_ids_b, self.pooling)  # (B, H)
        logits = self.classifier(self.fuse(u, v))
        loss = head_loss(logits, labels, self.problem_type) if labels is not None else None
        return _output(loss, logits)


# ---------------------------------------------------------------------------------------------------------------------
# Data plumbing for the two models that do not read one padded batch.


class PairDataset(Dataset):
    """Two texts encoded separately (``encode`` on each side); items carry ``*_b`` keys for the second text."""

    def __init__(self, first: EncodedDataset, second: EncodedDataset):
        if len(first) != len(second):
            raise ValueError(f"the two sides differ in length: {len(first)} vs {len(second)}")
        self.first, self.second = first, second
        self.labels = first.labels
        self.lengths = [a + b for a, b in zip(first.lengths, second.lengths, strict=True)]

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, index: int) -> dict:
        item = self.first[index]
        item.update({f"{key}_b": value for key, value in self.second.features[index].items()})
        return item


class PairCollator:
    """Pads each side on its own (:class:`PadCollator`); the second side's tensors get a ``_b`` suffix."""

    def __init__(self, tokenizer, regression: bool = False):
        self.pad = PadCollator(tokenizer, regression=regression)

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        first = [{key: value for key, value in item.items() if not key.endswith("_b")} for item in items]
        second = [{key.removesuffix("_b"): value for key, value in item.items() if key.endswith("_b")}
                  for item in items]
        batch = self.pad(first)
        batch.update({f"{key}_b": value for key, value in self.pad(second).items()})
        return batch


class TaskDataset(Dataset):
    """Several tasks' encoded sets end to end; each item names its task."""

    def __init__(self, sets: Mapping[str, EncodedDataset]):
        self.names = list(sets)
        self.sets = dict(sets)
        self.offsets: dict[str, int] = {}
        total = 0
        for name in self.names:
            self.offsets[name] = total
            total += len(self.sets[name])
        self.total = total

    def __len__(self) -> int:
        return self.total

    def locate(self, index: int) -> tuple[str, int]:
        for name in reversed(self.names):
            if index >= self.offsets[name]:
                return name, index - self.offsets[name]
        raise IndexError(index)

    def __getitem__(self, index: int) -> dict:
        name, local = self.locate(index)
        return {**self.sets[name][local], "task": name}


class TaskCollator:
    """Pads a single-task batch and adds ``task``; a batch mixing tasks is refused (it would reach one head)."""

    def __init__(self, tokenizer, regression_tasks: Sequence[str] = ()):
        self.plain = PadCollator(tokenizer)
        self.regression = PadCollator(tokenizer, regression=True)
        self.regression_tasks = set(regression_tasks)

    def __call__(self, items: list[dict]) -> dict:
        names = {item["task"] for item in items}
        if len(names) != 1:
            raise ValueError(f"a batch mixes tasks {sorted(names)}; batches must come from one task")
        (name,) = names
        pad = self.regression if name in self.regression_tasks else self.plain
        batch = pad([{key: value for key, value in item.items() if key != "task"} for item in items])
        batch["task"] = name
        return batch


class MultitaskBatchSampler(Sampler[list[int]]):
    """Single-task batches (length-grouped within the task), all tasks' batches shuffled together each epoch.

    Every example is seen once per epoch, so an epoch costs what the single-task epochs cost together
    (examples-proportional mixing). The order depends on (seed, epoch) only.
    """

    def __init__(self, dataset: TaskDataset, batch_size: int, seed: int, group_factor: int = 50):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.samplers = {name: LengthGroupedBatchSampler(dataset.sets[name].lengths, batch_size, seed=seed,
                                                         group_factor=group_factor)
                         for name in dataset.names}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for sampler in self.samplers.values():
            sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return sum(len(sampler) for sampler in self.samplers.values())

    def __iter__(self) -> Iterator[list[int]]:
        batches = [[self.dataset.offsets[name] + index for index in batch]
                   for name, sampler in self.samplers.items() for batch in sampler]
        random.Random(f"multitask-{self.seed}-{self.epoch}").shuffle(batches)
        yield from batches

