"""Bad input the readers used to take without a word (issue 24, part 2): duplicated header names, a header line in a
classic BERT TSV, dev labels numbered apart from the training labels, one class spelt two ways, missing texts and
non-finite or out-of-range targets from Hugging Face datasets, NUL bytes, and a tab inside a classic-TSV text.

Each test names, in its docstring, what the reader did before. Functions added by the fix (``read_splits``,
``read_hf``) are imported inside the tests, so the rest of the file still runs against the old readers.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from bertbench.data.documents import load_documents, read_documents
from bertbench.data.examples import DataError
from bertbench.data.glue import TASKS, glue_examples_from_hf, read_glue_tsv
from bertbench.data.squad import read_squad
from bertbench.data.text_label import examples_from_hf, read_bert_tsv, read_csv, read_jsonl


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# ---- 1. a header that names a column twice ----------------------------------------------------------------------


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path):
    """DictReader kept the last 'text' column: the model trained on the notes, not the review."""
    path = write(tmp_path / "data.csv", "text,label,text\ngreat film,pos,note 1\ndull,neg,note 2\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: the header names column(s) ['text'] more than once")):
        read_csv(path)


def test_a_glue_header_naming_a_column_twice_is_refused(tmp_path):
    """The GLUE reader's column map kept the last 'sentence' column (after stripping blanks from the names)."""
    path = write(tmp_path / "SST-2" / "dev.tsv", "sentence\tlabel\tsentence \ngood film\t1\tnote\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: the header names column(s) ['sentence'] more than once")):
        read_glue_tsv("sst2", "dev", tmp_path)


def test_repeated_blank_header_names_are_allowed():
    """Unnamed trailing columns (a spreadsheet's ',,') are not asked for and stay harmless."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "data.csv", "text,label,,\ngood,1,,\n")
        examples, names = read_csv(path)
    assert examples.text_a == ["good"] and names == ["1"]


# ---- 2. a header line in a classic BERT TSV -------------------------------------------------------------------------

ROWS = "1\ta\tpos\tgreat film\n2\ta\tneg\tdull film\n3\ta\tpos\tfine\n"


@pytest.mark.parametrize("header", ["", "id\talpha\tlabel\ttext\n", "index\tx\tsentiment\tsentence\n",
                                    "guid\tALPHA\tLABEL\tTEXT_A\n"], ids=["none", "id-label", "index", "upper-case"])
def test_classic_bert_tsv_reads_the_same_with_or_without_a_header_line(tmp_path, header):
    """A header line used to be read as an example of class 'label' (names ['label', 'neg', 'pos'])."""
    path = write(tmp_path / "train.tsv", header + ROWS)
    examples, names = read_bert_tsv(path)
    assert names == ["neg", "pos"] and examples.labels == [1, 0, 1] and examples.ids == ["1", "2", "3"]
    assert examples.text_a == ["great film", "dull film", "fine"]


def test_a_first_row_whose_label_the_data_uses_is_data(tmp_path):
    """The rule: a label field that other rows (or label_names) use is data, whatever the row is called."""
    path = write(tmp_path / "train.tsv", "id\ta\tlabel\tthe word label\n2\ta\tlabel\tagain\n3\ta\tother\tx\n")
    examples, names = read_bert_tsv(path)
    assert len(examples) == 3 and names == ["label", "other"]
    single = write(tmp_path / "one.tsv", "id\ta\tlabel\tthe word label\n")
    assert len(read_bert_tsv(single, label_names=["label", "other"])[0]) == 1
    assert read_bert_tsv(write(tmp_path / "forced.tsv", "id\ta\tlabel\tx\n" + ROWS), header=False)[1] == [
        "label", "neg", "pos"]
    assert len(read_bert_tsv(write(tmp_path / "skip.tsv", "7\ta\tpos\tx\n" + ROWS), header=True)[0]) == 3


# ---- 3. dev and test splits read with the training labels -----------------------------------------------------------


def test_a_dev_file_is_read_with_the_training_label_names(tmp_path):
    """Read alone, a dev file holding only 'pos' numbered it 0 where train has it at 1: wrong scores, no error."""
    from bertbench.data.text_label import read_splits

    train = write(tmp_path / "train.tsv", ROWS)
    dev = write(tmp_path / "dev.tsv", "7\ta\tpos\tgood\n8\ta\tpos\tnice\n")
    test = write(tmp_path / "test.tsv", "9\ta\t?\tunknown\n")
    assert read_bert_tsv(dev)[0].labels == [0, 0]  # the trap read_splits exists for
    splits, names = read_splits(read_bert_tsv, {"train": train, "dev": dev, "test": test}, unlabelled=("test",))
    assert names == ["neg", "pos"] and list(splits) == ["train", "dev", "test"]
    assert splits["dev"].labels == [1, 1] and splits["test"].labels is None
    write(dev, "7\ta\tpos\tgood\n8\ta\tmeh\tso-so\n")
    with pytest.raises(DataError, match=re.escape(f"{dev}:2: field 'label': 'meh' is not one of ['neg', 'pos']")):
        read_splits(read_bert_tsv, {"train": train, "dev": dev})


@pytest.mark.parametrize("kind", ["csv", "jsonl", "hf"])
def test_every_reader_reads_splits_with_the_training_label_names(tmp_path, kind):
    from bertbench.data.text_label import read_hf, read_splits

    rows = {"train": [("a", "neg"), ("b", "pos")], "dev": [("c", "pos")]}
    if kind == "hf":
        datasets = pytest.importorskip("datasets")
        sources = {split: datasets.Dataset.from_dict({"text": [t for t, _ in r], "label": [y for _, y in r]})
                   for split, r in rows.items()}
        reader = read_hf
    else:
        line = {"csv": lambda t, y: f"{t},{y}\n", "jsonl": lambda t, y: f'{{"text": "{t}", "label": "{y}"}}\n'}[kind]
        sources = {split: write(tmp_path / f"{split}.{kind}", ("text,label\n" if kind == "csv" else "")
                                + "".join(line(t, y) for t, y in r)) for split, r in rows.items()}
        reader = {"csv": read_csv, "jsonl": read_jsonl}[kind]
    splits, names = read_splits(reader, sources)
    assert names == ["neg", "pos"] and splits["dev"].labels == [1]
    splits, _ = read_splits(reader, sources, unlabelled=("dev",), label="label")  # a test split has no labels
    assert splits["dev"].labels is None and splits["train"].labels == [0, 1]


def test_hf_documents_keep_the_label_order_their_labels_were_numbered_with(monkeypatch):
    """load_documents numbered integer labels 2, 10 as the reader did (2 -> 0, 10 -> 1) but named them in string
    order ('10', '2'): every prediction of class 0 was reported as '10'."""
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [10, 2, 10]})
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, split=None: data)
    docs = load_documents("hf:org/numbers:train")
    assert [docs.label_names[k] for k in docs.examples.labels] == ["10", "2", "10"]


# ---- 4. one class is one class --------------------------------------------------------------------------------------


def test_json_labels_1_and_1_0_and_true_are_one_class(tmp_path):
    """1, 1.0 and true used to be three classes ('1', '1.0', 'True'), and 0, 0.0, false three more."""
    values = ["1", "1.0", "true", '"1"', '"1.0"', "0", "0.0", "false"]
    path = write(tmp_path / "data.jsonl", "".join(f'{{"text": "t{i}", "label": {v}}}\n' for i, v in enumerate(values)))
    examples, names = read_jsonl(path)
    assert names == ["0", "1"] and examples.labels == [1, 1, 1, 1, 1, 0, 0, 0]
    assert read_jsonl(path, label_names=["0", "1"])[0].labels == [1, 1, 1, 1, 1, 0, 0, 0]


def test_csv_labels_1_and_1_0_are_one_class(tmp_path):
    """pandas writes an integer column with a gap as 1.0: concatenated with a clean file, '1' and '1.0' were two."""
    path = write(tmp_path / "data.csv", "text,label\na,1\nb,1.0\nc,0\nd,2.5\n")
    examples, names = read_csv(path)
    assert names == ["0", "1", "2.5"] and examples.labels == [1, 1, 0, 2]
    with pytest.raises(DataError, match=re.escape("label_names ['1', '1.0']: '1' and '1.0' name the same label")):
        read_csv(path, label_names=["1", "1.0"])


def test_labels_that_look_like_numbers_but_are_not_sort_as_text(tmp_path):
    """'²'.isdigit() is True, and sorting the labels called int('²'): a bare ValueError instead of a class."""
    path = write(tmp_path / "data.csv", "text,label\na,\u00b2\nb,10\nc,2\nd," + "9" * 5000 + "\n")
    assert read_csv(path)[1] == ["2", "10", "9" * 5000, "\u00b2"]


def test_hf_boolean_labels_are_0_and_1_as_in_json_files(monkeypatch):
    """A bool column became the classes 'False' and 'True', where a JSONL file's true is class '1'."""
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [True, False, True]})
    assert examples_from_hf(data).labels == [1, 0, 1]
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, split=None: data)
    assert load_documents("hf:org/flags:train").label_names == ("0", "1")


# ---- 5. missing texts, non-finite and out-of-range targets ----------------------------------------------------------


def test_hf_none_text_is_refused_naming_dataset_row_and_column():
    """None became the text 'None', which the model then read."""
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"text": ["a", None], "pair": ["b", "c"], "label": [0, 1]})
    with pytest.raises(DataError, match=re.escape("dataset(in memory) row 1: field 'text': expected text, got "
                                                  "NoneType (a missing value")):
        examples_from_hf(data)
    data = datasets.Dataset.from_dict({"text": ["a", "b"], "pair": [None, "c"], "label": [0, 1]})
    with pytest.raises(DataError, match=re.escape("dataset(in memory) row 0: field 'pair': expected text")):
        examples_from_hf(data, text_pair="pair")


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_hf_non_finite_regression_target_is_refused(bad):
    """NaN was accepted as a target: the loss became NaN and training went on with a poisoned model."""
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"text": ["a", "b"], "score": [1.5, bad]})
    with pytest.raises(DataError, match=re.escape(f"dataset(in memory) row 1: field 'score': {bad!r} is not a finite")):
        examples_from_hf(data, label="score", regression=True)


@pytest.mark.parametrize("score", ["5.5", "-0.5"])
def test_stsb_scores_outside_0_to_5_are_refused(tmp_path, score):
    """STS-B is annotated on 0..5; a 5.5 was accepted, and the model learnt to predict what GLUE cannot take."""
    path = write(tmp_path / "STS-B" / "dev.tsv",
                 f"index\tsentence1\tsentence2\tscore\n0\tA.\tB.\t5\n1\tA.\tC.\t{score}\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: field 'label': {float(score):g} is outside stsb's "
                                                  f"range 0..5")):
        read_glue_tsv("stsb", "dev", tmp_path)
    datasets = pytest.importorskip("datasets")
    hub = datasets.Dataset.from_dict({"sentence1": ["A.", "A."], "sentence2": ["B.", "C."],
                                      "label": [5.0, float(score)], "idx": [0, 1]})
    with pytest.raises(DataError, match=re.escape(f"row 1: field 'label': {float(score):g} is outside stsb's range")):
        glue_examples_from_hf(TASKS["stsb"], hub, "dev")


def test_the_stsb_submission_clips_and_says_how_many(tmp_path, capsys):
    """Predictions outside 0..5 were clipped without a word (GLUE takes 0..5 only, so clipping stays)."""
    from bertbench.data.examples import Examples
    from bertbench.experiments.glue_finetune import write_submission

    examples = Examples(["a", "b", "c", "d"], ["e", "f", "g", "h"], ids=["0", "1", "2", "3"])
    path = write_submission(TASKS["stsb"], "test", examples, np.array([[-0.4], [2.0], [5.7], [6.1]]), tmp_path)
    assert path.read_text().splitlines()[1:] == ["0\t0.000", "1\t2.000", "2\t5.000", "3\t5.000"]
    assert "3 of 4 predictions outside 0..5 clipped" in capsys.readouterr().out


# ---- 6. NUL bytes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reader", "name", "content", "where"), [
    ("glue", "SST-2/dev.tsv", "sentence\tlabel\ngood\t1\nba\x00d\t0\n", ":3: field 'sentence'"),
    ("cola", "CoLA/dev.tsv", "src\t1\t\tGood.\nsrc\t0\t*\tBa\x00d.\n", ":2: field '#4'"),
    ("bert", "train.tsv", "1\ta\tpos\tgood\n2\ta\tneg\tba\x00d\n", ":2: field 'text_a'"),
    ("csv", "data.csv", "text,label\ngood,1\nba\x00d,0\n", ":3: field 'text'"),
    ("jsonl", "data.jsonl", '{"text": "good", "label": 1}\n{"text": "ba\\u0000d", "label": 0}\n', ":2: field 'text'"),
    ("documents", "docs.csv", "text,label\ngood,sport\nba\x00d,arts\n", ":3: field 'text'"),
    ("squad", "squad.json", '{"data": [{"paragraphs": [{"context": "Pa\\u0000ris.", "qas": [{"id": "q", "question": '
     '"Where?", "is_impossible": true, "answers": []}]}]}]}',
     ": data[0].paragraphs[0]: field 'context'"),
], ids=["glue", "cola", "bert", "csv", "jsonl", "documents", "squad"])
def test_a_nul_byte_in_a_text_is_refused_naming_file_and_line(tmp_path, reader, name, content, where):
    """NUL bytes passed through to the tokenizer; they mean a UTF-16 file without a BOM or a binary one."""
    path = write(tmp_path / name, content)
    read = {"glue": lambda: read_glue_tsv("sst2", "dev", tmp_path),
            "cola": lambda: read_glue_tsv("cola", "dev", tmp_path), "bert": lambda: read_bert_tsv(path),
            "csv": lambda: read_csv(path), "jsonl": lambda: read_jsonl(path),
            "documents": lambda: read_documents(path), "squad": lambda: read_squad(path)}[reader]
    with pytest.raises(DataError, match=re.escape(f"{path}{where}: a NUL byte at character 2")):
        read()


def test_a_nul_byte_in_an_hf_text_is_refused():
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"text": ["good", "ba\x00d"], "label": [1, 0]})
    with pytest.raises(DataError, match=re.escape("dataset(in memory) row 1: field 'text': a NUL byte")):
        examples_from_hf(data)


# ---- 7. a tab inside a classic-TSV text ----------------------------------------------------------------------------


def test_a_tab_inside_the_first_rows_text_is_blamed_on_that_row(tmp_path):
    """The first row set the layout: its stray tab made it a 5-field pair row, and line 2 was blamed."""
    path = write(tmp_path / "train.tsv", "1\ta\tpos\tgreat\tfilm\n2\ta\tneg\tdull\n3\ta\tpos\tfine\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: 5 tab-separated fields where 2 other row(s) have 4 ")
                       + r".*a tab inside a text"):
        read_bert_tsv(path)
    later = write(tmp_path / "later.tsv", "1\ta\tpos\tgreat\n2\ta\tneg\tdull\tfilm\n3\ta\tpos\tfine\n")
    with pytest.raises(DataError, match=re.escape(f"{later}:2: 5 tab-separated fields")):
        read_bert_tsv(later)
    tie = write(tmp_path / "tie.tsv", "1\ta\tpos\tgreat\tfilm\n2\ta\tneg\tdull\n")
    with pytest.raises(DataError, match=re.escape(f"{tie}:1: 5 tab-separated fields where 1 other row(s) have 4")):
        read_bert_tsv(tie)
