"""The training loop, checkpoints, warm starts and the selection protocol."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

import bertbench as bb
from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode
from bertbench.models import build_classifier
from bertbench.train import TrainSettings, fit, predict


def _loader(examples, tokenizer, batch_size=8, seed=0):
    dataset = encode(examples, tokenizer, 32)
    return dataset, DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset.lengths, batch_size, seed),
                               collate_fn=PadCollator(tokenizer))


def test_overfits_one_tiny_batch(bert_tokenizer, tmp_path):
    torch.manual_seed(0)
    examples = bb.Examples(["good film", "bad film", "great movie", "awful movie", "fine", "dull"],
                           labels=[1, 0, 1, 0, 1, 0])
    model, _ = build_classifier("random-bert-2x64", bert_tokenizer, ("neg", "pos"))
    dataset, loader = _loader(examples, bert_tokenizer)
    settings = TrainSettings(epochs=40, lr=3e-3, warmup_ratio=0.0, mixed_precision="no", log_every=1000)
    model, result = fit(model, loader, None, "score", settings, tmp_path / "ckpt")
    assert result.history[-1]["train_loss"] < 0.05
    logits = predict(model, dataset, PadCollator(bert_tokenizer), 8)
    assert logits.argmax(-1).tolist() == examples.labels


def test_best_epoch_is_saved_as_safetensors_and_reloaded(bert_tokenizer, tmp_path):
    torch.manual_seed(0)
    examples = bb.Examples([f"text {i}" for i in range(16)], labels=[i % 2 for i in range(16)])
    model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
    dataset, loader = _loader(examples, bert_tokenizer)
    scores = iter([0.5, 0.9, 0.1, 0.2])  # epoch 2 is the best; patience 2 stops after epoch 4
    snapshots = {}

    def evaluate(current):
        snapshots[len(snapshots)] = {k: v.clone() for k, v in current.state_dict().items()}
        return {"score": next(scores)}

    settings = TrainSettings(epochs=10, lr=1e-3, patience=2, mixed_precision="no")
    model, result = fit(model, loader, evaluate, "score", settings, tmp_path / "best")
    assert result.best_epoch == 1 and result.stopped_early and len(result.history) == 4
    assert (tmp_path / "best" / "model.safetensors").is_file()
    assert not list((tmp_path / "best").glob("*.bin"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][key])


def test_nan_loss_stops_with_the_step_named(bert_tokenizer, tmp_path):
    examples = bb.Examples([f"text {i}" for i in range(8)], labels=[i % 2 for i in range(8)])
    model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
    _, loader = _loader(examples, bert_tokenizer)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(model, loader, None, "score", TrainSettings(epochs=1, mixed_precision="no"), tmp_path / "c",
            loss_fn=lambda m, b: m(**b).loss * float("nan"))


def _save_finetuned(tmp_path, tokenizer, label_names):
    torch.manual_seed(1)
    model, _ = build_classifier("random-bert-1x32", tokenizer, label_names)
    folder = tmp_path / "mnli_model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, folder


def test_warm_start_reuses_an_mnli_head_in_the_task_label_order(bert_tokenizer, tmp_path):
    """An MNLI head saved as (contradiction, neutral, entailment) must predict the same *names* after loading
    for the official order (entailment, neutral, contradiction) — transformers#10386."""
    old_order = ("contradiction", "neutral", "entailment")
    old, folder = _save_finetuned(tmp_path, bert_tokenizer, old_order)
    new, head = build_classifier(str(folder), bert_tokenizer, bb.get_task("mnli").label_names)
    assert head == "reused_permuted"
    batch = PadCollator(bert_tokenizer)([encode(bb.Examples(["a cat", "two dogs run"]), bert_tokenizer, 16)[i]
                                         for i in range(2)])
    old.eval(), new.eval()
    with torch.no_grad():
        old_names = [old_order[i] for i in old(**batch).logits.argmax(-1)]
        new_logits = new(**batch).logits
    assert [new.config.id2label[int(i)] for i in new_logits.argmax(-1)] == old_names
    torch.testing.assert_close(new_logits, old(**batch).logits[:, [2, 1, 0]])


def test_warm_start_reinitialises_the_head_when_labels_differ(bert_tokenizer, tmp_path):
    old, folder = _save_finetuned(tmp_path, bert_tokenizer, ("entailment", "neutral", "contradiction"))
    new, head = build_classifier(str(folder), bert_tokenizer, bb.get_task("rte").label_names)
    assert head == "reinit" and new.classifier.out_features == 2
    for key, value in old.bert.state_dict().items():  # encoder weights come from the checkpoint
        torch.testing.assert_close(new.bert.state_dict()[key], value)
    same, head = build_classifier(str(folder), bert_tokenizer, ("entailment", "neutral", "contradiction"))
    assert head == "reused"
    torch.testing.assert_close(same.classifier.weight, old.classifier.weight)
    _, head = build_classifier("minilm", bert_tokenizer, ("neg", "pos"))
    assert head == "new"


def test_pickle_checkpoints_are_refused(bert_tokenizer, tmp_path):
    """Weights load from safetensors only: a folder holding just pytorch_model.bin (pickle) is not loaded."""
    model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
    model.config.save_pretrained(tmp_path / "pickled")
    torch.save(model.state_dict(), tmp_path / "pickled" / "pytorch_model.bin")
    with pytest.raises(OSError):
        build_classifier(str(tmp_path / "pickled"), bert_tokenizer, ("a", "b"))


def _glue_cfg(**changes):
    base = {"BB_PRESET": "tiny", "BB_TASKS": "rte", "BB_SEEDS": "0", "BB_MAX_TRAIN_EXAMPLES": "40",
            "BB_MAX_EVAL_EXAMPLES": "16", "BB_EPOCHS": "2", "BB_PREDICT_TEST": "0"}
    base.update({f"BB_{key.upper()}": value for key, value in changes.items()})
    return bb.GlueConfig.from_env(environ=base)


@pytest.mark.parametrize(("selection", "label", "selection_split"), [
    ("holdout", "best_epoch_on_train_holdout", "train_holdout"),
    ("dev", "best_epoch_on_dev_optimistic", "dev"),
    ("last", "last_epoch", None),
])
def test_selection_protocol_is_recorded_on_every_row(glue_dir, tmp_path, selection, label, selection_split):
    cfg = _glue_cfg(selection=selection)
    frame = bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    assert set(frame["selection"]) == {label}
    splits = set(frame["split"])
    assert "dev" in splits and ("train_holdout" in splits) == (selection_split == "train_holdout")
    stored = bb.load_results(tmp_path / "out.csv")
    assert json.loads(stored["config"].iloc[0])["selection"] == selection


def test_holdout_is_disjoint_from_training_and_dev_is_untouched(glue_dir):
    from bertbench.experiments.glue_finetune import load_task_data

    cfg = _glue_cfg(max_train_examples="0", max_eval_examples="0")
    data = load_task_data(cfg, bb.get_task("rte"))
    assert len(data.train) + len(data.selection) == 2490
    assert not set(data.train.ids) & set(data.selection.ids)
    assert len(data.evals["dev"]) == 277


def test_rerun_replaces_rows_and_test_predictions_follow_the_glue_format(glue_dir, tmp_path):
    cfg = _glue_cfg(predict_test="1", tasks="rte,stsb")
    first = bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    stored = bb.load_results(tmp_path / "out.csv")
    assert len(stored) == len(first) and stored["run_id"].nunique() == 2
    submissions = sorted(bb.runs_dir().glob("glue/*/submission/*.tsv"))
    assert [path.name for path in submissions] == sorted(["RTE.tsv", "STS-B.tsv"])
    rte = [p for p in submissions if p.name == "RTE.tsv"][0].read_text().splitlines()
    assert rte[0] == "index\tprediction" and len(rte) == 17
    assert {line.split("\t")[1] for line in rte[1:]} <= {"entailment", "not_entailment"}
    sts = [p for p in submissions if p.name == "STS-B.tsv"][0].read_text().splitlines()
    assert all(0.0 <= float(line.split("\t")[1]) <= 5.0 for line in sts[1:])


def test_warm_start_run_records_intermediate_init_and_head(glue_dir, tmp_path, bert_tokenizer):
    _, folder = _save_finetuned(tmp_path, bert_tokenizer, ("entailment", "neutral", "contradiction"))
    cfg = _glue_cfg(warm_start=str(folder))
    frame = bb.run_glue(cfg, tmp_path / "out.csv", verbose=False)
    # a checkpoint not made by bertbench: its task read off its head's labels (MNLI's three), not its folder name
    assert set(frame["init"]) == {"intermediate:mnli"} and set(frame["head_init"]) == {"reinit"}


def test_warm_start_from_a_bertbench_run_records_its_task_not_the_folder_name(glue_dir, tmp_path):
    """README's BB_WARM_START=runs/glue/<id>/best was recorded as init=intermediate:best."""
    first = bb.run_glue(_glue_cfg(keep_checkpoints="1", tasks="wnli"), tmp_path / "first.csv", verbose=False)
    best = bb.runs_dir() / "glue" / first["run_id"].iloc[0] / "best"
    assert bb.model_provenance(str(best)) == "fine-tuned:wnli"
    frame = bb.run_glue(_glue_cfg(warm_start=str(best)), tmp_path / "out.csv", verbose=False)
    assert set(frame["init"]) == {"intermediate:wnli"}


def test_every_row_says_what_the_model_is_not_just_pretrained(tmp_path):
    """The packaged all-MiniLM-L6-v2 is MiniLM-L6-H384 after sentence-pair training, not an MLM-pretrained encoder."""
    from transformers import BertConfig, BertModel

    assert bb.model_provenance("minilm") == "sentence-embedding"
    assert bb.model_provenance("random-bert-2x64") == "random"
    plain = tmp_path / "plain"
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(plain)
    assert bb.model_provenance(str(plain)) == "mlm-pretrained"
    assert bb.model_provenance("some-org/not-on-this-machine") == "pretrained"
    assert bb.GlueConfig.from_env(environ={}).model == "minilm"
    from bertbench.experiments.glue_finetune.runs import init_label

    assert init_label(bb.GlueConfig.from_env(environ={})) == "sentence-embedding"


def test_two_checkpoints_under_one_folder_get_two_run_ids_and_are_never_pooled(tmp_path):
    """`make pretrain` run again leaves other weights under the same path: GLUE runs of the second checkpoint were
    skipped as finished (same run id) or pooled with the first's rows (same config). The packaged model's ids stay."""
    import pandas as pd
    from transformers import BertConfig, BertForMaskedLM

    from bertbench.config import pooling_key
    from bertbench.experiments.glue_finetune.runs import config_hash, recorded_config, run_id_for
    from bertbench.models import weights_fingerprint
    from bertbench.paths import repo_root

    folder = tmp_path / "pretrain" / "model"
    cfg = bb.GlueConfig.from_env(environ={}).replace(model=str(folder))
    seen = []
    for seed in (0, 0, 1):  # the same weights twice, then others
        torch.manual_seed(seed)
        BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32)).save_pretrained(folder)
        seen.append((run_id_for(cfg, "sst2", 0), recorded_config(cfg), weights_fingerprint(str(folder)),
                     config_hash(cfg, variant="two_input")))  # notebook 05 heads' run ids
    assert seen[0] == seen[1] and len(seen[0][2]) == 12
    assert seen[2][0] != seen[0][0] and pooling_key(seen[2][1]) != pooling_key(seen[0][1]) and seen[2][3] != seen[0][3]
    assert json.loads(seen[2][1])["checkpoint"] == seen[2][2] != seen[0][2]
    assert weights_fingerprint("minilm") == "" and "checkpoint" not in json.loads(recorded_config(cfg.replace(
        model="minilm")))
    committed = pd.read_csv(repo_root() / "outputs" / "03_glue_finetune.csv").drop_duplicates("run_id")
    for row in committed[committed["model"] == "minilm"].itertuples():  # resume and adopt still find these runs
        assert row.run_id.endswith(run_id_for(bb.GlueConfig.from_dict(json.loads(row.config)), row.task, row.seed))


def test_fit_sees_a_different_example_order_every_epoch(bert_tokenizer, tmp_path):
    """The order actually reaching the model changes between epochs (DitBERT discarded its shuffle)."""
    examples = bb.Examples([f"text number {i} " + "word " * (i % 5) for i in range(48)],
                           labels=[i % 2 for i in range(48)])
    model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
    _, loader = _loader(examples, bert_tokenizer, batch_size=8)
    seen: list[list[tuple]] = []

    def recording_loss(current, batch):
        if len(seen) == 0 or len(seen[-1]) == len(loader):
            seen.append([])
        seen[-1].append(tuple(batch["input_ids"][:, 3].tolist()))
        return current(**batch).loss

    fit(model, loader, None, "score", TrainSettings(epochs=3, mixed_precision="no"), tmp_path / "c",
        loss_fn=recording_loss)
    assert len(seen) == 3 and len({tuple(epoch) for epoch in seen}) == 3


def tensorboard_tags(folder) -> set[str]:
    """The scalar tags of every TensorBoard event file under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in folder.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


def test_tensorboard_scalars_are_written_when_asked(glue_dir, tmp_path):
    bb.run_glue(_glue_cfg(tensorboard="1", batch_size="8"), tmp_path / "out.csv", verbose=False)
    tags = tensorboard_tags(bb.runs_dir() / "glue")
    assert {"rte s0/step/train_loss", "rte s0/step/lr", "rte s0/epoch/score", "rte s0/epoch/train_loss"} <= tags


def test_long_documents_write_tensorboard_scalars_too(tmp_path):
    cfg = bb.LongDocConfig.from_env(environ={"BB_PRESET": "tiny"}, datasets=("hyperpartisan",), runs=("head",),
                                    tensorboard=True, batch_size=2, epochs=1)
    bb.run_long_documents(cfg, tmp_path / "04.csv", verbose=False)
    tags = tensorboard_tags(bb.runs_dir() / "longdoc")
    assert any(tag.endswith("/step/train_loss") for tag in tags) and any(tag.endswith("/epoch/f1") for tag in tags)


def test_gradient_accumulation_matches_one_large_batch(bert_tokenizer, tmp_path):
    """2 micro-batches of 4 with grad_accum=2 take the same optimizer step as one batch of 8."""
    examples = bb.Examples([f"sentence number {i} " + "pad " * i for i in range(8)], labels=[i % 2 for i in range(8)])
    dataset = encode(examples, bert_tokenizer, 32)
    collate = PadCollator(bert_tokenizer)
    trained = []
    for batches, accum in (([list(range(8))], 1), ([[0, 1, 2, 3], [4, 5, 6, 7]], 2)):
        torch.manual_seed(0)
        model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate)
        settings = TrainSettings(epochs=1, lr=1e-2, warmup_ratio=0.0, grad_accum=accum, mixed_precision="no")
        model, _ = fit(model, loader, None, "score", settings, tmp_path / f"accum{accum}")
        trained.append(model.state_dict())
    for key in trained[0]:
        torch.testing.assert_close(trained[0][key], trained[1][key], atol=1e-5, rtol=1e-4)


def test_precision_can_change_between_runs_in_one_kernel():
    """A notebook kernel may run an fp32 config after a bf16 one: accelerate's one-per-process state would refuse
    the second precision ("restart your runtime"); new_accelerator resets it only when the precision differs."""
    from bertbench.train import new_accelerator

    assert new_accelerator("no").mixed_precision == "no"
    assert new_accelerator("bf16").mixed_precision == "bf16"
    assert new_accelerator("no").mixed_precision == "no"


def test_early_stopping_needs_an_improvement_larger_than_min_delta(bert_tokenizer, tmp_path):
    """A held-out loss creeping down by less than min_delta counts as no improvement for patience (the HF Trainer's
    EarlyStoppingCallback threshold), though the best epoch is still kept."""
    examples = bb.Examples([f"text {i}" for i in range(16)], labels=[i % 2 for i in range(16)])
    dataset = encode(examples, bert_tokenizer, 16)

    def run(min_delta):
        losses = iter([1.0, 0.9999, 0.9998, 0.9997, 0.5])  # the held-out loss of each epoch
        model, _ = build_classifier("random-bert-1x32", bert_tokenizer, ("a", "b"))
        loader = DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset.lengths, 8, seed=0),
                            collate_fn=PadCollator(bert_tokenizer))
        settings = TrainSettings(epochs=5, patience=2, min_delta=min_delta, mixed_precision="no")
        return fit(model, loader, lambda _model: {"loss": next(losses)}, "loss", settings,
                   tmp_path / f"best{min_delta}", higher_is_better=False)[1]

    strict = run(0.0)
    assert not strict.stopped_early and len(strict.history) == 5 and strict.best_epoch == 4
    tolerant = run(1e-3)
    assert tolerant.stopped_early and len(tolerant.history) == 3 and tolerant.best_epoch == 2


def test_shards_cover_each_global_batch_once_and_weigh_an_uneven_split_by_its_size():
    import numpy as np

    from bertbench.train import shard_batches, shard_weights

    batches = [list(range(16)), list(range(16, 27)), [27]]  # 16, 11 (uneven on 2 processes), 1 (< 2 processes)
    parts = [shard_batches(batches, rank, 2) for rank in (0, 1)]
    assert [sorted(parts[0][i] + parts[1][i]) for i in range(2)] == batches[:2]
    assert parts[0][2] == parts[1][2] == [27]  # repeated: DDP needs a backward on every process
    weights = [shard_weights(batches, rank, 2) for rank in (0, 1)]
    assert weights[0][0] == weights[1][0] == 1.0
    assert weights[0][1] == pytest.approx(2 * 6 / 11) and weights[1][1] == pytest.approx(2 * 5 / 11)
    assert weights[0][2] == weights[1][2] == 1.0
    # DDP averages the processes' gradients: with these weights that average is the global batch's mean
    values = np.arange(27, dtype=float) ** 2
    shard_means = [values[parts[rank][1]].mean() * weights[rank][1] for rank in (0, 1)]
    assert np.mean(shard_means) == pytest.approx(values[16:27].mean())
    assert shard_weights(batches, 0, 1) == [1.0, 1.0, 1.0]


def test_mfu_peaks_match_the_most_specific_device_name_and_flops_count_the_encoder(bert_tokenizer):
    from bertbench.heads import SequenceClassifier, load_encoder
    from bertbench.train import encoder_train_flops_per_token, peak_tflops

    assert peak_tflops("NVIDIA H100 PCIe") == 756.0 and peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0 and peak_tflops("NVIDIA L40S") == 362.0
    assert peak_tflops("cpu:x86_64 x2 threads") is None
    model, _ = build_classifier("random-bert-2x64", bert_tokenizer, ("neg", "pos"))
    # 2 layers of 64 wide (intermediate 256): q, k, v, o 4 x 64 x 64, ffn 2 x 64 x 256 -> 49,152 weights per layer
    assert encoder_train_flops_per_token(model, 10.0) == 6.0 * 2 * 49_152 + 12.0 * 2 * 64 * 10.0
    encoder = load_encoder("random-bert-2x64", bert_tokenizer, 64)
    own = SequenceClassifier(encoder, 2, "single_label_classification", pooling="mean", dropout=0.0)
    assert encoder_train_flops_per_token(own, 10.0) == encoder_train_flops_per_token(model, 10.0)
    # the last layer on the first token (models.first_token_last_layer): per token, only its keys and values
    assert encoder_train_flops_per_token(model, 10.0, first_token=True) == \
        6.0 * (49_152 + 2 * 64 * 64) + 12.0 * 1 * 64 * 10.0
    assert encoder_train_flops_per_token(own, 10.0, first_token=True) == encoder_train_flops_per_token(own, 10.0)
