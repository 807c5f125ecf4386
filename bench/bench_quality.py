"""`make bench-quality` (issue 16), the stages' cost: MB/s per core and peak memory of
quality-signals (language id, every q_ signal, the classifier's score) and quality-filter (rules
and the boilerplate cut) on all of ../shared/corpora, against exact-dedup on the same data in the
same run (alternated rounds: this host's speed drifts by up to 30% within a minute), as the
pipeline runs them: each stage its own process, local[2], Spark start-up timed apart.

The classifier is trained first by train-quality with the default recipe (its time reported
apart). Figures to bench/results/quality_stages.json: per stage and round the wall time, the
stage time, MB/s per core over the input's text, peak memory of the process tree; the medians; and
each quality stage's throughput as a ratio of exact-dedup's (scoring must not be the slowest stage).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.bench_exact import run_measured  # noqa: E402

CORES = 2
ROUNDS = 2


def stage(name: str, inp: Path, out: Path, text_mb: float, *extra: str) -> dict:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    cmd = [sys.executable, "-m", "pipeline", name, "--input", str(inp), "--output", str(out),
           "--master", f"local[{CORES}]", "--overwrite", *extra]
    wall, peak, r = run_measured(cmd, env)
    if r.returncode:
        raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
    t = json.loads((out / "_manifest.json").read_text())["timings_s"]
    stage_s = t["total"] - t["spark_session"]  # as bench_exact measures
    return {"process_wall_s": round(wall, 2), "spark_session_s": t["spark_session"], "stage_s": round(stage_s, 2),
            "text_mb": round(text_mb, 2), "mb_per_s_per_core": round(text_mb / stage_s / CORES, 3),
            "peak_memory_mb": round(peak / 2**20)}


def corpus_text_mb(corpora: Path) -> float:
    """UTF-8 megabytes of the documents' text (what every stage here reads)."""
    total = 0
    for f in sorted(corpora.glob("*.jsonl.gz")):
        with gzip.open(f, "rb") as fh:
            for line in fh:
                total += len(json.loads(line)["text"].encode("utf-8"))
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality_stages.json")
    args = ap.parse_args()
    text_mb = corpus_text_mb(args.corpora)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        model = ("--classifier-dir", str(tmp / "model"))
        print(f"train-quality (default recipe) on {text_mb:.1f} MB of text")
        train = stage("train-quality", args.corpora, tmp / "model", text_mb)
        stage("quality-signals", args.corpora, tmp / "signals", text_mb, *model)  # the filter's input
        rounds: dict = {"exact-dedup": [], "quality-signals": [], "quality-filter": []}
        for r in range(ROUNDS):
            names = ["exact-dedup", "quality-signals", "quality-filter"]
            for name in names if r % 2 == 0 else names[::-1]:
                inp = tmp / "signals" / "kept" if name == "quality-filter" else args.corpora
                got = stage(name, inp, tmp / f"run_{name}", text_mb, *(model if name == "quality-signals" else ()))
                rounds[name].append(got)
                print(f"  round {r} {name:16s} stage {got['stage_s']:7.1f} s  {got['mb_per_s_per_core']:.2f} MB/s/core "
                      f"peak {got['peak_memory_mb']} MB", flush=True)
    med = {name: {k: statistics.median(g[k] for g in got) for k in ("stage_s", "mb_per_s_per_core", "peak_memory_mb")}
           for name, got in rounds.items()}
    ratio = {name: round(med[name]["mb_per_s_per_core"] / med["exact-dedup"]["mb_per_s_per_core"], 3)
             for name in ("quality-signals", "quality-filter")}
    res = {"what": "quality stages vs exact-dedup on ../shared/corpora, local[2], medians of alternated rounds",
           "cores": CORES, "rounds": ROUNDS, "train_quality": train, "by_round": rounds, "medians": med,
           "throughput_ratio_to_exact_dedup": ratio}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({"medians": med, "ratio": ratio}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
