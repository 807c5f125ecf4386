"""Megatron-LM compatible indexed dataset (`.bin` + `.idx`), numpy only.

Format (Megatron-LM `indexed_dataset.py`, version 1):
  .bin  token ids of every sequence, concatenated, no header.
  .idx  magic b"MMIDIDX\\x00\\x00" | version <Q=1 | dtype code <B | sequence_count <Q |
        document_count <Q (documents + 1) | sequence_lengths int32[sequence_count] |
        sequence_pointers int64[sequence_count] (byte offsets into .bin) |
        document_indices int64[document_count] (0, then the running sequence count after each doc).
We write one sequence per document, so document_indices = arange(n + 1).
A 125,696-piece vocabulary needs int32 ids (code 4): uint16 would silently wrap.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {
    1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32,
    5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16,
}
CODE_OF_DTYPE = {np.dtype(v): k for k, v in DTYPE_CODES.items()}


class IndexedDatasetWriter:
    """Streams documents into `prefix.bin` and writes `prefix.idx` on close.

    Files are written under temporary names and renamed at close, so a crash never leaves a
    half-written pair that looks complete.
    """

    def __init__(self, prefix: str | os.PathLike, dtype=np.int32):
        self.prefix = str(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in CODE_OF_DTYPE:
            raise ValueError(f"dtype {self.dtype} is not a Megatron indexed-dataset dtype")
        self._bin_tmp = self.prefix + ".bin.tmp"
        self._bin = open(self._bin_tmp, "wb")
        self._lengths: list[int] = []

    def add_document(self, ids) -> None:
        arr = np.asarray(ids)
        if arr.size and (arr.min() < np.iinfo(self.dtype).min or arr.max() > np.iinfo(self.dtype).max):
            raise ValueError(f"token id out of range for {self.dtype}")
        self._bin.write(arr.astype(self.dtype, copy=False).tobytes(order="C"))
        self._lengths.append(int(arr.size))

    def close(self) -> None:
        self._bin.close()
        lengths = np.asarray(self._lengths, dtype=np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        doc_idx = np.arange(len(lengths) + 1, dtype=np.int64)
        idx_tmp = self.prefix + ".idx.tmp"
        with open(idx_tmp, "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<Q", VERSION))
            f.write(struct.pack("<B", CODE_OF_DTYPE[self.dtype]))
            f.write(struct.pack("<Q", len(lengths)))
            f.write(struct.pack("<Q", len(doc_idx)))
            f.write(lengths.tobytes())
            f.write(pointers.tobytes())
            f.write(doc_idx.tobytes())
        os.replace(self._bin_tmp, self.prefix + ".bin")
        os.replace(idx_tmp, self.prefix + ".idx")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self._bin.close()
            Path(self._bin_tmp).unlink(missing_ok=True)


@dataclass
class IndexedDataset:
    """Memory-mapped reader: `ds[i]` is sequence i as a numpy array (no copy)."""

    prefix: str
    dtype: np.dtype
    sequence_lengths: np.ndarray
    sequence_pointers: np.ndarray
    document_indices: np.ndarray
    tokens: np.ndarray  # the whole .bin as one flat memmap

    @classmethod
    def open(cls, prefix: str | os.PathLike) -> "IndexedDataset":
        prefix = str(prefix)
        with open(prefix + ".idx", "rb") as f:
            head = f.read(len(MAGIC) + 8 + 1 + 8 + 8)
        if head[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{prefix}.idx is not a Megatron indexed dataset (bad magic)")
        off = len(MAGIC)
        (version,) = struct.unpack_from("<Q", head, off)
        if version != VERSION:
            raise ValueError(f"{prefix}.idx has version {version}, expected {VERSION}")
        (code,) = struct.unpack_from("<B", head, off + 8)
        n_seq, n_doc = struct.unpack_from("<QQ", head, off + 9)
        dtype = np.dtype(DTYPE_CODES[code])
        idx = np.memmap(prefix + ".idx", mode="r", dtype=np.uint8)
        start = len(head)
        lengths = np.frombuffer(idx, dtype=np.int32, count=n_seq, offset=start)
        pointers = np.frombuffer(idx, dtype=np.int64, count=n_seq, offset=start + 4 * n_seq)
        docs = np.frombuffer(idx, dtype=np.int64, count=n_doc, offset=start + 12 * n_seq)
        bin_size = os.path.getsize(prefix + ".bin")
        tokens = (np.memmap(prefix + ".bin", mode="r", dtype=dtype) if bin_size
                  else np.zeros(0, dtype=dtype))
        return cls(prefix, dtype, lengths, pointers, docs, tokens)

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return self.tokens[start : start + int(self.sequence_lengths[i])]

    @property
    def num_tokens(self) -> int:
        return int(self.sequence_lengths.sum(dtype=np.int64))
