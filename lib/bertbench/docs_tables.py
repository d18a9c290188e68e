"""Markdown tables of committed results for README.md and the pages in docs/, so no number there is typed by hand.

Each table sits in its page between ``<!-- NAME-table:start -->`` and ``<!-- NAME-table:end -->`` (NAME and page: one
entry of :data:`BLOCKS`). ``python -m bertbench.docs_tables`` prints every table; ``python -m bertbench.docs_tables
--update`` rewrites the blocks in their pages from ``outputs/``; a test checks that every page and ``outputs/`` agree.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .config import study_of
from .data.glue import get_task
from .experiments.aggregate_results import GLUE_TASKS, load_references, reference_cells
from .experiments.encoder_basics import basics_summary
from .experiments.glue_finetune import glue_summary
from .experiments.layer_probes import is_fine_tuned, probe_summary
from .experiments.long_documents import compare_to, longdoc_summary, predictions_path
from .experiments.model_heads import heads_summary
from .paths import outputs_dir, repo_root
from .results import load_results


def _joined(values) -> str:
    return "`, `".join(sorted({str(value) for value in values}))


def glue_studies(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Notebook 03's rows split by model and study (:func:`bertbench.config.study_of`: configs equal but for the
    per-task settings), each with a title: the 2,000-example cpu runs and the reference protocol with its
    learning-rate sweep are separate tables."""
    frame = frame.assign(_study=frame["config"].map(study_of))
    out = []
    for (model, _study), rows in frame.groupby(["model", "_study"], sort=True):
        config = json.loads(rows["config"].iloc[0])
        budgets = sorted({int(value) for value in rows["train_examples"]})
        grid = ", ".join(f"{lr:g}" for lr in config.get("lr_grid") or [])
        rates = ", ".join(sorted({f"{json.loads(text)['lr']:g}" for text in rows["config"]}))
        protocol = (f"learning rate chosen per task from {grid} on the held-out 10% with seed 0, then every seed at "
                    "it" if grid else f"learning rate {rates}")
        # a folder's checkpoint is named by its weights' fingerprint: `make pretrain` run twice is two checkpoints
        weights = f" (weights `{config['checkpoint']}`, SHA-256 prefix)" if config.get("checkpoint") else ""
        out.append((f"**Model `{model}`**{weights} — {protocol}; training examples per task "
                    f"{', '.join(map(str, budgets))}", rows.drop(columns="_study")))
    return out


def glue_markdown(frame: pd.DataFrame) -> str:
    """Per model and study, one line per task (and per learning rate of a sweep): task score (what it averages),
    median over seeds, min–max, protocol facts."""
    parts = []
    for title, rows in glue_studies(frame):
        table, means = glue_summary(rows)
        runs = rows.drop_duplicates("run_id")
        sweep = table["lr_choice"].ne("").any()
        lines = [title, "",
                 "| task | score = | seeds | median | min – max | train examples | " + ("lr | " if sweep else "")
                 + "median run time |", "|---|---|---:|---:|---:|---:|" + ("---|" if sweep else "") + "---:|"]
        for row in table.itertuples(index=False):
            names = get_task(row.task).score_metrics
            score_def = names[0] if len(names) == 1 else f"mean of {', '.join(names)}"
            lr = ""
            if sweep:
                rate = f"{row.lr:g}" if pd.notna(row.lr) else "–"
                lr = f"{rate} {row.lr_choice.split(' (')[0]} | "
            lines.append(f"| {row.task} | {score_def} | {row.seeds} | {row.score_median:.4f} | "
                         f"{row.score_min:.4f} – {row.score_max:.4f} | {row.train_examples} | {lr}"
                         f"{row.wall_s_median:.0f} s |")
        missing = ", ".join(means["missing"]) or "none"
        left_out = ", ".join(means["left_out"]) or "none"
        total_h = runs["wall_s"].astype(float).sum() / 3600
        lines += [
            "",
            f"GLUE mean over {means['n_tasks']} tasks ({means['convention_text']}): arithmetic "
            f"**{means['amean']:.4f}**, harmonic "
            + (f"{means['hmean']:.4f}" if pd.notna(means["hmean"]) else "undefined (a task score ≤ 0)")
            + f" (missing: {missing}; not counted: {left_out})."
            f" Init `{_joined(runs['init'])}`, preset "
            f"`{_joined(runs['preset'])}`, selection `{_joined(runs['selection'])}`, device "
            f"`{_joined(runs['device'])}`; {len(runs)} runs, {total_h:.2f} h of run time in all.",
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


# Published dev numbers shown beside the reference protocol's rows (lib/bertbench/references/glue_published.csv)
PUBLISHED_BESIDE = ("MiniLM-L6-H384 (v1, uncased)", "ELECTRA-Small (released)", "DistilBERT")


def glue_published_markdown(frame: pd.DataFrame) -> str:
    """One table: each reference study's chosen rows (median dev score over seeds, x100; a column per study) beside
    the published dev numbers of :data:`PUBLISHED_BESIDE`, which are other checkpoints under other budgets: the text
    under it says so, what each study ran and what each published cell measures."""
    cells = reference_cells(load_references())
    cells = cells[(cells["split"] == "dev") & cells["model"].isin(PUBLISHED_BESIDE)]
    published = cells.set_index(["model", "task"])["median"]  # one dev cell per (model, task)
    studies = []  # (column header, description, chosen rows by task)
    for title, rows in glue_studies(frame):
        config = json.loads(rows["config"].iloc[0])
        if not config.get("lr_grid"):
            continue
        table, _ = glue_summary(rows)
        checkpoint = config.get("checkpoint")
        name = f"bertbench `{rows['model'].iloc[0]}`" + (f" (weights `{checkpoint}`)" if checkpoint else "")
        studies.append((name, f"{title.split(' — ', 1)[1]}; init `{_joined(rows['init'])}`",
                        table[table["lr_choice"].str.startswith("chosen")].set_index("task")))
    if not studies:
        return ""
    lines = ["**The reference protocol, against published dev numbers of other checkpoints** (x100; bertbench: median "
             "of seeds at the chosen learning rate, seeds in brackets)", "",
             "| task | " + " | ".join(name for name, _, _ in studies) + " | " + " | ".join(PUBLISHED_BESIDE) + " |",
             "|---|" + "---:|" * (len(studies) + len(PUBLISHED_BESIDE))]
    tasks = set(cells["task"]).union(*(set(chosen.index) for _, _, chosen in studies))
    for task in sorted(tasks, key=GLUE_TASKS.index):
        ours = [f"{100 * chosen.loc[task, 'score_median']:.1f} ({chosen.loc[task, 'seeds']})"
                if task in chosen.index else "–" for _, _, chosen in studies]
        theirs = [f"{100 * published[name, task]:.1f}" if (name, task) in published.index else "–"
                  for name in PUBLISHED_BESIDE]
        lines.append(f"| {task} | " + " | ".join(ours + theirs) + " |")
    lines += ["", "bertbench, GLUE's score per task (MRPC: mean of accuracy and F1, STS-B: mean of Pearson and "
              "Spearman), selection on the held-out 10%:"]
    lines += [f"- {name}: {description}" for name, description, _ in studies]
    lines += ["", "Published, other checkpoints (never pooled with the runs):"]
    for name in PUBLISHED_BESIDE:
        mine = cells[cells["model"] == name]
        named = sorted({f"{task} {text[5:]}" for task, text in zip(mine["task"], mine["score_is"], strict=True)
                        if text.startswith("only ")})
        lines.append(f"- {name}: [{mine['variant'].iloc[0]}]({mine['url'].iloc[0]}) — "
                     f"{mine['protocol_text'].mode().iloc[0]}" + (f" (cells: {', '.join(named)})" if named else ""))
    return "\n".join(lines)


def tokenizer_markdown(frame: pd.DataFrame) -> str:
    """One line per tokenizer: vocabulary, training time and corpus, fertility and unknown rate on the eval corpus."""
    lines = ["| tokenizer | vocabulary | trained on | training time | eval corpus | fertility (tokens/word) | "
             "unknown tokens | chars/token |", "|---|---:|---|---:|---|---:|---:|---:|"]
    for _, rows in frame.groupby("run_id", sort=False):
        values = {(split, metric): value for split, metric, value in rows[["split", "metric", "value"]].itertuples(
            index=False)}
        evaluation = next(split for split, metric in values if metric == "fertility")
        train_s = values.get(("train", "train_s"))
        docs = values.get(("train", "documents"))
        trained = f"{rows['init'].iloc[0]} ({int(docs):,} docs)" if docs else rows["init"].iloc[0]
        lines.append(f"| `{rows['model'].iloc[0]}` | {int(values[(evaluation, 'vocab_size')]):,} | {trained} | "
                     + (f"{train_s:.1f} s" if train_s is not None else "–")
                     + f" | {evaluation} | {values[(evaluation, 'fertility')]:.3f} | "
                     f"{values[(evaluation, 'unk_rate')]:.4%} | {values[(evaluation, 'chars_per_token')]:.2f} |")
    lines += ["", f"Device `{_joined(frame['device'])}`, preset `{_joined(frame['preset'])}`."]
    return "\n".join(lines)


def pretrain_markdown(frame: pd.DataFrame) -> str:
    """Per pretraining run: the learning curve at each evaluation, then the budget spent."""
    parts = []
    for run_id, rows in frame.groupby("run_id", sort=False):
        rows = rows.assign(name=rows["split"] + ":" + rows["metric"])
        curve = rows.pivot_table(index="step", columns="name", values="value", aggfunc="last")
        heldout = [name for name in curve.columns if name.endswith(":loss") and not name.startswith("train")]
        shown = ["train:loss", *heldout, *[n for n in curve.columns if n.endswith(":pppl")], "train:tokens_per_s"]
        shown = [name for name in shown if name in curve.columns]
        lines = [f"**Run `{rows['model'].iloc[0]}`** (`{run_id}`, device `{_joined(rows['device'])}`)", "",
                 "| step | tokens seen | " + " | ".join(shown) + " |", "|---:|---:|" + "---:|" * len(shown)]
        for step, values in curve.iterrows():
            cells = ["–" if pd.isna(values[name]) else f"{values[name]:.4g}" for name in shown]
            lines.append(f"| {int(step)} | {values['train:tokens_seen'] / 1e6:.2f} M | " + " | ".join(cells) + " |")
        last = curve.iloc[-1]
        first_loss = curve[heldout[0]].iloc[0] if heldout else float("nan")
        lines += ["", f"{int(curve.index[-1])} steps, {last['train:tokens_seen'] / 1e6:.2f} M tokens in "
                      f"{last['train:train_s'] / 60:.1f} training minutes ({last['train:cpu_s'] / 60:.1f} CPU minutes);"
                      f" `{heldout[0].split(':')[0]}` MLM loss {first_loss:.3f} → {last[heldout[0]]:.3f}."]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def longdoc_markdown(frame: pd.DataFrame, predictions: pd.DataFrame | None = None) -> str:
    """Per dataset: each strategy's test accuracy and F1 with 95% bootstrap CIs and its cost, then the best
    strategy against ``head`` with a paired bootstrap CI of the F1 difference (when predictions are given)."""
    table = longdoc_summary(frame, predictions)
    comparison = compare_to(frame, predictions) if predictions is not None else pd.DataFrame()
    parts = []
    for (dataset, model, preset), part in table.groupby(["dataset", "model", "preset"], sort=False):
        runs = frame[(frame["task"] == dataset) & (frame["model"] == model) & (frame["preset"] == preset)]
        devices = runs["device"] if len(runs) else part["device"]
        budgets = sorted({int(n) for n in part["train_docs"]}, reverse=True)
        several = len(budgets) > 1  # then each row says its own
        lines = [f"**{dataset}** — model `{model}`, preset `{preset}`, "
                 + (f"{budgets[0]} training documents, " if not several else "")
                 + f"device `{_joined(devices)}`", "",
                 "| strategy | " + ("training documents | " if several else "") + "runs (seeds) | test accuracy "
                 "[95% CI] | test F1 [95% CI] | tokens/doc, train (per epoch) | tokens/doc, inference | windows/doc | "
                 "train time | predict time | peak memory | best epoch |",
                 "|---|" + ("---:|" if several else "") + "---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in part.itertuples(index=False):
            name = f"`{row.variant}`" + (f" ({row.differs})" if row.differs else "")
            lines.append(
                f"| {name} | " + (f"{int(row.train_docs)} | " if several else "") + f"{row.runs} ({row.seeds}) | "
                f"{row.accuracy:.3f} [{row.accuracy_ci_low:.3f}, "
                f"{row.accuracy_ci_high:.3f}] | {row.f1:.3f} [{row.f1_ci_low:.3f}, {row.f1_ci_high:.3f}] | "
                f"{row.train_tokens_per_doc:.0f} | {row.test_tokens_per_doc:.0f} | {row.windows_per_doc:.2f} | "
                f"{row.train_s:.0f} s | {row.predict_s:.1f} s | {row.peak_mb / 1024:.1f} GiB | "
                f"{row.best_epoch:.0f}/{row.epochs_run:.0f} |")
        lines += ["", "Intervals: " + "; ".join(sorted(set(part["ci_from"]))) + ". Peak memory: "
                  + "; ".join(sorted(set(part["peak_is"]))) + "."]
        best = part.sort_values("f1", ascending=False, kind="stable").iloc[0]
        verdict = f"Best test F1: `{best['variant']}` {best['f1']:.3f}"
        found = comparison[(comparison["dataset"] == dataset) & (comparison["variant"] == best["variant"])
                           & (comparison["model"] == model)] if len(comparison) else comparison
        if len(found):
            row = found.iloc[0]
            verdict += (f", {row['f1_difference']:+.3f} F1 against `head` (paired bootstrap 95% CI "
                        f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]: "
                        f"{'beyond' if row['beyond_noise'] else 'within'} noise).")
        else:
            verdict += " (the baseline itself)." if best["variant"] == "head" else "."
        lines += ["", verdict]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _longdoc_block(frame: pd.DataFrame, folder: Path) -> str:
    path = predictions_path(folder / "04_long_documents.csv")
    predictions = pd.read_csv(path, dtype={"doc_id": str, "run_id": str, "label": str}) if path.is_file() else None
    return longdoc_markdown(frame, predictions)


def probes_markdown(frame: pd.DataFrame) -> str:
    """Per task: dev accuracy of every layer's probe (rows: model x probe), with the majority class and the
    fine-tuned model's own head beneath."""
    table = probe_summary(frame[frame["task"] != "squad2"])
    parts = []
    for task, part in table.groupby("task", sort=False):
        curves = part[part["layer"] >= 0]
        layers = sorted(curves["layer"].unique())
        lines = [f"**{task}** — dev accuracy per layer (0 = embeddings)", "",
                 "| model | probe | " + " | ".join(str(layer) for layer in layers) + " |",
                 "|---|---|" + "---:|" * len(layers)]
        for (init, variant, differs), curve in curves.groupby(["init", "variant", "differs"], sort=True):
            values = curve.set_index("layer")["accuracy"]
            name = f"`{init}`" + (f" ({differs})" if differs else "")
            lines.append(f"| {name} | `{variant}` | " + " | ".join(f"{values.get(layer, float('nan')):.3f}"
                                                               for layer in layers) + " |")
        floor = part[part["variant"] == "majority"]["accuracy"]
        own = part[part["variant"] == "full_model"]["accuracy"]
        runs = frame[frame["task"] == task].drop_duplicates("run_id")
        note = f"Majority class: {floor.iloc[0]:.3f}." if len(floor) else ""
        if len(own):
            note += f" The fine-tuned model's own head: {own.iloc[0]:.3f}."
        note += (f" Probes trained on {int(runs['train_examples'].iloc[0])} training examples; preset "
                 f"`{_joined(runs['preset'])}`, device `{_joined(runs['device'])}`.")
        parts.append("\n".join(lines + ["", note.strip()]))
    return "\n\n".join(parts)


def heads_markdown(frame: pd.DataFrame) -> str:
    """Dev score per (task, model variant): median over seeds with the range, and training speed."""
    table = heads_summary(frame)
    lines = ["| task | model | seeds | dev score (median) | min – max | train examples/s |",
             "|---|---|---:|---:|---:|---:|"]
    for row in table.itertuples(index=False):
        names = get_task(row.task).score_metrics
        lines.append(f"| {row.task} ({' + '.join(names)}) | `{row.variant}` | {row.seeds} | "
                     f"{row.dev_score_median:.4f} | {row.dev_score_min:.4f} – {row.dev_score_max:.4f} | "
                     f"{row.train_examples_per_s:.1f} |")
    runs = frame.drop_duplicates("run_id")
    lines += ["", f"Preset `{_joined(runs['preset'])}`, selection `{_joined(runs['selection'])}`, device "
                  f"`{_joined(runs['device'])}`; {len(runs)} runs, {runs['wall_s'].astype(float).sum() / 60:.0f} "
                  "min of run time in all."]
    return "\n".join(lines)


def _aggregate_block(frame: pd.DataFrame, folder: Path) -> str:
    """Notebook 06's committed summary, its figure links made relative to the docs/ page that shows it."""
    summary = (folder / "06_aggregate_results.md").read_text()
    return summary.replace("](figures/", f"](../{folder.name}/figures/").strip()


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def basics_markdown(frame: pd.DataFrame) -> str:
    """Notebook 00: the HF Trainer and bertbench's loop on the same head, data and hyperparameters, side by side."""
    table = basics_summary(frame)
    runs = frame.drop_duplicates("run_id")
    config = json.loads(runs["config"].iloc[0])
    lines = [f"**{runs['task'].iloc[0]}**, model `{runs['model'].iloc[0]}` (`{runs['init'].iloc[0]}`), head "
             f"`{config['head']}` + dropout {config['head_dropout']} + linear, {int(runs['train_examples'].iloc[0])} "
             f"training examples (10% more held out), lr {config['lr']:g}, batch {config['batch_size']}, up to "
             f"{config['epochs']} epochs, early stopping on the held-out {config['early_stop_on']} (patience "
             f"{config['patience']}, min_delta {config['min_delta']:g}); device `{_joined(runs['device'])}`", "",
             "| system | seeds | dev score median | min – max | epochs run (median) | training time (median) | "
             "train examples/s (median) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in table.itertuples(index=False):
        lines.append(f"| `{row.system}` | {row.seeds} | {row.dev_score_median:.4f} | {row.dev_score_min:.4f} – "
                     f"{row.dev_score_max:.4f} | {row.epochs_run_median:.0f} | {row.train_s_median:.0f} s | "
                     f"{row.examples_per_s_median:.1f} |")
    lines += ["", "Training time includes the per-epoch evaluation on the held-out split and saving the best epoch, on "
                  "both sides; the dev score is computed by the same code for both."]
    return "\n".join(lines)


def _headline(name: str, frame: pd.DataFrame, folder: Path) -> str:
    """One line of what a notebook's committed results say, computed from its CSV."""
    if name == "00_encoder_basics":
        table = basics_summary(frame).set_index("system")
        task = frame["task"].iloc[0]
        return f"{task} dev, median of {int(table['seeds'].max())} seeds: " + ", ".join(
            f"`{system}` {row.dev_score_median:.3f} in {row.train_s_median:.0f} s" for system, row in table.iterrows())
    if name == "01_train_tokenizer":
        fertility = frame[frame["metric"] == "fertility"].set_index("model")["value"]
        trained = ", ".join(f"`{model.split('-')[0]}` {value:.3f}" for model, value in fertility.items()
                            if model != "minilm")
        return f"WikiText-2 tokens per word: {trained}; MiniLM's own vocabulary {fertility['minilm']:.3f}"
    if name == "02_pretrain_mlm":
        held = frame[(frame["split"] == "corpus_heldout") & (frame["metric"] == "loss")].sort_values("step")
        return (f"held-out MLM loss {held['value'].iloc[0]:.2f} → {held['value'].iloc[-1]:.2f} in "
                f"{int(held['step'].iloc[-1])} steps")
    if name == "03_glue_finetune":  # MiniLM's study with the most runs
        _title, rows = max((study for study in glue_studies(frame) if study[1]["model"].iloc[0] == "minilm"),
                           key=lambda study: study[1]["run_id"].nunique())
        table, _means = glue_summary(rows)
        table = table[table["lr_choice"].eq("") | table["lr_choice"].str.startswith("chosen")]
        most = table["seeds"].max()
        scores = ", ".join(f"{row.task} {row.score_median:.3f}" + (f" ({row.seeds} seed)" if row.seeds < most else "")
                           for row in table.itertuples(index=False))
        return f"MiniLM, dev median over {most} seeds: {scores}"
    if name == "04_long_documents":
        table = longdoc_summary(frame)
        part = table[table["dataset"] == "hyperpartisan"]
        scores = ", ".join(f"`{row.variant}` {row.f1:.3f}" for row in part.itertuples(index=False))
        return f"Hyperpartisan test F1: {scores}"
    if name == "05_layer_probes":
        table = probe_summary(frame[(frame["task"] == "sst2") & (frame["variant"] == "probe:mean")])
        last = table[table["layer"] == table["layer"].max()]
        base = last[~last["init"].map(is_fine_tuned)].iloc[0]
        tuned = last[last["init"].map(is_fine_tuned)].iloc[0]
        return (f"SST-2, mean-pooled probe at the top layer: `{base['init']}` {base['accuracy']:.3f}, "
                f"`{tuned['init']}` {tuned['accuracy']:.3f} dev accuracy")
    if name == "05_model_heads":
        table = heads_summary(frame)
        part = table[table["task"] == "mrpc"].set_index("variant")["dev_score_median"]
        return ", ".join(f"`{variant}` {value:.3f}" for variant, value in part.items()) + " (MRPC dev)"
    if name == "06_aggregate_results":
        systems = frame[frame["task"] == "glue"].drop_duplicates("run_id")
        protocols = len(systems[["init", "selection", "max_len", "preset"]].drop_duplicates())
        published = frame[frame["preset"] == "published"]["model"].nunique()
        return (f"{len(systems)} GLUE systems (bertbench's and DitBERT's runs) in {protocols} protocols, never pooled "
                f"across them; {published} published checkpoints beside them")
    raise KeyError(name)


# notebook -> (what it does, the command that made its committed results)
NOTEBOOKS = {
    "00_encoder_basics": ("encoder outputs, poolings, one head trained by the HF Trainer and by bertbench's loop",
                          "make basics"),
    "01_train_tokenizer": ("WordPiece and byte-level BPE on the Wikipedia dump, measured", "make tokenizer"),
    "02_pretrain_mlm": ("MLM pretraining from scratch on a time budget, resumable", "make pretrain"),
    "03_glue_finetune": ("GLUE fine-tuning, seeds, held-out epoch selection, submissions", "make glue-cpu-3seeds"),
    "04_long_documents": ("long documents: truncation, random spans, overlapping windows", "make long-docs"),
    "05_layer_probes": ("per-layer probes with control tasks, pretrained vs fine-tuned", "make probes"),
    "05_model_heads": ("own heads: bi- vs cross-encoder, multitask vs single-task", "make heads"),
    "06_aggregate_results": ("every result, DitBERT's runs and published numbers side by side", "make aggregate"),
}


def _glue_command(model: str, config: str) -> str:
    """The make target that writes a notebook-03 row of this model and config: the packaged MiniLM's 2,000-example
    runs, its reference protocol (a learning-rate grid), or the same two on the checkpoint of ``make pretrain``."""
    reference = bool(json.loads(config).get("lr_grid"))
    if model == "minilm":
        return "make glue-reference" if reference else "make glue-cpu-3seeds"
    return "make glue-reference-pretrained" if reference else "make glue-pretrained"


def notebooks_markdown(folder: Path) -> str:
    """README's table of notebooks: what each does, the command, the committed runs' time and headline result."""
    lines = ["| notebook | what it does | command | committed runs' time | headline committed result |",
             "|---|---|---|---:|---|"]
    for name, (what, command) in NOTEBOOKS.items():
        if not (folder / f"{name}.csv").is_file():
            lines.append(f"| [{name}](docs/{name}.md) | {what} | `{command}` | – | not run yet |")
            continue
        frame = load_results(folder / f"{name}.csv")
        # one time per command that made rows: notebook 03's studies come from different make targets
        by_command = frame.assign(_command=[_glue_command(model, config) for model, config in
                                            zip(frame["model"], frame["config"], strict=True)]) \
            if name == "03_glue_finetune" else frame.assign(_command=command)
        commands, times = [], []
        for each, rows in by_command.groupby("_command", sort=False):
            runs = rows.drop_duplicates("run_id")
            seconds = runs["wall_s"].astype(float).sum()
            commands.append(f"`{each}`")
            time = f"{_minutes(seconds)} ({len(runs)} run{'s' * (len(runs) != 1)})" if seconds else "seconds"
            times.append(time + (f" `{each}`" if by_command["_command"].nunique() > 1 else ""))
        lines.append(f"| [{name}](docs/{name}.md) | {what} | {', '.join(commands)} | {'; '.join(times)} | "
                     f"{_headline(name, frame, folder)} |")
    lines += ["", "Times are the sums of the committed rows' `wall_s` on the 2-core CPU machine (preset `cpu`); "
                  "headlines are computed from `outputs/` by `python -m bertbench.docs_tables`."]
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Block:
    """A generated table: the results file it is made from, how, and the page (repo-relative) that shows it."""

    source: str
    render: Callable[[pd.DataFrame, Path], str]
    page: str


BLOCKS = {
    "notebooks": Block("", lambda frame, folder: notebooks_markdown(folder), "README.md"),
    "basics": Block("00_encoder_basics.csv", lambda frame, folder: basics_markdown(frame),
                    "docs/00_encoder_basics.md"),
    "tokenizer": Block("01_train_tokenizer.csv", lambda frame, folder: tokenizer_markdown(frame),
                       "docs/01_train_tokenizer.md"),
    "pretrain": Block("02_pretrain_mlm.csv", lambda frame, folder: pretrain_markdown(frame), "docs/02_pretrain_mlm.md"),
    "glue": Block("03_glue_finetune.csv", lambda frame, folder: glue_markdown(frame), "docs/03_glue_finetune.md"),
    "glue-published": Block("03_glue_finetune.csv", lambda frame, folder: glue_published_markdown(frame),
                            "docs/03_glue_finetune.md"),
    "longdoc": Block("04_long_documents.csv", _longdoc_block, "docs/04_long_documents.md"),
    "probes": Block("05_layer_probes.csv", lambda frame, folder: probes_markdown(frame), "docs/05_layer_probes.md"),
    "heads": Block("05_model_heads.csv", lambda frame, folder: heads_markdown(frame), "docs/05_model_heads.md"),
    "aggregate": Block("06_aggregate_results.csv", _aggregate_block, "docs/06_aggregate_results.md"),
}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}-table:start -->", f"<!-- {name}-table:end -->"


def page_block(page_text: str, name: str) -> str:
    """The text between a page's markers for table ``name``."""
    start, end = markers(name)
    return page_text[page_text.index(start) + len(start):page_text.index(end)].strip()


def generated(name: str, folder: Path | None = None) -> str:
    block = BLOCKS[name]
    folder = folder or outputs_dir()
    return block.render(load_results(folder / block.source) if block.source else load_results([]), folder)


def update(root: Path | None = None) -> list[str]:
    """Rewrite every block in its page from ``outputs/``; returns the pages that changed."""
    root = root or repo_root()
    changed = []
    for page in sorted({block.page for block in BLOCKS.values()}):
        path = root / page
        text = original = path.read_text()
        for name in (name for name, block in BLOCKS.items() if block.page == page):
            start, end = markers(name)
            if start not in text:
                raise ValueError(f"{page} has no {start} ... {end} block")
            head, rest = text.split(start, 1)
            text = f"{head}{start}\n{generated(name)}\n{end}{rest.split(end, 1)[1]}"
        if text != original:
            path.write_text(text)
            changed.append(page)
    return changed


def main(argv: list[str]) -> None:
    if argv == ["--update"]:
        changed = update()
        print("updated: " + (", ".join(changed) or "nothing (every page matches outputs/)"))
        return
    for name in argv or list(BLOCKS):
        print(f"## {name} ({BLOCKS[name].page})\n\n{generated(name)}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
