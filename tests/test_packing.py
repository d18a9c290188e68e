"""Padding-free (packed) batches: the same logits and loss as the padded batch on every kernel that runs here, a
control that fails when the examples' boundaries are lost, when packing is taken, and a GLUE run trained on packed
batches that follows the padded run."""

from __future__ import annotations

import pytest
import torch

import bertbench as bb
from bertbench.encoding import PadCollator
from bertbench.heads import POOLINGS, SequenceClassifier, load_encoder
from bertbench.models import build_classifier, set_attention
from bertbench.packing import PackedCollator, PackedObjective, packable, packed_logits, use_packing

TEXTS = [("a short one", None), ("a rather longer sentence with more words in it", "and a second text of its own"),
         ("x", None), ("the film was not good at all", "it was bad")]


def _items(tokenizer, labels=(1, 0, 1, 0)):
    items = []
    for (first, second), label in zip(TEXTS, labels, strict=True):
        encoded = tokenizer(first, second) if second else tokenizer(first)
        items.append({"input_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"],
                      "labels": label})
    return items


def _padded_logits(model, tokenizer, items):
    batch = PadCollator(tokenizer)(items)
    batch.pop("labels")
    return model(**batch).logits


@pytest.fixture()
def bert_classifier(bert_tokenizer):
    torch.manual_seed(0)
    model, _ = build_classifier("random-bert-2x64", bert_tokenizer, ("neg", "pos"), dropout=0.0,
                                attention_dropout=0.0)
    with torch.no_grad():  # logits far from zero, so a wrong mask shows
        model.classifier.weight.normal_(0.0, 1.0)
    return model.eval()


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
def test_a_packed_batch_gives_the_padded_batch_s_logits(bert_classifier, bert_tokenizer, monkeypatch, kernel):
    monkeypatch.setenv("BB_ATTENTION", kernel)
    assert set_attention(bert_classifier) == kernel
    items = _items(bert_tokenizer)
    packed = PackedCollator()(items)
    assert packed["input_ids"].shape == (1, sum(len(item["input_ids"]) for item in items))  # no padding at all
    with torch.no_grad():
        torch.testing.assert_close(packed_logits(bert_classifier, packed),
                                   _padded_logits(bert_classifier, bert_tokenizer, items), atol=1e-5, rtol=1e-4)


def test_without_the_restarting_positions_the_examples_see_each_other(bert_classifier, bert_tokenizer):
    # the control: one sequence over the whole row (positions 0..N-1) must not pass for the padded logits
    items = _items(bert_tokenizer)
    packed = PackedCollator()(items)
    packed["position_ids"] = torch.arange(packed["input_ids"].shape[1]).unsqueeze(0)
    with torch.no_grad():
        wrong = packed_logits(bert_classifier, packed)
        right = _padded_logits(bert_classifier, bert_tokenizer, items)
    assert (wrong - right).abs().max() > 1e-2


@pytest.mark.parametrize("pooling", [how for how in POOLINGS if how != "pooler"])
def test_bertbench_s_own_head_pools_each_packed_example_alone(bert_tokenizer, pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(load_encoder("random-bert-2x64", bert_tokenizer, 64, dropout=0.0,
                                            attention_dropout=0.0), 3, pooling=pooling, dropout=0.0).eval()
    items = _items(bert_tokenizer, labels=(0, 1, 2, 1))
    with torch.no_grad():
        torch.testing.assert_close(packed_logits(model, PackedCollator()(items)),
                                   model(**PadCollator(bert_tokenizer)(items)).logits, atol=1e-5, rtol=1e-4)


def test_the_packed_loss_is_the_padded_loss(bert_classifier, bert_tokenizer):
    items = _items(bert_tokenizer)
    with torch.no_grad():
        packed = PackedObjective(bert_classifier)(PackedCollator()(items))
        padded = bert_classifier(**PadCollator(bert_tokenizer)(items)).loss
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)


def test_auto_packs_only_on_flash_attention_s_variable_length_kernel(bert_classifier, bert_tokenizer, monkeypatch):
    set_attention(bert_classifier)
    assert not use_packing(bert_classifier)  # SDPA: a block-diagonal mask over the row, slower than padding
    assert use_packing(bert_classifier, "on") and not use_packing(bert_classifier, "off")
    bert_classifier.config._attn_implementation = "flash_attention_2"  # what set_attention leaves on such a GPU
    assert use_packing(bert_classifier)
    pooler_head = SequenceClassifier(load_encoder("random-bert-1x32", bert_tokenizer, 64), 2, pooling="pooler")
    assert not packable(pooler_head) and not use_packing(pooler_head)
    with pytest.raises(ValueError, match="BB_PACKING=on: SequenceClassifier has no packed path"):
        use_packing(pooler_head, "on")
    monkeypatch.setenv("BB_PACKING", "always")
    with pytest.raises(ValueError, match="BB_PACKING='always': choose one of auto, on, off"):
        use_packing(bert_classifier)


def test_a_glue_run_on_packed_batches_follows_the_padded_run_and_says_so(glue_dir, tmp_path, monkeypatch):
    cfg = bb.GlueConfig.from_env(preset="tiny", environ={
        "BB_TASKS": "mrpc", "BB_SEEDS": "0", "BB_MAX_TRAIN_EXAMPLES": "64", "BB_MAX_EVAL_EXAMPLES": "32",
        "BB_EPOCHS": "2", "BB_PREDICT_TEST": "0", "BB_DROPOUT": "0"})
    frames = {}
    for packing in ("off", "on"):
        monkeypatch.setenv("BB_PACKING", packing)
        monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / packing / "runs"))
        frames[packing] = bb.run_glue(cfg, tmp_path / packing / "out.csv", verbose=False)
    padded, packed = frames["off"], frames["on"]
    assert packed["device"].str.endswith("sdpa attention, packed batches").all()
    assert not padded["device"].str.contains("packed").any()
    key = ["split", "step", "metric"]
    merged = padded.merge(packed, on=key, suffixes=("_padded", "_packed"))
    losses = merged[merged["metric"] == "loss"]
    assert len(losses) >= 2
    assert ((losses["value_padded"] - losses["value_packed"]).abs() < 1e-4).all(), losses
    examples = merged[merged["metric"] == "examples_per_s"]
    assert (examples["value_packed"] > 0).all()  # counted in examples, not packed rows
