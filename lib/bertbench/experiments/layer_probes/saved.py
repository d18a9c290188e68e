"""Saved probes: one folder per probe, loaded back to predict and score on any split without training.

A probe folder holds ``model.safetensors`` (the weights and the standardisation buffers) and ``config.json``: what the
probe is (``probe_type`` ``linear`` or ``span``, sizes, dropout) and what it reads — the layer, the encoder, the
tokenizer, the pooling or the QA windows, and for a span probe the null-score threshold chosen on its training
questions — so :func:`evaluate_probe` can rebuild its inputs (from the state cache when they were computed before)
and score it as the study did. The layout follows ``save_pretrained``: a folder with its config beside the weights.
Probes written before this layout (one ``<name>.safetensors`` file, no config) still load, without what they read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import nn

from ... import metrics as M
from ...checkpoint import replace_folder
from ...paths import data_dir, repo_root, runs_dir
from .probes import LinearProbe, SpanProbe, context_mask, control_labels, probe_logits, span_logits

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_probe(probe: nn.Module, folder: str | Path, config: dict) -> Path:
    """Write ``probe`` to ``folder`` (swapped in whole): its weights and ``config`` plus its own sizes."""
    from safetensors.torch import save_file

    full = {**_shape_config(probe), **config}
    tensors = {key: value.detach().cpu().contiguous() for key, value in probe.state_dict().items()}

    def write(temporary: Path) -> None:
        save_file(tensors, str(temporary / WEIGHTS_FILE))
        (temporary / CONFIG_FILE).write_text(json.dumps(full, indent=1, sort_keys=True))

    replace_folder(folder, write)
    return Path(folder)


def _shape_config(probe: nn.Module) -> dict:
    if isinstance(probe, SpanProbe):
        return {"probe_type": "span", "hidden_size": probe.start.in_features, "dropout": probe.dropout.p}
    if isinstance(probe, LinearProbe):
        return {"probe_type": "linear", "hidden_size": probe.linear.in_features,
                "num_labels": probe.linear.out_features, "dropout": probe.dropout.p}
    raise TypeError(f"{type(probe).__name__} is not a probe")


def load_probe(folder: str | Path) -> nn.Module:
    """The probe saved in ``folder`` (or an older single ``.safetensors`` file), in eval mode, with its config as
    ``probe.config`` (a dict).

    Raises:
        FileNotFoundError: no probe there.
    """
    from safetensors.torch import load_file

    path = Path(folder)
    if path.is_file() and path.suffix == ".safetensors":  # the layout before probe folders: sizes from the weights
        tensors = load_file(str(path))
        if "start.weight" in tensors:
            config = {"probe_type": "span", "hidden_size": tensors["start.weight"].shape[1], "dropout": 0.0}
        else:
            config = {"probe_type": "linear", "hidden_size": tensors["linear.weight"].shape[1],
                      "num_labels": tensors["linear.weight"].shape[0], "dropout": 0.0}
    elif (path / CONFIG_FILE).is_file():
        config = json.loads((path / CONFIG_FILE).read_text())
        tensors = load_file(str(path / WEIGHTS_FILE))
    else:
        raise FileNotFoundError(f"{path}: no probe (expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE})")
    if config["probe_type"] == "span":
        probe = SpanProbe(config["hidden_size"], config["dropout"])
    else:
        probe = LinearProbe(config["hidden_size"], config["num_labels"], config["dropout"])
    probe.load_state_dict(tensors)
    probe.eval()
    probe.config = config
    return probe


def local_path(name: str) -> str:
    """The inverse of :func:`bertbench.paths.portable_path` on this machine: ``<runs>/...`` and ``<data>/...`` under
    today's folders, a repo-relative path that exists under the checkout; anything else (a hub or packaged name) as
    given."""
    for label, base in (("<runs>", runs_dir()), ("<data>", data_dir())):
        if name.startswith(f"{label}/"):
            return str(base / name[len(label) + 1:])
    if name and (repo_root() / name).exists():
        return str(repo_root() / name)
    return name


def _needs(config: dict, *keys: str) -> None:
    missing = [key for key in keys if key not in config]
    if missing:
        raise ValueError(f"this probe's config lacks {missing}: it was saved before probes recorded what they read, "
                         "so its inputs cannot be rebuilt; run the study again to save it with them")


def predict_probe(probe: nn.Module | str | Path, *, split: str | None = None, squad_file: str | Path | None = None,
                  max_examples: int = 0, batch_size: int = 64, device=None):
    """Predictions of a saved probe on a split (nothing is trained): the states come from the cache when the study
    computed them for these inputs, else from the encoder.

    Args:
        probe: a loaded probe or its folder.
        split: a sentence probe's GLUE split (default: the task's first evaluation split).
        squad_file: a span probe's SQuAD-format file (default: the dev file it was scored on).
        max_examples: the first ``max_examples`` examples only (0 = all).

    Returns:
        A sentence probe: (logits (N, K), labels it is scored against). A span probe: ({question id: predicted text,
        "" = no answer, with the saved null threshold}, the examples).
    """
    from ...models import load_tokenizer

    probe = probe if isinstance(probe, nn.Module) else load_probe(probe)
    config = probe.config
    _needs(config, "encoder", "tokenizer", "layer")
    encoder, tokenizer = local_path(config["encoder"]), load_tokenizer(local_path(config["tokenizer"]))
    if config["probe_type"] == "span":
        return _predict_span(probe, config, encoder, tokenizer, squad_file, max_examples, batch_size, device)
    return _predict_sentence(probe, config, encoder, tokenizer, split, max_examples, batch_size)


def _predict_span(probe, config, encoder, tokenizer, squad_file, max_examples, batch_size, device):
    from ...data import squad
    from .token_store import token_states

    _needs(config, "squad_dev", "max_len", "doc_stride", "max_answer_len", "null_threshold")
    examples = squad.read_squad(local_path(str(squad_file or config["squad_dev"])))
    examples = examples[:max_examples] if max_examples else examples
    features = squad.build_features(examples, tokenizer, config["max_len"], config["doc_stride"])
    states = token_states(encoder, tokenizer, features, batch_size=batch_size, desc="token states")
    starts, ends = span_logits(probe, states.layer(config["layer"]), context_mask(features, states.width),
                               device=device)
    decoded = squad.decode_spans(features, starts, ends, examples, max_answer_len=config["max_answer_len"])
    return squad.apply_null_threshold(decoded, config["null_threshold"]), examples


def _predict_sentence(probe, config, encoder, tokenizer, split, max_examples, batch_size):
    from ...data.glue import get_task, load_glue
    from .states import sentence_states

    _needs(config, "task", "pooling", "poolings", "max_len")
    task = get_task(config["task"])
    examples = load_glue(task, split or task.eval_splits[0])
    if max_examples:
        examples = examples.select(range(min(len(examples), max_examples)))
    states = sentence_states(encoder, tokenizer, examples, max_len=config["max_len"], poolings=config["poolings"],
                             batch_size=batch_size)
    labels = list(examples.labels)
    if config.get("control"):
        labels = control_labels(examples, config["control"], task.num_labels,
                                np.asarray(config["control_distribution"]), config["seed"])
    return probe_logits(probe, states[config["pooling"]][config["layer"]]), labels


def evaluate_probe(probe: nn.Module | str | Path, **inputs) -> dict[str, float]:
    """Scores of a saved probe on a split, without training: a sentence probe's task metrics (accuracy only for a
    control probe), a span probe's official SQuAD 2.0 exact match / F1 (HasAns/NoAns included). ``inputs`` as
    :func:`predict_probe`."""
    from ...data import squad
    from ...data.glue import get_task

    probe = probe if isinstance(probe, nn.Module) else load_probe(probe)
    predictions, gold = predict_probe(probe, **inputs)
    if probe.config["probe_type"] == "span":
        return squad.squad_scores(gold, predictions)
    values = M.task_metrics(get_task(probe.config["task"]), predictions, gold)
    return {"accuracy": values["accuracy"]} if probe.config.get("control") else values

