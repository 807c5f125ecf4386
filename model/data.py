"""Training samples from Megatron `.bin/.idx` token shards.

Each epoch the documents (across all shards) are put in a seeded random order and conceptually
concatenated; every document keeps its trailing </s>, so boundaries stay visible to the model. The
stream is cut into fixed-length samples of seq_len + 1 tokens (inputs and shifted targets, adjacent
samples share one token as in Megatron/nanoGPT), and the sample order is shuffled again with the
same seed. Nothing is materialised: only per-document offsets are held, tokens are read from the
memory-mapped `.bin` files when a sample is asked for.

The data position is one integer, the number of samples consumed so far (across epochs); given the
seed it determines everything, which is what makes a resumed run see exactly the same batches.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pipeline.indexed_dataset import IndexedDataset


class DataError(Exception):
    """A user-facing problem with the token shards (missing path, bad vocab, too little data)."""


def find_shards(path: str | os.PathLike) -> list[str]:
    """A directory (every `*.idx` in it, sorted) or one prefix (`dir/shard-00000`, with or without
    the .idx/.bin suffix) -> list of prefixes."""
    p = Path(path)
    if p.is_dir():
        prefixes = sorted(str(x.with_suffix("")) for x in p.glob("*.idx"))
        if not prefixes:
            raise DataError(f"no *.idx token shards in directory {p}")
    else:
        if p.suffix in (".idx", ".bin"):
            p = p.with_suffix("")
        if not Path(str(p) + ".idx").exists():
            raise DataError(f"token shard not found: {p}.idx (give a shard directory or a prefix)")
        prefixes = [str(p)]
    for pre in prefixes:
        if not Path(pre + ".bin").exists():
            raise DataError(f"{pre}.idx has no matching {pre}.bin")
    return prefixes


def shard_manifest(path: str | os.PathLike) -> tuple[Path, dict] | None:
    """The tokenize stage's `_manifest.json` beside the shards (path: their directory or a shard
    prefix) and the directory it is in; None when there is none."""
    p = Path(path)
    d = p if p.is_dir() else p.parent
    m = d / "_manifest.json"
    if not m.exists():
        return None
    try:
        return d, json.loads(m.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {m}: {e}") from e


def manifest_vocab_size(path: str | os.PathLike) -> int | None:
    """`vocab_size` from the shards' manifest, if present."""
    found = shard_manifest(path)
    v = found[1].get("vocab_size") if found else None
    return int(v) if v is not None else None


class TokenShards:
    """All documents of a list of shards, addressed as one list."""

    def __init__(self, prefixes: list[str]):
        self.prefixes = prefixes
        self.datasets = [IndexedDataset.open(p) for p in prefixes]
        self.doc_shard = np.concatenate(
            [np.full(len(d), i, dtype=np.int32) for i, d in enumerate(self.datasets)])
        self.doc_local = np.concatenate([np.arange(len(d), dtype=np.int64) for d in self.datasets])
        self.doc_len = np.concatenate(
            [d.sequence_lengths.astype(np.int64) for d in self.datasets])
        self.num_docs = len(self.doc_len)
        self.num_tokens = int(self.doc_len.sum())

    def doc(self, i: int) -> np.ndarray:
        return self.datasets[self.doc_shard[i]][int(self.doc_local[i])]

    def token_counts(self, vocab_size: int | None = None, chunk: int = 1 << 24) -> np.ndarray:
        """Unigram counts over every token (chunked, so big shards never load whole)."""
        counts = np.zeros(vocab_size or 0, dtype=np.int64)
        for d in self.datasets:
            t = d.tokens
            for s in range(0, len(t), chunk):
                part = np.asarray(t[s:s + chunk]).astype(np.int64)
                if part.size and part.min() < 0:
                    raise DataError(f"negative token id in {d.prefix}.bin")
                c = np.bincount(part)
                if len(c) > len(counts):
                    counts = np.pad(counts, (0, len(c) - len(counts)))
                counts[: len(c)] += c
        return counts

    def check_vocab(self, vocab_size: int) -> np.ndarray:
        """Raise DataError if any id >= vocab_size; returns the unigram counts (length vocab_size)."""
        counts = self.token_counts(vocab_size)
        if len(counts) > vocab_size:
            raise DataError(f"token id {len(counts) - 1} in the shards is >= vocab_size {vocab_size}")
        return counts


def unigram_entropy(counts: np.ndarray) -> float:
    """Entropy in nats of the unigram token distribution (the loss of a model that ignores context)."""
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


class PackedSamples:
    """Fixed-length samples [seq_len + 1] over the shuffled document stream of each epoch."""

    def __init__(self, shards: TokenShards, seq_len: int, seed: int = 0, shuffle: bool = True):
        self.shards, self.seq_len, self.seed, self.shuffle = shards, seq_len, seed, shuffle
        self.samples_per_epoch = (shards.num_tokens - 1) // seq_len
        if self.samples_per_epoch < 1:
            raise DataError(f"shards hold {shards.num_tokens} tokens: fewer than one sample of "
                            f"{seq_len + 1}")
        self._epoch = None

    def _prepare(self, epoch: int):
        if self._epoch == epoch:
            return
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            self._doc_order = rng.permutation(self.shards.num_docs)
            self._sample_order = rng.permutation(self.samples_per_epoch)
        else:
            self._doc_order = np.arange(self.shards.num_docs)
            self._sample_order = np.arange(self.samples_per_epoch)
        lens = self.shards.doc_len[self._doc_order]
        self._doc_start = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        self._epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def sample(self, position: int) -> np.ndarray:
        """The sample at global position `position` (epoch = position // samples_per_epoch)."""
        epoch, i = divmod(int(position), self.samples_per_epoch)
        self._prepare(epoch)
        start = int(self._sample_order[i]) * self.seq_len
        need = self.seq_len + 1
        out = np.empty(need, dtype=np.int64)
        k = int(np.searchsorted(self._doc_start, start, side="right")) - 1
        filled, off = 0, start - int(self._doc_start[k])
        while filled < need:
            d = self.shards.doc(int(self._doc_order[k]))
            piece = d[off: off + need - filled]
            out[filled: filled + len(piece)] = piece
            filled += len(piece)
            k, off = k + 1, 0
        return out

    def batch(self, position: int, n: int) -> np.ndarray:
        return np.stack([self.sample(position + j) for j in range(n)])
