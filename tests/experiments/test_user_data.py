"""Data of your own through notebooks 03 and 04 as a user runs them (plain ``python notebooks/NN.py`` with ``BB_*``
settings, tiny preset) on small files written here: a classic BERT data_dir as a GLUE-like task (classification with
text pairs, and regression), and long documents with their own splits (train/val/test files, a split column, a BERT
data_dir with TEXT_B as the text pair, a saved DatasetDict), multi-label and regression among them."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd

import bertbench as bb

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {"sport": "match goal team season coach league".split(),
          "politics": "vote party minister election law".split(),
          "tech": "software chip network data code device".split()}
FILLER = "the a of and in to it was on for with as by at".split()


def _text(rng: random.Random, labels, words: int = 50) -> str:
    """A document whose topic words (30% of it) give its labels away."""
    vocabulary = [word for label in labels for word in TOPICS[label]]
    return " ".join(rng.choice(vocabulary) if rng.random() < 0.3 else rng.choice(FILLER) for _ in range(words))


def _document(rng: random.Random, kind: str) -> dict:
    if kind == "multi":
        labels = rng.sample(sorted(TOPICS), rng.choice([1, 2]))
        return {"text": _text(rng, labels), "label": "|".join(labels)}
    topic = rng.choice(sorted(TOPICS))
    if kind == "regression":  # the score follows the topic, with noise
        return {"text": _text(rng, [topic]), "label": f"{sorted(TOPICS).index(topic) + rng.random():.3f}"}
    return {"text": _text(rng, [topic]), "label": topic}


def _documents(n: int, seed: int, kind: str = "single") -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"s{seed}-{i}", **_document(rng, kind)} for i in range(n)]


def write_csv(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


def write_bert_dir(folder: Path, sizes=(40, 16, 8), pair: bool = False, regression: bool = False,
                   header: bool = False, words: int = 8, test_labelled: bool = True, seed: int = 0) -> Path:
    """A classic BERT data_dir: train.tsv, dev.tsv, test.tsv (``ID, ALPHA, LABEL, TEXT_A[, TEXT_B]``)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "dev", "test"), sizes, strict=True):
        lines = ["id\talpha\tlabel\ttext_a" + ("\ttext_b" if pair else "")] if header else []
        for i in range(n):
            record = _document(rng, "regression" if regression else "single")
            label = record["label"] if split != "test" or test_labelled else "-1"
            second = f"\tis it about {rng.choice(sorted(TOPICS))}" if pair else ""
            lines.append(f"{split}-{i}\ta\t{label}\t{' '.join(record['text'].split()[:words])}{second}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def _run_notebook(name: str, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    """``BB_PRESET=tiny python notebooks/<name>.py`` with ``settings`` as BB_* variables; data under tmp/data."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BB_")}
    env.update(BB_PRESET="tiny", BB_DATA_DIR=str(tmp_path / "data"), BB_OUTPUT_DIR=str(tmp_path / "outputs"),
               BB_RUNS_DIR=str(tmp_path / "runs"), HF_HUB_OFFLINE="1", MPLBACKEND="Agg", **settings)
    completed = subprocess.run([sys.executable, str(ROOT / "notebooks" / f"{name}.py")], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def test_a_bert_data_dir_is_a_task_of_notebook_03(tmp_path):
    data = tmp_path / "data"
    write_bert_dir(data / "reviews", pair=True, header=True)  # header line skipped, TEXT_B as the pair
    write_bert_dir(data / "scores", regression=True, seed=1)
    tasks = f"tsv:{data / 'reviews'},tsv-regression:<data>/scores"  # a path as typed, and one as results record it
    completed = _run_notebook("03_glue_finetune", tmp_path, BB_TASKS=tasks, BB_SEEDS="0", BB_EPOCHS="1")
    frame = bb.load_results(tmp_path / "outputs" / "03_glue_finetune.csv")
    assert set(frame["task"]) == {"reviews", "scores"}
    dev = frame[frame["split"] == "dev"]
    assert set(dev[dev["task"] == "reviews"]["metric"]) == {"accuracy", "f1", "mcc", "score"}
    assert set(dev[dev["task"] == "scores"]["metric"]) == {"pearson", "spearman", "mse", "score"}
    assert set(frame[frame["split"] == "train_holdout"]["task"]) == {"reviews", "scores"}  # selection on train's 10%
    reviews = frame[frame["task"] == "reviews"]
    score = dev[(dev["task"] == "reviews") & (dev["metric"].isin(["accuracy", "f1"]))]["value"].mean()
    assert dev[(dev["task"] == "reviews") & (dev["metric"] == "score")]["value"].iloc[0] == score  # mean of acc, F1
    assert reviews["train_examples"].iloc[0] == 36  # 40 training rows, 10% held out for selection
    configs = {task: json.loads(rows["config"].iloc[0]) for task, rows in frame.groupby("task")}
    assert configs["reviews"]["tasks"] == ["tsv:<data>/reviews"]  # portable: the same run id on every machine
    assert configs["scores"]["tasks"] == ["tsv-regression:<data>/scores"]
    assert "not counted: reviews, scores" in completed.stdout  # never in the GLUE mean
    submission = tmp_path / "runs" / "glue" / reviews["run_id"].iloc[0] / "submission" / "reviews.tsv"
    predicted = pd.read_csv(submission, sep="\t")
    assert len(predicted) == 8 and set(predicted["prediction"]) <= set(TOPICS)  # test.tsv, by label name
    predictions = pd.read_csv(bb.predictions_path(tmp_path / "outputs" / "03_glue_finetune.csv"))
    assert predictions.groupby("task")["example"].count().to_dict() == {"reviews": 16, "scores": 16}  # all of dev


def test_long_documents_with_their_own_splits_regression_multilabel_and_pairs(tmp_path):
    data = tmp_path / "data"
    news = data / "news"  # train/val/test files, multi-label
    for split, (n, seed) in {"train": (30, 0), "val": (8, 1), "test": (8, 2)}.items():
        write_csv(news / f"{split}.csv", _documents(n, seed, "multi"))
    scores = _documents(46, 3, "regression")  # one file with a split column, a number to predict
    for i, record in enumerate(scores):
        record["split"] = "train" if i < 30 else "validation" if i < 38 else "test"
    write_csv(data / "scores.csv", scores)
    write_bert_dir(data / "claims", sizes=(30, 8, 8), pair=True, words=40)  # BERT data_dir, TEXT_B the pair
    from datasets import Dataset, DatasetDict

    DatasetDict({split: Dataset.from_list(_documents(n, seed)) for split, n, seed in
                 [("train", 30, 4), ("validation", 8, 5), ("test", 8, 6)]}).save_to_disk(str(data / "saved"))
    datasets = [str(news / "train.csv"), "<data>/scores.csv", f"tsv:{data / 'claims'}", str(data / "saved")]
    overrides = (f"{news / 'train.csv'}.label_sep=|;<data>/scores.csv.split_column=split;"
                 f"<data>/scores.csv.regression=1;tsv:{data / 'claims'}.chunk_size=24;"
                 f"tsv:{data / 'claims'}.stride=24;tsv:{data / 'claims'}.max_pair_tokens=12")
    completed = _run_notebook("04_long_documents", tmp_path, BB_DATASETS=",".join(datasets),
                              BB_DATASET_OVERRIDES=overrides, BB_RUNS="windows+mean_prob", BB_EPOCHS="1",
                              BB_BOOTSTRAP_SAMPLES="50")
    path = tmp_path / "outputs" / "04_long_documents.csv"
    frame = bb.load_results(path)
    assert set(frame["task"]) == {"news", "scores", "claims", "saved"}
    test = frame[frame["split"] == "test"]
    metrics = {task: set(rows["metric"]) for task, rows in test.groupby("task")}
    assert {"accuracy", "f1", "f1_macro"} <= metrics["news"]  # multi-label: subset accuracy, micro and macro F1
    assert {"pearson", "spearman", "mse", "pearson_ci_low"} <= metrics["scores"] and "f1" not in metrics["scores"]
    configs = {task: json.loads(rows["config"].iloc[0]) for task, rows in frame.groupby("task")}
    assert configs["news"]["split_file"].startswith("given: <data>/news (train.csv as train, val.csv as val")
    assert configs["news"]["datasets"] == ["<data>/news/train.csv"]  # recorded portably
    assert configs["scores"]["split_file"] == "given: column 'split' of <data>/scores.csv"
    assert "test.tsv as test" in configs["claims"]["split_file"]
    assert "DatasetDict train, validation, test" in configs["saved"]["split_file"]
    # the given splits, capped by the tiny preset (24 training documents at most)
    assert frame.groupby("task")["train_examples"].first().to_dict() == {"claims": 24, "news": 24, "saved": 24,
                                                                         "scores": 24}
    windows = test[test["metric"] == "windows_per_doc"].set_index("task")["value"]
    assert windows["claims"] > 1  # several windows per document, the claim appended to each
    assert "[SEP] is it about" in completed.stdout  # the first window, decoded: [CLS] window [SEP] pair [SEP]
    predictions = pd.read_csv(bb.predictions_path(path), dtype={"doc_id": str})
    by_task = frame.drop_duplicates("run_id").set_index("run_id")["task"]
    tasks = predictions["run_id"].map(by_task)
    assert set(tasks) == {"news", "claims", "saved"}  # a number to predict keeps none
    assert predictions[tasks == "news"]["doc_id"].str.startswith("test:").all() and (tasks == "news").sum() == 8
    assert "scores: best test pearson" in completed.stdout
