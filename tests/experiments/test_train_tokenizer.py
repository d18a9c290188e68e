"""Tokenizer training (notebook 01): what users hit most — special tokens, CLS/SEP post-processing for single texts
and pairs, model max length — checked on the folder as AutoTokenizer loads it back; plus the measurements."""

import math

import pytest
from transformers import AutoTokenizer

from bertbench.experiments.train_tokenizer import (
    SPECIAL_TOKENS,
    TokenizerConfig,
    plain_backend,
    token_frequencies,
    tokenizer_stats,
    train_tokenizer,
)

CORPUS = [
    "The cat sat on the mat in 1984. The dog barked at the cat!",
    "Ada Lovelace wrote the first program for the Analytical Engine, in 1843.",
    "Tokenizers split rare words into pieces; frequent words stay whole.",
    "Café owners in Zürich serve naïve tourists 2,500 coffees a day.",
] * 40


@pytest.fixture(scope="module", params=["wordpiece", "bpe"])
def saved(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    tokenizer = train_tokenizer(request.param, iter(CORPUS), vocab_size=400, min_frequency=1, model_max_length=64)
    tokenizer.save_pretrained(folder)
    return request.param, AutoTokenizer.from_pretrained(folder)


def test_special_tokens_present_after_reload(saved):
    _, tokenizer = saved
    for token in SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id or token == "[UNK]"
    assert tokenizer.cls_token == "[CLS]" and tokenizer.sep_token == "[SEP]" and tokenizer.pad_token == "[PAD]"
    assert tokenizer.mask_token == "[MASK]" and tokenizer.unk_token == "[UNK]"
    assert "[MASK]" not in tokenizer.tokenize("the [ MASK ] token")  # only the literal special string maps to it


def test_post_processor_adds_cls_and_sep_for_single_texts_and_pairs(saved):
    _, tokenizer = saved
    single = tokenizer("the cat sat")
    assert single["input_ids"][0] == tokenizer.cls_token_id and single["input_ids"][-1] == tokenizer.sep_token_id
    assert single["input_ids"].count(tokenizer.sep_token_id) == 1
    pair = tokenizer("the cat", "the dog")
    ids, types = pair["input_ids"], pair["token_type_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids.count(tokenizer.sep_token_id) == 2 and ids[-1] == ids[-1]
    first_sep = ids.index(tokenizer.sep_token_id)
    assert set(types[:first_sep + 1]) == {0} and set(types[first_sep + 1:]) == {1}
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "thecatthedog"


def test_model_max_length_saved_and_used_for_truncation(saved):
    _, tokenizer = saved
    assert tokenizer.model_max_length == 64
    ids = tokenizer(" ".join(CORPUS[:20]), truncation=True)["input_ids"]
    assert len(ids) == 64 and ids[-1] == tokenizer.sep_token_id


def test_digits_split_and_accents_stripped(saved):
    kind, tokenizer = saved
    pieces = [piece.lstrip("Ġ#") for piece in tokenizer.tokenize("1843") if piece.lstrip("Ġ#")]
    assert pieces == ["1", "8", "4", "3"]
    assert "é" not in "".join(tokenizer.tokenize("café")) and "e" in "".join(tokenizer.tokenize("café"))


def test_byte_level_bpe_has_no_unknown_tokens_wordpiece_may():
    bpe = train_tokenizer("bpe", iter(CORPUS), vocab_size=400, min_frequency=1)
    wordpiece = train_tokenizer("wordpiece", iter(CORPUS), vocab_size=400, min_frequency=1)
    unseen = ["東京 ☃ Ωmega"]
    assert tokenizer_stats(bpe, unseen)["unk_rate"] == 0.0
    assert tokenizer_stats(wordpiece, unseen)["unk_rate"] > 0.0


def test_fertility_and_frequency_table_match_a_direct_count():
    tokenizer = train_tokenizer("wordpiece", iter(CORPUS), vocab_size=400, min_frequency=1)
    docs = CORPUS[:4]
    direct = [tokenizer.tokenize(doc) for doc in docs]
    stats = tokenizer_stats(tokenizer, docs)
    assert stats["fertility"] == pytest.approx(sum(map(len, direct)) / sum(len(d.split()) for d in docs))
    table = token_frequencies(tokenizer, docs)
    assert len(table) == len(tokenizer) and table["count"].sum() == sum(map(len, direct))
    assert math.isclose(table["frequency"].sum(), 1.0)
    the = table.set_index("token").loc["the", "count"]
    assert the == sum(tokens.count("the") for tokens in direct)


def test_measurements_are_not_truncated_by_the_model_max_length(bert_tokenizer):
    """The packaged MiniLM tokenizer truncates at 128 tokens; fertility must count every token of a long text."""
    long_text = " ".join(["unbelievable"] * 300)
    assert len(plain_backend(bert_tokenizer).encode(long_text, add_special_tokens=False).ids) == 300
    assert tokenizer_stats(bert_tokenizer, [long_text])["fertility"] == 1.0


def test_config_rejects_unknown_kind_and_tiny_vocabulary():
    with pytest.raises(ValueError, match="kinds"):
        TokenizerConfig(kinds=("unigram",))
    with pytest.raises(ValueError, match="vocab_size"):
        TokenizerConfig(vocab_size=100)


def test_byte_level_bpe_decodes_back_to_the_normalised_text_digits_included():
    """Digits split one per token must not invent spaces: "1,234" decodes as "1,234", not "1 , 2 3 4"."""
    tokenizer = train_tokenizer("bpe", iter(CORPUS), vocab_size=400, min_frequency=1)
    text = "the cat sat on the mat in 1,234 cafes."
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]).strip() == text
    # WordPiece, like BERT's own, keeps every character but not the spacing around split digits and punctuation
    wordpiece = train_tokenizer("wordpiece", iter(CORPUS), vocab_size=400, min_frequency=1)
    decoded = wordpiece.decode(wordpiece(text, add_special_tokens=False)["input_ids"])
    assert decoded.replace(" ", "") == text.replace(" ", "")
