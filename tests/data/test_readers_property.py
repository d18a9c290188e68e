"""Every file reader on hostile input: random bytes, wrong delimiters, missing and extra columns, labels outside the
label set, empty texts, bytes that are not UTF-8 and one enormous line.

The property: a reader returns valid examples or raises a DataError whose message names the file — never a KeyError,
UnicodeDecodeError, csv.Error, RecursionError, or text that makes a tokenizer fail later. The results and
predictions loaders keep the same promise with ResultsError (hand-edited cells, files cut short, Excel's re-save).
"""

import csv
import dataclasses
import io
import json
import math
import re
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertbench.data.corpus import iter_text_files, iter_wikiextractor, iter_wikitext, open_corpus
from bertbench.data.documents import load_documents, read_bbc, read_documents, read_hyperpartisan
from bertbench.data.examples import DataError, DataWarning
from bertbench.data.glue import TASKS, read_glue_tsv
from bertbench.data.squad import read_squad
from bertbench.data.text_label import read_bert_tsv, read_csv, read_jsonl
from bertbench.experiments.glue_finetune import read_predictions
from bertbench.paths import data_dir
from bertbench.results import COLUMNS, ResultsError, load_results, make_rows

# tmp_path and conftest's autouse fixture are function-scoped, so the examples of one test share them: each example
# overwrites the file it reads, and the fixture only sets environment variables
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
BIG = 3_000_000  # characters in "one enormous line": a few MB keeps the tests fast and is far past csv's 128 KiB

# ---- strategies ----------------------------------------------------------------------------------------------------

PIECES = ("\t", ",", ";", '"', "'", "\n", "\r\n", "\r", " ", "\ufeff", "\x00", "{", "}", "[", "]", ":", "\\",
          '<doc id="1" title="T">', "</doc>", " = T = ", " = = H = = ", " @-@ ", "<unk>", "text", "label", "0", "1",
          "nan", "entailment", "é", "\U0001f916", "\u2028", "\u0301", "²")
CELLS = st.one_of(st.sampled_from(["", " ", "0", "1", "2", "-1", "2.5", "nan", "inf", "²", "entailment", "neutral",
                                   "not_entailment", "neg", "pos", "a|b", '"quoted"', "x"]), st.text(max_size=12))
CHUNK = st.one_of(st.sampled_from(PIECES).map(str.encode), st.text(max_size=6).map(str.encode),
                  st.binary(min_size=1, max_size=2))
NOISE = st.one_of(st.binary(max_size=300), st.lists(CHUNK, max_size=40).map(b"".join))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from(["0", "1", "neg", "pos", "a|b"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)
STRANGE_JSON_LINES = ('{"text": "\\ud800", "label": "1"}', "[" * 3000, "9" * 5000, '{"text": "a", "label": NaN}',
                      '{"text": "a", "label": null}', '"just a string"', "")


@st.composite
def tables(draw, columns, n_fields):
    """Delimited rows of about ``n_fields`` cells (at times one missing or one extra), mostly after a header."""
    delimiter = draw(st.sampled_from(["\t", "\t", ",", ",", ";"]))
    rows = draw(st.lists(st.lists(CELLS, min_size=max(1, n_fields - 1), max_size=n_fields + 1), max_size=6))
    lines = [delimiter.join(row) for row in rows]
    if columns and draw(st.integers(0, 5)):
        lines.insert(0, delimiter.join(columns))
    encoded = [line.encode() for line in lines]
    if encoded and draw(st.booleans()):  # bytes that are not UTF-8 inside one line
        at = draw(st.integers(0, len(encoded) - 1))
        encoded[at] += draw(st.binary(min_size=1, max_size=2))
    return draw(st.sampled_from([b"\n", b"\r\n"])).join(encoded)


@st.composite
def jsonl_files(draw, fields):
    """JSON Lines of objects with ``fields`` (mostly of the right type, at times anything) and strange lines."""
    record = st.fixed_dictionaries(
        {fields[0]: st.one_of(st.text(max_size=20), st.text(max_size=20), JSON_VALUES),
         fields[1]: st.one_of(st.sampled_from(["0", "1", 0, 1, "neg", "pos", "a|b"]), JSON_VALUES)},
        optional={name: JSON_VALUES for name in fields[2:]})
    lines = draw(st.lists(st.one_of(record.map(json.dumps), st.sampled_from(STRANGE_JSON_LINES),
                                    st.text(max_size=20)), max_size=6))
    return "\n".join(lines).encode() + draw(st.binary(max_size=2))


@st.composite
def squad_files(draw):
    """SQuAD-shaped JSON whose values are mostly of the right type and sometimes any JSON value."""
    def value(proper):
        return draw(st.one_of(proper, proper, proper, JSON_VALUES))

    paragraphs = []
    for _ in range(draw(st.integers(0, 2))):
        context = value(st.text(max_size=40))
        qas = []
        for _ in range(draw(st.integers(0, 3))):
            answers = []
            if isinstance(context, str) and context and draw(st.booleans()):
                start = draw(st.integers(0, len(context) - 1))
                end = draw(st.integers(start + 1, len(context)))
                answers.append({"text": value(st.just(context[start:end])),
                                "answer_start": value(st.integers(start - 25, start + 25))})
            qa = {"id": value(st.sampled_from(["q0", "q1", "q2"])), "question": value(st.text(max_size=20)),
                  "answers": value(st.just(answers))}
            if draw(st.booleans()):
                qa["is_impossible"] = value(st.just(not answers))
            qas.append(qa)
        paragraphs.append({"context": context, "qas": value(st.just(qas))})
    root = {"version": "v2.0", "data": value(st.just([{"title": "t", "paragraphs": value(st.just(paragraphs))}]))}
    return json.dumps(root, ensure_ascii=draw(st.booleans())).encode()


def squad_json(context: str, question: str, answer: str, start: int) -> bytes:
    qa = {"id": "q", "question": question, "answers": [{"text": answer, "answer_start": start}]}
    return json.dumps({"data": [{"paragraphs": [{"context": context, "qas": [qa]}]}]}).encode()


# ---- checks --------------------------------------------------------------------------------------------------------


def read_or_data_error(read, path):
    """``read()``'s result, or None when it raised a DataError naming ``path``; any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            return read()
        except DataError as err:
            assert str(path) in str(err), f"the message does not name {path}: {err}"
            return None


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def texts_of(reader: str, path: Path) -> list[str]:
    """The texts ``reader`` reads from ``path`` (GLUE: SST-2 dev under its parent's parent; BBC: its folder)."""
    if reader == "glue":
        return read_glue_tsv("sst2", "dev", path.parent.parent).text_a
    if reader == "bbc":
        return read_bbc(path.parent).examples.text_a
    if reader == "documents":
        return read_documents(path).examples.text_a
    corpus = {"text": lambda: iter_text_files([path]), "wikiextractor": lambda: iter_wikiextractor([path]),
              "wikitext": lambda: iter_wikitext(path)}
    if reader in corpus:
        return list(corpus[reader]())
    return {"bert": read_bert_tsv, "csv": read_csv, "jsonl": read_jsonl}[reader](path)[0].text_a


def check_examples(examples, num_labels):
    """Parallel lists of tokenizable texts, one id each, labels in 0..num_labels-1 (None: finite floats)."""
    assert len(examples) >= 1 and len(examples.ids) == len(examples)
    texts = examples.text_a + (examples.text_b or [])
    assert all(isinstance(text, str) and not LONE_SURROGATE.search(text) and "\x00" not in text for text in texts)
    if examples.labels is None:
        return
    if num_labels is None:
        assert all(isinstance(label, float) and math.isfinite(label) for label in examples.labels)
    else:
        assert all(type(label) is int and 0 <= label < num_labels for label in examples.labels)


def check_documents(docs):
    """Valid examples with at least one label name; multi-label: multi-hot lists as long as the label names."""
    assert docs.label_names
    if not docs.multilabel:
        check_examples(docs.examples, len(docs.label_names))
        return
    check_examples(dataclasses.replace(docs.examples, labels=None), None)
    assert all(len(hot) == len(docs.label_names) and set(hot) <= {0, 1} for hot in docs.examples.labels)


# ---- properties: random and garbled input --------------------------------------------------------------------------

GLUE_SPLITS = [("cola", "train"), ("cola", "test"), ("sst2", "dev"), ("mrpc", "dev"), ("stsb", "train"),
               ("rte", "test"), ("mnli", "dev_matched"), ("qqp", "dev")]


@PROPERTY
@given(task_split=st.sampled_from(GLUE_SPLITS), data=st.data())
def test_glue_tsv_reads_or_raises_data_error(tmp_path, task_split, data):
    task, split = TASKS[task_split[0]], task_split[1]
    layout = task.files[split][1]
    columns = [name for name in (layout.index, layout.text_a, layout.text_b, layout.label) if isinstance(name, str)]
    content = data.draw(st.one_of(NOISE, tables(columns if layout.header else None, len(columns) or 4)))
    path = write(tmp_path / task.dir_name / task.files[split][0][0], content)
    examples = read_or_data_error(lambda: read_glue_tsv(task, split, tmp_path), path)
    if examples is not None:
        check_examples(examples, None if task.is_regression else task.num_labels)


@PROPERTY
@given(content=st.one_of(NOISE, tables(None, 4), tables(None, 5)),
       label_names=st.sampled_from([None, ["neg", "pos"], ["0", "1", "2"]]))
def test_bert_tsv_reads_or_raises_data_error(tmp_path, content, label_names):
    path = write(tmp_path / "train.tsv", content)
    result = read_or_data_error(lambda: read_bert_tsv(path, label_names=label_names), path)
    if result is not None:
        check_examples(result[0], len(result[1]))


@PROPERTY
@given(content=st.one_of(NOISE, tables(["id", "text", "label"], 3), tables(["text", "pair", "label"], 3)),
       options=st.sampled_from([{}, {"regression": True}, {"label_names": ["0", "1"]}, {"text_pair": "pair"},
                                {"id_column": "id", "label": None}]))
def test_csv_reads_or_raises_data_error(tmp_path, content, options):
    path = write(tmp_path / "data.csv", content)
    result = read_or_data_error(lambda: read_csv(path, **options), path)
    if result is not None:
        check_examples(result[0], None if result[1] is None else len(result[1]))


@PROPERTY
@given(content=st.one_of(NOISE, jsonl_files(["text", "label", "id", "pair"])),
       options=st.sampled_from([{}, {"regression": True}, {"label_names": ["0", "1"]}, {"text_pair": "pair"},
                                {"id_column": "id"}]))
def test_jsonl_reads_or_raises_data_error(tmp_path, content, options):
    path = write(tmp_path / "data.jsonl", content)
    result = read_or_data_error(lambda: read_jsonl(path, **options), path)
    if result is not None:
        check_examples(result[0], None if result[1] is None else len(result[1]))


WIKI_LINES = st.lists(st.one_of(st.sampled_from(['<doc id="1" url="u" title="T">', "</doc>", "Title", "", " ",
                                                 " = Title = ", " = = Section = = ", " A well @-@ known <unk> . ",
                                                 " <unk> "]), st.text(max_size=10)), max_size=12)


@PROPERTY
@given(content=st.one_of(NOISE, WIKI_LINES.map(lambda lines: "\n".join(lines).encode())))
def test_corpus_readers_read_or_raise_data_error(tmp_path, content):
    path = write(tmp_path / "corpus.txt", content)
    for read in (lambda: list(iter_wikiextractor([path])), lambda: list(iter_text_files([path])),
                 lambda: list(iter_wikitext(path)), lambda: list(open_corpus(str(path)))):
        documents = read_or_data_error(read, path)
        if documents is not None:
            assert all(isinstance(doc, str) and doc.strip() and not LONE_SURROGATE.search(doc) for doc in documents)


@PROPERTY
@given(kind=st.sampled_from(["csv", "jsonl", "bbc", "hyperpartisan"]), label_sep=st.sampled_from(["", "|"]),
       data=st.data())
def test_long_document_readers_read_or_raise_data_error(tmp_path, kind, label_sep, data):
    if kind == "csv":
        path = write(tmp_path / "docs.csv", data.draw(st.one_of(NOISE, tables(["text", "label"], 2))))
        read = partial(load_documents, str(path), label_sep=label_sep)
    elif kind == "jsonl":
        path = write(tmp_path / "docs.jsonl", data.draw(st.one_of(NOISE, jsonl_files(["text", "label", "id"]))))
        read = partial(read_documents, path, label_sep=label_sep, id_column="id")
    elif kind == "bbc":
        content = data.draw(st.one_of(NOISE, tables(["category", "file", "text"], 3)))
        path = write(tmp_path / "bbc" / "bbc_news.csv", content)
        read = partial(read_bbc, tmp_path / "bbc")
    else:
        content = data.draw(st.one_of(NOISE, jsonl_files(["text", "label", "id", "title"])))
        path = write(tmp_path / "hyperpartisan" / "hyperpartisan_byarticle_train.jsonl", content)
        read = partial(read_hyperpartisan, tmp_path / "hyperpartisan")
    docs = read_or_data_error(read, path)
    if docs is not None:
        check_documents(docs)


@PROPERTY
@given(content=st.one_of(NOISE, squad_files()))
def test_squad_reads_or_raises_data_error(tmp_path, content):
    path = write(tmp_path / "squad.json", content)
    examples = read_or_data_error(lambda: read_squad(path), path)
    if examples is not None:
        assert examples and len({ex.id for ex in examples}) == len(examples)
        for ex in examples:
            assert not LONE_SURROGATE.search(ex.question + ex.context) and ex.is_impossible == (not ex.answers)
            assert all(ex.context[start:start + len(text)] == text
                       for text, start in zip(ex.answers, ex.answer_starts, strict=True))


# ---- wrong delimiter, missing and extra columns ---------------------------------------------------------------------


def test_wrong_delimiter_names_the_file_and_line(tmp_path):
    sst2 = write(tmp_path / "SST-2" / "dev.tsv", b"sentence,label\ngood film,1\n")
    with pytest.raises(DataError, match=re.escape(f"{sst2}:1: header lacks column(s) ['sentence', 'label']") +
                       r".*tab-separated"):
        read_glue_tsv("sst2", "dev", tmp_path)
    bert = write(tmp_path / "train.tsv", b"1,a,pos,great film\n")
    with pytest.raises(DataError, match=re.escape(f"{bert}:1: expected 4 or 5 tab-separated fields")):
        read_bert_tsv(bert)
    semicolons = write(tmp_path / "data.csv", b"text;label\ngood;1\n")
    with pytest.raises(DataError, match=re.escape(f"{semicolons}:2: field 'text' is missing (fields: ['text;label'])")):
        read_csv(semicolons)


@pytest.mark.parametrize(("reader", "content", "message"), [
    pytest.param("rte", b"index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\n",
                 ":2: expected 4 tab-separated fields, got 3", id="glue-missing"),
    pytest.param("rte", b"index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\tx\n",
                 ":2: expected 4 tab-separated fields, got 5", id="glue-extra"),
    # headerless CoLA: an extra field used to be ignored, cutting the sentence at its tab
    pytest.param("cola", b"src\t1\t\tThe cat sat.\nsrc\t0\t*\tCat the\tsat.\n",
                 ":2: expected 4 tab-separated fields, got 5", id="cola-extra"),
    pytest.param("cola", b"src\t1\tThe cat sat.\n", ":1: expected 4 tab-separated fields, got 3", id="cola-missing"),
    pytest.param("bert", b"1\ta\tpos\n", ":1: expected 4 or 5 tab-separated fields", id="bert-missing"),
    pytest.param("bert", b"1\ta\tpos\tA.\tB.\tC.\n", ":1: expected 4 or 5 tab-separated fields", id="bert-extra"),
    pytest.param("csv", b"id,text,label\n1,good\n", ":2: expected 3 fields like the header, got 2", id="csv-missing"),
    pytest.param("csv", b"id,text,label\n1,good,1,spare\n", ":2: expected 3 fields like the header, got 4",
                 id="csv-extra"),
    pytest.param("jsonl", b'{"text": "good"}\n', ":1: field 'label' is missing", id="jsonl-missing"),
])
def test_missing_and_extra_columns_name_the_line(tmp_path, reader, content, message):
    if reader in ("rte", "cola"):
        path = write(tmp_path / TASKS[reader].dir_name / "dev.tsv", content)
        read = partial(read_glue_tsv, reader, "dev", tmp_path)
    else:
        path = write(tmp_path / f"data.{'tsv' if reader == 'bert' else reader}", content)
        read = partial({"bert": read_bert_tsv, "csv": read_csv, "jsonl": read_jsonl}[reader], path)
    with pytest.raises(DataError, match=re.escape(f"{path}{message}")):
        read()


# ---- labels outside the label set -----------------------------------------------------------------------------------


def test_labels_outside_the_label_set_name_the_row_the_label_and_the_allowed_set(tmp_path):
    rte = write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\t²\n".encode())
    with pytest.raises(DataError, match=re.escape(f"{rte}:2: field 'label': '²' is not one of ('entailment', "
                                                  f"'not_entailment') or 0..1")):
        read_glue_tsv("rte", "dev", tmp_path)  # "²".isdigit() is True, and int("²") used to raise a bare ValueError
    stsb = tmp_path / "STS-B" / "dev.tsv"
    write(stsb, b"index\tsentence1\tsentence2\tscore\n0\tA.\tB.\tnan\n")
    with pytest.raises(DataError, match=re.escape(f"{stsb}:2: field 'label': 'nan' is not a finite number")):
        read_glue_tsv("stsb", "dev", tmp_path)
    bert = write(tmp_path / "train.tsv", b"1\ta\tpos\tgood\n2\ta\tmeh\tbad\n")
    with pytest.raises(DataError, match=re.escape(f"{bert}:2: field 'label': 'meh' is not one of ['neg', 'pos']")):
        read_bert_tsv(bert, label_names=["neg", "pos"])
    data = write(tmp_path / "data.csv", b"text,label\ngood,pos\nbad,3\n")
    with pytest.raises(DataError, match=re.escape(f"{data}:3: field 'label': '3' is not one of ['neg', 'pos']")):
        read_csv(data, label_names=["neg", "pos"])
    jsonl = write(tmp_path / "data.jsonl", b'{"text": "good", "label": "pos"}\n{"text": "bad", "label": null}\n')
    with pytest.raises(DataError, match=re.escape(f"{jsonl}:2: field 'label': expected a label, got null")):
        read_jsonl(jsonl)
    write(jsonl, b'{"text": "good", "label": 4.5}\n{"text": "bad", "label": true}\n')
    with pytest.raises(DataError, match=re.escape(f"{jsonl}:2: field 'label': True is not a finite number")):
        read_jsonl(jsonl, regression=True)  # true used to become the target 1.0
    unlabelled = write(tmp_path / "unlabelled.csv", b"text,label\na,\nb,|\n")
    with pytest.raises(DataError, match=re.escape(f"{unlabelled}: field 'label': no label in any document")):
        read_documents(unlabelled, label_sep="|")  # used to give a multi-label task with no labels at all
    multi = write(tmp_path / "multi.csv", b"text,label\na,sport\nb,sport|weather\n")
    with pytest.raises(DataError, match=re.escape(f"{multi}:3: field 'label': label(s) ['weather'] are not in "
                                                  f"label_names ['sport', 'tech']")):
        read_documents(multi, label_sep="|", label_names=["sport", "tech"])


# ---- empty and whitespace-only texts: kept, with one warning naming the first -------------------------------------


@pytest.mark.parametrize(("reader", "name", "content", "first", "rows"), [
    ("glue", "SST-2/test.tsv", b"index\tsentence\n0\tgood\n1\t \n2\t\n", ":3: field 'sentence'", 3),
    ("bert", "train.tsv", b"1\ta\tpos\tgood\n2\ta\tneg\t  \n", ":2: field 'text_a'", 2),
    ("csv", "data.csv", b'text,label\ngood,1\n"  ",0\n,1\n', ":3: field 'text'", 3),
    ("jsonl", "data.jsonl", b'{"text": "good", "label": 1}\n{"text": "\\t", "label": 0}\n', ":2: field 'text'", 2),
    ("squad", "squad.json", squad_json("Paris.", " ", "Paris", 0), ": data[0].paragraphs[0].qas[0]: field 'question'",
     1),
], ids=["glue", "bert", "csv", "jsonl", "squad"])
def test_empty_texts_are_kept_with_one_warning_naming_the_first(tmp_path, reader, name, content, first, rows):
    path = write(tmp_path / name, content)
    read = {"glue": lambda: read_glue_tsv("sst2", "test", tmp_path), "bert": lambda: read_bert_tsv(path)[0],
            "csv": lambda: read_csv(path)[0], "jsonl": lambda: read_jsonl(path)[0], "squad": lambda: read_squad(path)}
    with pytest.warns(DataWarning, match=re.escape(f"{path}{first}: empty or whitespace-only text")):
        result = read[reader]()
    assert len(result) == rows


def test_corpus_readers_skip_empty_documents_and_an_empty_corpus_is_an_error(tmp_path):
    wikitext = write(tmp_path / "valid.txt", b" = A = \n <unk> \n = B = \n Crabs walk . \n")
    assert list(iter_wikitext(wikitext)) == ["Crabs walk ."]  # article A held only <unk>: it used to yield ""
    blank = write(tmp_path / "blank.txt", b" \n\t\n\n")
    with pytest.raises(DataError, match=re.escape(f"corpus '{blank}': no documents")):
        list(open_corpus(str(blank)))


# ---- bytes that are not UTF-8: decoded as cp1252 / latin-1, with a warning naming the file --------------------------

# "£" in latin-1 (0xA3, as BBC's sport/199.txt) and cp1252's curly quotes; "é" is proper UTF-8 on the same line
LEGACY = "é".encode() + b" \xa3 \x93quoted\x94"
DECODED = "é £ “quoted”"


@pytest.mark.parametrize(("reader", "name", "content"), [
    ("glue", "SST-2/dev.tsv", b"sentence\tlabel\n" + LEGACY + b"\t1\n"),
    ("bert", "train.tsv", b"1\ta\tpos\t" + LEGACY + b"\n"),
    ("csv", "data.csv", b"text,label\n\"" + LEGACY + b"\",1\n"),
    ("jsonl", "data.jsonl", b'{"text": "' + LEGACY + b'", "label": 1}\n'),
    ("bbc", "bbc/bbc_news.csv", b"category,file,text\nsport,sport/199.txt,\"" + LEGACY + b"\"\n"),
    ("text", "corpus.txt", LEGACY + b"\n"),
    ("wikiextractor", "wiki_00", b'<doc id="1" title="T">\nT\n' + LEGACY + b"\n</doc>\n"),
    ("wikitext", "valid.txt", b" = T = \n " + LEGACY + b" \n"),
], ids=["glue", "bert", "csv", "jsonl", "bbc", "text", "wikiextractor", "wikitext"])
def test_non_utf8_bytes_are_decoded_with_a_warning_naming_the_file(tmp_path, reader, name, content):
    path = write(tmp_path / name, content)
    with pytest.warns(DataWarning, match=re.escape(f"{path}:") + r"\d+: bytes that are not UTF-8"):
        texts = texts_of(reader, path)
    assert texts == [DECODED]


def test_bbc_sport_199_decodes_its_pound_sign():
    path = data_dir() / "bbc" / "original" / "bbc" / "sport" / "199.txt"
    if not path.is_file():
        pytest.skip(f"BBC originals not found at {path}")
    with pytest.warns(DataWarning, match=re.escape(str(path))):
        text = "\n".join(iter_text_files([path]))
    assert "£15.8m" in text and "\ufffd" not in text


def test_utf16_and_non_utf8_json_are_clear_errors(tmp_path):
    utf16 = write(tmp_path / "data.csv", "text,label\ngood,1\n".encode("utf-16"))
    with pytest.raises(DataError, match=re.escape(f"{utf16}: UTF-16 text")):
        read_csv(utf16)
    squad = write(tmp_path / "squad.json", b'{"data": [{"paragraphs": [{"context": "\xa3", "qas": []}]}]}')
    with pytest.raises(DataError, match=re.escape(f"{squad}: not UTF-8")):  # JSON is UTF-8 by definition
        read_squad(squad)


# ---- one enormous line: long documents are legitimate input ---------------------------------------------------------


@pytest.mark.parametrize("reader", ["glue", "bert", "csv", "jsonl", "documents", "text", "wikiextractor", "wikitext",
                                    "squad"])
def test_one_enormous_line_reads(tmp_path, reader):
    long = "word, \"quoted\"; " * (BIG // 16) + "end"
    if reader == "squad":
        path = write(tmp_path / "squad.json", squad_json(long + "Paris.", "Where?", "Paris", len(long)))
        assert [ex.context for ex in read_squad(path)] == [long + "Paris."]
        return
    quoted = long.replace('"', '""')
    content, name = {
        "glue": (f"sentence\tlabel\n{long}\t1\n", "SST-2/dev.tsv"),
        "bert": (f"1\ta\tpos\t{long}\n", "train.tsv"),
        "csv": (f'text,label\n"{quoted}",1\n', "data.csv"),
        "jsonl": (json.dumps({"text": long, "label": 1}) + "\n", "data.jsonl"),
        "documents": (f'text,label\n"{quoted}",sport\n', "docs.csv"),
        "text": (long + "\n", "corpus.txt"),
        "wikiextractor": (f'<doc id="1" title="T">\nT\n{long}\n</doc>\n', "wiki_00"),
        "wikitext": (f" = T = \n {long}\n", "valid.txt"),
    }[reader]
    assert texts_of(reader, write(tmp_path / name, content.encode())) == [long]


def test_a_long_run_of_wikitext_heading_marks_reads_in_linear_time(tmp_path):
    path = write(tmp_path / "valid.txt", (" " + "= " * 20_000 + "x\n").encode())
    start = time.perf_counter()
    assert len(list(iter_wikitext(path))) == 1  # the old heading pattern backtracked for hours on this line
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("line", ["[" * 100_000, "1" * 100_000], ids=["deep-nesting", "huge-integer"])
def test_json_that_python_cannot_hold_is_a_data_error(tmp_path, line):
    jsonl = write(tmp_path / "data.jsonl", line.encode())
    with pytest.raises(DataError, match=re.escape(f"{jsonl}:1: JSON that Python cannot hold")):
        read_jsonl(jsonl)
    squad = write(tmp_path / "squad.json", line.encode())
    with pytest.raises(DataError, match=re.escape(f"{squad}: JSON that Python cannot hold")):
        read_squad(squad)


def test_json_texts_of_the_wrong_type_name_the_field(tmp_path):
    jsonl = write(tmp_path / "data.jsonl", b'{"text": "a", "pair": null, "label": 1}\n')
    with pytest.raises(DataError, match=re.escape(f"{jsonl}:1: field 'pair': expected text, got NoneType")):
        read_jsonl(jsonl, text_pair="pair")  # used to become the text "None"
    write(jsonl, b'{"text": 12, "label": 1}\n')
    with pytest.raises(DataError, match=re.escape(f"{jsonl}:1: field 'text': expected text, got int")):
        read_jsonl(jsonl)


def test_a_lone_surrogate_in_json_is_a_data_error_not_a_tokenizer_crash(tmp_path):
    jsonl = write(tmp_path / "data.jsonl", b'{"text": "caf\\ud800", "label": 1}\n')
    with pytest.raises(DataError, match=re.escape(f"{jsonl}:1: field 'text': a lone surrogate")):
        read_jsonl(jsonl)
    squad = write(tmp_path / "squad.json", json.dumps({"data": [{"paragraphs": [{"context": "ok", "qas": [
        {"id": "q", "question": "caf\ud800?", "is_impossible": True, "answers": []}]}]}]}).encode())
    with pytest.raises(DataError, match=re.escape(f"{squad}: data[0].paragraphs[0].qas[0]: field 'question'")):
        read_squad(squad)


# ---- the results and predictions loaders (bertbench.results): the same property, with ResultsError -----------------


def _hand_edited(path: Path, rows: list[list[str]], edits, cut, excel) -> Path:
    """``rows`` (header first) with ``edits`` (row, field, cell) applied, written as CSV (Excel's byte-order mark
    and CRLF with ``excel``) and cut after ``cut`` characters."""
    rows = [list(row) for row in rows]
    for row, field, cell in edits:
        rows[row % len(rows)][field % len(rows[0])] = cell
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n" if excel else "\n").writerows(rows)
    text = out.getvalue() if cut is None else out.getvalue()[:cut]
    return write(path, (b"\xef\xbb\xbf" if excel else b"") + text.encode("utf-8", "surrogatepass"))


def _loaded_or_results_error(load, path):
    """``load(path)``, or None when it raised a ResultsError naming ``path``; any other exception fails the test."""
    try:
        return load(path)
    except ResultsError as err:
        assert str(path) in str(err), f"the message does not name {path}: {err}"
        return None


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 21), CELLS), max_size=3)
CUTS = st.one_of(st.none(), st.none(), st.integers(0, 700))


@PROPERTY
@given(edits=EDITS, cut=CUTS, excel=st.booleans())
def test_results_loader_reads_or_raises_results_error(tmp_path, edits, cut, excel):
    """Hand-edited cells (nan, inf, 2.5, text, blanks), a file cut anywhere, Excel's BOM and CRLF: a frame whose
    number columns are finite and integer columns int64, or a ResultsError naming the file (issue 24: "inf" in an
    integer column was a raw OverflowError, "nan" in ``value`` was kept)."""
    common = {"run_id": "r", "notebook": "03_glue_finetune", "preset": "cpu", "model": "m", "task": "rte",
              "seed": 0, "init": "pretrained", "head_init": "new", "selection": "best", "max_len": 128,
              "train_examples": 10, "device": "cpu", "wall_s": 1.5, "config": '{"lr": 1}'}
    rows = make_rows(common, [("dev", 1, "score", 0.5), ("dev", 1, "accuracy", 0.25)])
    table = [list(COLUMNS)] + [[str(row[column]) for column in COLUMNS] for row in rows]
    path = _hand_edited(tmp_path / "r.csv", table, edits, cut, excel)
    frame = _loaded_or_results_error(load_results, path)
    if frame is None:
        return
    for column, kind in COLUMNS.items():
        if kind == "float":
            assert frame[column].dtype == "float64" and np.isfinite(frame[column]).all()
        elif kind == "int":
            assert frame[column].dtype == "int64"
    assert not frame[["run_id", "task", "split", "metric"]].isna().any().any()


@PROPERTY
@given(edits=EDITS, cut=CUTS, excel=st.booleans())
def test_glue_predictions_reader_reads_or_raises_results_error(tmp_path, edits, cut, excel):
    """The same for notebook 03's predictions file, which pandas read: a short row became NaN, then "Integer column
    has NA values" in notebook 06 or a normal-looking row on the next rewrite."""
    table = [["run_id", "task", "split", "example", "label", "prediction"],
             ["r", "stsb", "dev", "0", "2.5", "2.25"], ["r", "stsb", "dev", "1", "0", "0.125"]]
    path = _hand_edited(tmp_path / "predictions" / "p.csv", table, edits, cut, excel)
    frame = _loaded_or_results_error(read_predictions, path)
    if frame is None:
        return
    assert frame["example"].dtype == "int64"
    assert np.isfinite(frame[["label", "prediction"]].to_numpy(dtype=float)).all()
    assert not frame[["run_id", "task", "split"]].isna().any().any()
