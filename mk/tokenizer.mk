# Tokenizer and token shards (tokenizer_training/). Included by the main Makefile (-include mk/*.mk).
#   make tokenizer       full 125,696-piece SentencePiece BPE on a sample of $(CORPORA) -> $(OUT)/tokenizer/
#   (the stages themselves: python -m pipeline train-tokenizer|tokenize ..., see tokenizer_training/stage.py)
#   make bench-tokenize  MB/s per core and peak memory of the tokenize stage vs the bare encode loop
#   make bench-hf        the HF export checked in transformers 5.x and 4.4x (throwaway venvs)
#   make bench-tokenizer-other  compression on text of other sources (web pages, installed packages)
#   make test-tokenizer  the tokenizer tests only
TOKENIZER_CONFIG ?= tokenizer_training/tokenizer.yaml
TOKENIZER_OUT ?= $(OUT)/tokenizer
TOKENIZER ?= $(TOKENIZER_OUT)/tokenizer.model
BENCH_TOKENIZE_MB ?= 48

.PHONY: tokenizer bench-tokenize test-tokenizer

tokenizer: venv
	@mkdir -p $(OUT)
	$(PY) -m tokenizer_training.measure --out $(OUT)/tokenizer.run.json -- \
	  $(PY) -m pipeline train-tokenizer --config $(TOKENIZER_CONFIG) --input $(CORPORA) --output $(TOKENIZER_OUT) $(ARGS)
	@test -f $(TOKENIZER_OUT)/eval/eval.md && sed -n '/^| tokenizer/,/^## Per language/p' $(TOKENIZER_OUT)/eval/eval.md || true

$(TOKENIZER):
	$(MAKE) tokenizer

bench-tokenize: venv $(TOKENIZER)
	$(PY) bench/bench_tokenize.py --corpora $(CORPORA) --model $(TOKENIZER) --mb $(BENCH_TOKENIZE_MB) \
	  --config $(TOKENIZER_CONFIG) --out bench/results/tokenize.json

test-tokenizer: venv
	$(PY) -m pytest -q tests/test_tokenizer_train.py tests/test_tokenizer_shards.py tests/test_tokenizer_stage.py $(ARGS)

# The Hugging Face export of `make tokenizer`'s model (and of Baichuan 2's released one) in the project's
# transformers and in throwaway venvs with transformers 4.46.3 / 4.40.2: bench/results/tokenizer_hf.json
.PHONY: bench-hf
bench-hf: venv $(TOKENIZER)
	TOKENIZER_OUT=$(TOKENIZER_OUT) bash bench/hf_compat.sh

# Compression on text of sources the tokenizer never saw (web pages, installed packages' code), beside
# Baichuan 2's released tokenizer: bench/results/tokenizer_other_sources.json
.PHONY: bench-tokenizer-other
bench-tokenizer-other: venv $(TOKENIZER)
	$(PY) bench/tokenizer_other_sources.py --model $(TOKENIZER)
