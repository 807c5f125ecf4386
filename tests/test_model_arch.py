"""Architecture of model/: shapes, parameter counts, RoPE, ALiBi, causality, attention paths,
NormHead, max-z loss, RMSNorm, and logits parity with transformers' LlamaForCausalLM."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.configs import CONFIGS, ffn_size, get_config
from model.model import (Baichuan, RMSNorm, alibi_bias, alibi_slopes, apply_rope, attention_reference,
                         attention_sdpa, count_params_meta, max_z_loss, rope_cos_sin, xformers_available)

torch.set_num_threads(1)  # tiny shapes: one thread is as fast, and robust on a busy machine
V = 512


def tiny(**kw):
    return get_config("tiny", vocab_size=V, **kw)


# ---- shapes and counts ------------------------------------------------------------------------
def test_ffn_rounding():
    assert ffn_size(4096) == 11008
    assert ffn_size(5120) == 13696
    assert CONFIGS["baichuan2-7b"].intermediate_size == 11008
    assert CONFIGS["baichuan2-13b"].intermediate_size == 13696


@pytest.mark.parametrize("name,expected", [("baichuan2-7b", 7.506e9), ("baichuan2-13b", 13.897e9)])
def test_big_param_counts_without_allocating(name, expected):
    cfg = CONFIGS[name]
    assert cfg.vocab_size == 125_696
    n = count_params_meta(cfg)  # the real module, built on the meta device
    assert n == cfg.num_params()
    assert abs(n - expected) / expected < 5e-4
    assert CONFIGS["baichuan2-7b"].position == "rope" and CONFIGS["baichuan2-13b"].position == "alibi"


def test_scaling_shapes_match_paper():
    # The paper's table counts parameters without the embeddings.
    paper = {"scaling-11m": 11.51, "scaling-52m": 51.56, "scaling-108m": 108.01, "scaling-308m": 307.60,
             "scaling-835m": 835.00, "scaling-1566m": 1565.60, "scaling-3019m": 3019.33}
    for name, m in paper.items():
        assert round(CONFIGS[name].non_embedding_params() / 1e6, 2) == pytest.approx(m, abs=0.011), name
    c = CONFIGS["scaling-11m"]
    assert (c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads) == (384, 1152, 6, 6)


def test_module_shapes_and_init():
    torch.manual_seed(0)
    cfg = tiny()
    m = Baichuan(cfg)
    sd = m.state_dict()
    h, f = cfg.hidden_size, cfg.intermediate_size
    assert sd["model.embed_tokens.weight"].shape == (V, h)
    assert sd["model.layers.0.self_attn.W_pack.weight"].shape == (3 * h, h)
    assert sd["model.layers.0.self_attn.o_proj.weight"].shape == (h, h)
    assert sd["model.layers.1.mlp.gate_proj.weight"].shape == (f, h)
    assert sd["model.layers.1.mlp.up_proj.weight"].shape == (f, h)
    assert sd["model.layers.1.mlp.down_proj.weight"].shape == (h, f)
    assert sd["lm_head.weight"].shape == (V, h)
    assert not any(k.endswith(".bias") for k in sd)                       # no biases
    assert sd["lm_head.weight"].data_ptr() != sd["model.embed_tokens.weight"].data_ptr()  # untied
    assert torch.all(sd["model.norm.weight"] == 1) and torch.all(sd["model.layers.0.input_layernorm.weight"] == 1)
    assert torch.all(sd["model.embed_tokens.weight"][0] == 0)             # padding_idx=0
    assert m.model.embed_tokens.padding_idx == 0
    w = sd["model.layers.0.mlp.up_proj.weight"]
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert sum(p.numel() for p in m.parameters()) == cfg.num_params()
    x = torch.randint(0, V, (2, 10))
    assert m(x).shape == (2, 10, V)


# ---- positions ----------------------------------------------------------------------------------
def test_rope_matches_direct_formula():
    torch.manual_seed(0)
    T, D, base = 37, 16, 10000.0
    x = torch.randn(1, 2, T, D)
    cos, sin = rope_cos_sin(T, D, base)
    got = apply_rope(x, cos, sin).double().numpy()
    xn = x.double().numpy()
    ref = np.empty_like(xn)
    half = D // 2
    for p in range(T):
        for i in range(half):  # GPT-NeoX layout: dimension i pairs with i + D/2
            theta = p * base ** (-2 * i / D)
            a, b = xn[..., p, i], xn[..., p, i + half]
            ref[..., p, i] = a * math.cos(theta) - b * math.sin(theta)
            ref[..., p, i + half] = b * math.cos(theta) + a * math.sin(theta)
    np.testing.assert_allclose(got, ref, atol=2e-5)
    assert cos.dtype == torch.float32


def test_rope_is_fp32_under_bf16_and_relative():
    torch.manual_seed(0)
    D = 32
    cos, sin = rope_cos_sin(3000, D, 10000.0)
    q, k = torch.randn(D), torch.randn(D)
    # q.k after rotation depends only on the distance (checked at positions far above 256).
    d1 = (apply_rope(q.view(1, 1, 1, D), cos[2000:2001], sin[2000:2001]) *
          apply_rope(k.view(1, 1, 1, D), cos[1990:1991], sin[1990:1991])).sum()
    d2 = (apply_rope(q.view(1, 1, 1, D), cos[10:11], sin[10:11]) *
          apply_rope(k.view(1, 1, 1, D), cos[0:1], sin[0:1])).sum()
    assert abs(d1.item() - d2.item()) < 1e-3
    xb = torch.randn(1, 1, 4, D).bfloat16()
    out = apply_rope(xb, cos[:4], sin[:4])
    assert out.dtype == torch.bfloat16
    ref = apply_rope(xb.float(), cos[:4], sin[:4]).bfloat16()
    assert torch.equal(out, ref)  # rotation done in fp32, rounded once


def test_alibi_slopes():
    s40 = alibi_slopes(40).double().numpy()
    ref40 = [2 ** (-k / 4) for k in range(1, 33)] + [2 ** (-k / 8) for k in range(1, 16, 2)]
    np.testing.assert_allclose(s40, ref40, rtol=1e-7)
    np.testing.assert_allclose(alibi_slopes(8).double().numpy(), [2.0 ** -k for k in range(1, 9)], rtol=1e-7)
    np.testing.assert_allclose(alibi_slopes(32).double().numpy(),
                               [2 ** (-8 * k / 32) for k in range(1, 33)], rtol=1e-7)
    # 6 heads: slopes(4) then every second of slopes(8)
    np.testing.assert_allclose(alibi_slopes(6).double().numpy(),
                               [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3], rtol=1e-7)


def test_alibi_bias_formula():
    H, T = 6, 9
    b = alibi_bias(H, T)
    assert b.dtype == torch.float32 and b.shape == (H, T, T)
    m = alibi_slopes(H)
    for h in range(H):
        for i in range(T):
            for j in range(T):
                if j <= i:
                    assert b[h, i, j].item() == pytest.approx(m[h].item() * (j - i), abs=1e-6)
                else:
                    assert b[h, i, j].item() == float("-inf")


# ---- attention ------------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_causal_no_position_sees_the_future(position):
    torch.manual_seed(0)
    m = Baichuan(tiny(position=position)).eval()
    x = torch.randint(3, V, (2, 24))
    base = m(x)
    for t in (0, 5, 23):
        y = x.clone()
        y[:, t + 1:] = torch.randint(3, V, y[:, t + 1:].shape)
        out = m(y)
        assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)
    # and the gradient of position t's logits w.r.t. later embeddings is exactly zero
    emb = m.model.embed_tokens(x).detach().requires_grad_(True)
    m.model.embed_tokens.forward = lambda _ids: emb
    m(x)[:, 7].sum().backward()
    assert torch.all(emb.grad[:, 8:] == 0) and emb.grad[:, :8].abs().sum() > 0


@pytest.mark.parametrize("with_alibi", [False, True])
def test_sdpa_matches_explicit_softmax(with_alibi):
    torch.manual_seed(0)
    B, H, T, D = 2, 6, 33, 16
    q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
    bias = alibi_bias(H, T) if with_alibi else None
    torch.testing.assert_close(attention_sdpa(q, k, v, bias), attention_reference(q, k, v, bias),
                               atol=1e-5, rtol=1e-5)
    # reference itself against a hand loop for one head/query
    scores = (q[0, 1, 10] @ k[0, 1, :11].T) / math.sqrt(D)
    if with_alibi:
        scores = scores + alibi_slopes(H)[1] * (torch.arange(11) - 10)
    torch.testing.assert_close(attention_reference(q, k, v, bias)[0, 1, 10], scores.softmax(-1) @ v[0, 1, :11],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_model_paths_agree(position):
    torch.manual_seed(0)
    cfg = tiny(position=position)
    a = Baichuan(cfg, attention="sdpa").eval()
    b = Baichuan(cfg, attention="reference").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, V, (2, 40))
    torch.testing.assert_close(a(x), b(x), atol=2e-5, rtol=1e-5)


@pytest.mark.skipif(not xformers_available(), reason="xFormers needs CUDA (it has no CPU kernels)")
@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_xformers_matches_sdpa_on_gpu(position):
    torch.manual_seed(0)
    cfg = tiny(position=position)
    a = Baichuan(cfg, attention="xformers").cuda().eval()
    b = Baichuan(cfg, attention="sdpa").cuda().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, V, (2, 64), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        la, lb = a(x).float(), b(x).float()
    torch.testing.assert_close(la, lb, atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(a.float()(x), b.float()(x), atol=1e-4, rtol=1e-4)


# ---- norms and losses -----------------------------------------------------------------------------
def test_rmsnorm_formula_and_fp32_variance():
    torch.manual_seed(0)
    n = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        n.weight.copy_(torch.arange(1.0, 9.0))
    x = torch.randn(3, 8) * 100
    ref = n.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(n(x), ref)
    xb = (torch.randn(3, 8) * 300).bfloat16()  # squares overflow bf16's precision, not fp32's
    refb = (xb.float() * torch.rsqrt(xb.float().pow(2).mean(-1, keepdim=True) + 1e-6)).bfloat16()
    out = RMSNorm(8)(xb)  # fp32 weight x bf16 activations -> fp32, as in Baichuan's RMSNorm
    assert torch.equal(out.bfloat16(), refb)


def test_normhead_rows_normalised_with_gradient():
    torch.manual_seed(0)
    m = Baichuan(tiny())
    with torch.no_grad():
        m.lm_head.weight.mul_(torch.rand(V, 1) * 10)  # rows of very different norms
    h = torch.randn(3, tiny().hidden_size)
    logits = m.lm_head(h)
    w = m.lm_head.weight
    ref = h @ (w / w.norm(dim=-1, keepdim=True)).T
    torch.testing.assert_close(logits, ref)
    # scaling a row does not change its logit (cosine); the gradient is orthogonal to the row
    w2 = w.detach().clone()
    w2[5] *= 7
    torch.testing.assert_close(F.linear(h, F.normalize(w2, dim=-1)), logits.detach())
    logits[:, 5].sum().backward()
    g = m.lm_head.weight.grad[5]
    assert g.abs().sum() > 0
    assert abs(torch.dot(g, w[5].detach()).item()) < 1e-4 * g.norm().item() * w[5].norm().item()


def test_max_z_loss_value():
    logits = torch.tensor([[[1.0, 3.0, -2.0], [0.5, 0.0, 4.0]]])
    y = torch.tensor([[1, 0]])
    loss, ce, z = max_z_loss(logits, y, 2e-4)
    ref_ce = F.cross_entropy(logits[0], y[0])
    assert ce.item() == pytest.approx(ref_ce.item(), rel=1e-6)
    assert z.item() == pytest.approx(2e-4 * (3.0 ** 2 + 4.0 ** 2) / 2, rel=1e-6)
    assert loss.item() == pytest.approx(ref_ce.item() + z.item(), rel=1e-6)
    # ignored positions count in neither term
    loss2, ce2, z2 = max_z_loss(logits, torch.tensor([[1, -100]]), 2e-4)
    assert z2.item() == pytest.approx(2e-4 * 9.0, rel=1e-6)
    m = Baichuan(tiny(z_loss_weight=2e-4))
    x = torch.randint(0, V, (2, 8))
    logits, loss, ce, z = m(x, x)
    assert z.item() == pytest.approx(2e-4 * logits.max(-1).values.pow(2).mean().item(), rel=1e-5)


# ---- an independent implementation: transformers' Llama is Baichuan 2-7B up to W_pack and NormHead
def test_logits_match_transformers_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = tiny()
    m = Baichuan(cfg).eval()
    lc = LlamaConfig(vocab_size=V, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                     num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                     num_key_value_heads=cfg.num_heads, rms_norm_eps=cfg.rms_norm_eps,
                     max_position_embeddings=cfg.max_position, tie_word_embeddings=False,
                     attention_bias=False, mlp_bias=False, pad_token_id=0)
    lc.rope_parameters = {"rope_type": "default", "rope_theta": cfg.rope_base}
    llama = LlamaForCausalLM(lc).eval()
    sd = m.state_dict()
    h = cfg.hidden_size
    new = {"model.embed_tokens.weight": sd["model.embed_tokens.weight"], "model.norm.weight": sd["model.norm.weight"],
           "lm_head.weight": F.normalize(sd["lm_head.weight"], dim=-1)}
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        q, k, v = sd[p + "self_attn.W_pack.weight"].split(h, dim=0)
        new.update({p + "self_attn.q_proj.weight": q, p + "self_attn.k_proj.weight": k,
                    p + "self_attn.v_proj.weight": v})
        for n in ("self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                  "input_layernorm", "post_attention_layernorm"):
            new[p + n + ".weight"] = sd[p + n + ".weight"]
    missing, unexpected = llama.load_state_dict(new, strict=False)
    assert not unexpected and all("rotary" in k for k in missing)
    x = torch.randint(0, V, (2, 50))
    with torch.no_grad():
        torch.testing.assert_close(m(x), llama(x).logits, atol=1e-4, rtol=1e-4)
