"""User-supplied data: classic BERT TSV, CSV, JSONL and Hugging Face datasets."""

import json

import pytest

import bertbench as bb


def test_classic_bert_tsv_single_and_pair(tmp_path):
    single = tmp_path / "train.tsv"
    single.write_text("1\ta\tpos\tgreat film\n2\ta\tneg\tdull \"film\"\n3\ta\tpos\tfine\n")
    examples, names = bb.read_bert_tsv(single)
    assert names == ["neg", "pos"] and examples.labels == [1, 0, 1]
    assert examples.ids == ["1", "2", "3"] and examples.text_a[1] == 'dull "film"' and not examples.is_pair
    pair = tmp_path / "pair.tsv"
    pair.write_text("1\ta\t1\tA man.\tA person.\n2\ta\t0\tA dog.\tA car.\n")
    examples, names = bb.read_bert_tsv(pair, label_names=["0", "1"])
    assert examples.text_b == ["A person.", "A car."] and examples.labels == [1, 0]


def test_classic_bert_tsv_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("1\ta\tpos\tgood\n2\ta\tpos\n")
    with pytest.raises(bb.DataError, match=r"bad.tsv:2: expected 4 or 5"):
        bb.read_bert_tsv(path)
    path.write_text("1\ta\tpos\tgood\n2\ta\tmeh\tbad\n")
    with pytest.raises(bb.DataError, match=r"bad.tsv:2: field 'label': 'meh'"):
        bb.read_bert_tsv(path, label_names=["neg", "pos"])


def test_csv_with_named_columns_and_quoting(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('id,question,answer,label\n7,"Is it, really?",Yes,1\n8,No?,"He said ""no""",0\n')
    examples, names = bb.read_csv(path, text="question", text_pair="answer", label="label", id_column="id")
    assert examples.text_a == ["Is it, really?", "No?"] and examples.text_b[1] == 'He said "no"'
    assert names == ["0", "1"] and examples.labels == [1, 0] and examples.ids == ["7", "8"]
    with pytest.raises(bb.DataError, match=r"data.csv:2: field 'text' is missing"):
        bb.read_csv(path)


def test_csv_regression_and_bad_number(tmp_path):
    path = tmp_path / "sts.csv"
    path.write_text("a,b,score\nx,y,4.5\nx,z,high\n")
    with pytest.raises(bb.DataError, match=r"sts.csv:3: field 'score': 'high' is not a number"):
        bb.read_csv(path, text="a", text_pair="b", label="score", regression=True)


def test_jsonl_reader_and_errors(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]))
    examples, names = bb.read_jsonl(path)
    assert names == ["x", "y"] and examples.labels == [0, 1]
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(bb.DataError, match=r"data.jsonl:2: not valid JSON"):
        bb.read_jsonl(path)
    path.write_text('{"text": "a", "label": "x"}\n{"body": "b", "label": "x"}\n')
    with pytest.raises(bb.DataError, match=r"data.jsonl:2: field 'text' is missing"):
        bb.read_jsonl(path)


def test_hf_dataset_with_classlabel_and_string_labels():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    data = datasets.Dataset.from_dict({"text": ["bad", "good"], "label": [0, 1]}, features=features)
    assert bb.examples_from_hf(data).labels == [0, 1]
    strings = datasets.Dataset.from_dict({"s1": ["a", "b"], "s2": ["c", "d"], "y": ["yes", "no"]})
    examples = bb.examples_from_hf(strings, text="s1", text_pair="s2", label="y", label_names=["no", "yes"])
    assert examples.labels == [1, 0] and examples.text_b == ["c", "d"]
    with pytest.raises(bb.DataError, match="column 'sentence' is missing"):
        bb.examples_from_hf(strings, text="sentence")
    out_of_range = datasets.Dataset.from_dict({"text": ["a"], "label": [5]})
    with pytest.raises(bb.DataError, match="outside 0..1"):
        bb.examples_from_hf(out_of_range, label_names=["neg", "pos"])


def test_holdout_split_and_subsample_are_deterministic():
    examples = bb.Examples([f"t{i}" for i in range(100)], labels=[i % 2 for i in range(100)])
    rest, held = examples.split(0.1, seed=0)
    assert len(held) == 10 and len(rest) == 90 and not set(held.ids) & set(rest.ids)
    assert held.ids == examples.split(0.1, seed=0)[1].ids
    assert len(examples.subsample(30, seed=0)) == 30 and examples.subsample(0, seed=0) is examples


def _multi_label_datasets(datasets):
    """The same three documents, labels {arts, tech}, {}, {sport}, as a Sequence(ClassLabel) column of a named
    dataset, as multi-hot lists of 0/1 and as lists of label names."""
    features = datasets.Features({"text": datasets.Value("string"),
                                  "labels": datasets.Sequence(datasets.ClassLabel(names=["arts", "sport", "tech"]))})
    info = datasets.DatasetInfo(dataset_name="org/topics", features=features)
    text = ["an opera", "nothing", "a match"]
    indices = datasets.Dataset.from_dict({"text": text, "labels": [[0, 2], [], [1]]}, features=features, info=info)
    hot = datasets.Dataset.from_dict({"text": text, "labels": [[1, 0, 1], [0, 0, 0], [0, 1, 0]]})
    words = datasets.Dataset.from_dict({"text": text, "labels": [["tech", "arts"], [], ["sport"]]})
    return indices, hot, words


def test_hf_multi_label_column_is_never_read_as_classes_of_label_combinations(monkeypatch):
    """A list of labels per row used to become one class per distinct list ([0, 2] -> class 0, [1] -> class 1):
    a multiclass task over label combinations, silently. examples_from_hf refuses it now (naming the reader that
    reads it), and notebook 04's load_documents reads it as a multi-label task."""
    datasets = pytest.importorskip("datasets")
    indices, hot, words = _multi_label_datasets(datasets)
    with pytest.raises(bb.DataError, match=r"dataset\(org/topics\): column 'labels' holds a list of labels"):
        bb.examples_from_hf(indices, label="labels")
    for data in (hot, words):
        with pytest.raises(bb.DataError, match=r"column 'labels' holds a list of labels .*multilabel_from_hf"):
            bb.examples_from_hf(data, label="labels")
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, split=None: indices)
    docs = bb.load_documents("hf:org/topics:train", label="labels")
    assert docs.multilabel and docs.label_names == ("arts", "sport", "tech")
    assert docs.examples.labels == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]


def test_hf_multi_label_columns_read_as_multi_hot_labels():
    """Indices of a Sequence(ClassLabel), multi-hot 0/1 lists and lists of names all give the multi-hot labels that
    read_documents gives with label_sep; malformed rows are DataErrors naming the row and the column."""
    datasets = pytest.importorskip("datasets")
    from bertbench.data.text_label import is_multilabel_column, multilabel_from_hf

    indices, hot, words = _multi_label_datasets(datasets)
    expected = [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    names = ["arts", "sport", "tech"]
    for data, given in ((indices, None), (hot, names), (words, None)):
        assert is_multilabel_column(data, "labels")
        examples, got = multilabel_from_hf(data, label="labels", label_names=given)
        assert got == names and examples.labels == expected and examples.text_a[2] == "a match"
    assert multilabel_from_hf(hot, label="labels")[1] == ["0", "1", "2"]
    assert not is_multilabel_column(datasets.Dataset.from_dict({"label": [0, 1]}), "label")
    for labels in ([[1, 0, 1], [0, 1]], [[0, 1], [0, 2]]):  # ragged; class indices without a ClassLabel
        data = datasets.Dataset.from_dict({"text": ["a", "b"], "labels": labels})
        with pytest.raises(bb.DataError, match=r"row 1: field 'labels': \[0, \d\] is not a multi-hot list of"):
            multilabel_from_hf(data, label="labels")
    with pytest.raises(bb.DataError, match=r"row 0: field 'labels': 'tech' is not one of \['arts', 'sport'\]"):
        multilabel_from_hf(words, label="labels", label_names=["arts", "sport"])
    with pytest.raises(bb.DataError, match=r"row 0: field 'labels': 2 is not one of \['arts', 'sport'\]"):
        multilabel_from_hf(indices, label="labels", label_names=["arts", "sport"])
