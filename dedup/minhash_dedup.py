"""`minhash-dedup`: near-duplicate documents by MinHash LSH, verified by exact Jaccard, clustered
by distributed connected components; on the two-pass engine (text never enters a shuffle).

Pass 1 (per read unit, pipeline.twopass): shingles (dedup.shingle) -> `num_perm` MinHash values
per document (dedup.minhash) -> one key per band. Written: `signatures/` (an output, so another
threshold can be tried on them), and side files of band keys and per-document facts.

Decide (Spark, over keys and hashes only):
1. Buckets: documents sharing a band key. Each bucket gives candidate pairs linking every member
   to the bucket's first document (smallest doc_pos) and to the member before it: 2 pairs per
   member at most, never quadratic. A bucket of more than `max_bucket_size` documents (a
   template, boilerplate) is linked as a chain only, so no task holds one giant star; counted as
   `giant_buckets`.
2. Verification: the distinct shingle hashes of every candidate document are computed again
   where the document lies (the per-unit tasks re-read it) and each candidate pair's exact Jaccard
   is computed; pairs at or above `threshold` are the edges. (A 128-value estimate has a standard
   deviation of ~0.035 at J = 0.8, too coarse to decide pairs near the threshold.)
3. Clusters: connected components of the edges (pipeline.components). The document kept is the
   first in corpus order (`keep: first`), or the longest (`keep: longest`), or the one with the
   highest `score_column` (`keep: score`), ties to the smallest doc_pos.
4. Every other member goes, `reason=near_duplicate`, `duplicate_of` = the kept document's id,
   `similarity` = its exact Jaccard with that document (a member linked through a chain can be
   below the threshold with the representative; it is still a near-duplicate of a neighbour).

Pass 2 (per read unit): kept/ (with `minhash_cluster_size`, 1 outside any cluster), removed/,
clusters/ (every document in a cluster: doc_pos, id, cluster_id = the cluster's smallest
doc_pos, cluster_size, representative, similarity).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.minhash import band_keys, choose_bands, jaccard_pairs, permutations, signatures
from dedup.shingle import ShingleSettings, shingle_hashes
from pipeline.components import connected_components
from pipeline.errors import UserError
from pipeline.readers import light_tasks
from pipeline.schema import removed_schema
from pipeline.stage import Stage, StageOutput
from pipeline.taskfiles import ensure_schema_file, write_part
from pipeline.twopass import _attempt, _documents, run_pass1, run_pass2, side_files

NEAR_DUPLICATE = "near_duplicate"
KEEP_CHOICES = ("first", "longest", "score")
CLUSTER_SCHEMA = pa.schema([("doc_pos", pa.int64()), ("id", pa.string()), ("cluster_id", pa.int64()),
                            ("cluster_size", pa.int64()), ("representative", pa.string()),
                            ("similarity", pa.float64())])
SIGNATURE_FIELDS = [("doc_pos", pa.int64()), ("id", pa.string()), ("n_shingles", pa.int64())]


@dataclass
class MinHashDedupConfig:
    threshold: float = 0.8  # exact Jaccard of the shingle sets at or above which two documents are near-duplicates
    num_perm: int = 128
    shingle_size: int = 5  # tokens per shingle (dedup.shingle)
    fold_traditional: bool = True  # Traditional -> Simplified Chinese before shingling
    opencc_config: str = "t2s"
    seed: int = 1  # of the permutations
    bands: int = 0  # 0 (with rows 0): chosen from the candidate threshold (dedup.minhash.choose_bands)
    rows: int = 0
    candidate_margin: float = 0.2  # the LSH curve is placed at threshold - margin (verification follows)
    false_positive_weight: float = 0.3
    false_negative_weight: float = 0.7
    max_bucket_size: int = 1000  # larger buckets are linked as a chain only
    keep: str = "first"  # which member of a cluster stays: first | longest | score
    score_column: str = ""  # for keep: score (a numeric column of the input)


def check_config(cfg) -> None:
    if not 0.0 < cfg.threshold <= 1.0:
        raise UserError(f"minhash-dedup.threshold must be in (0, 1], got {cfg.threshold}")
    if cfg.num_perm < 1 or cfg.shingle_size < 1:
        raise UserError("minhash-dedup.num_perm and shingle_size must be at least 1")
    if (cfg.bands > 0) != (cfg.rows > 0) or cfg.bands * cfg.rows > cfg.num_perm:
        raise UserError(f"minhash-dedup: set both bands and rows (bands x rows <= num_perm = {cfg.num_perm}), "
                        f"or neither; got {cfg.bands} x {cfg.rows}")
    if not 0.0 <= cfg.candidate_margin < cfg.threshold:
        raise UserError(f"minhash-dedup.candidate_margin must be in [0, threshold), got {cfg.candidate_margin}")
    if cfg.keep not in KEEP_CHOICES:
        raise UserError(f"minhash-dedup.keep must be one of {', '.join(KEEP_CHOICES)}, got {cfg.keep!r}")
    if cfg.keep == "score" and not cfg.score_column:
        raise UserError("minhash-dedup.keep: score needs minhash-dedup.score_column")
    if cfg.max_bucket_size < 2:
        raise UserError("minhash-dedup.max_bucket_size must be at least 2")


def bands_of(cfg) -> tuple[int, int]:
    if cfg.bands:
        return cfg.bands, cfg.rows
    return choose_bands(cfg.num_perm, cfg.threshold - cfg.candidate_margin, cfg.false_positive_weight,
                        cfg.false_negative_weight)


def shingle_settings(cfg) -> ShingleSettings:
    return ShingleSettings(n=cfg.shingle_size, fold_traditional=cfg.fold_traditional, opencc_config=cfg.opencc_config)


def fingerprint(cfg, bands: int, rows: int):
    """Pass 1: make(unit) -> batch -> {"docs", "bands", "signatures"} (no text)."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    settings = shingle_settings(cfg)

    def make(unit: int):
        def run(docs: pa.RecordBatch) -> dict:
            hashes, offsets = shingle_hashes(docs.column("text"), settings)
            sig = signatures(hashes, offsets, a, b)
            n_sh = np.diff(offsets)
            pos = docs.column("doc_pos").to_numpy()
            facts = {"doc_pos": pos, "unit": np.full(len(pos), unit, np.int32), "id": docs.column("id"),
                     "n_chars": pc.utf8_length(docs.column("text")).cast(pa.int64()), "n_shingles": n_sh}
            if cfg.keep == "score":
                facts["score"] = docs.column(cfg.score_column).cast(pa.float64())
            has = n_sh > 0
            keys = band_keys(sig[has], bands, rows)
            sig_col = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * cfg.num_perm), len(pos),
                                                           [None, pa.py_buffer(np.ascontiguousarray(sig).tobytes())])
            return {"docs": pa.table(facts),
                    "bands": pa.table({"doc_pos": np.repeat(pos[has], bands),
                                       "band": np.tile(np.arange(bands, dtype=np.int16), int(has.sum())),
                                       "key": keys.ravel()}),
                    "signatures": pa.table({"doc_pos": pos, "id": docs.column("id"), "n_shingles": n_sh,
                                            "signature": sig_col})}
        return run
    return make


def _frame(spark, side, name: str):
    d = side.dir(name)
    return spark.read.parquet(str(d)) if d.is_dir() and any(d.glob("*.parquet")) else None


def bucket_pairs(band: np.ndarray, key: np.ndarray, pos: np.ndarray, max_bucket: int) -> tuple:
    """(a, b, giant buckets) of band rows: in every bucket (equal band and key) each member is
    linked to the bucket's first member (smallest doc_pos) and to the member before it; buckets
    above max_bucket are linked as a chain only. Pairs may repeat (across bands)."""
    order = np.lexsort((pos, key, band))
    band, key, pos = band[order], key[order], pos[order]
    new = np.ones(len(pos), bool)
    new[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(pos)))
    group = np.cumsum(new) - 1
    first, size = pos[starts][group], sizes[group]
    prev = np.empty_like(pos)
    prev[1:] = pos[:-1]
    star = ~new & (size <= max_bucket)
    chain = ~new & ((size > max_bucket) | (prev != first))
    a = np.concatenate([first[star], prev[chain]])
    b = np.concatenate([pos[star], pos[chain]])
    return a, b, int((sizes > max_bucket).sum())


PAIR_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("giant_buckets", pa.int64())])


def candidate_pairs(spark, bands_df, max_bucket: int):
    """Distinct candidate pairs (a, b, null), a < b, and one row (-1, -1, giant buckets): the band
    rows are moved to partitions by key (Spark) and grouped there with numpy (bucket_pairs)."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    def run(batches):
        batches = list(batches)
        t = pa.Table.from_batches(batches) if batches else None
        if t is None or t.num_rows == 0:
            return
        a, b, giant = bucket_pairs(*(t.column(c).to_numpy() for c in ("band", "key", "doc_pos")), max_bucket)
        yield pa.RecordBatch.from_arrays([pa.array(a), pa.array(b), pa.array(np.zeros(len(a), np.int64))],
                                         schema=PAIR_SCHEMA)
        yield pa.RecordBatch.from_arrays([pa.array([-1]), pa.array([-1]), pa.array([giant])], schema=PAIR_SCHEMA)

    rows = bands_df.repartition(2 * spark.sparkContext.defaultParallelism, "key").mapInArrow(
        run, from_arrow_schema(PAIR_SCHEMA))
    return rows.where(F.col("a") >= 0).select("a", "b").distinct().unionByName(
        rows.where(F.col("a") < 0).groupBy("a", "b").agg(F.sum("giant_buckets").alias("giant_buckets")),
        allowMissingColumns=True)


def shingle_set_frame(ctx, plan, side, docs_df, doc_positions, settings: ShingleSettings):
    """(doc_pos, shingles: sorted distinct int64 shingle hashes) of the given documents, computed
    where they lie: each unit is read again (pass 1's parsed copy) by a task of its own group."""
    from pyspark.sql import functions as F

    need = doc_positions.distinct().join(docs_df.select("doc_pos", "unit"), "doc_pos")
    schema = SET_SCHEMA

    def run(batches):
        batches = list(batches)
        if not batches:
            return
        t = pa.Table.from_batches(batches)
        units = t.column("unit").to_numpy()
        for u in np.unique(units).tolist():
            wanted = pa.array(np.sort(t.column("doc_pos").to_numpy()[units == u]))
            for docs in _documents(plan, u, side):
                docs = docs.filter(pc.is_in(docs.column("doc_pos"), value_set=wanted))
                if docs.num_rows:
                    yield _set_batch(docs, settings, schema)

    from pyspark.sql.pandas.types import from_arrow_schema
    return need.repartition(light_tasks(ctx.spark), "unit").mapInArrow(run, from_arrow_schema(schema))


SET_SCHEMA = pa.schema([("doc_pos", pa.int64()), ("shingles", pa.binary())])


def shingle_set(hashes: np.ndarray) -> np.ndarray:
    """A document's shingle set for verification: the sorted distinct top 32 bits of its shingle
    hashes (half the bytes to move; two documents of 10^4 shingles share a false 32-bit match with
    probability ~0.02, so the Jaccard moves by ~10^-6)."""
    return np.unique((hashes >> np.uint64(32)).astype(np.uint32))


def _set_batch(docs, settings: ShingleSettings, schema: pa.Schema) -> pa.RecordBatch:
    hashes, offsets = shingle_hashes(docs.column("text"), settings)
    blobs = [shingle_set(hashes[offsets[i]:offsets[i + 1]]).tobytes() for i in range(len(offsets) - 1)]
    return pa.RecordBatch.from_arrays([docs.column("doc_pos"), pa.array(blobs, pa.binary())], schema=schema)


def _blob_parts(col) -> tuple[np.ndarray, np.ndarray]:
    """A binary column of uint32 sets -> (all values, offsets in values)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    offsets = np.frombuffer(col.buffers()[1], np.int32, count=len(col) + 1, offset=col.offset * 4).astype(np.int64)
    data = col.buffers()[2]
    values = np.frombuffer(data, np.uint32) if data is not None and len(data) else np.zeros(0, np.uint32)
    return values, offsets // 4


def with_jaccard(pairs_df, sets_df, left: str, right: str, out: str = "jaccard"):
    """pairs_df with `out`: the exact Jaccard of the shingle sets of its `left` and `right` documents."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    joined = (pairs_df.join(sets_df.select(F.col("doc_pos").alias(left), F.col("shingles").alias("_sa")), left)
              .join(sets_df.select(F.col("doc_pos").alias(right), F.col("shingles").alias("_sb")), right))
    keep = [c for c in joined.columns if c not in ("_sa", "_sb")]
    base = to_arrow_schema(joined.select(*keep).schema)
    schema = base.append(pa.field(out, pa.float64()))

    def run(batches):
        for batch in batches:
            va, oa = _blob_parts(batch.column("_sa"))
            vb, ob = _blob_parts(batch.column("_sb"))
            j = jaccard_pairs(va, oa, vb, ob)
            cols = [batch.column(c) for c in keep] + [pa.array(j)]
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    return joined.mapInArrow(run, from_arrow_schema(schema))


def representatives(labels, docs_df, keep: str):
    """(node, component, size, rep): each cluster's kept document by the `keep` rule."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sized = labels.withColumn("size", F.count(F.lit(1)).over(Window.partitionBy("component")))
    if keep == "first":
        return sized.withColumn("rep", F.col("component"))
    by = {"longest": F.col("n_chars").desc(), "score": F.col("score").desc_nulls_last()}[keep]
    cols = ["doc_pos", "n_chars"] + (["score"] if keep == "score" else [])
    ranked = sized.join(docs_df.select(*cols).withColumnRenamed("doc_pos", "node"), "node")
    best = Window.partitionBy("component").orderBy(by, F.col("node").asc())
    return ranked.withColumn("rep", F.first("node").over(best.rowsBetween(Window.unboundedPreceding, 0))) \
        .select("node", "component", "size", "rep")


def _similarity_to_rep(members, edges, sets):
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


def write_decisions(ctx, side, decisions) -> None:
    """(unit, doc_pos, component, size, rep, rep_id, similarity) -> side file `decisions`, one
    part per unit, sorted by doc_pos."""
    from pyspark.sql.pandas.types import from_arrow_schema

    directory = str(side.dir("decisions"))

    def run(batches):
        batches = list(batches)
        t = pa.Table.from_batches(batches) if batches else None
        if t is not None and t.num_rows:
            attempt = _attempt()
            units = t.column("unit").to_numpy()
            for u in np.unique(units).tolist():
                part = t.filter(pa.array(units == u)).drop_columns(["unit"]).sort_by("doc_pos")
                write_part(directory, u, attempt, part)
        yield pa.RecordBatch.from_pydict({"n": [t.num_rows if t is not None else 0]})

    decisions.repartition(light_tasks(ctx.spark), "unit").mapInArrow(
        run, from_arrow_schema(pa.schema([("n", pa.int64())]))).collect()


def decide(ctx, plan, side, cfg) -> dict:
    """The decide step; writes the per-unit decisions and returns the manifest's figures."""
    from pyspark.sql import functions as F

    spark = ctx.spark
    bands_df, docs_df = _frame(spark, side, "bands"), _frame(spark, side, "docs")
    stats = {"candidate_pairs": 0, "verified_pairs": 0, "giant_buckets": 0, "components_rounds": 0,
             "clusters": 0, "docs_in_clusters": 0, "cluster_size_histogram": {}}
    if bands_df is None:
        return stats
    rows = _materialized(spark, side, "pairs", candidate_pairs(spark, bands_df, cfg.max_bucket_size))
    pairs = rows.where(F.col("a") >= 0).select("a", "b")
    stats["candidate_pairs"] = pairs.count()
    stats["giant_buckets"] = int(rows.where(F.col("a") < 0).agg(F.sum("giant_buckets")).collect()[0][0] or 0)
    if stats["candidate_pairs"] == 0:
        return stats
    nodes = pairs.select(F.col("a").alias("doc_pos")).unionByName(pairs.select(F.col("b").alias("doc_pos")))
    sets = shingle_set_frame(ctx, plan, side, docs_df, nodes, shingle_settings(cfg))
    sets = _materialized(spark, side, "sets", sets)
    edges = with_jaccard(pairs, sets, "a", "b").where(F.col("jaccard") >= F.lit(cfg.threshold))
    edges = _materialized(spark, side, "edges", edges)
    stats["verified_pairs"] = edges.count()
    if stats["verified_pairs"] == 0:
        return stats
    cc = connected_components(edges.select(F.col("a").alias("src"), F.col("b").alias("dst")),
                              str(side.dir("_checkpoints")))
    stats["components_rounds"] = cc.rounds
    members = representatives(cc.labels, docs_df, cfg.keep)
    removed = _similarity_to_rep(members.where(F.col("node") != F.col("rep")), edges, sets)
    kept = members.where(F.col("node") == F.col("rep")).withColumn("similarity", F.lit(1.0))
    ids = docs_df.select(F.col("doc_pos").alias("rep"), F.col("id").alias("rep_id"))
    units = docs_df.select(F.col("doc_pos").alias("node"), "unit")
    decisions = (removed.unionByName(kept).join(ids, "rep").join(units, "node")
                 .select("unit", F.col("node").alias("doc_pos"), "component", "size", "rep", "rep_id", "similarity"))
    write_decisions(ctx, side, decisions)
    hist = members.where(F.col("node") == F.col("rep")).groupBy("size").count().collect()
    stats["cluster_size_histogram"] = {str(r["size"]): r["count"] for r in sorted(hist, key=lambda r: r["size"])}
    stats["clusters"] = sum(r["count"] for r in hist)
    stats["docs_in_clusters"] = sum(r["size"] * r["count"] for r in hist)
    return stats


def _materialized(spark, side, name: str, df):
    """df written once to side files `name` and read back: computed once, however often it is used."""
    df.write.parquet(str(side.dir(name)))
    return spark.read.parquet(str(side.dir(name)))


def output_schemas(doc_schema: pa.Schema) -> dict:
    return {"kept": doc_schema.append(pa.field("minhash_cluster_size", pa.int64())),
            "removed": removed_schema(doc_schema).append(pa.field("similarity", pa.float64())),
            "clusters": CLUSTER_SCHEMA}


def applier(side, schemas: dict):
    """Pass 2: make_applier(unit, ids) for run_pass2."""
    def make(unit: int, _ids: dict):
        dec = side.read("decisions", unit)
        pos = dec.column("doc_pos").to_numpy() if dec is not None else np.zeros(0, np.int64)

        def apply(docs: pa.RecordBatch) -> dict:
            p = docs.column("doc_pos").to_numpy()
            at = np.minimum(np.searchsorted(pos, p), max(len(pos) - 1, 0))
            member = (pos[at] == p) if len(pos) else np.zeros(len(p), bool)
            take = pa.array(at[member])
            rows = dec.take(take) if len(pos) else None
            size = np.ones(len(p), np.int64)
            gone = np.zeros(len(p), bool)
            if rows is not None and rows.num_rows:
                size[member] = rows.column("size").to_numpy()
                gone[member] = rows.column("rep").to_numpy() != p[member]
            table = pa.Table.from_batches([docs])
            kept = table.append_column("minhash_cluster_size", pa.array(size)).filter(pa.array(~gone))
            out = {"kept": kept.cast(schemas["kept"])}
            if rows is not None and rows.num_rows:
                in_cluster = table.filter(pa.array(member))
                clusters = pa.table({"doc_pos": in_cluster.column("doc_pos"), "id": in_cluster.column("id"),
                                     "cluster_id": rows.column("component"), "cluster_size": rows.column("size"),
                                     "representative": rows.column("rep_id"), "similarity": rows.column("similarity")},
                                    schema=CLUSTER_SCHEMA)
                sel = pa.array(rows.column("rep").to_numpy() != in_cluster.column("doc_pos").to_numpy())
                removed = in_cluster.filter(sel)
                r = rows.filter(sel)
                removed = (removed.append_column("reason", pa.array([NEAR_DUPLICATE] * removed.num_rows, pa.string()))
                           .append_column("duplicate_of", r.column("rep_id"))
                           .append_column("similarity", r.column("similarity")))
                out["removed"] = removed.cast(schemas["removed"])
                out["clusters"] = clusters
            return out
        return apply
    return make


class MinHashDedupStage(Stage):
    name = "minhash-dedup"
    config_class = MinHashDedupConfig
    description = "near-duplicate documents: MinHash LSH, exact Jaccard verification, connected components"

    def check(self, cfg) -> None:
        check_config(cfg)

    def run_units(self, ctx, plan) -> StageOutput:
        cfg = ctx.config
        if cfg.keep == "score" and cfg.score_column not in plan.doc_schema.names:
            raise UserError(f"minhash-dedup.score_column {cfg.score_column!r} is not a column of the input "
                            f"(columns: {', '.join(plan.doc_schema.names)})")
        side = side_files(ctx)
        bands, rows = bands_of(cfg)
        with ctx.timed("signatures"):
            counts = run_pass1(ctx, plan, fingerprint(cfg, bands, rows), side)
        sig_dir = ctx.work_dir / "signatures"
        if side.dir("signatures").is_dir():
            shutil.move(str(side.dir("signatures")), str(sig_dir))
        ensure_schema_file(sig_dir, pa.schema(SIGNATURE_FIELDS + [("signature", pa.binary(4 * cfg.num_perm))]))
        with ctx.timed("decide"):
            stats = decide(ctx, plan, side, cfg)
        ctx.log(f"{stats['candidate_pairs']:,} candidate pairs, {stats['verified_pairs']:,} verified, "
                f"{stats['clusters']:,} clusters of {stats['docs_in_clusters']:,} documents")
        schemas = output_schemas(plan.doc_schema)
        with ctx.timed("apply"):
            run_pass2(ctx, plan, applier(side, schemas), schemas, ctx.spark.sparkContext.emptyRDD())
        side.remove()
        stats.update({"bands": bands, "rows": rows, "num_perm": cfg.num_perm,
                      "candidate_threshold": round(cfg.threshold - cfg.candidate_margin, 6)})
        return StageOutput(written=("kept", "removed", "clusters"), removal_order=(NEAR_DUPLICATE,),
                           input_counts=counts, stats={"minhash": stats, "report": report(ctx.work_dir, stats)})


def example_pairs(work_dir, n: int = 4, chars: int = 300) -> list:
    """A few removed documents beside the document kept for them: [id, similarity, removed text,
    kept id, kept text], spread over the similarity range (from the first removed/ files)."""
    import pyarrow.dataset as ds

    files = sorted((work_dir / "removed").glob("*.parquet"))
    rows = []
    for f in files:
        t = ds.dataset(str(f)).to_table(columns=["id", "text", "duplicate_of", "similarity"])
        rows += t.to_pylist()
        if len(rows) >= 50 * n:
            break
    if not rows:
        return []
    rows.sort(key=lambda r: r["similarity"])
    picked = [rows[round(i * (len(rows) - 1) / max(1, n - 1))] for i in range(min(n, len(rows)))]
    kept = ds.dataset(str(work_dir / "kept")).to_table(
        columns=["id", "text"], filter=ds.field("id").isin([r["duplicate_of"] for r in picked]))
    text_of = dict(zip(kept.column("id").to_pylist(), kept.column("text").to_pylist()))
    return [[r["id"], round(r["similarity"], 3), r["text"][:chars], r["duplicate_of"],
             (text_of.get(r["duplicate_of"]) or "")[:chars]] for r in picked]


def report(work_dir, stats: dict) -> dict:
    """The report's table of figures, example pairs and cluster-size plot (cluster_sizes.png)."""
    figures = []
    hist = {int(k): v for k, v in stats["cluster_size_histogram"].items()}
    if hist:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.2))
        sizes = sorted(hist)
        ax.bar([str(s) for s in sizes], [hist[s] for s in sizes], color="#4a7ab5")
        ax.set_yscale("log")
        ax.set_xlabel("documents in the cluster")
        ax.set_ylabel("clusters")
        ax.set_title("Near-duplicate clusters by size")
        fig.tight_layout()
        fig.savefig(work_dir / "cluster_sizes.png", dpi=110)
        plt.close(fig)
        figures.append({"title": "Near-duplicate cluster sizes", "path": "cluster_sizes.png"})
    keys = ("bands", "rows", "candidate_threshold", "candidate_pairs", "verified_pairs", "giant_buckets",
            "components_rounds", "clusters", "docs_in_clusters")
    tables = [{"title": "MinHash LSH", "columns": ["figure", "value"], "rows": [[k, stats.get(k)] for k in keys]}]
    examples = example_pairs(work_dir)
    if examples:
        tables.append({"title": "Example near-duplicates (removed, and the document kept for it)",
                       "columns": ["removed id", "similarity", "removed text", "kept id", "kept text"],
                       "rows": examples})
    return {"tables": tables, "figures": figures}


STAGE = MinHashDedupStage()
