"""Scaling-law run (the paper's section 3.4, scaled down to what a CPU can do).

Trains each shape of a sweep for the same token budget on the shards, takes its final loss (mean
training CE over the last 10% of steps: with less than one epoch every batch is unseen data, so this
is a held-out estimate), fits L(C) = a * C^b + L_inf with C = training FLOPs (the FLOP formula of
ModelConfig.flops_per_token x tokens), predicts the loss of a larger held-out shape from the fit,
then trains that shape the same way and reports the prediction error.

Writes <out>/scaling.json (points, fit, prediction, error), <out>/scaling.png (log-log) and one
training directory per shape under <out>/runs/.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .configs import get_config
from .data import DataError, TokenShards, find_shards, manifest_vocab_size
from .train import TrainConfig, train

DEFAULT_SHAPES = "cpu-s1,cpu-s2,cpu-s3,cpu-s4,cpu-s5"


@dataclass
class ScalingConfig:
    data: str
    out: str = "out/scaling"
    vocab_size: int | None = None
    shapes: str = DEFAULT_SHAPES
    holdout: str = "cpu-s6"
    token_budget: int = 300_000
    seq_len: int = 64
    micro_batch: int = 8
    lr: float = 2e-3                   # one peak LR for every shape, as the paper uses the same
    warmup_steps: int = 40             # hyper-parameters across the ladder
    seed: int = 0
    threads: int | None = None


def power_law(c, a, b, l_inf):
    return a * np.power(c, b) + l_inf


def fit_power_law(C: np.ndarray, L: np.ndarray) -> dict:
    """Least-squares fit of L = a * C^b + L_inf. C is rescaled by its smallest value so the
    optimiser sees O(1) numbers; a is converted back to the unscaled C at the end."""
    from scipy.optimize import curve_fit
    C, L = np.asarray(C, float), np.asarray(L, float)
    c0 = C.min()
    x = C / c0
    p0 = (max(L.max() - 0.8 * L.min(), 1e-3), -0.3, 0.8 * L.min())
    bounds = ([0.0, -3.0, 0.0], [np.inf, 0.0, L.min()])
    (a_s, b, l_inf), cov = curve_fit(power_law, x, L, p0=p0, bounds=bounds, maxfev=20000)
    pred = power_law(x, a_s, b, l_inf)
    return {"a": float(a_s * c0 ** (-b)), "b": float(b), "L_inf": float(l_inf),
            "a_scaled": float(a_s), "C_scale": float(c0),
            "rmse": float(np.sqrt(np.mean((pred - L) ** 2))),
            "formula": "L(C) = a * C^b + L_inf, C = training FLOPs"}


def predict(fit: dict, C: float) -> float:
    return float(power_law(C / fit["C_scale"], fit["a_scaled"], fit["b"], fit["L_inf"]))


def _train_shape(sc: ScalingConfig, name: str, vocab: int) -> dict:
    steps = max(1, sc.token_budget // (sc.micro_batch * sc.seq_len))
    tc = TrainConfig(data=sc.data, out=str(Path(sc.out) / "runs" / name), model=name, vocab_size=vocab,
                     seq_len=sc.seq_len, micro_batch=sc.micro_batch, max_steps=steps, lr=sc.lr,
                     warmup_steps=min(sc.warmup_steps, steps // 4), ckpt_interval=steps,
                     keep_checkpoints=1, seed=sc.seed, threads=sc.threads, progress=True)
    t0 = time.time()
    summary = train(tc)
    rows = [json.loads(x) for x in Path(summary["log"]).read_text().splitlines() if x.strip()]
    tail = rows[-max(1, len(rows) // 10):]
    cfg = get_config(name, vocab_size=vocab)
    tokens = summary["tokens"]
    return {"shape": name, "hidden": cfg.hidden_size, "ffn": cfg.intermediate_size,
            "layers": cfg.num_layers, "heads": cfg.num_heads, "params": cfg.num_params(),
            "non_embedding_params": cfg.non_embedding_params(), "tokens": tokens, "steps": steps,
            "flops": float(cfg.flops_per_token(sc.seq_len) * tokens),
            "loss": float(np.mean([r["ce"] for r in tail])),
            "tokens_per_s": summary["tokens_per_s"], "wall_s": time.time() - t0}


def plot(points, hold, fit, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    C = np.array([p["flops"] for p in points])
    L = np.array([p["loss"] for p in points])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.loglog(C, L, "o", label="sweep (fitted)")
    grid = np.geomspace(C.min() / 1.5, max(C.max(), hold["flops"]) * 1.5, 200)
    ax.loglog(grid, [predict(fit, c) for c in grid], "-",
              label=f"fit: {fit['a']:.3g}·C^{fit['b']:.3f} + {fit['L_inf']:.3f}")
    ax.loglog([hold["flops"]], [hold["predicted_loss"]], "x", ms=10, mew=2, label="held-out: predicted")
    if hold.get("loss") is not None:
        ax.loglog([hold["flops"]], [hold["loss"]], "s", mfc="none", ms=9,
                  label=f"held-out: actual (err {100 * hold['relative_error']:+.1f}%)")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("final loss (nats/token)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def run_scaling(sc: ScalingConfig) -> dict:
    shapes = [s.strip() for s in sc.shapes.split(",") if s.strip()]
    if len(shapes) < 4:
        raise DataError("the fit has 3 constants: give at least 4 sweep shapes")
    for s in shapes + [sc.holdout]:
        get_config(s)  # fail early on a typo
    shards = TokenShards(find_shards(sc.data))
    vocab = sc.vocab_size or manifest_vocab_size(sc.data)
    if vocab is None:
        raise DataError(f"no vocab size: {sc.data} has no _manifest.json with vocab_size; pass --vocab-size")
    out = Path(sc.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = sc.token_budget / shards.num_tokens
    if epochs > 1:
        print(f"warning: the token budget is {epochs:.1f} epochs of the data: later points see repeated "
              "tokens", file=sys.stderr)
    points = []
    for name in shapes:
        print(f"[scaling] training {name} for {sc.token_budget} tokens", file=sys.stderr)
        points.append(_train_shape(sc, name, vocab))
    fit = fit_power_law(np.array([p["flops"] for p in points]), np.array([p["loss"] for p in points]))
    losses = [p["loss"] for p in sorted(points, key=lambda p: p["flops"])]
    # A power law needs loss to fall with compute; at a too-small token budget bigger (deeper) shapes
    # are still behind the small ones, the fit pins b at 0 and its "prediction" is just a mean.
    fit["degenerate"] = bool(fit["b"] > -1e-3 or any(b >= a for a, b in zip(losses, losses[1:])))
    if fit["degenerate"]:
        print("warning: loss does not fall monotonically with compute at this token budget; the fit is "
              "degenerate and the prediction error says little (raise --tokens)", file=sys.stderr)
    hcfg = get_config(sc.holdout, vocab_size=vocab)
    steps = max(1, sc.token_budget // (sc.micro_batch * sc.seq_len))
    h_flops = float(hcfg.flops_per_token(sc.seq_len) * steps * sc.micro_batch * sc.seq_len)
    hold = {"shape": sc.holdout, "flops": h_flops, "predicted_loss": predict(fit, h_flops)}
    print(f"[scaling] fit {fit}; predicted loss of {sc.holdout}: {hold['predicted_loss']:.4f}; "
          "training it to compare", file=sys.stderr)
    actual = _train_shape(sc, sc.holdout, vocab)
    hold.update(actual)
    hold["relative_error"] = (hold["predicted_loss"] - actual["loss"]) / actual["loss"]
    hold["abs_error"] = hold["predicted_loss"] - actual["loss"]
    result = {"config": asdict(sc), "data_tokens": shards.num_tokens, "epochs_per_run": epochs,
              "points": points, "fit": fit, "holdout": hold,
              "prediction_error_pct": 100 * hold["relative_error"],
              "wall_s": sum(p["wall_s"] for p in points) + actual["wall_s"]}
    (out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(points, hold, fit, out / "scaling.png")
    return result
