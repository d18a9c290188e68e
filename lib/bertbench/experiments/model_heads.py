"""Notebook 05 (model heads): the two-input bi-encoder against the cross-encoder, and multitask against single-task.

Both studies reuse the GLUE protocol of notebook 03 (:class:`~bertbench.experiments.glue_finetune.GlueConfig`
fields: the same fixed training subset drawn with seed 0, the same held-out 10 % for choosing the epoch, reported on
dev which took no part in any choice), so a row here and a row of notebook 03 with the same settings are comparable.

- ``pair``: on ``pair_task`` (MRPC or STS-B), the cross-encoder of notebook 03 (``build_classifier``, one
  ``[CLS] a [SEP] b [SEP]`` input; variant ``cross_encoder``) next to :class:`~bertbench.heads.TwoInputModel` with each
  fusion in ``fusions`` (variant ``two_input:<fusion>:<pooling>``), same seeds, epochs, learning rate and batches.
- ``multitask``: one :class:`~bertbench.heads.MultitaskModel` trained on mixed single-task batches of every task in
  ``tasks`` (variant ``multitask:<tasks>``) against one single-task model per task with the same head, the same
  examples and the same epochs (variant ``single_task``): the same budget, examples seen and optimizer steps alike.
  The multitask epoch is chosen by the mean of the tasks' held-out scores.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import pandas as pd
from torch import nn
from torch.utils.data import DataLoader

from .. import metrics as M
from ..checkpoint import remove_training_state, start_or_skip
from ..config import check_choice, config_differences, pooling_key
from ..data.examples import Examples
from ..data.glue import get_task
from ..encoding import PadCollator, encode
from ..heads import (
    FUSIONS,
    POOLINGS,
    MultitaskBatchSampler,
    MultitaskModel,
    PairCollator,
    PairDataset,
    TaskCollator,
    TaskDataset,
    TwoInputModel,
    load_encoder,
)
from ..models import attention_of, configure_threads, self_check
from ..paths import runs_dir
from ..results import check_writable, write_results
from ..train import fit, make_accelerator, predict
from .glue_finetune import (
    GlueConfig,
    Outcome,
    config_hash,
    encode_task,
    fit_and_evaluate,
    load_task_data,
    run_rows,
    run_task_seed,
)

NOTEBOOK = "05_model_heads"
STUDIES = ("pair", "multitask")


@dataclasses.dataclass(frozen=True)
class HeadsConfig(GlueConfig):
    """Notebook 05 (heads): GLUE's fields (same meaning and defaults) plus the two studies' own."""

    tasks: tuple[str, ...] = ("sst2", "cola", "mrpc")  # the multitask study's tasks
    studies: tuple[str, ...] = STUDIES
    pair_task: str = "mrpc"
    fusions: tuple[str, ...] = FUSIONS
    pair_seeds: tuple[int, ...] = (0, 1, 2)
    pooling: str = "mean"  # representation of the own heads (MiniLM was trained for mean pooling)
    head_dropout: float = 0.1
    predict_test: bool = False
    keep_checkpoints: bool = False

    # GLUE's later fields; head_dropout was this notebook's own from the start, so it stays in the run ids
    ADDED_FIELDS = ("lr_grid", "head", "select_metric", "min_delta")
    PRESETS = {
        "tiny": dict(model="random-bert-2x64", max_train_examples=48, max_eval_examples=24, max_len=64,
                     batch_size=16, eval_batch_size=32, lr=1e-3, epochs=2, pair_seeds=(0,), seeds=(0,)),
        "cpu": dict(fusions=("concat_diff", "mean"), pair_seeds=(0,)),
        "gpu": dict(max_train_examples=0, lr=5e-5, seeds=(0, 1, 2), pair_seeds=(0, 1, 2)),
        "full": dict(max_train_examples=0, lr=5e-5, seeds=(0, 1, 2), pair_seeds=(0, 1, 2)),
    }

    def validate(self) -> None:
        super().validate()
        for study in self.studies:
            check_choice("studies", study, STUDIES)
        for fusion in self.fusions:
            check_choice("fusions", fusion, FUSIONS)
        check_choice("pooling", self.pooling, POOLINGS)
        if not get_task(self.pair_task).is_pair:
            raise ValueError(f"pair_task: {self.pair_task!r} is not a sentence-pair task (mrpc, stsb, rte, ...)")
        if not self.pair_seeds:
            raise ValueError("pair_seeds: at least one seed")


def _encoder(cfg: HeadsConfig, tokenizer) -> nn.Module:
    return load_encoder(cfg.model, tokenizer, cfg.max_len, dropout=cfg.dropout if cfg.dropout >= 0 else None,
                        trust_remote_code=cfg.trust_remote_code)


def _check_inputs(tokenizer, dataset, model, text_pair: bool = False) -> None:
    """bertbench's pre-training self-check on the first examples of a single-text dataset."""
    collate = PadCollator(tokenizer)
    items = [{key: value for key, value in dataset[i].items() if key in ("input_ids", "token_type_ids")}
             for i in range(min(4, len(dataset)))]
    self_check(tokenizer, collate(items), text_pair=text_pair, vocab_size=model.get_input_embeddings().num_embeddings)


def _sides(examples: Examples, tokenizer, max_len: int):
    """The two texts of each pair, encoded as two single-text datasets (each ``[CLS] text [SEP]``)."""
    first = encode(Examples(examples.text_a, None, examples.labels, examples.ids, examples.source), tokenizer, max_len)
    second = encode(Examples(examples.text_b, None, examples.labels, examples.ids, examples.source), tokenizer,
                    max_len)
    return PairDataset(first, second)


def run_pair_study(cfg: HeadsConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """Cross-encoder and every two-input fusion on ``cfg.pair_task``, for each of ``cfg.pair_seeds``."""
    from transformers import set_seed

    task = get_task(cfg.pair_task)
    task_cfg = cfg.for_task(task.name)
    data = load_task_data(task_cfg, task)
    encoded = encode_task(task_cfg, data)
    tokenizer = encoded.tokenizer
    pairs = {"train": _sides(data.train, tokenizer, cfg.max_len),
             "selection": _sides(data.selection, tokenizer, cfg.max_len) if data.selection is not None else None,
             "evals": {split: _sides(ex, tokenizer, cfg.max_len) for split, ex in data.evals.items()}}
    collate = PairCollator(tokenizer, regression=task.is_regression)
    frames = []
    for seed in cfg.pair_seeds:
        frames.append(run_task_seed(task_cfg, task.name, seed, data, Path(results_path), verbose, encoded,
                                    notebook=NOTEBOOK, variant="cross_encoder"))
        for fusion in cfg.fusions:
            variant = f"two_input:{fusion}:{cfg.pooling}"
            run_id = f"{variant.replace(':', '-')}-{config_hash(task_cfg, seed=seed, variant=variant)}"
            run_dir = runs_dir() / "heads" / run_id
            done = start_or_skip(cfg.resume, results_path, run_id, run_dir / "resume",
                                 f"{task.name} two-input {fusion} seed {seed}" if verbose else "")
            if done is not None:
                frames.append(done)
                continue
            started = time.perf_counter()
            configure_threads(cfg.num_threads)
            set_seed(seed)
            model = TwoInputModel(_encoder(cfg, tokenizer), task.num_labels,
                                  "regression" if task.is_regression else "single_label_classification",
                                  pooling=cfg.pooling, fusion=fusion, dropout=cfg.head_dropout)
            _check_inputs(tokenizer, pairs["train"].first, model)
            model, outcome = fit_and_evaluate(task_cfg, task, model, pairs["train"], pairs["selection"],
                                              pairs["evals"], collate, data, seed, run_dir, tokenizer,
                                              desc=f"{task.name} {fusion} s{seed}", run_id=run_id,
                                              started=started)
            rows = run_rows(task_cfg, task, seed, run_id, NOTEBOOK, variant, "new", outcome, len(data.train),
                            started)
            write_results(rows, results_path)
            remove_training_state(run_dir / "resume")
            if verbose:
                print(f"[{task.name} two-input {fusion} seed {seed}] dev score {outcome.dev_score:.4f}")
            frames.append(pd.DataFrame(rows))
    return pd.concat(frames, ignore_index=True)


class TaskView(nn.Module):
    """One task's view of a multitask model (``predict`` calls it like a single-task classifier)."""

    def __init__(self, model: MultitaskModel, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, **batch):
        return self.model(**batch, task=self.task)


def run_multitask(cfg: HeadsConfig, tasks: tuple[str, ...], seed: int, results_path: str | Path,
                  verbose: bool = True, prepared: dict | None = None) -> pd.DataFrame:
    """Train one model with a head per task in ``tasks`` (one task = the single-task baseline); rows per task."""
    from transformers import set_seed

    variant = "single_task" if len(tasks) == 1 else "multitask:" + "+".join(tasks)
    run_id = f"{'multitask' if len(tasks) > 1 else 'single'}-{'_'.join(tasks)}-s{seed}-" \
             f"{config_hash(cfg, seed=seed, variant=variant + ':' + '+'.join(tasks))}"
    run_dir = runs_dir() / "heads" / run_id
    done = start_or_skip(cfg.resume, results_path, run_id, run_dir / "resume",
                         f"{variant} seed {seed}" if verbose else "")
    if done is not None:
        return done
    started = time.perf_counter()
    configure_threads(cfg.num_threads)
    set_seed(seed)
    prepared = prepared or prepare_tasks(cfg, tasks)
    tokenizer = prepared[tasks[0]][2].tokenizer
    specs = {name: {"num_labels": get_task(name).num_labels,
                    "problem_type": "regression" if get_task(name).is_regression else "single_label_classification"}
             for name in tasks}
    model = MultitaskModel(_encoder(cfg, tokenizer), specs, pooling=cfg.pooling, dropout=cfg.head_dropout)
    for name in tasks:
        _check_inputs(tokenizer, prepared[name][2].train, model, text_pair=prepared[name][1].train.is_pair)
    train_set = TaskDataset({name: prepared[name][2].train for name in tasks})
    regression = [name for name in tasks if get_task(name).is_regression]
    sampler = MultitaskBatchSampler(train_set, cfg.batch_size, seed=seed, group_factor=50 if cfg.group_by_length else 0)
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=TaskCollator(tokenizer, regression))
    accelerator = make_accelerator(cfg.train_settings(regression=bool(regression)), model)
    collates = {name: PadCollator(tokenizer, regression=name in regression) for name in tasks}

    def scores(current, split_sets: dict[str, tuple]) -> dict[str, dict[str, float]]:
        out = {}
        for name, (dataset, labels) in split_sets.items():
            logits = predict(TaskView(current, name), dataset, collates[name], cfg.eval_batch_size, accelerator,
                             desc=name)
            values = M.task_metrics(get_task(name), logits, labels)
            values["score"] = M.task_score(get_task(name), values)
            out[name] = values
        return out

    holdout = {name: (prepared[name][2].selection, prepared[name][1].selection.labels) for name in tasks}

    def evaluate(current) -> dict[str, float]:
        per_task = scores(current, holdout)
        flat = {f"{name}/{key}": value for name, values in per_task.items() for key, value in values.items()}
        flat["score"] = statistics.mean(values["score"] for values in per_task.values())
        return flat

    tensorboard_dir = str(run_dir / "tensorboard") if cfg.tensorboard else None
    model, result = fit(model, loader, evaluate, "score", cfg.train_settings(tensorboard_dir, bool(regression)),
                        run_dir / "best", accelerator, save_extra=tokenizer.save_pretrained,
                        desc=f"{variant} s{seed}", resume_dir=run_dir / "resume", fingerprint=run_id,
                        started=started)
    evals = {name: (prepared[name][2].evals["dev"], prepared[name][1].evals["dev"].labels) for name in tasks}
    dev = scores(model, evals)
    frames = []
    for name in tasks:
        entries = [("train", r["epoch"], "loss", r["train_loss"]) for r in result.history]
        entries += [("train_holdout", r["epoch"], key.split("/", 1)[1], value) for r in result.history
                    for key, value in r.items() if key.startswith(name + "/")]
        entries += [("dev", result.best_epoch, key, value) for key, value in dev[name].items()]
        entries.append(("train", result.best_epoch, "examples_per_s", result.examples_seen / result.train_seconds))
        entries.append(("train", result.best_epoch, "train_s", result.train_seconds))
        outcome = Outcome(result, entries, dev[name]["score"], accelerator, attention=attention_of(model))
        rows = run_rows(cfg.for_task(name), get_task(name), seed, run_id, NOTEBOOK, variant, "new", outcome,
                        len(prepared[name][1].train), started)
        frames.append(pd.DataFrame(rows))
        if verbose:
            print(f"[{variant} seed {seed}] {name} dev score {dev[name]['score']:.4f}")
    frame = pd.concat(frames, ignore_index=True)
    write_results(frame, results_path)
    remove_training_state(run_dir / "resume")
    return frame


def prepare_tasks(cfg: HeadsConfig, tasks: tuple[str, ...]) -> dict[str, tuple]:
    """task -> (GlueTask, TaskData, EncodedTask) under ``cfg``'s subsample and hold-out rules."""
    prepared = {}
    for name in tasks:
        task = get_task(name)
        task_cfg = cfg.for_task(task.name)
        data = load_task_data(task_cfg, task)
        prepared[task.name] = (task, data, encode_task(task_cfg, data))
    return prepared


def run_multitask_study(cfg: HeadsConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """For each seed: one multitask run over ``cfg.tasks`` and one single-task run per task (same budget)."""
    tasks = tuple(get_task(name).name for name in cfg.tasks)
    if len(tasks) < 2:
        raise ValueError(f"tasks: the multitask study needs at least two tasks, got {tasks}")
    prepared = prepare_tasks(cfg, tasks)
    frames = []
    for seed in cfg.seeds:
        frames.append(run_multitask(cfg, tasks, seed, results_path, verbose, prepared))
        for name in tasks:
            frames.append(run_multitask(cfg, (name,), seed, results_path, verbose, prepared))
    return pd.concat(frames, ignore_index=True)


def run_heads(cfg: HeadsConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """Every study in ``cfg.studies``; each run's rows are written as soon as it ends."""
    check_writable(results_path)
    frames = []
    if "pair" in cfg.studies:
        frames.append(run_pair_study(cfg, results_path, verbose))
    if "multitask" in cfg.studies:
        frames.append(run_multitask_study(cfg, results_path, verbose))
    return pd.concat(frames, ignore_index=True)


def heads_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, variant, configuration): dev score median over seeds with min and max, seeds, train examples/s
    (median). Only runs whose recorded configs differ by seed alone are pooled (``bertbench.config.pooling_key``);
    ``differs`` names what tells two rows of one task and variant apart."""
    frame = frame.assign(config_key=frame["config"].map(pooling_key))
    dev = frame[(frame["split"] == "dev") & (frame["metric"] == "score")]
    speed = frame[(frame["split"] == "train") & (frame["metric"] == "examples_per_s")]
    rows, configs = [], []
    for (task, variant, _key), group in dev.groupby(["task", "variant", "config_key"], sort=False):
        values = group["value"].astype(float).tolist()
        rate = speed[speed["run_id"].isin(set(group["run_id"]))]["value"].astype(float)
        rows.append({"task": task, "variant": variant, "seeds": len(values),
                     "dev_score_median": statistics.median(values), "dev_score_min": min(values),
                     "dev_score_max": max(values),
                     "train_examples_per_s": statistics.median(rate) if len(rate) else float("nan")})
        configs.append(group["config"].iloc[0])
    table = pd.DataFrame(rows)
    if len(table):
        table["differs"] = ""
        for _, alike in table.groupby(["task", "variant"], sort=False):
            if len(alike) > 1:
                table.loc[alike.index, "differs"] = config_differences([configs[i] for i in alike.index])
    return table
