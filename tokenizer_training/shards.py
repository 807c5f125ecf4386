"""Token shards: Megatron `.bin/.idx` pairs from a partition's documents, checksums, and the
document shuffle / fixed-length packing helpers the trainer uses.

Shard files: `<dir>/shard-NNNNN.bin` + `.idx` (pipeline.indexed_dataset, int32 ids, one sequence
per document, document_indices = 0..n). A shard's content is the documents assigned to it, in
the order given (the tokenize stage sorts them by a seeded key), so it is reproducible.

Packing convention (the same as model/data.py): documents, each ending in </s>, are concatenated
in a seeded order and the stream is cut into samples of `seq_len + 1` tokens taken every
`seq_len` tokens (inputs = sample[:-1], targets = sample[1:]; neighbouring samples share one
token). A document may run across samples; boundaries are kept explicitly per sample as
`position_ids` (0 at each document start, counting up within the document, continuing across the
sample edge) and `segment_ids` (0, 1, 2, ... for the documents within the sample, first piece = 0),
so an attention mask that never crosses a document boundary is `segment_ids[i] == segment_ids[j]`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.indexed_dataset import IndexedDataset, IndexedDatasetWriter
from tokenizer_training.encode import file_sha256

SHARD_PREFIX = "shard-"


def shard_name(shard_id: int) -> str:
    return f"{SHARD_PREFIX}{shard_id:05d}"


def write_shard(out_dir: str | os.PathLike, shard_id: int, documents, *, sources=None, langs=None,
                dtype=np.int32) -> dict:
    """Write one .bin/.idx pair from an iterable of id arrays; returns its manifest entry."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / shard_name(shard_id)
    n_docs = n_tokens = 0
    by_source: dict = {}
    by_lang: dict = {}
    with IndexedDatasetWriter(prefix, dtype=dtype) as w:
        for i, ids in enumerate(documents):
            arr = np.asarray(ids, dtype=dtype)
            w.add_document(arr)
            n_docs += 1
            n_tokens += int(arr.size)
            if sources is not None:
                s = str(sources[i])
                by_source[s] = by_source.get(s, 0) + int(arr.size)
            if langs is not None:
                lg = str(langs[i])
                by_lang[lg] = by_lang.get(lg, 0) + int(arr.size)
    return shard_entry(prefix, shard_id, n_docs, n_tokens, by_source, by_lang)


def shard_entry(prefix, shard_id: int, n_docs: int, n_tokens: int, by_source=None, by_lang=None) -> dict:
    prefix = Path(prefix)
    b, i = Path(str(prefix) + ".bin"), Path(str(prefix) + ".idx")
    return {"shard": shard_id, "prefix": prefix.name, "documents": n_docs, "tokens": n_tokens,
            "bin": b.name, "bin_bytes": b.stat().st_size, "bin_sha256": file_sha256(b),
            "idx": i.name, "idx_bytes": i.stat().st_size, "idx_sha256": file_sha256(i),
            "tokens_by_source": dict(sorted((by_source or {}).items())),
            "tokens_by_lang": dict(sorted((by_lang or {}).items()))}


def verify_shards(shard_dir: str | os.PathLike) -> list[str]:
    """Recompute every checksum listed in `_manifest.json`; returns the problems (empty = ok)."""
    d = Path(shard_dir)
    manifest = json.loads((d / "_manifest.json").read_text(encoding="utf-8"))
    problems = []
    for s in manifest["shards"]:
        for key in ("bin", "idx"):
            p = d / s[key]
            if not p.is_file():
                problems.append(f"missing {p}")
            elif file_sha256(p) != s[key + "_sha256"]:
                problems.append(f"checksum mismatch: {p}")
    return problems


# ------------------------------------------------------------------------------------------
# Shuffle and packing

def open_shards(shard_dir_or_prefixes) -> list[IndexedDataset]:
    if isinstance(shard_dir_or_prefixes, (str, os.PathLike)) and Path(shard_dir_or_prefixes).is_dir():
        prefixes = sorted(str(p.with_suffix("")) for p in Path(shard_dir_or_prefixes).glob("*.idx"))
    else:
        prefixes = [str(p) for p in shard_dir_or_prefixes]
    return [IndexedDataset.open(p) for p in prefixes]


def shuffled_document_order(docs_per_shard, seed: int, epoch: int = 0) -> np.ndarray:
    """A seeded permutation of every document across shards, as rows (shard index, doc index).

    The same (seed, epoch) gives the same order on any machine (numpy's PCG64 with a fixed seed
    sequence); different epochs give different orders.
    """
    counts = np.asarray(list(docs_per_shard), dtype=np.int64)
    shard = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    local = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if len(counts) else np.zeros(0, np.int64)
    perm = np.random.default_rng([int(seed), int(epoch)]).permutation(len(shard))
    return np.stack([shard[perm], local[perm]], axis=1)


@dataclass
class PackedSamples:
    tokens: np.ndarray  # [n, seq_len + 1] int32
    position_ids: np.ndarray  # [n, seq_len + 1] int32: 0 at each document start
    segment_ids: np.ndarray  # [n, seq_len + 1] int32: document number within the sample
    dropped_tail_tokens: int  # tokens after the last full sample (not enough for one more)


def pack_documents(documents, seq_len: int = 4096) -> PackedSamples:
    """Pack id arrays (in the order given) into fixed-length samples, boundaries kept."""
    if seq_len < 1:
        raise ValueError("seq_len must be >= 1")
    docs = [np.asarray(d, dtype=np.int32) for d in documents]
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    stream = np.concatenate(docs) if docs else np.zeros(0, np.int32)
    total = len(stream)
    n = max(0, (total - 1) // seq_len)
    if n == 0:
        empty = np.zeros((0, seq_len + 1), np.int32)
        return PackedSamples(empty, empty.copy(), empty.copy(), int(total))
    # position in document and document number of every stream token
    doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos_in_doc = np.arange(total, dtype=np.int64) - starts[doc_of]
    index = np.arange(n, dtype=np.int64)[:, None] * seq_len + np.arange(seq_len + 1, dtype=np.int64)[None, :]
    tokens = stream[index]
    position_ids = pos_in_doc[index].astype(np.int32)
    seg = doc_of[index]
    segment_ids = (seg - seg[:, :1]).astype(np.int32)
    used = (n - 1) * seq_len + seq_len + 1
    return PackedSamples(tokens, position_ids, segment_ids, int(total - used))


def pack_shards(shard_dir_or_prefixes, seq_len: int = 4096, seed: int = 0, epoch: int = 0,
                shuffle: bool = True) -> PackedSamples:
    """Shuffle the documents of the shards (seeded, across shards) and pack them. Holds the whole
    packed epoch in memory: for tests, evaluation sets and small runs (model/data.py streams)."""
    shards = open_shards(shard_dir_or_prefixes)
    counts = [len(s) for s in shards]
    if shuffle:
        order = shuffled_document_order(counts, seed, epoch)
    else:
        order = np.array([(i, j) for i, c in enumerate(counts) for j in range(c)], dtype=np.int64).reshape(-1, 2)
    return pack_documents((shards[int(s)][int(d)] for s, d in order), seq_len)
