# %% [markdown]
# # 05 · Model heads: a two-input bi-encoder against the cross-encoder, multitask against single-task
#
# The heads of `bertbench.heads` on real GLUE data, under notebook 03's protocol (the same fixed training subset,
# the epoch chosen on a held-out 10% of it, reported on dev, which played no part in any choice):
#
# - **Pair study:** on MRPC (`BB_PAIR_TASK`), the cross-encoder of notebook 03 (`[CLS] a [SEP] b [SEP]`, variant
#   `cross_encoder`) next to the two-input model — one shared encoder reads the two sentences separately, their
#   mean-pooled vectors are fused (`mean`, `max`, `concat`, `concat_diff` = [u; v; |u−v|]) and one head decides —,
#   same seeds, epochs, learning rate and batch size.
# - **Multitask study:** one encoder with a head per task trained on mixed single-task batches of SST-2, CoLA and
#   MRPC (`BB_TASKS`), against one single-task model per task with the same head, examples and epochs.
# - **Outputs:** `outputs/05_model_heads.csv` (one row per run, task, split, epoch, metric; `variant` names the
#   model). `tiny` runs write to `runs/tiny-outputs/` instead.
#
# Quick run: `BB_PRESET=tiny python notebooks/05_model_heads.py`

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" | "cpu" | "gpu" | "full"; None: "cpu", or "gpu" when CUDA is available
studies = None  # ("pair", "multitask")
tasks = None  # the multitask study's tasks
pair_task = None  # "mrpc" | "stsb"
fusions = None  # e.g. ("mean", "concat_diff")

# %%
cfg = bb.HeadsConfig.from_env(preset=preset, studies=studies, tasks=tasks, pair_task=pair_task, fusions=fusions)
results_path = bb.outputs_dir(cfg.preset) / "05_model_heads.csv"  # tiny runs never land in outputs/
print(cfg)
print("results ->", results_path)

# %% [markdown]
# ## Train every model
# Each run checks its inputs (special tokens from the tokenizer, attention mask 0 exactly on padding) before
# training; its rows are written as soon as it ends.

# %%
runs = bb.run_heads(cfg, results_path)

# %% [markdown]
# ## Dev scores
# GLUE's task score (MRPC: mean of accuracy and F1; CoLA: MCC; SST-2: accuracy), median over seeds with the range.

# %%
results = bb.load_results(results_path)
table = bb.heads_summary(results[results["preset"] == cfg.preset])
bb.show(table)

# %%
is_pair_model = (table["variant"] == "cross_encoder") | table["variant"].str.startswith("two_input:")
pair = table[(table["task"] == bb.get_task(cfg.pair_task).name) & is_pair_model].set_index("variant")
if "cross_encoder" in pair.index:
    cross = pair.loc["cross_encoder", "dev_score_median"]
    for variant, row in pair.drop(index="cross_encoder").iterrows():
        print(f"{variant}: {row['dev_score_median']:.4f} vs cross-encoder {cross:.4f} "
              f"({row['dev_score_median'] - cross:+.4f}, {row['seeds']} seed(s))")
multi = table[table["variant"].str.startswith("multitask:")]
single = table[table["variant"] == "single_task"].set_index("task")
for _, row in multi.iterrows():
    if row["task"] in single.index:
        base = single.loc[row["task"], "dev_score_median"]
        print(f"{row['task']}: multitask {row['dev_score_median']:.4f} vs single-task {base:.4f} "
              f"({row['dev_score_median'] - base:+.4f})")
