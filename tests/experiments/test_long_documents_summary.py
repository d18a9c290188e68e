"""Notebook 04's tables on synthetic runs: rows pooled only over seeds and folds, intervals from the pooled
per-document predictions (never a mean of per-run intervals), paired comparisons within one configuration, and the
peak-memory column saying what it measures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bertbench import metrics as M
from bertbench.experiments.long_documents import compare_to, longdoc_summary, pooled_interval
from bertbench.results import make_rows

N_DOCS = 60
LABELS = np.array([0, 1] * (N_DOCS // 2))


def _probs(seed: int, skill: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    right = rng.random(N_DOCS) < skill
    positive = np.where(right, LABELS, 1 - LABELS).astype(float) * 0.6 + 0.2
    return np.stack([1 - positive, positive], axis=1)


def _run(variant: str, seed: int, probs: np.ndarray, docs: np.ndarray, lr: float = 1e-4, fold: str = "",
         peak: tuple[str, float] = ("peak_rss_rise_mb", 500.0)) -> tuple[list[dict], pd.DataFrame]:
    """The result rows of one notebook-04 run scored on ``docs`` and its per-document predictions."""
    config = {"lr": lr, "seeds": [seed], "runs": ["head", "windows+mean_prob"], "fold": fold or None,
              "split_file": "lib/bertbench/data/splits/x.json"}
    run_id = f"{variant}-s{seed}-{lr}-{fold}"
    labels = LABELS[docs]
    metrics = M.document_metrics(probs[docs], labels, "binary")
    intervals = M.bootstrap_intervals(probs[docs], labels, "binary", samples=200)
    entries = [("train", 0, "loss", 0.5), ("train", 0, "encoder_tokens_per_doc", 100.0), ("train", 0, "train_s", 9.0),
               ("test", 0, "encoder_tokens_per_doc", 100.0), ("test", 0, "windows_per_doc", 1.0),
               ("test", 0, "predict_s", 1.0), ("run", 0, *peak)]
    for name, value in metrics.items():
        entries += [("test", 0, name, value), ("test", 0, f"{name}_ci_low", intervals[name][0]),
                    ("test", 0, f"{name}_ci_high", intervals[name][1])]
    common = {"run_id": run_id, "notebook": "04_long_documents", "preset": "cpu", "model": "m", "task": "docs",
              "variant": variant + (f" {fold}" if fold else ""), "seed": seed, "init": "sentence-embedding",
              "head_init": "new", "selection": "best_epoch_on_val_split", "max_len": 512, "train_examples": 40,
              "device": "cpu", "wall_s": 10.0, "config": json.dumps(config, sort_keys=True)}
    predictions = pd.DataFrame({"run_id": run_id, "doc_id": [f"d{i:03d}" for i in docs],
                                "label": [json.dumps(int(value)) for value in labels],
                                "p_0": probs[docs, 0], "p_1": probs[docs, 1]})
    return make_rows(common, entries), predictions


def _frames(runs) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.DataFrame([row for rows, _ in runs for row in rows]),
            pd.concat([predictions for _, predictions in runs], ignore_index=True))


def test_runs_that_differ_in_more_than_the_seed_are_never_one_row():
    """Three learning rates of one variant came out as one row with runs 3 (grouped by dataset, model, variant,
    preset only)."""
    docs = np.arange(N_DOCS)
    frame, predictions = _frames([_run("head", 0, _probs(i, 0.8), docs, lr=lr)
                                  for i, lr in enumerate((1e-5, 3e-5, 1e-4))])
    table = longdoc_summary(frame, predictions, samples=100)
    assert len(table) == 3 and (table["runs"] == 1).all()
    assert sorted(table["differs"]) == ["lr=0.0001", "lr=1e-05", "lr=3e-05"]


def test_seeds_pool_into_one_row_whose_interval_comes_from_the_pooled_predictions():
    docs = np.arange(N_DOCS)
    runs = [_run("head", seed, _probs(seed, 0.75), docs) for seed in range(3)]
    frame, predictions = _frames(runs)
    row = longdoc_summary(frame, predictions, samples=300).iloc[0]
    assert row["runs"] == 3 and row["seeds"] == "0 1 2" and row["differs"] == ""
    expected = pooled_interval([_probs(seed, 0.75) for seed in range(3)], LABELS, "binary", samples=300)
    assert (row["f1"], row["f1_ci_low"], row["f1_ci_high"]) == pytest.approx(expected["f1"])
    assert row["f1"] == pytest.approx(np.mean([M.document_metrics(_probs(s, 0.75), LABELS, "binary")["f1"]
                                               for s in range(3)]))
    assert "pooled predictions" in row["ci_from"]
    # without predictions there is no interval, and the table says why
    bare = longdoc_summary(frame).iloc[0]
    assert np.isnan(bare["f1_ci_low"]) and bare["ci_from"].startswith("none")


def test_cross_validation_interval_is_the_bootstrap_of_the_out_of_fold_predictions_not_a_mean_of_fold_intervals():
    probs = _probs(7, 0.8)
    folds = np.array_split(np.arange(N_DOCS), 3)
    runs = [_run("head", 0, probs, docs, fold=f"fold{k + 1}/3") for k, docs in enumerate(folds)]
    frame, predictions = _frames(runs)
    row = longdoc_summary(frame, predictions, samples=300).iloc[0]
    assert row["runs"] == 3 and row["folds"] == 3 and "out of fold" in row["ci_from"]
    expected = pooled_interval([probs], LABELS, "binary", samples=300)
    assert (row["f1"], row["f1_ci_low"], row["f1_ci_high"]) == pytest.approx(expected["f1"])
    per_fold = frame[frame["metric"] == "f1_ci_low"]["value"].mean()
    assert row["f1_ci_low"] != pytest.approx(per_fold)
    # the pooled interval is narrower than a single fold's: three times the documents
    high, low = (frame[frame["metric"] == name]["value"].to_numpy() for name in ("f1_ci_high", "f1_ci_low"))
    assert row["f1_ci_high"] - row["f1_ci_low"] < (high - low).mean()


def test_comparisons_pool_seeds_and_stay_within_one_configuration():
    docs = np.arange(N_DOCS)
    runs = [_run("head", s, _probs(s, 0.6), docs) for s in range(3)]
    runs += [_run("windows+mean_prob", s, _probs(10 + s, 0.95), docs) for s in range(3)]
    runs += [_run("windows+mean_prob", 0, _probs(20, 0.5), docs, lr=5e-5)]  # another configuration: no baseline
    frame, predictions = _frames(runs)
    table = compare_to(frame, predictions, samples=300)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["seeds"] == "0 1 2" and row["beyond_noise"] and row["f1_difference"] > 0
    assert row["ci_low"] <= row["f1_difference"] <= row["ci_high"]


def test_peak_memory_column_says_which_peak_it_is():
    docs = np.arange(N_DOCS)
    frame, predictions = _frames([_run("head", 0, _probs(0, 0.8), docs),
                                  _run("rs", 0, _probs(1, 0.8), docs, peak=("peak_rss_mb", 4000.0))])
    table = longdoc_summary(frame, predictions, samples=50).set_index("variant")
    assert table.loc["head", "peak_mb"] == 500.0 and table.loc["head", "peak_is"].startswith("run's own")
    assert table.loc["rs", "peak_is"].startswith("process resident memory")
