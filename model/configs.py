"""Model shapes: Baichuan 2 7B/13B, the paper's scaling-law ladder, and tiny shapes for tests/CPU.

Everything here is plain arithmetic on dataclasses: parameter counts are computed from the shape,
never by allocating weights (a 13.9B model would not fit this machine's memory).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

BAICHUAN2_VOCAB = 125_696


def ffn_size(hidden: int, multiple: int = 128) -> int:
    """Baichuan/LLaMA FFN width: 8/3 x hidden rounded *up* to a multiple of 128 (4096 -> 11008)."""
    return multiple * math.ceil(8 * hidden / 3 / multiple)


@dataclass
class ModelConfig:
    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int = 0          # 0 -> ffn_size(hidden_size)
    vocab_size: int = BAICHUAN2_VOCAB
    max_position: int = 4096            # HF `model_max_length`
    position: str = "rope"              # "rope" (7B) or "alibi" (13B)
    rope_base: float = 10000.0
    rms_norm_eps: float = 1e-6
    init_std: float = 0.02
    z_loss_weight: float = 2e-4         # max-z loss coefficient used in pre-training
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2

    def __post_init__(self):
        if not self.intermediate_size:
            self.intermediate_size = ffn_size(self.hidden_size)
        if self.position not in ("rope", "alibi"):
            raise ValueError(f"position must be 'rope' or 'alibi', not {self.position!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError("RoPE needs an even head_dim")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def replace(self, **kw) -> "ModelConfig":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    # ---- sizes -------------------------------------------------------------------------------
    def layer_params(self) -> int:
        h, f = self.hidden_size, self.intermediate_size
        # W_pack 3h*h + o_proj h*h + gate/up/down 3*f*h + two RMSNorm weights
        return 4 * h * h + 3 * f * h + 2 * h

    def non_embedding_params(self) -> int:
        """Parameters outside the input and output embeddings (the paper's scaling-law count)."""
        return self.num_layers * self.layer_params() + self.hidden_size  # + final norm

    def num_params(self) -> int:
        """All parameters: untied input embedding and NormHead are separate V x h matrices."""
        return self.non_embedding_params() + 2 * self.vocab_size * self.hidden_size

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward), PaLM/Chinchilla convention:
        6 * N_matmul + 12 * L * h * T, where N_matmul counts every weight used in a matmul
        (all layer matrices plus the V x h output head; the input embedding is a lookup and the
        norm weights are negligible) and 12*L*h*T is the QK^T and AV products (not halved for the
        causal mask). Activation-checkpoint recomputation is *not* counted (it is not useful work)."""
        h, f, L = self.hidden_size, self.intermediate_size, self.num_layers
        n_matmul = L * (4 * h * h + 3 * f * h) + self.vocab_size * h
        return 6 * n_matmul + 12 * L * h * seq_len


def _shape(name, h, f, layers, heads, **kw) -> ModelConfig:
    return ModelConfig(name=name, hidden_size=h, intermediate_size=f, num_layers=layers,
                       num_heads=heads, **kw)


# The paper's Table of scaling-law models (hidden / FFN / layers / heads); FFN = 3 x hidden there.
SCALING_SHAPES = [
    ("scaling-11m", 384, 1152, 6, 6),
    ("scaling-52m", 704, 2112, 8, 8),
    ("scaling-108m", 832, 2496, 12, 8),
    ("scaling-308m", 1216, 3648, 16, 8),
    ("scaling-835m", 1792, 5376, 20, 14),
    ("scaling-1566m", 2240, 6720, 24, 14),
    ("scaling-3019m", 2880, 8640, 28, 20),
]

# Shapes small enough for a CPU scaling sweep (same FFN = 3 x hidden rule as the paper's ladder,
# head_dim 32). The last one is the held-out shape whose loss the fit predicts.
CPU_SCALING_SHAPES = [
    ("cpu-s1", 64, 192, 2, 2),
    ("cpu-s2", 96, 288, 2, 3),
    ("cpu-s3", 128, 384, 3, 4),
    ("cpu-s4", 160, 480, 4, 5),
    ("cpu-s5", 192, 576, 4, 6),
    ("cpu-s6", 256, 768, 6, 8),
]

# Tinier ladder for the CPU scaling run `make scaling` actually measures (head_dim 16, FFN = 3 x
# hidden, 1-3 layers): at hidden 32..128 a 2-core CPU trains each shape on ~1M tokens in minutes,
# enough for loss to fall monotonically with compute. cpu-xs6 is the held-out shape (one step above).
CPU_XS_SCALING_SHAPES = [
    ("cpu-xs1", 32, 96, 1, 2),
    ("cpu-xs2", 48, 144, 1, 3),
    ("cpu-xs3", 64, 192, 2, 4),
    ("cpu-xs4", 96, 288, 2, 6),
    ("cpu-xs5", 128, 384, 3, 8),
    ("cpu-xs6", 160, 480, 3, 10),
]

CONFIGS: dict[str, ModelConfig] = {
    "baichuan2-7b": _shape("baichuan2-7b", 4096, 11008, 32, 32, position="rope"),
    "baichuan2-13b": _shape("baichuan2-13b", 5120, 13696, 40, 40, position="alibi"),
    # Tests and `make train`: a few hundred CPU steps in minutes.
    "tiny": _shape("tiny", 128, 384, 2, 4, max_position=1024),
    "tiny-alibi": _shape("tiny-alibi", 128, 384, 2, 4, max_position=1024, position="alibi"),
    # Benchmark shapes: ~20M parameters (with a 25,600 vocabulary) for CPU, ~1.3B for one GPU.
    "bench-20m": _shape("bench-20m", 256, 768, 8, 4, vocab_size=25_600),
    "bench-1b": _shape("bench-1b", 2048, ffn_size(2048), 16, 16),
}
for _n, _h, _f, _l, _a in SCALING_SHAPES + CPU_SCALING_SHAPES + CPU_XS_SCALING_SHAPES:
    CONFIGS[_n] = _shape(_n, _h, _f, _l, _a)


class ConfigError(ValueError):
    """A user-facing configuration mistake (unknown config name, ...)."""


def get_config(name: str, **overrides) -> ModelConfig:
    if name not in CONFIGS:
        raise ConfigError(f"unknown model config {name!r}; known: {', '.join(sorted(CONFIGS))}")
    return CONFIGS[name].replace(**{k: v for k, v in overrides.items() if v is not None})
