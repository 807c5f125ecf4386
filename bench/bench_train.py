"""Training throughput of our Baichuan model against transformers' LlamaForCausalLM of the same shape.

CPU (always): the ~20M-parameter `bench-20m` shape (hidden 256, FFN 768, 8 layers, 4 heads, vocab
25,600), sequence length 512, fp32, AdamW steps on random token ids. Each model runs in its own
subprocess (so its peak RSS is its own), the two alternate for --rounds rounds and the best round of
each counts (the machine is shared; the best round is the least disturbed one).
GPU (when CUDA is present): the ~1.3B `bench-1b` shape at sequence length 4096 in bf16 autocast,
tokens/s and MFU for the SDPA path and, if xformers is installed, the xFormers path.

MFU = flops_per_token x tokens/s / peak, flops_per_token = 6*N_matmul + 12*L*h*T (ModelConfig.flops_per_token);
peak on CPU = the best fp32 GEMM rate measured in the same process, on GPU the datasheet dense bf16 figure.

    python bench/bench_train.py --out bench/results/train.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see model/__init__.py: before torch loads
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(kind: str, cfg, attention: str):
    from model.model import Baichuan
    if kind == "ours":
        return Baichuan(cfg, attention=attention)
    from transformers import LlamaConfig, LlamaForCausalLM
    lc = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
                     intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
                     num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
                     rms_norm_eps=cfg.rms_norm_eps, max_position_embeddings=cfg.max_position,
                     tie_word_embeddings=False, attention_bias=False, mlp_bias=False)
    lc.rope_parameters = {"rope_type": "default", "rope_theta": cfg.rope_base}
    lc._attn_implementation = "sdpa"
    m = LlamaForCausalLM(lc)
    m.config.use_cache = False
    return m


def worker(a) -> dict:
    """One model, one process: warm-up steps then timed steps; prints a JSON line."""
    import torch
    from model.configs import get_config
    from model.model import param_groups
    from model.train import measure_cpu_peak_flops
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    cuda = a.device == "cuda"
    dev = torch.device("cuda" if cuda else "cpu")
    cfg = get_config(a.config)
    base_rss = rss_mb()
    model = build(a.kind, cfg, a.attention).to(dev)
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if cuda else {}))
    x = torch.randint(3, cfg.vocab_size, (a.batch, a.seq_len + 1), device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def step():
        with amp:
            if a.kind == "ours":
                loss = model(x[:, :-1], x[:, 1:])[1]
            else:  # Llama shifts labels itself: give it the same T inputs and T targets
                logits = model(input_ids=x[:, :-1]).logits
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    tokens = a.batch * a.seq_len
    if cuda:
        from model.train import peak_flops
        peak, _ = peak_flops(dev, torch.bfloat16, None)
        mem = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = measure_cpu_peak_flops()
        mem = rss_mb()
    fpt = cfg.flops_per_token(a.seq_len)
    return {"kind": a.kind, "attention": a.attention, "params": sum(p.numel() for p in model.parameters()),
            "median_step_s": med, "tokens_per_s": tokens / med, "best_tokens_per_s": tokens / times[0],
            "mfu": fpt * tokens / med / peak, "peak_flops": peak,
            "peak_memory_mb": mem, "baseline_rss_mb": base_rss,
            "memory_kind": "torch.cuda.max_memory_allocated" if cuda else "process peak RSS (ru_maxrss)"}


def run_worker(kind, config, device, seq_len, batch, steps, warmup, threads, attention="sdpa"):
    cmd = [sys.executable, __file__, "--worker", kind, "--config", config, "--device", device,
           "--seq-len", str(seq_len), "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup),
           "--threads", str(threads), "--attention", attention]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/train.json")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default="bench-20m")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--attention", default="sdpa")
    ap.add_argument("--worker", choices=["ours", "llama"])
    ap.add_argument("--skip-gpu", action="store_true")
    a = ap.parse_args()
    if a.worker:
        a.kind = a.worker
        print(json.dumps(worker(a)))
        return

    import torch
    from model.configs import get_config
    from model.model import xformers_available
    cfg = get_config(a.config)
    runs = {"ours": [], "llama": []}
    for r in range(a.rounds):
        for kind in ("ours", "llama"):
            res = run_worker(kind, a.config, "cpu", a.seq_len, a.batch, a.steps, a.warmup, a.threads)
            runs[kind].append(res)
            print(f"round {r} {kind}: {res['tokens_per_s']:.0f} tokens/s, peak RSS {res['peak_memory_mb']:.0f} MB",
                  file=sys.stderr)
    best = {k: max(v, key=lambda x: x["tokens_per_s"]) for k, v in runs.items()}
    result = {
        "cpu": {
            "shape": cfg.to_dict(), "params": best["ours"]["params"], "seq_len": a.seq_len, "batch": a.batch,
            "threads": a.threads, "dtype": "fp32", "ours": best["ours"], "llama_hf": best["llama"],
            "ratio_tokens_per_s_ours_over_llama": best["ours"]["tokens_per_s"] / best["llama"]["tokens_per_s"],
            "ratio_peak_memory_ours_over_llama": best["ours"]["peak_memory_mb"] / best["llama"]["peak_memory_mb"],
            "all_rounds": runs,
            "note": "ours has NormHead, max-z loss and a fused W_pack; Llama (transformers "
                    f"{__import__('transformers').__version__}, sdpa) has none of them. Same shape, same "
                    "AdamW + clip step, fp32, random ids.",
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "loadavg_at_end": os.getloadavg(), "torch": torch.__version__,
                    "glibc_tunables": os.environ.get("GLIBC_TUNABLES")},
        "flop_formula": "6*N_matmul + 12*L*h*T per token",
    }
    if torch.cuda.is_available() and not a.skip_gpu:
        gpu = {"shape": get_config("bench-1b").to_dict(), "seq_len": 4096, "dtype": "bf16 autocast",
               "device": torch.cuda.get_device_name(0)}
        for att in (["xformers"] if xformers_available() else []) + ["sdpa"]:
            gpu[att] = run_worker("ours", "bench-1b", "cuda", 4096, 1, 10, 3, a.threads, attention=att)
        gpu["llama_hf_sdpa"] = run_worker("llama", "bench-1b", "cuda", 4096, 1, 10, 3, a.threads)
        result["gpu"] = gpu
    else:
        result["gpu"] = None
        result["gpu_note"] = "no CUDA device in this run: the ~1B / seq 4096 GPU figures were not measured"
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    c = result["cpu"]
    print(f"CPU {a.config} ({c['params'] / 1e6:.1f}M params, T={a.seq_len}): ours {c['ours']['tokens_per_s']:.0f} "
          f"tokens/s, Llama {c['llama_hf']['tokens_per_s']:.0f} tokens/s, ratio "
          f"{c['ratio_tokens_per_s_ours_over_llama']:.2f}; peak RSS ours {c['ours']['peak_memory_mb']:.0f} MB, "
          f"Llama {c['llama_hf']['peak_memory_mb']:.0f} MB -> {out}")


if __name__ == "__main__":
    main()
