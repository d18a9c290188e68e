"""CSV files read strictly and written safely: the machinery under :mod:`bertbench.results` and its predictions.

Reading uses the csv module, not pandas, so that a row cut short, a field too many or a duplicated header is an
error naming file and line instead of a silently padded row; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is
read, and a file in another encoding or with semicolons for commas (Excel in some locales) is named as such.
Writing goes through a temporary file beside the target and ``os.replace`` (a crash never leaves half a file),
under an exclusive ``flock`` from reading the old rows to replacing them (two runs merging at once lose nothing),
and :func:`write_files` writes several files so that all or none of them change. OS errors on the way are turned
into messages that name the file, say that nothing was lost and what to do (:func:`updating`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import pandas as pd

from .dist import is_main_process

try:
    import fcntl
except ImportError:  # Windows has no flock: writes stay atomic, but two runs merging at once may drop rows
    fcntl = None


class ResultsError(ValueError):
    """A results or predictions file (or new rows) does not follow its schema, or cannot be written; the message
    names the file, line and field, and what to do."""


def stage(path: Path, write: Callable[[TextIO], object]) -> str:
    """Call ``write(handle)`` on a new temporary file in ``path``'s folder; returns its name (to ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            write(out)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared like any written file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path, write: Callable[[TextIO], object]) -> None:
    """Call ``write(handle)`` on a temporary file in ``path``'s folder and ``os.replace`` it onto ``path``."""
    write_files([(path, write)])


def write_files(files: Sequence[tuple[Path, Callable[[TextIO], object]]]) -> None:
    """Write each ``(path, write)`` to a temporary file beside it, then replace the files in order.

    Every new file is written in full before any old one is replaced, so an error while writing (a full disk, a
    read-only folder) leaves all of them as they were: a run's predictions never land without its rows. Should a
    replace fail after an earlier one succeeded, the earlier files get their old content back (kept as hard links
    until the end; where the folder has none, they keep the new content).
    """
    staged: list[tuple[str, Path]] = []
    kept: list[tuple[Path, str | None]] = []  # (path, a link to its old content; "": there was none)
    try:
        for path, write in files:
            staged.append((stage(path, write), path))
        for tmp, path in staged:
            old = keep_old(path) if len(files) > 1 else None
            try:
                os.replace(tmp, path)
            except BaseException:
                if old:
                    Path(old).unlink(missing_ok=True)
                raise
            kept.append((path, old))  # replaced: put back if a later one fails
    except BaseException:
        for tmp, _path in staged:
            Path(tmp).unlink(missing_ok=True)
        for path, old in reversed(kept):
            if old == "":
                path.unlink(missing_ok=True)
            elif old:
                os.replace(old, path)
        raise
    finally:
        for _path, old in kept:
            if old:
                Path(old).unlink(missing_ok=True)


def keep_old(path: Path) -> str | None:
    """A hard link to ``path``'s current content ("" if there is no file; None if the folder cannot link)."""
    if not path.exists():
        return ""
    link = path.parent / f".{path.name}.{os.getpid()}.old"
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
    except OSError:
        return None
    return str(link)


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` from reading its old rows to replacing it (read-merge-replace).

    Without it, two runs merging into one file at once both read the old rows and the later replace drops the
    other's run. The lock is ``flock`` on ``.<name>.lock`` beside the file, removed on release while still held; a
    waiter that then gets the lock of the removed file sees another file (inode) at the path and locks that instead.
    Not taken on non-main processes (they write nothing) or where there is no ``fcntl`` (Windows). A results file
    and its predictions are locked in that order (``results.write_results``), never the other way round.
    """
    if fcntl is None or not is_main_process():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    while True:
        handle = open(lock_path, "a")  # closed when the lock is released
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()


@contextlib.contextmanager
def updating(path: Path):
    """Say what an OS error while updating ``path`` means: which file, that nothing was lost, what to do."""
    try:
        yield
    except OSError as err:
        full = err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(path) else ""
        advice = ("free some space, or set BB_OUTPUT_DIR to a folder on another disk" if full else
                  "make the folder writable, or set BB_OUTPUT_DIR to a writable folder")
        raise ResultsError(f"cannot write {path}: {err.strerror or err}{where}. Nothing was lost: it keeps its earlier "
                           "content (a file is replaced only once its new version is complete, and a run's rows and "
                           f"predictions change together or not at all). To finish: {advice}, then run the notebook "
                           "again: runs already written are skipped, and this one resumes from its training state "
                           "in BB_RUNS_DIR where it kept one (else it trains again)") from None


def check_folder(folder: Path, min_free_bytes: int, variable: str) -> None:
    """Refuse a folder that cannot be created or written, or whose disk has less than ``min_free_bytes`` free."""
    blocker = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ResultsError(f"cannot write results to {folder}: {blocker} is a file, not a folder; set {variable} to "
                           "a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise ResultsError(f"cannot write results to {folder}: {err.strerror or err}; "
                           f"set {variable} to a writable folder") from None
    if free < min_free_bytes:
        raise ResultsError(f"cannot write results to {folder}: its disk is (nearly) full, {free / 2**20:.1f} MiB free "
                           f"(at least {min_free_bytes / 2**20:.0f} MiB needed); free some space or set "
                           f"{variable} to a folder on another disk")


def read_rows(file: Path) -> tuple[pd.DataFrame, list[int]]:
    """The file's rows as text (empty fields missing) and the line each row starts on; a row that is not whole fails.

    Read with the csv module, not pandas: pandas fills a short row (a file cut mid-row, a deleted field) with NaN
    without a word. Line numbers are the file's own: a quoted field may span lines. A file re-saved by Excel as
    "CSV UTF-8" reads as written (its byte-order mark is dropped; CRLF line ends are CSV's own), and so do the
    empty rows (``,,,``) it may append; a file in another encoding or separated by semicolons is named as such.
    """
    header: list[str] | None = None
    rows, lines = [], []
    start = 1  # the line the next row starts on
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            for row in reader:
                if header is None:
                    header = row
                elif not any(field.strip() for field in row):  # a blank line or a row of empty fields: no data
                    pass
                elif len(row) != len(header):
                    raise ResultsError(f"{file}:{start}: {len(row)} fields where the header has {len(header)} "
                                       f"(a row cut short or hand-edited)")
                else:
                    rows.append(row)
                    lines.append(start)
                start = reader.line_num + 1
    except csv.Error as err:
        raise ResultsError(f"{file}:{start}: not a readable CSV row ({err}): an unclosed quote, a stray quote "
                           f"or a file cut short") from None
    except UnicodeDecodeError as err:
        raise ResultsError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start}): a spreadsheet saved it in "
                           "another encoding; save it as \"CSV UTF-8\" (or restore it with git)") from None
    if header is None:
        raise ResultsError(f"{file}: the file is empty")
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        separator = "semicolons" if ";" in header[0] else "tabs"
        raise ResultsError(f"{file}:1: the fields are separated by {separator}, not commas (a spreadsheet in a "
                           "locale that uses them); save it as \"CSV UTF-8 (comma delimited)\" (or restore it with "
                           "git)")
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        raise ResultsError(f"{file}:1: column(s) {duplicated} appear more than once in the header")
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return frame.where(frame != ""), lines
