# %% [markdown]
# # 00 · Encoder basics: outputs, poolings, one head trained by the HF Trainer and by bertbench's loop
#
# Loads an encoder (default: the packaged all-MiniLM-L6-v2), shows what it returns (`last_hidden_state` against
# `pooler_output`, every layer's hidden states) and how the five sentence poolings (CLS, pooler, mean, max, sum)
# compare on sentence pairs; then trains one CLS + dropout + linear head on a GLUE task (default SST-2) **twice on the
# same examples with the same hyperparameters**: with the Hugging Face `Trainer` (`EarlyStoppingCallback`,
# `load_best_model_at_end`) and with bertbench's own loop, both stopping early on the held-out 10% of the training
# subset (held-out loss with a `min_delta` tolerance, or the task score), both scored on dev by the same code.
#
# - **Inputs:** the GLUE TSVs under `$BB_DATA_DIR/glue`.
# - **Outputs:** `outputs/00_encoder_basics.csv` (one row per run, split, epoch, metric; `variant` = `trainer` or
#   `bertbench`), `outputs/figures/00_encoder_basics.png`. `tiny` runs write to `runs/tiny-outputs/` instead.
# - **Runs on:** CPU (`tiny`: seconds; `cpu`: SST-2, 2,000 examples, 3 seeds per system, minutes) or GPU.
#
# Quick run: `BB_PRESET=tiny python notebooks/00_encoder_basics.py`

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" | "cpu" | "gpu" | "full"; None: "cpu", or "gpu" when CUDA is available
model = None  # "minilm", a save_pretrained folder, or a hub name online
task = None  # e.g. "sst2", "rte"
seeds = None  # e.g. (0, 1, 2)
head = None  # the pooling the head reads: "cls" | "pooler" | "mean" | "max" | "sum"
early_stop_on = None  # "loss" (held-out loss, with min_delta) | "score"
min_delta = None

# %%
cfg = bb.BasicsConfig.from_env(preset=preset, model=model, task=task, seeds=seeds, head=head,
                               early_stop_on=early_stop_on, min_delta=min_delta)
results_path = bb.outputs_dir(cfg.preset) / "00_encoder_basics.csv"  # tiny runs never land in outputs/
print(cfg)
print("results ->", results_path)

# %% [markdown]
# ## What the encoder returns
# `last_hidden_state` has one vector per token; `pooler_output` is a dense + tanh layer on the first token, which
# BERT trained for next-sentence prediction — and which a checkpoint may not even carry (then it is random).

# %%
anatomy, pooler_note = bb.encoder_anatomy(cfg.model, ["A man is playing a guitar.", "The cat sat on the mat."],
                                          cfg.max_len)
bb.show(anatomy)
print(pooler_note)

# %% [markdown]
# ## Five sentence vectors, compared on sentence pairs
# Cosine similarity of each pair under each pooling: a useful sentence vector puts the paraphrase well above the
# unrelated pair (all-MiniLM-L6-v2 was trained through mean pooling).

# %%
bb.show(bb.pooling_similarities(cfg.model, max_len=cfg.max_len), digits=3)

# %% [markdown]
# ## One head, two training loops
# The same examples (the GLUE notebook's subset and its held-out 10%), the same head, learning rate, batch size,
# warmup, weight decay, epochs and early-stopping rule; only the loop differs. Each run's rows are written as soon
# as it ends.

# %%
runs = bb.run_basics(cfg, results_path)

# %%
results = bb.load_results(results_path)
results = results[results["preset"] == cfg.preset]
bb.show(bb.basics_summary(results), digits=4)

# %%
figure_path = results_path.parent / "figures" / "00_encoder_basics.png"
bb.show(bb.plot_basics(results, figure_path))
print("figure ->", figure_path)
