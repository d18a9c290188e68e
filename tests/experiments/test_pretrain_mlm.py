"""MLM pretraining (notebook 02): masking with the tokenizer's own ids and BERT's 80/10/10 split, packing, the sparse
loss against the model's own, exact resume, budgets, and a checkpoint that notebook 03 fine-tunes."""

import contextlib
import math

import pandas as pd
import pytest
import torch

import bertbench as bb
from bertbench.data.corpus import Corpus
from bertbench.experiments.pretrain_mlm import (
    Masker,
    PretrainConfig,
    build_mlm_model,
    lr_at,
    mlm_loss,
    pack,
    pretrain,
    pseudo_perplexity,
    token_stream,
)

TIMING = {"tokens_per_s", "tflops", "train_s", "cpu_s", "mfu"}


def tiny(**changes) -> PretrainConfig:
    return PretrainConfig.from_env(environ={"BB_PRESET": "tiny"}, **changes)


def test_masking_never_touches_special_tokens_and_splits_80_10_10(bert_tokenizer):
    masker = Masker.from_tokenizer(bert_tokenizer)
    generator = torch.Generator().manual_seed(0)
    ordinary = masker.random_ids
    input_ids = ordinary[torch.randint(len(ordinary), (512, 256), generator=generator)]  # (B, T)
    input_ids[:, 0] = bert_tokenizer.cls_token_id
    input_ids[:, -1] = bert_tokenizer.sep_token_id
    input_ids[:, 100] = bert_tokenizer.sep_token_id  # a document boundary inside a packed block
    input_ids[:64, 200:] = bert_tokenizer.pad_token_id
    batch = masker(input_ids, generator)
    special = torch.isin(input_ids, masker.special_ids)
    selected = batch["labels"] != -100
    assert not bool(selected[special].any()), "a special-token position was selected for prediction"
    assert bool((batch["input_ids"][special] == input_ids[special]).all()), "a special token was corrupted"
    assert bool((batch["labels"][selected] == input_ids[selected]).all())
    n = int(selected.sum())
    rate = n / int((~special).sum())
    assert abs(rate - 0.15) < 5 * math.sqrt(0.15 * 0.85 / int((~special).sum()))
    new = batch["input_ids"][selected]
    old = input_ids[selected]
    shares = {"mask": float((new == bert_tokenizer.mask_token_id).sum()) / n,
              "random": float(((new != old) & (new != bert_tokenizer.mask_token_id)).sum()) / n,
              "kept": float((new == old).sum()) / n}
    for name, expected in {"mask": 0.8, "random": 0.1, "kept": 0.1}.items():  # binomial, 5 standard deviations
        assert abs(shares[name] - expected) < 5 * math.sqrt(expected * (1 - expected) / n), (name, shares)
    replaced = new[(new != old) & (new != bert_tokenizer.mask_token_id)]
    assert not bool(torch.isin(replaced, masker.special_ids).any()), "a random replacement is a special token"
    assert bool((batch["attention_mask"] == 1).all()) and set(batch) >= {"token_type_ids", "labels"}


def test_masking_uses_the_tokenizers_own_ids(roberta_tokenizer):
    masker = Masker.from_tokenizer(roberta_tokenizer, mask_prob=0.5, mask_replace=1.0, random_replace=0.0)
    ids = torch.tensor([[0] + [5, 6, 7, 8, 9, 10] * 10 + [2]])
    batch = masker(ids, torch.Generator().manual_seed(1))
    selected = batch["labels"] != -100
    assert set(batch["input_ids"][selected].tolist()) == {roberta_tokenizer.mask_token_id}  # <mask> = 4, not 103
    assert batch["input_ids"][0, 0] == 0 and batch["input_ids"][0, -1] == 2 and not selected[0, [0, -1]].any()


def test_same_generator_state_gives_the_same_masks(bert_tokenizer):
    masker = Masker.from_tokenizer(bert_tokenizer)
    ids = masker.random_ids[:512].reshape(4, 128)
    first = masker(ids, torch.Generator().manual_seed(7))
    second = masker(ids, torch.Generator().manual_seed(7))
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_token_stream_separates_documents_packs_blocks_and_is_cached(bert_tokenizer, tmp_path):
    opened = []
    docs = ["the cat sat", "a dog", "birds fly south in winter"]
    corpus = Corpus("toy", lambda: (opened.append(1), iter(docs))[1])
    stream = token_stream(corpus, bert_tokenizer, tmp_path)
    expected = []
    for doc in docs:
        expected += bert_tokenizer(doc, add_special_tokens=False)["input_ids"] + [bert_tokenizer.sep_token_id]
    assert stream.tolist() == expected
    again = token_stream(corpus, bert_tokenizer, tmp_path)
    assert again.tolist() == expected and len(opened) == 1, "the cached stream was tokenised again"
    blocks = pack(stream, [0, 1], 4, bert_tokenizer.cls_token_id, bert_tokenizer.sep_token_id)  # (2, 6)
    assert blocks.shape == (2, 6)
    assert (blocks[:, 0] == bert_tokenizer.cls_token_id).all() and (blocks[:, -1] == bert_tokenizer.sep_token_id).all()
    assert blocks[:, 1:-1].flatten().tolist() == expected[:8]


@pytest.mark.parametrize("arch", ["bert", "roberta-preln"])
def test_sparse_loss_equals_the_models_own_loss_and_starts_at_log_vocab(arch, bert_tokenizer):
    torch.manual_seed(0)
    model = build_mlm_model(arch, "nano", bert_tokenizer, max_len=64).eval()
    masker = Masker.from_tokenizer(bert_tokenizer)
    ids = pack(masker.random_ids[torch.randint(len(masker.random_ids), (400,))].numpy(), range(6), 62,
               bert_tokenizer.cls_token_id, bert_tokenizer.sep_token_id)
    batch = masker(ids, torch.Generator().manual_seed(0))
    with torch.no_grad():
        sparse = mlm_loss(model, batch)
        full = model(**batch).loss  # vocabulary logits at every position, -100 ignored
    assert sparse.item() == pytest.approx(full.item(), rel=1e-5)
    assert sparse.item() == pytest.approx(math.log(len(bert_tokenizer)), abs=0.3)


def test_pseudo_perplexity_matches_masking_one_token_at_a_time(bert_tokenizer):
    torch.manual_seed(0)
    model = build_mlm_model("bert", "nano", bert_tokenizer, max_len=32).eval()
    masker = Masker.from_tokenizer(bert_tokenizer)
    block = pack(masker.random_ids[100:130].numpy(), [0], 30, bert_tokenizer.cls_token_id,
                 bert_tokenizer.sep_token_id)  # (1, 32)
    nll = 0.0
    with torch.no_grad():
        for position in range(1, 31):
            masked = block.clone()
            masked[0, position] = bert_tokenizer.mask_token_id
            logits = model(input_ids=masked, attention_mask=torch.ones_like(masked)).logits[0, position]
            nll -= torch.log_softmax(logits, -1)[block[0, position]].item()
    expected = math.exp(nll / 30)
    got = pseudo_perplexity(model, block, masker, torch.device("cpu"), contextlib.nullcontext, batch_size=7)
    assert got == pytest.approx(expected, rel=1e-4)


def test_schedule_follows_the_budget():
    cfg = tiny(lr=1e-3, warmup_fraction=0.1)
    assert lr_at(cfg, 0.05) == pytest.approx(5e-4)
    assert lr_at(cfg, 0.1) == pytest.approx(1e-3)
    assert lr_at(cfg, 0.55) == pytest.approx(5e-4)
    assert lr_at(cfg, 1.0) == 0.0
    values = [lr_at(cfg, k / 100) for k in range(10, 101)]
    assert values == sorted(values, reverse=True)


def test_config_needs_a_budget_and_valid_rates():
    with pytest.raises(ValueError, match="budget"):
        tiny(max_steps=0, max_minutes=0.0)
    with pytest.raises(ValueError, match="random_replace"):
        tiny(mask_replace=0.8, random_replace=0.3)
    with pytest.raises(ValueError, match="arch"):
        tiny(arch="gpt")


def _weights(folder):
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(folder).state_dict()


def test_interrupted_run_resumes_to_the_same_weights_and_rows(tmp_path):
    results = tmp_path / "02.csv"
    whole = pretrain(tiny(name="whole", checkpoint_every=3), results)

    class Crash(Exception):
        pass

    def crash_at_5(step):
        if step == 5:
            raise Crash

    with pytest.raises(Crash):  # dies after step 5; the last checkpoint is from step 4 (an evaluation)
        pretrain(tiny(name="resumed", checkpoint_every=3), results, on_step=crash_at_5)
    resumed = pretrain(tiny(name="resumed", checkpoint_every=3), results)
    assert resumed.state.step == whole.state.step == 8
    a, b = _weights(whole.model_dir), _weights(resumed.model_dir)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    frame = bb.load_results(results)
    assert not frame.duplicated(["run_id", "split", "step", "metric"]).any()
    values = frame[~frame["metric"].isin(TIMING)].pivot_table(index=["split", "step", "metric"], columns="model",
                                                              values="value")
    pd.testing.assert_series_equal(values["whole"], values["resumed"], check_names=False, rtol=1e-6)


def test_a_changed_config_refuses_the_old_checkpoint_unless_told_to_start_fresh(tmp_path):
    results = tmp_path / "02.csv"
    pretrain(tiny(name="same", max_steps=2), results)
    with pytest.raises(ValueError, match="configuration changed"):
        pretrain(tiny(name="same", max_steps=2, lr=5e-4), results)
    fresh = pretrain(tiny(name="same", max_steps=2, lr=5e-4, resume=False), results)
    assert fresh.state.step == 2


def test_time_budget_ends_the_run_with_the_learning_rate_at_zero(tmp_path):
    result = pretrain(tiny(name="timed", max_steps=0, max_minutes=0.01), tmp_path / "02.csv")
    assert result.state.step > 0 and result.state.train_seconds >= 0.6
    assert result.history["train_lr"].iloc[-1] == 0.0


@pytest.mark.parametrize("arch", ["bert", "roberta-preln"])
def test_pretrained_checkpoint_loads_in_transformers_and_fine_tunes_through_notebook_03(arch, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    result = pretrain(tiny(arch=arch), tmp_path / "02.csv")
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    classifier = AutoModelForSequenceClassification.from_pretrained(result.model_dir, num_labels=2)
    encoder = {k: v for k, v in _weights(result.model_dir).items() if k.startswith(classifier.base_model_prefix)}
    for key, value in encoder.items():
        assert torch.equal(classifier.state_dict()[key], value), key
    assert tokenizer("a", "b")["token_type_ids"][-1] == 1

    # as a user types it: the tiny preset with BB_MODEL set reads the checkpoint's own tokenizer
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_MODEL": str(result.model_dir)}, tasks=("rte",),
                                 seeds=(0,))
    runs = bb.run_glue(cfg, tmp_path / "03.csv", verbose=False)
    assert set(runs["model"]) == {f"mlm-{arch}-nano-tiny"} and set(runs["init"]) == {"own-pretraining"}
    assert runs[(runs["split"] == "dev") & (runs["metric"] == "score")]["value"].between(0, 1).all()


def test_roberta_model_takes_its_special_ids_and_position_offset_from_the_tokenizer(roberta_tokenizer):
    """RoBERTa counts positions from pad + 1 (<pad> = 1): the table has max_len + 2 rows, a full-length block fits,
    and padding (pad id, attention mask 0) changes neither the real positions' ids nor their logits."""
    torch.manual_seed(0)
    model = build_mlm_model("roberta-preln", "nano", roberta_tokenizer, max_len=600).eval()
    config, embeddings = model.config, model.base_model.embeddings
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (1, 0, 2)  # <pad>, <s>, </s>
    assert config.max_position_embeddings == 600 + 2 and embeddings.word_embeddings.padding_idx == 1
    masker = Masker.from_tokenizer(roberta_tokenizer)
    assert set(masker.special_ids.tolist()) == {0, 1, 2, 3, 4} and masker.mask_id == 4
    ordinary = masker.random_ids[torch.randint(len(masker.random_ids), (600,))].numpy()
    block = pack(ordinary, [0], 598, roberta_tokenizer.cls_token_id, roberta_tokenizer.sep_token_id)  # (1, 600)
    with torch.no_grad():
        assert model(input_ids=block, attention_mask=torch.ones_like(block)).logits.shape[1] == 600
        short = block[:, :20]
        padded = torch.cat([short, torch.full((1, 10), roberta_tokenizer.pad_token_id)], dim=1)  # (1, 30)
        mask = torch.cat([torch.ones(1, 20), torch.zeros(1, 10)], dim=1).long()
        alone = model(input_ids=short, attention_mask=torch.ones_like(short)).logits  # (1, 20, V)
        with_padding = model(input_ids=padded, attention_mask=mask).logits[:, :20]
    assert torch.allclose(alone, with_padding, atol=1e-5)


def test_bpe_roberta_pretrains_a_roberta_style_model_that_loads_and_fine_tunes_through_notebook_03(tmp_path):
    """As a user runs it: BB_TOKENIZER=bpe-roberta BB_ARCH=roberta-preln (notebook 01's tokenizer, trained on the
    spot), then notebook 03 on the checkpoint."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    cfg = PretrainConfig.from_env(environ={"BB_PRESET": "tiny", "BB_TOKENIZER": "bpe-roberta",
                                           "BB_ARCH": "roberta-preln", "BB_MAX_STEPS": "2"})
    result = pretrain(cfg, tmp_path / "02.csv")
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    text_a, text_b = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in ("a", "b"))
    assert tokenizer("a", "b")["input_ids"] == [0, *text_a, 2, 2, *text_b, 2]  # <s> a </s></s> b </s>
    model = AutoModelForMaskedLM.from_pretrained(result.model_dir)
    assert type(model).__name__ == "RobertaPreLayerNormForMaskedLM" and model.config.vocab_size == len(tokenizer)
    assert (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id) == (1, 0, 2)
    assert model.config.max_position_embeddings == 512 + 2
    frame = bb.load_results(tmp_path / "02.csv")
    losses = frame[(frame["split"] == "wikitext2_valid") & (frame["metric"] == "loss")]["value"]
    assert losses.between(0, 2 * math.log(len(tokenizer))).all()

    glue = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_MODEL": str(result.model_dir)}, tasks=("rte",),
                                  seeds=(0,))
    runs = bb.run_glue(glue, tmp_path / "03.csv", verbose=False)
    assert set(runs["model"]) == {"mlm-roberta-preln-nano-tiny-bpe-roberta"}
    assert set(runs["init"]) == {"own-pretraining"}
    assert runs[(runs["split"] == "dev") & (runs["metric"] == "score")]["value"].between(0, 1).all()


def test_a_tokenizer_kind_other_than_wordpiece_names_the_run_the_committed_run_keeps_its_id():
    """A bpe-roberta run must not take the default run's folder (its checkpoint, its model) or its name in tables."""
    assert PretrainConfig.from_env(environ={}, preset="cpu").run_id() == "mlm-roberta-preln-mini-cpu-5f2d7616c5"
    assert tiny().label == "mlm-bert-nano-tiny" and tiny(tokenizer="minilm").label == "mlm-bert-nano-tiny"
    assert tiny(tokenizer="bpe-roberta", arch="roberta-preln").label == "mlm-roberta-preln-nano-tiny-bpe-roberta"
    assert tiny(tokenizer="bpe").label == "mlm-bert-nano-tiny-bpe" and tiny(name="x", tokenizer="bpe").label == "x"


def test_a_resumed_run_keeps_its_own_tokenizer_when_notebook_01_is_run_again(tmp_path):
    from transformers import AutoTokenizer

    from bertbench.experiments.train_tokenizer import TokenizerConfig, tokenizer_dir, train_tokenizer

    results = tmp_path / "02.csv"

    def crash_at_5(step):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny(name="tok", checkpoint_every=3), results, on_step=crash_at_5)
    folder = tokenizer_dir(TokenizerConfig.from_env(environ={}, preset="tiny"), "wordpiece")
    original = AutoTokenizer.from_pretrained(folder).get_vocab()
    other = train_tokenizer("wordpiece", iter(["quite different words entirely"] * 20), vocab_size=300,
                            min_frequency=1, model_max_length=128)
    other.save_pretrained(folder)  # notebook 01 again, another vocabulary in the same folder
    resumed = pretrain(tiny(name="tok", checkpoint_every=3), results)
    assert resumed.state.step == 8
    assert AutoTokenizer.from_pretrained(resumed.model_dir).get_vocab() == original


def test_pretraining_writes_tensorboard_scalars_when_asked(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny(tensorboard=True)
    assert cfg.label == tiny().label and "tensorboard" not in cfg.recorded()  # how to run, not what is computed
    pretrain(cfg, tmp_path / "02.csv")
    events = list((bb.runs_dir() / "pretrain").rglob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert f"{cfg.label}/train/loss" in tags and f"{cfg.label}/train/lr" in tags
    assert any(tag.endswith("/loss") and "/train/" not in tag for tag in tags)  # held-out loss
