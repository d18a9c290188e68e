"""The results schema, atomic merge-writes, the loader's errors, and the reproduction report of a re-run."""

import csv
import errno
import io
import json
import multiprocessing
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import bertbench as bb
from bertbench.results import (
    COLUMNS,
    SCHEMA_VERSION,
    ResultsError,
    check_writable,
    compare_rows,
    make_rows,
    replace_results,
    reproduction_report,
    varies_by_machine,
    write_predictions,
)


def _rows(run_id="rte-s0-abc", value=0.6):
    common = {"run_id": run_id, "notebook": "03_glue_finetune", "preset": "cpu", "model": "minilm", "task": "rte",
              "seed": 0, "init": "pretrained", "head_init": "new", "selection": "best_epoch_on_train_holdout",
              "max_len": 128, "train_examples": 100, "device": "cpu", "wall_s": 1.5, "config": json.dumps({"lr": 1})}
    return make_rows(common, [("dev", 1, "accuracy", value), ("dev", 1, "score", value)])


def test_round_trip_keeps_schema_order_and_types(tmp_path):
    path = tmp_path / "r.csv"
    bb.write_results(_rows(), path)
    frame = bb.load_results(path)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 2
    assert frame["value"].dtype == "float64" and frame["seed"].dtype == "int64"
    assert set(frame["schema_version"]) == {SCHEMA_VERSION}


def test_written_file_has_ordinary_permissions(tmp_path):
    import os

    path = tmp_path / "r.csv"
    bb.write_results(_rows(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_same_run_id_replaces_other_runs_are_kept(tmp_path):
    path = tmp_path / "r.csv"
    bb.write_results(_rows("a", 0.5), path)
    bb.write_results(_rows("b", 0.7), path)
    bb.write_results(_rows("a", 0.9), path)
    frame = bb.load_results(path)
    assert len(frame) == 4 and sorted(frame[frame["run_id"] == "a"]["value"]) == [0.9, 0.9]


def test_bad_rows_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "r.csv"
    bb.write_results(_rows(), path)
    before = path.read_bytes()
    bad = _rows()
    bad[1]["value"] = "high"
    with pytest.raises(ResultsError, match=r"new rows:3: column 'value'"):
        bb.write_results(bad, path)
    missing = [{k: v for k, v in row.items() if k != "device"} for row in _rows()]
    with pytest.raises(ResultsError, match="missing column"):
        bb.write_results(missing, path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".r.csv.*"))  # no temp files left behind


def test_loader_names_file_and_line_of_a_hand_edited_file(tmp_path):
    path = tmp_path / "r.csv"
    bb.write_results(_rows(), path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("rte-s0-abc", "")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"r.csv:3:2: column 'run_id' is empty"):
        bb.load_results(path)
    path.write_text("")
    with pytest.raises(ResultsError, match="empty"):
        bb.load_results(path)


def test_newer_schema_version_fails_clearly(tmp_path):
    path = tmp_path / "r.csv"
    rows = _rows()
    for row in rows:
        row["schema_version"] = SCHEMA_VERSION + 1
    pd.DataFrame(rows)[list(COLUMNS)].to_csv(path, index=False)
    with pytest.raises(ResultsError, match="newer than this bertbench"):
        bb.load_results(path)
    # a newer schema most likely added a column: still the version message, not "unknown column"
    pd.DataFrame(rows)[list(COLUMNS)].assign(added_later="x").to_csv(path, index=False)
    with pytest.raises(ResultsError, match=rf"r.csv:2: schema_version {SCHEMA_VERSION + 1} is newer"):
        bb.load_results(path)


def test_folder_loads_every_csv(tmp_path):
    bb.write_results(_rows("a"), tmp_path / "x.csv")
    bb.write_results(_rows("b"), tmp_path / "y.csv")
    assert set(bb.load_results(tmp_path)["run_id"]) == {"a", "b"}


def test_unwritable_output_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny"})
    with pytest.raises(ResultsError, match="cannot write results"):
        bb.run_glue(cfg, blocker / "sub" / "out.csv")


def test_nearly_full_disk_fails_before_training(tmp_path, monkeypatch):
    full = shutil.disk_usage(tmp_path)._replace(free=5 * 2**20)
    monkeypatch.setattr("bertbench.csv_files.shutil.disk_usage", lambda folder: full)
    with pytest.raises(ResultsError) as error:
        check_writable(tmp_path / "out" / "r.csv")
    assert f"{tmp_path / 'out'}: its disk is (nearly) full, 5.0 MiB free" in str(error.value)
    assert "BB_OUTPUT_DIR" in str(error.value)


@pytest.mark.parametrize("version, dropped", [(1, ["variant", "layer"]), (2, ["layer"])])
def test_files_of_older_schema_versions_load_with_the_added_columns_defaulted(tmp_path, version, dropped):
    path = tmp_path / "old.csv"
    old = pd.DataFrame(_rows()).drop(columns=dropped).assign(schema_version=version)
    old.to_csv(path, index=False)
    frame = bb.load_results(path)
    assert list(frame.columns) == list(COLUMNS)
    assert (frame["layer"] == -1).all() and (frame["variant"] == "").all()
    bb.write_results(_rows("new-run"), path)  # a newer run merges into the old file
    merged = bb.load_results(path)
    assert set(merged["schema_version"]) == {version, SCHEMA_VERSION} and len(merged) == 4


# --------------------------------------------------------------- truncated and hand-edited files

_CONFIG = json.dumps({"lr": 1, "note": "a, \"quoted\""}, indent=1)  # 4 lines: quoted fields span lines
_ROW_LINES = _CONFIG.count("\n") + 1


def _file_with_multiline_config(path, edit=None) -> str:
    """4 rows whose config spans 4 lines each: row i (0-based) starts on line 2 + 4 i. ``edit(rows)`` changes the
    parsed rows before they are written; returns the file's text."""
    bb.write_results([{**row, "config": _CONFIG} for row in _rows("a") + _rows("b")], path)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 5 and path.read_text().count("\n") == 1 + 4 * _ROW_LINES
    if edit:
        edit(rows)
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path.read_text()


def _set(column, value):
    def edit(rows):
        rows[3][list(COLUMNS).index(column)] = value  # the third data row: line 2 + 2 * 4 = 10
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[3].pop(list(COLUMNS).index("device")), ": 21 fields where the header has 22"),
    (lambda rows: rows[3].append("extra"), ": 23 fields where the header has 22"),
    (_set("value", "high"), ":13: column 'value': 'high' is not a number"),
    (_set("seed", "1.5"), ":9: column 'seed': '1.5' is not an integer"),
    (_set("config", "{not json"), ":22: column 'config' is not valid JSON"),
])
def test_hand_edited_row_is_named_by_its_line_in_the_file(tmp_path, edit, message):
    path = tmp_path / "r.csv"
    _file_with_multiline_config(path, edit)
    with pytest.raises(ResultsError, match=rf"r.csv:10{message}"):
        bb.load_results(path)


@pytest.mark.parametrize("broken", ['"cpu', '"cp"u'])
def test_broken_quote_is_named_by_the_line_its_row_starts_on(tmp_path, broken):
    path = tmp_path / "r.csv"
    text = _file_with_multiline_config(path, _set("device", "MARK"))
    path.write_text(text.replace("MARK", broken))
    with pytest.raises(ResultsError, match=r"r.csv:10: not a readable CSV row"):
        bb.load_results(path)


def test_file_cut_mid_row_is_refused_where_pandas_would_fill_nan(tmp_path):
    path = tmp_path / "r.csv"
    text = _file_with_multiline_config(path, lambda rows: rows[4].__setitem__(list(COLUMNS).index("device"), "MARK"))
    last = 2 + 3 * _ROW_LINES
    # cut after the last row's device field: pandas reads the short row and fills the rest with NaN, silently
    path.write_text(text[:text.index("MARK") + 4] + "\n")
    assert pd.read_csv(path, dtype=str).iloc[-1][["wall_s", "created_at", "config"]].isna().all()
    with pytest.raises(ResultsError, match=rf"r.csv:{last}: 19 fields where the header has 22"):
        bb.load_results(path)
    # cut inside the last row's quoted config (a crash of a non-atomic writer, a partial copy)
    path.write_text(text[:-10])
    with pytest.raises(ResultsError, match=rf"r.csv:{last}: not a readable CSV row.*cut short"):
        bb.load_results(path)
    path.write_text(text)  # the whole file, multi-line configs included, loads
    assert len(bb.load_results(path)) == 4 and set(bb.load_results(path)["config"]) == {_CONFIG}


# --------------------------------------------------------------- several writers, distributed launches


def _write_runs(path: str, worker: int, runs: int, start) -> None:
    """One of several processes merging its runs into the same file."""
    start.wait(timeout=60)  # begin together, so that the read-merge-replace cycles overlap
    for index in range(runs):
        bb.write_results(_rows(f"w{worker}-{index}", value=index / runs), path)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="flock locking is POSIX-only")
def test_concurrent_writers_lose_no_rows(tmp_path):
    path, workers, runs = tmp_path / "out" / "r.csv", 4, 10
    # fork, not spawn: a spawned process spends ~10 s on 2 cores importing bertbench (torch, transformers); the
    # children only run pandas and file I/O, so forking a parent that has torch loaded is safe
    context = multiprocessing.get_context("fork")
    start = context.Barrier(workers)
    processes = [context.Process(target=_write_runs, args=(str(path), worker, runs, start))
                 for worker in range(workers)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * workers
    frame = bb.load_results(path)
    expected = {f"w{worker}-{index}" for worker in range(workers) for index in range(runs)}
    assert set(frame["run_id"]) == expected
    assert len(frame) == 2 * len(expected) and not frame.duplicated(["run_id", "metric"]).any()
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.csv"]  # no lock or temporary file left behind


def test_only_the_main_process_of_a_distributed_launch_writes(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "out"
    path, predictions = folder / "r.csv", folder / "p.csv"
    bb.write_results(_rows("a"), path)
    before = path.read_bytes()
    monkeypatch.setenv("RANK", "1")
    merged = bb.write_results(_rows("b"), path)
    assert set(merged["run_id"]) == {"a", "b"} and path.read_bytes() == before  # the frame it would have written
    assert len(replace_results(_rows("c"), path)) == 2 and path.read_bytes() == before
    assert len(bb.write_results(_rows("d"), folder / "new.csv")) == 2
    bb.write_results(_rows("a"), path)  # would replace rows: reported once, by the main process
    write_predictions(pd.DataFrame({"run_id": ["d"], "out": [0.5]}), predictions)
    assert sorted(p.name for p in folder.iterdir()) == ["r.csv"]
    assert [p.name for p in (bb.runs_dir() / "finished").iterdir()] == ["a.json"] and not capsys.readouterr().out
    monkeypatch.setenv("RANK", "0")
    bb.write_results(_rows("b"), path)
    assert set(bb.load_results(path)["run_id"]) == {"a", "b"}


# --------------------------------------------------------------- a re-run: did it reproduce the rows it replaced?


def _run(run_id="a", score=0.8956, train_s=12.5, device="cpu", entries=()) -> list[dict]:
    """One fine-tuning run's rows: a train loss per epoch, dev accuracy and score, and its training time."""
    common = {"run_id": run_id, "notebook": "03_glue_finetune", "preset": "cpu", "model": "minilm", "task": "sst2",
              "seed": 0, "init": "pretrained", "head_init": "new", "selection": "best_epoch_on_train_holdout",
              "max_len": 128, "train_examples": 100, "device": device, "wall_s": train_s + 1, "config": "{}"}
    return make_rows(common, [("train", 0, "loss", 0.69), ("train", 1, "loss", 0.41), ("dev", 1, "accuracy", score),
                              ("dev", 1, "score", score), ("train", 1, "train_s", train_s), *entries])


def test_a_rerun_says_whether_it_reproduced_the_rows_it_replaced(tmp_path, capsys):
    """Issue 20 item 11: a re-run of committed rows is a reproducibility check; timings are not compared."""
    path = tmp_path / "r.csv"
    bb.write_results(_run("a"), path)
    bb.write_results(_run("b"), path)
    assert capsys.readouterr().out == ""  # nothing replaced, nothing to say
    made = bb.load_results(path)["created_at"].iloc[0]
    bb.write_results(_run("a", train_s=30.25), path)
    assert capsys.readouterr().out == f"reproduced: 4 metrics of run a equal to the last digit (the rows it " \
                                      f"replaced, made {made})\n"
    made = bb.load_results(path)["created_at"].iloc[-1]
    bb.write_results(_run("a", score=0.8950, device="cuda:0 bf16"), path)
    assert capsys.readouterr().out == (
        f"not reproduced: run a differs from the rows it replaced (made {made}) in 2 of 4 metrics: dev score "
        "0.8956 -> 0.8950 (-0.0006), dev accuracy 0.8956 -> 0.8950 (-0.0006); the replaced rows were made on cpu, "
        "these on cuda:0 bf16\n")


def test_the_report_shows_the_digit_that_differs_and_counts_what_it_does_not_list():
    old = pd.DataFrame(_run(entries=[("dev", 1, "f1", 0.5), ("dev", 1, "mcc", 0.25)]))
    new = pd.DataFrame(_run(score=0.8956000001, entries=[("dev", 1, "f1", 0.5001), ("dev", 1, "pearson", 0.1)]))
    new.loc[new["split"] == "train", "value"] += [0.01, 0.0, 0.0]  # train loss of epoch 0, and train_s (not compared)
    line = reproduction_report("a", old, new)
    assert "in 4 of 5 metrics: dev score 0.8956000000 -> 0.8956000001 (+1e-10), dev accuracy 0.8956000000 -> " \
           "0.8956000001 (+1e-10), dev f1 0.5000 -> 0.5001 (+0.0001) and 1 more; 1 metric(s) only in the new rows; " \
           "1 metric(s) only in the rows it replaced" in line
    assert compare_rows(old, new).query("metric == 'loss' and step == 0")["status"].tolist() == ["differs"]


def test_rows_are_matched_on_variant_layer_and_task_and_labelled_by_them():
    """Probe runs hold one accuracy per (variant, layer); multitask runs one per task."""
    def probes(run_id, values):
        common = {"run_id": run_id, "notebook": "05_layer_probes", "preset": "cpu", "model": "minilm", "task": "sst2",
                  "seed": 0, "init": "pretrained", "head_init": "probe", "selection": "last_epoch", "max_len": 128,
                  "train_examples": 100, "device": "cpu", "wall_s": 1.0, "config": "{}"}
        return pd.DataFrame([row for (variant, layer), value in values.items() for row in make_rows(
            {**common, "variant": variant, "layer": layer}, [("dev", 3, "accuracy", value)])])

    old = probes("p", {("probe:cls", 1): 0.5, ("probe:cls", 2): 0.6, ("probe:mean", 2): 0.7})
    new = probes("p", {("probe:cls", 1): 0.5, ("probe:cls", 2): 0.65, ("probe:mean", 2): 0.7})
    assert compare_rows(old, new)["status"].tolist() == ["equal", "differs", "equal"]
    assert reproduction_report("p", old, new).endswith("in 1 of 3 metrics: probe:cls layer 2 dev accuracy 0.6000 -> "
                                                       "0.6500 (+0.05)")
    tasks = pd.concat([pd.DataFrame(_run("m", score=0.5)), pd.DataFrame(_run("m", score=0.7)).assign(task="rte")])
    changed = tasks.assign(value=tasks["value"].where(~((tasks["task"] == "rte") & (tasks["metric"] == "score")), 0.8))
    assert reproduction_report("m", tasks, changed).endswith("in 1 of 8 metrics: rte dev score 0.7000 -> 0.8000 (+0.1)")


def test_rows_that_only_continue_the_rows_they_replace_are_not_a_rerun():
    """Pretraining writes its rows at every evaluation, each time replacing its own earlier rows: nothing to say."""
    evaluation = [("train", 0, "loss", 10.4), ("heldout", 0, "pppl", 3000.0), ("train", 0, "tokens_per_s", 1e4)]
    later = [("train", 100, "loss", 7.2), ("heldout", 100, "pppl", 900.0), ("train", 100, "tokens_per_s", 2e4)]
    old, new = (pd.DataFrame(_run("pre", entries=entries)) for entries in (evaluation, evaluation + later))
    assert reproduction_report("pre", old, new) is None
    assert reproduction_report("pre", new, old).startswith("reproduced: 6 metrics")  # a re-run, shorter so far
    assert "2 metric(s) only in the new rows" in reproduction_report("pre", old, pd.DataFrame(_run(
        "pre", entries=evaluation + [("dev", 1, "f1", 0.5), ("dev", 1, "mcc", 0.1)])))  # added at a step it had


@pytest.mark.parametrize("metric, measured", [
    ("train_s", True), ("cpu_s", True), ("predict_s", True), ("tokens_per_s", True), ("examples_per_s", True),
    ("peak_rss_mb", True), ("peak_gpu_mb", True), ("rss_start_mb", True), ("mfu", True), ("tflops", True),
    ("score", False), ("loss", False), ("tokens_seen", False), ("encoder_tokens_per_doc", False), ("f1s", False),
])
def test_measurements_of_the_machine_are_told_from_results(metric, measured):
    assert varies_by_machine(metric) is measured


# --------------------------------------------------------------- issue 24: values that are not numbers, Excel, faults


@pytest.mark.parametrize("column, field, text", [
    ("value", 13, "nan"), ("value", 13, "inf"), ("value", 13, "-Infinity"), ("value", 13, ""), ("wall_s", 20, "nan"),
])
def test_a_value_that_is_not_a_finite_number_is_refused_naming_file_line_and_field(tmp_path, column, field, text):
    """A hand-edited NaN, inf or blank metric was accepted and kept on every rewrite; notebook 06 then dropped the
    task from its GLUE mean without a word. A metric that was not computed is absent, never NaN."""
    path = tmp_path / "r.csv"
    _file_with_multiline_config(path, _set(column, text))
    with pytest.raises(ResultsError, match=rf"r.csv:10:{field}: column '{column}'"):
        bb.load_results(path)
    with pytest.raises(ResultsError, match=rf"r.csv:10:{field}: column '{column}'"):
        bb.write_results(_rows("another"), path)  # and never rewritten as a normal-looking row


@pytest.mark.parametrize("column, field, text, said", [
    ("seed", 9, "inf", "'inf' is not a finite number"), ("seed", 9, "nan", "'nan' is not a finite number"),
    ("step", 11, "3.0", "'3.0' is not an integer"), ("layer", 8, "", "column 'layer' is empty"),
    ("schema_version", 1, "inf", "'inf' is not a finite number"),
])
def test_an_integer_column_that_is_not_an_integer_is_named_by_file_line_and_field(tmp_path, column, field, text, said):
    """inf and nan were a raw OverflowError/ValueError with no file or line; "3.0" a raw ValueError."""
    path = tmp_path / "r.csv"
    _file_with_multiline_config(path, _set(column, text))
    with pytest.raises(ResultsError, match=rf"r.csv:10:{field}: .*{re.escape(said)}"):
        bb.load_results(path)


def test_values_that_were_not_computed_get_no_row_and_a_warning(capsys):
    """make_rows, the one row builder: NaN intervals (bootstrap off) and the like are left out, and said."""
    rows = make_rows(json.loads(json.dumps({**_rows()[0], "value": 0})), [
        ("dev", 1, "f1", 0.5), ("test", 1, "f1_ci_low", float("nan")), ("test", 1, "f1_ci_high", float("inf"))])
    assert [row["metric"] for row in rows] == ["f1"]
    assert "2 value(s) not a finite number, not written: test f1_ci_low (step 1) = nan" in capsys.readouterr().out


def test_a_file_resaved_by_excel_is_read(tmp_path):
    """Excel's "CSV UTF-8": a byte-order mark, CRLF line ends and, at times, a row of empty fields at the end (it was
    reported as "missing column schema_version"); another encoding or semicolons are named as what they are."""
    path = tmp_path / "r.csv"
    bb.write_results(_rows("a") + _rows("b"), path)
    text, expected = path.read_text(), bb.load_results(path)
    path.write_bytes(b"\xef\xbb\xbf" + (text + "," * 21 + "\n").replace("\n", "\r\n").encode())
    pd.testing.assert_frame_equal(bb.load_results(path), expected)
    path.write_bytes(text.replace("cpu", "cpu\xe9").encode("cp1252"))
    with pytest.raises(ResultsError, match=r"r.csv: not UTF-8 text .*CSV UTF-8"):
        bb.load_results(path)
    path.write_text(text.replace(",", ";"))
    with pytest.raises(ResultsError, match=r"r.csv:1: the fields are separated by semicolons"):
        bb.load_results(path)


def _glue_predictions(run_id="a", n=4) -> pd.DataFrame:
    return pd.DataFrame({"run_id": run_id, "task": "sst2", "split": "dev", "example": range(n),
                         "label": [i % 2 for i in range(n)], "prediction": [1] * n})


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines.__setitem__(3, lines[3].rsplit(",", 1)[0]), r"p.csv:4: 5 fields where the header has 6"),
    (lambda lines: lines.__setitem__(3, lines[3] + ",1"), r"p.csv:4: 7 fields where the header has 6"),
    (lambda lines: lines.__setitem__(0, lines[0].replace("label", "example")), r"p.csv:1: .*more than once"),
    (lambda lines: lines.__setitem__(3, lines[3].replace(",2,", ",,")), r"p.csv:4:4: column 'example': nan is not"),
    (lambda lines: lines.__setitem__(3, lines[3][:-1] + "inf"), r"p.csv:4:6: column 'prediction': 'inf' is not"),
    (lambda lines: lines.__setitem__(slice(None), [",".join(line.split(",")[:4] + line.split(",")[5:])
                                                    for line in lines]), r"p.csv: missing column\(s\) \['label'\]"),
])
def test_a_broken_predictions_file_is_refused_naming_file_and_line(tmp_path, edit, message):
    """Prediction files were never validated: a row cut short was rewritten as a normal-looking row (notebook 06 then
    failed with pandas' "Integer column has NA values"), a deleted column refilled with blanks."""
    from bertbench.experiments.glue_finetune import read_predictions

    path = tmp_path / "predictions" / "p.csv"
    path.parent.mkdir()
    lines = _glue_predictions().to_csv(index=False).splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    with pytest.raises(ResultsError, match=message):
        read_predictions(path)
    from bertbench.results import GLUE_PREDICTIONS  # the merge-write reads the old file the same way

    with pytest.raises(ResultsError, match=message):
        write_predictions(_glue_predictions("b"), path, schema=GLUE_PREDICTIONS)
    assert path.read_bytes() == before


def test_long_document_predictions_keep_each_runs_probability_columns(tmp_path):
    """run_id, doc_id, label and one p_<label> per label: a value blanked in one row, or a column deleted, is named
    (the summary took only the columns a run has on every row, so the run silently changed its labels)."""
    from bertbench.results import DOCUMENT_PREDICTIONS, load_predictions

    path = tmp_path / "p.csv"
    path.write_text("run_id,doc_id,label,p_false,p_true,p_a,p_b,p_c\n"
                    "r1,d1,1,0.2,0.8,,,\nr1,d2,0,0.6,0.4,,,\nr2,d1,2,,,0.1,0.2,0.7\n")
    frame = load_predictions(path, DOCUMENT_PREDICTIONS)
    assert frame["p_true"].tolist()[:2] == [0.8, 0.4] and frame["label"].tolist() == ["1", "0", "2"]
    path.write_text(path.read_text().replace("r1,d2,0,0.6,0.4", "r1,d2,0,0.6,"))
    with pytest.raises(ResultsError, match=r"p.csv:3:1: column 'run_id': 'r1' has values in other p_\* columns"):
        load_predictions(path)  # the kind is told by the header
    path.write_text("run_id,doc_id,label,p_false\nr1,d1,1,0.2\n")
    with pytest.raises(ResultsError, match=r"p.csv:2:3: column 'label': '1' needs 2 p_\* values, the row has 1"):
        load_predictions(path)


def test_predictions_and_rows_of_a_run_are_written_together_or_not_at_all(tmp_path, monkeypatch):
    """Notebook 03 wrote predictions, then rows: a failed results write left predictions of a run without rows."""
    from bertbench.results import GLUE_PREDICTIONS, predictions_path

    path = tmp_path / "r.csv"
    target = predictions_path(path)
    bb.write_results(_rows("a"), path, predictions=_glue_predictions("a"), schema=GLUE_PREDICTIONS)
    assert set(pd.read_csv(target)["run_id"]) == {"a"}
    text = path.read_text()
    path.write_text(text[:-30])  # a results file cut short: refused before either file changes
    before = target.read_bytes(), path.read_bytes()
    with pytest.raises(ResultsError, match=r"r.csv:3: 21 fields where the header has 22"):
        bb.write_results(_rows("b"), path, predictions=_glue_predictions("b"), schema=GLUE_PREDICTIONS)
    assert (target.read_bytes(), path.read_bytes()) == before
    path.write_text(text)
    replace = os.replace

    def results_replace_fails(source, destination):
        if Path(destination) == path:
            raise OSError(errno.EIO, "Input/output error")
        return replace(source, destination)

    monkeypatch.setattr(os, "replace", results_replace_fails)  # after the predictions were replaced: put back
    before = target.read_bytes(), path.read_bytes()
    with pytest.raises(ResultsError, match="Input/output error"):
        bb.write_results(_rows("b"), path, predictions=_glue_predictions("b"), schema=GLUE_PREDICTIONS)
    monkeypatch.undo()
    assert (target.read_bytes(), path.read_bytes()) == before
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and "runs" not in p.parts)
    assert left == ["r.csv", "r.csv"]  # no temporary file, lock or link to the old content left over


def _disk_full(monkeypatch):
    """os.fdopen as on a full disk: the temporary file opens, its first write fails with ENOSPC."""
    fdopen = os.fdopen

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    def full(handle, *args, **kwargs):
        fdopen(handle).close()
        return Full()

    monkeypatch.setattr(os, "fdopen", full)


def test_a_full_disk_during_a_write_says_the_data_is_safe_and_how_to_go_on(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    bb.write_results(_rows("a"), path)
    before = path.read_bytes()
    _disk_full(monkeypatch)
    with pytest.raises(ResultsError) as error:
        bb.write_results(_rows("b"), path)
    monkeypatch.undo()
    assert f"cannot write {path}: No space left on device. Nothing was lost" in str(error.value)
    assert "free some space, or set BB_OUTPUT_DIR" in str(error.value) and "run the notebook again" in str(error.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir() if p.name != "runs") == ["r.csv"]


def test_an_output_folder_that_cannot_be_created_is_named_with_the_setting_that_moves_it(tmp_path, monkeypatch):
    """BB_OUTPUT_DIR naming a file, and a read-only disk (simulated: tests run as root, whom chmod does not stop),
    were raw FileExistsError / OSError from the first cell."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BB_OUTPUT_DIR", str(blocker))
    with pytest.raises(OSError, match=rf"cannot create the outputs folder {blocker} .*a file is in the way; set "
                                      "BB_OUTPUT_DIR"):
        bb.outputs_dir()
    monkeypatch.setenv("BB_OUTPUT_DIR", str(tmp_path / "read-only" / "outputs"))
    mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "read-only" in str(self):
            raise OSError(errno.EROFS, "Read-only file system")
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(OSError, match=r"outputs folder .*read-only/outputs .*Read-only file system; set BB_OUTPUT_DIR"):
        bb.outputs_dir()
    with pytest.raises(ResultsError, match=r"cannot write results to .*read-only.*Read-only file system"):
        check_writable(tmp_path / "read-only" / "r.csv")


def test_adopted_rows_are_skipped_not_trained_again(tmp_path, monkeypatch):
    """A long job continued in a fresh checkout (or a cluster's outputs copied here): `adopt` records the rows as
    finished on this machine, so resuming skips them."""
    from bertbench.checkpoint import start_or_skip
    from bertbench.results import adopt_results

    path = tmp_path / "out" / "r.csv"
    bb.write_results(_rows("rte-s0-adopt"), path)
    monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / "fresh-runs"))  # a fresh clone: no records
    assert start_or_skip(True, path, "rte-s0-adopt", tmp_path / "resume") is None
    assert adopt_results(path) == ["rte-s0-adopt"]
    assert start_or_skip(True, path, "rte-s0-adopt", tmp_path / "resume2") is not None
