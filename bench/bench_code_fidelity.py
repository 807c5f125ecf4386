"""Fidelity check: does the pipeline keep source code compilable? (`make bench-code`)

Runs the `make run` chain (configs/demo.yaml: exact-dedup, train-tokenizer, tokenize) on all of
../shared/corpora, then, for the Python files among the input (five releases of the standard
library), compares the share that `ast.parse` accepts before the pipeline with the share of the
kept ones after it, at two points: the text exact-dedup keeps, and that text decoded back from
the token shards tokenize writes. Every file that parsed before must still parse. It also counts
the code documents whose kept text is not byte for byte their input (0 under the default span
policy), and copies the manifest's per-language span cut shares into the figures.
"""
from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parses(source: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ast.parse(source)
            return True
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return False


def input_code(corpora: Path) -> dict:
    """id -> (text, is python) for every code document of the input."""
    out = {}
    for f in sorted(corpora.glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if rec.get("lang") == "code":
                    out[rec["id"]] = (rec["text"], rec.get("code_lang") == "python")
    return out


def decoded_texts(tok_out: Path, model: Path, ids: set) -> dict:
    """id -> the text decoded from tokenize's kept/ token ids (without the </s> it appends)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    t = pq.read_table(tok_out / "kept", columns=["id", "input_ids"])
    t = t.filter(pc.is_in(t.column("id"), value_set=pa.array(sorted(ids))))
    return {i: sp.decode(toks[:-1] if toks and toks[-1] == sp.eos_id() else toks)
            for i, toks in zip(t.column("id").to_pylist(), t.column("input_ids").to_pylist())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "code_fidelity.json"))
    ap.add_argument("--work", default=None, help="pipeline output directory (default: a temporary one)")
    args = ap.parse_args()
    import pyarrow.parquet as pq

    corpora = Path(args.corpora)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-code-"))
    subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", args.config, "--input", str(corpora),
                    "--output", str(work)], cwd=REPO, env=os.environ, check=True)
    code = input_code(corpora)
    kept = dict(zip(*(pq.read_table(work / "exact-dedup" / "kept", columns=["id", "text"]).column(c).to_pylist()
                      for c in ("id", "text"))))
    python = {i for i, (_, is_py) in code.items() if is_py}
    before = {i for i in python if parses(code[i][0])}
    kept_py = python & set(kept)
    kept_parses = {i for i in kept_py if parses(kept[i])}  # each kept file parsed once
    after = kept_parses & before
    decoded = decoded_texts(work / "tokenize", work / "train-tokenizer" / "tokenizer.model", kept_py & before)
    after_tokens = {i for i, text in decoded.items() if text == kept[i] and parses(text)}
    changed = sorted(i for i in set(code) & set(kept) if kept[i] != code[i][0])
    manifest = json.loads((work / "exact-dedup" / "_manifest.json").read_text())
    figures = {
        "what": "ast.parse on the Python files of ../shared/corpora before and after the make-run chain "
                "(configs/demo.yaml), and code documents changed by span cuts",
        "config": str(Path(args.config).relative_to(REPO)) if Path(args.config).is_relative_to(REPO) else args.config,
        "python_files_in": len(python),
        "python_parse_share_before": round(len(before) / len(python), 4),
        "python_files_kept": len(kept_py),
        "python_kept_that_parsed_before": len(kept_py & before),
        "python_kept_parse_share_after_exact_dedup": round(len(after) / max(1, len(kept_py & before)), 4),
        "python_kept_parse_share_after_token_round_trip": round(len(after_tokens) / max(1, len(kept_py & before)), 4),
        "python_kept_parse_share_of_all_kept": round(len(kept_parses) / max(1, len(kept_py)), 4),
        "code_docs_in": len(code),
        "code_docs_kept": len(set(code) & set(kept)),
        "code_docs_kept_with_text_changed": len(changed),
        "cut_by_lang": manifest["counts"].get("cut_by_lang", {}),
        "removed_by_reason": {k: v["docs"] for k, v in manifest["counts"]["removed"]["by_reason"].items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "cut_by_lang"}, indent=2))
    for lang, v in figures["cut_by_lang"].items():
        levels = ", ".join(f"{lv} {100 * x['share']:.2f}%" for lv, x in v["by_level"].items())
        print(f"  {lang}: {100 * v['cut_share']:.2f}% of {v['chars']:,} characters cut ({levels or 'nothing'})")
    ok = len(after) == len(after_tokens) == len(kept_py & before) and not changed
    print("every kept Python file that parsed before still parses, and no code document lost a line:", ok)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
