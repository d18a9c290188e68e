"""GLUE fine-tuning: the config of notebook 03 and one run per (task, seed), written to the results file.

Selection protocol (the ``selection`` column of every row):
- ``holdout`` (default): ``val_fraction`` of the training data is held out; the best epoch on it is reloaded and
  reported on the dev split, which played no part in any choice.
- ``dev``: the best epoch is chosen on dev and reported on dev — optimistic (DitBERT's rule); labelled as such.
- ``last``: no selection; the last epoch is reported on dev.

Each run's per-example predictions on its labelled evaluation splits (dev; MNLI's dev_matched and dev_mismatched) go
to ``predictions/`` beside the results file (:func:`prediction_frame`), for bootstrap intervals and paired tests;
:func:`predict_saved_runs` backfills them for older runs from their best checkpoints.
"""

from .backfill import predict_saved_runs
from .predictions import PREDICTION_COLUMNS, PREDICTION_EXACT, prediction_frame, prediction_metrics, read_predictions
from .runs import (
    NOTEBOOK,
    SELECTION_LABELS,
    EncodedTask,
    GlueConfig,
    Outcome,
    TaskData,
    config_hash,
    encode_task,
    fit_and_evaluate,
    init_label,
    load_eval_splits,
    load_task_data,
    model_label,
    run_glue,
    run_id_for,
    run_rows,
    run_task_seed,
    write_submission,
)
from .summary import glue_summary, lr_choices, plot_dev_scores, selection_score

__all__ = [
    "NOTEBOOK",
    "PREDICTION_COLUMNS",
    "PREDICTION_EXACT",
    "SELECTION_LABELS",
    "EncodedTask",
    "GlueConfig",
    "Outcome",
    "TaskData",
    "config_hash",
    "encode_task",
    "fit_and_evaluate",
    "glue_summary",
    "lr_choices",
    "selection_score",
    "init_label",
    "load_eval_splits",
    "load_task_data",
    "model_label",
    "plot_dev_scores",
    "predict_saved_runs",
    "prediction_frame",
    "prediction_metrics",
    "read_predictions",
    "run_glue",
    "run_id_for",
    "run_rows",
    "run_task_seed",
    "write_submission",
]
