"""Safe loading: weights from safetensors or ``torch.load(weights_only=True)`` only, pickle checkpoints refused with
an explanation, ``trust_remote_code`` off by default, no ``eval``/``exec`` in the package.

tests/test_repo.py greps the package and notebooks for the explicit unsafe spellings; the checks here read the
syntax tree (a ``torch.load`` without ``weights_only``, a default of ``True``) and load real checkpoints.
"""

import ast
import dataclasses
import os
import pickle
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import bertbench as bb
from bertbench.heads import HeadModel, SequenceClassifier, load_encoder
from bertbench.models import PickleCheckpointError, build_classifier

LIB = Path(__file__).resolve().parents[1] / "lib" / "bertbench"


def _tiny_classifier() -> BertForSequenceClassification:
    return BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32))


def _pickle_checkpoint(folder: Path, model) -> Path:
    """A checkpoint as transformers < 5 wrote it with ``safe_serialization=False``: config.json and a pickled
    ``pytorch_model.bin`` (transformers 5 writes safetensors whatever that flag says, so the pickle is made here)."""
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


class _RunsCodeWhenUnpickled:
    """Unpickling this creates a folder: what a hostile checkpoint would do with a worse command."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), filename=str(path))) for path in sorted(LIB.rglob("*.py"))]


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(LIB.parent)}:{node.lineno}"


# --------------------------------------------------------------- checkpoints


def test_pickle_checkpoint_is_refused_with_an_explanation(tmp_path):
    folder = _pickle_checkpoint(tmp_path / "pickled", _tiny_classifier())
    with pytest.raises(PickleCheckpointError) as error:
        build_classifier(str(folder), None, ("a", "b"))
    message = str(error.value)
    assert str(folder) in message and "pytorch_model.bin" in message
    assert "arbitrary code" in message and "safe_serialization=True" in message


def test_pickle_encoder_is_refused_by_the_head_loaders(tmp_path):
    _pickle_checkpoint(tmp_path / "pickled", _tiny_classifier())
    with pytest.raises(PickleCheckpointError, match="pickle"):
        load_encoder(str(tmp_path / "pickled"))
    saved = tmp_path / "head_model"
    SequenceClassifier(_tiny_classifier().bert, num_labels=2).save_pretrained(saved)
    _pickle_checkpoint(saved / "encoder", _tiny_classifier().bert)
    with pytest.raises(PickleCheckpointError, match="pickle"):
        HeadModel.from_pretrained(saved)


def test_safetensors_checkpoint_loads(tmp_path):
    original = _tiny_classifier()
    original.save_pretrained(tmp_path / "safe")
    assert [p.name for p in (tmp_path / "safe").glob("*.safetensors")] == ["model.safetensors"]
    model, head = build_classifier(str(tmp_path / "safe"), None, ("a", "b"))
    assert head == "reinit"  # LABEL_0/LABEL_1 are not label names: encoder reused, head new
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, original.bert.embeddings.word_embeddings.weight)


def test_weights_only_torch_load_refuses_a_pickled_object_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"step": torch.tensor(3), "payload": _RunsCodeWhenUnpickled(marker)}, tmp_path / "trainer.pt")
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        torch.load(tmp_path / "trainer.pt", weights_only=True)
    assert not marker.exists()
    torch.save({"step": torch.tensor(3)}, tmp_path / "plain.pt")  # tensors and containers still load
    assert torch.load(tmp_path / "plain.pt", weights_only=True)["step"] == 3


def test_a_resume_checkpoint_whose_trainer_file_holds_pickled_objects_is_refused_without_running_them(tmp_path):
    """Issue 24 item 6: such a ``trainer.pt`` gave torch's own message, which recommends ``weights_only=False`` --
    that is, unpickling the file. bertbench names the file, says it is damaged or not trusted, and gives BB_RESUME=0."""
    from torch.utils.data import DataLoader

    from bertbench.checkpoint import TRAINER_FILE
    from bertbench.encoding import LengthGroupedBatchSampler, PadCollator, encode
    from bertbench.models import load_tokenizer
    from bertbench.train import TrainSettings, fit

    tokenizer = load_tokenizer("minilm")
    examples = bb.Examples([f"sentence {i}" for i in range(8)], labels=[i % 2 for i in range(8)])
    dataset = encode(examples, tokenizer, 16)
    loader = DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset.lengths, 4, seed=0),
                        collate_fn=PadCollator(tokenizer))
    settings = TrainSettings(epochs=1, mixed_precision="no")
    model = lambda: build_classifier("random-bert-1x32", tokenizer, ("a", "b"))[0]  # noqa: E731
    fit(model(), loader, None, "score", settings, tmp_path / "best", resume_dir=tmp_path / "resume", fingerprint="r")
    marker = tmp_path / "code-ran"
    torch.save({"optimizer": {}, "payload": _RunsCodeWhenUnpickled(marker)}, tmp_path / "resume" / TRAINER_FILE)
    with pytest.raises(ValueError) as error:
        fit(model(), loader, None, "score", settings, tmp_path / "best", resume_dir=tmp_path / "resume",
            fingerprint="r")
    message = str(error.value)
    assert str(tmp_path / "resume" / TRAINER_FILE) in message and "not trusted" in message
    assert "BB_RESUME=0" in message and "weights_only=False" not in message
    assert error.value.__suppress_context__  # torch's advice is not chained into the traceback either
    assert not marker.exists()


# --------------------------------------------------------------- the package's source


def test_every_torch_load_in_the_package_is_weights_only():
    loads, unsafe = 0, []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                loads += 1
                weights_only = [k.value for k in node.keywords if k.arg == "weights_only"]
                if not (weights_only and isinstance(weights_only[0], ast.Constant) and weights_only[0].value is True):
                    unsafe.append(_where(path, node))
    assert loads, "no torch.load found: the check reads the wrong folder"
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


def test_trust_remote_code_defaults_to_false_everywhere():
    bad, parameters = [], 0
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # parameters and their defaults
                args = node.args
                positional = args.posonlyargs + args.args
                defaults = [None] * (len(positional) - len(args.defaults)) + args.defaults + args.kw_defaults
                for arg, default in zip(positional + args.kwonlyargs, defaults, strict=True):
                    if arg.arg != "trust_remote_code":
                        continue
                    parameters += 1
                    if not (isinstance(default, ast.Constant) and default.value is False):
                        bad.append(f"{_where(path, node)}: parameter of {node.name}")
            elif isinstance(node, ast.ClassDef):  # dataclass fields
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and getattr(item.target, "id", "") == "trust_remote_code" \
                            and not (isinstance(item.value, ast.Constant) and item.value.value is False):
                        bad.append(f"{_where(path, item)}: field of {node.name}")
            elif isinstance(node, ast.keyword) and node.arg == "trust_remote_code" \
                    and isinstance(node.value, ast.Constant) and node.value.value is not False:
                bad.append(f"{_where(path, node.value)}: trust_remote_code={node.value.value!r} in a call")
    assert parameters and not bad, bad
    configs = {name: getattr(bb, name) for name in bb.__all__ if name.endswith("Config")}
    trusting = {name for name, cls in configs.items() if dataclasses.is_dataclass(cls)
                and any(field.name == "trust_remote_code" for field in dataclasses.fields(cls))}
    assert {"GlueConfig", "HeadsConfig", "LongDocConfig", "ProbeConfig"} <= trusting
    for name in trusting:
        field = {field.name: field for field in dataclasses.fields(configs[name])}["trust_remote_code"]
        assert field.default is False, f"{name}.trust_remote_code defaults to {field.default!r}"


def test_no_eval_or_exec_call_in_the_package():
    calls = [f"{_where(path, node)}: {node.func.id}(...)" for path, tree in _modules() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec")]
    assert not calls, calls
