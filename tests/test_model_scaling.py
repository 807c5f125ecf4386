"""Scaling-law fit, held-out split, LR rule and a miniature end-to-end `scaling` run."""
import json

import numpy as np
import pytest
import torch

from model.configs import CPU_XS_SCALING_SHAPES, get_config
from model.data import TokenShards, find_shards
from model.scaling import (ScalingConfig, fit_power_law, power_law, predict, run_scaling, shape_lr,
                           split_heldout)
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


@pytest.mark.parametrize("a,b,l_inf", [(40.0, -0.12, 3.0), (9.0, -0.5, 4.2), (300.0, -0.08, 1.0)])
def test_fit_recovers_constants_in_the_cpu_regime(a, b, l_inf):
    # 5 points over ~1 decade of compute around the CPU sweep's FLOPs, with 0.2% multiplicative noise:
    # the exponent must come out clearly negative and the extrapolation one step up must be close.
    rng = np.random.default_rng(1)
    C = np.geomspace(1.6e12, 1.0e13, 5)
    L = (a * C ** b + l_inf) * (1 + 0.002 * rng.standard_normal(5))
    fit = fit_power_law(C, L)
    assert fit["b"] < -0.02
    assert fit["rmse"] < 0.05
    assert predict(fit, 1.4e13) == pytest.approx(power_law(1.4e13, a, b, l_inf), rel=0.01)


def test_lr_rule_scales_inversely_with_width():
    sc = ScalingConfig(data="x", lr=8e-3, lr_ref_hidden=64)
    assert shape_lr(sc, 64) == pytest.approx(8e-3)
    assert shape_lr(sc, 32) == pytest.approx(1.6e-2)
    assert shape_lr(sc, 128) == pytest.approx(4e-3)


def test_cpu_xs_ladder_grows_and_holdout_is_above_it():
    cfgs = [get_config(n, vocab_size=8000) for n, *_ in CPU_XS_SCALING_SHAPES]
    flops = [c.flops_per_token(64) for c in cfgs]
    params = [c.num_params() for c in cfgs]
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    assert params == sorted(params)
    # the paper's shapes and the older CPU ladder are untouched
    assert get_config("cpu-s6").hidden_size == 256 and get_config("scaling-11m").num_layers == 6


def _write_shards(d, docs=80, vocab=256, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    with IndexedDatasetWriter(d / "shard-00000", dtype=np.int32) as w:
        for _ in range(docs):
            # a learnable stream: mostly "next id = previous + 1", with some noise
            n = int(rng.integers(20, 120))
            x = (int(rng.integers(3, vocab)) + np.arange(n)) % (vocab - 3) + 3
            noise = rng.random(n) < 0.2
            x[noise] = rng.integers(3, vocab, noise.sum())
            w.add_document(np.append(x, 2))
    (d / "_manifest.json").write_text(json.dumps({"vocab_size": vocab}))


def test_split_heldout_is_a_disjoint_partition(tmp_path):
    _write_shards(tmp_path / "shards")
    src = TokenShards(find_shards(tmp_path / "shards"))
    tr, ev, info = split_heldout(str(tmp_path / "shards"), tmp_path / "split", 800, seed=0, vocab=256)
    a, b = TokenShards(find_shards(tr)), TokenShards(find_shards(ev))
    assert a.num_docs + b.num_docs == src.num_docs
    assert a.num_tokens + b.num_tokens == src.num_tokens
    assert 800 <= b.num_tokens < 800 + 121 and info["eval_tokens"] == b.num_tokens
    key = lambda t: tuple(np.asarray(t).tolist())  # noqa: E731
    docs_a = {key(a.doc(i)) for i in range(a.num_docs)}
    docs_b = {key(b.doc(i)) for i in range(b.num_docs)}
    assert not docs_a & docs_b
    assert docs_a | docs_b == {key(src.doc(i)) for i in range(src.num_docs)}
    # same seed -> same split
    _, ev2, _ = split_heldout(str(tmp_path / "shards"), tmp_path / "split2", 800, seed=0, vocab=256)
    assert TokenShards(find_shards(ev2)).num_tokens == b.num_tokens


def test_scaling_run_end_to_end(tmp_path):
    d = tmp_path / "shards"
    _write_shards(d)
    res = run_scaling(ScalingConfig(data=str(d), out=str(tmp_path / "out"),
                                    shapes="cpu-xs1,cpu-xs2,cpu-xs3,cpu-xs4", holdout="cpu-xs5",
                                    token_budget=3 * 4 * 32, seq_len=32, micro_batch=4, eval_tokens=600,
                                    threads=1))
    assert [p["shape"] for p in res["points"]] == ["cpu-xs1", "cpu-xs2", "cpu-xs3", "cpu-xs4"]
    assert all(p["steps"] == 3 and p["tokens"] == 384 for p in res["points"])
    assert all(p["loss_source"] == "held-out slice CE" and p["eval_tokens"] > 0 for p in res["points"])
    assert [p["lr"] for p in res["points"]] == pytest.approx([8e-3 * 64 / h for h in (32, 48, 64, 96)])
    flops = [p["flops"] for p in res["points"]]
    assert flops == sorted(flops) and res["holdout"]["flops"] > flops[-1]
    assert {"a", "b", "L_inf", "degenerate", "monotonic"} <= set(res["fit"]) and res["fit"]["b"] <= 0
    assert np.isfinite(res["prediction_error_pct"])
    assert res["holdout"]["relative_error"] == pytest.approx(
        (res["holdout"]["predicted_loss"] - res["holdout"]["loss"]) / res["holdout"]["loss"])
    # the prediction was written before the held-out shape was trained, and it is the one reported
    pre = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert pre["holdout"]["predicted_loss"] == pytest.approx(res["holdout"]["predicted_loss"])
    saved = json.loads((tmp_path / "out" / "scaling.json").read_text())
    assert saved["prediction_error_pct"] == pytest.approx(res["prediction_error_pct"])
    assert saved["split"]["eval_tokens"] + saved["split"]["train_tokens"] == saved["data_tokens"]
    assert (tmp_path / "out" / "scaling.png").stat().st_size > 1000
