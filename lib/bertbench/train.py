"""The one training loop: Accelerate, AdamW + warmup/linear decay, clipping, per-epoch evaluation, early stopping,
the best checkpoint saved with ``save_pretrained`` (safetensors) and reloaded at the end.

Callers plug in what differs: the loss (default ``model(**batch).loss``) and the evaluation (a function of the model
returning metrics). Read top to bottom: seed -> optimiser/schedule -> epochs of (train, evaluate, keep best, maybe
stop) -> reload best. The hot loop does no host-device synchronisation except every ``log_every`` steps.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .encoding import SortedBatchSampler


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """What the loop needs from a notebook's config."""

    epochs: int = 3
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    patience: int = 0  # epochs without improvement before stopping; 0 = never stop early
    select: str = "best"  # "best": keep the epoch with the best selection metric; "last": keep the last epoch
    mixed_precision: str = "auto"  # "auto" (bf16 on a GPU or CPU that has it natively, else fp32), "no", "bf16", "fp16"
    log_every: int = 20
    tensorboard_dir: str | None = None


@dataclasses.dataclass
class FitResult:
    history: list[dict]  # one dict per epoch: epoch, train_loss, lr, and the evaluation metrics
    best_epoch: int
    best_value: float
    checkpoint: Path
    train_seconds: float
    examples_seen: int
    stopped_early: bool
    total_seconds: float = 0.0


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 matrix products natively (x86 AVX512-BF16 or AMX-BF16, read from
    ``/proc/cpuinfo``), where oneDNN runs them faster than fp32; False where it cannot tell."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def resolve_precision(mixed_precision: str) -> str:
    """``"auto"``: bf16 autocast on a CUDA GPU that has it, and on a CPU with native bf16 instructions (measured on
    a 2-core AVX512-BF16 CPU: MiniLM fine-tunes 1.45x (SST-2) and 1.49x (MRPC) faster, ``bench/glue_vs_trainer.py``);
    otherwise full fp32 (``"no"``). Weights, optimizer state and the loss stay fp32 either way."""
    if mixed_precision != "auto":
        return mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def new_accelerator(mixed_precision: str, **kwargs):
    """An ``Accelerator`` with ``mixed_precision`` resolved (:func:`resolve_precision`).

    accelerate keeps one state per process and refuses a second Accelerator with another precision ("cannot be
    changed, restart your runtime"): a notebook kernel that runs an fp32 config after a bf16 one would need a
    restart. Only then is that state (never the process group) reset, so a distributed launch is unaffected.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    precision = resolve_precision(mixed_precision)
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", precision) != precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=precision, **kwargs)


def make_accelerator(settings: TrainSettings):
    return new_accelerator(settings.mixed_precision, gradient_accumulation_steps=settings.grad_accum)


def device_description(device: torch.device, precision: str = "no") -> str:
    """The hardware a result came from, for the results' ``device`` column, with the autocast precision when one
    was used (``"cpu:x86_64 x2 threads, bf16"``)."""
    if device.type == "cuda":
        name = f"cuda:{torch.cuda.get_device_name(device)}"
    else:
        name = f"cpu:{platform.machine()} x{torch.get_num_threads()} threads"
    return name if precision in ("no", "", None) else f"{name}, {precision}"


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW without decay on biases and LayerNorm weights; the fused kernel (CPU and CUDA) when torch has it."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def _default_loss(model, batch):
    return model(**batch).loss


def fit(model, train_loader, evaluate: Callable[[torch.nn.Module], dict[str, float]] | None, select_metric: str,
        settings: TrainSettings, checkpoint_dir: str | Path, accelerator=None, *, higher_is_better: bool = True,
        loss_fn: Callable = _default_loss, save_extra: Callable[[Path], None] | None = None, desc: str = "train"):
    """Train ``model`` and return it with the best (or last) epoch's weights reloaded from disk.

    Args:
        model: a transformers ``PreTrainedModel`` (or anything with ``save_pretrained``/``from_pretrained``).
        train_loader: a DataLoader whose batch sampler has ``set_epoch`` (reshuffled each epoch).
        evaluate: metrics of the model on the selection split (None: keep the last epoch).
        select_metric: the key of ``evaluate``'s result that picks the best epoch.
        checkpoint_dir: where the best weights are saved (``save_pretrained``, safetensors).
        save_extra: called with ``checkpoint_dir`` after each save (e.g. to save the tokenizer beside it).

    Returns:
        (model, FitResult)
    """
    accelerator = accelerator or make_accelerator(settings)
    checkpoint_dir = Path(checkpoint_dir)
    optimizer = build_optimizer(model, settings.lr, settings.weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / settings.grad_accum)
    total_steps = max(1, steps_per_epoch * settings.epochs)
    warmup = int(settings.warmup_ratio * total_steps)
    # linear warmup, then linear decay to 0 at the end of the budget
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / max(1, warmup) if step < warmup
        else max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    writer = None
    if settings.tensorboard_dir:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(settings.tensorboard_dir)

    history: list[dict] = []
    best_value, best_epoch, bad_epochs, examples_seen, step = -math.inf, -1, 0, 0, 0
    sign = 1.0 if higher_is_better else -1.0
    stopped_early = False
    started = time.perf_counter()
    train_seconds = 0.0
    for epoch in range(settings.epochs):
        sampler = getattr(train_loader, "batch_sampler", None)
        for candidate in (sampler, getattr(sampler, "batch_sampler", None)):
            if hasattr(candidate, "set_epoch"):
                candidate.set_epoch(epoch)
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=accelerator.device)
        n_batches = 0
        bar = tqdm(train_loader, desc=f"{desc} epoch {epoch + 1}/{settings.epochs}", leave=False, mininterval=2.0)
        for batch in bar:
            with accelerator.accumulate(model):
                loss = loss_fn(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    if settings.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
            loss_sum += loss.detach()
            n_batches += 1
            examples_seen += batch["input_ids"].shape[0]
            if n_batches % settings.log_every == 0:  # the only sync in the loop
                bar.set_postfix(loss=f"{float(loss_sum) / n_batches:.4f}", lr=f"{schedule.get_last_lr()[0]:.2e}")
        bar.close()
        train_seconds += time.perf_counter() - epoch_start
        record = {"epoch": epoch, "train_loss": float(loss_sum) / max(1, n_batches), "lr": schedule.get_last_lr()[0]}
        if not math.isfinite(record["train_loss"]):
            raise FloatingPointError(f"{desc}: training loss is {record['train_loss']} in epoch {epoch + 1} "
                                     f"(step {step}); lower lr ({settings.lr}) or check the data")
        if evaluate is not None:
            model.eval()
            record.update(evaluate(accelerator.unwrap_model(model)))
            model.train()
        history.append(record)
        tqdm.write(f"{desc} epoch {epoch + 1}/{settings.epochs}: "
                   + ", ".join(f"{key} {value:.4g}" for key, value in record.items() if key != "epoch"))
        if writer is not None:
            for key, value in record.items():
                if key != "epoch":
                    writer.add_scalar(f"{desc}/{key}", value, epoch + 1)
        value = record.get(select_metric, math.nan) if evaluate is not None else float(epoch)
        if settings.select == "last" or evaluate is None or best_epoch < 0:
            improved = True
        else:
            improved = math.isfinite(value) and sign * value > sign * best_value
        if improved:
            best_value, best_epoch, bad_epochs = value, epoch, 0
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                accelerator.unwrap_model(model).save_pretrained(checkpoint_dir, safe_serialization=True)
                if save_extra is not None:
                    save_extra(checkpoint_dir)
        else:
            bad_epochs += 1
            if settings.patience and bad_epochs >= settings.patience:
                stopped_early = True
                break
    if writer is not None:
        writer.close()

    unwrapped = accelerator.unwrap_model(model)
    reloaded = type(unwrapped).from_pretrained(checkpoint_dir, use_safetensors=True)
    unwrapped.load_state_dict(reloaded.state_dict())
    del reloaded
    return unwrapped, FitResult(history, best_epoch, best_value, checkpoint_dir, train_seconds, examples_seen,
                                stopped_early, time.perf_counter() - started)


@torch.no_grad()
def predict(model, dataset, collate, batch_size: int, accelerator=None, desc: str = "predict") -> np.ndarray:
    """Model outputs (N, K) for every example of ``dataset``, in the dataset's order.

    Batches are sorted by length (least padding); the order is restored before returning.
    """
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sampler = SortedBatchSampler(dataset.lengths, batch_size)
    outputs: list[torch.Tensor] = []
    order: list[int] = []
    for indices in tqdm(sampler, desc=desc, leave=False, mininterval=2.0):
        batch = collate([dataset[i] for i in indices])
        batch.pop("labels", None)
        batch = {key: value.to(device) for key, value in batch.items()}
        if accelerator is not None:
            with accelerator.autocast():
                logits = model(**batch).logits
        else:
            logits = model(**batch).logits
        outputs.append(logits.float().cpu())
        order.extend(indices)
    if was_training:
        model.train()
    stacked = torch.cat(outputs).numpy() if outputs else np.zeros((0, 1), dtype=np.float32)
    result = np.empty_like(stacked)
    result[np.asarray(order, dtype=np.int64)] = stacked
    return result
