"""The vector math of semantic dedup (numpy and faiss; no Spark here): k-means on a sample, the
nearest centroid of every unit, and the duplicate pairs inside one cluster.

Vectors are L2-normalised float32 rows, so the inner product is the cosine. Inside a cluster
two rules decide which pairs are duplicates (SemDeDup's "within-cluster" step):

- `threshold`: cos(x, y) >= 1 - eps.
- `margin` (bitext mining's margin, Artetxe & Schwenk 2019, as a difference): cos(x, y) >= floor
  and cos(x, y) - (knn(x) + knn(y)) / 2 >= margin, where knn(u) is the mean cosine of u's k
  nearest neighbours in its cluster (u itself excluded). Long texts' embeddings crowd together
  (unrelated documents on one topic score 0.9 and more), so a global threshold that catches
  paraphrases also takes their neighbours; the margin asks a pair to stand out from its own
  neighbourhood instead. A text with k or more copies has those copies for neighbours and no
  margin left, so pairs at cos >= 1 - `sure` are duplicates under this rule too (near-verbatim
  copies: the mass duplicates dedup exists for).

A cluster of at most `exact_limit` units is searched exactly, in row blocks of the similarity
matrix (memory block x n, never n x n). A larger one is split by k-means into parts of about
`part_size` rows, every row joining the parts of its SPILL nearest centroids (an inverted index
with spilling, as SPANN and ScaNN spill border points), and each part is searched exactly; a row's
work is bounded by the part size, so the step grows close to linearly with the cluster and runs
as matrix products. The margin rule's k-NN means are then computed for the rows in a candidate
pair only, among the parts nearest theirs. (A faiss IVF index was the first design: with nlist ~
sqrt(n) its scans grow as n^1.5, 39x the time for 10x the units, and are not matrix products.)
Results are pairs (a, b) of row numbers, a < b, sorted: the same input gives the same pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 2048  # rows of the similarity matrix computed at a time in the exact path
SPILL = 2  # parts a row may join in a split cluster
SPILL_RATIO = 1.05  # ... the farther ones when within this ratio of the nearest's distance
# The parts' k-means: 256 sample rows per centroid and 25 iterations keep the parts even (with 64 and
# 10 the largest grew with the cluster, and with them each row's work: 1.6x per row at 10x the rows).
PART_SAMPLE = 256
PART_KMEANS_ITERATIONS = 25
KNN_POOL = 2  # a unit's k nearest neighbours are looked for in this many part sizes of rows (margin rule)


@dataclass(frozen=True)
class PairRule:
    rule: str = "threshold"  # threshold | margin
    eps: float = 0.05  # threshold: cos >= 1 - eps
    floor: float = 0.8  # margin: cos >= floor ...
    margin: float = 0.05  # ... and cos - mean(knn(a), knn(b)) >= margin
    k: int = 8  # neighbours in knn()
    sure: float = 0.0  # margin: pairs at cos >= 1 - sure are duplicates whatever their margin (0: off)

    @property
    def min_cos(self) -> float:
        return 1.0 - self.eps if self.rule == "threshold" else self.floor


def faiss_threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(max(1, n))


def train_kmeans(sample: np.ndarray, k: int, seed: int, niter: int = 20) -> np.ndarray:
    """Spherical k-means centroids (k, d) of a sample (rows in a fixed order: the result depends
    on the sample and the seed only)."""
    import faiss

    k = max(1, min(k, len(sample)))
    gpu = bool(getattr(faiss, "get_num_gpus", lambda: 0)())  # faiss-gpu installed and a GPU present
    km = faiss.Kmeans(sample.shape[1], k, niter=niter, seed=seed, spherical=True, gpu=gpu,
                      max_points_per_centroid=max(256, -(-len(sample) // k)), verbose=False)
    km.train(np.ascontiguousarray(sample, np.float32))
    return km.centroids.copy()


def nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cluster, 1 - cosine to its centroid) of each row (centroids are re-normalised). The
    distance is recomputed per row in float64: a matrix product's rounding depends on how many
    rows it is given, and the answer must not depend on how the rows were batched."""
    c = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    best = np.empty(len(x), np.int64)
    for s in range(0, len(x), BLOCK):
        best[s:s + BLOCK] = (x[s:s + BLOCK] @ c.T).argmax(1)
    sim = np.einsum("ij,ij->i", x.astype(np.float64), c[best].astype(np.float64))
    return best, (1.0 - sim).astype(np.float32)


def _exact(x: np.ndarray, min_cos: float, k: int) -> tuple:
    """(a, b, cos) of all pairs a < b with cos >= min_cos, and knn mean of every row (k > 0)."""
    n = len(x)
    a_all, b_all, s_all = [], [], []
    knn = np.zeros(n, np.float32)
    kk = min(k, n - 1)
    for s in range(0, n, BLOCK):
        sim = x[s:s + BLOCK] @ x.T
        rows = np.arange(s, min(s + BLOCK, n))
        sim[rows - s, rows] = -np.inf  # not its own neighbour
        if kk > 0:
            top = np.partition(sim, n - kk, axis=1)[:, n - kk:]
            knn[rows] = top.mean(1)
        hit = np.flatnonzero(sim.max(1) >= min_cos)  # few rows have a pair: look for them there only
        i, j = np.nonzero(sim[hit] >= min_cos)
        i = hit[i]
        keep = rows[i] < j
        a_all.append(rows[i][keep])
        b_all.append(j[keep])
        s_all.append(sim[i[keep], j[keep]])
    return np.concatenate(a_all), np.concatenate(b_all), np.concatenate(s_all).astype(np.float32), knn


def _assign_parts(x: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's parts among m spherical k-means centroids (trained on a seeded sample): (n, SPILL)
    part numbers, nearest first, -1 where a farther centroid is not within SPILL_RATIO of the
    nearest's distance (SPANN's rule: spilling to every row's second centroid would fill the
    parts whose centroids lie near the middle, as in high dimensions they are near everyone);
    and the (m, d) unit centroids."""
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.choice(len(x), min(len(x), m * PART_SAMPLE), replace=False))]
    c = train_kmeans(sample, m, seed, niter=PART_KMEANS_ITERATIONS)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    near = np.empty((len(x), SPILL), np.int64)
    for s in range(0, len(x), BLOCK):
        sim = x[s:s + BLOCK] @ c.T
        top = np.argsort(-sim, axis=1, kind="stable")[:, :SPILL]
        dist = 1.0 - np.take_along_axis(sim, top, axis=1)
        top[:, 1:][dist[:, 1:] > SPILL_RATIO * dist[:, :1]] = -1
        near[s:s + BLOCK] = top
    return near, c


def _members(labels: np.ndarray, m: int) -> list:
    """Rows of each label 0..m-1 (labels (n, w), -1 for none), each in row order."""
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(m + 1))
    return [order[bounds[j]:bounds[j + 1]] // labels.shape[1] for j in range(m)]


def _parts(x: np.ndarray, min_cos: float, part_size: int, seed: int, depth: int = 0) -> tuple:
    """All pairs (a, b, cos) at cos >= min_cos over a spilled partition: the rows are split into
    ~SPILL n / part_size parts by k-means, every row joins the parts of its nearest centroids (so
    a close pair on a border still shares a part), and each part is searched exactly (split once
    more where k-means left a part over twice the size). The work per row is bounded by the part
    size, so the whole grows linearly with n, in matrix products. Also the part labels and
    centroids (for _knn_means)."""
    n = len(x)
    m = max(2, -(-SPILL * n // part_size))
    near, c = _assign_parts(x, m, seed + depth)
    a_all, b_all, s_all = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for members in _members(near, m):
        if len(members) < 2:
            continue
        if len(members) <= 2 * part_size or depth >= 1 or len(members) > 0.9 * n:  # small, or cannot split
            a, b, s, _ = _exact(x[members], min_cos, 0)
        else:
            a, b, s, _, _ = _parts(x[members], min_cos, part_size, seed, depth + 1)
        a_all.append(members[a])
        b_all.append(members[b])
        s_all.append(s)
    a, b, s = np.concatenate(a_all), np.concatenate(b_all), np.concatenate(s_all)
    key, first = np.unique(a * n + b, return_index=True)  # a pair in two shared parts counts once
    return key // n, key % n, s[first], near, c


def _knn_means(x: np.ndarray, rows: np.ndarray, k: int, near: np.ndarray, c: np.ndarray, pool_size: int) -> np.ndarray:
    """Mean cosine of each of `rows` to its k nearest other rows, searched among the rows of the
    parts nearest its own (an inverted-file probe: a unit's neighbours lie in its own and the
    adjacent parts), taken nearest first until they hold `pool_size` rows. Only the rows in a
    candidate pair need it, so the cost is candidates x pool_size: linear in the cluster."""
    knn = np.zeros(len(x), np.float32)
    homes = _members(near[:, :1], len(c))
    sizes = np.array([len(h) for h in homes])
    home_of = near[rows, 0]
    for j in np.unique(home_of):
        probe = np.argsort(-(c @ c[j]), kind="stable")
        probe = probe[:1 + int(np.searchsorted(np.cumsum(sizes[probe]), pool_size))]
        pool = np.sort(np.concatenate([homes[p] for p in probe]))
        kk = min(k, len(pool) - 1)
        if kk <= 0:
            continue
        xp = x[pool]
        queries = np.sort(rows[home_of == j])
        for s in range(0, len(queries), BLOCK):
            q = queries[s:s + BLOCK]
            sim = x[q] @ xp.T
            sim[pool[None, :] == q[:, None]] = -np.inf  # not its own neighbour
            knn[q] = np.partition(sim, len(pool) - kk, axis=1)[:, len(pool) - kk:].mean(1)
    return knn


def cluster_pairs(x: np.ndarray, rule: PairRule, exact_limit: int, part_size: int, seed: int) -> tuple:
    """Duplicate pairs (a, b, cos) of one cluster's rows x (a < b, sorted by (a, b)) and how it
    was searched ("exact" or "parts")."""
    x = np.ascontiguousarray(x, np.float32)
    if len(x) < 2:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0, np.float32), "exact"
    k = rule.k if rule.rule == "margin" else 0
    how = "exact" if len(x) <= exact_limit else "parts"
    if how == "exact":
        a, b, s, knn = _exact(x, rule.min_cos, k)
    else:
        a, b, s, near, c = _parts(x, rule.min_cos, part_size, seed)
        knn = _knn_means(x, np.unique(np.concatenate([a, b])), k, near, c, KNN_POOL * part_size) if k else None
    if rule.rule == "margin":
        ok = (s - (knn[a] + knn[b]) / 2 >= rule.margin) | ((rule.sure > 0) & (s >= 1.0 - rule.sure))
        a, b, s = a[ok], b[ok], s[ok]
    order = np.lexsort((b, a))
    return a[order].astype(np.int64), b[order].astype(np.int64), s[order], how


def to_half(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, np.float16).tobytes()


def vectors_of(col) -> np.ndarray:
    """A binary column of float16 vectors of one dimension -> float32 (n, dim), re-normalised."""
    import pyarrow as pa

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(col) == 0:
        return np.zeros((0, 1), np.float32)
    offsets = np.frombuffer(col.buffers()[1], np.int32, count=len(col) + 1, offset=col.offset * 4)
    width = np.diff(offsets)
    if col.null_count or not (width == width[0]).all() or width[0] % 2:
        raise ValueError("vectors of different dimensions in one embedding space")
    raw = np.frombuffer(col.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].view(np.float16)
    x = raw.reshape(len(col), int(width[0]) // 2).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
