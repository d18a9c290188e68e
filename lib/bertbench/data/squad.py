"""SQuAD-format extractive QA: reading, windowed features, span decoding and the official EM/F1 scoring.

Scope: everything a span probe (a start and an end linear probe per layer over frozen token states) or a QA
fine-tuning needs around the model — the reader for SQuAD 1.1 / 2.0 JSON (and the conversion of the hub's flat
``squad_v2`` rows to it), question + context windows with token-level answer labels, decoding of start/end logits back
to answer texts with a null ("no answer") score, and the evaluation of SQuAD 2.0.

References:
- Rajpurkar et al. 2016, "SQuAD: 100,000+ Questions for Machine Comprehension of Text"; Rajpurkar, Jia and Liang
  2018, "Know What You Don't Know: Unanswerable Questions for SQuAD" (the data format and is_impossible).
- The official SQuAD 2.0 evaluation script (``evaluate-v2.0.py``): answer normalisation, token F1, the HasAns/NoAns
  split and ``find_best_thresh`` are reimplemented here from its definitions.
- Devlin et al. 2019 (BERT), ``run_squad.py``: the null score is the minimum over an example's windows of
  start[CLS] + end[CLS]; a span is predicted when its score beats the null score by more than a threshold.

Conventions: a window's "no answer" label is position 0, where the tokenizer's template puts CLS / ``<s>`` (checked,
never assumed from token ids). ``doc_stride`` follows the ``tokenizers`` meaning: the number of context tokens two
consecutive windows share.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .examples import DataError, check_text, warn_empty_texts

# How far (in characters) a wrong answer_start may be from where the answer text really occurs before it is an error;
# some SQuAD-format conversions count characters differently (e.g. after stripping or re-encoding the context).
ANSWER_START_TOLERANCE = 20


@dataclasses.dataclass
class QAExample:
    """One question about one context.

    Attributes:
        id: the question id (unique within a file).
        question: the question text.
        context: the paragraph the answer is extracted from.
        answers: gold answer texts; empty for unanswerable questions.
        answer_starts: character offset of each answer in ``context``, parallel to ``answers``.
        is_impossible: True for SQuAD 2.0 questions without an answer in the context.
    """

    id: str
    question: str
    context: str
    answers: list[str]
    answer_starts: list[int]
    is_impossible: bool


# ---------------------------------------------------------------------------------------------------------- reading


def _get(obj: object, key: str, kind: type | tuple[type, ...], where: str, path: Path) -> object:
    """``obj[key]`` checked for presence and type; DataError naming the file and JSON location otherwise."""
    if not isinstance(obj, dict):
        raise DataError(f"{path}: {where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise DataError(f"{path}: {where}: missing {key!r}")
    value = obj[key]
    # bool is an int subclass: an answer_start of `true` is a data error, not offset 1
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"{path}: {where}: {key!r} should be {names}, got {type(value).__name__}")
    return value


def _locate_answer(context: str, text: str, start: int) -> int | None:
    """Where ``text`` occurs in ``context``: ``start`` itself, else the nearest occurrence within the tolerance."""
    if context[start:start + len(text)] == text:
        return start
    best = None
    position = context.find(text, max(0, start - ANSWER_START_TOLERANCE))
    while position != -1 and position <= start + ANSWER_START_TOLERANCE:
        if best is None or abs(position - start) < abs(best - start):
            best = position
        position = context.find(text, position + 1)
    return best


def read_squad(path: str | Path) -> list[QAExample]:
    """Read a SQuAD 1.1 or 2.0 JSON file.

    Answer starts that are off by at most ``ANSWER_START_TOLERANCE`` characters are corrected to the nearest
    occurrence of the answer text; ``plausible_answers`` (2.0) are ignored. Empty or whitespace-only questions and
    contexts are kept and reported in one DataWarning. Unlike the other readers, bytes that are not UTF-8 are an
    error: JSON is UTF-8 by definition, and answer_start counts characters of the text as written.

    Args:
        path: the JSON file (``{"version", "data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``).

    Returns:
        One :class:`QAExample` per question, in file order.

    Raises:
        DataError: the file is missing, not UTF-8 or not JSON, has no questions, or an entry is malformed; the
            message names the file and the JSON location (``data[3].paragraphs[1].qas[0]: missing 'question'``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        root = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except (ValueError, RecursionError) as err:  # an integer of > 4300 digits; arrays nested too deep
        raise DataError(f"{path}: JSON that Python cannot hold ({type(err).__name__}: {err})") from None
    if not isinstance(root, dict) or "data" not in root:
        raise DataError(f"{path}: missing top-level 'data' (expected a SQuAD file: {{'version', 'data': [...]}})")
    data = _get(root, "data", list, "top level", path)

    examples: list[QAExample] = []
    seen: dict[str, str] = {}  # id -> where it was first seen, for the duplicate message
    empty: list[str] = []
    for i, article in enumerate(data):
        paragraphs = _get(article, "paragraphs", list, f"data[{i}]", path)
        for j, paragraph in enumerate(paragraphs):
            where_paragraph = f"data[{i}].paragraphs[{j}]"
            context = check_text(_get(paragraph, "context", str, where_paragraph, path), f"{path}: {where_paragraph}",
                                 "context")
            if not context.strip():
                empty.append(f"{path}: {where_paragraph}: field 'context'")
            for k, qa in enumerate(_get(paragraph, "qas", list, where_paragraph, path)):
                where = f"{where_paragraph}.qas[{k}]"
                qid = str(_get(qa, "id", (str, int), where, path))
                if qid in seen:
                    raise DataError(f"{path}: {where}: duplicate id {qid!r} (first at {seen[qid]})")
                seen[qid] = where
                question = check_text(_get(qa, "question", str, where, path), f"{path}: {where}", "question")
                if not question.strip():
                    empty.append(f"{path}: {where}: field 'question'")
                is_impossible = qa.get("is_impossible", False)  # absent in SQuAD 1.1: every question answerable
                if not isinstance(is_impossible, bool):
                    raise DataError(f"{path}: {where}: 'is_impossible' should be true or false, got {is_impossible!r}")
                raw_answers = qa.get("answers", [])
                if not isinstance(raw_answers, list):
                    raise DataError(f"{path}: {where}: 'answers' should be a list, got {type(raw_answers).__name__}")
                if is_impossible and raw_answers:
                    raise DataError(f"{path}: {where}: is_impossible is true but {len(raw_answers)} answer(s) given")
                if not is_impossible and not raw_answers:
                    raise DataError(f"{path}: {where}: answerable question (is_impossible false or absent) "
                                    f"has no answers")
                answers, starts = [], []
                for a, answer in enumerate(raw_answers):
                    where_answer = f"{where}.answers[{a}]"
                    answer_text = _get(answer, "text", str, where_answer, path)
                    start = _get(answer, "answer_start", int, where_answer, path)
                    if not answer_text.strip():
                        raise DataError(f"{path}: {where_answer}: empty answer text")
                    if not 0 <= start < len(context):
                        raise DataError(f"{path}: {where_answer}: answer_start {start} is outside the context "
                                        f"(0..{len(context) - 1})")
                    found = _locate_answer(context, answer_text, start)
                    if found is None:
                        raise DataError(
                            f"{path}: {where_answer}: text {answer_text!r} does not occur at answer_start {start} "
                            f"(context there: {context[start:start + len(answer_text)]!r}) nor within "
                            f"{ANSWER_START_TOLERANCE} characters of it")
                    answers.append(answer_text)
                    starts.append(found)
                examples.append(QAExample(qid, question, context, answers, starts, is_impossible))
    if not examples:
        raise DataError(f"{path}: no questions")
    warn_empty_texts(path, empty)
    return examples


def squad_json_from_rows(rows: Iterable[Mapping]) -> dict:
    """The SQuAD 2.0 JSON object (what :func:`read_squad` reads) of flat question rows as the hub's ``squad_v2``
    dataset holds them: ``id``, ``title``, ``context``, ``question`` and ``answers`` =
    ``{"text": [...], "answer_start": [...]}`` (empty lists: unanswerable). Articles and paragraphs keep the order in
    which they first appear; ``is_impossible`` is set where a question has no answer.
    """
    articles: dict[str, dict[str, list[dict]]] = {}  # title -> context -> questions
    for row in rows:
        answers = [{"text": text, "answer_start": int(start)}
                   for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True)]
        article = articles.setdefault(row.get("title", ""), {})
        article.setdefault(row["context"], []).append(
            {"id": row["id"], "question": row["question"], "answers": answers, "is_impossible": not answers})
    return {"version": "v2.0", "data": [
        {"title": title, "paragraphs": [{"context": context, "qas": qas} for context, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()]}


# --------------------------------------------------------------------------------------------------------- features


@dataclasses.dataclass
class QAFeatures:
    """Question + context windows, one row per window (an example with a long context has several).

    Attributes:
        input_ids: token ids of each window (special tokens included, unpadded).
        token_type_ids: segment ids of each window, or None when the tokenizer has none (RoBERTa).
        example_index: the index (into the examples list) each window came from.
        offsets: per token, the (start, end) character span in the context for context tokens; None for question
            and special tokens.
        start_positions: token position of the answer start in the window; 0 (CLS / ``<s>``) = no answer here.
        end_positions: token position of the answer end (inclusive); 0 = no answer here.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    example_index: list[int]
    offsets: list[list[tuple[int, int] | None]]
    start_positions: list[int]
    end_positions: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        """Tokens per window, for length-grouped training batches."""
        return [len(ids) for ids in self.input_ids]

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.input_ids[i]}
        if self.token_type_ids is not None:
            item["token_type_ids"] = self.token_type_ids[i]
        item["start_positions"] = self.start_positions[i]
        item["end_positions"] = self.end_positions[i]
        return item


def _truncate_questions(questions: list[str], tokenizer, max_query_len: int) -> tuple[list[str], list[int]]:
    """Cut questions to at most ``max_query_len`` tokens (by text, at a token's end); also return their lengths."""
    # A fast tokenizer cannot truncate the first sequence of a pair while windowing the second, so long questions
    # are cut as text at the end offset of their last kept token, then re-tokenized to confirm the length.
    kept, lengths = [], []
    if not questions:
        return kept, lengths
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    for question, offsets in zip(questions, encoded["offset_mapping"], strict=True):
        keep = max_query_len
        while len(offsets) > max_query_len and keep > 0:
            question = question[:offsets[keep - 1][1]]
            offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            keep -= 1  # re-tokenizing a cut word can add a piece: cut one token earlier and try again
        kept.append(question)
        lengths.append(len(offsets))
    return kept, lengths


def _answer_tokens(offsets: list[tuple[int, int] | None], start: int, end: int) -> tuple[int, int]:
    """Token span (inclusive) of the characters [start, end) in one window, or (0, 0) if not fully inside it."""
    context_tokens = [t for t, span in enumerate(offsets) if span is not None]
    if not context_tokens:
        return 0, 0
    if offsets[context_tokens[0]][0] > start or offsets[context_tokens[-1]][1] < end:
        return 0, 0
    # first token ending after the answer starts, last token starting before it ends: robust to offsets that
    # include a leading space (byte-level BPE without trimming) and to zero-width tokens
    first = next((t for t in context_tokens if offsets[t][1] > start), None)
    last = next((t for t in reversed(context_tokens) if offsets[t][0] < end), None)
    if first is None or last is None or first > last:
        return 0, 0  # the answer's characters produced no token (removed by the normaliser): not learnable here
    return first, last


def build_features(examples: Sequence[QAExample], tokenizer, max_len: int = 384, doc_stride: int = 128,
                   max_query_len: int = 64) -> QAFeatures:
    """Tokenize question + context into overlapping windows and label each window with the answer's token span.

    A window is labelled with the first gold answer when that answer lies fully inside it; otherwise (and for
    unanswerable questions) with 0/0, the position of CLS / ``<s>``.

    Args:
        examples: the examples, e.g. from :func:`read_squad`.
        tokenizer: a fast (``tokenizers``-backed) tokenizer; offsets and sequence ids come from it.
        max_len: tokens per window, special tokens included.
        doc_stride: context tokens shared by consecutive windows (must be less than the context tokens per window).
        max_query_len: questions longer than this (in tokens) are truncated first.

    Returns:
        The windows of all examples, in example order.

    Raises:
        ValueError: a slow tokenizer, a template that does not start with a special token, or a ``max_len`` that
            leaves no more than ``doc_stride`` context tokens beside a question (the message gives the numbers).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: offsets need a tokenizers backend")
    if max_query_len < 1 or doc_stride < 0:
        raise ValueError(f"need max_query_len >= 1 and doc_stride >= 0, got {max_query_len} and {doc_stride}")
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    questions, question_lens = _truncate_questions([ex.question.lstrip() for ex in examples], tokenizer,
                                                   max_query_len)
    for example, question_len in zip(examples, question_lens, strict=True):
        room = max_len - n_special - question_len
        # the tokenizers backend panics (a BaseException, not a ValueError) when the stride is not below the room
        if room <= doc_stride:
            raise ValueError(
                f"max_len={max_len} leaves {room} context tokens per window beside the {question_len}-token question "
                f"of example {example.id!r} and {n_special} special tokens; need more than doc_stride={doc_stride} "
                f"(raise max_len, or lower max_query_len={max_query_len} or doc_stride)")

    features = QAFeatures([], None, [], [], [], [])
    batch_size = 1000  # bounded memory for the 130k-question train set
    for first in range(0, len(examples), batch_size):
        batch = examples[first:first + batch_size]
        encoded = tokenizer(
            questions[first:first + batch_size], [ex.context for ex in batch], truncation="only_second",
            max_length=max_len, stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
        )
        type_ids = encoded.get("token_type_ids")
        if type_ids is not None and features.token_type_ids is None:
            features.token_type_ids = []
        for window, local_index in enumerate(encoded["overflow_to_sample_mapping"]):
            sequence_ids = encoded.sequence_ids(window)
            if sequence_ids[0] is not None:
                raise ValueError(f"{type(tokenizer).__name__}'s pair template does not start with a special token: "
                                 f"position 0 cannot be the no-answer position")
            offsets = [tuple(span) if seq == 1 else None
                       for span, seq in zip(encoded["offset_mapping"][window], sequence_ids, strict=True)]
            example = batch[local_index]
            start, end = 0, 0
            if not example.is_impossible:
                char_start = example.answer_starts[0]
                start, end = _answer_tokens(offsets, char_start, char_start + len(example.answers[0]))
            features.input_ids.append(list(encoded["input_ids"][window]))
            if type_ids is not None:
                features.token_type_ids.append(list(type_ids[window]))
            features.example_index.append(first + local_index)
            features.offsets.append(offsets)
            features.start_positions.append(start)
            features.end_positions.append(end)
    return features


# --------------------------------------------------------------------------------------------------------- decoding


def decode_spans(features: QAFeatures, start_logits: np.ndarray, end_logits: np.ndarray,
                 examples: list[QAExample], max_answer_len: int = 30,
                 n_best: int = 20) -> dict[str, tuple[str, float, float]]:
    """Best non-null answer and null score of every example, from per-window start/end logits.

    Candidates, as in BERT's ``run_squad.py``: the ``n_best`` highest start and end positions of each window (over
    all its positions), kept when both ends are context tokens, start <= end and the span has at most
    ``max_answer_len`` tokens; a span's score is start + end logit. The null score is the minimum over the example's
    windows of start[0] + end[0].

    Args:
        features: the windows from :func:`build_features`.
        start_logits: (num_features, T) start scores, T >= the longest window; positions past a window's length
            (padding on the right) are ignored.
        end_logits: (num_features, T) end scores.
        examples: the examples the features were built from (same list, same order).
        max_answer_len: longest answer in tokens.
        n_best: how many top start and top end positions of each window are combined.

    Returns:
        id -> (answer text sliced from the context, its score, null score); ("", -inf, null) if no valid span.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    longest = max((len(ids) for ids in features.input_ids), default=0)
    for name, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
        if logits.ndim != 2 or logits.shape[0] != len(features) or logits.shape[1] < longest:
            raise ValueError(f"{name} has shape {logits.shape}; expected ({len(features)}, T) with T >= {longest}")
    if max_answer_len < 1 or n_best < 1:
        raise ValueError(f"need max_answer_len >= 1 and n_best >= 1, got {max_answer_len} and {n_best}")
    if features.example_index and max(features.example_index) >= len(examples):
        raise ValueError(f"features refer to example {max(features.example_index)} but only {len(examples)} "
                         f"examples were given: pass the list the features were built from")

    best: dict[int, tuple[float, int, int, int]] = {}  # example -> (score, window, start token, end token)
    null: dict[int, float] = {}
    for window, example_index in enumerate(features.example_index):
        length = len(features.input_ids[window])
        starts, ends = start_logits[window, :length], end_logits[window, :length]  # (L,)
        null[example_index] = min(null.get(example_index, np.inf), float(starts[0] + ends[0]))
        is_context = np.array([span is not None for span in features.offsets[window]])  # (L,)
        top_starts = np.argsort(-starts, kind="stable")[:n_best]  # (S,)
        top_ends = np.argsort(-ends, kind="stable")[:n_best]  # (E,)
        span_len = top_ends[None, :] - top_starts[:, None] + 1  # (S, E)
        valid = (is_context[top_starts][:, None] & is_context[top_ends][None, :]
                 & (span_len >= 1) & (span_len <= max_answer_len))
        scores = np.where(valid, starts[top_starts][:, None] + ends[top_ends][None, :], -np.inf)  # (S, E)
        flat = int(np.argmax(scores))
        score = float(scores.flat[flat])
        if score > best.get(example_index, (-np.inf,))[0]:
            best[example_index] = (score, window, int(top_starts[flat // scores.shape[1]]),
                                   int(top_ends[flat % scores.shape[1]]))

    decoded = {}
    for example_index in sorted(null):
        example = examples[example_index]
        if example_index in best:
            score, window, start, end = best[example_index]
            offsets = features.offsets[window]
            # strip: byte-level BPE offsets include the leading space unless the tokenizer trims them
            text = example.context[offsets[start][0]:offsets[end][1]].strip()
        else:
            text, score = "", -np.inf
        decoded[example.id] = (text, score, null[example_index])
    return decoded


def apply_null_threshold(decoded: Mapping[str, tuple[str, float, float]], threshold: float = 0.0) -> dict[str, str]:
    """Predicted texts: "" (no answer) where null_score - best_score > threshold, else the best span's text."""
    return {qid: "" if null_score - score > threshold else text for qid, (text, score, null_score) in decoded.items()}


# ---------------------------------------------------------------------------------------------------------- scoring

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, drop punctuation, drop articles a/an/the, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _gold_texts(golds: Sequence[str]) -> list[str]:
    # as the official script: golds that normalise to nothing are dropped; no gold left means "no answer" = [""]
    return [gold for gold in golds if normalize_answer(gold)] or [""]


def exact_match(prediction: str, golds: list[str]) -> float:
    """1.0 if the normalised prediction equals a normalised gold (no golds: the empty answer), else 0.0."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(gold) for gold in _gold_texts(golds)))


def _token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)  # no-answer: right only when both are empty
    overlap = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: list[str]) -> float:
    """Token-overlap F1 of the normalised texts, the maximum over golds; an empty gold list means "no answer"."""
    return max(_token_f1(prediction, gold) for gold in _gold_texts(golds))


def _per_question(examples: Sequence[QAExample], predictions: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
    missing = [ex.id for ex in examples if ex.id not in predictions]
    if missing:
        raise KeyError(f"no prediction for {len(missing)} question(s), e.g. {missing[:5]}")
    exact = np.array([exact_match(predictions[ex.id], ex.answers) for ex in examples])
    f1 = np.array([f1_score(predictions[ex.id], ex.answers) for ex in examples])
    return exact, f1


def squad_scores(examples: Sequence[QAExample], predictions: Mapping[str, str]) -> dict[str, float]:
    """EM and F1 (percent) as the official SQuAD 2.0 script reports them.

    Args:
        examples: the gold examples; every id needs a prediction (extra predictions are ignored).
        predictions: id -> predicted text ("" = no answer).

    Returns:
        ``exact``, ``f1``, ``total``, and ``HasAns_*`` / ``NoAns_*`` (exact, f1, total) for the groups present.

    Raises:
        KeyError: a question has no prediction (the message names it).
    """
    exact, f1 = _per_question(examples, predictions)
    has_answer = np.array([bool(ex.answers) for ex in examples], dtype=bool)
    scores = {"exact": 100.0 * float(exact.mean()) if len(exact) else 0.0,
              "f1": 100.0 * float(f1.mean()) if len(f1) else 0.0, "total": len(examples)}
    for group, mask in (("HasAns", has_answer), ("NoAns", ~has_answer)):
        if mask.any():
            scores[f"{group}_exact"] = 100.0 * float(exact[mask].mean())
            scores[f"{group}_f1"] = 100.0 * float(f1[mask].mean())
            scores[f"{group}_total"] = int(mask.sum())
    return scores


def best_null_threshold(examples: Sequence[QAExample],
                        decoded: Mapping[str, tuple[str, float, float]]) -> tuple[float, float, float]:
    """The null threshold that maximises F1, found as the official script's ``find_best_thresh`` does.

    Questions are sorted by their no-answer margin (null_score - best_score) and answered one margin at a time,
    starting from "no answer everywhere"; the threshold is the margin where F1 peaks (the first peak, so the smallest
    threshold). Unlike the official loop, questions with equal margins are answered together, since no threshold
    can separate them.

    Args:
        examples: the gold examples.
        decoded: the output of :func:`decode_spans` for them.

    Returns:
        (threshold for :func:`apply_null_threshold`, exact, f1) — scores in percent at that threshold.
    """
    missing = [ex.id for ex in examples if ex.id not in decoded]
    if missing:
        raise KeyError(f"no decoded span for {len(missing)} question(s), e.g. {missing[:5]}")
    margins = {qid: null_score - score for qid, (_, score, null_score) in decoded.items()}
    # change in total F1 when a question goes from "no answer" to its best span: gains the span's F1 if answerable,
    # loses the free point of a correct abstention if not (nothing if the span text is empty anyway)
    gains = collections.defaultdict(float)
    for ex in examples:
        text = decoded[ex.id][0]
        gains[margins[ex.id]] += f1_score(text, ex.answers) - f1_score("", ex.answers)
    finite = [margin for margin in gains if np.isfinite(margin)]
    # "no answer everywhere" needs a threshold below every margin (the official script reports 0.0 here)
    threshold = min(0.0, min(finite) - 1.0) if finite else 0.0
    total, best_total = 0.0, 0.0
    for margin in sorted(finite):
        total += gains[margin]
        if total > best_total + 1e-12:
            best_total, threshold = total, margin
    scores = squad_scores(examples, apply_null_threshold(decoded, threshold))
    return float(threshold), scores["exact"], scores["f1"]


def no_answer_baseline(examples: Sequence[QAExample]) -> dict[str, float]:
    """Scores of answering "no answer" everywhere (EM = F1 = the percentage of unanswerable questions)."""
    return squad_scores(examples, {ex.id: "" for ex in examples})
