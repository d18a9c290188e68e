import warnings

import pytest

import bertbench as bb
from bertbench.experiments.long_documents import ALL_RUNS


def test_presets_differ_and_default_is_cpu(monkeypatch):
    monkeypatch.setattr("bertbench.config._cuda_available", lambda: False)
    cpu = bb.GlueConfig.from_env(environ={})
    tiny = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny"})
    assert cpu.preset == "cpu" and cpu.model == "minilm"
    assert tiny.preset == "tiny" and tiny.model.startswith("random-bert-")
    assert tiny.max_train_examples < cpu.max_train_examples


def test_env_overrides_are_coerced_to_field_types():
    cfg = bb.GlueConfig.from_env(environ={
        "BB_LR": "3e-5", "BB_EPOCHS": "5", "BB_SEEDS": "1,2,3", "BB_TASKS": "rte, mrpc",
        "BB_GROUP_BY_LENGTH": "false", "BB_PREDICT_TEST": "0"})
    assert cfg.lr == pytest.approx(3e-5) and cfg.epochs == 5
    assert cfg.seeds == (1, 2, 3) and cfg.tasks == ("rte", "mrpc")
    assert cfg.group_by_length is False and cfg.predict_test is False


def test_env_beats_keyword_beats_preset():
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_EPOCHS": "7"}, epochs=4, lr=0.5)
    assert cfg.epochs == 7 and cfg.lr == 0.5 and cfg.preset == "tiny"


def test_unknown_bb_variable_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError) as err:
        bb.GlueConfig.from_env(environ={"BB_LEARNING_RATE": "1e-5"})
    message = str(err.value)
    assert "BB_LEARNING_RATE" in message and "BB_LR" in message and "BB_DATA_DIR" in message


def test_unknown_preset_and_bad_values_fail_when_the_config_is_built():
    with pytest.raises(ValueError, match="preset"):
        bb.GlueConfig.from_env(environ={"BB_PRESET": "huge"})
    with pytest.raises(ValueError, match="lr"):
        bb.GlueConfig.from_env(environ={"BB_LR": "-1"})
    with pytest.raises(ValueError, match="epochs"):
        bb.GlueConfig.from_env(environ={"BB_EPOCHS": "zero"})
    with pytest.raises(ValueError, match="selection"):
        bb.GlueConfig.from_env(environ={"BB_SELECTION": "test"})
    with pytest.raises(KeyError, match="unknown GLUE task"):
        bb.GlueConfig.from_env(environ={"BB_TASKS": "sst3"})
    with pytest.raises(ValueError, match="no training split"):
        bb.GlueConfig.from_env(environ={"BB_TASKS": "ax"})


def test_config_is_frozen_and_serialised_with_every_field():
    cfg = bb.GlueConfig.from_env(environ={})
    with pytest.raises(AttributeError):
        cfg.lr = 1.0
    stored = cfg.to_dict()
    assert set(stored) == set(bb.GlueConfig.field_types())
    assert "lr" in str(cfg)


def test_task_overrides_apply_to_their_task_only():
    cfg = bb.GlueConfig.from_env(environ={"BB_TASK_OVERRIDES": "sst2.seeds=0;sst2.max_train_examples=100;rte.lr=2e-5",
                                          "BB_SEEDS": "0,1,2"})
    assert cfg.for_task("sst2").seeds == (0,) and cfg.for_task("sst2").max_train_examples == 100
    assert cfg.for_task("rte").lr == pytest.approx(2e-5) and cfg.for_task("rte").seeds == (0, 1, 2)
    assert cfg.for_task("cola").seeds == (0, 1, 2)
    with pytest.raises(ValueError, match="name.field=value"):
        bb.GlueConfig.from_env(environ={"BB_TASK_OVERRIDES": "sst2seeds0"})
    with pytest.raises(ValueError, match="cannot be set per name"):
        bb.GlueConfig.from_env(environ={"BB_TASK_OVERRIDES": "sst2.nonsense=1"})


def test_run_id_is_stable_and_changes_with_the_configuration():
    cfg = bb.GlueConfig.from_env(environ={})
    assert bb.run_id_for(cfg, "rte", 0) == bb.run_id_for(bb.GlueConfig.from_env(environ={}), "rte", 0)
    assert bb.run_id_for(cfg, "rte", 0) != bb.run_id_for(cfg, "rte", 1)
    assert bb.run_id_for(cfg, "rte", 0) != bb.run_id_for(cfg.replace(lr=1e-5), "rte", 0)


def test_a_variable_another_notebook_knows_is_no_error_but_a_typo_is_with_a_suggestion():
    """`export BB_TASKS=rte` before `make lab` must not break notebooks 01/02/04/06, whose configs have no tasks."""
    for config in (bb.TokenizerConfig, bb.PretrainConfig, bb.LongDocConfig, bb.AggregateConfig):
        assert config.from_env(environ={"BB_TASKS": "rte", "BB_FUSIONS": "mean"}).preset == "cpu"
    with pytest.raises(ValueError, match=r"BB_EPOHCS \(did you mean BB_EPOCHS"):
        bb.GlueConfig.from_env(environ={"BB_EPOHCS": "3"})


def test_parameters_cell_values_apply_none_means_the_preset_and_bb_wins_with_a_warning():
    cfg = bb.GlueConfig.from_env(environ={}, preset="tiny", tasks=("rte",), seeds=None, lr=None)
    tiny = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny"})
    assert cfg.tasks == ("rte",) and cfg.seeds == tiny.seeds and cfg.lr == tiny.lr
    assert cfg.origin("tasks") == "cell" and cfg.origin("lr") == "preset tiny" and cfg.origin("patience") == "default"
    with pytest.warns(bb.config.ConfigOverrideWarning, match=r"BB_EPOCHS='7' overrides epochs = 4"):
        cfg = bb.GlueConfig.from_env(environ={"BB_EPOCHS": "7"}, epochs=4)
    assert cfg.epochs == 7 and cfg.origin("epochs") == "BB_EPOCHS"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same value from both: nothing to warn about
        bb.GlueConfig.from_env(environ={"BB_EPOCHS": "4"}, epochs=4)


def test_printed_config_marks_every_value_not_at_its_default_with_its_origin():
    cfg = bb.GlueConfig.from_env(environ={"BB_PRESET": "tiny", "BB_LR": "0.002"}, tasks=("rte",))
    lines = {line.split("=")[0].strip(): line for line in str(cfg).splitlines()[1:]}
    assert lines["lr"].endswith("<- BB_LR") and lines["tasks"].endswith("<- cell")
    assert lines["max_len"].endswith("<- preset tiny") and lines["preset"].endswith("<- BB_PRESET")
    assert "<-" not in lines["patience"]  # at the class default: unmarked


CONFIGS = [bb.TokenizerConfig, bb.PretrainConfig, bb.GlueConfig, bb.LongDocConfig, bb.ProbeConfig, bb.HeadsConfig,
           bb.AggregateConfig]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.__name__)
def test_with_cuda_and_no_preset_chosen_every_notebook_takes_the_gpu_preset_and_says_so(monkeypatch, config):
    monkeypatch.setattr("bertbench.config._cuda_available", lambda: True)
    cfg = config.from_env({})
    assert cfg.preset == "gpu" and cfg.origin("preset").startswith("automatic: a CUDA device")
    preset_line = next(line for line in str(cfg).splitlines() if line.strip().startswith("preset "))
    assert "<- automatic: a CUDA device is available" in preset_line
    # a preset the user chose wins, in the cell or through BB_PRESET
    assert config.from_env({}, preset="cpu").preset == "cpu"
    assert config.from_env({"BB_PRESET": "tiny"}).preset == "tiny"
    monkeypatch.setattr("bertbench.config._cuda_available", lambda: False)
    assert config.from_env({}).preset == "cpu" and config.from_env({}).origin("preset") == "default"


def test_the_gpu_presets_train_on_whole_training_sets_with_three_seeds():
    glue = bb.GlueConfig.from_env({"BB_PRESET": "gpu"})
    assert glue.max_train_examples == 0 and glue.seeds == (0, 1, 2) and glue.model == "minilm"
    longdoc = bb.LongDocConfig.from_env({"BB_PRESET": "gpu"})
    assert longdoc.seeds == (0, 1, 2) and longdoc.dataset_overrides == "" and longdoc.runs == ALL_RUNS
    assert bb.ProbeConfig.from_env({"BB_PRESET": "gpu"}).max_probe_train_examples == 0


# ------------------------------------------------------------------------ issue 24: bad values refused at build
def _config_classes() -> list[type]:
    """Every config class of the package (subclasses included), found rather than listed: a new notebook's config
    is covered without editing this file."""
    found, stack = [], [bb.config.BaseConfig]
    while stack:
        config = stack.pop()
        stack.extend(config.__subclasses__())
        if config is not bb.config.BaseConfig:
            found.append(config)
    return sorted(set(found), key=lambda config: config.__name__)


FLOAT_FIELDS = [(config, name) for config in _config_classes() for name, annotation in config.field_types().items()
                if annotation is float or "float" in str(annotation)]


def test_every_float_field_of_every_config_is_in_the_nan_test():
    assert {(config.__name__, name) for config, name in FLOAT_FIELDS} >= {
        ("GlueConfig", "lr"), ("GlueConfig", "dropout"), ("GlueConfig", "lr_grid"), ("LongDocConfig", "warmup_ratio"),
        ("PretrainConfig", "mask_prob"), ("ProbeConfig", "probe_lr"), ("AggregateConfig", "ci_level")}


@pytest.mark.parametrize("config, name", FLOAT_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in FLOAT_FIELDS])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_nan_and_infinite_values_are_refused_for_every_float_field(monkeypatch, config, name, text):
    """Issue 24 item 1: ``nan`` passed every range check (``BB_LR=nan``, ``BB_VAL_FRACTION=nan``, ...) and
    ``BB_DROPOUT=nan`` was silently ignored (``nan >= 0`` is False: "keep the model's own")."""
    monkeypatch.setattr("bertbench.config._cuda_available", lambda: False)
    with pytest.raises(ValueError, match=rf"{name}.*not a finite number.*BB_{name.upper()}"):
        config.from_env(environ={f"BB_{name.upper()}": text})
    value = float(text)
    with pytest.raises(ValueError, match=rf"^{name}: .* is not a finite number"):  # set in the notebook's cell
        config.from_env(environ={}, **{name: (value,) if "tuple" in str(config.field_types()[name]) else value})


def test_check_range_refuses_nan_whatever_the_bounds():
    for low, high in ((0, 1), (None, 1), (0, None), (None, None)):
        with pytest.raises(ValueError, match="dropout: nan is not a finite number"):
            bb.config.check_range("dropout", float("nan"), low, high)


@pytest.mark.parametrize("overrides, entry", [
    ("rte.lr=5", "rte.lr=5"),  # out of range for rte only
    ("sst2.epochs=2;rte.warmup_ratio=nan", "rte.warmup_ratio=nan"),  # a value that does not parse
    ("rte.epochs=2;rte.max_train_examples=1", "rte.max_train_examples=1"),  # the entry at fault, not its neighbour
    ("wnli.val_fraction=0.9", "wnli.val_fraction=0.9"),  # a task that comes up last (and one not in tasks)
])
def test_every_task_override_is_validated_when_the_config_is_built(overrides, entry):
    """Issue 24 item 2: a bad override was found only when its task came up, after the earlier tasks had trained,
    and the message did not name BB_TASK_OVERRIDES."""
    with pytest.raises(ValueError, match="BB_TASK_OVERRIDES") as err:
        bb.GlueConfig.from_env(environ={"BB_TASKS": "cola,sst2,rte", "BB_TASK_OVERRIDES": overrides})
    assert repr(entry) in str(err.value)
    with pytest.raises(ValueError, match="BB_TASK_OVERRIDES"):  # the heads notebook shares GLUE's overrides
        bb.HeadsConfig.from_env(environ={"BB_TASK_OVERRIDES": overrides})


def test_every_dataset_override_is_validated_when_the_config_is_built():
    with pytest.raises(ValueError, match=r"BB_DATASET_OVERRIDES.*'bbc\.stride=9999'.*stride"):
        bb.LongDocConfig.from_env(environ={"BB_DATASETS": "hyperpartisan,bbc",
                                           "BB_DATASET_OVERRIDES": "bbc.stride=9999"})
    with pytest.raises(ValueError, match=r"BB_DATASET_OVERRIDES.*'bbc\.runs=head,windows\+nonsense'"):
        bb.LongDocConfig.from_env(environ={"BB_DATASET_OVERRIDES": "bbc.runs=head,windows+nonsense"})
    cfg = bb.LongDocConfig.from_env(environ={"BB_DATASET_OVERRIDES": "bbc.stride=64"})  # valid ones still apply
    assert cfg.for_dataset("bbc").stride == 64


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.__name__)
def test_an_empty_bb_preset_is_refused_naming_the_presets(monkeypatch, config):
    """Issue 24 item 3: ``BB_PRESET=`` silently chose ``cpu``; unset, the automatic choice stays (gpu with CUDA)."""
    monkeypatch.setattr("bertbench.config._cuda_available", lambda: True)
    for empty in ("", "  "):
        with pytest.raises(ValueError, match=r"BB_PRESET is set but empty.*'cpu', 'full', 'gpu', 'tiny'"):
            config.from_env(environ={"BB_PRESET": empty})
    with pytest.raises(ValueError, match="preset .*is set but empty"):
        config.from_env(environ={}, preset="")
    assert config.from_env(environ={}).preset == "gpu"


def test_a_training_subset_too_small_to_leave_a_holdout_is_refused_naming_the_minimum():
    """Issue 24 item 3: ``BB_MAX_TRAIN_EXAMPLES=1`` trained nothing and failed with "max() arg is an empty
    sequence": with selection holdout the subset must leave one example to train on and one to choose the epoch."""
    with pytest.raises(ValueError, match=r"max_train_examples: .*at least 2"):
        bb.GlueConfig.from_env(environ={"BB_MAX_TRAIN_EXAMPLES": "1"})
    with pytest.raises(ValueError, match=r"BB_TASK_OVERRIDES.*'rte\.max_train_examples=1'.*at least 2"):
        bb.GlueConfig.from_env(environ={"BB_TASK_OVERRIDES": "rte.max_train_examples=1"})
    assert bb.GlueConfig.from_env(environ={"BB_MAX_TRAIN_EXAMPLES": "2"}).max_train_examples == 2
    assert bb.GlueConfig.from_env(environ={"BB_MAX_TRAIN_EXAMPLES": "1", "BB_SELECTION": "dev"}).max_train_examples == 1
