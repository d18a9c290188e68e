"""Inference, bertbench against transformers' ``pipeline("text-classification")`` on the same fine-tuned checkpoint.

Two sets: a GLUE dev set (SST-2, 872 sentences) and a long-document test set (Hyperpartisan's 65 test articles, read
as the first 512 tokens: the ``head`` strategy, since the pipeline can only truncate). Checkpoints: MiniLM fine-tuned
briefly by bertbench itself (SST-2 on ``--finetune-examples`` sentences; Hyperpartisan ``head`` on
``--finetune-docs`` articles, 1 epoch each), or yours with ``--glue-checkpoint`` / ``--longdoc-checkpoint``.
Systems, each measurement in a fresh process, ``--repeats`` times interleaved:
- ``pipeline``: the pipeline as called by default (one example at a time);
- ``pipeline_batched``: the pipeline with ``batch_size=--batch-size``;
- ``bertbench``: tokenise once + ``predict`` (length-sorted batches of ``--batch-size``, dynamic padding).
Timing covers tokenisation and the forward passes on both sides (model loading excluded). Each row also gives the
share of predictions equal to bertbench's (the same checkpoint must give the same labels).

    python bench/inference_vs_pipeline.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from _common import finish, parse_systems, run_isolated, tiny_encoder

SYSTEMS = ("pipeline", "pipeline_batched", "bertbench")


def make_checkpoints(args: dict, folder: str) -> dict:
    """Fine-tune the two checkpoints with bertbench (runs under ``folder``); returns their paths."""
    os.environ["BB_RUNS_DIR"] = folder
    from bertbench.data.glue import get_task
    from bertbench.experiments.glue_finetune import GlueConfig, load_task_data, run_task_seed
    from bertbench.experiments.long_documents import LongDocConfig, prepare_dataset, run_one
    from bertbench.paths import runs_dir

    paths = {}
    if not args["glue_checkpoint"]:
        cfg = GlueConfig(model=args["model"], tasks=("sst2",), seeds=(0,), max_train_examples=args["finetune_examples"],
                         selection="last", epochs=1, predict_test=False, keep_checkpoints=True)
        rows = run_task_seed(cfg, "sst2", 0, load_task_data(cfg, get_task("sst2")), Path(folder) / "glue.csv",
                             verbose=False)
        paths["glue"] = str(runs_dir() / "glue" / rows["run_id"].iloc[0] / "best")
        paths["glue_dev_accuracy"] = float(rows[(rows.split == "dev") & (rows.metric == "accuracy")]["value"].iloc[0])
    if not args["longdoc_checkpoint"]:
        cfg = LongDocConfig(model=args["model"], datasets=("hyperpartisan",), dataset_overrides="", runs=("head",),
                            max_train_docs=args["finetune_docs"], epochs=1, patience=0, keep_checkpoints=True,
                            bootstrap_samples=0)
        rows = run_one(cfg, prepare_dataset(cfg, "hyperpartisan"), "head", 0, 0, Path(folder) / "longdoc.csv",
                       verbose=False)
        paths["longdoc"] = str(runs_dir() / "longdoc" / rows["run_id"].iloc[0] / "best")
        paths["longdoc_test_f1"] = float(rows[(rows.split == "test") & (rows.metric == "f1")]["value"].iloc[0])
    return paths


def inputs(dataset: str, limit: int) -> tuple[list, object]:
    """Texts (strings, or dicts with text/text_pair) of ``dataset`` and its Examples."""
    if dataset == "sst2_dev":
        from bertbench.data.glue import get_task, load_glue

        examples = load_glue(get_task("sst2"), "dev")
    else:
        from bertbench.data.documents import fixed_split, load_documents

        docs = load_documents("hyperpartisan")
        examples = docs.examples.select(fixed_split(docs)[0]["test"])
    if limit:
        examples = examples.select(range(min(limit, len(examples))))
    if examples.text_b is None:
        return list(examples.text_a), examples
    return [{"text": a, "text_pair": b} for a, b in zip(examples.text_a, examples.text_b, strict=True)], examples


def run_bertbench(checkpoint: str, dataset: str, batch_size: int, limit: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    from bertbench.encoding import PadCollator, encode
    from bertbench.models import load_tokenizer
    from bertbench.train import predict

    tokenizer = load_tokenizer(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, use_safetensors=True).eval()
    if torch.cuda.is_available():
        model.cuda()
    _, examples = inputs(dataset, limit)
    max_len = min(512, model.config.max_position_embeddings)
    started = time.perf_counter()
    # a long document is read as its first max_len tokens (the head strategy), as the pipeline's truncation does
    logits = predict(model, encode(examples, tokenizer, max_len), PadCollator(tokenizer), batch_size)
    seconds = time.perf_counter() - started
    return {"examples": len(examples), "seconds": seconds, "predictions": logits.argmax(axis=-1).tolist()}


def run_pipeline(checkpoint: str, dataset: str, batch_size: int, limit: int) -> dict:
    import torch
    from transformers import pipeline

    pipe = pipeline("text-classification", model=checkpoint, tokenizer=checkpoint,
                    device=0 if torch.cuda.is_available() else -1)
    texts, examples = inputs(dataset, limit)
    kwargs = {"batch_size": batch_size} if batch_size > 1 else {}
    max_len = min(512, pipe.model.config.max_position_embeddings)
    started = time.perf_counter()
    outputs = pipe(texts, truncation=True, max_length=max_len, **kwargs)
    seconds = time.perf_counter() - started
    label2id = pipe.model.config.label2id
    return {"examples": len(examples), "seconds": seconds,
            "predictions": [int(label2id[out["label"]]) for out in outputs]}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--glue-checkpoint", default="", help="a fine-tuned SST-2 save_pretrained folder")
    parser.add_argument("--longdoc-checkpoint", default="", help="a fine-tuned Hyperpartisan save_pretrained folder")
    parser.add_argument("--finetune-examples", type=int, default=2000)
    parser.add_argument("--finetune-docs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="first N examples of each set (0 = all)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--tiny", action="store_true",
                        help="smoke test: a random 2x64 BERT, 1 repeat of 24 examples, tiny fine-tunes")
    parser.add_argument("--out", default=None, help="results CSV (default bench/results/inference_vs_pipeline.csv)")
    opts = parser.parse_args(argv)
    if opts.tiny:
        opts.finetune_examples, opts.finetune_docs, opts.repeats, opts.limit = 64, 8, 1, 24
        opts.model = tiny_encoder() if opts.model == "minilm" else opts.model
    systems = parse_systems(parser, opts.systems, SYSTEMS)
    with tempfile.TemporaryDirectory() as tmp:
        made = run_isolated(make_checkpoints, args=vars(opts), folder=tmp)
        checkpoints = {"sst2_dev": opts.glue_checkpoint or made["glue"],
                       "hyperpartisan_test": opts.longdoc_checkpoint or made["longdoc"]}
        for key in ("glue_dev_accuracy", "longdoc_test_f1"):
            if key in made:
                print(f"checkpoint made for this benchmark: {key} {made[key]:.4f}")
        rows = []
        for repeat in range(opts.repeats):
            for dataset, checkpoint in checkpoints.items():
                reference = None
                for system in sorted(systems, key=lambda s: s != "bertbench"):  # bertbench first: the reference
                    fn = run_bertbench if system == "bertbench" else run_pipeline
                    result = run_isolated(fn, checkpoint=checkpoint, dataset=dataset,
                                          batch_size=1 if system == "pipeline" else opts.batch_size, limit=opts.limit)
                    predictions = result.pop("predictions")
                    reference = predictions if system == "bertbench" else reference
                    agreement = (sum(a == b for a, b in zip(predictions, reference, strict=True)) / len(predictions)
                                 if reference is not None else float("nan"))
                    row = {"benchmark": "inference_vs_pipeline", "dataset": dataset, "system": system,
                           "repeat": repeat, "batch_size": 1 if system == "pipeline" else opts.batch_size,
                           "examples_per_s": result["examples"] / result["seconds"],
                           "agreement_with_bertbench": agreement, **result,
                           "checkpoint": "fine-tuned here" if checkpoint in made.values() else checkpoint}
                    print(f"{dataset} repeat {repeat} {system}: {row['examples_per_s']:.1f} examples/s, "
                          f"{row['peak_rss_mb']:.0f} MB, agreement {agreement:.3f}", flush=True)
                    rows.append(row)
    return finish(rows, "inference_vs_pipeline", opts.out, ["dataset"],
                  {"examples_per_s": True, "peak_rss_mb": False}, f"{opts.repeats} repeats")


if __name__ == "__main__":
    main()
