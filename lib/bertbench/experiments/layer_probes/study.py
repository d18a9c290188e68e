"""The study of notebook 05: its config, the fine-tuned checkpoints it probes, per-probe progress, the result rows,
and the summary, selectivity and figure (the SQuAD span probes and their QA fine-tuning: :mod:`.span_study`)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ... import dist
from ... import metrics as M
from ...checkpoint import existing_folder, remove_training_state, replace_folder, start_or_skip
from ...config import BaseConfig, check_choice, check_range, check_training_fields, config_differences, pooling_key
from ...data.examples import Examples
from ...data.glue import get_task, load_glue
from ...models import configure_threads, is_random, load_tokenizer, model_provenance, resolve_model
from ...paths import portable_path, runs_dir
from ...results import check_writable, make_rows, write_results
from ...train import device_description
from .probes import CONTROLS, control_labels, fit_probe, majority_label, probe_logits
from .saved import save_probe
from .states import SENTENCE_POOLINGS, default_device, frozen_precision, sentence_states

NOTEBOOK = "05_layer_probes"


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
    # QA fine-tuning of `model` on squad_train (AutoModelForQuestionAnswering, bertbench's loop), span probes on the
    # checkpoint after each epoch beside the pretrained ones; 0 = pretrained span probes only
    squad_finetune_epochs: int = 0
    squad_finetune_lr: float = 5e-5  # BERT's SQuAD 2.0 setting (Devlin et al. 2019: 2 epochs, 5e-5)
    squad_finetune_batch_size: int = 32
    max_squad_finetune_examples: int = 0  # cap on the questions QA fine-tuning trains on; 0 = all of squad_train
    probe_memory_mb: int = 1024  # span probes: float16 token states read at once (a layer that fits: read once)
    # False: a model's token states are deleted from the cache once its span probes are done (the disk then holds
    # one model's at a time: float16, layers x windows x squad_max_len x hidden)
    keep_token_states: bool = True
    num_threads: int = 0
    trust_remote_code: bool = False
    resume: bool = True  # skip runs already in the results file, keep the probes an interrupted run finished

    # where the span probes' states are held (memory, disk) changes nothing a probe computes
    RUNTIME = ("num_threads", "resume", "probe_memory_mb", "keep_token_states")
    # the QA fine-tuning came after committed runs; at these defaults a run is what it was before them
    ADDED_FIELDS = ("squad_finetune_epochs", "squad_finetune_lr", "squad_finetune_batch_size",
                    "max_squad_finetune_examples", "probe_memory_mb", "keep_token_states")
    PRESETS = {
        "tiny": dict(model="random-bert-2x64", finetune_overrides="", max_probe_train_examples=64,
                     max_eval_examples=32, max_len=64, batch_size=32, probe_epochs=5, probe_lr=1e-2,
                     squad_max_len=64, doc_stride=16),
        "cpu": {},
        "gpu": dict(max_probe_train_examples=0),  # every training sentence, states on the GPU
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
        for name in ("max_probe_train_examples", "max_eval_examples", "max_squad_examples", "squad_finetune_epochs",
                     "max_squad_finetune_examples"):
            check_range(name, getattr(self, name), 0)
        check_range("squad_finetune_lr", self.squad_finetune_lr, 0, 1, low_open=True)
        check_range("squad_finetune_batch_size", self.squad_finetune_batch_size, 1)
        check_range("probe_memory_mb", self.probe_memory_mb, 1)
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
        if self.squad_finetune_epochs and not self.squad_train:
            raise ValueError("squad_finetune_epochs: QA fine-tuning needs SQuAD 2.0 files; set squad_train and "
                             "squad_dev (BB_SQUAD_TRAIN, BB_SQUAD_DEV), or 0")
        if self.finetuned not in ("", "auto") and len(self.tasks) != 1:
            raise ValueError(f"finetuned: a folder belongs to one task; tasks are {self.tasks} (use 'auto')")


# ---------------------------------------------------------------------------------------------------------------------
# The study.


def finetune_config(cfg: ProbeConfig, task: str, source: str):
    """The GLUE notebook's config that fine-tunes ``source`` (``cfg.model`` or its saved random init) on ``task`` for
    the probes, with the same preset."""
    from ..glue_finetune import GlueConfig

    glue = GlueConfig.from_env({}, preset=cfg.preset, model=source, tokenizer=cfg.tokenizer, tasks=(task,),
                               seeds=(cfg.seed,), task_overrides=cfg.finetune_overrides, num_threads=cfg.num_threads,
                               trust_remote_code=cfg.trust_remote_code)
    return glue.for_task(task).replace(keep_checkpoints=True)


def finetuned_checkpoint(cfg: ProbeConfig, task: str, source: str, verbose: bool = True) -> tuple[str, str]:
    """(folder, run id) of ``cfg.model`` fine-tuned on ``task``: ``cfg.finetuned`` if it is a folder, else the GLUE
    notebook's checkpoint ``runs/glue/<run id>/best``, trained now (rows to ``runs/probes/finetune.csv``) if missing."""
    from ..glue_finetune import load_task_data, run_id_for, run_task_seed

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
    # what each saved probe reads, so that it can be scored again without training (saved.evaluate_probe)
    described = {"encoder": _portable(model_name), "tokenizer": _portable(tokenizer.name_or_path), "init": init,
                 "task": task.name, "run_id": run_id, "max_len": cfg.max_len, "poolings": list(cfg.poolings),
                 "seed": cfg.seed, "control_distribution": distribution.tolist(), "probe_config": cfg.recorded()}
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
                variant = f"{kind}:{how}" + (f":{cfg.control}" if kind == "control" else "")
                save_probe(probe, weights_dir / key, {**described, "variant": variant, "pooling": how, "layer": layer,
                                                      "control": cfg.control if kind == "control" else ""})
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
    from ..glue_finetune import model_label

    common = {"run_id": run_id, "notebook": NOTEBOOK, "preset": cfg.preset, "model": model_label(cfg.model),
              "task": task, "seed": cfg.seed, "init": init, "head_init": "probe", "selection": "last_epoch",
              "max_len": max_len or cfg.max_len, "train_examples": train_examples,
              "device": device_description(default_device(), frozen_precision()),
              "wall_s": round(time.perf_counter() - started, 2),
              "config": json.dumps({**cfg.recorded(), "encoder": _portable(model_name)}, sort_keys=True)}
    rows = []
    for (variant, layer), group in itertools.groupby(entries, key=lambda entry: (entry[0], entry[2])):
        step = -1 if variant in ("majority", "full_model", "always_no_answer") else cfg.probe_epochs
        rows += make_rows({**common, "variant": variant, "layer": layer},
                          [(split, step, metric, value) for _, split, _, metric, value in group])
    return rows


def run_probes(cfg: ProbeConfig, results_path: str | Path, verbose: bool = True) -> pd.DataFrame:
    """The pretrained model and its fine-tuned checkpoint(s), probed on every task; and with SQuAD files, span probes
    on the pretrained model and on its QA fine-tuned checkpoint after each of ``squad_finetune_epochs`` epochs."""
    if dist.world_size() > 1:  # every process would extract the same states into the same cache files
        raise RuntimeError(
            f"notebook 05's layer probes run as one process, not under a launcher ({dist.world_size()} processes): "
            "their hidden states, probes and caches are not split between processes. Run "
            "`python notebooks/05_layer_probes.py` (it uses the GPU when there is one); notebook 05's model heads "
            "(`notebooks/05_model_heads.py`) do scale out")
    check_writable(results_path)
    results_path = Path(results_path)
    configure_threads(cfg.num_threads)
    pretrained = _pretrained_source(cfg)
    tokenizer = load_tokenizer(cfg.tokenizer or pretrained, trust_remote_code=cfg.trust_remote_code)
    frames = []
    # what each probed model is (the init column): the base model's provenance (e.g. sentence-embedding for the
    # packaged MiniLM), and fine-tuned:<task> for its checkpoint fine-tuned on the task
    base = "random" if is_random(cfg.model) else model_provenance(pretrained)
    for task_name in cfg.tasks:
        task = get_task(task_name)
        models = [(pretrained, base, "pretrained")]
        if cfg.finetuned:
            folder, run_id = finetuned_checkpoint(cfg, task.name, pretrained, verbose)
            models.append((folder, f"fine-tuned:{task.name}", f"finetuned-{run_id}"))
        for name, init, label in models:
            frames.append(probe_task(cfg, task.name, name, init, tokenizer, results_path, label, verbose))
    if cfg.squad_train:
        from .span_study import probe_squad_models

        frames.append(probe_squad_models(cfg, pretrained, base, tokenizer, results_path, verbose))
    return pd.concat(frames, ignore_index=True)


def _pretrained_source(cfg: ProbeConfig) -> str:
    """A folder with the pretrained weights. A random model (tiny preset) is built once, saved under runs/ with the
    tokenizer, and reused, so the pretrained and fine-tuned states of a test come from fixed weights."""
    if not is_random(cfg.model):
        return cfg.model
    from transformers import BertModel, set_seed

    from ...models import random_bert_config

    folder = runs_dir() / "probes" / f"{cfg.model}-seed{cfg.seed}"
    if not (folder / "config.json").is_file():
        tokenizer = load_tokenizer(cfg.tokenizer or "minilm")
        set_seed(cfg.seed)
        config = random_bert_config(cfg.model, tokenizer, cfg.max_len)
        config.bertbench_random = True  # its provenance: random weights, whatever folder it is read from
        BertModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return str(folder)


def probe_summary(frame: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Dev ``metric`` per (task, model, init, variant, configuration, layer): one row per curve point, floors and
    ceilings as layer -1. Probes whose recorded configs differ by seed alone are averaged (``seeds`` counts them);
    probes under other settings are separate rows, told apart by ``differs``, never averaged together."""
    dev = frame[(frame["split"] == "dev") & (frame["metric"] == metric)]
    dev = dev.assign(config_key=dev["config"].map(pooling_key))
    keys = ["task", "model", "init", "variant", "config_key"]
    table = (dev.groupby([*keys, "layer"], sort=False)
             .agg(value=("value", "mean"), seeds=("seed", "nunique"), config=("config", "first")).reset_index())
    table["differs"] = ""
    curves = table.drop_duplicates(keys)
    for _, alike in curves.groupby(["task", "model", "init", "variant"], sort=False):
        if len(alike) > 1:
            labels = dict(zip(alike["config_key"], config_differences(list(alike["config"])), strict=True))
            rows = table["config_key"].isin(labels) & table.set_index(keys[:4]).index.isin(alike.set_index(
                keys[:4]).index)
            table.loc[rows, "differs"] = table.loc[rows, "config_key"].map(labels)
    table = table.rename(columns={"value": metric}).drop(columns=["config"])
    return table.sort_values(["task", "model", "init", "variant", "differs", "layer"], kind="stable").reset_index(
        drop=True)


def selectivity(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model, init, pooling, configuration, layer): probe dev accuracy - control dev accuracy (the two
    probes of one configuration: :func:`probe_summary`)."""
    table = probe_summary(frame)
    table = table.assign(pooling=table["variant"].str.split(":").str[1], kind=table["variant"].str.split(":").str[0])
    keys = ["task", "model", "init", "pooling", "config_key", "differs", "layer"]
    probe, control = (table[table["kind"] == kind][[*keys, "accuracy"]] for kind in ("probe", "control"))
    merged = probe.merge(control, on=keys, suffixes=("_probe", "_control"))
    merged["selectivity"] = merged["accuracy_probe"] - merged["accuracy_control"]
    return merged.rename(columns={"accuracy_probe": "probe_accuracy", "accuracy_control": "control_accuracy"})


def _portable(name: str) -> str:
    """A probed model as results record it: a folder as ``<runs>/...`` or repo-relative (no machine paths), a hub
    or packaged name as given."""
    return portable_path(name) if Path(name).exists() else name


def is_fine_tuned(init: str) -> bool:
    """Whether a probe row's ``init`` is a checkpoint fine-tuned on the task (``fine-tuned:<task>``; ``finetuned`` in
    rows written before provenance was recorded) rather than the base model."""
    return str(init).startswith("fine-tuned") or init == "finetuned"


def plot_layer_curves(frame: pd.DataFrame, path: str | Path, metric: str = "accuracy"):
    """One panel per (task, pooling): probe dev ``metric`` per layer, pretrained vs fine-tuned, with the control
    probe (thin), the majority-class floor (dashed) and the fine-tuned model's own head (dotted); and with SQuAD rows,
    a last row with the span probes' dev F1 per layer (:func:`.span_study.draw_span_curves`)."""
    import matplotlib
    import matplotlib.pyplot as plt

    from .span_study import TASK, draw_span_curves

    table = probe_summary(frame[frame["task"] != TASK], metric)
    probes = table[table["variant"].str.startswith("probe:")]
    tasks = list(dict.fromkeys(probes["task"]))
    poolings = list(dict.fromkeys(probes["variant"].str.split(":").str[1]))
    spans = bool((frame["task"] == TASK).any())
    if not tasks and not spans:
        raise ValueError("plot_layer_curves: no probe rows to draw")
    columns = max(1, len(poolings))
    fig, axes = plt.subplots(len(tasks) + spans, columns, figsize=(4.8 * columns, 3.6 * (len(tasks) + spans)),
                             squeeze=False, sharex=True)
    for row, task in enumerate(tasks):
        part = table[table["task"] == task]
        for col, how in enumerate(poolings):
            ax = axes[row][col]
            inits = sorted(set(part["init"]), key=is_fine_tuned)  # the base model first, then the fine-tuned one
            for init in inits:
                colour = "tab:orange" if is_fine_tuned(init) else "tab:blue"
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
    if tasks:
        axes[0][-1].legend(fontsize=7, loc="best")
    if spans:
        draw_span_curves(axes[-1][0], frame)
        axes[-1][0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        for ax in axes[-1][1:]:
            ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return fig
