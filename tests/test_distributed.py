"""Notebook 03 under ``torchrun`` with 2 CPU processes (DDP, gloo) against 1 process with the same global batch:
the same training and dev metrics, one set of result rows, every dev example predicted once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bertbench as bb
from bertbench.results import varies_by_machine

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _launch(notebook: str, folder: Path, processes: int, **settings: str) -> Path:
    """Run ``notebooks/<notebook>.py`` in ``tiny`` as one plain process or under torchrun with ``processes`` CPU
    processes; returns its outputs folder."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BB_")}
    env.update(BB_PRESET="tiny", BB_SEEDS="0", BB_MIXED_PRECISION="no", BB_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               BB_OUTPUT_DIR=str(folder / "outputs"), BB_RUNS_DIR=str(folder / "runs"), **settings)
    if "BB_DATA_DIR" in os.environ:
        env["BB_DATA_DIR"] = os.environ["BB_DATA_DIR"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = (launcher if processes > 1 else [sys.executable]) + [str(ROOT / "notebooks" / f"{notebook}.py")]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    # torchrun ends with its own summary: the processes' tracebacks are the lines it prefixes with their rank
    ranks = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if line.startswith("[rank"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + "\n" + ranks[-4000:]
    return folder / "outputs"


def _glue(folder: Path, model: Path, processes: int) -> pd.DataFrame:
    outputs = _launch("03_glue_finetune", folder, processes, BB_TASKS="sst2", BB_MAX_TRAIN_EXAMPLES="512",
                      BB_PREDICT_TEST="0", BB_MODEL=str(model))
    return bb.load_results(outputs / "03_glue_finetune.csv")


def _same_rows(one: pd.DataFrame, two: pd.DataFrame) -> pd.DataFrame:
    """The two runs' rows side by side (``value_one``, ``value_two``), times, speeds and memory left out, after
    checking that the 2-process run wrote one set of rows and says it ran on 2 processes."""
    key = ["run_id", "task", "split", "step", "metric"]  # a multitask run has rows per task
    assert not two.duplicated(key).any() and len(two) == len(one)  # one set of rows, written once
    assert all("x2 processes" in device for device in two["device"])
    assert not any("processes" in device for device in one["device"])
    merged = one.merge(two, on=key, suffixes=("_one", "_two"))
    assert len(merged) == len(one)
    return merged[~merged["metric"].map(varies_by_machine)]  # times, speeds, memory: the machine's


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
    model_metrics = _same_rows(one, two)
    assert len(model_metrics) >= 8
    losses = model_metrics[model_metrics["metric"] == "loss"]
    assert ((losses["value_one"] - losses["value_two"]).abs() < 1e-3).all(), losses
    scores = model_metrics[model_metrics["metric"] != "loss"]
    assert ((scores["value_one"] - scores["value_two"]).abs() <= 1 / 32 + 1e-9).all(), scores  # <= 1 example

    predictions = pd.read_csv(tmp_path / "two" / "outputs" / "predictions" / "03_glue_finetune.csv")
    assert sorted(predictions["example"]) == list(range(32))  # gathered: each dev example once, none repeated


def test_pretraining_on_two_processes_shards_each_global_batch_and_trains_like_one(tmp_path):
    # Notebook 02 without dropout: every process masks the whole global batch and trains on its half of the rows, so
    # 2 processes follow 1 process's losses (to float reduction order) while each computes half of every batch.
    settings = dict(BB_DROPOUT="0", BB_MAX_STEPS="6", BB_EVAL_POINTS="2")
    one = bb.load_results(_launch("02_pretrain_mlm", tmp_path / "one", 1, **settings) / "02_pretrain_mlm.csv")
    # the same tokenizer (a WordPiece vocabulary trained again may number its tokens otherwise)
    shutil.copytree(tmp_path / "one" / "runs" / "tokenizers", tmp_path / "two" / "runs" / "tokenizers")
    two = bb.load_results(_launch("02_pretrain_mlm", tmp_path / "two", 2, **settings) / "02_pretrain_mlm.csv")
    model_metrics = _same_rows(one, two)
    losses = model_metrics[model_metrics["metric"] == "loss"]
    assert len(losses) >= 4 and set(losses["split"]) >= {"train", "corpus_heldout"}, losses
    assert ((losses["value_one"] - losses["value_two"]).abs() < 1e-3).all(), losses
    assert (losses["step"] == 6).any()  # the budget in steps ended both runs at the same step
    seen = model_metrics[model_metrics["metric"] == "tokens_seen"]
    assert (seen["value_one"] == seen["value_two"]).all()  # the global batch, not world x batch
    for folder in ("one", "two"):
        assert (next((tmp_path / folder / "runs" / "pretrain").iterdir()) / "model" / "model.safetensors").is_file()


def _dropout_free_model(folder: Path, labels: tuple[str, ...]) -> Path:
    """A tiny random BERT without dropout, saved: two processes then draw no different dropout masks."""
    from bertbench.models import build_classifier, load_tokenizer

    tokenizer = load_tokenizer("minilm")
    model, _ = build_classifier("random-bert-2x64", tokenizer, labels, max_len=64, dropout=0.0,
                                attention_dropout=0.0)
    model.config.classifier_dropout = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_long_documents_on_two_processes_split_training_and_prediction_and_match_one(tmp_path):
    # Notebook 04, windows + mean of logits on Hyperpartisan: training batches split between the processes (fit's
    # shard_batches), each test document predicted by one process and the rows gathered (predict_documents).
    model = _dropout_free_model(tmp_path / "model", ("false", "true"))
    settings = dict(BB_DATASETS="hyperpartisan", BB_RUNS="windows+mean_logits", BB_MODEL=str(model))
    one_dir = _launch("04_long_documents", tmp_path / "one", 1, **settings)
    two_dir = _launch("04_long_documents", tmp_path / "two", 2, **settings)
    one = bb.load_results(one_dir / "04_long_documents.csv")
    two = bb.load_results(two_dir / "04_long_documents.csv")
    model_metrics = _same_rows(one, two)
    losses = model_metrics[model_metrics["metric"] == "loss"]
    assert len(losses) == 2, losses  # one per epoch
    assert ((losses["value_one"] - losses["value_two"]).abs() < 1e-3).all(), losses
    # each window counted once over the two processes: the same windows and tokens per document as one process
    counts = model_metrics[model_metrics["metric"].isin(["encoder_tokens_per_doc", "windows_per_doc"])]
    assert len(counts) == 3 and (counts["value_one"] == counts["value_two"]).all(), counts
    scores = model_metrics[~model_metrics["metric"].isin(["loss", "encoder_tokens_per_doc", "windows_per_doc"])]
    assert ((scores["value_one"] - scores["value_two"]).abs() < 1e-3).all(), scores
    for frame in (one, two):  # model TFLOP/s over the windows trained on; no MFU without a device peak (a CPU)
        assert (frame.loc[frame["metric"] == "tflops", "value"] > 0).sum() == 1 and "mfu" not in set(frame["metric"])
    predictions = [pd.read_csv(folder / "predictions" / "04_long_documents.csv") for folder in (one_dir, two_dir)]
    assert not predictions[1]["doc_id"].duplicated().any()
    assert sorted(predictions[0]["doc_id"]) == sorted(predictions[1]["doc_id"])  # every test document, once
    merged = predictions[0].merge(predictions[1], on=["run_id", "doc_id"])
    assert ((merged["p_true_x"] - merged["p_true_y"]).abs() < 1e-3).all()


def test_model_heads_on_two_processes_match_one(tmp_path):
    # Notebook 05's heads (the two-input bi-encoder, single-task and multitask models) without dropout: the multitask
    # model leaves the other tasks' heads unused in each batch, which DDP must be told about.
    model = _dropout_free_model(tmp_path / "model", ("negative", "positive"))  # its encoder: no attention dropout
    settings = dict(BB_MODEL=str(model), BB_DROPOUT="0", BB_HEAD_DROPOUT="0", BB_LR="1e-4")
    one = bb.load_results(_launch("05_model_heads", tmp_path / "one", 1, **settings) / "05_model_heads.csv")
    two = bb.load_results(_launch("05_model_heads", tmp_path / "two", 2, **settings) / "05_model_heads.csv")
    model_metrics = _same_rows(one, two)
    assert set(one["variant"].str.split(":").str[0]) >= {"two_input", "single_task", "multitask"}
    losses = model_metrics[model_metrics["metric"] == "loss"]
    assert len(losses) >= 6
    assert ((losses["value_one"] - losses["value_two"]).abs() < 1e-3).all(), losses
    scores = model_metrics[model_metrics["metric"] != "loss"]
    assert ((scores["value_one"] - scores["value_two"]).abs() < 1e-3).all(), scores
