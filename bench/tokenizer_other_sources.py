"""Compression on text of sources the tokenizer never saw (`make bench-tokenizer-other`).

The held-out split of `make tokenizer` comes from the same sources as the training sample, which
flatters any tokenizer trained on them. This builds a second held-out set from other sources:
English and Chinese web pages (`../shared/webpages/`, pages with their boilerplate and the article
bodies; not in `../shared/corpora`) and code that is not CPython's or /usr/include's (Python files
and C/C++ sources of the packages installed in `.venv`, a seeded sample); `zh-hant` is the Chinese
pages converted to Traditional characters by OpenCC (s2t), for rare and Traditional characters the
Simplified pages hardly hold. It evaluates our
tokenizer beside Baichuan 2's released one. Figures: bench/results/tokenizer_other_sources.json.

    python bench/tokenizer_other_sources.py --model out/tokenizer/tokenizer.model
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tokenizer_training import evaluate as ev  # noqa: E402
from tokenizer_training.settings import TrainTokenizerConfig  # noqa: E402

WEB = {"en": "en_web_pages_dragnet.jsonl.gz", "zh": "zh_web_pages_cwce.jsonl.gz"}


def web_documents(webpages: Path) -> list[dict]:
    docs = []
    for lang, name in WEB.items():
        with gzip.open(webpages / name, "rt", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                docs.append({"id": d["id"], "text": d["text"], "lang": lang, "source": f"web-{d['source']}"})
    return docs


def code_documents(site_packages: Path, py_bytes: int, cxx_bytes: int, seed: int = 7) -> list[dict]:
    """A seeded sample of the installed packages' Python and C/C++ files (over 2 KB each)."""
    rng = random.Random(seed)
    py = sorted(p for p in site_packages.rglob("*.py") if p.stat().st_size > 2000)
    cxx = sorted(p for p in site_packages.rglob("*") if p.suffix in (".h", ".hpp", ".c", ".cc", ".cpp")
                 and p.is_file() and p.stat().st_size > 2000)
    docs = []
    for group, files, cap in (("site-py", py, py_bytes), ("site-cxx", cxx, cxx_bytes)):
        rng.shuffle(files)
        used = 0
        for p in files:
            try:
                text = p.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if used + len(text) > cap:
                continue
            used += len(text)
            docs.append({"id": str(p.relative_to(site_packages)), "text": text, "lang": "code", "source": group})
    return docs


def traditional(docs: list[dict]) -> list[dict]:
    import opencc

    conv = opencc.OpenCC("s2t")
    return [{**d, "id": f"{d['id']}:hant", "text": conv.convert(d["text"]), "lang": "zh-hant"}
            for d in docs if d["lang"] == "zh"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "out" / "tokenizer" / "tokenizer.model"))
    p.add_argument("--webpages", default=str(REPO.parent / "shared" / "webpages"))
    p.add_argument("--reference", default=TrainTokenizerConfig.reference_tokenizer)
    p.add_argument("--max-bytes-per-lang", type=int, default=3_000_000)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "tokenizer_other_sources.json"))
    a = p.parse_args()
    site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    docs = web_documents(Path(a.webpages)) + code_documents(site, 1_200_000, 800_000)
    work = REPO / "bench" / ".work" / "tok_other"
    work.mkdir(parents=True, exist_ok=True)
    held = work / "other_sources.jsonl"
    held.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    docs = ev.load_documents(held, a.max_bytes_per_lang)
    docs += traditional(docs)
    result = ev.evaluate(a.model, docs, [], reference=a.reference, log=lambda *x: None)
    ev.write_outputs(result, work / "eval")
    out = {"model": a.model, "documents": result["documents"], "bytes": result["bytes"], "rows": {}}
    for r in result["rows"]:
        if r["status"] != "ok":
            out["rows"][r["tokenizer"]] = r["status"]
            continue
        out["rows"][r["tokenizer"]] = {lg: {k: r["results"][lg][k] for k in (
            "tokens_per_char", "byte_fallback_rate", "newline_byte_rate", "other_byte_rate", "unk_rate",
            "round_trip_ok", "documents")} for lg in result["languages"] + ["all"]}
    ours, ref = out["rows"].get("ours"), out["rows"].get(ev.REFERENCE_NAME)
    if isinstance(ours, dict) and isinstance(ref, dict):
        out["ratio_to_reference"] = {lg: round(ours[lg]["tokens_per_char"] / ref[lg]["tokens_per_char"], 4)
                                     for lg in result["languages"]}
    Path(a.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: out[k] for k in ("documents", "ratio_to_reference") if k in out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
