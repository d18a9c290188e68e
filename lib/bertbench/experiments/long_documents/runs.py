"""Long-document classification (notebook 04): every truncation and window strategy through one training loop.

A *run* is one (dataset, variant, seed[, fold]); the variant is a strategy (``head``, ``tail``, ``head_tail``,
``rs``, ``rso``, ``rsd``) or ``windows+<rule>`` with an aggregation rule of :mod:`bertbench.window_pooling`. Every run:

1. tokenises each document once (no special tokens), then builds its windows (:mod:`bertbench.windows`) wrapped with
   the tokenizer's own special tokens; the self-check runs on a real batch before training;
2. trains with :func:`bertbench.train.fit` on batches of ``batch_size`` documents, whose windows are encoded at most
   ``max_windows_per_pass`` at a time. When a batch holds more windows, each pass is activation-checkpointed
   (recomputed in the backward pass, dropout masks included), so memory is bounded by one pass whatever the
   document's length, and the gradient is exactly that of the whole batch;
3. early-stops on the validation split, reloads the best epoch, and reports test accuracy and F1 with percentile
   bootstrap confidence intervals, plus the cost: encoder tokens per document (training, per epoch; inference),
   training and prediction time, peak memory.

The split is the one the source gives (:func:`~bertbench.data.documents.load_document_splits`: a BERT data_dir,
train/val/test files, a split column, a saved DatasetDict), else the saved 80/10/10 split or k folds. A number to
predict (``regression``, or ``tsv-regression:``) is pooled and scored as :mod:`bertbench.window_pooling` and
:func:`bertbench.metrics.document_metrics` say (Pearson, Spearman, MSE; selected on Pearson unless ``select_metric``
is ``spearman``), and keeps no per-document predictions (that file's labels are classes). A text pair
(``text_pair_column``, or TEXT_B of a BERT data_dir) is cut to ``max_pair_tokens`` and appended to every window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ... import dist
from ... import metrics as M
from ... import window_pooling as A
from ...checkpoint import remove_training_state, start_or_skip
from ...config import (
    TRAINING_RUNTIME,
    BaseConfig,
    check_choice,
    check_overrides,
    check_range,
    check_training_fields,
    parse_overrides,
)
from ...data.documents import (
    SPLIT_NAMES,
    Documents,
    fixed_split,
    kfold_splits,
    load_document_splits,
    subsample_stratified,
)
from ...data.examples import DataError
from ...data.user_data import portable_source
from ...dist import is_main_process
from ...memory import PeakMemory, return_large_blocks_to_os
from ...models import (
    ACTIVATION_CHECKPOINTING,
    attention_of,
    build_classifier,
    configure_threads,
    first_token_applies,
    first_token_last_layer,
    is_random,
    load_tokenizer,
    model_provenance,
    self_check,
    set_activation_checkpointing,
)
from ...paths import portable_path, runs_dir
from ...results import DOCUMENT_PREDICTIONS, check_writable, make_rows, write_predictions, write_results
from ...train import (
    TrainSettings,
    device_description,
    device_peak_tflops,
    encoder_train_flops_per_token,
    fit,
    make_accelerator,
    run_seconds,
)
from ...windows import (
    STRATEGIES,
    DocumentBatchSampler,
    DocumentWindows,
    PairDocumentWindows,
    PairTemplate,
    SpecialTokens,
    WindowCollator,
    WindowSpec,
)
from ..glue_finetune import model_label

NOTEBOOK = "04_long_documents"
ALL_RUNS = ("head", "tail", "head_tail", "rs", "rso", "rsd") + tuple(f"windows+{rule}" for rule in A.RULES)
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REGRESSION_SELECT = ("pearson", "spearman")


def parse_run(name: str) -> tuple[str, str]:
    """``"head"`` -> ("head", "mean_logits"); ``"windows+max_prob"`` -> ("windows", "max_prob")."""
    strategy, _, rule = name.partition("+")
    if strategy not in STRATEGIES:
        raise ValueError(f"runs: {name!r}: strategy {strategy!r} is not one of {STRATEGIES}")
    if strategy != "windows":
        if rule:
            raise ValueError(f"runs: {name!r}: only 'windows' takes an aggregation rule (one input per document)")
        return strategy, "mean_logits"
    if rule not in A.RULES:
        raise ValueError(f"runs: {name!r}: write windows+<rule> with a rule from {A.RULES}")
    return strategy, rule


@dataclasses.dataclass(frozen=True)
class LongDocConfig(BaseConfig):
    """Notebook 04: long-document classification. Every field is ``BB_<FIELD>``."""

    preset: str = "cpu"
    # names, CSV/JSONL paths (train.csv beside val.csv/test.csv: those splits), tsv:<BERT data_dir>, a save_to_disk
    # folder, or hf:<dataset>[:<cfg>]:<split>
    datasets: tuple[str, ...] = ("hyperpartisan", "bbc")
    dataset_overrides: str = "bbc.max_train_docs=400;bbc.runs=head,windows+mean_prob"
    text_column: str = "text"  # for CSV / JSONL / hub datasets
    label_column: str = "label"
    label_sep: str = ""  # e.g. "|": a label field holds several labels (multi-label)
    id_column: str = ""
    text_pair_column: str = ""  # a second text (a question, a claim) appended to every window
    max_pair_tokens: int = 64  # the pair's first tokens kept: room reserved for it in every window
    split_column: str = ""  # a column naming each row's split (train, val/validation/dev, test)
    regression: bool = False  # the label is a number to predict (Pearson, Spearman, MSE)
    model: str = "minilm"
    tokenizer: str = ""
    trust_remote_code: bool = False
    runs: tuple[str, ...] = ("head", "windows+mean_prob", "windows+mean_logits", "head_tail", "rs")
    seeds: tuple[int, ...] = (0,)
    cv_folds: int = 0  # 0: the saved 80/10/10 split; k >= 3: stratified k-fold cross-validation (k runs each)
    max_train_docs: int = 0  # stratified subsample of the training split; 0 = all
    max_eval_docs: int = 0  # cap on validation and test documents (tests only); 0 = all
    max_len: int = 512  # model input length, special tokens included
    head_tokens: int = 128  # head_tail: tokens from the start
    tail_tokens: int = 0  # head_tail: tokens from the end; 0 = the rest of max_len (GCP's ht: 128 + 382)
    span_len: int = 64  # rs / rso / rsd
    chunk_size: int = 510  # windows: content tokens per window (<= max_len minus the special tokens)
    stride: int = 448
    minimal_chunk_length: int = 32
    maximal_text_length: int = 2048  # 0 = whole documents
    max_num_segments: int = 0  # 0 = no cap
    custom_agg_c: float = 2.0
    attention_dropout: float = 0.0  # < 0 keeps the model's own; > 0 is much slower on CPU (see build_classifier)
    batch_size: int = 8  # documents per batch
    max_windows_per_pass: int = 32  # windows per encoder pass (bounds memory); more are checkpointed passes
    # what each encoder layer keeps for the backward pass (models.ACTIVATION_CHECKPOINTING): "selective" recomputes
    # the elementwise work between matrix products (same gradients, a few % slower, much less memory), "full" whole
    # layers, "off" nothing
    activation_checkpointing: str = "selective"
    eval_batch_size: int = 16  # documents
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: int = 2
    patience: int = 2
    max_grad_norm: float = 1.0
    select_metric: str = "f1"  # on the validation split; regression: pearson (default) or spearman
    bootstrap_samples: int = 1000
    mixed_precision: str = "auto"
    keep_checkpoints: bool = False  # keep runs/longdoc/<run_id>/best after the test predictions
    tensorboard: bool = False  # TensorBoard scalars (loss and lr per logged step, metrics per epoch) per run
    num_threads: int = 0
    resume: bool = True  # skip runs already in the results file, continue an interrupted one (0: start afresh)
    checkpoint_every: int = 0  # resume checkpoint every N optimizer steps too (0: epoch ends and checkpoint_minutes)
    checkpoint_minutes: float = 10.0  # resume checkpoint every N minutes of training (0: not by time)

    RUNTIME = (*TRAINING_RUNTIME, "activation_checkpointing")  # same gradients: not part of a run's identity
    ADDED_FIELDS = ("tail_tokens", "tensorboard", "text_pair_column", "max_pair_tokens", "split_column", "regression")
    PRESETS = {
        "tiny": dict(datasets=("hyperpartisan", "bbc"), model="random-bert-2x64", runs=ALL_RUNS,
                     dataset_overrides="bbc.runs=head,windows+mean_prob;bbc.seeds=0", seeds=(0,),
                     max_train_docs=24, max_eval_docs=12, max_len=64, head_tokens=16, span_len=8, chunk_size=62,
                     stride=48, minimal_chunk_length=8, maximal_text_length=256, batch_size=4,
                     max_windows_per_pass=8, eval_batch_size=8, lr=1e-3, epochs=2, patience=0,
                     bootstrap_samples=200),
        "cpu": {},
        # minutes on one GPU: every run, 3 seeds, BBC on its whole training split, 4,096 tokens per document
        "gpu": dict(runs=ALL_RUNS, seeds=(0, 1, 2), dataset_overrides="", maximal_text_length=4096, epochs=3,
                    max_windows_per_pass=64, batch_size=16, lr=5e-5),
        "full": dict(runs=ALL_RUNS, seeds=(0, 1, 2), dataset_overrides="", maximal_text_length=4096, epochs=5,
                     max_windows_per_pass=64, batch_size=16, lr=5e-5),
    }

    def validate(self) -> None:
        super().validate()
        if not self.datasets or not self.runs or not self.seeds:
            raise ValueError("datasets, runs and seeds: at least one each")
        for name in self.runs:
            parse_run(name)
        check_training_fields(self)
        check_choice("select_metric", self.select_metric, ("f1", "accuracy", *REGRESSION_SELECT))
        check_range("max_pair_tokens", self.max_pair_tokens, 1)
        if self.text_pair_column and self.chunk_size + self.max_pair_tokens > self.max_len - 3:
            raise ValueError(f"text_pair_column: chunk_size ({self.chunk_size}) + max_pair_tokens "
                             f"({self.max_pair_tokens}) + the pair's special tokens (3 or more) exceed max_len "
                             f"({self.max_len}); lower BB_CHUNK_SIZE (and BB_STRIDE) or BB_MAX_PAIR_TOKENS")
        check_choice("mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))
        check_choice("activation_checkpointing", self.activation_checkpointing, ACTIVATION_CHECKPOINTING)
        if self.cv_folds and self.cv_folds < 3:
            raise ValueError(f"cv_folds: {self.cv_folds} must be 0 (fixed split) or >= 3")
        for name in ("max_train_docs", "max_eval_docs", "head_tokens", "tail_tokens", "minimal_chunk_length",
                     "maximal_text_length", "max_num_segments", "patience", "bootstrap_samples"):
            check_range(name, getattr(self, name), 0)
        for name in ("span_len", "chunk_size", "stride", "max_windows_per_pass", "eval_batch_size", "epochs"):
            check_range(name, getattr(self, name), 1)
        check_range("custom_agg_c", self.custom_agg_c, 0, low_open=True)
        check_range("attention_dropout", self.attention_dropout, None, 1)
        check_range("warmup_ratio", self.warmup_ratio, 0, 1)
        if self.stride > self.chunk_size:
            raise ValueError(f"stride: {self.stride} > chunk_size {self.chunk_size} would skip text between windows")
        if self.minimal_chunk_length > self.chunk_size:
            raise ValueError(f"minimal_chunk_length: {self.minimal_chunk_length} > chunk_size {self.chunk_size} "
                             f"would drop a full last window (no window can be that long)")
        if self.chunk_size > self.max_len - 2 or self.head_tokens + self.tail_tokens > self.max_len - 2:
            raise ValueError(f"chunk_size ({self.chunk_size}) and head_tokens + tail_tokens ({self.head_tokens} + "
                             f"{self.tail_tokens}) must leave room "
                             f"for the special tokens in max_len ({self.max_len})")
        self.overrides_for("")  # parsed, then each overridden dataset's config validated now, not after others ran
        check_overrides(self.dataset_overrides, str.strip, self.for_dataset, "dataset_overrides")

    def overrides_for(self, dataset: str) -> dict:
        # names are not checked against `datasets` (narrowing BB_DATASETS keeps the other overrides), but each
        # overridden config is validated with the others (validate)
        return parse_overrides(self.dataset_overrides, self.field_types(), str.strip,
                               ("datasets", "dataset_overrides", "preset"), "dataset_overrides").get(dataset, {})

    def for_dataset(self, dataset: str) -> LongDocConfig:
        """This config for one dataset, its overrides applied, the dataset recorded portably (a path of your own as
        ``<data>/...``, ``<runs>/...`` or relative to the checkout)."""
        return self.replace(datasets=(portable_source(dataset),), dataset_overrides="", **self.overrides_for(dataset))

    def selection(self, problem: str) -> str:
        """The validation metric that picks the best epoch for a ``problem`` (Pearson or Spearman for regression)."""
        if problem == "regression":
            return self.select_metric if self.select_metric in REGRESSION_SELECT else "pearson"
        if self.select_metric in REGRESSION_SELECT:
            raise ValueError(f"select_metric: {self.select_metric!r} scores a number to predict, and this dataset is "
                             f"{problem} classification; use f1 or accuracy (per dataset: BB_DATASET_OVERRIDES)")
        return self.select_metric

    def spec(self, strategy: str, n_special: int, pair_tokens: int = 0) -> WindowSpec:
        """The window spec for ``strategy``: ``n_special`` tokens of the template and ``pair_tokens`` of a text pair
        left out of every window's budget."""
        budget = self.max_len - n_special - pair_tokens
        if self.chunk_size > budget:
            pair = f" + {pair_tokens} tokens of the text pair (max_pair_tokens)" if pair_tokens else ""
            raise ValueError(f"chunk_size: {self.chunk_size} + {n_special} special tokens{pair} exceeds max_len "
                             f"{self.max_len}; lower BB_CHUNK_SIZE (and BB_STRIDE)")
        return WindowSpec(strategy=strategy, budget=budget, head_tokens=min(self.head_tokens, budget),
                          tail_tokens=self.tail_tokens,
                          span_len=self.span_len, chunk_size=self.chunk_size, stride=self.stride,
                          minimal_chunk_length=self.minimal_chunk_length,
                          maximal_text_length=self.maximal_text_length, max_num_segments=self.max_num_segments)

    def train_settings(self, tensorboard_dir: str | None = None, regression: bool = False) -> TrainSettings:
        """The loop's settings; ``regression``: "auto" precision stays fp32 (bf16 outputs tie, as for STS-B)."""
        precision = "no" if regression and self.mixed_precision == "auto" else self.mixed_precision
        return TrainSettings(tensorboard_dir=tensorboard_dir, epochs=self.epochs, lr=self.lr,
                             weight_decay=self.weight_decay,
                             warmup_ratio=self.warmup_ratio, max_grad_norm=self.max_grad_norm,
                             grad_accum=self.grad_accum, patience=self.patience, select="best",
                             mixed_precision=precision, log_every=5,
                             checkpoint_every=self.checkpoint_every, checkpoint_minutes=self.checkpoint_minutes,
                             memory_hint=f"batch_size ({self.batch_size} documents; BB_BATCH_SIZE, with BB_GRAD_ACCUM "
                                         f"to keep the effective batch), max_windows_per_pass "
                                         f"({self.max_windows_per_pass}; BB_MAX_WINDOWS_PER_PASS), max_len "
                                         f"({self.max_len}; BB_MAX_LEN), or raise activation_checkpointing "
                                         f"({self.activation_checkpointing}; BB_ACTIVATION_CHECKPOINTING=full keeps "
                                         f"the least)")


def run_id_for(cfg: LongDocConfig, dataset: str, run: str, seed: int, fold: int | None, name: str = "") -> str:
    """Stable id of one run; ``name``: the set's name where the spec's file name is not (``.../reviews/train.csv``)."""
    effective = cfg.for_dataset(dataset).replace(runs=(run,), seeds=(seed,))
    blob = json.dumps({"config": effective.identity(),
                       "fold": fold}, sort_keys=True)
    slug = run.replace("+", "-")
    return f"{name or Path(dataset).stem}-{slug}-s{seed}{'' if fold is None else f'-f{fold}'}-" \
           f"{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def encode_windows(model, batch: dict[str, torch.Tensor], max_windows: int) -> torch.Tensor:
    """Logits (W, K) for every window of ``batch``, at most ``max_windows`` per encoder pass.

    With gradients on and more windows than one pass takes, each pass is checkpointed: its activations are freed
    after the forward and recomputed in the backward (with the same dropout masks), so peak memory is one pass.
    """
    inputs = {key: batch[key] for key in ENCODER_INPUTS if key in batch}
    n = inputs["input_ids"].shape[0]
    if n <= max_windows:
        return model(**inputs).logits
    checkpointed = torch.is_grad_enabled() and model.training

    def forward(*tensors):
        return model(**dict(zip(inputs, tensors, strict=True))).logits

    outputs = []
    for start in range(0, n, max_windows):
        part = [value[start:start + max_windows] for value in inputs.values()]
        width = int(part[1].sum(dim=1).max())  # windows are right-padded: drop columns that are padding in all
        part = [value[:, :width] for value in part]
        outputs.append(checkpoint(forward, *part, use_reentrant=False) if checkpointed else forward(*part))
    return torch.cat(outputs)


@torch.no_grad()
def predict_documents(model, dataset: DocumentWindows, collate: WindowCollator, cfg: LongDocConfig, rule: str,
                      multilabel: bool, device, desc: str = "predict", regression: bool = False,
                      autocast: Callable = contextlib.nullcontext) -> np.ndarray:
    """Document probabilities (N, K) in the dataset's order (regression: the predicted numbers, (N, 1)); batches of
    documents sorted by length.

    In a distributed launch each process predicts every ``world``-th batch and the rows are summed across processes:
    every process returns all N, each document predicted once. ``autocast``: the accelerator's (bf16 on a GPU).
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(dataset)), key=dataset.lengths.__getitem__)
    out = np.zeros((len(dataset), model.config.num_labels), dtype=np.float32)
    starts = range(0, len(order), cfg.eval_batch_size)[dist.rank()::dist.world_size()]
    for start in tqdm(starts, desc=desc, leave=False, mininterval=2.0):
        indices = order[start:start + cfg.eval_batch_size]
        batch = collate([dataset[i] for i in indices])
        batch = {key: value.to(device) for key, value in batch.items() if key != "labels"}
        with autocast(), first_token_last_layer(model):  # BB_LAST_LAYER, as in training
            logits = encode_windows(model, batch, cfg.max_windows_per_pass * 4).float()
        probs = (A.doc_values(logits, batch["doc_index"], len(indices), rule, cfg.custom_agg_c) if regression else
                 A.doc_probabilities(logits, batch["doc_index"], len(indices), rule, multilabel, cfg.custom_agg_c))
        out[indices] = probs.cpu().numpy()
    if was_training:
        model.train()
    return dist.sum_array(out, device)


@dataclasses.dataclass
class PreparedDataset:
    """One dataset read, tokenised (once, for every run) and split."""

    cfg: LongDocConfig
    docs: Documents
    tokenizer: object
    special: SpecialTokens | PairTemplate  # the pair template when the documents have a text pair
    tokens: list[list[int]]
    splits: list[dict[str, list[int]]]  # one (fixed or given split) or k (folds)
    split_file: str
    pairs: list[list[int]] | None = None  # each document's text pair, cut to max_pair_tokens
    given: bool = False  # the split came with the source

    def part(self, fold: int, name: str) -> tuple[list[list[int]], list]:
        indices = self.splits[fold][name]
        return [self.tokens[i] for i in indices], [self.docs.examples.labels[i] for i in indices]

    def spec(self, strategy: str) -> WindowSpec:
        return self.cfg.spec(strategy, self.special.count, self.cfg.max_pair_tokens if self.pairs else 0)

    def windows(self, fold: int, name: str, spec: WindowSpec, seed: int) -> DocumentWindows:
        """The documents of split ``name`` as windows (each followed by its text pair, if any)."""
        tokens, labels = self.part(fold, name)
        if self.pairs is None:
            return DocumentWindows(tokens, labels, spec, self.special, seed=seed)
        pairs = [self.pairs[i] for i in self.splits[fold][name]]
        return PairDocumentWindows(tokens, pairs, labels, spec, self.special, seed=seed)


def prepare_dataset(cfg: LongDocConfig, dataset: str) -> PreparedDataset:
    docs, given, split_file = load_document_splits(
        dataset, text=cfg.text_column, label=cfg.label_column, label_sep=cfg.label_sep, id_column=cfg.id_column or None,
        text_pair=cfg.text_pair_column or None, split_column=cfg.split_column, regression=cfg.regression)
    if given is not None and cfg.cv_folds:
        raise DataError(f"{docs.name}: cv_folds ({cfg.cv_folds}) and a split the data gives ({split_file}); "
                        f"cross-validation needs one pool of documents: set BB_CV_FOLDS=0 or give one file")
    tokenizer = load_tokenizer(cfg.tokenizer or ("minilm" if is_random(cfg.model) else cfg.model),
                               trust_remote_code=cfg.trust_remote_code)

    def tokenise(texts: list[str], what: str) -> list[list[int]]:
        tokens: list[list[int]] = []
        for start in tqdm(range(0, len(texts), 256), desc=f"tokenise {what}", leave=False, mininterval=2.0):
            tokens.extend(tokenizer(texts[start:start + 256], add_special_tokens=False, truncation=False,
                                    verbose=False)["input_ids"])
        return tokens

    tokens = tokenise(docs.examples.text_a, docs.name)
    pairs, special = None, SpecialTokens.from_tokenizer(tokenizer)
    if docs.examples.is_pair:
        pairs = [pair[:cfg.max_pair_tokens] for pair in tokenise(docs.examples.text_b, f"{docs.name} pairs")]
        special = PairTemplate.from_tokenizer(tokenizer)
    if given is not None:
        splits = [given]
    elif cfg.cv_folds:
        splits, split_file = kfold_splits(docs, cfg.cv_folds), f"stratified {cfg.cv_folds}-fold, seed 0"
    else:
        indices, path = fixed_split(docs)
        splits, split_file = [indices], portable_path(path)
    capped = []
    for split in splits:
        split = dict(split)
        split["train"] = subsample_stratified(split["train"], docs, cfg.max_train_docs)
        for name in ("val", "test"):
            split[name] = subsample_stratified(split[name], docs, cfg.max_eval_docs)
        capped.append(split)
    check_splits(docs, capped, cfg.cv_folds, split_file)
    prepared = PreparedDataset(cfg, docs, tokenizer, special, tokens, capped, split_file, pairs, given is not None)
    for run in cfg.runs:  # window settings that do not fit (a text pair's room): refused now, not after other runs
        prepared.spec(parse_run(run)[0])
    cfg.selection(docs.problem)
    return prepared


def check_splits(docs: Documents, splits: list[dict[str, list[int]]], cv_folds: int, split_file: str) -> None:
    """Refuse, before any training, a split (or fold) with no document in train, val or test: the run would train
    and then fail on an empty split (a ZeroDivisionError in the test metrics, far from its cause)."""
    for fold, split in enumerate(splits):
        empty = [name for name in SPLIT_NAMES if not split[name]]
        if not empty:
            continue
        where = f"fold {fold + 1} of {cv_folds}" if cv_folds else f"the split {split_file}"
        sizes = ", ".join(f"{name} {len(split[name])}" for name in SPLIT_NAMES)
        raise DataError(f"{docs.name}: {len(docs)} documents leave {' and '.join(empty)} empty in {where} ({sizes}); "
                        f"each of train, val and test needs at least 1 document. Add documents, or use "
                        f"cross-validation (BB_CV_FOLDS=k needs at least k documents, e.g. 3)")


def run_one(cfg: LongDocConfig, prepared: PreparedDataset, run: str, seed: int, fold: int, results_path: Path,
            verbose: bool = True) -> pd.DataFrame:
    """Train and test one variant; write its rows; return them."""
    from transformers import set_seed

    strategy, rule = parse_run(run)
    docs, tokenizer = prepared.docs, prepared.tokenizer
    fold_arg = fold if cfg.cv_folds else None
    run_id = run_id_for(cfg, prepared.cfg.datasets[0], run, seed, fold_arg, docs.name if prepared.given else "")
    run_dir = runs_dir() / "longdoc" / run_id
    label = f"{prepared.docs.name} {run} s{seed}" + (f" fold {fold + 1}/{cfg.cv_folds}" if cfg.cv_folds else "")
    done = start_or_skip(cfg.resume, results_path, run_id, run_dir / "resume", label if verbose else "")
    if done is not None:
        return done
    started = time.perf_counter()
    configure_threads(cfg.num_threads)
    set_seed(seed)
    spec = prepared.spec(strategy)
    multilabel, regression, select = docs.multilabel, docs.regression, cfg.selection(docs.problem)
    datasets = {name: prepared.windows(fold, name, spec, seed=0) for name in ("val", "test")}
    train_set = prepared.windows(fold, "train", spec, seed=seed)
    collate = WindowCollator(tokenizer.pad_token_id, multilabel=multilabel or regression)  # float labels for both
    accelerator = make_accelerator(cfg.train_settings(regression=regression))
    return_large_blocks_to_os()  # resident memory is then what the live tensors take (memory.py)
    # this run's own peak memory, from before its model exists to its last prediction (memory.py)
    peak = PeakMemory(accelerator.device).start()
    model, head_init = build_classifier(
        cfg.model, tokenizer, docs.label_names, regression=regression, max_len=cfg.max_len,
        trust_remote_code=cfg.trust_remote_code,
        attention_dropout=cfg.attention_dropout if cfg.attention_dropout >= 0 else None)
    model.config.bertbench_task = docs.name  # saved with the checkpoint: its provenance
    checkpointing = set_activation_checkpointing(model, cfg.activation_checkpointing)
    if model.config.num_labels < 2 and not (multilabel or regression):
        raise ValueError(f"{docs.name}: {model.config.num_labels} label(s); a classifier needs at least 2")
    decoded = self_check(tokenizer, collate([{"windows": train_set.windows(i)} for i in range(min(4, len(train_set)))]),
                         text_pair=prepared.pairs is not None, vocab_size=model.get_input_embeddings().num_embeddings)
    loader = DataLoader(train_set, batch_sampler=DocumentBatchSampler(train_set, cfg.batch_size, seed=seed),
                        collate_fn=collate)
    if verbose:
        print(f"[{label}] {len(train_set)} train / {len(datasets['val'])} val / {len(datasets['test'])} test "
              f"documents; first window: {decoded[:160]}")

    def loss_fn(current, batch):
        logits = encode_windows(current, batch, cfg.max_windows_per_pass)
        if regression:
            return A.doc_regression_loss(logits, batch["doc_index"], batch["labels"], rule, cfg.custom_agg_c)
        return A.doc_loss(logits, batch["doc_index"], batch["labels"], rule, multilabel, cfg.custom_agg_c)

    val_labels = np.asarray(datasets["val"].labels)

    def evaluate(current) -> dict[str, float]:
        probs = predict_documents(current, datasets["val"], collate, cfg, rule, multilabel, accelerator.device,
                                  desc="val", regression=regression, autocast=accelerator.autocast)
        values = M.document_metrics(probs, val_labels, docs.problem)
        values["score"] = values[select]
        return values

    tensorboard_dir = str(run_dir / "tensorboard") if cfg.tensorboard else None
    model, result = fit(model, loader, evaluate, "score", cfg.train_settings(tensorboard_dir), run_dir / "best",
                        accelerator, loss_fn=loss_fn, save_extra=tokenizer.save_pretrained, desc=label,
                        resume_dir=run_dir / "resume", fingerprint=run_id, started=started)
    served_before = datasets["test"].tokens_served, datasets["test"].windows_served
    predict_started = time.perf_counter()
    test_probs = predict_documents(model, datasets["test"], collate, cfg, rule, multilabel, accelerator.device,
                                   desc="test", regression=regression, autocast=accelerator.autocast)
    predict_s = time.perf_counter() - predict_started
    peak.stop()
    # each process counted the windows it encoded: the sums are the run's
    test_tokens, test_windows, train_tokens = dist.sum_across(
        [datasets["test"].tokens_served - served_before[0], datasets["test"].windows_served - served_before[1],
         train_set.tokens_served], accelerator.device)
    test_tokens, test_windows = test_tokens / len(datasets["test"]), test_windows / len(datasets["test"])
    epochs_run = len(result.history)
    test_labels = np.asarray(datasets["test"].labels)
    test_metrics = M.document_metrics(test_probs, test_labels, docs.problem)
    intervals = M.bootstrap_intervals(test_probs, test_labels, docs.problem, cfg.bootstrap_samples, seed=0)

    best = result.best_epoch
    entries: list[tuple[str, int, str, float]] = []
    for record in result.history:
        entries.append(("train", record["epoch"], "loss", record["train_loss"]))
        entries += [("val", record["epoch"], key, value) for key, value in record.items()
                    if key not in ("epoch", "train_loss", "lr")]
    for name, value in test_metrics.items():
        entries.append(("test", best, name, value))
        if cfg.bootstrap_samples:  # BB_BOOTSTRAP_SAMPLES=0: no interval was computed, so it has no rows (not NaN)
            entries += [("test", best, f"{name}_ci_low", intervals[name][0]),
                        ("test", best, f"{name}_ci_high", intervals[name][1])]
    entries += [
        ("test", best, "score", test_metrics[select]),
        ("train", best, "encoder_tokens_per_doc", train_tokens / (len(train_set) * epochs_run)),
        ("test", best, "encoder_tokens_per_doc", test_tokens),
        ("test", best, "windows_per_doc", test_windows),
        ("train", best, "train_s", result.train_seconds),
        ("test", best, "predict_s", predict_s),
    ]
    # model FLOPs per second over the windows trained on (attention at the window length); MFU on a GPU with a peak
    per_token = encoder_train_flops_per_token(model, cfg.max_len, first_token_applies(model))
    flops = train_tokens * per_token / max(result.train_seconds, 1e-9)
    entries.append(("train", best, "tflops", flops / 1e12))
    if (device_peak := device_peak_tflops(accelerator.device)) is not None:
        entries.append(("train", best, "mfu", flops / (device_peak * 1e12)))
    entries += [("run", best, name, value) for name, value in peak.metrics().items()]
    common = {
        "run_id": run_id, "notebook": NOTEBOOK, "preset": cfg.preset, "model": model_label(cfg.model),
        "task": docs.name, "variant": run + (f" fold{fold + 1}/{cfg.cv_folds}" if cfg.cv_folds else ""), "seed": seed,
        "init": model_provenance(cfg.model), "head_init": head_init,
        "selection": "best_epoch_on_val_split", "max_len": cfg.max_len, "train_examples": len(train_set),
        "device": device_description(accelerator.device, accelerator.mixed_precision, attention_of(model),
                                     checkpointing=checkpointing, first_token=first_token_applies(model)),
        "wall_s": run_seconds(started, result),  # over every process of a resumed run
        "config": json.dumps({**cfg.recorded(), "split_file": prepared.split_file, "fold": fold_arg},
                             sort_keys=True),
    }
    rows = make_rows(common, entries)
    # rows and predictions in one write: both files change, or (a broken file, a full disk) neither
    # a number to predict keeps no per-document predictions: that file's label column holds classes
    write_results(rows, results_path, schema=DOCUMENT_PREDICTIONS, predictions=None if regression else prediction_rows(
        run_id, [docs.examples.ids[i] for i in prepared.splits[fold]["test"]], test_labels, test_probs,
        docs.label_names))
    remove_training_state(run_dir / "resume")  # only now: a run killed before its rows were written resumes
    if not cfg.keep_checkpoints and is_main_process():
        shutil.rmtree(run_dir / "best", ignore_errors=True)
    if verbose:
        ci, first = intervals[select], "mse" if regression else "accuracy"
        print(f"[{label}] test {first} {test_metrics[first]:.4f}, {select} "
              f"{test_metrics[select]:.4f} [{ci[0]:.4f}, {ci[1]:.4f}] (best epoch {best + 1}, "
              f"{common['wall_s']:.0f} s, {test_tokens:.0f} tokens/doc at inference)")
    return pd.DataFrame(rows)


def prediction_rows(run_id: str, ids: list[str], labels: np.ndarray, probs: np.ndarray,
                    label_names: tuple[str, ...]) -> pd.DataFrame:
    """One run's per-document test probabilities in the predictions file's format (``DOCUMENT_PREDICTIONS``)."""
    frame = pd.DataFrame({"run_id": run_id, "doc_id": ids,
                          "label": [json.dumps(np.asarray(value).tolist()) for value in labels]})
    for k, name in enumerate(label_names):
        frame[f"p_{name}"] = probs[:, k]
    return frame


def save_predictions(run_id: str, ids: list[str], labels: np.ndarray, probs: np.ndarray,
                     label_names: tuple[str, ...], path: Path) -> None:
    """Merge one run's per-document test probabilities into ``path`` (earlier rows of the run replaced)."""
    write_predictions(prediction_rows(run_id, ids, labels, probs, label_names), path, schema=DOCUMENT_PREDICTIONS)


def run_long_documents(cfg: LongDocConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """Every dataset x run x seed (x fold) of ``cfg``; each run's rows are written as soon as it ends."""
    check_writable(results_path)
    check_writable(runs_dir() / "longdoc" / "checkpoints", variable="BB_RUNS_DIR")
    frames = []
    for dataset in cfg.datasets:
        dataset_cfg = cfg.for_dataset(dataset)
        with dist.main_process_first():  # the first use of a dataset saves its split: one process writes it
            prepared = prepare_dataset(dataset_cfg, dataset)
        for run in dataset_cfg.runs:
            for seed in dataset_cfg.seeds:
                for fold in range(len(prepared.splits)):
                    frames.append(run_one(dataset_cfg, prepared, run, seed, fold, Path(results_path), verbose))
    return pd.concat(frames, ignore_index=True)
