"""JupyterLab driven in a real headless browser, as a researcher uses it: the lab that `make lab` starts (jupytext's
contents manager, the repository's lab settings in jupyter/), the file browser, a double-click on a notebook, the
tiny preset typed into its parameters cell, Run → Run All Cells, and then what the page shows: an HTML results table
and an inline figure.

Needs what `.ci/run` installs: Debian's Chromium (/usr/bin/chromium) and Playwright for Python (the `test` extra),
which drives that binary (Playwright's own browser download is not reachable here). JupyterLab listens on 127.0.0.1
only, serves a temporary copy of notebooks/ and writes its settings, runtime files and the runs to a temporary folder.
On a failure the page's screenshot and the kernel's error outputs are in the message.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[test,lab]')")
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")

from test_lab import free_port, lab_contents_manager, running_server  # noqa: E402  (the Makefile's own lab settings)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STARTUP_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 420.0  # Run All Cells of a tiny notebook on 2 CPU cores (about a minute when alone)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 over a copy of notebooks/, started as `make lab` starts it; always stopped."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    (root / "notebooks").mkdir(parents=True)
    for path in (ROOT / "notebooks").glob("*.py"):
        shutil.copy(path, root / "notebooks" / path.name)
    shutil.copy(ROOT / "jupytext.toml", root / "jupytext.toml")
    token, port = secrets.token_hex(24), free_port()
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "HF_HUB_OFFLINE": "1",
           "JUPYTER_CONFIG_PATH": str(ROOT / "jupyter"),  # what `make lab` sets: the repository's lab settings
           "BB_OUTPUT_DIR": str(tmp / "outputs"), "BB_RUNS_DIR": str(tmp / "runs")}
    env.pop("BB_PRESET", None)  # the preset comes from the parameters cell, as a user types it
    for var, sub in [("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config"),
                     ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]:
        env[var] = str(tmp / sub)
    # as if the user had once answered "No" to JupyterLab's news prompt (a toast that would cover the outputs)
    notification = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false"}')
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
           f"--ServerApp.root_dir={root}", f"--ServerApp.contents_manager_class={lab_contents_manager()}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    with running_server(cmd, tmp, env, tmp / "lab.log", base, token, STARTUP_TIMEOUT_S) as log_path:
        yield {"base": base, "token": token, "tmp": tmp, "log": log_path}


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def open_by_double_click(page, name: str) -> None:
    """Double-click notebooks/ and then ``name`` in the file browser, as a user does."""
    page.locator(".jp-BreadCrumbs-home").first.click()  # the file browser may reopen where the last page was
    listing = page.locator(".jp-DirListing-content")
    listing.locator(".jp-DirListing-item", has_text="notebooks").first.dblclick()
    listing.locator(".jp-DirListing-item", has_text=name).first.dblclick()
    page.locator(".jp-NotebookPanel").first.wait_for(state="visible", timeout=60_000)
    # a py:percent file names no kernel: JupyterLab asks once, with the Python 3 kernel preselected
    dialog = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    try:
        dialog.first.wait_for(state="visible", timeout=15_000)
        dialog.first.click()
    except playwright_sync.TimeoutError:
        pass  # a kernel was chosen without asking
    page.locator(".jp-NotebookPanel .jp-Notebook-cell").first.wait_for(state="visible", timeout=30_000)


def set_parameter(page, line: str) -> None:
    """Type ``line`` at the end of the parameters cell (the cell that holds ``preset = None``)."""
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell", has_text="preset = None").first
    editor = cell.locator(".cm-content").first
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(line)
    page.wait_for_timeout(300)
    assert line in cell.inner_text(), f"the parameters cell does not show {line!r}:\n{cell.inner_text()}"


def run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()


def kernel_errors(page) -> str:
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    return "\n---\n".join(errors.nth(i).inner_text()[-1500:] for i in range(min(errors.count(), 5)))


def wait_for_results(page, lab, name: str) -> None:
    """Wait until the page shows an HTML DataFrame and an inline PNG in the cells' outputs (or the kernel fails)."""
    table = page.locator(".jp-OutputArea-output table.dataframe")
    figure = page.locator('.jp-OutputArea-output img[src^="data:image/png"]')
    error = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                         has_text=re.compile(r"Traceback|\w+Error\b"))
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        if error.count():
            break
        if table.count() and figure.count():
            return
        page.wait_for_timeout(1000)
    shot = lab["tmp"] / f"{Path(name).stem}-failure.png"
    page.screenshot(path=str(shot), full_page=True)
    pytest.fail(f"{name}: after Run All Cells the page shows {table.count()} HTML table(s) and {figure.count()} "
                f"inline figure(s); screenshot {shot}\nkernel errors:\n{kernel_errors(page)}\n"
                f"lab log:\n{lab['log'].read_text()[-2000:]}")


EXTRA_PARAMETERS = {"04_long_documents.py": ('runs = ("head", "windows+mean_prob")',)}


@pytest.mark.parametrize("name", ["03_glue_finetune.py", "04_long_documents.py"])
def test_double_click_set_tiny_in_the_parameters_cell_run_all_shows_a_table_and_a_figure(lab, browser, name):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # a workspace of its own, reset: no tab restored from the previous case's page
        url = f"{lab['base']}/lab/workspaces/{Path(name).stem}?reset&token={lab['token']}"
        page.goto(url, wait_until="domcontentloaded")
        page.locator(".jp-DirListing-item").first.wait_for(state="visible", timeout=90_000)
        open_by_double_click(page, name)
        # the notebook view (cells), not the text editor: the repository's default-viewer setting acted
        assert page.locator(".jp-NotebookPanel .jp-MarkdownCell").count() > 0
        set_parameter(page, 'preset = "tiny"')
        for line in EXTRA_PARAMETERS.get(name, ()):  # what a user narrows to look first (the kernel test runs all)
            set_parameter(page, line)
        run_all(page)
        wait_for_results(page, lab, name)
        outputs = lab["tmp"] / "outputs"  # BB_OUTPUT_DIR of the lab's kernels
        assert (outputs / name.replace(".py", ".csv")).is_file(), f"no {name} results in {outputs}"
        # the screenshot of what the user sees, in the test's temporary folder (LAB_SCREENSHOT_DIR=docs: how
        # docs/jupyterlab-03_glue_finetune.png was taken)
        folder = Path(os.environ.get("LAB_SCREENSHOT_DIR") or lab["tmp"])
        page.locator(".jp-OutputArea-output img[src^='data:image/png']").first.scroll_into_view_if_needed()
        shot = folder / f"jupyterlab-{Path(name).stem}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        page.close()
        shutdown_kernels(lab)


def shutdown_kernels(lab) -> None:
    """Closing a tab leaves its kernel running (as in JupyterLab): stop every kernel so the next case has the CPU."""
    headers = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(f"{lab['base']}/api/kernels", headers=headers)) as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(f"{lab['base']}/api/kernels/{kernel['id']}", headers=headers,
                                         method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()
