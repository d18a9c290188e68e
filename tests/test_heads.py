"""Heads and pooling: parity with direct computations, shapes, save/reload, the multitask router, the bi-encoder."""

import math

import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel

from bertbench.encoding import encode
from bertbench.heads import (
    FUSIONS,
    HeadModel,
    MultitaskBatchSampler,
    MultitaskModel,
    PairCollator,
    PairDataset,
    SequenceClassifier,
    TaskCollator,
    TaskDataset,
    TwoInputModel,
    pool,
)

HIDDEN = 48  # deliberately not 768: every head must size itself from the encoder


def tiny_encoder(tokenizer, seed=0, pooler=True):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=96, pad_token_id=tokenizer.pad_token_id, max_position_embeddings=128)
    return BertModel(config, add_pooling_layer=pooler)


def batch_of(tokenizer, texts):
    return dict(tokenizer(texts, padding=True, return_tensors="pt"))


TEXTS = ["the cat sat", "a much longer sentence about a dog on a mat", "ok"]


def test_pooling_matches_a_direct_loop_under_right_and_left_padding():
    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 5)
    lengths = [6, 3, 1]
    for left in (False, True):
        mask = torch.zeros(3, 6, dtype=torch.long)
        for row, n in enumerate(lengths):
            mask[row, slice(6 - n, 6) if left else slice(0, n)] = 1
        for how in ("cls", "mean", "max", "sum"):
            got = pool(hidden, mask, how)
            for row, n in enumerate(lengths):
                real = hidden[row, 6 - n:] if left else hidden[row, :n]  # (n, 5)
                want = {"cls": real[0], "mean": real.mean(0), "max": real.max(0).values, "sum": real.sum(0)}[how]
                assert torch.allclose(got[row], want, atol=1e-6), (how, left, row)


def test_pooler_pooling_needs_a_pooler(bert_tokenizer):
    with pytest.raises(ValueError, match="no pooler"):
        pool(torch.zeros(1, 2, 3), torch.ones(1, 2), "pooler", pooler_output=None)
    model = SequenceClassifier(tiny_encoder(bert_tokenizer, pooler=False), num_labels=2, pooling="pooler")
    with pytest.raises(ValueError, match="no pooler"):
        model(**batch_of(bert_tokenizer, TEXTS))


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max", "sum"])
@pytest.mark.parametrize("problem, num_labels", [("single_label_classification", 3), ("regression", 1),
                                                 ("multi_label_classification", 4)])
def test_sequence_classifier_shapes_loss_and_reload(bert_tokenizer, tmp_path, pooling, problem, num_labels):
    model = SequenceClassifier(tiny_encoder(bert_tokenizer), num_labels, problem, pooling=pooling)
    batch = batch_of(bert_tokenizer, TEXTS)
    labels = {"single_label_classification": torch.tensor([0, 2, 1]), "regression": torch.tensor([0.5, 1.0, 4.0]),
              "multi_label_classification": torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]])}[problem]
    out = model(**batch, labels=labels)
    assert out.logits.shape == (3, num_labels) and out.loss.ndim == 0 and torch.isfinite(out.loss)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["encoder", "head.safetensors", "head_config.json"]
    assert not list((tmp_path / "m").rglob("*.bin")) and not list((tmp_path / "m").rglob("*.pt"))
    again = HeadModel.from_pretrained(tmp_path / "m")
    assert type(again) is SequenceClassifier
    model.eval()
    again.eval()
    assert torch.allclose(model(**batch).logits, again(**batch).logits, atol=1e-6)
    # the encoder folder is a plain transformers checkpoint
    assert isinstance(AutoModel.from_pretrained(tmp_path / "m" / "encoder"), BertModel)


def test_fresh_head_loss_is_about_log_k_and_one_batch_can_be_overfit(bert_tokenizer):
    model = SequenceClassifier(tiny_encoder(bert_tokenizer), num_labels=5, dropout=0.0)
    batch = batch_of(bert_tokenizer, TEXTS * 2)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    model.eval()
    assert abs(float(model(**batch, labels=labels).loss.detach()) - math.log(5)) < 0.25
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        loss = model(**batch, labels=torch.tensor([0, 1, 2, 0, 1, 2])).loss
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.05


def test_ignored_labels_do_not_count(bert_tokenizer):
    model = SequenceClassifier(tiny_encoder(bert_tokenizer), num_labels=3).eval()
    batch = batch_of(bert_tokenizer, TEXTS)
    partial = model(**batch, labels=torch.tensor([2, -100, 1])).loss
    logits = model(**batch).logits
    direct = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([2, 1]))
    assert torch.allclose(partial, direct, atol=1e-6)


def test_binary_task_as_one_class_under_cross_entropy_is_refused(bert_tokenizer):
    with pytest.raises(ValueError, match="two classes"):
        SequenceClassifier(tiny_encoder(bert_tokenizer), num_labels=1)
    with pytest.raises(ValueError, match="two classes"):
        MultitaskModel(tiny_encoder(bert_tokenizer), {"sst2": {"num_labels": 1,
                                                               "problem_type": "single_label_classification"}})


def test_head_width_follows_the_encoder(bert_tokenizer):
    for fusion, factor in (("mean", 1), ("max", 1), ("concat", 2), ("concat_diff", 3)):
        model = TwoInputModel(tiny_encoder(bert_tokenizer), 2, fusion=fusion)
        assert model.classifier.out.in_features == factor * HIDDEN
    assert SequenceClassifier(tiny_encoder(bert_tokenizer), 2).classifier.out.in_features == HIDDEN


# ---------------------------------------------------------------------------------------------------------------------
# Multitask


TASKS = {"sst2": {"num_labels": 2, "problem_type": "single_label_classification"},
         "mnli": {"num_labels": 3, "problem_type": "single_label_classification"},
         "stsb": {"num_labels": 1, "problem_type": "regression"}}


def task_sets(tokenizer):
    from bertbench.data.examples import Examples

    sets = {}
    for name, size in (("sst2", 23), ("mnli", 9), ("stsb", 14)):
        texts = [f"{name} example number {i} " + "word " * (i % 7) for i in range(size)]
        labels = [float(i % 5) for i in range(size)] if name == "stsb" else [i % TASKS[name]["num_labels"]
                                                                             for i in range(size)]
        sets[name] = encode(Examples(texts, None, labels, [f"{name}-{i}" for i in range(size)]), tokenizer, 32)
    return sets


def test_multitask_router_never_sends_a_batch_to_the_wrong_head(bert_tokenizer):
    dataset = TaskDataset(task_sets(bert_tokenizer))
    model = MultitaskModel(tiny_encoder(bert_tokenizer), TASKS).eval()
    fired: list[str] = []
    for name, head in model.heads.items():
        head.register_forward_hook(lambda module, args, out, name=name: fired.append(name))
    sampler = MultitaskBatchSampler(dataset, batch_size=4, seed=0)
    collate = TaskCollator(bert_tokenizer, regression_tasks=["stsb"])
    orders = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        seen, tasks_in_order = [], []
        for indices in sampler:
            owners = {dataset.locate(i)[0] for i in indices}
            assert len(owners) == 1, f"batch {indices} mixes {owners}"
            batch = collate([dataset[i] for i in indices])
            assert batch["task"] in owners
            fired.clear()
            out = model(**batch)
            assert fired == [batch["task"]], f"batch of {batch['task']} reached heads {fired}"
            assert out.logits.shape == (len(indices), TASKS[batch["task"]]["num_labels"])
            assert batch["labels"].dtype == (torch.float if batch["task"] == "stsb" else torch.long)
            seen += indices
            tasks_in_order.append(batch["task"])
        assert sorted(seen) == list(range(len(dataset)))  # every example of every task once per epoch
        assert len(set(tasks_in_order)) == 3
        orders.append(tasks_in_order)
    assert orders[0] != orders[1]  # re-mixed each epoch


def test_multitask_refuses_mixed_batches_and_unknown_tasks(bert_tokenizer):
    dataset = TaskDataset(task_sets(bert_tokenizer))
    collate = TaskCollator(bert_tokenizer)
    with pytest.raises(ValueError, match="mixes tasks"):
        collate([dataset[0], dataset[len(dataset) - 1]])
    model = MultitaskModel(tiny_encoder(bert_tokenizer), TASKS)
    with pytest.raises(KeyError, match="qnli"):
        model(**batch_of(bert_tokenizer, TEXTS), task="qnli")


def test_multitask_save_reload_keeps_every_head(bert_tokenizer, tmp_path):
    model = MultitaskModel(tiny_encoder(bert_tokenizer), TASKS).eval()
    model.save_pretrained(tmp_path / "mt")
    again = MultitaskModel.from_pretrained(tmp_path / "mt").eval()
    batch = batch_of(bert_tokenizer, TEXTS)
    for name in TASKS:
        assert torch.allclose(model(**batch, task=name).logits, again(**batch, task=name).logits, atol=1e-6)
    with pytest.raises(ValueError, match="not a SequenceClassifier"):
        SequenceClassifier.from_pretrained(tmp_path / "mt")


def test_multitask_batches_train_through_the_loop(bert_tokenizer, tmp_path):
    """The shared loop (accelerate data loader, fit, best-epoch reload) carries the task name through."""
    from torch.utils.data import DataLoader

    from bertbench.train import TrainSettings, fit

    dataset = TaskDataset(task_sets(bert_tokenizer))
    loader = DataLoader(dataset, batch_sampler=MultitaskBatchSampler(dataset, 8, seed=0),
                        collate_fn=TaskCollator(bert_tokenizer, ["stsb"]))
    model = MultitaskModel(tiny_encoder(bert_tokenizer), TASKS)
    model, result = fit(model, loader, None, "score", TrainSettings(epochs=2, lr=1e-3), tmp_path / "best")
    assert isinstance(model, MultitaskModel) and len(result.history) == 2
    assert result.examples_seen == 2 * len(dataset)


# ---------------------------------------------------------------------------------------------------------------------
# Two-input (bi-encoder)


def pair_batch(tokenizer, first, second):
    from bertbench.data.examples import Examples

    side = lambda texts: encode(Examples(texts, None, [0, 1, 0][:len(texts)]), tokenizer, 32)  # noqa: E731
    dataset = PairDataset(side(first), side(second))
    return PairCollator(tokenizer)([dataset[i] for i in range(len(dataset))])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_two_input_model_shapes_reload_and_symmetry(bert_tokenizer, tmp_path, fusion):
    model = TwoInputModel(tiny_encoder(bert_tokenizer), 2, fusion=fusion).eval()
    forward = pair_batch(bert_tokenizer, TEXTS, list(reversed(TEXTS)))
    swapped = pair_batch(bert_tokenizer, list(reversed(TEXTS)), TEXTS)
    out = model(**forward)
    assert out.logits.shape == (3, 2) and out.loss is not None
    symmetric = torch.allclose(out.logits, model(**swapped).logits, atol=1e-5)
    assert symmetric == (fusion in ("mean", "max"))  # concatenation keeps the order of the two inputs
    model.save_pretrained(tmp_path / "bi")
    again = HeadModel.from_pretrained(tmp_path / "bi").eval()
    assert again.fusion == fusion
    assert torch.allclose(out.logits, again(**forward).logits, atol=1e-6)


def test_pair_collator_pads_each_side_separately_with_the_tokenizers_pad(roberta_tokenizer):
    batch = pair_batch(roberta_tokenizer, ["the cat", "the cat sat on the mat"], ["a dog", "a"])
    assert batch["input_ids"].shape[1] != batch["input_ids_b"].shape[1]
    for side in ("", "_b"):
        ids, mask = batch[f"input_ids{side}"], batch[f"attention_mask{side}"]
        assert bool(((ids == roberta_tokenizer.pad_token_id) == (mask == 0)).all())
        assert bool((ids[:, 0] == roberta_tokenizer.cls_token_id).all())


def test_two_input_model_reads_the_two_sides_separately(bert_tokenizer):
    """The bi-encoder's vector of a text does not depend on the other text (unlike a cross-encoder)."""
    model = TwoInputModel(tiny_encoder(bert_tokenizer), 2, fusion="concat").eval()
    first = pair_batch(bert_tokenizer, ["the cat sat"], ["a dog"])
    second = pair_batch(bert_tokenizer, ["the cat sat"], ["something else entirely here"])
    u1 = model.represent(first["input_ids"], first["attention_mask"], first.get("token_type_ids"), "mean")
    u2 = model.represent(second["input_ids"], second["attention_mask"], second.get("token_type_ids"), "mean")
    assert torch.allclose(u1, u2, atol=1e-6)

