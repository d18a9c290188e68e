"""Notebook 06's seaborn figures: GLUE per task, long documents against their cost, probe curves, pretraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .protocol import GLUE_TASKS


def _save(grid_or_fig, path: Path) -> Path:
    figure = getattr(grid_or_fig, "figure", grid_or_fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def _seaborn():
    import seaborn as sns  # no backend chosen here: a kernel keeps its inline one (bertbench.display)

    sns.set_theme(style="whitegrid", context="notebook")
    return sns


def plot_glue(runs: pd.DataFrame, path: str | Path) -> Path | None:
    """Dev score per task: median over runs with the min–max range, one colour per model, one panel per source and
    protocol (panels are not pooled with each other)."""
    if not len(runs):
        return None
    sns = _seaborn()
    runs = runs.assign(system=runs["model"] + np.where(runs["variant"] != "", " · " + runs["variant"], ""),
                       panel=runs["source"] + "\n" + runs["init"] + ", " + runs["selection"] + ", " +
                       runs["preset"])
    order = [task for task in GLUE_TASKS if task in set(runs["task"])]
    grid = sns.catplot(runs, x="task", y="value", hue="system", col="panel", col_wrap=2, order=order, kind="point",
                       estimator=np.median, errorbar=("pi", 100), dodge=0.4, linestyle="none", markers="D",
                       height=3.6, aspect=1.6, sharex=False)
    grid.set_titles("{col_name}", size=9)
    grid.set_axis_labels("GLUE task", "dev score (median, min–max)")
    return _save(grid, Path(path))


def plot_longdoc(table: pd.DataFrame, path: str | Path, metric: str = "f1") -> Path | None:
    """Test ``metric`` with its bootstrap CI against encoder tokens per document; one panel per dataset."""
    if not len(table):
        return None
    sns = _seaborn()
    grid = sns.relplot(table, x="test_tokens_per_doc", y=metric, hue="strategy", style="aggregation",
                       col="dataset", kind="scatter", s=90, height=3.8, facet_kws={"sharey": False, "sharex": False})
    for dataset, ax in grid.axes_dict.items():
        part = table[table["dataset"] == dataset]
        ax.errorbar(part["test_tokens_per_doc"], part[metric], fmt="none", ecolor="grey", elinewidth=1,
                    yerr=[part[metric] - part[f"{metric}_ci_low"], part[f"{metric}_ci_high"] - part[metric]])
    grid.set_axis_labels("encoder tokens per document (test)", f"test {metric} (95% bootstrap CI)")
    return _save(grid, Path(path))


def plot_probes(frame: pd.DataFrame, path: str | Path) -> Path | None:
    """Probe dev accuracy per layer: pretrained vs fine-tuned (colour), probe vs control task (style), one panel
    per (task, pooling), the majority-class floor dashed."""
    dev = frame[(frame["notebook"] == "05_layer_probes") & (frame["split"] == "dev") & (frame["metric"] == "accuracy")
                & (frame["task"] != "squad2")]
    curves = dev[(dev["layer"] >= 0) & dev["variant"].str.startswith(("probe:", "control:"))].copy()
    if not len(curves):
        return None
    sns = _seaborn()
    curves["kind"] = curves["variant"].str.split(":").str[0]
    curves["pooling"] = curves["variant"].str.split(":").str[1]
    grid = sns.relplot(curves, x="layer", y="value", hue="init", style="kind", row="task", col="pooling",
                       kind="line", markers=True, height=3.2, aspect=1.3, facet_kws={"sharey": "row"})
    for (task, _pooling), ax in grid.axes_dict.items():
        floor = dev[(dev["task"] == task) & (dev["variant"] == "majority")]["value"]
        if len(floor):
            ax.axhline(float(floor.iloc[0]), color="grey", linestyle="--", linewidth=1)
    grid.set_axis_labels("layer (0 = embeddings)", "dev accuracy")
    grid.figure.suptitle("probe vs control task per layer; dashed grey: majority class", y=1.02, size=10)
    return _save(grid, Path(path))


def plot_pretraining(curves: pd.DataFrame, path: str | Path) -> Path | None:
    """Loss, MLM accuracy and pseudo-perplexity against the training step, per evaluation split."""
    if not len(curves):
        return None
    sns = _seaborn()
    grid = sns.relplot(curves, x="step", y="value", hue="split", style="model", col="metric", kind="line",
                       markers=True, height=3.4, facet_kws={"sharey": False})
    grid.set_axis_labels("training step", "")
    if "pppl" in grid.axes_dict:
        grid.axes_dict["pppl"].set_yscale("log")
    return _save(grid, Path(path))
