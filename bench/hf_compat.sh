#!/bin/bash
# `make bench-hf`: the Hugging Face export of our tokenizer (and of Baichuan 2's released one) checked
# in the project's transformers and in throwaway venvs with older transformers releases: AutoTokenizer
# with no remote code, ids equal to SentencePiece's, decode(encode(text)) == text on every held-out
# document of `make tokenizer` plus the edge cases of tests/test_tokenizer_train.py (HF_TEXTS).
# Figures: bench/results/tokenizer_hf.json. Not part of `make test` (it installs packages).
set -euo pipefail
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PWD
TOKENIZER_OUT=${TOKENIZER_OUT:-out/tokenizer}
REFERENCE=${REFERENCE:-../shared/reference/baichuan2-tokenizer/tokenizer.model}
VERSIONS=${VERSIONS:-"4.46.3 4.40.2"}
WORK=bench/.work/hf_compat
rm -rf "$WORK" && mkdir -p "$WORK"
test -f "$TOKENIZER_OUT/tokenizer.model" || { echo "error: no $TOKENIZER_OUT/tokenizer.model (run make tokenizer)"; exit 2; }

# the directories and the texts, written with the project's venv
.venv/bin/python - "$TOKENIZER_OUT" "$REFERENCE" "$WORK" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "tests")
from tokenizer_training.evaluate import load_documents
from tokenizer_training.hf_export import export_tokenizer_hf
from test_tokenizer_train import HF_TEXTS
tok_out, reference, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
export_tokenizer_hf(tok_out / "tokenizer.model", work / "ours")
if reference.is_file():
    export_tokenizer_hf(reference, work / "baichuan2-released")
docs = load_documents(tok_out / "heldout")
texts = [d["text"] for d in docs] + HF_TEXTS
(work / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
(work / "heldout_count").write_text(str(len(docs)))
print(f"{len(docs)} held-out documents + {len(HF_TEXTS)} edge cases")
PY
DIRS="$WORK/ours"
test -d "$WORK/baichuan2-released" && DIRS="$DIRS $WORK/baichuan2-released"

results="$WORK/results.jsonl"
.venv/bin/python bench/hf_compat.py "$WORK/texts.json" $DIRS >> "$results"
for v in $VERSIONS; do
  venv="bench/.venv-hf-$v"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    # the machine's pip constraints cap nothing we need here; the pins are this venv's own
    PIP_CONSTRAINT= "$venv/bin/pip" install -q "transformers==$v" "sentencepiece==0.2.3" "numpy<2.5"
  fi
  "$venv/bin/python" bench/hf_compat.py "$WORK/texts.json" $DIRS >> "$results"
done

.venv/bin/python - "$results" "$WORK/heldout_count" <<'PY'
import json, sys, platform
from pathlib import Path
rows = [r for line in Path(sys.argv[1]).read_text().splitlines() for r in json.loads(line)]
n_held = int(Path(sys.argv[2]).read_text())
for r in rows:
    r["dir"] = Path(r["dir"]).name
    if r.get("loaded"):  # the held-out documents come first in texts.json, the edge cases after them
        r["heldout_documents"] = n_held
        r["heldout_exact"] = not [i for i in r["id_mismatch_indexes"] + r["decode_mismatch_indexes"] if i < n_held]
ok = all(r.get("loaded") and r["same_ids"] == r["texts"] == r["exact_decode"] for r in rows)
held_ok = all(r.get("heldout_exact") for r in rows)
out = {"all_exact": ok, "heldout_exact_everywhere": held_ok, "python": platform.python_version(),
       "note": "edge cases: tests/test_tokenizer_train.py HF_TEXTS; a literal special-token string in the text "
               "('</s>') is split as text only where transformers honours split_special_tokens for fast "
               "tokenizers (not 4.40)", "runs": rows}
Path("bench/results/tokenizer_hf.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
for r in rows:
    print(f"{r['dir']:20s} transformers {r['transformers']:8s} " + (
        f"{r['class']}: ids {r['same_ids']}/{r['texts']}, decode {r['exact_decode']}/{r['texts']}"
        if r.get("loaded") else f"NOT LOADED: {r['error']}"))
print("held-out documents exact everywhere:", held_ok, "| every text incl. edge cases:", ok)
PY
