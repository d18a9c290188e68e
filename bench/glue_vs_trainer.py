"""GLUE fine-tuning, bertbench against the Hugging Face Trainer, side by side.

Three systems on the same model, data subset, epochs and hyperparameters (the Trainer's defaults: lr 5e-5, no weight
decay, no warmup, linear decay, clipping at 1.0, fused AdamW), each (system, seed) in its own fresh process:
- ``trainer_pad128``: the Trainer as ``run_glue.py`` runs it by default (every input padded to 128 at tokenisation,
  ``default_data_collator``, random batches);
- ``trainer_dynamic``: the Trainer with ``DataCollatorWithPadding`` and ``train_sampling_strategy="group_by_length"``
  (transformers 5's ``group_by_length``);
- ``trainer_dynamic_bf16``: the same with ``bf16=True`` (the Trainer's bf16 autocast, on CPU too), to show how much
  of bertbench's lead is its precision default;
- ``bertbench``: notebook 03's path (``fit_and_evaluate``) with its defaults (``mixed_precision="auto"``: bf16
  autocast on a GPU or a CPU with native bf16, see ``train.resolve_precision``).
The slowest system, ``trainer_pad128``, runs for the ``--pad128-seeds`` only (default seed 0).
Reported per run: train examples/s (epoch loops only), dev-prediction examples/s, peak resident memory, dev score
(the Trainer's against the labels ``predict`` returns in its predictions' order: see :func:`trainer_predictions`),
model FLOP/s and MFU against the device's peak (a CPU's fastest fp32 2048 x 2048 matrix product, measured before the
runs; a GPU's data-sheet bf16 peak), and the ceiling that peak puts on each system's examples/s (:func:`measure`).
Prints medians over seeds and bertbench's ratio to each Trainer (> 1: bertbench better). Writes
``bench/results/glue_vs_trainer.csv``.

    python bench/glue_vs_trainer.py                       # SST-2 and MRPC, 4,000 examples, 1 epoch, 3 seeds
    python bench/glue_vs_trainer.py --tasks sst2 --seeds 0 --train-examples 1000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import (
    device_peak_gflops,
    finish,
    interleaved,
    linear_layers_gflops,
    parse_systems,
    run_isolated,
    tiny_encoder,
)

SYSTEMS = ("trainer_pad128", "trainer_dynamic", "trainer_dynamic_bf16", "bertbench")


def glue_config(args: dict, task: str, seed: int):
    from bertbench.experiments.glue_finetune import GlueConfig

    return GlueConfig(
        preset="cpu", model=args["model"], tasks=(task,), seeds=(seed,), max_train_examples=args["train_examples"],
        max_eval_examples=args["eval_examples"], selection="last", max_len=args["max_len"],
        batch_size=args["batch_size"], eval_batch_size=args["eval_batch_size"], lr=args["lr"],
        weight_decay=args["weight_decay"], warmup_ratio=args["warmup_ratio"], epochs=args["epochs"],
        predict_test=False, keep_checkpoints=False)


def score(task, logits, labels) -> float:
    from bertbench import metrics as M

    return M.task_score(task, M.task_metrics(task, logits, labels))


def run_bertbench(args: dict, task_name: str, seed: int) -> dict:
    from transformers import set_seed

    from bertbench.data.glue import get_task
    from bertbench.encoding import PadCollator
    from bertbench.experiments.glue_finetune import encode_task, fit_and_evaluate, load_task_data
    from bertbench.models import build_classifier
    from bertbench.train import predict

    task = get_task(task_name)
    cfg = glue_config(args, task.name, seed)
    data = load_task_data(cfg, task)
    encoded = encode_task(cfg, data)
    set_seed(seed)
    model, _ = build_classifier(cfg.model, encoded.tokenizer, task.label_names, regression=task.is_regression,
                                max_len=cfg.max_len)
    collate = PadCollator(encoded.tokenizer, regression=task.is_regression)
    with tempfile.TemporaryDirectory() as tmp:
        model, outcome = fit_and_evaluate(cfg, task, model, encoded.train, None, encoded.evals, collate, data, seed,
                                          Path(tmp), encoded.tokenizer, desc=f"bertbench {task.name} s{seed}")
    split = task.eval_splits[0]
    started = time.perf_counter()
    logits = predict(model, encoded.evals[split], collate, cfg.eval_batch_size, outcome.accelerator)
    eval_s = time.perf_counter() - started
    lengths = encoded.train.lengths
    return {"train_s": outcome.result.train_seconds, "train_examples": len(data.train),
            "train_examples_seen": outcome.result.examples_seen, "eval_s": eval_s,
            "eval_examples": len(data.evals[split]), "dev_score": score(task, logits, data.evals[split].labels),
            "dev_scored_on": "dataset order (bertbench's predict restores it)",
            **flops_fields(model, lengths, lengths, outcome.first_token)}


def run_trainer(args: dict, task_name: str, seed: int, system: str) -> dict:
    import datasets
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    from bertbench.data.glue import get_task
    from bertbench.experiments.glue_finetune import load_task_data
    from bertbench.models import resolve_model

    task = get_task(task_name)
    cfg = glue_config(args, task.name, seed)
    data = load_task_data(cfg, task)  # the same examples bertbench trains and evaluates on
    path = resolve_model(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    padded = system == "trainer_pad128"

    def to_dataset(examples) -> datasets.Dataset:  # as run_glue.py's preprocess_function
        columns = {"a": examples.text_a, "label": list(examples.labels)}
        if examples.text_b is not None:
            columns["b"] = examples.text_b
        dataset = datasets.Dataset.from_dict(columns)
        return dataset.map(lambda batch: tokenizer(batch["a"], batch.get("b"), truncation=True,
                                                   max_length=cfg.max_len,
                                                   padding="max_length" if padded else False),
                           batched=True, remove_columns=[c for c in ("a", "b") if c in columns])

    train_set = to_dataset(data.train)
    split = task.eval_splits[0]
    eval_set = to_dataset(data.evals[split])
    set_seed(seed)
    labels = ({"num_labels": 1, "problem_type": "regression"} if task.is_regression
              else {"num_labels": task.num_labels, "problem_type": "single_label_classification"})
    model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True, **labels)
    bf16 = system == "trainer_dynamic_bf16"
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
            learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio,
            num_train_epochs=cfg.epochs, max_grad_norm=cfg.max_grad_norm, seed=seed, eval_strategy="no",
            save_strategy="no", report_to="none", disable_tqdm=True, bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            train_sampling_strategy="random" if padded else "group_by_length")
        timer = EpochTimer()
        trainer = Trainer(model=model, args=training_args, train_dataset=train_set, processing_class=tokenizer,
                          data_collator=default_data_collator if padded else DataCollatorWithPadding(tokenizer),
                          callbacks=[timer.callback(TrainerCallback)])
        trainer.train()
        started = time.perf_counter()
        logits, labels = trainer_predictions(trainer, eval_set)
        eval_s = time.perf_counter() - started
    real = [sum(mask) for mask in train_set["attention_mask"]]
    computed = [len(ids) for ids in train_set["input_ids"]]  # 128 each when padded at tokenisation
    return {"train_s": timer.seconds, "train_examples": len(data.train),
            "train_examples_seen": len(data.train) * cfg.epochs, "eval_s": eval_s,
            "eval_examples": len(data.evals[split]), "dev_score": score(task, logits, labels),
            "dev_scored_on": SCORED_ON, **flops_fields(model, real, computed, False)}


SCORED_ON = "labels returned with the predictions"


def flops_fields(model, real_lengths, computed_lengths, first_token: bool) -> dict:
    """The training set's mean tokens per example (padding excluded) and training FLOPs
    (``train.encoder_train_flops_per_token``): per real token for the whole encoder (``model_flops_per_token``, the
    one count every system's model FLOP/s and MFU use) and per example as this system computes it
    (``computed_flops_per_example``: bertbench's last layer on [CLS] alone does less; ``trainer_pad128`` computes
    128 positions; the padding added to length-grouped batches is not counted, which can only flatter the ceiling
    worked out from it in :func:`measure`)."""
    from bertbench.models import transformers_models
    from bertbench.train import encoder_train_flops_per_token

    mean = float(np.mean(real_lengths))
    computed = float(np.mean(computed_lengths))
    found = transformers_models(model)
    config = (found[0] if found else model).config
    return {"mean_train_tokens": mean, "model_flops_per_token": encoder_train_flops_per_token(model, mean),
            "computed_flops_per_example": computed * encoder_train_flops_per_token(model, computed, first_token),
            "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size}


def trainer_predictions(trainer, dataset):
    """The Trainer's dev logits and the labels in the same order.

    With ``group_by_length`` the transformers 5 Trainer also length-groups its *evaluation* batches
    (``Trainer._get_eval_sampler``), and ``predict`` returns the predictions in that order, not the dataset's. Scored
    against the dataset's labels they are a random permutation: this benchmark did that until 2026-12-06 and recorded
    the Trainer at 0.50-0.52 on SST-2 dev where it had learned (0.77 on 2,000 examples, 0.53 as mis-scored). The
    labels ``predict`` returns with the predictions are in the predictions' order.
    """
    output = trainer.predict(dataset)
    return output.predictions, output.label_ids


class EpochTimer:
    """Seconds spent inside the Trainer's epochs (from on_epoch_begin to on_epoch_end), as bertbench's train_s."""

    def __init__(self):
        self.seconds = 0.0
        self._start = 0.0

    def callback(self, base):
        timer = self

        class _Callback(base):
            def on_epoch_begin(self, args, state, control, **kwargs):
                timer._start = time.perf_counter()

            def on_epoch_end(self, args, state, control, **kwargs):
                timer.seconds += time.perf_counter() - timer._start

        return _Callback()


def measure(args: dict, task: str, seed: int, system: str, peak: float | None = None, peak_name: str = "") -> dict:
    """One run in a fresh process, with its rates; with a device ``peak`` (GFLOP/s, :func:`_common.device_peak_gflops`)
    also its MFU (model FLOP/s over the peak) and ``ceiling_examples_per_s``: the examples/s this system would train at
    if every FLOP it computes ran at that peak (padding, elementwise work, the optimizer and the data loader free), an
    upper bound on what any speed-up of the same computation can reach on this device."""
    if system == "bertbench":
        result = run_isolated(run_bertbench, args=args, task_name=task, seed=seed)
    else:
        result = run_isolated(run_trainer, args=args, task_name=task, seed=seed, system=system)
    result["train_examples_per_s"] = result["train_examples_seen"] / result["train_s"]
    result["eval_examples_per_s"] = result["eval_examples"] / result["eval_s"]
    result["train_gflops"] = (result["train_examples_per_s"] * result["mean_train_tokens"]
                              * result["model_flops_per_token"] / 1e9)
    if peak:
        result[peak_name] = peak
        result["mfu"] = result["train_gflops"] / peak
        result["ceiling_examples_per_s"] = peak * 1e9 / result["computed_flops_per_example"]
    return {"benchmark": "glue_vs_trainer", "task": task, "system": system, "seed": seed, **result}


def with_linear_layers(rows: list[dict], batch_size: int, peak: float | None, quick: bool = False) -> list[dict]:
    """The task's rows, each with ``linear_layers_gflops``: the model's linear layers (forward and backward) on a
    batch's mean real token count (``batch_size`` x ``mean_train_tokens``), measured once after the task's runs,
    and its share of ``peak`` (``linear_layers_share_of_peak``). ``quick`` (the smoke test): 2 timings of 2 passes."""
    if not rows:
        return rows
    first = rows[0]
    tokens = max(1, round(batch_size * float(first["mean_train_tokens"])))
    gflops = linear_layers_gflops(tokens, int(first["hidden_size"]), int(first["intermediate_size"]),
                                  repeats=2 if quick else 5, reps=2 if quick else 10)
    share = {"linear_layers_share_of_peak": gflops / peak} if peak else {}
    return [{**row, "linear_layers_tokens": tokens, "linear_layers_gflops": gflops, **share} for row in rows]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sst2,mrpc")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--pad128-seeds", default="0", help="seeds of trainer_pad128 (the slowest system)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--train-examples", type=int, default=4000)
    parser.add_argument("--eval-examples", type=int, default=0, help="cap on dev examples (0 = all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--warmup-ratio", type=float, default=0.0)
    parser.add_argument("--tiny", action="store_true",
                        help="smoke test: a random 2x64 BERT, 64 examples, 1 seed, max_len 32")
    parser.add_argument("--out", default=None, help="results CSV (default bench/results/glue_vs_trainer.csv)")
    opts = parser.parse_args(argv)
    if opts.tiny:
        opts.seeds, opts.train_examples, opts.eval_examples, opts.max_len = "0", 64, 32, 32
        opts.model = tiny_encoder() if opts.model == "minilm" else opts.model
    args = {"model": opts.model, "train_examples": opts.train_examples, "eval_examples": opts.eval_examples,
            "epochs": opts.epochs, "batch_size": opts.batch_size, "eval_batch_size": opts.eval_batch_size,
            "max_len": opts.max_len, "lr": opts.lr, "weight_decay": opts.weight_decay,
            "warmup_ratio": opts.warmup_ratio}
    systems = parse_systems(parser, opts.systems, SYSTEMS)
    extra = {k: v for k, v in args.items() if k != "train_examples"}
    peak, peak_name = device_peak_gflops(256 if opts.tiny else 2048)
    print("MFU against " + (f"{peak:.1f} GFLOP/s ({peak_name})" if peak else
                            "nothing: this GPU is not in train.PEAK_BF16_TFLOPS"))
    rows = []
    for task in opts.tasks.split(","):
        done = interleaved(
            opts.seeds, systems,
            lambda seed, system, task=task: {**measure(args, task, seed, system, peak, peak_name), **extra},
            lambda row: (f"{row['train_examples_per_s']:.1f} train ex/s, {row['eval_examples_per_s']:.1f} eval ex/s, "
                         f"{row['peak_rss_mb']:.0f} MB, dev {row['dev_score']:.4f}"),
            label=task,
            skip=lambda seed, system: system == "trainer_pad128" and str(seed) not in opts.pad128_seeds.split(","))
        rows += with_linear_layers(done, opts.batch_size, peak, quick=opts.tiny)
    metrics = {"train_examples_per_s": True, "eval_examples_per_s": True, "peak_rss_mb": False}
    if peak:
        metrics["mfu"] = True
    return finish(rows, "glue_vs_trainer", opts.out, ["task"], metrics,
                  f"seeds {opts.seeds} (trainer_pad128: {opts.pad128_seeds})")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
