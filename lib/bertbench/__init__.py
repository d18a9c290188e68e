"""bertbench: a research workbench for BERT-family encoders. This module is the API the notebooks use."""

from .config import BaseConfig
from .data.corpus import Corpus, open_corpus
from .data.documents import Documents, fixed_split, kfold_splits, load_documents
from .data.examples import DataError, Examples
from .data.glue import TASKS, GlueTask, get_task, load_glue, read_glue_tsv
from .data.text_label import examples_from_hf, read_bert_tsv, read_csv, read_hf, read_jsonl, read_splits
from .display import show
from .experiments.aggregate_results import (
                                AggregateConfig,
                                ProtocolError,
                                aggregate_outputs,
                                comparable_pair,
                                compare_systems,
                                ditbert_table,
                                glue_cells,
                                glue_table,
                                import_ditbert,
                                load_references,
                                write_aggregation,
)
from .experiments.encoder_basics import (
                                BasicsConfig,
                                basics_summary,
                                encoder_anatomy,
                                plot_basics,
                                pooling_similarities,
                                run_basics,
)
from .experiments.glue_finetune import (
                                GlueConfig,
                                glue_summary,
                                plot_dev_scores,
                                predict_saved_runs,
                                prediction_metrics,
                                run_glue,
                                run_id_for,
)
from .experiments.layer_probes import (
                                ProbeConfig,
                                evaluate_probe,
                                load_probe,
                                plot_layer_curves,
                                predict_probe,
                                probe_summary,
                                run_probes,
                                selectivity,
)
from .experiments.long_documents import (
                                LongDocConfig,
                                compare_to,
                                longdoc_summary,
                                plot_score_vs_tokens,
                                run_long_documents,
)
from .experiments.model_heads import HeadsConfig, heads_summary, run_heads
from .experiments.pretrain_mlm import PretrainConfig, pretrain
from .experiments.train_tokenizer import TokenizerConfig, run_tokenizers, tokenizer_dir
from .heads import HeadModel, MultitaskModel, SequenceClassifier, TwoInputModel, pool
from .memory import PeakMemory
from .models import build_classifier, load_tokenizer, model_provenance, resolve_model, self_check
from .paths import data_dir, outputs_dir, repo_root, runs_dir
from .results import load_results, predictions_path, write_results

__version__ = "0.1.0"

__all__ = [
    "BaseConfig", "DataError", "Examples", "TASKS", "GlueTask", "get_task", "load_glue", "read_glue_tsv",
    "examples_from_hf", "read_bert_tsv", "read_csv", "read_jsonl", "read_hf", "read_splits", "GlueConfig",
    "glue_summary", "run_glue",
    "run_id_for", "plot_dev_scores",
    "build_classifier", "load_tokenizer", "model_provenance", "resolve_model", "self_check", "data_dir", "outputs_dir",
    "repo_root", "runs_dir", "load_results", "write_results", "Corpus", "open_corpus", "TokenizerConfig",
    "run_tokenizers", "tokenizer_dir", "PretrainConfig", "pretrain", "Documents", "fixed_split", "kfold_splits",
    "load_documents", "LongDocConfig", "longdoc_summary", "plot_score_vs_tokens", "run_long_documents", "PeakMemory",
    "compare_to", "predictions_path", "predict_saved_runs", "prediction_metrics",
    "HeadModel", "MultitaskModel", "SequenceClassifier", "TwoInputModel", "pool", "HeadsConfig", "heads_summary",
    "run_heads", "AggregateConfig", "ProtocolError", "aggregate_outputs", "comparable_pair", "compare_systems",
    "ditbert_table",
    "glue_cells", "glue_table", "import_ditbert", "load_references", "write_aggregation",
    "BasicsConfig", "basics_summary", "encoder_anatomy", "plot_basics", "pooling_similarities", "run_basics",
    "ProbeConfig", "evaluate_probe", "load_probe", "predict_probe",
    "plot_layer_curves", "probe_summary", "run_probes", "selectivity", "show",
]
