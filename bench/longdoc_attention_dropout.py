"""Training speed of long-document windows with and without attention dropout, side by side.

One process, the packaged MiniLM, training steps (encode_windows + document loss + backward + AdamW) on W windows of
T tokens; the two settings alternate step by step so that machine noise hits both. Prints tokens/s per setting and
the ratio. Usage: python bench/longdoc_attention_dropout.py [--windows 16] [--tokens 512] [--steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import bertbench as bb
from bertbench import window_pooling as A
from bertbench.experiments.long_documents import encode_windows
from bertbench.train import build_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    tokenizer = bb.load_tokenizer("minilm")
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (args.windows, args.tokens), generator=generator)
    n_docs = -(-args.windows // 4)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
             "doc_index": torch.arange(args.windows) // 4, "labels": torch.zeros(n_docs, dtype=torch.long)}
    settings = {"attention_dropout=0.0": 0.0, "attention_dropout=0.1": 0.1}
    models = {}
    for name, p in settings.items():
        model, _ = bb.build_classifier("minilm", tokenizer, ("a", "b"), attention_dropout=p)
        models[name] = (model.train(), build_optimizer(model, 1e-5, 0.01))
    speeds: dict[str, list[float]] = {name: [] for name in settings}
    for step in range(args.steps + 1):  # step 0 warms up
        for name, (model, optimizer) in models.items():
            started = time.perf_counter()
            logits = encode_windows(model, batch, args.windows)
            A.doc_loss(logits, batch["doc_index"], batch["labels"], "mean_prob").backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:
                speeds[name].append(args.windows * args.tokens / (time.perf_counter() - started))
    print(f"MiniLM training step, {args.windows} windows x {args.tokens} tokens, {args.steps} steps each, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in settings:
        print(f"  {name}: median {statistics.median(speeds[name]):.0f} tokens/s")
    fast, slow = (statistics.median(speeds[name]) for name in settings)
    print(f"  ratio (no attention dropout / attention dropout): {fast / slow:.2f}x")


if __name__ == "__main__":
    main()
