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

Paragraph level (`paragraph`, on by default; where the span policy lets paragraphs of the
document's language be cut, so never in code): every paragraph of at least `min_paragraph_chars`
characters of a document that survives the document level is an item of its own, with the same
shingles, signatures, banding, verification and components (dedup.lsh). In each cluster the first
occurrence in corpus order stays; every other occurrence is cut through the core's span-cutting
path (pipeline.spans) into removed_spans/ with level=paragraph, reason=near_duplicate,
duplicate_of = the id of the document holding the first occurrence and score = the exact
Jaccard with it. A document left with fewer than `min_doc_chars_after_paragraph_dedup`
characters is removed as `too_short_after_near_dup_paragraphs`.

Pass 2 (per read unit): kept/ (with `minhash_cluster_size`, 1 outside any cluster), removed/,
removed_spans/, clusters/ (every document in a cluster: doc_pos, id, cluster_id = the cluster's
smallest doc_pos, cluster_size, representative, similarity).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.lsh import cluster_items
from dedup.minhash import band_keys, choose_bands, permutations, signatures
from dedup.shingle import ShingleSettings, shingle_hashes
from pipeline.errors import UserError
from pipeline.schema import removed_schema
from pipeline.spanpolicy import PARAGRAPH, SpanPolicy, candidate_spans
from pipeline.spans import REMOVED_SPAN_SCHEMA, choose_outermost, cuts_table, split_outputs
from pipeline.stage import Stage, StageOutput
from pipeline.taskfiles import ensure_schema_file
from pipeline.twopass import decision_rows, frame, run_pass1, run_pass2, side_files, write_by_unit

NEAR_DUPLICATE = "near_duplicate"
TOO_SHORT = "too_short_after_near_dup_paragraphs"
ITEM_SHIFT = 40  # a paragraph's node: unit << 40 | its number in the unit (corpus order)
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
    paragraph: bool = True  # near-duplicate paragraphs across documents (prose, per the span policy)
    min_paragraph_chars: int = 200  # shorter paragraphs are never items (too few shingles to judge)
    min_doc_chars_after_paragraph_dedup: int = 50


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


def fingerprint(cfg, bands: int, rows: int, policy: SpanPolicy):
    """Pass 1: make(unit) -> batch -> {"docs", "bands", "signatures", and for paragraphs
    "items", "item_bands"} (keys, offsets and signatures; no text)."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    settings = shingle_settings(cfg)

    def signed(texts) -> tuple:
        hashes, offsets = shingle_hashes(texts, settings)
        sig = signatures(hashes, offsets, a, b)
        n_sh = np.diff(offsets)
        return sig, n_sh, band_keys(sig[n_sh > 0], bands, rows)

    def band_rows(nodes, n_sh, keys) -> pa.Table:
        has = n_sh > 0
        return pa.table({"node": np.repeat(nodes[has], bands), "key": keys.ravel(),
                         "band": np.tile(np.arange(bands, dtype=np.int16), int(has.sum()))})

    def make(unit: int):
        n_items = [0]  # paragraphs numbered in unit order across the unit's batches

        def run(docs: pa.RecordBatch) -> dict:
            sig, n_sh, keys = signed(docs.column("text"))
            pos = docs.column("doc_pos").to_numpy()
            facts = {"node": pos, "unit": np.full(len(pos), unit, np.int32), "doc_pos": pos,
                     "start": np.zeros(len(pos), np.int32), "end": np.full(len(pos), -1, np.int32),
                     "id": docs.column("id"), "n_chars": pc.utf8_length(docs.column("text")).cast(pa.int64()),
                     "n_shingles": n_sh}
            if cfg.keep == "score":
                facts["score"] = docs.column(cfg.score_column).cast(pa.float64())
            sig_col = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * cfg.num_perm), len(pos),
                                                           [None, pa.py_buffer(np.ascontiguousarray(sig).tobytes())])
            out = {"docs": pa.table(facts), "bands": band_rows(pos, n_sh, keys),
                   "signatures": pa.table({"doc_pos": pos, "id": docs.column("id"), "n_shingles": n_sh,
                                           "signature": sig_col})}
            if cfg.paragraph:
                out.update(paragraph_items(docs))
            return out

        def paragraph_items(docs) -> dict:
            texts, langs = docs.column("text").to_pylist(), docs.column("lang").to_pylist()
            item_pos, starts, ends, pieces = [], [], [], []
            for text, lang, p in zip(texts, langs, docs.column("doc_pos").to_pylist()):
                if PARAGRAPH not in policy.levels(lang):
                    continue
                for _, s, e in candidate_spans(text, frozenset([PARAGRAPH])):
                    if e - s >= cfg.min_paragraph_chars:
                        item_pos.append(p)
                        starts.append(s)
                        ends.append(e)
                        pieces.append(text[s:e])
            if not pieces:
                return {}
            nodes = (np.int64(unit) << ITEM_SHIFT) + n_items[0] + np.arange(len(pieces), dtype=np.int64)
            n_items[0] += len(pieces)
            _, n_sh, keys = signed(pa.array(pieces, pa.string()))
            items = pa.table({"node": nodes, "unit": np.full(len(nodes), unit, np.int32),
                              "doc_pos": pa.array(item_pos, pa.int64()), "start": pa.array(starts, pa.int32()),
                              "end": pa.array(ends, pa.int32()), "n_chars": pa.array(np.subtract(ends, starts)),
                              "n_shingles": n_sh})
            return {"items": items, "item_bands": band_rows(nodes, n_sh, keys)}
        return run
    return make


def decide_documents(ctx, plan, side, cfg, docs_df) -> tuple:
    """Document-level clusters -> side file `decisions` (doc_pos, component, size, rep, rep_id,
    similarity per unit); returns (stats, DataFrame of the removed doc_pos, or None)."""
    from pyspark.sql import functions as F

    spark = ctx.spark
    bands_df = frame(spark, side, "bands")
    if bands_df is None:
        return cluster_items_stats(), None
    got = cluster_items(spark, plan, side, "doc", bands_df, docs_df, cfg.threshold, cfg.max_bucket_size,
                        cfg.keep, shingle_settings(cfg))
    if got.members is None:
        return got.stats, None
    ids = docs_df.select(F.col("node").alias("rep"), F.col("id").alias("rep_id"))
    rows = got.members.join(ids, "rep").join(docs_df.select("node", "unit"), "node").select(
        "unit", F.col("node").alias("doc_pos"), "component", "size", "rep", "rep_id", "similarity")
    write_by_unit(spark, side, "decisions", rows, ["doc_pos"])
    return got.stats, got.members.where(F.col("node") != F.col("rep")).select(F.col("node").alias("doc_pos"))


def decide_paragraphs(ctx, plan, side, cfg, docs_df, removed_docs) -> dict:
    """Paragraph-level clusters over the paragraphs of surviving documents -> side file `cuts`
    (doc_pos, start, end, similarity, duplicate_of per unit)."""
    from pyspark.sql import functions as F

    spark = ctx.spark
    items, bands_df = frame(spark, side, "items"), frame(spark, side, "item_bands")
    if items is None or bands_df is None:
        return cluster_items_stats()
    if removed_docs is not None:  # spans of a removed document are neither cut nor kept
        gone = items.join(removed_docs, "doc_pos", "left_semi").select("node")
        bands_df = bands_df.join(gone, "node", "left_anti")
    got = cluster_items(spark, plan, side, "par", bands_df, items, cfg.threshold, cfg.max_bucket_size, "first",
                        shingle_settings(cfg))
    if got.members is None:
        return got.stats
    rep_doc = items.select(F.col("node").alias("rep"), F.col("doc_pos").alias("rep_pos")).join(
        docs_df.select(F.col("node").alias("rep_pos"), F.col("id").alias("duplicate_of")), "rep_pos")
    cuts = (got.members.where(F.col("node") != F.col("rep")).join(rep_doc, "rep")
            .join(items.select("node", "unit", "doc_pos", "start", "end"), "node")
            .select("unit", "doc_pos", "start", "end", "similarity", "duplicate_of"))
    write_by_unit(spark, side, "cuts", cuts, ["doc_pos", "start"])
    return got.stats


def cluster_items_stats() -> dict:
    return {"candidate_pairs": 0, "verified_pairs": 0, "giant_buckets": 0, "components_rounds": 0,
            "clusters": 0, "items_in_clusters": 0, "cluster_size_histogram": {}}


def decide(ctx, plan, side, cfg) -> dict:
    """Both levels, documents first; returns the manifest's figures ({"documents", "paragraphs"})."""
    docs_df = frame(ctx.spark, side, "docs")
    if docs_df is None:
        return {"documents": cluster_items_stats(), "paragraphs": cluster_items_stats()}
    stats, removed = decide_documents(ctx, plan, side, cfg, docs_df)
    par = decide_paragraphs(ctx, plan, side, cfg, docs_df, removed) if cfg.paragraph else cluster_items_stats()
    return {"documents": stats, "paragraphs": par}


def output_schemas(doc_schema: pa.Schema) -> dict:
    return {"kept": doc_schema.append(pa.field("minhash_cluster_size", pa.int64())),
            "removed": removed_schema(doc_schema).append(pa.field("similarity", pa.float64())),
            "removed_spans": REMOVED_SPAN_SCHEMA, "clusters": CLUSTER_SCHEMA}


def _unit_cuts(side, unit: int) -> pa.Table:
    c = side.read("cuts", unit)
    if c is None:
        return cuts_table([], [], [], [], NEAR_DUPLICATE)
    return choose_outermost(cuts_table(c.column("doc_pos"), c.column("start"), c.column("end"), PARAGRAPH,
                                       NEAR_DUPLICATE, c.column("duplicate_of"), c.column("similarity")))


def applier(side, schemas: dict, min_doc_chars: int):
    """Pass 2: make_applier(unit, ids) for run_pass2."""
    def make(unit: int, _ids: dict):
        dec = side.read("decisions", unit)
        cuts = _unit_cuts(side, unit)

        def apply(docs: pa.RecordBatch) -> dict:
            return apply_decisions(pa.Table.from_batches([docs]), dec, cuts, min_doc_chars, schemas)
        return apply
    return make


def apply_decisions(table: pa.Table, dec, cuts: pa.Table, min_doc_chars: int, schemas: dict) -> dict:
    """One batch: documents of a cluster other than its representative go to removed/; the others
    lose their near-duplicate paragraphs and go to kept/ (with minhash_cluster_size), or to
    removed/ if too little is left."""
    member, rows = decision_rows(table, dec)
    n = table.num_rows
    size, reason, dup, sim = np.ones(n, np.int64), [None] * n, [None] * n, [None] * n
    out = {}
    if rows is not None and rows.num_rows:
        idx = np.flatnonzero(member)
        size[idx] = rows.column("size").to_numpy()
        reps, rep_ids, sims = rows.column("rep").to_numpy(), rows.column("rep_id").to_pylist(), rows.column("similarity").to_pylist()
        pos = table.column("doc_pos").to_numpy()
        for k, i in enumerate(idx.tolist()):
            if reps[k] != pos[i]:
                reason[i], dup[i], sim[i] = NEAR_DUPLICATE, rep_ids[k], sims[k]
        in_cluster = table.filter(pa.array(member))
        out["clusters"] = pa.table({"doc_pos": in_cluster.column("doc_pos"), "id": in_cluster.column("id"),
                                    "cluster_id": rows.column("component"), "cluster_size": rows.column("size"),
                                    "representative": rows.column("rep_id"), "similarity": rows.column("similarity")},
                                   schema=CLUSTER_SCHEMA)
    out.update(split_outputs(table, cuts, reason, dup, {"similarity": pa.array(sim, pa.float64())}, min_doc_chars,
                             TOO_SHORT, {"minhash_cluster_size": pa.array(size)}, schemas))
    return out


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
            counts = run_pass1(ctx, plan, fingerprint(cfg, bands, rows, SpanPolicy(ctx.profile.spans)), side)
        sig_dir = ctx.work_dir / "signatures"
        if side.dir("signatures").is_dir():
            shutil.move(str(side.dir("signatures")), str(sig_dir))
        ensure_schema_file(sig_dir, pa.schema(SIGNATURE_FIELDS + [("signature", pa.binary(4 * cfg.num_perm))]))
        with ctx.timed("decide"):
            stats = decide(ctx, plan, side, cfg)
        for level, s in stats.items():
            ctx.log(f"{level}: {s['candidate_pairs']:,} candidate pairs, {s['verified_pairs']:,} verified, "
                    f"{s['clusters']:,} clusters of {s['items_in_clusters']:,}")
        schemas = output_schemas(plan.doc_schema)
        with ctx.timed("apply"):
            run_pass2(ctx, plan, applier(side, schemas, cfg.min_doc_chars_after_paragraph_dedup), schemas,
                      ctx.spark.sparkContext.emptyRDD())
        side.remove()
        stats.update({"bands": bands, "rows": rows, "num_perm": cfg.num_perm,
                      "candidate_threshold": round(cfg.threshold - cfg.candidate_margin, 6)})
        return StageOutput(written=("kept", "removed", "removed_spans", "clusters"), span_outputs=("removed_spans",),
                           removal_order=(NEAR_DUPLICATE, "removed_spans", TOO_SHORT), input_counts=counts,
                           stats={"minhash": stats, "report": report(ctx.work_dir, stats)})


def example_pairs(work_dir, n: int = 4, chars: int = 300) -> list:
    """A few removed documents beside the document kept for them: [id, similarity, removed text,
    kept id, kept text], spread over the similarity range (from the first removed/ files)."""
    import pyarrow.dataset as ds

    files = sorted((work_dir / "removed").glob("*.parquet"))
    rows = []
    for f in files:
        t = ds.dataset(str(f)).to_table(columns=["id", "text", "duplicate_of", "similarity"],
                                        filter=ds.field("reason") == NEAR_DUPLICATE)
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
    hist = {int(k): v for k, v in stats["documents"]["cluster_size_histogram"].items()}
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
    keys = ("candidate_pairs", "verified_pairs", "giant_buckets", "components_rounds", "clusters", "items_in_clusters")
    rows = [[k, stats.get(k), ""] for k in ("bands", "rows", "candidate_threshold")]
    rows += [[k, stats["documents"][k], stats["paragraphs"][k]] for k in keys]
    tables = [{"title": "MinHash LSH", "columns": ["figure", "documents", "paragraphs"], "rows": rows}]
    examples = example_pairs(work_dir)
    if examples:
        tables.append({"title": "Example near-duplicates (removed, and the document kept for it)",
                       "columns": ["removed id", "similarity", "removed text", "kept id", "kept text"],
                       "rows": examples})
    return {"tables": tables, "figures": figures}


STAGE = MinHashDedupStage()
