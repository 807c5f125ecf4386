"""Bundled PyTorch trainer for Baichuan 2-style models (see model/README.md, `python -m model -h`)."""
import os

# OpenMP threads that spin-wait between parallel regions make 2-thread CPU training 3-6x *slower*
# when another process holds one of our 2 cores (measured here: 2.45 s vs 0.74 s per tiny step).
# Passive waiting must be chosen before torch loads libgomp, hence here; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .configs import CONFIGS, ModelConfig, get_config
from .model import Baichuan

__all__ = ["Baichuan", "CONFIGS", "ModelConfig", "get_config"]
