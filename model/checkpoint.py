"""Checkpoints: weights in safetensors, plus (for training) optimizer, data position and RNG.

Layout of one checkpoint directory:
  model_config.json    our ModelConfig (the HF export writes Baichuan's config.json instead)
  model.safetensors    fp32 weights under Baichuan's state-dict keys (lm_head holds the *raw* NormHead
                       rows here; the HF export writes the normalised rows)
  optimizer.pt         AdamW state keyed by parameter name (so DDP/FSDP/single-process all agree)
  trainer_state.json   step, data position (samples consumed), tokens, the training arguments
  rng.pt               torch / numpy / python RNG states
A training run keeps `<out>/checkpoints/step-NNNNNNN/` and a `latest` file naming the newest one.
Directories are written under a temporary name and renamed, and `latest` is replaced atomically,
so a run killed mid-save still resumes from the previous complete checkpoint.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .configs import ModelConfig
from .model import Baichuan


class CheckpointError(Exception):
    """A user-facing problem with a checkpoint path."""


MODEL_CONFIG = "model_config.json"
WEIGHTS = "model.safetensors"


def save_weights(state_dict: dict, path: Path, metadata: dict | None = None) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})


def save_model_dir(out: str | os.PathLike, cfg: ModelConfig, state_dict: dict) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    save_weights(state_dict, out / WEIGHTS)
    return out


def rng_state() -> dict:
    """The RNG states as tensors and plain numbers only, so that rng.pt loads with
    torch.load(weights_only=True): a checkpoint is data, never code to run."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    st = {"torch": torch.get_rng_state(),
          "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "gauss": float(gauss)},
          "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss}}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = st["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_training_checkpoint(ckpt_root: Path, step: int, cfg: ModelConfig, model_sd: dict,
                             optim_sd: dict, trainer_state: dict, keep: int = 2) -> Path:
    """Rank 0 only. Writes step-NNNNNNN atomically, updates `latest`, prunes old checkpoints."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final, tmp = ckpt_root / name, ckpt_root / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_dir(tmp, cfg, model_sd)
    torch.save(optim_sd, tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = ckpt_root / "latest.tmp"
    latest_tmp.write_text(name + "\n")
    os.replace(latest_tmp, ckpt_root / "latest")
    if keep > 0:
        olds = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
        for p in olds[:-keep]:
            shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    f = ckpt_root / "latest"
    if not f.exists():
        return None
    p = ckpt_root / f.read_text().strip()
    return p if (p / "trainer_state.json").exists() else None


def load_training_checkpoint(path: Path) -> dict:
    return {
        "model": load_file(str(path / WEIGHTS)),
        "optimizer": load_data_only(path / "optimizer.pt"),
        "rng": load_data_only(path / "rng.pt"),
        "state": json.loads((path / "trainer_state.json").read_text()),
    }


def load_data_only(path: Path):
    """torch.load that unpickles tensors and plain containers only (weights_only=True): a crafted
    file in a shared checkpoint directory cannot run code on resume; it is refused, naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"refusing to load {path}: it holds more than tensors and plain values ({first}); "
                        "a checkpoint is data only (older checkpoints that pickled numpy RNG state "
                        "must be resumed with the version that wrote them)") from None


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """Accept a model dir, a training run's output dir or its checkpoints/ dir (-> latest)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if (p / MODEL_CONFIG).exists() or (p / "config.json").exists():
        return p
    for root in (p / "checkpoints", p):
        lat = latest_checkpoint(root)
        if lat is not None:
            return lat
    return p


def load_trainer_model(path: str | os.PathLike, attention: str = "auto", **model_kw) -> Baichuan:
    """A Baichuan model from our trainer checkpoint (model_config.json + model.safetensors).

    `path` may be the model dir, a training run's output dir or its checkpoints/ dir (-> latest).
    Exported Hugging Face dirs are not read here: model.loading.load_checkpoint_or_hf reads both,
    so that this module never has to import model.hf_export (which imports this one).
    """
    p = resolve_checkpoint_dir(path)
    if not (p / MODEL_CONFIG).exists():
        raise CheckpointError(f"{p} is not a trainer checkpoint (no {MODEL_CONFIG})")
    if not (p / WEIGHTS).exists():
        raise CheckpointError(f"{p} has {MODEL_CONFIG} but no {WEIGHTS}")
    cfg = ModelConfig.from_dict(json.loads((p / MODEL_CONFIG).read_text()))
    model = Baichuan(cfg, attention=attention, **model_kw)
    model.load_state_dict(load_file(str(p / WEIGHTS)), strict=True)
    return model
