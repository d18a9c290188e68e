"""`make lab` as a user meets it: a real Jupyter server, started with the contents manager that the Makefile's `lab:`
target selects, serves every notebooks/*.py as a notebook over its REST API (what JupyterLab's *Open With → Notebook*
asks for), with the cells jupytext reads, and writes no .ipynb into the repo. No browser, no JupyterLab needed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("jupyter_server", reason="jupyter_server is not installed (pip install -e '.[test]')")
jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
STARTUP_TIMEOUT_S = 30.0


def lab_contents_manager() -> str:
    """The `--ServerApp.contents_manager_class=...` of the Makefile's `lab:` recipe (continuation lines joined)."""
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    recipe = re.search(r"^lab:.*\n((?:\t.*\n?)+)", makefile, flags=re.MULTILINE)
    assert recipe, "the Makefile has no `lab:` target"
    found = re.search(r"--ServerApp\.contents_manager_class=(\S+)", recipe.group(1))
    assert found, "`make lab` must select jupytext's contents manager with --ServerApp.contents_manager_class=..."
    return found.group(1).strip("'\"")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, token: str, timeout: float = 10.0) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def ipynb_files() -> set[Path]:
    return set((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module; always stopped (terminate, then kill), whatever the tests do."""
    tmp = tmp_path_factory.mktemp("jupyter")
    token, port = secrets.token_hex(24), free_port()
    env = dict(os.environ)
    # Runtime files, cookie secret, user config and IPython profile all go to tmp, never into the repo or $HOME.
    for var, sub in [
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("IPYTHONDIR", "ipython"),
    ]:
        env[var] = str(tmp / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={ROOT}",
        f"--ServerApp.contents_manager_class={lab_contents_manager()}",
        # jupytext's server extension would wrap any contents manager in jupytext's: switched off, so that this test
        # proves the Makefile's own setting is enough (with the setting in place the extension does nothing anyway).
        "--ServerApp.jpserver_extensions=jupyterlab_jupytext=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with running_server(cmd, tmp, env, tmp / "server.log", f"http://127.0.0.1:{port}", token,
                        STARTUP_TIMEOUT_S) as log_path:
        yield {"base": f"http://127.0.0.1:{port}", "token": token, "log": log_path}


@contextlib.contextmanager
def running_server(cmd: list[str], cwd: Path, env: dict, log_path: Path, base: str, token: str, startup_s: float):
    """Start ``cmd`` (a Jupyter server on 127.0.0.1), wait until ``base``/api/status answers, yield its log's path;
    always stopped afterwards (terminate, then kill), whatever the tests did."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[2]} exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                get_json(f"{base}/api/status", token, timeout=2.0)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"{cmd[2]} not up after {startup_s}s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.2)
        yield log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_notebooks_found():
    assert NOTEBOOKS, "no notebooks/*.py"


def test_listing_shows_py_as_notebooks(server):
    """The file browser's view of notebooks/: each .py is listed as a notebook (the notebook icon)."""
    listing = get_json(f"{server['base']}/api/contents/notebooks?content=1", server["token"])
    kinds = {entry["name"]: entry["type"] for entry in listing["content"]}
    assert {path.name: kinds.get(path.name) for path in NOTEBOOKS} == {path.name: "notebook" for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_py_opens_as_notebook(server, path):
    before = ipynb_files()
    url = f"{server['base']}/api/contents/notebooks/{path.name}?type=notebook&content=1"
    try:
        try:
            model = get_json(url, server["token"])
        except urllib.error.HTTPError as err:
            pytest.fail(f"GET {url} -> {err.code}: {err.read()[:2000]!r}\n{server['log'].read_text()[-4000:]}")
    finally:
        created = ipynb_files() - before
        for extra in created:
            extra.unlink()
    assert not created, f"opening {path.name} wrote {sorted(p.name for p in created)} into notebooks/ (removed)"

    assert model["type"] == "notebook", f"{path.name} came back as {model['type']!r}, not as a notebook"
    assert model["format"] == "json"
    nb = model["content"]
    assert nb["nbformat"] == 4
    expected = jupytext.read(path)
    got = [(cell["cell_type"], cell["source"]) for cell in nb["cells"]]
    assert got == [(cell.cell_type, cell.source) for cell in expected.cells]
    assert got[0][0] == "markdown", f"{path.name}: the first cell should be markdown (the notebook's title)"
    assert any(kind == "code" and "import bertbench as bb" in src for kind, src in got), (
        f"{path.name}: no code cell imports bertbench as bb"
    )
