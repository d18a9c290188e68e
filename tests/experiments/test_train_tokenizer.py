"""Tokenizer training (notebook 01): what users hit most — special tokens, CLS/SEP post-processing for single texts
and pairs, model max length — checked on the folder as AutoTokenizer loads it back; plus the measurements. The
``bpe-roberta`` kind: RoBERTa's special tokens, ids and templates, and bertbench's input checks on its vocabulary."""

import math

import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer

import bertbench as bb
from bertbench.encoding import PadCollator, encode
from bertbench.experiments.train_tokenizer import (
    ROBERTA_SPECIAL_TOKENS,
    SPECIAL_TOKENS,
    TokenizerConfig,
    plain_backend,
    run_tokenizers,
    token_frequencies,
    tokenizer_dir,
    tokenizer_stats,
    train_tokenizer,
)
from bertbench.models import self_check

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


# ---------------------------------------------------------------- bpe-roberta: RoBERTa's special tokens and templates


@pytest.fixture(scope="module")
def roberta_saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe-roberta")
    tokenizer = train_tokenizer("bpe-roberta", iter(CORPUS), vocab_size=400, min_frequency=1, model_max_length=64)
    tokenizer.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def test_bpe_roberta_reloads_with_robertas_special_tokens_at_ids_0_to_4(roberta_saved):
    tokenizer = roberta_saved
    assert tokenizer.convert_tokens_to_ids(list(ROBERTA_SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]
    assert (tokenizer.cls_token, tokenizer.bos_token, tokenizer.sep_token, tokenizer.eos_token) == ("<s>", "<s>",
                                                                                                    "</s>", "</s>")
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.mask_token_id) == (1, 3, 4)
    assert sorted(tokenizer.all_special_ids) == [0, 1, 2, 3, 4]
    assert "token_type_ids" not in tokenizer.model_input_names


def test_bpe_roberta_encodes_robertas_single_and_pair_templates(roberta_saved):
    tokenizer = roberta_saved
    pair = tokenizer("a", "b")
    assert "token_type_ids" not in pair  # RoBERTa has no segment embeddings
    pieces = tokenizer.tokenize
    assert tokenizer.convert_ids_to_tokens(pair["input_ids"]) == ["<s>", *pieces("a"), "</s>", "</s>", *pieces("b"),
                                                                  "</s>"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("the cat")["input_ids"]) == ["<s>", *pieces("the cat"), "</s>"]
    decoded = tokenizer.decode(tokenizer("the cat", "the dog")["input_ids"], skip_special_tokens=True)
    assert decoded == " the cat the dog"
    truncated = tokenizer(" ".join(CORPUS[:20]), truncation=True)["input_ids"]
    assert len(truncated) == 64 and truncated[-1] == tokenizer.sep_token_id


def test_bpe_roberta_mask_takes_the_space_before_it_and_is_never_lowercased_away(roberta_saved):
    tokenizer = roberta_saved
    the = tokenizer("the", add_special_tokens=False)["input_ids"]
    assert tokenizer("the <mask>", add_special_tokens=False)["input_ids"] == [*the, 4]  # lstrip, as RoBERTa's
    assert tokenizer("The <mask>", add_special_tokens=False)["input_ids"] == [*the, 4]  # normaliser leaves it alone
    assert tokenizer.mask_token_id not in tokenizer("the < mask >", add_special_tokens=False)["input_ids"]
    assert tokenizer_stats(tokenizer, ["東京 ☃ Ωmega"])["unk_rate"] == 0.0  # byte level: nothing unknown


def test_bpe_roberta_inputs_pass_the_self_check_and_its_traps_are_caught(roberta_saved):
    """Special ids read from the tokenizer, the pad id (1) never an attention-mask value, SEP never made MASK."""
    tokenizer = roberta_saved
    pairs = bb.Examples(["the cat sat on the mat", "a dog"], ["the dog barked at the cat in 1984", "the cat"], [0, 1])
    dataset = encode(pairs, tokenizer, 32)
    batch = PadCollator(tokenizer)([dataset[i] for i in range(2)])  # row 1 is padded
    assert "token_type_ids" not in batch and bool((batch["input_ids"][1, dataset.lengths[1]:] == 1).all())
    self_check(tokenizer, batch, text_pair=True)
    pad_as_mask_value = batch["attention_mask"].masked_fill(batch["attention_mask"] == 0, tokenizer.pad_token_id)
    with pytest.raises(AssertionError, match="not 0 on padding"):
        self_check(tokenizer, {**batch, "attention_mask": pad_as_mask_value}, text_pair=True)
    sep_as_mask = batch["input_ids"].clone()
    sep_as_mask[torch.arange(2), batch["attention_mask"].sum(1) - 1] = tokenizer.mask_token_id
    with pytest.raises(AssertionError, match="not SEP"):
        self_check(tokenizer, {**batch, "input_ids": sep_as_mask}, text_pair=True)


def test_bpe_roberta_is_an_option_the_default_kinds_stay_as_committed():
    assert TokenizerConfig().kinds == ("wordpiece", "bpe")
    assert '"kinds": ["wordpiece", "bpe"]' in TokenizerConfig().to_json()
    assert TokenizerConfig.from_env(environ={"BB_KINDS": "bpe-roberta"}).kinds == ("bpe-roberta",)


def test_notebook_01_tiny_trains_saves_and_measures_bpe_roberta(tmp_path):
    """As a user runs it: BB_PRESET=tiny BB_KINDS=bpe-roberta (the engine of notebook 01)."""
    cfg = TokenizerConfig.from_env(environ={"BB_PRESET": "tiny", "BB_KINDS": "bpe-roberta"})
    table = run_tokenizers(cfg, tmp_path / "01.csv")
    folder = tokenizer_dir(cfg, "bpe-roberta")
    assert table["tokenizer"].tolist() == [folder.name, "minilm"]
    frame = bb.load_results(tmp_path / "01.csv")
    ours = frame[frame["model"] == folder.name].set_index("metric")["value"]
    assert ours["unk_rate"] == 0.0 and 0.5 < ours["fertility"] < 5 and ours["vocab_size"] == cfg.vocab_size
    assert {"chars_per_token", "train_s", "documents"} <= set(ours.index)
    frequencies = pd.read_csv(folder / "token_frequencies.csv", keep_default_na=False)
    assert frequencies["token"].head(5).tolist() == list(ROBERTA_SPECIAL_TOKENS)
    assert frequencies["count"].head(5).sum() == 0  # counted without special tokens
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text_a, text_b = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in ("a", "b"))
    assert tokenizer("a", "b")["input_ids"] == [0, *text_a, 2, 2, *text_b, 2]
