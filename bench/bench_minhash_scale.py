"""Benchmark (c) of issue 10: minhash-dedup (default config: documents and paragraphs) at 1x, 2x
and 4x the input: MB/s per core and peak memory of the whole process tree (driver JVM + Python
workers, sampled every 0.2 s).

Input k x is all of ../shared/corpora k times (the files linked under k names): every document then
has k - 1 exact copies elsewhere, so the clusters, candidate pairs and verifications grow with k
as well as the signatures. Rounds alternate over the sizes (1x, 2x, 4x, 1x, ...) against this
host's drift; medians per size. The time per MB excludes the SparkSession start-up (timed
inside the run), which does not grow with the input.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_exact import run_measured  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "minhash_scale.json"))
    ap.add_argument("--sizes", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="a profile override for the stage (repeatable)")
    args = ap.parse_args()
    files = sorted(Path(args.corpora).glob("*.jsonl.gz"))
    work = Path(tempfile.mkdtemp(prefix="bench-minhash-scale-"))
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    cores = os.cpu_count() or 2
    sizes = [int(x) for x in args.sizes.split(",")]
    runs = {k: [] for k in sizes}
    for k in sizes:
        d = work / f"in{k}"
        d.mkdir()
        for copy in range(k):
            for f in files:
                os.symlink(f.resolve(), d / f"c{copy}_{f.name}")
    for _ in range(args.rounds):
        for k in sizes:
            out = work / f"out{k}"
            wall, peak, r = run_measured([sys.executable, "-m", "pipeline", "minhash-dedup", "--input",
                                          str(work / f"in{k}"), "--output", str(out), "--overwrite",
                                          *sum((["--set", o] for o in args.set), [])], env)
            if r.returncode != 0:
                raise SystemExit(f"minhash-dedup failed at {k}x:\n{r.stderr[-3000:]}")
            m = json.loads((out / "_manifest.json").read_text())
            t = m["timings_s"]
            chars = m["counts"]["input"]["chars"]
            stage_s = t["total"] - t["spark_session"]
            runs[k].append({"wall_s": round(wall, 1), "stage_s": round(stage_s, 1), "spark_session_s": t["spark_session"],
                            "peak_memory_mb": round(peak / 2**20), "input_bytes": m["input"]["bytes"],
                            "shuffle_mb": round(m["shuffle"]["shuffle_write_bytes"] / 1e6, 1),
                            "docs": m["counts"]["input"]["docs"], "chars": chars,
                            "removed_docs": m["counts"]["removed"]["docs"]})
            print(f"  {k}x: {runs[k][-1]}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    base_chars = statistics.median(r["chars"] for r in runs[sizes[0]])
    result = {"what": "minhash-dedup at 1x/2x/4x of ../shared/corpora (files linked k times), stage time "
                      "without Spark start-up, peak RSS of the process tree", "cores": cores, "overrides": args.set,
              "sizes": {}}
    for k in sizes:
        s = statistics.median(r["stage_s"] for r in runs[k])
        chars = runs[k][0]["chars"]
        result["sizes"][f"{k}x"] = {"stage_s_median": s, "mchars": round(chars / 1e6, 1),
                                    "s_per_mchar": round(s / (chars / 1e6), 4),
                                    "mchars_per_s_per_core": round(chars / 1e6 / s / cores, 3),
                                    "peak_memory_mb_max": max(r["peak_memory_mb"] for r in runs[k]), "runs": runs[k]}
    one = result["sizes"][f"{sizes[0]}x"]["s_per_mchar"]
    for k in sizes:
        result["sizes"][f"{k}x"]["time_per_mchar_over_1x"] = round(result["sizes"][f"{k}x"]["s_per_mchar"] / one, 3)
    result["base_mchars"] = round(base_chars / 1e6, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {x: v[x] for x in v if x != "runs"} for k, v in result["sizes"].items()}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
