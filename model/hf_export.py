"""Export to, and import from, the Hugging Face Baichuan 2 directory format.

Export writes `config.json` with Baichuan's field names, `model.safetensors` with Baichuan's state-dict
keys (our module names already are those keys) and the NormHead rows *normalised*, as the released
checkpoints hold them, and the tokenizer files (`tokenizer.model` and a fast `tokenizer.json` that
`AutoTokenizer` loads without remote code, as `pipeline.hf_tokenizer` writes them). Baichuan's own modeling code
(`modeling_baichuan.py`, remote code) is not shipped here; `auto_map` names it so a user who drops it
in can load the directory with `trust_remote_code=True`.

The 7B (RoPE) and 13B (ALiBi) releases share one config schema and differ in their modeling file; the
7B config carries `max_position_embeddings`, the 13B one does not. We also write an explicit
`position_embedding` field and read it back when present, else fall back to that rule.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

# None of these imports model.hf_export back: the loader that reads both our checkpoints and
# exported dirs is model.loading, above this module and model.checkpoint.
from pipeline.hf_tokenizer import UnsupportedModel, export_tokenizer_hf

from .checkpoint import CheckpointError, save_weights
from .configs import ModelConfig
from .data import DataError, shard_manifest
from .model import Baichuan

def hf_config(cfg: ModelConfig, dtype: str = "float32") -> dict:
    d = {
        "architectures": ["BaichuanForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_baichuan.BaichuanConfig",
            "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM",
        },
        "model_type": "baichuan",
        "tokenizer_class": "BaichuanTokenizer",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "hidden_act": "silu",
        "model_max_length": cfg.max_position,
        "rms_norm_eps": cfg.rms_norm_eps,
        "initializer_range": cfg.init_std,
        "pad_token_id": cfg.pad_token_id,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "tie_word_embeddings": False,
        "use_cache": True,
        "z_loss_weight": cfg.z_loss_weight,
        "torch_dtype": dtype,
        "position_embedding": cfg.position,
    }
    if cfg.position == "rope":
        d["max_position_embeddings"] = cfg.max_position
        d["rope_theta"] = cfg.rope_base
    return d


def config_from_hf(d: dict, name: str = "imported") -> ModelConfig:
    if d.get("model_type") != "baichuan":
        raise CheckpointError(f"config.json has model_type {d.get('model_type')!r}, expected 'baichuan'")
    if d.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"unsupported hidden_act {d['hidden_act']!r}")
    position = d.get("position_embedding") or ("rope" if "max_position_embeddings" in d else "alibi")
    return ModelConfig(
        name=name,
        hidden_size=d["hidden_size"],
        intermediate_size=d["intermediate_size"],
        num_layers=d["num_hidden_layers"],
        num_heads=d["num_attention_heads"],
        vocab_size=d["vocab_size"],
        max_position=d.get("model_max_length", d.get("max_position_embeddings", 4096)),
        position=position,
        rope_base=float(d.get("rope_theta", 10000.0)),
        rms_norm_eps=d.get("rms_norm_eps", 1e-6),
        init_std=d.get("initializer_range", 0.02),
        z_loss_weight=d.get("z_loss_weight", 0.0),
        pad_token_id=d.get("pad_token_id", 0),
        bos_token_id=d.get("bos_token_id", 1),
        eos_token_id=d.get("eos_token_id", 2),
    )


def find_tokenizer(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.model"
    if not p.is_file():
        raise CheckpointError(f"tokenizer model not found: {p}")
    return p


def tokenizer_from_manifest(data_path: str | None) -> Path | None:
    """The SentencePiece model the tokenize stage names in the shards' manifest
    ({"tokenizer": {"path": ..., "sha256": ...}}), if it is still there."""
    if not data_path:
        return None
    try:
        found = shard_manifest(data_path)
    except DataError:
        return None
    if not found:
        return None
    d, man = found
    v = man.get("tokenizer")
    if isinstance(v, dict):
        v = v.get("path")
    if isinstance(v, str):
        p = Path(v) if Path(v).is_absolute() else d / v
        for cand in (p, Path(v)):
            if cand.is_file() or (cand / "tokenizer.model").is_file():
                return cand
    return None


def write_tokenizer(tokenizer: Path, out: Path, cfg: ModelConfig) -> None:
    src = find_tokenizer(tokenizer)
    try:
        import sentencepiece as spm
        n = spm.SentencePieceProcessor(model_file=str(src)).get_piece_size()
    except ImportError:
        n = None
    if n is not None and n > cfg.vocab_size:
        raise CheckpointError(f"tokenizer {src} has {n} pieces but the model's vocab_size is {cfg.vocab_size}")
    # the files the train-tokenizer stage writes: a fast tokenizer exact against SentencePiece
    try:
        export_tokenizer_hf(src, out, model_max_length=cfg.max_position)
    except UnsupportedModel as exc:
        raise CheckpointError(f"tokenizer {src}: {exc}; the pipeline's train-tokenizer settings "
                              f"(identity normalisation, no dummy prefix) export exactly") from None


def export_model_hf(model: Baichuan, out: str | os.PathLike, tokenizer: str | os.PathLike | None = None,
                    dtype: str = "float32") -> Path:
    """Write `model` as a Hugging Face Baichuan dir (config.json, model.safetensors in `dtype`,
    generation_config.json) and, given a SentencePiece `tokenizer`, its tokenizer files. Returns `out`.

    Named for the model to tell it from tokenizer_training.hf_export.export_tokenizer_hf, which
    writes the tokenizer files alone.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    # Released Baichuan 2 weights hold the normalised head rows (inference skips the normalisation).
    sd["lm_head.weight"] = F.normalize(sd["lm_head.weight"], dim=-1)
    save_weights({k: v.to(torch_dtype) for k, v in sd.items()}, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(hf_config(model.cfg, dtype), indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps({
        "bos_token_id": model.cfg.bos_token_id, "eos_token_id": model.cfg.eos_token_id,
        "pad_token_id": model.cfg.pad_token_id}, indent=2) + "\n")
    if tokenizer is not None:
        write_tokenizer(Path(tokenizer), out, model.cfg)
    return out


def _load_hf_weights(d: Path) -> dict:
    files = sorted(d.glob("*.safetensors"))
    if files:
        sd = {}
        for f in files:
            sd.update(load_file(str(f)))
        return sd
    files = sorted(d.glob("pytorch_model*.bin"))
    if files:
        sd = {}
        for f in files:
            sd.update(torch.load(f, map_location="cpu", weights_only=True))
        return sd
    raise CheckpointError(f"no *.safetensors or pytorch_model*.bin weights in {d}")


def import_model_hf(path: str | os.PathLike, attention: str = "auto", **model_kw) -> Baichuan:
    """A Baichuan model from a Hugging Face Baichuan dir (config.json + safetensors or .bin weights),
    as export_model_hf writes it or as released. Raises CheckpointError if the weights do not fit."""
    d = Path(path)
    cfg_file = d / "config.json"
    if not cfg_file.exists():
        raise CheckpointError(f"no config.json in {d}")
    cfg = config_from_hf(json.loads(cfg_file.read_text()), name=d.name)
    sd = {k: v.float() for k, v in _load_hf_weights(d).items()}
    model = Baichuan(cfg, attention=attention, **model_kw)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"weights in {d} do not match a Baichuan model: missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}")
    return model

