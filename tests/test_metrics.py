"""Metrics against independent reference implementations (scikit-learn, SciPy) and the GLUE means."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

import bertbench as bb
from bertbench import metrics as M


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    preds = np.where(rng.random(300) < 0.7, labels, 1 - labels)
    got = M.classification_metrics(preds, labels, 2, ("accuracy", "f1", "mcc"))
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert got["f1"] == pytest.approx(f1_score(labels, preds))  # binary F1 of class 1, as GLUE reports it
    assert got["mcc"] == pytest.approx(matthews_corrcoef(labels, preds))


@pytest.mark.parametrize("n", [2, 3, 4, 7, 50])
def test_pearson_and_spearman_match_scipy_exactly_also_with_ties_and_few_examples(n):
    """torchmetrics' Spearman was off SciPy by up to 4e-6 at n = 2-3 (an epsilon in its denominator)."""
    rng = np.random.default_rng(n)
    for _ in range(50):
        labels = rng.integers(0, 4, n).astype(float)  # ties
        preds = rng.normal(size=n).round(1)
        if np.ptp(labels) == 0 or np.ptp(preds) == 0:
            continue
        got = M.regression_metrics(preds, labels, ("pearson", "spearman"))
        assert got["pearson"] == pytest.approx(stats.pearsonr(preds, labels)[0], abs=1e-12)
        assert got["spearman"] == pytest.approx(stats.spearmanr(preds, labels)[0], abs=1e-12)


@pytest.mark.parametrize("constant", [0.0, 2.5, 0.1, 1e6])
def test_a_constant_prediction_scores_zero_every_time_and_stsb_stays_in_the_glue_mean(constant):
    """A constant STS-B prediction gave Pearson NaN or about 0 depending on the constant (torchmetrics), Spearman 0.0,
    so the task score was NaN and the GLUE mean silently averaged 7 tasks."""
    labels = np.linspace(0, 5, 40)
    got = M.regression_metrics(np.full(40, constant), labels, ("pearson", "spearman"))
    assert got == {"pearson": 0.0, "spearman": 0.0}
    stsb = bb.get_task("stsb")
    score = M.task_score(stsb, M.task_metrics(stsb, np.full((40, 1), constant), labels))
    means = M.glue_means({"stsb": score, "sst2": 0.9})
    assert score == 0.0 and means["n_tasks"] == 2 and "stsb" not in means["missing"]


def test_regression_metrics_match_scipy():
    rng = np.random.default_rng(1)
    labels = rng.uniform(0, 5, 200)
    preds = labels + rng.normal(0, 1, 200)
    got = M.regression_metrics(preds, labels, ("pearson", "spearman"))
    assert got["pearson"] == pytest.approx(stats.pearsonr(preds, labels)[0], abs=1e-6)
    assert got["spearman"] == pytest.approx(stats.spearmanr(preds, labels)[0], abs=1e-6)


def test_task_scores_follow_glue():
    mrpc = bb.get_task("mrpc")
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    values = M.task_metrics(mrpc, logits, [1, 0, 0, 0])
    assert values == pytest.approx({"accuracy": 0.75, "f1": 2 / 3})
    assert M.task_score(mrpc, values) == pytest.approx((0.75 + 2 / 3) / 2)
    stsb = bb.get_task("stsb")
    values = M.task_metrics(stsb, np.array([[1.0], [2.0], [3.5]]), [1.2, 2.2, 3.1])
    assert M.task_score(stsb, values) == pytest.approx((values["pearson"] + values["spearman"]) / 2)


def test_glue_means_arithmetic_harmonic_and_missing():
    means = M.glue_means({"sst2": 0.9, "rte": 0.6})
    assert means["amean"] == pytest.approx(0.75)
    assert means["hmean"] == pytest.approx(2 / (1 / 0.9 + 1 / 0.6))
    assert means["missing"] == ["cola", "mrpc", "stsb", "qqp", "mnli", "qnli"] and means["n_tasks"] == 2
    assert math.isnan(M.glue_means({"cola": -0.05, "sst2": 0.9})["hmean"])  # not silently clipped


def test_glue_summary_takes_the_median_over_seeds_and_keeps_mnli_splits_apart():
    import json

    from bertbench.results import make_rows

    rows = []
    for seed, (matched, mismatched, rte) in enumerate([(0.80, 0.70, 0.60), (0.84, 0.74, 0.50), (0.82, 0.90, 0.70)]):
        common = {"notebook": "03_glue_finetune", "preset": "cpu", "model": "m", "seed": seed, "init": "pretrained",
                  "head_init": "new", "selection": "s", "max_len": 128, "train_examples": 10, "device": "cpu",
                  "wall_s": 1.0, "config": json.dumps({})}
        rows += make_rows({**common, "run_id": f"mnli{seed}", "task": "mnli"}, [
            ("dev_matched", 0, "accuracy", matched), ("dev_mismatched", 0, "accuracy", mismatched),
            ("dev", 0, "score", (matched + mismatched) / 2)])
        rows += make_rows({**common, "run_id": f"rte{seed}", "task": "rte"},
                          [("dev", 0, "accuracy", rte), ("dev", 0, "score", rte)])
    table, means = bb.glue_summary(pd.DataFrame(rows))
    mnli = table.set_index("task").loc["mnli"]
    assert mnli["accuracy_matched_median"] == pytest.approx(0.82)
    assert mnli["accuracy_mismatched_median"] == pytest.approx(0.74)
    assert mnli["score_median"] == pytest.approx(0.79) and mnli["seeds"] == 3
    rte = table.set_index("task").loc["rte"]
    assert (rte["score_median"], rte["score_min"], rte["score_max"]) == pytest.approx((0.6, 0.5, 0.7))
    assert means["amean"] == pytest.approx((0.79 + 0.6) / 2) and "cola" in means["missing"]


@pytest.mark.parametrize("classes", [2, 3])
def test_mcc_matches_scikit_learn_and_is_zero_for_a_constant_prediction(classes):
    """A majority-class model has no skill: MCC 0, as GLUE's scorer (scikit-learn) says. torchmetrics 1.9 returns
    0.0256 for an all-"acceptable" CoLA dev prediction (issue #3355), which once leaked into committed rows."""
    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 500)
    preds = np.where(rng.random(500) < 0.4, rng.integers(0, classes, 500), labels)
    got = M.classification_metrics(preds, labels, classes, ("mcc",))["mcc"]
    assert got == pytest.approx(matthews_corrcoef(labels, preds), abs=1e-12)
    cola_dev = np.array([1] * 721 + [0] * 322)
    for constant in (0, 1):
        assert M.classification_metrics(np.full(1043, constant), cola_dev, 2, ("mcc",))["mcc"] == 0.0
    assert M.matthews(np.full((1, 10), 1), np.full((1, 10), 1))[0] == 0.0  # undefined both ways: 0
