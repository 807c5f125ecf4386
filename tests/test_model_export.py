"""init -> export (Hugging Face Baichuan format) -> import/score/eval, through the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from model.checkpoint import CheckpointError, load_trainer_model
from model.configs import get_config
from model.hf_export import config_from_hf, export_model_hf, import_model_hf
from model.loading import load_checkpoint_or_hf
from model.model import Baichuan
from pipeline.indexed_dataset import IndexedDatasetWriter

torch.set_num_threads(1)  # tiny shapes: one thread is as fast, and robust on a busy machine
ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "model", *map(str, args)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def tokenizer_model(tmp_path_factory):
    """A real (tiny) SentencePiece BPE model with Baichuan's special ids, trained on generated text."""
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("tok")
    words = ["data", "model", "token", "shard", "train", "loss", "数据", "模型", "训练", "def", "return"]
    rng = np.random.default_rng(0)
    (d / "text.txt").write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(400)))
    spm.SentencePieceTrainer.train(input=str(d / "text.txt"), model_prefix=str(d / "tokenizer"),
                                   vocab_size=320, model_type="bpe", byte_fallback=True, hard_vocab_limit=False,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
                                   # the pipeline's settings (identity, no dummy prefix): an exact fast tokenizer
                                   normalization_rule_name="identity", add_dummy_prefix=False,
                                   remove_extra_whitespaces=False)
    return d / "tokenizer.model"


@pytest.mark.parametrize("config", ["tiny", "tiny-alibi"])
def test_init_export_import_score(tmp_path, tokenizer_model, config):
    ck, hf = tmp_path / "ckpt", tmp_path / "hf"
    run_cli("init", "--config", config, "--seed", 7, "--vocab-size", 512, "--out", ck)
    run_cli("export", "--checkpoint", ck, "--out", hf, "--tokenizer", tokenizer_model)

    cfg = json.loads((hf / "config.json").read_text())
    assert cfg["model_type"] == "baichuan" and cfg["architectures"] == ["BaichuanForCausalLM"]
    tiny = get_config(config)
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["vocab_size"], cfg["model_max_length"], cfg["rms_norm_eps"]) == \
        (tiny.hidden_size, tiny.intermediate_size, tiny.num_layers, tiny.num_heads, 512, tiny.max_position, 1e-6)
    assert (cfg["pad_token_id"], cfg["bos_token_id"], cfg["eos_token_id"], cfg["tie_word_embeddings"],
            cfg["hidden_act"]) == (0, 1, 2, False, "silu")
    assert ("max_position_embeddings" in cfg) == (tiny.position == "rope")
    for f in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (hf / f).exists()
    assert (hf / "tokenizer.model").read_bytes() == tokenizer_model.read_bytes()
    tok_cfg = json.loads((hf / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and tok_cfg["model_max_length"] == tiny.max_position
    # the same files the train-tokenizer stage writes: AutoTokenizer gives SentencePiece's ids, decodes exactly
    import sentencepiece as spm
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf), local_files_only=True)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_model))
    for text in ("    def f(x):\n        return x  # 中文", "  lead and trail  ", "emoji 😀 rare 龘"):
        ids = tok.encode(text, add_special_tokens=False)
        assert ids == sp.encode(text) and tok.decode(ids) == text

    w = load_file(str(hf / "model.safetensors"))
    h, L = tiny.hidden_size, tiny.num_layers
    expected = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for i in range(L):
        expected |= {f"model.layers.{i}.{n}.weight" for n in (
            "self_attn.W_pack", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
            "input_layernorm", "post_attention_layernorm")}
    assert set(w) == expected
    assert w["model.layers.0.self_attn.W_pack.weight"].shape == (3 * h, h)
    assert torch.allclose(w["lm_head.weight"].norm(dim=-1), torch.ones(512), atol=1e-6)  # normalised rows

    # The original checkpoint and the imported export give the same logits.
    orig = load_trainer_model(ck, attention="sdpa").eval()
    raw = load_file(str(ck / "model.safetensors"))["lm_head.weight"]
    assert torch.equal(w["lm_head.weight"], F.normalize(raw, dim=-1))
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(512))  # the checkpoint kept raw rows
    imported = import_model_hf(hf, attention="sdpa").eval()
    assert imported.cfg.position == tiny.position
    x = torch.randint(0, 512, (3, 21))
    with torch.no_grad():
        lo, li = orig(x), imported(x)
    # Identical up to fp32 rounding: re-normalising already unit rows moves them by an ulp or so.
    torch.testing.assert_close(li, lo, atol=1e-5, rtol=1e-6)
    assert (li - lo).abs().max().item() < 1e-5
    # A second round trip is exact: export(import(export)) holds the same tensors.
    export_model_hf(imported, tmp_path / "hf2")
    w2 = load_file(str(tmp_path / "hf2" / "model.safetensors"))
    assert all(torch.allclose(w[k], w2[k], atol=1e-7, rtol=0) for k in w)

    # `score` writes fp32 logits for an int32 [batch, length] array, for both directories.
    np.save(tmp_path / "ids.npy", x.numpy().astype(np.int32))
    for src, ref in ((hf, li), (ck, lo)):
        run_cli("score", "--checkpoint", src, "--tokens", tmp_path / "ids.npy", "--out", tmp_path / "logits.npy")
        got = np.load(tmp_path / "logits.npy")
        assert got.dtype == np.float32 and got.shape == (3, 21, 512)
        np.testing.assert_allclose(got, ref.numpy(), atol=2e-5, rtol=1e-5)

    # The trainer-checkpoint loader reads only our format; the loader above it reads both.
    with pytest.raises(CheckpointError, match="not a trainer checkpoint"):
        load_trainer_model(hf)
    for src, ref in ((hf, imported), (ck, orig)):
        got = load_checkpoint_or_hf(src, attention="sdpa").state_dict()
        assert all(torch.equal(got[k], v) for k, v in ref.state_dict().items())
    with pytest.raises(CheckpointError, match="neither a trainer checkpoint"):
        load_checkpoint_or_hf(tmp_path)


def test_eval_on_a_shard(tmp_path):
    rng = np.random.default_rng(0)
    prefix = tmp_path / "shard-00000"
    with IndexedDatasetWriter(prefix, dtype=np.int32) as wr:
        for _ in range(20):
            wr.add_document(np.append(rng.integers(3, 512, rng.integers(10, 80)), 2))
    torch.manual_seed(0)
    m = Baichuan(get_config("tiny", vocab_size=512))
    export_model_hf(m, tmp_path / "hf")
    p = run_cli("eval", "--checkpoint", tmp_path / "hf", "--data", prefix, "--seq-len", 32)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    # the same mean computed here: all packed windows, file order
    from model.data import PackedSamples, TokenShards, find_shards
    ps = PackedSamples(TokenShards(find_shards(prefix)), 32, shuffle=False)
    b = torch.from_numpy(ps.batch(0, len(ps)))
    with torch.no_grad():
        ce = m(b[:, :-1], b[:, 1:])[2].item()
    assert res["samples"] == len(ps) and res["loss"] == pytest.approx(ce, rel=1e-5)
    assert np.log(512) < res["loss"] < np.log(512) + 1.0  # untrained NormHead model


def test_hf_config_schema_of_released_models():
    """The released 7B config carries max_position_embeddings (RoPE code), the 13B one does not."""
    base = {"model_type": "baichuan", "hidden_act": "silu", "vocab_size": 125696, "model_max_length": 4096,
            "rms_norm_eps": 1e-6, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "z_loss_weight": 0}
    c7 = config_from_hf(dict(base, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                             num_attention_heads=32, max_position_embeddings=4096))
    c13 = config_from_hf(dict(base, hidden_size=5120, intermediate_size=13696, num_hidden_layers=40,
                              num_attention_heads=40))
    assert c7.position == "rope" and c13.position == "alibi"
    assert c7.num_params() == get_config("baichuan2-7b").num_params()
    assert c13.num_params() == get_config("baichuan2-13b").num_params()


def test_tokenizer_found_through_the_shard_manifest(tmp_path, tokenizer_model):
    from model.hf_export import tokenizer_from_manifest
    d = tmp_path / "shards"
    d.mkdir()
    (d / "_manifest.json").write_text(json.dumps({"vocab_size": 512, "tokenizer": {"path": str(tokenizer_model),
                                                                                  "sha256": "x"}}))
    assert tokenizer_from_manifest(str(d)) == tokenizer_model
    assert tokenizer_from_manifest(str(d / "shard-00000")) == tokenizer_model
    (d / "_manifest.json").write_text(json.dumps({"vocab_size": 512}))
    assert tokenizer_from_manifest(str(d)) is None
