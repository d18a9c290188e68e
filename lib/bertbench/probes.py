"""Layer-wise probes on a frozen encoder: what each layer's states make linearly readable, before and after fine-tuning.

The study of notebook 05 (the CS224N depth-and-fine-tuning probes): the encoder is frozen, its hidden states of every
layer (layer 0 = the embeddings) are computed once and cached on disk, and a softmax-regression probe (dropout +
linear) is trained on each layer independently.

- Sentence probes for any GLUE / text-label task: the CLS vector or mean pooling of each layer (``poolings``).
- Span probes for extractive QA (SQuAD 2.0 JSON): a start and an end probe per layer over token states; no-answer is
  the first position, predicted when the null score beats the best span by more than a threshold chosen on the probe's
  training questions (never on the questions it is scored on). Scored with the official exact match / F1.
- Every curve is drawn with its floor: the majority class (or always "no answer"), so that a flat curve at the
  floor is read as "nothing linearly decodable", not as "constant feature quality" (CS224N: all layer-1 SQuAD probes
  at 52.12 F1 = always no-answer).
- Control task (Hewitt & Liang 2019, adapted to sentences): ``word_type`` gives every word type a random label and an
  example the label of its first word — a function of the words that carries no task meaning;
  ``example`` gives every example a random label. Selectivity = task accuracy - control accuracy.
- Probe weights are saved (safetensors) next to the cached states, one file per (model, task, pooling, layer).

The probe objective is mean cross-entropy + ``weight_decay``/2 ||W||^2 (bias not penalised), features standardised
with the training set's mean and standard deviation (stored in the probe), i.e. L2-regularised multinomial logistic
regression when dropout is 0 — tested against scikit-learn's.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import metrics as M
from .checkpoint import existing_folder, remove_training_state, replace_folder, start_or_skip
from .config import BaseConfig, check_choice, check_range, check_training_fields
from .data.examples import Examples
from .data.glue import get_task, load_glue
from .encoding import PadCollator, SortedBatchSampler, encode
from .heads import pool
from .models import check_safe_weights, configure_threads, is_random, load_tokenizer, resolve_model
from .paths import runs_dir
from .results import check_writable, make_rows, write_results
from .train import device_description

NOTEBOOK = "05_layer_probes"
CONTROLS = ("", "word_type", "example")
SENTENCE_POOLINGS = ("cls", "mean")


@dataclasses.dataclass(frozen=True)
class ProbeConfig(BaseConfig):
    """Notebook 05 (probes). Every field is ``BB_<FIELD>``."""

    preset: str = "cpu"
    model: str = "minilm"
    tokenizer: str = ""  # default: the model's own ("minilm" for random models)
    tasks: tuple[str, ...] = ("sst2", "cola")
    # "auto": the GLUE notebook's fine-tuned checkpoint of `model` for each task (runs/glue/<run id>/best; trained
    # when missing, with GLUE's preset and `finetune_overrides`); a folder (one task only); "" = pretrained only.
    finetuned: str = "auto"
    finetune_overrides: str = "sst2.max_train_examples=0;sst2.epochs=2;cola.max_train_examples=0"  # GLUE syntax
    poolings: tuple[str, ...] = SENTENCE_POOLINGS
    max_probe_train_examples: int = 4000  # random subset of the training split for the probes (seed 0); 0 = all
    max_eval_examples: int = 0  # cap on dev examples (tests only); 0 = all
    max_len: int = 128
    batch_size: int = 64  # feature extraction
    probe_epochs: int = 30
    probe_lr: float = 1e-3
    probe_batch_size: int = 64
    probe_dropout: float = 0.1
    probe_weight_decay: float = 1e-4  # L2 on the probe weights
    control: str = "word_type"  # "", "word_type" or "example"
    seed: int = 0
    squad_train: str = ""  # SQuAD 2.0 JSON files; span probes run when both are set
    squad_dev: str = ""
    squad_max_len: int = 384
    doc_stride: int = 128
    max_answer_len: int = 30
    max_squad_examples: int = 0  # cap on questions per file; 0 = all
    num_threads: int = 0
    trust_remote_code: bool = False
    resume: bool = True  # skip runs already in the results file, keep the probes an interrupted run finished

    PRESETS = {
        "tiny": dict(model="random-bert-2x64", finetune_overrides="", max_probe_train_examples=64,
                     max_eval_examples=32, max_len=64, batch_size=32, probe_epochs=5, probe_lr=1e-2,
                     squad_max_len=64, doc_stride=16),
        "cpu": {},
        "full": dict(max_probe_train_examples=0, probe_epochs=50),
    }

    def validate(self) -> None:
        super().validate()
        if not self.tasks and not self.squad_train:
            raise ValueError("tasks: at least one task (or squad_train/squad_dev for span probes)")
        for task in self.tasks:
            get_task(task)
        for pooling in self.poolings:
            check_choice("poolings", pooling, SENTENCE_POOLINGS)
        check_choice("control", self.control, CONTROLS)
        check_training_fields(self)
        for name in ("max_probe_train_examples", "max_eval_examples", "max_squad_examples"):
            check_range(name, getattr(self, name), 0)
        check_range("probe_epochs", self.probe_epochs, 1)
        check_range("probe_lr", self.probe_lr, 0, 1, low_open=True)
        check_range("probe_batch_size", self.probe_batch_size, 1)
        check_range("probe_dropout", self.probe_dropout, 0, 1)
        check_range("probe_weight_decay", self.probe_weight_decay, 0)
        check_range("squad_max_len", self.squad_max_len, 32, 4096)
        check_range("doc_stride", self.doc_stride, 1, self.squad_max_len)
        check_range("max_answer_len", self.max_answer_len, 1)
        if bool(self.squad_train) != bool(self.squad_dev):
            raise ValueError("squad_train and squad_dev: set both (span probes train on one and score on the other)")
        if self.finetuned not in ("", "auto") and len(self.tasks) != 1:
            raise ValueError(f"finetuned: a folder belongs to one task; tasks are {self.tasks} (use 'auto')")


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
# Hidden states, computed once per (model, texts, settings) and cached on disk.


def model_fingerprint(name: str) -> str:
    """Identifies the weights a cache entry came from: the weight files' SHA-1 for folders, the name otherwise."""
    if is_random(name):
        raise ValueError(f"{name}: a random model has no stable weights to cache states for; save it first")
    path = Path(resolve_model(name))
    if not path.is_dir():
        return name  # a hub name: its revision is what the hub serves (online users only)
    files = sorted(path.glob("*.safetensors"))
    # every split of every probe asks; hash each weight file once per (path, size, mtime)
    return _files_sha1(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=32)
def _files_sha1(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha1()
    for file, _size, _mtime in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def load_frozen(name: str, trust_remote_code: bool = False):
    """The encoder for probing, in eval mode with gradients off: a ``*ForSequenceClassification`` checkpoint keeps its
    head (its own predictions are reported next to the probes), anything else loads as ``AutoModel``."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    path = resolve_model(name)
    check_safe_weights(path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    has_head = any(arch.endswith("ForSequenceClassification") for arch in (config.architectures or []))
    auto = AutoModelForSequenceClassification if has_head else AutoModel
    model = auto.from_pretrained(path, trust_remote_code=trust_remote_code, use_safetensors=True)
    model.eval().requires_grad_(False)
    return model


def _cache_file(kind: str, key: dict) -> Path:
    blob = json.dumps(key, sort_keys=True)
    folder = runs_dir() / "cache" / "probe_states"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{kind}-{hashlib.sha1(blob.encode()).hexdigest()[:16]}.safetensors"


@torch.no_grad()
def sentence_states(name: str, tokenizer, examples: Examples, *, max_len: int, poolings=SENTENCE_POOLINGS,
                    batch_size: int = 64, trust_remote_code: bool = False, desc: str = "states",
                    model=None) -> dict[str, torch.Tensor]:
    """Pooled states of every layer: ``{pooling: (L+1, N, H)}``, plus ``"logits"`` (N, K) when the checkpoint has a
    classification head. Read from the cache when this model (by its weights), these texts and settings were seen."""
    from safetensors.torch import load_file, save_file

    texts = hashlib.sha1(json.dumps([examples.text_a, examples.text_b]).encode()).hexdigest()
    key = {"model": model_fingerprint(name), "texts": texts, "max_len": max_len, "poolings": sorted(poolings),
           "tokenizer": tokenizer.name_or_path, "vocab": len(tokenizer)}
    path = _cache_file("sentence", key)
    if path.is_file():
        return load_file(str(path))
    model = model if model is not None else load_frozen(name, trust_remote_code)
    dataset = encode(examples, tokenizer, max_len)
    collate = PadCollator(tokenizer)
    pooled: dict[str, list[torch.Tensor]] = {how: [] for how in poolings}
    logits, order = [], []
    for indices in tqdm(SortedBatchSampler(dataset.lengths, batch_size), desc=desc, leave=False, mininterval=2.0):
        batch = collate([{k: v for k, v in dataset[i].items() if k != "labels"} for i in indices])
        out = model(**batch, output_hidden_states=True)
        layers = torch.stack(out.hidden_states)  # (L+1, B, T, H)
        for how in poolings:
            pooled[how].append(torch.stack([pool(layer, batch["attention_mask"], how) for layer in layers]))
        if getattr(out, "logits", None) is not None:
            logits.append(out.logits.float())
        order.extend(indices)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))  # back to the examples' order
    states = {how: torch.cat(parts, dim=1)[:, inverse].contiguous() for how, parts in pooled.items()}
    if logits:
        states["logits"] = torch.cat(logits)[inverse].contiguous()
    save_file(states, str(path), metadata={"key": json.dumps(key, sort_keys=True)})
    return states


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


@torch.no_grad()
def token_states(name: str, tokenizer, features, *, batch_size: int = 32, trust_remote_code: bool = False,
                 desc: str = "token states", model=None) -> list[Path]:
    """Token states of every layer for QA windows, cached as one float16 file per layer (a probe of layer k reads
    one file): returns the L+1 paths. Each file holds ``states`` (F, T, H) with T = the longest window."""
    from safetensors.torch import save_file

    ids_hash = hashlib.sha1(json.dumps(features.input_ids).encode()).hexdigest()
    key = {"model": model_fingerprint(name), "windows": ids_hash, "tokenizer": tokenizer.name_or_path}
    first = _cache_file("tokens-layer0", key)
    if first.is_file():
        paths = sorted(first.parent.glob(first.name.replace("layer0", "layer*")),
                       key=lambda p: int(re.search(r"layer(\d+)", p.name).group(1)))
        if paths:
            return paths
    model = model if model is not None else load_frozen(name, trust_remote_code)
    collate = PadCollator(tokenizer)
    width = max(len(ids) for ids in features.input_ids)
    per_layer: list[torch.Tensor] | None = None
    for start in tqdm(range(0, len(features), batch_size), desc=desc, leave=False, mininterval=2.0):
        items = []
        for i in range(start, min(start + batch_size, len(features))):
            item = {"input_ids": features.input_ids[i]}
            if features.token_type_ids is not None:
                item["token_type_ids"] = features.token_type_ids[i]
            items.append(item)
        batch = collate(items)
        hidden = model(**batch, output_hidden_states=True).hidden_states  # L+1 x (B, T_b, H)
        if per_layer is None:
            per_layer = [torch.zeros(len(features), width, layer.shape[-1], dtype=torch.float16) for layer in hidden]
        for store, layer in zip(per_layer, hidden, strict=True):
            store[start:start + layer.shape[0], :layer.shape[1]] = layer.to(torch.float16)
    paths = []
    for index, store in enumerate(per_layer or []):
        path = _cache_file(f"tokens-layer{index}", key)
        save_file({"states": store}, str(path))
        paths.append(path)
    return paths


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


# ---------------------------------------------------------------------------------------------------------------------
# The study.


def finetune_config(cfg: ProbeConfig, task: str, source: str):
    """The GLUE notebook's config that fine-tunes ``source`` (``cfg.model`` or its saved random init) on ``task`` for
    the probes, with the same preset."""
    from .glue_finetune import GlueConfig

    glue = GlueConfig.from_env({}, preset=cfg.preset, model=source, tokenizer=cfg.tokenizer, tasks=(task,),
                               seeds=(cfg.seed,), task_overrides=cfg.finetune_overrides, num_threads=cfg.num_threads,
                               trust_remote_code=cfg.trust_remote_code)
    return glue.for_task(task).replace(keep_checkpoints=True)


def finetuned_checkpoint(cfg: ProbeConfig, task: str, source: str, verbose: bool = True) -> tuple[str, str]:
    """(folder, run id) of ``cfg.model`` fine-tuned on ``task``: ``cfg.finetuned`` if it is a folder, else the GLUE
    notebook's checkpoint ``runs/glue/<run id>/best``, trained now (rows to ``runs/probes/finetune.csv``) if missing."""
    from .glue_finetune import load_task_data, run_id_for, run_task_seed

    if cfg.finetuned not in ("", "auto"):
        return resolve_model(cfg.finetuned), Path(cfg.finetuned).name
    glue = finetune_config(cfg, task, source)
    run_id = run_id_for(glue, task, cfg.seed)
    folder = runs_dir() / "glue" / run_id / "best"
    if not (folder / "config.json").is_file():
        if verbose:
            print(f"[{task}] no fine-tuned checkpoint {folder}; fine-tuning {cfg.model} with the GLUE notebook's "
                  f"{cfg.preset} preset first")
        data = load_task_data(glue, get_task(task))
        run_task_seed(glue, task, cfg.seed, data, runs_dir() / "probes" / "finetune.csv", verbose=verbose)
    return str(folder), run_id


def _probe_data(cfg: ProbeConfig, task) -> tuple[Examples, Examples]:
    train = load_glue(task, "train").subsample(cfg.max_probe_train_examples, seed=0)
    dev = load_glue(task, task.eval_splits[0])
    if cfg.max_eval_examples:
        dev = dev.select(range(min(len(dev), cfg.max_eval_examples)))
    return train, dev


PROGRESS = "progress"


class ProbeProgress:
    """The probes of one run finished so far and their result entries, in ``folder/entries.json`` (written through a
    temporary folder, :func:`~bertbench.checkpoint.replace_folder`); a folder of another run is ignored."""

    def __init__(self, folder: Path, run_id: str):
        self.folder, self.run_id, self.done = folder, run_id, {}
        found = existing_folder(folder, "entries.json")
        if found is not None:
            saved = json.loads((found / "entries.json").read_text())
            if saved.get("run_id") == run_id:
                self.done = {key: [tuple(entry) for entry in entries] for key, entries in saved["done"].items()}

    def add(self, key: str, entries: list[tuple]) -> None:
        self.done[key] = entries
        blob = json.dumps({"run_id": self.run_id, "done": self.done})
        replace_folder(self.folder, lambda folder: (folder / "entries.json").write_text(blob))


def _save_probe(probe: nn.Module, folder: Path, name: str) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in probe.state_dict().items()}, str(folder / f"{name}.safetensors"))


def probe_task(cfg: ProbeConfig, task_name: str, model_name: str, init: str, tokenizer, results_path: Path,
               run_label: str, verbose: bool = True) -> pd.DataFrame:
    """Every layer x pooling probe (and control probe) of one model on one task; rows written when done."""
    started = time.perf_counter()
    task = get_task(task_name)
    if task.is_regression:
        raise ValueError(f"{task.name}: sentence probes are classifiers; a regression task has no classes")
    run_id = f"{run_label}-{task.name}-{hashlib.sha1(cfg.to_json().encode()).hexdigest()[:8]}"
    weights_dir = runs_dir() / "probes" / run_id
    done = start_or_skip(cfg.resume, results_path, run_id, weights_dir / PROGRESS,
                         f"{task.name} {init}" if verbose else "")
    if done is not None:
        return done
    train, dev = _probe_data(cfg, task)
    states = {split: sentence_states(model_name, tokenizer, ex, max_len=cfg.max_len, poolings=cfg.poolings,
                                     batch_size=cfg.batch_size, trust_remote_code=cfg.trust_remote_code,
                                     desc=f"{task.name} {split} states ({init})")
              for split, ex in (("train", train), ("dev", dev))}
    k = task.num_labels
    distribution = np.bincount(np.asarray(train.labels), minlength=k) / len(train)
    targets = {"probe": (train.labels, dev.labels)}
    if cfg.control:
        targets["control"] = (control_labels(train, cfg.control, k, distribution, cfg.seed),
                              control_labels(dev, cfg.control, k, distribution, cfg.seed))
    # (variant, split, layer, metric, value) of every probe trained so far, saved after each: a resumed run
    # continues with the next probe (each probe depends on its own seed only)
    progress = ProbeProgress(weights_dir / PROGRESS, run_id)
    entries: list[tuple[str, str, int, str, float]] = []
    layers = next(iter(states["train"].values())).shape[0]
    bar = tqdm(total=len(cfg.poolings) * layers * len(targets), desc=f"{task.name} probes ({init})", leave=False)
    for how in cfg.poolings:
        for layer in range(layers):
            x_train, x_dev = states["train"][how][layer], states["dev"][how][layer]
            for kind, (labels_train, labels_dev) in targets.items():
                key = f"{kind}-{how}-layer{layer}"
                if key in progress.done:
                    entries += progress.done[key]
                    bar.update()
                    continue
                probe = fit_probe(x_train, torch.tensor(labels_train), k, dropout=cfg.probe_dropout,
                                  weight_decay=cfg.probe_weight_decay, epochs=cfg.probe_epochs, lr=cfg.probe_lr,
                                  batch_size=cfg.probe_batch_size, seed=cfg.seed)
                _save_probe(probe, weights_dir, key)
                variant = f"{kind}:{how}" + (f":{cfg.control}" if kind == "control" else "")
                probe_entries = []
                for split, x, labels in (("train", x_train, labels_train), ("dev", x_dev, labels_dev)):
                    values = M.task_metrics(task, probe_logits(probe, x), labels)
                    if kind == "control":
                        values = {"accuracy": values["accuracy"]}
                    probe_entries += [(variant, split, layer, metric, value) for metric, value in values.items()]
                entries += probe_entries
                progress.add(key, probe_entries)
                bar.update()
    bar.close()
    # Floors and ceiling: the majority class of the training subset, and the fine-tuned model's own head.
    majority = np.zeros((len(dev), k))
    majority[:, majority_label(train.labels)] = 1.0
    entries += [("majority", "dev", -1, metric, value)
                for metric, value in M.task_metrics(task, majority, dev.labels).items()]
    if "logits" in states["dev"] and states["dev"]["logits"].shape[-1] == k:
        entries += [("full_model", "dev", -1, metric, value)
                    for metric, value in M.task_metrics(task, states["dev"]["logits"].numpy(), dev.labels).items()]
    rows = _rows(cfg, run_id, task.name, init, model_name, len(train), started, entries)
    write_results(rows, results_path)
    remove_training_state(weights_dir / PROGRESS)
    if verbose:
        frame = pd.DataFrame(rows)
        best = frame[(frame["split"] == "dev") & (frame["metric"] == "accuracy") &
                     frame["variant"].str.startswith("probe:")].sort_values("value", kind="stable").iloc[-1]
        floor = next(e[4] for e in entries if e[0] == "majority" and e[3] == "accuracy")
        print(f"[{task.name} {init}] best probe dev accuracy {best['value']:.4f} ({best['variant']}, layer "
              f"{best['layer']}); majority class {floor:.4f}")
    return pd.DataFrame(rows)


def _rows(cfg: ProbeConfig, run_id: str, task: str, init: str, model_name: str, train_examples: int, started: float,
          entries: list[tuple[str, str, int, str, float]], max_len: int | None = None) -> list[dict]:
    from .glue_finetune import model_label

    common = {"run_id": run_id, "notebook": NOTEBOOK, "preset": cfg.preset, "model": model_label(cfg.model),
              "task": task, "seed": cfg.seed, "init": init, "head_init": "probe", "selection": "last_epoch",
              "max_len": max_len or cfg.max_len, "train_examples": train_examples,
              "device": device_description(torch.device("cpu")), "wall_s": round(time.perf_counter() - started, 2),
              "config": json.dumps({**cfg.recorded(), "encoder": model_name}, sort_keys=True)}
    rows = []
    for (variant, layer), group in itertools.groupby(entries, key=lambda entry: (entry[0], entry[2])):
        step = -1 if variant in ("majority", "full_model", "always_no_answer") else cfg.probe_epochs
        rows += make_rows({**common, "variant": variant, "layer": layer},
                          [(split, step, metric, value) for _, split, _, metric, value in group])
    return rows


def probe_squad(cfg: ProbeConfig, model_name: str, init: str, tokenizer, results_path: Path, run_label: str,
                verbose: bool = True) -> pd.DataFrame:
    """Start/end span probes per layer on SQuAD 2.0 files; EM/F1 on ``squad_dev`` with the threshold chosen on
    ``squad_train``, next to the always-no-answer baseline."""
    from safetensors.torch import load_file

    from .data import squad

    started = time.perf_counter()
    files = {"train": squad.read_squad(cfg.squad_train), "dev": squad.read_squad(cfg.squad_dev)}
    if cfg.max_squad_examples:
        files = {split: examples[:cfg.max_squad_examples] for split, examples in files.items()}
    features = {split: squad.build_features(examples, tokenizer, cfg.squad_max_len, cfg.doc_stride)
                for split, examples in files.items()}
    paths = {split: token_states(model_name, tokenizer, features[split], batch_size=cfg.batch_size,
                                 trust_remote_code=cfg.trust_remote_code, desc=f"squad {split} states ({init})")
             for split in files}
    run_id = f"{run_label}-squad-{hashlib.sha1(cfg.to_json().encode()).hexdigest()[:8]}"
    entries: list[tuple[str, str, int, str, float]] = []
    for layer in tqdm(range(len(paths["train"])), desc=f"squad probes ({init})", leave=False):
        states = {split: load_file(str(paths[split][layer]))["states"] for split in files}
        masks = {split: context_mask(features[split], states[split].shape[1]) for split in files}
        probe = fit_span_probe(states["train"], masks["train"], torch.tensor(features["train"].start_positions),
                               torch.tensor(features["train"].end_positions), dropout=cfg.probe_dropout,
                               weight_decay=cfg.probe_weight_decay, epochs=cfg.probe_epochs, lr=cfg.probe_lr,
                               batch_size=cfg.probe_batch_size, seed=cfg.seed)
        _save_probe(probe, runs_dir() / "probes" / run_id, f"span-layer{layer}")
        decoded = {split: squad.decode_spans(features[split], *span_logits(probe, states[split], masks[split]),
                                             files[split], max_answer_len=cfg.max_answer_len) for split in files}
        threshold, _, _ = squad.best_null_threshold(files["train"], decoded["train"])
        for split in files:
            scores = squad.squad_scores(files[split], squad.apply_null_threshold(decoded[split], threshold))
            entries += [("span_probe", split, layer, metric, value) for metric, value in scores.items()
                        if not metric.endswith("total")]
        entries.append(("span_probe", "train", layer, "null_threshold", threshold))
    baseline = squad.no_answer_baseline(files["dev"])
    entries += [("always_no_answer", "dev", -1, metric, value) for metric, value in baseline.items()
                if not metric.endswith("total")]
    rows = _rows(cfg, run_id, "squad2", init, model_name, len(files["train"]), started, entries, cfg.squad_max_len)
    write_results(rows, results_path)
    if verbose:
        best = max((e for e in entries if e[1] == "dev" and e[3] == "f1"), key=lambda e: e[4])
        print(f"[squad2 {init}] best span probe dev F1 {best[4]:.2f} (layer {best[2]}); always no-answer "
              f"{baseline['f1']:.2f}")
    return pd.DataFrame(rows)


def run_probes(cfg: ProbeConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """The pretrained model and its fine-tuned checkpoint(s), probed on every task (and SQuAD when given)."""
    check_writable(results_path)
    results_path = Path(results_path)
    configure_threads(cfg.num_threads)
    pretrained = _pretrained_source(cfg)
    tokenizer = load_tokenizer(cfg.tokenizer or pretrained, trust_remote_code=cfg.trust_remote_code)
    frames = []
    for task_name in cfg.tasks:
        task = get_task(task_name)
        models = [(pretrained, "pretrained", "pretrained")]
        if cfg.finetuned:
            folder, run_id = finetuned_checkpoint(cfg, task.name, pretrained, verbose)
            models.append((folder, "finetuned", f"finetuned-{run_id}"))
        for name, init, label in models:
            frames.append(probe_task(cfg, task.name, name, init, tokenizer, results_path, label, verbose))
    if cfg.squad_train:
        frames.append(probe_squad(cfg, pretrained, "pretrained", tokenizer, results_path, "pretrained", verbose))
    return pd.concat(frames, ignore_index=True)


def _pretrained_source(cfg: ProbeConfig) -> str:
    """A folder with the pretrained weights. A random model (tiny preset) is built once, saved under runs/ with the
    tokenizer, and reused, so the pretrained and fine-tuned states of a test come from fixed weights."""
    if not is_random(cfg.model):
        return cfg.model
    from transformers import BertModel, set_seed

    from .models import random_bert_config

    folder = runs_dir() / "probes" / f"{cfg.model}-seed{cfg.seed}"
    if not (folder / "config.json").is_file():
        tokenizer = load_tokenizer(cfg.tokenizer or "minilm")
        set_seed(cfg.seed)
        BertModel(random_bert_config(cfg.model, tokenizer, cfg.max_len)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return str(folder)


def probe_summary(frame: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Dev ``metric`` per (task, init, variant, layer): one row per curve point, floors and ceilings as layer -1."""
    dev = frame[(frame["split"] == "dev") & (frame["metric"] == metric)]
    table = dev[["task", "init", "variant", "layer", "value"]].rename(columns={"value": metric})
    return table.sort_values(["task", "init", "variant", "layer"]).reset_index(drop=True)


def selectivity(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, init, pooling, layer): probe dev accuracy - control dev accuracy."""
    dev = frame[(frame["split"] == "dev") & (frame["metric"] == "accuracy")]
    probe = dev[dev["variant"].str.startswith("probe:")].assign(pooling=lambda d: d["variant"].str.split(":").str[1])
    control = dev[dev["variant"].str.startswith("control:")].assign(
        pooling=lambda d: d["variant"].str.split(":").str[1])
    keys = ["task", "init", "pooling", "layer"]
    merged = probe[keys + ["value"]].merge(control[keys + ["value"]], on=keys, suffixes=("_probe", "_control"))
    merged["selectivity"] = merged["value_probe"] - merged["value_control"]
    return merged.rename(columns={"value_probe": "probe_accuracy", "value_control": "control_accuracy"})


def plot_layer_curves(frame: pd.DataFrame, path: str | Path, metric: str = "accuracy"):
    """One panel per (task, pooling): probe dev ``metric`` per layer, pretrained vs fine-tuned, with the control
    probe (thin), the majority-class floor (dashed) and the fine-tuned model's own head (dotted)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    table = probe_summary(frame[frame["task"] != "squad2"], metric)
    probes = table[table["variant"].str.startswith("probe:")]
    tasks = list(dict.fromkeys(probes["task"]))
    poolings = list(dict.fromkeys(probes["variant"].str.split(":").str[1]))
    fig, axes = plt.subplots(len(tasks), len(poolings), figsize=(4.8 * len(poolings), 3.6 * len(tasks)),
                             squeeze=False, sharex=True)
    colours = {"pretrained": "tab:blue", "finetuned": "tab:orange"}
    for row, task in enumerate(tasks):
        part = table[table["task"] == task]
        for col, how in enumerate(poolings):
            ax = axes[row][col]
            for init, colour in colours.items():
                for prefix, style in (("probe:", dict(lw=2, marker="o")), ("control:", dict(lw=1, alpha=0.6))):
                    curve = part[(part["init"] == init) & part["variant"].str.startswith(f"{prefix}{how}")]
                    if len(curve):
                        label = f"{init}" + (" (control task)" if prefix == "control:" else "")
                        ax.plot(curve["layer"], curve[metric], color=colour, label=label, **style)
            floor = part[part["variant"] == "majority"][metric]
            if len(floor):
                ax.axhline(floor.iloc[0], color="grey", ls="--", label="majority class")
            ceiling = part[part["variant"] == "full_model"][metric]
            if len(ceiling):
                ax.axhline(ceiling.iloc[0], color="tab:orange", ls=":", label="fine-tuned model's own head")
            ax.set_title(f"{task}, {how} pooling")
            ax.set_xlabel("layer (0 = embeddings)")
            ax.set_ylabel(f"dev {metric}")
            ax.grid(alpha=0.3)
        for ax in axes[row]:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return fig
