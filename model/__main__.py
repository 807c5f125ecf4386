"""python -m model {init,train,export,score,eval,scaling,configs} ...

User mistakes (a missing path, an unknown config, a vocabulary mismatch) print one `error:` line and
exit with status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path


def _user_errors():
    from .checkpoint import CheckpointError
    from .configs import ConfigError
    from .data import DataError
    return (CheckpointError, ConfigError, DataError, FileNotFoundError)


def cmd_init(a):
    import torch
    from .checkpoint import save_model_dir
    from .configs import get_config
    from .model import Baichuan
    cfg = get_config(a.config, vocab_size=a.vocab_size)
    if cfg.num_params() > 2e9:
        raise _user_errors()[1](f"{a.config} has {cfg.num_params() / 1e9:.2f}B parameters: too big to "
                                "initialise in memory here")
    torch.manual_seed(a.seed)
    model = Baichuan(cfg, attention="reference")
    out = save_model_dir(a.out, cfg, model.state_dict())
    print(json.dumps({"checkpoint": str(out), "config": cfg.name, "params": cfg.num_params()}))


def cmd_train(a):
    from .train import TrainConfig, train
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    tc = TrainConfig(**{k: v for k, v in vars(a).items() if k in fields and v is not None})
    summary = train(tc)
    if summary:
        print(json.dumps(summary, indent=2))
        if summary.get("tokens_per_s"):
            print(f"done: {summary['steps']} steps, loss {summary['final_ce_mean_last']:.3f} nats "
                  f"(mean CE of the last steps) vs unigram entropy {summary['unigram_entropy_nats']:.3f}; "
                  f"{summary['tokens_per_s']:.0f} tokens/s", file=sys.stderr)


def cmd_export(a):
    from .checkpoint import resolve_checkpoint_dir
    from .hf_export import export_model_hf, tokenizer_from_manifest
    from .loading import load_checkpoint_or_hf
    tok = a.tokenizer
    if tok is None:  # the training run remembers its data dir, whose manifest may name the tokenizer
        st = resolve_checkpoint_dir(a.checkpoint) / "trainer_state.json"
        if st.exists():
            tok = tokenizer_from_manifest(json.loads(st.read_text()).get("train", {}).get("data"))
    # Export only reads the weights out, so the reference attention (no xformers, no GPU) will do.
    out = export_model_hf(load_checkpoint_or_hf(a.checkpoint, attention="reference"), a.out, tok, a.dtype)
    print(json.dumps({"exported": str(out), "tokenizer": str(tok) if tok else None}))
    if tok is None:
        print("note: no tokenizer given (--tokenizer PATH/tokenizer.model); exported weights and config only",
              file=sys.stderr)


def cmd_score(a):
    import numpy as np
    import torch
    from .data import DataError
    from .loading import load_checkpoint_or_hf
    if not Path(a.tokens).exists():
        raise FileNotFoundError(f"token file not found: {a.tokens}")
    ids = np.load(a.tokens)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"{a.tokens} must hold an integer [batch, length] array, got {ids.dtype} {ids.shape}")
    torch.set_num_threads(a.threads or min(2, os.cpu_count() or 1))
    model = load_checkpoint_or_hf(a.checkpoint, attention=a.attention).eval()
    if ids.size and (ids.min() < 0 or ids.max() >= model.cfg.vocab_size):
        raise DataError(f"token ids must lie in [0, {model.cfg.vocab_size})")
    x = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + a.batch_size]).float() for i in range(0, len(x), a.batch_size)])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(a.out, logits.numpy().astype(np.float32))
    print(json.dumps({"logits": a.out, "shape": list(logits.shape)}))


def cmd_eval(a):
    from .loading import load_checkpoint_or_hf
    from .train import evaluate
    model = load_checkpoint_or_hf(a.checkpoint, attention=a.attention)
    print(json.dumps(evaluate(model, a.data, a.seq_len, a.batch_size, a.max_samples, a.threads)))


def cmd_scaling(a):
    from .scaling import ScalingConfig, run_scaling
    fields = {f.name for f in dataclasses.fields(ScalingConfig)}
    sc = ScalingConfig(**{k: v for k, v in vars(a).items() if k in fields and v is not None})
    print(json.dumps(run_scaling(sc), indent=2))


def cmd_configs(a):
    from .configs import CONFIGS
    for name, c in CONFIGS.items():
        print(f"{name:16s} h={c.hidden_size:5d} ffn={c.intermediate_size:6d} L={c.num_layers:3d} "
              f"heads={c.num_heads:3d} {c.position:5s} params(V={c.vocab_size})={c.num_params() / 1e6:10.2f}M "
              f"non-emb={c.non_embedding_params() / 1e6:9.2f}M")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model", description="Baichuan 2-style model trainer")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("init", help="write a randomly initialised checkpoint")
    s.add_argument("--config", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--vocab-size", type=int)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("train", help="train on .bin/.idx token shards (resumes from OUT/checkpoints)")
    s.add_argument("--data", required=True, help="shard directory (all *.idx) or one shard prefix")
    s.add_argument("--out", default="out/train")
    s.add_argument("--model", "--config", dest="model", default="tiny")
    s.add_argument("--vocab-size", type=int, help="default: vocab_size in the shards' _manifest.json")
    s.add_argument("--seq-len", type=int)
    s.add_argument("--micro-batch", type=int)
    s.add_argument("--grad-accum", type=int)
    s.add_argument("--max-steps", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--min-lr-ratio", type=float)
    s.add_argument("--warmup-steps", type=int)
    s.add_argument("--weight-decay", type=float)
    s.add_argument("--grad-clip", type=float)
    s.add_argument("--z-loss-weight", type=float)
    s.add_argument("--dtype", choices=["auto", "bf16", "fp32"])
    s.add_argument("--attention", choices=["auto", "sdpa", "xformers", "reference"])
    s.add_argument("--activation-checkpointing", action="store_true", default=None)
    s.add_argument("--parallel", choices=["ddp", "fsdp"])
    s.add_argument("--seed", type=int)
    s.add_argument("--init-from")
    s.add_argument("--ckpt-interval", type=int)
    s.add_argument("--keep-checkpoints", type=int)
    s.add_argument("--no-resume", dest="resume", action="store_false", default=None)
    s.add_argument("--crash-after-step", type=int, help="testing: SIGKILL the run after this step")
    s.add_argument("--threads", type=int)
    s.add_argument("--peak-tflops", type=float)
    s.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("export", help="export a checkpoint to the Hugging Face Baichuan format")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--tokenizer", help="SentencePiece tokenizer.model (or a dir holding one)")
    s.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("score", help="fp32 logits [batch, length, vocab] for an int [batch, length] .npy")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--tokens", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--attention", default="auto", choices=["auto", "sdpa", "xformers", "reference"])
    s.add_argument("--threads", type=int)
    s.set_defaults(fn=cmd_score)

    s = sub.add_parser("eval", help="mean loss over a shard's packed samples, as JSON")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--seq-len", type=int, default=256)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--max-samples", type=int)
    s.add_argument("--attention", default="auto", choices=["auto", "sdpa", "xformers", "reference"])
    s.add_argument("--threads", type=int)
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("scaling", help="scaling-law sweep, fit L(C) = a*C^b + L_inf, predict a held-out shape")
    s.add_argument("--data", required=True)
    s.add_argument("--out", default="out/scaling")
    s.add_argument("--vocab-size", type=int)
    s.add_argument("--shapes", help="comma-separated config names of the sweep (default: cpu-xs1..cpu-xs5)")
    s.add_argument("--holdout", help="config name of the larger held-out shape (default: cpu-xs6)")
    s.add_argument("--tokens", type=int, dest="token_budget", help="training tokens per shape")
    s.add_argument("--seq-len", type=int)
    s.add_argument("--micro-batch", type=int)
    s.add_argument("--lr", type=float, help="peak LR at hidden = --lr-ref-hidden (lr scales as 1/hidden)")
    s.add_argument("--lr-ref-hidden", type=int)
    s.add_argument("--warmup-frac", type=float, help="warmup as a fraction of each run's steps")
    s.add_argument("--warmup-steps", type=int, help="fixed warmup steps instead of --warmup-frac")
    s.add_argument("--eval-tokens", type=int, help="size of the held-out evaluation slice")
    s.add_argument("--seed", type=int)
    s.add_argument("--threads", type=int)
    s.set_defaults(fn=cmd_scaling)

    s = sub.add_parser("configs", help="list the model configs and their parameter counts")
    s.set_defaults(fn=cmd_configs)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except _user_errors() as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
