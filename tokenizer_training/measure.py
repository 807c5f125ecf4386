"""`python -m tokenizer_training.measure --out FILE.json -- COMMAND...`: run a command and record
its wall time and peak memory (resident set of the whole process tree, summed, sampled every
0.25 s: the driver, Spark's JVM, its Python workers and the SentencePiece trainer together)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path


def tree_rss(proc) -> tuple[int, int]:
    import psutil

    total = biggest = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        biggest = max(biggest, rss)
    return total, biggest


def run_measured(cmd: list[str], interval: float = 0.25) -> dict:
    import psutil

    t0 = time.time()
    child = subprocess.Popen(cmd)
    ps = psutil.Process(child.pid)
    peak = {"tree": 0, "proc": 0}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            t, b = tree_rss(ps)
            peak["tree"] = max(peak["tree"], t)
            peak["proc"] = max(peak["proc"], b)
            stop.wait(interval)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    rc = child.wait()
    stop.set()
    th.join()
    return {"command": cmd, "returncode": rc, "wall_s": round(time.time() - t0, 2),
            "peak_tree_rss_mb": round(peak["tree"] / 2**20, 1),
            "peak_single_process_rss_mb": round(peak["proc"] / 2**20, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tokenizer_training.measure")
    p.add_argument("--out", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        p.error("no command given")
    res = run_measured(cmd)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"[measure] exit {res['returncode']}, wall {res['wall_s']:.1f} s, peak memory {res['peak_tree_rss_mb']:,.0f} MB "
          f"(process tree; largest process {res['peak_single_process_rss_mb']:,.0f} MB) -> {a.out}", flush=True)
    return res["returncode"]


if __name__ == "__main__":
    sys.exit(main())
