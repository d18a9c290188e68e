"""Notebook 02: masked-language-model pretraining from scratch. ``runs.py`` holds the config and the budgeted,
resumable run; ``mlm.py`` the model sizes, the packed token stream, masking and the held-out evaluations."""

from .mlm import (
    ARCHS,
    SIZES,
    Masker,
    build_mlm_model,
    evaluate_mlm,
    mlm_head,
    mlm_loss,
    mlm_outputs,
    pack,
    pseudo_perplexity,
    token_stream,
    train_flops_per_token,
)
from .runs import (
    NOTEBOOK,
    PEAK_TFLOPS,
    PretrainConfig,
    PretrainResult,
    TrainState,
    load_checkpoint,
    lr_at,
    pretrain,
    progress,
    resolve_tokenizer,
    save_checkpoint,
)

__all__ = [
    "ARCHS", "NOTEBOOK", "PEAK_TFLOPS", "SIZES", "Masker", "PretrainConfig", "PretrainResult", "TrainState",
    "build_mlm_model", "evaluate_mlm", "load_checkpoint", "lr_at", "mlm_head", "mlm_loss", "mlm_outputs", "pack",
    "progress", "pretrain", "pseudo_perplexity", "resolve_tokenizer", "save_checkpoint", "token_stream",
    "train_flops_per_token",
]
