"""The decide step of near-duplicate detection, for any kind of item (documents, paragraphs):
LSH buckets -> candidate pairs -> exact-Jaccard verification -> connected components -> one
representative per cluster. Spark moves keys, hashes and decisions only; shingle sets are
computed again where the items lie (each read unit re-read by one task).

Items are int64 `node`s in corpus order (a document's doc_pos; for paragraphs (unit << 40 | the
paragraph's number in its unit)). `facts` (node, unit, doc_pos, start, end, n_chars[, score])
say where an item's text is: text[start:end] of document doc_pos, end = -1 for the whole text.

Candidate pairs: in each bucket (items sharing a band key) every member is linked to the bucket's
first item and to the item before it: at most 2 pairs per member, never quadratic; a bucket of
more than max_bucket items is linked as a chain only (no task holds a giant star) and counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.minhash import jaccard_pairs
from dedup.shingle import ShingleSettings, shingle_hashes
from pipeline.components import connected_components
from pipeline.readers import light_tasks
from pipeline.twopass import materialized, unit_documents


@dataclass
class Clusters:
    members: object  # DataFrame (node, component, size, rep, similarity), or None
    stats: dict


def bucket_pairs(band: np.ndarray, key: np.ndarray, node: np.ndarray, max_bucket: int) -> tuple:
    """(a, b, giant buckets) of band rows: in every bucket (equal band and key) each member is
    linked to the bucket's first member (smallest node) and to the member before it; buckets
    above max_bucket are linked as a chain only. Pairs may repeat (across bands)."""
    order = np.lexsort((node, key, band))
    band, key, node = band[order], key[order], node[order]
    new = np.ones(len(node), bool)
    new[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(node)))
    group = np.cumsum(new) - 1
    first, size = node[starts][group], sizes[group]
    prev = np.empty_like(node)
    prev[1:] = node[:-1]
    star = ~new & (size <= max_bucket)
    chain = ~new & ((size > max_bucket) | (prev != first))
    a = np.concatenate([first[star], prev[chain]])
    b = np.concatenate([node[star], node[chain]])
    return a, b, int((sizes > max_bucket).sum())


PAIR_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("giant_buckets", pa.int64())])
# A task groups about this many band rows at most (~50 MB of numpy work), however large the
# corpus: the number of tasks grows with the input instead of each task's memory.
BAND_ROWS_PER_TASK = 2_000_000


def candidate_pairs(spark, bands_df, max_bucket: int):
    """Distinct candidate pairs (a, b, null), a < b, and one row (-1, -1, giant buckets): the band
    rows (node, band, key) are moved to partitions by key (Spark) and grouped there with numpy."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    def run(batches):
        batches = list(batches)
        t = pa.Table.from_batches(batches) if batches else None
        if t is None or t.num_rows == 0:
            return
        a, b, giant = bucket_pairs(*(t.column(c).to_numpy() for c in ("band", "key", "node")), max_bucket)
        yield pa.RecordBatch.from_arrays([pa.array(a), pa.array(b), pa.array(np.zeros(len(a), np.int64))],
                                         schema=PAIR_SCHEMA)
        yield pa.RecordBatch.from_arrays([pa.array([-1]), pa.array([-1]), pa.array([giant])], schema=PAIR_SCHEMA)

    n_parts = max(2 * spark.sparkContext.defaultParallelism, -(-bands_df.count() // BAND_ROWS_PER_TASK))
    rows = bands_df.repartition(n_parts, "key").mapInArrow(run, from_arrow_schema(PAIR_SCHEMA))
    return rows.where(F.col("a") >= 0).select("a", "b").distinct().unionByName(
        rows.where(F.col("a") < 0).groupBy("a", "b").agg(F.sum("giant_buckets").alias("giant_buckets")),
        allowMissingColumns=True)


SET_SCHEMA = pa.schema([("node", pa.int64()), ("shingles", pa.binary())])


def shingle_set(hashes: np.ndarray) -> np.ndarray:
    """An item's shingle set for verification: the sorted distinct top 32 bits of its shingle
    hashes (half the bytes to move; two items of 10^4 shingles share a false 32-bit match with
    probability ~0.02, so the Jaccard moves by ~10^-6)."""
    return np.unique((hashes >> np.uint64(32)).astype(np.uint32))


def _set_batch(nodes, texts: pa.Array, settings: ShingleSettings) -> pa.RecordBatch:
    hashes, offsets = shingle_hashes(texts, settings)
    blobs = [shingle_set(hashes[offsets[i]:offsets[i + 1]]).tobytes() for i in range(len(offsets) - 1)]
    return pa.RecordBatch.from_arrays([pa.array(nodes, pa.int64()), pa.array(blobs, pa.binary())], schema=SET_SCHEMA)


def _unit_sets(plan, side, unit: int, need: pa.Table, settings: ShingleSettings):
    """The shingle sets of a unit's needed items (need: node, doc_pos, start, end)."""
    need = need.sort_by("doc_pos")
    wanted = pc.unique(need.column("doc_pos"))
    for docs in unit_documents(plan, unit, side):
        docs = docs.filter(pc.is_in(docs.column("doc_pos"), value_set=wanted))
        if docs.num_rows == 0:
            continue
        text_of = dict(zip(docs.column("doc_pos").to_pylist(), docs.column("text").to_pylist()))
        rows = need.filter(pc.is_in(need.column("doc_pos"), value_set=docs.column("doc_pos")))
        nodes, texts = [], []
        for node, pos, s, e in zip(*(rows.column(c).to_pylist() for c in ("node", "doc_pos", "start", "end"))):
            text = text_of[pos]
            nodes.append(node)
            texts.append(text if e < 0 else text[s:e])
        yield _set_batch(nodes, pa.array(texts, pa.string()), settings)


def item_sets(spark, plan, side, facts_df, nodes_df, settings: ShingleSettings):
    """(node, shingles) of the given items, computed where they lie, one task per group of units."""
    from pyspark.sql.pandas.types import from_arrow_schema

    need = nodes_df.distinct().join(facts_df.select("node", "unit", "doc_pos", "start", "end"), "node")

    def run(batches):
        batches = list(batches)
        if not batches:
            return
        t = pa.Table.from_batches(batches)
        units = t.column("unit").to_numpy()
        for u in np.unique(units).tolist():
            yield from _unit_sets(plan, side, u, t.filter(pa.array(units == u)), settings)

    return need.repartition(light_tasks(spark), "unit").mapInArrow(run, from_arrow_schema(SET_SCHEMA))


def _blob_parts(col) -> tuple[np.ndarray, np.ndarray]:
    """A binary column of uint32 sets -> (all values, offsets in values)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    offsets = np.frombuffer(col.buffers()[1], np.int32, count=len(col) + 1, offset=col.offset * 4).astype(np.int64)
    data = col.buffers()[2]
    values = np.frombuffer(data, np.uint32) if data is not None and len(data) else np.zeros(0, np.uint32)
    return values, offsets // 4


def with_jaccard(pairs_df, sets_df, left: str, right: str, out: str = "jaccard"):
    """pairs_df with `out`: the exact Jaccard of the shingle sets of its `left` and `right` items."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    joined = (pairs_df.join(sets_df.select(F.col("node").alias(left), F.col("shingles").alias("_sa")), left)
              .join(sets_df.select(F.col("node").alias(right), F.col("shingles").alias("_sb")), right))
    keep = [c for c in joined.columns if c not in ("_sa", "_sb")]
    schema = to_arrow_schema(joined.select(*keep).schema).append(pa.field(out, pa.float64()))

    def run(batches):
        for batch in batches:
            va, oa = _blob_parts(batch.column("_sa"))
            vb, ob = _blob_parts(batch.column("_sb"))
            j = jaccard_pairs(va, oa, vb, ob)
            yield pa.RecordBatch.from_arrays([batch.column(c) for c in keep] + [pa.array(j)], schema=schema)

    return joined.mapInArrow(run, from_arrow_schema(schema))


def representatives(labels, facts_df, keep: str):
    """(node, component, size, rep): each cluster's kept item by the `keep` rule (first in corpus
    order, longest, highest score, or farthest from its k-means centroid (`distance`, semantic
    dedup); ties to the first)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sized = labels.withColumn("size", F.count(F.lit(1)).over(Window.partitionBy("component")))
    if keep == "first":
        return sized.withColumn("rep", F.col("component"))
    column = {"longest": "n_chars", "score": "score", "farthest": "distance"}[keep]
    by = F.col(column).desc_nulls_last()
    ranked = sized.join(facts_df.select("node", column), "node")
    best = Window.partitionBy("component").orderBy(by, F.col("node").asc())
    return ranked.withColumn("rep", F.first("node").over(best.rowsBetween(Window.unboundedPreceding, 0))) \
        .select("node", "component", "size", "rep")


def similarity_to_rep(members, edges, sets):
    """members (node, rep, ...) with `similarity`: the exact Jaccard of node and rep, taken from the
    verified edge between them where there is one, else computed from their shingle sets."""
    from pyspark.sql import functions as F

    direct = edges.select(F.greatest("a", "b").alias("_hi"), F.least("a", "b").alias("_lo"),
                          F.col("jaccard").alias("similarity"))
    keyed = members.withColumn("_hi", F.greatest("node", "rep")).withColumn("_lo", F.least("node", "rep"))
    have = keyed.join(direct, ["_hi", "_lo"]).drop("_hi", "_lo")
    rest = with_jaccard(keyed.join(direct, ["_hi", "_lo"], "left_anti").drop("_hi", "_lo"), sets, "node", "rep",
                        "similarity")
    return have.unionByName(rest)


def cluster_items(spark, plan, side, prefix: str, bands_df, facts_df, threshold: float, max_bucket: int,
                  keep: str, settings: ShingleSettings) -> Clusters:
    """Buckets, verification and components of one kind of item; side files are named prefix_*."""
    from pyspark.sql import functions as F

    stats = {"candidate_pairs": 0, "verified_pairs": 0, "giant_buckets": 0, "components_rounds": 0,
             "clusters": 0, "items_in_clusters": 0, "cluster_size_histogram": {}}
    rows = materialized(spark, side, f"{prefix}_pairs", candidate_pairs(spark, bands_df, max_bucket))
    pairs = rows.where(F.col("a") >= 0).select("a", "b")
    stats["candidate_pairs"] = pairs.count()
    stats["giant_buckets"] = int(rows.where(F.col("a") < 0).agg(F.sum("giant_buckets")).collect()[0][0] or 0)
    if stats["candidate_pairs"] == 0:
        return Clusters(None, stats)
    nodes = pairs.select(F.col("a").alias("node")).unionByName(pairs.select(F.col("b").alias("node")))
    sets = materialized(spark, side, f"{prefix}_sets", item_sets(spark, plan, side, facts_df, nodes, settings))
    edges = with_jaccard(pairs, sets, "a", "b").where(F.col("jaccard") >= F.lit(threshold))
    edges = materialized(spark, side, f"{prefix}_edges", edges)
    stats["verified_pairs"] = edges.count()
    if stats["verified_pairs"] == 0:
        return Clusters(None, stats)
    cc = connected_components(edges.select(F.col("a").alias("src"), F.col("b").alias("dst")),
                              str(side.dir(f"{prefix}_checkpoints")))
    stats["components_rounds"] = cc.rounds
    members = representatives(cc.labels, facts_df, keep)
    removed = similarity_to_rep(members.where(F.col("node") != F.col("rep")), edges, sets)
    kept = members.where(F.col("node") == F.col("rep")).withColumn("similarity", F.lit(1.0))
    members = materialized(spark, side, f"{prefix}_members", removed.unionByName(kept))
    hist = members.where(F.col("node") == F.col("rep")).groupBy("size").count().collect()
    stats["cluster_size_histogram"] = {str(r["size"]): r["count"] for r in sorted(hist, key=lambda r: r["size"])}
    stats["clusters"] = sum(r["count"] for r in hist)
    stats["items_in_clusters"] = sum(r["size"] * r["count"] for r in hist)
    return Clusters(members, stats)
