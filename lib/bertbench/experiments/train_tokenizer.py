"""Notebook 01: train WordPiece and byte-level BPE tokenizers with the ``tokenizers`` library, save them so that
``AutoTokenizer.from_pretrained`` loads them back ready for BERT or RoBERTa, and measure them.

- ``wordpiece`` (BERT's and cramming's choice): BERT normaliser (clean text, strip accents, optional lowercase), BERT
  pre-tokeniser, optionally every digit its own token.
- ``bpe`` (DitBERT's choice): NFKC-compatible normalisation with accents stripped, digits split, byte-level
  pre-tokeniser (no unknown characters by construction), minimum pair frequency.
- ``bpe-roberta``: the same byte-level BPE with RoBERTa's special tokens and template instead of BERT's.

``wordpiece`` and ``bpe`` get BERT's special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4 in this order), a
post-processor that adds ``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]`` (token types 0/1). ``bpe-roberta`` gets
RoBERTa's ``<s> <pad> </s> <unk> <mask>`` (ids 0-4 in this order: fairseq's dictionary opens with the first four;
RoBERTa appends ``<mask>`` after its vocabulary, here it joins them at id 4), ``<s> A </s>`` and
``<s> A </s></s> B </s>`` with no token_type_ids (RoBERTa has no segments), and ``<mask>`` taking the space before
it (lstrip) as RoBERTa's does. (DitBERT's own tokenizer had ``[PAD] [START] [END] [MASK] [DOC]``, pad id 0, no unknown
token and no template: the ``<s> </s> <pad>`` ids it hard-coded were those of its roberta-base baseline.) Every kind
saves a ``model_max_length``. Reported per tokenizer: vocabulary size, training time, fertility (tokens per whitespace
word) and unknown-token rate on an evaluation corpus, and the token-frequency table of the training corpus (DitBERT
sampled replacement tokens from it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import BaseConfig, check_choice, check_range
from ..data.corpus import Corpus, batched, open_corpus
from ..paths import runs_dir

NOTEBOOK = "01_train_tokenizer"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # BERT's, given ids 0-4 in this order
ROBERTA_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # RoBERTa's, ids 0-4 in this order
KINDS = ("wordpiece", "bpe", "bpe-roberta")
DEFAULT_KINDS = ("wordpiece", "bpe")  # what notebook 01 trains unless told (the committed runs' choice)
BYTE_LEVEL = ("bpe", "bpe-roberta")


def special_tokens(kind: str) -> tuple[str, ...]:
    """The special tokens of tokenizer ``kind`` in id order (the trainers number them 0, 1, ... as listed)."""
    return ROBERTA_SPECIAL_TOKENS if kind == "bpe-roberta" else SPECIAL_TOKENS


@dataclasses.dataclass(frozen=True)
class TokenizerConfig(BaseConfig):
    """Notebook 01: which tokenizers to train, on what, and how to measure them. Every field is ``BB_<FIELD>``."""

    preset: str = "cpu"
    corpus: str = "wikipedia"  # see bertbench.data.corpus.open_corpus: wikipedia, a path, hf:<name>:<split>:<column>
    max_docs: int = 0  # first N documents of the corpus (0 = all)
    kinds: tuple[str, ...] = DEFAULT_KINDS  # any of KINDS, e.g. wordpiece,bpe,bpe-roberta
    vocab_size: int = 16384
    min_frequency: int = 2
    lowercase: bool = True  # uncased, like bert-base-uncased (the packaged MiniLM's vocabulary)
    split_digits: bool = True
    model_max_length: int = 512
    eval_corpus: str = "wikitext2-valid"
    eval_max_docs: int = 0
    compare_with: str = "minilm"  # a tokenizer to measure side by side ("" = none)
    frequency_table: bool = True

    PRESETS = {
        "tiny": dict(max_docs=300, vocab_size=1000, eval_max_docs=3, model_max_length=128),
        "cpu": {},
        "gpu": {},  # tokenizer training runs on the CPU; on a GPU machine it is the cpu preset
        "full": dict(vocab_size=32768),
    }

    def validate(self) -> None:
        super().validate()
        if not self.kinds:
            raise ValueError("kinds: at least one of " + ", ".join(KINDS))
        for kind in self.kinds:
            check_choice("kinds", kind, KINDS)
        check_range("vocab_size", self.vocab_size, len(SPECIAL_TOKENS) + 256)
        check_range("min_frequency", self.min_frequency, 1)
        check_range("model_max_length", self.model_max_length, 8)
        check_range("max_docs", self.max_docs, 0)
        check_range("eval_max_docs", self.eval_max_docs, 0)


def corpus_slug(spec: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(spec).name or spec)[:40]


def tokenizer_dir(cfg: TokenizerConfig, kind: str) -> Path:
    """Where notebook 01 saves tokenizer ``kind`` for this config (outside git)."""
    docs = f"-d{cfg.max_docs}" if cfg.max_docs else ""
    case = "uncased" if cfg.lowercase else "cased"
    return runs_dir() / "tokenizers" / f"{kind}-{case}-v{cfg.vocab_size}-{corpus_slug(cfg.corpus)}{docs}"


def build_tokenizer(kind: str, lowercase: bool = True, split_digits: bool = True):
    """An untrained ``tokenizers.Tokenizer`` with the normaliser, pre-tokeniser and decoder of ``kind``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    digits = [pre_tokenizers.Digits(individual_digits=True)] if split_digits else []
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, strip_accents=True, lowercase=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(), *digits])
        tokenizer.decoder = decoders.WordPiece()
    elif kind in BYTE_LEVEL:
        # the scheme's unknown token (never produced: every byte is in the alphabet) so that unk_token_id is defined
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>" if kind == "bpe-roberta" else "[UNK]"))
        # NFKD then dropping combining marks = NFKC's compatibility folding with accents stripped; NFC recomposes
        steps = [normalizers.NFKD(), normalizers.StripAccents(), normalizers.NFC()]
        tokenizer.normalizer = normalizers.Sequence(steps + ([normalizers.Lowercase()] if lowercase else []))
        # byte-level first (" 1,234" -> "Ġ1" "," "234"), then digits apart ("Ġ" "1" "," "2" "3" "4"), as Llama does:
        # splitting digits first would give every digit its own invented leading space
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.ByteLevel(add_prefix_space=True), *digits])
        tokenizer.decoder = decoders.ByteLevel()
    else:
        raise ValueError(f"tokenizer kind {kind!r} is not one of {KINDS}")
    return tokenizer


def add_bert_post_processor(tokenizer) -> None:
    """``[CLS] A [SEP]`` for single texts, ``[CLS] A [SEP] B [SEP]`` with token types 0/1 for pairs."""
    from tokenizers import processors

    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])


def add_roberta_post_processor(tokenizer) -> None:
    """RoBERTa's template: ``<s> A </s>`` for single texts, ``<s> A </s></s> B </s>`` for pairs, all token types 0;
    offsets trimmed of the byte-level leading space as in RoBERTa's own tokenizer."""
    from tokenizers import processors

    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>")), trim_offsets=True,
        add_prefix_space=True)


def roberta_mask_token():
    """RoBERTa's ``<mask>``: it takes the space before it (``"a <mask>"`` -> ``Ġa <mask>``, as a space-prefixed word
    would be one token), is matched before normalisation (lowercasing never touches it) and is special."""
    from tokenizers import AddedToken

    return AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)


def wrap_for_transformers(tokenizer, model_max_length: int, kind: str = "wordpiece"):
    """The trained tokenizer as a transformers fast tokenizer with its special tokens named."""
    from transformers import PreTrainedTokenizerFast

    if kind == "bpe-roberta":
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, model_max_length=model_max_length, bos_token="<s>", eos_token="</s>",
            cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token=roberta_mask_token(),
            model_input_names=["input_ids", "attention_mask"])  # no segment embeddings to feed
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model_max_length, pad_token="[PAD]", unk_token="[UNK]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def train_tokenizer(kind: str, documents: Iterable[str], vocab_size: int, min_frequency: int = 2,
                    lowercase: bool = True, split_digits: bool = True, model_max_length: int = 512,
                    length: int | None = None):
    """Train ``kind`` on a stream of documents; return a transformers fast tokenizer (not yet saved)."""
    from tokenizers import pre_tokenizers, trainers

    tokenizer = build_tokenizer(kind, lowercase, split_digits)
    specials = list(special_tokens(kind))
    if kind == "bpe-roberta":  # the trainer registers the added token as given: <mask> with its lstrip
        specials[specials.index("<mask>")] = roberta_mask_token()
    common = dict(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False)
    if kind == "wordpiece":
        trainer = trainers.WordPieceTrainer(**common)
    else:
        trainer = trainers.BpeTrainer(**common, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(tqdm(documents, desc=f"train {kind}", unit=" docs", total=length,
                                       mininterval=2.0, leave=False), trainer=trainer, length=length)
    for position, token in enumerate(special_tokens(kind)):  # the trainers put special tokens first, in this order
        assert tokenizer.token_to_id(token) == position, f"{token} is not id {position}"
    if kind == "bpe-roberta":
        add_roberta_post_processor(tokenizer)
    else:
        add_bert_post_processor(tokenizer)
    return wrap_for_transformers(tokenizer, model_max_length, kind)


def plain_backend(tokenizer):
    """A copy of the fast tokenizer's backend with truncation and padding off (the packaged MiniLM truncates at
    128 tokens, which would undercount every long document)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def token_frequencies(tokenizer, documents: Iterable[str], desc: str = "count tokens") -> pd.DataFrame:
    """How often each vocabulary entry occurs in ``documents`` (no special tokens added).

    Returns:
        one row per token id: token_id, token, count, frequency (count / all tokens), sorted by id.
    """
    backend = plain_backend(tokenizer)
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    for batch in tqdm(batched(documents, 512), desc=desc, unit=" batches", mininterval=2.0, leave=False):
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            counts += np.bincount(np.asarray(encoding.ids, dtype=np.int64), minlength=len(counts))[:len(counts)]
    total = max(1, int(counts.sum()))
    return pd.DataFrame({"token_id": np.arange(len(counts)), "token": tokenizer.convert_ids_to_tokens(
        list(range(len(counts)))), "count": counts, "frequency": counts / total})


def tokenizer_stats(tokenizer, documents: Iterable[str]) -> dict[str, float]:
    """Fertility (tokens per whitespace-separated word), unknown-token rate and size on ``documents``."""
    backend = plain_backend(tokenizer)
    unk_id = tokenizer.unk_token_id
    words = tokens = unknown = chars = 0
    for batch in batched(documents, 256):
        words += sum(len(doc.split()) for doc in batch)
        chars += sum(len(doc) for doc in batch)
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            tokens += len(encoding.ids)
            unknown += sum(1 for token_id in encoding.ids if token_id == unk_id) if unk_id is not None else 0
    if words == 0:
        raise ValueError("evaluation corpus has no words")
    return {"vocab_size": len(tokenizer), "fertility": tokens / words, "unk_rate": unknown / max(1, tokens),
            "chars_per_token": chars / max(1, tokens), "eval_tokens": tokens, "eval_words": words}


def check_saved_tokenizer(folder: str | Path, model_max_length: int, kind: str = "wordpiece") -> None:
    """Load ``folder`` with ``AutoTokenizer`` and assert what BERT (RoBERTa for ``bpe-roberta``) needs from it: the
    special tokens at their ids, the single and pair templates, the model max length (raises AssertionError)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    for name in ("cls", "sep", "pad", "mask", "unk"):
        assert getattr(tokenizer, f"{name}_token_id") is not None, f"{folder}: no {name.upper()} token"
    ids = tokenizer.convert_tokens_to_ids(list(special_tokens(kind)))
    assert ids == list(range(len(ids))), f"{folder}: special tokens {special_tokens(kind)} have ids {ids}"
    assert tokenizer.model_max_length == model_max_length, f"{folder}: model_max_length {tokenizer.model_max_length}"
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    text_a, text_b = (tokenizer("a b", add_special_tokens=False)["input_ids"],
                      tokenizer("c", add_special_tokens=False)["input_ids"])
    middle = [sep, sep] if kind == "bpe-roberta" else [sep]  # RoBERTa: <s> A </s></s> B </s>
    assert tokenizer("a b")["input_ids"] == [cls, *text_a, sep], f"{folder}: a single text is not CLS A SEP"
    assert tokenizer("a b", "c")["input_ids"] == [cls, *text_a, *middle, *text_b, sep], \
        f"{folder}: a pair does not get {'CLS A SEP SEP B SEP' if kind == 'bpe-roberta' else 'CLS A SEP B SEP'}"


def train_and_save(cfg: TokenizerConfig, kind: str, corpus: Corpus | None = None) -> tuple[Path, float, int]:
    """Train tokenizer ``kind`` of ``cfg``, save it (with its frequency table) and check the saved folder.

    Returns:
        (folder, training seconds, documents read)
    """
    corpus = corpus or open_corpus(cfg.corpus, cfg.max_docs)
    folder = tokenizer_dir(cfg, kind)
    started = time.perf_counter()
    n_docs = 0

    def counted() -> Iterator[str]:
        nonlocal n_docs
        for document in corpus:
            n_docs += 1
            yield document

    tokenizer = train_tokenizer(kind, counted(), cfg.vocab_size, cfg.min_frequency, cfg.lowercase,
                                cfg.split_digits, cfg.model_max_length, length=cfg.max_docs or None)
    seconds = time.perf_counter() - started
    tokenizer.save_pretrained(folder)
    check_saved_tokenizer(folder, cfg.model_max_length, kind)
    if cfg.frequency_table:
        token_frequencies(tokenizer, corpus).to_csv(folder / "token_frequencies.csv", index=False)
    return folder, seconds, n_docs


def ensure_tokenizer(cfg: TokenizerConfig, kind: str) -> Path:
    """Notebook 01's tokenizer ``kind`` for ``cfg``: the saved folder, trained now if it does not exist yet."""
    folder = tokenizer_dir(cfg, kind)
    if not (folder / "tokenizer.json").is_file():
        print(f"no {kind} tokenizer at {folder}: training it now (notebook 01 does the same)")
        train_and_save(cfg, kind)
    return folder


def run_tokenizers(cfg: TokenizerConfig, results_path: str | Path) -> pd.DataFrame:
    """Train every tokenizer of ``cfg``, measure it (and ``compare_with``) on the evaluation corpus, write rows.

    Returns:
        one row per tokenizer: name, folder, vocab_size, train_s, fertility, unk_rate, chars_per_token.
    """
    from transformers import AutoTokenizer

    from ..models import load_tokenizer
    from ..results import check_writable, make_rows, write_results
    from ..train import device_description

    check_writable(results_path)
    corpus = open_corpus(cfg.corpus, cfg.max_docs)
    evaluation = open_corpus(cfg.eval_corpus, cfg.eval_max_docs)
    device = device_description(torch.device("cpu"))
    summary, rows = [], []
    candidates = [(kind, None) for kind in cfg.kinds] + ([(cfg.compare_with, "compare")] if cfg.compare_with else [])
    for name, role in candidates:
        started = time.perf_counter()
        if role is None:
            folder, train_s, n_docs = train_and_save(cfg, name, corpus)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            label, init = folder.name, f"trained:{corpus_slug(cfg.corpus)}"
        else:
            tokenizer, folder, train_s, n_docs = load_tokenizer(name), None, float("nan"), 0
            label, init = name, "packaged" if name == "minilm" else "pretrained"
        stats = tokenizer_stats(tokenizer, evaluation)
        print(f"{label}: vocabulary {stats['vocab_size']}, fertility {stats['fertility']:.3f} tokens/word, "
              f"unknown {stats['unk_rate']:.4%} on {cfg.eval_corpus}" + (f", trained in {train_s:.1f} s" if
                                                                          role is None else ""))
        entries = [(cfg.eval_corpus, 0, key, value) for key, value in stats.items()]
        if role is None:
            entries += [("train", 0, "train_s", train_s), ("train", 0, "documents", n_docs)]
        common = {
            "run_id": f"tok-{label}-{cfg.preset}", "notebook": NOTEBOOK, "preset": cfg.preset, "model": label,
            "task": "tokenizer", "seed": 0, "init": init, "head_init": "none", "selection": "none",
            "max_len": tokenizer.model_max_length if tokenizer.model_max_length < 10**6 else 0,
            "train_examples": n_docs, "device": device, "wall_s": round(time.perf_counter() - started, 2),
            "config": cfg.to_json(),
        }
        rows += make_rows(common, entries)
        summary.append({"tokenizer": label, "folder": str(folder or ""), **{k: stats[k] for k in
                        ("vocab_size", "fertility", "unk_rate", "chars_per_token")}, "train_s": train_s})
    write_results(rows, results_path)
    return pd.DataFrame(summary)
