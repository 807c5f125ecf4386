"""Trainer of model/: data packing, schedule, optimizer, learning, checkpoints and save-kill-resume."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.configs import get_config
from model.data import DataError, PackedSamples, TokenShards, find_shards, manifest_vocab_size, unigram_entropy
from model.model import Baichuan, param_groups
from model.train import TrainConfig, lr_at
from pipeline.indexed_dataset import IndexedDatasetWriter

torch.set_num_threads(1)  # tiny shapes: one thread is as fast, and robust on a busy machine
ROOT = Path(__file__).resolve().parents[1]
V = 512


def write_shards(d: Path, docs_per_shard, vocab=V, manifest=True):
    d.mkdir(parents=True, exist_ok=True)
    for s, docs in enumerate(docs_per_shard):
        with IndexedDatasetWriter(d / f"shard-{s:05d}", dtype=np.int32) as w:
            for doc in docs:
                w.add_document(doc)
    if manifest:
        (d / "_manifest.json").write_text(json.dumps({"vocab_size": vocab}))
    return d


def random_docs(rng, n, vocab=V, lo=20, hi=200):
    """Documents with learnable structure: a noisy repeating pattern, ending with </s> (id 2)."""
    docs = []
    for _ in range(n):
        L = int(rng.integers(lo, hi))
        start = int(rng.integers(3, vocab - 40))
        body = (start + np.arange(L) % 37).astype(np.int64)
        noise = rng.random(L) < 0.1
        body[noise] = rng.integers(3, vocab, noise.sum())
        docs.append(np.append(body, 2))
    return docs


def run_cli(*args, check=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "model", *map(str, args)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"rc={p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


# ---- data -------------------------------------------------------------------------------------
def test_packing_keeps_documents_and_covers_the_stream(tmp_path):
    docs = [np.append(np.full(n, 10 + i), 2) for i, n in enumerate([5, 17, 3, 40, 8, 11, 23, 1, 30])]
    d = write_shards(tmp_path / "s", [docs[:4], docs[4:]])
    shards = TokenShards(find_shards(d))
    assert shards.num_docs == 9 and shards.num_tokens == sum(len(x) for x in docs)
    T = 16
    ps = PackedSamples(shards, T, seed=3)
    n = len(ps)
    assert n == (shards.num_tokens - 1) // T
    samples = [ps.sample(i) for i in range(n)]
    assert all(s.shape == (T + 1,) for s in samples)
    # Reassemble the epoch's stream from the samples (they are a permutation of consecutive windows).
    ps._prepare(0)
    order = [docs[i] for i in ps._doc_order]
    stream = np.concatenate(order)
    windows = {tuple(stream[k * T: k * T + T + 1]) for k in range(n)}
    assert {tuple(s) for s in samples} == windows
    # every document is whole and followed by its </s> in the stream
    pos = 0
    for doc in order:
        assert stream[pos + len(doc) - 1] == 2
        pos += len(doc)
    # seeded, resumable (a fresh reader at any position gives the same sample), new order per epoch
    again = PackedSamples(TokenShards(find_shards(d)), T, seed=3)
    assert np.array_equal(again.sample(n + 2), ps.sample(n + 2))
    assert np.array_equal(again.sample(5), samples[5])
    other = PackedSamples(shards, T, seed=4)
    assert any(not np.array_equal(other.sample(i), samples[i]) for i in range(n))
    assert any(not np.array_equal(ps.sample(n + i), samples[i]) for i in range(n))
    # no shuffle: file order
    seq = PackedSamples(shards, T, shuffle=False)
    assert np.array_equal(seq.sample(0), np.concatenate(docs)[: T + 1])


def test_packing_windows_and_document_boundaries(tmp_path):
    """File order: sample i is the stream's tokens [i*T, i*T + T + 1), neighbours share one token, a
    document runs on across the sample edge, and the tail short of a sample is left out."""
    docs = [[10, 11, 2], [20, 21, 22, 23, 2], [30, 2], [40, 41, 42, 2]]
    d = write_shards(tmp_path / "s", [docs[:2], docs[2:]])
    ps = PackedSamples(TokenShards(find_shards(d)), 4, shuffle=False)
    assert len(ps) == 3  # 14 tokens: 3 samples of 5 use 13, the last </s> is dropped
    assert ps.batch(0, 3).tolist() == [[10, 11, 2, 20, 21], [21, 22, 23, 2, 30], [30, 2, 40, 41, 42]]
    # The token after every </s> starts a document: the </s> alone marks the boundary.
    starts = {doc[0] for doc in docs}
    for s in ps.batch(0, 3):
        assert all(s[k + 1] in starts for k in np.where(s[:-1] == 2)[0])
    short = write_shards(tmp_path / "short", [[np.array([1, 2])]])
    with pytest.raises(DataError, match="fewer than one sample"):
        PackedSamples(TokenShards(find_shards(short)), 4096)


def test_document_order_is_seeded_per_epoch(tmp_path):
    """Each epoch puts every document of every shard (an empty shard among them) in a seeded order:
    the same (seed, epoch) gives the same order, on a reader opened again too; another seed or
    epoch gives another."""
    docs = [np.array([10 + i, 2]) for i in range(8)]
    d = write_shards(tmp_path / "s", [docs[:3], [], docs[3:]])
    shards = TokenShards(find_shards(d))
    assert shards.num_docs == 8 and shards.doc_shard.tolist() == [0, 0, 0, 2, 2, 2, 2, 2]

    def order(ps, epoch):
        ps._prepare(epoch)
        return [int(ps.shards.doc(int(i))[0]) - 10 for i in ps._doc_order]  # back to indices into docs

    ps = PackedSamples(shards, 3, seed=1)
    first = order(ps, 0)
    assert sorted(first) == list(range(8))
    assert order(PackedSamples(TokenShards(find_shards(d)), 3, seed=1), 0) == first
    assert order(PackedSamples(shards, 3, seed=2), 0) != first
    assert sorted(order(ps, 1)) == list(range(8)) and order(ps, 1) != first
    assert order(ps, 0) == first  # going back to an epoch rebuilds the same order


def test_shard_discovery_and_vocab(tmp_path):
    d = write_shards(tmp_path / "s", [[np.array([3, 4, 2])], [np.array([5, 600, 2])]], vocab=512)
    assert [Path(p).name for p in find_shards(d)] == ["shard-00000", "shard-00001"]
    assert find_shards(d / "shard-00001.idx") == [str(d / "shard-00001")]
    assert manifest_vocab_size(d) == 512 and manifest_vocab_size(d / "shard-00000") == 512
    with pytest.raises(DataError, match="600"):
        TokenShards(find_shards(d)).check_vocab(512)
    counts = TokenShards(find_shards(d / "shard-00000")).check_vocab(512)
    assert counts.sum() == 3 and unigram_entropy(counts) == pytest.approx(np.log(3))
    with pytest.raises(DataError):
        find_shards(tmp_path / "nope")
    with pytest.raises(DataError):
        find_shards(tmp_path)  # a directory without shards


# ---- schedule and optimizer -------------------------------------------------------------------------
def test_defaults_and_lr_schedule():
    tc = TrainConfig(data="x")
    assert (tc.beta1, tc.beta2, tc.adam_eps, tc.weight_decay, tc.grad_clip, tc.warmup_steps) == \
        (0.9, 0.95, 1e-8, 0.1, 0.5, 2000)
    tc = TrainConfig(data="x", lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, tc) == pytest.approx(1e-4)
    assert lr_at(4, tc) == pytest.approx(5e-4)
    assert lr_at(9, tc) == pytest.approx(1e-3)
    assert lr_at(10, tc) == pytest.approx(1e-3)
    assert lr_at(60, tc) == pytest.approx(1e-4 + 0.5 * 9e-4)   # half-way down the cosine
    assert lr_at(110, tc) == pytest.approx(1e-4)
    lrs = [lr_at(s, tc) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_weight_decay_on_matrices_only():
    m = Baichuan(get_config("tiny", vocab_size=V))
    decay, no_decay = param_groups(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert {names[id(p)].split(".")[-2] for p in no_decay["params"]} == \
        {"input_layernorm", "post_attention_layernorm", "norm"}
    assert any(names[id(p)] == "lm_head.weight" for p in decay["params"])


def test_a_few_steps_reduce_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    m = Baichuan(get_config("tiny", vocab_size=V))
    opt = torch.optim.AdamW(param_groups(m, 0.1), lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
    x = torch.randint(3, V, (4, 33))
    losses = []
    for _ in range(12):
        _, loss, _, _ = m(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    # NormHead logits start as N(0, ~1) (unit rows x RMS-normalised h): CE ~ ln V + 1/2
    assert np.log(V) < losses[0] < np.log(V) + 1.0
    assert losses[-1] < losses[0] - 1.0
    assert all(p.dtype == torch.float32 for p in m.parameters())


def test_activation_checkpointing_same_gradients():
    torch.manual_seed(0)
    cfg = get_config("tiny", vocab_size=V)
    a = Baichuan(cfg)
    b = Baichuan(cfg, activation_checkpointing=True)
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, V, (2, 17))
    for m in (a, b):
        m(x[:, :-1], x[:, 1:])[1].backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-6, rtol=1e-5, msg=n)


def test_bf16_autocast_keeps_fp32_master_weights():
    torch.manual_seed(0)
    m = Baichuan(get_config("tiny", vocab_size=V))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.randint(0, V, (2, 17))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss, ce, z = m(x[:, :-1], x[:, 1:])
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    opt.step()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in m.parameters())


# ---- the real trainer: outputs, and save-kill-resume ----------------------------------------------
@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    return write_shards(tmp_path_factory.mktemp("shards"), [random_docs(rng, 60), random_docs(rng, 60)])


def _log(out):
    return [json.loads(x) for x in (Path(out) / "train_log.jsonl").read_text().splitlines()]


def test_save_kill_resume_gives_identical_losses(shard_dir, tmp_path):
    common = ["--data", shard_dir, "--model", "tiny", "--seq-len", 32, "--micro-batch", 4,
              "--grad-accum", 2, "--max-steps", 14, "--lr", 3e-3, "--warmup-steps", 3,
              "--ckpt-interval", 5, "--threads", 1, "--no-progress"]
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    run_cli("train", "--out", full, *common)
    p = run_cli("train", "--out", crashed, *common, "--crash-after-step", 12, check=False)
    assert p.returncode == -9  # really killed (SIGKILL), no final checkpoint
    assert (crashed / "checkpoints" / "latest").read_text().strip() == "step-0000010"
    assert len(_log(crashed)) == 12
    p = run_cli("train", "--out", crashed, *common)
    assert "resuming from" in p.stderr
    a, b = _log(full), _log(crashed)
    assert [r["step"] for r in b] == list(range(1, 15))
    for ra, rb in zip(a, b):  # bitwise on CPU
        assert (ra["loss"], ra["ce"], ra["z_loss"], ra["grad_norm"], ra["lr"], ra["tokens"]) == \
               (rb["loss"], rb["ce"], rb["z_loss"], rb["grad_norm"], rb["lr"], rb["tokens"]), ra["step"]
    from safetensors.torch import load_file
    wa = load_file(str(full / "checkpoints" / "step-0000014" / "model.safetensors"))
    wb = load_file(str(crashed / "checkpoints" / "step-0000014" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # what a run leaves behind
    r = a[-1]
    for k in ("loss", "ce", "z_loss", "grad_norm", "lr", "tokens_per_s", "mfu"):
        assert isinstance(r[k], float) and np.isfinite(r[k]), k
    assert r["loss"] == pytest.approx(r["ce"] + r["z_loss"], rel=1e-6)
    assert (full / "loss_curve.png").stat().st_size > 1000
    summary = json.loads((full / "summary.json").read_text())
    assert summary["steps"] == 14 and summary["tokens"] == 14 * 8 * 32 and summary["tokens_per_s"] > 0
    assert "6*N_matmul + 12*L*h*T" in summary["flop_formula"]
    assert a[-1]["loss"] < a[0]["loss"] - 0.5
    ck = full / "checkpoints" / "step-0000014"
    assert {"model.safetensors", "optimizer.pt", "rng.pt", "trainer_state.json", "model_config.json"} <= \
        {p.name for p in ck.iterdir()}
    st = json.loads((ck / "trainer_state.json").read_text())
    assert st["step"] == 14 and st["position"] == 14 * 8
    assert sorted(p.name for p in (full / "checkpoints").glob("step-*")) == ["step-0000010", "step-0000014"]


def test_cli_user_errors_are_one_line(tmp_path, shard_dir, capsys):
    from model.__main__ import main
    p = run_cli("train", "--data", tmp_path / "missing", "--out", tmp_path / "o", check=False)  # a real process
    assert p.returncode == 2 and p.stderr.strip().startswith("error: ") and len(p.stderr.strip().splitlines()) == 1
    for args in (["train", "--data", shard_dir, "--vocab-size", 100, "--out", tmp_path / "o"],
                 ["init", "--config", "no-such-config", "--out", tmp_path / "c"],
                 ["score", "--checkpoint", tmp_path / "nockpt", "--tokens", tmp_path / "x.npy", "--out", tmp_path / "l.npy"],
                 ["eval", "--checkpoint", tmp_path / "nockpt", "--data", shard_dir],
                 ["export", "--checkpoint", tmp_path / "nockpt", "--out", tmp_path / "hf"],
                 ["scaling", "--data", tmp_path / "missing"]):
        capsys.readouterr()
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
