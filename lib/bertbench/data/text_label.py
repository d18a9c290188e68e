"""Generic labelled text that users bring: classic BERT TSV, CSV, JSONL, and Hugging Face datasets.

The classic BERT TSV layout has the columns ``ID, ALPHA_COL, LABEL, TEXT_A[, TEXT_B]`` (the alpha column is a
throw-away letter kept by the original run_classifier recipes) and no header, though a header line is recognised and
skipped (see :func:`read_bert_tsv`). Labels may be strings or numbers; their order is given by ``label_names`` or,
if not given, is the sorted set of labels in the file, and is returned so that the dev and test files of the same
task use the same order: :func:`read_splits` reads a task's files that way (a dev file read alone numbers its own
labels).

One class is one class: a label is compared by its key, so JSON ``1``, ``1.0``, ``true`` and the text ``"1"`` or
``"1.0"`` are the same class ``"1"`` (``false``, ``0``, ``0.0``: ``"0"``); other labels are their stripped text.

All readers here: a malformed row is a DataError naming the file (or dataset), the line (or row) and the field; a
header naming a column twice, a text that is missing (None) or holds a NUL byte, and a non-finite regression target
are refused; empty or whitespace-only texts are kept (a test row still needs its prediction) and reported in one
DataWarning per file; bytes that are not UTF-8 are decoded as cp1252 with a DataWarning (see
:func:`~bertbench.data.examples.open_text`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from .examples import DataError, Examples, check_header, check_text, open_text, warn_empty_texts

_INTEGRAL_TEXT = re.compile(r"(-?[0-9]+)\.0+")  # "1.0": how pandas writes an integer column that has a gap
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,4000}")
# what the first row of a classic BERT TSV holds when it is a header line (compared without case)
_HEADER_IDS = frozenset({"id", "idx", "index", "guid", "uid"})
_HEADER_LABELS = frozenset({"label", "labels", "gold_label", "class", "category", "target"})


def _to_target(raw, where: str, field: str) -> float:
    """A regression target: a finite number (JSON true would be 1.0; NaN would poison the loss)."""
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: field {field!r}: {raw!r} is not a number") from None
    if isinstance(raw, bool) or not math.isfinite(value):
        raise DataError(f"{where}: field {field!r}: {raw!r} is not a finite number")
    return value


def _label_key(raw, where: str, field: str) -> str:
    """The class a label value names, so that one class is one class: JSON true/false are "1"/"0" (as in Python),
    integral numbers their integer ("1.0" and 1.0 are "1"), anything else its stripped text."""
    if raw is None or isinstance(raw, (list, tuple, dict)):
        raise DataError(f"{where}: field {field!r}: expected a label, got {raw!r}")
    if isinstance(raw, bool):
        return str(int(raw))
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise DataError(f"{where}: field {field!r}: {raw!r} is not a label")
        return str(int(raw)) if raw.is_integer() else repr(raw)
    key = str(raw).strip()
    integral = _INTEGRAL_TEXT.fullmatch(key)
    return integral.group(1) if integral else key


def _label_index(names: Sequence[str], source: str) -> dict[str, int]:
    """Key -> class index of ``names``; two names with one key ("1" and "1.0") would make one class two."""
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        key = _label_key(name, source, "label_names")
        if key in index:
            raise DataError(f"{source}: label_names {list(names)}: {names[index[key]]!r} and {name!r} name the same "
                            f"label; give each label once")
        index[key] = position
    return index


def _sorted_labels(keys: Collection[str]) -> list[str]:
    # integers sort numerically ("2" before "10"); anything else alphabetically. ASCII digits only ("²".isdigit(),
    # but int("²") fails) and at most 4,000 of them (int() refuses longer text)
    return sorted(set(keys), key=lambda v: (0, int(v), "") if _INTEGER_TEXT.fullmatch(v) else (1, 0, v))


def _class_labels(values: Sequence, where_of: Sequence[str], given: Sequence[str] | None, field: str,
                  source: str) -> tuple[list[int], list[str]]:
    """(class index per value, label names): names as given, else the sorted label keys of ``values``."""
    keys = [_label_key(value, where, field) for value, where in zip(values, where_of, strict=True)]
    names = [str(name) for name in given] if given is not None else _sorted_labels(keys)
    index = _label_index(names, source)
    labels = []
    for value, key, where in zip(values, keys, where_of, strict=True):
        if key not in index:
            hint = " (JSON true/false count as 1/0)" if isinstance(value, bool) else ""
            raise DataError(f"{where}: field {field!r}: {value!r} is not one of {names}{hint}")
        labels.append(index[key])
    return labels, names


def _finish(rows: list[dict], where_of: list[str], text: str, text_pair: str | None, label: str | None,
            label_names: Sequence[str] | None, regression: bool, source: str, id_column: str | None):
    text_a, text_b, ids, empty = [], [] if text_pair else None, [], []
    for row, where in zip(rows, where_of, strict=True):
        for column in (text, text_pair, label, id_column):
            if column is not None and column not in row:
                raise DataError(f"{where}: field {column!r} is missing (fields: {sorted(row)})")
        for column in (text, text_pair) if text_pair else (text,):
            if not check_text(row[column], where, column).strip():
                empty.append(f"{where}: field {column!r}")
        text_a.append(row[text])
        if text_b is not None:
            text_b.append(row[text_pair])
        if label is not None and (row[label] is None or isinstance(row[label], (list, dict))):
            raise DataError(f"{where}: field {label!r}: expected a label, got {json.dumps(row[label])[:50]}")
        ids.append(str(row[id_column]) if id_column else where.rsplit(":", 1)[-1])
    warn_empty_texts(source, empty)
    names = None
    labels = None
    if label is not None and regression:
        labels = [_to_target(row[label], where, label) for row, where in zip(rows, where_of, strict=True)]
    elif label is not None:
        labels, names = _class_labels([row[label] for row in rows], where_of, label_names, label, source)
    if not text_a:
        raise DataError(f"{source}: no examples")
    return Examples(text_a, text_b, labels, ids, source=source), names


def _is_header(first: list[str], later_labels: Collection[str], label_names: Sequence[str] | None) -> bool:
    """Whether the first row of a classic BERT TSV is a header line (the rule is in :func:`read_bert_tsv`)."""
    label = first[2].strip()
    if first[0].strip().lower() not in _HEADER_IDS and label.lower() not in _HEADER_LABELS:
        return False
    return label not in later_labels and label not in [str(name).strip() for name in label_names or ()]


def read_bert_tsv(path: str | Path, label_names: Sequence[str] | None = None, has_labels: bool = True,
                  header: bool | None = None, regression: bool = False):
    """Read the classic BERT TSV: ``ID, ALPHA_COL, LABEL, TEXT_A[, TEXT_B]``, QUOTE_NONE, no header line as a rule.
    ``regression``: the label field is a number (a finite float), not a class.

    Header line: with ``header=None`` the first row is taken for a header, and skipped, when its ID field is a
    column name (``id``, ``idx``, ``index``, ``guid``, ``uid``) or its label field is one (``label``, ``labels``,
    ``gold_label``, ``class``, ``category``, ``target``), compared without case, and that label field is neither the
    label of a later row nor one of ``label_names`` (a label the data uses is data, whatever it is called).
    ``header=True`` or ``False`` says it outright. Read as data, a header became an example of class "label".

    Returns:
        (examples, label_names): label order as given, or the sorted labels of this file.

    Raises:
        DataError: a row with another number of fields than the others (the line that differs from most rows: a
            tab inside a text makes one field too many), a label outside ``label_names`` (file, line, field).
    """
    path = Path(path)
    lines_rows: list[tuple[int, list[str]]] = []
    with open_text(path, newline="") as lines:
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) not in (4, 5):
                    raise DataError(f"{path}:{reader.line_num}: expected 4 or 5 tab-separated fields (ID, ALPHA, "
                                    f"LABEL, TEXT_A[, TEXT_B]), got {len(row)}")
                lines_rows.append((reader.line_num, row))
        except csv.Error as err:
            raise DataError(f"{path}:{reader.line_num}: not a tab-separated row ({err})") from None
    counts = Counter(len(row) for _, row in lines_rows)
    # The layout is that of most rows, so the row with the stray tab is the one named, even when it is the first.
    # On a tie the longer rows are blamed: a tab inside a text adds a field, and a lost field is rarer.
    n_fields = 4 if counts[4] >= counts[5] else 5
    if len(counts) > 1:
        line, row = next((line, row) for line, row in lines_rows if len(row) != n_fields)
        cause = ("a tab inside a text makes one field too many: remove it" if len(row) > n_fields else
                 "a field is missing: add it")
        raise DataError(f"{path}:{line}: {len(row)} tab-separated fields where {counts[n_fields]} other row(s) have "
                        f"{n_fields} (ID, ALPHA, LABEL, TEXT_A{', TEXT_B' if n_fields == 5 else ''}); {cause}")
    if lines_rows and (header if header is not None else
                       _is_header(lines_rows[0][1], {row[2].strip() for _, row in lines_rows[1:]}, label_names)):
        lines_rows = lines_rows[1:]
    rows, where_of = [], []
    for line, row in lines_rows:
        record = {"id": row[0], "label": row[2], "text_a": row[3]}
        if n_fields == 5:
            record["text_b"] = row[4]
        rows.append(record)
        where_of.append(f"{path}:{line}")
    return _finish(rows, where_of, "text_a", "text_b" if n_fields == 5 else None, "label" if has_labels else None,
                   label_names, regression, str(path), "id")


def read_csv(path: str | Path, text: str = "text", text_pair: str | None = None, label: str | None = "label",
             label_names: Sequence[str] | None = None, regression: bool = False, id_column: str | None = None,
             delimiter: str = ","):
    """Read a CSV (RFC 4180 quoting, header row) with named text / text-pair / label columns.

    Returns:
        (examples, label_names) — label_names is None for regression or unlabelled files.

    Raises:
        DataError: a row lacks a column or has another number of fields than the header, or a label is outside
            ``label_names`` (file, line, field).
    """
    path = Path(path)
    with open_text(path, newline="") as lines:
        reader = csv.DictReader(lines, delimiter=delimiter)
        try:
            if reader.fieldnames is None:
                raise DataError(f"{path}: the file is empty (expected a header line)")
            check_header(reader.fieldnames, f"{path}:{reader.line_num}", (text, text_pair, label, id_column))
            n_fields = len(reader.fieldnames)
            rows, where_of = [], []
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row or any(value is None for value in row.values()):  # DictReader's marks of extra/missing
                    got = n_fields + len(row.get(None, ())) - sum(value is None for value in row.values())
                    raise DataError(f"{where}: expected {n_fields} fields like the header, got {got}")
                rows.append(row)
                where_of.append(where)
        except csv.Error as err:
            raise DataError(f"{path}:{reader.line_num}: not a {delimiter!r}-separated row ({err})") from None
    return _finish(rows, where_of, text, text_pair, label, label_names, regression, str(path), id_column)


def read_jsonl(path: str | Path, text: str = "text", text_pair: str | None = None, label: str | None = "label",
               label_names: Sequence[str] | None = None, regression: bool = False, id_column: str | None = None):
    """Read JSON Lines, one object per line, with named text / text-pair / label fields.

    Raises:
        DataError: a line is not a JSON object, a field is missing or of the wrong type, or a label is outside
            ``label_names`` (file, line, field).
    """
    path = Path(path)
    rows, where_of = [], []
    with open_text(path) as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
            except (ValueError, RecursionError) as err:  # an integer of > 4300 digits; arrays nested too deep
                raise DataError(f"{where}: JSON that Python cannot hold ({type(err).__name__}: {err})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
            rows.append(record)
            where_of.append(where)
    return _finish(rows, where_of, text, text_pair, label, label_names, regression, str(path), id_column)


def _hf_source(data) -> str:
    return f"dataset({getattr(data, 'info', None) and data.info.dataset_name or 'in memory'})"


def _hf_columns(data, text: str, text_pair: str | None, label: str | None, id_column: str | None):
    """(text_a, text_b, ids, source) of a Hugging Face dataset, after checking that the named columns exist and that
    every text is text: None (a missing value) is refused rather than becoming the text "None"."""
    source = _hf_source(data)
    columns = list(data.column_names)
    for column in (text, text_pair, label, id_column):
        if column is not None and column not in columns:
            raise DataError(f"{source}: column {column!r} is missing (columns: {columns})")
    empty: list[str] = []

    def texts(column: str) -> list[str]:
        values = [check_text(value, f"{source} row {row}", column) for row, value in enumerate(data[column])]
        empty.extend(f"{source} row {row}: field {column!r}" for row, value in enumerate(values) if not value.strip())
        return values

    text_a = texts(text)
    text_b = texts(text_pair) if text_pair else None
    warn_empty_texts(source, empty)
    ids = [str(value) for value in data[id_column]] if id_column else None
    return text_a, text_b, ids, source


def is_multilabel_column(data, label: str) -> bool:
    """Whether column ``label`` holds a list of labels per row: a ``Sequence``/``List`` feature (of ClassLabel,
    integers, strings) or list values."""
    feature = (getattr(data, "features", None) or {}).get(label)
    return getattr(feature, "feature", None) is not None or any(isinstance(v, (list, tuple)) for v in data[label])


def read_hf(data, text: str = "text", text_pair: str | None = None, label: str | None = "label",
            label_names: Sequence[str] | None = None, regression: bool = False, id_column: str | None = None):
    """A ``datasets.Dataset`` (or anything with ``column_names`` and column access) as Examples, with its label
    names, like the file readers: see :func:`examples_from_hf`.

    Returns:
        (examples, label_names) — label_names is None for regression or unlabelled data.
    """
    text_a, text_b, ids, source = _hf_columns(data, text, text_pair, label, id_column)
    labels, names = None, None
    if label is not None:
        if is_multilabel_column(data, label):
            raise DataError(f"{source}: column {label!r} holds a list of labels per row (multi-label); read it with "
                            f"multilabel_from_hf, which gives multi-hot labels")
        raw = list(data[label])
        where_of = [f"{source} row {row}" for row in range(len(raw))]
        if regression:
            labels = [_to_target(value, where, label) for value, where in zip(raw, where_of, strict=True)]
        else:
            feature = (getattr(data, "features", None) or {}).get(label)
            given = label_names or getattr(feature, "names", None)
            if given is not None and all(isinstance(value, int) and not isinstance(value, bool) for value in raw):
                names = [str(name) for name in given]
                bad = [(i, v) for i, v in enumerate(raw) if not 0 <= v < len(names)]
                if bad:
                    row, value = bad[0]
                    raise DataError(f"{source} row {row}: field {label!r}: {value} is outside 0..{len(names) - 1}")
                labels = raw
            else:
                labels, names = _class_labels(raw, where_of, given, label, source)
    return Examples(text_a, text_b, labels, ids, source=source), names


def examples_from_hf(data, text: str = "text", text_pair: str | None = None, label: str | None = "label",
                     label_names: Sequence[str] | None = None, regression: bool = False,
                     id_column: str | None = None) -> Examples:
    """Convert a ``datasets.Dataset`` (or anything with ``column_names`` and column access) to Examples.

    Integer labels are taken as class indices when ``label_names`` is given or the column is a ClassLabel; other
    labels are mapped through ``label_names`` (default: the ClassLabel names, else the sorted distinct labels) by
    their key, as in the file readers (1, 1.0 and True are one class). :func:`read_hf` also returns the names.

    Raises:
        DataError: a missing column, a text that is None or not a string, a non-finite regression target, a label
            outside the label names, or a multi-label column (lists of labels: read it with
            :func:`multilabel_from_hf`; it is never turned into classes of label combinations) — dataset, row, column.
    """
    return read_hf(data, text, text_pair, label, label_names, regression, id_column)[0]


def read_splits(reader: Callable, sources: Mapping[str, object], train: str = "train",
                unlabelled: Collection[str] = (), label_names: Sequence[str] | None = None, **options):
    """The splits of one data set (train / dev / test files, or the splits of a Hugging Face dataset), every one read
    with the label names of the training split.

    Read alone, a file numbers its own sorted labels: a dev file holding only "pos" calls it class 0 where the
    training file has it at 1, and the scores are wrong without an error. Here the training split is read first and
    its label names (``label_names``, when given) are passed to every other split, so a label the training split
    lacks is a DataError naming the file and line.

    Args:
        reader: :func:`read_bert_tsv`, :func:`read_csv`, :func:`read_jsonl` or :func:`read_hf`.
        sources: split name -> path (a dataset for read_hf), the training split among them.
        train: the split whose labels are the reference.
        unlabelled: the splits read without labels (a test file).
        label_names, options: passed to ``reader`` (``text=``, ``regression=``, ...).

    Returns:
        (examples per split, in the order of ``sources``; label_names — None for regression)
    """
    if train not in sources:
        raise DataError(f"splits {list(sources)}: no {train!r} split to take the label names from")
    no_labels = {"has_labels": False} if reader is read_bert_tsv else {"label": None}
    read = {train: reader(sources[train], label_names=label_names, **options)}
    names = read[train][1]
    for split, source in sources.items():
        if split != train:
            read[split] = reader(source, label_names=names, **{**options, **(no_labels if split in unlabelled else {})})
    return {split: read[split][0] for split in sources}, names


def multilabel_from_hf(data, text: str = "text", text_pair: str | None = None, label: str = "label",
                       label_names: Sequence[str] | None = None, id_column: str | None = None):
    """A multi-label Hugging Face dataset as Examples with multi-hot labels (as :func:`~bertbench.data.documents.
    read_documents` makes them with ``label_sep``): ``labels[i][k]`` is 1 when row i has label ``names[k]``.

    The column ``label`` holds per row either the row's labels, as ClassLabel indices (a ``Sequence(ClassLabel)``
    feature; names from ``label_names`` or the ClassLabel) or as label names (strings; names from ``label_names``
    or the sorted distinct names), or a multi-hot list of 0/1 with one entry per label (names from ``label_names``,
    else ``"0"`` ... ``"K-1"``). A row with no label is all zeros.

    Returns:
        (examples, label_names)

    Raises:
        DataError: a row that is not a list, a label outside the label names, a multi-hot list of another length
            than the others (or than ``label_names``) or with a value other than 0/1 (dataset, row, column).
    """
    text_a, text_b, ids, source = _hf_columns(data, text, text_pair, label, id_column)
    raw = list(data[label])
    for row, value in enumerate(raw):
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{source} row {row}: field {label!r}: expected a list of labels, got {value!r}")
    feature = (getattr(data, "features", None) or {}).get(label)
    class_names = getattr(getattr(feature, "feature", None), "names", None)
    flat = [value for values in raw for value in values]
    if class_names is not None or any(isinstance(value, str) for value in flat):  # each row lists its labels
        names = [str(n) for n in label_names or class_names or _sorted_labels([str(value).strip() for value in flat])]
        hot = []
        for row, values in enumerate(raw):
            hot.append([0] * len(names))
            for value in values:
                if isinstance(value, str) and value.strip() in names:
                    hot[-1][names.index(value.strip())] = 1
                elif class_names is not None and type(value) is int and 0 <= value < len(names):
                    hot[-1][value] = 1
                else:
                    raise DataError(f"{source} row {row}: field {label!r}: {value!r} is not one of {names}"
                                    + (f" or an index 0..{len(names) - 1}" if class_names is not None else ""))
    else:  # multi-hot: one 0/1 per label
        width = len(label_names) if label_names is not None else len(raw[0]) if raw else 0
        if not width:
            raise DataError(f"{source}: column {label!r}: no label (empty lists and no label_names)")
        names = [str(n) for n in label_names] if label_names is not None else [str(k) for k in range(width)]
        hot = []
        for row, values in enumerate(raw):
            if len(values) != width or any(value not in (0, 1) for value in values):
                raise DataError(f"{source} row {row}: field {label!r}: {list(values)} is not a multi-hot list of "
                                f"{width} zeros and ones (one per label: {names}); lists of class indices need a "
                                f"Sequence(ClassLabel) feature")
            hot.append([int(value) for value in values])
    return Examples(text_a, text_b, hot, ids, source=source), names
