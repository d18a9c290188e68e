"""Long documents: window boundaries, selection strategies, special tokens for BERT- and RoBERTa-style tokenizers,
pooling rules against direct computations, memory-bounded encoding, metrics, splits and the config."""

import json
import random

import numpy as np
import pytest
import torch
from torchmetrics.functional import f1_score

import bertbench as bb
from bertbench import metrics as M
from bertbench import window_pooling as A
from bertbench.data.documents import PACKAGED_SPLITS, kfold_splits, read_documents, stratified_split
from bertbench.experiments.long_documents import encode_windows, parse_run
from bertbench.models import self_check
from bertbench.windows import (
    DocumentWindows,
    SpecialTokens,
    WindowCollator,
    WindowSpec,
    chunk_windows,
    random_spans,
    select_windows,
)

# ---- overlapping windows: boundary cases -------------------------------------------------------------------------

def test_empty_document_is_one_window_of_special_tokens_only():
    assert chunk_windows([], chunk_size=10, stride=5) == [[]]


def test_text_shorter_than_one_window_is_one_window():
    assert chunk_windows(list(range(7)), chunk_size=10, stride=5) == [list(range(7))]


@pytest.mark.parametrize("length,chunk,stride", [(20, 10, 10), (30, 10, 5), (10, 10, 10), (40, 10, 2)])
def test_exact_multiples_of_the_stride_add_no_empty_or_redundant_window(length, chunk, stride):
    tokens = list(range(length))
    windows = chunk_windows(tokens, chunk, stride)
    assert all(windows) and all(len(window) <= chunk for window in windows)
    assert windows[-1][-1] == length - 1  # the end is covered
    assert sorted({token for window in windows for token in window}) == tokens  # nothing skipped
    for earlier, later in zip(windows, windows[1:], strict=False):  # no window lies wholly inside the one before it
        assert not set(later) <= set(earlier)
    if stride == chunk:
        assert len(windows) == length // chunk


def test_single_huge_document_is_capped_by_length_and_segments():
    tokens = list(range(1_000_000))
    capped = chunk_windows(tokens, chunk_size=510, stride=384, maximal_text_length=2048)
    assert capped[-1][-1] == 2047 and all(len(window) <= 510 for window in capped)
    assert len(chunk_windows(tokens, chunk_size=510, stride=510, max_num_segments=8)) == 8
    assert len(chunk_windows(tokens, chunk_size=510, stride=510)) == -(-1_000_000 // 510)


def test_minimal_chunk_length_drops_a_short_trailing_window_but_never_the_only_one():
    assert chunk_windows(list(range(23)), 10, 10, minimal_chunk_length=5) == [list(range(10)), list(range(10, 20))]
    assert chunk_windows(list(range(3)), 10, 10, minimal_chunk_length=5) == [[0, 1, 2]]


def test_window_settings_that_would_lose_text_are_refused():
    """A minimal_chunk_length above chunk_size dropped a full last window (tokens 64-127 here were lost); BELT
    refuses it, and a stride above chunk_size, which skips text; so do chunk_windows, WindowSpec and the config."""
    tokens = list(range(128))
    assert chunk_windows(tokens, 64, 64, minimal_chunk_length=64) == [tokens[:64], tokens[64:]]
    with pytest.raises(ValueError, match="minimal_chunk_length: 100 > chunk_size 64"):
        chunk_windows(tokens, 64, 64, minimal_chunk_length=100)
    with pytest.raises(ValueError, match="stride: 80 > chunk_size 64"):
        chunk_windows(tokens, 64, 80)
    with pytest.raises(ValueError, match="minimal_chunk_length: 100 > chunk_size 64"):
        WindowSpec("windows", chunk_size=64, stride=64, minimal_chunk_length=100)
    with pytest.raises(ValueError, match="minimal_chunk_length: 100 > chunk_size 64"):
        bb.LongDocConfig.from_env(environ={"BB_CHUNK_SIZE": "64", "BB_STRIDE": "64",
                                           "BB_MINIMAL_CHUNK_LENGTH": "100"}).spec("windows", 2)


# ---- truncation-style selections ---------------------------------------------------------------------------------

def test_head_tail_and_head_tail_selections():
    tokens = list(range(1000))
    spec = dict(budget=510, head_tokens=128)
    assert select_windows(tokens, WindowSpec("head", **spec)) == [tokens[:510]]
    assert select_windows(tokens, WindowSpec("tail", **spec)) == [tokens[-510:]]
    assert select_windows(tokens, WindowSpec("head_tail", **spec)) == [tokens[:128] + tokens[-382:]]
    assert select_windows(tokens[:100], WindowSpec("head_tail", **spec)) == [tokens[:100]]
    assert select_windows(tokens, WindowSpec("head_tail", budget=510, head_tokens=510)) == [tokens[:510]]


@pytest.mark.parametrize("mode", ["rs", "rso", "rsd"])
def test_random_spans_work_for_any_length_and_never_return_an_empty_span(mode):
    rng = random.Random(0)
    for length in [0, 1, 5, 63, 64, 65, 127, 128, 129, 300, 1001]:
        tokens = list(range(length))
        for budget, span in [(128, 64), (100, 30), (10, 64), (7, 1)]:
            chosen = random_spans(tokens, budget, span, rng, mode)
            if length <= budget:
                assert chosen == tokens
                continue
            assert 0 < len(chosen) <= budget and set(chosen) <= set(tokens)
            if mode in ("rs", "rsd"):  # spans without repeats
                assert len(set(chosen)) == len(chosen) == budget
            if mode == "rs":  # kept in document order
                assert chosen == sorted(chosen)


def test_random_strategies_draw_anew_each_epoch_but_are_fixed_for_evaluation():
    special = SpecialTokens((1,), (2,), (0,), (0,), 0, False)
    dataset = DocumentWindows([list(range(10, 500))], [0], WindowSpec("rs", budget=40, span_len=8), special, seed=3)
    first = dataset[0]["windows"]
    assert dataset[0]["windows"] == first  # same epoch, same draw
    dataset.set_epoch(1)
    assert dataset[0]["windows"] != first


# ---- special tokens from the tokenizer: BERT and RoBERTa style -----------------------------------------------------

def roberta_style_tokenizer():
    """A byte-level BPE tokenizer with RoBERTa's specials (<s>=0, <pad>=1, </s>=2) and post-processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    backend.train_from_iterator(["the quick brown fox jumps over the lazy dog " * 5, "long documents need windows"],
                                trainer)
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   model_input_names=["input_ids", "attention_mask"])


@pytest.fixture(scope="module", params=["bert", "roberta"])
def tokenizer(request):
    return bb.load_tokenizer("minilm") if request.param == "bert" else roberta_style_tokenizer()


def test_every_window_is_a_proper_model_input(tokenizer):
    special = SpecialTokens.from_tokenizer(tokenizer)
    text = "the quick brown fox jumps over the lazy dog " * 40
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    spec = WindowSpec("windows", chunk_size=30, stride=20, minimal_chunk_length=5)
    dataset = DocumentWindows([tokens, tokens[:7], []], [0, 1, 0], spec, special)
    batch = WindowCollator(tokenizer.pad_token_id)([dataset[i] for i in range(3)])
    self_check(tokenizer, batch, text_pair=False)  # CLS first, SEP last, mask 0 exactly on padding, no MASK
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for row in range(ids.shape[0]):
        real = ids[row][mask[row].bool()].tolist()
        assert real[0] == tokenizer.cls_token_id and real[-1] == tokenizer.sep_token_id
        assert tokenizer.mask_token_id not in real
    padded = ~mask.bool()
    assert padded.any() and bool((ids[padded] == tokenizer.pad_token_id).all())
    assert batch["doc_index"].tolist().count(2) == 1  # the empty document: one window of special tokens only
    if tokenizer.cls_token_id != 101:  # RoBERTa style: no BERT ids anywhere
        assert not ({101, 102} & set(ids[mask.bool()].tolist()))
        assert tokenizer.pad_token_id == 1 and "token_type_ids" not in batch


# ---- pooling rules against direct computation ---------------------------------------------------------------------

def _direct(logits, doc_index, rule, multilabel, c=2.0):
    out = []
    for doc in range(int(doc_index.max()) + 1):
        rows = logits[doc_index == doc].double()
        n = rows.shape[0]
        act = torch.sigmoid if multilabel else (lambda x: torch.softmax(x, dim=-1))
        if rule == "mean_logits":
            value = act(rows.mean(0))
        elif rule == "max_logits":
            value = act(rows.max(0).values)
        else:
            probs = act(rows)
            mean, peak = probs.mean(0), probs.max(0).values
            value = {"mean_prob": mean, "max_prob": peak, "custom_agg": (peak + mean * n / c) / (1 + n / c)}[rule]
            if not multilabel:
                value = value / value.sum()
        out.append(value)
    return torch.stack(out)


@pytest.mark.parametrize("multilabel", [False, True])
@pytest.mark.parametrize("rule", A.RULES)
def test_pooling_rule_matches_a_direct_computation(rule, multilabel):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(11, 3, generator=generator) * 3
    doc_index = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3])
    expected = _direct(logits, doc_index, rule, multilabel)
    probs = A.doc_probabilities(logits, doc_index, 4, rule, multilabel)
    torch.testing.assert_close(probs.double(), expected, rtol=1e-5, atol=1e-6)
    if multilabel:
        labels = (torch.rand(4, 3, generator=generator) > 0.5).float()
        direct_loss = torch.nn.functional.binary_cross_entropy(expected, labels.double())
    else:
        labels = torch.tensor([0, 2, 1, 2])
        direct_loss = -torch.log(expected[torch.arange(4), labels]).mean()
    torch.testing.assert_close(A.doc_loss(logits, doc_index, labels, rule, multilabel).double(), direct_loss,
                               rtol=1e-5, atol=1e-6)


def test_one_window_per_document_makes_every_rule_the_plain_classifier():
    logits = torch.randn(5, 2)
    index = torch.arange(5)
    for rule in A.RULES:
        torch.testing.assert_close(A.doc_probabilities(logits, index, 5, rule), torch.softmax(logits, -1))


# ---- memory-bounded encoding ---------------------------------------------------------------------------------------

def _tiny_model(tokenizer):
    model, _ = bb.build_classifier("random-bert-2x64", tokenizer, ("a", "b"), max_len=64, dropout=0.0,
                                   attention_dropout=0.0)
    return model


def test_windows_beyond_the_pass_limit_are_checkpointed_with_the_same_gradient():
    tokenizer = bb.load_tokenizer("minilm")
    torch.manual_seed(0)
    model = _tiny_model(tokenizer).train()
    special = SpecialTokens.from_tokenizer(tokenizer)
    tokens = list(range(2000, 2000 + 40 * 20))  # one document of 40 windows
    dataset = DocumentWindows([tokens, tokens[:50]], [1, 0], WindowSpec("windows", chunk_size=20, stride=20),
                              special)
    batch = WindowCollator(tokenizer.pad_token_id)([dataset[0], dataset[1]])
    assert batch["input_ids"].shape[0] == 43

    seen = []
    hook = model.get_input_embeddings().register_forward_hook(lambda module, inputs, output: seen.append(
        output.shape[0]))
    grads = []
    for cap in (1000, 4):
        model.zero_grad()
        seen.clear()
        logits = encode_windows(model, batch, cap)
        A.doc_loss(logits, batch["doc_index"], batch["labels"], "mean_prob").backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        if cap == 4:
            assert max(seen) <= 4  # no pass ever saw more than 4 windows (forward and recomputation)
    hook.remove()
    for whole, chunked in zip(*grads, strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)


# ---- metrics -----------------------------------------------------------------------------------------------------

def test_document_metrics_match_torchmetrics():
    rng = np.random.default_rng(0)
    for k, problem in [(2, "binary"), (5, "multiclass")]:
        probs = rng.dirichlet(np.ones(k), size=200)
        labels = rng.integers(0, k, 200)
        ours = M.document_metrics(probs, labels, problem)
        preds = torch.tensor(probs.argmax(1))
        theirs = f1_score(preds, torch.tensor(labels), task=problem, num_classes=k,
                          average="macro" if k > 2 else "micro")
        assert ours["f1"] == pytest.approx(float(theirs))
        assert ours["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()))
    probs = rng.random((50, 4))
    labels = (rng.random((50, 4)) > 0.5).astype(int)
    ours = M.document_metrics(probs, labels, "multilabel")
    theirs = f1_score(torch.tensor(probs), torch.tensor(labels), task="multilabel", num_labels=4, average="micro")
    assert ours["f1"] == pytest.approx(float(theirs))


def test_bootstrap_intervals_bracket_the_estimate_and_are_reproducible():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 65)
    probs = np.stack([1 - labels * 0.7 - 0.1, labels * 0.7 + 0.1], 1)
    probs[:10] = probs[:10, ::-1]  # some mistakes
    point = M.document_metrics(probs, labels, "binary")
    ci = M.bootstrap_intervals(probs, labels, "binary", samples=1000, seed=0)
    assert ci == M.bootstrap_intervals(probs, labels, "binary", samples=1000, seed=0)
    for name in ("accuracy", "f1"):
        assert ci[name][0] < point[name] < ci[name][1]
    same = M.paired_bootstrap_difference(probs, probs, labels, "binary", samples=200)
    assert same == (0.0, 0.0, 0.0)
    # BB_BOOTSTRAP_SAMPLES=0 (allowed by the config) switches the intervals off: NaN pairs, not a KeyError later
    off = M.bootstrap_intervals(probs, labels, "binary", samples=0)
    assert set(off) == set(point) and all(np.isnan(low) and np.isnan(high) for low, high in off.values())


# ---- data and splits ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,n_docs,n_labels", [("hyperpartisan", 645, 2), ("bbc", 2225, 5)])
def test_saved_split_is_a_stratified_partition(name, n_docs, n_labels):
    docs = bb.load_documents(name)
    assert len(docs) == n_docs and len(docs.label_names) == n_labels and docs.problem in ("binary", "multiclass")
    indices, path = bb.fixed_split(docs)
    assert path == PACKAGED_SPLITS / f"{name}.json"
    every = [i for part in indices.values() for i in part]
    assert sorted(every) == list(range(n_docs))
    assert abs(len(indices["test"]) / n_docs - 0.1) < 0.01
    labels = np.asarray(docs.examples.labels)
    overall = np.bincount(labels, minlength=n_labels) / n_docs
    for part in indices.values():
        share = np.bincount(labels[part], minlength=n_labels) / len(part)
        assert np.abs(share - overall).max() < 0.02
    assert indices == {key: value for key, value in stratified_split(docs).items()}  # the saved split is seed 0's


def test_a_split_file_naming_an_unknown_document_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BB_RUNS_DIR", str(tmp_path / "runs"))
    rows = [{"text": f"document {i} " * (i + 1), "label": "ab"[i % 2]} for i in range(20)]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    docs = read_documents(path)
    indices, split_file = bb.fixed_split(docs)
    assert split_file.is_file() and sorted(sum(indices.values(), [])) == list(range(20))
    assert bb.fixed_split(docs)[0] == indices  # reused, not redrawn
    payload = json.loads(split_file.read_text())
    payload["splits"]["test"][0] = "no-such-id"
    split_file.write_text(json.dumps(payload))
    with pytest.raises(bb.DataError, match="no-such-id"):
        bb.fixed_split(docs)


def test_kfold_puts_every_document_in_exactly_one_test_fold():
    docs = bb.load_documents("hyperpartisan")
    folds = kfold_splits(docs, 10)
    tests = sorted(i for fold in folds for i in fold["test"])
    assert tests == list(range(len(docs)))
    for fold in folds:
        assert not set(fold["test"]) & set(fold["val"]) and not set(fold["train"]) & set(fold["test"] + fold["val"])
        assert len(fold["train"]) + len(fold["val"]) + len(fold["test"]) == len(docs)
    with pytest.raises(ValueError, match="cv_folds"):
        kfold_splits(docs, 2)


def test_multilabel_csv_reads_as_multi_hot(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('text,label\n"a long text",sport|politics\n"another",tech\n"third","politics"\n')
    docs = read_documents(path, label_sep="|")
    assert docs.problem == "multilabel" and docs.label_names == ("politics", "sport", "tech")
    assert docs.examples.labels == [[1, 1, 0], [0, 0, 1], [1, 0, 0]]


def test_a_binary_task_is_two_classes_under_softmax():
    """Never one output under cross-entropy + argmax (BELT with num_labels=1 learns nothing)."""
    docs = bb.load_documents("hyperpartisan")
    model, _ = bb.build_classifier("random-bert-2x64", bb.load_tokenizer("minilm"), docs.label_names, max_len=64)
    assert model.config.num_labels == 2 and docs.problem == "binary"


# ---- config ------------------------------------------------------------------------------------------------------

def test_config_rejects_impossible_window_settings():
    with pytest.raises(ValueError, match="chunk_size"):
        bb.LongDocConfig.from_env(environ={"BB_CHUNK_SIZE": "511", "BB_MAX_LEN": "512"})
    with pytest.raises(ValueError, match="stride"):
        bb.LongDocConfig.from_env(environ={"BB_STRIDE": "600", "BB_CHUNK_SIZE": "500"})
    with pytest.raises(ValueError, match="aggregation rule"):
        parse_run("head+mean_prob")
    with pytest.raises(ValueError, match="rule from"):
        bb.LongDocConfig.from_env(environ={"BB_RUNS": "windows+median"})
    cfg = bb.LongDocConfig.from_env(environ={})
    assert cfg.for_dataset("bbc").max_train_docs == 400 and cfg.for_dataset("hyperpartisan").max_train_docs == 0
    assert bb.LongDocConfig.from_env(environ={"BB_DATASETS": "hyperpartisan"}).datasets == ("hyperpartisan",)


def test_dropout_settings_reach_a_pretrained_encoder_without_a_head():
    """BB_DROPOUT on a plain checkpoint used to pass hidden_dropout_prob to the model constructor (TypeError)."""
    model, head = bb.build_classifier("minilm", bb.load_tokenizer("minilm"), ("a", "b"), dropout=0.2,
                                      attention_dropout=0.0)
    assert head == "new"
    assert model.config.hidden_dropout_prob == 0.2 and model.config.attention_probs_dropout_prob == 0.0
    rates = {module.p for name, module in model.named_modules() if isinstance(module, torch.nn.Dropout)}
    assert rates <= {0.2, 0.0}


# ---- text pairs: the pair appended to every window, in the tokenizer's own pair template -------------------------

def test_every_window_carries_the_text_pair_in_the_tokenizers_template(tokenizer):
    from bertbench.windows import PairDocumentWindows, PairTemplate

    template = PairTemplate.from_tokenizer(tokenizer)
    text = "the quick brown fox jumps over the lazy dog " * 12
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    pair = tokenizer("long documents need windows", add_special_tokens=False)["input_ids"]
    short = tokenizer("the lazy dog", add_special_tokens=False)["input_ids"]
    spec = WindowSpec("windows", chunk_size=20, stride=16)
    dataset = PairDocumentWindows([tokens, short, []], [pair, pair, pair[:2]], [1, 0, 1], spec, template)
    # a document of one window: exactly what the tokenizer makes of the text pair, ids and token types
    (whole,) = dataset.windows(1)
    expected = tokenizer("the lazy dog", "long documents need windows", return_token_type_ids=True)
    assert whole["input_ids"] == expected["input_ids"]
    if template.with_types:
        assert whole["token_type_ids"] == expected["token_type_ids"] and set(whole["token_type_ids"]) == {0, 1}
    # a long one: every window is that template around its own content, the whole pair after each
    after = whole["input_ids"][len(template.prefix) + len(short):]  # separator, the pair, the closing token(s)
    windows = dataset.windows(0)
    assert len(windows) == len(chunk_windows(tokens, 20, 16)) > 2
    for window, content in zip(windows, chunk_windows(tokens, 20, 16), strict=True):
        assert window["input_ids"] == [*template.prefix, *content, *after]
    batch = WindowCollator(tokenizer.pad_token_id)([dataset[i] for i in range(3)])
    self_check(tokenizer, batch, text_pair=True)  # CLS first, SEP last, two SEP-delimited segments, mask on padding
    assert dataset.lengths == [len(tokens) + len(pair), len(short) + len(pair), 2]


def test_a_text_pair_leaves_room_in_every_window_or_the_config_says_what_to_lower():
    cfg = bb.LongDocConfig.from_env(environ={"BB_PRESET": "tiny"})  # max_len 64, chunk_size 62
    with pytest.raises(ValueError, match="text_pair_column: chunk_size \\(62\\) \\+ max_pair_tokens \\(64\\)"):
        cfg.replace(text_pair_column="question")
    with pytest.raises(ValueError, match="2 special tokens \\+ 8 tokens of the text pair .*lower BB_CHUNK_SIZE"):
        cfg.spec("windows", 2, pair_tokens=8)
    assert cfg.replace(chunk_size=40, stride=32).spec("head", 3, pair_tokens=16).budget == 64 - 3 - 16
    assert "text_pair_column" not in cfg.identity() and "regression" not in cfg.identity()  # old run ids stay
    with pytest.raises(ValueError, match="select_metric: 'pearson' scores a number to predict"):
        cfg.replace(select_metric="pearson").selection("binary")
    assert cfg.selection("regression") == "pearson" and cfg.replace(select_metric="spearman").selection(
        "regression") == "spearman"


# ---- regression: windows pooled into one number per document, scored by Pearson, Spearman, MSE --------------------

@pytest.mark.parametrize("rule", A.RULES)
def test_regression_pooling_and_loss_match_a_direct_computation(rule):
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(7, 1, generator=generator)
    doc_index = torch.tensor([0, 0, 0, 1, 2, 2, 2])
    targets = torch.tensor([0.5, -1.0, 2.0])
    direct = []
    for doc in range(3):
        rows = outputs[doc_index == doc, 0].double()
        mean, peak, ratio = rows.mean(), rows.max(), len(rows) / 2.0
        direct.append(mean if rule.startswith("mean") else peak if rule.startswith("max") else
                      (peak + mean * ratio) / (1 + ratio))
    direct = torch.stack(direct)
    torch.testing.assert_close(A.doc_values(outputs, doc_index, 3, rule).squeeze(1).double(), direct)
    torch.testing.assert_close(A.doc_regression_loss(outputs, doc_index, targets, rule).double(),
                               ((direct - targets.double()) ** 2).mean(), rtol=1e-5, atol=1e-6)


def test_regression_document_metrics_and_their_intervals():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=40)
    predictions = (labels + rng.normal(scale=0.5, size=40))[:, None]
    values = M.document_metrics(predictions, labels, "regression")
    assert set(values) == {"pearson", "spearman", "mse"}
    assert values["pearson"] == pytest.approx(np.corrcoef(predictions[:, 0], labels)[0, 1])
    assert values["mse"] == pytest.approx(np.mean((predictions[:, 0] - labels) ** 2))
    intervals = M.bootstrap_intervals(predictions, labels, "regression", samples=100)
    assert all(intervals[name][0] <= values[name] <= intervals[name][1] for name in values)


def test_a_split_the_data_gives_is_never_replaced_by_cross_validation(tmp_path):
    from bertbench.experiments.long_documents import prepare_dataset

    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("text,label\n" + "".join(f"doc {i},{'ab'[i % 2]}\n" for i in range(6)))
    cfg = bb.LongDocConfig.from_env(environ={"BB_PRESET": "tiny", "BB_CV_FOLDS": "3"})
    with pytest.raises(bb.DataError, match="cv_folds \\(3\\) and a split the data gives \\(given: .*train.csv as "
                                           "train, test.csv as test\\); val drawn from train"):
        prepare_dataset(cfg, str(tmp_path / "train.csv"))
