"""Load a Baichuan model from either of the two directory formats this package writes.

It lives above model.checkpoint (our trainer checkpoints) and model.hf_export (exported Hugging Face
dirs) and imports both, so that neither of those has to import the other back: hf_export needs
checkpoint's save_weights and CheckpointError, and before this module checkpoint's loader imported
hf_export to read config.json dirs.
"""
from __future__ import annotations

import os

from .checkpoint import MODEL_CONFIG, CheckpointError, load_trainer_model, resolve_checkpoint_dir
from .hf_export import import_model_hf
from .model import Baichuan

HF_CONFIG = "config.json"


def load_checkpoint_or_hf(path: str | os.PathLike, attention: str = "auto", **model_kw) -> Baichuan:
    """A Baichuan model from our trainer checkpoint (model_config.json) or an exported Hugging Face
    Baichuan dir (config.json).

    `path` may also be a training run's output dir or its checkpoints/ dir (-> latest). A dir with
    both files is read as our checkpoint: model_config.json holds our full ModelConfig, config.json
    only what Baichuan's schema can say. Raises CheckpointError if `path` is neither.
    """
    p = resolve_checkpoint_dir(path)
    if (p / MODEL_CONFIG).exists():
        return load_trainer_model(p, attention=attention, **model_kw)
    if (p / HF_CONFIG).exists():
        return import_model_hf(p, attention=attention, **model_kw)
    raise CheckpointError(f"{p} is neither a trainer checkpoint ({MODEL_CONFIG}) nor an exported "
                          f"Baichuan directory ({HF_CONFIG})")
