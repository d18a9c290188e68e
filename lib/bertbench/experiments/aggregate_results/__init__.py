"""Notebook 06: every result side by side, pooled and compared only within one protocol.

Three sources meet in one GLUE table: the notebooks' result CSVs (read through :func:`bertbench.results.load_results`),
the seed project's DitBERT run folders (:func:`import_ditbert`: ``GLUE-Outputs/<run>/results_<task>.csv``, one row per
epoch with ``validation_*`` columns), and a small table of published numbers shipped with the package
(``references/glue_published.csv``, each number with its paper or repository). Rows are pooled over seeds (median,
min–max, a bootstrap CI of the median where per-example predictions exist) only when their protocol agrees —
``init``, ``selection``, ``max_len``, ``preset`` and, per task, ``train_examples`` — and two systems are compared only
under the same protocol unless the caller asks for a cross-protocol comparison, which is then marked.

Selection rules: ``as_recorded`` keeps each run's own choice (notebooks 03/05: the epoch chosen on a held-out part of
the training data; DitBERT's per-epoch files: the last epoch, a fixed budget that never looked at dev).
``best_on_dev`` is DitBERT's published rule — the best epoch of the best run, picked and reported on the same dev
split — available only as a labelled, optimistic option.
"""

from .cells import (
    comparable_pair,
    compare_systems,
    glue_cells,
    glue_table,
    longdoc_table,
    median_score_interval,
    pool_runs,
    pretraining_curves,
    probe_best_layers,
    protocol_of,
    resampled_scores,
)
from .importers import REFERENCES, import_ditbert, load_references, read_outputs, read_predictions, reference_cells
from .plots import plot_glue, plot_longdoc, plot_pretraining, plot_probes
from .protocol import GLUE_TASKS, NOTEBOOK, OPTIMISTIC, PROTOCOL, SYSTEM, AggregateConfig, ProtocolError
from .summary import (
    Aggregation,
    aggregate_outputs,
    aggregate_rows,
    ditbert_table,
    summary_markdown,
    write_aggregation,
)

__all__ = [
    "AggregateConfig", "Aggregation", "GLUE_TASKS", "NOTEBOOK", "OPTIMISTIC", "PROTOCOL", "REFERENCES", "SYSTEM",
    "ProtocolError", "aggregate_outputs", "aggregate_rows", "comparable_pair", "compare_systems", "ditbert_table",
    "glue_cells",
    "glue_table",
    "import_ditbert", "load_references", "longdoc_table", "median_score_interval", "plot_glue", "plot_longdoc",
    "plot_pretraining", "plot_probes", "pool_runs", "pretraining_curves", "probe_best_layers", "protocol_of",
    "read_outputs", "read_predictions", "reference_cells", "resampled_scores", "summary_markdown", "write_aggregation",
]
