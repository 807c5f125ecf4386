# Model trainer targets (model/). Included by the main Makefile, which exports GLIBC_TUNABLES etc.
#   make train [SHARDS=dir] [TRAIN_ARGS=...]   tiny config on CPU, a few hundred steps -> $(OUT)/train/
#   make bench-train                           ours vs transformers' Llama, CPU (+ GPU if present) -> bench/results/train.json
#   make scaling [SCALING_ARGS=...]            scaling-law sweep + held-out prediction -> $(OUT)/scaling/ (needs make run's tokenizer)
#   make test-model                            only the model tests
SHARDS ?= $(OUT)/pipeline/tokenize/shards
TRAIN_OUT ?= $(OUT)/train
SCALING_OUT ?= $(OUT)/scaling
TRAIN_STEPS ?= 300
TRAIN_ARGS ?=
SCALING_ARGS ?=

.PHONY: train bench-train scaling test-model

train: venv
	@test -e "$(SHARDS)" || { echo "error: no token shards at $(SHARDS) (run 'make run' first or pass SHARDS=dir)"; exit 2; }
	$(PY) -m model train --data $(SHARDS) --out $(TRAIN_OUT) --model tiny --seq-len 256 --micro-batch 8 \
		--max-steps $(TRAIN_STEPS) --lr 3e-3 --warmup-steps 30 --ckpt-interval 100 --threads 2 $(TRAIN_ARGS)
	@if [ -f $(OUT)/pipeline/_pipeline.json ] && [ -f $(TRAIN_OUT)/loss_curve.png ]; then \
	  $(PY) -m pipeline report --output $(OUT)/pipeline --figure "Training loss (make train)=$(TRAIN_OUT)/loss_curve.png"; fi

bench-train: venv
	$(PY) bench/bench_train.py --out bench/results/train.json

# Sweep cpu-xs1..cpu-xs5 (hidden 32..128, 1-3 layers), 1M training tokens each, lr(h) = 8e-3*64/h,
# loss = CE on a held-out slice of ~65k tokens; predict + train the held-out cpu-xs6 (hidden 160).
# One thread: on the shared 2-core box a second thread loses more to contention than it gains.
# Data: ~7.5M tokens of English from ../shared/corpora, tokenized once by the repo's own tokenize
# stage with the tokenizer `make run` trained (the pipeline's own ~326k-token shards would make
# every shape repeat its data ~3x). Measured: ~22 min on 2 loaded cores.
SCALING_TOKENIZER ?= $(OUT)/pipeline/train-tokenizer/tokenizer.model
SCALING_DATA ?= $(OUT)/scaling_data
SCALING_SOURCES ?= en_brown_corpus en_state_of_the_union en_sentences_nlp_corpus

$(SCALING_DATA)/shards/_manifest.json:
	@test -f "$(SCALING_TOKENIZER)" || { echo "error: no tokenizer at $(SCALING_TOKENIZER) (run 'make run' first)"; exit 2; }
	@mkdir -p $(OUT)/scaling_corpora
	@for f in $(SCALING_SOURCES); do ln -sf $(abspath $(CORPORA))/$$f.jsonl.gz $(OUT)/scaling_corpora/; done
	$(PY) -m pipeline tokenize --input $(OUT)/scaling_corpora --output $(SCALING_DATA) \
		--tokenizer $(SCALING_TOKENIZER) --overwrite

scaling: venv $(SCALING_DATA)/shards/_manifest.json
	$(PY) -m model scaling --data $(SCALING_DATA)/shards --out $(SCALING_OUT) --shapes cpu-xs1,cpu-xs2,cpu-xs3,cpu-xs4,cpu-xs5 \
		--holdout cpu-xs6 --tokens 1000000 --seq-len 64 --micro-batch 8 --lr 8e-3 --threads 1 $(SCALING_ARGS)

test-model: venv
	$(PY) -m pytest -q tests/test_model_*.py $(ARGS)
