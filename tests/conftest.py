"""Shared fixtures: the real GLUE folder (skip if absent), tokenizers (packaged BERT, a RoBERTa-style one built
here), tiny random models, and a temporary outputs/runs dir so tests never write into the repo's outputs/."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core: one thread each (and in every process a test starts), so the
    # workers share the cores instead of each spinning several OpenMP threads on all of them
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Every test writes results and runs under its own tmp_path."""
    monkeypatch.setenv("BB_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / "runs"))
    for key in list(os.environ):
        if key.startswith("BB_") and key not in ("BB_OUTPUT_DIR", "BB_RUNS_DIR", "BB_DATA_DIR"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def glue_dir():
    from bertbench.paths import data_dir

    path = data_dir() / "glue"
    if not (path / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data not found at {path} (set BB_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def bert_tokenizer():
    from bertbench.models import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="session")
def roberta_tokenizer():
    """A RoBERTa-style tokenizer: <s> </s> <pad>=1 <mask>, pairs as <s> A </s></s> B </s>, no token_type_ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = "the a cat dog sat on mat is happy sad good bad movie film was very not".split()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    vocab.update({word: i + 5 for i, word in enumerate(words)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", model_input_names=["input_ids", "attention_mask"],
        model_max_length=128)
