# %% [markdown]
# # 05 · Layer-wise probes: what each layer makes linearly readable, before and after fine-tuning
#
# Freezes an encoder (default: the packaged all-MiniLM-L6-v2), takes the hidden states of every layer (layer 0 = the
# embeddings) once — cached on disk under `runs/cache/probe_states/` — and trains a softmax-regression probe
# (dropout + linear) on each layer independently, for the pretrained model and for the same model fine-tuned on
# the task by the GLUE notebook (`runs/glue/<run id>/best`; fine-tuned here first when missing).
#
# - **Sentence probes** on GLUE tasks (default SST-2 and CoLA; `BB_TASKS`), CLS vector and mean pooling
#   (`BB_POOLINGS`), trained on a fixed 4,000-example subset of the training split, scored on dev.
# - **Floors and ceiling:** the majority class (a probe at that line decodes nothing), the fine-tuned model's own
#   head, and a control task (`BB_CONTROL=word_type`: a random label per word type, the example labelled by its
#   first word) whose accuracy the task probe should beat — selectivity.
# - **Span probes** (SQuAD 2.0): a start and an end probe per layer over token states, with the no-answer threshold
#   chosen on the probe's training questions; run when `BB_SQUAD_TRAIN` and `BB_SQUAD_DEV` name SQuAD 2.0 JSON files
#   (none ship here), next to the always-no-answer baseline. With `squad_finetune_epochs` (`BB_SQUAD_FINETUNE_EPOCHS`)
#   the model is also fine-tuned for QA on the training file, and the span probes read its checkpoint after each
#   epoch (`init` = `fine-tuned:squad2@epoch1`, ...), next to that checkpoint's own QA head. Token states are streamed
#   to disk and read in chunks, so memory stays bounded on the full SQuAD 2.0 files.
# - **Outputs:** `outputs/05_layer_probes.csv` (one row per model, task, probe, layer, split, metric; `layer` column,
#   `init` = what the probed model is: e.g. `sentence-embedding` for the packaged MiniLM, `fine-tuned:sst2`),
#   `outputs/figures/05_layer_probes.png`; every probe under `runs/probes/<run>/<probe>/` (safetensors + config.json,
#   loaded back by `bertbench.experiments.layer_probes.load_probe`). `tiny` runs write to `runs/tiny-outputs/` instead.
#
# Quick run: `BB_PRESET=tiny python notebooks/05_layer_probes.py`

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" | "cpu" | "gpu" | "full"; None: "cpu", or "gpu" when CUDA is available
tasks = None  # e.g. ("sst2", "cola")
model = None
poolings = None  # e.g. ("cls", "mean")
squad_finetune_epochs = None  # e.g. 2: QA fine-tuning on BB_SQUAD_TRAIN, span probes after each epoch; 0 = off

# %%
cfg = bb.ProbeConfig.from_env(preset=preset, tasks=tasks, model=model, poolings=poolings,
                              squad_finetune_epochs=squad_finetune_epochs)
results_path = bb.outputs_dir(cfg.preset) / "05_layer_probes.csv"  # tiny runs never land in outputs/
print(cfg)
print("results ->", results_path)

# %% [markdown]
# ## Probe every layer of both models
# The fine-tuning (when its checkpoint is missing) runs notebook 03's code with its preset; the states of each model
# and split are computed once and every probe (tasks, controls, poolings) reads the cache. The SQuAD fine-tuning
# (with `squad_finetune_epochs`) trains with bertbench's loop and keeps every epoch's weights under
# `runs/probes/squad2-finetune/`; an interrupted run resumes.

# %%
runs = bb.run_probes(cfg, results_path)

# %% [markdown]
# ## Dev accuracy per layer, with the floors

# %%
results = bb.load_results(results_path)
results = results[results["preset"] == cfg.preset]
table = bb.probe_summary(results[results["task"] != "squad2"])
# one curve per model, probe and configuration (`differs` names what tells two of them apart); pivot, not a mean
wide = table[table["layer"] >= 0].pivot(index=["task", "model", "init", "variant", "differs"], columns="layer",
                                        values="accuracy")
bb.show(wide, digits=3)
bb.show(table[table["layer"] < 0])

# %%
figure_path = results_path.parent / "figures" / "05_layer_probes.png"
bb.show(bb.plot_layer_curves(results, figure_path))
print("figure ->", figure_path)

# %% [markdown]
# ## Selectivity and what fine-tuning changed
# Task-probe accuracy minus control-probe accuracy per layer; then, per task and pooling, the best layer of each
# model against the majority class.

# %%
chosen = bb.selectivity(results)
if len(chosen):
    bb.show(chosen.pivot(index=["task", "model", "init", "pooling", "differs"], columns="layer",
                         values="selectivity"), digits=3)
for (task, variant), part in table[table["variant"].str.startswith("probe:")].groupby(["task", "variant"]):
    floor = table[(table["task"] == task) & (table["variant"] == "majority")]["accuracy"].iloc[0]
    line = []
    for (init, differs), curve in part.groupby(["init", "differs"]):
        best = curve.sort_values("accuracy", kind="stable").iloc[-1]
        line.append(f"{init}{f' ({differs})' if differs else ''} best layer {int(best['layer'])} {best['accuracy']:.3f} "
                    f"(last layer {curve.sort_values('layer')['accuracy'].iloc[-1]:.3f})")
    print(f"{task} {variant}: majority {floor:.3f}; " + "; ".join(line))

# %% [markdown]
# ## SQuAD 2.0 span probes: pretrained vs fine-tuned after each epoch
# Dev F1 of the start/end probes per layer, one row per probed model (`fine-tuned:squad2@epoch<k>`: after k epochs of
# QA fine-tuning), with the floor (always "no answer": a probe on it decodes nothing) and each fine-tuned model's own
# QA head. The figure above draws these curves in its last panel.

# %%
spans = bb.probe_summary(results[results["task"] == "squad2"], metric="f1")
if len(spans):
    bb.show(spans[spans["layer"] >= 0].pivot(index=["model", "init", "variant", "differs"], columns="layer",
                                             values="f1"), digits=2)
    bb.show(spans[spans["layer"] < 0][["model", "init", "variant", "differs", "f1"]], digits=2)
