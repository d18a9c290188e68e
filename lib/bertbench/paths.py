"""Where things live: repo root, data, outputs, run artefacts, caches.

Nothing here depends on the working directory: jupytext/nbclient run a notebook with cwd = notebooks/, a plain
``python notebooks/x.py`` uses the caller's cwd. Every path is resolved from an environment variable or from the
repository root (the first parent holding ``pyproject.toml``).
"""

from __future__ import annotations

import os
from pathlib import Path

# Environment variables that name paths rather than config fields (accepted next to every config's BB_* fields).
PATH_ENV_VARS = ("BB_DATA_DIR", "BB_OUTPUT_DIR", "BB_RUNS_DIR")


def repo_root() -> Path:
    """The bertbench checkout (parent of ``lib/``), found by walking up to ``pyproject.toml``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "lib" / "bertbench").is_dir():
            return parent
    # Installed non-editable: fall back to the working directory, the only sensible anchor left.
    return Path.cwd()


def data_dir() -> Path:
    """Root of the shared data (``glue/``, ``hyperpartisan/``, ...): ``$BB_DATA_DIR`` or ``../shared/data``."""
    env = os.environ.get("BB_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (repo_root().parent / "shared" / "data").resolve()


def outputs_dir(preset: str | None = None) -> Path:
    """Result CSVs and figures: ``$BB_OUTPUT_DIR``, else ``<repo>/outputs``.

    ``outputs/`` holds real runs only (it is committed and compared): without ``BB_OUTPUT_DIR``, a ``tiny``-preset
    run writes to ``<runs>/tiny-outputs`` instead.
    """
    env = os.environ.get("BB_OUTPUT_DIR")
    if env:
        path = Path(env).expanduser().resolve()
    elif preset == "tiny":
        path = runs_dir() / "tiny-outputs"
    else:
        path = repo_root() / "outputs"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a read-only disk, or BB_OUTPUT_DIR naming a file: say which folder and what to set
        reason = "a file is in the way" if isinstance(err, FileExistsError | NotADirectoryError) else err.strerror
        raise OSError(f"cannot create the outputs folder {path} (result CSVs, figures): {reason or err}; "
                      "set BB_OUTPUT_DIR to a writable folder") from None
    return path


def runs_dir() -> Path:
    """Checkpoints, submission files and TensorBoard logs (outside git): ``$BB_RUNS_DIR`` or ``<repo>/runs``."""
    env = os.environ.get("BB_RUNS_DIR")
    path = Path(env).expanduser().resolve() if env else repo_root() / "runs"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the runs folder {path} (checkpoints, submissions): {err.strerror or err}; "
                      "set BB_RUNS_DIR to a writable folder") from None
    return path


def portable_path(path: str | Path) -> str:
    """``path`` as results record it, the same on every machine (no machine paths in committed outputs/):
    ``<data>/...`` inside the data folder, ``<runs>/...`` inside the runs folder, relative to the repository inside
    the checkout; a path elsewhere (the user's own file) stays as given."""
    resolved = Path(path).expanduser().resolve()
    for anchor, label in ((data_dir(), "<data>"), (runs_dir(), "<runs>")):
        if resolved.is_relative_to(anchor):
            return (Path(label) / resolved.relative_to(anchor)).as_posix()
    if resolved.is_relative_to(repo_root()):
        return resolved.relative_to(repo_root()).as_posix()
    return str(path)
