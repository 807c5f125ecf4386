"""`make bench-pipeline`: what the whole chain costs per stage, a linear cost model, and whether a
standalone Spark cluster writes the same bytes as local mode.

1. Full run. `python -m pipeline run --config CONFIG --input CORPORA` runs as a subprocess (its
   output under --work, resumable: a finished stage is skipped on a re-run unless --fresh). A
   sampler thread walks the process tree every 0.5 s with psutil (the runner, its Spark JVM, the
   Python daemon and workers) and records the summed RSS (the peak per stage; shared pages of
   forked workers count once per process, so it is an upper bound) and the cumulative CPU seconds
   (user + system, the last value seen per process, so processes that end keep their share; what a
   process spends in its last < 0.5 s, or a process that lives < 0.5 s, is missed: the count of
   processes seen is recorded). Other load on the machine shows as other_cpu_s (the machine's busy
   CPU seconds less the tree's) and the 1-minute load average at each stage's start: wall times
   under contention are longer than on a quiet machine. Stage boundaries come from the runner's
   stdout, streamed line by line: a stage runs from the end of the stage before it (its
   `[<stage> ...s] done in` or `already complete` line) to its own `done in` line; the first stage
   starts at its first line, what comes before is `startup` (interpreter, JVM, SparkSession, first
   input listing), what comes after the last stage is `after-stages` (report.html, corpus export).
   Per stage: wall_s, cpu_s, cores_used = cpu_s / wall_s, peak_rss_mb, the input as the manifest
   gives it (`input.bytes`: file bytes, gzip or parquet; `counts.input.docs` / `.chars`) and
   input_text_mb, the UTF-8 bytes of the input documents' `text` (measured by reading the input:
   the raw JSONL for the first stage, the feeding stage's kept/ parquet after it), which the rates
   use: mb_per_s_per_core = input_text_mb / (wall_s * nproc), mb_per_cpu_s = input_text_mb / cpu_s;
   bytes_written = size of OUT/<stage>/ after the run (plus Spark's shuffle bytes from the
   manifest). A stage skipped because an earlier run finished it is `skipped: true`, with its
   manifest's timings_s.total as `wall_s_from_manifest`, never as zero cost.
2. Cost model. Linear in the raw input text: per stage and in total, core-hours (wall x nproc, and
   CPU seconds of the tree) per TB of raw text and per trillion raw-text tokens, disk written per TB,
   the dominant stage. Tokens per byte of distinct text come from tokenize/kept/ (n_tokens / n_bytes;
   the manifest's stats.tokens counts sampled repeats, its stats.text_bytes does not), else from the
   tokenize manifest when nothing repeats, else 0.25 (the source is recorded).
3. Slice, local vs standalone cluster. A ~--slice-mb MB slice of the corpora (the first lines of
   every file, each file's share in proportion to its size, written as jsonl.gz under --work) runs
   with the same config in local mode (`--master local[2]`) and through spark-submit of
   jobs/pipeline.py on a standalone cluster (one master, two workers with 1 core and 3g each, all on
   127.0.0.1). Every parquet file under kept/, removed/, removed_spans/, quarantine/ of every stage
   and the tokenize shards (*.bin, *.idx) are compared byte for byte; other parquet outputs (e.g.
   clusters/, embeddings/) are compared and reported apart; the exported corpus/ (its data files,
   not its README or card) is compared like a stage.

Results go to --out (JSON; sections of an earlier invocation that this one skips are kept), with
cpu_count, load averages, date, config and git commit; a summary and markdown tables are printed.
Only one pipeline runs at a time.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
NPROC = os.cpu_count() or 1
SAMPLE_EVERY_S = 0.5
DEFAULT_TOKENS_PER_BYTE = 0.25
COMPARED_DIRS = ("kept", "removed", "removed_spans", "quarantine")
CORPUS_DATA_SUFFIXES = (".parquet", ".bin", ".idx", ".jsonl", ".jsonl.gz", ".arrow")  # not its README or card
MB = 1e6


def bench_env() -> dict:
    """The environment the Makefile exports for every run."""
    return dict(os.environ, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295",
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", SPARK_LOCAL_IP="127.0.0.1", PYTHONHASHSEED="0",
                PYSPARK_PYTHON=PY, PYSPARK_DRIVER_PYTHON=PY, PYTHONUNBUFFERED="1")


def stage_names(config: str, sets: list[str]) -> list[str]:
    from pipeline.config import load_profile

    names = load_profile(config, sets).stages
    if not names:
        raise SystemExit(f"{config} has no pipeline.stages")
    return names


# ------------------------------------------------------------------------------------------
# Measuring one run: a process-tree sampler and the stage clock that reads the runner's stdout


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores) since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


class TreeSampler(threading.Thread):
    """Every SAMPLE_EVERY_S: summed RSS and cumulative CPU of the roots and all their descendants,
    attributed to the label set by mark() (a segment per mark)."""

    def __init__(self, roots: list[psutil.Process]):
        super().__init__(daemon=True)
        self.roots, self.cpu, self.segments = roots, {}, []
        self.lock, self.done = threading.Lock(), threading.Event()
        self.t0 = time.time()

    def _tick(self) -> tuple[float, int, int]:
        procs = {}
        for root in self.roots:
            try:
                procs.update((p.pid, p) for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                continue
        rss = 0
        for p in procs.values():
            try:
                with p.oneshot():
                    t, mem, key = p.cpu_times(), p.memory_info().rss, (p.pid, p.create_time())
            except psutil.Error:
                continue
            self.cpu[key] = t.user + t.system
            rss += mem
        return sum(self.cpu.values()), rss, len(procs)

    def mark(self, label: str) -> None:
        with self.lock:
            cpu, rss, n = self._tick()
            now, busy = time.time() - self.t0, machine_busy_s()
            if self.segments:
                self.segments[-1].update(t1=now, cpu1=cpu, busy1=busy)
            self.segments.append({"label": label, "t0": now, "cpu0": cpu, "busy0": busy, "rss": rss, "procs": n,
                                  "load": os.getloadavg()[0]})

    def run(self) -> None:
        while not self.done.wait(SAMPLE_EVERY_S):
            with self.lock:
                cpu, rss, n = self._tick()
                seg = self.segments[-1]
                seg["rss"], seg["procs"] = max(seg["rss"], rss), max(seg["procs"], n)

    def finish(self) -> dict:
        """Stop, close the last segment; {label: {wall_s, cpu_s, peak_rss_mb, ...}} summed per label."""
        self.done.set()
        self.join()
        self.mark("(end)")
        out = {}
        for seg in self.segments[:-1]:
            s = out.setdefault(seg["label"], {"t_start_s": round(seg["t0"], 2), "wall_s": 0.0, "cpu_s": 0.0,
                                              "other_cpu_s": 0.0, "peak_rss_mb": 0.0, "peak_processes": 0,
                                              "loadavg_1m_at_start": round(seg["load"], 2)})
            s["wall_s"] = round(s["wall_s"] + seg["t1"] - seg["t0"], 2)
            s["cpu_s"] = round(s["cpu_s"] + seg["cpu1"] - seg["cpu0"], 2)
            other = (seg["busy1"] - seg["busy0"]) - (seg["cpu1"] - seg["cpu0"])
            s["other_cpu_s"] = round(s["other_cpu_s"] + max(0.0, other), 2)
            s["peak_rss_mb"] = round(max(s["peak_rss_mb"], seg["rss"] / MB), 1)
            s["peak_processes"] = max(s["peak_processes"], seg["procs"])
            s["t_end_s"] = round(seg["t1"], 2)
        return out


class StageClock:
    """Moves the sampler's label along the runner's stdout (see the module docstring)."""

    def __init__(self, stages: list[str], sampler: TreeSampler):
        self.stages, self.sampler, self.current, self.skipped = stages, sampler, "startup", []
        alts = "|".join(re.escape(s) for s in sorted(stages, key=len, reverse=True))
        self.pattern = re.compile(rf"^\[({alts})(?:\s+[\d.]+s)?\]\s?(.*)$")
        sampler.mark("startup")

    def _switch(self, label: str) -> None:
        if label != self.current:
            self.current = label
            self.sampler.mark(label)

    def feed(self, line: str) -> None:
        m = self.pattern.match(line)
        if not m:
            return
        name, msg = m.groups()
        self._switch(name)
        finished = msg.startswith("done in ")
        if "is already complete for this input and config" in msg:
            self.skipped.append(name)
            finished = True
        if finished:
            i = self.stages.index(name)
            self._switch(self.stages[i + 1] if i + 1 < len(self.stages) else "after-stages")


def _stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def run_measured(cmd: list[str], stages: list[str], log: Path, cwd: Path, extra_roots=(), env=None) -> dict:
    """Run cmd (its own process group), echo and log its output, measure its tree (+ extra_roots)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or bench_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", bufsize=1, start_new_session=True)
    sampler = TreeSampler([psutil.Process(proc.pid), *extra_roots])
    clock = StageClock(stages, sampler)
    sampler.start()
    try:
        with open(log, "w", encoding="utf-8") as fh:
            for line in proc.stdout:
                clock.feed(line)
                fh.write(line)
                print(line, end="", flush=True)
        proc.wait()
    finally:
        _stop_group(proc)
    wall = time.time() - t0
    segments = sampler.finish()
    return {"command": cmd, "log": str(log), "returncode": proc.returncode, "wall_s": round(wall, 2),
            "cpu_s": round(sum(s["cpu_s"] for s in segments.values()), 2), "processes_seen": len(sampler.cpu),
            "peak_rss_mb": max((s["peak_rss_mb"] for s in segments.values()), default=0.0),
            "segments": segments, "skipped_stages": clock.skipped}


# ------------------------------------------------------------------------------------------
# Sizes: text bytes of an input, bytes of a directory


def _jsonl_text_stats(path: str) -> dict:
    opener = gzip.open if path.endswith(".gz") else open
    docs = chars = nbytes = bad = 0
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                text = json.loads(line).get("text")
            except (ValueError, AttributeError):
                bad += 1
                continue
            if isinstance(text, str):
                docs, chars, nbytes = docs + 1, chars + len(text), nbytes + len(text.encode("utf-8", "replace"))
    return {"docs": docs, "chars": chars, "text_bytes": nbytes, "bad_lines": bad}


def _parquet_text_stats(path: str) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if "text" not in pf.schema_arrow.names:
        return {"docs": pf.metadata.num_rows, "chars": 0, "text_bytes": 0, "bad_lines": 0}
    chars = nbytes = 0
    for batch in pf.iter_batches(columns=["text"], batch_size=65536):
        col = batch.column(0)
        chars += pc.sum(pc.utf8_length(col)).as_py() or 0
        nbytes += pc.sum(pc.binary_length(col)).as_py() or 0
    return {"docs": pf.metadata.num_rows, "chars": chars, "text_bytes": nbytes, "bad_lines": 0}


class TextSizes:
    """Text stats of an input spec, resolved as the runner resolves it; per-file results cached on
    disk by (path, size, mtime)."""

    def __init__(self, cache: Path):
        self.path = cache
        self.cache = json.loads(cache.read_text()) if cache.is_file() else {}

    def of(self, spec: str) -> dict:
        from pipeline.readers import resolve_input

        total = {"files": 0, "file_bytes": 0, "docs": 0, "chars": 0, "text_bytes": 0, "bad_lines": 0}
        for f in resolve_input(spec).files:
            key = f"{f.path}|{f.size}|{f.mtime_ns}"
            if key not in self.cache:
                self.cache[key] = (_parquet_text_stats if f.fmt == "parquet" else _jsonl_text_stats)(f.path)
            total["files"] += 1
            total["file_bytes"] += f.size
            for k in ("docs", "chars", "text_bytes", "bad_lines"):
                total[k] += self.cache[key][k]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.cache))
        return total


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------
# Per-stage figures of a measured run


def _rates(rec: dict, wall: float | None, cpu: float | None) -> None:
    mb = rec.get("input_text_mb")
    rec["mb_per_s_per_core"] = round(mb / (wall * NPROC), 4) if mb is not None and wall else None
    rec["mb_per_cpu_s"] = round(mb / cpu, 4) if mb is not None and cpu else None


def stage_record(name: str, run: dict, out: Path, sizes: TextSizes) -> dict:
    seg = run["segments"].get(name)
    man = read_manifest(out / name / "_manifest.json")
    rec = {"stage": name, "skipped": name in run["skipped_stages"], "finished": man is not None}
    if man is not None:
        text = sizes.of(man["input"]["spec"])
        rec.update(input_docs=man["counts"]["input"]["docs"], input_chars=man["counts"]["input"]["chars"],
                   input_file_mb=round(man["input"]["bytes"] / MB, 3), input_text_mb=round(text["text_bytes"] / MB, 3),
                   manifest_total_s=man.get("timings_s", {}).get("total"), spark_master=man.get("spark", {}).get("master"),
                   bytes_written=dir_bytes(out / name), shuffle_write_bytes=man.get("shuffle", {}).get("shuffle_write_bytes"),
                   spill_bytes=man.get("shuffle", {}).get("spill_bytes"))
    if rec["skipped"]:
        rec.update(wall_s=None, cpu_s=None, cores_used=None, peak_rss_mb=None, skip_check_s=seg and seg["wall_s"],
                   wall_s_from_manifest=rec.get("manifest_total_s"), times_from_manifest=True,
                   note="finished by an earlier run and skipped: no CPU or memory measured; wall time is that run's")
        _rates(rec, rec["wall_s_from_manifest"], None)
        return rec
    if seg is None:
        rec.update(wall_s=None, cpu_s=None, cores_used=None, peak_rss_mb=None, note="never started")
        return rec
    rec.update(wall_s=seg["wall_s"], cpu_s=seg["cpu_s"], peak_rss_mb=seg["peak_rss_mb"],
               other_cpu_s=seg["other_cpu_s"], loadavg_1m_at_start=seg["loadavg_1m_at_start"],
               cores_used=round(seg["cpu_s"] / seg["wall_s"], 3) if seg["wall_s"] else None)
    _rates(rec, seg["wall_s"], seg["cpu_s"])
    return rec


def run_totals(rows: list[dict], run: dict, raw: dict) -> dict:
    measured = [r for r in rows if r["wall_s"] is not None]
    wall = sum(r["wall_s"] for r in measured)
    cpu = sum(r["cpu_s"] for r in measured)
    mb = raw["text_bytes"] / MB
    return {"stages_measured": len(measured), "stages_skipped": [r["stage"] for r in rows if r["skipped"]],
            "stages_unfinished": [r["stage"] for r in rows if not r["finished"]],
            "stage_wall_s": round(wall, 2), "stage_cpu_s": round(cpu, 2),
            "run_wall_s": run["wall_s"], "run_cpu_s": run["cpu_s"], "processes_seen": run["processes_seen"],
            "startup": run["segments"].get("startup"), "after_stages": run["segments"].get("after-stages"),
            "peak_rss_mb": run["peak_rss_mb"], "bytes_written": sum(r.get("bytes_written") or 0 for r in rows),
            "raw_text_mb": round(mb, 3),
            "mb_per_s_per_core": round(mb / (run["wall_s"] * NPROC), 4) if run["wall_s"] else None,
            "mb_per_cpu_s": round(mb / run["cpu_s"], 4) if run["cpu_s"] else None}


def _kept_token_sums(kept: Path) -> tuple[int, int]:
    """(tokens, UTF-8 bytes) of the distinct documents tokenize kept (n_tokens, n_bytes), or (0, 0)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tokens = nbytes = 0
    for f in sorted(kept.glob("*.parquet")):
        pf = pq.ParquetFile(f)
        if not {"n_tokens", "n_bytes"} <= set(pf.schema_arrow.names):
            return 0, 0
        for b in pf.iter_batches(columns=["n_tokens", "n_bytes"], batch_size=65536):
            tokens += pc.sum(b.column(0)).as_py() or 0
            nbytes += pc.sum(b.column(1)).as_py() or 0
    return tokens, nbytes


def token_figures(out: Path) -> dict:
    """Final tokens (after sampling: repeated documents count once per copy) and tokens per byte of
    distinct text. The manifest's stats.tokens counts the copies but stats.text_bytes does not, so
    their ratio overstates tokens per byte once sampling repeats documents: the ratio is taken from
    tokenize/kept/ (n_tokens / n_bytes per distinct document), else from the manifest when nothing
    is repeated (sequences == documents)."""
    stats = (read_manifest(out / "tokenize" / "_manifest.json") or {}).get("stats", {})
    distinct_tokens, distinct_bytes = _kept_token_sums(out / "tokenize" / "kept")
    fig = {"final_tokens": stats.get("tokens"), "final_sequences": stats.get("sequences"),
           "final_documents": stats.get("documents"), "distinct_tokens": distinct_tokens or None,
           "distinct_text_bytes": distinct_bytes or None, "tokens_per_byte": None, "source": None}
    if distinct_tokens and distinct_bytes:
        fig.update(tokens_per_byte=round(distinct_tokens / distinct_bytes, 5),
                   source="tokenize/kept/ sum(n_tokens) / sum(n_bytes) (distinct documents)")
    elif stats.get("tokens") and stats.get("text_bytes") and stats.get("sequences") == stats.get("documents"):
        fig.update(tokens_per_byte=round(stats["tokens"] / stats["text_bytes"], 5),
                   source="tokenize/_manifest.json stats.tokens / stats.text_bytes")
    return fig


# ------------------------------------------------------------------------------------------
# Cost model


def cost_model(rows: list[dict], full: dict) -> dict:
    """Core-hours and disk per TB of raw text and per trillion raw-text tokens, linear in the input."""
    raw_bytes, tok = full["raw_input"]["text_bytes"], full["tokens"]
    tpb = tok["tokens_per_byte"] or DEFAULT_TOKENS_PER_BYTE
    per_tb, per_tt = 1e12 / raw_bytes, 1e12 / (raw_bytes * tpb)
    out_rows = []
    for r in rows + [_after_stages_row(full)]:
        wall = r["wall_s"] if r["wall_s"] is not None else r.get("wall_s_from_manifest")
        core_h = wall * NPROC / 3600 if wall is not None else None
        cpu_h = r["cpu_s"] / 3600 if r.get("cpu_s") is not None else None
        out_rows.append({
            "stage": r["stage"], "estimated_from_manifest": r["wall_s"] is None and wall is not None,
            "core_h_per_tb": _scaled(core_h, per_tb), "cpu_h_per_tb": _scaled(cpu_h, per_tb),
            "core_h_per_t_tokens": _scaled(core_h, per_tt), "cpu_h_per_t_tokens": _scaled(cpu_h, per_tt),
            "disk_tb_per_tb": _scaled(r.get("bytes_written"), 1 / raw_bytes, 4)})
    total = {k: round(sum(r[k] or 0 for r in out_rows), 3) for k in
             ("core_h_per_tb", "cpu_h_per_tb", "core_h_per_t_tokens", "cpu_h_per_t_tokens", "disk_tb_per_tb")}
    dominant = max(out_rows, key=lambda r: r["core_h_per_tb"] or 0)
    final = tok["final_tokens"]
    return {"raw_text_bytes": raw_bytes, "tokens_per_byte": tpb,
            "tokens_per_byte_source": tok["source"] or f"assumed {DEFAULT_TOKENS_PER_BYTE} (no tokenize manifest)",
            "raw_tokens_estimate": round(raw_bytes * tpb), "final_tokens": final,
            "final_tokens_per_raw_byte": round(final / raw_bytes, 5) if final else None,
            "core_h_per_t_final_tokens": round(total["core_h_per_tb"] * raw_bytes / final, 3) if final else None,
            "fixed_startup_s": (full["totals"]["startup"] or {}).get("wall_s"),
            "stages": out_rows, "total": total, "dominant_stage": dominant["stage"],
            "dominant_share": round(dominant["core_h_per_tb"] / total["core_h_per_tb"], 3)
            if total["core_h_per_tb"] else None,
            "incomplete": [r["stage"] for r in out_rows if r["core_h_per_tb"] is None or r["estimated_from_manifest"]]}


def _scaled(value, factor, digits=3):
    return round(value * factor, digits) if value is not None else None


def _after_stages_row(full: dict) -> dict:
    seg = full["totals"]["after_stages"] or {}
    return {"stage": "after-stages", "wall_s": seg.get("wall_s"), "cpu_s": seg.get("cpu_s"),
            "bytes_written": dir_bytes(Path(full["output"]) / "corpus") + dir_bytes(Path(full["output"]) / "report.html")}


def md_table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1 else f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def stage_table(rows: list[dict]) -> str:
    keys = ["stage", "skipped", "wall_s", "cpu_s", "cores_used", "input_text_mb", "input_file_mb",
            "mb_per_s_per_core", "mb_per_cpu_s", "peak_rss_mb", "other_cpu_s", "bytes_written"]
    data = []
    for r in rows:
        row = [r.get(k) for k in keys]
        if r["skipped"]:
            row[2] = f"({r.get('wall_s_from_manifest')} from manifest)"
        row[-1] = round(r["bytes_written"] / MB, 1) if r.get("bytes_written") is not None else None
        data.append(row)
    return md_table(keys[:-1] + ["written_mb"], data)


def cost_table(cost: dict) -> str:
    keys = ["core_h_per_tb", "cpu_h_per_tb", "core_h_per_t_tokens", "cpu_h_per_t_tokens", "disk_tb_per_tb"]
    rows = [[r["stage"] + (" (manifest)" if r["estimated_from_manifest"] else "")] + [r[k] for k in keys]
            for r in cost["stages"]]
    rows.append(["**total**"] + [cost["total"][k] for k in keys])
    return md_table(["stage"] + keys, rows)


# ------------------------------------------------------------------------------------------
# The full run


def full_run(args, stages: list[str], sizes: TextSizes) -> dict:
    out = args.work / f"full-{Path(args.config).stem}"
    if args.fresh and out.exists():
        shutil.rmtree(out)
    cmd = [PY, "-m", "pipeline", "run", "--config", str(Path(args.config).resolve()), "--input",
           str(args.corpora.resolve()), "--output", str(out.resolve()), *_sets(args.set)]
    run = run_measured(cmd, stages, args.work / "logs" / f"full-{Path(args.config).stem}.log", REPO)
    raw = sizes.of(str(args.corpora.resolve()))
    rows = [stage_record(name, run, out, sizes) for name in stages]
    full = {**section_meta(args), "output": str(out), "command": cmd, "returncode": run["returncode"],
            "raw_input": raw, "stages": rows, "totals": run_totals(rows, run, raw), "tokens": token_figures(out),
            "segments": run["segments"], "log": run["log"]}
    full["cost_model"] = cost_model(rows, full)
    return full


def _sets(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------
# The slice: the first lines of every file, each file's share in proportion to its size


def _slice_file(src: Path, dst: Path, quota: float) -> dict:
    opener = gzip.open if src.name.endswith(".gz") else open
    docs = nbytes = 0
    with opener(src, "rb") as fin, open(dst, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                                         mtime=0) as fout:
        for line in fin:
            if docs and nbytes >= quota:
                break
            try:
                text = json.loads(line).get("text") or ""
            except (ValueError, AttributeError):
                text = ""
            fout.write(line if line.endswith(b"\n") else line + b"\n")
            docs, nbytes = docs + 1, nbytes + len(text.encode("utf-8", "replace"))
    return {"file": dst.name, "docs": docs, "text_bytes": nbytes}


def build_slice(corpora: Path, mb: float, dest: Path) -> dict:
    """~mb MB of text as jsonl.gz files in dest (deterministic; rebuilt only when the inputs change)."""
    files = sorted(f for f in corpora.iterdir() if f.is_file() and f.name.endswith((".jsonl.gz", ".jsonl"))
                   and not f.name.startswith(("_", ".")))
    if not files:
        raise SystemExit(f"no .jsonl(.gz) files in {corpora}")
    params = {"corpora": str(corpora.resolve()), "slice_mb": mb, "files": [[f.name, f.stat().st_size] for f in files]}
    meta_path = dest.parent / (dest.name + ".json")
    meta = read_manifest(meta_path)
    if meta and meta.get("params") == params and dest.is_dir():
        return {**meta, "path": str(dest)}
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    total = sum(f.stat().st_size for f in files)
    parts = [_slice_file(f, dest / (f.name if f.name.endswith(".gz") else f.name + ".gz"), mb * MB * f.stat().st_size / total)
             for f in files]
    meta = {"params": params, "path": str(dest), "files": parts, "docs": sum(p["docs"] for p in parts),
            "text_bytes": sum(p["text_bytes"] for p in parts)}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return meta


# ------------------------------------------------------------------------------------------
# A standalone cluster on 127.0.0.1: one master, two workers (the scripts pyspark ships)


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json", timeout=5) as r:
            return sum(w.get("state") == "ALIVE" for w in json.load(r).get("workers", []))
    except (OSError, ValueError):
        return 0


def cluster_env(base: Path) -> dict:
    return dict(bench_env(), SPARK_HOME=str(spark_home()), SPARK_LOG_DIR=str(base / "logs"),
                SPARK_WORKER_DIR=str(base / "work"))


@contextmanager
def standalone_cluster(base: Path, workers: int = 2):
    """Yields (master URL, daemon processes); every process group is ended on the way out."""
    base.mkdir(parents=True, exist_ok=True)
    env, spark_class = cluster_env(base), str(spark_home() / "bin" / "spark-class")
    port, ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    procs = []

    def daemon(args: list[str], log: str) -> None:
        procs.append(subprocess.Popen([spark_class, *args], env=env, stdout=open(base / log, "w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))
    try:
        daemon(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                "--webui-port", str(ui)], "master.log")
        _wait(lambda: _listening(port), 90, "the master")
        for i in range(workers):
            daemon(["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1", "--memory",
                    "3g", "--webui-port", str(free_port()), "--work-dir", str(base / f"work-{i}")], f"worker-{i}.log")
        _wait(lambda: _alive_workers(ui) >= workers, 120, f"{workers} workers to register")
        yield url, procs
    finally:
        for p in procs:
            _stop_group(p)


# ------------------------------------------------------------------------------------------
# Local vs cluster on the slice


def _compared_files(stage_dir: Path) -> tuple[set, set]:
    """(relative paths that must be identical, other parquet outputs) of one stage directory."""
    if not stage_dir.is_dir():
        return set(), set()
    if stage_dir.name == "corpus":
        core = {f for f in stage_dir.rglob("*") if f.is_file() and f.name.endswith(CORPUS_DATA_SUFFIXES)}
    else:
        core = {f for sub in COMPARED_DIRS for f in (stage_dir / sub).rglob("*.parquet")}
        core |= {f for f in (stage_dir / "shards").rglob("*") if f.suffix in (".bin", ".idx")}
    other = set(stage_dir.rglob("*.parquet")) - core
    rel = lambda files: {f.relative_to(stage_dir).as_posix() for f in files}  # noqa: E731
    return rel(core), rel(other)


def _why_differs(fa: Path, fb: Path) -> str | None:
    import filecmp

    if not fa.exists() or not fb.exists():
        return "only in " + ("cluster" if not fa.exists() else "local")
    if filecmp.cmp(fa, fb, shallow=False):
        return None
    if fa.suffix != ".parquet":
        return f"bytes differ ({fa.stat().st_size} vs {fb.stat().st_size} bytes)"
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(fa), pq.read_table(fb)
    if ta.equals(tb):
        return f"same rows and values ({ta.num_rows}), different bytes"
    return f"different content ({ta.num_rows} vs {tb.num_rows} rows)"


def compare_outputs(local: Path, cluster: Path, stages: list[str]) -> dict:
    out = {}
    for name in [*stages, "corpus"]:
        core_a, other_a = _compared_files(local / name)
        core_b, other_b = _compared_files(cluster / name)
        if not (core_a or core_b or other_a or other_b):
            if name != "corpus":
                out[name] = {"identical": None, "note": "no outputs to compare (stage missing in a run)"}
            continue
        diff = {f: _why_differs(local / name / f, cluster / name / f) for f in sorted(core_a | core_b)}
        other = {f: _why_differs(local / name / f, cluster / name / f) for f in sorted(other_a | other_b)}
        out[name] = {"identical": not any(diff.values()) and bool(core_a), "files_compared": len(diff),
                     "differing": {f: why for f, why in diff.items() if why},
                     "other_parquet_identical": not any(other.values()), "other_parquet_compared": len(other),
                     "other_parquet_differing": {f: why for f, why in other.items() if why}}
    return out


def run_summary(run: dict, out: Path, stages: list[str]) -> dict:
    per_stage = {}
    for name in stages:
        seg, man = run["segments"].get(name, {}), read_manifest(out / name / "_manifest.json") or {}
        rec = {"skipped": name in run["skipped_stages"], "spark_master": man.get("spark", {}).get("master")}
        if rec["skipped"]:  # finished by an earlier run: its own time, not the skip check, is the cost
            rec.update(skip_check_s=seg.get("wall_s"), wall_s_from_manifest=man.get("timings_s", {}).get("total"))
        else:
            rec.update({k: seg.get(k) for k in ("wall_s", "cpu_s", "other_cpu_s", "peak_rss_mb")})
        per_stage[name] = rec
    keep = ("command", "log", "returncode", "wall_s", "cpu_s", "processes_seen", "peak_rss_mb", "skipped_stages")
    return {**{k: run[k] for k in keep}, "output": str(out), "startup": run["segments"].get("startup"),
            "stages": per_stage}


def slice_compare(args, stages: list[str]) -> dict:
    tag = f"{args.slice_mb:g}mb"
    data = build_slice(args.corpora.resolve(), args.slice_mb, args.work / f"slice-input-{tag}")
    stem = Path(args.config).stem
    outs = {mode: (args.work / f"slice-{tag}-{stem}-{mode}").resolve() for mode in ("local", "cluster")}
    if args.fresh:
        for d in outs.values():
            shutil.rmtree(d, ignore_errors=True)
    common = ["--config", str(Path(args.config).resolve()), "--input", data["path"]]
    local_cmd = [PY, "-m", "pipeline", "run", *common, "--output", str(outs["local"]), "--master", "local[2]",
                 *_sets(args.set)]
    local = run_measured(local_cmd, stages, args.work / "logs" / f"slice-{tag}-{stem}-local.log", REPO)
    base = args.work / "cluster"
    with standalone_cluster(base) as (url, daemons):
        submit = [str(spark_home() / "bin" / "spark-submit"), "--master", url, "--driver-memory", "2g",
                  "--executor-memory", "2g", "--conf", f"spark.pyspark.python={PY}",
                  "--conf", f"spark.pyspark.driver.python={PY}",
                  "--driver-java-options", f"-Dlog4j2.configurationFile=file:{REPO / 'pipeline' / 'log4j2.properties'}",
                  str(REPO / "jobs" / "pipeline.py"), *common, "--output", str(outs["cluster"]), *_sets(args.set)]
        cluster = run_measured(submit, stages, args.work / "logs" / f"slice-{tag}-{stem}-cluster.log", base,
                               extra_roots=[psutil.Process(p.pid) for p in daemons], env=cluster_env(base))
    comparison = compare_outputs(outs["local"], outs["cluster"], stages)
    return {**section_meta(args), "input": {k: data[k] for k in ("path", "docs", "text_bytes")},
            "input_files": len(data["files"]), "slice_mb": args.slice_mb,
            "local": run_summary(local, outs["local"], stages),
            "cluster": {**run_summary(cluster, outs["cluster"], stages), "master": url, "workers": 2,
                        "worker_cores": 1, "worker_memory": "3g",
                        "note": "cpu_s and peak_rss_mb include the master, workers and executors"},
            "comparison": comparison,
            "all_identical": all(c["identical"] for c in comparison.values()) and bool(comparison)}


# ------------------------------------------------------------------------------------------
# Main


ASSUMPTIONS = [
    "linear scaling: every stage's cost (core-hours, CPU-hours, disk) grows in proportion to the raw input text; "
    "per-TB figures = measured / (raw text bytes / 1e12)",
    "core-hours = wall_s x nproc (the cores the run held); cpu-hours = CPU seconds of the whole process tree "
    "(the cores it used)",
    "input_text_mb = UTF-8 bytes of the input documents' text (raw JSONL for the first stage, the feeding stage's "
    "kept/ parquet after it); input_file_mb = the manifest's input.bytes (gzip or parquet file bytes)",
    "startup (interpreter, JVM, SparkSession) is a fixed cost, left out of the per-TB figures (fixed_startup_s)",
    "after-stages (report.html, corpus export) is counted as a scaling cost",
    "peak RSS is summed over the processes of the tree: pages shared by forked workers count once per process, "
    "so it is an upper bound",
    "disk = bytes of the output directories after the run; Spark's shuffle and spill files are temporary and "
    "given apart (manifest shuffle_write_bytes, spill_bytes)",
    "raw-text tokens = raw text bytes x the tokens per byte of the distinct documents tokenize encoded (filtered "
    "text); the raw text is assumed to tokenize at the same rate; final_tokens count sampling repeats",
    "stages skipped because an earlier run finished them are estimated from their manifest's timings_s.total "
    "(wall only, flagged estimated_from_manifest); their CPU is unknown",
]


def git(*a) -> str | None:
    r = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def section_meta(args) -> dict:
    """What a section of --out was measured with (sections of earlier invocations are kept)."""
    return {"date": _now(), "config": args.config, "sets": args.set, "corpora": str(args.corpora),
            "git_commit": git("rev-parse", "HEAD"), "cpu_count": NPROC}


def meta(args, stages: list[str], load_start) -> dict:
    return {"date": _now(), "config": args.config, "sets": args.set, "stages": stages, "corpora": str(args.corpora),
            "git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "cpu_count": NPROC, "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": None,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": PY, "argv": sys.argv,
            "sample_interval_s": SAMPLE_EVERY_S}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def print_full(full: dict) -> None:
    t, cost = full["totals"], full["cost_model"]
    print(f"\n## Full run: {full['raw_input']['text_bytes'] / MB:.1f} MB of raw text, {full['raw_input']['docs']:,} "
          f"docs, {NPROC} cores; run {t['run_wall_s']:.0f} s wall, {t['run_cpu_s']:.0f} CPU-s "
          f"({t['processes_seen']} processes), startup {(t['startup'] or {}).get('wall_s')} s, "
          f"returncode {full['returncode']}\n")
    print(stage_table(full["stages"]))
    print(f"\n## Cost model (linear; {cost['tokens_per_byte']:.4f} tokens/byte from {cost['tokens_per_byte_source']};"
          f" final tokens {cost['final_tokens']})\n")
    print(cost_table(cost))
    print(f"\ndominant stage: {cost['dominant_stage']} ({(cost['dominant_share'] or 0) * 100:.0f}% of core-hours)"
          + (f"; incomplete: {cost['incomplete']}" if cost["incomplete"] else ""))


def _names(files: dict, most: int = 3) -> str:
    shown = ", ".join(f"{f} ({why})" for f, why in list(files.items())[:most])
    return (shown + (f", ... ({len(files)} in all)" if len(files) > most else "")) or "-"


def print_slice(sl: dict) -> None:
    print(f"\n## Slice {sl['input']['text_bytes'] / MB:.1f} MB ({sl['input']['docs']:,} docs): local "
          f"{sl['local']['wall_s']:.0f} s (rc {sl['local']['returncode']}), cluster {sl['cluster']['wall_s']:.0f} s "
          f"(rc {sl['cluster']['returncode']})\n")
    rows = [[name, c["identical"], c.get("files_compared"), _names(c.get("differing", {})),
             c.get("other_parquet_identical"), _names(c.get("other_parquet_differing", {}))]
            for name, c in sl["comparison"].items()]
    print(md_table(["stage", "identical", "files", "differing", "other parquet identical", "other differing"], rows))
    print(f"\nall identical: {sl['all_identical']}")


def parse_args():
    ap = argparse.ArgumentParser(description="Per-stage cost of the whole chain, a linear cost model, and "
                                 "local vs standalone-cluster outputs (see the module docstring).")
    ap.add_argument("--config", default="configs/baichuan2.yaml")
    ap.add_argument("--corpora", type=Path, default=Path("../shared/corpora"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/pipeline.json"))
    ap.add_argument("--work", type=Path, default=Path("bench/.work/pipeline"))
    ap.add_argument("--slice-mb", type=float, default=20.0)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="config override for every run (repeatable)")
    ap.add_argument("--skip-full", action="store_true", help="no full run (its section of --out is kept)")
    ap.add_argument("--skip-slice", action="store_true", help="no slice runs (their section of --out is kept)")
    ap.add_argument("--fresh", action="store_true", help="wipe the run outputs under --work first (not resumed)")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    stages = stage_names(args.config, args.set)
    results = (read_manifest(args.out) or {}) if args.out.is_file() else {}
    results.update(meta=meta(args, stages, os.getloadavg()), assumptions=ASSUMPTIONS)
    ok = True
    if not args.skip_full:
        results["full_run"] = full_run(args, stages, TextSizes(args.work / "text_sizes.json"))
        ok &= results["full_run"]["returncode"] == 0
        write_json(args.out, results)
        print_full(results["full_run"])
    if not args.skip_slice:
        results["slice"] = slice_compare(args, stages)
        ok &= results["slice"]["local"]["returncode"] == 0 and results["slice"]["cluster"]["returncode"] == 0
        print_slice(results["slice"])
    results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.out, results)
    print(f"\nwrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
