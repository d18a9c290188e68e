"""GLUE: the task registry and readers for the official TSV files (local) or the hub (online).

Registry: input columns, label names in the official order (the order of the GLUE data and of the hub's ClassLabel),
metrics, and which metrics make the task score (GLUE: the mean of a task's metrics; MNLI: the mean of matched and
mismatched accuracy; AX is predicted with an MNLI model and has no labels).

Reader traps handled (see shared/data/MANIFEST.md): QUOTE_NONE (sentences contain bare '"'), UTF-8 BOMs (MRPC),
CoLA train/dev without a header, MRPC ``train.rebuilt.tsv`` preferred over the 3,667-row ``train.tsv``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

from .examples import DataError, Examples, check_header, check_text, open_text, warn_empty_texts


@dataclasses.dataclass(frozen=True)
class TsvLayout:
    """Where the fields sit in one GLUE file: column names (files with a header) or positions (CoLA train/dev)."""

    text_a: str | int
    text_b: str | int | None = None
    label: str | int | None = None
    index: str | int | None = None
    header: bool = True


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    Attributes:
        name: registry key (``"sst2"``).
        dir_name: folder of the official download (``"SST-2"``).
        label_names: class names in the official order; empty for regression (STS-B).
        metrics: metric names computed for the task (see :mod:`bertbench.metrics`).
        score_metrics: the metrics averaged into the task score, as GLUE defines it.
        files: split name -> (candidate file names, first one present wins; layout).
        hub: (dataset, config) for ``datasets.load_dataset``; hub_splits: our split -> hub split.
        submission: file names of the GLUE submission per test split.
        eval_splits: the labelled evaluation splits (MNLI has two).
        label_range: the interval a regression target must lie in (STS-B: 0..5, the scale of the annotation and
            of the submission); a target outside it is a DataError.
        source: for a task of your own, its ``tsv:`` spec as results record it (:mod:`bertbench.data.user_data`);
            "" for GLUE's.
    """

    name: str
    dir_name: str
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    score_metrics: tuple[str, ...]
    files: dict[str, tuple[tuple[str, ...], TsvLayout]]
    hub_text_keys: tuple[str, str | None]
    hub_splits: dict[str, str]
    submission: dict[str, str]
    eval_splits: tuple[str, ...] = ("dev",)
    predicted_by: str | None = None
    label_range: tuple[float, float] | None = None
    source: str = ""

    @property
    def spec(self) -> str:
        """What names the task in a config's ``tasks``: GLUE's name, or the ``tsv:`` spec of a task of your own."""
        return self.source or self.name

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return self.hub_text_keys[1] is not None

    @property
    def test_splits(self) -> tuple[str, ...]:
        return tuple(split for split in self.files if split.startswith("test"))


def _pair(a: str, b: str, label: str | None, index: str | None = "index") -> TsvLayout:
    return TsvLayout(text_a=a, text_b=b, label=label, index=index)


_NLI3 = ("entailment", "neutral", "contradiction")
_NLI2 = ("entailment", "not_entailment")

TASKS: dict[str, GlueTask] = {
    "cola": GlueTask(
        "cola", "CoLA", ("unacceptable", "acceptable"), ("mcc", "accuracy"), ("mcc",),
        {
            "train": (("train.tsv",), TsvLayout(text_a=3, label=1, header=False)),
            "dev": (("dev.tsv",), TsvLayout(text_a=3, label=1, header=False)),
            "test": (("test.tsv",), TsvLayout(text_a="sentence", index="index")),
        },
        ("sentence", None), {"train": "train", "dev": "validation", "test": "test"}, {"test": "CoLA.tsv"},
    ),
    "sst2": GlueTask(
        "sst2", "SST-2", ("negative", "positive"), ("accuracy",), ("accuracy",),
        {
            "train": (("train.tsv",), TsvLayout(text_a="sentence", label="label")),
            "dev": (("dev.tsv",), TsvLayout(text_a="sentence", label="label")),
            "test": (("test.tsv",), TsvLayout(text_a="sentence", index="index")),
        },
        ("sentence", None), {"train": "train", "dev": "validation", "test": "test"}, {"test": "SST-2.tsv"},
    ),
    "mrpc": GlueTask(
        "mrpc", "MRPC", ("not_equivalent", "equivalent"), ("accuracy", "f1"), ("accuracy", "f1"),
        {
            "train": (("train.rebuilt.tsv", "train.tsv"), _pair("#1 String", "#2 String", "Quality", None)),
            "dev": (("dev.tsv",), _pair("#1 String", "#2 String", "Quality", None)),
            "test": (("test.tsv",), _pair("#1 String", "#2 String", None)),
        },
        ("sentence1", "sentence2"), {"train": "train", "dev": "validation", "test": "test"}, {"test": "MRPC.tsv"},
    ),
    "stsb": GlueTask(
        "stsb", "STS-B", (), ("pearson", "spearman"), ("pearson", "spearman"),
        {
            "train": (("train.tsv",), _pair("sentence1", "sentence2", "score")),
            "dev": (("dev.tsv",), _pair("sentence1", "sentence2", "score")),
            "test": (("test.tsv",), _pair("sentence1", "sentence2", None)),
        },
        ("sentence1", "sentence2"), {"train": "train", "dev": "validation", "test": "test"}, {"test": "STS-B.tsv"},
        label_range=(0.0, 5.0),
    ),
    "qqp": GlueTask(
        "qqp", "QQP", ("not_duplicate", "duplicate"), ("accuracy", "f1"), ("accuracy", "f1"),
        {
            "train": (("train.tsv",), _pair("question1", "question2", "is_duplicate", "id")),
            "dev": (("dev.tsv",), _pair("question1", "question2", "is_duplicate", "id")),
            "test": (("test.tsv",), _pair("question1", "question2", None, "id")),
        },
        ("question1", "question2"), {"train": "train", "dev": "validation", "test": "test"}, {"test": "QQP.tsv"},
    ),
    "mnli": GlueTask(
        "mnli", "MNLI", _NLI3, ("accuracy",), ("accuracy",),
        {
            "train": (("train.tsv",), _pair("sentence1", "sentence2", "gold_label")),
            "dev_matched": (("dev_matched.tsv",), _pair("sentence1", "sentence2", "gold_label")),
            "dev_mismatched": (("dev_mismatched.tsv",), _pair("sentence1", "sentence2", "gold_label")),
            "test_matched": (("test_matched.tsv",), _pair("sentence1", "sentence2", None)),
            "test_mismatched": (("test_mismatched.tsv",), _pair("sentence1", "sentence2", None)),
        },
        ("premise", "hypothesis"),
        {"train": "train", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched",
         "test_matched": "test_matched", "test_mismatched": "test_mismatched"},
        {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
        eval_splits=("dev_matched", "dev_mismatched"),
    ),
    "qnli": GlueTask(
        "qnli", "QNLI", _NLI2, ("accuracy",), ("accuracy",),
        {
            "train": (("train.tsv",), _pair("question", "sentence", "label")),
            "dev": (("dev.tsv",), _pair("question", "sentence", "label")),
            "test": (("test.tsv",), _pair("question", "sentence", None)),
        },
        ("question", "sentence"), {"train": "train", "dev": "validation", "test": "test"}, {"test": "QNLI.tsv"},
    ),
    "rte": GlueTask(
        "rte", "RTE", _NLI2, ("accuracy",), ("accuracy",),
        {
            "train": (("train.tsv",), _pair("sentence1", "sentence2", "label")),
            "dev": (("dev.tsv",), _pair("sentence1", "sentence2", "label")),
            "test": (("test.tsv",), _pair("sentence1", "sentence2", None)),
        },
        ("sentence1", "sentence2"), {"train": "train", "dev": "validation", "test": "test"}, {"test": "RTE.tsv"},
    ),
    "wnli": GlueTask(
        # GLUE's WNLI files use 1 = entailment, 0 = not_entailment (the hub's ClassLabel order).
        "wnli", "WNLI", ("not_entailment", "entailment"), ("accuracy",), ("accuracy",),
        {
            "train": (("train.tsv",), _pair("sentence1", "sentence2", "label")),
            "dev": (("dev.tsv",), _pair("sentence1", "sentence2", "label")),
            "test": (("test.tsv",), _pair("sentence1", "sentence2", None)),
        },
        ("sentence1", "sentence2"), {"train": "train", "dev": "validation", "test": "test"}, {"test": "WNLI.tsv"},
    ),
    "ax": GlueTask(
        # The diagnostic set: unlabelled, predicted by the MNLI model, submitted as AX.tsv.
        "ax", "diagnostic", _NLI3, (), (),
        {"test": (("diagnostic.tsv", "diagnostic-full.tsv"), _pair("sentence1", "sentence2", None))},
        ("premise", "hypothesis"), {"test": "test"}, {"test": "AX.tsv"}, eval_splits=(), predicted_by="mnli",
    ),
}

TRAINABLE_TASKS = tuple(name for name, task in TASKS.items() if "train" in task.files)


def get_task(name: str) -> GlueTask:
    """A GLUE task by name (``SST-2`` or ``sst2``), or a task of your own: ``tsv:<folder>`` /
    ``tsv-regression:<folder>`` (a BERT data_dir, :mod:`bertbench.data.user_data`), later also by its name."""
    from .user_data import is_tsv_spec, registered_task, user_glue_task  # user_data builds GlueTasks

    if is_tsv_spec(name):
        return user_glue_task(name)
    key = name.lower().replace("-", "")
    if key in TASKS:
        return TASKS[key]
    if (task := registered_task(name)) is not None:
        return task
    raise KeyError(f"unknown GLUE task {name!r}; tasks are {sorted(TASKS)}, or data of your own as tsv:<folder> "
                   f"(a BERT data_dir: train.tsv, dev.tsv[, test.tsv]) or tsv-regression:<folder>")


def find_split_file(task: GlueTask, split: str, glue_dir: Path) -> Path:
    """The file holding ``split`` of ``task`` under ``glue_dir``; DataError naming every path looked for."""
    if split not in task.files:
        raise DataError(f"GLUE task {task.name!r} has no split {split!r}; splits are {sorted(task.files)}")
    candidates = [glue_dir / task.dir_name / name for name in task.files[split][0]]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(path) for path in candidates)
    raise DataError(
        f"GLUE {task.name} {split}: no file found (looked for {looked}). Put the official GLUE TSVs under "
        f"{glue_dir} (BB_DATA_DIR/glue/<Task>/), or read the task from the hub with data_source='hub' when online."
    )


def missing_local_splits(task: GlueTask | str, glue_dir: Path | str | None = None) -> list[str]:
    """The splits a run needs (``train`` and the labelled evaluation splits) that have no file under ``glue_dir``
    (default ``BB_DATA_DIR/glue``); empty for a task of your own (its reader names what is missing)."""
    task = get_task(task) if isinstance(task, str) else task
    if task.source:
        return []
    if glue_dir is None:
        from ..paths import data_dir

        glue_dir = data_dir() / "glue"
    missing = []
    for split in ("train", *task.eval_splits):
        try:
            find_split_file(task, split, Path(glue_dir))
        except DataError:
            missing.append(split)
    return missing


def check_target(task: GlueTask, value: float, where: str) -> float:
    """``value`` if it lies in the task's ``label_range``; DataError naming ``where`` otherwise (a score of 7 on
    STS-B's 0..5 scale is a broken row, and the model would learn to predict what GLUE cannot take)."""
    if task.label_range is not None and not task.label_range[0] <= value <= task.label_range[1]:
        low, high = task.label_range
        raise DataError(f"{where}: field 'label': {value:g} is outside {task.name}'s range {low:g}..{high:g}; "
                        f"fix or drop the row")
    return value


def _label_index(task: GlueTask, raw: str, where: str) -> int | float:
    raw = raw.strip()
    if task.is_regression:
        try:
            value = float(raw)
        except ValueError:
            raise DataError(f"{where}: field 'label': {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: field 'label': {raw!r} is not a finite number")
        return check_target(task, value, where)
    if raw in task.label_names:
        return task.label_names.index(raw)
    if raw.isascii() and raw.isdigit() and int(raw) < len(task.label_names):  # "²".isdigit(), but int("²") fails
        return int(raw)
    raise DataError(f"{where}: field 'label': {raw!r} is not one of {task.label_names} or 0..{task.num_labels - 1}")


def read_glue_tsv(task: GlueTask | str, split: str, glue_dir: Path | str) -> Examples:
    """Read one split of a GLUE task from the official TSV layout.

    Args:
        task: a registry entry or its name.
        split: ``train``, ``dev``, ``test`` (MNLI: ``dev_matched``, ``dev_mismatched``, ``test_matched``, ...).
        glue_dir: the folder holding ``CoLA/``, ``SST-2/``, ...

    Empty or whitespace-only sentences are kept (every test row needs a prediction) and reported in one
    :class:`DataWarning`, as are bytes that are not UTF-8 (decoded as cp1252).

    Raises:
        DataError: the file is missing, or a row is malformed (message: file, line, field).
    """
    task = get_task(task) if isinstance(task, str) else task
    path = find_split_file(task, split, Path(glue_dir))
    layout = task.files[split][1]
    text_a, text_b, labels, ids = [], [] if layout.text_b is not None else None, [], []
    empty = []
    with open_text(path, newline="") as lines:
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            if layout.header:
                header = next(reader, None)
                if header is None:
                    raise DataError(f"{path}: the file is empty (expected a header line)")
                wanted = [layout.text_a, layout.text_b, layout.label, layout.index]
                check_header([name.strip() for name in header], f"{path}:{reader.line_num}", wanted)
                columns = {name.strip(): pos for pos, name in enumerate(header)}
                missing = [name for name in wanted if name is not None and name not in columns]
                if missing:
                    hint = " (is it tab-separated?)" if len(header) == 1 else ""
                    raise DataError(f"{path}:1: header lacks column(s) {missing}; it has {list(columns)}{hint}")
                pos = {key: columns.get(getattr(layout, key)) for key in ("text_a", "text_b", "label", "index")}
                n_fields = len(header)
            else:
                pos = {key: getattr(layout, key) for key in ("text_a", "text_b", "label", "index")}
                n_fields = max(p for p in pos.values() if p is not None) + 1  # CoLA: source, label, mark, sentence
            # (position, name in messages) of the text fields; headerless CoLA has only positions
            texts = [(pos[key], getattr(layout, key) if layout.header else f"#{pos[key] + 1}")
                     for key in ("text_a", "text_b") if pos[key] is not None]
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line (some files end with one)
                if len(row) != n_fields:
                    raise DataError(f"{where}: expected {n_fields} tab-separated fields, got {len(row)}")
                empty += [f"{where}: field {name!r}" for p, name in texts
                          if not check_text(row[p], where, name).strip()]
                text_a.append(row[pos["text_a"]])
                if text_b is not None:
                    text_b.append(row[pos["text_b"]])
                if pos["label"] is not None:
                    labels.append(_label_index(task, row[pos["label"]], where))
                ids.append(row[pos["index"]] if pos["index"] is not None else str(reader.line_num))
        except csv.Error as err:
            raise DataError(f"{path}:{reader.line_num}: not a tab-separated row ({err})") from None
    warn_empty_texts(path, empty)
    if not text_a:
        raise DataError(f"{path}: no examples")
    return Examples(text_a, text_b, labels if pos["label"] is not None else None, ids, source=str(path))


def load_glue_hub(task: GlueTask | str, split: str, dataset: str = "nyu-mll/glue") -> Examples:
    """Read one split from the hub with ``datasets.load_dataset`` (online users; needs the ``datasets`` package)."""
    from datasets import load_dataset  # optional dependency, only for online use

    task = get_task(task) if isinstance(task, str) else task
    hub_split = task.hub_splits.get(split)
    if hub_split is None:
        raise DataError(f"GLUE task {task.name!r} has no split {split!r} on the hub; "
                        f"splits are {sorted(task.hub_splits)}")
    data = load_dataset(dataset, task.name, split=hub_split)
    return glue_examples_from_hf(task, data, split)


def glue_examples_from_hf(task: GlueTask, data, split: str) -> Examples:
    """Convert a hub GLUE split (columns as on the hub, label -1 on test) to :class:`Examples`."""
    from .text_label import examples_from_hf

    unlabelled = split.startswith("test")
    examples = examples_from_hf(
        data, text=task.hub_text_keys[0], text_pair=task.hub_text_keys[1],
        label=None if unlabelled else "label", id_column="idx" if "idx" in data.column_names else None,
        label_names=None if task.is_regression else list(task.label_names), regression=task.is_regression,
    )
    if task.is_regression and examples.labels is not None:
        for row, value in enumerate(examples.labels):
            check_target(task, value, f"{examples.source} row {row}")
    return examples


def load_glue(task: GlueTask | str, split: str, *, source: str = "local",
              glue_dir: Path | str | None = None) -> Examples:
    """One split of a GLUE task from local TSVs (``source='local'``) or the hub (``source='hub'``); a task of your own
    from its folder, whatever ``source`` says."""
    task = get_task(task) if isinstance(task, str) else task
    if task.source:
        from .user_data import read_user_split

        return read_user_split(task, split)
    if source == "hub":
        return load_glue_hub(task, split)
    if glue_dir is None:
        from ..paths import data_dir

        glue_dir = data_dir() / "glue"
    return read_glue_tsv(task, split, glue_dir)
