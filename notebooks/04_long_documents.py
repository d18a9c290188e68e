# %% [markdown]
# # 04 · Long documents: truncation and window strategies, with their cost
#
# Fine-tunes an encoder (default: the packaged all-MiniLM-L6-v2) on long documents with every strategy through one
# training loop — head, tail, head+tail, random spans (`rs`, `rso`, `rsd`), and overlapping windows whose outputs are
# pooled by mean/max of probabilities, torch_long_bert's `custom_agg`, or mean/max of logits — and reports test
# accuracy and F1 with 1,000-sample bootstrap confidence intervals next to what each costs (encoder tokens per
# document, time, peak memory).
#
# - **Inputs:** Hyperpartisan (645 articles, binary) and BBC News (2,225 articles, 5 topics) under `$BB_DATA_DIR`,
#   or any CSV/JSONL with text and label columns (`BB_DATASETS=path/to/file.csv`), or `hf:<dataset>:<split>` online.
#   Data with its own split: `BB_DATASETS=tsv:path/to/bert_data_dir` (train.tsv, dev.tsv, labelled test.tsv; TEXT_B
#   as the text pair), `path/to/train.csv` beside `val.csv` / `test.csv`, a file with `BB_SPLIT_COLUMN=split`, or a
#   `save_to_disk` folder of a `DatasetDict`. `BB_REGRESSION=1` (or `tsv-regression:`): a number to predict;
#   `BB_LABEL_SEP="|"`: multi-label; `BB_TEXT_PAIR_COLUMN=question`: a second text appended to every window.
# - **Protocol:** the split the data gives, else a saved, stratified 80/10/10 split (`lib/bertbench/data/splits/`);
#   the best epoch on the validation split is reloaded and reported on the test split, which played no part in any
#   choice. `BB_CV_FOLDS=10` runs stratified 10-fold cross-validation instead (data without a split of its own).
# - **Outputs:** `outputs/04_long_documents.csv` (one row per run, split, epoch, metric; the `variant` column names
#   the strategy), per-document test predictions in `outputs/predictions/`, the plot in `outputs/figures/`.
#   `tiny` runs write to `runs/tiny-outputs/` instead.
#
# Quick run: `BB_PRESET=tiny python notebooks/04_long_documents.py`

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" | "cpu" | "gpu" | "full"; None: "cpu", or "gpu" when CUDA is available
datasets = None  # e.g. ("hyperpartisan", "bbc"), a CSV/JSONL path, "tsv:path/to/data_dir" or a save_to_disk folder
runs = None  # e.g. ("head", "head_tail", "windows+mean_logits")
seeds = None
model = None
epochs = None
cv_folds = None  # 0: the saved split; k >= 3: stratified k-fold

# %%
cfg = bb.LongDocConfig.from_env(preset=preset, datasets=datasets, runs=runs, seeds=seeds, model=model, epochs=epochs,
                                 cv_folds=cv_folds)
results_path = bb.outputs_dir(cfg.preset) / "04_long_documents.csv"  # tiny runs never land in outputs/
print(cfg)
print("results ->", results_path)

# %% [markdown]
# ## Train and test every strategy
# Each run prints its self-check (the first window decoded, with the tokenizer's own special tokens) before
# training; its rows are written as soon as it ends.

# %%
runs = bb.run_long_documents(cfg, results_path)

# %% [markdown]
# ## Score against cost
# Test accuracy and F1 with 95% bootstrap intervals; tokens per document are encoder tokens (special tokens
# included, padding excluded) per training epoch and at inference. One row per variant and configuration: seeds
# (and cross-validation folds) are pooled, and the interval then comes from their pooled per-document predictions;
# runs whose settings differ in anything else are separate rows, and `differs` names what tells them apart.

# %%
import pandas as pd

predictions_file = bb.predictions_path(results_path)  # none when only numbers to predict (regression) ran
predictions = (pd.read_csv(predictions_file, dtype={"doc_id": str, "run_id": str, "label": str})
               if predictions_file.is_file() else None)
latest = bb.load_results(results_path)
latest = latest[latest["preset"] == cfg.preset]
table = bb.longdoc_summary(latest, predictions, samples=cfg.bootstrap_samples)
# regression rows show Pearson (with its interval) and MSE where classification rows show accuracy and F1
columns = ["dataset", "variant", "differs", "runs", "accuracy", "f1", "f1_ci_low", "f1_ci_high", "pearson",
           "pearson_ci_low", "pearson_ci_high", "mse", "train_tokens_per_doc", "test_tokens_per_doc", "train_s",
           "predict_s", "peak_mb", "best_epoch"]
bb.show(table[[column for column in columns if column in table]], digits=3)
print("intervals:", "; ".join(sorted(set(table["ci_from"]))))
print("peak_mb:", "; ".join(sorted(set(table["peak_is"]))))

# %%
figure_path = results_path.parent / "figures" / "04_long_documents.png"
bb.show(bb.plot_score_vs_tokens(table, figure_path))
print("figure ->", figure_path)

# %% [markdown]
# ## Which strategy won, and is it beyond noise?
# Each variant against `head` on the same test documents and settings: the F1 difference (mean over the seeds both
# have) with a paired bootstrap 95% interval.

# %%
comparison = bb.compare_to(latest, predictions, baseline="head", samples=cfg.bootstrap_samples or 1000)
bb.show(comparison)
for dataset, part in table.groupby("dataset", sort=False):
    metric = "f1" if part["f1"].notna().any() else "pearson"  # a number to predict: Pearson, without a comparison
    best = part.sort_values(metric, ascending=False, kind="stable").iloc[0]
    row = comparison[(comparison["dataset"] == dataset) & (comparison["variant"] == best["variant"])]
    verdict = ("the baseline itself" if best["variant"] == "head" else "no paired comparison" if not len(row) else
               "beyond noise" if row["beyond_noise"].iloc[0] else "within noise")
    print(f"{dataset}: best test {metric} {best[metric]:.4f} with {best['variant']} ({verdict} against head)")
