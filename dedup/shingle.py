"""Shingles for near-duplicate detection: one function, used by the MinHash stage, its accuracy
harness and the tests.

`shingle_hashes(texts, settings)` turns a string array into 64-bit shingle hashes, flat, with
per-text offsets. What a shingle is:

1. NFKC, then lower-case (Arrow's utf8proc kernels, over the whole batch).
2. Traditional Chinese is folded to Simplified (`fold_traditional`, on by default): each Han
   character goes through OpenCC's `t2s` conversion on its own, once per process, into a code
   point table, so that the two script editions of one text have the same shingles. (Character
   by character: OpenCC's phrase rules, such as 軟體 -> 软件, are word choices rather than
   script, and two editions of one text differ in script.)
3. Punctuation, symbols, separators and control characters (Unicode categories P*, S*, Z*, C*)
   become spaces.
4. Each CJK character (Han, kana, Hangul) is one token; other text splits on whitespace.
5. A shingle is `n` consecutive tokens (`n = 5` by default); a text with fewer than n tokens (but
   at least one) is one shingle; a text without tokens has none.

Tokens and shingles are hashed inside one compiled kernel (numba) that walks the UTF-8 bytes of
the batch: no Python object per token. A token hashes its code points (FNV-1a, then splitmix64's
finaliser); a shingle sums its tokens' hashes times an odd multiplier per position (so order
matters) and goes through the finaliser once.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "pipeline-numba"))
import numba  # noqa: E402  (after NUMBA_CACHE_DIR: compiled kernels are cached per user, not in the repo)

SEPARATOR, WORD, CJK = 0, 1, 2
N_CODEPOINTS = 0x110000
# Code point ranges whose every character is a token of its own (Han, kana, Hangul).
CJK_RANGES = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x3040, 0x30FF), (0x3100, 0x312F), (0x3130, 0x318F),
    (0x31A0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF),
    (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x323AF),
)


@dataclass(frozen=True)
class ShingleSettings:
    n: int = 5  # tokens per shingle
    fold_traditional: bool = True  # Traditional -> Simplified Chinese (OpenCC t2s, per character)
    opencc_config: str = "t2s"


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """classes[cp]: SEPARATOR, WORD or CJK for every code point (built once per process)."""
    cls = np.full(N_CODEPOINTS, WORD, np.uint8)
    for cp in range(N_CODEPOINTS):
        if unicodedata.category(chr(cp))[0] in "PSZC":
            cls[cp] = SEPARATOR
    for lo, hi in CJK_RANGES:
        seg = cls[lo:hi + 1]
        seg[seg == WORD] = CJK  # a CJK block's punctuation stays a separator
    return cls


@lru_cache(maxsize=4)
def fold_table(opencc_config: str | None) -> np.ndarray:
    """fold[cp]: the code point cp is shingled as (identity, or OpenCC's conversion of the single
    character when it is one character); None: identity."""
    fold = np.arange(N_CODEPOINTS, dtype=np.int32)
    if opencc_config is None:
        return fold
    import opencc

    cls = char_classes()
    han = [cp for lo, hi in CJK_RANGES for cp in range(lo, hi + 1) if cls[cp] == CJK]
    converted = opencc.OpenCC(opencc_config).convert("\n".join(chr(cp) for cp in han)).split("\n")
    if len(converted) == len(han):  # one line per character in, one out
        for cp, out in zip(han, converted):
            if len(out) == 1:
                fold[cp] = ord(out)
    return fold


def normalized(texts: pa.Array) -> pa.Array:
    """Step 1: NFKC, then lower-case."""
    return pc.utf8_lower(pc.utf8_normalize(texts, "NFKC"))


def shingle_hashes(texts, settings: ShingleSettings = ShingleSettings()) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets): uint64 shingle hashes of every text, flat, text i's at
    hashes[offsets[i]:offsets[i+1]] (in text order, repeats included)."""
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if not isinstance(arr, pa.Array):
        arr = pa.array(arr, pa.string())
    arr = normalized(arr.cast(pa.large_string()))
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    offsets = np.frombuffer(arr.buffers()[1], np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    fold = fold_table(settings.opencc_config if settings.fold_traditional else None)
    return _shingle_kernel(data, offsets.copy(), char_classes(), fold, settings.n)


def shingle_sets(texts, settings: ShingleSettings = ShingleSettings()) -> list[np.ndarray]:
    """Each text's distinct shingle hashes, sorted (what exact Jaccard is computed on)."""
    hashes, offsets = shingle_hashes(texts, settings)
    return [np.unique(hashes[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]


@numba.njit(cache=True, inline="always")
def _fmix(x):
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _shingle_kernel(data, offsets, cls, fold, n):
    n_texts = len(offsets) - 1
    longest = 0
    for t in range(n_texts):
        longest = max(longest, offsets[t + 1] - offsets[t])
    out = np.empty(len(data) + n_texts, np.uint64)  # a text never has more tokens than bytes
    out_offsets = np.zeros(n_texts + 1, np.int64)
    tokens = np.empty(longest + 1, np.uint64)  # one text's tokens at a time
    fnv_offset, fnv_prime = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
    k = 0
    for t in range(n_texts):
        i, end, n_tok = offsets[t], offsets[t + 1], 0
        h, in_word = fnv_offset, False
        while i < end:
            b = data[i]  # decode one UTF-8 code point
            if b < 0x80:
                cp, i = np.int64(b), i + 1
            elif b < 0xE0:
                cp, i = (np.int64(b & 0x1F) << 6) | (data[i + 1] & 0x3F), i + 2
            elif b < 0xF0:
                cp = (np.int64(b & 0x0F) << 12) | (np.int64(data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F)
                i += 3
            else:
                cp = ((np.int64(b & 0x07) << 18) | (np.int64(data[i + 1] & 0x3F) << 12)
                      | (np.int64(data[i + 2] & 0x3F) << 6) | (data[i + 3] & 0x3F))
                i += 4
            c = cls[cp]
            if c != WORD and in_word:  # a word ends
                tokens[n_tok] = _fmix(h)
                n_tok += 1
                h, in_word = fnv_offset, False
            if c == WORD:
                h = (h ^ np.uint64(fold[cp])) * fnv_prime
                in_word = True
            elif c == CJK:
                tokens[n_tok] = _fmix((fnv_offset ^ np.uint64(fold[cp])) * fnv_prime)
                n_tok += 1
        if in_word:
            tokens[n_tok] = _fmix(h)
            n_tok += 1
        if n_tok > 0:
            width = min(n, n_tok)
            for s in range(n_tok - width + 1):
                x = np.uint64(width) * np.uint64(0x9E3779B97F4A7C15)
                for j in range(width):  # a different odd multiplier per position: order matters
                    x += tokens[s + j] * (np.uint64(2 * j + 1) * np.uint64(0xD6E8FEB86659FD93))
                out[k] = _fmix(x)
                k += 1
        out_offsets[t + 1] = k
    return out[:k].copy(), out_offsets
