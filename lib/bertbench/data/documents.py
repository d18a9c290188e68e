"""Long-document classification sets: Hyperpartisan, BBC News, any CSV / JSONL / HF dataset, and fixed splits.

- ``hyperpartisan``: SemEval-2019 Task 4 by-article (645 articles, binary; text = title + body), from
  ``$BB_DATA_DIR/hyperpartisan/hyperpartisan_byarticle_train.jsonl``. Labels ``false`` / ``true`` (class 1 =
  hyperpartisan, the positive class of F1).
- ``bbc``: BBC News (2,225 articles, 5 topics), from ``$BB_DATA_DIR/bbc/bbc_news.csv`` (title + body per file).
- a ``.csv`` / ``.jsonl`` path with ``text`` and ``label`` columns (names configurable); with ``label_sep`` set, a
  label field like ``"sport|politics"`` makes the task multi-label.
- ``hf:<dataset>[:<config>]:<split>`` loads with ``datasets.load_dataset`` (online users).
- with ``regression``, the label is a number to predict (Pearson, Spearman, MSE); with ``text_pair``, a second text
  column is read as the text pair (appended to every window, see :mod:`bertbench.windows`).

Splits a source comes with (:func:`load_document_splits`), used as given:

- ``tsv:<folder>`` (``tsv-regression:<folder>``): a BERT data_dir; ``train.tsv`` trains, ``dev.tsv`` is the
  validation split, ``test.tsv`` the test split when it is labelled (every label one of the training file's; with
  none of them it is unlabelled and left out; a mix is a DataError). TEXT_B, when the files have it, is the text pair;
- ``path/to/train.csv`` (or ``.jsonl``) with siblings of the same suffix named ``val``, ``validation``, ``valid`` or
  ``dev`` and/or ``test``; the set is named after the folder;
- one CSV/JSONL with a split column (``split_column``) holding ``train``, ``val`` (``validation``, ``valid``,
  ``dev``) or ``test`` on every row;
- a folder written by ``datasets``' ``save_to_disk``: a ``DatasetDict`` with ``train`` and ``validation`` (``val``,
  ``dev``) and/or ``test`` (other splits are left out with a DataWarning); a single ``Dataset``, or a DatasetDict with
  ``train`` alone, gets the saved split below.

Every split is read with the training split's label names (:func:`~bertbench.data.text_label.read_splits`), so a label
the training documents lack is a DataError naming file and line. A missing validation or test split is drawn from the
training documents (10% of them, stratified, seed 0). Document ids are prefixed with their split (``test:17``). The
saved 80/10/10 split below applies only when no split is given, and cross-validation only then.

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
import math
import os
import random
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..paths import data_dir, portable_path, runs_dir
from .examples import DataError, DataWarning, Examples
from .text_label import (
    is_multilabel_column,
    multilabel_from_hf,
    read_bert_tsv,
    read_csv,
    read_hf,
    read_jsonl,
    read_splits,
)
from .user_data import PACKAGED_NAMES, bert_data_files, is_tsv_spec, local_path, parse_tsv_spec

PACKAGED_SPLITS = Path(__file__).resolve().parent / "splits"
SPLIT_NAMES = ("train", "val", "test")
# the split names a source may use (compared without case) -> ours
SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "valid": "val", "dev": "val", "test": "test"}


@dataclasses.dataclass
class Documents:
    """Labelled documents: ``examples.labels`` are class indices, multi-hot lists when ``multilabel``, or numbers to
    predict when ``regression`` (``label_names`` then empty)."""

    name: str
    examples: Examples
    label_names: tuple[str, ...]
    multilabel: bool = False
    regression: bool = False

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def problem(self) -> str:
        if self.regression:
            return "regression"
        if self.multilabel:
            return "multilabel"
        return "binary" if len(self.label_names) == 2 else "multiclass"

    def select(self, indices: Sequence[int]) -> Documents:
        return dataclasses.replace(self, examples=self.examples.select(indices))

    def strata(self) -> list[str]:
        """The key a stratified split keeps in proportion: the label (or the set of labels); for a number to predict,
        its quintile (five bins of equal count by rank), so that every split spans the range of the targets."""
        labels = self.examples.labels
        if not self.regression:
            return [str(label) for label in labels]
        ranks = [0] * len(labels)
        for rank, index in enumerate(sorted(range(len(labels)), key=labels.__getitem__)):
            ranks[index] = rank
        return [str(rank * 5 // len(labels)) for rank in ranks]


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
                   id_column: str | None = None, label_names: Sequence[str] | None = None,
                   text_pair: str | None = None, regression: bool = False) -> Documents:
    """A CSV or JSONL file of documents; ``label_sep`` splits a label field into several labels (multi-label);
    ``regression``: the label is a number to predict; ``text_pair``: the column of a second text.

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
    columns = dict(text=text, text_pair=text_pair or None, label=label, id_column=id_column)
    if regression:
        if label_sep:
            raise DataError(f"{path}: label_sep and regression both set; a number to predict has no labels to split")
        examples, _ = reader(path, regression=True, **columns)
        return Documents(path.stem, examples, (), regression=True)
    if not label_sep:
        examples, names = reader(path, label_names=label_names, **columns)
        return Documents(path.stem, examples, tuple(names))
    examples, combos = reader(path, **columns)
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
                   id_column: str | None = None, text_pair: str | None = None, regression: bool = False) -> Documents:
    """``hyperpartisan``, ``bbc``, a CSV/JSONL path, or ``hf:<dataset>[:<config>]:<split>`` (no split of its own:
    :func:`load_document_splits` reads the sources that come with theirs)."""
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
        docs, _ = _hf_documents(data, text=text, text_pair=text_pair, label=label, id_column=id_column,
                                regression=regression)
        return dataclasses.replace(docs, name=name.replace("/", "_"))
    return read_documents(spec, text=text, label=label, label_sep=label_sep, id_column=id_column, text_pair=text_pair,
                          regression=regression)


# ------------------------------------------------------------------------------------------ splits a source gives
def _file_documents(path: Path, label_names=None, **options) -> tuple[Documents, list[str] | None]:
    """:func:`read_documents` as a reader of ``read_splits``: (documents, label names; None for regression)."""
    docs = read_documents(path, label_names=label_names, **options)
    return docs, None if docs.regression else list(docs.label_names)


def _hf_documents(data, label_names=None, text: str = "text", text_pair: str | None = None, label: str = "label",
                  id_column: str | None = None, regression: bool = False, label_sep: str = ""):
    """A ``datasets.Dataset`` as documents (a list of labels per row: multi-hot, never label combinations; else the
    names the labels were numbered with: ClassLabel names or the sorted label keys), with their label names."""
    if is_multilabel_column(data, label):
        examples, names = multilabel_from_hf(data, text=text, text_pair=text_pair, label=label,
                                             label_names=label_names, id_column=id_column)
        return Documents("", examples, tuple(names), multilabel=True), names
    examples, names = read_hf(data, text=text, text_pair=text_pair, label=label, label_names=label_names,
                              regression=regression, id_column=id_column)
    return Documents("", examples, tuple(names or ()), regression=regression), names


def _tsv_documents(path: Path, label_names=None, regression: bool = False, **_) -> tuple[Documents, list | None]:
    """A classic BERT TSV as documents (its columns are fixed: the text, label and id options do not apply)."""
    examples, names = read_bert_tsv(path, label_names=label_names, regression=regression)
    return Documents(path.stem, examples, tuple(names or ()), regression=regression), names


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _test_is_labelled(path: Path, names: list[str] | None, regression: bool) -> bool:
    """Whether a BERT test.tsv is labelled: every label a training label (regression: a number) -> True; none ->
    False (an unlabelled file's placeholders); a mix -> the DataError naming the first line with another label."""
    _, found = read_bert_tsv(path)  # its own distinct labels
    known = [value for value in found if (_is_number(value) if regression else value in (names or ()))]
    if known and len(known) < len(found):
        read_bert_tsv(path, label_names=names, regression=regression)  # raises, naming the line
    return bool(known)


def _joined(name: str, parts: dict[str, Documents]) -> tuple[Documents, dict[str, list[int]]]:
    """The documents of every split in one set, ids prefixed with their split (``test:17``: files number their lines
    alike), and each split's indices into it."""
    pairs = {split: docs.examples.is_pair for split, docs in parts.items()}
    if len(set(pairs.values())) > 1:
        raise DataError(f"{name}: the splits differ in having a text pair ({pairs}); give the second text (TEXT_B, "
                        f"text_pair_column) in every split or in none")
    first = next(iter(parts.values()))
    text_a, text_b, labels, ids, indices = [], [] if first.examples.is_pair else None, [], [], {}
    for split, docs in parts.items():
        indices[split] = list(range(len(ids), len(ids) + len(docs)))
        text_a += docs.examples.text_a
        labels += docs.examples.labels
        ids += [f"{split}:{doc_id}" for doc_id in docs.examples.ids]
        if text_b is not None:
            text_b += docs.examples.text_b
    source = ", ".join(docs.examples.source for docs in parts.values())
    return dataclasses.replace(first, name=name, examples=Examples(text_a, text_b, labels, ids, source=source)), indices


def _drawn_from_train(docs: Documents, indices: dict[str, list[int]]) -> tuple[dict[str, list[int]], str]:
    """Every split, a missing validation or test split drawn from the training documents (10%, stratified, seed 0),
    and a note saying which were drawn."""
    notes = []
    for name in ("val", "test"):
        if name not in indices:
            train = indices["train"]
            part = stratified_split(docs.select(train), (0.9, 0.1, 0.0))
            indices = {**indices, "train": [train[i] for i in part["train"]], name: [train[i] for i in part["val"]]}
            notes.append(f"{name} drawn from train (10%, stratified, seed 0)")
    return {name: indices[name] for name in SPLIT_NAMES}, "; ".join(notes)


def _given(name: str, sources: dict, reader, options: dict, what: str):
    """The splits ``sources`` (split -> file or dataset) read with the training split's label names and joined; a
    training split alone is no split given (the saved split then applies)."""
    if list(sources) == ["train"]:
        return dataclasses.replace(reader(sources["train"], **options)[0], name=name), None, ""
    parts, _ = read_splits(reader, sources, **options)
    docs, indices = _joined(name, parts)
    indices, note = _drawn_from_train(docs, indices)
    return docs, indices, f"given: {what}" + (f"; {note}" if note else "")


def split_files(path: Path) -> dict[str, Path] | None:
    """``train.<ext>`` and its siblings of the same suffix named after a split (``val``, ``validation``, ``valid``,
    ``dev``, ``test``): {split: file}; None for any other file, or a train file alone."""
    if path.stem.lower() != "train" or not path.is_file():
        return None
    found = {"train": path}
    for sibling in sorted(path.parent.iterdir()):
        split = SPLIT_ALIASES.get(sibling.stem.lower())
        if split in (None, "train") or sibling.suffix.lower() != path.suffix.lower() or not sibling.is_file():
            continue
        if split in found:
            raise DataError(f"{found[split]} and {sibling} both hold the {split} split beside {path}; keep one")
        found[split] = sibling
    return {name: found[name] for name in SPLIT_NAMES if name in found} if len(found) > 1 else None


def _bert_dir(spec: str, regression: bool):
    """A BERT data_dir: train.tsv, dev.tsv as validation, a labelled test.tsv as test (else test from train)."""
    files = bert_data_files(spec)
    folder, regression_spec = parse_tsv_spec(spec)
    regression = regression or regression_spec
    parts, names = read_splits(_tsv_documents, {"train": files["train"], "val": files["dev"]}, regression=regression)
    what = f"{portable_path(folder)} (train.tsv, dev.tsv as val"
    if "test" in files and _test_is_labelled(files["test"], names, regression):
        parts["test"] = _tsv_documents(files["test"], label_names=names, regression=regression)[0]
        what += ", test.tsv as test"
    elif "test" in files:
        what += "; test.tsv unlabelled, left out"
    docs, indices = _joined(folder.name, parts)
    indices, note = _drawn_from_train(docs, indices)
    return docs, indices, f"given: {what})" + (f"; {note}" if note else "")


def _saved_dataset(path: Path, options: dict):
    """A folder of ``datasets``' ``save_to_disk``: a DatasetDict's splits, or a single Dataset (no split given)."""
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(path))
    if not isinstance(data, DatasetDict):
        return dataclasses.replace(_hf_documents(data, **options)[0], name=path.name), None, ""
    chosen: dict[str, str] = {}
    for split in data:
        ours = SPLIT_ALIASES.get(split.lower())
        if ours is None:
            warnings.warn(f"{path}: split {split!r} is not train, validation (val, dev) or test: left out",
                          DataWarning, stacklevel=3)
        elif ours in chosen:
            raise DataError(f"{path}: splits {chosen[ours]!r} and {split!r} both name the {ours} split; keep one")
        else:
            chosen[ours] = split
    if "train" not in chosen:
        raise DataError(f"{path}: no training split among {list(data)}; name it 'train'")
    sources = {name: data[chosen[name]] for name in SPLIT_NAMES if name in chosen}
    what = f"{portable_path(path)} (DatasetDict {', '.join(chosen[name] for name in sources)})"
    return _given(path.name, sources, _hf_documents, options, what)


def _split_column(path: Path, column: str, options: dict):
    """One CSV/JSONL whose ``column`` names each row's split; a val or test label the training rows lack is refused."""
    docs = read_documents(path, **options)
    reader = read_csv if path.suffix.lower() == ".csv" else read_jsonl
    values, _ = reader(path, text=column, label=None, id_column=options.get("id_column"))
    ids = docs.examples.ids
    where = (lambda i: f"{path}: id {ids[i]!r}") if options.get("id_column") else (lambda i: f"{path}:{ids[i]}")
    indices: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for i, value in enumerate(values.text_a):
        if (split := SPLIT_ALIASES.get(value.strip().lower())) is None:
            raise DataError(f"{where(i)}: field {column!r}: {value!r} is not train, val (validation, valid, dev) or "
                            f"test")
        indices[split].append(i)
    if not indices["train"]:
        raise DataError(f"{path}: field {column!r}: no row is 'train'")
    if not docs.regression:  # every label of val and test must be a training label (as read_splits demands)
        as_set = ((lambda label: {k for k, hot in enumerate(label) if hot}) if docs.multilabel
                  else (lambda label: {label}))
        seen = set().union(*(as_set(docs.examples.labels[i]) for i in indices["train"]))
        for i in indices["val"] + indices["test"]:
            if unseen := as_set(docs.examples.labels[i]) - seen:
                raise DataError(f"{where(i)}: field {options.get('label', 'label')!r}: label(s) "
                                f"{[docs.label_names[k] for k in sorted(unseen)]} of a {values.text_a[i].strip()} "
                                f"row occur in no training row; the model cannot learn them")
    indices, note = _drawn_from_train(docs, {name: part for name, part in indices.items() if part})
    return docs, indices, f"given: column {column!r} of {portable_path(path)}" + (f"; {note}" if note else "")


def load_document_splits(spec: str, text: str = "text", label: str = "label", label_sep: str = "",
                         id_column: str | None = None, text_pair: str | None = None, split_column: str = "",
                         regression: bool = False) -> tuple[Documents, dict[str, list[int]] | None, str]:
    """A document set with the split it comes with, if any (the rules are in the module docstring).

    Returns:
        (documents; indices per split name, or None when no split is given; what the split is, for the results)

    Raises:
        DataError: a missing or malformed file, a val/test label the training split lacks, an unknown split name.
    """
    options = dict(text=text, label=label, label_sep=label_sep, id_column=id_column, text_pair=text_pair or None,
                   regression=regression)
    if is_tsv_spec(spec):
        return _bert_dir(spec, regression)
    if spec in PACKAGED_NAMES or spec.startswith("hf:"):
        if split_column:
            raise DataError(f"{spec}: split_column ({split_column!r}) applies to a CSV or JSONL file of your own")
        return load_documents(spec, **options), None, ""
    path = local_path(spec)
    if path.is_dir():
        return _saved_dataset(path, options)
    if split_column:
        return _split_column(path, split_column, options)
    if files := split_files(path):
        what = f"{portable_path(path.parent)} ({', '.join(f'{file.name} as {name}' for name, file in files.items())})"
        return _given(path.parent.name, files, _file_documents, options, what)
    return read_documents(path, **options), None, ""


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
    payload = {"dataset": docs.name, "documents": len(docs), "seed": seed,
               "stratified_by": "label quintile" if docs.regression else "label",
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
