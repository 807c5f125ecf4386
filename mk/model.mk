# Model trainer targets (model/). Included by the main Makefile, which exports GLIBC_TUNABLES etc.
#   make train [SHARDS=dir] [TRAIN_ARGS=...]   tiny config on CPU, a few hundred steps -> $(OUT)/train/
#   make bench-train                           ours vs transformers' Llama, CPU (+ GPU if present) -> bench/results/train.json
#   make scaling [SCALING_ARGS=...]            scaling-law sweep + held-out prediction -> $(OUT)/scaling/
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

scaling: venv
	@test -e "$(SHARDS)" || { echo "error: no token shards at $(SHARDS) (run 'make run' first or pass SHARDS=dir)"; exit 2; }
	$(PY) -m model scaling --data $(SHARDS) --out $(SCALING_OUT) $(SCALING_ARGS)

test-model: venv
	$(PY) -m pytest -q tests/test_model_*.py $(ARGS)
