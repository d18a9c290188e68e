"""Layer-wise probes on a frozen encoder: what each layer's states make linearly readable, before and after fine-tuning.

The study of notebook 05 (the CS224N depth-and-fine-tuning probes): the encoder is frozen, its hidden states of every
layer (layer 0 = the embeddings) are computed once and cached on disk, and a softmax-regression probe (dropout +
linear) is trained on each layer independently.

- Sentence probes for any GLUE / text-label task: the CLS vector or mean pooling of each layer (``poolings``).
- Span probes for extractive QA (SQuAD 2.0 JSON): a start and an end probe per layer over token states; no-answer is
  the first position, predicted when the null score beats the best span by more than a threshold chosen on the probe's
  training questions (never on the questions it is scored on). Scored with the official exact match / F1.
- Every curve is drawn with its floor: the majority class (or always "no answer"), so that a flat curve at the
  floor is read as "nothing linearly decodable", not as "constant feature quality" (CS224N: all layer-1 SQuAD probes
  at 52.12 F1 = always no-answer).
- Control task (Hewitt & Liang 2019, adapted to sentences): ``word_type`` gives every word type a random label and an
  example the label of its first word — a function of the words that carries no task meaning;
  ``example`` gives every example a random label. Selectivity = task accuracy - control accuracy.
- QA fine-tuning (``squad_finetune_epochs``): the encoder + a start/end head trained on the SQuAD windows with
  bertbench's loop, saved after every epoch; span probes on each epoch's checkpoint (``init`` =
  ``fine-tuned:squad2@epoch<k>``) beside the pretrained ones, and each checkpoint's own QA head as the ceiling.
- Token states are streamed to disk, one memory-mapped float16 file per layer, and the span probes read them in
  chunks (``probe_memory_mb``): memory does not grow with the number of windows.
- Every probe is saved in its own folder (safetensors weights + ``config.json`` saying what it reads);
  :func:`load_probe` loads it back, :func:`evaluate_probe` scores it on another split without training.

The probe objective is mean cross-entropy + ``weight_decay``/2 ||W||^2 (bias not penalised), features standardised
with the training set's mean and standard deviation (stored in the probe), i.e. L2-regularised multinomial logistic
regression when dropout is 0 — tested against scikit-learn's.
"""

from .probes import (
    LinearProbe,
    SpanProbe,
    context_mask,
    control_labels,
    fit_probe,
    fit_span_probe,
    majority_label,
    probe_logits,
    span_logits,
)
from .saved import evaluate_probe, load_probe, predict_probe, save_probe
from .span_study import probe_squad, probe_squad_models
from .squad_finetune import finetune_squad
from .states import SENTENCE_POOLINGS, load_frozen, model_fingerprint, sentence_states
from .study import (
    CONTROLS,
    NOTEBOOK,
    ProbeConfig,
    finetune_config,
    finetuned_checkpoint,
    is_fine_tuned,
    plot_layer_curves,
    probe_summary,
    probe_task,
    run_probes,
    selectivity,
)
from .token_store import TokenStates, token_states

__all__ = [
    "CONTROLS", "NOTEBOOK", "SENTENCE_POOLINGS", "LinearProbe", "ProbeConfig", "SpanProbe", "TokenStates",
    "context_mask", "control_labels", "evaluate_probe", "finetune_config", "finetune_squad", "finetuned_checkpoint",
    "fit_probe", "fit_span_probe", "is_fine_tuned", "load_frozen", "load_probe", "majority_label",
    "model_fingerprint", "plot_layer_curves", "predict_probe", "probe_logits", "probe_squad", "probe_squad_models",
    "probe_summary", "probe_task", "run_probes", "save_probe", "selectivity", "sentence_states", "span_logits",
    "token_states",
]
