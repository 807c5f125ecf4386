# Quality scoring (quality/). Included by the main Makefile (-include mk/*.mk).
#   make quality-model   train-quality on $(CORPORA) with the default recipe -> $(OUT)/quality-model/
#   make bench-quality   language id accuracy, classifier AUC, web-page pairs, line-filter precision,
#                        MB/s per core and peak memory of the stages vs exact-dedup -> bench/results/quality*.json
#   make test-quality    the quality tests only
QUALITY_MODEL ?= $(OUT)/quality-model

.PHONY: quality-model bench-quality test-quality

quality-model: venv
	$(PY) -m pipeline train-quality --config $(STAGE_CONFIG) --input $(CORPORA) --output $(QUALITY_MODEL) $(ARGS)

bench-quality: venv
	$(PY) bench/bench_langid.py --corpora $(CORPORA)
	$(PY) bench/quality_classifier_eval.py --corpora $(CORPORA)
	$(PY) bench/quality_webpages.py
	$(PY) bench/bench_quality.py --corpora $(CORPORA)

test-quality: venv
	$(PY) -m pytest -q -p no:cacheprovider tests/test_quality_signals.py tests/test_quality_models.py \
	  tests/test_quality_linefilter.py tests/test_quality_stages.py $(ARGS)
