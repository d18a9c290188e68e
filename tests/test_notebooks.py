"""Every notebook, end to end in the tiny preset: through jupytext + nbclient (as JupyterLab runs it), as a plain
script, and converted with ``jupytext --to notebook``. Results go to tmp_path, never to the repo's outputs/."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

import bertbench as bb

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def check_outputs(name: str, output_dir: Path, environ: dict[str, str] | None = None) -> None:
    """What each notebook must have written, checked on the CSV named after it (``environ``: the BB_* settings the
    run had beside the tiny preset)."""
    path = output_dir / f"{name}.csv"
    assert path.is_file(), f"{name} wrote no {path.name}"
    frame = bb.load_results(path)
    if name == "06_aggregate_results":  # aggregated rows carry their sources' presets
        assert set(frame["notebook"]) == {name} and {"tiny", "published"} <= set(frame["preset"])
        models = set(frame[frame["preset"] == "tiny"]["model"])
        assert models == {"alpha", "beta", "gamma"}, models  # the synthetic runs of _tiny_env
        alpha = frame[(frame["model"] == "alpha") & (frame["task"] == "glue")].set_index("metric")["value"]
        assert alpha["tasks"] == 3 and 0 < alpha["amean"] < 1
        assert "### GLUE dev" in path.with_suffix(".md").read_text()
        assert (output_dir / "figures" / "06_glue.png").is_file()
        return
    assert set(frame["notebook"]) == {name} and set(frame["preset"]) == {"tiny"}
    if name == "00_encoder_basics":
        cfg = bb.BasicsConfig.from_env(environ={"BB_PRESET": "tiny"})
        table = bb.basics_summary(frame).set_index("system")
        assert set(table.index) == set(cfg.systems) and (table["seeds"] == len(cfg.seeds)).all()
        assert table["dev_score_median"].between(0, 1).all() and (table["train_s_median"] > 0).all()
        assert (table["train_examples"] == table["train_examples"].iloc[0]).all()  # the same examples both ways
        holdout = frame[(frame["split"] == "train_holdout") & (frame["metric"] == "loss")]
        assert set(holdout["variant"]) == set(cfg.systems)  # both stopped early on the held-out loss
        assert (output_dir / "figures" / "00_encoder_basics.png").is_file()
    if name == "01_train_tokenizer":
        cfg = bb.TokenizerConfig.from_env(environ={"BB_PRESET": "tiny"})
        assert set(frame["task"]) == {"tokenizer"}
        fertility = frame[frame["metric"] == "fertility"].set_index("model")["value"]
        assert len(fertility) == len(cfg.kinds) + 1 and "minilm" in fertility  # each trained one + the reference
        assert fertility.between(0.5, 5).all()
        for kind in cfg.kinds:
            assert (bb.tokenizer_dir(cfg, kind) / "token_frequencies.csv").is_file()
    if name == "02_pretrain_mlm":
        cfg = bb.PretrainConfig.from_env(environ={"BB_PRESET": "tiny"})
        heldout = frame[(frame["split"] == "wikitext2_valid") & (frame["metric"] == "loss")].sort_values("step")
        assert heldout["step"].tolist() == [0, cfg.max_steps // 2, cfg.max_steps]
        assert heldout["value"].iloc[-1] < heldout["value"].iloc[0]
        assert (bb.runs_dir() / "pretrain" / cfg.label / "model" / "model.safetensors").is_file()
    if name == "03_glue_finetune":
        cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny"})
        scores = frame[(frame["split"] == "dev") & (frame["metric"] == "score")]
        assert set(scores["task"]) == set(cfg.tasks)
        assert scores.groupby("task")["seed"].nunique().eq(len(cfg.seeds)).all()
        assert scores["value"].between(-1, 1).all()
    if name == "04_long_documents":
        cfg = bb.LongDocConfig.from_env(environ={"BB_PRESET": "tiny", **(environ or {})})
        table = bb.longdoc_summary(frame)
        for dataset in cfg.datasets:
            assert set(table[table["dataset"] == dataset]["variant"]) == set(cfg.for_dataset(dataset).runs)
        for metric in ("accuracy", "f1"):
            assert table[metric].between(0, 1).all()
            assert (table[f"{metric}_ci_low"] <= table[f"{metric}_ci_high"]).all()
        assert (table["peak_mb"] > 0).all() and (table["train_s"] > 0).all()
        hyperpartisan = table[table["dataset"] == "hyperpartisan"].set_index("variant")
        windows = hyperpartisan[hyperpartisan.index.str.startswith("windows")]
        assert (windows["test_tokens_per_doc"] > hyperpartisan.loc["head", "test_tokens_per_doc"]).all()
        assert hyperpartisan.loc["head", "test_tokens_per_doc"] <= cfg.max_len
        assert (output_dir / "figures" / "04_long_documents.png").is_file()
        predictions = bb.predictions_path(path)
        assert predictions.is_file() and set(pd.read_csv(predictions)["run_id"]) == set(frame["run_id"])
    if name == "05_layer_probes":
        cfg = bb.ProbeConfig.from_env(environ={"BB_PRESET": "tiny"})
        sentence = frame[frame["task"] != "squad2"]
        # init is what each probed model is: the tiny preset's random encoder and its fine-tuned checkpoints
        assert set(sentence["task"]) == set(cfg.tasks)
        assert set(sentence["init"]) == {"random"} | {f"fine-tuned:{task}" for task in cfg.tasks}
        dev = sentence[(sentence["split"] == "dev") & (sentence["metric"] == "accuracy")]
        for (task, init), part in dev.groupby(["task", "init"]):
            for pooling in cfg.poolings:
                for kind in ("probe", "control"):
                    layers = part[part["variant"].str.startswith(f"{kind}:{pooling}")]["layer"]
                    assert sorted(layers) == [0, 1, 2], (task, init, pooling, kind)  # embeddings + 2 layers
            assert (part[part["variant"] == "majority"]["layer"] == -1).all() and len(part[part["variant"] ==
                                                                                          "majority"]) == 1
        assert set(dev[dev["variant"] == "full_model"]["init"]) == {f"fine-tuned:{task}" for task in cfg.tasks}
        assert dev["value"].between(0, 1).all()
        span = frame[(frame["task"] == "squad2") & (frame["split"] == "dev") & (frame["metric"] == "f1")]
        assert sorted(span[span["variant"] == "span_probe"]["layer"]) == [0, 1, 2]
        assert len(span[span["variant"] == "always_no_answer"]) == 1 and span["value"].between(0, 100).all()
        assert (output_dir / "figures" / "05_layer_probes.png").is_file()
        saved = list((bb.runs_dir() / "probes").rglob("*.safetensors"))
        assert len(saved) >= 2 * len(cfg.tasks) * len(cfg.poolings) * 3 * 2 + 3  # every probe's weights
    if name == "05_model_heads":
        cfg = bb.HeadsConfig.from_env(environ={"BB_PRESET": "tiny"})
        table = bb.heads_summary(frame)
        pair = table[table["task"] == cfg.pair_task]
        expected = {"cross_encoder"} | {f"two_input:{fusion}:{cfg.pooling}" for fusion in cfg.fusions}
        assert expected <= set(pair["variant"])
        multitask = "multitask:" + "+".join(cfg.tasks)
        for task in cfg.tasks:
            assert {multitask, "single_task"} <= set(table[table["task"] == task]["variant"])
        budget = frame[frame["variant"].isin([multitask, "single_task"])].groupby(["task", "variant"])[
            "train_examples"].first().unstack()
        assert (budget[multitask] == budget["single_task"]).all()  # the same examples per task
        assert table["dev_score_median"].between(-1, 1).all()


def _tiny_env(tmp_path, name=""):
    env = {**os.environ, "BB_PRESET": "tiny", "BB_OUTPUT_DIR": str(tmp_path / "outputs"),
           "BB_RUNS_DIR": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    if name == "05_layer_probes":  # span probes on a tiny SQuAD 2.0 file (none ships with the data)
        from support import squad_dict

        path = tmp_path / "tiny_squad2.json"
        path.write_text(json.dumps(squad_dict()))
        env.update(BB_SQUAD_TRAIN=str(path), BB_SQUAD_DEV=str(path))
    if name == "06_aggregate_results":  # something to aggregate, wherever the notebook looks
        from support import write_synthetic_outputs

        write_synthetic_outputs(tmp_path / "outputs")
        write_synthetic_outputs(tmp_path / "runs" / "tiny-outputs")
    return env


def _plain_run(name: str, tmp_path: Path, timeout: float = 600, **settings: str) -> subprocess.CompletedProcess:
    """``python notebooks/<name>.py`` in the tiny preset (``settings`` as BB_* variables on top); must exit 0."""
    env = {**_tiny_env(tmp_path, name), **settings}
    completed = subprocess.run([sys.executable, str(ROOT / "notebooks" / f"{name}.py")], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    return completed


def test_notebooks_are_found():
    assert NOTEBOOKS, "no notebooks/*.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_a_kernel(path, tmp_path, monkeypatch):
    for key, value in _tiny_env(tmp_path, path.stem).items():
        monkeypatch.setenv(key, value)
    notebook = jupytext.read(path)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    check_outputs(path.stem, tmp_path / "outputs")
    text = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "GLUE mean over" in text and "WNLI out" in text or path.stem != "03_glue_finetune"
    check_rich_outputs(notebook)


def check_rich_outputs(notebook) -> None:
    """What JupyterLab shows: every cell that shows a table has an HTML table in its output, every cell that shows a
    figure an inline PNG; no TqdmWarning (ipywidgets present) and no transformers load/save bars."""
    shown = [cell for cell in notebook.cells if cell.cell_type == "code" and "bb.show(" in cell.source]
    assert shown, "the notebook shows nothing with bb.show"
    for cell in shown:
        kinds = {kind for output in cell.get("outputs", []) for kind in output.get("data", {})}
        wanted = "image/png" if re.search(r"bb\.show\((bb\.plot_|path\))", cell.source) else "text/html"
        assert wanted in kinds, f"cell shows no {wanted}:\n{cell.source}\noutputs: {kinds}"
    streams = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "TqdmWarning" not in streams and "Loading weights" not in streams and "Writing model shards" not in streams


PLAIN_RUN_SETTINGS = {"04_long_documents": {"BB_RUNS": "head,windows+mean_prob"}}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_as_a_plain_script_from_another_directory_and_tiny_stays_out_of_outputs(path, tmp_path):
    """README's quick run, ``BB_PRESET=tiny python notebooks/NN.py`` from any directory without BB_OUTPUT_DIR: it
    works headless and writes its results to runs/tiny-outputs/, never into the committed outputs/."""
    env = _tiny_env(tmp_path, path.stem)
    narrowed = PLAIN_RUN_SETTINGS.get(path.stem, {})  # every run of 04 is the kernel test's: two here
    env.update(narrowed)
    del env["BB_OUTPUT_DIR"]
    env.pop("MPLBACKEND", None)  # a plain run without a display must save its figures without showing them
    completed = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    check_outputs(path.stem, tmp_path / "runs" / "tiny-outputs", narrowed)
    assert not (tmp_path / "outputs" / f"{path.stem}.csv").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_jupytext_converts_to_a_valid_notebook(path, tmp_path):
    target = tmp_path / f"{path.stem}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "notebook", str(path), "-o", str(target)],
                   check=True, capture_output=True)
    notebook = nbformat.read(target, as_version=4)
    nbformat.validate(notebook)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and "code" in kinds
    assert "import bertbench as bb" in notebook.cells[1].source


# Non-default settings a researcher would try, injected into the parameters cell by papermill (as `papermill -p` does).
PAPERMILL_CASES = {
    "03-one-task-one-seed": ("03_glue_finetune", {"preset": "tiny", "tasks": "rte", "seeds": "1"}),
    "04-without-head": ("04_long_documents", {"preset": "tiny", "datasets": "hyperpartisan",
                                              "runs": "head_tail,windows+mean_prob"}),
    "04-cv-folds": ("04_long_documents", {"preset": "tiny", "datasets": "hyperpartisan",
                                          "runs": "head,windows+mean_logits", "cv_folds": 3}),
    "05-probes-one-task": ("05_layer_probes", {"preset": "tiny", "tasks": "sst2", "poolings": "mean"}),
}


@pytest.mark.parametrize("case", sorted(PAPERMILL_CASES))
def test_papermill_parameters_reach_the_config_and_the_notebook_copes(case, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    name, parameters = PAPERMILL_CASES[case]
    for key, value in _tiny_env(tmp_path, name).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BB_PRESET")  # the preset comes from the parameters cell here
    source = tmp_path / f"{name}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "notebook", "--set-kernel", "python3",
                    str(ROOT / "notebooks" / f"{name}.py"), "-o", str(source)], check=True, capture_output=True)
    executed = tmp_path / f"{name}.out.ipynb"
    papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    notebook = nbformat.read(executed, as_version=4)
    check_rich_outputs(notebook)
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "<- cell" in printed  # the printed config says where the injected values came from
    frame = bb.load_results(tmp_path / "outputs" / f"{name}.csv")
    if name == "03_glue_finetune":
        assert set(frame["task"]) == {"rte"} and set(frame["seed"]) == {1}
    if name == "04_long_documents":
        strategies = set(frame["variant"].str.split(" fold").str[0])
        assert strategies == set(parameters["runs"].split(","))
        if parameters.get("cv_folds"):
            assert frame["variant"].str.contains("fold3/3").any()
            assert "head" in printed and "windows+mean_logits" in printed  # the pooled out-of-fold comparison
    if name == "05_layer_probes":
        sentence = frame[frame["task"] != "squad2"]
        assert set(sentence["task"]) == {"sst2"} and not sentence["variant"].str.contains(":cls").any()


def test_long_documents_notebook_takes_head_and_tail_lengths_and_writes_tensorboard(tmp_path):
    """GCP's `ht` with any split (head_tokens + tail_tokens) and TensorBoard scalars, set the way a user sets them."""
    _plain_run("04_long_documents", tmp_path, BB_DATASETS="hyperpartisan", BB_RUNS="head_tail", BB_HEAD_TOKENS="8",
               BB_TAIL_TOKENS="20", BB_TENSORBOARD="1", BB_EPOCHS="1")
    frame = bb.load_results(tmp_path / "outputs" / "04_long_documents.csv")
    tokens = frame[(frame["split"] == "test") & (frame["metric"] == "encoder_tokens_per_doc")]["value"]
    assert (tokens <= 8 + 20 + 2).all() and (tokens > 20).all()  # [CLS] 8 head tokens, 20 tail tokens [SEP]
    assert list((tmp_path / "runs" / "longdoc").rglob("events.out.tfevents.*"))


def test_full_preset_runs_to_the_end_on_local_data(tmp_path, glue_dir):
    """Issue 23's command: every GLUE task of the full preset, 64 examples each; the tasks without local files (QQP
    here) are named and skipped, the others run and are scored."""
    completed = _plain_run("03_glue_finetune", tmp_path, timeout=900, BB_PRESET="full", BB_MAX_TRAIN_EXAMPLES="64",
                           BB_MAX_EVAL_EXAMPLES="64", BB_EPOCHS="1", BB_SEEDS="0", BB_NUM_THREADS="2")
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "full"})
    missing = [task for task in cfg.tasks if not list(glue_dir.glob(f"{bb.get_task(task).dir_name}/train.tsv"))]
    frame = bb.load_results(tmp_path / "outputs" / "03_glue_finetune.csv")
    scores = frame[frame["split"].str.startswith("dev") & (frame["metric"] == "score")]
    assert set(scores["task"]) == set(cfg.tasks) - set(missing) and len(scores["task"].unique()) >= 6
    for task in missing:
        assert f"{task} (no train" in completed.stdout


def test_ditbert_tokenizer_then_a_roberta_style_model_on_it_from_notebooks_01_and_02(tmp_path):
    """DitBERT's workflow as a user runs it: notebook 01 with kinds=bpe-roberta, then notebook 02 on that tokenizer
    (RoBERTa's special tokens and ids), with TensorBoard scalars."""
    _plain_run("01_train_tokenizer", tmp_path, BB_KINDS="bpe-roberta")
    tokenizers = list((tmp_path / "runs" / "tokenizers").glob("bpe-roberta-*"))
    assert len(tokenizers) == 1
    from bertbench.models import load_tokenizer

    tokenizer = load_tokenizer(str(tokenizers[0]))
    assert (tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token, tokenizer.mask_token,
            tokenizer.unk_token) == ("<s>", "</s>", "<pad>", "<mask>", "<unk>")
    _plain_run("02_pretrain_mlm", tmp_path, BB_TOKENIZER="bpe-roberta", BB_ARCH="roberta-preln",
               BB_TENSORBOARD="1")
    frame = bb.load_results(tmp_path / "outputs" / "02_pretrain_mlm.csv")
    assert set(frame["model"]) == {"mlm-roberta-preln-nano-tiny-bpe-roberta"}
    model = json.loads(next((tmp_path / "runs" / "pretrain").glob("*/model/config.json")).read_text())
    assert model["pad_token_id"] == 1 and model["model_type"] == "roberta-prelayernorm"  # RoBERTa-style, pre-LN
    assert list((tmp_path / "runs" / "pretrain").rglob("events.out.tfevents.*"))


def test_glue_notebook_takes_a_pooling_head_loss_selection_and_tensorboard(tmp_path, glue_dir):
    """Notebook 03 as a user sets it: head=mean with its dropout on the encoder, the epoch chosen (and training
    stopped) on the held-out loss with min_delta, TensorBoard scalars."""
    _plain_run("03_glue_finetune", tmp_path, BB_TASKS="rte", BB_SEEDS="0", BB_HEAD="mean", BB_HEAD_DROPOUT="0.2",
               BB_SELECT_METRIC="loss", BB_MIN_DELTA="0.001", BB_PATIENCE="1", BB_TENSORBOARD="1")
    frame = bb.load_results(tmp_path / "outputs" / "03_glue_finetune.csv")
    assert set(frame["head_init"]) == {"new:mean"}
    config = json.loads(frame["config"].iloc[0])
    assert (config["head"], config["head_dropout"], config["select_metric"], config["min_delta"]) == (
        "mean", 0.2, "loss", 0.001)
    assert not frame[(frame["split"] == "train_holdout") & (frame["metric"] == "loss")].empty
    assert list((tmp_path / "runs" / "glue").rglob("events.out.tfevents.*"))


def test_model_heads_notebook_writes_tensorboard_scalars(tmp_path, glue_dir):
    _plain_run("05_model_heads", tmp_path, BB_TENSORBOARD="1")
    assert list((tmp_path / "runs" / "heads").rglob("events.out.tfevents.*"))
