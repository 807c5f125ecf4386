"""Batch encoding of documents with a SentencePiece model, loaded once per process.

`encode_texts` is the hot path of the `tokenize` stage: SentencePiece's batch
`encode(list, num_threads=...)` over a batch of documents, ids as one flat int32 buffer plus
offsets (an Arrow list<int32> array without a Python list per token), `</s>` appended.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.models import load_once, locate

_ENCODE_CPU_S = [0.0]  # CPU seconds this process has spent inside SentencePiece's encode


def encode_cpu_seconds() -> float:
    """CPU seconds spent inside SentencePiece by encode_texts in this process so far: the stage
    reports it, so what it spends on everything else is measured in the same run."""
    return _ENCODE_CPU_S[0]


def resolve_model_path(path: str | os.PathLike) -> str:
    """A tokenizer.model file, or a directory holding one (a train-tokenizer output); on a worker,
    the copy the driver shipped (pipeline.models)."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.model"
    try:
        return locate(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"SentencePiece model not found: {path}") from None


def _sentencepiece(path: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=path)


def load_sentencepiece(path: str | os.PathLike):
    """The SentencePieceProcessor for `path`, loaded once per process."""
    return load_once(resolve_model_path(path), _sentencepiece)


def encode_texts(sp, texts: list[str], *, eos_id: int | None, num_threads: int = 1) -> pa.ListArray:
    """Ids of each text (+ eos) as an Arrow list<int32> array."""
    if not texts:
        return pa.array([], pa.list_(pa.int32()))
    t0 = time.process_time()
    if num_threads <= 1:  # one call per text: no thread-pool round trip per batch
        enc = sp.encode
        ids = [enc(t) for t in texts]
    else:
        ids = sp.encode(texts, num_threads=num_threads)
    _ENCODE_CPU_S[0] += time.process_time() - t0
    extra = 1 if eos_id is not None else 0
    lengths = np.fromiter((len(x) + extra for x in ids), dtype=np.int64, count=len(ids))
    total = int(lengths.sum())
    if total >= 2**31:
        raise ValueError("batch too large for int32 list offsets; lower batch_docs")
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.empty(total, dtype=np.int32)
    pos = 0
    for x in ids:
        n = len(x)
        flat[pos:pos + n] = x
        pos += n
        if extra:
            flat[pos] = eos_id
            pos += 1
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def encode_batch(batch, model_path: str, *, text_column: str = "text", append_eos: bool = True,
                 num_threads: int = 1, batch_docs: int = 256) -> pa.RecordBatch:
    """A pyarrow RecordBatch (or pandas DataFrame) of documents -> the same columns without the
    text, plus input_ids list<int32> (</s> appended), n_tokens, n_chars and n_bytes."""
    if not isinstance(batch, (pa.RecordBatch, pa.Table)):
        batch = pa.RecordBatch.from_pandas(batch, preserve_index=False)
    sp = load_sentencepiece(model_path)
    eos = sp.eos_id() if append_eos else None
    if append_eos and eos < 0:
        raise ValueError("the model has no </s> piece (eos_id < 0) but append_eos is set")
    texts = batch.column(text_column).to_pylist()
    parts = [encode_texts(sp, texts[i:i + batch_docs], eos_id=eos, num_threads=num_threads)
             for i in range(0, len(texts), batch_docs)] or [pa.array([], pa.list_(pa.int32()))]
    ids = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    text_arr = batch.column(text_column)
    import pyarrow.compute as pc

    n_chars = pc.utf8_length(text_arr).cast(pa.int64())
    n_bytes = pc.binary_length(text_arr).cast(pa.int64())
    n_tokens = pc.list_value_length(ids).cast(pa.int64())
    cols, names = [], []
    for name in batch.schema.names:
        if name != text_column:
            cols.append(batch.column(name))
            names.append(name)
    cols += [ids, n_tokens, n_chars, n_bytes]
    names += ["input_ids", "n_tokens", "n_chars", "n_bytes"]
    return pa.RecordBatch.from_arrays(cols, names=names)
