# %% [markdown]
# # 01 · Train a tokenizer
#
# Trains a WordPiece (BERT, cramming) and a byte-level BPE (DitBERT) tokenizer with the `tokenizers` library on a
# text corpus, saves each so that `AutoTokenizer.from_pretrained` loads it back with `[CLS] [SEP] [PAD] [MASK] [UNK]`,
# a CLS/SEP post-processor and a model max length, and measures them side by side with the packaged MiniLM
# (bert-base-uncased) vocabulary: fertility (tokens per word) and unknown-token rate on WikiText-2 validation.
# The option `bpe-roberta` trains the same byte-level BPE with RoBERTa's `<s> <pad> </s> <unk> <mask>` (ids 0-4) and
# templates (`<s> A </s>`, `<s> A </s></s> B </s>`, no token types) for a RoBERTa-style model in notebook 02.
#
# - **Inputs:** the WikiExtractor Wikipedia dump under `$BB_DATA_DIR` (`BB_CORPUS=wikipedia`), or any text file or
#   folder (`BB_CORPUS=path`), or an HF dataset column when online (`BB_CORPUS=hf:<dataset>[:<config>]:<split>:<column>`).
#   Read as a stream: a corpus larger than memory works.
# - **Outputs:** `outputs/01_train_tokenizer.csv`; the tokenizers (with `token_frequencies.csv`, the token-frequency
#   table DitBERT sampled from) under `runs/tokenizers/`, where notebook 02 finds them.
# - **Runs on:** CPU (`tiny`: seconds; `cpu`: about two minutes); `full` trains the 32,768-entry vocabularies.
#
# Quick run: `BB_PRESET=tiny python notebooks/01_train_tokenizer.py`; with the RoBERTa-style tokenizer as well:
# `BB_PRESET=tiny BB_KINDS=wordpiece,bpe,bpe-roberta python notebooks/01_train_tokenizer.py`

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" | "cpu" | "gpu" | "full"; None: "cpu", or "gpu" when CUDA is available
kinds = None  # default ("wordpiece", "bpe"); add "bpe-roberta" for byte-level BPE with RoBERTa's <s> </s> <pad> <mask>
vocab_size = None
corpus = None  # "wikipedia", a text file/folder, or hf:<dataset>:<split>:<column> online

# %%
cfg = bb.TokenizerConfig.from_env(preset=preset, kinds=kinds, vocab_size=vocab_size, corpus=corpus)
results_path = bb.outputs_dir(cfg.preset) / "01_train_tokenizer.csv"  # tiny runs never land in outputs/
print(cfg)
print("results ->", results_path)

# %% [markdown]
# ## Train, save, reload and measure each tokenizer
# Each saved folder is loaded back with `AutoTokenizer` and checked (special tokens, CLS/SEP for single texts and
# pairs, model max length) before it is measured.

# %%
table = bb.run_tokenizers(cfg, results_path)
bb.show(table)

# %% [markdown]
# ## What the tokenizers make of one sentence

# %%
sentence = "Tokenizers split 1,234 unusual words like photosynthesis differently."
for name, folder in zip(table["tokenizer"], table["folder"], strict=True):
    print(f"{name}: {bb.load_tokenizer(folder or name).tokenize(sentence)}")
