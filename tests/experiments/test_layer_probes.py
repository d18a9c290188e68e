"""Layer probes: parity with logistic regression, control tasks, the on-disk state cache, span probes, config."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from transformers import BertConfig, BertModel

from bertbench.data.examples import Examples
from bertbench.experiments import layer_probes as probes
from bertbench.experiments.layer_probes import (
    ProbeConfig,
    control_labels,
    fit_probe,
    fit_span_probe,
    majority_label,
    probe_logits,
)
from bertbench.experiments.layer_probes import states as probe_states


def synthetic(n=300, h=10, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, h)) * 1.5
    y = rng.integers(0, k, size=n)
    x = centres[y] + rng.normal(size=(n, h))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def test_probe_is_l2_logistic_regression_parity_with_sklearn():
    x, y = synthetic()
    decay = 0.05
    probe = fit_probe(x, y, 3, dropout=0.0, weight_decay=decay, epochs=20, optimizer="lbfgs", standardize=False)
    # sklearn minimises 0.5||W||^2 + C * sum(CE); ours mean(CE) + decay/2 ||W||^2  =>  C = 1 / (decay * N)
    reference = LogisticRegression(C=1.0 / (decay * len(y)), tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    ours = torch.softmax(torch.tensor(probe_logits(probe, x)), dim=-1).numpy()
    assert np.abs(ours - reference.predict_proba(x.numpy())).max() < 1e-3
    assert np.allclose(probe.linear.weight.detach().numpy(), reference.coef_, atol=1e-2)


def test_default_minibatch_probe_reaches_the_same_classifier():
    x, y = synthetic(seed=1)
    exact = fit_probe(x, y, 3, dropout=0.0, weight_decay=1e-3, epochs=20, optimizer="lbfgs")
    adam = fit_probe(x, y, 3, dropout=0.1, weight_decay=1e-3, epochs=60, lr=1e-2)
    agree = (probe_logits(exact, x).argmax(1) == probe_logits(adam, x).argmax(1)).mean()
    assert agree > 0.97
    assert (probe_logits(adam, x).argmax(1) == y.numpy()).mean() > 0.9


def test_standardisation_is_stored_in_the_probe():
    x, y = synthetic(seed=2)
    probe = fit_probe(x * 100 + 7, y, 3, dropout=0.0, epochs=5, optimizer="lbfgs")
    assert torch.allclose(probe.mean, (x * 100 + 7).mean(0)) and torch.allclose(probe.std, (x * 100 + 7).std(0))
    assert (probe_logits(probe, x * 100 + 7).argmax(1) == y.numpy()).mean() > 0.9


def test_majority_label_breaks_ties_towards_the_smallest():
    assert majority_label([1, 1, 0, 2]) == 1
    assert majority_label([2, 0, 2, 0]) == 0


def test_control_labels_are_a_fixed_function_of_the_first_word():
    train = Examples(["The film was great", "the cast was bad", "A mess", "a delight"], labels=[1, 0, 0, 1])
    dev = Examples(["the plot", "a joy", "unseen word here"], labels=[0, 1, 1])
    dist = np.array([0.5, 0.5])
    train_control = control_labels(train, "word_type", 2, dist, seed=0)
    dev_control = control_labels(dev, "word_type", 2, dist, seed=0)
    assert train_control[0] == train_control[1] == dev_control[0]  # "the"
    assert train_control[2] == train_control[3] == dev_control[1]  # "a"
    assert train_control == control_labels(train, "word_type", 2, dist, seed=0)  # reproducible
    many = Examples([f"w{i} rest" for i in range(2000)], labels=[0] * 2000)
    drawn = np.array(control_labels(many, "word_type", 3, np.array([0.6, 0.3, 0.1]), seed=0))
    assert np.allclose(np.bincount(drawn, minlength=3) / 2000, [0.6, 0.3, 0.1], atol=0.04)
    per_example = control_labels(many, "example", 2, dist, seed=0)
    assert 0.4 < np.mean(per_example) < 0.6
    with pytest.raises(ValueError, match="control"):
        control_labels(train, "sentence", 2, dist, seed=0)


@pytest.fixture
def saved_encoder(tmp_path, bert_tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(bert_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, pad_token_id=bert_tokenizer.pad_token_id)
    folder = tmp_path / "encoder"
    BertModel(config).save_pretrained(folder)
    bert_tokenizer.save_pretrained(folder)
    return folder


TEXTS = ["a short one", "a considerably longer sentence with more words in it", "mid length text", "x"]


def test_states_of_every_layer_in_example_order_and_cached(saved_encoder, bert_tokenizer, monkeypatch):
    examples = Examples(TEXTS, labels=[0, 1, 0, 1])
    states = probes.sentence_states(str(saved_encoder), bert_tokenizer, examples, max_len=32, batch_size=2)
    assert states["cls"].shape == states["mean"].shape == (3, 4, 32)  # embeddings + 2 layers, 4 texts, H
    model = BertModel.from_pretrained(saved_encoder).eval()
    with torch.no_grad():
        for i, text in enumerate(TEXTS):  # one text at a time, no padding: the reference
            hidden = model(**bert_tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states
            for layer, h in enumerate(hidden):
                assert torch.allclose(states["cls"][layer, i], h[0, 0], atol=1e-5)
                assert torch.allclose(states["mean"][layer, i], h[0].mean(0), atol=1e-5)
    # second call: read from disk, the model is never loaded
    monkeypatch.setattr(probe_states, "load_frozen", lambda *a, **k: pytest.fail("states recomputed"))
    again = probes.sentence_states(str(saved_encoder), bert_tokenizer, examples, max_len=32, batch_size=2)
    assert all(torch.equal(states[key], again[key]) for key in states)


def test_changed_weights_are_not_served_from_the_cache(saved_encoder, bert_tokenizer):
    examples = Examples(TEXTS[:2], labels=[0, 1])
    before = probes.sentence_states(str(saved_encoder), bert_tokenizer, examples, max_len=32)
    model = BertModel.from_pretrained(saved_encoder)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(2)
    model.save_pretrained(saved_encoder)
    after = probes.sentence_states(str(saved_encoder), bert_tokenizer, examples, max_len=32)
    assert not torch.allclose(before["mean"][0], after["mean"][0])


def test_span_probe_learns_where_answers_start_and_end():
    torch.manual_seed(0)
    windows, width, hidden = 64, 12, 8
    states = torch.randn(windows, width, hidden)
    starts = torch.randint(1, 8, (windows,))
    ends = starts + torch.randint(0, 3, (windows,))
    states[torch.arange(windows), starts, 0] += 4.0  # the start token is marked in dimension 0,
    states[torch.arange(windows), ends, 1] += 4.0  # the end token in dimension 1
    mask = torch.ones(windows, width, dtype=torch.bool)
    mask[:, -1] = False  # padding is never chosen
    probe = fit_span_probe(states, mask, starts, ends, dropout=0.0, epochs=60, lr=1e-2, batch_size=16)
    start_logits, end_logits = probes.span_logits(probe, states, mask)
    assert (start_logits.argmax(1) == starts.numpy()).mean() > 0.95
    assert (end_logits.argmax(1) == ends.numpy()).mean() > 0.95
    assert (start_logits[:, -1] < -1e30).all()


def test_token_states_are_cached_one_file_per_layer(saved_encoder, bert_tokenizer, tmp_path, monkeypatch):
    import json

    from safetensors.torch import load_file

    from bertbench.data import squad

    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{
        "context": "The Normans gave their name to Normandy, a region in France.",
        "qas": [{"id": "q1", "question": "Who gave their name to Normandy?", "is_impossible": False,
                 "answers": [{"text": "The Normans", "answer_start": 0}]},
                {"id": "q2", "question": "Who ate the moon?", "is_impossible": True, "answers": []}]}]}]}
    path = tmp_path / "tiny_squad.json"
    path.write_text(json.dumps(data))
    examples = squad.read_squad(path)
    features = squad.build_features(examples, bert_tokenizer, max_len=48, doc_stride=8)
    paths = probes.token_states(str(saved_encoder), bert_tokenizer, features, batch_size=1)
    assert len(paths) == 3 and len({p.name for p in paths}) == 3
    states = load_file(str(paths[1]))["states"]
    assert states.shape == (len(features), max(len(ids) for ids in features.input_ids), 32)
    assert states.dtype == torch.float16
    monkeypatch.setattr(probe_states, "load_frozen", lambda *a, **k: pytest.fail("token states recomputed"))
    assert probes.token_states(str(saved_encoder), bert_tokenizer, features) == paths
    mask = probes.context_mask(features, states.shape[1])
    assert mask[:, 0].all()  # the no-answer position
    for row, offsets in enumerate(features.offsets):
        assert mask[row, 1:len(offsets)].tolist() == [o is not None for o in offsets[1:]]


@pytest.mark.parametrize("changes, message", [
    ({"poolings": ("max",)}, "poolings"), ({"control": "random"}, "control"),
    ({"squad_train": "a.json"}, "set both"), ({"probe_dropout": 1.5}, "probe_dropout"),
    ({"finetuned": "some/folder", "tasks": ("sst2", "cola")}, "one task"), ({"tasks": ("nope",)}, "nope"),
])
def test_config_rejects_bad_values_when_built(changes, message):
    with pytest.raises((ValueError, KeyError), match=message):
        ProbeConfig.from_env({}, **changes)


def test_the_fine_tuned_checkpoint_is_the_glue_notebooks_run():
    """Probing 'minilm fine-tuned on SST-2' means notebook 03's checkpoint of that run (same run id)."""
    from bertbench.experiments.glue_finetune import GlueConfig, run_id_for

    cfg = ProbeConfig.from_env({})
    glue = probes.finetune_config(cfg, "sst2", "minilm")
    same = GlueConfig.from_env({}, tasks=("sst2",), seeds=(0,), max_train_examples=0, epochs=2)
    assert run_id_for(glue, "sst2", 0) == run_id_for(same, "sst2", 0)
    assert glue.keep_checkpoints and glue.model == "minilm"
