"""Notebook 00: what an encoder gives you, and one head trained two ways.

- :func:`encoder_anatomy`: ``last_hidden_state`` (B, T, H) against ``pooler_output`` (B, H), the hidden states of
  every layer, and whether the checkpoint's pooler was trained at all (BERT's pooler is a dense + tanh layer trained by
  next-sentence prediction; a sentence-transformers checkpoint such as the packaged all-MiniLM-L6-v2 was trained
  through mean pooling, and where its files lack pooler weights transformers initialises them randomly).
- :func:`pooling_similarities`: the five sentence vectors of :func:`bertbench.heads.pool` (CLS, pooler, mean, max,
  sum) on sentence pairs, as cosine similarities: which pooling tells a paraphrase from an unrelated sentence.
- :func:`run_basics`: a CLS (or any pooling) + dropout + linear head (:class:`bertbench.heads.SequenceClassifier`)
  trained on a GLUE task twice, on the same examples with the same hyperparameters: by the Hugging Face ``Trainer``
  (``EarlyStoppingCallback``, ``load_best_model_at_end``) and by bertbench's loop (:func:`bertbench.train.fit`), both
  stopping early on the held-out 10% (its loss, or the task score) with the same ``min_delta`` rule, then scored on
  dev by the same code. The Trainer path is a first-class option here, not only a benchmark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from .. import metrics as M
from ..checkpoint import remove_training_state, start_or_skip
from ..config import BaseConfig, check_choice, check_range
from ..data.glue import TRAINABLE_TASKS, get_task
from ..encoding import LengthGroupedBatchSampler, PadCollator
from ..heads import POOLINGS, SequenceClassifier, load_encoder, pool
from ..memory import PeakMemory
from ..models import configure_threads, is_random, load_tokenizer, model_provenance, resolve_model
from ..paths import runs_dir
from ..results import check_writable, make_rows, write_results
from ..train import TrainSettings, device_description, fit, make_accelerator, predict
from .glue_finetune import GlueConfig, encode_task, load_task_data, model_label
from .glue_finetune.runs import held_out_metrics, pooling_classifier

NOTEBOOK = "00_encoder_basics"
SYSTEMS = ("bertbench", "trainer")
PAIRS = (  # (first, second, relation): a paraphrase, a near-paraphrase, an unrelated pair
    ("A man is playing a guitar.", "Someone plays the guitar.", "paraphrase"),
    ("The cat sat on the mat.", "A cat is sitting on a rug.", "similar"),
    ("The stock market fell sharply today.", "A man is playing a guitar.", "unrelated"),
)


@dataclasses.dataclass(frozen=True)
class BasicsConfig(BaseConfig):
    """Notebook 00. Every field is ``BB_<FIELD>``."""

    preset: str = "cpu"
    model: str = "minilm"
    tokenizer: str = ""
    task: str = "sst2"
    systems: tuple[str, ...] = SYSTEMS
    seeds: tuple[int, ...] = (0, 1, 2)
    max_train_examples: int = 2000  # random subset of the training split (0 = all); 10% of it is held out
    max_eval_examples: int = 0
    head: str = "cls"  # the pooling the head reads: cls, pooler, mean, max, sum
    head_dropout: float = 0.1
    max_len: int = 128
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: int = 5
    patience: int = 1  # epochs without an improvement larger than min_delta before stopping
    early_stop_on: str = "loss"  # "loss" (held-out loss, lower is better) or "score" (the task score)
    min_delta: float = 0.0
    max_grad_norm: float = 1.0
    num_threads: int = 0
    trust_remote_code: bool = False
    resume: bool = True

    RUNTIME = ("num_threads", "resume")
    PRESETS = {
        "tiny": dict(model="random-bert-2x64", seeds=(0,), max_train_examples=64, max_eval_examples=32, max_len=64,
                     batch_size=16, eval_batch_size=32, lr=1e-3, epochs=2, patience=1),
        "cpu": {},
        "gpu": dict(max_train_examples=0, epochs=3, patience=1),
        "full": dict(max_train_examples=0, epochs=3, patience=1),
    }

    def validate(self) -> None:
        super().validate()
        if get_task(self.task).name not in TRAINABLE_TASKS:
            raise ValueError(f"task: {self.task!r} has no training split")
        for system in self.systems:
            check_choice("systems", system, SYSTEMS)
        if not self.systems or not self.seeds:
            raise ValueError("systems and seeds: at least one each")
        check_choice("head", self.head, POOLINGS)
        check_choice("early_stop_on", self.early_stop_on, ("loss", "score"))
        check_range("head_dropout", self.head_dropout, 0, 1)
        check_range("min_delta", self.min_delta, 0)
        check_range("patience", self.patience, 0)
        check_range("epochs", self.epochs, 1)
        check_range("lr", self.lr, 0, 1, low_open=True)
        check_range("max_train_examples", self.max_train_examples, 0)

    def glue(self) -> GlueConfig:
        """The GLUE config whose data subset, hold-out and encoding both systems share (notebook 03's protocol)."""
        return GlueConfig(model=self.model, tokenizer=self.tokenizer, tasks=(get_task(self.task).name,),
                          seeds=self.seeds, task_overrides="", max_train_examples=self.max_train_examples,
                          max_eval_examples=self.max_eval_examples, max_len=self.max_len, batch_size=self.batch_size,
                          eval_batch_size=self.eval_batch_size, lr=self.lr, epochs=self.epochs,
                          predict_test=False, trust_remote_code=self.trust_remote_code)


# ------------------------------------------------------------------------------------------------- the encoder
def _encode(tokenizer, sentences: list[str], max_len: int) -> dict[str, torch.Tensor]:
    return tokenizer(sentences, padding=True, truncation=True, max_length=max_len, return_tensors="pt")


def encoder_anatomy(model_name: str, sentences: list[str], max_len: int = 128) -> tuple[pd.DataFrame, str]:
    """The outputs of ``AutoModel`` on ``sentences``: one row per output with its shape and what it is, and a line
    saying whether the checkpoint's pooler weights were trained or initialised at load time."""
    from transformers import AutoModel

    tokenizer = load_tokenizer("minilm" if is_random(model_name) else model_name)
    if is_random(model_name):
        model, missing = load_encoder(model_name, tokenizer, max_len), []
    else:
        model, info = AutoModel.from_pretrained(resolve_model(model_name), use_safetensors=True,
                                                output_loading_info=True)
        missing = info.get("missing_keys", [])
    model.eval()
    batch = _encode(tokenizer, sentences, max_len)
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    pooler = getattr(out, "pooler_output", None)
    rows = [("input_ids", tuple(batch["input_ids"].shape), "token ids (B, T), padded to the longest sentence"),
            ("attention_mask", tuple(batch["attention_mask"].shape), "1 on tokens, 0 on padding"),
            ("last_hidden_state", tuple(out.last_hidden_state.shape), "one vector per token (B, T, H)"),
            ("pooler_output", tuple(pooler.shape) if pooler is not None else "none",
             "dense + tanh on the first token (B, H)"),
            ("hidden_states", f"{len(out.hidden_states)} x {tuple(out.hidden_states[0].shape)}",
             "the embeddings and every layer's output")]
    pooler_missing = [key for key in missing if "pooler" in key]
    if pooler is None:
        note = "this encoder has no pooler"
    elif pooler_missing:
        note = (f"the pooler weights are not in the checkpoint ({', '.join(pooler_missing)}): transformers initialised "
                "them randomly, so pooler_output is noise until trained — read cls or mean instead")
    elif is_random(model_name):
        note = "a random model: every weight, the pooler's too, is untrained"
    else:
        note = (f"the pooler weights are in the checkpoint ({model_provenance(model_name)}); BERT trained its pooler "
                "for next-sentence prediction, which is not sentence similarity")
    return pd.DataFrame(rows, columns=["output", "shape", "what it is"]), note


def pooling_similarities(model_name: str, pairs=PAIRS, max_len: int = 128) -> pd.DataFrame:
    """Cosine similarity of each sentence pair under every pooling (``bertbench.heads.pool``)."""
    tokenizer = load_tokenizer("minilm" if is_random(model_name) else model_name)
    model = load_encoder(model_name, tokenizer, max_len).eval()
    records = []
    for first, second, relation in pairs:
        batch = _encode(tokenizer, [first, second], max_len)
        with torch.no_grad():
            out = model(**batch)
        record = {"pair": f"{first} / {second}", "relation": relation}
        for how in POOLINGS:
            if how == "pooler" and getattr(out, "pooler_output", None) is None:
                continue
            vectors = pool(out.last_hidden_state, batch["attention_mask"], how, getattr(out, "pooler_output", None))
            record[how] = float(torch.nn.functional.cosine_similarity(vectors[0], vectors[1], dim=0))
        records.append(record)
    return pd.DataFrame(records)


# ------------------------------------------------------------------------------------------- one head, two loops
def _classifier(cfg: BasicsConfig, task, tokenizer) -> SequenceClassifier:
    return pooling_classifier(cfg.model, tokenizer, task, cfg.max_len, cfg.head, cfg.head_dropout,
                              trust_remote_code=cfg.trust_remote_code)


def _train_bertbench(cfg: BasicsConfig, task, data, encoded, seed: int, run_dir: Path, run_id: str):
    """bertbench's loop: length-grouped shuffled batches, early stopping on the held-out split."""
    collate = PadCollator(encoded.tokenizer, regression=task.is_regression)
    settings = TrainSettings(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             warmup_ratio=cfg.warmup_ratio, max_grad_norm=cfg.max_grad_norm, patience=cfg.patience,
                             min_delta=cfg.min_delta, mixed_precision="no")
    model = _classifier(cfg, task, encoded.tokenizer)
    accelerator = make_accelerator(settings, model)
    sampler = LengthGroupedBatchSampler(encoded.train.lengths, cfg.batch_size, seed=seed)
    loader = DataLoader(encoded.train, batch_sampler=sampler, collate_fn=collate)

    def evaluate(current) -> dict[str, float]:
        logits = predict(current, encoded.selection, collate, cfg.eval_batch_size, accelerator, desc="select")
        return held_out_metrics(task, logits, data.selection.labels, loss=True)

    model, result = fit(model, loader, evaluate, cfg.early_stop_on, settings, run_dir / "best", accelerator,
                        higher_is_better=cfg.early_stop_on == "score", desc=f"bertbench s{seed}",
                        resume_dir=run_dir / "resume", fingerprint=run_id)
    dev = predict(model, encoded.evals["dev"], collate, cfg.eval_batch_size, accelerator, desc="dev")
    return dev, result.history, result.best_epoch, result.total_seconds, result.examples_seen, accelerator


def _train_trainer(cfg: BasicsConfig, task, data, encoded, seed: int):
    """The Hugging Face Trainer on the same examples (its default random sampling and dynamic padding), evaluating on
    the held-out split every epoch, ``EarlyStoppingCallback(patience, threshold=min_delta)`` and the best epoch
    reloaded at the end (``load_best_model_at_end``)."""
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainingArguments, set_seed

    class Rows(torch.utils.data.Dataset):  # the Trainer reads dicts of lists; bertbench's encoded examples are those
        def __init__(self, encoded_set):
            self.items = encoded_set

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    history: list[dict] = []

    def compute_metrics(prediction) -> dict[str, float]:
        values = held_out_metrics(task, np.asarray(prediction.predictions), prediction.label_ids,
                                  loss=True)
        history.append(values)
        return {"score": values["score"]}

    set_seed(seed)
    model = _classifier(cfg, task, encoded.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        arguments = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
            learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio,
            num_train_epochs=cfg.epochs, max_grad_norm=cfg.max_grad_norm, seed=seed, eval_strategy="epoch",
            save_strategy="epoch", save_total_limit=2, load_best_model_at_end=True,
            metric_for_best_model="eval_loss" if cfg.early_stop_on == "loss" else "eval_score",
            greater_is_better=cfg.early_stop_on == "score", report_to="none", disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(), logging_strategy="epoch", save_only_model=True)
        trainer = Trainer(model=model, args=arguments, train_dataset=Rows(encoded.train),
                          eval_dataset=Rows(encoded.selection), data_collator=PadCollator(
                              encoded.tokenizer, regression=task.is_regression),
                          compute_metrics=compute_metrics,
                          callbacks=[EarlyStoppingCallback(cfg.patience, cfg.min_delta)] if cfg.patience else [])
        trainer.remove_callback(PrinterCallback)  # its per-epoch dicts on stdout; the rows below hold the same
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        best = trainer.state.best_model_checkpoint
        best_epoch = next((int(round(entry["epoch"])) - 1 for entry in trainer.state.log_history
                           if "eval_loss" in entry and best and best.endswith(f"-{entry['step']}")), len(history) - 1)
        dev = predict(trainer.model, encoded.evals["dev"], PadCollator(encoded.tokenizer,
                                                                       regression=task.is_regression),
                      cfg.eval_batch_size, desc="dev")
    train_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    for epoch, record in enumerate(history):
        record["train_loss"] = train_losses[epoch] if epoch < len(train_losses) else float("nan")
        record["epoch"] = epoch
    return dev, history, best_epoch, seconds, len(encoded.train) * len(history)


def run_basics(cfg: BasicsConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """Every (system, seed): train the head, stop early on the held-out 10%, score on dev; rows written per run."""
    check_writable(results_path)
    configure_threads(cfg.num_threads)
    task = get_task(cfg.task)
    glue = cfg.glue()
    data = load_task_data(glue, task)
    encoded = encode_task(glue, data)
    frames = []
    for seed in cfg.seeds:
        for system in cfg.systems:
            frames.append(_run_one(cfg, task, data, encoded, system, seed, Path(results_path), verbose))
    return pd.concat(frames, ignore_index=True)


def _run_one(cfg, task, data, encoded, system: str, seed: int, results_path: Path, verbose: bool) -> pd.DataFrame:
    from transformers import set_seed

    identity = json.dumps({**cfg.identity(), "system": system, "seed": seed, "seeds": None, "systems": None},
                          sort_keys=True)
    run_id = f"{task.name}-{system}-s{seed}-{hashlib.sha1(identity.encode()).hexdigest()[:10]}"
    run_dir = runs_dir() / "basics" / run_id
    done = start_or_skip(cfg.resume, results_path, run_id, run_dir / "resume", f"{system} seed {seed}")
    if done is not None:
        return done
    started = time.perf_counter()
    set_seed(seed)
    peak = PeakMemory().start()
    if system == "bertbench":
        dev, history, best, train_s, seen, accelerator = _train_bertbench(cfg, task, data, encoded, seed, run_dir,
                                                                            run_id)
        device = device_description(accelerator.device, accelerator.mixed_precision)
    else:
        dev, history, best, train_s, seen = _train_trainer(cfg, task, data, encoded, seed)
        device = device_description(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    peak.stop()
    values = M.task_metrics(task, dev, data.evals["dev"].labels)
    entries = [("train", record["epoch"], "loss", record["train_loss"]) for record in history]
    entries += [("train_holdout", record["epoch"], key, value) for record in history for key, value in record.items()
                if key not in ("epoch", "train_loss", "lr") and np.isfinite(value)]
    entries += [("dev", best, key, value) for key, value in values.items()]
    entries += [("dev", best, "score", M.task_score(task, values)), ("train", best, "train_s", train_s),
                ("train", best, "examples_per_s", seen / train_s), ("train", best, "epochs_run", len(history))]
    entries += [("run", best, name, value) for name, value in peak.metrics().items()]
    common = {"run_id": run_id, "notebook": NOTEBOOK, "preset": cfg.preset, "model": model_label(cfg.model),
              "task": task.name, "variant": system, "seed": seed, "init": model_provenance(cfg.model),
              "head_init": f"new:{cfg.head}", "selection": f"early_stop_on_train_holdout_{cfg.early_stop_on}",
              "max_len": cfg.max_len, "train_examples": len(data.train), "device": device,
              "wall_s": round(time.perf_counter() - started, 2),
              "config": json.dumps({**cfg.recorded(), "seeds": [seed], "systems": [system]}, sort_keys=True)}
    rows = make_rows(common, entries)
    write_results(rows, results_path)
    remove_training_state(run_dir / "resume")
    if verbose:
        print(f"[{system} seed {seed}] dev score {M.task_score(task, values):.4f}, best epoch {best + 1} of "
              f"{len(history)}, {train_s:.0f} s")
    return pd.DataFrame(rows)


def basics_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per system: dev score (median, min, max over seeds), epochs run, training time and examples/s (median)."""
    frame = frame[frame["notebook"] == NOTEBOOK]
    records = []
    for system, rows in frame.groupby("variant", sort=False):
        def values(split, metric, rows=rows):
            return rows[(rows["split"] == split) & (rows["metric"] == metric)]["value"].astype(float)
        scores = values("dev", "score")
        records.append({"system": system, "seeds": len(scores), "dev_score_median": scores.median(),
                        "dev_score_min": scores.min(), "dev_score_max": scores.max(),
                        "epochs_run_median": values("train", "epochs_run").median(),
                        "train_s_median": values("train", "train_s").median(),
                        "examples_per_s_median": values("train", "examples_per_s").median(),
                        "train_examples": int(rows["train_examples"].iloc[0])})
    return pd.DataFrame(records)


def plot_basics(frame: pd.DataFrame, path: str | Path):
    """Dev score (a dot per seed) and training time per system, side by side; saved to ``path`` and returned."""
    import matplotlib.pyplot as plt

    frame = frame[frame["notebook"] == NOTEBOOK]
    systems = list(dict.fromkeys(frame["variant"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.4))
    for position, system in enumerate(systems):
        rows = frame[frame["variant"] == system]
        for axis, (split, metric) in ((left, ("dev", "score")), (right, ("train", "train_s"))):
            values = rows[(rows["split"] == split) & (rows["metric"] == metric)]["value"].astype(float)
            axis.bar(position, values.median(), color="tab:blue" if system == "bertbench" else "tab:orange",
                     alpha=0.35, width=0.6)
            axis.scatter([position] * len(values), values, color="black", s=14, zorder=3)
    for axis, label in ((left, "dev score (GLUE's task score)"), (right, "training time incl. selection (s)")):
        axis.set_xticks(range(len(systems)), systems)
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{frame['task'].iloc[0]}, {frame['model'].iloc[0]}: one head, two training loops "
                 "(median bar, a dot per seed)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return fig
