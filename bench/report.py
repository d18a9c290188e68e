"""The committed benchmark results as markdown tables (medians over seeds/repeats, bertbench's ratio to each other
system, the issue's targets met or not), printed, and with ``--update`` written into docs/benchmarks.md between the
``bench-table`` markers.

    python bench/report.py [--update]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from _common import RESULTS_DIR, ratio_table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
MARKERS = ("<!-- bench-table:start -->", "<!-- bench-table:end -->")

# name -> key columns, speed/memory metrics (True: higher is better), quality column, and the targets:
# (key value or None, other system, metric, minimum ratio)
BENCHES = {
    "glue_vs_trainer": dict(
        title="GLUE fine-tuning vs the HF Trainer", keys=["task"], quality="dev_score", runs="seed",
        metrics={"train_examples_per_s": True, "eval_examples_per_s": True, "peak_rss_mb": False},
        targets=[(None, "trainer_dynamic", "train_examples_per_s", 1.5),
                 (None, "trainer_pad128", "train_examples_per_s", 4.0)],
        misscored=lambda frame: frame["system"].str.startswith("trainer_dynamic") & (
            frame["dev_scored_on"].isna() if "dev_scored_on" in frame else True),
        misscored_note=("Not shown: these runs were scored against the dev labels in the dataset's order, but the "
                        "Trainer with `group_by_length` returns its predictions in length-grouped order "
                        "(`bench/glue_vs_trainer.py::trainer_predictions`); their speed is unaffected. Re-run the "
                        "benchmark for their dev scores.")),
    "glue_vs_trainer_fp32": dict(
        title="GLUE fine-tuning vs the HF Trainer, both in fp32 (the same precision)", keys=["task"],
        quality="dev_score", runs="seed",
        metrics={"train_examples_per_s": True, "eval_examples_per_s": True, "peak_rss_mb": False, "mfu": True},
        no_ratio=("mfu",), targets=[(None, "trainer_dynamic", "train_examples_per_s", 1.5)],
        ceiling="train_examples_per_s",
        note=("MFU: model FLOP/s (train tokens/s × the encoder's training FLOPs per token, one count for every "
              "system) over the fastest fp32 2048 × 2048 matrix product this machine ran before the runs "
              "(`cpu_matmul_gflops`), or a GPU's data-sheet bf16 peak.")),
    "longdoc_vs_belt": dict(
        title="Long documents vs BELT", keys=["dataset"], quality="f1", runs="seed",
        metrics={"train_docs_per_s": True, "predict_docs_per_s": True, "peak_rss_mb": False},
        targets=[(None, "belt", "train_docs_per_s", 4.6), (None, "belt", "peak_rss_mb", 3.0)]),
    "mlm_vs_trainer": dict(
        title="MLM pretraining vs the HF Trainer", keys=[], quality="mean_train_loss", runs="seed",
        metrics={"tokens_per_s": True, "peak_rss_mb": False, "mfu": True}, no_ratio=("mfu",),
        targets=[(None, "trainer", "tokens_per_s", 5.0)],
        note=("MFU: model FLOP/s (tokens/s × notebook 02's training FLOPs per token, the MLM head counted on the "
              "masked positions for both systems) over the fastest fp32 2048 × 2048 matrix product this machine ran "
              "(`cpu_matmul_gflops`), or a GPU's data-sheet bf16 peak (`gpu_datasheet_bf16_gflops`).")),
    "inference_vs_pipeline": dict(
        title="Inference vs transformers' pipeline", keys=["dataset"], quality="agreement_with_bertbench",
        runs="repeat", metrics={"examples_per_s": True, "peak_rss_mb": False},
        targets=[(None, "pipeline", "examples_per_s", 1.0)]),
}
NAMES = {"train_examples_per_s": "train ex/s", "eval_examples_per_s": "eval ex/s", "peak_rss_mb": "peak RSS MB",
         "train_docs_per_s": "train docs/s", "predict_docs_per_s": "predict docs/s", "tokens_per_s": "tokens/s",
         "examples_per_s": "examples/s", "dev_score": "dev score", "f1": "test F1",
         "mean_train_loss": "mean train loss", "mfu": "MFU", "agreement_with_bertbench": "same labels as bertbench"}


def bench_markdown(name: str, frame: pd.DataFrame) -> str:
    spec = BENCHES[name]
    keys = list(spec["keys"])
    if not keys:
        frame = frame.assign(all_rows="")
        keys = ["all_rows"]
    metrics = {metric: higher for metric, higher in spec["metrics"].items() if metric in frame}  # older CSVs lack some
    table = ratio_table(frame, keys, "system", "bertbench", metrics)
    misscored = spec.get("misscored", lambda _: pd.Series(False, index=frame.index))(frame)
    quality = frame.assign(**{spec["quality"]: frame[spec["quality"]].mask(misscored)}).groupby(
        keys + ["system"], sort=False)[spec["quality"]].median()
    runs = frame.groupby(keys + ["system"], sort=False)[spec["runs"]].nunique()
    first = frame.iloc[0]
    bf16 = "" if "cpu_bf16" not in frame or first["device"] != "cpu" else \
        " (native bf16: `auto` precision is bf16)" if str(first["cpu_bf16"]) == "True" else \
        " (no native bf16: `auto` precision is fp32)"
    lines = [f"**{spec['title']}** (`{first['command']}`; {first['device']}, {first['cpu']}{bf16}, "
             f"{first['torch_threads']} threads, torch {first['torch']}, transformers {first['transformers']}, "
             f"{first['date']}, commit {first['commit']})", ""]
    header = [key for key in keys if key != "all_rows"] + ["system", "n"] + [NAMES[m] for m in metrics] + \
        [NAMES[spec["quality"]]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        record = row.to_dict()
        index = tuple(record[key] for key in keys) + (record["system"],)
        cells = [str(record[key]) for key in keys if key != "all_rows"] + [record["system"], str(runs[index])]
        for metric in metrics:
            value = record[metric]
            ratio = record.get(f"{metric}_x")
            shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
            plain = record["system"] == "bertbench" or pd.isna(ratio) or metric in spec.get("no_ratio", ())
            cells.append(shown if plain else f"{shown} (**{ratio:.2f}×**)")
        cells.append("mis-scored¹" if pd.isna(quality[index]) else f"{quality[index]:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    met = []
    for key_value, other, metric, minimum in spec["targets"]:
        part = table if key_value is None else table[table[keys[0]] == key_value]
        for row in part[part["system"] == other].itertuples(index=False):
            ratio = getattr(row, f"{metric}_x")
            where = " ".join(str(getattr(row, key)) for key in keys if key != "all_rows")
            verdict = "met" if ratio >= minimum else "**not met**"
            met.append(f"{where} {NAMES[metric]} vs {other}: {ratio:.2f}× (target ≥ {minimum}×, {verdict})".strip())
    lines += ["", "Ratios in bold: bertbench's advantage (> 1: bertbench faster or smaller)."
              + (" Targets: " + "; ".join(met) + "." if met else "")]
    if "ceiling" in spec and "ceiling_examples_per_s" in frame:
        lines[-1] += " " + ceiling_sentence(frame, keys, spec)
    if "note" in spec and all(metric in frame for metric in spec.get("no_ratio", ())):
        lines[-1] += " " + spec["note"]
    if misscored.any():
        lines += ["", "¹ " + spec["misscored_note"]]
    return "\n".join(lines)


def ceiling_sentence(frame: pd.DataFrame, keys: list[str], spec: dict) -> str:
    """What the device's peak allows: for each target, the most examples/s bertbench could reach if every FLOP it
    computes ran at the peak (``ceiling_examples_per_s``, medians over runs), as a multiple of the other system's
    measured rate, and the share of the peak the target needs against the share bertbench ran at."""
    metric = spec["ceiling"]
    medians = frame.groupby(keys + ["system"], sort=False)[[metric, "ceiling_examples_per_s"]].median()
    parts = []
    for key_value, other, target_metric, minimum in spec["targets"]:
        if target_metric != metric:
            continue
        for index, row in medians.iterrows():
            index = index if isinstance(index, tuple) else (index,)
            if index[-1] != "bertbench" or (key_value is not None and index[0] != key_value):
                continue
            theirs = medians.loc[index[:-1] + (other,), metric] if index[:-1] + (other,) in medians.index else None
            if theirs is None:
                continue
            ceiling = row["ceiling_examples_per_s"]
            where = " ".join(str(v) for v in index[:-1] if v != "")
            linear = ""
            if "linear_layers_share_of_peak" in frame:
                mine = frame[(frame["system"] == "bertbench") & (frame[keys[0]] == index[0])]
                linear = (f" (the model's linear layers alone, forward and backward on a batch's "
                          f"{mine['linear_layers_tokens'].iloc[0]:.0f} tokens: "
                          f"{mine['linear_layers_share_of_peak'].iloc[0]:.0%})")
            parts.append(f"{where}: at most {ceiling:.0f} ex/s = {ceiling / theirs:.2f}× {other}; {minimum}× needs "
                         f"{minimum * theirs / ceiling:.0%} of the peak{linear}, bertbench ran at "
                         f"{row[metric] / ceiling:.0%}")
    if not parts:
        return ""
    return ("Ceiling (every FLOP bertbench computes at the device's peak; padding, elementwise work, the optimizer and "
            "data loading free, so no speed-up of the same computation can pass it): " + "; ".join(parts) + ".")


def report(results_dir: Path = RESULTS_DIR) -> str:
    parts = []
    for name in BENCHES:
        path = results_dir / f"{name}.csv"
        if path.is_file():
            parts.append(bench_markdown(name, pd.read_csv(path)))
        else:
            parts.append(f"**{BENCHES[name]['title']}**: not run yet (`python bench/{name}.py`).")
    return "\n\n".join(parts) + "\n"


def update_page(text: str, page: Path = PAGE) -> bool:
    content = page.read_text()
    pattern = re.compile(re.escape(MARKERS[0]) + r".*?" + re.escape(MARKERS[1]), re.DOTALL)
    if not pattern.search(content):
        sys.exit(f"{page}: no {MARKERS[0]} ... {MARKERS[1]} block")
    updated = pattern.sub(lambda _: f"{MARKERS[0]}\n{text}{MARKERS[1]}", content)
    page.write_text(updated)
    return updated != content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the tables in docs/benchmarks.md")
    opts = parser.parse_args()
    text = report()
    print(text)
    if opts.update:
        print(f"docs/benchmarks.md {'updated' if update_page(text) else 'already up to date'}")


if __name__ == "__main__":
    main()
