#!/bin/bash
# After `make bench-pipeline`: re-run sample + tokenize on the full run's quality-filter output with
# seed 1 (the full run's) and seed 2. Seed 1 must give the full run's corpus data/ and .bin/.idx
# byte for byte; seed 2 another sample with the same shares. Figures: bench/results/sample_seeds.json.
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 SPARK_LOCAL_IP=127.0.0.1 PYTHONHASHSEED=0 PYSPARK_PYTHON=$PWD/.venv/bin/python PYSPARK_DRIVER_PYTHON=$PWD/.venv/bin/python
FULL=$(ls -d bench/.work/pipeline/full-* | head -1)
TOK=$PWD/$FULL/train-tokenizer/tokenizer.model
for seed in 1 2; do
  rm -rf bench/.work/seedcheck-$seed
  .venv/bin/python -m pipeline run --config configs/baichuan2.yaml --stages sample,tokenize --input $FULL/quality-filter/kept \
     --output bench/.work/seedcheck-$seed --set sample.seed=$seed --set sample.tokenizer=$TOK --set tokenize.tokenizer=$TOK > bench/.work/seedcheck-$seed.log 2>&1
done
.venv/bin/python - "$FULL" <<'PY'
import json, sys, filecmp
from pathlib import Path
full = Path(sys.argv[1])
def files(d): return sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file())
out = {}
for sub in ("data", "shards"):
    a, b = full / "corpus" / sub, Path("bench/.work/seedcheck-1/corpus") / sub
    same = files(a) == files(b) and all((a / f).read_bytes() == (b / f).read_bytes() for f in files(a)
                                        if f.name != "_manifest.json")  # it names the tokenizer's path
    out[f"seed1_{sub}_identical_to_full_run"] = same
    c = Path("bench/.work/seedcheck-2/corpus") / sub
    out[f"seed2_{sub}_identical"] = files(a) == files(c) and all((a / f).read_bytes() == (c / f).read_bytes() for f in files(a))
for seed in (1, 2):
    m = json.loads(Path(f"bench/.work/seedcheck-{seed}/sample/_manifest.json").read_text())
    s = m["stats"]["sampling"]
    out[f"seed{seed}"] = {"kept_docs": m["counts"]["kept"]["docs"], "max_abs_share_error": s["max_abs_share_error"],
                          "shares": {d: {r["value"]: [r["before"], r.get("target"), r["after"]] for r in s["shares"][d]} for d in ("source", "lang")}}
    t = json.loads(Path(f"bench/.work/seedcheck-{seed}/tokenize/_manifest.json").read_text())["stats"]
    tot = t["tokens"]
    out[f"seed{seed}"]["tokenize_lang_shares"] = {k: round(v / tot, 4) for k, v in t["tokens_by_lang"].items()}
print(json.dumps(out, indent=1))
Path("bench/results/sample_seeds.json").write_text(json.dumps(out, indent=1))
PY
