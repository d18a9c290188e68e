"""Kill a real training notebook with SIGKILL in the middle of an epoch, run the same command again, and get what an
uninterrupted run gives: the same metrics, no duplicated and no missing rows.

Each test runs the notebook three times as a plain script in its own process (``python notebooks/NN.py``, the
``tiny`` preset on real data): once uninterrupted into one folder, once killed when its resume checkpoint shows it
mid-epoch, and once more with the same command into the killed run's folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import bertbench as bb
from bertbench.results import varies_by_machine

ROOT = Path(__file__).resolve().parents[1]
# metrics that measure time or memory, not the model: they differ between any two runs
KEY = ["run_id", "task", "variant", "layer", "seed", "split", "step", "metric"]

pytestmark = pytest.mark.slow


def _env(folder: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BB_")}
    env.update(BB_PRESET="tiny", BB_OUTPUT_DIR=str(folder / "outputs"), BB_RUNS_DIR=str(folder / "runs"),
               BB_NUM_THREADS="1", HF_HUB_OFFLINE="1", **settings)
    if "BB_DATA_DIR" in os.environ:
        env["BB_DATA_DIR"] = os.environ["BB_DATA_DIR"]
    return env


def _run(notebook: str, env: dict[str, str], log: Path, kill_when: Callable[[], bool] | None = None,
         timeout: float = 600) -> int:
    """Run the notebook as a script; with ``kill_when``, SIGKILL it as soon as that returns True."""
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "notebooks" / notebook)], env=env, cwd=ROOT,
                                   stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if kill_when is not None and kill_when():
                process.send_signal(signal.SIGKILL)
                process.wait()
                return process.returncode
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"{notebook} did not finish in {timeout} s; log {log}")
            time.sleep(0.01)
    assert process.returncode == 0, f"{notebook} failed:\n{log.read_text()[-4000:]}"
    return 0


def _loop_states(runs: Path, kind: str) -> list[dict]:
    """Every resume checkpoint's loop state under ``runs/<kind>/*/resume`` (None-safe while one is swapped in)."""
    states = []
    for path in list(runs.glob(f"{kind}/*/resume/loop_state.json")):
        try:
            states.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return states


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[~frame["metric"].map(varies_by_machine)]  # times, speeds and memory: the machine's, not the run's
    return frame[KEY + ["value"]].sort_values(KEY).reset_index(drop=True)


def _check_resumed(tmp_path: Path, notebook: str, kill_when_for: Callable[[Path], Callable[[], bool]],
                   fit_kind: str = "", **settings: str) -> pd.DataFrame:
    """Reference run, killed run, resumed run; the resumed rows must equal the reference's (timing aside).

    Both run in the same folder (the reference is moved aside before the killed run starts): paths under runs/ go
    into some run ids. ``fit_kind``: the runs/ subfolder of a notebook trained by ``train.fit``, whose resume
    checkpoint must show the kill came mid-epoch and must be gone at the end.
    """
    name = notebook.removesuffix(".py")
    work, reference = tmp_path / "work", tmp_path / "reference"
    _run(notebook, _env(work, **settings), tmp_path / "reference.log")
    work.rename(reference)
    killed = _run(notebook, _env(work, **settings), tmp_path / "killed.log", kill_when=kill_when_for(work / "runs"))
    assert killed == -signal.SIGKILL, "the run ended before it could be killed"
    if fit_kind:
        at_kill = [state for state in _loop_states(work / "runs", fit_kind) if not state["finished"]]
        assert at_kill and all(state["batches_done"] > 0 for state in at_kill), at_kill  # killed mid-epoch
    _run(notebook, _env(work, **settings), tmp_path / "resumed.log")
    if fit_kind:
        assert "resuming from" in (tmp_path / "resumed.log").read_text()
        assert not list((work / "runs").glob(f"{fit_kind}/*/resume")), "resume checkpoints left after the runs"

    expected = bb.load_results(reference / "outputs" / f"{name}.csv")
    got = bb.load_results(work / "outputs" / f"{name}.csv")
    assert not got.duplicated(KEY).any(), "duplicated rows after resuming"
    expected, got = _comparable(expected), _comparable(got)
    assert got[KEY].equals(expected[KEY]), "missing or extra rows after resuming"
    pd.testing.assert_series_equal(got["value"], expected["value"], check_exact=False, rtol=1e-6, atol=1e-7)
    return got


def _file_shows(pattern: str, runs_key: Callable[[dict], bool]) -> Callable[[Path], Callable[[], bool]]:
    """A kill condition: some JSON file matching ``pattern`` under runs/ satisfies ``runs_key``."""
    def for_runs(runs: Path) -> Callable[[], bool]:
        def due() -> bool:
            for path in runs.glob(pattern):
                try:
                    if runs_key(json.loads(path.read_text())):
                        return True
                except (OSError, json.JSONDecodeError, KeyError):
                    continue
            return False
        return due
    return for_runs


def _mid_epoch(fingerprint: str, low: int, high: int) -> Callable[[dict], bool]:
    return lambda state: fingerprint in state["fingerprint"] and low <= state["batches_done"] <= high


def test_glue_killed_mid_epoch_resumes_to_the_same_rows(tmp_path, glue_dir):
    """Notebook 03: seed 0 finished before the kill (kept, not re-run), seed 1 killed mid-epoch and continued."""
    _check_resumed(tmp_path, "03_glue_finetune.py", _file_shows("glue/*/resume/loop_state.json",
                                                                _mid_epoch("-s1-", 2, 8)),
                   fit_kind="glue", BB_TASKS="rte", BB_MAX_TRAIN_EXAMPLES="256", BB_CHECKPOINT_EVERY="1")
    predictions = pd.read_csv(tmp_path / "work" / "outputs" / "predictions" / "03_glue_finetune.csv")
    assert not predictions.duplicated(["run_id", "split", "example"]).any()
    assert predictions["run_id"].nunique() == 2


def test_long_documents_killed_mid_epoch_resume_to_the_same_rows(tmp_path):
    _check_resumed(tmp_path, "04_long_documents.py", _file_shows("longdoc/*/resume/loop_state.json",
                                                                 _mid_epoch("windows", 1, 4)),
                   fit_kind="longdoc", BB_DATASETS="hyperpartisan", BB_DATASET_OVERRIDES="",
                   BB_RUNS="head,windows+mean_prob", BB_CHECKPOINT_EVERY="1", BB_MAX_TRAIN_DOCS="32")


def test_model_heads_killed_mid_epoch_resume_to_the_same_rows(tmp_path, glue_dir):
    _check_resumed(tmp_path, "05_model_heads.py", _file_shows("heads/*/resume/loop_state.json",
                                                              _mid_epoch("multitask", 1, 6)),
                   fit_kind="heads", BB_CHECKPOINT_EVERY="1")


def test_pretraining_killed_between_evaluations_resumes_to_the_same_rows(tmp_path):
    """Notebook 02 (its own loop): killed after a checkpoint between two evaluations."""
    _check_resumed(tmp_path, "02_pretrain_mlm.py", _file_shows("pretrain/*/checkpoint/trainer_state.json",
                                                               lambda state: 2 <= state["step"] <= 6),
                   BB_TOKENIZER="minilm", BB_CHECKPOINT_EVERY="1")


def test_layer_probes_killed_between_probes_resume_to_the_same_rows(tmp_path, glue_dir):
    """Notebook 05 (probes): killed after some probes of a run were saved; the rest are trained on re-running."""
    _check_resumed(tmp_path, "05_layer_probes.py", _file_shows("probes/*/progress/entries.json",
                                                               lambda saved: len(saved["done"]) >= 2))
