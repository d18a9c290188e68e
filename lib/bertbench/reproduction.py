"""Did a re-run reproduce the rows it replaced? The comparison of two writings of one run's result rows.

A run that replaces earlier rows of its run id (:func:`bertbench.results.write_results`) prints one line from
:func:`reproduction_report`, so re-running committed results is a reproducibility check. Metrics of the machine
(times, speeds, memory: :func:`varies_by_machine`) are left out: two runs of the same computation differ in them.
Split from :mod:`bertbench.results` (which re-exports these names) to keep the schema and file handling readable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# what identifies a metric within a run: probes have one per (variant, layer), multitask runs one per task
METRIC_KEY = ["task", "variant", "layer", "split", "step", "metric"]
SHOWN_DIFFERENCES = 3  # a report lists this many differing metrics, then counts the rest


def created_values(rows: pd.DataFrame) -> list[str]:
    """What tells one writing of a run's rows from another: their ``created_at`` values (set when they are made)."""
    return sorted(set(rows["created_at"].fillna("").astype(str)))


def varies_by_machine(metric: str) -> bool:
    """Whether ``metric`` measures the machine rather than the computation: times and speeds (``*_s``, which covers
    ``*_per_s``, ``train_s``, ``cpu_s``), memory (``peak_*``, ``rss_*``) and throughput (``mfu``, ``tflops``). Two runs
    of the same computation differ in these, so a reproduction check leaves them out."""
    return metric.endswith("_s") or metric.startswith(("peak_", "rss_")) or metric in ("mfu", "tflops")


def compare_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The metrics of two writings of one run, side by side: one row per metric of either (those that do not
    :func:`varies_by_machine`), matched on :data:`METRIC_KEY`.

    Returns:
        :data:`METRIC_KEY` columns, ``old`` and ``new`` (NaN on a side that lacks the metric), and ``status``:
        ``equal`` (the same float; NaN equals NaN), ``differs``, ``only old`` or ``only new``.
    """
    def metrics(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[~frame["metric"].astype(str).map(varies_by_machine)]
        frame = frame[METRIC_KEY + ["value"]].astype(
            {"task": str, "variant": str, "layer": int, "split": str, "step": int, "metric": str, "value": float})
        return frame.assign(occurrence=frame.groupby(METRIC_KEY).cumcount())  # a key repeated in a run: by order

    both = metrics(old).merge(metrics(new), on=METRIC_KEY + ["occurrence"], how="outer", suffixes=("_old", "_new"),
                              indicator=True)
    old_values, new_values = both["value_old"].to_numpy(), both["value_new"].to_numpy()
    equal = (old_values == new_values) | (np.isnan(old_values) & np.isnan(new_values))
    side = both["_merge"].astype(str)
    status = np.where(side == "left_only", "only old", np.where(side == "right_only", "only new",
                                                                 np.where(equal, "equal", "differs")))
    return both[METRIC_KEY].assign(old=old_values, new=new_values, status=status).reset_index(drop=True)


def reproduction_report(run_id: str, old: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """The line to print when ``new`` rows of ``run_id`` replace ``old`` ones: ``reproduced: ...`` when every metric
    they share is the same float, else ``not reproduced: ...`` with the first :data:`SHOWN_DIFFERENCES` differences
    (dev scores, then other dev metrics, then the rest) and a count; metrics on one side only are counted. On one
    CPU a re-run gives the same floats, so a difference there is a finding; across devices or thread counts small
    ones are expected.

    None when ``new`` only continues ``old`` (the same values, plus metrics of later steps): a run that writes its
    rows as it goes (pretraining, at every evaluation) replacing its own earlier rows, not a re-run.
    """
    comparison = compare_rows(old, new)
    counts = comparison["status"].value_counts()
    shared = int(counts.get("equal", 0) + counts.get("differs", 0))
    added = comparison[comparison["status"] == "only new"]
    if not counts.get("differs", 0) and not counts.get("only old", 0) and len(added) and (
            not shared or added["step"].min() > comparison.loc[comparison["status"] == "equal", "step"].max()):
        return None
    made = ", ".join(created_values(old))
    devices = sorted(set(old["device"].astype(str))), sorted(set(new["device"].astype(str)))
    notes = [f"{count} metric(s) only in the {'new rows' if status == 'only new' else 'rows it replaced'}"
             for status in ("only new", "only old") if (count := int(counts.get(status, 0)))]
    if devices[0] != devices[1]:
        notes.append(f"the replaced rows were made on {', '.join(devices[0])}, these on {', '.join(devices[1])}")
    tail = "".join(f"; {note}" for note in notes)
    if not shared:
        return f"nothing to compare: run {run_id} shares no metric with the rows it replaced (made {made}){tail}"
    differs = comparison[comparison["status"] == "differs"]
    if differs.empty:
        return f"reproduced: {shared} metrics of run {run_id} equal to the last digit (the rows it replaced, made " \
               f"{made}){tail}"
    headline_first = 2 * ~differs["split"].str.startswith("dev").to_numpy() + (differs["metric"] != "score").to_numpy()
    differs = differs.iloc[np.argsort(headline_first, kind="stable")]
    shown = [f"{_metric_label(comparison, row)} {_difference(row.old, row.new)}"
             for row in differs.head(SHOWN_DIFFERENCES).itertuples()]
    more = f" and {len(differs) - SHOWN_DIFFERENCES} more" if len(differs) > SHOWN_DIFFERENCES else ""
    return f"not reproduced: run {run_id} differs from the rows it replaced (made {made}) in {len(differs)} of " \
           f"{shared} metrics: {', '.join(shown)}{more}{tail}"


def _metric_label(comparison: pd.DataFrame, row) -> str:
    """``dev score``, with what else tells the metric apart within the run: the task where it has several, the
    variant and layer where it has them (probes), the step where the metric has several (per-epoch rows)."""
    parts = [row.task] if comparison["task"].nunique() > 1 else []
    parts += [row.variant] if row.variant else []
    parts += [f"layer {row.layer}"] if row.layer >= 0 else []
    parts += [row.split, row.metric]
    same = comparison[(comparison[["task", "variant", "layer", "split", "metric"]]
                       == [row.task, row.variant, row.layer, row.split, row.metric]).all(axis=1)]
    return " ".join(parts + ([f"step {row.step}"] if same["step"].nunique() > 1 else []))


def _difference(old: float, new: float) -> str:
    """``0.8956 -> 0.8950 (-0.0006)``: at least 4 significant digits, more until the two values read differently."""
    digits = next((digits for digits in range(4, 18) if f"{old:.{digits}g}" != f"{new:.{digits}g}"), 17)
    return f"{old:#.{digits}g} -> {new:#.{digits}g} ({new - old:+.2g})"
