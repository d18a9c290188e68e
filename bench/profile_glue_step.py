"""Where a GLUE training step spends its time: batch building / forward / backward / optimizer shares, and the torch
profiler's top operators, for fp32 and bf16 autocast (the two precisions ``mixed_precision`` chooses between on CPU).

One process, the packaged MiniLM, length-grouped batches of 32 from SST-2's training split (as notebook 03 draws
them), the optimizer bertbench builds. Usage: python bench/profile_glue_step.py [--task sst2] [--steps 20]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import bertbench as bb
from bertbench.data.glue import get_task, load_glue
from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode
from bertbench.train import build_optimizer

from _common import timed_train_step


def profile_precision(precision: str, task, tokenizer, dataset, batches: list[list[int]], top: int) -> None:
    """Time the phases of ``len(batches) - 2`` training steps (2 warm-up steps first), then profile 5 more."""
    collate = PadCollator(tokenizer)
    torch.manual_seed(0)
    model, _ = bb.build_classifier("minilm", tokenizer, task.label_names)
    model.train()
    optimizer = build_optimizer(model, 5e-5, 0.0)
    phases = dict.fromkeys(("batch", "forward", "backward", "optimizer"), 0.0)

    def step(indices, timed: bool) -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else None
        spent = timed_train_step(lambda: collate([dataset[i] for i in indices]), model, model, optimizer, autocast)
        if timed:
            for name, seconds in spent.items():
                phases[name] += seconds

    for indices in batches[:2]:  # warm-up
        step(indices, False)
    for indices in batches[2:]:
        step(indices, True)
    total = sum(phases.values())
    examples = sum(len(indices) for indices in batches[2:])
    print(f"\n== {task.name}, {precision}: {examples / total:.1f} train examples/s over {len(batches) - 2} steps; "
          + ", ".join(f"{name} {value / total:.0%}" for name, value in phases.items()))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for indices in batches[2:7]:
            step(indices, False)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=40))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    task = get_task(args.task)
    tokenizer = bb.load_tokenizer("minilm")
    dataset = encode(load_glue(task, "train").subsample(4000, seed=0), tokenizer, 128)
    batches = list(LengthGroupedBatchSampler(dataset.lengths, 32, seed=0))[:args.steps + 2]
    for precision in ("fp32", "bf16"):
        profile_precision(precision, task, tokenizer, dataset, batches, args.top)


if __name__ == "__main__":
    main()
