"""Notebook 03 under ``torchrun`` with 2 CPU processes (DDP, gloo) against 1 process with the same global batch:
the same training and dev metrics, one set of result rows, every dev example predicted once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bertbench as bb
from bertbench.results import varies_by_machine

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _glue(folder: Path, model: Path, processes: int) -> pd.DataFrame:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BB_")}
    env.update(BB_PRESET="tiny", BB_TASKS="sst2", BB_SEEDS="0", BB_MAX_TRAIN_EXAMPLES="512", BB_PREDICT_TEST="0",
               BB_MIXED_PRECISION="no", BB_NUM_THREADS="1", BB_MODEL=str(model), HF_HUB_OFFLINE="1",
               BB_OUTPUT_DIR=str(folder / "outputs"), BB_RUNS_DIR=str(folder / "runs"))
    if "BB_DATA_DIR" in os.environ:
        env["BB_DATA_DIR"] = os.environ["BB_DATA_DIR"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = (launcher if processes > 1 else [sys.executable]) + [str(ROOT / "notebooks" / "03_glue_finetune.py")]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return bb.load_results(folder / "outputs" / "03_glue_finetune.csv")


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, glue_dir):
    # A dropout-free tiny BERT: the two runs then differ only by float reduction order and by how the last
    # (uneven) batch is split, not by different dropout masks on two processes.
    from bertbench.models import build_classifier, load_tokenizer

    tokenizer = load_tokenizer("minilm")
    model, _ = build_classifier("random-bert-2x64", tokenizer, ("negative", "positive"), max_len=64, dropout=0.0,
                                attention_dropout=0.0)
    model.config.classifier_dropout = 0.0
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")

    one = _glue(tmp_path / "one", tmp_path / "model", 1)
    two = _glue(tmp_path / "two", tmp_path / "model", 2)
    key = ["run_id", "split", "step", "metric"]
    assert not two.duplicated(key).any() and len(two) == len(one)  # one set of rows, written once
    assert all(device.endswith("x2 processes") for device in two["device"])
    assert not any(device.endswith("processes") for device in one["device"])
    merged = one.merge(two, on=key, suffixes=("_one", "_two"))
    model_metrics = merged[~merged["metric"].map(varies_by_machine)]  # times, speeds, memory: the machine's
    assert len(model_metrics) >= 8
    losses = model_metrics[model_metrics["metric"] == "loss"]
    assert ((losses["value_one"] - losses["value_two"]).abs() < 1e-3).all(), losses
    scores = model_metrics[model_metrics["metric"] != "loss"]
    assert ((scores["value_one"] - scores["value_two"]).abs() <= 1 / 32 + 1e-9).all(), scores  # <= 1 example

    predictions = pd.read_csv(tmp_path / "two" / "outputs" / "predictions" / "03_glue_finetune.csv")
    assert sorted(predictions["example"]) == list(range(32))  # gathered: each dev example once, none repeated
