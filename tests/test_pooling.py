"""Runs are pooled only when their configuration differs by seed alone, in every summary (GLUE, probes, heads); each
run's peak memory is its own, whatever ran before it in the process; results record no machine paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bertbench as bb
from bertbench.config import config_differences, pooling_key
from bertbench.experiments.model_heads import heads_summary
from bertbench.memory import PeakMemory
from bertbench.results import make_rows

ROOT = Path(__file__).resolve().parents[1]


def _rows(notebook, task, variant, seed, value, config, metric="score", split="dev", layer=-1, init="random"):
    common = {"run_id": f"{task}-{variant}-{seed}-{pooling_key(json.dumps(config))}", "notebook": notebook,
              "preset": "cpu", "model": "m", "task": task, "variant": variant, "layer": layer, "seed": seed,
              "init": init, "head_init": "new", "selection": "s", "max_len": 128, "train_examples": 100,
              "device": "cpu", "wall_s": 1.0, "config": json.dumps(config, sort_keys=True)}
    return make_rows(common, [(split, 0, metric, value)])


def test_pooling_key_ignores_seeds_and_sweep_lists_but_not_settings():
    base = {"lr": 1e-4, "seeds": [0], "runs": ["head"], "max_len": 128}
    assert pooling_key(json.dumps(base)) == pooling_key(json.dumps({**base, "seeds": [1], "runs": ["head", "rs"]}))
    assert pooling_key(json.dumps(base)) != pooling_key(json.dumps({**base, "lr": 5e-5}))
    assert config_differences([json.dumps(base), json.dumps({**base, "lr": 5e-5, "seeds": [3]})]) == [
        "lr=0.0001", "lr=5e-05"]


def test_glue_summary_keeps_two_learning_rates_apart_and_the_mean_says_so():
    rows = []
    for seed, (a, b) in enumerate([(0.60, 0.70), (0.62, 0.72)]):
        rows += _rows("03_glue_finetune", "rte", "", seed, a, {"lr": 1e-4, "seeds": [seed]})
        rows += _rows("03_glue_finetune", "rte", "", seed, b, {"lr": 2e-5, "seeds": [seed]})
        rows += _rows("03_glue_finetune", "sst2", "", seed, 0.9, {"lr": 1e-4, "seeds": [seed]})
    table, means = bb.glue_summary(pd.DataFrame(rows))
    rte = table[table["task"] == "rte"].set_index("differs")
    assert len(rte) == 2 and (rte["seeds"] == 2).all()
    assert rte.loc["lr=0.0001", "score_median"] == pytest.approx(0.61)
    assert rte.loc["lr=2e-05", "score_median"] == pytest.approx(0.71)
    assert means["n_tasks"] == 1 and "rte (2 configurations)" in means["missing"]


def test_probe_curves_of_two_settings_are_not_averaged():
    """Notebook 05's pivot took the mean of every row of a (task, init, variant, layer)."""
    rows = []
    for probe_lr, accuracy in ((1e-2, 0.8), (1e-3, 0.6)):
        for seed in (0, 1):
            rows += _rows("05_layer_probes", "sst2", "probe:mean", seed, accuracy + seed / 100,
                          {"probe_lr": probe_lr, "seed": seed}, metric="accuracy", layer=3)
    table = bb.probe_summary(pd.DataFrame(rows)).set_index("differs")
    assert len(table) == 2 and (table["seeds"] == 2).all()
    assert table.loc["probe_lr=0.01", "accuracy"] == pytest.approx(0.805)
    assert table.loc["probe_lr=0.001", "accuracy"] == pytest.approx(0.605)


def test_heads_summary_pools_seeds_only():
    rows = []
    for seed in (0, 1, 2):
        rows += _rows("05_model_heads", "mrpc", "cross_encoder", seed, 0.7 + seed / 100, {"lr": 1e-4, "seeds": [seed]})
    rows += _rows("05_model_heads", "mrpc", "cross_encoder", 0, 0.5, {"lr": 1e-3, "seeds": [0]})
    table = heads_summary(pd.DataFrame(rows)).set_index("differs")
    assert table.loc["lr=0.0001", "seeds"] == 3 and table.loc["lr=0.0001", "dev_score_median"] == pytest.approx(0.71)
    assert table.loc["lr=0.001", "seeds"] == 1


def test_a_runs_peak_memory_is_its_own_whatever_ran_before_it():
    """outputs/04 showed head 2.3 GiB and head_tail 4.4 GiB because of run order (the process's peak)."""
    first = PeakMemory("cpu").start()
    held = np.ones(300 * 2**20 // 8)  # 300 MiB an earlier run leaves behind
    first.stop()
    second = PeakMemory("cpu").start()
    block = np.ones(50 * 2**20 // 8)  # this run's own 50 MiB
    second.stop()
    assert first.mb > 250
    assert 40 < second.mb < 150, second.metrics()  # not the 350 MiB the process holds
    assert second.metrics()["rss_start_mb"] > 300 and set(second.metrics()) == {"peak_rss_rise_mb", "rss_start_mb"}
    del held, block


def test_glue_rows_carry_memory_and_token_columns(glue_dir):
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0",
                                          "BB_MAX_TRAIN_EXAMPLES": "32", "BB_EPOCHS": "1", "BB_PREDICT_TEST": "0"})
    frame = bb.run_glue(cfg, bb.outputs_dir() / "03.csv", verbose=False)
    metrics = set(frame["metric"])
    assert {"peak_rss_rise_mb", "rss_start_mb", "train_tokens", "tokens_per_s"} <= metrics
    tokens = frame[frame["metric"] == "train_tokens"]["value"].iloc[0]
    assert tokens > 29 * 3  # at least [CLS] a [SEP] b [SEP] for each of the 29 training examples


def test_paths_are_recorded_portably():
    assert bb.paths.portable_path(bb.data_dir() / "glue" / "RTE") == "<data>/glue/RTE"
    assert bb.paths.portable_path(bb.runs_dir() / "glue" / "x" / "best") == "<runs>/glue/x/best"
    assert bb.paths.portable_path(ROOT / "lib" / "bertbench" / "data" / "splits" / "bbc.json") == \
        "lib/bertbench/data/splits/bbc.json"


def test_committed_outputs_hold_no_machine_paths():
    """outputs/04 recorded split_file as /work/main/lib/..., outputs/05 the fine-tuned encoder as /work/main/runs/..."""
    machine_path = re.compile(r'"(/(?:home|root|tmp|work|Users|mnt|opt|var|data)/[^"]*|[A-Za-z]:\\\\[^"]*)"')
    found = []
    for path in sorted((ROOT / "outputs").rglob("*")):
        if path.suffix in (".csv", ".md") and path.is_file():
            found += [f"{path.relative_to(ROOT)}: {hit}" for hit in sorted(set(machine_path.findall(path.read_text())))]
    assert not found, found[:10]
