"""What only a CUDA device can show (``pytest -m gpu``; skipped without one, run by ``bench/gpu_check.py`` on a lent
GPU): training and prediction on the accelerator with bf16 autocast, and each run's own peak GPU memory."""

from __future__ import annotations

import pytest
import torch

import bertbench as bb

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_a_glue_run_trains_on_the_gpu_in_bf16_and_records_its_peak_gpu_memory(glue_dir, tmp_path):
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0",
                                          "BB_PREDICT_TEST": "0"})
    frame = bb.run_glue(cfg, tmp_path / "03.csv", verbose=False)
    assert frame["device"].str.startswith("cuda:").all()
    assert frame["device"].str.contains(", bf16").all() or not torch.cuda.is_bf16_supported()
    peak = frame[frame["metric"] == "peak_gpu_mb"]["value"]
    assert len(peak) == 1 and peak.iloc[0] > 0


def test_a_long_document_run_trains_and_predicts_on_the_gpu(tmp_path):
    cfg = bb.LongDocConfig.from_env(environ={"BB_PRESET": "tiny"}, datasets=("hyperpartisan",),
                                    runs=("windows+mean_logits",), epochs=1)
    frame = bb.run_long_documents(cfg, tmp_path / "04.csv", verbose=False)
    assert frame["device"].str.startswith("cuda:").all()
    assert (frame[frame["metric"] == "f1"]["value"].between(0, 1)).all()


def test_peak_memory_on_cuda_is_what_the_run_allocated():
    with bb.PeakMemory(torch.device("cuda")) as peak:
        block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")  # 64 MiB
        del block
    assert 60 <= peak.metrics()["peak_gpu_mb"] < 1024


def test_frozen_encoders_for_probes_run_in_bf16_on_the_gpu():
    from bertbench.experiments.layer_probes.states import default_device, frozen_autocast, frozen_precision
    from bertbench.models import build_classifier, load_tokenizer

    assert default_device().type == "cuda"
    assert frozen_precision() == ("bf16" if torch.cuda.is_bf16_supported() else "no")
    model, _ = build_classifier("random-bert-1x32", load_tokenizer("minilm"), ("a", "b"))
    model.to("cuda")
    with frozen_autocast(model):
        out = model(input_ids=torch.tensor([[101, 2023, 102]], device="cuda"), output_hidden_states=True)
    # a linear layer's output is bf16 under autocast (LayerNorm outputs stay fp32, so the logits tell)
    assert out.logits.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
