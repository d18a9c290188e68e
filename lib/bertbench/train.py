"""The one training loop: Accelerate, AdamW + warmup/linear decay, clipping, per-epoch evaluation, early stopping,
the best checkpoint saved with ``save_pretrained`` (safetensors) and reloaded at the end.

Callers plug in what differs: the loss (default ``model(**batch).loss``) and the evaluation (a function of the model
returning metrics). Read top to bottom: seed -> optimiser/schedule -> epochs of (train, evaluate, keep best, maybe
stop) -> reload best. The hot loop does no host-device synchronisation except every ``log_every`` steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import send_to_device
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import dist
from .checkpoint import (
    STATE_FILE,
    LoopState,
    existing_folder,
    load_training_state,
    replace_folder,
    restore_rng,
    save_training_state,
)
from .encoding import CPU_PREDICT_TOKENS, SortedBatchSampler
from .models import first_token_last_layer, set_attention


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
    min_delta: float = 0.0  # an epoch counts as an improvement for patience only if it beats the best by more
    select: str = "best"  # "best": keep the epoch with the best selection metric; "last": keep the last epoch
    mixed_precision: str = "auto"  # "auto" (bf16 on a GPU or CPU that has it natively, else fp32), "no", "bf16", "fp16"
    log_every: int = 20
    tensorboard_dir: str | None = None
    checkpoint_every: int = 0  # also save the resume checkpoint every N optimizer steps (0: epoch ends and time)
    checkpoint_minutes: float = 10.0  # ... and every N minutes of training (0: never by time)
    memory_hint: str = ""  # the settings an out-of-memory message tells the user to lower


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
    # wall seconds of the earlier processes of a resumed run, up to their last checkpoint (0 when uninterrupted): add
    # them to this process's time to report the run's total (:func:`run_seconds`)
    earlier_seconds: float = 0.0


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
    # Without a GPU, accelerate treats a torchrun launch as several unrelated single processes unless told the
    # run is on CPU (``accelerate launch --cpu`` says so; plain torchrun does not): each would train alone.
    kwargs.setdefault("cpu", not torch.cuda.is_available())
    return Accelerator(mixed_precision=precision, **kwargs)


def make_accelerator(settings: TrainSettings, model=None):
    """The Accelerator for ``settings``; given the ``model`` it will train, DDP (in a distributed launch) is told
    when a step may leave some of its parameters without a gradient (:func:`leaves_parameters_unused`)."""
    kwargs = {}
    if model is not None and leaves_parameters_unused(model):
        from accelerate import DistributedDataParallelKwargs

        kwargs["kwargs_handlers"] = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    return new_accelerator(settings.mixed_precision, gradient_accumulation_steps=settings.grad_accum, **kwargs)


def leaves_parameters_unused(model) -> bool:
    """Whether a training step of ``model`` may leave parameters without a gradient, which DDP must be told of
    (``find_unused_parameters``; else the next step fails): bertbench's own heads (``heads.py``) read the encoder's
    hidden states, so the encoder's pooler gets none, and a multitask model trains one task's head per batch.
    transformers' task models use every parameter they have (RoBERTa's are built without the pooler)."""
    return type(model).__module__.startswith("bertbench.")


def device_description(device: torch.device, precision: str = "no", attention: str = "", packed: bool = False,
                       checkpointing: str = "off", first_token: bool = False) -> str:
    """The hardware a result came from, for the results' ``device`` column, with the autocast precision when one
    was used, the attention kernel the model ran, whether it trained on packed batches, whether its last layer
    computed the first position only (:func:`bertbench.models.first_token_last_layer`) and with activation
    checkpointing (``"cuda:NVIDIA H100 80GB HBM3, bf16, flash_attention_2 attention, packed batches"``,
    ``"cpu:x86_64 x2 threads, sdpa attention, last layer on the first token, selective activation
    checkpointing"``)."""
    if device.type == "cuda":
        name = f"cuda:{torch.cuda.get_device_name(device)}"
    else:
        name = f"cpu:{platform.machine()} x{torch.get_num_threads()} threads"
    if dist.world_size() > 1:
        name = f"{name} x{dist.world_size()} processes"
    if precision not in ("no", "", None):
        name = f"{name}, {precision}"
    if attention:
        name = f"{name}, {attention} attention"
    if packed:
        name = f"{name}, packed batches"
    if first_token:
        name = f"{name}, last layer on the first token"
    return f"{name}, {checkpointing} activation checkpointing" if checkpointing not in ("off", "", None) else name


# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's data sheets (V100: fp16, it has no bf16),
# matched on the CUDA device name in this order (``H100 PCIe`` before ``H100``): the denominator of model FLOPs
# utilisation. Any other device (every CPU) has none, and its rows no MFU.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                    "A10": 125.0, "RTX 4090": 165.0, "V100": 125.0}


def peak_tflops(device_name: str) -> float | None:
    """The data-sheet peak of the device called ``device_name`` (:data:`PEAK_BF16_TFLOPS`), or None."""
    return next((peak for name, peak in PEAK_BF16_TFLOPS.items() if name in device_name), None)


def device_peak_tflops(device: torch.device) -> float | None:
    """:func:`peak_tflops` of a torch device (None on CPU)."""
    return peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def encoder_train_flops_per_token(model, seq_len: float, first_token: bool = False) -> float:
    """Training FLOPs per token of the transformer encoder inside ``model``: 6 x its weights outside the embedding
    tables (forward + backward) plus attention's 12 x layers x hidden x sequence length (PaLM's appendix B count); a
    classification head's few weights are left out. ``first_token``: the last layer computed the first position
    alone (:func:`bertbench.models.first_token_last_layer`), so only its key and value weights (and no attention)
    count per token."""
    from .models import first_token_layer, transformers_models

    found = transformers_models(model)
    base = getattr(found[0], "base_model", found[0]) if found else model
    encoder = getattr(base, "encoder", base)
    config = base.config
    weights = sum(p.numel() for p in encoder.parameters() if p.ndim == 2)
    layers = config.num_hidden_layers
    last = first_token_layer(model) if first_token else None
    if last is not None:
        kept = (last.attention.self.key.weight, last.attention.self.value.weight)
        weights -= sum(p.numel() for p in last.parameters() if p.ndim == 2) - sum(p.numel() for p in kept)
        layers -= 1
    return 6.0 * weights + 12.0 * layers * config.hidden_size * seq_len


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


OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class OutOfMemory(RuntimeError):
    """The device ran out of memory; the message names the settings to lower."""


def _out_of_memory(desc: str, where: str, batch: dict, hint: str, resume_dir: Path | None) -> OutOfMemory:
    shape = tuple(batch["input_ids"].shape) if isinstance(batch.get("input_ids"), torch.Tensor) else "?"
    kept = f"; the last checkpoint ({resume_dir}) is kept" if resume_dir is not None else ""
    return OutOfMemory(f"{desc}: out of device memory at {where} (input_ids of shape {shape}). Lower "
                       f"{hint or 'the batch size or the sequence length'}{kept}")


def _set_epoch(loader, epoch: int) -> None:
    """Tell the batch sampler (and whatever it wraps) the epoch: a new shuffle per epoch, from (seed, epoch)."""
    seen, todo = set(), [getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if hasattr(item, "set_epoch"):
            item.set_epoch(epoch)
        todo += [getattr(item, "batch_sampler", None), getattr(item, "sampler", None)]


def shard_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This process's part of every global batch: contiguous slices, all examples used once (a batch smaller than
    the process count is repeated until every process has one example: DDP needs a backward on every process)."""
    if world == 1:
        return batches
    parts = []
    for batch in batches:
        batch = list(batch)
        while len(batch) < world:
            batch += batch
        parts.append([int(i) for i in np.array_split(np.asarray(batch), world)[rank]])
    return parts


def shard_weights(batches: list[list[int]], rank: int, world: int) -> list[float]:
    """For each global batch, the factor on this process's mean loss that makes DDP's average of the processes'
    gradients the gradient of the global batch's mean: its share of the batch times ``world`` (1.0 for an even
    split; a last batch of 11 on 2 processes: 6/11 x 2 and 5/11 x 2, not 1/2 each)."""
    parts = shard_batches(batches, rank, world)
    return [len(part) * world / max(len(batch), world) for part, batch in zip(parts, batches, strict=True)]


class _Checkpointing:
    """When the loop saves its resume checkpoint: every ``every`` optimizer steps, every ``minutes`` (the decision
    is rank 0's, so every process saves at the same step), and at every epoch end."""

    def __init__(self, folder: Path | None, every: int, minutes: float):
        self.folder, self.every, self.seconds = folder, every, 60.0 * minutes
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        if self.folder is None:
            return False
        if self.every and step % self.every == 0:
            return True
        if not self.seconds or step % 10:
            return False
        decision = [time.monotonic() - self.last >= self.seconds]
        if dist.world_size() > 1:
            import torch.distributed as tdist

            tdist.broadcast_object_list(decision, src=0)
        return bool(decision[0])

    def saved(self) -> None:
        self.last = time.monotonic()


def _last_layer_on_first_token(function):
    """Run ``function(model, ...)`` with ``model``'s last layer computing position 0 only where its head reads no
    other (:func:`bertbench.models.first_token_last_layer`, ``BB_LAST_LAYER``); not for a packed ``objective``,
    whose rows hold many examples."""
    @functools.wraps(function)
    def wrapper(model, *args, **kwargs):
        packed = kwargs.get("objective") is not None
        with contextlib.nullcontext() if packed else first_token_last_layer(model):
            return function(model, *args, **kwargs)
    return wrapper


@_last_layer_on_first_token
def fit(model, train_loader, evaluate: Callable[[torch.nn.Module], dict[str, float]] | None, select_metric: str,
        settings: TrainSettings, checkpoint_dir: str | Path, accelerator=None, *, higher_is_better: bool = True,
        loss_fn: Callable = _default_loss, save_extra: Callable[[Path], None] | None = None, desc: str = "train",
        resume_dir: str | Path | None = None, fingerprint: str = "", started: float | None = None,
        objective: torch.nn.Module | None = None):
    """Train ``model`` and return it with the best (or last) epoch's weights reloaded from disk.

    Args:
        model: a transformers ``PreTrainedModel`` (or anything with ``save_pretrained``/``from_pretrained``).
        train_loader: a DataLoader whose batch sampler has ``set_epoch`` (reshuffled each epoch). In a distributed
            launch each of its batches is a global batch, split between the processes.
        evaluate: metrics of the model on the selection split (None: keep the last epoch).
        select_metric: the key of ``evaluate``'s result that picks the best epoch.
        checkpoint_dir: where the best weights are saved (``save_pretrained``, safetensors).
        save_extra: called with ``checkpoint_dir`` after each save (e.g. to save the tokenizer beside it).
        resume_dir: where the resume checkpoint lives (None: none is kept). Saved at every epoch end and every
            ``settings.checkpoint_every`` steps / ``settings.checkpoint_minutes``; if one of ``fingerprint`` is
            there, training continues from it and ends as an uninterrupted run would (the caller removes it once
            the run's results are written: :func:`bertbench.checkpoint.remove_training_state`).
        objective: a module holding ``model`` whose forward is the loss of a batch, trained in its place (what
            Accelerate wraps, so DDP syncs through it): a loss that calls the model's parts one by one, as the
            packed path does (``packing.PackedObjective``). ``loss_fn`` is then not used.
        started: the caller's ``time.perf_counter()`` when its run began (default: now). Each resume checkpoint
            keeps the run's wall time since then plus that of earlier processes; a resumed fit returns it as
            ``FitResult.earlier_seconds``, so a resumed run reports its total time, not its last process's.

    Raises:
        FloatingPointError: the training loss became NaN or infinite (the step is named; no checkpoint is written
            after it, so the last good one is kept).
        OutOfMemory: the device ran out of memory (the message names ``settings.memory_hint``).

    Returns:
        (model, FitResult)
    """
    accelerator = accelerator or make_accelerator(settings, model)
    set_attention(model)  # BB_ATTENTION (auto: SDPA where the model has it)
    checkpoint_dir = Path(checkpoint_dir)
    resume_dir = Path(resume_dir) if resume_dir is not None else None
    state, trainer = LoopState(fingerprint), None
    if resume_dir is not None:
        loaded = load_training_state(resume_dir, fingerprint, model)
        if loaded is not None:
            state, trainer = loaded
            tqdm.write(f"{desc}: resuming from {resume_dir} at epoch {state.epoch + 1}, batch {state.batches_done} "
                       f"(step {state.step})" + (" (already finished)" if state.finished else ""))
    optimizer = build_optimizer(model, settings.lr, settings.weight_decay)
    n_batches_epoch = len(train_loader.batch_sampler)
    steps_per_epoch = math.ceil(n_batches_epoch / settings.grad_accum)
    total_steps = max(1, steps_per_epoch * settings.epochs)
    warmup = int(settings.warmup_ratio * total_steps)
    # linear warmup, then linear decay to 0 at the end of the budget
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / max(1, warmup) if step < warmup
        else max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    # The loader is not handed to Accelerate: its batches are split here (shard_batches), so a batch means the same
    # global batch on any number of processes, none is dropped and none is padded with repeats of other batches.
    inner = model  # the bare model (what is saved, evaluated and returned); ``model`` below is what trains
    model, optimizer = accelerator.prepare(objective if objective is not None else model, optimizer)
    if objective is not None:
        loss_fn = _objective_loss
    dataset = train_loader.dataset
    if trainer is not None:
        optimizer.load_state_dict(trainer["optimizer"])
        schedule.load_state_dict(trainer["schedule"])
        if accelerator.scaler is not None and trainer.get("scaler"):
            accelerator.scaler.load_state_dict(trainer["scaler"])
        if hasattr(dataset, "load_state_dict") and trainer.get("dataset"):
            dataset.load_state_dict(trainer["dataset"])
    writer = None
    if settings.tensorboard_dir and dist.is_main_process():
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(settings.tensorboard_dir)

    run_started = time.perf_counter() if started is None else started
    earlier_seconds = state.wall_seconds  # of the processes before this one (0 on a fresh start)

    def save_state() -> None:
        state.wall_seconds = earlier_seconds + time.perf_counter() - run_started
        save_training_state(resume_dir, inner, state, {
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else {},
            "dataset": dataset.state_dict() if hasattr(dataset, "state_dict") else {}})
        checkpointing.saved()

    sign = 1.0 if higher_is_better else -1.0
    fit_started = time.perf_counter()
    device, world, rank = accelerator.device, dist.world_size(), dist.rank()
    checkpointing = _Checkpointing(resume_dir, settings.checkpoint_every, settings.checkpoint_minutes)
    first_epoch = state.epoch
    for epoch in range(state.epoch, 0 if state.finished else settings.epochs):
        if state.stopped_early:
            break
        _set_epoch(train_loader, epoch)
        global_batches = list(train_loader.batch_sampler)
        batches = shard_batches(global_batches, rank, world)
        weights = shard_weights(global_batches, rank, world) if world > 1 else None
        skip = state.batches_done if epoch == first_epoch else 0
        restore = trainer is not None and epoch == first_epoch
        if restore and skip == 0:  # saved at an epoch end: before this epoch's loader drew its seed
            restore_rng(trainer["rng"])
        epoch_loader = DataLoader(dataset, batch_sampler=batches[skip:], collate_fn=train_loader.collate_fn,
                                  num_workers=train_loader.num_workers, pin_memory=train_loader.pin_memory)
        iterator = iter(epoch_loader)
        if restore and skip:  # saved mid-epoch: after this epoch's loader drew its seed
            restore_rng(trainer["rng"])
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.full((), state.loss_sum if skip else 0.0, device=device)
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        n_batches = skip
        bar = tqdm(iterator, total=len(batches), initial=skip, desc=f"{desc} epoch {epoch + 1}/{settings.epochs}",
                   leave=False, mininterval=2.0)
        for batch in bar:
            batch = send_to_device(batch, device, non_blocking=True)
            sync = (n_batches + 1) % settings.grad_accum == 0 or n_batches + 1 == len(batches)
            try:
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    loss = loss_fn(model, batch)
                    if weights is not None:  # the global batch's mean, uneven splits included (shard_weights)
                        loss = loss * weights[n_batches]
                    accelerator.backward(loss)
                if sync:
                    if settings.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad(set_to_none=True)
                    state.step += 1
            except OUT_OF_MEMORY:
                raise _out_of_memory(desc, f"epoch {epoch + 1}, batch {n_batches + 1}", batch, settings.memory_hint,
                                     resume_dir if checkpointing.folder else None) from None
            loss = loss.detach()
            loss_sum += loss
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), n_batches, first_bad)
            n_batches += 1
            state.examples_seen += batch.get("num_examples", batch["input_ids"].shape[0]) * world
            if n_batches % settings.log_every == 0:  # the only host-device sync in the loop
                _check_finite(first_bad, desc, epoch, state, resume_dir, checkpoint_dir)
                bar.set_postfix(loss=f"{float(loss_sum) / n_batches:.4f}", lr=f"{schedule.get_last_lr()[0]:.2e}")
                if writer is not None:  # per optimizer step: the running epoch loss and the learning rate
                    writer.add_scalar(f"{desc}/step/train_loss", float(loss_sum) / n_batches, state.step)
                    writer.add_scalar(f"{desc}/step/lr", schedule.get_last_lr()[0], state.step)
            if sync and checkpointing.due(state.step) and n_batches < len(batches):
                _check_finite(first_bad, desc, epoch, state, resume_dir, checkpoint_dir)
                seconds = time.perf_counter() - epoch_start
                state.batches_done, state.loss_sum = n_batches, float(loss_sum)
                state.train_seconds += seconds
                save_state()
                epoch_start = time.perf_counter()
        bar.close()
        _check_finite(first_bad, desc, epoch, state, resume_dir, checkpoint_dir)
        state.train_seconds += time.perf_counter() - epoch_start
        if world > 1:  # the mean over every process's batches, as one process would report it
            loss_sum = accelerator.reduce(loss_sum, reduction="mean")
        record = {"epoch": epoch, "train_loss": float(loss_sum) / max(1, n_batches), "lr": schedule.get_last_lr()[0]}
        if evaluate is not None:
            model.eval()
            record.update(evaluate(inner))
            model.train()
        state.history.append(record)
        tqdm.write(f"{desc} epoch {epoch + 1}/{settings.epochs}: "
                   + ", ".join(f"{key} {value:.4g}" for key, value in record.items() if key != "epoch"))
        if writer is not None:
            for key, value in record.items():
                if key != "epoch":
                    writer.add_scalar(f"{desc}/epoch/{key}", value, epoch + 1)
            # the step curve ends each epoch with its mean loss, also when an epoch is shorter than log_every
            writer.add_scalar(f"{desc}/step/train_loss", record["train_loss"], state.step)
            writer.add_scalar(f"{desc}/step/lr", record["lr"], state.step)
        value = record.get(select_metric, math.nan) if evaluate is not None else float(epoch)
        if settings.select == "last" or evaluate is None or state.best_epoch < 0:
            improved = True
        else:
            improved = math.isfinite(value) and sign * value > sign * state.best_value
        # the best epoch is kept on any improvement; patience is reset only by one larger than min_delta (as the
        # HF Trainer's EarlyStoppingCallback threshold): a loss creeping down by 1e-4 an epoch does not run forever
        significant = improved and (state.best_epoch < 0 or settings.select == "last" or evaluate is None
                                    or abs(value - state.best_value) > settings.min_delta)
        if improved:
            state.best_value, state.best_epoch = value, epoch
            state.bad_epochs = 0 if significant else state.bad_epochs + 1
            state.stopped_early = bool(not significant and settings.patience
                                       and state.bad_epochs >= settings.patience)
            accelerator.wait_for_everyone()
            replace_folder(checkpoint_dir, functools.partial(_save_best, inner,
                                                             save_extra=save_extra))
            accelerator.wait_for_everyone()
        else:
            state.bad_epochs += 1
            state.stopped_early = bool(settings.patience and state.bad_epochs >= settings.patience)
        state.epoch, state.batches_done, state.loss_sum = epoch + 1, 0, 0.0
        state.finished = state.stopped_early or epoch + 1 == settings.epochs
        if resume_dir is not None:
            save_state()
    if writer is not None:
        writer.close()

    unwrapped = inner
    reloaded = type(unwrapped).from_pretrained(checkpoint_dir, use_safetensors=True)
    unwrapped.load_state_dict(reloaded.state_dict())
    del reloaded
    accelerator.wait_for_everyone()  # every process has read the best weights before anyone may remove them
    return unwrapped, FitResult(state.history, state.best_epoch, state.best_value, checkpoint_dir,
                                state.train_seconds, state.examples_seen, state.stopped_early,
                                time.perf_counter() - fit_started, earlier_seconds)


def _objective_loss(objective, batch):
    return objective(batch)


def run_seconds(started: float, result: FitResult) -> float:
    """A run's wall time for its results' ``wall_s``: this process's since ``started`` (``time.perf_counter()``
    when the run began) plus the earlier processes' of a resumed run."""
    return round(time.perf_counter() - started + result.earlier_seconds, 2)


def _save_best(model, folder: Path, *, save_extra: Callable[[Path], None] | None) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    if save_extra is not None:
        save_extra(folder)


def _check_finite(first_bad: torch.Tensor, desc: str, epoch: int, state: LoopState, resume_dir: Path | None,
                  best_dir: Path) -> None:
    """Stop at a NaN/inf training loss, naming where it first happened and what is kept (a host-device sync)."""
    if dist.world_size() > 1:
        import torch.distributed as tdist

        first_bad = first_bad.clone()
        tdist.all_reduce(first_bad, op=tdist.ReduceOp.MAX)
    bad = int(first_bad)
    if bad < 0:
        return
    kept = []
    if resume_dir is not None and existing_folder(resume_dir, STATE_FILE) is not None:
        kept.append(f"the last checkpoint before it is {resume_dir}")
    if state.best_epoch >= 0:
        kept.append(f"the best weights so far (epoch {state.best_epoch + 1}) are in {best_dir}")
    raise FloatingPointError(
        f"{desc}: the training loss became NaN or infinite at epoch {epoch + 1}, batch {bad + 1} (after optimizer "
        f"step {state.step} at most); training stopped. " + ("; ".join(kept) + ". " if kept else "")
        + "Lower the learning rate, set BB_MIXED_PRECISION=no, or check the data.")


@_last_layer_on_first_token
@torch.no_grad()
def predict(model, dataset, collate, batch_size: int, accelerator=None, desc: str = "predict",
            memory_hint: str = "the evaluation batch size (BB_EVAL_BATCH_SIZE)") -> np.ndarray:
    """Model outputs (N, K) for every example of ``dataset``, in the dataset's order.

    Batches are sorted by length (least padding; on a CPU at most :data:`CPU_PREDICT_TOKENS` padded tokens); the
    order is restored before returning. In a distributed launch each process predicts every ``world``-th batch and
    the parts are gathered: every process returns all N outputs, each example counted once (no repeats padding a
    last batch)."""
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    world, rank = dist.world_size(), dist.rank()
    cap = CPU_PREDICT_TOKENS if device.type == "cpu" else None
    batches = list(SortedBatchSampler(dataset.lengths, batch_size, cap))[rank::world]
    outputs: list[torch.Tensor] = []
    order: list[int] = []
    for indices in tqdm(batches, desc=desc, leave=False, mininterval=2.0):
        batch = collate([dataset[i] for i in indices])
        batch.pop("labels", None)
        batch = {key: value.to(device) for key, value in batch.items()}
        try:
            with accelerator.autocast() if accelerator is not None else contextlib.nullcontext():
                logits = model(**batch).logits
        except OUT_OF_MEMORY:
            raise _out_of_memory(desc, f"a batch of {len(indices)} examples", batch, memory_hint, None) from None
        outputs.append(logits.float().cpu())
        order.extend(indices)
    if was_training:
        model.train()
    parts = [(order, torch.cat(outputs).numpy())] if outputs else []
    if world > 1:
        import torch.distributed as tdist

        gathered: list = [None] * world
        tdist.all_gather_object(gathered, parts)
        parts = [part for rank_parts in gathered for part in rank_parts]
    if not parts:
        return np.zeros((0, 1), dtype=np.float32)
    stacked = np.concatenate([values for _, values in parts])
    result = np.empty_like(stacked)
    result[np.concatenate([np.asarray(indices, dtype=np.int64) for indices, _ in parts])] = stacked
    return result
