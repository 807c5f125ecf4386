"""Benchmark: exact-dedup on all of ../shared/corpora.

Runs the stage as a user would (`python -m pipeline exact-dedup`, its own Spark JVM), samples the
whole process tree's memory (driver JVM + Python workers) every 0.2 s, and writes throughput as
MB/s per core of UTF-8 text plus peak memory. For scale it also times a single-process Python
run of the same three-level algorithm (same segmentation and hashing, Python dicts instead of
Spark, nothing written): the single-machine way, to show what Spark costs and gives per core.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: list[str], env: dict) -> tuple[float, int, subprocess.CompletedProcess]:
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.2)
    out, err = proc.communicate()
    return time.time() - t0, peak, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def python_baseline(files: list[Path], code_langs=("code",)) -> dict:
    """The same three-level algorithm in one plain Python process (dicts instead of Spark):
    what a single-machine tool would do. Reads everything, keeps results in memory, writes nothing."""
    from dedup.exact import ExactDedupConfig
    from pipeline.segment import normalize, segment

    cfg = ExactDedupConfig()
    digest = lambda s: hashlib.blake2b(s.encode("utf-8"), digest_size=16).digest()  # noqa: E731
    t0 = time.time()
    docs = []
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                docs.append((rec["text"], rec.get("lang")))
    nbytes = sum(len(t.encode("utf-8")) for t, _ in docs)
    seen_docs, first_span, cut_chars, doc_dups, spans_cut = set(), set(), 0, 0, 0
    for text, lang in docs:  # corpus order = first occurrence order
        h = digest(normalize(text))
        if h in seen_docs:
            doc_dups += 1
            continue
        seen_docs.add(h)
        paras, sents = segment(text, code=lang in code_langs)
        cut_until = -1
        for (ps, pe), pieces in zip(paras, sents):
            norm = normalize(text[ps:pe])
            if len(norm) >= cfg.min_paragraph_chars:
                key = (0, digest(norm))
                if key in first_span:
                    cut_chars += pe - ps
                    spans_cut += 1
                    cut_until = pe
                else:
                    first_span.add(key)
            for ss, se in pieces:
                norm = normalize(text[ss:se])
                if len(norm) >= cfg.min_sentence_chars:
                    key = (1, digest(norm))
                    if key in first_span:
                        if se > cut_until:
                            cut_chars += se - ss
                            spans_cut += 1
                    else:
                        first_span.add(key)
    wall = time.time() - t0
    return {"docs": len(docs), "doc_duplicates": doc_dups, "spans_cut": spans_cut, "span_chars_cut": cut_chars, "text_mb": nbytes / 1e6,
            "wall_s": round(wall, 2), "mb_per_s_per_core": round(nbytes / 1e6 / wall, 3),
            "peak_rss_mb": round(psutil.Process().memory_info().rss / 2**20)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "exact_dedup.json"))
    ap.add_argument("--master", default="local[*]")
    args = ap.parse_args()
    files = sorted(Path(args.corpora).glob("*.jsonl.gz"))
    if not files:
        raise SystemExit(f"no *.jsonl.gz in {args.corpora}")
    cores = psutil.cpu_count(logical=True) if args.master == "local[*]" else int(args.master.strip("local[]") or 1)
    work = Path(tempfile.mkdtemp(prefix="bench-exact-"))
    inp = work / "in"
    inp.mkdir()
    for f in files:
        os.symlink(f.resolve(), inp / f.name)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    print(f"exact-dedup on {len(files)} files ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB gz) ...", flush=True)
    wall, peak, r = run_measured([sys.executable, "-m", "pipeline", "exact-dedup", "--input", str(inp),
                                  "--output", str(work / "out"), "--master", args.master], env)
    if r.returncode != 0:
        raise SystemExit(f"exact-dedup failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    manifest = json.loads((work / "out" / "_manifest.json").read_text())
    print("single-process Python baseline ...", flush=True)
    base = python_baseline(files)
    text_mb = base["text_mb"]
    c = manifest["counts"]
    result = {
        "what": "exact-dedup (document + paragraph + sentence) on all of ../shared/corpora",
        "master": args.master, "cores": cores, "files": len(files), "text_mb": round(text_mb, 2),
        "docs_in": c["input"]["docs"], "docs_kept": c["kept"]["docs"],
        "removed_by_reason": {k: v["docs"] for k, v in c["removed"]["by_reason"].items()},
        "spans_removed": {k: v["docs"] for k, v in c["removed_spans"]["by_level"].items()},
        "chars_removed_share": round(1 - c["kept"]["chars"] / c["input"]["chars"], 4),
        "wall_s": round(wall, 2), "stage_timings_s": manifest["timings_s"],
        "mb_per_s": round(text_mb / wall, 3), "mb_per_s_per_core": round(text_mb / wall / cores, 3),
        "peak_memory_mb": round(peak / 2**20), "python_single_process_same_algorithm": base,
        "ratio_per_core_vs_python_single_process": round((text_mb / wall / cores) / base["mb_per_s_per_core"], 3),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
