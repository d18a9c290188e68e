"""The whole aggregation of notebook 06: everything read and pooled (:class:`Aggregation`), written as result rows
and rendered as the markdown summary (``outputs/06_aggregate_results.md``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ... import metrics as M
from ...results import check_writable, load_results, make_rows, replace_results
from .cells import _per_run_scores, glue_cells, glue_table, longdoc_table, pretraining_curves, probe_best_layers
from .importers import (
    DITBERT_CAVEAT,
    _shown,
    import_ditbert,
    load_references,
    read_document_predictions,
    read_outputs,
    read_predictions,
    reference_cells,
)
from .plots import plot_glue, plot_longdoc, plot_pretraining, plot_probes
from .protocol import DITBERT_GROUPING, GLUE_TASKS, NOTEBOOK, OPTIMISTIC, SYSTEM, AggregateConfig, start_of


@dataclasses.dataclass
class Aggregation:
    """Everything notebook 06 computed; :func:`summary_markdown` renders it."""

    config: AggregateConfig
    files: pd.DataFrame  # one line per result file read
    messages: list[str]  # what is missing, in words
    runs: pd.DataFrame  # one GLUE dev score per (run, task) after the selection rule
    cells: pd.DataFrame  # GLUE cells of bertbench's and imported runs
    table: pd.DataFrame  # glue_table(cells)
    optimistic: pd.DataFrame  # glue_table of the imported runs under DitBERT's own rule and grouping (labelled)
    optimistic_cells: pd.DataFrame  # its cells (per model and task: the best epoch of the best run)
    last_epoch: pd.DataFrame  # glue_table of the same runs, same grouping, read at their last epoch (median)
    references: pd.DataFrame  # reference_cells of the published table
    published_means: pd.DataFrame  # the sources' own GLUE averages
    longdoc: pd.DataFrame
    probes: pd.DataFrame
    pretraining: pd.DataFrame
    figures: dict[str, Path]


def aggregate_outputs(cfg: AggregateConfig, figures_dir: str | Path | None = None) -> Aggregation:
    """Read every source ``cfg`` names, pool within protocols, and draw the figures (``figures_dir``, if given).

    With ``figures_dir`` (notebook 06, which then writes its rows, summary and figures) the results folder and the
    figures folder are checked first: a read-only or full outputs folder fails now, not after all the work.
    """
    if figures_dir is not None:
        variable = "BB_RESULTS_DIR" if cfg.results_dir else "BB_OUTPUT_DIR"
        check_writable(cfg.results_folder() / f"{NOTEBOOK}.csv", variable=variable, read=False)  # replaced whole
        check_writable(Path(figures_dir) / f"{NOTEBOOK[:2]}_glue.png", variable=variable)
    rows, files, messages = read_outputs(cfg.results_folder())
    imported = load_results([])
    ditbert = cfg.ditbert_folder()
    if ditbert is not None:
        if ditbert.is_dir():
            imported = import_ditbert(ditbert)
            folders = imported["run_id"].str.rsplit("-", n=1).str[0].nunique()
            messages.append(f"imported {folders} DitBERT run folders from `{_shown(ditbert)}`")
        else:
            messages.append(f"no DitBERT run folders at `{_shown(ditbert)}` (set BB_DITBERT_DIR, or "
                            "BB_DITBERT_DIR=none)")
    everything = pd.concat([rows, imported], ignore_index=True) if len(imported) else rows
    predictions = read_predictions(cfg.results_folder())
    runs = _per_run_scores(everything, cfg.selection_rule)
    cells = glue_cells(everything, cfg.selection_rule, predictions, cfg.bootstrap_samples, cfg.ci_level, cfg.seed,
                       scores=runs)
    # DitBERT's own table: all runs of a model pooled, its from-MNLI runs included, as its aggregation did
    grouped = imported.assign(init=DITBERT_GROUPING) if len(imported) else imported
    optimistic_cells = glue_cells(grouped, "best_on_dev", samples=0)
    last_epoch = glue_table(glue_cells(grouped, "as_recorded", samples=0), cfg.glue_convention)
    references = load_references() if cfg.references else pd.DataFrame()
    refs = reference_cells(references) if len(references) else pd.DataFrame()
    means = references[references["task"] == "glue"] if len(references) else pd.DataFrame()
    figures: dict[str, Path] = {}
    longdoc = longdoc_table(rows, read_document_predictions(cfg.results_folder() / "04_long_documents.csv"),
                            cfg.bootstrap_samples)
    probes, curves = probe_best_layers(rows), pretraining_curves(rows)
    if figures_dir is not None:
        folder = Path(figures_dir)
        drawn = {"glue": plot_glue(runs, folder / f"{NOTEBOOK[:2]}_glue.png"),
                 "long_documents": plot_longdoc(longdoc, folder / f"{NOTEBOOK[:2]}_long_documents.png"),
                 "layer_probes": plot_probes(rows, folder / f"{NOTEBOOK[:2]}_layer_probes.png"),
                 "pretraining": plot_pretraining(curves, folder / f"{NOTEBOOK[:2]}_pretraining.png")}
        figures = {name: path for name, path in drawn.items() if path is not None}
    return Aggregation(cfg, files, messages, runs, cells,
                       glue_table(cells, cfg.glue_convention, cfg.across_protocols),
                       glue_table(optimistic_cells, cfg.glue_convention), optimistic_cells, last_epoch, refs, means,
                       longdoc, probes, curves, figures)


def _system_id(values: Sequence[object]) -> str:
    return hashlib.sha1(json.dumps([str(value) for value in values]).encode()).hexdigest()[:10]


def aggregate_rows(result: Aggregation) -> list[dict]:
    """The aggregation as result rows (schema of :mod:`bertbench.results`): per GLUE cell its median, range, count
    and CI; per system its GLUE means; per long-document variant its test scores; per probe curve its best layer."""
    cfg = result.config
    settings = {"selection_rule": cfg.selection_rule, "across_protocols": cfg.across_protocols,
                "glue_convention": cfg.glue_convention, "bootstrap_samples": cfg.bootstrap_samples,
                "ci_level": cfg.ci_level}
    out: list[dict] = []

    def emit(system: dict, task: str, split: str, entries: dict, extra: dict, train_examples: int = 0) -> None:
        key = [system.get(column, "") for column in SYSTEM]
        common = {"run_id": f"agg-{_system_id(key)}", "notebook": NOTEBOOK, "preset": str(system["preset"]),
                  "model": str(system["model"]), "task": task,
                  "variant": f"{system['source']}:{system['variant']}".rstrip(":"), "seed": -1,
                  "init": str(system["init"]), "head_init": "", "selection": str(system["selection"]),
                  "max_len": int(system["max_len"]), "train_examples": int(train_examples), "device": "",
                  "wall_s": 0.0, "config": json.dumps({**settings, **extra}, default=str)}
        out.extend(make_rows(common, [(split, -1, metric, value) for metric, value in entries.items()
                                      if pd.notna(value)]))

    for cell in pd.concat([result.cells, result.references], ignore_index=True).to_dict("records"):
        emit(cell, cell["task"], cell["split"], {"score_median": cell["median"], "score_min": cell["min"],
             "score_max": cell["max"], "runs": cell["n"], "score_ci_low": cell["ci_low"],
             "score_ci_high": cell["ci_high"]},
             {"runs": cell["runs"], "seeds": cell["seeds"], "score_is": cell["score_is"], "url": cell["url"],
              "protocol_text": cell["protocol_text"]}, cell["train_examples"])
    for system in result.table.to_dict("records"):
        emit(system, "glue", "dev", {"amean": system["amean"], "hmean": system["hmean"], "tasks": system["n_tasks"],
             "shared_amean": system["shared_amean"]},
             {"missing": system["missing"], "hmean_note": system["hmean_note"], "group": system["group"],
              "shared_tasks": system["shared_tasks"], "protocol_mixed": system["protocol_mixed"]})
    for row in result.longdoc.to_dict("records"):
        system = {"source": "04_long_documents", **{key: row[key] for key in (
            "model", "variant", "init", "selection", "max_len", "preset")}}
        system["variant"] += f" [{row['differs']}]" if row["differs"] else ""  # one configuration per system
        emit(system, row["dataset"], "test", {name: row[name] for name in (
            "accuracy", "accuracy_ci_low", "accuracy_ci_high", "f1", "f1_ci_low", "f1_ci_high",
            "test_tokens_per_doc", "train_s")}, {"runs": row["runs"], "seeds": row["seeds"],
                                                 "ci_from": row["ci_from"]}, row["train_docs"])
    for row in result.probes.to_dict("records"):
        system = {"source": "05_layer_probes", "model": row["model"], "variant": row["variant"], "init": row["init"],
                  "selection": "best_layer_on_dev (descriptive)", "max_len": 0, "preset": row["preset"]}
        emit(system, row["task"], "dev", {"best_accuracy": row["best"], "best_layer": row["best_layer"],
             "layer0_accuracy": row["layer0"], "last_layer_accuracy": row["last"], "majority": row["majority"]}, {})
    return out


# ------------------------------------------------------------------------------------------------------- markdown
def _number(value, digits: int = 3) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _cell_text(cell: dict) -> str:
    text = f"**{_number(cell['median'])}**"
    if cell["n"] > 1:
        text += f" {_number(cell['min'], 2)}–{_number(cell['max'], 2)} ×{cell['n']}"
    if pd.notna(cell["ci_low"]):
        text += f" [{_number(cell['ci_low'], 2)}, {_number(cell['ci_high'], 2)}]"
    return text


def _glue_markdown(table: pd.DataFrame, cells: pd.DataFrame, tasks: Sequence[str], mean_label: str) -> list[str]:
    """Markdown tables of ``glue_table`` rows, one per (protocol group, source)."""
    lines: list[str] = []
    sources_per_group = table.groupby("group")["source"].nunique()
    for (group, source), members in table.groupby(["group", "source"], sort=True):
        first = members.iloc[0]
        if bool(first["protocol_mixed"]):
            lines += [f"**⚠ `{source}`: protocols differ between these rows (compared across protocols on "
                      "request)**", ""]
        else:
            also = " (other tables of this protocol number compare directly)" if sources_per_group[group] > 1 else ""
            lines += [f"**Protocol {group + 1}** · `{source}`{also}: start `{start_of(first['init'])}` · selection "
                      f"`{first['selection']}` · max_len {first['max_len'] or 'not recorded'} · preset "
                      f"`{first['preset']}`", ""]
        shown = [task for task in tasks if task in members.columns and members[task].notna().any()]
        lines += ["| model | " + " | ".join(shown) + f" | {mean_label} | hmean | mean over shared tasks |",
                  "|---|" + "---:|" * (len(shown) + 3)]
        system_cells = cells.merge(members[list(SYSTEM)], on=list(SYSTEM))
        # the usual training budget of each task in this table; None when no budget is the most common one
        budgets = system_cells.groupby("task")["train_examples"].agg(
            lambda values: values.mode().iloc[0] if len(values.mode()) == 1 else None)
        all_budgets = system_cells.groupby("task")["train_examples"].agg(lambda values: sorted(set(values)))
        odd = []
        for row in members.to_dict("records"):
            mine = system_cells[(system_cells[list(SYSTEM)] == pd.Series({c: row[c] for c in SYSTEM})).all(axis=1)]
            by_task = {cell["task"]: cell for cell in mine.to_dict("records")}
            name = f"{row['model']} (`{row['init']}`)" + (f" · {row['variant']}" if row["variant"] else "")
            if bool(first["protocol_mixed"]):
                name += f" ({row['init']}, {row['selection']}, max_len {row['max_len']}, {row['preset']})"
            texts = []
            for task in shown:
                if task not in by_task:
                    texts.append("–")
                    continue
                text = _cell_text(by_task[task])
                usual = budgets[task]
                if pd.isna(usual) or by_task[task]["train_examples"] != usual:
                    text += " †"
                    others = int(usual) if pd.notna(usual) else "/".join(map(str, all_budgets[task]))
                    odd.append(f"{name} on {task}: {by_task[task]['train_examples']} training examples "
                               f"(the rows of this table: {others})")
                texts.append(text)
            hmean = _number(row["hmean"]) if pd.notna(row["hmean"]) else f"n/a ({row['hmean_note']})"
            lines.append(f"| {name} | " + " | ".join(texts) +
                         f" | {_number(row['amean'])} ({row['n_tasks']}) | {hmean} | {_number(row['shared_amean'])} |")
        shared = first["shared_tasks"] or "none"
        lines += ["", f"Mean over shared tasks = over {shared}: the tasks every row above has, on equal training "
                      "data" + (f" ({first['unshared_budget']} left out: unequal training data)"
                                if first["unshared_budget"] else "") + "."]
        lines += [f"† {text}: not the same data subset, compare with care." for text in odd]
        if any(budget != [0] for budget in all_budgets):
            lines.append("Training examples per task: " + ", ".join(
                f"{task} {'/'.join(str(value) if value else 'all' for value in budget)}"
                for task, budget in all_budgets.items()) + ".")
        lines.append("")
    return lines


def ditbert_table(result: Aggregation) -> pd.DataFrame:
    """DitBERT's own table as its aggregation made it: per model (all its runs, from-MNLI runs included), each task's
    best epoch of the best run on dev, and the mean under the configured convention (8 tasks, WNLI out, by
    default); beside it the same runs read at their last epoch (median over runs), which never looked at dev."""
    if not len(result.optimistic):
        return pd.DataFrame()
    tasks = [task for task in GLUE_TASKS if task in result.optimistic.columns]
    table = result.optimistic[["model", *tasks, "amean", "n_tasks", "missing"]].copy()
    last = result.last_epoch.set_index("model")["amean"]
    table["amean_last_epoch_median"] = table["model"].map(last)
    table.insert(1, "rule", f"DitBERT's: {OPTIMISTIC}; {DITBERT_GROUPING}")
    return table


def _ditbert_markdown(result: Aggregation) -> list[str]:
    cfg = result.config
    table = ditbert_table(result)
    tasks = [task for task in GLUE_TASKS if task in table.columns]
    lines = [f"**DitBERT's own rule and grouping, for reference only** (optimistic: per model and task, the best "
             f"epoch of the best run, chosen and reported on the same dev split; {DITBERT_GROUPING}). Reproduces "
             "DitBERT's own aggregation of these run folders. Cells ×100.", "",
             "| model | " + " | ".join(tasks) + f" | amean ×100 (tasks; `{cfg.glue_convention}`) | amean ×100, last "
             "epoch (median of runs, same grouping) |", "|---|" + "---:|" * (len(tasks) + 2)]
    for row in table.to_dict("records"):
        cells = " | ".join(_number(row[task] * 100, 2) for task in tasks)
        lines.append(f"| {row['model']} | {cells} | {_number(row['amean'] * 100, 2)} ({row['n_tasks']}) | "
                     f"{_number(row['amean_last_epoch_median'] * 100, 2)} |")
    return lines + ["", f"Caveat on the imported runs: {DITBERT_CAVEAT}.", ""]


def summary_markdown(result: Aggregation, link_prefix: str = "") -> str:
    """The aggregation as markdown (docs/06_aggregate_results.md includes it); figures linked as
    ``<link_prefix>figures/<name>.png``."""
    cfg = result.config
    lines = ["### What was aggregated", ""]
    if len(result.files):
        lines += ["| results file | rows | runs | notebooks |", "|---|---:|---:|---|"]
        lines += [f"| `{row.file}` | {row.rows} | {row.runs} | {row.notebooks} |" for row in result.files.itertuples()]
        lines.append("")
    lines += [f"- {message}" for message in result.messages]
    lines += [f"- selection rule `{cfg.selection_rule}`; cross-protocol comparison "
              f"{'ON (marked)' if cfg.across_protocols else 'off'}; GLUE means over the tasks present, "
              f"convention {M.CONVENTION_TEXT[cfg.glue_convention]}; bootstrap "
              f"{cfg.bootstrap_samples} resamples, "
              f"{cfg.ci_level:.0%} CI", ""]
    lines += ["### GLUE dev: bertbench runs and imported runs", "",
              "Cell: **median** over runs, min–max ×runs, [bootstrap CI of the median over dev resamples] where "
              "per-example predictions exist. Task score as GLUE defines it (CoLA MCC, STS-B mean of Pearson and "
              "Spearman, MRPC/QQP mean of accuracy and F1, MNLI mean of matched and mismatched, else accuracy). "
              "Rows are pooled and compared only within one protocol; a missing task is `–` and counts in no mean.",
              ""]
    if len(result.table):
        lines += _glue_markdown(result.table, result.cells, GLUE_TASKS,
                                f"amean (tasks; {M.CONVENTION_TEXT[cfg.glue_convention]})")
    else:
        lines += ["No GLUE runs found.", ""]
    if len(result.optimistic):
        lines += _ditbert_markdown(result)
    if len(result.references):
        lines += ["### Published reference numbers (never pooled with the rows above)", "",
                  "From `lib/bertbench/references/glue_published.csv`: each number with its paper or repository and "
                  "what it measures. Published single numbers for two-metric tasks are often one metric (e.g. MRPC "
                  "F1), not GLUE's mean, so these rows compare only roughly with the tables above. DitBERT published "
                  "no summary table that could be found; its runs are the imported rows above, and its own "
                  "aggregation rule is the optimistic table. bertbench's `minilm` rows are the packaged "
                  "all-MiniLM-L6-v2 (init `sentence-embedding`): MiniLM-L6-H384 after contrastive training on about a "
                  "billion sentence pairs, so the published MiniLM-L6-H384 rows are another checkpoint, not a "
                  "baseline of the same weights.", ""]
        for split, refs in result.references.groupby("split", sort=True):
            ref_table = glue_table(refs, cfg.glue_convention, across_protocols=True)
            shown = [task for task in GLUE_TASKS if task in ref_table.columns]
            lines += [f"**GLUE {split}**", "", "| model | source | " + " | ".join(shown) +
                      f" | amean here (tasks; `{cfg.glue_convention}`) | the source's average |",
                      "|---|---|" + "---:|" * (len(shown) + 2)]
            for row in ref_table.to_dict("records"):
                own = result.published_means[(result.published_means["model"] == row["model"])]
                own_mean = ", ".join(f"{value:.1f}" for value in own["value"]) or "–"
                source = refs[(refs["model"] == row["model"]) & (refs["variant"] == row["variant"])]
                url = source["url"].iloc[0]
                lines.append(f"| {row['model']} | [{row['variant']}]({url}) | " +
                             " | ".join(_number(row[task] * 100, 1) if pd.notna(row[task]) else "–"
                                        for task in shown) +
                             f" | {_number(row['amean'] * 100, 1)} ({row['n_tasks']}) | {own_mean} |")
            lines.append("")
    if len(result.longdoc):
        lines += ["### Long documents (notebook 04): test scores against encoder tokens", "",
                  "| dataset | strategy | aggregation | F1 [95% CI] | accuracy [95% CI] | encoder tokens/doc | "
                  "train s | runs |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for row in result.longdoc.to_dict("records"):
            strategy = row["strategy"] + (f" ({row['differs']})" if row["differs"] else "")
            lines.append(f"| {row['dataset']} | {strategy} | {row['aggregation']} | {_number(row['f1'])} "
                         f"[{_number(row['f1_ci_low'])}, {_number(row['f1_ci_high'])}] | {_number(row['accuracy'])} "
                         f"[{_number(row['accuracy_ci_low'])}, {_number(row['accuracy_ci_high'])}] | "
                         f"{row['test_tokens_per_doc']:.0f} | {row['train_s']:.0f} | {row['runs']} |")
        lines.append("")
    if len(result.probes):
        lines += ["### Layer probes (notebook 05): dev accuracy along the layers", "",
                  "| task | model | probe | layer 0 | best (layer) | last layer | majority class |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for row in result.probes[result.probes["variant"].str.startswith("probe:")].to_dict("records"):
            lines.append(f"| {row['task']} | {row['init']} | {row['variant']} | {_number(row['layer0'])} | "
                         f"{_number(row['best'])} ({row['best_layer']}) | {_number(row['last'])} | "
                         f"{_number(row['majority'])} |")
        lines += ["", "The best layer is read off the dev curve: it describes the curve, it is not a held-out "
                      "score.", ""]
    if len(result.pretraining):
        lines += ["### Pretraining (notebook 02): where the curves end", "", "| run | split | step | loss | "
                  "MLM accuracy | pseudo-perplexity |", "|---|---|---:|---:|---:|---:|"]
        curves = result.pretraining
        for (run_id, split), part in curves.groupby(["run_id", "split"], sort=False):
            last = part[part["step"] == part["step"].max()].set_index("metric")["value"]
            lines.append(f"| `{run_id}` | {split} | {int(part['step'].max())} | {_number(last.get('loss'))} | "
                         f"{_number(last.get('accuracy'))} | {_number(last.get('pppl'), 1)} |")
        lines.append("")
    if result.figures:
        lines += ["### Figures", ""]
        lines += [f"![{name}]({link_prefix}figures/{path.name})" for name, path in result.figures.items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_aggregation(result: Aggregation, results_path: str | Path) -> tuple[pd.DataFrame, Path]:
    """Write the aggregation's rows to ``results_path`` (replacing the file's earlier aggregation) and its
    markdown summary beside it (``.md``). Returns (rows, markdown path)."""
    results_path = Path(results_path)
    frame = replace_results(aggregate_rows(result), results_path)
    markdown_path = results_path.with_suffix(".md")
    temporary = markdown_path.with_name(f".{markdown_path.name}.tmp")
    temporary.write_text(summary_markdown(result))
    temporary.replace(markdown_path)  # a crash never leaves half a summary
    return frame, markdown_path
