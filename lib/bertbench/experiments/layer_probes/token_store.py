"""Token states of every layer for QA windows, streamed to disk in bounded memory and read back memory-mapped.

SQuAD 2.0 dev alone is about 12,000 windows of 384 tokens: with a 768-wide encoder one layer's states are 7 GB in
float16 and its 13 layers 92 GB, more than a machine holds. So the states never exist whole in memory: each batch of
windows goes through the encoder once, and every layer's part of it is appended to that layer's ``.npy`` file
(float16, (F, T, H), T = the longest window, zeros on padding) before the next batch is read; peak memory is one
batch's hidden states. Readers open the files memory-mapped (:meth:`TokenStates.layer`) and copy only the windows
they use (the span probes read them in chunks: :func:`~bertbench.experiments.layer_probes.probes.fit_span_probe`).

A QA checkpoint (``*ForQuestionAnswering``) also writes its own start/end logits, (F, T) float32, so that its head is
decoded and scored exactly as the probes are.

Cache entries live under ``runs/cache/probe_states/tokens-<key>/``, keyed by the weights' SHA-1, the windows' token
ids and the tokenizer. A folder is written under a temporary name and renamed when complete
(:func:`~bertbench.checkpoint.replace_folder`): an entry is whole or absent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...checkpoint import replace_folder
from ...encoding import PadCollator
from ...paths import runs_dir
from .states import _on, frozen_autocast, frozen_precision, load_frozen, model_fingerprint

MANIFEST = "manifest.json"
HEAD_LOGITS = ("start_logits", "end_logits")


@dataclasses.dataclass(frozen=True)
class TokenStates:
    """One cache entry: ``layers`` files of (``windows``, ``width``, ``hidden``) float16 states."""

    folder: Path
    layers: int  # L + 1 (layer 0 = the embeddings)
    windows: int
    width: int
    hidden: int
    has_head_logits: bool = False

    @classmethod
    def open(cls, folder: str | Path) -> TokenStates:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
        return cls(Path(folder), manifest["layers"], manifest["windows"], manifest["width"], manifest["hidden"],
                   manifest["head_logits"])

    def __len__(self) -> int:
        return self.layers

    def layer(self, index: int) -> np.ndarray:
        """Layer ``index``'s states, (F, T, H) float16, memory-mapped read-only: nothing is read until indexed."""
        if not 0 <= index < self.layers:
            raise IndexError(f"layer {index}: the encoder has layers 0..{self.layers - 1}")
        return np.load(self.folder / f"layer{index}.npy", mmap_mode="r")

    def head_logits(self) -> tuple[np.ndarray, np.ndarray]:
        """The QA head's own start and end logits, (F, T) float32 each (positions past a window's end are 0)."""
        if not self.has_head_logits:
            raise ValueError(f"{self.folder}: the encoder had no question-answering head")
        return tuple(np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in HEAD_LOGITS)

    @property
    def layer_bytes(self) -> int:
        return self.windows * self.width * self.hidden * 2


class _NpyAppender:
    """An ``.npy`` file of a known shape written front to back, a block of rows at a time: plain writes, no memory
    map, so no part of the file stays in this process's memory."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype):
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
        self.handle = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.handle, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                           "fortran_order": False, "shape": shape})
        self.rows = 0

    def append(self, block: np.ndarray) -> None:
        if block.shape[1:] != self.shape[1:] or block.dtype != self.dtype:
            raise ValueError(f"{self.path.name}: a block of {block.shape} {block.dtype}, rows of {self.shape[1:]} "
                             f"{self.dtype} expected")
        self.handle.write(np.ascontiguousarray(block).data)
        self.rows += block.shape[0]

    def close(self) -> None:
        self.handle.close()
        if self.rows != self.shape[0]:
            raise RuntimeError(f"{self.path}: {self.rows} rows written of {self.shape[0]}")


def _windows_digest(features) -> str:
    """SHA-1 of every window's token ids, fed one window at a time (a JSON text of all ids would be a string as large
    as the dataset)."""
    digest = hashlib.sha1()
    for ids in features.input_ids:
        digest.update(len(ids).to_bytes(4, "little"))
        digest.update(np.asarray(ids, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _cache_folder(key: dict) -> Path:
    blob = json.dumps(key, sort_keys=True)
    folder = runs_dir() / "cache" / "probe_states"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"tokens-{hashlib.sha1(blob.encode()).hexdigest()[:16]}"


_TORCH_DTYPES = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}


def _padded(block: torch.Tensor, width: int, dtype) -> np.ndarray:
    """(B, T_b, ...) on any device -> (B, width, ...) numpy on the CPU, zeros past T_b."""
    out = np.zeros((block.shape[0], width, *block.shape[2:]), dtype=dtype)
    out[:, :block.shape[1]] = block.detach().to(_TORCH_DTYPES[np.dtype(dtype)]).cpu().numpy()
    return out


@torch.no_grad()
def _write(model, tokenizer, features, folder: Path, batch_size: int, desc: str, key: dict) -> None:
    collate = PadCollator(tokenizer)
    collate.left = False  # positions are counted from a window's first token: padding goes to the right
    width = max(len(ids) for ids in features.input_ids)
    files: list[_NpyAppender] = []
    head: list[_NpyAppender] = []
    for start in tqdm(range(0, len(features), batch_size), desc=desc, leave=False, mininterval=2.0):
        items = []
        for i in range(start, min(start + batch_size, len(features))):
            item = {"input_ids": features.input_ids[i]}
            if features.token_type_ids is not None:
                item["token_type_ids"] = features.token_type_ids[i]
            items.append(item)
        batch = _on(model, collate(items))
        with frozen_autocast(model):
            out = model(**batch, output_hidden_states=True)
        real = batch["attention_mask"].unsqueeze(-1)  # (B, T_b, 1): padding stored as zeros, whatever the batch
        hidden = [layer * real for layer in out.hidden_states]  # L+1 x (B, T_b, H)
        if not files:
            files = [_NpyAppender(folder / f"layer{index}.npy", (len(features), width, layer.shape[-1]), np.float16)
                     for index, layer in enumerate(hidden)]
            if getattr(out, "start_logits", None) is not None:
                head = [_NpyAppender(folder / f"{name}.npy", (len(features), width), np.float32)
                        for name in HEAD_LOGITS]
        for file, layer in zip(files, hidden, strict=True):
            file.append(_padded(layer, width, np.float16))  # (B, T, H)
        for file, name in zip(head, HEAD_LOGITS, strict=False):
            file.append(_padded(getattr(out, name) * real[..., 0], width, np.float32))  # (B, T)
    for file in files + head:
        file.close()  # and checks that every row was written
    manifest = {"layers": len(files), "windows": len(features), "width": width, "hidden": files[0].shape[-1],
                "head_logits": bool(head), "key": key}
    (folder / MANIFEST).write_text(json.dumps(manifest, sort_keys=True))


def token_states(name: str, tokenizer, features, *, batch_size: int = 32, trust_remote_code: bool = False,
                 desc: str = "token states", model=None) -> TokenStates:
    """Token states of every layer for QA windows (``features`` from :func:`bertbench.data.squad.build_features`),
    computed batch by batch into one float16 ``.npy`` file per layer, or found in the cache.

    Args:
        name: the encoder (a folder, packaged alias or hub name; not a random model, which has no stable weights).
        batch_size: windows per forward pass: the only part of the states held in memory at once.
        model: the loaded encoder (default: :func:`~bertbench.experiments.layer_probes.states.load_frozen`).

    Returns:
        The cache entry; :meth:`TokenStates.layer` opens a layer memory-mapped.
    """
    if len(features) == 0:
        raise ValueError("token_states: no windows")
    key = {"model": model_fingerprint(name), "windows": _windows_digest(features), "tokenizer": tokenizer.name_or_path,
           "format": "npy-per-layer"}
    if (precision := frozen_precision()) != "no":  # fp32 keys stay as they were: earlier caches still match
        key["precision"] = precision
    folder = _cache_folder(key)
    if (folder / MANIFEST).is_file():
        return TokenStates.open(folder)
    model = model if model is not None else load_frozen(name, trust_remote_code)
    replace_folder(folder, lambda temporary: _write(model, tokenizer, features, temporary, batch_size, desc, key))
    return TokenStates.open(folder)
