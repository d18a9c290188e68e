"""GLUE readers on the real files (every format in the official download) and on malformed copies."""

import pytest

import bertbench as bb
from bertbench.data.glue import TASKS, TRAINABLE_TASKS

# (task, split): (rows, first label index or None, pair?) — counts from shared/data/MANIFEST.md
REAL_SPLITS = {
    ("cola", "train"): 8551, ("cola", "dev"): 1043, ("cola", "test"): 1063,
    ("sst2", "train"): 67349, ("sst2", "dev"): 872, ("sst2", "test"): 1821,
    ("mrpc", "train"): 3668, ("mrpc", "dev"): 408, ("mrpc", "test"): 1725,
    ("stsb", "train"): 5749, ("stsb", "dev"): 1500, ("stsb", "test"): 1379,
    ("rte", "train"): 2490, ("rte", "dev"): 277, ("rte", "test"): 3000,
    ("wnli", "train"): 635, ("wnli", "dev"): 71, ("wnli", "test"): 146,
    ("qnli", "dev"): 5463, ("qnli", "test"): 5463, ("ax", "test"): 1104,
}


@pytest.mark.parametrize(("task", "split"), sorted(REAL_SPLITS))
def test_every_official_file_reads_with_the_official_row_count(glue_dir, task, split):
    examples = bb.read_glue_tsv(task, split, glue_dir)
    spec = TASKS[task]
    assert len(examples) == REAL_SPLITS[(task, split)]
    assert examples.is_pair == spec.is_pair
    if split.startswith("test"):
        assert examples.labels is None
    elif spec.is_regression:
        assert all(0.0 <= value <= 5.0 for value in examples.labels)
    else:
        assert set(examples.labels) == set(range(spec.num_labels))
    assert all(isinstance(text, str) for text in examples.text_a)


def test_label_distributions_match_the_manifest(glue_dir):
    cola = bb.read_glue_tsv("cola", "train", glue_dir)  # no header: label is column 2
    assert cola.labels.count(1) == 6023 and cola.labels.count(0) == 2528
    mrpc = bb.read_glue_tsv("mrpc", "train", glue_dir)  # BOM header; train.rebuilt.tsv, not the short train.tsv
    assert mrpc.labels.count(1) == 2474 and mrpc.labels.count(0) == 1194
    rte = bb.read_glue_tsv("rte", "dev", glue_dir)  # string labels -> official order (entailment = 0)
    assert rte.labels.count(0) == 146 and rte.labels.count(1) == 131
    wnli = bb.read_glue_tsv("wnli", "dev", glue_dir)  # 0/1 in the file; 1 = entailment
    assert wnli.labels.count(1) == 31 and TASKS["wnli"].label_names[1] == "entailment"


def test_quotes_are_kept_verbatim(glue_dir):
    """QUOTE_NONE: sentences with bare double quotes are not merged with the next line."""
    sst2 = bb.read_glue_tsv("sst2", "train", glue_dir)
    assert any('"' in text for text in sst2.text_a) or len(sst2) == 67349


def test_test_splits_keep_their_index_for_submission(glue_dir):
    rte = bb.read_glue_tsv("rte", "test", glue_dir)
    assert rte.ids[:3] == ["0", "1", "2"]


def test_missing_task_names_every_path_it_looked_for(tmp_path):
    with pytest.raises(bb.DataError) as err:
        bb.read_glue_tsv("mnli", "train", tmp_path)
    assert str(tmp_path / "MNLI" / "train.tsv") in str(err.value)
    with pytest.raises(bb.DataError) as err:
        bb.read_glue_tsv("qqp", "dev", tmp_path)
    assert "QQP" in str(err.value) and "hub" in str(err.value)


def test_registry_covers_all_of_glue_with_official_label_orders():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "ax"}
    assert TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert TASKS["mnli"].eval_splits == ("dev_matched", "dev_mismatched")
    assert TASKS["stsb"].is_regression and TASKS["stsb"].num_labels == 1
    assert TASKS["cola"].score_metrics == ("mcc",)
    assert TASKS["mrpc"].score_metrics == ("accuracy", "f1")
    assert "ax" not in TRAINABLE_TASKS and TASKS["ax"].predicted_by == "mnli"


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_malformed_row_names_file_line_and_field(tmp_path):
    rte = tmp_path / "RTE" / "dev.tsv"
    _write(rte, "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tC.\tD.\tmaybe\n")
    with pytest.raises(bb.DataError) as err:
        bb.read_glue_tsv("rte", "dev", tmp_path)
    assert f"{rte}:3" in str(err.value) and "'label'" in str(err.value) and "maybe" in str(err.value)

    _write(rte, "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tC.\tnot_entailment\n")
    with pytest.raises(bb.DataError, match=r"dev.tsv:3: expected 4 tab-separated fields, got 3"):
        bb.read_glue_tsv("rte", "dev", tmp_path)

    stsb = tmp_path / "STS-B" / "dev.tsv"
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    _write(stsb, header + "0\tg\tf\ty\t0\ts\ts\tA.\tB.\tfive\n")
    with pytest.raises(bb.DataError, match=r"dev.tsv:2: field 'label': 'five' is not a number"):
        bb.read_glue_tsv("stsb", "dev", tmp_path)

    _write(tmp_path / "SST-2" / "dev.tsv", "text\tlabel\nfine\t1\n")
    with pytest.raises(bb.DataError, match=r"header lacks column\(s\) \['sentence'\]"):
        bb.read_glue_tsv("sst2", "dev", tmp_path)


def test_bom_headerless_cola_and_no_trailing_newline(tmp_path):
    _write(tmp_path / "CoLA" / "dev.tsv", "src\t1\t\tThe cat sat.\nsrc\t0\t*\tCat the sat.")
    cola = bb.read_glue_tsv("cola", "dev", tmp_path)
    assert cola.text_a == ["The cat sat.", "Cat the sat."] and cola.labels == [1, 0]
    (tmp_path / "MRPC").mkdir()
    (tmp_path / "MRPC" / "dev.tsv").write_bytes(
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said \"hi\".\tHe said hi.\n".encode())
    mrpc = bb.read_glue_tsv("mrpc", "dev", tmp_path)
    assert mrpc.labels == [1] and mrpc.text_a == ['He said "hi".']


def test_hub_layout_converts_with_classlabel_order():
    datasets = pytest.importorskip("datasets")
    from bertbench.data.glue import glue_examples_from_hf

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(TASKS["mnli"].label_names)),
                                  "idx": datasets.Value("int32")})
    data = datasets.Dataset.from_dict({"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0],
                                       "idx": [0, 1]}, features=features)
    examples = glue_examples_from_hf(TASKS["mnli"], data, "dev_matched")
    assert examples.labels == [2, 0] and examples.text_b == ["h1", "h2"] and examples.ids == ["0", "1"]
