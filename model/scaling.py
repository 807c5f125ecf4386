"""Scaling-law run (the paper's section 3.4, scaled down to what a CPU can do).

Splits the shards' documents once into a training set and a held-out evaluation slice (seeded,
~`eval_tokens` tokens; written under <out>/data/), trains each shape of a sweep for the same token
budget on the training set, takes its final loss as the mean CE on the held-out slice (never seen in
training, so repeated epochs cannot bias it), fits L(C) = a * C^b + L_inf with C = training FLOPs
actually spent (ModelConfig.flops_per_token x tokens trained), predicts the loss of a larger
held-out shape from the fit *before* training it, then trains it the same way and reports the
prediction error.

Hyper-parameters follow one rule fixed up front (not tuned to the held-out shape): peak LR scales as
1/width, lr(h) = lr * lr_ref_hidden / h (muP-style: wider shapes need smaller Adam steps), warmup is
a fixed fraction of the steps, everything else is TrainConfig's default for every shape.

Writes <out>/scaling.json (points, fit, prediction, error), <out>/scaling.png (log-log) and one
training directory per shape under <out>/runs/.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.indexed_dataset import IndexedDatasetWriter

from .checkpoint import load_trainer_model
from .configs import get_config
from .data import DataError, PackedSamples, TokenShards, find_shards, manifest_vocab_size
from .train import TrainConfig, train

DEFAULT_SHAPES = "cpu-xs1,cpu-xs2,cpu-xs3,cpu-xs4,cpu-xs5"


@dataclass
class ScalingConfig:
    data: str
    out: str = "out/scaling"
    vocab_size: int | None = None
    shapes: str = DEFAULT_SHAPES
    holdout: str = "cpu-xs6"
    token_budget: int = 1_000_000      # training tokens per shape (the same for every shape)
    seq_len: int = 64
    micro_batch: int = 8
    lr: float = 8e-3                   # peak LR at hidden = lr_ref_hidden; lr(h) = lr * lr_ref_hidden / h
    lr_ref_hidden: int = 64
    warmup_frac: float = 0.05          # warmup = this fraction of each run's steps
    warmup_steps: int | None = None    # fixed warmup instead of warmup_frac
    eval_tokens: int = 65_536          # size of the held-out evaluation slice
    seed: int = 0
    threads: int | None = None


def power_law(c, a, b, l_inf):
    return a * np.power(c, b) + l_inf


def fit_power_law(C: np.ndarray, L: np.ndarray) -> dict:
    """Least-squares fit of L = a * C^b + L_inf. C is rescaled by its smallest value so the
    optimiser sees O(1) numbers; a is converted back to the unscaled C at the end. Several starting
    exponents are tried (the problem is not convex) and the best residual kept."""
    from scipy.optimize import curve_fit
    C, L = np.asarray(C, float), np.asarray(L, float)
    c0 = C.min()
    x = C / c0
    bounds = ([0.0, -3.0, 0.0], [np.inf, 0.0, L.min()])
    best = None
    for b0 in (-0.05, -0.1, -0.3, -0.6, -1.0):
        for f in (0.5, 0.8, 0.95):
            p0 = (max(L.max() - f * L.min(), 1e-3), b0, f * L.min())
            try:
                popt, _ = curve_fit(power_law, x, L, p0=p0, bounds=bounds, maxfev=20000)
            except (RuntimeError, ValueError):
                continue
            sse = float(np.sum((power_law(x, *popt) - L) ** 2))
            if best is None or sse < best[0]:
                best = (sse, popt)
    if best is None:
        raise RuntimeError("power-law fit did not converge")
    a_s, b, l_inf = best[1]
    pred = power_law(x, a_s, b, l_inf)
    return {"a": float(a_s * c0 ** (-b)), "b": float(b), "L_inf": float(l_inf),
            "a_scaled": float(a_s), "C_scale": float(c0),
            "rmse": float(np.sqrt(np.mean((pred - L) ** 2))),
            "formula": "L(C) = a * C^b + L_inf, C = training FLOPs"}


def predict(fit: dict, C: float) -> float:
    return float(power_law(C / fit["C_scale"], fit["a_scaled"], fit["b"], fit["L_inf"]))


def split_heldout(data: str, out: Path, eval_tokens: int, seed: int, vocab: int) -> tuple[str, str, dict]:
    """Write <out>/train/ and <out>/eval/ shards: a seeded random set of whole documents holding
    ~eval_tokens tokens goes to eval, every other document to train. Returns (train_dir, eval_dir,
    info)."""
    shards = TokenShards(find_shards(data))
    if eval_tokens >= shards.num_tokens // 2:
        raise DataError(f"eval_tokens {eval_tokens} is too large for {shards.num_tokens} data tokens")
    order = np.random.default_rng([seed, 7919]).permutation(shards.num_docs)
    n_eval = int(np.searchsorted(np.cumsum(shards.doc_len[order]), eval_tokens)) + 1
    is_eval = np.zeros(shards.num_docs, bool)
    is_eval[order[:n_eval]] = True
    dtype = shards.datasets[0].dtype
    info = {"source": str(data), "source_tokens": shards.num_tokens, "eval_docs": int(is_eval.sum()),
            "eval_tokens": int(shards.doc_len[is_eval].sum()), "train_docs": int((~is_eval).sum()),
            "train_tokens": int(shards.doc_len[~is_eval].sum()), "seed": seed}
    dirs = {}
    for part, mask in (("train", ~is_eval), ("eval", is_eval)):
        d = out / part
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        with IndexedDatasetWriter(d / "shard-00000", dtype=dtype) as w:
            for i in np.flatnonzero(mask):
                w.add_document(shards.doc(int(i)))
        (d / "_manifest.json").write_text(json.dumps({"vocab_size": vocab, "split": part, **info}) + "\n")
        dirs[part] = str(d)
    return dirs["train"], dirs["eval"], info


@torch.no_grad()
def heldout_loss(ckpt_path: str, eval_dir: str, seq_len: int, batch_size: int = 32) -> dict:
    """Mean CE over every packed sample of the held-out slice (file order, no shuffle)."""
    model = load_trainer_model(ckpt_path, attention="auto")  # a run of this sweep
    model.eval()
    samples = PackedSamples(TokenShards(find_shards(eval_dir)), seq_len, shuffle=False)
    n = len(samples)
    ce_sum = 0.0
    for s in range(0, n, batch_size):
        b = torch.from_numpy(samples.batch(s, min(batch_size, n - s)))
        _, _, ce, _ = model(b[:, :-1], b[:, 1:])
        ce_sum += ce.item() * len(b)
    return {"loss": ce_sum / n, "eval_samples": n, "eval_tokens": n * seq_len}


def shape_lr(sc: ScalingConfig, hidden: int) -> float:
    return sc.lr * sc.lr_ref_hidden / hidden


def _train_shape(sc: ScalingConfig, name: str, vocab: int, train_dir: str, eval_dir: str) -> dict:
    steps = max(1, sc.token_budget // (sc.micro_batch * sc.seq_len))
    cfg = get_config(name, vocab_size=vocab)
    lr = shape_lr(sc, cfg.hidden_size)
    warmup = sc.warmup_steps if sc.warmup_steps is not None else max(1, round(sc.warmup_frac * steps))
    tc = TrainConfig(data=train_dir, out=str(Path(sc.out) / "runs" / name), model=name, vocab_size=vocab,
                     seq_len=sc.seq_len, micro_batch=sc.micro_batch, max_steps=steps, lr=lr,
                     warmup_steps=min(warmup, max(1, steps // 4)), ckpt_interval=steps,
                     keep_checkpoints=1, seed=sc.seed, threads=sc.threads, progress=True, resume=False)
    t0 = time.time()
    summary = train(tc)
    rows = [json.loads(x) for x in Path(summary["log"]).read_text().splitlines() if x.strip()]
    tail = rows[-max(1, len(rows) // 10):]
    ev = heldout_loss(summary["checkpoint"], eval_dir, sc.seq_len)
    tokens = summary["tokens"]
    point = {"shape": name, "hidden": cfg.hidden_size, "ffn": cfg.intermediate_size,
             "layers": cfg.num_layers, "heads": cfg.num_heads, "params": cfg.num_params(),
             "non_embedding_params": cfg.non_embedding_params(), "tokens": tokens, "steps": steps,
             "lr": lr, "warmup_steps": tc.warmup_steps,
             "flops": float(cfg.flops_per_token(sc.seq_len) * tokens),
             "loss": float(ev["loss"]), "loss_source": "held-out slice CE",
             "train_ce_last10pct": float(np.mean([r["ce"] for r in tail])),
             "eval_tokens": ev["eval_tokens"],
             "tokens_per_s": summary["tokens_per_s"], "wall_s": time.time() - t0}
    print(f"[scaling] {name}: params {point['params']:,} flops {point['flops']:.3e} held-out loss "
          f"{point['loss']:.4f} (train {point['train_ce_last10pct']:.4f}) {point['wall_s']:.0f}s",
          file=sys.stderr)
    return point


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
    t_start = time.time()
    shapes = [s.strip() for s in sc.shapes.split(",") if s.strip()]
    if len(shapes) < 4:
        raise DataError("the fit has 3 constants: give at least 4 sweep shapes")
    for s in shapes + [sc.holdout]:
        get_config(s)  # fail early on a typo
    vocab = sc.vocab_size or manifest_vocab_size(sc.data)
    if vocab is None:
        raise DataError(f"no vocab size: {sc.data} has no _manifest.json with vocab_size; pass --vocab-size")
    out = Path(sc.out)
    out.mkdir(parents=True, exist_ok=True)
    train_dir, eval_dir, split = split_heldout(sc.data, out / "data", sc.eval_tokens, sc.seed, vocab)
    epochs = sc.token_budget / split["train_tokens"]
    if epochs > 1:
        print(f"warning: the token budget is {epochs:.1f} epochs of the training data: later steps see "
              "repeated tokens (the held-out loss stays unbiased, but the fit describes a data-limited "
              "regime; use more data, see `make scaling`)", file=sys.stderr)
    points = []
    for name in shapes:
        print(f"[scaling] training {name} for {sc.token_budget} tokens", file=sys.stderr)
        points.append(_train_shape(sc, name, vocab, train_dir, eval_dir))
    fit = fit_power_law(np.array([p["flops"] for p in points]), np.array([p["loss"] for p in points]))
    losses = [p["loss"] for p in sorted(points, key=lambda p: p["flops"])]
    fit["monotonic"] = bool(all(b < a for a, b in zip(losses, losses[1:])))
    # A power law needs loss to fall with compute; at a too-small token budget bigger shapes are
    # still behind the small ones, the fit pins b at 0 and its "prediction" is just a mean.
    fit["degenerate"] = bool(fit["b"] > -1e-2 or not fit["monotonic"])
    if fit["degenerate"]:
        print("warning: loss does not fall monotonically with compute at this token budget; the fit is "
              "degenerate and the prediction error says little (raise --tokens / use more data)",
              file=sys.stderr)
    hcfg = get_config(sc.holdout, vocab_size=vocab)
    steps = max(1, sc.token_budget // (sc.micro_batch * sc.seq_len))
    h_flops = float(hcfg.flops_per_token(sc.seq_len) * steps * sc.micro_batch * sc.seq_len)
    hold = {"shape": sc.holdout, "flops": h_flops, "predicted_loss": predict(fit, h_flops)}
    print(f"[scaling] fit a={fit['a']:.4g} b={fit['b']:.4f} L_inf={fit['L_inf']:.4f} rmse={fit['rmse']:.4f}; "
          f"predicted loss of {sc.holdout}: {hold['predicted_loss']:.4f}; training it to compare",
          file=sys.stderr)
    # The prediction is fixed (and written) before the held-out shape is trained.
    (out / "prediction.json").write_text(json.dumps({"fit": fit, "holdout": hold}, indent=2) + "\n")
    actual = _train_shape(sc, sc.holdout, vocab, train_dir, eval_dir)
    hold.update(actual)
    hold["flops"] = actual["flops"]
    hold["relative_error"] = (hold["predicted_loss"] - actual["loss"]) / actual["loss"]
    hold["abs_error"] = hold["predicted_loss"] - actual["loss"]
    result = {"config": asdict(sc), "data_tokens": split["source_tokens"], "split": split,
              "epochs_per_run": epochs, "lr_rule": f"lr(h) = {sc.lr:g} * {sc.lr_ref_hidden} / h",
              "points": points, "fit": fit, "holdout": hold,
              "prediction_error_pct": 100 * hold["relative_error"],
              "train_wall_s": sum(p["wall_s"] for p in points) + actual["wall_s"],
              "wall_s": time.time() - t_start}
    (out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(points, hold, fit, out / "scaling.png")
    print(f"[scaling] {sc.holdout}: predicted {hold['predicted_loss']:.4f}, actual {actual['loss']:.4f}, "
          f"error {result['prediction_error_pct']:+.2f}%; wrote {out / 'scaling.json'} and "
          f"{out / 'scaling.png'}", file=sys.stderr)
    return result
