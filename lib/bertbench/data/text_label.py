"""Generic labelled text that users bring: classic BERT TSV, CSV, JSONL, and Hugging Face datasets.

The classic BERT TSV layout has no header and the columns ``ID, ALPHA_COL, LABEL, TEXT_A[, TEXT_B]`` (the alpha
column is a throw-away letter kept by the original run_classifier recipes). Labels may be strings or integers;
their order is given by ``label_names`` or, if not given, is the sorted set of labels in the file, and is returned so
that the dev and test files of the same task use the same order.

All file readers here: a malformed row is a DataError naming the file, the line and the field; empty or
whitespace-only texts are kept (a test row still needs its prediction) and reported in one DataWarning per file; bytes
that are not UTF-8 are decoded as cp1252 with a DataWarning (see :func:`~bertbench.data.examples.open_text`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from .examples import DataError, Examples, check_text, open_text, warn_empty_texts


def _to_label(raw, label_names: list[str] | None, regression: bool, where: str) -> int | float:
    if regression:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"{where}: field 'label': {raw!r} is not a number") from None
        if isinstance(raw, bool) or not math.isfinite(value):  # JSON true would be 1.0; NaN would poison the loss
            raise DataError(f"{where}: field 'label': {raw!r} is not a finite number")
        return value
    if label_names is None:
        raise DataError(f"{where}: label_names must be known to read labels")
    key = str(raw).strip()
    if key in label_names:
        return label_names.index(key)
    raise DataError(f"{where}: field 'label': {raw!r} is not one of {label_names}")


def _label_names_from(values: Sequence, given: Sequence[str] | None) -> list[str]:
    if given is not None:
        return [str(name) for name in given]
    distinct = {str(value).strip() for value in values}
    # integers sort numerically ("2" before "10"); anything else alphabetically
    return sorted(distinct, key=lambda v: (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v))


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
    if label is not None:
        names = None if regression else _label_names_from([row[label] for row in rows], label_names)
        labels = [_to_label(row[label], names, regression, where) for row, where in zip(rows, where_of, strict=True)]
    if not text_a:
        raise DataError(f"{source}: no examples")
    return Examples(text_a, text_b, labels, ids, source=source), names


def read_bert_tsv(path: str | Path, label_names: Sequence[str] | None = None, has_labels: bool = True):
    """Read the classic BERT TSV: ``ID, ALPHA_COL, LABEL, TEXT_A[, TEXT_B]``, no header, QUOTE_NONE.

    Returns:
        (examples, label_names): label order as given, or the sorted labels of this file.

    Raises:
        DataError: a row with another number of fields, or a label outside ``label_names`` (file, line, field).
    """
    path = Path(path)
    rows, where_of = [], []
    n_fields = None
    with open_text(path, newline="") as lines:
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) not in (4, 5):
                    raise DataError(f"{where}: expected 4 or 5 tab-separated fields (ID, ALPHA, LABEL, TEXT_A"
                                    f"[, TEXT_B]), got {len(row)}")
                n_fields = n_fields or len(row)
                if len(row) != n_fields:
                    raise DataError(f"{where}: expected {n_fields} fields like the first row, got {len(row)}")
                record = {"id": row[0], "label": row[2], "text_a": row[3]}
                if n_fields == 5:
                    record["text_b"] = row[4]
                rows.append(record)
                where_of.append(where)
        except csv.Error as err:
            raise DataError(f"{path}:{reader.line_num}: not a tab-separated row ({err})") from None
    return _finish(rows, where_of, "text_a", "text_b" if n_fields == 5 else None, "label" if has_labels else None,
                   label_names, False, str(path), "id")


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
    """(text_a, text_b, ids, source) of a Hugging Face dataset, after checking that the named columns exist."""
    columns = list(data.column_names)
    for column in (text, text_pair, label, id_column):
        if column is not None and column not in columns:
            raise DataError(f"dataset: column {column!r} is missing (columns: {columns})")
    text_a = [str(value) for value in data[text]]
    text_b = [str(value) for value in data[text_pair]] if text_pair else None
    ids = [str(value) for value in data[id_column]] if id_column else None
    return text_a, text_b, ids, _hf_source(data)


def is_multilabel_column(data, label: str) -> bool:
    """Whether column ``label`` holds a list of labels per row: a ``Sequence``/``List`` feature (of ClassLabel,
    integers, strings) or list values."""
    feature = (getattr(data, "features", None) or {}).get(label)
    return getattr(feature, "feature", None) is not None or any(isinstance(v, (list, tuple)) for v in data[label])


def examples_from_hf(data, text: str = "text", text_pair: str | None = None, label: str | None = "label",
                     label_names: Sequence[str] | None = None, regression: bool = False,
                     id_column: str | None = None) -> Examples:
    """Convert a ``datasets.Dataset`` (or anything with ``column_names`` and column access) to Examples.

    Integer labels are taken as class indices when ``label_names`` is given or the column is a ClassLabel; string
    labels are mapped through ``label_names`` (default: the ClassLabel names, else the sorted distinct labels).

    Raises:
        DataError: a missing column, a label outside the label names, or a multi-label column (lists of labels:
            read it with :func:`multilabel_from_hf`; it is never turned into classes of label combinations).
    """
    text_a, text_b, ids, source = _hf_columns(data, text, text_pair, label, id_column)
    labels = None
    if label is not None:
        if is_multilabel_column(data, label):
            raise DataError(f"{source}: column {label!r} holds a list of labels per row (multi-label); read it with "
                            f"multilabel_from_hf, which gives multi-hot labels")
        raw = list(data[label])
        if regression:
            labels = [float(value) for value in raw]
        else:
            feature = (getattr(data, "features", None) or {}).get(label)
            names = label_names or getattr(feature, "names", None)
            if all(isinstance(value, int) for value in raw) and names is not None:
                bad = [(i, v) for i, v in enumerate(raw) if not 0 <= v < len(names)]
                if bad:
                    row, value = bad[0]
                    raise DataError(f"{source} row {row}: field {label!r}: {value} is outside 0..{len(names) - 1}")
                labels = raw
            else:
                names = _label_names_from(raw, names)
                labels = [_to_label(value, names, False, f"{source} row {i}") for i, value in enumerate(raw)]
    return Examples(text_a, text_b, labels, ids, source=source)


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
        names = [str(n) for n in label_names or class_names or _label_names_from(flat, None)]
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
