"""Rebuild data/sample/ from ../shared/corpora (freely licensed files only; deterministic).

The sample is small (about 2 MB of text) but real: Chinese, English and code, with natural
duplicates (the same stdlib module across Python versions, LibreOffice help boilerplate).
Run: python data/make_sample.py [--corpora ../shared/corpora]
"""
import argparse
import gzip
import hashlib
import json
from pathlib import Path

# file -> (license, how many docs, max chars per doc)
PICKS = {
    "code_python_stdlib_5versions.jsonl.gz": ("PSF-2.0", 90, 12000),
    "en_state_of_the_union.jsonl.gz": ("public domain", 6, 60000),
    "en_docs_python311.jsonl.gz": ("PSF-2.0", 25, 20000),
    "en_brown_corpus.jsonl.gz": ("redistribution permitted (Brown corpus README)", 15, 20000),
    "zh_wiki_drcd_traditional.jsonl.gz": ("CC BY-SA 3.0", 25, 8000),
    "zhen_libreoffice_help.jsonl.gz": ("MPL-2.0", 160, 6000),
    "zh_docs_debian.jsonl.gz": ("GPL-2+ / CC-BY-SA-3.0", 12, 20000),
}


def pick(path: Path, n: int, max_chars: int) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    docs = [d for d in docs if len(d["text"]) <= max_chars]
    if path.name.startswith("code_python"):
        # Whole groups of one module across versions: natural exact and near duplicates.
        by_module = {}
        for d in docs:
            by_module.setdefault(d["id"].split("-", 2)[-1], []).append(d)
        groups = sorted(by_module.items(), key=lambda kv: hashlib.sha1(kv[0].encode()).hexdigest())
        out = []
        for _, group in groups:
            if len(group) >= 3:
                out.extend(group)
            if len(out) >= n:
                break
        return out[:n]
    docs.sort(key=lambda d: hashlib.sha1(d["id"].encode()).hexdigest())
    return docs[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpora"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "sample"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Bundled sample", "", "Drawn by `data/make_sample.py` from `../shared/corpora` (freely licensed files only).", "",
             "| file | license | docs | chars |", "|---|---|---:|---:|"]
    for name, (lic, n, max_chars) in PICKS.items():
        docs = pick(Path(args.corpora) / name, n, max_chars)
        target = out / name
        with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for d in docs:
                gz.write((json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8"))
        lines.append(f"| `{name}` | {lic} | {len(docs)} | {sum(len(d['text']) for d in docs):,} |")
    (out.parent / "SAMPLE.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
