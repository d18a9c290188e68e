"""Text corpora for tokenizer training and MLM pretraining, read as streams of documents (never all in memory).

Readers yield one non-empty document (a string, paragraphs joined by newlines) at a time, so a corpus larger than
memory works; bytes that are not UTF-8 are decoded as cp1252 with a DataWarning naming the file:
- the WikiExtractor dump (``<doc ...>`` / title line / body / ``</doc>``): empty stub documents and title lines dropped;
- plain text files or folders of them: documents separated by blank lines;
- WikiText (tokenized v1): articles split at `` = Title = `` headings, heading lines and ``<unk>`` dropped, the
  ``@-@``/``@,@``/``@.@`` escapes undone;
- an HF dataset text column (streaming when loaded with ``streaming=True``).

:func:`open_corpus` turns a config string into a :class:`Corpus` that can be iterated several times.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from ..paths import data_dir
from .examples import DataError, open_text

_WIKITEXT_ESCAPES = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_WIKITEXT_TITLE = re.compile(r"^ = [^=].* = $")
# any heading (" = = Section = = " too), without nested repeats: those backtrack cubically on a long "= = = ..." line
_WIKITEXT_HEADING = re.compile(r"^ = .* = $")


def iter_wikiextractor(paths: Iterable[str | Path]) -> Iterator[str]:
    """Documents of WikiExtractor output files: the title line and empty (stub) documents are dropped.

    Raises:
        DataError: text outside a ``<doc>`` element or an unclosed element, naming the file and line.
    """
    for path in paths:
        with open_text(path) as handle:
            inside, title_pending, lines, opened_at = False, False, [], 0
            for line_no, line in enumerate(handle, 1):
                if line.startswith("<doc "):
                    if inside:
                        raise DataError(f"{path}:{line_no}: <doc> opened inside the <doc> of line {opened_at}")
                    inside, title_pending, lines, opened_at = True, True, [], line_no
                elif line.startswith("</doc>"):
                    body = "\n".join(lines)
                    if body:
                        yield body
                    inside = False
                elif inside:
                    stripped = line.strip()
                    if title_pending:  # the first line repeats the title
                        title_pending = False
                    elif stripped:
                        lines.append(stripped)
                elif line.strip():
                    raise DataError(f"{path}:{line_no}: text outside a <doc> element (not WikiExtractor output?)")
            if inside:
                raise DataError(f"{path}: the <doc> opened on line {opened_at} is never closed (truncated file?)")


def iter_text_files(paths: Iterable[str | Path]) -> Iterator[str]:
    """Documents of plain UTF-8 text files: runs of non-blank lines separated by blank lines."""
    for path in paths:
        with open_text(path) as handle:
            lines: list[str] = []
            for line in handle:
                stripped = line.strip()
                if stripped:
                    lines.append(stripped)
                elif lines:
                    yield "\n".join(lines)
                    lines = []
            if lines:
                yield "\n".join(lines)


def iter_wikitext(path: str | Path) -> Iterator[str]:
    """Articles of a tokenized WikiText file, headings and ``<unk>`` removed (they are not text a tokenizer sees)."""
    lines: list[str] = []
    with open_text(path) as handle:
        for line in handle:
            if _WIKITEXT_TITLE.match(line.rstrip("\n")) and lines:
                yield "\n".join(lines)
                lines = []
            if not line.strip() or _WIKITEXT_HEADING.match(line.rstrip("\n")):
                continue
            text = line.strip().replace("<unk>", " ")
            for escaped, plain in _WIKITEXT_ESCAPES:
                text = text.replace(escaped, plain)
            if text := " ".join(text.split()):  # a line of only <unk> is no text
                lines.append(text)
    if lines:
        yield "\n".join(lines)


def iter_hf_text(dataset, column: str) -> Iterator[str]:
    """Non-empty values of ``column`` of an HF ``Dataset`` or ``IterableDataset``."""
    names = getattr(dataset, "column_names", None)
    if names is not None and column not in names:
        raise DataError(f"HF dataset has no column {column!r}; columns are {names}")
    for record in dataset:
        text = record[column]
        if text and text.strip():
            yield text.strip()


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A named, re-iterable stream of documents (``max_docs`` > 0 keeps only the first ones)."""

    name: str
    open: Callable[[], Iterator[str]]
    max_docs: int = 0

    def __iter__(self) -> Iterator[str]:
        documents = self.open()
        empty = True
        for document in islice(documents, self.max_docs) if self.max_docs else documents:
            empty = False
            yield document
        if empty:  # fail here, not in the tokenizer trainer or an empty DataLoader
            raise DataError(f"corpus {self.name!r}: no documents (empty files, or only blank lines and headings)")


def batched(documents: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of up to ``size`` documents (for the tokenizers' batch encoders), still streaming."""
    iterator = iter(documents)
    while batch := list(islice(iterator, size)):
        yield batch


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{path}: no files")
    return files


def _looks_like_wikiextractor(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return line.startswith("<doc ")
    return False


def open_corpus(spec: str, max_docs: int = 0) -> Corpus:
    """A corpus from a config string.

    Args:
        spec: ``wikipedia`` (the WikiExtractor dump under ``$BB_DATA_DIR``), ``wikitext2-valid`` /
            ``wikitext2-test``, ``hf:<dataset>[:<config>]:<split>:<column>`` (streamed from the hub, online), or a
            file or folder (WikiExtractor output if its first line opens a ``<doc>``, else plain text).
        max_docs: keep only the first ``max_docs`` documents (0 = all).
    """
    if spec == "wikipedia":
        root = data_dir() / "wikipedia_en_wikiextractor" / "original" / "text"
        if not root.is_dir():
            raise DataError(f"Wikipedia dump not found at {root} (set BB_DATA_DIR to the folder holding it)")
        files = sorted(root.rglob("wiki_*"))
        return Corpus(spec, lambda: iter_wikiextractor(files), max_docs)
    if spec.startswith("wikitext2-"):
        split = spec.removeprefix("wikitext2-")
        path = data_dir() / "wikitext2_tokenized_valid_test" / "original" / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"WikiText-2 {split} not found at {path} (only valid and test are staged)")
        return Corpus(spec, lambda: iter_wikitext(path), max_docs)
    if spec.startswith("hf:"):
        parts = spec.split(":")[1:]
        if len(parts) not in (3, 4):
            raise DataError(f"corpus {spec!r}: expected hf:<dataset>[:<config>]:<split>:<column>")
        dataset_name, config_name, split, column = parts if len(parts) == 4 else (parts[0], "", *parts[1:])

        def stream() -> Iterator[str]:
            from datasets import load_dataset

            dataset = load_dataset(dataset_name, config_name or None, split=split, streaming=True)
            return iter_hf_text(dataset, column)

        return Corpus(spec, stream, max_docs)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"corpus {spec!r}: not 'wikipedia', 'wikitext2-valid|test', 'hf:...', nor an existing path")
    files = _files_under(path)
    reader = iter_wikiextractor if _looks_like_wikiextractor(files[0]) else iter_text_files
    return Corpus(str(path), lambda: reader(files), max_docs)
