"""Benchmark (b) of issue 10: the whole minhash-dedup stage (Spark start-up included) against
datatrove's 4-step MinHash pipeline on the same documents and cores: wall-time ratio, and each
tool's pair recall / precision / F1 at threshold 0.8 on the same exact-Jaccard ground truth
(bench_minhash_accuracy.py: all of ../shared/corpora plus injected near-duplicates).

datatrove conflicts with nothing we pin, but it pulls spaCy and jieba, so it lives in a peer venv
this script makes (bench/.peer-venv: datatrove 0.10.1, spaCy 3.8.18, jieba 0.42.1, from the same
package index). Set up fairly: the same 5-token shingles, the same bands x rows as our stage
(21 x 6), its own word tokeniser per language (spaCy English for en and code, spaCy + jieba for
zh: datatrove runs one language per pipeline, so each language is its own run, and the three
runs' times are summed), 64-bit hashes, each language's input in 4 shards, 2 workers (the
machine's cores). Rounds alternate: ours, datatrove, ours, ...; the ratio compares each datatrove
run with the mean of the runs of ours beside it.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_minhash_accuracy import LANGS, build_corpus, clusters_of, run_stage, scores, truth  # noqa: E402

PEER_VENV = REPO / "bench" / ".peer-venv"
PEER_PINS = ["datatrove==0.10.1", "spacy==3.8.18", "jieba==0.42.1", "regex==2026.11.19", "tokenizers==0.23.3",
             "xxhash==3.8.2", "orjson==3.13.0"]  # datatrove 0.10.1 breaks on xxhash 4 (it hashes str)
DT_LANGUAGE = {"en": "en", "zh": "zh", "code": "en"}


def peer_python() -> Path:
    py = PEER_VENV / "bin" / "python"
    if not py.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PINS], check=True)
    return py


def write_shards(docs: list[dict], root: Path, shards: int = 4) -> None:
    for lang in LANGS:
        d = root / lang
        d.mkdir(parents=True)
        mine = [x for x in docs if x["lang"] == lang]
        for s in range(shards):
            with gzip.open(d / f"part-{s}.jsonl.gz", "wt", encoding="utf-8") as f:
                for x in mine[s::shards]:
                    f.write(json.dumps({"id": x["id"], "text": x["text"]}, ensure_ascii=False) + "\n")


def run_datatrove(py: Path, shards: Path, work: Path, bands: int, rows: int, workers: int) -> float:
    t0 = time.time()
    for lang in LANGS:
        r = subprocess.run([str(py), str(REPO / "bench" / "datatrove_minhash_run.py"), str(shards / lang),
                            str(work / lang), DT_LANGUAGE[lang], "4", str(workers), str(bands), str(rows)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"datatrove failed on {lang}:\n{r.stderr[-3000:]}")
    return time.time() - t0


def datatrove_clusters(work: Path) -> tuple[dict, set]:
    """id -> cluster id (kept and removed documents that datatrove put in a cluster), removed ids."""
    cluster, removed = {}, set()
    for lang in LANGS:
        for sub in ("kept", "removed"):
            for f in sorted((work / lang / sub).glob("*.jsonl.gz")):
                with gzip.open(f, "rt", encoding="utf-8") as fh:
                    for line in fh:
                        r = json.loads(line)
                        c = (r.get("metadata") or {}).get("minhash_cluster_id")
                        if c is not None and c != -1:
                            cluster[r["id"]] = f"{lang}:{c}"
                        if sub == "removed":
                            removed.add(r["id"])
    return cluster, removed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "minhash_peers.json"))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    py = peer_python()
    work = Path(tempfile.mkdtemp(prefix="bench-minhash-peers-"))
    inp = work / "in"
    _, docs, _ = build_corpus(Path(args.corpora), inp)
    write_shards(docs, work / "shards")
    text_mb = sum(len(d["text"].encode("utf-8")) for d in docs) / 1e6
    ids, langs = [d["id"] for d in docs], [d["lang"] if d["lang"] in LANGS else "other" for d in docs]
    a, b, j = truth([d["text"] for d in docs], 0.7)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    ours_s, dt_s, ratios, m = [], [], [], None
    for i in range(args.rounds + 1):
        m = run_stage(inp, work / "ours", 0.8, env)
        ours_s.append(m["_wall_s"])
        print(f"  ours: {ours_s[-1]:.1f} s", flush=True)
        if i == args.rounds:
            break
        shutil.rmtree(work / "dt", ignore_errors=True)
        bands, rows = m["stats"]["minhash"]["bands"], m["stats"]["minhash"]["rows"]
        dt_s.append(run_datatrove(py, work / "shards", work / "dt", bands, rows, os.cpu_count() or 2))
        ratios.append(dt_s[-1] / statistics.mean(ours_s[-1:]))
        print(f"  datatrove: {dt_s[-1]:.1f} s", flush=True)
    ratios = [dt / statistics.mean(ours_s[k:k + 2]) for k, dt in enumerate(dt_s)]
    ours_c, ours_r = clusters_of(work / "ours")
    dt_c, dt_r = datatrove_clusters(work / "dt")
    result = {
        "what": "whole minhash-dedup stage (Spark start-up included) vs datatrove 0.10.1's 4-step MinHash, same "
                "documents and cores, threshold 0.8", "text_mb": round(text_mb, 1), "docs": len(docs),
        "cores": os.cpu_count(), "bands_x_rows": [m["stats"]["minhash"]["bands"], m["stats"]["minhash"]["rows"]],
        "ours_wall_s": [round(x, 1) for x in ours_s], "datatrove_wall_s": [round(x, 1) for x in dt_s],
        "datatrove_over_ours_wall_median": round(statistics.median(ratios), 2),
        "ours_mb_per_s_per_core": round(text_mb / statistics.median(ours_s) / (os.cpu_count() or 2), 3),
        "datatrove_mb_per_s_per_core": round(text_mb / statistics.median(dt_s) / (os.cpu_count() or 2), 3),
        "accuracy_at_0.8": {"ours": scores(ids, langs, a, b, j, ours_c, ours_r, 0.8),
                            "datatrove": scores(ids, langs, a, b, j, dt_c, dt_r, 0.8)},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
