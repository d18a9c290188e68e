# %% [markdown]
# # 02 · Pretrain a BERT from scratch (masked language modelling)
#
# Builds a BERT-style encoder from a transformers config (BERT, or pre-LayerNorm RoBERTa style; sizes from `nano` to
# `base`) on the tokenizer of notebook 01 and pretrains it with dynamic masking (15%, 80/10/10) on sequences packed to
# the maximum length, on a budget in steps or minutes with the learning rate following the budget. The result is a
# standard checkpoint: `BB_MODEL=runs/pretrain/<name>/model python notebooks/03_glue_finetune.py` fine-tunes it.
#
# - **Inputs:** the Wikipedia dump under `$BB_DATA_DIR` (`BB_CORPUS`: as in notebook 01); WikiText-2 validation for
#   held-out loss and pseudo-perplexity; the tokenizer of notebook 01 (trained on the spot if missing).
# - **Outputs:** `outputs/02_pretrain_mlm.csv` (one row per evaluation and metric, written at every evaluation), the
#   checkpoint and the final model under `runs/pretrain/<name>/` (outside git).
# - **Resume:** an interrupted run continues from its last checkpoint when the same command is run again
#   (`BB_RESUME=0` starts afresh).
# - **Runs on:** CPU (`tiny`: seconds; `cpu`: 35 minutes of training) or GPU (`gpu`, taken when CUDA is available: an 8-layer encoder for an hour;
#   `full`: BERT-base, bf16, 24 hours).
#
# Quick run: `BB_PRESET=tiny python notebooks/02_pretrain_mlm.py`
#
# RoBERTa-style (DitBERT's byte-level BPE with RoBERTa's `<s> </s> <pad> <mask>`, pre-LayerNorm RoBERTa encoder):
# `BB_TOKENIZER=bpe-roberta python notebooks/02_pretrain_mlm.py` (`roberta-preln` is already the `cpu`/`gpu`/`full`
# arch; for `tiny` add `BB_ARCH=roberta-preln`).

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" | "cpu" | "gpu" | "full"; None: "cpu", or "gpu" when CUDA is available
arch = None  # "bert" | "roberta-preln"
tokenizer = None  # notebook 01's "wordpiece" | "bpe" | "bpe-roberta" (RoBERTa's special tokens), or a folder
size = None  # "nano" | "tiny" | "mini" | "small" | "medium" | "base"
max_minutes = None  # training budget
max_steps = None

# %%
cfg = bb.PretrainConfig.from_env(preset=preset, arch=arch, tokenizer=tokenizer, size=size, max_minutes=max_minutes,
                                 max_steps=max_steps)
results_path = bb.outputs_dir(cfg.preset) / "02_pretrain_mlm.csv"  # tiny runs never land in outputs/
print(cfg)
print("results ->", results_path)

# %% [markdown]
# ## Pretrain
# Evaluates before the first step and at `eval_points` points of the budget; each evaluation writes the rows so far
# and a checkpoint.

# %%
result = bb.pretrain(cfg, results_path)

# %% [markdown]
# ## Learning curve: training loss, held-out MLM loss and pseudo-perplexity

# %%
columns = [name for name in result.history.columns if name.endswith(("_loss", "_pppl", "tokens_per_s"))]
bb.show(result.history[["step", *columns]])
print(f"\nfinal model: {result.model_dir}")
