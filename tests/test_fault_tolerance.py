"""The training loop under interruption and failure, in-process (the SIGKILL tests of whole notebooks are in
test_resume.py): exact resume mid-epoch, NaN and out-of-memory stops, checkpoints of other runs refused, a
tokenizer that does not fit the model, out-of-range config values, unwritable folders, finished runs skipped, and
runs whose rows this machine did not write (a fresh clone's committed rows) run again as a reproducibility check."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch.utils.data import DataLoader

import bertbench as bb
from bertbench.checkpoint import STATE_FILE, finished_runs, start_or_skip
from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode
from bertbench.models import build_classifier
from bertbench.results import ResultsError, compare_rows, make_rows, replace_results
from bertbench.train import OutOfMemory, TrainSettings, fit, predict

SETTINGS = TrainSettings(epochs=2, lr=3e-3, mixed_precision="no", checkpoint_every=1, log_every=1)


def _data(tokenizer, n=24):
    examples = bb.Examples([f"sentence {i} " + "word " * (i % 7) for i in range(n)], labels=[i % 2 for i in range(n)])
    dataset = encode(examples, tokenizer, 32)
    loader = DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset.lengths, 4, seed=0),
                        collate_fn=PadCollator(tokenizer))
    return dataset, loader


def _model(tokenizer):
    torch.manual_seed(0)
    return build_classifier("random-bert-1x32", tokenizer, ("a", "b"))[0]


class Interrupt(Exception):
    pass


def _stop_at(call: int):
    """A loss that raises on its ``call``-th use (a crash in the middle of an epoch)."""
    calls = [0]

    def loss(model, batch):
        calls[0] += 1
        if calls[0] == call:
            raise Interrupt
        return model(**batch).loss
    return loss


def test_fit_interrupted_mid_epoch_resumes_to_the_same_weights_and_history(bert_tokenizer, tmp_path):
    """6 batches per epoch; stopped in epoch 2 at batch 3 (dropout on: the RNG states must be restored too)."""
    dataset, loader = _data(bert_tokenizer)
    evaluate = lambda m: {"score": float(predict(m, dataset, PadCollator(bert_tokenizer), 8)[:, 1].mean())}  # noqa: E731
    expected, full = fit(_model(bert_tokenizer), loader, evaluate, "score", SETTINGS, tmp_path / "a" / "best",
                         resume_dir=tmp_path / "a" / "resume", fingerprint="run")
    with pytest.raises(Interrupt):
        fit(_model(bert_tokenizer), loader, evaluate, "score", SETTINGS, tmp_path / "b" / "best",
            resume_dir=tmp_path / "b" / "resume", fingerprint="run", loss_fn=_stop_at(9))
    saved = json.loads((tmp_path / "b" / "resume" / STATE_FILE).read_text())
    assert (saved["epoch"], saved["batches_done"], saved["step"]) == (1, 2, 8)  # mid-epoch
    resumed, result = fit(_model(bert_tokenizer), loader, evaluate, "score", SETTINGS, tmp_path / "b" / "best",
                          resume_dir=tmp_path / "b" / "resume", fingerprint="run")
    assert result.history == full.history and result.best_epoch == full.best_epoch
    assert result.examples_seen == full.examples_seen
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_a_finished_fit_is_not_trained_again(bert_tokenizer, tmp_path):
    _, loader = _data(bert_tokenizer)
    fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best", resume_dir=tmp_path / "resume",
        fingerprint="run")
    _, again = fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best",
                   resume_dir=tmp_path / "resume", fingerprint="run", loss_fn=_stop_at(1))  # would raise if called
    assert len(again.history) == 2


def test_a_resume_checkpoint_of_another_run_is_refused(bert_tokenizer, tmp_path):
    _, loader = _data(bert_tokenizer)
    with pytest.raises(Interrupt):
        fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best",
            resume_dir=tmp_path / "resume", fingerprint="run-a", loss_fn=_stop_at(3))
    with pytest.raises(ValueError, match="run-a.*not 'run-b'.*BB_RESUME=0"):
        fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best",
            resume_dir=tmp_path / "resume", fingerprint="run-b")


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(bert_tokenizer, tmp_path):
    _, loader = _data(bert_tokenizer)
    calls = [0]

    def loss(model, batch):
        calls[0] += 1
        value = model(**batch).loss
        return value * float("nan") if calls[0] >= 9 else value

    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 3 .*last checkpoint before it is .*resume"):
        fit(_model(bert_tokenizer), loader, None, "score", SETTINGS, tmp_path / "best",
            resume_dir=tmp_path / "resume", fingerprint="run", loss_fn=loss)
    saved = json.loads((tmp_path / "resume" / STATE_FILE).read_text())
    assert saved["step"] == 8 and saved["history"][0]["train_loss"] > 0  # the step before the NaN
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "resume" / "model.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())


def test_out_of_memory_names_the_settings_to_lower(bert_tokenizer, tmp_path):
    dataset, loader = _data(bert_tokenizer)

    def loss(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    settings = bb.GlueConfig.from_env(environ={}, batch_size=48, max_len=256).train_settings()
    with pytest.raises(OutOfMemory, match=r"batch 1 \(input_ids of shape \(4, \d+\)\).*batch_size \(48; "
                                          r"BB_BATCH_SIZE.*max_len \(256; BB_MAX_LEN\)"):
        fit(_model(bert_tokenizer), loader, None, "score", settings, tmp_path / "best", loss_fn=loss)

    class Exhausted(torch.nn.Module):
        def forward(self, **batch):
            raise torch.OutOfMemoryError("CUDA out of memory")

    model = Exhausted()
    model.dummy = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(OutOfMemory, match="BB_EVAL_BATCH_SIZE"):
        predict(model, dataset, PadCollator(bert_tokenizer), 8)


def test_a_tokenizer_larger_than_the_models_embeddings_is_refused_before_training(bert_tokenizer, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    small = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=64))
    small.save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match=r"tokenizer has 30522 tokens but .* has 1000 embeddings"):
        build_classifier(str(tmp_path / "small"), bert_tokenizer, ("a", "b"))


def test_a_checkpoint_whose_weights_fit_another_architecture_is_a_clear_error(bert_tokenizer, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    saved = BertForSequenceClassification(BertConfig(vocab_size=len(bert_tokenizer), hidden_size=32, num_labels=3,
                                                     num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    saved.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config.update(hidden_size=64, num_attention_heads=4)  # the weights are 32 wide
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="weights do not fit the model its config.json describes"):
        build_classifier(str(tmp_path / "ckpt"), bert_tokenizer, ("a", "b"))


@pytest.mark.parametrize("config, changes, field", [
    (bb.GlueConfig, {"lr": 0.0}, "lr"), (bb.GlueConfig, {"batch_size": 0}, "batch_size"),
    (bb.GlueConfig, {"max_len": 4}, "max_len"), (bb.GlueConfig, {"checkpoint_every": -1}, "checkpoint_every"),
    (bb.GlueConfig, {"checkpoint_minutes": -1.0}, "checkpoint_minutes"),
    (bb.GlueConfig, {"val_fraction": 0.9}, "val_fraction"), (bb.GlueConfig, {"dropout": 1.5}, "dropout"),
    (bb.LongDocConfig, {"stride": 600}, "stride"), (bb.LongDocConfig, {"max_windows_per_pass": 0},
                                                     "max_windows_per_pass"),
    (bb.PretrainConfig, {"mask_prob": 1.5}, "mask_prob"), (bb.PretrainConfig, {"warmup_fraction": -0.1},
                                                            "warmup_fraction"),
])
def test_config_values_out_of_range_are_rejected_when_the_config_is_built(config, changes, field):
    with pytest.raises(ValueError, match=field):
        config.from_env(environ={}, **changes)
    with pytest.raises(ValueError, match=field):  # from the environment as well
        config.from_env(environ={f"BB_{key.upper()}": str(value) for key, value in changes.items()})


def test_unwritable_checkpoint_folder_is_detected_before_training(glue_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BB_RUNS_DIR", str(blocker / "runs"))
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte"})
    with pytest.raises(OSError, match="cannot create the runs folder .*BB_RUNS_DIR"):
        bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(ResultsError, match="cannot write results to .*BB_OUTPUT_DIR"):
        bb.run_glue(cfg, blocker / "out.csv", verbose=False)
    assert not (tmp_path / "out.csv").exists()


def test_rerun_skips_finished_runs_and_resume_0_runs_them_again(glue_dir, tmp_path, capsys):
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0"})
    first = bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    capsys.readouterr()
    again = bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    assert "already in" in capsys.readouterr().out
    assert again["created_at"].tolist() == first["created_at"].tolist()  # read back, not trained again
    fresh = bb.run_glue(cfg.replace(resume=False), tmp_path / "out.csv", verbose=False)
    stored = bb.load_results(tmp_path / "out.csv")
    assert len(stored) == len(first) and set(stored["run_id"]) == set(first["run_id"])
    assert stored["wall_s"].tolist() == fresh["wall_s"].tolist()  # the new run's rows replaced the old


def _finished_run(run_id: str, created_at: str | None = None) -> list[dict]:
    common = {"run_id": run_id, "notebook": "03_glue_finetune", "preset": "cpu", "model": "minilm", "task": "sst2",
              "seed": 0, "init": "pretrained", "head_init": "new", "selection": "best_epoch_on_train_holdout",
              "max_len": 128, "train_examples": 100, "device": "cpu", "wall_s": 1.5, "config": "{}"}
    rows = make_rows(common, [("dev", 1, "score", 0.8956), ("train", 1, "train_s", 12.5)])
    return [{**row, "created_at": created_at} for row in rows] if created_at else rows


@pytest.mark.parametrize("run_id", ["sst2-s0-2dacceacb0", "hyperpartisan-windows-mean_prob-s0-abc123",
                                    "../probes/my model:v2"])
def test_rows_this_machine_did_not_write_are_run_again_and_it_says_so(run_id, tmp_path, monkeypatch, capsys):
    """A fresh clone has the committed rows of every run but not this machine's record of writing them: they run
    again (issue 20 item 11: ``make glue`` on a fresh clone re-reported 5 of 6 tasks from the committed file)."""
    path, resume = tmp_path / "outputs" / "03_glue_finetune.csv", tmp_path / "resume"
    bb.write_results(_finished_run(run_id), path)
    assert start_or_skip(True, path, run_id, resume, "sst2 seed 0") is not None  # written here: skipped
    assert "already in" in capsys.readouterr().out
    machine = bb.runs_dir()
    monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / "fresh-clone-runs"))
    assert start_or_skip(True, path, run_id, resume, "sst2 seed 0") is None
    assert capsys.readouterr().out == f"[sst2 seed 0] rows of run {run_id} in {path} were not made on this machine: " \
                                      "running it again to check that they reproduce\n"
    assert finished_runs(path, [run_id]) == {}
    assert start_or_skip(True, path, run_id, resume) is None and "not made on this machine" in capsys.readouterr().out
    records = [p for p in machine.rglob("*") if p.is_file()]
    assert [p.parent for p in records] == [machine / "finished"]  # one record, a safe name inside the folder


def test_other_rows_of_a_run_this_machine_wrote_are_not_its_own(tmp_path):
    """Rows brought back by git (or a pull) over the ones this machine wrote: the record names the rows it wrote
    (their created_at), so the run is run again; files written with replace_results (the aggregation) record nothing.
    """
    path = tmp_path / "out.csv"
    bb.write_results(_finished_run("sst2-s0-abc"), path)
    assert set(finished_runs(path, ["sst2-s0-abc"])) == {"sst2-s0-abc"}
    replace_results(_finished_run("sst2-s0-abc", created_at="2020-01-01T00:00:00+00:00"), path)
    assert finished_runs(path, ["sst2-s0-abc"]) == {}
    replace_results(_finished_run("aggregate"), tmp_path / "aggregate.csv")
    assert finished_runs(tmp_path / "aggregate.csv", ["aggregate"]) == {}
    assert [p.name for p in (bb.runs_dir() / "finished").iterdir()] == ["sst2-s0-abc.json"]


def test_a_fresh_clone_trains_committed_runs_again_and_reports_that_they_reproduced(glue_dir, tmp_path, monkeypatch,
                                                                                    capsys):
    """The committed file kept, runs/ fresh: the run trains again and, on one CPU, gives the same floats."""
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0"})
    path = tmp_path / "out.csv"
    first = bb.run_glue(cfg, path, verbose=False)
    run_id = first["run_id"].iloc[0]
    capsys.readouterr()
    monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / "fresh-clone-runs"))
    again = bb.run_glue(cfg, path, verbose=False)
    printed = capsys.readouterr().out
    assert f"rows of run {run_id} in {path} were not made on this machine" in printed
    assert re.search(rf"^reproduced: \d+ metrics of run {run_id} equal to the last digit", printed, re.MULTILINE)
    trained = again[again["metric"] == "train_s"]["value"].tolist()
    assert trained != first[first["metric"] == "train_s"]["value"].tolist()  # measured again: trained, not read
    assert set(compare_rows(first, bb.load_results(path))["status"]) == {"equal"}
    bb.run_glue(cfg, path, verbose=False)
    assert "already in" in capsys.readouterr().out  # now finished on this machine too


# -------------------------------------------------------------- issue 24: the files a run writes, read before it trains


@pytest.mark.parametrize("broken", ["results", "predictions"])
def test_a_broken_results_or_predictions_file_fails_before_training_even_with_resume_0(glue_dir, tmp_path, broken):
    """BB_RESUME=0 read nothing before training: the run trained, wrote its predictions, then failed at the results
    write, leaving predictions of a run with no rows. Both files are now read first, and written together."""
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0",
                                          "BB_PREDICT_TEST": "0", "BB_RESUME": "0"})
    path, predictions = tmp_path / "out.csv", bb.predictions_path(tmp_path / "out.csv")
    bb.write_results(_finished_run("other-run"), path)
    predictions.parent.mkdir()
    predictions.write_text("run_id,task,split,example,label,prediction\nother-run,rte,dev,0,1,1\n"
                           "other-run,rte,dev,1,0,1\n")
    cut = path if broken == "results" else predictions
    lines = cut.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 3 if broken == "results" else 1)[0]  # a row cut short by hand or by a crash
    cut.write_text("\n".join(lines) + "\n")
    before = path.read_bytes(), predictions.read_bytes()
    message = r"out.csv:2: 19 fields where the header has 22" if broken == "results" else \
        r"predictions/out.csv:2: 5 fields where the header has 6"
    with pytest.raises(ResultsError, match=message):
        bb.run_glue(cfg, path, verbose=False)
    assert (path.read_bytes(), predictions.read_bytes()) == before
    assert not list((bb.runs_dir() / "glue").glob("rte-*"))  # nothing trained: no run folder, no resume state


def test_the_aggregation_checks_its_output_folders_before_any_work(tmp_path, monkeypatch):
    """Notebook 06 on a read-only outputs folder failed at figures/ after all its reading and bootstrapping."""
    import errno
    import tempfile

    from bertbench.experiments.aggregate_results import summary

    cfg = bb.AggregateConfig.from_env(environ={}, results_dir=str(tmp_path / "outputs"), ditbert_dir="none")
    monkeypatch.setattr(summary, "read_outputs", lambda folder: pytest.fail("read before its folders were checked"))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ResultsError, match=rf"{blocker} is a file, not a folder; set BB_RESULTS_DIR"):
        bb.aggregate_outputs(cfg, figures_dir=blocker / "figures")

    def read_only(*args, **kwargs):  # tests run as root, whom a chmod'ed folder does not stop: simulated
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(ResultsError, match=r"cannot write results to .*outputs: Read-only file system; set "
                                           "BB_RESULTS_DIR"):
        bb.aggregate_outputs(cfg, figures_dir=tmp_path / "outputs" / "figures")


def test_a_full_disk_between_checkpoints_keeps_the_last_one_and_says_how_to_go_on(tmp_path):
    """ENOSPC while a checkpoint is written: the previous complete checkpoint stays, the half-written copy is removed
    (its space given back), and the message says nothing is lost and to run the same command again."""
    import errno

    from bertbench.checkpoint import CheckpointWriteError, existing_folder, replace_folder

    folder = tmp_path / "resume"
    replace_folder(folder, lambda temporary: (temporary / STATE_FILE).write_text("first"))

    def full_disk(temporary):
        (temporary / "model.safetensors").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CheckpointWriteError, match=r"No space left on device.*previous complete checkpoint .*"
                                                   r"untouched.*run the same command again"):
        replace_folder(folder, full_disk)
    assert (existing_folder(folder, STATE_FILE) / STATE_FILE).read_text() == "first"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["resume"]  # no .tmp left
    with pytest.raises(CheckpointWriteError, match="no earlier checkpoint of this run exists"):
        replace_folder(tmp_path / "other", full_disk)
