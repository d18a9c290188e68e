"""Data of your own named by a spec: a classic BERT ``data_dir`` as ``tsv:<folder>`` (``tsv-regression:<folder>`` when
the label is a number to predict), and the paths of such data as results record them.

A BERT ``data_dir`` holds ``train.tsv`` and ``dev.tsv``, and may hold ``test.tsv``, each in the classic layout
``ID, ALPHA, LABEL, TEXT_A[, TEXT_B]`` with or without a header line (:func:`~bertbench.data.text_label.read_bert_tsv`).
Every split is read with the training file's label names (:func:`~bertbench.data.text_label.read_splits`), so a dev
label the training file lacks is a DataError naming file:line instead of a silently renumbered class.

As a task of notebook 03 (:func:`user_glue_task`, reached through :func:`bertbench.data.glue.get_task`):

- name: the folder's name (``tsv:/data/reviews`` -> ``reviews``). A folder named like a GLUE task (``RTE``) is
  refused, since its rows would count as that task's in the GLUE mean, and so are two folders of one name in one
  process (rename or link one);
- classification (``tsv:``): metrics accuracy, F1 (of class 1 with two labels, macro-averaged with more) and MCC;
  the task score is the mean of accuracy and F1 (GLUE's rule for MRPC and QQP). Labels that are numbers stay classes;
- regression (``tsv-regression:``): every label must be a finite number; metrics Pearson, Spearman and MSE, the
  score the mean of Pearson and Spearman (STS-B's rule);
- splits: ``dev`` is the reported split; ``test.tsv``, if present, is predicted (its label field is not read) into
  ``<name>.tsv`` beside the run's checkpoint.

Paths: results record ``tsv:`` + :func:`bertbench.paths.portable_path` (``<data>/...``, ``<runs>/...`` or relative to
the checkout), so run ids and recorded configs are the same on every machine; :func:`local_path` reads them back.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path

from ..paths import data_dir, portable_path, repo_root, runs_dir
from .examples import DataError, DataWarning, Examples
from .text_label import read_bert_tsv, read_splits

TSV_PREFIXES = {"tsv:": False, "tsv-regression:": True}  # prefix -> regression
PACKAGED_NAMES = ("hyperpartisan", "bbc")  # document sets named by a word, never a path
CLASSIFICATION_METRICS = ("accuracy", "f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman", "mse")
_BY_NAME: dict = {}  # task name -> the user task of that name made in this process (get_task finds it by name)


def local_path(text: str) -> Path:
    """A path as typed or as results record it, on this machine: ``<data>/...`` and ``<runs>/...`` under today's
    folders; a relative path from the working directory, else from the checkout (where a recorded one starts);
    ``~`` expanded."""
    for label, base in (("<data>", data_dir), ("<runs>", runs_dir)):
        if text == label or text.startswith(f"{label}/"):
            return base() / text[len(label) + 1:]
    path = Path(text).expanduser()
    if not path.is_absolute() and not path.exists() and (repo_root() / path).exists():
        return (repo_root() / path).resolve()
    return path.resolve()


def is_tsv_spec(spec: str) -> bool:
    return spec.startswith(tuple(TSV_PREFIXES))


def parse_tsv_spec(spec: str) -> tuple[Path, bool]:
    """``tsv:<folder>`` -> (folder, False); ``tsv-regression:<folder>`` -> (folder, True)."""
    for prefix, regression in TSV_PREFIXES.items():
        if spec.startswith(prefix) and spec[len(prefix):].strip():
            return local_path(spec[len(prefix):].strip()), regression
    raise DataError(f"{spec!r}: expected tsv:<folder> or tsv-regression:<folder> (a BERT data_dir holding train.tsv "
                    f"and dev.tsv)")


def portable_source(spec: str) -> str:
    """``spec`` as results record it, the same on every machine: a ``tsv:`` folder or an existing path through
    :func:`bertbench.paths.portable_path`; a packaged set's name, ``hf:...`` or anything else as given."""
    for prefix in TSV_PREFIXES:
        if spec.startswith(prefix):
            return prefix + portable_path(parse_tsv_spec(spec)[0])
    if spec in PACKAGED_NAMES or spec.startswith("hf:"):
        return spec
    path = local_path(spec)
    return portable_path(path) if path.exists() else spec


def bert_data_files(spec: str) -> dict[str, Path]:
    """The split files of the BERT data_dir ``spec`` names: ``train`` and ``dev``, and ``test`` when present.

    Raises:
        DataError: the folder is missing or lacks train.tsv or dev.tsv (naming what was looked for).
    """
    folder, _ = parse_tsv_spec(spec)
    if not folder.is_dir():
        raise DataError(f"{spec}: {folder} is not a folder; tsv:<folder> names a BERT data_dir holding train.tsv and "
                        f"dev.tsv (test.tsv optional)")
    files = {split: folder / f"{split}.tsv" for split in ("train", "dev", "test")}
    files = {split: path for split, path in files.items() if path.is_file()}
    missing = [split for split in ("train", "dev") if split not in files]
    if missing:
        raise DataError(f"{spec}: no {' or '.join(f'{folder / split}.tsv' for split in missing)}; a BERT data_dir "
                        f"holds train.tsv and dev.tsv (ID, ALPHA, LABEL, TEXT_A[, TEXT_B]; test.tsv optional)")
    return files


def _looks_numeric(names) -> bool:
    """Whether class names read as numbers with at least one fraction among them (3.5): a score, not a class."""
    try:
        values = [float(name) for name in names]
    except ValueError:
        return False
    return all(math.isfinite(value) for value in values) and any(not value.is_integer() for value in values)


@functools.lru_cache(maxsize=16)
def _read_task(spec: str, stamp: tuple) -> tuple[object, dict[str, Examples]]:
    """(the task, its train and dev examples) of a ``tsv:`` spec in its portable form; ``stamp`` (the files' sizes and
    times) makes a changed file read anew."""
    from .glue import TASKS, GlueTask, TsvLayout

    files = bert_data_files(spec)
    folder, regression = parse_tsv_spec(spec)
    name = folder.name
    if name.lower().replace("-", "") in TASKS:
        raise DataError(f"{spec}: the folder is named like the GLUE task {name!r}, and its rows would count as that "
                        f"task's in the GLUE mean; rename the folder or link it under another name "
                        f"(ln -s {folder} {folder.parent / (name + '_own')})")
    read, names = read_splits(read_bert_tsv, {"train": files["train"], "dev": files["dev"]}, regression=regression)
    if not regression and len(names) < 2:
        raise DataError(f"{files['train']}: one label ({names}); a classifier needs at least two")
    if not regression and _looks_numeric(names):
        warnings.warn(f"{files['train']}: labels {names[:5]}... are numbers with fractions, read as {len(names)} "
                      f"classes; name the task tsv-regression:{folder} to predict the number", DataWarning,
                      stacklevel=4)
    layout = TsvLayout(text_a=3, text_b=4, label=2, index=0, header=False)  # the classic layout (not read through it)
    task = GlueTask(
        name=name, dir_name=name, label_names=() if regression else tuple(names),
        metrics=REGRESSION_METRICS if regression else CLASSIFICATION_METRICS,
        score_metrics=("pearson", "spearman") if regression else ("accuracy", "f1"),
        files={split: ((path.name,), layout) for split, path in files.items()},
        hub_text_keys=("text_a", "text_b" if read["train"].is_pair else None), hub_splits={},
        submission={"test": f"{name}.tsv"}, source=spec)
    return task, read


def _stamp(spec: str) -> tuple:
    return tuple((split, path.stat().st_size, path.stat().st_mtime_ns) for split, path in bert_data_files(spec).items())


def user_glue_task(spec: str):
    """The :class:`~bertbench.data.glue.GlueTask` of a BERT data_dir (the rules are in the module docstring),
    registered under its name so that ``get_task(name)`` finds it later in this process.

    Raises:
        DataError: a missing file, a malformed row, a dev label the training file lacks, a folder named like a GLUE
            task, or another folder of the same name used before.
    """
    spec = portable_source(spec)
    task, _ = _read_task(spec, _stamp(spec))
    earlier = _BY_NAME.setdefault(task.name, task)
    if earlier.source != task.source:
        raise DataError(f"{spec}: a task named {task.name!r} came from {earlier.source} already; each task is named "
                        f"after its folder, so rename or link one of them")
    return task


def registered_task(name: str):
    """The user task named ``name`` made in this process, or None."""
    return _BY_NAME.get(name)


def read_user_split(task, split: str) -> Examples:
    """One split of a user task: ``train`` or ``dev`` (read with the training file's label names), or ``test``
    (its label field not read: predicted, never scored)."""
    files = bert_data_files(task.source)
    if split not in files:
        raise DataError(f"{task.source}: no {split}.tsv (the task's splits are {sorted(files)})")
    if split == "test":
        return read_bert_tsv(files["test"], has_labels=False)[0]
    _, read = _read_task(task.source, _stamp(task.source))
    examples = read[split]
    return examples.select(range(len(examples)))  # a copy: the cached examples stay as read


def task_for_row(name: str, config: str):
    """The task a results row names: a GLUE task, or the user task whose ``tsv:`` spec its recorded config lists
    (read again from its folder when this process has not made it)."""
    from .glue import TASKS, get_task

    if name in TASKS or registered_task(name) is not None:
        return get_task(name)
    specs = [spec for spec in json.loads(config or "{}").get("tasks", []) if is_tsv_spec(spec)]
    for spec in specs:
        if parse_tsv_spec(spec)[0].name == name:
            return get_task(spec)
    return get_task(name)
