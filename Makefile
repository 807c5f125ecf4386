# Every target runs inside .venv (created on first use) with the malloc setting that makes CPU
# torch and faiss 2-5x faster here (see ../shared/reference/environment.md).
SHELL := /bin/bash
export GLIBC_TUNABLES := glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYTHONHASHSEED := 0

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/demo.yaml
STAGE_CONFIG ?= configs/default.yaml
SAMPLE ?= data/sample
OUT ?= out
CORPORA ?= ../shared/corpora
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: help venv run test fuzz bench bench-exact bench-code bench-minhash bench-semantic

help:
	@echo "make run     - install (first time) and run the whole pipeline on $(SAMPLE) into $(OUT)/"
	@echo "make test    - install (first time) and run the test suite"
	@echo "make fuzz    - the generated bad-input suite, longer (FUZZ_SCALE=10), figures in bench/results/fuzz.json"
	@echo "make <stage> IN=... OUT=...  - run one stage (exact-dedup, minhash-dedup, semantic-dedup, train-quality,"
	@echo "                               quality-signals, quality-filter, train-tokenizer, sample, tokenize;"
	@echo "                               tokenize also needs ARGS='--tokenizer path/tokenizer.model')"
	@echo "make pipeline - the full profile (configs/baichuan2.yaml) on CORPUS=$(CORPORA) into out/full/, resumable"
	@echo "make bench   - benchmarks on $(CORPORA), figures into bench/results/"

venv: $(STAMP)
$(STAMP): requirements.txt requirements-nodeps.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

run: venv
	$(PY) -m pipeline run --config $(CONFIG) --input $(SAMPLE) --output $(OUT)/pipeline $(ARGS)

test: venv
	$(PY) -m pytest -q -p no:cacheprovider tests $(ARGS)

# The fuzz suite with FUZZ_SCALE x the examples of `make test` (minutes); the figures go to
# bench/results/fuzz.json: how many cases ran, and what every generated record became.
FUZZ_SCALE ?= 10
fuzz: venv
	FUZZ_SCALE=$(FUZZ_SCALE) FUZZ_REPORT=bench/results/fuzz.json $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz.py $(ARGS)
	@cat bench/results/fuzz.json

# One make target per stage: make exact-dedup IN=path OUT=path [ARGS="--overwrite"]
STAGES := exact-dedup minhash-dedup semantic-dedup train-quality quality-signals quality-filter train-tokenizer sample tokenize
.PHONY: $(STAGES)
$(STAGES): venv
	@test -n "$(IN)" || { echo "usage: make $@ IN=<input> OUT=<output dir>"; exit 2; }
	$(PY) -m pipeline $@ --config $(STAGE_CONFIG) --input $(IN) --output $(OUT) $(ARGS)

bench: venv bench-exact bench-code bench-minhash bench-semantic bench-quality bench-tokenize bench-train

bench-exact: venv
	$(PY) bench/bench_exact.py --corpora $(CORPORA) --out bench/results/exact_dedup.json

# Does kept code still parse after the make-run chain on $(CORPORA)? Per-language span cut shares.
# MinHash: (a) signature throughput vs datasketch and rensa, accuracy vs an exact-Jaccard ground
# truth at 0.7/0.8/0.9, (b) the whole stage vs datatrove (peer venv bench/.peer-venv), (c) 1x/2x/4x.
bench-minhash: venv
	$(PY) bench/bench_minhash.py --corpora $(CORPORA)
	$(PY) bench/bench_minhash_accuracy.py --corpora $(CORPORA)
	$(PY) bench/bench_minhash_peers.py --corpora $(CORPORA)
	$(PY) bench/bench_minhash_scale.py --corpora $(CORPORA)

# Semantic dedup: the labelled paraphrase evaluation (precision/recall per language and level, both
# rules, calibrated defaults), then throughput, time shares, peak memory and the 10k-vs-100k
# within-cluster scaling.
bench-semantic: venv
	$(PY) bench/semantic_calibrate.py --corpora $(CORPORA)
	$(PY) bench/bench_semantic.py --corpora $(CORPORA)

bench-code: venv
	$(PY) bench/bench_code_fidelity.py --corpora $(CORPORA) --config $(CONFIG) --out bench/results/code_fidelity.json

-include mk/*.mk
