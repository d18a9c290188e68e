"""The prepared GPU check (issue 23): one script that fits in about 8 minutes on one GPU, for a session lent one.

    python bench/gpu_check.py              # on the GPU: writes bench/results/gpu_check.csv
    python bench/gpu_check.py --dry-run    # the same steps in the tiny preset, on whatever device (the suite runs it)

Steps, each in its own process with its own outputs and runs folders (a temporary folder, removed at the end):
1. ``pytest -m gpu`` (the tests that need CUDA; they skip without it);
2. notebook 02, MLM pretraining for ``--pretrain-minutes`` (the ``gpu`` preset's model, the packaged MiniLM tokenizer);
3. notebook 03, SST-2, one epoch, seed 0, no test predictions;
4. notebook 04, Hyperpartisan, ``windows+mean_logits``, one epoch, seed 0;
5. notebook 05 (probes), SST-2.

One row per step: its wall time and exit status, and what its results file says about speed and memory (tokens/s,
TFLOP/s and model FLOPs utilisation where the device's peak is known, train examples/s, peak GPU memory) and the
score it reached; the device, torch and transformers versions and the commit on every row. A step that fails or runs
past its share of ``--budget-minutes`` is recorded as such and the next one runs: one lent session, one try.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets: bertbench's one table (train.PEAK_BF16_TFLOPS);
# MFU is left empty on any device it does not name
# step -> (notebook, settings on the GPU, settings of the dry run, share of the time budget)
STEPS = {
    "pretrain": ("02_pretrain_mlm", {"BB_PRESET": "gpu", "BB_TOKENIZER": "minilm", "BB_EVAL_POINTS": "2"},
                 {"BB_PRESET": "tiny", "BB_TOKENIZER": "minilm"}, 0.25),
    "glue_sst2": ("03_glue_finetune", {"BB_PRESET": "gpu", "BB_TASKS": "sst2", "BB_SEEDS": "0", "BB_EPOCHS": "1",
                                       "BB_PREDICT_TEST": "0"},
                  {"BB_PRESET": "tiny", "BB_TASKS": "sst2", "BB_SEEDS": "0", "BB_EPOCHS": "1",
                   "BB_PREDICT_TEST": "0"}, 0.25),
    "long_documents": ("04_long_documents", {"BB_PRESET": "gpu", "BB_DATASETS": "hyperpartisan",
                                             "BB_RUNS": "windows+mean_logits", "BB_SEEDS": "0", "BB_EPOCHS": "1"},
                       {"BB_PRESET": "tiny", "BB_DATASETS": "hyperpartisan", "BB_RUNS": "windows+mean_logits",
                        "BB_SEEDS": "0", "BB_EPOCHS": "1"}, 0.2),
    "probes": ("05_layer_probes", {"BB_PRESET": "gpu", "BB_TASKS": "sst2"},
               {"BB_PRESET": "tiny", "BB_TASKS": "sst2", "BB_SQUAD_TRAIN": "", "BB_SQUAD_DEV": ""}, 0.15),
}
PYTEST_SHARE = 0.15
SPEED = ("tokens_per_s", "tflops", "examples_per_s", "peak_gpu_mb", "peak_rss_rise_mb", "peak_rss_mb")


def peak_tflops(device: str) -> float | None:
    """The device's dense bf16 peak (``bertbench.train.peak_tflops``, matched on the name), or None."""
    from bertbench.train import peak_tflops as table_peak

    return table_peak(device)


def summarise(notebook: str, results: Path) -> dict:
    """Speed, memory and score of one step's results file (empty when it wrote none)."""
    if not results.is_file():
        return {}
    frame = pd.read_csv(results)
    summary = {"runs": int(frame["run_id"].nunique())}
    for metric in SPEED:
        values = frame.loc[frame["metric"] == metric, "value"].astype(float)
        if len(values):
            summary[metric] = float(values.median())
    if notebook == "02_pretrain_mlm":
        held_out = frame[(frame["metric"] == "loss") & (frame["split"] != "train")].sort_values("step", kind="stable")
        if len(held_out):
            summary["score"], summary["score_name"] = float(held_out["value"].iloc[-1]), "held-out MLM loss (last)"
    elif notebook == "05_layer_probes":
        probes = frame[(frame["split"] == "dev") & (frame["metric"] == "accuracy")
                       & frame["variant"].astype(str).str.startswith("probe:")]
        if len(probes):
            summary["score"], summary["score_name"] = float(probes["value"].max()), "best probe dev accuracy"
    else:
        split = "dev" if notebook == "03_glue_finetune" else "test"
        scores = frame[(frame["split"] == split) & (frame["metric"] == ("score" if split == "dev" else "f1"))]
        if len(scores):
            summary["score"] = float(scores["value"].median())
            summary["score_name"] = f"{split} {'score' if split == 'dev' else 'F1'}"
    return summary


def run_step(command: list[str], env: dict[str, str], timeout: float, log: Path) -> tuple[int | str, float]:
    started = time.perf_counter()
    with open(log, "w") as out:
        try:
            code: int | str = subprocess.run(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                             timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    return code, round(time.perf_counter() - started, 1)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the tiny preset on whatever device (the test suite)")
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="all steps together")
    parser.add_argument("--pretrain-minutes", type=float, default=1.0)
    parser.add_argument("--steps", default="pytest," + ",".join(STEPS), help="a subset, comma-separated")
    parser.add_argument("--out", default=None, help="results CSV (default bench/results/gpu_check.csv)")
    opts = parser.parse_args(argv)
    steps = [step for step in opts.steps.split(",") if step]
    unknown = sorted(set(steps) - {"pytest", *STEPS})
    if unknown:
        parser.error(f"--steps: unknown {unknown}; choose from pytest, {', '.join(STEPS)}")
    out = opts.out or (None if not opts.dry_run else str(ROOT / "runs" / "gpu_check_dry_run.csv"))
    device = machine()["device"]
    if not opts.dry_run and not device.startswith("cuda"):
        parser.error("no CUDA device here: run with --dry-run (the tiny preset), or on the GPU machine")
    budget = 60.0 * opts.budget_minutes
    base = {key: value for key, value in os.environ.items() if not key.startswith("BB_")}
    base.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if "BB_DATA_DIR" in os.environ:
        base["BB_DATA_DIR"] = os.environ["BB_DATA_DIR"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for step in steps:
            folder = Path(tmp) / step
            folder.mkdir()
            env = {**base, "BB_OUTPUT_DIR": str(folder / "outputs"), "BB_RUNS_DIR": str(folder / "runs")}
            if step == "pytest":
                notebook, share = "", PYTEST_SHARE
                command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests")]
            else:
                notebook, on_gpu, dry, share = STEPS[step]
                env.update(dry if opts.dry_run else on_gpu)
                if step == "pretrain" and not opts.dry_run:
                    env["BB_MAX_MINUTES"] = str(opts.pretrain_minutes)
                command = [sys.executable, str(ROOT / "notebooks" / f"{notebook}.py")]
            code, wall = run_step(command, env, share * budget if not opts.dry_run else 600.0, folder / "log.txt")
            row = {"benchmark": "gpu_check", "step": step, "notebook": notebook, "dry_run": opts.dry_run,
                   "settings": json.dumps({k: v for k, v in env.items() if k.startswith("BB_") and "DIR" not in k},
                                          sort_keys=True),
                   "exit": code, "wall_s": wall}
            if notebook:
                row.update(summarise(notebook, folder / "outputs" / f"{notebook}.csv"))
                peak = peak_tflops(device)
                if "tflops" in row and peak:
                    row["mfu"] = row["tflops"] / peak
            if code != 0:
                row["log_tail"] = (folder / "log.txt").read_text(errors="replace")[-1500:]
            print(f"{step}: exit {code}, {wall:.0f} s" + "".join(
                f", {key} {row[key]:.4g}" for key in (*SPEED, "mfu", "score") if isinstance(row.get(key), float)),
                flush=True)
            rows.append(row)
    write_results(rows, "gpu_check", out)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
