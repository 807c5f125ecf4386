"""Training loop: single process on CPU/GPU, or `torchrun` with DDP (or FSDP for big models).

AdamW (0.9, 0.95, eps 1e-8, weight decay 0.1 on matrices only), gradient-norm clip 0.5, linear warmup
then cosine decay to a floor, bf16 autocast where supported (weights and optimizer state stay fp32),
gradient accumulation, optional activation checkpointing. Checkpoints at intervals and at the end;
a run restarted in the same output directory resumes from the newest checkpoint and, on CPU, repeats
the uninterrupted run's losses bit for bit (same seed -> same data order; weights, AdamW state and
data position restored exactly).

Writes <out>/train_log.jsonl (one line per step), <out>/summary.json and <out>/loss_curve.png.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from .configs import get_config
from .data import DataError, PackedSamples, TokenShards, find_shards, manifest_vocab_size, unigram_entropy
from .loading import load_checkpoint_or_hf
from .model import Baichuan, param_groups


@dataclass
class TrainConfig:
    data: str                           # shard directory or prefix
    out: str = "out/train"
    model: str = "tiny"
    vocab_size: int | None = None       # default: _manifest.json's vocab_size
    seq_len: int = 256
    micro_batch: int = 8                # per process
    grad_accum: int = 1
    max_steps: int = 300
    lr: float = 2e-4                    # peak (7B: 2e-4, 13B: 1.5e-4)
    min_lr_ratio: float = 0.1           # cosine floor = lr * min_lr_ratio (the paper does not say)
    warmup_steps: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 0.5
    z_loss_weight: float | None = None  # default: the model config's 2e-4
    dtype: str = "auto"                 # auto (bf16 on a bf16-capable GPU, else fp32) | bf16 | fp32
    attention: str = "auto"
    activation_checkpointing: bool = False
    parallel: str = "ddp"               # with torchrun: ddp | fsdp
    seed: int = 0
    init_from: str | None = None        # start from these weights (e.g. `python -m model init`)
    ckpt_interval: int = 100
    keep_checkpoints: int = 2
    resume: bool = True                 # resume from <out>/checkpoints/latest when present
    crash_after_step: int | None = None # testing: SIGKILL ourselves right after this step
    threads: int | None = None
    peak_tflops: float | None = None    # hardware peak for MFU; default: GPU table / measured CPU GEMM
    progress: bool = True


# ---------------------------------------------------------------------------------------------
def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warmup over warmup_steps to lr, then cosine to lr*min_lr_ratio at max_steps.
    `step` is 0-based: the first update uses lr/warmup."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    floor = tc.lr * tc.min_lr_ratio
    span = max(1, tc.max_steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / span)
    return floor + 0.5 * (tc.lr - floor) * (1.0 + math.cos(math.pi * progress))


GPU_PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
                        "A10": 125.0, "L4": 121.0, "4090": 165.0, "V100": 125.0}


def measure_cpu_peak_flops(n: int = 1024, reps: int = 4) -> float:
    """CPU has no datasheet number we can trust here: take the best fp32 GEMM rate we measure."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
    return best


def peak_flops(device: torch.device, dtype: torch.dtype, override_tflops: float | None):
    if override_tflops:
        return override_tflops * 1e12, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for k, v in GPU_PEAK_BF16_TFLOPS.items():
            if k in name:
                scale = 1.0 if dtype == torch.bfloat16 else 0.5  # tf32 dense ~ half of bf16
                return v * 1e12 * scale, f"{name} datasheet dense {'bf16' if scale == 1 else 'tf32'}"
        return float("nan"), f"{name} (unknown peak)"
    return measure_cpu_peak_flops(), "measured CPU fp32 GEMM"


# ---------------------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def wrap_model(model: Baichuan, tc: TrainConfig, d: Dist, device, amp_dtype):
    if d.world == 1:
        return model
    if tc.parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP
        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.parallel == "fsdp":
        # FSDP2: shard every decoder layer and then the root; params stay fp32 (master weights),
        # compute in bf16 when autocast would have been used.
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mp = MixedPrecisionPolicy(param_dtype=amp_dtype, reduce_dtype=torch.float32) if amp_dtype else None
        kw = {"mp_policy": mp} if mp else {}
        for layer in model.model.layers:
            fully_shard(layer, **kw)
        fully_shard(model, **kw)
        return model
    raise ValueError(f"unknown parallel mode {tc.parallel!r}")


def full_state(model, optimizer):
    """Full (unsharded) model and optimizer state dicts keyed by parameter name, on CPU; works the
    same for a plain module, DDP and FSDP (collective: every rank must call it)."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, optimizer, options=opts)


def load_full_state(model, optimizer, model_sd, optim_sd):
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)
    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_sd, options=opts)
    set_optimizer_state_dict(model, optimizer, optim_sd, options=opts)


# ---------------------------------------------------------------------------------------------
def plot_loss_curve(log_path: Path, png: Path, entropy: float | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    steps = [r["step"] for r in rows]
    loss = np.array([r["loss"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="loss (CE + z-loss)")
    if len(loss) > 10:
        k = max(5, len(loss) // 30)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"{k}-step mean")
    if entropy is not None:
        ax.axhline(entropy, color="gray", ls="--", label=f"unigram entropy {entropy:.2f} nats")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


RESUME_KEYS = ("model", "seq_len", "micro_batch", "grad_accum", "seed", "z_loss_weight")


def _check_resumable(saved: dict, tc, data_tokens: int, vocab: int, where) -> None:
    """Refuse to resume a checkpoint made from other data or another run shape: its data position
    and optimizer state would silently mean something else."""
    before = saved.get("train", {})
    diffs = [f"{k}: {before.get(k)!r} -> {getattr(tc, k)!r}" for k in RESUME_KEYS
             if k in before and before.get(k) != getattr(tc, k)]
    for key, now in (("data_tokens", data_tokens), ("vocab_size", vocab)):
        if key in saved and saved[key] != now:
            diffs.append(f"{key}: {saved[key]!r} -> {now!r}")
    if diffs:
        raise DataError(f"{where} was made by another run ({'; '.join(diffs)}); "
                        "pass --no-resume to start over, or choose another --out")


def _truncate_log(log_path: Path, upto_step: int) -> None:
    """On resume, drop log lines for steps the crashed run did after its last checkpoint."""
    if not log_path.exists():
        return
    keep = [line for line in log_path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= upto_step]
    log_path.write_text("".join(line + "\n" for line in keep))


def train(tc: TrainConfig) -> dict:
    d = setup_distributed()
    torch.set_num_threads(tc.threads or min(2, os.cpu_count() or 1))
    torch.set_flush_denormal(True)
    device = torch.device(f"cuda:{d.local_rank}" if torch.cuda.is_available() else "cpu")
    if tc.dtype == "auto":
        amp_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    elif tc.dtype == "bf16":
        amp_dtype = torch.bfloat16
    elif tc.dtype == "fp32":
        amp_dtype = None
    else:
        raise ValueError(f"dtype must be auto, bf16 or fp32, not {tc.dtype!r}")
    out = Path(tc.out)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)

    # ---- data
    shards = TokenShards(find_shards(tc.data))
    vocab = tc.vocab_size or manifest_vocab_size(tc.data)
    if vocab is None:
        raise DataError(f"no vocab size: {tc.data} has no _manifest.json with vocab_size; pass --vocab-size")
    counts = shards.check_vocab(vocab)
    entropy = unigram_entropy(counts)
    samples = PackedSamples(shards, tc.seq_len, seed=tc.seed)

    # ---- model
    torch.manual_seed(tc.seed)
    cfg = get_config(tc.model, vocab_size=vocab, z_loss_weight=tc.z_loss_weight)
    if tc.seq_len > cfg.max_position:
        cfg = cfg.replace(max_position=tc.seq_len)
    model = Baichuan(cfg, attention=tc.attention, activation_checkpointing=tc.activation_checkpointing)
    if tc.init_from:
        src = load_checkpoint_or_hf(tc.init_from, attention="reference")
        if src.cfg.vocab_size != vocab or src.cfg.hidden_size != cfg.hidden_size:
            raise ckpt.CheckpointError(f"--init-from {tc.init_from} has a different shape than {tc.model} "
                                       f"with vocab {vocab}")
        cfg = src.cfg
        model = Baichuan(cfg, attention=tc.attention, activation_checkpointing=tc.activation_checkpointing)
        model.load_state_dict(src.state_dict())
        del src
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    flops_tok = cfg.flops_per_token(tc.seq_len)
    wrapped = wrap_model(model, tc, d, device, amp_dtype)
    fused_ok = device.type == "cuda" and tc.parallel != "fsdp"
    optimizer = torch.optim.AdamW(param_groups(wrapped, tc.weight_decay), lr=tc.lr,
                                  betas=(tc.beta1, tc.beta2), eps=tc.adam_eps,
                                  **({"fused": True} if fused_ok else {}))

    # ---- resume
    ckpt_root = out / "checkpoints"
    log_path = out / "train_log.jsonl"
    state = {"step": 0, "position": 0, "tokens": 0}
    latest = ckpt.latest_checkpoint(ckpt_root) if tc.resume else None
    if latest is not None:
        loaded = ckpt.load_training_checkpoint(latest)
        _check_resumable(loaded["state"], tc, shards.num_tokens, vocab, latest)
        load_full_state(wrapped, optimizer, loaded["model"], loaded["optimizer"])
        state = {k: loaded["state"][k] for k in ("step", "position", "tokens")}
        ckpt.set_rng_state(loaded["rng"])
        if d.main:
            _truncate_log(log_path, state["step"])
            print(f"resuming from {latest} (step {state['step']})", file=sys.stderr)
    elif d.main and log_path.exists():
        log_path.unlink()

    peak, peak_src = peak_flops(device, amp_dtype or torch.float32, tc.peak_tflops)
    meta = {"model": cfg.to_dict(), "train": dataclasses.asdict(tc), "params": n_params,
            "non_embedding_params": cfg.non_embedding_params(), "flops_per_token": flops_tok,
            "flop_formula": "6*N_matmul + 12*L*h*T per token (N_matmul = layer matrices + output head)",
            "peak_flops": peak, "peak_flops_source": peak_src, "world_size": d.world,
            "device": str(device), "amp_dtype": str(amp_dtype) if amp_dtype else "fp32",
            "attention": model.attention, "unigram_entropy_nats": entropy,
            "data_tokens": shards.num_tokens, "samples_per_epoch": len(samples)}
    if d.main:
        (out / "run_meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    def save(step):
        msd, osd = full_state(wrapped, optimizer)
        if d.main:
            ts = dict(state, train=dataclasses.asdict(tc), data_tokens=shards.num_tokens, vocab_size=vocab)
            ckpt.save_training_checkpoint(ckpt_root, step, cfg, msd, osd, ts, keep=tc.keep_checkpoints)
        if d.world > 1:
            dist.barrier()

    # ---- loop
    per_step = tc.micro_batch * tc.grad_accum * d.world
    bar = None
    if d.main and tc.progress:
        from tqdm import tqdm
        bar = tqdm(total=tc.max_steps, initial=state["step"], desc="train", unit="step",
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True, file=sys.stderr)
    logf = open(log_path, "a") if d.main else None
    train_time, train_tokens = 0.0, 0
    wrapped.train()
    while state["step"] < tc.max_steps:
        step = state["step"]
        t0 = time.perf_counter()
        lr = lr_at(step, tc)
        for g in optimizer.param_groups:
            g["lr"] = lr
        sums = torch.zeros(3, dtype=torch.float64)
        for micro in range(tc.grad_accum):
            pos = state["position"] + (micro * d.world + d.rank) * tc.micro_batch
            batch = torch.from_numpy(samples.batch(pos, tc.micro_batch)).to(device, non_blocking=True)
            x, y = batch[:, :-1], batch[:, 1:]
            sync = (micro == tc.grad_accum - 1) or d.world == 1 or tc.parallel != "ddp"
            ctx = contextlib.nullcontext() if sync else wrapped.no_sync()
            amp = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype and tc.parallel != "fsdp"
                   else contextlib.nullcontext())
            with ctx, amp:
                _, loss, ce, zl = wrapped(x, y)
            (loss / tc.grad_accum).backward()
            sums += torch.tensor([loss.item(), ce.item(), zl.item()], dtype=torch.float64)
        grad_norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), tc.grad_clip)
        if hasattr(grad_norm, "full_tensor"):  # FSDP2 returns a DTensor
            grad_norm = grad_norm.full_tensor()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sums /= tc.grad_accum
        if d.world > 1:
            dist.all_reduce(sums)
            sums /= d.world
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tokens = per_step * tc.seq_len
        state["step"] += 1
        state["position"] += per_step
        state["tokens"] += tokens
        train_time += dt
        train_tokens += tokens
        tps = tokens / dt
        rec = {"step": state["step"], "loss": float(sums[0]), "ce": float(sums[1]),
               "z_loss": float(sums[2]), "grad_norm": float(grad_norm), "lr": lr,
               "tokens": state["tokens"], "tokens_per_s": tps,
               "mfu": flops_tok * tps / peak if math.isfinite(peak) else None,
               "step_time_s": dt}
        if logf:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{tps:.0f}", refresh=False)
        if state["step"] % tc.ckpt_interval == 0 or state["step"] == tc.max_steps:
            save(state["step"])
        if tc.crash_after_step is not None and state["step"] == tc.crash_after_step:
            if logf:
                logf.close()
            os.kill(os.getpid(), signal.SIGKILL)  # a real, unclean death (tests resume from here)
    if bar is not None:
        bar.close()
    if logf:
        logf.close()

    summary = {}
    if d.main:
        rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
        tail = rows[-max(1, min(20, len(rows) // 10)):] if rows else []
        summary = {
            "steps": state["step"], "tokens": state["tokens"], "params": n_params,
            "final_loss": rows[-1]["loss"] if rows else None,
            "final_ce_mean_last": float(np.mean([r["ce"] for r in tail])) if tail else None,
            "unigram_entropy_nats": entropy,
            "tokens_per_s": train_tokens / train_time if train_time else None,
            "mfu": (flops_tok * train_tokens / train_time / peak) if train_time and math.isfinite(peak) else None,
            "peak_flops": peak, "peak_flops_source": peak_src,
            "flop_formula": meta["flop_formula"], "log": str(log_path),
            "checkpoint": str(ckpt.latest_checkpoint(ckpt_root)),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_loss_curve(log_path, out / "loss_curve.png", entropy)
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


@torch.no_grad()
def evaluate(model: Baichuan, data: str, seq_len: int = 256, batch_size: int = 8,
             max_samples: int | None = None, threads: int | None = None) -> dict:
    """Mean CE (and z-loss) over the shard's packed samples in file order (no shuffle)."""
    torch.set_num_threads(threads or min(2, os.cpu_count() or 1))
    shards = TokenShards(find_shards(data))
    shards.check_vocab(model.cfg.vocab_size)
    if seq_len > model.cfg.max_position:
        raise DataError(f"--seq-len {seq_len} exceeds the model's max_position {model.cfg.max_position}")
    samples = PackedSamples(shards, seq_len, shuffle=False)
    n = len(samples) if max_samples is None else min(max_samples, len(samples))
    model.eval()
    ce_sum = z_sum = 0.0
    for s in range(0, n, batch_size):
        b = torch.from_numpy(samples.batch(s, min(batch_size, n - s)))
        _, _, ce, zl = model(b[:, :-1], b[:, 1:])
        ce_sum += ce.item() * len(b)
        z_sum += zl.item() * len(b)
    return {"loss": ce_sum / n, "z_loss": z_sum / n, "samples": n, "seq_len": seq_len,
            "tokens": n * seq_len, "data": data}
