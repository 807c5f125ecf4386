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
matrix (memory block x n, never n x n); a larger one through a faiss IVF index (nlist ~ 4 sqrt(n),
`nprobe` lists probed) with range search for the threshold and k-NN search for the margin, so
the work grows close to linearly with the cluster, not quadratically. Results are pairs (a, b)
of row numbers, a < b, sorted: the same input gives the same pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 2048  # rows of the similarity matrix computed at a time in the exact path


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
        i, j = np.nonzero(sim >= min_cos)
        keep = rows[i] < j
        a_all.append(rows[i][keep])
        b_all.append(j[keep])
        s_all.append(sim[i[keep], j[keep]])
    return np.concatenate(a_all), np.concatenate(b_all), np.concatenate(s_all).astype(np.float32), knn


def _ivf(x: np.ndarray, min_cos: float, k: int, nprobe: int, seed: int) -> tuple:
    """_exact through an IVF index: range search at min_cos, k-NN for the knn means."""
    import faiss

    n, d = x.shape
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    train = x[np.sort(rng.choice(n, min(n, nlist * 64), replace=False))]
    index.train(train)
    index.add(x)
    index.nprobe = min(nprobe, nlist)
    lims, sims, ids = index.range_search(x, float(np.nextafter(np.float32(min_cos), np.float32(-1))))
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(lims.astype(np.int64)))
    ids = ids.astype(np.int64)
    lo, hi = np.minimum(rows, ids), np.maximum(rows, ids)
    keep = lo != hi
    key = lo[keep] * n + hi[keep]
    key, first = np.unique(key, return_index=True)  # a pair can be found from either side
    s = sims[keep][first].astype(np.float32)
    a, b = key // n, key % n
    ok = s >= min_cos
    knn = np.zeros(n, np.float32)
    kk = min(k, n - 1)
    if kk > 0:
        d_k, i_k = index.search(x, kk + 1)
        d_k = np.where(i_k == np.arange(n)[:, None], np.nan, d_k)  # drop itself where found
        d_k = np.where(i_k < 0, np.nan, d_k)
        srt = -np.sort(-np.nan_to_num(d_k, nan=-np.inf), axis=1)[:, :kk]
        knn = np.where(np.isfinite(srt), srt, np.nan)
        knn = np.nanmean(knn, axis=1).astype(np.float32)
    return a[ok], b[ok], s[ok], knn


def cluster_pairs(x: np.ndarray, rule: PairRule, exact_limit: int, nprobe: int, seed: int) -> tuple:
    """Duplicate pairs (a, b, cos) of one cluster's rows x (a < b, sorted by (a, b)) and how it
    was searched ("exact" or "ivf")."""
    x = np.ascontiguousarray(x, np.float32)
    if len(x) < 2:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0, np.float32), "exact"
    k = rule.k if rule.rule == "margin" else 0
    how = "exact" if len(x) <= exact_limit else "ivf"
    if how == "exact":
        a, b, s, knn = _exact(x, rule.min_cos, k)
    else:
        a, b, s, knn = _ivf(x, rule.min_cos, k, nprobe, seed)
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
