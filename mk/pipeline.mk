# The whole chain at full scale (configs/baichuan2.yaml). Included by the main Makefile.
#   make pipeline [CORPUS=../shared/corpora] [PIPELINE_OUT=out/full]
#       every stage with the Baichuan 2 settings, resumable stage by stage (a finished stage is
#       skipped on a re-run), then report.html and the exported corpus in $(PIPELINE_OUT)/corpus/
CORPUS ?= $(CORPORA)
PIPELINE_CONFIG ?= configs/baichuan2.yaml
PIPELINE_OUT ?= $(OUT)/full

.PHONY: pipeline

pipeline: venv
	$(PY) -m pipeline run --config $(PIPELINE_CONFIG) --input $(CORPUS) --output $(PIPELINE_OUT) $(ARGS)
