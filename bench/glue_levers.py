"""What could make notebook 03's training step faster at the *same* precision: each lever measured against
bertbench's step side by side, in one process, step by step alternating (machine noise hits both alike).

The step is ``train.fit``'s at fp32 (``BB_MIXED_PRECISION=no``) with every lever off: forward with the loss,
backward, gradient clipping at 1.0, fused AdamW, on length-grouped batches of 32 from the task's training split.
Levers (issue 23's list, and one found here):
- ``attention_dropout_0``: attention-probability dropout off (with it, PyTorch's CPU SDPA takes its math path);
- ``compiled``: ``torch.compile`` of the model (``dynamic=True``; the compile time is reported apart, as
  ``warmup_s``, and left out of the speed);
- ``first_token_last_layer``: the last encoder layer computes [CLS] alone, the only position the head reads
  (``models.first_token_last_layer``; ``fit`` and ``predict`` do this by default, ``BB_LAST_LAYER``);
- the optimizer's share (clip + AdamW + zero_grad, over all parameters, the 30,522 x 384 word embeddings included)
  and the host-side batch building's share of bertbench's own step, as columns: the most that sparse embedding
  updates, fewer host syncs or a faster dataloader could save.

    python bench/glue_levers.py                      # SST-2 and MRPC, 12 timed steps after 3 warm-up steps
    python bench/glue_levers.py --tasks mrpc --steps 20 --levers attention_dropout_0
"""

from __future__ import annotations

import argparse
import contextlib

import pandas as pd

from _common import parse_systems, timed_train_step, tiny_encoder, write_results

LEVERS = ("attention_dropout_0", "compiled", "first_token_last_layer")


_KEPT = contextlib.ExitStack()  # levers that hold for a model's lifetime


def _model(name: str, tokenizer, labels, lever: str | None):
    import torch

    from bertbench.models import build_classifier, first_token_last_layer
    from bertbench.train import build_optimizer

    torch.manual_seed(0)
    model, _ = build_classifier(name, tokenizer, labels,
                                attention_dropout=0.0 if lever == "attention_dropout_0" else None)
    model.train()
    if lever == "first_token_last_layer":  # for the rest of this process: the model is the lever's alone
        _KEPT.enter_context(first_token_last_layer(model, "first_token"))
    optimizer = build_optimizer(model, 5e-5, 0.0)
    forward = torch.compile(model, dynamic=True) if lever == "compiled" else model
    return model, forward, optimizer


def measure(task_name: str, lever: str, model_name: str, examples: int, steps: int, warmup: int) -> dict:
    """Seconds per phase of ``steps`` timed steps of bertbench's step and of the lever's, alternating."""

    import bertbench as bb
    from bertbench.data.glue import get_task, load_glue
    from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode

    task = get_task(task_name)
    tokenizer = bb.load_tokenizer(model_name)
    dataset = encode(load_glue(task, "train").subsample(examples, seed=0), tokenizer, 128)
    batches = list(LengthGroupedBatchSampler(dataset.lengths, 32, seed=0))[:warmup + steps]
    collate = PadCollator(tokenizer)
    sides = {"bertbench": _model(model_name, tokenizer, task.label_names, None),
             lever: _model(model_name, tokenizer, task.label_names, lever)}
    spent = {side: dict.fromkeys(("batch", "forward_backward", "optimizer", "warmup"), 0.0) for side in sides}
    seen = 0
    for number, indices in enumerate(batches):
        timed = number >= warmup
        seen += len(indices) if timed else 0
        for side, (model, forward, optimizer) in sides.items():
            spent_now = timed_train_step(lambda rows=indices: collate([dataset[i] for i in rows]), forward, model,
                                         optimizer)
            if timed:
                spent[side]["batch"] += spent_now["batch"]
                spent[side]["forward_backward"] += spent_now["forward"] + spent_now["backward"]
                spent[side]["optimizer"] += spent_now["optimizer"]
            else:
                spent[side]["warmup"] += sum(spent_now.values())
    ours, theirs = (sum(spent[side][p] for p in ("batch", "forward_backward", "optimizer")) for side in sides)
    return {"benchmark": "glue_levers", "task": task.name, "lever": lever, "model": model_name,
            "timed_steps": steps, "timed_examples": seen, "precision": "fp32",
            "bertbench_examples_per_s": seen / ours, "lever_examples_per_s": seen / theirs,
            "lever_speedup": ours / theirs,
            "bertbench_batch_share": spent["bertbench"]["batch"] / ours,
            "bertbench_optimizer_share": spent["bertbench"]["optimizer"] / ours,
            "warmup_s": spent[lever]["warmup"], "bertbench_warmup_s": spent["bertbench"]["warmup"]}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sst2,mrpc")
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--examples", type=int, default=2000, help="training examples the batches are drawn from")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="smoke test: a random 2x64 BERT, 2 timed steps")
    parser.add_argument("--out", default=None, help="results CSV (default bench/results/glue_levers.csv)")
    opts = parser.parse_args(argv)
    levers = parse_systems(parser, opts.levers, LEVERS)
    if opts.tiny:
        opts.steps, opts.warmup, opts.examples = 2, 1, 256
        opts.model = tiny_encoder() if opts.model == "minilm" else opts.model
    rows = []
    for task in opts.tasks.split(","):
        for lever in levers:
            row = measure(task, lever, opts.model, opts.examples, opts.steps, opts.warmup)
            print(f"{task} {lever}: {row['lever_speedup']:.2f}x bertbench's step "
                  f"({row['lever_examples_per_s']:.1f} vs {row['bertbench_examples_per_s']:.1f} train ex/s; "
                  f"warm-up {row['warmup_s']:.0f} s vs {row['bertbench_warmup_s']:.0f} s); bertbench's step: "
                  f"optimizer {row['bertbench_optimizer_share']:.0%}, batch building "
                  f"{row['bertbench_batch_share']:.0%}", flush=True)
            rows.append(row)
    write_results(rows, "glue_levers", opts.out)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
