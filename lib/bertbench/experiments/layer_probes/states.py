"""Frozen encoders and the pooled sentence states of every layer, computed once per (model weights, texts, settings)
and cached on disk (token states for QA windows: :mod:`.token_store`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ...data.examples import Examples
from ...encoding import PadCollator, SortedBatchSampler, encode
from ...heads import pool
from ...models import check_safe_weights, is_random, resolve_model
from ...paths import runs_dir

SENTENCE_POOLINGS = ("cls", "mean")


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


def load_frozen(name: str, trust_remote_code: bool = False, device: torch.device | str | None = None):
    """The encoder for probing, in eval mode with gradients off, on ``device`` (default: the GPU when there is one):
    a ``*ForSequenceClassification`` or ``*ForQuestionAnswering`` checkpoint keeps its head (its own predictions are
    reported next to the probes), anything else loads as ``AutoModel``."""
    from transformers import AutoConfig, AutoModel, AutoModelForQuestionAnswering, AutoModelForSequenceClassification

    path = resolve_model(name)
    check_safe_weights(path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    architectures = config.architectures or []
    auto = AutoModel
    if any(arch.endswith("ForSequenceClassification") for arch in architectures):
        auto = AutoModelForSequenceClassification
    elif any(arch.endswith("ForQuestionAnswering") for arch in architectures):
        auto = AutoModelForQuestionAnswering
    model = auto.from_pretrained(path, trust_remote_code=trust_remote_code, use_safetensors=True)
    model.eval().requires_grad_(False)
    return model.to(device if device is not None else default_device())


def default_device() -> torch.device:
    """Where frozen encoders run: the first CUDA device when there is one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def frozen_precision(device: torch.device | None = None) -> str:
    """The precision frozen encoders run in: bf16 autocast on a CUDA GPU that has it, else fp32 (``"no"``), as the
    training notebooks' ``mixed_precision="auto"`` on a GPU. Part of the state caches' keys, named in the rows."""
    device = device or default_device()
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"


def frozen_autocast(model):
    """The autocast context of :func:`frozen_precision` for ``model``'s device (a no-op in fp32)."""
    device = next(model.parameters()).device
    if frozen_precision(device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _on(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


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
    if (precision := frozen_precision()) != "no":  # fp32 keys stay as they were: earlier caches still match
        key["precision"] = precision
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
        batch = _on(model, batch)
        with frozen_autocast(model):
            out = model(**batch, output_hidden_states=True)
        layers = torch.stack(out.hidden_states).float()  # (L+1, B, T, H)
        for how in poolings:
            per_layer = torch.stack([pool(layer, batch["attention_mask"], how) for layer in layers])
            pooled[how].append(per_layer.float().cpu())
        if getattr(out, "logits", None) is not None:
            logits.append(out.logits.float().cpu())
        order.extend(indices)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))  # back to the examples' order
    states = {how: torch.cat(parts, dim=1)[:, inverse].contiguous() for how, parts in pooled.items()}
    if logits:
        states["logits"] = torch.cat(logits)[inverse].contiguous()
    save_file(states, str(path), metadata={"key": json.dumps(key, sort_keys=True)})
    return states
