"""What notebook 06 pools by: the protocol columns, its config, and the error for a refused pooling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ...config import BaseConfig, check_choice, check_range
from ...paths import data_dir, outputs_dir

NOTEBOOK = "06_aggregate_results"
GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
# Columns that must agree before rows are pooled or compared (``train_examples`` is checked per task).
PROTOCOL = ("init", "selection", "max_len", "preset")
SYSTEM = ("source", "model", "variant", *PROTOCOL)
OPTIMISTIC = "best_epoch_best_run_on_dev (optimistic: chosen and reported on dev)"
# DitBERT's aggregation took the best over every run of a model, its from-MNLI runs among them; under its rule the
# imported runs are grouped the same way (an init of its own, so they never pool with anything else)
DITBERT_GROUPING = "all runs of the model, from-MNLI runs included (DitBERT's grouping)"


def start_of(init: str) -> str:
    """The protocol part of ``init``: a run warm-started from an intermediate task (``intermediate:<task>``) follows
    another protocol than a run started from its model's own checkpoint, whatever that checkpoint is. What the
    checkpoint is (``sentence-embedding``, ``own-pretraining``, ...) goes with the model: two models are compared
    under one protocol, their provenance shown beside each."""
    init = str(init)
    return init if init.startswith("intermediate:") or "grouping" in init else "the model's checkpoint"


def protocol_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s :data:`PROTOCOL` columns with ``init`` read as :func:`start_of`: what decides pooling and tables."""
    return frame[list(PROTOCOL)].assign(init=frame["init"].map(start_of))


class ProtocolError(ValueError):
    """Rows or systems with different protocols were about to be pooled or compared."""


@dataclasses.dataclass(frozen=True)
class AggregateConfig(BaseConfig):
    """What notebook 06 reads and how it pools.

    Attributes:
        results_dir: folder of the notebooks' result CSVs ("" = ``outputs/``, or ``runs/tiny-outputs`` for tiny).
        ditbert_dir: DitBERT run folders ("" = ``<data>/ditbert_glue_outputs``; "none" skips the import).
        references: show the published reference rows.
        selection_rule: ``as_recorded`` or ``best_on_dev`` (DitBERT's optimistic rule, labelled as such).
        across_protocols: put systems with different protocols in one table (marked) instead of one per protocol.
        glue_convention: which tasks the GLUE means count (``bertbench.metrics.GLUE_CONVENTIONS``): ``glue_dev``
            (the default, as GLUE-dev papers and DitBERT: WNLI out, MNLI once) or ``with_wnli`` (all nine).
        bootstrap_samples: resamples of the dev examples for the CI of a median score (0 = no CIs).
    """

    results_dir: str = ""
    ditbert_dir: str = ""
    references: bool = True
    selection_rule: str = "as_recorded"
    across_protocols: bool = False
    glue_convention: str = "glue_dev"
    bootstrap_samples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    PRESETS = {"tiny": {"bootstrap_samples": 200}, "cpu": {}, "gpu": {}, "full": {}}

    def validate(self) -> None:
        super().validate()
        check_choice("selection_rule", self.selection_rule, ("as_recorded", "best_on_dev"))
        check_choice("glue_convention", self.glue_convention, ("glue_dev", "with_wnli"))
        check_range("bootstrap_samples", self.bootstrap_samples, 0, 100_000)
        check_range("ci_level", self.ci_level, 0, 1, low_open=True)
        if self.ci_level >= 1:
            raise ValueError(f"ci_level: {self.ci_level!r} must be < 1")

    def results_folder(self) -> Path:
        return Path(self.results_dir).expanduser() if self.results_dir else outputs_dir(self.preset)

    def ditbert_folder(self) -> Path | None:
        if self.ditbert_dir.lower() == "none":
            return None
        return Path(self.ditbert_dir).expanduser() if self.ditbert_dir else data_dir() / "ditbert_glue_outputs"
