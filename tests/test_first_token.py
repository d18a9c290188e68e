"""The last encoder layer on the first token only (BB_LAST_LAYER): a classifier whose head reads position 0 gets the
same logits and gradients while its last layer computes that position alone; other heads, packed batches and
``BB_LAST_LAYER=all`` compute every position; the layer is restored after the block; the results name it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertbench.encoding import PadCollator, encode
from bertbench.heads import SequenceClassifier, load_encoder
from bertbench.models import build_classifier, first_token_applies, first_token_last_layer, last_layer_setting
from bertbench.train import _last_layer_on_first_token, device_description, predict


def _classifier(tokenizer, attention: str = "sdpa"):
    torch.manual_seed(0)
    model, _ = build_classifier("random-bert-2x64", tokenizer, ("neg", "pos"), dropout=0.0, attention_dropout=0.0)
    model.set_attn_implementation(attention)
    return model.eval()


def _batch(tokenizer, pairs: bool = False):
    first = ["a short one", "a rather longer sentence with more words in it than the first", "mid length here"]
    if pairs:  # token type ids, and padding after a second segment
        return tokenizer(first, ["and a second part", "b", "c d e f g"], padding=True, return_tensors="pt")
    return tokenizer(first, padding=True, return_tensors="pt")


def _last_layer_widths(model) -> list[int]:
    """The number of positions the last encoder layer returns, per call (a forward hook)."""
    widths: list[int] = []
    model.bert.encoder.layer[-1].register_forward_hook(lambda module, args, output: widths.append(output.shape[1]))
    return widths


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("pairs", [False, True])
def test_the_same_logits_with_the_last_layer_on_the_first_token_only(bert_tokenizer, attention, pairs):
    model = _classifier(bert_tokenizer, attention)
    batch = _batch(bert_tokenizer, pairs)
    widths = _last_layer_widths(model)
    with torch.no_grad():
        full = model(**batch).logits
        with first_token_last_layer(model) as applied:
            first = model(**batch).logits
    assert applied
    assert widths == [batch["input_ids"].shape[1], 1]  # the fast path ran: one position out of the last layer
    torch.testing.assert_close(first, full, atol=1e-6, rtol=1e-5)


def test_the_same_gradients_for_every_parameter(bert_tokenizer):
    model = _classifier(bert_tokenizer)  # eval mode: no dropout, so both passes are the same function
    batch = {**_batch(bert_tokenizer), "labels": torch.tensor([0, 1, 1])}
    grads = []
    for fast in (False, True):
        model.zero_grad()
        with first_token_last_layer(model, "first_token" if fast else "all"):
            model(**batch).loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() == {name for name, _ in model.named_parameters()}
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("checkpointing", ["selective", "full"])
def test_the_same_gradients_under_activation_checkpointing(bert_tokenizer, checkpointing):
    """Notebook 04 trains with selective activation checkpointing: the recomputed last layer is the fast one too."""
    from bertbench.models import set_activation_checkpointing

    model = _classifier(bert_tokenizer).train()  # dropout is 0: training mode is deterministic
    batch = {**_batch(bert_tokenizer), "labels": torch.tensor([0, 1, 1])}
    widths = _last_layer_widths(model)
    grads = []
    for mode, setting in (("off", "all"), (checkpointing, "first_token")):
        set_activation_checkpointing(model, mode)
        model.zero_grad()
        with first_token_last_layer(model, setting):
            model(**batch).loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    assert widths[-1] == 1
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_a_control_that_drops_the_other_positions_keys_differs(bert_tokenizer):
    """The test above can fail: attending from position 0 to itself alone (what a wrong mask slice would do) gives
    other logits."""
    model = _classifier(bert_tokenizer)
    batch = _batch(bert_tokenizer)
    with torch.no_grad():
        full = model(**batch).logits
        truncated = model(input_ids=batch["input_ids"][:, :1], attention_mask=batch["attention_mask"][:, :1]).logits
    with pytest.raises(AssertionError):
        torch.testing.assert_close(truncated, full, atol=1e-6, rtol=1e-5)  # the tolerance the tests above use


def test_the_layer_is_restored_after_the_block_also_on_an_error_and_nested_blocks_keep_it(bert_tokenizer):
    model = _classifier(bert_tokenizer)
    layer = model.bert.encoder.layer[-1]
    with first_token_last_layer(model):
        with first_token_last_layer(model) as inner:
            assert inner and "forward" in vars(layer)
        assert "forward" in vars(layer)  # the inner block did not remove the outer one's
    assert "forward" not in vars(layer)
    with pytest.raises(RuntimeError, match="boom"), first_token_last_layer(model):
        raise RuntimeError("boom")
    assert "forward" not in vars(layer)
    with torch.no_grad():
        assert model(**_batch(bert_tokenizer)).logits.shape == (3, 2)


def test_other_heads_and_bb_last_layer_all_compute_every_position(bert_tokenizer, monkeypatch):
    encoder = load_encoder("random-bert-1x32", bert_tokenizer, 64)
    mean_head = SequenceClassifier(encoder, 2, "single_label_classification", pooling="mean", dropout=0.0)
    for model in (mean_head, encoder):  # pooling over every token / the bare encoder's hidden states
        assert not first_token_applies(model)
        with first_token_last_layer(model) as applied:
            assert not applied
    model = _classifier(bert_tokenizer)
    assert first_token_applies(model)
    monkeypatch.setenv("BB_LAST_LAYER", "all")
    assert last_layer_setting() == "all" and not first_token_applies(model)
    widths = _last_layer_widths(model)
    with torch.no_grad(), first_token_last_layer(model) as applied:
        model(**_batch(bert_tokenizer))
    assert not applied and widths[0] > 1
    monkeypatch.setenv("BB_LAST_LAYER", "cls")
    with pytest.raises(ValueError, match="BB_LAST_LAYER='cls'.*first_token, all"):
        last_layer_setting()


def test_roberta_and_electra_heads_read_the_first_token_too():
    from transformers import (
        ElectraConfig,
        ElectraForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    sizes = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    ids = torch.tensor([[0, 5, 6, 7, 2, 1, 1], [0, 8, 9, 10, 11, 12, 2]])
    mask = (ids != 1).long()
    for model in (RobertaForSequenceClassification(RobertaConfig(**sizes, pad_token_id=1)).eval(),
                  ElectraForSequenceClassification(ElectraConfig(**sizes, embedding_size=32)).eval()):
        with torch.no_grad():
            full = model(input_ids=ids, attention_mask=mask).logits
            with first_token_last_layer(model) as applied:
                first = model(input_ids=ids, attention_mask=mask).logits
        assert applied, type(model).__name__
        torch.testing.assert_close(first, full, atol=1e-6, rtol=1e-5)


def test_predict_is_unchanged_and_a_packed_objective_keeps_every_position(bert_tokenizer, monkeypatch):
    from bertbench.data.examples import Examples

    model = _classifier(bert_tokenizer)
    texts = ["one", "two words", "three words here", "a longer sentence of seven words"] * 3
    dataset = encode(Examples(text_a=texts, labels=[0, 1] * 6), bert_tokenizer, 32)
    widths = _last_layer_widths(model)
    fast = predict(model, dataset, PadCollator(bert_tokenizer), 4)
    assert set(widths) == {1}
    monkeypatch.setenv("BB_LAST_LAYER", "all")
    full = predict(model, dataset, PadCollator(bert_tokenizer), 4)
    np.testing.assert_allclose(fast, full, atol=1e-6)
    monkeypatch.delenv("BB_LAST_LAYER")

    seen = []

    @_last_layer_on_first_token
    def train(current, objective=None):
        seen.append("forward" in vars(current.bert.encoder.layer[-1]))

    train(model)
    train(model, objective=torch.nn.Identity())  # a packed row holds many examples: every position is needed
    assert seen == [True, False]


def test_the_device_column_names_it():
    cpu = torch.device("cpu")
    assert device_description(cpu, "no", "sdpa", first_token=True).endswith(
        " threads, sdpa attention, last layer on the first token")
    assert device_description(cpu, "no", "sdpa", first_token=True, checkpointing="selective").endswith(
        ", last layer on the first token, selective activation checkpointing")
