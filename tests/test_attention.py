"""The attention kernel (BB_ATTENTION): chosen automatically (SDPA), overridable, refused by name when it cannot run,
the same logits on every kernel that runs here, and named in the results' device column."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from bertbench.heads import SequenceClassifier, load_encoder
from bertbench.models import attention_of, build_classifier, set_attention
from bertbench.train import device_description


def _batch(tokenizer):
    # two sentences of different lengths: the padded positions must be masked on every kernel
    return tokenizer(["a short one", "a rather longer sentence with more words in it"], padding=True,
                     return_tensors="pt")


def test_auto_takes_sdpa_and_eager_gives_the_same_logits_on_a_padded_batch(bert_tokenizer, monkeypatch):
    torch.manual_seed(0)
    model, _ = build_classifier("random-bert-2x64", bert_tokenizer, ("neg", "pos"), dropout=0.0,
                                attention_dropout=0.0)
    model.eval()
    batch = _batch(bert_tokenizer)
    assert set_attention(model) == "sdpa" == attention_of(model)
    with torch.no_grad():
        sdpa = model(**batch).logits
    monkeypatch.setenv("BB_ATTENTION", "eager")
    assert set_attention(model) == "eager" == model.config._attn_implementation
    with torch.no_grad():
        eager = model(**batch).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-4)


def test_the_encoder_inside_bertbench_s_own_head_gets_the_kernel(bert_tokenizer, monkeypatch):
    encoder = load_encoder("random-bert-1x32", bert_tokenizer, 64)
    model = SequenceClassifier(encoder, 2, "single_label_classification", pooling="mean", dropout=0.0)
    monkeypatch.setenv("BB_ATTENTION", "eager")
    assert set_attention(model) == "eager" == encoder.config._attn_implementation == attention_of(model)


def test_an_unknown_kernel_is_refused_naming_the_choices(bert_tokenizer, monkeypatch):
    model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
    monkeypatch.setenv("BB_ATTENTION", "flash")
    with pytest.raises(ValueError, match="BB_ATTENTION='flash'.*auto, sdpa, eager, flash_attention_2"):
        set_attention(model)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available(),
                    reason="flash-attn can run here")
def test_flash_attention_where_it_cannot_run_is_refused_not_replaced(bert_tokenizer, monkeypatch):
    model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
    monkeypatch.setenv("BB_ATTENTION", "flash_attention_2")
    with pytest.raises(ValueError, match="BB_ATTENTION=flash_attention_2: .* cannot run it here"):
        set_attention(model)


def test_the_device_column_names_precision_processes_and_attention():
    cpu = torch.device("cpu")
    assert device_description(cpu, "bf16", "sdpa").endswith(" threads, bf16, sdpa attention")
    assert device_description(cpu, "no", "eager").endswith(" threads, eager attention")
    assert device_description(cpu).endswith(" threads")


def test_bb_attention_is_no_unknown_variable_for_any_notebook_config(monkeypatch):
    import bertbench as bb

    monkeypatch.setenv("BB_ATTENTION", "eager")
    assert bb.GlueConfig.from_env(preset="tiny").preset == "tiny"  # an unknown BB_* variable would raise here
