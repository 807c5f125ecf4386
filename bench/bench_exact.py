"""Benchmark: exact-dedup on all of ../shared/corpora against the same algorithm in one process.

The stage runs as a user runs it (`python -m pipeline exact-dedup`, its own Spark JVM); the whole
process tree's memory (driver JVM + Python workers) is sampled every 0.2 s. The reference is the
same three-level algorithm in one plain Python process (same segmentation and keys, Python dicts
instead of Spark, nothing written): the single-machine way, to show what the engine costs per core.

This host's per-core speed drifts by up to 30% within a minute, so the two are alternated
(reference, stage, reference, ..., reference) and each stage run is compared with the mean of the
reference runs on either side of it; the median ratio over the rounds is reported. The stage's
time excludes the SparkSession start-up (timed inside the run and reported apart). Every round
also checks that the stage and the reference find the same duplicate documents and cut the same
spans, position for position.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
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


def python_baseline(files: list[Path]) -> dict:
    """The same three-level algorithm in one plain Python process (dicts instead of Spark), under
    the default span policy (prose: paragraphs and sentences; code: kept or removed whole): what a
    single-machine tool would do. Reads everything, keeps results in memory, writes nothing.
    Returns figures plus the duplicate documents and cut spans, as (doc_pos) and (doc_pos, start,
    end) sets, for the comparison with the stage."""
    from dedup.exact import ExactDedupConfig
    from pipeline.hashing import content_key
    from pipeline.schema import doc_pos
    from pipeline.segment import normalize
    from pipeline.spanpolicy import SpanPolicy, SpanSettings, candidate_spans

    cfg, policy = ExactDedupConfig(), SpanPolicy(SpanSettings())
    min_chars = {"paragraph": cfg.min_paragraph_chars, "header": cfg.min_paragraph_chars,
                 "sentence": cfg.min_sentence_chars}
    t0 = time.time()
    docs = []
    for fi, f in enumerate(files):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                rec = json.loads(line)
                docs.append((doc_pos(fi, line_no), rec["text"], rec.get("lang")))
    nbytes = sum(len(t.encode("utf-8")) for _, t, _ in docs)
    seen_docs, first_span, dup_docs, cuts, cut_chars = set(), set(), set(), set(), 0
    for pos, text, lang in docs:  # corpus order = first occurrence order
        h = content_key(normalize(text))
        if h in seen_docs:
            dup_docs.add(pos)
            continue
        seen_docs.add(h)
        cut_until = -1
        for level, start, end in candidate_spans(text, policy.levels(lang)):  # outer spans before inner ones
            norm = normalize(text[start:end])
            if len(norm) < min_chars[level]:
                continue
            key = (level, content_key(norm))
            if key not in first_span:
                first_span.add(key)
            elif start >= cut_until:  # not inside a span already cut
                cuts.add((pos, start, end))
                cut_chars += end - start
                cut_until = end
    wall = time.time() - t0
    return {"docs": len(docs), "doc_duplicates": len(dup_docs), "spans_cut": len(cuts), "span_chars_cut": cut_chars,
            "text_mb": nbytes / 1e6, "wall_s": round(wall, 2), "mb_per_s_per_core": round(nbytes / 1e6 / wall, 3),
            "_dup_docs": dup_docs, "_cuts": cuts}


def stage_findings(out: Path) -> tuple[set, set]:
    """(doc_pos of documents removed as exact duplicates, (doc_pos, start, end) of cut spans)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    removed = pq.read_table(out / "removed", columns=["doc_pos", "reason"])
    dups = removed.filter(pc.equal(removed.column("reason"), "exact_duplicate")).column("doc_pos").to_pylist()
    spans = pq.read_table(out / "removed_spans", columns=["doc_pos", "start", "end"])
    return set(dups), set(zip(*(spans.column(c).to_pylist() for c in ("doc_pos", "start", "end"))))


def run_stage_once(inp: Path, out: Path, master: str, env: dict, text_mb: float, cores: int) -> dict:
    wall, peak, r = run_measured([sys.executable, "-m", "pipeline", "exact-dedup", "--input", str(inp),
                                  "--output", str(out), "--master", master, "--overwrite"], env)
    if r.returncode != 0:
        raise SystemExit(f"exact-dedup failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    m = json.loads((out / "_manifest.json").read_text())
    t = m["timings_s"]
    stage_s = t["total"] - t["spark_session"]
    return {"process_wall_s": round(wall, 2), "spark_session_s": t["spark_session"], "stage_s": round(stage_s, 2),
            "mb_per_s_per_core": round(text_mb / stage_s / cores, 3), "peak_memory_mb": round(peak / 2**20),
            "shuffle_write_bytes": m["shuffle"]["shuffle_write_bytes"], "spill_bytes": m["shuffle"]["spill_bytes"],
            "timings_s": t, "manifest": m}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "exact_dedup.json"))
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--rounds", type=int, default=3)
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
    print(f"exact-dedup on {len(files)} files ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB gz), "
          f"{args.rounds} alternated rounds ...", flush=True)
    refs, stages, same = [], [], []
    for i in range(args.rounds + 1):
        ref = python_baseline(files)
        refs.append(ref)
        print(f"  reference: {ref['wall_s']} s, {ref['mb_per_s_per_core']} MB/s per core", flush=True)
        if i == args.rounds:
            break
        st = run_stage_once(inp, work / "out", args.master, env, ref["text_mb"], cores)
        dups, cuts = stage_findings(work / "out")
        same.append(dups == ref["_dup_docs"] and cuts == ref["_cuts"])
        st["ratio_per_core_vs_reference"] = round(
            st["mb_per_s_per_core"] / statistics.mean([refs[i]["mb_per_s_per_core"], ref["mb_per_s_per_core"]]), 3)
        stages.append(st)
        print(f"  stage: {st['stage_s']} s (+ {st['spark_session_s']} s Spark start-up), {st['mb_per_s_per_core']} "
              f"MB/s per core, ratio {st['ratio_per_core_vs_reference']}, {st['shuffle_write_bytes'] / 1e6:.1f} MB "
              f"shuffled, peak {st['peak_memory_mb']} MB, same findings as the reference: {same[-1]}", flush=True)
    text_mb = refs[0]["text_mb"]
    c = stages[-1]["manifest"]["counts"]
    med = lambda key: statistics.median(s[key] for s in stages)  # noqa: E731
    result = {
        "what": "exact-dedup (document + paragraph + sentence) on all of ../shared/corpora vs the same algorithm "
                "in one Python process, alternated rounds",
        "master": args.master, "cores": cores, "files": len(files), "text_mb": round(text_mb, 2), "rounds": args.rounds,
        "docs_in": c["input"]["docs"], "docs_kept": c["kept"]["docs"],
        "removed_by_reason": {k: v["docs"] for k, v in c["removed"]["by_reason"].items()},
        "spans_removed": {k: v["docs"] for k, v in c["removed_spans"]["by_level"].items()},
        "chars_removed_share": round(1 - c["kept"]["chars"] / c["input"]["chars"], 4),
        "same_duplicates_and_spans_as_reference": all(same),
        "reference_doc_duplicates": refs[-1]["doc_duplicates"], "reference_spans_cut": refs[-1]["spans_cut"],
        "ratio_per_core_vs_reference_median": med("ratio_per_core_vs_reference"),
        "stage_s_median": med("stage_s"), "spark_session_s_median": med("spark_session_s"),
        "stage_mb_per_s_per_core_median": med("mb_per_s_per_core"),
        "reference_mb_per_s_per_core_median": statistics.median(r["mb_per_s_per_core"] for r in refs),
        "shuffle_write_bytes": stages[-1]["shuffle_write_bytes"],
        "shuffle_over_text_bytes": round(stages[-1]["shuffle_write_bytes"] / (text_mb * 1e6), 3),
        "spill_bytes": stages[-1]["spill_bytes"],
        "peak_memory_mb_max": max(s["peak_memory_mb"] for s in stages),
        "rounds_detail": [{k: v for k, v in s.items() if k != "manifest"} for s in stages],
        "reference_rounds_s": [r["wall_s"] for r in refs],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds_detail"}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    if not all(same):
        raise SystemExit("the stage and the reference disagree on the duplicates or spans")


if __name__ == "__main__":
    main()
