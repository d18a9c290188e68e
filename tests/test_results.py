"""The results schema, atomic merge-writes, and the loader's errors."""

import json

import pandas as pd
import pytest

import bertbench as bb
from bertbench.results import COLUMNS, SCHEMA_VERSION, ResultsError, make_rows


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
    with pytest.raises(ResultsError, match=r"r.csv:3: column 'run_id' is empty"):
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
