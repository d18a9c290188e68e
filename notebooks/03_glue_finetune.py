# %% [markdown]
# # 03 · GLUE fine-tuning
#
# Fine-tunes an encoder (default: the packaged all-MiniLM-L6-v2) on GLUE tasks, several seeds per task, and reports
# the median dev score per task with its spread, plus the GLUE arithmetic and harmonic means over the tasks present.
#
# - **Inputs:** the official GLUE TSVs under `$BB_DATA_DIR/glue` (default `../shared/data/glue`), or the hub with
#   `BB_DATA_SOURCE=hub` when online.
# - **Outputs:** `outputs/03_glue_finetune.csv` (one row per run, task, split, step, metric; re-running a
#   configuration replaces its rows; `tiny` runs write to `runs/tiny-outputs/` instead), best checkpoints and GLUE submission TSVs under `runs/glue/<run_id>/`.
# - **Selection:** by default the best epoch is chosen on 10% of the training data held out, and reported on dev,
#   which played no part in any choice (`selection` column). `BB_SELECTION=dev` is DitBERT's optimistic rule.
# - **Runs on:** CPU (`tiny`: seconds; `cpu`: see README) or GPU (`full`).
#
# Quick run: `BB_PRESET=tiny python notebooks/03_glue_finetune.py`

# %%
import bertbench as bb

# %%
cfg = bb.GlueConfig.from_env()
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
print(table.round(4).to_string(index=False))
print(f"\nGLUE over {means['n_tasks']} tasks: arithmetic mean {means['amean']:.4f}, "
      f"harmonic mean {means['hmean']:.4f}; missing: {', '.join(means['missing']) or 'none'}")
