"""The one home for hashing: content keys, seeded per-row hashes, file checksums, partitioning.

- `content_key(s)`: blake2b-128 of a string's UTF-8 bytes, as 16 bytes. What "the same text" means
  for exact dedup at every level; 128 bits, so a corpus of 10^12 spans has a ~10^-15 chance of
  one collision.
- `key_words(keys)`: 16-byte keys -> two uint64 columns (hi, lo), the form numpy sorts and groups.
- `mix64`, `copy_hash`: splitmix64 over numpy arrays; seeded, depends on nothing but its
  arguments (shard placement and order of token sequences).
- `hash01(*cols)`: a Spark column, a uniform number in [0, 1) from a seeded xxhash64 (sampling).
- `uniform01(seed, strings)`: the same idea in a task, over Arrow/numpy: a uniform number in [0, 1)
  per string from a seeded blake2b (the sample stage's draw per document id).
- `partition_of(hi, n)`: the exchange partition of a key (its top bits are already uniform).
- `file_sha256(path)`: checksums of model files and shards (re-run fingerprints, manifests).
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

HASH01_BITS = 53


def content_key(s: str) -> bytes:
    return hashlib.blake2b(s.encode("utf-8"), digest_size=16).digest()


def key_words(keys) -> tuple[np.ndarray, np.ndarray]:
    """A sequence of 16-byte keys (list of bytes, or a fixed_size_binary(16) Arrow array) -> (hi, lo)
    uint64 arrays: big-endian words, so (hi, lo) order is the bytes' order."""
    if hasattr(keys, "buffers"):  # Arrow fixed_size_binary(16), no nulls
        buf = keys.buffers()[1]
        raw = np.frombuffer(buf, dtype=">u8", count=2 * (keys.offset + len(keys)))[2 * keys.offset:]
    else:
        raw = np.frombuffer(b"".join(keys), dtype=">u8") if len(keys) else np.zeros(0, ">u8")
    words = raw.reshape(-1, 2).astype(np.uint64)
    return words[:, 0].copy(), words[:, 1].copy()


def partition_of(hi: np.ndarray, n: int) -> np.ndarray:
    """Partition of each key for an exchange into n partitions (keys are uniform hashes already)."""
    return (np.asarray(hi, np.uint64) % np.uint64(n)).astype(np.int64)


def mix64(x):
    """splitmix64's finaliser on uint64 values (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def copy_hash(seed: int, tag: int, doc_pos, copy):
    """A seeded 64-bit hash of (doc_pos, copy) per element, as int64: which shard a document's
    copy goes to, and where it sits inside the shard. Depends on nothing but its arguments."""
    with np.errstate(over="ignore"):
        key = mix64(np.uint64((seed * 0x9E3779B97F4A7C15 + tag) & (2**64 - 1)))
        h = mix64(key ^ np.asarray(doc_pos, np.int64).view(np.uint64))
        h = mix64(h ^ np.asarray(copy, np.int64).view(np.uint64))
    return np.asarray(h, np.uint64).view(np.int64)


def hash01(*cols):
    """A Spark column: a uniform number in [0, 1) from a seeded 64-bit hash of the given columns."""
    from pyspark.sql import functions as F

    return (F.xxhash64(*cols).bitwiseAND(F.lit((1 << HASH01_BITS) - 1)).cast("double")
            / F.lit(float(1 << HASH01_BITS)))


def uniform01(seed: int, strings) -> np.ndarray:
    """A uniform float in [0, 1) per string (None as ""), from blake2b keyed by the seed: depends on
    nothing but the seed and the string."""
    key = int(seed).to_bytes(8, "little", signed=True)
    raw = b"".join(hashlib.blake2b((s or "").encode("utf-8"), digest_size=8, key=key).digest() for s in strings)
    words = np.frombuffer(raw, dtype="<u8") if raw else np.zeros(0, "<u8")
    return (words >> np.uint64(64 - HASH01_BITS)).astype(np.float64) / float(1 << HASH01_BITS)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
