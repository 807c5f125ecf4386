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

# What the whole chain costs: per-stage wall time, CPU of the process tree, peak memory and disk
# on $(CORPUS) (resumable, in bench/.work/pipeline), a linear cost model (core-hours per TB of raw
# text and per trillion tokens), and a $(SLICE_MB) MB slice run in local mode and on a standalone
# cluster (master + 2 workers on 127.0.0.1), compared byte for byte. Figures in bench/results/pipeline.json.
#   make bench-pipeline [PIPELINE_CONFIG=...] [SLICE_MB=20] [ARGS="--skip-slice" | "--skip-full" | "--fresh"]
SLICE_MB ?= 20
.PHONY: bench-pipeline
bench-pipeline: venv
	$(PY) bench/bench_pipeline.py --config $(PIPELINE_CONFIG) --corpora $(CORPUS) --slice-mb $(SLICE_MB) \
		--work bench/.work/pipeline --out bench/results/pipeline.json $(ARGS)

# After bench-pipeline: sample + tokenize again with seed 1 (byte-identical corpus data and shards
# expected) and seed 2 (another sample, the same shares) -> bench/results/sample_seeds.json
.PHONY: bench-sample-seeds
bench-sample-seeds: venv
	bash bench/sample_seeds.sh
