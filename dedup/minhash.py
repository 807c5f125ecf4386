"""MinHash signatures, LSH banding and exact Jaccard: the kernels of the `minhash-dedup` stage.

Permutations: `num_perm` seeded hash functions over the 64-bit shingle hashes,
    h_p(x) = ((a_p * x + b_p) mod 2^64) >> 32,   a_p odd, a_p and b_p from the seed,
Dietzfelbinger's multiply-add-shift family: 2-universal from 64 to 32 bits, so over shingle
hashes that are already uniform 64-bit values the position of each set's minimum is uniform and
P[min h_p(A) == min h_p(B)] = J(A, B) up to 32-bit ties (~|A ∪ B| / 2^32). tests/test_minhash.py
checks the estimator against exact Jaccard. One multiply and one add per shingle and
permutation, which the compiled kernel runs as vector instructions.

Banding: `choose_bands` picks bands x rows <= num_perm minimising the weighted false-positive /
false-negative probability of the S-curve 1 - (1 - s^r)^b (text-dedup's criterion) at the
*candidate* threshold. Every candidate is verified by exact Jaccard afterwards, so a false positive
only costs a verification while a false negative is lost for good: the candidate threshold sits
below the verification threshold (by default 0.2 below), where the curve's misses no longer matter.
"""
from __future__ import annotations

import numba
import numpy as np

from dedup import shingle as _shingle  # noqa: F401  (sets NUMBA_CACHE_DIR before any kernel compiles)
from pipeline.hashing import mix64

EMPTY = np.uint32(0xFFFFFFFF)  # every slot of the signature of a text without shingles


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): the num_perm hash functions' multipliers (odd) and offsets, from the seed alone."""
    with np.errstate(over="ignore"):
        base = mix64(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.arange(2 * num_perm, dtype=np.uint64))
        a = mix64(base[:num_perm]) | np.uint64(1)
        b = mix64(base[num_perm:] ^ np.uint64(0xD6E8FEB86659FD93))
    return a, b


@numba.njit(cache=True)
def _signatures(hashes, offsets, a, b):
    n, k = len(offsets) - 1, len(a)
    sig = np.full((n, k), 0xFFFFFFFF, np.uint64)
    shift = np.uint64(32)
    for d in range(n):
        row = sig[d]
        for i in range(offsets[d], offsets[d + 1]):
            x = hashes[i]
            for p in range(k):
                v = (a[p] * x + b[p]) >> shift
                if v < row[p]:
                    row[p] = v
    return sig.astype(np.uint32)


def signatures(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint32 [texts, num_perm]: each text's MinHash signature (EMPTY where it has no shingles)."""
    return _signatures(hashes, offsets, a, b)


def s_curve(s, bands: int, rows: int):
    """Probability that two texts of Jaccard s share at least one band."""
    return 1.0 - (1.0 - np.asarray(s, np.float64) ** rows) ** bands


def choose_bands(num_perm: int, threshold: float, fp_weight: float = 0.3, fn_weight: float = 0.7) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising fp_weight * (area under the S-curve
    below threshold) + fn_weight * (area above it that the curve misses)."""
    below, above = np.linspace(0.0, threshold, 401), np.linspace(threshold, 1.0, 401)
    best = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(s_curve(below, bands, rows), below)
            fn = np.trapezoid(1.0 - s_curve(above, bands, rows), above)
            err = fp_weight * fp + fn_weight * fn
            if best is None or err < best[0] - 1e-12:
                best = (err, bands, rows)
    return best[1], best[2]


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """int64 [texts, bands]: one hash per band of rows signature values (and the band's number),
    so texts share a key exactly when they agree on a whole band (up to 64-bit collisions)."""
    sig = sig.astype(np.uint64)
    out = np.empty((sig.shape[0], bands), np.uint64)
    with np.errstate(over="ignore"):
        for j in range(bands):
            h = np.full(sig.shape[0], np.uint64(0x2545F4914F6CDD1D) * np.uint64(j + 1), np.uint64)
            for r in range(rows):
                h = mix64(h ^ sig[:, j * rows + r])
            out[:, j] = h
    return out.view(np.int64)


@numba.njit(cache=True)
def _sorted_intersection(x, y):
    i = j = n = 0
    while i < len(x) and j < len(y):
        if x[i] == y[j]:
            n += 1
            i += 1
            j += 1
        elif x[i] < y[j]:
            i += 1
        else:
            j += 1
    return n


@numba.njit(cache=True)
def _jaccard_pairs(values_a, offsets_a, values_b, offsets_b):
    n = len(offsets_a) - 1
    out = np.empty(n, np.float64)
    for k in range(n):
        x = values_a[offsets_a[k]:offsets_a[k + 1]]
        y = values_b[offsets_b[k]:offsets_b[k + 1]]
        union = len(x) + len(y)
        if union == 0:
            out[k] = 1.0
            continue
        inter = _sorted_intersection(x, y)
        out[k] = inter / (union - inter)
    return out


def jaccard_pairs(values_a, offsets_a, values_b, offsets_b) -> np.ndarray:
    """Exact Jaccard of pairs of sorted distinct hash sets (pair k: a's values[offsets[k]:offsets[k+1]])."""
    return _jaccard_pairs(np.asarray(values_a), np.asarray(offsets_a, np.int64),
                          np.asarray(values_b), np.asarray(offsets_b, np.int64))
