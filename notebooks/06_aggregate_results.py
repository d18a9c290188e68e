# %% [markdown]
# # 06 · Every result side by side
#
# Reads every `outputs/*.csv` through the one results loader, the seed project's DitBERT run folders
# (`BB_DITBERT_DIR`, default `<data>/ditbert_glue_outputs`) and the published reference table shipped with
# `bertbench` (`lib/bertbench/references/glue_published.csv`, each number with its source), and shows them together —
# pooled over seeds and compared **only within one protocol** (init, selection rule, max length, preset, and per task
# the training subset).
#
# - **Switches:** `BB_SELECTION_RULE=best_on_dev` applies DitBERT's optimistic rule (best epoch of the best run,
#   chosen and reported on dev; labelled as such); `BB_ACROSS_PROTOCOLS=1` puts different protocols in one table,
#   marked; `BB_GLUE_CONVENTION=with_wnli` counts WNLI in the
#   GLUE means (default `glue_dev`: WNLI out, MNLI once, as GLUE-dev papers report).
# - **Outputs:** `outputs/06_aggregate_results.csv` (result rows: per system and task the median, range, run count
#   and bootstrap CI; per system the GLUE means), `outputs/06_aggregate_results.md` (the summary that `docs/06_aggregate_results.md` includes)
#   and `outputs/figures/06_*.png`. `tiny` runs read and write `runs/tiny-outputs/` instead.
# - **Runs on:** any CPU in seconds; works on a partial or an empty `outputs/`.
#
# Quick run: `BB_PRESET=tiny python notebooks/06_aggregate_results.py`

# %%
import bertbench as bb

# %% tags=["parameters"]
# The settings people change most (None = the preset's value). A BB_* variable of the same name wins, with a warning.
preset = None  # "tiny" reads runs/tiny-outputs/
selection_rule = None  # "as_recorded" | "best_on_dev" (DitBERT's optimistic rule, labelled)
glue_convention = None  # "glue_dev" (WNLI out, MNLI once; the default) | "with_wnli"
across_protocols = None

# %%
cfg = bb.AggregateConfig.from_env(preset=preset, selection_rule=selection_rule, glue_convention=glue_convention,
                                   across_protocols=across_protocols)
results_path = cfg.results_folder() / "06_aggregate_results.csv"
print(cfg)
print("reading", cfg.results_folder(), "->", results_path)

# %% [markdown]
# ## Read, pool within protocols, draw
# One GLUE dev score per run (its own selection rule), pooled over seeds per system and task: median, min–max, and a
# bootstrap CI of the median where notebook 03 kept per-example predictions.

# %%
result = bb.aggregate_outputs(cfg, figures_dir=results_path.parent / "figures")
for message in result.messages:
    print(message)
if len(result.files):
    bb.show(result.files)

# %%
columns = ["source", "model", "variant", "init", "selection", "amean", "n_tasks", "hmean", "hmean_note", "missing"]
bb.show(result.table[columns])

# %% [markdown]
# ## DitBERT's own table, by its own rule (optimistic, labelled)
# Per model and task the best epoch of the best run over all of the model's runs (its from-MNLI runs included, as
# DitBERT grouped them), chosen and reported on the same dev split: what DitBERT's aggregation reported. Beside it,
# the same runs read at their last epoch, which never looked at dev. For reference only; never pooled with the rows
# above.

# %%
ditbert = bb.ditbert_table(result)
if len(ditbert):
    bb.show(ditbert.drop(columns="rule"))
    print("DitBERT's rule, GLUE mean ×100:", ", ".join(f"{row.model} {row.amean * 100:.2f}"
                                                      for row in ditbert.itertuples()))

# %% [markdown]
# ## Comparing two systems
# `bb.compare_systems` refuses two systems whose protocols differ (say, notebook 03's MiniLM against DitBERT's
# roberta-base, trained on all data and read at the last epoch); a task trained on different subsets gets no
# difference. `across_protocols=True` compares anyway and marks every row that mixes protocols.

# %%
pair = bb.comparable_pair(result.cells, "03_glue_finetune")  # two models, one protocol, the most shared tasks
if pair is not None:
    spec_a, spec_b = pair
    print(f"{spec_a['model']} {spec_a['variant']} - {spec_b['model']} {spec_b['variant']}, dev score:")
    bb.show(bb.compare_systems(result.cells, spec_a, spec_b))

# %% [markdown]
# ## Write the rows, the summary and the figures

# %%
rows, summary_path = bb.write_aggregation(result, results_path)
print(f"{len(rows)} rows -> {results_path}\nsummary -> {summary_path}")
for path in result.figures.values():
    bb.show(path)

# %%
print(summary_path.read_text())
