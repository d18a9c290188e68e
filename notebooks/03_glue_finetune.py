# %% [markdown]
# # 03 · GLUE fine-tuning
#
# Fine-tunes an encoder (default: the packaged all-MiniLM-L6-v2) on GLUE tasks, several seeds per task, and reports
# the median dev score per task with its spread, plus the GLUE arithmetic and harmonic means over the tasks present.
#
# - **Inputs:** the official GLUE TSVs under `$BB_DATA_DIR/glue` (default `../shared/data/glue`), or the hub with
#   `BB_DATA_SOURCE=hub` when online. A task of your own: `BB_TASKS=tsv:path/to/data_dir`, a classic BERT data_dir
#   (`train.tsv`, `dev.tsv`, optional `test.tsv`: `ID, ALPHA, LABEL, TEXT_A[, TEXT_B]`), named after its folder,
#   scored by accuracy, F1 and MCC (`tsv-regression:` for a number to predict: Pearson, Spearman, MSE); not in the
#   GLUE mean.
# - **Outputs:** `outputs/03_glue_finetune.csv` (one row per run, task, split, step, metric; re-running a
#   configuration replaces its rows; `tiny` runs write to `runs/tiny-outputs/` instead), best checkpoints and GLUE submission TSVs under `runs/glue/<run_id>/`.
# - **Selection:** by default the best epoch is chosen on 10% of the training data held out, and reported on dev,
#   which played no part in any choice (`selection` column). `BB_SELECTION=dev` is DitBERT's optimistic rule.
# - **Runs on:** CPU (`tiny`: seconds; `cpu`: see README) or GPU (`gpu`, taken when CUDA is available: the six small tasks on
#   their whole training sets, 3 seeds; `full`: every task).
#
# Quick run: `BB_PRESET=tiny python notebooks/03_glue_finetune.py`

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" | "cpu" | "gpu" | "full"; None: "cpu", or "gpu" when CUDA is available
tasks = None  # e.g. ("rte", "mrpc"), or ("tsv:path/to/data_dir",) for a BERT data_dir of your own
seeds = None  # e.g. (0, 1, 2)
model = None  # "minilm", a save_pretrained folder, or a hub name online
epochs = None
lr = None
head = None  # "auto" (the model's own head) | "cls" | "pooler" | "mean" | "max" | "sum" (pooling + dropout + linear)

# %%
cfg = bb.GlueConfig.from_env(preset=preset, tasks=tasks, seeds=seeds, model=model, epochs=epochs, lr=lr, head=head)
results_path = bb.outputs_dir(cfg.preset) / "03_glue_finetune.csv"  # tiny runs never land in outputs/
print(cfg)
print("results ->", results_path)

# %% [markdown]
# ## Fine-tune every task and seed
# Each run prints its self-check (special tokens, attention mask, one decoded input) before training, and its rows
# are written to the results file as soon as it ends.

# %%
runs = bb.run_glue(cfg, results_path)

# %% [markdown]
# ## Results: median over seeds, with min and max

# %%
table, means = bb.glue_summary(runs)
bb.show(table)
print(f"GLUE mean over {means['n_tasks']} tasks ({means['convention_text']}): arithmetic {means['amean']:.4f}, "
      f"harmonic {means['hmean']:.4f}; missing: {', '.join(means['missing']) or 'none'}; "
      f"not counted: {', '.join(means['left_out']) or 'none'}")

# %%
figure_path = results_path.parent / "figures" / "03_glue_finetune.png"
bb.show(bb.plot_dev_scores(runs, figure_path))
print("figure ->", figure_path)
