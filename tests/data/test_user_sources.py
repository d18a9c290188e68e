"""Data of your own with its splits: a BERT data_dir as a task (``tsv:``) and as long documents, train/val/test
files, a split column, a saved DatasetDict; every split read with the training labels, errors naming file:line."""

import json
import warnings

import pytest

import bertbench as bb
from bertbench.data import user_data
from bertbench.data.documents import fixed_split, load_document_splits, read_documents, stratified_split


def _tsv(path, rows, header=False):
    """Write a classic BERT TSV: rows of (label, text_a[, text_b])."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id\talpha\tlabel\ttext"] if header else []
    lines += [f"{i}\ta\t" + "\t".join(row) for i, row in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _bert_dir(folder, dev=(("neg", "dull"), ("pos", "fine")), test=None, header=False):
    _tsv(folder / "train.tsv", [("pos", "good film"), ("neg", "bad film"), ("pos", "great"), ("neg", "awful")],
         header=header)
    _tsv(folder / "dev.tsv", dev)
    if test is not None:
        _tsv(folder / "test.tsv", test)
    return folder


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    """Each test starts as a new process would: no task of your own made yet."""
    monkeypatch.setattr(user_data, "_BY_NAME", {})


def test_a_bert_data_dir_is_a_task_named_after_its_folder(tmp_path):
    folder = _bert_dir(tmp_path / "reviews", test=[("?", "unlabelled")], header=True)
    task = bb.get_task(f"tsv:{folder}")
    assert task.name == "reviews" and task.label_names == ("neg", "pos") and not task.is_pair
    assert task.metrics == ("accuracy", "f1", "mcc") and task.score_metrics == ("accuracy", "f1")
    assert task.eval_splits == ("dev",) and task.test_splits == ("test",) and bb.get_task("reviews") is task
    assert task.spec == f"tsv:{folder}"  # outside the data, runs and checkout folders: as given
    dev = bb.load_glue(task, "dev")
    assert dev.labels == [0, 1] and bb.load_glue(task, "test").labels is None  # test: predicted, never scored
    scores = _bert_dir(tmp_path / "scores", dev=[("0.5", "dull"), ("4.25", "fine")])
    _tsv(scores / "train.tsv", [("1.5", "a"), ("3", "b")])
    task = bb.get_task(f"tsv-regression:{scores}")
    assert task.is_regression and task.metrics == ("pearson", "spearman", "mse") and task.label_names == ()
    assert bb.load_glue(task, "dev").labels == [0.5, 4.25]


def test_a_user_task_is_recorded_portably_and_found_again_from_its_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BB_DATA_DIR", str(tmp_path / "data"))
    folder = _bert_dir(tmp_path / "data" / "reviews")
    cfg = bb.GlueConfig.from_env(environ={"BB_TASKS": f"tsv:{folder}", "BB_TASK_OVERRIDES": "reviews.epochs=7"})
    task_cfg = cfg.for_task("reviews")
    assert task_cfg.tasks == ("tsv:<data>/reviews",) and task_cfg.epochs == 7
    assert bb.run_id_for(cfg, "reviews", 0).startswith("reviews-s0-")
    monkeypatch.setattr(user_data, "_BY_NAME", {})  # a new process, reading results: from the recorded spec
    with pytest.raises(KeyError, match="tsv:<folder>"):
        bb.get_task("reviews")  # by name only once made in this process
    assert user_data.task_for_row("reviews", task_cfg.to_json()).label_names == ("neg", "pos")
    assert user_data.task_for_row("sst2", "{}") is bb.TASKS["sst2"]


def test_user_task_errors_name_the_file_and_what_to_do(tmp_path):
    with pytest.raises(bb.DataError, match=r"dev.tsv:2: field 'label': 'meh' is not one of \['neg', 'pos'\]"):
        bb.get_task(f"tsv:{_bert_dir(tmp_path / 'a', dev=[('pos', 'x'), ('meh', 'y')])}")
    (tmp_path / "b").mkdir()
    _tsv(tmp_path / "b" / "train.tsv", [("pos", "x"), ("neg", "y")])
    with pytest.raises(bb.DataError, match=r"no .*b/dev.tsv; a BERT data_dir holds train.tsv and dev.tsv"):
        bb.get_task(f"tsv:{tmp_path / 'b'}")
    with pytest.raises(bb.DataError, match="named like the GLUE task 'RTE'.*rename the folder or link it"):
        bb.get_task(f"tsv:{_bert_dir(tmp_path / 'RTE')}")
    with pytest.raises(bb.DataError, match=r"train.tsv:1: field 'label': 'pos' is not a number"):
        bb.get_task(f"tsv-regression:{_bert_dir(tmp_path / 'c')}")
    bb.get_task(f"tsv:{_bert_dir(tmp_path / 'd' / 'same')}")
    with pytest.raises(bb.DataError, match="a task named 'same' came from"):
        bb.get_task(f"tsv:{_bert_dir(tmp_path / 'e' / 'same')}")


def test_train_val_test_files_are_the_split_and_a_missing_one_is_drawn_from_train(tmp_path):
    folder = tmp_path / "news"
    folder.mkdir()
    rows = "".join(f"doc {i} {'ab'[i % 2]}\n" for i in range(20))
    for name, labels in (("train", "ab" * 10), ("dev", "ab"), ("test", "ba")):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": f"doc {i}", "label": label}) + "\n"
                                                      for i, label in enumerate(labels)))
    (folder / "test.csv").write_text("text,label\n" + rows)  # another suffix: not a sibling of train.jsonl
    docs, splits, what = load_document_splits(str(folder / "train.jsonl"))
    assert docs.name == "news" and {name: len(part) for name, part in splits.items()} == {"train": 20, "val": 2,
                                                                                          "test": 2}
    assert docs.examples.ids[splits["test"][0]] == "test:1" and what.startswith(f"given: {folder} (train.jsonl")
    assert [docs.examples.labels[i] for i in splits["test"]] == [1, 0]  # "b", "a" with the training names
    (folder / "dev.jsonl").unlink()
    docs, splits, what = load_document_splits(str(folder / "train.jsonl"))
    assert len(splits["val"]) == 2 and len(splits["train"]) == 18 and "val drawn from train (10%" in what
    (folder / "test.jsonl").write_text(json.dumps({"text": "x", "label": "c"}) + "\n")
    with pytest.raises(bb.DataError, match=r"test.jsonl:1: field 'label': 'c' is not one of \['a', 'b'\]"):
        load_document_splits(str(folder / "train.jsonl"))
    (folder / "test.jsonl").unlink()
    single, none, _ = load_document_splits(str(folder / "train.jsonl"))  # no split given: the saved one applies
    assert none is None and len(single) == 20


def test_a_split_column_gives_the_split(tmp_path):
    path = tmp_path / "col.csv"
    rows = [("a", "train"), ("b", "train"), ("a", "Validation"), ("b", "test"), ("a", "dev")]
    path.write_text("text,label,split\n" + "".join(f"doc {i},{label},{split}\n" for i, (label, split) in
                                                   enumerate(rows)))
    docs, splits, what = load_document_splits(str(path), split_column="split")
    assert splits == {"train": [0, 1], "val": [2, 4], "test": [3]} and what == f"given: column 'split' of {path}"
    path.write_text("text,label,split\ndoc,a,train\ndoc,b,test\n")
    with pytest.raises(bb.DataError, match=r"col.csv:3: field 'label': label\(s\) \['b'\] of a test row occur in no "
                                           r"training row"):
        load_document_splits(str(path), split_column="split")
    path.write_text("text,label,split\ndoc,a,train\ndoc,a,holdout\n")
    with pytest.raises(bb.DataError, match=r"col.csv:3: field 'split': 'holdout' is not train, val"):
        load_document_splits(str(path), split_column="split")


def test_a_bert_data_dir_as_documents_uses_a_labelled_test_file_only(tmp_path):
    folder = _bert_dir(tmp_path / "claims", dev=[("neg", "x", "q"), ("pos", "y", "q")],
                       test=[("pos", "t1", "q"), ("neg", "t2", "q")])
    _tsv(folder / "train.tsv", [(label, f"text {i}", "the claim") for i, label in enumerate(["pos", "neg"] * 10)])
    docs, splits, what = load_document_splits(f"tsv:{folder}")
    assert docs.examples.is_pair and docs.examples.text_b[0] == "the claim" and len(splits["test"]) == 2
    assert "dev.tsv as val, test.tsv as test" in what
    _tsv(folder / "test.tsv", [("-1", "t1", "q"), ("-1", "t2", "q")])  # placeholders: unlabelled, left out
    docs, splits, what = load_document_splits(f"tsv:{folder}")
    assert "test.tsv unlabelled, left out); test drawn from train" in what and len(splits["test"]) == 2
    _tsv(folder / "test.tsv", [("pos", "t1", "q"), ("maybe", "t2", "q")])
    with pytest.raises(bb.DataError, match=r"test.tsv:2: field 'label': 'maybe'"):
        load_document_splits(f"tsv:{folder}")


def test_a_saved_dataset_dict_gives_its_splits(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [{"text": f"doc {i}", "label": "ab"[i % 2]} for i in range(10)]
    DatasetDict({"train": Dataset.from_list(rows), "dev": Dataset.from_list(rows[:2]),
                 "unsupervised": Dataset.from_list(rows[:1])}).save_to_disk(str(tmp_path / "saved"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs, splits, what = load_document_splits(str(tmp_path / "saved"))
    assert any("'unsupervised' is not train" in str(w.message) for w in caught)
    assert docs.name == "saved" and len(splits["val"]) == 2 and "test drawn from train" in what
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "one"))
    assert load_document_splits(str(tmp_path / "one"))[1] is None  # one Dataset: the saved 80/10/10 split


def test_regression_documents_are_split_by_target_quintile(tmp_path, monkeypatch):
    monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / "runs"))
    path = tmp_path / "scores.csv"
    path.write_text("text,label\n" + "".join(f"doc {i},{i / 10}\n" for i in range(50)))
    docs = read_documents(path, regression=True)
    assert docs.problem == "regression" and docs.label_names == () and docs.examples.labels[3] == 0.3
    split = stratified_split(docs)
    assert {name: len(part) for name, part in split.items()} == {"train": 40, "val": 5, "test": 5}
    assert max(docs.examples.labels[i] for i in split["test"]) > 3  # the test split spans the range
    indices, saved = fixed_split(docs)
    assert indices == split and json.loads(saved.read_text())["stratified_by"] == "label quintile"
    with pytest.raises(bb.DataError, match="label_sep and regression"):
        read_documents(path, regression=True, label_sep="|")
