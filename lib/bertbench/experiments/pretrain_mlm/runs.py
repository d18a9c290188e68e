"""Notebook 02's config and run: masked-language-model pretraining of a BERT-style encoder from scratch, on a step
or time budget (the masked-LM pieces are in ``mlm.py``).

- The encoder is a standard transformers model (``BertForMaskedLM``, or ``RobertaPreLayerNormForMaskedLM`` for the
  pre-LayerNorm RoBERTa style) built from a config sized like the small BERTs of Turc et al. (2019) up to BERT-base,
  so the result loads with ``AutoModelForSequenceClassification`` and notebook 03. Special ids come from the
  tokenizer: on notebook 01's ``bpe-roberta`` (``<s>``=0, ``<pad>``=1, ``</s>``=2) ``roberta-preln`` is RoBERTa-style
  throughout, positions counted from pad + 1 and blocks packed as ``<s> block </s>``.
- Data: the corpus is tokenised once into a flat token stream on disk (documents separated by SEP, cached), cut into
  blocks of ``max_len - 2`` tokens and packed as ``[CLS] block [SEP]`` — no padding anywhere. The last
  ``heldout_blocks`` blocks are held out.
- Dynamic masking (BERT): each batch is masked afresh; ``mask_prob`` of the non-special positions are selected, of
  those ``mask_replace`` become MASK, ``random_replace`` a random non-special token, the rest stay. The loss is
  computed only at the selected positions (cramming's sparse prediction: the vocabulary-wide output layer never runs
  on the 85% of positions that have no label).
- Budget in optimizer steps or in training wall-clock minutes (cramming), whichever ends first; the learning rate
  follows the budget's progress (linear warmup, linear decay to zero at the end).
- Checkpoints resume exactly: model, optimizer, the schedule's position, the RNG states (dropout and masking) and the
  position in the corpus; the result rows written so far are carried too.
- Evaluation: held-out MLM loss and accuracy (fixed masks, so values are comparable across steps), and
  pseudo-perplexity (Salazar et al. 2020: every token masked in turn) on WikiText-2 validation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ... import dist
from ...checkpoint import existing_folder, replace_folder
from ...config import BaseConfig, check_choice, check_range, check_training_fields
from ...data.corpus import open_corpus
from ...dist import is_main_process
from ...models import check_safe_weights, configure_threads, load_tokenizer, set_attention
from ...paths import runs_dir
from ...results import check_writable, make_rows, write_results
from ...train import PEAK_BF16_TFLOPS, build_optimizer, device_description, device_peak_tflops, new_accelerator
from ..train_tokenizer import KINDS, TokenizerConfig, ensure_tokenizer
from .mlm import (
    ARCHS,
    SIZES,
    MaskedLMObjective,
    Masker,
    build_mlm_model,
    evaluate_mlm,
    pack,
    pseudo_perplexity,
    token_stream,
    train_flops_per_token,
)

NOTEBOOK = "02_pretrain_mlm"
# dense bf16 tensor-core peak in TFLOP/s from NVIDIA's data sheets, for model FLOPs utilisation
PEAK_TFLOPS = PEAK_BF16_TFLOPS  # the one table (train.py), kept under its old name


@dataclasses.dataclass(frozen=True)
class PretrainConfig(BaseConfig):
    """Notebook 02: MLM pretraining from scratch. Every field is ``BB_<FIELD>``."""

    preset: str = "cpu"
    name: str = ""  # run folder runs/pretrain/<name> and the model's label; default mlm-<arch>-<size>-<preset>[-<kind>]
    tokenizer: str = "wordpiece"  # "wordpiece"/"bpe"/"bpe-roberta" (notebook 01's, same preset), a folder, "minilm"
    corpus: str = "wikipedia"
    max_docs: int = 0  # first N documents of the corpus (0 = all)
    heldout_blocks: int = 200  # last blocks of the corpus, never trained on
    eval_corpus: str = "wikitext2-valid"
    eval_blocks: int = 0  # blocks of the evaluation corpus for the held-out loss (0 = all)
    pppl_blocks: int = 8  # blocks scored by pseudo-perplexity (one forward pass per token)
    arch: str = "bert"  # "bert" (post-LayerNorm) or "roberta-preln"
    size: str = "mini"  # nano, tiny, mini, small, medium, base
    max_len: int = 128
    mask_prob: float = 0.15  # cramming uses 0.25
    mask_replace: float = 0.8  # share of the selected positions replaced by MASK
    random_replace: float = 0.1  # share replaced by a random token; the rest stay unchanged
    batch_size: int = 64  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06  # of the budget
    max_grad_norm: float = 0.5
    max_steps: int = 0  # optimizer-step budget (0 = none)
    max_minutes: float = 35.0  # training wall-clock budget (0 = none); the first budget reached ends the run
    eval_points: int = 10  # evaluations spread evenly over the budget, plus one before training
    checkpoint_every: int = 0  # also checkpoint every N steps (0 = at evaluations only)
    resume: bool = True  # continue from runs/pretrain/<name>/checkpoint if it exists (0: start fresh)
    seed: int = 0
    dropout: float = 0.1
    mixed_precision: str = "auto"  # bf16 on a GPU or CPU that has it natively (train.resolve_precision); "no": fp32
    num_threads: int = 0
    tensorboard: bool = False  # TensorBoard scalars at every evaluation point: train loss, lr, held-out metrics

    RUNTIME = ("num_threads", "resume", "tensorboard")  # how to run, not what is computed: not in the run id

    PRESETS = {
        "tiny": dict(max_docs=200, heldout_blocks=4, eval_blocks=4, pppl_blocks=1, size="nano", max_len=64,
                     batch_size=8, max_steps=8, max_minutes=0.0, eval_points=2, lr=1e-3),
        "cpu": dict(arch="roberta-preln", batch_size=32, eval_blocks=400),
        "gpu": dict(arch="roberta-preln", size="medium", batch_size=128, grad_accum=4, lr=1e-3, max_minutes=60.0,
                    eval_points=12, pppl_blocks=32),  # an hour on one GPU, 512 sequences per optimizer step
        "full": dict(arch="roberta-preln", size="base", batch_size=128, grad_accum=8, lr=6e-4,
                     max_minutes=24 * 60.0, eval_points=48, checkpoint_every=1000, pppl_blocks=32),
    }

    def validate(self) -> None:
        super().validate()
        check_choice("arch", self.arch, ARCHS)
        check_choice("size", self.size, tuple(SIZES))
        check_choice("mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))
        check_training_fields(self)
        check_range("mask_prob", self.mask_prob, 0, 1, low_open=True)
        check_range("mask_replace", self.mask_replace, 0, 1)
        check_range("random_replace", self.random_replace, 0, 1 - self.mask_replace)
        check_range("warmup_fraction", self.warmup_fraction, 0, 1)
        check_range("max_steps", self.max_steps, 0)
        check_range("max_minutes", self.max_minutes, 0)
        if self.max_steps == 0 and self.max_minutes == 0:
            raise ValueError("max_steps and max_minutes are both 0: set a budget in steps or minutes")
        for name in ("max_docs", "heldout_blocks", "eval_blocks", "pppl_blocks", "checkpoint_every"):
            check_range(name, getattr(self, name), 0)
        check_range("eval_points", self.eval_points, 1)
        check_range("dropout", self.dropout, 0, 1)

    @property
    def label(self) -> str:
        """``name``, else ``mlm-<arch>-<size>-<preset>``, ending in the tokenizer when it is one of notebook 01's kinds
        other than the default: such a run never takes the default run's folder (whose checkpoint would be refused, or
        whose model replaced) nor its name in notebook 03's tables. A tokenizer folder needs ``BB_NAME`` for that."""
        if self.name:
            return self.name
        kind = f"-{self.tokenizer}" if self.tokenizer in KINDS and self.tokenizer != "wordpiece" else ""
        return f"mlm-{self.arch}-{self.size}-{self.preset}{kind}"

    def run_id(self) -> str:
        blob = self.identity()
        return f"{self.label}-{hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:10]}"


# ---------------------------------------------------------------- schedule and checkpoints


@dataclasses.dataclass
class TrainState:
    """Everything besides weights, optimizer and RNG that a resumed run needs; saved as JSON."""

    run_id: str
    step: int = 0
    epoch: int = 0
    position: int = 0  # next block of this epoch's permutation
    train_seconds: float = 0.0  # training time only (evaluation and checkpoints excluded)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    tokens_seen: int = 0
    evals_done: int = 0
    entries: list = dataclasses.field(default_factory=list)  # (split, step, metric, value) rows so far
    # the segment since the last evaluation, up to the checkpoint (its train loss and speed span a resume)
    segment_loss: float = 0.0
    segment_steps: int = 0
    segment_tokens: int = 0
    segment_seconds: float = 0.0


def progress(cfg: PretrainConfig, step: int, train_seconds: float) -> float:
    """How much of the budget is spent, in [0, 1+): the larger of the step and the time fraction."""
    by_steps = step / cfg.max_steps if cfg.max_steps else 0.0
    by_time = train_seconds / (60.0 * cfg.max_minutes) if cfg.max_minutes else 0.0
    return max(by_steps, by_time)


def lr_at(cfg: PretrainConfig, fraction: float) -> float:
    """Linear warmup over ``warmup_fraction`` of the budget, then linear decay to zero at its end."""
    if cfg.warmup_fraction > 0 and fraction < cfg.warmup_fraction:
        return cfg.lr * max(fraction, 1e-3) / cfg.warmup_fraction
    return cfg.lr * max(0.0, 1.0 - fraction) / max(1e-9, 1.0 - cfg.warmup_fraction)


def save_checkpoint(folder: Path, model, tokenizer, optimizer, state: TrainState,
                    mask_generator: torch.Generator) -> None:
    """Write the checkpoint to a temporary folder, then swap it in: a crash never leaves a half checkpoint.

    The tokenizer is saved with it: a resumed run reads its own ids even if notebook 01 was run again meanwhile
    (the WordPiece trainer of ``tokenizers`` numbers the alphabet in hash order, so a retrained vocabulary can hold
    the same tokens under other ids).
    """
    def write(temporary: Path) -> None:
        model.save_pretrained(temporary, safe_serialization=True)
        tokenizer.save_pretrained(temporary)
        torch.save({"optimizer": optimizer.state_dict(), "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "rng_mask": mask_generator.get_state()}, temporary / "trainer.pt")
        (temporary / "trainer_state.json").write_text(json.dumps(dataclasses.asdict(state)))

    if is_main_process():  # in a distributed launch: the main process writes, the others wait for it
        replace_folder(folder, write)
    dist.barrier()


def check_checkpoint_run(folder: Path, run_id: str) -> None:
    """Refuse a checkpoint of another configuration (before any work is done)."""
    saved = json.loads((folder / "trainer_state.json").read_text())["run_id"]
    if saved != run_id:
        raise ValueError(f"{folder} belongs to run {saved}, not {run_id} (the configuration changed): "
                         "set BB_NAME to another name, or BB_RESUME=0 to start this one afresh")


def load_checkpoint(folder: Path, model) -> tuple[TrainState, dict]:
    """Weights into ``model`` and the saved state (the caller has checked the run with check_checkpoint_run)."""
    state = TrainState(**json.loads((folder / "trainer_state.json").read_text()))
    check_safe_weights(folder)
    saved = type(model).from_pretrained(folder, use_safetensors=True)
    model.load_state_dict(saved.state_dict())
    trainer = torch.load(folder / "trainer.pt", weights_only=True)
    return state, trainer


# ---------------------------------------------------------------- the run


def resolve_tokenizer(cfg: PretrainConfig):
    """A kind of notebook 01 (``wordpiece``, ``bpe``, ``bpe-roberta``): its tokenizer of the same preset (trained now
    if missing); else a folder or model name. The model takes every special id from it (``build_mlm_model``)."""
    if cfg.tokenizer in KINDS:
        return load_tokenizer(str(ensure_tokenizer(TokenizerConfig.from_env(environ={}, preset=cfg.preset),
                                                   cfg.tokenizer)))
    return load_tokenizer(cfg.tokenizer)


@dataclasses.dataclass
class PretrainResult:
    model_dir: Path | None  # runs/pretrain/<name>/model (None when interrupted)
    history: pd.DataFrame  # one row per evaluation: step, train_loss, heldout_loss, ...
    state: TrainState


def _history(entries: list) -> pd.DataFrame:
    frame = pd.DataFrame(entries, columns=["split", "step", "metric", "value"])
    if frame.empty:
        return frame
    frame["name"] = frame["split"] + "_" + frame["metric"]
    return frame.pivot_table(index="step", columns="name", values="value", aggfunc="last").reset_index()


def pretrain(cfg: PretrainConfig, results_path: str | Path,
             on_step: Callable[[int], None] | None = None) -> PretrainResult:
    """Pretrain ``cfg``'s encoder; write rows at every evaluation; save the final model with its tokenizer.

    Args:
        on_step: called with the step number after every optimizer step (tests use it to interrupt a run).

    Returns:
        PretrainResult with the final model folder and the evaluation history.
    """
    from transformers import set_seed

    check_writable(results_path)
    configure_threads(cfg.num_threads)
    # made first: in a distributed launch it joins the process group the steps below wait on
    accelerator = new_accelerator(cfg.mixed_precision)
    device, world, rank = accelerator.device, dist.world_size(), dist.rank()
    run_id = cfg.run_id()
    run_dir = runs_dir() / "pretrain" / cfg.label
    checkpoint = run_dir / "checkpoint"
    if not cfg.resume and run_dir.exists() and is_main_process():
        print(f"BB_RESUME=0: removing {run_dir}")
        shutil.rmtree(run_dir)
    accelerator.wait_for_everyone()
    set_seed(cfg.seed)

    # the .old copy when a crash came in the middle of swapping in a new checkpoint
    source = existing_folder(checkpoint, "trainer_state.json") if cfg.resume else None
    resuming = source is not None
    if resuming:
        check_checkpoint_run(source, run_id)
    with dist.main_process_first():  # one process trains a missing tokenizer / writes the token cache
        tokenizer = load_tokenizer(str(source)) if resuming else resolve_tokenizer(cfg)
    masker = Masker.from_tokenizer(tokenizer, mask_prob=cfg.mask_prob, mask_replace=cfg.mask_replace,
                                   random_replace=cfg.random_replace)
    content_len = cfg.max_len - 2
    cache = runs_dir() / "cache" / "tokens"
    with dist.main_process_first():
        stream = token_stream(open_corpus(cfg.corpus, cfg.max_docs), tokenizer, cache, desc="tokenise corpus")
        eval_stream = token_stream(open_corpus(cfg.eval_corpus), tokenizer, cache, desc="tokenise eval corpus")
    n_blocks = len(stream) // content_len
    heldout = min(cfg.heldout_blocks, n_blocks // 10)
    n_train = n_blocks - heldout - (1 if heldout else 0)  # one block gap: no document spans the boundary
    if n_train < cfg.batch_size:
        raise ValueError(f"corpus {cfg.corpus!r} gives {n_train} training blocks of {content_len} tokens, fewer than "
                         f"batch_size {cfg.batch_size}")
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    n_eval = len(eval_stream) // content_len
    eval_blocks = pack(eval_stream, range(min(n_eval, cfg.eval_blocks or n_eval)), content_len, cls_id, sep_id)
    fixed = torch.Generator().manual_seed(1234)  # evaluation masks never change
    split = lambda blocks: [masker(part, fixed) for part in blocks.split(cfg.batch_size)]  # noqa: E731
    eval_sets = {cfg.eval_corpus.replace("-", "_"): split(eval_blocks)}
    if heldout:
        eval_sets["corpus_heldout"] = split(pack(stream, range(n_blocks - heldout, n_blocks), content_len, cls_id,
                                                 sep_id))
    pppl_blocks = eval_blocks[:cfg.pppl_blocks]

    model = build_mlm_model(cfg.arch, cfg.size, tokenizer, cfg.max_len, cfg.dropout)
    model.config.bertbench_label = cfg.label
    attention = set_attention(model)  # BB_ATTENTION (auto: SDPA)
    mask_generator = torch.Generator().manual_seed(cfg.seed)
    state, trainer = TrainState(run_id), None
    if resuming:
        state, trainer = load_checkpoint(source, model)
        print(f"resuming {run_id} from step {state.step} ({state.train_seconds / 60:.1f} training minutes done)")
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    # what Accelerate wraps (DDP in a distributed launch) is the encoder with its loss as forward: DDP syncs
    # gradients only through the forward of the module it wraps. ``model`` stays the bare encoder (same parameters)
    trainee, optimizer = accelerator.prepare(MaskedLMObjective(model), optimizer)
    if trainer is not None:
        optimizer.load_state_dict(trainer["optimizer"])
        torch.set_rng_state(trainer["rng_cpu"])
        if trainer["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(trainer["rng_cuda"])
        mask_generator.set_state(trainer["rng_mask"])

    flops_per_token = train_flops_per_token(model, cfg.max_len, cfg.mask_prob)
    peak = device_peak_tflops(device)
    tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.max_len
    common = {"run_id": run_id, "notebook": NOTEBOOK, "preset": cfg.preset, "model": cfg.label, "task": "mlm",
              "seed": cfg.seed, "init": "random", "head_init": "mlm", "selection": "last_step",
              "max_len": cfg.max_len, "train_examples": n_train,
              "device": device_description(device, accelerator.mixed_precision, attention),
              "config": cfg.to_json()}
    print(f"{run_id}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, {n_train} training blocks "
          f"of {cfg.max_len} tokens ({n_train * cfg.max_len / 1e6:.1f} M tokens), {heldout} held out; "
          f"{flops_per_token / 1e6:.1f} MFLOP per training token; device {common['device']}")

    writer = None
    if cfg.tensorboard and is_main_process():
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))

    def evaluate_and_save(segment_tokens: int, segment_seconds: float, loss_sum: float, loss_steps: int) -> None:
        unwrapped = model
        step = state.step
        entries = []
        if loss_steps:
            rate = segment_tokens / max(segment_seconds, 1e-9)
            entries += [("train", step, "loss", loss_sum / loss_steps), ("train", step, "tokens_per_s", rate),
                        ("train", step, "tflops", rate * flops_per_token / 1e12)]
            if peak:
                entries.append(("train", step, "mfu", rate * flops_per_token / (peak * 1e12)))
        entries += [("train", step, "lr", lr_at(cfg, progress(cfg, step, state.train_seconds))),
                    ("train", step, "tokens_seen", state.tokens_seen), ("train", step, "train_s", state.train_seconds),
                    ("train", step, "cpu_s", state.cpu_seconds)]
        for name, batches in eval_sets.items():
            values = evaluate_mlm(unwrapped, batches, device, accelerator.autocast)
            entries += [(name, step, key, value) for key, value in values.items()]
        if len(pppl_blocks):
            entries.append((cfg.eval_corpus.replace("-", "_"), step, "pppl",
                            pseudo_perplexity(unwrapped, pppl_blocks, masker, device, accelerator.autocast)))
        state.entries += entries
        if writer is not None:
            for split, at, metric, value in entries:
                writer.add_scalar(f"{cfg.label}/{split}/{metric}", value, at)
            writer.flush()
        shown = {f"{s}_{m}": v for s, _, m, v in entries if m in ("loss", "pppl", "tokens_per_s", "mfu")}
        tqdm.write(f"step {step}: " + ", ".join(f"{key} {value:.4g}" for key, value in shown.items()))
        write_results(make_rows({**common, "wall_s": round(state.wall_seconds, 2)}, state.entries), results_path)
        save_checkpoint(checkpoint, unwrapped, tokenizer, optimizer, state, mask_generator)

    if state.evals_done == 0:
        state.evals_done = 1
        evaluate_and_save(0, 0.0, 0.0, 0)
    segment_start, cpu_start = time.perf_counter(), time.process_time()
    segment_tokens, loss_steps = state.segment_tokens, state.segment_steps
    loss_sum = torch.full((), state.segment_loss, device=device)
    bar = tqdm(desc=f"pretrain {cfg.label}", unit=" steps", mininterval=2.0,
               total=cfg.max_steps or None, initial=state.step)
    order = None
    # every process takes the main one's clock: the budget ends and the learning rate moves for all alike. Read once
    # per step (after it; an evaluation in between adds nothing to the training time), so one broadcast per step
    elapsed = dist.agreed(state.train_seconds + time.perf_counter() - segment_start)
    while True:
        fraction = progress(cfg, state.step, elapsed)
        if fraction >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, fraction)
        for _ in range(cfg.grad_accum):
            if order is None or state.position + cfg.batch_size > n_train:
                if order is not None:
                    state.epoch, state.position = state.epoch + 1, 0
                # a fresh permutation of the training blocks per epoch, from (seed, epoch) only
                order = torch.randperm(n_train, generator=torch.Generator().manual_seed(
                    cfg.seed * 1_000_003 + state.epoch)).numpy()
            indices = order[state.position:state.position + cfg.batch_size]
            state.position += cfg.batch_size
            # every process masks the whole global batch (the mask generator stays in step) and trains on its rows
            batch = masker(pack(stream, indices, content_len, cls_id, sep_id), mask_generator)
            scale = 1.0 / cfg.grad_accum
            if world > 1:
                masked = int((batch["labels"] != -100).sum())
                batch = {key: value[rank::world] for key, value in batch.items()}
                # DDP averages the processes' gradients: weighting each process's mean by its share of the masked
                # tokens makes that average the mean over the global batch, as one process computes it
                scale *= world * int((batch["labels"] != -100).sum()) / max(1, masked)
            batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
            with accelerator.autocast():
                loss = trainee(batch) * scale
            accelerator.backward(loss)
            loss_sum += loss.detach()
        if cfg.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.tokens_seen += tokens_per_step
        segment_tokens += tokens_per_step
        loss_steps += 1
        bar.update(1)
        if on_step is not None:
            on_step(state.step)
        elapsed = dist.agreed(state.train_seconds + time.perf_counter() - segment_start)
        due_eval = progress(cfg, state.step, elapsed) >= state.evals_done / cfg.eval_points
        due_checkpoint = cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0
        if due_eval or due_checkpoint:
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - segment_start
            state.train_seconds += seconds
            state.wall_seconds += seconds
            state.cpu_seconds += time.process_time() - cpu_start
            if due_eval:
                state.evals_done += 1
            if world > 1:  # the mean over the processes: the global batch's loss, and the same number on each
                loss_sum = accelerator.reduce(loss_sum, reduction="mean")
            eval_start = time.perf_counter()
            if due_eval:
                segment_seconds, state.segment_seconds = state.segment_seconds + seconds, 0.0
                state.segment_loss, state.segment_steps, state.segment_tokens = 0.0, 0, 0
                evaluate_and_save(segment_tokens, segment_seconds, float(loss_sum), loss_steps)
                segment_tokens, loss_sum, loss_steps = 0, torch.zeros((), device=device), 0
            else:
                state.segment_loss, state.segment_steps = float(loss_sum), loss_steps
                state.segment_tokens = segment_tokens
                state.segment_seconds += seconds
                save_checkpoint(checkpoint, model, tokenizer, optimizer, state,
                                mask_generator)
            state.wall_seconds += time.perf_counter() - eval_start
            segment_start, cpu_start = time.perf_counter(), time.process_time()
    bar.close()
    if loss_steps:  # the budget ended between evaluation points
        if world > 1:
            loss_sum = accelerator.reduce(loss_sum, reduction="mean")
        seconds = time.perf_counter() - segment_start
        state.train_seconds += seconds
        state.wall_seconds += seconds
        state.cpu_seconds += time.process_time() - cpu_start
        segment_seconds, state.segment_seconds = state.segment_seconds + seconds, 0.0
        state.segment_loss, state.segment_steps, state.segment_tokens = 0.0, 0, 0
        evaluate_and_save(segment_tokens, segment_seconds, float(loss_sum), loss_steps)

    if writer is not None:
        writer.close()
    model_dir = run_dir / "model"
    unwrapped = model
    if is_main_process():
        unwrapped.save_pretrained(model_dir, safe_serialization=True)
        tokenizer.save_pretrained(model_dir)
    accelerator.wait_for_everyone()
    print(f"saved {model_dir} after {state.step} steps, {state.tokens_seen / 1e6:.1f} M tokens, "
          f"{state.train_seconds / 60:.1f} training minutes")
    return PretrainResult(model_dir, _history(state.entries), state)
