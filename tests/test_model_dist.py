"""torchrun on CPU (gloo, 2 processes): DDP and FSDP give the single-process losses for the same global
batch, and an FSDP run killed after a checkpoint resumes with identical losses."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.indexed_dataset import IndexedDatasetWriter

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, nproc=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if nproc:
        cmd = [str(TORCHRUN), "--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1",
               "--master-port", str(_free_port()), "-m", "model", *map(str, args)]
    else:
        cmd = [sys.executable, "-m", "model", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _losses(out):
    return [json.loads(x)["loss"] for x in (Path(out) / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(1)
    with IndexedDatasetWriter(d / "shard-00000", dtype=np.int32) as w:
        for _ in range(80):
            w.add_document(np.append(rng.integers(3, 512, rng.integers(10, 100)), 2))
    (d / "_manifest.json").write_text(json.dumps({"vocab_size": 512}))
    return d


def test_ddp_and_fsdp_match_single_process_and_resume(shards, tmp_path):
    common = ["train", "--data", shards, "--model", "tiny", "--seq-len", 32, "--micro-batch", 2,
              "--max-steps", 6, "--lr", 3e-3, "--warmup-steps", 2, "--ckpt-interval", 2,
              "--threads", 1, "--no-progress"]
    # single process with 2 accumulation steps sees the same global batch as 2 ranks x 1
    p = _run(common + ["--out", tmp_path / "single", "--grad-accum", 2])
    assert p.returncode == 0, p.stderr
    single = _losses(tmp_path / "single")
    for mode in ("ddp", "fsdp"):
        p = _run(common + ["--out", tmp_path / mode, "--parallel", mode], nproc=2)
        assert p.returncode == 0, p.stderr[-3000:]
        np.testing.assert_allclose(_losses(tmp_path / mode), single, rtol=1e-5, err_msg=mode)
    # FSDP: kill rank 0 after step 5 (last checkpoint: step 4), relaunch, compare
    p = _run(common + ["--out", tmp_path / "fsdp-crash", "--parallel", "fsdp", "--crash-after-step", 5], nproc=2)
    assert p.returncode != 0
    assert (tmp_path / "fsdp-crash" / "checkpoints" / "latest").read_text().strip() == "step-0000004"
    p = _run(common + ["--out", tmp_path / "fsdp-crash", "--parallel", "fsdp"], nproc=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _losses(tmp_path / "fsdp-crash") == _losses(tmp_path / "fsdp")
