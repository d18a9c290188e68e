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


def _squad_features(tmp_path, tokenizer, questions: int = 2, max_len: int = 48, stride: int = 8):
    """Features of a small SQuAD 2.0 file: ``questions`` copies of an answerable and an unanswerable question about
    a long paragraph (several windows each)."""
    import json

    from support import BRIDGES, _answer

    from bertbench.data import squad

    qas = []
    for i in range(questions):
        qas.append({"id": f"a{i}", "question": f"When was bridge {i} finished?", "is_impossible": False,
                    "answers": [_answer(BRIDGES, "1870")]} if i % 2 == 0 else
                   {"id": f"u{i}", "question": f"Who ate the moon {i}?", "is_impossible": True, "answers": []})
    path = tmp_path / f"squad-{questions}.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": BRIDGES, "qas": qas}]}]}))
    examples = squad.read_squad(path)
    return examples, squad.build_features(examples, tokenizer, max_len=max_len, doc_stride=stride)


def test_token_states_stream_one_memory_mapped_file_per_layer(saved_encoder, bert_tokenizer, tmp_path, monkeypatch):
    from bertbench.experiments.layer_probes import token_store

    _, features = _squad_features(tmp_path, bert_tokenizer, questions=2)
    states = probes.token_states(str(saved_encoder), bert_tokenizer, features, batch_size=3)
    width = max(len(ids) for ids in features.input_ids)
    assert (states.layers, states.windows, states.width, states.hidden) == (3, len(features), width, 32)
    assert len({p.name for p in states.folder.glob("layer*.npy")}) == 3 and not states.has_head_logits
    layer = states.layer(1)
    assert isinstance(layer, np.memmap) and layer.dtype == np.float16 and layer.shape == (len(features), width, 32)
    model = BertModel.from_pretrained(saved_encoder).eval()
    with torch.no_grad():  # one window at a time, no padding: the reference
        for row in (0, len(features) - 1):
            inputs = {"input_ids": torch.tensor([features.input_ids[row]]),
                      "token_type_ids": torch.tensor([features.token_type_ids[row]])}
            hidden = model(**inputs, output_hidden_states=True).hidden_states
            length = len(features.input_ids[row])
            for index, reference in enumerate(hidden):
                stored = torch.from_numpy(np.array(states.layer(index)[row])).float()  # (T, H)
                assert torch.allclose(stored[:length], reference[0], atol=2e-2, rtol=1e-2)
                assert not stored[length:].any()  # zeros on padding
    # second call: read from disk, the model is never loaded
    monkeypatch.setattr(token_store, "load_frozen", lambda *a, **k: pytest.fail("token states recomputed"))
    assert probes.token_states(str(saved_encoder), bert_tokenizer, features) == states
    mask = probes.context_mask(features, states.width)
    assert mask[:, 0].all()  # the no-answer position
    for row, offsets in enumerate(features.offsets):
        assert mask[row, 1:len(offsets)].tolist() == [o is not None for o in offsets[1:]]


def test_span_probe_read_in_chunks_is_the_probe_trained_in_memory(saved_encoder, bert_tokenizer, tmp_path):
    """The chunks decide when windows are read, never which mini-batches are drawn: same weights, same logits."""
    _, features = _squad_features(tmp_path, bert_tokenizer, questions=2)
    states = probes.token_states(str(saved_encoder), bert_tokenizer, features, batch_size=4)
    assert states.windows > 7  # more than a chunk
    mask = probes.context_mask(features, states.width)
    gold = torch.tensor(features.start_positions), torch.tensor(features.end_positions)
    layer = states.layer(2)
    window = states.width * states.hidden * 2
    kwargs = dict(epochs=3, lr=1e-2, batch_size=3, seed=1, device="cpu")
    in_memory = fit_span_probe(torch.from_numpy(np.array(layer)), mask, *gold, **kwargs)
    chunked = fit_span_probe(layer, mask, *gold, max_chunk_bytes=7 * window, **kwargs)  # 2 mini-batches a chunk
    # the biases are left out: a bias shared by every position of a softmax gets no gradient but rounding noise,
    # which Adam scales up to full steps; it shifts every logit of a window alike and changes no prediction
    for name, value in in_memory.state_dict().items():
        if not name.endswith("bias"):
            assert torch.allclose(value, chunked.state_dict()[name], atol=1e-6), name
    full = probes.span_logits(in_memory, torch.from_numpy(np.array(layer)), mask, device="cpu")
    streamed = probes.span_logits(chunked, layer, mask, batch_size=2, device="cpu", max_chunk_bytes=3 * window)
    allowed = mask.numpy()
    for ours, theirs, probe_a, probe_b in zip(full, streamed, (in_memory.start, in_memory.end),
                                              (chunked.start, chunked.end), strict=True):
        shift = (probe_a.bias - probe_b.bias).item()
        assert np.allclose(ours[allowed] - shift, theirs[allowed], atol=1e-4)


def _memory_while(run):
    """``run()``'s result and (largest single torch CPU allocation, peak live torch CPU bytes, peak traced
    Python/numpy bytes) while it ran: torch's profiler records every allocation and free of the CPU allocator,
    tracemalloc every numpy buffer and Python object (nothing is sampled or timed)."""
    import tracemalloc

    from torch.profiler import ProfilerActivity, profile

    tracemalloc.start()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = run()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    changes = sorted((event.time_range.start, event.self_cpu_memory_usage) for event in prof.events()
                     if event.self_cpu_memory_usage)
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return result, (max(change for _, change in changes), peak, traced_peak)


def test_span_probe_memory_does_not_grow_with_the_number_of_windows(saved_encoder, bert_tokenizer, tmp_path):
    """Writing the token states, then training and scoring a span probe on them, for N and 4N windows: the largest
    block and the peak stay those of one batch / one chunk. Holding the states would add ``window`` bytes per layer
    and window; what may grow is per-window bookkeeping and the (F, T) logits and masks, H times smaller."""
    model = BertModel.from_pretrained(saved_encoder).eval()
    measured = []
    for questions in (2, 8):
        _, features = _squad_features(tmp_path, bert_tokenizer, questions=questions, max_len=64, stride=16)
        states, writing = _memory_while(lambda features=features: probes.token_states(
            str(saved_encoder), bert_tokenizer, features, batch_size=4, model=model))
        mask = probes.context_mask(features, states.width)
        gold = torch.tensor(features.start_positions), torch.tensor(features.end_positions)
        chunk = 8 * states.width * states.hidden * 2  # 8 windows of float16 states

        def probing(states=states, mask=mask, gold=gold, chunk=chunk):
            probe = fit_span_probe(states.layer(2), mask, *gold, epochs=1, batch_size=4, device="cpu",
                                   max_chunk_bytes=chunk)
            return probes.span_logits(probe, states.layer(2), mask, batch_size=4, device="cpu", max_chunk_bytes=chunk)

        _, probing_memory = _memory_while(probing)
        measured.append((len(features), writing, probing_memory, states))
    (small, write_small, probe_small, states), (large, write_large, probe_large, _) = measured
    assert large >= 3.5 * small  # 4x the questions, about 4x the windows
    window = states.width * states.hidden * 2  # one layer's float16 states of one window
    extra = large - small
    per_window = states.width * (4 * 2 * 2 + 1) + 64  # start + end logits (and their concatenation), mask, indices
    assert write_large[0] == write_small[0]  # the largest block is one batch's, whatever N is
    assert probe_large[0] <= 8 * states.width * states.hidden * 8  # one chunk, at most as float64 (the statistics)
    for (_, peak_small, traced_small), (_, peak_large, traced_large) in ((write_small, write_large),
                                                                         (probe_small, probe_large)):
        assert peak_large - peak_small <= extra * per_window < extra * window * states.layers / 4
        assert traced_large - traced_small <= extra * per_window


@pytest.mark.parametrize("changes, message", [
    ({"poolings": ("max",)}, "poolings"), ({"control": "random"}, "control"),
    ({"squad_train": "a.json"}, "set both"), ({"probe_dropout": 1.5}, "probe_dropout"),
    ({"finetuned": "some/folder", "tasks": ("sst2", "cola")}, "one task"), ({"tasks": ("nope",)}, "nope"),
    ({"squad_finetune_epochs": 1}, "squad_train"), ({"squad_finetune_lr": 0.0}, "squad_finetune_lr"),
    ({"probe_memory_mb": 0}, "probe_memory_mb"),
])
def test_config_rejects_bad_values_when_built(changes, message):
    with pytest.raises((ValueError, KeyError), match=message):
        ProbeConfig.from_env({}, **changes)


def test_settings_added_for_qa_fine_tuning_leave_run_ids_as_they_were_at_their_defaults():
    cfg = ProbeConfig.from_env({})
    added = set(ProbeConfig.ADDED_FIELDS)
    assert {"squad_finetune_epochs", "probe_memory_mb", "keep_token_states"} <= added
    assert not added & set(cfg.recorded()) and not added & set(cfg.identity())
    tuned = cfg.replace(squad_train="a.json", squad_dev="b.json", squad_finetune_epochs=2)
    assert tuned.recorded()["squad_finetune_epochs"] == 2  # a run that fine-tunes is another run
    runtime = cfg.replace(probe_memory_mb=64, keep_token_states=False)
    assert runtime.to_json() == cfg.to_json()  # where states are held changes nothing a probe computes


def test_span_probes_can_leave_no_token_states_behind(saved_encoder, bert_tokenizer, tmp_path):
    import json

    from support import squad_dict

    import bertbench as bb

    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad_dict()))
    cfg = ProbeConfig.from_env({}, preset="tiny", model=str(saved_encoder), tasks=(), squad_train=str(path),
                               squad_dev=str(path), probe_epochs=1, keep_token_states=False)
    frame = probes.probe_squad(cfg, str(saved_encoder), "mlm-pretrained", bert_tokenizer, tmp_path / "probes.csv",
                               "pretrained", verbose=False)
    dev = frame[(frame["split"] == "dev") & (frame["metric"] == "f1")]
    assert sorted(dev[dev["variant"] == "span_probe"]["layer"]) == [0, 1, 2] and "full_model" not in set(dev["variant"])
    assert not list((bb.runs_dir() / "cache" / "probe_states").glob("tokens-*"))


def test_the_fine_tuned_checkpoint_is_the_glue_notebooks_run():
    """Probing 'minilm fine-tuned on SST-2' means notebook 03's checkpoint of that run (same run id)."""
    from bertbench.experiments.glue_finetune import GlueConfig, run_id_for

    cfg = ProbeConfig.from_env({})
    glue = probes.finetune_config(cfg, "sst2", "minilm")
    same = GlueConfig.from_env({}, tasks=("sst2",), seeds=(0,), max_train_examples=0, epochs=2)
    assert run_id_for(glue, "sst2", 0) == run_id_for(same, "sst2", 0)
    assert glue.keep_checkpoints and glue.model == "minilm"


def test_saved_probes_load_back_with_their_config_and_give_the_same_logits(tmp_path):
    from safetensors.torch import save_file

    from bertbench.experiments.layer_probes import LinearProbe, SpanProbe, evaluate_probe, load_probe, save_probe

    x, y = synthetic(seed=3)
    linear = fit_probe(x, y, 3, epochs=2)
    loaded = load_probe(save_probe(linear, tmp_path / "linear", {"layer": 2, "task": "sst2"}))
    assert type(loaded) is LinearProbe and not loaded.training
    assert loaded.config["layer"] == 2 and loaded.config["num_labels"] == 3 and loaded.config["probe_type"] == "linear"
    assert np.array_equal(probe_logits(linear, x), probe_logits(loaded, x))

    torch.manual_seed(0)
    states, mask = torch.randn(6, 10, 8), torch.ones(6, 10, dtype=torch.bool)
    span = fit_span_probe(states, mask, torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,)), epochs=2,
                          device="cpu")
    loaded = load_probe(save_probe(span, tmp_path / "span", {"layer": 1, "null_threshold": 0.5}))
    assert type(loaded) is SpanProbe and loaded.config["null_threshold"] == 0.5 and loaded.config["hidden_size"] == 8
    for before, after in zip(probes.span_logits(span, states, mask, device="cpu"),
                             probes.span_logits(loaded, states, mask, device="cpu"), strict=True):
        assert np.array_equal(before, after)

    # a probe saved before probe folders: one weights file, its sizes read from the weights
    save_file({k: v.contiguous() for k, v in linear.state_dict().items()}, str(tmp_path / "old.safetensors"))
    old = load_probe(tmp_path / "old.safetensors")
    assert np.array_equal(probe_logits(linear, x), probe_logits(old, x))
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        evaluate_probe(old)
    with pytest.raises(FileNotFoundError, match="no probe"):
        load_probe(tmp_path / "nothing")


def test_a_saved_sentence_probe_scores_as_the_study_did(saved_encoder, bert_tokenizer, glue_dir, tmp_path,
                                                         monkeypatch):
    """Evaluating a saved probe on the split it was scored on, without training, gives the study's numbers, from the
    cached states (the encoder is not run again)."""
    import bertbench as bb
    from bertbench.experiments.layer_probes import evaluate_probe, load_probe, predict_probe

    cfg = ProbeConfig.from_env({}, preset="tiny", model=str(saved_encoder), tasks=("sst2",), poolings=("mean",),
                               finetuned="", max_probe_train_examples=32, max_eval_examples=16)
    frame = probes.probe_task(cfg, "sst2", str(saved_encoder), "mlm-pretrained", bert_tokenizer,
                              tmp_path / "probes.csv", "pretrained", verbose=False)
    monkeypatch.setattr(probe_states, "load_frozen", lambda *a, **k: pytest.fail("states recomputed"))
    folder = next(bb.runs_dir().glob("probes/pretrained-sst2-*/probe-mean-layer1"))
    config = load_probe(folder).config
    assert (config["task"], config["pooling"], config["layer"], config["probe_type"]) == ("sst2", "mean", 1, "linear")
    for variant, key in (("probe:mean", "probe-mean-layer1"), ("control:mean:word_type", "control-mean-layer1")):
        scores = evaluate_probe(folder.parent / key, max_examples=16)
        rows = frame[(frame["variant"] == variant) & (frame["layer"] == 1) & (frame["split"] == "dev")]
        assert scores == pytest.approx(dict(zip(rows["metric"], rows["value"], strict=True)))
    logits, labels = predict_probe(folder, max_examples=16)
    assert logits.shape == (16, 2) and len(labels) == 16


def test_qa_collator_labels_the_answer_tokens(bert_tokenizer, tmp_path):
    import json

    from support import squad_dict

    from bertbench.data import squad
    from bertbench.experiments.layer_probes.squad_finetune import QACollator

    (tmp_path / "squad.json").write_text(json.dumps(squad_dict()))
    examples = squad.read_squad(tmp_path / "squad.json")
    features = squad.build_features(examples, bert_tokenizer, max_len=64, doc_stride=16)
    batch = QACollator(bert_tokenizer)([features[i] for i in range(len(features))])
    assert batch["input_ids"].shape == (len(features), max(features.lengths))
    for row in range(len(features)):
        start, end = int(batch["start_positions"][row]), int(batch["end_positions"][row])
        example = examples[features.example_index[row]]
        if start:  # the labelled tokens spell the answer
            text = bert_tokenizer.decode(batch["input_ids"][row, start:end + 1])
            assert squad.normalize_answer(text) == squad.normalize_answer(example.answers[0])
        else:
            assert end == 0
    assert batch["start_positions"].gt(0).any() and batch["start_positions"].eq(0).any()


def test_notebook_05_probes_the_checkpoint_after_each_qa_fine_tuning_epoch(tmp_path, monkeypatch):
    """Notebook 05 as a plain script (run in this process, as ``BB_PRESET=tiny python notebooks/05_layer_probes.py``
    without a second interpreter start), span probes only, one epoch of QA fine-tuning: span curves for the random
    encoder and for its fine-tuned checkpoint, the fine-tuned head and the floor; saved probes score as the rows say,
    from cached states; a second run reuses everything."""
    import json
    import runpy
    from pathlib import Path

    from support import squad_dict
    from transformers import AutoModelForQuestionAnswering

    import bertbench as bb
    from bertbench.experiments.layer_probes import evaluate_probe, load_probe, token_store
    from bertbench.models import model_provenance

    path = tmp_path / "squad2.json"
    path.write_text(json.dumps(squad_dict()))
    env = {"BB_PRESET": "tiny", "BB_TASKS": "", "BB_SQUAD_TRAIN": str(path), "BB_SQUAD_DEV": str(path),
           "BB_SQUAD_FINETUNE_EPOCHS": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "05_layer_probes.py"
    runpy.run_path(str(notebook), run_name="__main__")

    frame = bb.load_results(tmp_path / "outputs" / "05_layer_probes.csv")
    assert set(frame["task"]) == {"squad2"} and set(frame["preset"]) == {"tiny"}
    dev = frame[(frame["split"] == "dev") & (frame["metric"] == "f1")]
    inits = {"random", "fine-tuned:squad2@epoch1"}
    assert set(dev["init"]) == inits
    for init in inits:
        part = dev[dev["init"] == init]
        assert sorted(part[part["variant"] == "span_probe"]["layer"]) == [0, 1, 2]
        assert len(part[part["variant"] == "always_no_answer"]) == 1
    assert set(dev[dev["variant"] == "full_model"]["init"]) == {"fine-tuned:squad2@epoch1"}  # its own QA head
    assert dev["value"].between(0, 100).all()
    assert (tmp_path / "outputs" / "figures" / "05_layer_probes.png").is_file()

    finetune = bb.load_results(bb.runs_dir() / "probes" / "finetune.csv")
    assert set(finetune["variant"]) == {"qa_finetune"}
    assert finetune[finetune["metric"] == "loss"]["step"].tolist() == [1]  # one loss per epoch
    checkpoint = next(bb.runs_dir().glob("probes/squad2-finetune/*/epoch1"))
    assert model_provenance(str(checkpoint)) == "fine-tuned:squad2"
    assert AutoModelForQuestionAnswering.from_pretrained(checkpoint).qa_outputs.out_features == 2
    assert not list(bb.runs_dir().glob("probes/squad2-finetune/*/resume"))  # the run finished: no resume state

    # a saved span probe of the fine-tuned model, scored again on the dev file without training or the encoder
    monkeypatch.setattr(token_store, "load_frozen", lambda *a, **k: pytest.fail("token states recomputed"))
    folder = next(bb.runs_dir().glob("probes/finetuned-*-epoch1-squad-*/span-layer2"))
    assert load_probe(folder).config["init"] == "fine-tuned:squad2@epoch1"
    rows = frame[(frame["init"] == "fine-tuned:squad2@epoch1") & (frame["variant"] == "span_probe")
                 & (frame["layer"] == 2) & (frame["split"] == "dev")]
    scores = evaluate_probe(folder)
    assert {metric: scores[metric] for metric in rows["metric"]} == pytest.approx(
        dict(zip(rows["metric"], rows["value"], strict=True)))

    # again: the fine-tuning and every probe run are found done
    from bertbench.experiments.layer_probes import squad_finetune

    monkeypatch.setattr(squad_finetune, "fit", lambda *a, **k: pytest.fail("fine-tuned again"))
    again = bb.run_probes(bb.ProbeConfig.from_env(), tmp_path / "outputs" / "05_layer_probes.csv", verbose=False)
    assert len(again) == len(frame)


def test_under_a_launcher_the_probes_refuse_before_any_work_naming_how_to_run_them(tmp_path, monkeypatch):
    import bertbench as bb

    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets in every process before any code runs
    cfg = bb.ProbeConfig.from_env(preset="tiny", environ={})
    with pytest.raises(RuntimeError, match=r"run as one process.*python notebooks/05_layer_probes.py"):
        bb.run_probes(cfg, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
