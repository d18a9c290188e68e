"""SQuAD reader, windows, span decoding and the official EM/F1 on tiny SQuAD 2.0 files written here.

Tokenizers: the packaged BERT WordPiece (``[CLS] q [SEP] c [SEP]``, token_type_ids) and a byte-level BPE trained
here in RoBERTa's template (``<s> q </s></s> c </s>``, no token_type_ids), with offsets trimmed and untrimmed.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from support import BRIDGES, NORMANS, _answer, squad_dict

from bertbench.data.examples import DataError
from bertbench.data.squad import (
    QAExample,
    apply_null_threshold,
    best_null_threshold,
    build_features,
    decode_spans,
    exact_match,
    f1_score,
    no_answer_baseline,
    normalize_answer,
    read_squad,
    squad_json_from_rows,
    squad_scores,
)


def write(tmp_path, content, name="squad.json"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


@pytest.fixture
def examples(tmp_path):
    return read_squad(write(tmp_path, squad_dict()))


def _bpe_tokenizer(trim_offsets: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    data = squad_dict()
    texts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    texts += [qa["question"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>")), trim_offsets=trim_offsets,
        add_prefix_space=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", model_input_names=["input_ids", "attention_mask"])


@pytest.fixture(scope="module", params=["bert", "bpe", "bpe-untrimmed"])
def tokenizer(request, bert_tokenizer):
    if request.param == "bert":
        return bert_tokenizer
    return _bpe_tokenizer(trim_offsets=request.param == "bpe")


# ---------------------------------------------------------------------------------------------------------- reading


def test_reader_fields_and_is_impossible(examples):
    by_id = {ex.id: ex for ex in examples}
    assert [ex.id for ex in examples] == ["n1", "n2", "n3", "b1", "b2", "b3", "b4", "s1"]
    n1 = by_id["n1"]
    assert n1.context == NORMANS and n1.question == "In what country is Normandy located?"
    assert n1.answers == ["France", "France."] and not n1.is_impossible
    for ex in examples:
        for text, start in zip(ex.answers, ex.answer_starts, strict=True):
            assert ex.context[start:start + len(text)] == text
    # unanswerable: no answers (plausible_answers ignored); SQuAD 1.1 entries without is_impossible are answerable
    assert by_id["n3"].is_impossible and by_id["n3"].answers == [] and by_id["n3"].answer_starts == []
    assert not by_id["s1"].is_impossible and by_id["s1"].answer_starts == [15]


def test_reader_corrects_an_answer_start_that_is_a_few_characters_off(tmp_path):
    data = squad_dict()
    qa = data["data"][0]["paragraphs"][0]["qas"][1]
    qa["answers"][0]["answer_start"] += 3
    example = {ex.id: ex for ex in read_squad(write(tmp_path, data))}["n2"]
    assert example.answer_starts == [NORMANS.index("10th and 11th centuries")]

    # an answer that occurs several times: the occurrence nearest the given start wins
    context = "the cat and the dog and the bird"
    data["data"][1]["paragraphs"][0] = {"context": context, "qas": [
        {"id": "s1", "question": "Which article?", "answers": [{"text": "the", "answer_start": 10}]}]}
    example = {ex.id: ex for ex in read_squad(write(tmp_path, data))}["s1"]
    assert example.answer_starts == [12]


def _set(data: dict, where: tuple, value) -> dict:
    data = copy.deepcopy(data)
    target = data
    for key in where[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[where[-1]]
    else:
        target[where[-1]] = value
    return data


_DELETE = object()
_QA = ("data", 0, "paragraphs", 0, "qas")

MALFORMED = {
    "missing data": (lambda d: {"version": "v2.0"}, r"missing top-level 'data'"),
    "missing context": (lambda d: _set(d, ("data", 0, "paragraphs", 1, "context"), _DELETE),
                        r"data\[0\]\.paragraphs\[1\]: missing 'context'"),
    "missing question": (lambda d: _set(d, (*_QA, 1, "question"), _DELETE),
                         r"data\[0\]\.paragraphs\[0\]\.qas\[1\]: missing 'question'"),
    "missing id": (lambda d: _set(d, (*_QA, 2, "id"), _DELETE), r"data\[0\]\.paragraphs\[0\]\.qas\[2\]: missing 'id'"),
    "duplicate id": (lambda d: _set(d, ("data", 1, "paragraphs", 0, "qas", 0, "id"), "n2"),
                     r"data\[1\]\.paragraphs\[0\]\.qas\[0\]: duplicate id 'n2' \(first at data\[0\]\.paragraphs\[0\]"
                     r"\.qas\[1\]\)"),
    "answerable without answers": (lambda d: _set(d, (*_QA, 0, "answers"), []),
                                   r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: answerable question .* has no answers"),
    "text not at start": (lambda d: _set(d, (*_QA, 0, "answers", 0, "answer_start"), 5),
                          r"qas\[0\]\.answers\[0\]: text 'France' does not occur at answer_start 5"),
    "start out of range": (lambda d: _set(d, (*_QA, 1, "answers", 0, "answer_start"), 5000),
                           r"qas\[1\]\.answers\[0\]: answer_start 5000 is outside the context"),
    "start far off": (lambda d: _set(d, (*_QA, 1, "answers", 0, "answer_start"), NORMANS.index("10th") + 25),
                      r"qas\[1\]\.answers\[0\]: text '10th and 11th centuries' does not occur"),
    "impossible with answers": (lambda d: _set(d, (*_QA, 2, "answers"), [_answer(NORMANS, "Normans")]),
                                r"qas\[2\]: is_impossible is true but 1 answer\(s\) given"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_reader_errors_name_the_file_and_the_json_location(tmp_path, case):
    mutate, message = MALFORMED[case]
    path = write(tmp_path, mutate(squad_dict()))
    with pytest.raises(DataError, match=message) as info:
        read_squad(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("content", "message"), [
    ('{"version": "v2.0", "data": [', r"not valid JSON \(line 1"),
    (b'{"data": []}\xff\xfe', r"not UTF-8"),
])
def test_reader_rejects_files_that_are_not_utf8_json(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=message) as info:
        read_squad(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------------------- features


def _window_span(offsets) -> tuple[int, int]:
    spans = [span for span in offsets if span is not None]
    return spans[0][0], spans[-1][1]


def test_window_labels_slice_back_to_the_answer(examples, tokenizer):
    features = build_features(examples, tokenizer, max_len=64, doc_stride=16)
    labelled = set()
    for window in range(len(features)):
        example = examples[features.example_index[window]]
        offsets = features.offsets[window]
        start, end = features.start_positions[window], features.end_positions[window]
        if example.is_impossible:
            assert (start, end) == (0, 0)
            continue
        answer_start = example.answer_starts[0]
        answer_end = answer_start + len(example.answers[0])
        first_char, last_char = _window_span(offsets)
        if start == 0:
            assert end == 0
            assert not first_char <= answer_start < answer_end <= last_char  # the answer is not fully in this window
            continue
        assert offsets[start] is not None and offsets[end] is not None and start <= end
        sliced = example.context[offsets[start][0]:offsets[end][1]]
        assert normalize_answer(sliced) == normalize_answer(example.answers[0])
        labelled.add(example.id)
    # a window overlap of 16 tokens is longer than every answer: each answer lies whole in some window
    assert labelled == {ex.id for ex in examples if not ex.is_impossible}


def test_long_context_gives_overlapping_windows_that_cover_every_character(examples, tokenizer):
    features = build_features(examples, tokenizer, max_len=64, doc_stride=16)
    assert all(len(ids) <= 64 for ids in features.input_ids)
    b2 = next(i for i, ex in enumerate(examples) if ex.id == "b2")
    windows = [w for w, index in enumerate(features.example_index) if index == b2]
    assert len(windows) >= 3
    covered = set()
    for window in windows:
        covered.update(c for span in features.offsets[window] if span is not None for c in range(*span))
    assert {c for c, ch in enumerate(BRIDGES) if not ch.isspace()} <= covered
    for previous, window in zip(windows, windows[1:], strict=False):
        assert _window_span(features.offsets[window])[0] < _window_span(features.offsets[previous])[1]  # overlap
    assert features.example_index == sorted(features.example_index)  # windows stay in example order


def test_question_and_special_tokens_get_no_offsets(examples, tokenizer):
    features = build_features(examples, tokenizer, max_len=64, doc_stride=16)
    special = set(tokenizer.all_special_ids)
    for window in range(len(features)):
        example = examples[features.example_index[window]]
        offsets = features.offsets[window]
        assert offsets[0] is None  # position 0 (CLS / <s>) is the no-answer position
        without = [tid for tid, span in zip(features.input_ids[window], offsets, strict=True) if span is None]
        question_ids = tokenizer(example.question.lstrip(), add_special_tokens=False)["input_ids"]
        assert [tid for tid in without if tid not in special] == question_ids
        assert len(without) == len(question_ids) + tokenizer.num_special_tokens_to_add(pair=True)


def test_items_and_token_type_ids_follow_the_tokenizer(examples, tokenizer):
    features = build_features(examples, tokenizer, max_len=64, doc_stride=16)
    item = features[0]
    has_types = "token_type_ids" in tokenizer.model_input_names
    assert set(item) == {"input_ids", "start_positions", "end_positions"} | ({"token_type_ids"} if has_types else set())
    assert isinstance(item["start_positions"], int) and isinstance(item["input_ids"], list)
    assert len(features) == len(features.input_ids) == len(features.offsets) == len(features.start_positions)
    assert features.lengths == [len(ids) for ids in features.input_ids] and max(features.lengths) <= 64
    if has_types:
        assert [len(t) for t in features.token_type_ids] == [len(ids) for ids in features.input_ids]
        # segment 1 exactly where the context sits (plus the final [SEP] in BERT's template)
        for types, offsets in zip(features.token_type_ids, features.offsets, strict=True):
            assert all(t == 1 for t, span in zip(types, offsets, strict=True) if span is not None)
    else:
        assert features.token_type_ids is None


def test_long_questions_are_truncated_to_max_query_len(bert_tokenizer):
    question = "Which of the many stone bridges " * 10 + "was finished first?"
    example = QAExample("q", question, BRIDGES, ["1800"], [BRIDGES.index("1800")], False)
    features = build_features([example], bert_tokenizer, max_len=64, doc_stride=16, max_query_len=8)
    n_special = bert_tokenizer.num_special_tokens_to_add(pair=True)
    assert all(sum(span is None for span in offsets) == 8 + n_special for offsets in features.offsets)
    assert max(features.start_positions) > 0


def test_too_small_max_len_is_a_value_error_with_the_numbers(examples, bert_tokenizer):
    with pytest.raises(ValueError, match=r"max_len=24 leaves .* context tokens .* doc_stride=16"):
        build_features(examples, bert_tokenizer, max_len=24, doc_stride=16)


# --------------------------------------------------------------------------------------------------------- decoding


def _oracle_logits(features, width: int, peak: float = 5.0):
    """Logits that point at each window's label (position 0 for windows without the answer)."""
    start = np.full((len(features), width), -peak)
    end = np.full((len(features), width), -peak)
    for window in range(len(features)):
        start[window, features.start_positions[window]] = peak
        end[window, features.end_positions[window]] = peak
    return start, end


def test_oracle_logits_decode_to_a_perfect_score(examples, tokenizer):
    features = build_features(examples, tokenizer, max_len=64, doc_stride=16)
    start, end = _oracle_logits(features, 70)  # wider than every window: the padding is ignored
    decoded = decode_spans(features, start, end, examples)
    assert set(decoded) == {ex.id for ex in examples}
    predictions = apply_null_threshold(decoded)
    for ex in examples:
        assert predictions[ex.id] == ("" if ex.is_impossible else ex.answers[0])
    assert squad_scores(examples, predictions)["exact"] == 100.0


@pytest.fixture
def normans(examples, bert_tokenizer):
    """One example (n2: "10th and 11th centuries"), one window, and zero logits to edit."""
    chosen = [ex for ex in examples if ex.id == "n2"]
    features = build_features(chosen, bert_tokenizer, max_len=64, doc_stride=16)
    assert len(features) == 1
    width = len(features.input_ids[0])
    return chosen, features, np.zeros((1, width + 4)), np.zeros((1, width + 4))


def _token(features, context: str, text: str, edge: str = "start") -> int:
    """The token where ``text`` (first occurrence in ``context``) starts, or ends with edge="end"."""
    char = context.index(text)
    side, char = (0, char) if edge == "start" else (1, char + len(text))
    return next(t for t, span in enumerate(features.offsets[0]) if span is not None and span[side] == char)


def test_decoding_picks_the_best_valid_span(normans):
    chosen, features, start, end = normans
    start[0, _token(features, NORMANS, "10th")] = 4.0
    end[0, _token(features, NORMANS, "centuries", "end")] = 3.0
    start[0, 0], end[0, 0] = 1.0, 1.5
    text, score, null = decode_spans(features, start, end, chosen)["n2"]
    assert (text, score, null) == ("10th and 11th centuries", 7.0, 2.5)


DECOYS = {  # each decoy outscores the valid span "Normans" (1 + 1) but is not a valid answer
    "end before start": lambda f, s, e: (s.__setitem__((0, _token(f, NORMANS, "France")), 9.0),
                                         e.__setitem__((0, _token(f, NORMANS, "region", "end")), 9.0)),
    "on question tokens": lambda f, s, e: (s.__setitem__((0, 2), 20.0), e.__setitem__((0, 3), 20.0)),
    "on special tokens": lambda f, s, e: (s.__setitem__((0, 0), 20.0), e.__setitem__((0, 0), 20.0)),
    "past the window": lambda f, s, e: (s.__setitem__((0, -1), 30.0), e.__setitem__((0, -1), 30.0)),
    "longer than max_answer_len": lambda f, s, e: (s.__setitem__((0, _token(f, NORMANS, "10th")), 5.0),
                                                   e.__setitem__((0, _token(f, NORMANS, "France", "end")), 5.0)),
}


@pytest.mark.parametrize("decoy", sorted(DECOYS))
def test_decoding_never_chooses_invalid_spans(normans, decoy):
    chosen, features, start, end = normans
    start[:], end[:] = -10.0, -10.0
    start[0, _token(features, NORMANS, "Normans")] = 1.0
    end[0, _token(features, NORMANS, "Normans", "end")] = 1.0
    DECOYS[decoy](features, start, end)
    text, score, _ = decode_spans(features, start, end, chosen, max_answer_len=10)["n2"]
    assert (text, score) == ("Normans", 2.0)
    if decoy == "longer than max_answer_len":  # the length limit, not the scores, kept the decoy out
        text, score, _ = decode_spans(features, start, end, chosen, max_answer_len=30)["n2"]
        assert (text, score) == ("10th and 11th centuries gave their name to Normandy, a region in France", 10.0)


def test_no_valid_span_gives_an_empty_text_and_minus_infinity(normans):
    chosen, features, start, end = normans
    start[0, 2], end[0, 2] = 5.0, 5.0  # only the question token is in the top-1
    text, score, null = decode_spans(features, start, end, chosen, n_best=1)["n2"]
    assert (text, score, null) == ("", -np.inf, 0.0)
    assert apply_null_threshold({"n2": (text, score, null)}, threshold=1e9) == {"n2": ""}


def test_null_score_is_the_minimum_over_windows(examples, bert_tokenizer):
    chosen = [ex for ex in examples if ex.id == "b2"]
    features = build_features(chosen, bert_tokenizer, max_len=64, doc_stride=16)
    start, end = _oracle_logits(features, 64)
    nulls = [3.0 + window for window in range(len(features))]
    for window, null in enumerate(nulls):
        if features.start_positions[window] == 0:
            start[window, 0], end[window, 0] = null, 0.0
        else:  # the window with the answer is the "confident" one
            start[window, 0], end[window, 0] = -4.0, 0.0
    text, score, null = decode_spans(features, start, end, chosen)["b2"]
    assert text == "1870" and score == 10.0
    assert null == -4.0 == min(start[:, 0] + end[:, 0])


def test_null_threshold_decides_between_span_and_no_answer():
    decoded = {"a": ("x", 5.0, 3.0), "b": ("y", 1.0, 4.0), "c": ("", -np.inf, 0.0)}
    assert apply_null_threshold(decoded) == {"a": "x", "b": "", "c": ""}
    assert apply_null_threshold(decoded, threshold=3.0) == {"a": "x", "b": "y", "c": ""}  # margin 3 is not > 3
    assert apply_null_threshold(decoded, threshold=-2.5) == {"a": "", "b": "", "c": ""}


# ---------------------------------------------------------------------------------------------------------- scoring


def test_normalisation_follows_the_official_rules():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theatre anthem") == "theatre anthem"  # articles only as whole words
    assert normalize_answer("U.S.A.") == "usa"


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Eiffel Tower.", ["Eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel tower", "the tower"]) == 0.0
    assert f1_score("brown fox jumps", ["quick brown fox"]) == pytest.approx(2 / 3)  # P = R = 2/3
    assert f1_score("fox", ["quick brown fox"]) == pytest.approx(0.5)  # P = 1, R = 1/3: 2PR/(P+R) = 1/2
    assert f1_score("fox", ["quick brown fox", "a fox"]) == 1.0  # max over golds ("a" is an article)
    assert f1_score("cat", ["dog"]) == 0.0
    # no-answer semantics: an empty gold list means the empty answer
    assert exact_match("", []) == f1_score("", []) == 1.0
    assert exact_match("anything", []) == f1_score("anything", []) == 0.0
    assert exact_match("", ["France"]) == f1_score("", ["France"]) == 0.0
    # golds that normalise to nothing are dropped (official script), so they do not make "" a right answer
    assert exact_match("", ["the", "Paris"]) == f1_score("", ["the", "Paris"]) == 0.0
    assert exact_match("", ["the"]) == 1.0


def _qa(qid: str, answers: list[str]) -> QAExample:
    return QAExample(qid, "?", " ".join(answers) or "context", answers, [0] * len(answers), not answers)


def test_squad_scores_split_has_answer_and_no_answer():
    golds = [_qa("a1", ["quick brown fox"]), _qa("a2", ["quick brown fox"]), _qa("u1", []), _qa("u2", [])]
    predictions = {"a1": "the quick brown fox", "a2": "fox", "u1": "", "u2": "junk", "extra": "ignored"}
    scores = squad_scores(golds, predictions)
    assert scores["exact"] == pytest.approx(50.0) and scores["f1"] == pytest.approx(100 * (1 + 0.5 + 1 + 0) / 4)
    assert scores["HasAns_exact"] == pytest.approx(50.0) and scores["HasAns_f1"] == pytest.approx(75.0)
    assert scores["NoAns_exact"] == pytest.approx(50.0) and scores["NoAns_f1"] == pytest.approx(50.0)
    assert (scores["total"], scores["HasAns_total"], scores["NoAns_total"]) == (4, 2, 2)
    only_answerable = squad_scores(golds[:2], predictions)
    assert "NoAns_total" not in only_answerable and only_answerable["HasAns_total"] == 2
    with pytest.raises(KeyError, match="u2"):
        squad_scores(golds, {"a1": "", "a2": "", "u1": ""})


def test_no_answer_baseline_is_the_share_of_unanswerable_questions(examples):
    share = 100 * sum(ex.is_impossible for ex in examples) / len(examples)
    scores = no_answer_baseline(examples)
    assert scores["exact"] == pytest.approx(share) and scores["f1"] == pytest.approx(share)
    assert scores["HasAns_exact"] == 0.0 and scores["NoAns_exact"] == 100.0


def test_best_null_threshold_beats_threshold_zero():
    golds = [_qa("a1", ["Paris"]), _qa("a2", ["Rome"]), _qa("u1", []), _qa("u2", [])]
    decoded = {
        "a1": ("Paris", 1.0, 2.0),  # right, but the null score is higher: margin 1 (abstains at threshold 0)
        "a2": ("Rome", 3.0, 2.0),  # right, margin -1
        "u1": ("Lyon", 0.0, 3.0),  # wrong span, margin 3: should abstain
        "u2": ("Milan", 1.0, 1.5),  # wrong span, margin 0.5: lies between a2 and a1
    }
    at_zero = squad_scores(golds, apply_null_threshold(decoded, 0.0))
    threshold, exact, f1 = best_null_threshold(golds, decoded)
    # official sweep from "abstain everywhere" (2/4): a2 (+1) -> 3/4, u2 (-1) -> 2/4, a1 (+1) -> 3/4, u1 -> 2/4;
    # the first peak is at a2's margin
    assert threshold == -1.0 and f1 == pytest.approx(75.0) and exact == pytest.approx(75.0)
    assert f1 == squad_scores(golds, apply_null_threshold(decoded, threshold))["f1"]
    decoded["u2"] = ("Milan", 1.0, 5.0)  # now a1's margin (1) is the best cut: all four right
    threshold, exact, f1 = best_null_threshold(golds, decoded)
    assert threshold == 1.0 and exact == f1 == 100.0
    assert f1 > squad_scores(golds, apply_null_threshold(decoded, 0.0))["f1"] == at_zero["f1"]


def test_hub_rows_convert_to_the_file_the_reader_reads(tmp_path):
    """The hub's squad_v2 holds one flat row per question; converted, they read back as the original file does."""
    original = write(tmp_path, squad_dict(), "original.json")
    rows = [{"id": qa["id"], "title": article["title"], "context": paragraph["context"], "question": qa["question"],
             "answers": {"text": [a["text"] for a in qa["answers"]],
                         "answer_start": [a["answer_start"] for a in qa["answers"]]}}
            for article in squad_dict()["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    converted = squad_json_from_rows(rows)
    assert [article["title"] for article in converted["data"]] == ["Normans", "Short"]
    assert read_squad(write(tmp_path, converted, "converted.json")) == read_squad(original)
