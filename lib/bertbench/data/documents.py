"""Long-document classification sets: Hyperpartisan, BBC News, any CSV / JSONL / HF dataset, and fixed splits.

- ``hyperpartisan``: SemEval-2019 Task 4 by-article (645 articles, binary; text = title + body), from
  ``$BB_DATA_DIR/hyperpartisan/hyperpartisan_byarticle_train.jsonl``. Labels ``false`` / ``true`` (class 1 =
  hyperpartisan, the positive class of F1).
- ``bbc``: BBC News (2,225 articles, 5 topics), from ``$BB_DATA_DIR/bbc/bbc_news.csv`` (title + body per file).
- a ``.csv`` / ``.jsonl`` path with ``text`` and ``label`` columns (names configurable); with ``label_sep`` set, a
  label field like ``"sport|politics"`` makes the task multi-label.
- ``hf:<dataset>[:<config>]:<split>`` loads with ``datasets.load_dataset`` (online users).

Splits: the usual protocol for Hyperpartisan splits the 645 articles 80/10/10 into train/val/test. The split is
stratified by label, drawn once with seed 0 and *saved*: the files for the two packaged sets ship with bertbench
(``data/splits/<name>.json``), any other set gets its file under ``runs/splits/`` the first time and reuses it. A
split file that names an id missing from the data, or leaves a document out, is an error. Because a 65-article test
split is small, :func:`kfold_splits` gives stratified k-fold cross-validation (test = fold i, val = fold i + 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..paths import data_dir, runs_dir
from .examples import DataError, Examples
from .text_label import examples_from_hf, is_multilabel_column, multilabel_from_hf, read_csv, read_jsonl

PACKAGED_SPLITS = Path(__file__).resolve().parent / "splits"
SPLIT_NAMES = ("train", "val", "test")


@dataclasses.dataclass
class Documents:
    """Labelled documents: ``examples.labels`` are class indices, or multi-hot lists when ``multilabel``."""

    name: str
    examples: Examples
    label_names: tuple[str, ...]
    multilabel: bool = False

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def problem(self) -> str:
        if self.multilabel:
            return "multilabel"
        return "binary" if len(self.label_names) == 2 else "multiclass"

    def select(self, indices: Sequence[int]) -> Documents:
        return dataclasses.replace(self, examples=self.examples.select(indices))

    def strata(self) -> list[str]:
        """The key a stratified split keeps in proportion: the label (or the set of labels)."""
        return [str(label) for label in self.examples.labels]


def read_hyperpartisan(folder: str | Path | None = None) -> Documents:
    path = Path(folder or data_dir() / "hyperpartisan") / "hyperpartisan_byarticle_train.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: Hyperpartisan file not found (set BB_DATA_DIR to the folder holding hyperpartisan/)")
    examples, names = read_jsonl(path, text="text", label="label", label_names=["0", "1"], id_column="id")
    titles, _ = read_jsonl(path, text="title", label=None, id_column="id")
    examples.text_a = [f"{title}\n\n{body}" for title, body in zip(titles.text_a, examples.text_a, strict=True)]
    return Documents("hyperpartisan", examples, ("false", "true"))


def read_bbc(folder: str | Path | None = None) -> Documents:
    path = Path(folder or data_dir() / "bbc") / "bbc_news.csv"
    if not path.is_file():
        raise DataError(f"{path}: BBC News file not found (set BB_DATA_DIR to the folder holding bbc/)")
    examples, names = read_csv(path, text="text", label="category", id_column="file")
    return Documents("bbc", examples, tuple(names))


def read_documents(path: str | Path, text: str = "text", label: str = "label", label_sep: str = "",
                   id_column: str | None = None, label_names: Sequence[str] | None = None) -> Documents:
    """A CSV or JSONL file of documents; ``label_sep`` splits a label field into several labels (multi-label).

    Read with :func:`~bertbench.data.text_label.read_csv` / :func:`~bertbench.data.text_label.read_jsonl`: empty
    documents are kept with a DataWarning, bytes that are not UTF-8 are decoded as cp1252 with a DataWarning.

    Raises:
        DataError: a malformed row, or a label outside ``label_names`` (file, line or id, field, the allowed labels).
    """
    path = Path(path)
    reader = {".csv": read_csv, ".jsonl": read_jsonl, ".json": read_jsonl}.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: expected a .csv or .jsonl file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not label_sep:
        examples, names = reader(path, text=text, label=label, label_names=label_names, id_column=id_column)
        return Documents(path.stem, examples, tuple(names))
    examples, combos = reader(path, text=text, label=label, id_column=id_column)
    parts = [tuple(part.strip() for part in combo.split(label_sep) if part.strip()) for combo in combos]
    names = tuple(label_names) if label_names else tuple(sorted({name for labels in parts for name in labels}))
    if not names:
        raise DataError(f"{path}: field {label!r}: no label in any document (a multi-label task needs label names)")
    unknown = sorted({name for labels in parts for name in labels} - set(names))
    if unknown:
        first = next(i for i, combo in enumerate(examples.labels) if set(parts[combo]) - set(names))
        where = f"{path}: id {examples.ids[first]!r}" if id_column else f"{path}:{examples.ids[first]}"
        raise DataError(f"{where}: field {label!r}: label(s) {unknown} are not in label_names {list(names)}")
    hot = [[1 if name in parts[combo] else 0 for name in names] for combo in examples.labels]
    examples.labels = hot
    return Documents(path.stem, examples, names, multilabel=True)


def load_documents(spec: str, text: str = "text", label: str = "label", label_sep: str = "",
                   id_column: str | None = None) -> Documents:
    """``hyperpartisan``, ``bbc``, a CSV/JSONL path, or ``hf:<dataset>[:<config>]:<split>``."""
    if spec == "hyperpartisan":
        return read_hyperpartisan()
    if spec == "bbc":
        return read_bbc()
    if spec.startswith("hf:"):
        parts = spec.split(":")[1:]
        if len(parts) not in (2, 3):
            raise DataError(f"dataset: {spec!r} is not 'hf:<dataset>[:<config>]:<split>'")
        from datasets import load_dataset

        name, config, split = (parts[0], None, parts[1]) if len(parts) == 2 else parts
        data = load_dataset(name, config, split=split)
        if is_multilabel_column(data, label):  # a list of labels per row: multi-hot, never label combinations
            examples, names = multilabel_from_hf(data, text=text, label=label, id_column=id_column)
            return Documents(name.replace("/", "_"), examples, tuple(names), multilabel=True)
        feature = data.features.get(label)
        names = tuple(getattr(feature, "names", None) or ())
        examples = examples_from_hf(data, text=text, label=label, label_names=names or None, id_column=id_column)
        if not names:
            names = tuple(sorted({str(value) for value in data[label]}))
        return Documents(name.replace("/", "_"), examples, names)
    return read_documents(spec, text=text, label=label, label_sep=label_sep, id_column=id_column)


def _shuffled_groups(docs: Documents, seed: int) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(docs.strata()):
        groups.setdefault(key, []).append(index)
    rng = random.Random(seed)
    out = []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        out.append(members)
    return out


def stratified_split(docs: Documents, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict:
    """Indices per split name, each label kept in proportion (within one document per label and split)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions: {fractions} must be three shares summing to 1")
    out: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    bounds = (fractions[0], fractions[0] + fractions[1])
    for members in _shuffled_groups(docs, seed):
        for position, index in enumerate(members):
            share = (position + 0.5) / len(members)
            out["train" if share < bounds[0] else "val" if share < bounds[1] else "test"].append(index)
    return {name: sorted(indices) for name, indices in out.items()}


def kfold_splits(docs: Documents, k: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Stratified k-fold: for fold i, test = fold i, val = fold (i + 1) mod k, train = the other k - 2 folds."""
    if k < 3:
        raise ValueError(f"cv_folds: {k} must be >= 3 (one fold for test, one for validation, the rest to train)")
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for members in _shuffled_groups(docs, seed):
        for position, index in enumerate(members):
            folds[(offset + position) % k].append(index)
        offset += len(members)
    out = []
    for i in range(k):
        val = (i + 1) % k
        train = sorted(index for j, fold in enumerate(folds) if j not in (i, val) for index in fold)
        out.append({"train": train, "val": sorted(folds[val]), "test": sorted(folds[i])})
    return out


def _ids_digest(docs: Documents) -> str:
    return hashlib.sha1("\n".join(sorted(docs.examples.ids)).encode()).hexdigest()[:10]


def split_path(docs: Documents) -> Path:
    packaged = PACKAGED_SPLITS / f"{docs.name}.json"
    if packaged.is_file():
        return packaged
    return runs_dir() / "splits" / f"{docs.name}-{_ids_digest(docs)}.json"


def save_split(docs: Documents, indices: dict[str, list[int]], path: Path, seed: int = 0) -> None:
    ids = docs.examples.ids
    payload = {"dataset": docs.name, "documents": len(docs), "seed": seed, "stratified_by": "label",
               "splits": {name: [ids[i] for i in indices[name]] for name in SPLIT_NAMES}}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(payload, out, indent=0)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a split is meant to be shared
    os.replace(tmp, path)


def fixed_split(docs: Documents) -> tuple[dict[str, list[int]], Path]:
    """The saved 80/10/10 split of ``docs`` (made and saved on first use); checked against the documents.

    Returns:
        (indices per split name, the split file)
    """
    path = split_path(docs)
    if not path.is_file():
        save_split(docs, stratified_split(docs), path)
    payload = json.loads(path.read_text())
    position = {doc_id: i for i, doc_id in enumerate(docs.examples.ids)}
    if len(position) != len(docs):
        raise DataError(f"{docs.examples.source}: document ids are not unique; a saved split needs unique ids")
    indices: dict[str, list[int]] = {}
    for name in SPLIT_NAMES:
        missing = [doc_id for doc_id in payload["splits"][name] if doc_id not in position]
        if missing:
            raise DataError(f"{path}: split {name!r} lists id {missing[0]!r}, which is not in {docs.examples.source}")
        indices[name] = [position[doc_id] for doc_id in payload["splits"][name]]
    covered = sum(len(values) for values in indices.values())
    if covered != len(docs) or len(set().union(*map(set, indices.values()))) != len(docs):
        raise DataError(f"{path}: the split covers {covered} documents, the data has {len(docs)} "
                        f"(delete the file to draw a new split)")
    return indices, path


def subsample_stratified(indices: list[int], docs: Documents, limit: int, seed: int = 0) -> list[int]:
    """At most ``limit`` of ``indices`` with the labels in proportion (all when ``limit`` is 0 or larger)."""
    if limit <= 0 or limit >= len(indices):
        return indices
    part = docs.select(indices)
    groups = _shuffled_groups(part, seed)
    ranked = sorted(((position + 0.5) / len(members), member) for members in groups
                    for position, member in enumerate(members))
    return sorted(indices[member] for _, member in ranked[:limit])
