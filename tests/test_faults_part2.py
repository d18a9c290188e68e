"""Issue 24 ("bad input and faults, part 2"): two copies of one run, damaged resume state, mistyped model folders,
data too small for its splits, and the wall time of a resumed run. The config checks of the issue (NaN values,
overrides, an empty BB_PRESET) are in test_config.py, the pickled ``trainer.pt`` in test_safe_loading.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import bertbench as bb
from bertbench.checkpoint import STATE_FILE, remove_training_state, start_or_skip
from bertbench.data.examples import DataError
from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode
from bertbench.models import build_classifier, resolve_model
from bertbench.train import TrainSettings, fit


class Interrupt(Exception):
    pass


SETTINGS = TrainSettings(epochs=2, lr=3e-3, mixed_precision="no", checkpoint_every=1, log_every=1)


def _loader(tokenizer, n=16):
    examples = bb.Examples([f"sentence {i} " + "word " * (i % 5) for i in range(n)], labels=[i % 2 for i in range(n)])
    dataset = encode(examples, tokenizer, 32)
    return DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset.lengths, 4, seed=0),
                      collate_fn=PadCollator(tokenizer))


def _model(tokenizer):
    torch.manual_seed(0)
    return build_classifier("random-bert-1x32", tokenizer, ("a", "b"))[0]


# ----------------------------------------------------------------------------------------------- item 4: run locks
HOLDER = textwrap.dedent("""
    import sys, time
    from bertbench.checkpoint import start_or_skip
    start_or_skip(True, sys.argv[1], sys.argv[2], sys.argv[3])
    print("holding", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process that has started run ``glue-rte-s0-abc`` (and holds it until killed)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "out.csv"), "glue-rte-s0-abc",
                                str(tmp_path / "runs" / "glue" / "glue-rte-s0-abc" / "resume")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()  # blocks until the lock is taken (or the process dies)
        assert line == "holding\n", f"the holder failed: {line}{process.stdout.read()}"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_process_starting_the_same_run_is_refused_naming_the_first(holder, tmp_path):
    """Two copies of one command shared one checkpoint folder with no lock: the others crashed with raw
    FileNotFoundError/SafetensorError and the survivor resumed from another copy's half-written checkpoint."""
    resume = tmp_path / "runs" / "glue" / "glue-rte-s0-abc" / "resume"
    with pytest.raises(RuntimeError, match=rf"run glue-rte-s0-abc is already being trained .*pid {holder.pid} ") as err:
        start_or_skip(True, tmp_path / "out.csv", "glue-rte-s0-abc", resume, "rte seed 0")
    message = str(err.value)
    assert "running it since" in message and " -c " in message  # its start time and its command
    assert "Wait for that process to finish" in message
    # other runs (another seed: another run id) are never blocked, and a refused run keeps nothing of its own
    assert start_or_skip(True, tmp_path / "out.csv", "glue-rte-s1-abc", tmp_path / "s1" / "resume") is None
    holder.kill()
    holder.wait()
    # the kernel released the dead holder's lock: the run can start again, and continue from its checkpoint
    assert start_or_skip(True, tmp_path / "out.csv", "glue-rte-s0-abc", resume) is None
    lock = bb.runs_dir() / "locks" / "glue-rte-s0-abc.lock"
    assert json.loads(lock.read_text())["pid"] != holder.pid
    remove_training_state(resume)  # the run ends: its lock is released and its file removed
    assert not lock.exists()


def test_a_run_started_again_in_the_same_process_keeps_its_lock(tmp_path):
    """A notebook cell run again after an error (same kernel, same run) is no second copy."""
    for _ in range(2):
        assert start_or_skip(True, tmp_path / "out.csv", "rte-s0-x", tmp_path / "resume") is None
    assert start_or_skip(False, tmp_path / "out.csv", "rte-s0-x", tmp_path / "resume") is None


# ------------------------------------------------------------------------------------- item 6: damaged resume state
@pytest.mark.parametrize("damage", ['{"fingerprint": "run", "epoch": ', "[]", '{"fingerprint": "run", "colour": 1}'])
def test_a_damaged_loop_state_names_the_file_and_the_way_out(bert_tokenizer, tmp_path, damage):
    """A damaged ``loop_state.json`` gave a raw JSONDecodeError (or TypeError)."""
    loader = _loader(bert_tokenizer)
    fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best", resume_dir=tmp_path / "resume",
        fingerprint="run")
    (tmp_path / "resume" / STATE_FILE).write_text(damage)
    with pytest.raises(ValueError, match=rf"{STATE_FILE}: damaged.*BB_RESUME=0") as err:
        fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best",
            resume_dir=tmp_path / "resume", fingerprint="run")
    assert str(tmp_path / "resume" / STATE_FILE) in str(err.value)


def test_damaged_resume_weights_name_the_file_and_the_way_out(bert_tokenizer, tmp_path):
    loader = _loader(bert_tokenizer)
    fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best", resume_dir=tmp_path / "resume",
        fingerprint="run")
    weights = tmp_path / "resume" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match=r"model\.safetensors: damaged.*BB_RESUME=0"):
        fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best",
            resume_dir=tmp_path / "resume", fingerprint="run")


# -------------------------------------------------------------------------------------- item 5: mistyped model path
@pytest.mark.parametrize("name", ["./runs/pretrain/mlm-typo", "runs/pretrain/mlm-typo", "~/no-such-model-folder",
                                  "no-such-model-folder/", "/no/such/model",
                                  "notebooks/mlm-typo"])  # one slash, but notebooks/ is a folder here: no hub org
def test_a_mistyped_local_model_folder_is_reported_as_a_missing_folder(name):
    """It reached the hub client, which called it an invalid repo id."""
    with pytest.raises(FileNotFoundError, match=r"^folder not found: \S*(mlm-typo|no-such-model-folder|no/such/mod)"):
        resolve_model(name)
    with pytest.raises(FileNotFoundError, match="folder not found"):
        bb.load_tokenizer(name)


@pytest.mark.parametrize("name", ["bert-base-uncased", "google/electra-small-discriminator", "random-bert-2x64"])
def test_hub_names_are_passed_on_unchanged(name):
    assert resolve_model(name) == name


# -------------------------------------------------------------------------------- item 3: data too small to split
def _documents(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"docs{n}.csv"
    rows = [f'd{i},"document {i} about {"sport" if i % 2 else "politics"} and more words",{"ab"[i % 2]}'
            for i in range(n)]
    path.write_text("id,text,label\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("n, cv_folds, empty", [(3, 0, "test"), (2, 3, "fold")])
def test_long_documents_too_few_for_the_splits_are_refused_before_training(tmp_path, n, cv_folds, empty):
    """3 documents trained, then failed with ZeroDivisionError on the empty test split."""
    cfg = bb.LongDocConfig.from_env(environ={"BB_PRESET": "tiny"}, datasets=(str(_documents(tmp_path, n)),),
                                    runs=("head",), dataset_overrides="", id_column="id", cv_folds=cv_folds)
    with pytest.raises(DataError, match=rf"docs{n}: {n} documents leave .*{empty}.*at least 1 document") as err:
        bb.run_long_documents(cfg, tmp_path / "out.csv", verbose=False)
    assert "BB_CV_FOLDS" in str(err.value)
    assert not (tmp_path / "out.csv").exists() and not list(bb.runs_dir().glob("longdoc/*/resume"))


# ----------------------------------------------------------------------------- item 7: wall time of a resumed run
def test_a_resumed_fit_returns_the_earlier_processes_seconds(bert_tokenizer, tmp_path):
    """The loop's share, used by every notebook's ``wall_s`` (GLUE, heads, long documents: ``train.run_seconds``)."""
    loader, calls = _loader(bert_tokenizer), [0]

    def slow_then_crash(model, batch):  # 4 batches an epoch; crash at batch 3 of epoch 2, 1.5 s slept before
        calls[0] += 1
        if calls[0] == 7:
            raise Interrupt
        time.sleep(0.25)
        return model(**batch).loss

    started = time.perf_counter()
    with pytest.raises(Interrupt):
        fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best", resume_dir=tmp_path / "resume",
            fingerprint="run", loss_fn=slow_then_crash, started=started - 10.0)  # the run began 10 s before fit
    saved = json.loads((tmp_path / "resume" / STATE_FILE).read_text())
    assert saved["step"] == 6 and saved["wall_seconds"] >= 10.0 + 1.5
    _, result = fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best",
                    resume_dir=tmp_path / "resume", fingerprint="run")
    assert result.earlier_seconds == saved["wall_seconds"]
    _, fresh = fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "other" / "best",
                   resume_dir=tmp_path / "other" / "resume", fingerprint="run")
    assert fresh.earlier_seconds == 0.0


def test_a_resumed_glue_run_records_its_total_wall_time(glue_dir, tmp_path, monkeypatch):
    """A resumed run recorded only its last process's time in ``wall_s`` (17.6 s against 31 s uninterrupted)."""
    from bertbench.experiments.glue_finetune import runs

    real_fit, calls = runs.fit, [0]

    def slow_loss(model, batch):  # 0.5 s a batch, then a crash in epoch 2 after 6 batches (checkpoints every step)
        calls[0] += 1
        if calls[0] == 7:
            raise Interrupt
        time.sleep(0.5)
        return model(**batch).loss

    monkeypatch.setattr(runs, "fit", lambda *args, **kwargs: real_fit(*args, **{**kwargs, "loss_fn": slow_loss}))
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0",
                                          "BB_CHECKPOINT_EVERY": "1", "BB_PREDICT_TEST": "0"})
    with pytest.raises(Interrupt):
        bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    monkeypatch.setattr(runs, "fit", real_fit)
    started = time.perf_counter()
    rows = bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    last_process = time.perf_counter() - started
    # the 3 s slept before the last checkpoint are part of the run's time, on top of all of the last process's
    assert rows["wall_s"].iloc[0] >= last_process + 2.0, (rows["wall_s"].iloc[0], last_process)
