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
