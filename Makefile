# bertbench — every command a user needs. `make test` and `make glue` work on a fresh machine (CPU, offline).
PY     ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build on machines without a GPU; GPU users install their torch first (see conda_env_linux.yaml).
TORCH  ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-fast docs basics glue glue-cpu-3seeds glue-reference glue-reference-pretrained long-docs-reference tokenizer pretrain glue-pretrained own-bert long-docs probes heads aggregate bench bench-glue bench-longdoc bench-mlm bench-inference gpu-check lab lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch is installed first and pinned in the second call, so no dependency can pull another build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,notebooks,lab,hub,tensorboard,bench]" "$(TORCH)"
	touch $@

install: $(VENV)/.installed

# pytest-xdist workers for make test (one per core here; each test's processes run one thread)
TEST_WORKERS ?= 2

test: install  ## the whole test suite, the slow kill-and-resume and 2-process tests included (offline, CPU)
	$(BIN)/python -m pytest -m "not gpu" -n $(TEST_WORKERS) --dist worksteal

test-fast: install  ## without the slow tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

docs: install  ## rewrite the generated tables in README.md and docs/ from outputs/ and bench/results/
	$(BIN)/python -m bertbench.docs_tables --update
	$(BIN)/python bench/report.py --update

glue: install  ## notebook 03 on the defaults: packaged MiniLM, cpu preset, one seed
	$(BIN)/python notebooks/03_glue_finetune.py

GLUE_COMMITTED = BB_SEEDS=0,1,2 BB_TASK_OVERRIDES="sst2.seeds=0;sst2.max_train_examples=0;sst2.epochs=2"
glue-cpu-3seeds: install  ## the committed outputs/03_glue_finetune.csv: cpu preset, 3 seeds (SST-2: 1 seed, all data)
	$(GLUE_COMMITTED) \
		$(BIN)/python notebooks/03_glue_finetune.py

# The reference protocol (issue 22): full training sets (10% held out to choose the epoch and the learning rate),
# lr chosen per task from 2e-5/5e-5/1e-4 with seed 0, then seeds 0-2 at it; 3 epochs (SST-2 2), max length 128.
GLUE_REFERENCE = BB_MAX_TRAIN_EXAMPLES=0 BB_LR_GRID=2e-5,5e-5,1e-4 BB_SEEDS=0,1,2 BB_EPOCHS=3 BB_MAX_LEN=128 \
	BB_TASK_OVERRIDES="sst2.epochs=2"
glue-reference: install  ## notebook 03, the reference protocol on the packaged MiniLM (hours on 2 CPU cores; resumes)
	$(GLUE_REFERENCE) $(BIN)/python notebooks/03_glue_finetune.py

glue-reference-pretrained: install  ## the same protocol on the checkpoint of `make pretrain`, where it learns (SST-2, STS-B)
	$(GLUE_REFERENCE) BB_MODEL=$(PRETRAINED) BB_TASKS=sst2,stsb $(BIN)/python notebooks/03_glue_finetune.py

long-docs-reference: install  ## notebook 04: head, head_tail, windows+mean_logits x 3 seeds; BBC on all its training articles
	BB_RUNS=head,head_tail,windows+mean_logits BB_SEEDS=0,1,2 \
		BB_DATASET_OVERRIDES="bbc.runs=head,windows+mean_prob;bbc.seeds=0" $(BIN)/python notebooks/04_long_documents.py

basics: install  ## notebook 00, cpu preset: the HF Trainer and bertbench's loop on one head, SST-2, 3 seeds each
	$(BIN)/python notebooks/00_encoder_basics.py

tokenizer: install  ## notebook 01, cpu preset: WordPiece + BPE on the Wikipedia dump (about 2 minutes)
	$(BIN)/python notebooks/01_train_tokenizer.py

pretrain: install  ## notebook 02, cpu preset: a 4-layer pre-LN encoder, 35 minutes of training (resumes if interrupted)
	$(BIN)/python notebooks/02_pretrain_mlm.py

PRETRAINED ?= runs/pretrain/mlm-roberta-preln-mini-cpu/model
glue-pretrained: install  ## notebook 03 on the checkpoint of `make pretrain`: 5 tasks, 3 seeds
	BB_MODEL=$(PRETRAINED) BB_TASKS=sst2,cola,mrpc,stsb,rte BB_SEEDS=0,1,2 \
		$(BIN)/python notebooks/03_glue_finetune.py

own-bert: tokenizer pretrain glue-pretrained  ## the whole path: tokenizer -> pretraining -> GLUE

long-docs: install  ## notebook 04, cpu preset: 5 strategies on Hyperpartisan, head vs windows on BBC
	$(BIN)/python notebooks/04_long_documents.py

probes: install  ## notebook 05, cpu preset: per-layer probes on SST-2 and CoLA, MiniLM pretrained vs fine-tuned
	$(BIN)/python notebooks/05_layer_probes.py

heads: install  ## notebook 05, cpu preset: bi-encoder vs cross-encoder on MRPC, multitask vs single-task
	$(BIN)/python notebooks/05_model_heads.py

aggregate: install  ## notebook 06: every outputs/*.csv, DitBERT's runs and published numbers side by side (seconds)
	$(BIN)/python notebooks/06_aggregate_results.py

bench-glue: install  ## bertbench vs the HF Trainer (pad-128 and dynamic) on SST-2 and MRPC, 3 seeds (33 min on 2 CPU cores)
	$(BIN)/python bench/glue_vs_trainer.py

bench-longdoc: install  ## bertbench vs BELT on Hyperpartisan windows (about 15 min on 2 CPU cores)
	$(BIN)/python bench/longdoc_vs_belt.py

bench-mlm: install  ## MLM pretraining tokens/s vs the HF Trainer (8 min on 2 CPU cores)
	$(BIN)/python bench/mlm_vs_trainer.py

bench-inference: install  ## prediction examples/s vs transformers' pipeline (5 min on 2 CPU cores)
	$(BIN)/python bench/inference_vs_pipeline.py

bench: bench-glue bench-longdoc bench-mlm bench-inference  ## every benchmark, then the tables (bench/report.py)
	$(BIN)/python bench/report.py

gpu-check: install  ## on a lent GPU: pytest -m gpu, then short runs of notebooks 02-05 -> bench/results/gpu_check.csv
	$(BIN)/python bench/gpu_check.py

lab: install  ## JupyterLab with jupytext: a double-click opens notebooks/*.py as a notebook (jupyter/labconfig/)
	$(BIN)/python -m pip install -q -e ".[lab]" "$(TORCH)"
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(BIN)/jupyter lab --ServerApp.root_dir=. --ServerApp.contents_manager_class=jupytext.TextFileContentsManager \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

lint: install
	$(BIN)/python -m pip install -q ruff
	$(BIN)/ruff check lib tests notebooks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
