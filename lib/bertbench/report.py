"""Markdown tables of committed results, so README numbers come from outputs/ and never from typing.

``python -m bertbench.report`` prints the GLUE table of ``outputs/03_glue_finetune.csv``; README embeds the same text
between ``<!-- glue-table:start -->`` and ``<!-- glue-table:end -->`` and a test checks that they agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .data.glue import get_task
from .glue_finetune import glue_summary
from .paths import outputs_dir
from .results import load_results

START, END = "<!-- glue-table:start -->", "<!-- glue-table:end -->"


def glue_markdown(frame: pd.DataFrame) -> str:
    """One line per task: task score (what it averages), median over seeds, min–max, and the protocol facts."""
    table, means = glue_summary(frame)
    runs = frame.drop_duplicates("run_id")
    lines = [
        "| task | score = | seeds | median | min – max | train examples | median run time |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in table.itertuples(index=False):
        names = get_task(row.task).score_metrics
        score_def = names[0] if len(names) == 1 else f"mean of {', '.join(names)}"
        lines.append(f"| {row.task} | {score_def} | {row.seeds} | {row.score_median:.4f} | "
                     f"{row.score_min:.4f} – {row.score_max:.4f} | {row.train_examples} | {row.wall_s_median:.0f} s |")
    missing = ", ".join(means["missing"]) or "none"
    total_h = runs["wall_s"].astype(float).sum() / 3600
    lines += [
        "",
        f"GLUE over the {means['n_tasks']} tasks present: arithmetic mean **{means['amean']:.4f}**, harmonic mean "
        f"{means['hmean']:.4f} (missing: {missing}). Model `{'`, `'.join(sorted(set(runs['model'])))}`, preset "
        f"`{'`, `'.join(sorted(set(runs['preset'])))}`, selection `{'`, `'.join(sorted(set(runs['selection'])))}`, "
        f"device `{'`, `'.join(sorted(set(runs['device'])))}`; {len(runs)} runs, {total_h:.2f} h of run time in all.",
    ]
    return "\n".join(lines)


def readme_block(readme_text: str) -> str:
    """The text between the README markers."""
    start, end = readme_text.index(START) + len(START), readme_text.index(END)
    return readme_text[start:end].strip()


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else outputs_dir() / "03_glue_finetune.csv"
    print(glue_markdown(load_results(path)))


if __name__ == "__main__":
    main(sys.argv[1:])
