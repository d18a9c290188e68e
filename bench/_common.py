"""What every benchmark under bench/ shares: isolated child processes, the machine description, the results CSV and
the printed ratio table.

Each measurement runs in a fresh child process (spawned, one task per process) so that its peak resident memory is its
own (``ru_maxrss`` of that process) and no state (thread pools, allocator caches, compiled kernels) leaks from one side
to the other. The parent interleaves the sides (seed by seed) so that machine noise hits both.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def run_isolated(fn: Callable[..., dict], **kwargs) -> dict:
    """``fn(**kwargs)`` in a fresh spawned process; its result dict plus ``peak_rss_mb`` (that process's peak resident
    memory) and ``peak_gpu_mb`` (CUDA peak allocated, 0 on CPU)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        return pool.submit(_measured, fn, kwargs).result()


def tiny_encoder() -> str:
    """A random 2-layer, 64-wide BERT with the packaged MiniLM tokenizer, saved to a temporary folder (removed at exit)
    that both sides of a benchmark load like any checkpoint: the ``--tiny`` smoke tests then take seconds a side."""
    import atexit
    import shutil
    import tempfile

    from transformers import BertModel

    from bertbench.models import load_tokenizer, random_bert_config

    folder = tempfile.mkdtemp(prefix="bench-tiny-encoder-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    tokenizer = load_tokenizer("minilm")
    BertModel(random_bert_config("random-bert-2x64", tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _measured(fn: Callable[..., dict], kwargs: dict) -> dict:
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = fn(**kwargs)
    from bertbench.memory import process_peak_bytes

    # the process's peak resident memory (ru_maxrss), counting what came before any reset by bertbench's PeakMemory
    result["peak_rss_mb"] = round(process_peak_bytes() / 2**20, 1)
    result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else 0.0
    return result


def machine() -> dict[str, str]:
    """The hardware and software a benchmark ran on (columns of every results row)."""
    import accelerate
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    from bertbench.train import cpu_has_native_bf16

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=BENCH_DIR, check=False).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "lib", "bench/*.py"], capture_output=True,
                                 text=True, cwd=BENCH_DIR.parent, check=False).stdout.strip()
        commit += "+uncommitted" if commit and changed else ""
    except OSError:
        commit = ""
    # whether mixed_precision="auto" means bf16 autocast on this CPU (train.cpu_has_native_bf16)
    return {"device": f"cuda:{gpu}" if gpu else "cpu", "cpu": cpu, "cpu_bf16": str(cpu_has_native_bf16()),
            "cpu_count": str(os.cpu_count()),
            "torch_threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "accelerate": accelerate.__version__, "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def command_line() -> str:
    return "python " + " ".join(shlex.quote(arg) for arg in [os.path.relpath(sys.argv[0])] + sys.argv[1:])


def write_results(rows: list[dict], name: str, out: str | None = None) -> Path:
    """``rows`` with the machine and the command added, as ``bench/results/<name>.csv`` (or ``out``)."""
    path = Path(out) if out else RESULTS_DIR / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    context = {**machine(), "command": command_line()}
    frame = pd.DataFrame([{**row, **context} for row in rows])
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    print(f"wrote {path}")
    return path


def parse_systems(parser, text: str, known: tuple[str, ...]) -> list[str]:
    """``--systems a,b`` as a list, every name checked against ``known`` (argparse error otherwise)."""
    systems = [name for name in text.split(",") if name]
    unknown = sorted(set(systems) - set(known))
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; choose from {known}")
    return systems


def interleaved(seeds: str, systems: list[str], measure: Callable[[int, str], dict], describe: Callable[[dict], str],
                label: str = "", skip: Callable[[int, str], bool] = lambda seed, system: False) -> list[dict]:
    """``measure(seed, system)`` for every seed of ``--seeds a,b`` and every system, the systems alternating seed by
    seed (machine noise then hits every system alike); each row is printed as ``[label ]seed S SYSTEM: describe``."""
    rows = []
    for seed in (int(s) for s in seeds.split(",")):
        for system in systems:
            if skip(seed, system):
                continue
            row = measure(seed, system)
            print(f"{label + ' ' if label else ''}seed {seed} {system}: {describe(row)}", flush=True)
            rows.append(row)
    return rows


def finish(rows: list[dict], name: str, out: str | None, keys: list[str], metrics: dict[str, bool],
           over: str) -> pd.DataFrame:
    """Write the results CSV, then print the medians and bertbench's ratios (when bertbench ran); returns the rows.

    Args:
        keys: the columns that tell comparisons apart (task, dataset); empty when there is one.
        over: what the medians are over, for the printed header ("seeds 0,1,2").
    """
    frame = pd.DataFrame(rows)
    write_results(rows, name, out)
    if "bertbench" in set(frame["system"]):
        table = ratio_table(frame.assign(benchmark=name), keys or ["benchmark"], "system", "bertbench", metrics)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(f"\nmedians over {over}; *_x = bertbench's advantage (> 1: bertbench better)")
            print(table.to_string(index=False))
    return frame


def ratio_table(frame: pd.DataFrame, keys: list[str], system_col: str, ours: str,
                metrics: dict[str, bool]) -> pd.DataFrame:
    """Medians per (keys, system) and, for each metric, ``ours``' ratio to every other system.

    Args:
        metrics: metric column -> True when higher is better (ratio ours/theirs), False when lower is better
            (ratio theirs/ours), so a ratio > 1 always means bertbench is better.
    """
    columns = list(dict.fromkeys(list(metrics) + [c for c in ("dev_score", "f1", "accuracy") if c in frame]))
    medians = frame.groupby(keys + [system_col], sort=False)[columns].median().reset_index()
    out = []
    for _, group in medians.groupby(keys, sort=False):
        mine = group[group[system_col] == ours]
        for _, row in group.iterrows():
            record = row.to_dict()
            for metric, higher in metrics.items():
                if len(mine) and row[metric] and mine.iloc[0][metric]:
                    a, b = float(mine.iloc[0][metric]), float(row[metric])
                    record[f"{metric}_x"] = round(a / b if higher else b / a, 2)
            out.append(record)
    return pd.DataFrame(out)


def timed_train_step(make_batch: Callable[[], dict], forward: Callable, model, optimizer,
                     precision=None) -> dict[str, float]:
    """One fine-tuning step as ``train.fit`` takes it (batch, forward with the loss, backward, clipping at 1.0, the
    optimizer step) and the seconds of each phase: ``batch``, ``forward``, ``backward``, ``optimizer``.

    Args:
        forward: what is called on the batch (``model`` itself, or a compiled version of it).
        precision: a context manager for the forward (an autocast), or None.
    """
    import contextlib

    import torch

    marks = [time.perf_counter()]
    batch = make_batch()
    marks.append(time.perf_counter())
    with precision if precision is not None else contextlib.nullcontext():
        loss = forward(**batch).loss
    marks.append(time.perf_counter())
    loss.backward()
    marks.append(time.perf_counter())
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    marks.append(time.perf_counter())
    return {phase: stop - start for phase, start, stop in
            zip(("batch", "forward", "backward", "optimizer"), marks[:-1], marks[1:], strict=True)}


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The fastest fp32 ``n x n`` matrix product a fresh process runs on the CPU with torch's default threads, in
    GFLOP/s (best of ``repeats`` timings of 5 products each): the denominator of a CPU's model FLOPs utilisation,
    measured rather than read from a data sheet."""
    return run_isolated(_matmul_peak, n=n, repeats=repeats)["gflops"]


def _matmul_peak(n: int, repeats: int) -> dict:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - started))
    return {"gflops": best / 1e9}


def device_peak_gflops(n: int = 2048) -> tuple[float | None, str]:
    """The denominator of every system's MFU and where it comes from: a GPU's data-sheet bf16 peak
    (``train.PEAK_BF16_TFLOPS``; None for a GPU not in it), or this CPU's fastest fp32 ``n x n`` matrix product,
    measured (smoke tests pass a small ``n``)."""
    import torch

    from bertbench.train import peak_tflops

    if torch.cuda.is_available():
        peak = peak_tflops(torch.cuda.get_device_name(0))
        return (peak * 1e3 if peak else None), "gpu_datasheet_bf16_gflops"
    return matmul_peak_gflops(n), "cpu_matmul_gflops"


def linear_layers_gflops(tokens: int, hidden: int, intermediate: int, repeats: int = 5, reps: int = 10) -> float:
    """FLOP/s of one encoder layer's linear layers (query, key, value, attention output, feed-forward in and out),
    forward and backward under autograd, on ``tokens`` rows (a training batch's tokens), in fp32, best of ``repeats``
    timings of ``reps`` passes, in a fresh process: how near the peak a training step's matrix products get at that
    size, before any elementwise work, attention, optimizer or data loading."""
    return run_isolated(_linear_layers, tokens=tokens, hidden=hidden, intermediate=intermediate, repeats=repeats,
                        reps=reps)["gflops"]


def _linear_layers(tokens: int, hidden: int, intermediate: int, repeats: int, reps: int) -> dict:
    import torch
    import torch.nn.functional as F

    shapes = [(hidden, hidden)] * 4 + [(hidden, intermediate), (intermediate, hidden)]  # (in, out)
    inputs = [torch.randn(tokens, fan_in, requires_grad=True) for fan_in, _ in shapes]
    weights = [torch.randn(fan_out, fan_in, requires_grad=True) for fan_in, fan_out in shapes]
    grads = [torch.randn(tokens, fan_out) for _, fan_out in shapes]
    flops = sum(3 * 2 * tokens * fan_in * fan_out for fan_in, fan_out in shapes)  # forward, input and weight grads

    def passes(count: int) -> None:
        for _ in range(count):
            for x, w, g in zip(inputs, weights, grads, strict=True):
                F.linear(x, w).backward(g)

    passes(3)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        passes(reps)
        best = max(best, reps * flops / (time.perf_counter() - started))
    return {"gflops": best / 1e9}
