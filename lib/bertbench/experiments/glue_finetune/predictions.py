"""Per-example predictions of GLUE runs: their file format and the task metrics recomputed from them.

The file is read and checked like a results file (:func:`bertbench.results.load_predictions` against
:data:`bertbench.results.GLUE_PREDICTIONS`): a row cut short or a column deleted is an error naming file:line, never
a row padded with NaN that fails later as "Integer column has NA values" or is rewritten as a normal-looking one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ... import metrics as M
from ...data.examples import Examples
from ...data.glue import GlueTask, get_task
from ...results import GLUE_PREDICTIONS, load_predictions

PREDICTION_COLUMNS = tuple(GLUE_PREDICTIONS.columns)  # run_id, task, split, example, label, prediction
# Written in full (the shortest exact text; float32 outputs need <= 9 digits) so that the metrics recomputed from the
# file equal the reported ones: at 6 digits, the committed STS-B Pearson moved by 5e-6 (a tiny model's by 7e-4), and
# one STS-B dev label is 2.33333333333333.
PREDICTION_EXACT = ("label", "prediction")


def prediction_frame(run_id: str, task: GlueTask, evals: dict[str, Examples],
                     logits: dict[str, np.ndarray]) -> pd.DataFrame:
    """One run's per-example predictions in the predictions file's format (:data:`PREDICTION_COLUMNS`).

    Args:
        evals: the labelled evaluation splits, each in the order its outputs were predicted.
        logits: split -> model outputs (N, K) (K = 1 for regression).

    Returns:
        One row per (split, example): ``example`` is the position in the split, ``label`` the gold class id (the
        target for STS-B), ``prediction`` the argmax class id (the regression output, float32 as the model gave it).
    """
    frames = []
    for split, examples in evals.items():
        outputs = np.asarray(logits[split])
        if task.is_regression:
            predicted, labels = outputs.reshape(-1).astype(np.float32), np.asarray(examples.labels, dtype=float)
        else:
            predicted, labels = outputs.argmax(axis=-1), np.asarray(examples.labels, dtype=np.int64)
        frames.append(pd.DataFrame({"run_id": run_id, "task": task.name, "split": split,
                                    "example": np.arange(len(examples)), "label": labels, "prediction": predicted}))
    return pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)]


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A GLUE predictions file, read and checked (empty frame with the columns if there is none yet): ``example`` as
    int64, ``label`` and ``prediction`` as float64 (class ids or STS-B values).

    Raises:
        ResultsError: a broken file (a row cut short, a missing column, a value that is not a number), naming
            file:line:field.
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame({column: [] for column in PREDICTION_COLUMNS})
    return load_predictions(path, GLUE_PREDICTIONS)


def prediction_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each run's task metrics recomputed from its per-example predictions, as the run reported them.

    Returns:
        Rows ``run_id, task, split, metric, value``: the task's metrics per evaluation split, plus the run's ``dev``
        ``score`` (the mean task score over its evaluation splits, MNLI's matched and mismatched alike).
    """
    rows = []
    for (run_id, task_name), run in predictions.groupby(["run_id", "task"], sort=False):
        task = get_task(task_name)
        split_scores = []
        for split, part in run.groupby("split", sort=False):
            part = part.sort_values("example", kind="stable")
            predicted, labels = part["prediction"].to_numpy(float), part["label"].to_numpy(float)
            if task.is_regression:  # float32 outputs, as the run scored them (the file keeps them exactly)
                values = M.regression_metrics(predicted.astype(np.float32), labels, task.metrics)
            else:
                values = M.classification_metrics(predicted.astype(np.int64), labels.astype(np.int64), task.num_labels,
                                                  task.metrics)
            split_scores.append(M.task_score(task, values))
            rows += [(run_id, task.name, split, metric, value) for metric, value in values.items()]
        rows.append((run_id, task.name, "dev", "score", float(np.mean(split_scores))))
    return pd.DataFrame(rows, columns=["run_id", "task", "split", "metric", "value"])
