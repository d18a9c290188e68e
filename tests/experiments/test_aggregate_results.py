"""Notebook 06's aggregation on synthetic result files: pooling over seeds, GLUE means and missing tasks, the refusal
to pool or compare across protocols, bootstrap CIs from per-example predictions, the DitBERT importer on the sample
folders, the published reference table, and partial or empty outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import glue_run, sweep_run, write_synthetic_outputs

import bertbench as bb
from bertbench import metrics as M
from bertbench.experiments import aggregate_results as A
from bertbench.results import ResultsError, load_results


def _config(folder: Path, **changes) -> A.AggregateConfig:
    return A.AggregateConfig.from_env(environ={}, preset="tiny", results_dir=str(folder), ditbert_dir="none",
                                      **changes)


@pytest.fixture
def outputs(tmp_path):
    return write_synthetic_outputs(tmp_path / "outputs")


def _cell(cells, model, task):
    part = cells[(cells["model"] == model) & (cells["task"] == task)]
    assert len(part) == 1, part
    return part.iloc[0]


def test_seeds_are_pooled_as_median_with_range_and_means_name_missing_tasks(outputs):
    result = A.aggregate_outputs(_config(outputs))
    cola = _cell(result.cells, "alpha", "cola")
    assert (cola["n"], cola["median"], cola["min"], cola["max"]) == (3, 0.30, 0.20, 0.40)
    assert cola["seeds"] == "0 1 2"
    alpha = result.table[result.table["model"] == "alpha"].iloc[0]
    medians = [0.30, 0.91, 0.82]
    assert alpha["amean"] == pytest.approx(np.mean(medians))
    assert alpha["hmean"] == pytest.approx(3 / sum(1 / value for value in medians))
    assert alpha["n_tasks"] == 3
    assert alpha["missing"] == "stsb, qqp, mnli, qnli, rte"  # WNLI is not expected by default
    with_wnli = A.aggregate_outputs(_config(outputs, glue_convention="with_wnli")).table
    assert with_wnli[with_wnli["model"] == "alpha"].iloc[0]["missing"].endswith("rte, wnli")


def test_harmonic_mean_is_undefined_not_clipped_when_a_score_is_not_positive(outputs):
    result = A.aggregate_outputs(_config(outputs))
    beta = result.table[result.table["model"] == "beta"].iloc[0]
    assert np.isnan(beta["hmean"]) and beta["hmean_note"] == "undefined: cola ≤ 0"
    assert "n/a (undefined: cola ≤ 0)" in A.summary_markdown(result)


def test_protocols_are_never_pooled_and_their_tables_are_separate(outputs):
    result = A.aggregate_outputs(_config(outputs))
    table = result.table.set_index("model")
    assert table.loc["gamma", "group"] != table.loc["alpha", "group"] == table.loc["beta", "group"]
    assert not table["protocol_mixed"].any()
    markdown = A.summary_markdown(result)
    assert "**Protocol 1** · `03_glue_finetune`" in markdown and "**Protocol 2** · `03_glue_finetune`" in markdown
    # the subset that differs (beta's MRPC on 900 examples) is marked and left out of the shared mean
    assert table.loc["alpha", "shared_tasks"] == "cola, sst2" and table.loc["alpha", "unshared_budget"] == "mrpc"
    assert "† beta (`pretrained`) on mrpc: 900 training examples" in markdown
    mixed = A.aggregate_outputs(_config(outputs, across_protocols=True))
    assert mixed.table["group"].nunique() == 1 and mixed.table["protocol_mixed"].all()
    assert "⚠" in A.summary_markdown(mixed)


def test_pooling_runs_of_different_protocols_or_subsets_is_refused_unless_asked():
    rows = pd.DataFrame(glue_run("m", "rte", 0, 0.6) + glue_run("m", "rte", 1, 0.7, selection="last_epoch"))
    dev = rows[rows["metric"] == "score"]
    with pytest.raises(A.ProtocolError, match=r"selection = \['best_epoch_on_train_holdout', 'last_epoch'\]"):
        A.pool_runs(dev)
    assert A.pool_runs(dev, across_protocols=True)["protocol_mixed"]
    subsets = pd.DataFrame(glue_run("m", "rte", 0, 0.6) + glue_run("m", "rte", 1, 0.7, train_examples=50))
    with pytest.raises(A.ProtocolError, match="different data subsets"):
        A.pool_runs(subsets[subsets["metric"] == "score"])
    assert A.pool_runs(dev[dev["seed"] == 0]) == {"n": 1, "median": 0.6, "min": 0.6, "max": 0.6,
                                                  "protocol_mixed": False}


def test_comparing_systems_needs_the_same_protocol_or_an_explicit_switch(outputs):
    cells = A.aggregate_outputs(_config(outputs)).cells
    delta = bb.compare_systems(cells, {"model": "alpha"}, {"model": "beta"}).set_index("task")
    assert delta.loc["sst2", "difference"] == pytest.approx(0.91 - 0.7) and not delta["protocol_mixed"].any()
    assert np.isnan(delta.loc["mrpc", "difference"])  # trained on 1800 vs 900 examples: no difference given
    assert delta.loc["mrpc", "differs_in"] == "train_examples 1800 vs 900"
    anyway = bb.compare_systems(cells, {"model": "alpha"}, {"model": "beta"}, across_protocols=True)
    assert anyway.set_index("task")["protocol_mixed"].to_dict() == {"cola": False, "sst2": False, "mrpc": True}
    with pytest.raises(A.ProtocolError, match="differ in selection"):
        bb.compare_systems(cells, {"model": "alpha"}, {"model": "gamma"})
    marked = bb.compare_systems(cells, {"model": "alpha"}, {"model": "gamma"}, across_protocols=True)
    assert marked["protocol_mixed"].all() and marked["differs_in"].iloc[0] == "selection"
    assert marked["difference"].tolist() == pytest.approx([0.91 - 0.95])
    with pytest.raises(ValueError, match="selects 0 systems"):
        bb.compare_systems(cells, {"model": "nobody"}, {"model": "beta"})


def test_one_system_trained_on_two_subsets_gives_two_cells_not_one(tmp_path):
    rows = glue_run("m", "rte", 0, 0.6) + glue_run("m", "rte", 1, 0.7) + glue_run("m", "rte", 0, 0.5,
                                                                                  train_examples=2490)
    cells = A.glue_cells(pd.DataFrame(rows))
    assert sorted(zip(cells["variant"], cells["n"], strict=True)) == [("[1800 train]", 2), ("[2490 train]", 1)]


def test_optimistic_rule_is_labelled_and_keeps_only_the_best_run(outputs):
    result = A.aggregate_outputs(_config(outputs, selection_rule="best_on_dev"))
    cola = _cell(result.cells, "alpha", "cola")
    assert (cola["n"], cola["median"], cola["selection"]) == (1, 0.40, A.OPTIMISTIC)
    assert "optimistic" in A.summary_markdown(result)
    with pytest.raises(ValueError, match="selection_rule"):
        A.AggregateConfig.from_env(environ={"BB_SELECTION_RULE": "best"})


def _ditbert_own_aggregation(folder: Path) -> pd.DataFrame:
    """DitBERT's aggregation as its MANIFEST describes it, computed here from the raw CSVs: per epoch the mean of the
    validation_* metric columns, the best epoch of the best run over every run folder of a model (-mnli included)."""
    best: dict[tuple[str, str], float] = {}
    for run in sorted(folder.glob("run-*")):
        prefix = run.name.removesuffix("-mnli").removeprefix("run-").rpartition("-")[0]
        model = {"": "DitBERT", "Bert": "bert-base-cased", "RoBERTa": "roberta-base"}[prefix]
        for path in run.glob("results_*.csv"):
            table = pd.read_csv(path)
            columns = [c for c in table.columns if c.startswith("validation_") and c != "validation_loss"]
            key = (model, path.stem.removeprefix("results_"))
            best[key] = max(best.get(key, -1.0), float(table[columns].mean(axis=1).max()))
    return pd.Series(best).unstack()


def test_ditbert_rule_and_grouping_reproduce_ditberts_own_table():
    """DitBERT's rule took the best over all runs of a model, its from-MNLI runs included: 80.38 / 81.88 / 85.15
    (8-task mean, WNLI out). Grouping the from-MNLI runs apart gave 75.31 / 80.28 / 84.20 under the same label."""
    folder = bb.paths.data_dir() / "ditbert_glue_outputs"
    if not folder.is_dir():
        pytest.skip(f"no DitBERT run folders at {folder}")
    cfg = A.AggregateConfig.from_env(environ={}, preset="cpu", results_dir="/nonexistent", ditbert_dir=str(folder),
                                     selection_rule="best_on_dev", bootstrap_samples=0)
    result = A.aggregate_outputs(cfg)
    table = A.ditbert_table(result).set_index("model")
    assert (table["amean"] * 100).round(2).to_dict() == {"DitBERT": 80.38, "bert-base-cased": 81.88,
                                                         "roberta-base": 85.15}
    expected = _ditbert_own_aggregation(folder)
    for model, row in expected.iterrows():
        for task, value in row.items():
            assert table.loc[model, task] == pytest.approx(value, abs=1e-12), (model, task)
    assert (table["n_tasks"] == 8).all() and "DitBERT's grouping" in table["rule"].iloc[0]
    # the column beside it reads the same runs at their last epoch, whatever the configured rule
    assert (table["amean_last_epoch_median"] < table["amean"]).all()
    markdown = A.summary_markdown(result)
    assert "| DitBERT |" in markdown and "80.38 (8)" in markdown and "from-MNLI runs included" in markdown


def test_glue_means_follow_one_named_convention_and_name_what_they_leave_out():
    scores = {"cola": 0.3, "sst2": 0.9, "mnli": 0.8, "wnli": 0.4}
    default = M.glue_means(scores)
    assert default["convention"] == "glue_dev" and default["n_tasks"] == 3 and default["left_out"] == ["wnli"]
    assert default["amean"] == pytest.approx((0.3 + 0.9 + 0.8) / 3)
    assert M.glue_means(scores, "with_wnli")["amean"] == pytest.approx(0.6)
    # notebook 03's summary and notebook 06's table give the same mean for the same runs (0.5718 vs 0.621 before)
    rows = pd.DataFrame([row for task, value in scores.items() for row in glue_run("m", task, 0, value)])
    _table, means = bb.glue_summary(rows)
    table = A.glue_table(A.glue_cells(rows))
    assert means["amean"] == pytest.approx(table["amean"].iloc[0]) == pytest.approx(default["amean"])
    # a score that is not a number is named, never silently dropped from the mean
    broken = M.glue_means({"cola": 0.3, "stsb": float("nan"), "sst2": 0.9})
    assert broken["n_tasks"] == 2 and "stsb (score not a number)" in broken["missing"]


def _predictions(run_id, task, labels, predictions):
    return pd.DataFrame({"run_id": run_id, "task": task, "split": "dev", "example": np.arange(len(labels)),
                         "label": labels, "prediction": predictions})


def test_bootstrap_ci_of_the_median_comes_from_per_example_predictions(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    rows, predictions = [], []
    for seed, flip in enumerate([0.10, 0.15, 0.20]):
        predicted = np.where(rng.random(400) < flip, 1 - labels, labels)
        score = float((predicted == labels).mean())
        run = glue_run("m", "sst2", seed, score)
        rows += run
        predictions.append(_predictions(run[0]["run_id"], "sst2", labels, predicted))
    folder = tmp_path / "outputs"
    bb.write_results(rows, folder / "03_glue_finetune.csv")
    (folder / "predictions").mkdir()
    pd.concat(predictions).to_csv(folder / "predictions" / "03_glue_finetune.csv", index=False)
    cell = _cell(A.aggregate_outputs(_config(folder, bootstrap_samples=500)).cells, "m", "sst2")
    assert cell["ci_low"] < cell["median"] < cell["ci_high"]
    assert 0.02 < cell["ci_high"] - cell["ci_low"] < 0.12  # about ±1.96·sqrt(p(1-p)/n) for n = 400
    again = _cell(A.aggregate_outputs(_config(folder, bootstrap_samples=500)).cells, "m", "sst2")
    assert (again["ci_low"], again["ci_high"]) == (cell["ci_low"], cell["ci_high"])  # fixed seed
    no_ci = _cell(A.aggregate_outputs(_config(folder, bootstrap_samples=0)).cells, "m", "sst2")
    assert np.isnan(no_ci["ci_low"])


@pytest.mark.parametrize("task_name", ["cola", "mrpc", "stsb", "rte"])
def test_resampled_scores_equal_the_task_metrics_on_each_resample(task_name):
    rng = np.random.default_rng(1)
    task = bb.get_task(task_name)
    if task.is_regression:
        labels = rng.integers(0, 6, 300).astype(float)  # STS-B gold scores tie a lot
        predicted = labels + rng.normal(0, 1.5, 300)
    else:
        labels = rng.integers(0, 2, 300)
        predicted = np.where(rng.random(300) < 0.3, 1 - labels, labels)
    picks = rng.integers(0, 300, (4, 300))
    fast = A.resampled_scores(task_name, predicted, labels, picks)
    for draw, pick in enumerate(picks):
        logits = predicted[pick][:, None] if task.is_regression else np.eye(2)[predicted[pick]]
        reference = M.task_score(task, M.task_metrics(task, logits, labels[pick]))
        assert fast[draw] == pytest.approx(reference, abs=1e-6)


def test_partial_and_empty_outputs_work_with_a_clear_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = A.aggregate_outputs(_config(empty))
    assert "has no result CSVs yet" in result.messages[0] and not len(result.cells)
    rows, summary = A.write_aggregation(result, empty / "06_aggregate_results.csv")
    assert set(rows["task"]) <= set(A.GLUE_TASKS) | {"glue"} and "has no result CSVs yet" in summary.read_text()
    assert set(rows["preset"]) == {"published"}  # only the reference rows
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "outputs" / "04_long_documents.csv", partial)
    result = A.aggregate_outputs(_config(partial, references=False), figures_dir=tmp_path / "figures")
    assert any("not run yet" in message and "03_glue_finetune" in message for message in result.messages)
    from bertbench.experiments.long_documents import longdoc_summary
    committed = longdoc_summary(load_results(partial / "04_long_documents.csv"))  # a row per strategy and setting
    assert not len(result.table) and len(result.longdoc) == len(committed) > 0
    assert set(result.figures) == {"long_documents"} and result.figures["long_documents"].is_file()
    assert "No GLUE runs found." in A.summary_markdown(result)


def test_the_aggregation_is_written_as_result_rows_and_not_read_back_as_a_source(outputs):
    cfg = _config(outputs, references=False)
    rows, _ = A.write_aggregation(A.aggregate_outputs(cfg), outputs / "06_aggregate_results.csv")
    assert set(rows["notebook"]) == {A.NOTEBOOK}
    alpha = rows[(rows["model"] == "alpha") & (rows["task"] == "cola")].set_index("metric")["value"]
    assert (alpha["score_median"], alpha["runs"]) == (0.30, 3)
    again = A.aggregate_outputs(cfg)  # the 06 file sits in outputs/ now: it must not count as a source
    assert list(again.files["file"]) == ["03_glue_finetune.csv"]
    rows_again, _ = A.write_aggregation(again, outputs / "06_aggregate_results.csv")
    assert len(rows_again) == len(rows)  # replaced, not appended


def test_ditbert_importer_reads_the_sample_folders():
    folder = bb.data_dir() / "ditbert_glue_outputs"
    if not folder.is_dir():
        pytest.skip(f"no DitBERT sample folders at {folder}")
    rows = bb.import_ditbert(folder)
    bb.results.validate(rows)
    runs = rows["config"].map(lambda text: json.loads(text)["run"])
    assert runs.nunique() == 24
    assert set(rows["model"]) == {"DitBERT", "bert-base-cased", "roberta-base"}
    mnli_runs = rows[runs.str.endswith("-mnli")]
    assert set(mnli_runs["init"]) == {"intermediate:mnli"} and set(mnli_runs["task"]) == {
        "cola", "mrpc", "rte", "stsb", "wnli"}
    source = pd.read_csv(folder / "run-01" / "results_mrpc.csv")
    mrpc = rows[(runs == "run-01") & (rows["task"] == "mrpc") & (rows["split"] == "dev")]
    score = mrpc[(mrpc["metric"] == "score") & (mrpc["step"] == 2)]["value"].item()
    assert score == pytest.approx((source.loc[2, "validation_accuracy"] + source.loc[2, "validation_f1"]) / 2)
    mnli = rows[(runs == "run-01") & (rows["task"] == "mnli")]
    assert {"dev_matched", "dev_mismatched", "dev"} <= set(mnli["split"])
    assert json.loads(rows["config"].iloc[0])["finetune_params"]["batch_size"] == "32"
    # last epoch (default) and DitBERT's own rule, per model
    last = A.glue_cells(rows)
    best = A.glue_cells(rows, "best_on_dev", samples=0)
    cola_last = _cell(last[last["init"] == "mlm-pretrained"], "DitBERT", "cola")
    cola_best = _cell(best[best["init"] == "mlm-pretrained"], "DitBERT", "cola")
    every_epoch = [pd.read_csv(folder / f"run-0{n}" / "results_cola.csv")["validation_matthews_correlation"]
                   for n in range(1, 5)]
    assert cola_last["n"] == 4 and cola_last["median"] == pytest.approx(np.median([s.iloc[-1] for s in every_epoch]))
    assert cola_best["median"] == pytest.approx(max(s.max() for s in every_epoch))
    assert cola_best["selection"] == A.OPTIMISTIC and cola_last["selection"] == "last_epoch"


def test_ditbert_importer_names_the_broken_file(tmp_path):
    run = tmp_path / "run-Bert-09"
    run.mkdir()
    (run / "results_rte.csv").write_text(",epoch,validation_accuracy\n0,0,0.5\n1,1,high\n")
    with pytest.raises(ResultsError, match=r"results_rte.csv:3: not a number"):
        bb.import_ditbert(tmp_path)
    (run / "results_rte.csv").write_text(",epoch,accuracy\n0,0,0.5\n")
    with pytest.raises(ResultsError, match="validation_"):
        bb.import_ditbert(tmp_path)


def test_every_published_number_has_a_source_and_bad_rows_are_named(tmp_path):
    references = bb.load_references()
    assert {"dev", "test"} == set(references["split"])
    assert references["url"].str.startswith("https://").all() and references["source"].str.len().gt(5).all()
    models = " ".join(references["model"])
    for name in ("BERT", "RoBERTa", "crammed BERT", "MosaicBERT", "ModernBERT", "BERT-Tiny", "MiniLM"):
        assert name.lower() in models.lower(), name
    assert references["value"].between(0, 100).all()  # percent, as printed
    cells = A.reference_cells(references)
    roberta = cells[(cells["model"] == "roberta-base") & (cells["task"] == "cola")]
    assert roberta["median"].item() == pytest.approx(0.636)
    broken = references.head(2).astype({"value": str})
    broken.loc[1, "value"] = "n/a"
    broken.to_csv(tmp_path / "refs.csv", index=False)
    with pytest.raises(ResultsError, match=r"refs.csv:3: value 'n/a'"):
        A.load_references(tmp_path / "refs.csv")


def test_committed_summary_is_the_aggregation_of_the_committed_outputs(tmp_path):
    """outputs/06_aggregate_results.md (docs/06 includes it) is what notebook 06 makes of outputs/ today."""
    root = Path(__file__).resolve().parents[2]
    if not (bb.data_dir() / "ditbert_glue_outputs").is_dir():
        pytest.skip("the DitBERT sample folders are part of the committed aggregation")
    cfg = A.AggregateConfig.from_env(environ={}, results_dir=str(root / "outputs"))
    fresh = A.summary_markdown(A.aggregate_outputs(cfg, figures_dir=tmp_path))
    assert (root / "outputs" / "06_aggregate_results.md").read_text() == fresh, \
        "outputs/ changed since notebook 06 last ran: `make aggregate`, then " \
        "`python -m bertbench.docs_tables --update`"


def test_the_aggregation_pools_only_runs_that_differ_by_seed_and_keeps_a_sweeps_chosen_rate():
    """Notebook 06 pooled every run of one system and task with equal train_examples, whatever their settings."""
    from bertbench.results import make_rows

    def run(seed, lr, score, holdout, grid=None):
        config = {"lr": lr, "seeds": [seed], "tasks": ["rte"], **({"lr_grid": grid} if grid else {})}
        common = {"run_id": f"rte-{seed}-{lr}-{bool(grid)}", "notebook": "03_glue_finetune", "preset": "cpu",
                  "model": "m", "task": "rte", "seed": seed, "init": "sentence-embedding", "head_init": "new",
                  "selection": "best_epoch_on_train_holdout", "max_len": 128, "train_examples": 100,
                  "device": "cpu", "wall_s": 1.0, "config": json.dumps(config)}
        return make_rows(common, [("dev", 0, "score", score), ("train_holdout", 0, "score", holdout)])

    grid = [1e-5, 1e-4]
    rows = run(0, 1e-4, 0.50, 0.5) + run(1, 1e-4, 0.52, 0.5)  # a fixed-lr study, 2 seeds
    rows += run(0, 1e-5, 0.60, 0.70, grid) + run(0, 1e-4, 0.40, 0.60, grid)  # a sweep: 1e-5 wins on the holdout
    rows += run(1, 1e-5, 0.62, 0.70, grid) + run(2, 1e-5, 0.64, 0.70, grid)  # ... then seeds 1, 2 at it
    cells = A.glue_cells(pd.DataFrame(rows), samples=0).set_index("variant")
    assert cells.loc["[lr_grid=None]", "n"] == 2 and cells.loc["[lr_grid=None]", "median"] == pytest.approx(0.51)
    chosen = cells.loc["[lr_grid=[1e-05, 0.0001]]"]
    assert chosen["n"] == 3 and chosen["median"] == pytest.approx(0.62)  # the sweep's 1e-4 point is not pooled


def test_the_default_comparison_picks_two_models_under_one_protocol_whatever_their_variants():
    """Notebook 06's comparison cell: a second configuration of a model (its variant tagged with what differs) must
    not leave it without a pair; the pair is two models under one protocol sharing the most tasks."""
    from bertbench.experiments.aggregate_results import comparable_pair

    def cell(model, variant, task, selection="best_epoch_on_train_holdout"):
        return {"source": "03_glue_finetune", "model": model, "variant": variant, "init": "sentence-embedding",
                "selection": selection, "max_len": 128, "preset": "cpu", "task": task}

    cells = pd.DataFrame([cell("minilm", "[lr_grid=None]", task) for task in ("rte", "mrpc", "cola")]
                         + [cell("minilm", "[lr_grid=2e-05,5e-05]", "wnli")]
                         + [cell("own", "", task) for task in ("rte", "mrpc")]
                         + [cell("other", "", task, selection="last_epoch") for task in ("rte", "mrpc", "cola")])
    a, b = comparable_pair(cells, "03_glue_finetune")
    assert (a["model"], a["variant"], b["model"], b["variant"]) == ("minilm", "[lr_grid=None]", "own", "")
    assert comparable_pair(cells[cells["model"] == "minilm"], "03_glue_finetune") is None  # one model: no pair


def test_each_task_s_learning_rate_is_chosen_on_its_own_runs_and_ties_go_to_the_first_in_the_grid():
    """A recorded config does not name its task: the same sweep on two tasks once read both tasks' holdout scores
    together, and the committed WNLI sweep (a tie on 64 holdout examples) was shown as choosing 1e-4, not 2e-5."""
    from bertbench.experiments.glue_finetune import glue_summary
    from bertbench.results import make_rows

    grid = [2e-5, 1e-4]

    def run(task, seed, lr, dev, holdout):
        config = {"lr": lr, "lr_grid": grid, "seeds": [0, 1]}  # the same for both tasks, as run_glue records it
        common = {"run_id": f"{task}-{seed}-{lr}", "notebook": "03_glue_finetune", "preset": "cpu", "model": "m",
                  "task": task, "seed": seed, "init": "sentence-embedding", "head_init": "new",
                  "selection": "best_epoch_on_train_holdout", "max_len": 128, "train_examples": 100,
                  "device": "cpu", "wall_s": 1.0, "config": json.dumps(config)}
        return make_rows(common, [("dev", 0, "score", dev), ("train_holdout", 0, "score", holdout)])

    rows = run("mrpc", 0, 2e-5, 0.77, 0.78) + run("mrpc", 0, 1e-4, 0.81, 0.80) + run("mrpc", 1, 1e-4, 0.82, 0.80)
    rows += run("wnli", 0, 2e-5, 0.42, 0.39) + run("wnli", 0, 1e-4, 0.32, 0.39) + run("wnli", 1, 2e-5, 0.37, 0.39)
    table, means = glue_summary(pd.DataFrame(rows), convention="with_wnli")
    chosen = table[table["lr_choice"].str.startswith("chosen")].set_index("task")
    assert chosen.loc["mrpc", "seeds"] == 2 and chosen.loc["mrpc", "score_median"] == pytest.approx(0.815)
    assert chosen.loc["wnli", "seeds"] == 2 and chosen.loc["wnli", "score_median"] == pytest.approx(0.395)
    assert "0.3900 on the selection split" in chosen.loc["wnli", "lr_choice"]
    assert means["n_tasks"] == 2


def test_a_learning_rate_sweep_still_under_way_has_chosen_nothing():
    """A sweep with only some of its grid run (a reference run stopped to resume later) once showed its one point as
    "chosen" and counted it in the GLUE mean: it is a sweep point until every rate of the grid has run."""
    from bertbench.experiments.glue_finetune import glue_summary

    run = sweep_run
    rows = run("rte", 2e-5, 0.52, 0.54) + run("mrpc", 2e-5, 0.77, 0.78) + run("mrpc", 5e-5, 0.80, 0.79)
    rows += run("mrpc", 1e-4, 0.81, 0.80)
    table, means = glue_summary(pd.DataFrame(rows))
    choice = table.set_index(["task", "lr"])["lr_choice"]
    assert choice[("rte", 2e-5)] == "sweep (0.5400; 1 of 3 rates run)"
    assert choice[("mrpc", 1e-4)].startswith("chosen") and choice[("mrpc", 2e-5)].startswith("sweep (0.7800)")
    assert means["n_tasks"] == 1 and "rte" in means["missing"]
