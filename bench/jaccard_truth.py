"""Exact-Jaccard ground truth for near-duplicate detection: every pair of sets with J >= t.

All-pairs similarity join with prefix filtering (Chaudhuri et al. 2006; Bayardo et al. 2007):
order every element by global frequency, rarest first; a set x of size |x| keeps its first
|x| - ceil(t * |x|) + 1 elements as its prefix. Two sets with J >= t always share an element of
their prefixes, so only pairs that do are candidates; each candidate gets its exact Jaccard.
Exact, not sampled: the candidates are a superset of the answer. (Sets are dedup.shingle's
shingle hashes, the stage's own shingling.)
"""
from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _pairs_in_groups(starts, ends, docs, sizes, t):
    """All pairs (a, b), a < b, of docs sharing a prefix element whose sizes pass the length filter."""
    n = 0
    for g in range(len(starts)):
        m = ends[g] - starts[g]
        n += m * (m - 1) // 2
    a = np.empty(n, np.int64)
    b = np.empty(n, np.int64)
    k = 0
    for g in range(len(starts)):
        for i in range(starts[g], ends[g]):
            for j in range(i + 1, ends[g]):
                x, y = docs[i], docs[j]
                lo, hi = min(sizes[x], sizes[y]), max(sizes[x], sizes[y])
                if lo >= t * hi:
                    a[k] = min(x, y)
                    b[k] = max(x, y)
                    k += 1
    return a[:k], b[:k]


@numba.njit(cache=True)
def _jaccard(values, offsets, a, b):  # its own merge, not the stage's kernel: the truth must not share what it checks
    out = np.empty(len(a), np.float64)
    for k in range(len(a)):
        x = values[offsets[a[k]]:offsets[a[k] + 1]]
        y = values[offsets[b[k]]:offsets[b[k] + 1]]
        i = j = inter = 0
        while i < len(x) and j < len(y):
            if x[i] == y[j]:
                inter += 1
                i += 1
                j += 1
            elif x[i] < y[j]:
                i += 1
            else:
                j += 1
        union = len(x) + len(y) - inter
        out[k] = inter / union if union else 1.0
    return out


def similar_pairs(sets: list[np.ndarray], t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, J) for every pair of set indices a < b with exact Jaccard >= t (empty sets excluded)."""
    sizes = np.array([len(s) for s in sets], np.int64)
    flat = np.concatenate([s for s in sets if len(s)]) if sizes.sum() else np.zeros(0, np.uint64)
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    order = np.lexsort((uniq, counts))  # rarest first, ties by value
    rank = np.empty(len(uniq), np.int64)
    rank[order] = np.arange(len(uniq))
    ranks = rank[inverse]
    offsets = np.zeros(len(sets) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    values = np.empty_like(ranks)
    pre_doc, pre_elem = [], []
    for d in range(len(sets)):
        r = np.sort(ranks[offsets[d]:offsets[d + 1]])
        values[offsets[d]:offsets[d + 1]] = r
        if len(r):
            p = len(r) - math.ceil(t * len(r) - 1e-9) + 1
            pre_doc.append(np.full(p, d, np.int64))
            pre_elem.append(r[:p])
    if not pre_doc:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    pd, pe = np.concatenate(pre_doc), np.concatenate(pre_elem)
    o = np.lexsort((pd, pe))
    pd, pe = pd[o], pe[o]
    cut = np.flatnonzero(np.diff(pe)) + 1
    starts, ends = np.concatenate([[0], cut]), np.concatenate([cut, [len(pe)]])
    multi = ends - starts > 1
    a, b = _pairs_in_groups(starts[multi], ends[multi], pd, sizes, t)
    key = np.unique(a * len(sets) + b)
    a, b = key // len(sets), key % len(sets)
    j = _jaccard(values, offsets, a, b)
    keep = j >= t - 1e-12
    return a[keep], b[keep], j[keep]
