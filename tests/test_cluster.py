"""A real standalone cluster (master + one worker on 127.0.0.1, both shipped with pyspark):
exact-dedup and minhash-dedup (two-pass stages; minhash-dedup's connected components iterate over
DataFrames) and tokenize (a streaming stage) through spark-submit give the same output as local
mode."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark

from conftest import REPO, small_tokenizer, write_jsonl
from pipeline.config import load_profile
from pipeline.stage import run_stage
from dedup.exact import STAGE as EXACT
from dedup.minhash_dedup import STAGE as MINHASH
from tokenizer_training.stage import TOKENIZE_STAGE

SPARK_HOME = Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port}")


def test_standalone_cluster_matches_local(tmp_path, spark):
    docs = [{"id": f"d{i}", "text": f"Paragraph {i % 7} is repeated across the corpus many times over.\n\n"
                                    f"Unique tail {i}: some words that are only here, nowhere else.",
             "lang": "en"} for i in range(120)]
    docs += docs[:20]
    words = [f"w{k}" for k in range(400)]
    for i in range(8):  # near-duplicate pairs: 80 words, one changed
        text = " ".join(words[i * 40 + k] for k in range(80))
        docs += [{"id": f"n{i}", "text": text, "lang": "en"},
                 {"id": f"n{i}-edit", "text": text.replace(words[i * 40 + 40], "changed"), "lang": "en"}]
    write_jsonl(tmp_path / "in" / "a.jsonl", docs)
    overrides = ["write.files_per_output=2"]
    run_stage(EXACT, load_profile(None, overrides), str(tmp_path / "in"), str(tmp_path / "local"), spark=spark)
    run_stage(MINHASH, load_profile(None, []), str(tmp_path / "local"), str(tmp_path / "mh_local"), spark=spark)
    model = small_tokenizer((d["text"] for d in docs), tmp_path / "m", 400, min_last_merge_frequency=0)
    run_stage(TOKENIZE_STAGE, load_profile(None, [f"tokenize.tokenizer={model}", "tokenize.shard_size_tokens=500"]),
              str(tmp_path / "local"), str(tmp_path / "tok_local"), spark=spark)

    env = dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               SPARK_LOG_DIR=str(tmp_path / "logs"), SPARK_WORKER_DIR=str(tmp_path / "work"))
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", str(free_port())],
            env=env, stdout=open(tmp_path / "master.log", "w"), stderr=subprocess.STDOUT, start_new_session=True))
        wait_for_port(port)
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
             "--cores", "2", "--memory", "2g", "--webui-port", str(free_port()), "--work-dir", str(tmp_path / "work")],
            env=env, stdout=open(tmp_path / "worker.log", "w"), stderr=subprocess.STDOUT, start_new_session=True))
        def submit(job, *args):
            r = subprocess.run(
                [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master_url, "--driver-memory", "1g",
                 "--executor-memory", "1g", "--conf", f"spark.pyspark.python={sys.executable}",
                 "--conf", "spark.sql.shuffle.partitions=4", str(REPO / "jobs" / job), *args],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

        submit("exact_dedup.py", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "cluster"),
               *sum((["--set", o] for o in overrides), []))
        submit("minhash_dedup.py", "--input", str(tmp_path / "cluster"), "--output", str(tmp_path / "mh_cluster"))
        submit("tokenize_shards.py", "--input", str(tmp_path / "cluster"), "--output", str(tmp_path / "tok_cluster"),
               "--tokenizer", model, "--set", "tokenize.shard_size_tokens=500")
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    import json

    manifest = json.loads((tmp_path / "cluster" / "_manifest.json").read_text())
    assert manifest["spark"]["master"] == master_url
    assert manifest["counts"]["removed"]["by_reason"]["exact_duplicate"]["docs"] == 20
    for sub in ("kept", "removed", "removed_spans", "quarantine"):
        a = sorted((tmp_path / "local" / sub).glob("*.parquet"))
        b = sorted((tmp_path / "cluster" / sub).glob("*.parquet"))
        assert [f.name for f in a] == [f.name for f in b] and a
        for fa, fb in zip(a, b):
            assert fa.read_bytes() == fb.read_bytes(), (sub, fa.name)  # the bytes, not only the rows
    mh = json.loads((tmp_path / "mh_cluster" / "_manifest.json").read_text())
    assert mh["spark"]["master"] == master_url and mh["stats"]["minhash"]["documents"]["clusters"] >= 8
    for sub in ("kept", "removed", "clusters", "signatures"):
        a = sorted((tmp_path / "mh_local" / sub).glob("*.parquet"))
        b = sorted((tmp_path / "mh_cluster" / sub).glob("*.parquet"))
        assert [f.name for f in a] == [f.name for f in b] and a
        for fa, fb in zip(a, b):
            assert fa.read_bytes() == fb.read_bytes(), ("minhash", sub, fa.name)
    tok = json.loads((tmp_path / "tok_cluster" / "_manifest.json").read_text())
    assert tok["spark"]["master"] == master_url and tok["stats"]["shard_count"] >= 2
    for sub in ("kept", "quarantine"):
        a = sorted((tmp_path / "tok_local" / sub).glob("*.parquet"))
        b = sorted((tmp_path / "tok_cluster" / sub).glob("*.parquet"))
        assert [f.name for f in a] == [f.name for f in b] and a
        for fa, fb in zip(a, b):
            assert fa.read_bytes() == fb.read_bytes(), (sub, fa.name)
    shard_files = sorted(f.name for f in (tmp_path / "tok_local" / "shards").iterdir())
    assert shard_files == sorted(f.name for f in (tmp_path / "tok_cluster" / "shards").iterdir())
    for name in shard_files:  # .bin/.idx byte for byte, and the shards' manifest
        assert (tmp_path / "tok_local" / "shards" / name).read_bytes() == \
            (tmp_path / "tok_cluster" / "shards" / name).read_bytes(), name
