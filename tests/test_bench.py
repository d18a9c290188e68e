"""The benchmarks under bench/: each runs end to end in its ``--tiny`` form and writes its CSV (their speed is not
checked here: that is what the committed bench/results/ are for), and the precision default they rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bertbench import train

BENCH = Path(__file__).resolve().parents[1] / "bench"
MACHINE_COLUMNS = {"device", "cpu", "cpu_bf16", "cpu_count", "torch_threads", "torch", "transformers", "commit",
                   "command"}


def run_bench(script: str, tmp_path: Path, *extra: str) -> pd.DataFrame:
    out = tmp_path / f"{script}.csv"
    completed = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--tiny", "--out", str(out), *extra],
                               capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "advantage" in completed.stdout  # the ratio table was printed
    frame = pd.read_csv(out)
    assert MACHINE_COLUMNS <= set(frame.columns)
    assert frame["command"].str.contains(f"bench/{script}.py --tiny").all()
    return frame


def test_glue_vs_trainer_smoke(glue_dir, tmp_path):
    frame = run_bench("glue_vs_trainer", tmp_path, "--tasks", "mrpc")
    assert set(frame["system"]) == {"trainer_pad128", "trainer_dynamic", "trainer_dynamic_bf16", "bertbench"}
    assert (frame["train_examples_per_s"] > 0).all() and (frame["eval_examples_per_s"] > 0).all()
    assert (frame["peak_rss_mb"] > 100).all()
    assert frame["dev_score"].between(0, 1).all()
    assert (frame["train_examples"] == 64).all()  # both sides trained on the same subset
    # one FLOPs count per token for every system (the same tokens), and each system's own computed work per example:
    # bertbench's last layer on [CLS] alone computes less, run_glue.py's padding to max_len more
    assert np.allclose(frame["mean_train_tokens"], frame["mean_train_tokens"].iloc[0])
    assert np.allclose(frame["model_flops_per_token"], frame["model_flops_per_token"].iloc[0])
    full = frame["mean_train_tokens"] * frame["model_flops_per_token"]
    computed = frame.set_index("system")["computed_flops_per_example"]
    assert np.isclose(computed["trainer_dynamic"], full.iloc[0])
    assert computed["bertbench"] < computed["trainer_dynamic"] < computed["trainer_pad128"]
    assert np.allclose(frame["train_gflops"], frame["train_examples_per_s"] * full / 1e9)
    import torch

    if not torch.cuda.is_available():  # MFU against the measured matmul peak, and the ceiling it puts on each system
        assert frame["cpu_matmul_gflops"].gt(0).all()
        assert np.allclose(frame["mfu"], frame["train_gflops"] / frame["cpu_matmul_gflops"])
        assert np.allclose(frame["ceiling_examples_per_s"] * frame["computed_flops_per_example"],
                           frame["cpu_matmul_gflops"] * 1e9)
        assert np.allclose(frame["linear_layers_share_of_peak"],
                           frame["linear_layers_gflops"] / frame["cpu_matmul_gflops"])
    # the model's linear layers timed once, after the task's runs, on a batch's mean token count (batch size 32)
    assert (frame["linear_layers_tokens"] == (32 * frame["mean_train_tokens"]).round()).all()
    assert frame["linear_layers_gflops"].gt(0).all() and frame["linear_layers_gflops"].nunique() == 1


def test_longdoc_vs_belt_smoke(tmp_path):
    pytest.importorskip("belt_nlp")
    frame = run_bench("longdoc_vs_belt", tmp_path, "--systems", "belt,bertbench,bertbench_no_memory_savings")
    assert set(frame["system"]) == {"belt", "bertbench", "bertbench_no_memory_savings"}
    assert (frame["train_docs"] == 16).all() and (frame["test_docs"] == 8).all()  # same documents on both sides
    assert frame["f1"].between(0, 1).all() and (frame["train_s"] > 0).all() and (frame["predict_s"] > 0).all()


def test_mlm_vs_trainer_smoke(tmp_path):
    frame = run_bench("mlm_vs_trainer", tmp_path)
    assert set(frame["system"]) == {"trainer", "bertbench"}
    assert (frame["steps"] == 4).all() and (frame["tokens"] == 4 * 8 * 64).all()  # the same work on both sides
    assert (frame["tokens_per_s"] > 0).all() and frame["mean_train_loss"].notna().all()
    # model FLOP/s from the same FLOPs per token on both sides, and on CPU the utilisation of a measured matmul peak
    assert frame["train_gflops"].gt(0).all()
    per_token = frame["train_gflops"] / frame["tokens_per_s"]
    assert np.allclose(per_token, per_token.iloc[0])
    import torch

    peak = "gpu_datasheet_bf16_gflops" if torch.cuda.is_available() else "cpu_matmul_gflops"
    if peak in frame:  # always on a CPU (measured); on a GPU where train.PEAK_BF16_TFLOPS names it
        assert frame[peak].gt(0).all()
        assert np.allclose(frame["mfu"], frame["train_gflops"] / frame[peak])  # the same for both sides
    assert torch.cuda.is_available() or peak in frame


def test_inference_vs_pipeline_smoke(glue_dir, tmp_path):
    frame = run_bench("inference_vs_pipeline", tmp_path)
    assert set(frame["system"]) == {"pipeline", "pipeline_batched", "bertbench"}
    assert set(frame["dataset"]) == {"sst2_dev", "hyperpartisan_test"}
    assert (frame["examples"] == 24).all() and (frame["examples_per_s"] > 0).all()
    # the same checkpoint must give the same labels whichever tool runs it
    assert frame.loc[frame["dataset"] == "sst2_dev", "agreement_with_bertbench"].min() >= 0.95


def test_ratio_table_reads_every_ratio_as_bertbench_advantage():
    sys.path.insert(0, str(BENCH))
    try:
        from _common import ratio_table
    finally:
        sys.path.remove(str(BENCH))
    frame = pd.DataFrame({"task": ["t"] * 4, "system": ["ours", "ours", "theirs", "theirs"],
                          "speed": [10.0, 14.0, 4.0, 6.0], "memory": [100.0, 100.0, 300.0, 300.0]})
    table = ratio_table(frame, ["task"], "system", "ours", {"speed": True, "memory": False}).set_index("system")
    assert table.loc["theirs", "speed_x"] == 2.4  # median 12 / median 5
    assert table.loc["theirs", "memory_x"] == 3.0  # lower is better: theirs / ours
    assert table.loc["ours", "speed_x"] == 1.0


@pytest.mark.parametrize(("flags", "expected"), [
    ("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
    ("flags\t\t: fpu avx2 amx_bf16 amx_tile", True),
    ("flags\t\t: fpu avx2 avx512f avx512_vnni", False),
    ("Features\t: fp asimd", False),
])
def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, flags, expected):
    assert train.cpu_has_native_bf16(flags) is expected
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda cpuinfo=None: expected)
    assert train.resolve_precision("auto") == ("bf16" if expected else "no")
    assert train.resolve_precision("no") == "no"  # an explicit choice is never overridden


def test_benchmarks_page_shows_the_committed_benchmark_results():
    sys.path.insert(0, str(BENCH))
    try:
        import report
    finally:
        sys.path.remove(str(BENCH))
    page = report.PAGE.read_text()
    start, end = (page.index(marker) for marker in report.MARKERS)
    assert page[start + len(report.MARKERS[0]) + 1:end] == report.report(), \
        "docs/benchmarks.md's tables differ from bench/results/: run python bench/report.py --update"


def test_the_report_says_what_the_device_peak_allows_against_each_speed_target():
    """The ceiling line: bertbench's examples/s with every computed FLOP at the peak, against the other system's
    measured rate (medians over seeds), and the share of the peak a target needs beside the share reached."""
    sys.path.insert(0, str(BENCH))
    try:
        import report
    finally:
        sys.path.remove(str(BENCH))
    frame = pd.DataFrame({"task": ["sst2"] * 4 + ["mrpc"] * 2,
                          "system": ["trainer_dynamic", "bertbench"] * 3,
                          "train_examples_per_s": [40.0, 50.0, 44.0, 52.0, 10.0, 12.0],
                          "ceiling_examples_per_s": [150.0, 100.0, 150.0, 100.0, 30.0, 24.0]})
    text = report.ceiling_sentence(frame, ["task"], report.BENCHES["glue_vs_trainer_fp32"])
    # sst2: medians 42 (Trainer) and 51 of a 100 ex/s ceiling; 1.5 x 42 = 63 of 100
    assert "sst2: at most 100 ex/s = 2.38× trainer_dynamic; 1.5× needs 63% of the peak, bertbench ran at 51%" in text
    # mrpc: 1.5 x 10 = 15 of a 24 ex/s ceiling
    assert "mrpc: at most 24 ex/s = 2.40× trainer_dynamic; 1.5× needs 62% of the peak, bertbench ran at 50%" in text
    # with the linear layers' own share of the peak measured at a batch's size, the line gives it per task
    timed = frame.assign(linear_layers_tokens=[429, 429, 429, 429, 1702, 1702],
                         linear_layers_share_of_peak=[0.55] * 4 + [0.7] * 2)
    text = report.ceiling_sentence(timed, ["task"], report.BENCHES["glue_vs_trainer_fp32"])
    assert ("sst2: at most 100 ex/s = 2.38× trainer_dynamic; 1.5× needs 63% of the peak (the model's linear layers "
            "alone, forward and backward on a batch's 429 tokens: 55%), bertbench ran at 51%") in text
    assert "on a batch's 1702 tokens: 70%), bertbench ran at 50%" in text
    assert report.ceiling_sentence(frame.drop(columns="ceiling_examples_per_s").assign(
        ceiling_examples_per_s=np.nan).query("system == 'bertbench'"), ["task"],
        report.BENCHES["glue_vs_trainer_fp32"]) == ""  # no other system measured: nothing to say


def test_regression_keeps_fp32_under_auto_precision():
    """STS-B outputs in bf16 sit on a 1/64-1/128 grid whose ties bias Pearson/Spearman: "auto" stays fp32 there."""
    from bertbench.experiments.glue_finetune import GlueConfig

    assert GlueConfig().train_settings(regression=True).mixed_precision == "no"
    assert GlueConfig().train_settings().mixed_precision == "auto"
    assert GlueConfig(mixed_precision="bf16").train_settings(regression=True).mixed_precision == "bf16"


def test_gpu_check_dry_run_runs_every_step_and_records_it(tmp_path):
    """bench/gpu_check.py --dry-run: the steps the GPU session will run (pytest -m gpu, notebooks 02, 03, 04, 05), in
    the tiny preset here; every step exits 0 and its row has a speed, a memory figure and a score."""
    out = tmp_path / "gpu_check.csv"
    completed = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--dry-run", "--out", str(out)],
                               capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    frame = pd.read_csv(out).set_index("step")
    assert list(frame.index) == ["pytest", "pretrain", "glue_sst2", "long_documents", "probes"]
    assert (frame["exit"].astype(str) == "0").all(), frame.get("log_tail")
    assert frame["dry_run"].all() and MACHINE_COLUMNS <= set(frame.columns)
    notebooks = frame.drop(index="pytest")
    assert notebooks["score"].notna().all() and notebooks["score_name"].notna().all()
    assert frame.loc["pretrain", "tokens_per_s"] > 0 and frame.loc["pretrain", "tflops"] > 0
    assert frame.loc["glue_sst2", "examples_per_s"] > 0
    memory = notebooks[[column for column in ("peak_gpu_mb", "peak_rss_rise_mb", "peak_rss_mb")
                        if column in notebooks]].notna().any(axis=1)
    assert memory[["glue_sst2", "long_documents"]].all()
    assert "mfu" not in frame or frame["mfu"].isna().all()  # no known peak for a CPU


@pytest.mark.skipif(train.torch.cuda.is_available(), reason="a CUDA device is here: the real check would run")
def test_gpu_check_refuses_to_run_for_real_without_cuda(tmp_path):
    completed = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--out", str(tmp_path / "x.csv")],
                               capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 2 and "no CUDA device here" in completed.stderr


def test_trainer_dev_scores_pair_each_prediction_with_its_own_label(tmp_path):
    """transformers 5's Trainer with ``group_by_length`` length-groups ``predict``'s batches too and returns the
    predictions in that order; the benchmark scored them against the dataset's label order and recorded the
    Trainer at chance on SST-2. A model whose logit is its input's length shows whether each prediction meets the
    label of its own example (the label here is that length)."""
    import datasets
    import torch
    from transformers import Trainer, TrainingArguments

    sys.path.insert(0, str(BENCH))
    try:
        from glue_vs_trainer import trainer_predictions
    finally:
        sys.path.remove(str(BENCH))

    class LengthEcho(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Linear(1, 1)

        def forward(self, input_ids, attention_mask, labels=None):
            length = attention_mask.sum(-1, keepdim=True).float()
            logits = torch.cat([length, torch.zeros_like(length)], dim=-1)
            return {"loss": self.unused.weight.sum() * 0, "logits": logits}

    lengths = [1 + (i * 37) % 29 for i in range(96)]
    dataset = datasets.Dataset.from_dict({"input_ids": [[5] * n for n in lengths],
                                          "attention_mask": [[1] * n for n in lengths], "label": lengths})

    def pad(features):
        width = max(len(f["input_ids"]) for f in features)
        return {"input_ids": torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features]),
                "attention_mask": torch.tensor([f["attention_mask"] + [0] * (width - len(f["attention_mask"]))
                                                for f in features]),
                "labels": torch.tensor([f["label"] for f in features])}

    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=8, report_to="none",
                             use_cpu=True, train_sampling_strategy="group_by_length", disable_tqdm=True)
    trainer = Trainer(model=LengthEcho(), args=args, data_collator=pad)
    logits, labels = trainer_predictions(trainer, dataset)
    assert logits[:, 0].astype(int).tolist() == labels.tolist()  # every prediction beside its own example's label
    assert logits[:, 0].astype(int).tolist() != lengths  # the control: the Trainer did not predict in dataset order


def test_glue_levers_smoke(glue_dir, tmp_path):
    """bench/glue_levers.py in its --tiny form (two levers; ``compiled`` takes minutes to compile)."""
    out = tmp_path / "glue_levers.csv"
    completed = subprocess.run([sys.executable, str(BENCH / "glue_levers.py"), "--tiny", "--tasks", "mrpc",
                                "--levers", "attention_dropout_0,first_token_last_layer", "--out", str(out)],
                               capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    frame = pd.read_csv(out)
    assert MACHINE_COLUMNS <= set(frame.columns)
    assert list(frame["lever"]) == ["attention_dropout_0", "first_token_last_layer"]
    assert (frame["timed_examples"] == 64).all()  # 2 timed steps of 32 on both sides
    assert (frame["lever_speedup"] > 0).all() and frame["bertbench_optimizer_share"].between(0, 1).all()


def test_longdoc_step_memory_smoke(tmp_path):
    """bench/longdoc_step_memory.py in its --tiny form: every mode in both allocator settings."""
    out = tmp_path / "longdoc_step_memory.csv"
    completed = subprocess.run([sys.executable, str(BENCH / "longdoc_step_memory.py"), "--tiny", "--out", str(out)],
                               capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "memory_vs_off_default" in completed.stdout  # the summary table was printed
    frame = pd.read_csv(out)
    assert MACHINE_COLUMNS <= set(frame.columns)
    assert set(frame["mode"]) == {"off", "selective", "full", "passes8"}
    assert frame["allocator"].nunique() == 2  # glibc's default and large blocks mapped, each in its own process
    assert (frame["step_s"] > 0).all() and (frame["peak_rise_mb"] >= 0).all()
