"""Long documents, bertbench against BELT (PyPI ``belt-nlp`` 1.1.0, ``BertClassifierWithPooling``), side by side.

Same model (the packaged MiniLM), same Hyperpartisan split (notebook 04's packaged 80/10/10 split, the training part
subsampled stratified), same windows (chunk size, stride, minimal chunk length, maximal text length), mean pooling of
the window logits (bertbench's ``windows+mean_logits``), same batch size in documents, learning rate and epochs. Each
(system, seed) runs in its own fresh process. Reported per run: test accuracy and F1, train seconds (epoch loops,
tokenisation excluded on both sides), predict seconds on the test split, peak resident memory.

Differences that are each tool's own design, not settings: BELT trains with plain AdamW (torch defaults, constant lr,
no clipping) and pads every window to 512 tokens; bertbench uses its loop (warmup + linear decay, clipping), pads to
the longest window of a pass and bounds each encoder pass to ``max_windows_per_pass`` windows. BELT's ``BertNN`` head
is ``Linear(768, K)``, hard-coded (MiniLM is 384 wide), so BELT is given the same module with the width read from the
model's config. bertbench's long-document default turns attention dropout off (BELT keeps the model's 0.1): the
``bertbench_attn0.1`` system (not run by default) is bertbench with the model's 0.1, to show what that default
contributes.

    python bench/longdoc_vs_belt.py                 # 256 training documents (up to 1,024 tokens), 2 epochs, 1 seed
    python bench/longdoc_vs_belt.py --seeds 0,1,2 --train-docs 0 --maximal-text-length 2048 \
        --systems belt,bertbench,bertbench_attn0.1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from _common import finish, interleaved, parse_systems, run_isolated, tiny_encoder

SYSTEMS = ("belt", "bertbench", "bertbench_attn0.1", "bertbench_no_memory_savings")


def longdoc_config(args: dict, seed: int, attention_dropout: float = 0.0, activation_checkpointing: str = "selective"):
    from bertbench.experiments.long_documents import LongDocConfig

    return LongDocConfig(
        preset="cpu", datasets=("hyperpartisan",), dataset_overrides="", model=args["model"],
        runs=("windows+mean_logits",), seeds=(seed,), max_train_docs=args["train_docs"],
        max_eval_docs=args["eval_docs"], chunk_size=args["chunk_size"], stride=args["stride"],
        minimal_chunk_length=args["minimal_chunk_length"], maximal_text_length=args["maximal_text_length"],
        batch_size=args["batch_size"], eval_batch_size=args["batch_size"], lr=args["lr"], epochs=args["epochs"],
        patience=0, attention_dropout=attention_dropout, bootstrap_samples=0,
        activation_checkpointing=activation_checkpointing)


def run_bertbench(args: dict, seed: int, attention_dropout: float, memory_savings: bool = True) -> dict:
    from bertbench.experiments.long_documents import prepare_dataset, run_one

    if not memory_savings:  # this fresh process keeps glibc's default allocator behaviour
        import bertbench.experiments.long_documents.runs as runs

        runs.return_large_blocks_to_os = lambda: False
    cfg = longdoc_config(args, seed, attention_dropout, "selective" if memory_savings else "off")
    started = time.perf_counter()
    prepared = prepare_dataset(cfg, "hyperpartisan")
    tokenize_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_one(cfg, prepared, "windows+mean_logits", seed, 0, Path(tmp) / "results.csv", verbose=False)
    value = lambda split, metric: float(rows[(rows.split == split) & (rows.metric == metric)]["value"].iloc[-1])  # noqa: E731
    return {"train_docs": int(rows["train_examples"].iloc[0]), "test_docs": len(prepared.splits[0]["test"]),
            "accuracy": value("test", "accuracy"), "f1": value("test", "f1"), "train_s": value("train", "train_s"),
            "predict_s": value("test", "predict_s"), "tokenize_s": tokenize_s}


def run_belt(args: dict, seed: int) -> dict:
    import numpy as np
    import torch
    from belt_nlp.bert_classifier_with_pooling import BertClassifierWithPooling
    from transformers import AutoModel, AutoTokenizer, set_seed

    from bertbench import metrics as M
    from bertbench.experiments.long_documents import prepare_dataset
    from bertbench.models import resolve_model

    cfg = longdoc_config(args, seed)
    prepared = prepare_dataset(cfg, "hyperpartisan")  # the same split and training subsample as bertbench's
    docs = prepared.docs
    texts = lambda part: [docs.examples.text_a[i] for i in prepared.splits[0][part]]  # noqa: E731
    labels = lambda part: [int(docs.examples.labels[i]) for i in prepared.splits[0][part]]  # noqa: E731
    path = resolve_model(cfg.model)
    set_seed(seed)
    encoder = AutoModel.from_pretrained(path, use_safetensors=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    belt = BertClassifierWithPooling(
        num_labels=len(docs.label_names), batch_size=cfg.batch_size, learning_rate=cfg.lr, epochs=cfg.epochs,
        chunk_size=cfg.chunk_size, stride=cfg.stride, minimal_chunk_length=cfg.minimal_chunk_length,
        pooling_strategy="mean", maximal_text_length=cfg.maximal_text_length or None,
        tokenizer=AutoTokenizer.from_pretrained(path), neural_network=ClsLinear(encoder, len(docs.label_names)),
        pretrained_model_name_or_path=None, device=device)
    train_texts, test_texts = texts("train"), texts("test")
    started = time.perf_counter()  # BELT tokenises inside fit (once) and predict: timed alone, then subtracted
    belt._tokenize(train_texts)
    train_tokenize_s = time.perf_counter() - started
    started = time.perf_counter()
    belt._tokenize(test_texts)
    test_tokenize_s = time.perf_counter() - started
    started = time.perf_counter()
    belt.fit(train_texts, labels("train"))
    train_s = time.perf_counter() - started - train_tokenize_s
    started = time.perf_counter()
    probs = belt.predict_scores(test_texts).cpu().numpy()
    predict_s = time.perf_counter() - started - test_tokenize_s
    metrics = M.document_metrics(probs, np.asarray(labels("test")), docs.problem)
    return {"train_docs": len(train_texts), "test_docs": len(test_texts), "accuracy": metrics["accuracy"],
            "f1": metrics["f1"], "train_s": train_s, "predict_s": predict_s,
            "tokenize_s": train_tokenize_s + test_tokenize_s}


def _cls_linear_class():
    import torch

    class _ClsLinear(torch.nn.Module):
        """BELT's ``BertNN`` (encoder, CLS hidden state, one Linear) with the head width from the model's config
        instead of BELT's hard-coded 768."""

        def __init__(self, encoder, num_labels: int):
            super().__init__()
            self.model = encoder
            self.linear = torch.nn.Linear(encoder.config.hidden_size, num_labels)

        def forward(self, input_ids, attention_mask):
            return self.linear(self.model(input_ids, attention_mask)[0][:, 0, :])

    return _ClsLinear


def ClsLinear(encoder, num_labels: int):
    return _cls_linear_class()(encoder, num_labels)


def measure(args: dict, seed: int, system: str) -> dict:
    if system == "belt":
        result = run_isolated(run_belt, args=args, seed=seed)
    else:
        result = run_isolated(run_bertbench, args=args, seed=seed,
                              attention_dropout=0.1 if system == "bertbench_attn0.1" else 0.0,
                              memory_savings=system != "bertbench_no_memory_savings")
    result["train_docs_per_s"] = result["train_docs"] * args["epochs"] / result["train_s"]
    result["predict_docs_per_s"] = result["test_docs"] / result["predict_s"]
    return {"benchmark": "longdoc_vs_belt", "dataset": "hyperpartisan", "system": system, "seed": seed, **result}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--systems", default="belt,bertbench", help=f"any of {SYSTEMS}")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--train-docs", type=int, default=256, help="stratified training subsample (0 = all 516)")
    parser.add_argument("--eval-docs", type=int, default=0, help="cap on val/test documents (0 = all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="documents per batch")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--chunk-size", type=int, default=510)
    parser.add_argument("--stride", type=int, default=448)
    parser.add_argument("--minimal-chunk-length", type=int, default=32)
    parser.add_argument("--maximal-text-length", type=int, default=1024)
    parser.add_argument("--tiny", action="store_true",
                        help="smoke test: a random 2x64 BERT, 16 training and 8 test documents, 1 epoch")
    parser.add_argument("--out", default=None, help="results CSV (default bench/results/longdoc_vs_belt.csv)")
    opts = parser.parse_args(argv)
    if opts.tiny:
        opts.train_docs, opts.eval_docs, opts.epochs, opts.maximal_text_length = 16, 8, 1, 600
        opts.model = tiny_encoder() if opts.model == "minilm" else opts.model
    args = {key: getattr(opts, key) for key in ("model", "train_docs", "eval_docs", "epochs", "batch_size", "lr",
                                                "chunk_size", "stride", "minimal_chunk_length",
                                                "maximal_text_length")}
    systems = parse_systems(parser, opts.systems, SYSTEMS)
    extra = {k: v for k, v in args.items() if k != "train_docs"}
    rows = interleaved(opts.seeds, systems, lambda seed, system: {**measure(args, seed, system), **extra},
                       lambda row: (f"F1 {row['f1']:.4f}, acc {row['accuracy']:.4f}, train {row['train_s']:.0f} s "
                                    f"({row['train_docs_per_s']:.2f} docs/s), predict {row['predict_s']:.1f} s, "
                                    f"{row['peak_rss_mb']:.0f} MB"))
    return finish(rows, "longdoc_vs_belt", opts.out, ["dataset"],
                  {"train_docs_per_s": True, "predict_docs_per_s": True, "peak_rss_mb": False}, f"seeds {opts.seeds}")


if __name__ == "__main__":
    main()
