"""Span probes on SQuAD 2.0 for notebook 05: per layer a start and an end probe over frozen token states, on the
pretrained encoder and on the same encoder after each epoch of QA fine-tuning (:mod:`.squad_finetune`), next to the
always-no-answer floor and each fine-tuned model's own QA head; and the curves' panel of the notebook's figure.

Probes and fine-tuned heads are scored alike: windows decoded to the best span per question
(:func:`~bertbench.data.squad.decode_spans`), "no answer" where the null score beats it by more than a threshold
chosen on the training questions (never on the questions scored), the official exact match and F1. Token states are
streamed to disk and read back in chunks (:mod:`.token_store`), so memory does not grow with the number of windows.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...checkpoint import remove_training_state, start_or_skip
from ...data import squad
from ...paths import runs_dir
from ...results import write_results
from .probes import context_mask, fit_span_probe, span_logits
from .saved import save_probe
from .squad_finetune import TASK, finetune_squad
from .study import PROGRESS, ProbeConfig, ProbeProgress, _portable, _rows, probe_summary
from .token_store import token_states

SPLITS = ("train", "dev")


class SquadData:
    """The questions and windows of both SQuAD files, read and built once (when first needed) for every model."""

    def __init__(self, cfg: ProbeConfig, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer

    @functools.cached_property
    def train_file(self) -> list[squad.QAExample]:
        """Every question of ``squad_train``: what QA fine-tuning trains on."""
        return squad.read_squad(self.cfg.squad_train)

    @functools.cached_property
    def examples(self) -> dict[str, list[squad.QAExample]]:
        """The questions the probes train on (``train``) and are scored on (``dev``): the first
        ``max_squad_examples`` of each file (0 = all)."""
        files = {"train": self.train_file, "dev": squad.read_squad(self.cfg.squad_dev)}
        cap = self.cfg.max_squad_examples
        return {split: examples[:cap] if cap else examples for split, examples in files.items()}

    @functools.cached_property
    def features(self) -> dict[str, squad.QAFeatures]:
        return {split: squad.build_features(examples, self.tokenizer, self.cfg.squad_max_len, self.cfg.doc_stride)
                for split, examples in self.examples.items()}


def _scored(variant: str, layer: int, data: SquadData, logits: dict, max_answer_len: int):
    """Entries of one predictor (a probe or a QA head) on both splits, with its null threshold chosen on ``train``."""
    decoded = {split: squad.decode_spans(data.features[split], *logits[split], data.examples[split],
                                         max_answer_len=max_answer_len) for split in SPLITS}
    threshold, _, _ = squad.best_null_threshold(data.examples["train"], decoded["train"])
    entries = []
    for split in SPLITS:
        scores = squad.squad_scores(data.examples[split], squad.apply_null_threshold(decoded[split], threshold))
        entries += [(variant, split, layer, metric, value) for metric, value in scores.items()
                    if not metric.endswith("total")]
    entries.append((variant, "train", layer, "null_threshold", threshold))
    return entries, threshold


def probe_squad(cfg: ProbeConfig, model_name: str, init: str, tokenizer, results_path: Path, run_label: str,
                verbose: bool = True, data: SquadData | None = None) -> pd.DataFrame:
    """Start/end span probes on every layer of ``model_name``: EM/F1 on ``squad_dev`` with the threshold chosen on
    ``squad_train``, next to the always-no-answer baseline and, for a QA checkpoint, its own head (``full_model``).

    Skipped when its rows are there (``resume``); an interrupted run keeps the layers it finished. Each probe is saved
    with what it reads and its threshold (:func:`~bertbench.experiments.layer_probes.saved.load_probe`).
    """
    started = time.perf_counter()
    run_id = f"{run_label}-squad-{hashlib.sha1(cfg.to_json().encode()).hexdigest()[:8]}"
    weights_dir = runs_dir() / "probes" / run_id
    done = start_or_skip(cfg.resume, results_path, run_id, weights_dir / PROGRESS,
                         f"{TASK} {init}" if verbose else "")
    if done is not None:
        return done
    data = data or SquadData(cfg, tokenizer)
    states = {split: token_states(model_name, tokenizer, data.features[split], batch_size=cfg.batch_size,
                                  trust_remote_code=cfg.trust_remote_code, desc=f"squad {split} states ({init})")
              for split in SPLITS}
    masks = {split: context_mask(data.features[split], states[split].width) for split in SPLITS}  # (F, T) each
    gold = (torch.tensor(data.features["train"].start_positions), torch.tensor(data.features["train"].end_positions))
    chunk_bytes = cfg.probe_memory_mb * 2**20
    described = {"encoder": _portable(model_name), "tokenizer": _portable(tokenizer.name_or_path), "init": init,
                 "task": TASK, "variant": "span_probe", "run_id": run_id, "max_len": cfg.squad_max_len,
                 "doc_stride": cfg.doc_stride, "max_answer_len": cfg.max_answer_len,
                 "squad_train": _portable(cfg.squad_train), "squad_dev": _portable(cfg.squad_dev),
                 "probe_config": cfg.recorded()}
    progress = ProbeProgress(weights_dir / PROGRESS, run_id)
    entries: list[tuple[str, str, int, str, float]] = []
    for layer in tqdm(range(states["train"].layers), desc=f"squad probes ({init})", leave=False):
        key = f"span-layer{layer}"
        if key in progress.done:
            entries += progress.done[key]
            continue
        probe = fit_span_probe(states["train"].layer(layer), masks["train"], *gold, dropout=cfg.probe_dropout,
                               weight_decay=cfg.probe_weight_decay, epochs=cfg.probe_epochs, lr=cfg.probe_lr,
                               batch_size=cfg.probe_batch_size, seed=cfg.seed, max_chunk_bytes=chunk_bytes)
        logits = {split: span_logits(probe, states[split].layer(layer), masks[split], max_chunk_bytes=chunk_bytes)
                  for split in SPLITS}
        layer_entries, threshold = _scored("span_probe", layer, data, logits, cfg.max_answer_len)
        save_probe(probe, weights_dir / key, {**described, "layer": layer, "null_threshold": threshold})
        entries += layer_entries
        progress.add(key, layer_entries)
    if states["dev"].has_head_logits:  # a QA checkpoint: its own head, decoded and thresholded as the probes are
        head, _ = _scored("full_model", -1, data, {split: states[split].head_logits() for split in SPLITS},
                          cfg.max_answer_len)
        entries += [entry for entry in head if entry[1] == "dev" or entry[3] == "null_threshold"]
    baseline = squad.no_answer_baseline(data.examples["dev"])
    entries += [("always_no_answer", "dev", -1, metric, value) for metric, value in baseline.items()
                if not metric.endswith("total")]
    rows = _rows(cfg, run_id, TASK, init, model_name, len(data.examples["train"]), started, entries,
                 cfg.squad_max_len)
    write_results(rows, results_path)
    remove_training_state(weights_dir / PROGRESS)
    if not cfg.keep_token_states:  # the saved probes can still be scored: evaluate_probe computes the states again
        for entry in states.values():
            shutil.rmtree(entry.folder, ignore_errors=True)
    if verbose:
        best = max((e for e in entries if e[0] == "span_probe" and e[1] == "dev" and e[3] == "f1"),
                   key=lambda e: e[4])
        own = next((f"; its own QA head {e[4]:.2f}" for e in entries if e[0] == "full_model" and e[3] == "f1"), "")
        print(f"[{TASK} {init}] best span probe dev F1 {best[4]:.2f} (layer {best[2]}); always no-answer "
              f"{baseline['f1']:.2f}{own}")
    return pd.DataFrame(rows)


def probe_squad_models(cfg: ProbeConfig, pretrained: str, base_init: str, tokenizer, results_path: Path,
                       verbose: bool = True) -> pd.DataFrame:
    """Span probes on the pretrained encoder and, with ``squad_finetune_epochs`` > 0, on its QA fine-tuned checkpoint
    after each epoch (``init`` = ``fine-tuned:squad2@epoch<k>``)."""
    data = SquadData(cfg, tokenizer)
    models = [(pretrained, base_init, "pretrained")]
    if cfg.squad_finetune_epochs:
        run_id, epochs = finetune_squad(cfg, pretrained, tokenizer, data.train_file, base_init, verbose)
        models += [(str(folder), finetuned_init(epoch), f"finetuned-{run_id}-epoch{epoch}") for epoch, folder in epochs]
    return pd.concat([probe_squad(cfg, name, init, tokenizer, results_path, label, verbose, data)
                      for name, init, label in models], ignore_index=True)


def finetuned_init(epoch: int) -> str:
    """The ``init`` of the checkpoint after QA fine-tuning epoch ``epoch`` (1-based)."""
    return f"fine-tuned:{TASK}@epoch{epoch}"


def finetune_epoch(init: str) -> int:
    """The QA fine-tuning epoch of an ``init`` (0 for the model before it)."""
    found = re.search(r"@epoch(\d+)$", str(init))
    return int(found.group(1)) if found else 0


def draw_span_curves(ax, frame: pd.DataFrame, metric: str = "f1") -> None:
    """Span-probe dev ``metric`` per layer on ``ax``: one curve per probed model (the base model in blue, the
    fine-tuning epochs in deepening orange), each fine-tuned model's own QA head (dotted, its colour) and the
    always-no-answer floor (dashed)."""
    import matplotlib.pyplot as plt

    table = probe_summary(frame[frame["task"] == TASK], metric)
    inits = sorted(set(table["init"]), key=finetune_epoch)
    tuned = [init for init in inits if finetune_epoch(init)]
    shades = dict(zip(tuned, plt.get_cmap("Oranges")(np.linspace(0.45, 0.95, max(1, len(tuned)))), strict=False))
    for init in inits:
        colour = shades.get(init, "tab:blue")
        for differs, curve in table[(table["init"] == init) & (table["variant"] == "span_probe")].groupby(
                "differs", sort=False):
            ax.plot(curve["layer"], curve[metric], color=colour, lw=2, marker="o",
                    label=init + (f" ({differs})" if differs else ""))
        own = table[(table["init"] == init) & (table["variant"] == "full_model")][metric]
        if len(own):
            ax.axhline(own.iloc[0], color=colour, ls=":", label=f"{init}: its own QA head")
    floor = table[table["variant"] == "always_no_answer"][metric]
    if len(floor):
        ax.axhline(floor.iloc[0], color="grey", ls="--", label="always no answer")
    ax.set_title(f"{TASK}, span probes (start + end)")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(f"dev {metric.upper() if metric == 'f1' else metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
