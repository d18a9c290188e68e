"""QA fine-tuning for the span probes: an encoder + start/end head trained on SQuAD 2.0 windows with bertbench's loop,
its weights saved after every epoch, so that the probes can read "the model fine-tuned for k epochs".

The CS224N depth-and-fine-tuning comparison: the same start/end probes on every layer of the pretrained encoder and
of the encoder after each epoch of QA fine-tuning. The model is transformers' ``AutoModelForQuestionAnswering`` (the
encoder + one linear layer scoring every token as start and as end; loss = the mean of the start and the end
cross-entropy over the window, as BERT's ``run_squad.py``), trained on the windows of
:func:`bertbench.data.squad.build_features` (``squad_max_len`` tokens, ``doc_stride`` shared between windows;
position 0 = CLS where a window holds no answer) by :func:`bertbench.train.fit`: AdamW, warmup and linear decay,
clipping, bf16 autocast where native, resumable after a kill. No epoch is chosen (nothing is selected on dev): each
epoch's weights go to ``epoch<k>/`` (``save_pretrained``, safetensors, with the tokenizer), with
``bertbench_task = "squad2"`` in their config as their provenance. The fine-tuned head's own no-answer threshold is
chosen later, on the training questions, when it is scored beside the probes (:func:`.span_study.probe_squad`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ...checkpoint import remove_training_state, replace_folder, start_or_skip
from ...data import squad
from ...encoding import LengthGroupedBatchSampler, PadCollator
from ...models import attention_of, check_safe_weights, check_vocabulary, configure_threads, resolve_model, self_check
from ...paths import runs_dir
from ...results import make_rows, write_results
from ...train import TrainSettings, device_description, fit, make_accelerator, run_seconds

FINETUNE_RESULTS = "finetune.csv"  # under runs/probes/: the rows of the fine-tuning runs the probes started
TASK = "squad2"


class QACollator:
    """Windows padded to the longest in the batch, on the right (answer positions count from a window's first token),
    with their ``start_positions`` and ``end_positions`` (B,)."""

    def __init__(self, tokenizer):
        self.pad = PadCollator(tokenizer)
        self.pad.left = False

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.pad([{key: item[key] for key in ("input_ids", "token_type_ids") if key in item}
                          for item in items])
        for key in ("start_positions", "end_positions"):
            batch[key] = torch.tensor([item[key] for item in items], dtype=torch.long)  # (B,)
        return batch


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes: a run id follows the data, not the name it was saved under."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def finetune_run_id(cfg) -> str:
    """The fine-tuning run of ``cfg``: what decides the weights (model, data, windows, schedule, seed), none of the
    probes' own settings, so that changing a probe setting reuses the checkpoints."""
    key = {"model": cfg.model, "tokenizer": cfg.tokenizer, "squad_train": file_digest(cfg.squad_train),
           "max_examples": cfg.max_squad_finetune_examples, "max_len": cfg.squad_max_len,
           "doc_stride": cfg.doc_stride, "epochs": cfg.squad_finetune_epochs, "lr": cfg.squad_finetune_lr,
           "batch_size": cfg.squad_finetune_batch_size, "seed": cfg.seed, "preset": cfg.preset}
    blob = json.dumps(key, sort_keys=True)
    return f"{TASK}-finetune-e{cfg.squad_finetune_epochs}-s{cfg.seed}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def finetune_folder(run_id: str) -> Path:
    return runs_dir() / "probes" / f"{TASK}-finetune" / run_id


def finetune_squad(cfg, source: str, tokenizer, examples: list[squad.QAExample], init: str,
                   verbose: bool = True) -> tuple[str, list[tuple[int, Path]]]:
    """Fine-tune ``source`` for ``cfg.squad_finetune_epochs`` epochs on ``examples`` (the first
    ``cfg.max_squad_finetune_examples`` of them; 0 = all), or reuse the checkpoints of an identical run.

    Args:
        cfg: the :class:`~bertbench.experiments.layer_probes.ProbeConfig`.
        source: the pretrained encoder (a folder or name).
        examples: the training questions (from ``cfg.squad_train``).
        init: the provenance of ``source``, for the rows.

    Returns:
        (run id, [(epoch, checkpoint folder)] for epochs 1..N). The run's rows (training loss per epoch, speed) go to
        ``runs/probes/finetune.csv``.
    """
    from transformers import AutoModelForQuestionAnswering, set_seed

    from ..glue_finetune import model_label
    from .study import NOTEBOOK

    run_id = finetune_run_id(cfg)
    run_dir = finetune_folder(run_id)
    results_path = runs_dir() / "probes" / FINETUNE_RESULTS
    epochs = [(epoch, run_dir / f"epoch{epoch}") for epoch in range(1, cfg.squad_finetune_epochs + 1)]
    done = start_or_skip(cfg.resume, results_path, run_id, run_dir / "resume",
                         f"{TASK} fine-tuning" if verbose else "")
    if done is not None:
        if all((folder / "config.json").is_file() for _, folder in epochs):
            return run_id, epochs
        print(f"[{TASK} fine-tuning] run {run_id} has rows but not every epoch's checkpoint: training it again")
        start_or_skip(False, results_path, run_id, run_dir / "resume")
    started = time.perf_counter()
    configure_threads(cfg.num_threads)
    set_seed(cfg.seed)
    examples = examples[:cfg.max_squad_finetune_examples] if cfg.max_squad_finetune_examples else examples
    features = squad.build_features(examples, tokenizer, cfg.squad_max_len, cfg.doc_stride)
    path = resolve_model(source)
    check_safe_weights(path)
    model = AutoModelForQuestionAnswering.from_pretrained(path, trust_remote_code=cfg.trust_remote_code,
                                                          use_safetensors=True)
    check_vocabulary(tokenizer, model, source)
    model.config.bertbench_task = TASK  # saved with every epoch's weights: their provenance
    model.config.bertbench_random = False  # trained weights now, whatever the encoder started from
    collate = QACollator(tokenizer)
    first = self_check(tokenizer, collate([features[i] for i in range(min(4, len(features)))]), text_pair=True,
                       vocab_size=model.get_input_embeddings().num_embeddings)
    if verbose:
        print(f"[{TASK} fine-tuning] {len(examples)} questions, {len(features)} windows of <= {cfg.squad_max_len} "
              f"tokens, {cfg.squad_finetune_epochs} epoch(s); first input: {first[:120]}...")
    sampler = LengthGroupedBatchSampler(features.lengths, cfg.squad_finetune_batch_size, seed=cfg.seed)
    loader = DataLoader(features, batch_sampler=sampler, collate_fn=collate)
    settings = TrainSettings(epochs=cfg.squad_finetune_epochs, lr=cfg.squad_finetune_lr, select="last",
                             memory_hint="squad_finetune_batch_size (BB_SQUAD_FINETUNE_BATCH_SIZE) or squad_max_len")
    accelerator = make_accelerator(settings)

    def save_epoch(trained) -> dict[str, float]:
        """fit's per-epoch hook: keep this epoch's weights for the probes (the sampler knows the epoch, also after a
        resume); nothing is scored here, so nothing is selected."""
        def write(folder: Path) -> None:
            trained.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)

        replace_folder(run_dir / f"epoch{sampler.epoch + 1}", write)
        return {}

    _, result = fit(model, loader, save_epoch, "", settings, run_dir / "last", accelerator, desc=f"{TASK} QA",
                    resume_dir=run_dir / "resume", fingerprint=run_id, started=started)
    entries = [("train", record["epoch"] + 1, "loss", record["train_loss"]) for record in result.history]
    entries += [("train", cfg.squad_finetune_epochs, "examples_per_s",
                 result.examples_seen / max(result.train_seconds, 1e-9)),
                ("train", cfg.squad_finetune_epochs, "train_s", result.train_seconds)]
    common = {"run_id": run_id, "notebook": NOTEBOOK, "preset": cfg.preset, "model": model_label(cfg.model),
              "task": TASK, "seed": cfg.seed, "variant": "qa_finetune", "init": init, "head_init": "new",
              "selection": "every_epoch", "max_len": cfg.squad_max_len, "train_examples": len(examples),
              "device": device_description(accelerator.device, accelerator.mixed_precision, attention_of(model)),
              "wall_s": run_seconds(started, result), "config": cfg.to_json()}
    write_results(make_rows(common, entries), results_path)
    shutil.rmtree(run_dir / "last", ignore_errors=True)  # the last epoch's weights are also in epoch<N>/
    remove_training_state(run_dir / "resume")
    return run_id, epochs
