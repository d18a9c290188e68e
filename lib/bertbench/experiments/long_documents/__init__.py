"""Notebook 04: long-document classification with every truncation and window strategy. ``runs.py`` holds the
config and one run per (dataset, variant, seed[, fold]); ``summary.py`` the tables that pool runs differing by seed
and fold alone, the paired comparisons and the plot."""

from ...results import predictions_path
from .runs import (
    ALL_RUNS,
    NOTEBOOK,
    LongDocConfig,
    PreparedDataset,
    encode_windows,
    parse_run,
    predict_documents,
    prepare_dataset,
    run_id_for,
    run_long_documents,
    run_one,
    save_predictions,
)
from .summary import PEAK_METRICS, compare_to, longdoc_summary, plot_score_vs_tokens, pooled_interval

__all__ = [
    "ALL_RUNS", "NOTEBOOK", "PEAK_METRICS", "LongDocConfig", "PreparedDataset", "compare_to", "encode_windows",
    "longdoc_summary", "parse_run", "plot_score_vs_tokens", "pooled_interval", "predict_documents",
    "predictions_path", "prepare_dataset", "run_id_for", "run_long_documents", "run_one", "save_predictions",
]
