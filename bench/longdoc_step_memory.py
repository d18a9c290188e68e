"""What one long-document training step keeps in memory, and what it costs to keep less: activation checkpointing
modes and glibc's allocator setting, measured side by side.

One batch as notebook 04 trains it (MiniLM, ``--docs`` documents of ``--windows-per-doc`` full 512-token windows,
``windows+mean_logits``), one optimizer step at a time. Each mode is a way of keeping activations for the backward
pass: ``off``, ``selective`` and ``full`` (``models.set_activation_checkpointing``), and ``passes8`` (no layer
checkpointing, the batch encoded in checkpointed passes of 8 windows: ``max_windows_per_pass=8``). The modes alternate
step by step in one process, after a first step that creates the optimizer's state, so machine noise hits them all.
Per step: seconds, and the rise of the process's resident-memory high-water mark over the step (``PeakMemory``). Two
fresh processes run the same alternation: one with glibc's default allocator behaviour, one after
``memory.return_large_blocks_to_os`` (what notebook 04's runs do). Writes ``bench/results/longdoc_step_memory.csv``.

    python bench/longdoc_step_memory.py              # 8 docs x 3 windows of 512 tokens, 2 steps per mode
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from _common import run_isolated, tiny_encoder, write_results

MODES = ("off", "selective", "full", "passes8")


def measure(model_name: str, docs: int, windows_per_doc: int, max_len: int, steps: int, large_blocks: bool,
            modes: list[str]) -> dict:
    import torch

    from bertbench import window_pooling as A
    from bertbench.experiments.long_documents import encode_windows
    from bertbench.memory import PeakMemory, return_large_blocks_to_os
    from bertbench.models import build_classifier, load_tokenizer, set_activation_checkpointing

    if large_blocks:
        return_large_blocks_to_os()
    tokenizer = load_tokenizer(model_name)
    model, _ = build_classifier(model_name, tokenizer, ("false", "true"), max_len=max_len, attention_dropout=0.0)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    n = docs * windows_per_doc
    ids = torch.randint(1000, 20000, (n, max_len), generator=generator)
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
             "doc_index": torch.arange(docs).repeat_interleave(windows_per_doc),
             "labels": torch.randint(0, 2, (docs,), generator=generator)}

    def step(mode: str) -> float:
        set_activation_checkpointing(model, "off" if mode == "passes8" else mode)
        started = time.perf_counter()
        logits = encode_windows(model, batch, 8 if mode == "passes8" else n)
        A.doc_loss(logits, batch["doc_index"], batch["labels"], "mean_logits").backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    step("off")  # the optimizer's state exists from here on
    rows = []
    for repeat in range(steps):
        for mode in modes:
            with PeakMemory("cpu") as peak:
                seconds = step(mode)
            rows.append({"mode": mode, "repeat": repeat, "step_s": seconds, "peak_rise_mb": peak.mb,
                         "rss_start_mb": peak.start_mb})
    return {"rows": rows}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--docs", type=int, default=8)
    parser.add_argument("--windows-per-doc", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per mode")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--tiny", action="store_true", help="smoke test: a random 2x64 BERT on 4 x 2 windows of 64")
    parser.add_argument("--out", default=None, help="results CSV (default bench/results/longdoc_step_memory.csv)")
    opts = parser.parse_args(argv)
    if opts.tiny:
        opts.model, opts.docs, opts.windows_per_doc, opts.max_len, opts.steps = tiny_encoder(), 4, 2, 64, 1
    modes = [mode.strip() for mode in opts.modes.split(",") if mode.strip()]
    if unknown := set(modes) - set(MODES):
        parser.error(f"--modes: unknown {sorted(unknown)}; choose from {', '.join(MODES)}")
    rows = []
    for large_blocks in (False, True):
        result = run_isolated(measure, model_name=opts.model, docs=opts.docs, windows_per_doc=opts.windows_per_doc,
                              max_len=opts.max_len, steps=opts.steps, large_blocks=large_blocks, modes=modes)
        allocator = "large blocks mapped (return_large_blocks_to_os)" if large_blocks else "glibc default"
        rows += [{"benchmark": "longdoc_step_memory", "allocator": allocator, **row, "docs": opts.docs,
                  "windows_per_doc": opts.windows_per_doc, "max_len": opts.max_len,
                  "model": "tiny" if opts.tiny else opts.model} for row in result["rows"]]
    frame = pd.DataFrame(rows)
    write_results(rows, "longdoc_step_memory", opts.out)
    table = frame.groupby(["allocator", "mode"], sort=False).agg(step_s=("step_s", "median"),
                                                                 peak_rise_mb=("peak_rise_mb", "max")).reset_index()
    base = table[(table["allocator"] == "glibc default") & (table["mode"] == "off")].iloc[0]
    table["time_vs_off_default"] = (table["step_s"] / base["step_s"]).round(2)
    table["memory_vs_off_default"] = (table["peak_rise_mb"] / base["peak_rise_mb"]).round(2)
    with pd.option_context("display.width", 200):
        print(table.to_string(index=False))
    return frame


if __name__ == "__main__":
    main()
