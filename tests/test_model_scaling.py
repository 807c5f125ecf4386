"""Scaling-law fit and a miniature end-to-end `scaling` run."""
import json

import numpy as np
import pytest
import torch

from model.scaling import ScalingConfig, fit_power_law, power_law, predict, run_scaling
from pipeline.indexed_dataset import IndexedDatasetWriter

torch.set_num_threads(1)  # tiny shapes: one thread is as fast, and robust on a busy machine


def test_fit_recovers_known_constants():
    a, b, l_inf = 2.0e3, -0.25, 1.7
    C = np.geomspace(1e12, 1e15, 6)
    L = a * C ** b + l_inf
    fit = fit_power_law(C, L)
    assert fit["b"] == pytest.approx(b, rel=1e-3)
    assert fit["L_inf"] == pytest.approx(l_inf, rel=1e-3)
    assert fit["a"] == pytest.approx(a, rel=1e-2)
    assert predict(fit, 1e16) == pytest.approx(power_law(1e16, a, b, l_inf), rel=1e-4)


def test_scaling_run_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "shards"
    d.mkdir()
    with IndexedDatasetWriter(d / "shard-00000", dtype=np.int32) as w:
        for _ in range(50):
            w.add_document(np.append(rng.integers(3, 256, rng.integers(20, 120)), 2))
    (d / "_manifest.json").write_text(json.dumps({"vocab_size": 256}))
    res = run_scaling(ScalingConfig(data=str(d), out=str(tmp_path / "out"), shapes="cpu-s1,cpu-s2,cpu-s3,cpu-s4",
                                    holdout="cpu-s5", token_budget=3 * 4 * 32, seq_len=32, micro_batch=4,
                                    warmup_steps=1, threads=1))
    assert [p["shape"] for p in res["points"]] == ["cpu-s1", "cpu-s2", "cpu-s3", "cpu-s4"]
    assert all(p["steps"] == 3 and p["tokens"] == 384 for p in res["points"])
    flops = [p["flops"] for p in res["points"]]
    assert flops == sorted(flops) and res["holdout"]["flops"] > flops[-1]
    assert {"a", "b", "L_inf"} <= set(res["fit"]) and res["fit"]["b"] <= 0
    assert np.isfinite(res["prediction_error_pct"])
    assert res["holdout"]["relative_error"] == pytest.approx(
        (res["holdout"]["predicted_loss"] - res["holdout"]["loss"]) / res["holdout"]["loss"])
    saved = json.loads((tmp_path / "out" / "scaling.json").read_text())
    assert saved["prediction_error_pct"] == pytest.approx(res["prediction_error_pct"])
    assert (tmp_path / "out" / "scaling.png").stat().st_size > 1000
