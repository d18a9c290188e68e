"""Activation checkpointing (models.set_activation_checkpointing) and the allocator setting of long-document runs
(memory.return_large_blocks_to_os): the same gradients as without them, less kept for the backward pass, named in
the results' device column."""

from __future__ import annotations

import platform

import pytest
import torch

from bertbench import window_pooling as A
from bertbench.experiments.long_documents import encode_windows
from bertbench.memory import return_large_blocks_to_os
from bertbench.models import ACTIVATION_CHECKPOINTING, build_classifier, set_activation_checkpointing
from bertbench.train import device_description


def _model(tokenizer):
    torch.manual_seed(0)
    # dropout on: the recomputation must replay the forward pass's dropout masks
    model, _ = build_classifier("random-bert-2x64", tokenizer, ("a", "b"), max_len=64, dropout=0.1,
                                attention_dropout=0.0)
    return model.train()


def _batch(tokenizer, windows: int = 6):
    ids = torch.randint(1000, 5000, (windows, 48), generator=torch.Generator().manual_seed(1))
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0  # one padded window
    ids[1, 30:] = tokenizer.pad_token_id
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "doc_index": torch.arange(windows) // 2, "labels": torch.tensor([0, 1, 1])[: (windows + 1) // 2]}


def _step(model, batch, max_windows: int = 1000):
    """Gradients of one step and the bytes the autograd graph kept for the backward pass."""
    kept = []

    def pack(tensor):
        kept.append(tensor.numel() * tensor.element_size())
        return tensor

    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # the same dropout masks in every mode
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = encode_windows(model, batch, max_windows)
        loss = A.doc_loss(logits, batch["doc_index"], batch["labels"], "mean_logits")
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}, sum(kept)


@pytest.mark.parametrize("mode", ["selective", "full"])
def test_checkpointed_layers_give_the_gradients_of_the_plain_step_and_keep_less(bert_tokenizer, mode):
    model, batch = _model(bert_tokenizer), _batch(bert_tokenizer)
    assert set_activation_checkpointing(model, "off") == "off"
    plain, plain_bytes = _step(model, batch)
    assert set_activation_checkpointing(model, mode) == mode
    checkpointed, checkpointed_bytes = _step(model, batch)
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
    # the graph really kept less: selective drops the elementwise outputs (GELU, LayerNorm, dropout), full all but
    # the layers' inputs
    assert checkpointed_bytes < (0.8 if mode == "selective" else 0.5) * plain_bytes
    # and turning it off again restores the plain graph
    set_activation_checkpointing(model, "off")
    again, again_bytes = _step(model, batch)
    assert again_bytes == plain_bytes
    torch.testing.assert_close(again, plain)


def test_selective_checkpointing_inside_checkpointed_window_passes_keeps_the_gradient(bert_tokenizer):
    # more windows than one pass takes: encode_windows checkpoints each pass, and each pass's layers are checkpointed
    # again inside it (nested recomputation). Both sides encode 2 windows per pass, so they draw the same dropout masks
    model, batch = _model(bert_tokenizer), _batch(bert_tokenizer, windows=6)
    set_activation_checkpointing(model, "off")
    plain, _ = _step(model, batch, max_windows=2)
    set_activation_checkpointing(model, "selective")
    nested, _ = _step(model, batch, max_windows=2)
    for name in plain:
        torch.testing.assert_close(nested[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_prediction_is_unchanged_by_checkpointing(bert_tokenizer):
    model, batch = _model(bert_tokenizer), _batch(bert_tokenizer)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids")}
    model.eval()
    with torch.no_grad():
        before = model(**inputs).logits
        set_activation_checkpointing(model, "selective")
        torch.testing.assert_close(model(**inputs).logits, before)


def test_an_unknown_mode_is_refused_naming_the_choices(bert_tokenizer):
    model = _model(bert_tokenizer)
    with pytest.raises(ValueError, match="activation_checkpointing='some'.*off, selective, full"):
        set_activation_checkpointing(model, "some")
    assert ACTIVATION_CHECKPOINTING == ("off", "selective", "full")


def test_a_model_without_checkpointable_layers_trains_with_it_off():
    assert set_activation_checkpointing(torch.nn.Linear(4, 2), "selective") == "off"


def test_the_device_column_names_activation_checkpointing():
    cpu = torch.device("cpu")
    assert device_description(cpu, "no", "sdpa", checkpointing="selective").endswith(
        " threads, sdpa attention, selective activation checkpointing")
    assert device_description(cpu, "no", "sdpa", checkpointing="off").endswith(" threads, sdpa attention")


def test_long_document_config_takes_the_mode_and_refuses_others():
    from bertbench.experiments.long_documents import LongDocConfig

    assert LongDocConfig.from_env(environ={"BB_PRESET": "cpu"}).activation_checkpointing == "selective"
    cfg = LongDocConfig.from_env(environ={"BB_PRESET": "cpu", "BB_ACTIVATION_CHECKPOINTING": "full"})
    assert cfg.activation_checkpointing == "full"
    # same gradients: not part of a run's identity, so finished runs are not re-run for it
    assert "activation_checkpointing" not in cfg.identity()
    with pytest.raises(ValueError, match="activation_checkpointing"):
        LongDocConfig.from_env(environ={"BB_PRESET": "cpu", "BB_ACTIVATION_CHECKPOINTING": "layers"})


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_large_blocks_are_mapped_on_their_own_under_glibc():
    assert return_large_blocks_to_os() is True
