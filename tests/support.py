"""Synthetic inputs that several test modules share (tests/ is on sys.path through conftest.py): result files for
notebook 06 and a tiny SQuAD 2.0 file."""

from __future__ import annotations

import json
from pathlib import Path

import bertbench as bb
from bertbench.results import make_rows

PROTOCOL = {"init": "pretrained", "selection": "best_epoch_on_train_holdout", "max_len": 128, "preset": "tiny"}


def glue_run(model: str, task: str, seed: int, score: float, notebook: str = "03_glue_finetune",
             train_examples: int = 1800, **protocol) -> list[dict]:
    """The dev rows of one synthetic fine-tuning run."""
    common = {"run_id": f"{model}-{task}-s{seed}-{train_examples}-{json.dumps(protocol, sort_keys=True)}",
              "notebook": notebook, "model": model, "task": task, "seed": seed, "head_init": "new",
              "train_examples": train_examples, "device": "cpu", "wall_s": 1.0, "config": "{}",
              **{**PROTOCOL, **protocol}}
    return make_rows(common, [("dev", 1, "score", score), ("train", 1, "loss", 0.5)])


def sweep_run(task: str, lr: float, dev: float, holdout: float, grid=(2e-5, 5e-5, 1e-4)) -> list[dict]:
    """The rows of one synthetic reference-protocol run at ``lr`` of the learning-rate ``grid`` (empty: no sweep),
    seed 0: its dev score and its held-out score, which picks the rate."""
    config = {"lr": lr, "lr_grid": list(grid), "seeds": [0, 1, 2]}
    common = {"run_id": f"{task}-0-{lr}-{len(grid)}", "notebook": "03_glue_finetune", "preset": "cpu", "model": "m",
              "task": task, "seed": 0, "init": "sentence-embedding", "head_init": "new",
              "selection": "best_epoch_on_train_holdout", "max_len": 128, "train_examples": 100, "device": "cpu",
              "wall_s": 1.0, "config": json.dumps(config)}
    return make_rows(common, [("dev", 0, "score", dev), ("train_holdout", 0, "score", holdout)])


def write_synthetic_outputs(folder: Path) -> Path:
    """A small outputs/ folder: two models on three tasks with three seeds, a model under another selection rule,
    and a task trained on a different subset. Returns the folder."""
    rows = []
    for seed, (cola, sst2, mrpc) in enumerate([(0.30, 0.90, 0.80), (0.20, 0.92, 0.84), (0.40, 0.91, 0.82)]):
        rows += glue_run("alpha", "cola", seed, cola) + glue_run("alpha", "sst2", seed, sst2)
        rows += glue_run("alpha", "mrpc", seed, mrpc)
        rows += glue_run("beta", "cola", seed, -0.05 + 0.01 * seed) + glue_run("beta", "sst2", seed, 0.7)
        rows += glue_run("beta", "mrpc", seed, 0.75, train_examples=900)  # another data subset
        rows += glue_run("gamma", "sst2", seed, 0.95, selection="best_epoch_on_dev")
    bb.write_results(rows, folder / "03_glue_finetune.csv")
    return folder


NORMANS = ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
           "a region in France.")
TOWNS = ["Aldwick", "Brompton", "Carrick", "Dunmore", "Elstow", "Fenwick", "Glenrow", "Harrow", "Ilkley", "Jarrow",
         "Kelso", "Lanark", "Moffat", "Nairn", "Oban", "Peebles", "Quarff", "Rosyth", "Selkirk", "Thurso"]
# ~200 WordPiece tokens: several windows at max_len 64 / stride 16
BRIDGES = " ".join(f"The stone bridge at {town} was finished in {1800 + 7 * i}." for i, town in enumerate(TOWNS))


def _answer(context: str, text: str, shift: int = 0) -> dict:
    return {"text": text, "answer_start": context.index(text) + shift}


def squad_dict() -> dict:
    """Two articles: a short paragraph (answerable + unanswerable) and a long one (answers at start, middle, end)."""
    return {"version": "v2.0", "data": [
        {"title": "Normans", "paragraphs": [
            {"context": NORMANS, "qas": [
                {"id": "n1", "question": "In what country is Normandy located?",
                 "answers": [_answer(NORMANS, "France"), _answer(NORMANS, "France.")], "is_impossible": False},
                {"id": "n2", "question": "When were the Normans in Normandy?",
                 "answers": [_answer(NORMANS, "10th and 11th centuries")], "is_impossible": False},
                {"id": "n3", "question": "Who gave their name to Italy?", "answers": [],
                 "plausible_answers": [_answer(NORMANS, "The Normans")], "is_impossible": True},
            ]},
            {"context": BRIDGES, "qas": [
                {"id": "b1", "question": "When was the bridge at Aldwick finished?",
                 "answers": [_answer(BRIDGES, "1800")], "is_impossible": False},
                {"id": "b2", "question": "When was the bridge at Kelso finished?",
                 "answers": [_answer(BRIDGES, "1870")], "is_impossible": False},
                {"id": "b3", "question": "Where was the last stone bridge finished?",
                 "answers": [_answer(BRIDGES, "Thurso")], "is_impossible": False},
                {"id": "b4", "question": "When was the bridge at Wick finished?", "answers": [],
                 "is_impossible": True},
            ]},
        ]},
        # SQuAD 1.1 style: no is_impossible key
        {"title": "Short", "paragraphs": [
            {"context": "Water boils at 100 degrees Celsius at sea level.", "qas": [
                {"id": "s1", "question": "   At what temperature does water boil?",
                 "answers": [{"text": "100 degrees Celsius", "answer_start": 15}]},
            ]},
        ]},
    ]}
