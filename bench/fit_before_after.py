"""Has a change to the training loop made it slower? ``train.fit`` as it is now against ``train.py`` at an earlier
git revision, side by side in one process: same data, same model, alternating, a fresh model every time.

Prints each run's training examples/s (``FitResult.train_seconds``: the epoch loops only) and final training loss,
then the median ratio now / before. Usage:
    python bench/fit_before_after.py --against db59326 [--examples 1500] [--repeats 3] [--precision auto]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import bertbench as bb
from bertbench import train as current
from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode

ROOT = Path(__file__).resolve().parents[1]


def load_train_at(revision: str, folder: Path):
    """``lib/bertbench/train.py`` at ``revision``, imported as a module of the installed package (its relative
    imports resolve against today's package; a revision whose loop needs other helpers will fail to import)."""
    source = subprocess.run(["git", "show", f"{revision}:lib/bertbench/train.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = folder / "train_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("bertbench.train_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the git revision whose train.py is 'before'")
    parser.add_argument("--examples", type=int, default=1500, help="SST-2 training examples (1 epoch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    tokenizer = bb.load_tokenizer("minilm")
    dataset = encode(bb.load_glue("sst2", "train").subsample(args.examples, seed=0), tokenizer, 128)
    rates: dict[str, list[float]] = {"before": [], "now": []}
    with tempfile.TemporaryDirectory() as folder:
        before = load_train_at(args.against, Path(folder))
        for repeat in range(args.repeats):
            for name, module in (("before", before), ("now", current)):
                torch.manual_seed(0)
                model, _ = bb.build_classifier("minilm", tokenizer, ("negative", "positive"))
                loader = DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset.lengths, 32, seed=0),
                                    collate_fn=PadCollator(tokenizer))
                settings = module.TrainSettings(epochs=1, lr=5e-5, mixed_precision=args.precision)
                _, result = module.fit(model, loader, None, "score", settings, Path(folder) / name)
                rates[name].append(len(dataset) / result.train_seconds)
                print(f"{name} repeat {repeat}: {rates[name][-1]:.1f} train ex/s, "
                      f"final train loss {result.history[-1]['train_loss']:.4f}", flush=True)
    now, old = statistics.median(rates["now"]), statistics.median(rates["before"])
    print(f"median train ex/s: before ({args.against}) {old:.1f}, now {now:.1f}; now / before {now / old:.3f}")


if __name__ == "__main__":
    main()
