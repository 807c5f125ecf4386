"""Token shards: the names of the Megatron `.bin/.idx` pairs and their manifest entries.

Shard files: `<dir>/shard-NNNNN.bin` + `.idx` (pipeline.indexed_dataset, int32 ids, one sequence
per document, document_indices = 0..n). A shard's content is the documents assigned to it, in
the order given (the tokenize stage sorts them by a seeded key and writes them in
tokenizer_training.stage.shard_writer), so it is reproducible.

Shuffling and packing the documents into training samples is the trainer's job, done in one place:
model/data.py (TokenShards, PackedSamples) reads these files.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.hashing import file_sha256

SHARD_PREFIX = "shard-"


def shard_name(shard_id: int) -> str:
    return f"{SHARD_PREFIX}{shard_id:05d}"


def shard_entry(prefix, shard_id: int, n_docs: int, n_tokens: int, by_source=None, by_lang=None) -> dict:
    """The `_manifest.json` entry of the shard written at `prefix`: counts, sizes and the sha256 of
    both files, so a reader can check what it opens. Holds no timings: a re-run gives the same entry."""
    prefix = Path(prefix)
    b, i = Path(str(prefix) + ".bin"), Path(str(prefix) + ".idx")
    return {"shard": shard_id, "prefix": prefix.name, "documents": n_docs, "tokens": n_tokens,
            "bin": b.name, "bin_bytes": b.stat().st_size, "bin_sha256": file_sha256(b),
            "idx": i.name, "idx_bytes": i.stat().st_size, "idx_sha256": file_sha256(i),
            "tokens_by_source": dict(sorted((by_source or {}).items())),
            "tokens_by_lang": dict(sorted((by_lang or {}).items()))}

