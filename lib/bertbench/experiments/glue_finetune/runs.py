"""Notebook 03's config and runs: one fine-tuning run per (task, seed), its rows and predictions written as it ends,
and the summary over seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from ... import metrics as M
from ...checkpoint import finished_runs, remove_training_state, start_or_skip
from ...config import (
    TRAINING_RUNTIME,
    BaseConfig,
    check_choice,
    check_overrides,
    check_range,
    check_training_fields,
    parse_overrides,
)
from ...data.examples import DataError, Examples
from ...data.glue import TASKS, TRAINABLE_TASKS, GlueTask, get_task, load_glue, missing_local_splits
from ...dist import is_main_process
from ...encoding import EncodedDataset, LengthGroupedBatchSampler, PadCollator, encode
from ...heads import POOLINGS, SequenceClassifier, load_encoder
from ...memory import PeakMemory
from ...models import (
    attention_of,
    build_classifier,
    configure_threads,
    first_token_applies,
    intermediate_task,
    is_random,
    load_tokenizer,
    model_provenance,
    resolve_model,
    self_check,
    set_attention,
    weights_fingerprint,
)
from ...packing import PackedCollator, PackedObjective, use_packing
from ...paths import data_dir, portable_path, runs_dir
from ...results import GLUE_PREDICTIONS, check_writable, make_rows, write_results
from ...train import (
    TrainSettings,
    device_description,
    device_peak_tflops,
    encoder_train_flops_per_token,
    fit,
    make_accelerator,
    predict,
    run_seconds,
)
from .predictions import PREDICTION_EXACT, prediction_frame
from .summary import selection_score

NOTEBOOK = "03_glue_finetune"
SELECTION_LABELS = {
    "holdout": "best_epoch_on_train_holdout",
    "dev": "best_epoch_on_dev_optimistic",
    "last": "last_epoch",
}


def _task_name(name: str) -> str:
    """A task name of ``task_overrides`` in its canonical form (``SST-2`` -> ``sst2``, ``tsv:<folder>`` -> its name)."""
    return get_task(name).name


@dataclasses.dataclass(frozen=True)
class GlueConfig(BaseConfig):
    """Notebook 03: fine-tune an encoder on GLUE tasks, several seeds each. Every field is ``BB_<FIELD>``."""

    preset: str = "cpu"
    model: str = "minilm"  # "minilm" (packaged), a save_pretrained folder, a hub name, or "random-bert-LxH"
    tokenizer: str = ""  # default: the model's own ("minilm" for random models)
    warm_start: str = ""  # a fine-tuned checkpoint folder to start every task from (e.g. an MNLI model)
    tasks: tuple[str, ...] = ("cola", "sst2", "mrpc", "stsb", "rte", "wnli")
    seeds: tuple[int, ...] = (0,)
    task_overrides: str = ""  # "task.field=value;..." per-task changes, e.g. "sst2.seeds=0;sst2.epochs=2"
    data_source: str = "local"  # "local": BB_DATA_DIR/glue TSVs; "hub": datasets.load_dataset (online)
    max_train_examples: int = 2000  # random subset of the training split; 0 = all
    max_eval_examples: int = 0  # cap on dev/test examples (tests only); 0 = all
    val_fraction: float = 0.1  # share of the training data held out for selection (selection="holdout")
    selection: str = "holdout"  # "holdout", "dev" (optimistic, labelled) or "last"
    max_len: int = 128
    batch_size: int = 32
    eval_batch_size: int = 128
    grad_accum: int = 1
    lr: float = 1e-4
    lr_grid: tuple[float, ...] = ()  # per task: lr chosen from these on the selection split with the first seed
    head: str = "auto"  # "auto": the model's own classification head; or a pooling (cls, pooler, mean, max, sum)
    head_dropout: float = 0.1  # dropout before the linear layer of a pooling head
    select_metric: str = "score"  # what picks the best epoch and stops early: the task "score" or the "loss"
    min_delta: float = 0.0  # early stopping: an improvement must be larger than this to reset patience
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: int = 3
    patience: int = 0  # early stopping on the selection split; 0 = off
    max_grad_norm: float = 1.0
    dropout: float = -1.0  # hidden dropout; < 0 keeps the model's own
    mixed_precision: str = "auto"
    group_by_length: bool = True
    predict_test: bool = True  # write GLUE submission TSVs under runs/
    tensorboard: bool = False
    keep_checkpoints: bool = True  # keep runs/glue/<run_id>/best (needed for warm starts and probes)
    num_threads: int = 0
    trust_remote_code: bool = False
    resume: bool = True  # skip runs already in the results file, continue an interrupted one (0: start afresh)
    checkpoint_every: int = 0  # resume checkpoint every N optimizer steps too (0: epoch ends and checkpoint_minutes)
    checkpoint_minutes: float = 10.0  # resume checkpoint every N minutes of training (0: not by time)

    RUNTIME = TRAINING_RUNTIME
    ADDED_FIELDS = ("lr_grid", "head", "head_dropout", "select_metric", "min_delta")
    PRESETS = {
        "tiny": dict(model="random-bert-2x64", seeds=(0, 1), task_overrides="",
                     max_train_examples=64, max_eval_examples=32, max_len=64, batch_size=16, eval_batch_size=32,
                     lr=1e-3, epochs=2, keep_checkpoints=False),
        "cpu": {},
        # minutes on one GPU: the six small tasks on their whole training sets, 3 seeds
        "gpu": dict(seeds=(0, 1, 2), task_overrides="", max_train_examples=0, lr=5e-5, batch_size=32, epochs=3),
        "full": dict(tasks=TRAINABLE_TASKS, seeds=(0, 1, 2), task_overrides="", max_train_examples=0, lr=5e-5,
                     batch_size=32, epochs=3),
    }

    def validate(self) -> None:
        super().validate()
        for task in self.tasks:
            if "train" not in get_task(task).files:
                raise ValueError(f"tasks: {task!r} has no training split (AX is predicted with the MNLI model)")
        if not self.tasks:
            raise ValueError("tasks: at least one task")
        if not self.seeds:
            raise ValueError("seeds: at least one seed")
        check_choice("data_source", self.data_source, ("local", "hub"))
        check_choice("selection", self.selection, tuple(SELECTION_LABELS))
        check_choice("mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))
        check_range("max_train_examples", self.max_train_examples, 0)
        check_range("max_eval_examples", self.max_eval_examples, 0)
        check_training_fields(self)
        check_range("val_fraction", self.val_fraction, 0, 0.5, low_open=self.selection == "holdout")
        check_range("eval_batch_size", self.eval_batch_size, 1)
        check_range("warmup_ratio", self.warmup_ratio, 0, 1)
        check_range("epochs", self.epochs, 1)
        check_range("patience", self.patience, 0)
        check_range("dropout", self.dropout, None, 1)
        check_choice("head", self.head, ("auto", *POOLINGS))
        check_choice("select_metric", self.select_metric, ("score", "loss"))
        check_range("head_dropout", self.head_dropout, 0, 1)
        check_range("min_delta", self.min_delta, 0)
        if self.head != "auto" and self.warm_start:
            raise ValueError("head: a pooling head starts new; warm starts reuse the checkpoint's own head (head auto)")
        for value in self.lr_grid:
            check_range("lr_grid", value, 0, 1, low_open=True)
        if self.lr_grid and self.selection == "last":
            raise ValueError("lr_grid: choosing a learning rate needs a selection split (selection holdout or dev)")
        if self.selection == "holdout" and self.max_train_examples == 1:
            raise ValueError("max_train_examples: 1 example cannot be split into a holdout and a training part; use "
                             "at least 2 (BB_MAX_TRAIN_EXAMPLES), 0 for all, or BB_SELECTION=dev")
        for task in self.tasks:  # parse errors surface now, and a per-task lr would silently beat the grid
            if self.lr_grid and "lr" in self.overrides_for(get_task(task).name):
                raise ValueError(f"lr_grid and task_overrides {task}.lr both set the learning rate; keep one")
        self.overrides_for("")  # parsed, then each overridden task's config validated now, not after others trained
        check_overrides(self.task_overrides, _task_name, self.for_task, "task_overrides")

    def overrides_for(self, task: str) -> dict:
        """Parse ``task_overrides`` ("sst2.seeds=0;rte.epochs=5") and return the changes for ``task``."""
        return parse_overrides(self.task_overrides, self.field_types(), _task_name,
                               ("tasks", "task_overrides", "preset"), "task_overrides").get(task, {})

    def for_task(self, task: str) -> GlueConfig:
        """This config with ``task``'s overrides applied and ``tasks`` narrowed to it."""
        found = get_task(task)  # a task of your own is recorded by its portable tsv: spec, its overrides by its name
        name, key = (found.name, found.spec) if found.source else (task, task)
        return self.replace(tasks=(key,), task_overrides="", **self.overrides_for(name))

    def train_settings(self, tensorboard_dir: str | None = None, regression: bool = False) -> TrainSettings:
        """The loop's settings. ``regression``: "auto" precision stays fp32 (STS-B): bf16 outputs sit on a grid of
        1/128 near 1 to 1/64 near 5, and the ties they make bias Pearson/Spearman (a tiny model's predictions
        became one constant and its Pearson undefined)."""
        precision = "no" if regression and self.mixed_precision == "auto" else self.mixed_precision
        return TrainSettings(
            epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, warmup_ratio=self.warmup_ratio,
            max_grad_norm=self.max_grad_norm, grad_accum=self.grad_accum, patience=self.patience,
            select="last" if self.selection == "last" else "best", mixed_precision=precision, min_delta=self.min_delta,
            tensorboard_dir=tensorboard_dir, checkpoint_every=self.checkpoint_every,
            checkpoint_minutes=self.checkpoint_minutes,
            memory_hint=f"batch_size ({self.batch_size}; BB_BATCH_SIZE, with BB_GRAD_ACCUM to keep the effective "
                        f"batch) or max_len ({self.max_len}; BB_MAX_LEN)")


def config_hash(cfg: BaseConfig, **extra) -> str:
    """10 hex digits identifying ``cfg`` (thread count aside) and the weights it starts from (:func:`checkpoint_of`)
    plus ``extra``: equal settings on equal weights, equal hash. Notebook 03's and 05 heads' run ids are built on it."""
    blob = json.dumps({**cfg.identity(), **checkpoint_of(cfg), **extra}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def run_id_for(cfg: GlueConfig, task: str, seed: int) -> str:
    """Stable id of one (task, seed) run: re-running the same configuration on the same weights replaces its rows."""
    return f"{task}-s{seed}-{config_hash(cfg.for_task(task).replace(seeds=(seed,)))}"


def checkpoint_of(cfg: BaseConfig) -> dict[str, str]:
    """``{"checkpoint": <fingerprint of the weights>}`` for a model given as a local folder (``make pretrain``'s, run
    twice, leaves two checkpoints under one path), {} for the packaged model and hub names (whose run ids stay)."""
    model = getattr(cfg, "model", "")
    fingerprint = weights_fingerprint(model) if model else ""
    return {"checkpoint": fingerprint} if fingerprint else {}


def recorded_config(cfg: GlueConfig) -> str:
    """The ``config`` column: the configuration plus the checkpoint's fingerprint, so runs of two checkpoints under
    one folder name differ in their config and are never pooled (:func:`bertbench.config.pooling_key`)."""
    return json.dumps({**cfg.recorded(), **checkpoint_of(cfg)}, sort_keys=True)


@dataclasses.dataclass
class TaskData:
    train: Examples
    selection: Examples | None  # held-out part of train, dev, or None
    evals: dict[str, Examples]  # labelled splits to report
    tests: dict[str, Examples]  # unlabelled splits to predict


def load_task_data(cfg: GlueConfig, task: GlueTask) -> TaskData:
    """Read the task's splits and apply the subsample / hold-out rules of ``cfg`` (split seed fixed at 0 so every
    training seed sees the same examples; the seeds vary initialisation and order)."""
    source = cfg.data_source
    train = load_glue(task, "train", source=source).subsample(cfg.max_train_examples, seed=0)
    evals = load_eval_splits(cfg, task)
    tests: dict[str, Examples] = {}
    if cfg.predict_test:
        for split in task.test_splits:
            try:
                tests[split] = load_eval_splits(cfg, task, (split,))[split]
            except DataError as err:
                print(f"[{task.name}] no {split} predictions: {err}")
    selection = None
    if cfg.selection == "holdout":
        train, selection = train.split(cfg.val_fraction, seed=0)
    elif cfg.selection == "dev":
        selection = evals[task.eval_splits[0]]
    return TaskData(train, selection, evals, tests)


def load_eval_splits(cfg: GlueConfig, task: GlueTask, splits: tuple[str, ...] = ()) -> dict[str, Examples]:
    """The task's evaluation splits (default: the labelled ones, ``task.eval_splits``), capped at
    ``cfg.max_eval_examples`` (the first examples, in file order)."""
    evals = {split: load_glue(task, split, source=cfg.data_source) for split in splits or task.eval_splits}
    if cfg.max_eval_examples:
        evals = {split: ex.select(range(min(len(ex), cfg.max_eval_examples))) for split, ex in evals.items()}
    return evals


@dataclasses.dataclass
class EncodedTask:
    """The task's splits tokenised once, shared by every seed (they depend on the config, not the seed)."""

    tokenizer: object
    train: EncodedDataset
    selection: EncodedDataset | None
    evals: dict[str, EncodedDataset]
    tests: dict[str, EncodedDataset]


def encode_task(cfg: GlueConfig, data: TaskData) -> EncodedTask:
    tokenizer = load_tokenizer(cfg.tokenizer or ("minilm" if is_random(cfg.model) else cfg.model),
                               trust_remote_code=cfg.trust_remote_code)
    enc = lambda examples: encode(examples, tokenizer, cfg.max_len)  # noqa: E731
    return EncodedTask(tokenizer, enc(data.train), enc(data.selection) if data.selection is not None else None,
                       {split: enc(ex) for split, ex in data.evals.items()},
                       {split: enc(ex) for split, ex in data.tests.items()})


def _labels_to_text(task: GlueTask, logits: np.ndarray) -> list[str]:
    if task.is_regression:
        # GLUE takes STS-B scores in 0..5 only: clip, saying how many (an overshooting model is news); yours: as is
        low, high = task.label_range or (-np.inf, np.inf)
        values = logits.reshape(-1)
        if outside := int(((values < low) | (values > high)).sum()):
            print(f"[{task.name}] {outside} of {len(values)} predictions outside {low:g}..{high:g} clipped into "
                  f"the range GLUE accepts")
        return [f"{value:.3f}" for value in np.clip(values, low, high)]
    predictions = logits.argmax(axis=-1)
    # GLUE's submission format uses label names for the NLI tasks and 0/1 for the others; a task of your own: names
    as_names = bool(task.source) or task.name in ("mnli", "qnli", "rte", "ax")
    return [task.label_names[p] if as_names else str(int(p)) for p in predictions]


def write_submission(task: GlueTask, split: str, examples: Examples, logits: np.ndarray, folder: Path) -> Path:
    """A GLUE submission TSV (``index<TAB>prediction``) named as the GLUE server expects (main process only)."""
    path = folder / task.submission[split]
    if not is_main_process():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["index\tprediction"] + [f"{i}\t{p}" for i, p in zip(examples.ids, _labels_to_text(task, logits),
                                                                    strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def model_label(name: str) -> str:
    """The ``model`` column: the label a bertbench pretraining run stored in its config (``bertbench_label``), so
    rows of a checkpoint under runs/ are named after the run and not after a machine-specific path; else the name."""
    if is_random(name):
        return name
    config_file = Path(resolve_model(name)) / "config.json"
    if config_file.is_file():
        label = json.loads(config_file.read_text()).get("bertbench_label")
        if label:
            return str(label)
    return name


def init_label(cfg: GlueConfig) -> str:
    """The ``init`` column: ``intermediate:<task>`` for a warm start (the task read from the checkpoint, not its
    folder name), else what the model is (:func:`bertbench.models.model_provenance`)."""
    if cfg.warm_start:
        return f"intermediate:{intermediate_task(cfg.warm_start)}"
    return model_provenance(cfg.model)


def pooling_classifier(model_name: str, tokenizer, task: GlueTask, max_len: int, pooling: str, head_dropout: float,
                       dropout: float | None = None, trust_remote_code: bool = False) -> SequenceClassifier:
    """The encoder under bertbench's own head for ``task``: ``pooling`` -> dropout ``head_dropout`` -> linear."""
    encoder = load_encoder(model_name, tokenizer, max_len, dropout=dropout, trust_remote_code=trust_remote_code)
    return SequenceClassifier(encoder, task.num_labels,
                              "regression" if task.is_regression else "single_label_classification",
                              pooling=pooling, dropout=head_dropout)


def held_out_metrics(task: GlueTask, logits: np.ndarray, labels, loss: bool) -> dict[str, float]:
    """The task's metrics and score of ``logits`` on a held-out split; with ``loss``, also the loss the model's own
    loss function would compute there (what selection on the held-out loss reads)."""
    values = M.task_metrics(task, logits, labels)
    values["score"] = M.task_score(task, values)
    if loss:
        values["loss"] = M.task_loss(task, logits, labels)
    return values


def run_task_seed(cfg: GlueConfig, task_name: str, seed: int, data: TaskData, results_path: Path,
                  verbose: bool = True, encoded: EncodedTask | None = None, *, notebook: str = NOTEBOOK,
                  variant: str = "") -> pd.DataFrame:
    """Fine-tune once on one task with one seed; write the run's rows to ``results_path``; return them.

    ``encoded`` (from :func:`encode_task`) lets several seeds share one tokenisation; built here when omitted.
    ``notebook`` / ``variant`` label the rows when another notebook runs this cross-encoder as its reference (the
    run id then starts with the variant).
    """
    from transformers import set_seed

    task = get_task(task_name)
    cfg = cfg.for_task(task.name).replace(seeds=(seed,))
    run_id = (f"{variant}-" if variant else "") + run_id_for(cfg, task.name, seed)
    run_dir = runs_dir() / "glue" / run_id
    done = start_or_skip(cfg.resume, results_path, run_id, run_dir / "resume",
                         f"{task.name} seed {seed}" if verbose else "")
    if done is not None:
        return done
    started = time.perf_counter()
    configure_threads(cfg.num_threads)
    set_seed(seed)

    encoded = encoded or encode_task(cfg, data)
    tokenizer = encoded.tokenizer
    # this run's own peak memory, from before its model exists to its last evaluation (memory.py)
    peak = PeakMemory().start()
    if cfg.head == "auto":
        model, head_init = build_classifier(
            cfg.warm_start or cfg.model, tokenizer, task.label_names, regression=task.is_regression,
            max_len=cfg.max_len, trust_remote_code=cfg.trust_remote_code,
            dropout=cfg.dropout if cfg.dropout >= 0 else None)
    else:
        model = pooling_classifier(cfg.model, tokenizer, task, cfg.max_len, cfg.head, cfg.head_dropout,
                                   dropout=cfg.dropout if cfg.dropout >= 0 else None,
                                   trust_remote_code=cfg.trust_remote_code)
        head_init = f"new:{cfg.head}"
    model.config.bertbench_task = task.name  # saved with the checkpoint: its provenance for warm starts and probes
    collate = PadCollator(tokenizer, regression=task.is_regression)

    # Self-check on a real batch of this task before spending any compute on it.
    decoded = self_check(tokenizer, collate([encoded.train[i] for i in range(min(4, len(encoded.train)))]),
                         text_pair=data.train.is_pair, vocab_size=model.get_input_embeddings().num_embeddings)
    if verbose:
        print(f"[{task.name} seed {seed}] {len(data.train)} train examples, head {head_init}; first input: {decoded}")

    model, outcome = fit_and_evaluate(cfg, task, model, encoded.train, encoded.selection, encoded.evals, collate,
                                      data, seed, run_dir, tokenizer, desc=f"{task.name} s{seed}", run_id=run_id,
                                      started=started)
    for split, examples in data.tests.items():
        logits = predict(model, encoded.tests[split], collate, cfg.eval_batch_size, outcome.accelerator, desc=split)
        write_submission(task, split, examples, logits, run_dir / "submission")
    if task.name == "mnli" and cfg.predict_test:
        try:
            ax = load_glue("ax", "test", source=cfg.data_source)
            logits = predict(model, encode(ax, tokenizer, cfg.max_len), collate, cfg.eval_batch_size,
                             outcome.accelerator)
            write_submission(TASKS["ax"], "test", ax, logits, run_dir / "submission")
        except DataError as err:
            print(f"[mnli] no AX predictions: {err}")
    peak.stop()
    outcome.entries += [("run", outcome.result.best_epoch, name, value) for name, value in peak.metrics().items()]
    rows = run_rows(cfg, task, seed, run_id, notebook, variant, head_init, outcome, len(data.train), started)
    # rows and predictions in one write: a run in the results file always has its per-example predictions, and a
    # failed write (a broken file, a full disk) leaves neither file changed
    write_results(rows, results_path, predictions=prediction_frame(run_id, task, data.evals, outcome.eval_logits),
                  schema=GLUE_PREDICTIONS, exact=PREDICTION_EXACT)
    # only now: a run killed before its rows were written resumes from these
    remove_training_state(run_dir / "resume")
    if not cfg.keep_checkpoints and is_main_process():
        shutil.rmtree(run_dir / "best", ignore_errors=True)
    if verbose:
        print(f"[{task.name} seed {seed}] dev score {outcome.dev_score:.4f} (best epoch "
              f"{outcome.result.best_epoch + 1}, {rows[0]['wall_s']:.0f} s)")
    return pd.DataFrame(rows)


@dataclasses.dataclass
class Outcome:
    """What :func:`fit_and_evaluate` measured: the fit, the result entries, the mean dev score and the model outputs
    on each evaluation split."""

    result: object  # train.FitResult
    entries: list[tuple[str, int, str, float]]
    dev_score: float
    accelerator: object
    eval_logits: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # split -> (N, K)
    attention: str = ""  # the attention kernel the model ran (models.set_attention)
    packed: bool = False  # trained on packed batches (packing.use_packing)
    first_token: bool = False  # its last layer computed position 0 only (models.first_token_last_layer)


def fit_and_evaluate(cfg: GlueConfig, task: GlueTask, model, train_set, selection_set, eval_sets: dict, collate,
                     data: TaskData, seed: int, run_dir: Path, tokenizer, desc: str,
                     run_id: str = "", started: float | None = None) -> tuple[object, Outcome]:
    """Train ``model`` under ``cfg``'s selection protocol (length-grouped shuffled batches, best epoch reloaded),
    then score it on every labelled evaluation split. Shared by the cross-encoder and the heads of notebook 05.

    ``run_id``: keep a resume checkpoint under ``run_dir/resume`` (continued if there); ``started``: as for fit."""
    sampler = LengthGroupedBatchSampler(train_set.lengths, cfg.batch_size, seed=seed,
                                        group_factor=50 if cfg.group_by_length else 0)
    set_attention(model)  # BB_ATTENTION; the kernel decides whether packing pays (BB_PACKING=auto)
    packed = use_packing(model)
    loader = DataLoader(train_set, batch_sampler=sampler,
                        collate_fn=PackedCollator(regression=task.is_regression) if packed else collate)
    accelerator = make_accelerator(cfg.train_settings(regression=task.is_regression), model)

    def evaluate(current_model) -> dict[str, float]:
        logits = predict(current_model, selection_set, collate, cfg.eval_batch_size, accelerator, desc="select")
        return held_out_metrics(task, logits, data.selection.labels, loss=cfg.select_metric == "loss")

    tensorboard_dir = str(run_dir / "tensorboard") if cfg.tensorboard else None
    model, result = fit(
        model, loader, evaluate if selection_set is not None else None, cfg.select_metric,
        cfg.train_settings(tensorboard_dir, regression=task.is_regression),
        run_dir / "best", accelerator, higher_is_better=cfg.select_metric != "loss",
        save_extra=tokenizer.save_pretrained, desc=desc, resume_dir=run_dir / "resume" if run_id else None,
        fingerprint=run_id, started=started, objective=PackedObjective(model) if packed else None)

    # Report on the labelled evaluation splits with the reloaded best (or last) weights.
    entries: list[tuple[str, int, str, float]] = []
    selection_split = {"holdout": "train_holdout", "dev": "dev", "last": None}[cfg.selection]
    for record in result.history:
        entries.append(("train", record["epoch"], "loss", record["train_loss"]))
        if selection_split:
            entries += [(selection_split, record["epoch"], key, value) for key, value in record.items()
                        if key not in ("epoch", "train_loss", "lr")]
    split_scores = []
    eval_logits = {}
    for split, examples in data.evals.items():
        logits = eval_logits[split] = predict(model, eval_sets[split], collate, cfg.eval_batch_size, accelerator,
                                              desc=split)
        values = M.task_metrics(task, logits, examples.labels)
        split_scores.append(M.task_score(task, values))
        entries += [(split, result.best_epoch, key, value) for key, value in values.items()]
    dev_score = float(np.mean(split_scores))
    entries.append(("dev", result.best_epoch, "score", dev_score))
    entries.append(("train", result.best_epoch, "examples_per_s", result.examples_seen / result.train_seconds))
    # encoder tokens trained on (padding excluded): every epoch run reads the whole training set once
    tokens = float(np.sum(train_set.lengths)) * len(result.history)
    entries.append(("train", result.best_epoch, "train_tokens", tokens))
    entries.append(("train", result.best_epoch, "tokens_per_s", tokens / result.train_seconds))
    # model FLOPs per second, and their share of the device's data-sheet peak where it has one (GPUs; MFU)
    first_token = not packed and first_token_applies(model)
    per_token = encoder_train_flops_per_token(model, float(np.mean(train_set.lengths)), first_token)
    entries.append(("train", result.best_epoch, "tflops", tokens / result.train_seconds * per_token / 1e12))
    if (device_peak := device_peak_tflops(accelerator.device)) is not None:
        entries.append(("train", result.best_epoch, "mfu",
                        tokens / result.train_seconds * per_token / (device_peak * 1e12)))
    entries.append(("train", result.best_epoch, "train_s", result.train_seconds))
    entries.append(("train", result.best_epoch, "epochs_run", len(result.history)))
    return model, Outcome(result, entries, dev_score, accelerator, eval_logits, attention_of(model), packed,
                          first_token)


def run_rows(cfg: GlueConfig, task: GlueTask, seed: int, run_id: str, notebook: str, variant: str, head_init: str,
             outcome: Outcome, train_examples: int, started: float) -> list[dict]:
    """The results rows of one fine-tuning run (protocol columns from ``cfg``)."""
    common = {
        "run_id": run_id, "notebook": notebook, "preset": cfg.preset, "model": model_label(cfg.model),
        "task": task.name, "variant": variant, "seed": seed, "init": init_label(cfg), "head_init": head_init,
        "selection": SELECTION_LABELS[cfg.selection], "max_len": cfg.max_len, "train_examples": train_examples,
        "device": device_description(outcome.accelerator.device, outcome.accelerator.mixed_precision,
                                     outcome.attention, outcome.packed, first_token=outcome.first_token),
        "wall_s": run_seconds(started, outcome.result), "config": recorded_config(cfg),
    }
    return make_rows(common, outcome.entries)


def available_tasks(cfg: GlueConfig) -> tuple[str, ...]:
    """``cfg.tasks`` less those whose local files are missing (named in one message with the folder looked in, so
    ``BB_PRESET=full`` on a partial GLUE download runs what it has); every task with ``data_source='hub'``.

    Raises:
        DataError: none of the tasks has its files.
    """
    if cfg.data_source != "local":
        return cfg.tasks
    missing = {name: splits for name in cfg.tasks if (splits := missing_local_splits(name))}
    if not missing:
        return cfg.tasks
    where = f"{portable_path(data_dir() / 'glue')}/<Task>/"
    listed = "; ".join(f"{name} (no {', '.join(splits)})" for name, splits in missing.items())
    kept = tuple(name for name in cfg.tasks if name not in missing)
    if not kept:
        raise DataError(f"no local data for any of the tasks {list(cfg.tasks)}: {listed}. Put the official GLUE "
                        f"TSVs under {where}, or set data_source='hub' (BB_DATA_SOURCE=hub) when online.")
    print(f"skipped for lack of local data: {listed} (looked under {where}; BB_DATA_SOURCE=hub reads them from "
          f"the hub when online); running {', '.join(kept)}")
    return kept


def run_glue(cfg: GlueConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """Every (task, seed) of ``cfg``; each run's rows are written as soon as it ends (nothing lost on a crash)."""
    check_writable(results_path)
    check_writable(runs_dir() / "glue" / "checkpoints", variable="BB_RUNS_DIR")
    frames = []
    for task_name in available_tasks(cfg):
        task = get_task(task_name)
        task_cfg = cfg.for_task(task.name)
        run_ids = {seed: run_id_for(task_cfg, task.name, seed) for seed in task_cfg.seeds}
        done = finished_runs(results_path, list(run_ids.values())) if cfg.resume and not task_cfg.lr_grid else {}
        if done:
            finished = [seed for seed, run_id in run_ids.items() if run_id in done]
            print(f"[{task.name}] seeds {finished} already in {results_path}; BB_RESUME=0 reruns them")
        if len(done) == len(run_ids):  # nothing to read or tokenise
            frames += [done[run_id] for run_id in run_ids.values()]
            continue
        data = load_task_data(task_cfg, task)
        encoded = encode_task(task_cfg, data)
        run_cfg = cfg
        if task_cfg.lr_grid:  # the learning rate, chosen first on the selection split with the first seed
            sweep = {lr: run_task_seed(cfg.replace(lr=lr), task.name, min(task_cfg.seeds), data, Path(results_path),
                                       verbose=verbose, encoded=encoded) for lr in task_cfg.lr_grid}
            frames += list(sweep.values())
            scores = {lr: selection_score(rows) for lr, rows in sweep.items()}
            chosen = max(task_cfg.lr_grid, key=lambda lr: scores[lr])  # ties: the first in the grid
            print(f"[{task.name}] lr {chosen:g} chosen on the selection split with seed {min(task_cfg.seeds)}: "
                  + ", ".join(f"{lr:g} -> {score:.4f}" for lr, score in scores.items()))
            run_cfg = cfg.replace(lr=chosen)
            run_ids = {seed: run_id_for(task_cfg.replace(lr=chosen), task.name, seed) for seed in task_cfg.seeds
                       if seed != min(task_cfg.seeds)}
            done = finished_runs(results_path, list(run_ids.values())) if cfg.resume else {}
        for seed, run_id in run_ids.items():
            frames.append(done[run_id] if run_id in done else
                          run_task_seed(run_cfg, task.name, seed, data, Path(results_path), verbose=verbose,
                                        encoded=encoded))
    return pd.concat(frames, ignore_index=True)
