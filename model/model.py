"""Baichuan 2 in one readable file (nanoGPT style).

Decoder-only transformer, pre-norm RMSNorm, SwiGLU MLP, fused QKV (`W_pack`), no biases, untied
embeddings, RoPE (7B) or ALiBi (13B), NormHead output layer and max-z loss. Module names follow the
released Hugging Face code, so our state dict *is* Baichuan's (`model.layers.0.self_attn.W_pack.weight`,
...), which keeps export/import a plain copy.

Attention runs through xFormers' memory_efficient_attention when xformers and CUDA are both present
(with the ALiBi bias passed as the attention bias), else through torch's scaled_dot_product_attention.
`attention_reference` is the explicit softmax formula the tests compare both against.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .configs import ModelConfig

try:  # optional: xFormers has no CPU kernels, so it is only used when CUDA is present
    import xformers.ops as xops  # type: ignore
except Exception:  # ImportError, or a broken build
    xops = None


def xformers_available() -> bool:
    return xops is not None and torch.cuda.is_available()


# ---------------------------------------------------------------------------------------------
# Normalisation and positions
# ---------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """w * x / sqrt(mean(x^2) + eps), the variance taken in fp32 even under bf16 autocast."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rope_cos_sin(seq_len: int, head_dim: int, base: float, device=None):
    """cos/sin tables [T, head_dim] in fp32 (bf16 cannot represent positions above 256 exactly)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    t = torch.arange(seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)  # GPT-NeoX layout: first half / second half pairs
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, D]; the rotation is done in fp32 and cast back."""
    x32 = x.float()
    return (x32 * cos + rotate_half(x32) * sin).to(x.dtype)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi head slopes: 2^(-8k/n) for n a power of two; otherwise the closest power of two c,
    slopes(c) followed by every second slope of slopes(2c) (40 heads: 2^(-k/4) k=1..32, then
    2^(-k/8) for k=1,3,...,15)."""
    def pow2(n):
        return [2.0 ** (-8.0 * k / n) for k in range(1, n + 1)]

    if math.log2(n_heads).is_integer():
        s = pow2(n_heads)
    else:
        c = 2 ** math.floor(math.log2(n_heads))
        s = pow2(c) + pow2(2 * c)[0::2][: n_heads - c]
    return torch.tensor(s, dtype=torch.float32)


def alibi_bias(n_heads: int, seq_len: int, device=None) -> torch.Tensor:
    """[H, T, T] fp32 bias: m_h * (j - i) for keys j <= i, -inf for future keys."""
    pos = torch.arange(seq_len, device=device, dtype=torch.float32)
    rel = pos[None, :] - pos[:, None]                      # j - i
    bias = alibi_slopes(n_heads).to(device)[:, None, None] * rel[None]
    future = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu(1)
    return bias.masked_fill(future, float("-inf"))


# ---------------------------------------------------------------------------------------------
# Attention kernels: all take q, k, v as [B, H, T, D] and return [B, H, T, D]
# ---------------------------------------------------------------------------------------------
def attention_reference(q, k, v, bias=None):
    """Explicit softmax(QK^T/sqrt(d) + bias) V, causal; the formula the fast paths must match."""
    T = q.shape[-2]
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias.float()
    else:
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return (scores.softmax(-1) @ v.float()).to(q.dtype)


def attention_sdpa(q, k, v, bias=None):
    if bias is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # SDPA wants the float mask in the query dtype; the bias already holds -inf for future keys.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))


def attention_xformers(q, k, v, bias=None):
    B, H, T, D = q.shape
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # xFormers layout [B, T, H, D]
    if bias is None:
        attn_bias = xops.LowerTriangularMask()
    else:
        # xFormers needs the bias' last dimension 8-aligned in memory: allocate padded, slice.
        pad = (T + 7) // 8 * 8
        buf = torch.empty(B, H, T, pad, dtype=q.dtype, device=q.device)
        attn_bias = buf[..., :T]
        attn_bias.copy_(bias.to(q.dtype).expand(B, H, T, T))
    out = xops.memory_efficient_attention(q, k, v, attn_bias=attn_bias)
    return out.transpose(1, 2)


ATTENTION = {"reference": attention_reference, "sdpa": attention_sdpa, "xformers": attention_xformers}


def resolve_attention(impl: str) -> str:
    if impl == "auto":
        return "xformers" if xformers_available() else "sdpa"
    if impl == "xformers" and not xformers_available():
        raise RuntimeError("attention 'xformers' needs the xformers package and a CUDA device")
    if impl not in ATTENTION:
        raise ValueError(f"unknown attention implementation {impl!r}")
    return impl


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.W_pack = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=False)  # rows: Q, K, V
        self.o_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)

    def forward(self, x, pos, attn_fn):
        B, T, C = x.shape
        q, k, v = self.W_pack(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        bias = None
        if pos[0] == "rope":
            cos, sin = pos[1], pos[2]
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        else:
            bias = pos[1]
        y = attn_fn(q, k, v, bias)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, pos, attn_fn):
        x = x + self.self_attn(self.input_layernorm(x), pos, attn_fn)
        return x + self.mlp(self.post_attention_layernorm(x))


class NormHead(nn.Module):
    """Output layer with L2-normalised rows: logits = h @ normalize(W).T. The normalisation is part
    of the graph, so gradients flow through it (as in Baichuan 2's training)."""

    def __init__(self, hidden: int, vocab: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab, hidden))

    def forward(self, h):
        return F.linear(h, F.normalize(self.weight, dim=-1))


class Backbone(nn.Module):
    """`model.*` in Baichuan's state dict."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Baichuan(nn.Module):
    def __init__(self, cfg: ModelConfig, attention: str = "auto", activation_checkpointing: bool = False):
        super().__init__()
        self.cfg = cfg
        self.attention = resolve_attention(attention)
        self.activation_checkpointing = activation_checkpointing
        self.model = Backbone(cfg)
        self.lm_head = NormHead(cfg.hidden_size, cfg.vocab_size)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """normal(0, 0.02) for every matrix, ones for norms, the padding row of the embedding zeroed
        (what Baichuan's `_init_weights` does). A no-op on the meta device."""
        for name, p in self.named_parameters():
            if p.is_meta:
                continue
            if p.ndim >= 2:
                p.normal_(0.0, self.cfg.init_std)
            else:
                p.fill_(1.0)
        emb = self.model.embed_tokens.weight
        if not emb.is_meta and self.cfg.pad_token_id is not None:
            emb[self.cfg.pad_token_id].zero_()

    def positions(self, T: int, device):
        if T > self.cfg.max_position:
            raise ValueError(f"sequence length {T} exceeds max_position {self.cfg.max_position}")
        if self.cfg.position == "rope":
            cos, sin = rope_cos_sin(T, self.cfg.head_dim, self.cfg.rope_base, device)
            return ("rope", cos, sin)
        return ("alibi", alibi_bias(self.cfg.num_heads, T, device))

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        pos = self.positions(idx.shape[1], idx.device)
        attn_fn = ATTENTION[self.attention]
        x = self.model.embed_tokens(idx)
        for layer in self.model.layers:
            if self.activation_checkpointing and self.training:
                x = checkpoint(layer, x, pos, attn_fn, use_reentrant=False)
            else:
                x = layer(x, pos, attn_fn)
        return self.model.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Returns logits [B, T, V]; with targets also (loss, ce, z_loss) where
        loss = CE + z_loss_weight * mean(max_logit^2) over positions with a target (ignore -100)."""
        logits = self.lm_head(self.hidden_states(idx))
        if targets is None:
            return logits
        return (logits,) + max_z_loss(logits, targets, self.cfg.z_loss_weight)


def max_z_loss(logits, targets, z_weight: float, ignore_index: int = -100):
    """Cross-entropy plus Baichuan 2's max-z loss, both in fp32."""
    flat = logits.float().reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    ce = F.cross_entropy(flat, t, ignore_index=ignore_index)
    valid = (t != ignore_index).float()
    z = flat.max(dim=-1).values
    z_loss = z_weight * (z.square() * valid).sum() / valid.sum().clamp_min(1.0)
    return ce + z_loss, ce, z_loss


def param_groups(model: nn.Module, weight_decay: float):
    """Weight decay on matrices only (linear weights, embeddings, head); not on norm weights."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def count_params_meta(cfg: ModelConfig) -> int:
    """Parameter count of the real module built on the meta device: no weight memory is allocated."""
    with torch.device("meta"):
        m = Baichuan(cfg, attention="reference")
    return sum(p.numel() for p in m.parameters())
