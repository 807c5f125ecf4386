"""The stage through its command line, as a user runs it: clear one-line errors, idempotent
re-runs, and a killed run that restarts into output identical to an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from conftest import REPO, write_jsonl

ENV = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1", PYTHONUNBUFFERED="1")
ARGS = ["--master", "local[2]", "--set", "write.files_per_output=2", "--set", "spark.shuffle_partitions=4"]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def make_input(root: Path) -> Path:
    docs = []
    for i in range(400):
        body = f"Document number {i} talks about topic {i % 37} in its own words.\n\n"
        body += f"Shared boilerplate paragraph number {i % 5} that many documents carry along.\n\n"
        body += "这是一个中文句子，它在很多文档里重复出现。" if i % 3 else f"A unique ending for {i}."
        docs.append({"id": f"doc{i}", "text": body, "lang": "zh" if i % 3 else "en"})
    docs += docs[:50]  # exact duplicates (same ids too: ids need not be unique)
    write_jsonl(root / "a.jsonl.gz", docs[:225], gz=True)
    write_jsonl(root / "b.jsonl", docs[225:])
    return root


def contents(out: Path) -> dict:
    return {sub: [pq.read_table(f) for f in sorted((out / sub).glob("*.parquet"))]
            for sub in ("kept", "removed", "removed_spans", "quarantine")}


def same(a: dict, b: dict) -> bool:
    return all(len(a[k]) == len(b[k]) and all(x.equals(y) for x, y in zip(a[k], b[k])) for k in a)


def test_user_mistakes_get_one_line(tmp_path):
    r = cli("exact-dedup", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().startswith("error: input not found")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("exact-dedup:\n  min_sentence_charz: 3\n")
    write_jsonl(tmp_path / "in" / "x.jsonl", [{"text": "hello"}])
    r = cli("exact-dedup", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"), "--config", str(bad_cfg))
    assert r.returncode == 2 and "unknown config key(s) 'min_sentence_charz'" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("nonsense-stage")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_idempotent_rerun_and_kill_restart(tmp_path):
    inp = make_input(tmp_path / "in")
    ref = tmp_path / "ref"
    r = cli("exact-dedup", "--input", str(inp), "--output", str(ref), *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]
    # same input and config again: a no-op that says so
    r = cli("exact-dedup", "--input", str(inp), "--output", str(ref), *ARGS)
    assert r.returncode == 0 and "nothing to do" in r.stdout
    # existing output from another config: refused without --overwrite
    r = cli("exact-dedup", "--input", str(inp), "--output", str(ref), *ARGS, "--set", "exact-dedup.sentence=false")
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr

    # kill a run half-way (once it has started writing), then start it again
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "exact-dedup", "--input", str(inp), "--output",
                             str(out), *ARGS], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    work = tmp_path / ".out.incomplete"
    deadline = time.time() + 240
    while time.time() < deadline and not (work / "kept").exists():
        time.sleep(0.2)
    assert (work / "kept").exists(), "the run never started writing"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing published by the killed run
    r = cli("exact-dedup", "--input", str(inp), "--output", str(out), *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "incomplete output of an interrupted run" in r.stdout
    assert not work.exists()
    assert same(contents(out), contents(ref))
