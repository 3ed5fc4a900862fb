# tvgrad — `make verify` (the main job) and `make test` install what they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tvgrad-installed
PROFILE ?= verify
SEED   ?= 20260824
JOBS   ?= 2
OUT    ?= reports
ARCH   := $(shell uname -m)
# torch/torchvision pairs that install from this machine's local wheel cache (x86_64: CUDA build
# that also runs on CPU; aarch64: CPU build).
ifeq ($(ARCH),aarch64)
TORCH_PINS ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
endif

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint verify deep verify-clip report bench bench-gpu empirical mutate mutate-sample clean adversary

help:  ## list the targets
	@echo "tvgrad — verification suite for 'On Task Vectors and Gradients'"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "variables: PROFILE=$(PROFILE) SEED=$(SEED) JOBS=$(JOBS) OUT=$(OUT)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test]'
	# data only (CLIP's class names and templates, compared with ours by tests/empirical/test_data.py);
	# --no-deps: its own dependencies (transformers, pycocoevalcap, …) are never imported
	$(BIN)/python -m pip install -q --no-deps clip-benchmark==1.6.2
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install tvgrad with its test extras (idempotent)

test: $(STAMP)  ## run the fast test suite (pytest -n auto tests/, Hypothesis profile ci)
	TVGRAD_PROFILE=$${TVGRAD_PROFILE:-ci} $(BIN)/python -m pytest -n auto tests/ -m "not slow and not gpu"

test-all: $(STAMP)  ## run every test, the slow ones included
	TVGRAD_PROFILE=$${TVGRAD_PROFILE:-ci} $(BIN)/python -m pytest -n auto tests/

lint: $(STAMP)  ## ruff: pyflakes, import order, pydocstyle (Google) on the public API
	$(BIN)/ruff check .

verify: $(STAMP)  ## self-test the tool (tests/theory, ~1 min), then run every claim and planted variant; writes $(OUT)/theory.json, theory_examples.csv, theory.html
	$(BIN)/tvgrad verify --self-test --profile $(PROFILE) --seed $(SEED) --jobs $(JOBS) --out $(OUT)

deep: $(STAMP)  ## the deep profile: 2000 examples per claim, depth <= 6, width <= 128 (~10 min); writes $(OUT)/deep/
	$(BIN)/tvgrad verify --self-test --profile deep --seed $(SEED) --jobs $(JOBS) --out $(OUT)/deep

MODEL ?= tvgrad-tiny-ViT
PRETRAINED ?= none
CLIP_DATA ?= synthetic
DEVICE ?= cpu
verify-clip: $(STAMP)  ## the claims on CLIP (offline default: tiny random ViT, generated data); MODEL= PRETRAINED= DATA_ROOT= DEVICE=
	$(BIN)/tvgrad verify-clip --model $(MODEL) --pretrained $(PRETRAINED) --data-root $(if $(filter command line,$(origin DATA_ROOT)),$(DATA_ROOT),$(CLIP_DATA)) --device $(DEVICE) $(if $(CLIP_DATASETS),--datasets $(CLIP_DATASETS)) --profile $(PROFILE) --seed $(SEED) --jobs $(JOBS) --out $(OUT)

report: $(STAMP)  ## re-render $(OUT)/theory.html from theory.json and the CSV (no claim re-run)
	$(BIN)/tvgrad report --out $(OUT)

BENCH_STAMP := $(VENV)/.tvgrad-bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## HVP/gradient ratios beside autograd, curvlinops, PyHessian; spectra; claims/s; CLIP costs
	$(BIN)/python -m tvgrad.theory.bench --json $(OUT)/bench.json
	$(BIN)/python -m tvgrad.empirical.bench_clip --bench-json $(OUT)/bench.json

adversary: $(STAMP)  ## extreme architectures against the explicit bound (SECONDS=120); writes $(OUT)/adversary.json
	$(BIN)/python -m tvgrad.theory.adversary --seconds $${SECONDS:-120} --out $(OUT)/adversary.json

DATA_ROOT ?= data
RUNS ?= runs
EMPIRICAL_ARGS ?=
empirical: $(STAMP)  ## finetune CLIP on the seven datasets, merge, write reports/empirical.html (GPU; resumable)
	$(BIN)/tvgrad empirical-all --data-root $(DATA_ROOT) --out $(RUNS) --html $(OUT)/empirical.html $(EMPIRICAL_ARGS)

bench-gpu: $(STAMP)  ## images/s of finetuning with vs without trajectory recording (needs CUDA)
	$(BIN)/python -m tvgrad.empirical.bench_gpu

MUTATE ?= theory/rounding.py
MUTATE_TESTS ?= tests/theory/test_rounding.py tests/theory/claims/test_claims.py -k "rounding or tight or perturbation or one_epoch_exact or ta_equals_mtl_step"
mutate: $(STAMP)  ## mutation testing (cosmic-ray) of MUTATE against MUTATE_TESTS (default: its mirrored tests); appends to docs/mutation.md (slow, not in CI)
	$(BIN)/python -m pip install -q cosmic-ray
	$(BIN)/python tests/mutation/run.py --module $(MUTATE) $(if $(MUTATE_TESTS),--tests '$(MUTATE_TESTS)')

SAMPLE ?= 40
SAMPLE_ARGS ?=
mutate-sample: $(STAMP)  ## a seeded random sample of mutants over all of theory/, each against make verify's two stages, self-test and campaign (slow; run in a checkout of its own)
	$(BIN)/python -m pip install -q cosmic-ray
	$(BIN)/python tests/mutation/sample.py -n $(SAMPLE) --resume $(SAMPLE_ARGS)

clean:  ## remove the virtual environment and generated reports
	rm -rf $(VENV) $(OUT)/theory.json $(OUT)/theory_examples.csv $(OUT)/clip_claims.json $(OUT)/clip_claims_examples.csv $(OUT)/*.html .hypothesis
