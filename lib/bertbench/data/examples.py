"""The in-memory form every reader returns (parallel lists of texts, optional text pairs, labels and ids), and what
the readers share: :class:`DataError` and :class:`DataWarning`; :func:`open_text`, which reads a text file as
UTF-8 with a legacy-encoding fallback (BBC's ``sport/199.txt`` is latin-1); and what every reader refuses, in
:func:`check_text` (a missing text, a lone surrogate, a NUL byte) and :func:`check_header` (a column named twice).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import random
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

# One document on one line is legitimate input (a long article in a CSV cell); the csv default limit is 128 KiB.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

# Bytes that are not UTF-8 arrive as U+DC80..U+DCFF (the surrogateescape handler) and are replaced by their cp1252
# character, or their latin-1 one for the five bytes cp1252 leaves undefined.
_ESCAPED_BYTE = re.compile(r"[\udc80-\udcff]")
_LEGACY_CHAR = {0xDC00 + byte: bytes([byte]).decode("cp1252", errors="ignore") or chr(byte)
                for byte in range(0x80, 0x100)}
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file, the line and the field."""


class DataWarning(UserWarning):
    """A data file was read, but not as it stands: bytes that are not UTF-8, or empty texts (the message says)."""


def _decoded_lines(handle, path: Path) -> Iterator[str]:
    warned = False
    for line_no, line in enumerate(handle, 1):
        if _ESCAPED_BYTE.search(line):
            line = line.translate(_LEGACY_CHAR)
            if not warned:
                warnings.warn(f"{path}:{line_no}: bytes that are not UTF-8 (first on this line), decoded as cp1252 "
                              f"(latin-1) instead; re-save the file as UTF-8 to silence this", DataWarning,
                              stacklevel=3)
                warned = True
        yield line


@contextlib.contextmanager
def open_text(path: str | Path, newline: str | None = None) -> Iterator[Iterator[str]]:
    """The lines of a UTF-8 text file (a BOM dropped), with a fallback for bytes that are not UTF-8.

    Such bytes are decoded as cp1252 (latin-1 for the five bytes cp1252 lacks), with one :class:`DataWarning` per
    file naming the file and the first line that has them. Lines are decoded as they are read (streaming).

    Args:
        path: the file.
        newline: as for :func:`open` (``""`` for the csv module).

    Raises:
        DataError: the file is UTF-16 (a BOM says so): it would otherwise read as garbage.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        if raw.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path}: UTF-16 text (it starts with a UTF-16 byte order mark); save it as UTF-8")
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline=newline) as handle:
        yield _decoded_lines(handle, path)


def check_text(value: object, where: str, field: str) -> str:
    """``value`` if it is a string a tokenizer accepts; DataError naming ``where`` and ``field`` otherwise.

    Refused: anything but a string (None is a missing value, never the text "None"), a lone surrogate, and a NUL
    byte. NUL is refused rather than stripped: no text file holds one, so it means the file is not what it claims
    (UTF-16 without a byte order mark, a binary or truncated file), and the rest of the row cannot be trusted either.
    """
    if not isinstance(value, str):
        hint = " (a missing value: fill it in or drop the row)" if value is None else ""
        raise DataError(f"{where}: field {field!r}: expected text, got {type(value).__name__}{hint}")
    if surrogate := _LONE_SURROGATE.search(value):
        # JSON can spell one ("\ud800"); tokenizers then fail with a TypeError far from the file
        raise DataError(f"{where}: field {field!r}: a lone surrogate {surrogate.group()!r} at character "
                        f"{surrogate.start()} is not valid Unicode text")
    if (nul := value.find("\x00")) >= 0:
        raise DataError(f"{where}: field {field!r}: a NUL byte at character {nul}; text files hold none (is the file "
                        f"UTF-16 without a byte order mark, or binary?): re-save it as UTF-8 text")
    return value


def check_header(names: Sequence[str], where: str, wanted: Sequence[str | None] = ()) -> None:
    """Refuse a header that names a column twice: reading a row by name would silently take the last such column.

    Blank names may repeat (unnamed trailing columns) unless one of them is asked for (``wanted``).
    """
    repeated = sorted({name for name in names if names.count(name) > 1 and (name.strip() or name in wanted)})
    if repeated:
        raise DataError(f"{where}: the header names column(s) {repeated} more than once (columns: {list(names)}); "
                        f"rename them so that each column has its own name")


def warn_empty_texts(source: str | Path, empty: list[str]) -> None:
    """One :class:`DataWarning` for the empty or whitespace-only texts of a file (``empty``: where each one is)."""
    if empty:
        warnings.warn(f"{empty[0]}: empty or whitespace-only text ({len(empty)} in {source}); kept as they are, "
                      f"the model sees only special tokens for them", DataWarning, stacklevel=3)


@dataclasses.dataclass
class Examples:
    """Labelled (or unlabelled) single texts or text pairs.

    Attributes:
        text_a: first text of each example.
        text_b: second text of each example, or None for single-text tasks.
        labels: class indices (int), regression targets (float), or None for unlabelled splits (GLUE test).
        ids: an identifier per example (the file's index column, or the line number).
        source: where the examples came from, for messages.
    """

    text_a: list[str]
    text_b: list[str] | None = None
    labels: list[int] | list[float] | None = None
    ids: list[str] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.text_a)
        for name in ("text_b", "labels", "ids"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise DataError(f"{self.source}: {name} has {len(value)} entries but text_a has {n}")
        if self.ids is None:
            self.ids = [str(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.text_a)

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    def select(self, indices: Sequence[int]) -> Examples:
        """The examples at ``indices``, in that order."""
        pick = lambda values: None if values is None else [values[i] for i in indices]  # noqa: E731
        return Examples(pick(self.text_a), pick(self.text_b), pick(self.labels), pick(self.ids), self.source)

    def split(self, fraction: float, seed: int) -> tuple[Examples, Examples]:
        """Shuffle with ``seed`` and split off ``fraction`` of the examples: (rest, held_out)."""
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        n_held = max(1, round(fraction * len(self))) if fraction > 0 else 0
        return self.select(order[n_held:]), self.select(order[:n_held])

    def subsample(self, limit: int, seed: int) -> Examples:
        """At most ``limit`` examples drawn at random with ``seed`` (all of them when ``limit`` is 0 or larger)."""
        if limit <= 0 or limit >= len(self):
            return self
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        return self.select(sorted(order[:limit]))
