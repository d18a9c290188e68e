"""Per-example GLUE dev predictions: written beside the results by every run, reproducing the reported metrics,
replaced on a re-run, and backfilled from a saved best checkpoint (``predict_saved_runs``)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import bertbench as bb
from bertbench.experiments.glue_finetune import PREDICTION_COLUMNS, load_eval_splits, read_predictions
from bertbench.results import write_predictions

TASKS = ("rte", "stsb")  # one classification and the regression task


def _tiny_cfg():
    return bb.GlueConfig.from_env(environ={
        "BB_PRESET": "tiny", "BB_TASKS": ",".join(TASKS), "BB_SEEDS": "0", "BB_MAX_TRAIN_EXAMPLES": "40",
        "BB_MAX_EVAL_EXAMPLES": "16", "BB_EPOCHS": "2", "BB_PREDICT_TEST": "0", "BB_KEEP_CHECKPOINTS": "1"})


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, glue_dir):
    """One tiny run per task with its checkpoint kept; shared by the tests, which copy what they change."""
    folder = tmp_path_factory.mktemp("glue_predictions")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BB_RUNS_DIR", str(folder / "runs"))
        frame = bb.run_glue(_tiny_cfg(), folder / "out.csv", verbose=False)
    return folder, frame


def _copy_results(tiny_runs, tmp_path):
    folder, _ = tiny_runs
    shutil.copy(folder / "out.csv", tmp_path / "out.csv")
    return tmp_path / "out.csv"


def test_a_run_writes_one_prediction_per_dev_example(tiny_runs):
    folder, frame = tiny_runs
    predictions = read_predictions(bb.predictions_path(folder / "out.csv"))
    assert tuple(predictions.columns) == PREDICTION_COLUMNS
    assert set(predictions["run_id"]) == set(frame["run_id"])
    assert set(predictions["split"]) == {"dev"}  # not the train_holdout selection split
    cfg = _tiny_cfg()
    for task_name, run in predictions.groupby("task"):
        task = bb.get_task(task_name)
        dev = load_eval_splits(cfg, task)["dev"]
        assert run["example"].tolist() == list(range(len(dev)))
        np.testing.assert_allclose(run["label"].to_numpy(float), np.asarray(dev.labels, dtype=float))
        if not task.is_regression:
            assert set(run["prediction"].astype(int)) <= set(range(task.num_labels))


def test_each_row_names_the_attention_kernel_the_run_took(tiny_runs):
    _, frame = tiny_runs
    # BB_ATTENTION=auto: SDPA, which BERT has; its pooler reads [CLS] alone, so the last layer computes it alone
    assert frame["device"].str.endswith(", sdpa attention, last layer on the first token").all()
    speed = frame[frame["metric"].isin(["tokens_per_s", "tflops", "mfu"])]
    assert set(speed["metric"]) == {"tokens_per_s", "tflops"}  # no MFU without a device peak (a CPU)
    assert (speed["value"] > 0).all()


def test_metrics_recomputed_from_the_file_equal_the_runs_dev_rows(tiny_runs):
    folder, _ = tiny_runs
    recomputed = bb.prediction_metrics(read_predictions(bb.predictions_path(folder / "out.csv")))
    reported = bb.load_results(folder / "out.csv")
    reported = reported[reported["split"] == "dev"]
    merged = reported.merge(recomputed, on=["run_id", "split", "metric"], suffixes=("", "_recomputed"))
    assert len(merged) == len(reported) == len(recomputed) == 5  # rte: accuracy, score; stsb: pearson, spearman, score
    np.testing.assert_allclose(merged["value_recomputed"], merged["value"], rtol=0, atol=1e-6)


def test_rerunning_a_configuration_replaces_its_predictions(tiny_runs, tmp_path):
    path = _copy_results(tiny_runs, tmp_path)
    shutil.copytree(bb.predictions_path(tiny_runs[0] / "out.csv").parent, bb.predictions_path(path).parent)
    before = read_predictions(bb.predictions_path(path))
    bb.run_glue(_tiny_cfg().replace(tasks="rte"), path, verbose=False)  # same rte run id, stsb left alone
    after = read_predictions(bb.predictions_path(path))
    assert len(after) == len(before) and after["run_id"].value_counts().eq(16).all()
    pd.testing.assert_frame_equal(after[after["task"] == "stsb"].reset_index(drop=True),
                                  before[before["task"] == "stsb"].reset_index(drop=True))


def test_backfill_from_the_checkpoints_reproduces_the_runs_predictions(tiny_runs, tmp_path):
    folder, _ = tiny_runs
    path = _copy_results(tiny_runs, tmp_path)  # results without predictions: a run from before they were kept
    partial = tmp_path / "runs"
    shutil.copytree(folder / "runs", partial)
    stsb_run = next(p for p in (partial / "glue").iterdir() if p.name.startswith("stsb"))
    shutil.rmtree(stsb_run / "best")

    summary = bb.predict_saved_runs(path, partial, verbose=False).set_index("task")
    assert summary["status"].to_dict() == {"rte": "written", "stsb": "no_checkpoint"}
    summary = bb.predict_saved_runs(path, folder / "runs", verbose=False).set_index("task")
    assert summary["status"].to_dict() == {"rte": "has_predictions", "stsb": "written"}
    assert (summary.loc["stsb", "max_abs_diff"] < 1e-6) and summary.loc["stsb", "examples"] == 16

    original = read_predictions(bb.predictions_path(folder / "out.csv")).sort_values(["run_id", "example"])
    backfilled = read_predictions(bb.predictions_path(path)).sort_values(["run_id", "example"])
    pd.testing.assert_frame_equal(backfilled.reset_index(drop=True), original.reset_index(drop=True))


def test_backfill_writes_nothing_that_does_not_reproduce_the_reported_metrics(tiny_runs, tmp_path):
    folder, _ = tiny_runs
    path = _copy_results(tiny_runs, tmp_path)
    results = bb.load_results(path)
    rte = results["task"] == "rte"
    results.loc[rte & (results["split"] == "dev") & (results["metric"] == "accuracy"), "value"] += 0.0625
    results.to_csv(path, index=False)
    run_id = results.loc[rte, "run_id"].iloc[0]
    with pytest.raises(ValueError, match=f"{run_id} \\(max \\|diff\\| 0.0625\\)"):
        bb.predict_saved_runs(path, folder / "runs", verbose=False)
    assert set(read_predictions(bb.predictions_path(path))["task"]) == {"stsb"}  # the run that matched


def test_write_predictions_replaces_a_run_and_keeps_the_others_as_written(tmp_path):
    path = tmp_path / "predictions" / "x.csv"
    path.parent.mkdir()
    path.write_text("run_id,doc_id,p_a\nold,007,0.1234567890\nkept,008,\n")
    new = pd.DataFrame({"run_id": ["old"], "doc_id": ["009"], "p_b": [1 / 3], "out": np.float32([1 / 3])})
    write_predictions(new, path, exact=("out",))
    assert path.read_text() == "run_id,doc_id,p_a,p_b,out\nkept,008,,,\nold,009,,0.333333,0.33333334\n"


def test_a_run_config_is_rebuilt_from_its_result_row():
    cfg = _tiny_cfg().for_task("rte")
    assert bb.GlueConfig.from_dict(cfg.to_dict()) == cfg
    heads = bb.HeadsConfig.from_env(environ={"BB_PRESET": "tiny"})
    with pytest.raises(ValueError, match="pair_task"):
        bb.GlueConfig.from_dict(heads.to_dict())
    assert bb.GlueConfig.from_dict(heads.to_dict(), ignore_unknown=True).max_len == heads.max_len


def test_learning_rate_is_chosen_on_the_selection_split_then_every_seed_runs_at_it(glue_dir, tmp_path, capsys):
    """Issue 22's protocol: per task, lr chosen from a grid on the held-out 10% with the first seed, then every seed
    at the chosen lr; the sweep's rows are kept and labelled, and the GLUE mean takes the chosen configuration."""
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0,1",
                                          "BB_LR_GRID": "1e-3,1e-5", "BB_PREDICT_TEST": "0", "BB_EPOCHS": "1"})
    frame = bb.run_glue(cfg, tmp_path / "03.csv", verbose=False)
    printed = capsys.readouterr().out
    assert "chosen on the selection split with seed 0" in printed
    configs = frame.drop_duplicates("run_id")
    lrs = [(json.loads(config)["lr"], seed) for config, seed in zip(configs["config"], configs["seed"], strict=True)]
    chosen = float(printed.split("[rte] lr ")[1].split()[0])
    assert sorted(lrs) == sorted([(1e-3, 0), (1e-5, 0), (chosen, 1)])
    table, means = bb.glue_summary(frame)
    assert len(table) == 2 and means["n_tasks"] == 1 and not means["missing"][-1].startswith("rte")
    picked = table[table["lr_choice"].str.startswith("chosen")]
    assert len(picked) == 1 and picked["seeds"].iloc[0] == 2 and f"lr={chosen:g}" in picked["differs"].iloc[0]
    assert table["lr_choice"].str.startswith("sweep").sum() == 1
    with pytest.raises(ValueError, match="selection split"):
        bb.GlueConfig.from_env(environ={"BB_LR_GRID": "1e-4", "BB_SELECTION": "last"})


def test_any_encoder_takes_a_pooling_head_and_stops_early_on_the_held_out_loss(glue_dir, tmp_path):
    """Notebook 03 chooses the head (cls, pooler, mean, max, sum + dropout + linear) and early-stops on the held-out
    loss with a min_delta tolerance as well as on the task score."""
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "mrpc", "BB_SEEDS": "0",
                                          "BB_PREDICT_TEST": "0", "BB_EPOCHS": "3", "BB_PATIENCE": "1"},
                                 head="mean", head_dropout=0.2, select_metric="loss", min_delta=10.0)
    frame = bb.run_glue(cfg, tmp_path / "03.csv", verbose=False)
    assert set(frame["head_init"]) == {"new:mean"}
    holdout = frame[(frame["split"] == "train_holdout") & (frame["metric"] == "loss")]
    assert len(holdout) == 2  # no held-out loss improves by more than 10: stopped after patience 1
    assert json.loads(frame["config"].iloc[0])["head"] == "mean"
    # the defaults leave the run ids of runs made before these options unchanged (left out of the identity)
    assert "head" not in bb.GlueConfig.from_env(environ={}).identity()


def test_glue_summary_finds_a_task_of_your_own_from_the_recorded_config(tmp_path, monkeypatch):
    """Results read back in a new process: the tsv: spec in the row's config says what the task is (its metrics),
    and the task stays out of the GLUE mean."""
    from support import glue_run

    from bertbench.data import user_data

    monkeypatch.setenv("BB_DATA_DIR", str(tmp_path))
    folder = tmp_path / "reviews"
    folder.mkdir()
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text("1\ta\tpos\tgood\n2\ta\tneg\tbad\n")
    config = bb.GlueConfig.from_env(environ={"BB_TASKS": f"tsv:{folder}"}).for_task("reviews").to_json()
    monkeypatch.setattr(user_data, "_BY_NAME", {})  # nothing made in this process
    rows = [{**row, "config": config} for seed in (0, 1) for row in glue_run("m", "reviews", seed, 0.5 + seed / 10)]
    table, means = bb.glue_summary(pd.DataFrame(rows))
    assert table["task"].tolist() == ["reviews"] and table["score_median"].iloc[0] == pytest.approx(0.55)
    assert means["left_out"] == ["reviews"] and means["n_tasks"] == 0


def test_tasks_without_local_files_are_named_and_skipped_the_others_run(tmp_path, monkeypatch, capsys):
    """BB_PRESET=full on a partial GLUE download (no QQP here): one message names what is missing and where it was
    looked for, the tasks with files go on; none at all is an error; the hub source is not second-guessed."""
    from bertbench.data.examples import DataError
    from bertbench.experiments.glue_finetune.runs import available_tasks

    for folder, files in (("SST-2", ("train.tsv", "dev.tsv")), ("RTE", ("train.tsv",))):
        (tmp_path / "glue" / folder).mkdir(parents=True)
        for name in files:
            (tmp_path / "glue" / folder / name).write_text("sentence\tlabel\n")
    monkeypatch.setenv("BB_DATA_DIR", str(tmp_path))
    cfg = bb.GlueConfig.from_env(environ={"BB_TASKS": "sst2,rte,qqp"})
    assert available_tasks(cfg) == ("sst2",)
    said = capsys.readouterr().out
    assert "rte (no dev)" in said and "qqp (no train, dev)" in said and "running sst2" in said
    assert "BB_DATA_SOURCE=hub" in said
    with pytest.raises(DataError, match="no local data for any of the tasks"):
        available_tasks(cfg.replace(tasks=("qqp",)))
    assert available_tasks(cfg.replace(data_source="hub")) == ("sst2", "rte", "qqp")
    assert "qqp" in bb.GlueConfig.from_env(environ={"BB_PRESET": "full"}).tasks  # the preset still lists every task
