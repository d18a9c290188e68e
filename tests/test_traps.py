"""One test per correctness trap of the field that applies to GLUE fine-tuning (see DEVELOPERS.md)."""

import math

import numpy as np
import pytest
import torch

import bertbench as bb
from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode
from bertbench.models import build_classifier, self_check, special_token_ids

PAIRS = bb.Examples(["the cat sat on the mat", "a dog", "the movie was very good"],
                    ["a cat is happy", "the dog sat", "the film was bad"], [0, 1, 0])


@pytest.mark.parametrize("which", ["bert_tokenizer", "roberta_tokenizer"])
def test_special_tokens_come_from_the_tokenizer_not_hard_coded_ids(which, request):
    tokenizer = request.getfixturevalue(which)
    ids = special_token_ids(tokenizer)
    batch = PadCollator(tokenizer)([encode(PAIRS, tokenizer, 32)[i] for i in range(3)])
    for row in range(3):
        real = batch["input_ids"][row][batch["attention_mask"][row].bool()]
        assert real[0] == ids["cls"] and real[-1] == ids["sep"]
        assert int((real == ids["sep"]).sum()) >= 2  # pair: two segments
    if which == "roberta_tokenizer":
        assert (ids["cls"], ids["sep"], ids["pad"]) == (0, 2, 1)  # not 101 / 102 / 0
        assert 101 not in batch["input_ids"] and 102 not in batch["input_ids"]
    self_check(tokenizer, batch, text_pair=True)


@pytest.mark.parametrize("which", ["bert_tokenizer", "roberta_tokenizer"])
def test_attention_mask_is_zero_exactly_on_padding_never_the_pad_id(which, request):
    tokenizer = request.getfixturevalue(which)
    dataset = encode(PAIRS, tokenizer, 32)
    batch = PadCollator(tokenizer)([dataset[i] for i in range(3)])
    mask = batch["attention_mask"]
    assert set(mask.unique().tolist()) <= {0, 1}
    for row, length in enumerate(dataset.lengths):
        assert mask[row, :length].eq(1).all() and mask[row, length:].eq(0).all()
        assert batch["input_ids"][row, length:].eq(tokenizer.pad_token_id).all()


def test_self_check_rejects_the_known_bugs(bert_tokenizer):
    dataset = encode(PAIRS, bert_tokenizer, 32)
    good = PadCollator(bert_tokenizer)([dataset[i] for i in range(3)])
    ids = special_token_ids(bert_tokenizer)

    with pytest.raises(AssertionError, match="not 0 on padding"):
        self_check(bert_tokenizer, {**good, "attention_mask": torch.ones_like(good["attention_mask"])}, text_pair=True)

    sep_as_mask = good["input_ids"].clone()
    last = good["attention_mask"].sum(1) - 1
    sep_as_mask[torch.arange(3), last] = ids["mask"]
    with pytest.raises(AssertionError, match="not SEP"):
        self_check(bert_tokenizer, {**good, "input_ids": sep_as_mask}, text_pair=True)

    hard_coded = good["input_ids"].clone()
    hard_coded[:, 0] = ids["sep"]
    with pytest.raises(AssertionError, match="not CLS"):
        self_check(bert_tokenizer, {**good, "input_ids": hard_coded}, text_pair=True)

    with pytest.raises(AssertionError, match="vocabulary size"):
        self_check(bert_tokenizer, good, text_pair=True, vocab_size=100)


def test_pad_id_used_as_mask_value_is_caught(roberta_tokenizer):
    """torch_long_bert's bug: the attention mask padded with the pad id (1 for RoBERTa), so padding is attended."""
    dataset = encode(PAIRS, roberta_tokenizer, 32)
    good = PadCollator(roberta_tokenizer)([dataset[i] for i in range(3)])
    buggy = good["attention_mask"].masked_fill(good["attention_mask"] == 0, roberta_tokenizer.pad_token_id)
    with pytest.raises(AssertionError, match="not 0 on padding"):
        self_check(roberta_tokenizer, {**good, "attention_mask": buggy}, text_pair=True)


def test_model_uses_the_attention_mask_padding_does_not_change_logits(bert_tokenizer):
    torch.manual_seed(0)
    model, _ = build_classifier("random-bert-2x32", bert_tokenizer, ("a", "b"))
    model.eval()
    dataset = encode(PAIRS, bert_tokenizer, 32)
    collate = PadCollator(bert_tokenizer)
    with torch.no_grad():
        alone = model(**{k: v for k, v in collate([dataset[1]]).items() if k != "labels"}).logits
        padded = model(**{k: v for k, v in collate([dataset[1], dataset[2]]).items() if k != "labels"}).logits[0]
    assert dataset.lengths[2] > dataset.lengths[1]
    torch.testing.assert_close(alone[0], padded, atol=1e-5, rtol=1e-5)


def test_training_batches_are_shuffled_differently_every_epoch():
    lengths = [5 + (i % 7) for i in range(200)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=0)
    first = [i for batch in sampler for i in batch]
    sampler.set_epoch(1)
    second = [i for batch in sampler for i in batch]
    assert sorted(first) == list(range(200)) and sorted(second) == list(range(200))
    assert first != second and first != list(range(200))
    # length grouping: batches hold similar lengths, so far less padding than random batches
    batches = list(sampler)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 2
    assert list(LengthGroupedBatchSampler(lengths, 8, seed=0)) == list(LengthGroupedBatchSampler(lengths, 8, seed=0))


def test_length_grouped_batches_do_not_sweep_from_long_to_short():
    """The HF Trainer's ``group_by_length`` sorts each mega-batch longest-first and keeps that batch order: an epoch
    is a few long-to-short sweeps, ending on the shortest inputs (longest first so that an out-of-memory error comes
    at once: transformers#13794). Here the batch order is shuffled after grouping."""
    import statistics

    lengths = [1 + (i * 7919) % 97 for i in range(4000)]
    batches = list(LengthGroupedBatchSampler(lengths, batch_size=32, seed=0, group_factor=50))
    longest = [max(lengths[i] for i in batch) for batch in batches]
    # a sweep would correlate batch position and length strongly (about -0.9 per mega-batch); shuffled: near 0
    assert abs(statistics.correlation(range(len(longest)), longest)) < 0.2
    tail = statistics.mean(longest[-len(longest) // 10:])
    assert tail > 0.75 * statistics.mean(longest)  # the epoch does not end on the shortest inputs (a sweep: 0.54)


@pytest.mark.parametrize(("name", "width"), [("random-bert-2x32", 32), ("random-bert-1x48", 48), ("minilm", 384)])
def test_head_width_follows_the_encoder_not_768(bert_tokenizer, name, width):
    model, _ = build_classifier(name, bert_tokenizer, ("neg", "pos"))
    assert model.classifier.in_features == width == model.config.hidden_size


def test_binary_task_has_two_logits_under_cross_entropy_and_regression_one(bert_tokenizer):
    dataset = encode(PAIRS, bert_tokenizer, 32)
    binary, _ = build_classifier("random-bert-2x32", bert_tokenizer, bb.get_task("rte").label_names)
    batch = PadCollator(bert_tokenizer)([dataset[i] for i in range(3)])
    out = binary(**batch)
    assert out.logits.shape == (3, 2) and binary.config.problem_type == "single_label_classification"
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, batch["labels"]))

    regression, _ = build_classifier("random-bert-2x32", bert_tokenizer, (), regression=True)
    reg_batch = PadCollator(bert_tokenizer, regression=True)([{**dataset[i], "labels": 2.5} for i in range(3)])
    out = regression(**reg_batch)
    assert out.logits.shape == (3, 1) and reg_batch["labels"].dtype == torch.float
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), reg_batch["labels"]))


def test_loss_at_init_is_about_ln_k(bert_tokenizer):
    torch.manual_seed(0)
    examples = bb.Examples([f"the cat sat {i}" for i in range(64)], labels=[i % 3 for i in range(64)])
    model, _ = build_classifier("random-bert-2x64", bert_tokenizer, ("a", "b", "c"))
    model.eval()
    batch = PadCollator(bert_tokenizer)([encode(examples, bert_tokenizer, 32)[i] for i in range(64)])
    with torch.no_grad():
        loss = model(**batch).loss
    assert abs(float(loss) - math.log(3)) < 0.1


def test_predictions_come_back_in_the_dataset_order_though_batches_are_length_sorted(bert_tokenizer):
    """Prediction batches are sorted by length (least padding); the outputs must come back in the dataset's order,
    or every metric pairs a prediction with another example's label (the Trainer's length-grouped ``predict`` does
    not restore it: ``test_bench.py::test_trainer_dev_scores_pair_each_prediction_with_its_own_label``)."""
    from types import SimpleNamespace

    from bertbench.train import predict

    class LengthEcho(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Linear(1, 1)

        def forward(self, input_ids, attention_mask, **_):
            return SimpleNamespace(logits=attention_mask.sum(-1, keepdim=True).float())

    texts = [" ".join(["word"] * (1 + (i * 7) % 13)) for i in range(40)]
    dataset = encode(bb.Examples(texts, labels=[0] * 40), bert_tokenizer, 32)
    assert sorted(dataset.lengths) != list(dataset.lengths)  # the batches are reordered
    logits = predict(LengthEcho(), dataset, PadCollator(bert_tokenizer), batch_size=8)
    assert logits[:, 0].astype(int).tolist() == list(dataset.lengths)


def test_cpu_prediction_batches_hold_at_most_a_token_budget_and_give_the_same_outputs(bert_tokenizer, monkeypatch):
    """On a CPU long inputs are predicted in smaller batches (``train.CPU_PREDICT_TOKENS`` padded tokens at most,
    never fewer than one example), short ones at the full batch size, and the outputs are the same as unsplit, in
    the dataset's order."""
    from types import SimpleNamespace

    from bertbench import train
    from bertbench.encoding import SortedBatchSampler

    lengths = [3, 30, 4, 31, 5, 32, 6, 29]
    batches = list(SortedBatchSampler(lengths, batch_size=4, max_tokens=64))
    assert batches == [[0, 2, 4, 6], [7, 1], [3, 5]]  # 4 short (4 x 6 = 24 tokens), then 2 x 30 and 2 x 32
    assert list(SortedBatchSampler(lengths, 4)) == [[0, 2, 4, 6], [7, 1, 3, 5]]  # no budget: by count alone
    assert list(SortedBatchSampler([50, 70], 4, max_tokens=64)) == [[0], [1]]  # one example even over the budget

    seen = []

    class LengthEcho(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Linear(1, 1)

        def forward(self, input_ids, attention_mask, **_):
            seen.append(tuple(input_ids.shape))
            return SimpleNamespace(logits=attention_mask.sum(-1, keepdim=True).float())

    texts = [" ".join(["word"] * (1 + (i * 7) % 13)) for i in range(40)]
    dataset = encode(bb.Examples(texts, labels=[0] * 40), bert_tokenizer, 32)
    monkeypatch.setattr(train, "CPU_PREDICT_TOKENS", 10**9)
    whole = train.predict(LengthEcho(), dataset, PadCollator(bert_tokenizer), batch_size=16)
    assert max(rows for rows, _ in seen) == 16
    seen.clear()
    monkeypatch.setattr(train, "CPU_PREDICT_TOKENS", 64)
    split = train.predict(LengthEcho(), dataset, PadCollator(bert_tokenizer), batch_size=16)
    assert all(rows * width <= 64 for rows, width in seen) and len(seen) > 3
    assert np.array_equal(split, whole) and split[:, 0].astype(int).tolist() == list(dataset.lengths)
