"""MLM pretraining, bertbench (notebook 02's loop) against the Hugging Face Trainer, side by side: tokens/s.

Same config (``BertForMaskedLM``, notebook 02's ``mini`` size unless ``--size``: 4 layers x 256, built by
``build_mlm_model`` for both), same tokenizer (the packaged MiniLM's WordPiece, so no notebook 01 run is needed), same
corpus blocks (the first ``--docs`` Wikipedia documents tokenised once and packed as ``[CLS] block [SEP]`` of
``--max-len`` tokens), same masking rates (15%, 80/10/10), batch size, steps, learning rate, warmup and clipping.
The Trainer side is the usual recipe: ``DataCollatorForLanguageModeling`` and the model's full-vocabulary loss.
Tokens/s counts every input token of the training steps (evaluation excluded on both sides). Each (system, seed) runs
in a fresh process. Writes ``bench/results/mlm_vs_trainer.csv`` with each side's model FLOP/s (``train_gflops``:
tokens/s times notebook 02's training FLOPs per token, the MLM head counted on the masked positions for both) and its
model FLOPs utilisation, worked out here for both sides alike: on a GPU against its data-sheet bf16 peak
(``gpu_datasheet_bf16_gflops``), on a CPU against the fastest fp32 2048 x 2048 matrix product this machine ran at the
same thread count before the runs (``cpu_matmul_gflops``).

    python bench/mlm_vs_trainer.py                  # 60 steps of 32 x 128 tokens, seeds 0 and 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import pandas as pd

from _common import device_peak_gflops, finish, interleaved, parse_systems, run_isolated

SYSTEMS = ("trainer", "bertbench")


def pretrain_config(args: dict, seed: int, name: str = "bench-mlm"):
    from bertbench.experiments.pretrain_mlm import PretrainConfig

    return PretrainConfig(
        preset="cpu", name=name, tokenizer="minilm", corpus="wikipedia", max_docs=args["docs"], heldout_blocks=4,
        eval_blocks=4, pppl_blocks=0, arch="bert", size=args["size"], max_len=args["max_len"],
        batch_size=args["batch_size"], lr=args["lr"], max_steps=args["steps"], max_minutes=0.0, eval_points=1,
        resume=False, seed=seed)


def blocks(cfg):
    """The training blocks bertbench's loop draws from, (N, max_len), and the tokenizer."""
    from bertbench.data.corpus import open_corpus
    from bertbench.experiments.pretrain_mlm import pack, resolve_tokenizer, token_stream
    from bertbench.paths import runs_dir

    tokenizer = resolve_tokenizer(cfg)
    stream = token_stream(open_corpus(cfg.corpus, cfg.max_docs), tokenizer, runs_dir() / "cache" / "tokens")
    content = cfg.max_len - 2
    n_blocks = len(stream) // content - cfg.heldout_blocks - 1
    return pack(stream, range(n_blocks), content, tokenizer.cls_token_id, tokenizer.sep_token_id), tokenizer


def run_bertbench(args: dict, seed: int) -> dict:
    from bertbench.experiments.pretrain_mlm import pretrain

    cfg = pretrain_config(args, seed)
    with tempfile.TemporaryDirectory() as tmp:
        result = pretrain(cfg, os.path.join(tmp, "results.csv"))
    history = result.history  # one row per evaluation, columns <split>_<metric>
    last = lambda column: float(history[column].dropna().iloc[-1])  # noqa: E731
    return {"steps": result.state.step, "tokens": result.state.tokens_seen, "train_s": result.state.train_seconds,
            "mean_train_loss": last("train_loss")}  # one evaluation at the end: the mean over every step


def run_trainer(args: dict, seed: int) -> dict:
    import torch
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from bertbench.experiments.pretrain_mlm import build_mlm_model

    cfg = pretrain_config(args, seed)
    data, tokenizer = blocks(cfg)
    set_seed(seed)
    model = build_mlm_model(cfg.arch, cfg.size, tokenizer, cfg.max_len, cfg.dropout)
    dataset = [{"input_ids": row} for row in data]
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
            weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_fraction, max_steps=cfg.max_steps,
            max_grad_norm=cfg.max_grad_norm, seed=seed, save_strategy="no", report_to="none", disable_tqdm=True,
            logging_steps=max(1, cfg.max_steps // 4), use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mask_prob)
        trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator)
        started = time.perf_counter()
        output = trainer.train()
        train_s = time.perf_counter() - started
    tokens = cfg.max_steps * cfg.batch_size * cfg.max_len
    return {"steps": cfg.max_steps, "tokens": tokens, "train_s": train_s,
            "mean_train_loss": float(output.training_loss)}  # the mean over every step, as bertbench's


def flops_per_token(args: dict) -> float:
    """Notebook 02's training FLOPs per token for this benchmark's model (the same for both sides)."""
    from bertbench.experiments.pretrain_mlm import build_mlm_model, train_flops_per_token
    from bertbench.experiments.pretrain_mlm.runs import resolve_tokenizer

    cfg = pretrain_config(args, 0)
    model = build_mlm_model(cfg.arch, cfg.size, resolve_tokenizer(cfg), cfg.max_len, cfg.dropout)
    return train_flops_per_token(model, cfg.max_len, cfg.mask_prob)


def measure(args: dict, seed: int, system: str, per_token: float, peak: float | None, peak_name: str) -> dict:
    result = run_isolated(run_trainer if system == "trainer" else run_bertbench, args=args, seed=seed)
    result["tokens_per_s"] = result["tokens"] / result["train_s"]
    result["train_gflops"] = result["tokens_per_s"] * per_token / 1e9
    if peak:
        result[peak_name] = peak
        result["mfu"] = result["train_gflops"] / peak
    return {"benchmark": "mlm_vs_trainer", "system": system, "seed": seed, **result}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--size", default="mini")
    parser.add_argument("--docs", type=int, default=3000, help="first N Wikipedia documents")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tiny", action="store_true", help="smoke test: nano model, 4 steps of 8 x 64 tokens")
    parser.add_argument("--out", default=None, help="results CSV (default bench/results/mlm_vs_trainer.csv)")
    opts = parser.parse_args(argv)
    if opts.tiny:
        opts.seeds, opts.size, opts.docs, opts.steps, opts.batch_size, opts.max_len = "0", "nano", 200, 4, 8, 64
    args = {key: getattr(opts, key) for key in ("size", "docs", "steps", "batch_size", "max_len", "lr")}
    systems = parse_systems(parser, opts.systems, SYSTEMS)
    per_token = flops_per_token(args)
    peak, peak_name = device_peak_gflops(256 if opts.tiny else 2048)
    print(f"{per_token / 1e6:.1f} MFLOP per token; MFU against "
          + (f"{peak:.1f} GFLOP/s ({peak_name})" if peak else "nothing: this GPU is not in train.PEAK_BF16_TFLOPS"))
    rows = interleaved(opts.seeds, systems,
                       lambda seed, system: {**measure(args, seed, system, per_token, peak, peak_name), **args},
                       lambda row: (f"{row['tokens_per_s']:.0f} tokens/s over {row['steps']} steps, mean train loss "
                                    f"{row['mean_train_loss']:.3f}, {row['peak_rss_mb']:.0f} MB"))
    metrics = {"tokens_per_s": True, "peak_rss_mb": False}
    if any("mfu" in row for row in rows):
        metrics["mfu"] = True
    return finish(rows, "mlm_vs_trainer", opts.out, [], metrics, f"seeds {opts.seeds}")


if __name__ == "__main__":
    main()
