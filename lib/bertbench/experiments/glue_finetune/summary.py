"""Notebook 03's tables and plot: the median over seeds per task and configuration, the GLUE means under one named
convention, which point of a learning-rate sweep was chosen, and the dev-score figure."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd

from ... import metrics as M
from ...config import config_differences, pooling_key
from ...data.user_data import task_for_row


def selection_score(rows: pd.DataFrame) -> float:
    """A run's score on its selection split at its best epoch (what chose the epoch; chooses the learning rate)."""
    picked = rows[rows["split"].isin(["train_holdout", "dev"]) & (rows["metric"] == "score")
                  & (rows["split"] == ("train_holdout" if (rows["split"] == "train_holdout").any() else "dev"))]
    if not len(picked):
        raise ValueError(f"run {rows['run_id'].iloc[0]} has no selection-split score to choose a learning rate by")
    return float(picked["value"].max())


def glue_summary(frame: pd.DataFrame, convention: str = M.DEFAULT_CONVENTION) -> tuple[pd.DataFrame, dict]:
    """Per task and configuration: median dev score over seeds with min and max, plus the GLUE arithmetic/harmonic
    means under ``convention`` (:data:`bertbench.metrics.GLUE_CONVENTIONS`: by default WNLI left out, MNLI once).

    Only runs whose recorded configs differ by seed alone are pooled (:func:`bertbench.config.pooling_key`): a task
    run under two settings gets two rows, ``differs`` says what differs, and the means leave that task out and name
    it (which of its rows would count is not for a mean to choose).

    Returns:
        (table, means): the table has one row per task and configuration; means as
        :func:`bertbench.metrics.glue_means`.
    """
    final = frame[frame["split"].isin(["dev", "dev_matched", "dev_mismatched"])]
    final = final.assign(config_key=final["config"].map(pooling_key))
    rows, configs = [], []
    for (task_name, _key), group in final.groupby(["task", "config_key"], sort=False):
        task = task_for_row(task_name, group["config"].iloc[0])  # a task of your own: from the config's tsv: spec
        scores = group[group["metric"] == "score"]["value"].astype(float).tolist()
        row = {"task": task_name, "seeds": len(scores), "score_median": statistics.median(scores),
               "score_min": min(scores), "score_max": max(scores)}
        for split in task.eval_splits:  # MNLI keeps matched and mismatched apart
            suffix = "" if split == "dev" else "_" + split.removeprefix("dev_")
            for metric in task.metrics:
                values = group[(group["metric"] == metric) & (group["split"] == split)]["value"].astype(float)
                if len(values):
                    row[f"{metric}{suffix}_median"] = statistics.median(values)
        row["train_examples"] = int(group["train_examples"].iloc[0])
        row["lr"] = json.loads(group["config"].iloc[0]).get("lr")
        row["wall_s_median"] = statistics.median(frame[frame["run_id"].isin(set(group["run_id"]))]
                                                 .drop_duplicates("run_id")["wall_s"].astype(float))
        rows.append(row)
        configs.append(group["config"].iloc[0])
    table = pd.DataFrame(rows)
    if not len(table):
        return table, M.glue_means({}, convention)
    table["differs"], table["lr_choice"] = "", ""
    for task_name, alike in table.groupby("task", sort=False):
        if len(alike) > 1:
            table.loc[alike.index, "differs"] = config_differences([configs[i] for i in alike.index])
        table.loc[alike.index, "lr_choice"] = lr_choices(frame, [configs[i] for i in alike.index], task_name)
    # the means take each task's one configuration, or the one its learning-rate sweep chose (none while it runs)
    single = table[(~table["task"].duplicated(keep=False) & ~table["lr_choice"].str.startswith("sweep"))
                   | table["lr_choice"].str.startswith("chosen")]
    single = single[~single["task"].duplicated(keep=False)]
    means = M.glue_means(dict(zip(single["task"], single["score_median"], strict=True)), convention)
    several = {task: count for task, count in table["task"].value_counts(sort=False).items() if count > 1}
    means["missing"] = [f"{task} ({several[task]} configurations)" if task in several else task
                        for task in means["missing"]]
    return table, means


def lr_choices(frame: pd.DataFrame, configs: list[str], task: str) -> list[str]:
    """For the configurations of one ``task``: which learning rate its sweep (``lr_grid``) chose — the configuration
    whose first-seed run scored best on the selection split, as :func:`run_glue` chose — and which were the sweep's
    other points; "" where no sweep ran. Only ``task``'s runs are read: a recorded config does not name the task, so
    the same settings on another task pool with it otherwise."""
    grids = [json.loads(config).get("lr_grid") or [] for config in configs]
    if not any(grids):
        return [""] * len(configs)
    frame = frame[frame["task"] == task]
    scores = []
    keys = frame["config"].map(pooling_key)
    for config in configs:
        runs = frame[keys == pooling_key(config)]
        first = runs[runs["seed"] == runs["seed"].min()]
        scores.append(selection_score(first) if len(first) else float("-inf"))
    # ties go to the first learning rate of the grid, as run_glue breaks them (not to the first row of the table)
    grid = next(g for g in grids if g)
    place = [grid.index(lr) if (lr := json.loads(config).get("lr")) in grid else len(grid) for config in configs]
    swept = {place[i] for i in range(len(configs)) if grids[i] and scores[i] > float("-inf") and place[i] < len(grid)}
    if len(swept) < len(grid):  # a sweep still under way has chosen nothing yet
        return [f"sweep ({scores[i]:.4f}; {len(swept)} of {len(grid)} rates run)" if grids[i] else ""
                for i in range(len(configs))]
    best = min(range(len(configs)), key=lambda i: (-scores[i], place[i]))
    return [(f"chosen ({scores[i]:.4f} on the selection split)" if i == best else f"sweep ({scores[i]:.4f})")
            if grids[i] else "" for i in range(len(configs))]


def plot_dev_scores(frame: pd.DataFrame, path: str | Path):
    """Dev score per task: one dot per seed, the median as a bar; saved to ``path`` and returned (shown inline by
    :func:`bertbench.display.show`)."""
    import matplotlib.pyplot as plt

    scores = frame[(frame["split"] == "dev") & (frame["metric"] == "score")]
    tasks = list(dict.fromkeys(scores["task"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(tasks) + 1.5), 3.6))
    for position, task in enumerate(tasks):
        values = scores[scores["task"] == task]["value"].astype(float)
        ax.bar(position, values.median(), color="tab:blue", alpha=0.35, width=0.6)
        ax.scatter([position] * len(values), values, color="tab:blue", zorder=3, s=22)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("dev score (GLUE's task score)")
    ax.set_title(f"{', '.join(sorted(set(scores['model'])))}: median over seeds (bar), each seed (dot)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return fig
