"""`semantic-dedup`: dense-embedding clusters and SemDeDup-style semantic duplicates at document,
paragraph and sentence level, on the two-pass engine (text never enters a shuffle).

Pass 1 (per read unit): every unit of text of each enabled level (documents; paragraphs and
sentences where the span policy lets the document's language be cut, so never code) of at least
`min_chars[level]` characters is embedded by the backend of its language (dedup.embed,
`backend_by_lang`, else `default_backend`; one model per worker). The L2-normalised vectors are
written as float16 with where they lie (level, node, doc_pos, start, end) to `embeddings/`, an
output: another threshold or clustering can be tried on them.

Decide (Spark over vectors and ids; per level, documents first, and per embedding space: vectors
of different backends are never compared):
1. k-means (faiss, spherical) on a seeded sample of the space's vectors (`kmeans_sample_per_centroid`
   per centroid, chosen by a hash of the node: the same on any partitioning), k = `clusters`, or
   the number of units / `target_cluster_size`; the centroids go to the tasks, which assign every
   unit to its nearest one. `clusters/` holds every unit's cluster and distance (1 - cosine).
2. Inside each cluster (one task per cluster), duplicate pairs by the `rule` (dedup.semantic:
   `threshold` cos >= 1 - eps, or `margin` over each unit's k-NN mean), exact in blocks up to
   `exact_limit` units, in spilled k-means parts of `part_size` above it (never quadratic in the cluster).
3. Pairs are closed transitively with pipeline.components; in each group the unit kept is the
   first in corpus order (`keep: first`), the farthest from its centroid (SemDeDup's choice), the
   longest or the highest `score_column`; the others go, with `similarity` = cosine to the one kept.
Removed documents leave the later levels: their paragraphs and sentences are neither cut nor kept,
and sentences inside a cut paragraph are not items of the sentence level.

Pass 2 (per read unit): kept/ (with `semantic_cluster` (backend/cluster of its document vector;
null for a document too short to embed), `semantic_cluster_size` and `semantic_duplicates`: how
many removed documents it stands for), removed/ (`semantic_duplicate`, `duplicate_of`,
`similarity`; documents left shorter than `min_doc_chars_after_span_dedup` by cuts:
`too_short_after_semantic_spans`), removed_spans/ (level paragraph or sentence, duplicate_of =
the document holding the unit kept, score = similarity), through the core's span-cutting path.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.embed import BACKENDS, EmbedderSpec, load_embedder, model_files
from dedup.lsh import representatives
from dedup.semantic import (PairRule, cluster_pairs, faiss_threads, nearest_centroid, to_half, train_kmeans,
                            vectors_of)
from pipeline.components import connected_components
from pipeline.errors import UserError
from pipeline.hashing import file_sha256, hash01
from pipeline.schema import removed_schema
from pipeline.spanpolicy import PARAGRAPH, SENTENCE, SpanPolicy, candidate_spans
from pipeline.spans import REMOVED_SPAN_SCHEMA, choose_outermost, cuts_table, split_outputs
from pipeline.stage import Stage, StageOutput
from pipeline.taskfiles import ensure_schema_file
from pipeline.twopass import (decision_rows, frame, materialized, run_pass1, run_pass2, side_files,
                              write_by_unit)

SEMANTIC_DUPLICATE = "semantic_duplicate"
TOO_SHORT = "too_short_after_semantic_spans"
DOCUMENT = "document"
LEVELS = (DOCUMENT, PARAGRAPH, SENTENCE)
LEVEL_CODE = {DOCUMENT: 0, PARAGRAPH: 1, SENTENCE: 2}
ITEM_SHIFT = 40  # a span's node: unit << 40 | its number in the unit (corpus order)
KEEP_CHOICES = ("first", "farthest", "longest", "score")
RULES = ("threshold", "margin")

# Defaults calibrated on bench/semantic_calibrate.py's labelled set of real en/zh documents,
# paragraphs and sentences with paraphrase-like variants and same-source negatives
# (bench/results/semantic_calibration.json; the middle of each passing region, see README).
DEFAULT_EPS = {"sentence-transformers": {DOCUMENT: 0.2, PARAGRAPH: 0.2, SENTENCE: 0.25},
               "e5": {DOCUMENT: 0.04, PARAGRAPH: 0.05, SENTENCE: 0.04}}
# The floors sit in the upper part of their passing regions (0.40-0.90 and more): on the demo
# sample a floor of 0.7 let MiniLM join different templated help paragraphs (0.78-0.81).
DEFAULT_FLOOR = {"sentence-transformers": {DOCUMENT: 0.8, PARAGRAPH: 0.85, SENTENCE: 0.85},
                 "e5": {DOCUMENT: 0.9, PARAGRAPH: 0.9, SENTENCE: 0.9}}
DEFAULT_MARGIN = {"sentence-transformers": {DOCUMENT: 0.3, PARAGRAPH: 0.3, SENTENCE: 0.3},
                  "e5": {DOCUMENT: 0.05, PARAGRAPH: 0.06, SENTENCE: 0.05}}
DEFAULT_SURE = {"sentence-transformers": 0.02, "e5": 0.01}

CLUSTER_SCHEMA = pa.schema([("level", pa.string()), ("doc_pos", pa.int64()), ("id", pa.string()),
                            ("start", pa.int32()), ("end", pa.int32()), ("backend", pa.string()),
                            ("cluster", pa.int64()), ("cluster_size", pa.int64()), ("distance", pa.float32())])
EMBEDDING_FIELDS = [("level", pa.int8()), ("node", pa.int64()), ("unit", pa.int32()), ("doc_pos", pa.int64()),
                    ("start", pa.int32()), ("end", pa.int32()), ("n_chars", pa.int64()), ("space", pa.int8()),
                    ("vector", pa.binary())]


def _copy(d):
    return field(default_factory=lambda: {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()})


@dataclass
class SemanticDedupConfig:
    backend_by_lang: dict = _copy({"en": "sentence-transformers"})  # language -> backend (dedup.embed)
    default_backend: str = "e5"  # every other language (zh, mixed, unknown)
    models: dict = _copy({})  # backend -> local model path; absent: the model its package ships
    max_tokens: int = 256  # tokens embedded per chunk (capped by the model's limit)
    long_text: str = "truncate"  # truncate | mean (of up to max_chunks chunks)
    max_chunks: int = 8
    batch_size: int = 32
    levels: list = field(default_factory=lambda: [DOCUMENT])  # any of document, paragraph, sentence
    min_chars: dict = _copy({DOCUMENT: 50, PARAGRAPH: 100, SENTENCE: 30})
    rule: str = "margin"  # margin | threshold (dedup.semantic)
    eps: dict = _copy(DEFAULT_EPS)  # backend -> level -> eps (threshold: cos >= 1 - eps)
    floor: dict = _copy(DEFAULT_FLOOR)  # backend -> level -> lowest cosine (margin rule)
    margin: dict = _copy(DEFAULT_MARGIN)  # backend -> level -> margin over the k-NN mean
    margin_k: int = 16
    sure: dict = _copy(DEFAULT_SURE)  # backend -> margin rule: pairs at cos >= 1 - sure always count
    clusters: int = 0  # k-means clusters per embedding space and level; 0: units / target_cluster_size
    target_cluster_size: int = 1000
    kmeans_sample_per_centroid: int = 256
    kmeans_iterations: int = 20
    exact_limit: int = 20000  # larger clusters are split into spilled parts, each searched exactly
    part_size: int = 2048
    keep: str = "first"  # first | farthest | longest | score
    score_column: str = ""
    seed: int = 1
    min_doc_chars_after_span_dedup: int = 50
    embeddings_from: str = ""  # a previous semantic-dedup output on the same input: its embeddings/ are reused


def spaces_of(cfg) -> list[str]:
    """The backends in use, in a fixed order: space number = position."""
    used = set(cfg.backend_by_lang.values()) | {cfg.default_backend}
    return [b for b in BACKENDS if b in used]


def spec_of(cfg, backend: str) -> EmbedderSpec:
    return EmbedderSpec(backend=backend, model=str(cfg.models.get(backend, "") or ""), max_tokens=cfg.max_tokens,
                        long_text=cfg.long_text, max_chunks=cfg.max_chunks, batch_size=cfg.batch_size)


def _per_level(table: dict, name: str, backends, levels) -> None:
    for b in backends:
        got = table.get(b)
        if not isinstance(got, dict) or any(not isinstance(got.get(lv), (int, float)) for lv in levels):
            raise UserError(f"semantic-dedup.{name}.{b} must give a number for each level ({', '.join(levels)})")


def check_config(cfg) -> None:
    for lang, b in {**cfg.backend_by_lang, "default_backend": cfg.default_backend}.items():
        if b not in BACKENDS:
            raise UserError(f"semantic-dedup: backend {b!r} for {lang} is not one of {', '.join(BACKENDS)}")
    if not cfg.levels or any(lv not in LEVELS for lv in cfg.levels):
        raise UserError(f"semantic-dedup.levels must be a non-empty list of {', '.join(LEVELS)}, got {cfg.levels!r}")
    if cfg.rule not in RULES:
        raise UserError(f"semantic-dedup.rule must be one of {', '.join(RULES)}, got {cfg.rule!r}")
    if cfg.keep not in KEEP_CHOICES:
        raise UserError(f"semantic-dedup.keep must be one of {', '.join(KEEP_CHOICES)}, got {cfg.keep!r}")
    if cfg.keep == "score" and not cfg.score_column:
        raise UserError("semantic-dedup.keep: score needs semantic-dedup.score_column")
    if cfg.clusters < 0 or cfg.target_cluster_size < 2 or cfg.exact_limit < 2 or cfg.part_size < 16 or cfg.margin_k < 1:
        raise UserError("semantic-dedup: clusters >= 0, target_cluster_size, exact_limit >= 2, part_size >= 16, margin_k >= 1")
    for name in ("eps", "floor", "margin") if cfg.rule == "margin" else ("eps",):
        _per_level(getattr(cfg, name), name, spaces_of(cfg), cfg.levels)
    for b in spaces_of(cfg):
        spec_of(cfg, b).check(f"semantic-dedup (backend {b})")


def rule_of(cfg, backend: str, level: str) -> PairRule:
    return PairRule(rule=cfg.rule, eps=float(cfg.eps[backend][level]), k=cfg.margin_k,
                    floor=float(cfg.floor.get(backend, {}).get(level, 0.0)),
                    margin=float(cfg.margin.get(backend, {}).get(level, 0.0)), sure=float(cfg.sure.get(backend, 0.0)))


# ---- pass 1 ------------------------------------------------------------------------------------

EMBEDDING_KEYS = ("backend_by_lang", "default_backend", "models", "max_tokens", "long_text", "max_chunks",
                  "levels", "min_chars")  # what the vectors depend on (besides the input and span policy)


def check_reuse(cfg, inputs, profile) -> str | None:
    """embeddings_from's embeddings/ directory, if that run embedded this input the same way."""
    import json
    from pathlib import Path

    from pipeline.config import as_dict

    if not cfg.embeddings_from:
        return None
    prev = Path(cfg.embeddings_from)
    try:
        m = json.loads((prev / "_manifest.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"semantic-dedup.embeddings_from: {prev} is not a semantic-dedup output (no readable "
                        f"_manifest.json)") from None
    old = m.get("config", {}).get("stage", m.get("config", {}))
    mine = as_dict(cfg)
    differs = [k for k in EMBEDDING_KEYS if old.get(k) != mine.get(k)]
    if m.get("stage") != "semantic-dedup" or m.get("fingerprint", {}).get("input") != json.loads(json.dumps(inputs.fingerprint())):
        raise UserError(f"semantic-dedup.embeddings_from: {prev} was made from another input (or by another stage)")
    if differs or m.get("config", {}).get("spans") != as_dict(profile.spans):
        raise UserError(f"semantic-dedup.embeddings_from: {prev} embedded with other settings "
                        f"({', '.join(differs) or 'spans'}); embed again")
    return str(prev / "embeddings")


def fingerprint(cfg, policy: SpanPolicy, reuse: str | None = None):
    """Pass 1: make(unit) -> batch -> {"docs": ids and lengths, "embeddings": vectors and where
    their text lies}; with `reuse` (a previous run's embeddings/), its unit's rows instead of a
    forward pass."""
    spaces = spaces_of(cfg)
    space_of_lang = {lang: spaces.index(b) for lang, b in cfg.backend_by_lang.items()}
    default_space = spaces.index(cfg.default_backend)
    span_levels = [lv for lv in (PARAGRAPH, SENTENCE) if lv in cfg.levels]

    def make(unit: int):
        counters = {lv: 0 for lv in span_levels}
        reused = [False]

        def run(docs: pa.RecordBatch) -> dict:
            texts = docs.column("text").to_pylist()
            langs = docs.column("lang").to_pylist() if "lang" in docs.schema.names else [None] * len(texts)
            pos = docs.column("doc_pos").to_pylist()
            n_chars = pc.utf8_length(docs.column("text")).cast(pa.int64())
            facts = {"node": docs.column("doc_pos"), "unit": pa.array([unit] * len(pos), pa.int32()),
                     "id": docs.column("id"), "n_chars": n_chars}
            if cfg.keep == "score":
                facts["score"] = docs.column(cfg.score_column).cast(pa.float64())
            if reuse is not None:
                from pipeline.taskfiles import read_part

                out = {"docs": pa.table(facts)}
                if not reused[0]:
                    reused[0] = True
                    old = read_part(reuse, unit)
                    if old is not None:
                        out["embeddings"] = old.cast(pa.schema(EMBEDDING_FIELDS))
                return out
            rows = []  # (level, node, doc_pos, start, end, space, text)
            if DOCUMENT in cfg.levels:
                for p, t, lang in zip(pos, texts, langs):
                    if len(t) >= cfg.min_chars[DOCUMENT]:
                        rows.append((0, p, p, 0, -1, space_of_lang.get(lang, default_space), t))
            for lv in span_levels:
                for p, t, lang in zip(pos, texts, langs):
                    if lv not in policy.levels(lang):
                        continue
                    space = space_of_lang.get(lang, default_space)
                    for got_level, s, e in candidate_spans(t, frozenset([lv])):
                        if got_level == lv and e - s >= cfg.min_chars[lv]:
                            node = (unit << ITEM_SHIFT) + counters[lv]
                            counters[lv] += 1
                            rows.append((LEVEL_CODE[lv], node, p, s, e, space, t[s:e]))
            emb, seconds = embed_rows(rows, unit, cfg, spaces)
            return {"docs": pa.table(facts), "embeddings": emb, "model_seconds": seconds}
        return run
    return make


def embed_rows(rows: list, unit: int, cfg, spaces: list) -> tuple[pa.Table, pa.Table]:
    """The embeddings side table of a batch's units of text (one encode call per space), and the
    seconds spent in the models' forward passes and in the whole call."""
    t0 = time.perf_counter()
    vectors: list = [b""] * len(rows)
    forward = 0.0
    for s, backend in enumerate(spaces):
        idx = [i for i, r in enumerate(rows) if r[5] == s]
        if not idx:
            continue
        model = load_embedder(spec_of(cfg, backend))
        before = model.forward_seconds
        vecs = model.encode([rows[i][6] for i in idx])
        forward += model.forward_seconds - before
        for i, v in zip(idx, vecs):
            vectors[i] = to_half(v)
    cols = list(zip(*rows)) if rows else [[]] * 7
    n_chars = [len(t) for t in cols[6]]
    seconds = pa.table({"forward": [forward], "encode": [time.perf_counter() - t0]})
    return pa.table([pa.array(cols[0], pa.int8()), pa.array(cols[1], pa.int64()), pa.array([unit] * len(rows), pa.int32()),
                     pa.array(cols[2], pa.int64()), pa.array(cols[3], pa.int32()), pa.array(cols[4], pa.int32()),
                     pa.array(n_chars, pa.int64()), pa.array(cols[5], pa.int8()), pa.array(vectors, pa.binary())],
                    schema=pa.schema(EMBEDDING_FIELDS)), seconds


# ---- decide ------------------------------------------------------------------------------------

def n_clusters(cfg, n: int) -> int:
    return max(1, min(n, cfg.clusters or -(-n // cfg.target_cluster_size)))


def train_centroids(spark, items, cfg, n: int) -> np.ndarray:
    """k-means of one space's items: a sample chosen by a seeded hash of the node, in node order."""
    from pyspark.sql import functions as F

    k = n_clusters(cfg, n)
    rate = min(1.0, k * cfg.kmeans_sample_per_centroid / max(n, 1))
    sample = (items.where(hash01(F.col("node"), F.lit(cfg.seed)) < F.lit(rate)).select("node", "vector")
              .orderBy("node").toArrow())
    if sample.num_rows < k:  # a tiny space: every unit
        sample = items.select("node", "vector").orderBy("node").toArrow()
    return train_kmeans(vectors_of(sample.column("vector")), k, cfg.seed, cfg.kmeans_iterations)


ASSIGN_SCHEMA = pa.schema([("node", pa.int64()), ("space", pa.int8()), ("cluster", pa.int64()),
                           ("distance", pa.float32()), ("vector", pa.binary())])


def assign(spark, items, centroids: dict):
    """(node, space, cluster, distance, vector) of every item: its space's nearest centroid."""
    from pyspark.sql.pandas.types import from_arrow_schema

    shared = spark.sparkContext.broadcast(centroids)

    def run(batches):
        faiss_threads(1)
        for b in batches:
            space = b.column("space").to_numpy()
            cluster, dist = np.zeros(len(space), np.int64), np.zeros(len(space), np.float32)
            for s in np.unique(space).tolist():
                m = space == s
                cluster[m], dist[m] = nearest_centroid(vectors_of(b.column("vector").filter(pa.array(m))), shared.value[s])
            yield pa.RecordBatch.from_arrays([b.column("node"), b.column("space"), pa.array(cluster), pa.array(dist),
                                              b.column("vector")], schema=ASSIGN_SCHEMA)

    return items.select("node", "space", "vector").mapInArrow(run, from_arrow_schema(ASSIGN_SCHEMA))


EDGE_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64()), ("similarity", pa.float32())])


def within_clusters(assigned, cfg, level: str, spaces: list):
    """Duplicate pairs (src < dst in corpus order, similarity) inside every cluster."""
    from pyspark.sql.pandas.types import from_arrow_schema

    rules = {s: rule_of(cfg, b, level) for s, b in enumerate(spaces)}
    exact_limit, part_size, seed = cfg.exact_limit, cfg.part_size, cfg.seed

    def run(t: pa.Table) -> pa.Table:
        faiss_threads(1)
        t = t.sort_by("node")
        nodes = t.column("node").to_numpy()
        a, b, s, _ = cluster_pairs(vectors_of(t.column("vector")), rules[int(t.column("space")[0].as_py())],
                                   exact_limit, part_size, seed)
        return pa.table([pa.array(nodes[a]), pa.array(nodes[b]), pa.array(s)], schema=EDGE_SCHEMA)

    return assigned.groupBy("space", "cluster").applyInArrow(run, from_arrow_schema(EDGE_SCHEMA))


SIM_SCHEMA = pa.schema([("node", pa.int64()), ("similarity", pa.float64())])


def similarity_to_rep(members, vectors):
    """(node, similarity): each removed member's cosine with the unit kept for it."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    pairs = (members.join(vectors.select("node", F.col("vector").alias("_va")), "node")
             .join(vectors.select(F.col("node").alias("rep"), F.col("vector").alias("_vb")), "rep"))

    def run(batches):
        for b in batches:
            x, y = vectors_of(b.column("_va")), vectors_of(b.column("_vb"))
            sim = np.einsum("ij,ij->i", x.astype(np.float64), y.astype(np.float64))  # per row: batch-independent
            yield pa.RecordBatch.from_arrays([b.column("node"), pa.array(sim)],
                                             schema=SIM_SCHEMA)

    return pairs.select("node", "_va", "_vb").mapInArrow(run, from_arrow_schema(SIM_SCHEMA))


@dataclass
class LevelResult:
    assigned: object  # DataFrame (node, space, cluster, distance, size)
    members: object  # DataFrame (node, component, size, rep, similarity) or None
    stats: dict


def decide_level(ctx, side, cfg, level: str, items) -> LevelResult:
    """k-means, within-cluster pairs, components and representatives of one level's items."""
    from pyspark.sql import functions as F

    spark, spaces = ctx.spark, spaces_of(cfg)
    stats = {"units": 0, "by_backend": {}, "pairs": 0, "components_rounds": 0, "groups": 0, "removed": 0,
             "cluster_size_histogram": {}, "seconds": {}}
    counts = {r["space"]: r["count"] for r in items.groupBy("space").count().collect()}
    stats["units"] = sum(counts.values())
    t0 = time.perf_counter()
    centroids = {s: train_centroids(spark, items.where(F.col("space") == s), cfg, n) for s, n in sorted(counts.items())}
    t1 = time.perf_counter()
    assigned = materialized(spark, side, f"{level}_assigned", assign(spark, items, centroids))
    sizes = assigned.groupBy("space", "cluster").agg(F.count(F.lit(1)).alias("cluster_size"))
    size_rows = sizes.collect()
    t2 = time.perf_counter()
    edges = materialized(spark, side, f"{level}_edges", within_clusters(assigned, cfg, level, spaces))
    stats["pairs"] = edges.count()
    t3 = time.perf_counter()
    for s, n in sorted(counts.items()):
        mine = [r["cluster_size"] for r in size_rows if r["space"] == s]
        stats["by_backend"][spaces[s]] = {"units": n, "clusters": len(mine), "largest_cluster": max(mine),
                                          "clusters_split": sum(m > cfg.exact_limit for m in mine)}
    stats["cluster_size_histogram"] = _log_histogram([r["cluster_size"] for r in size_rows])
    assigned = assigned.join(sizes, ["space", "cluster"])
    members = None
    if stats["pairs"]:
        cc = connected_components(edges.select("src", "dst"), str(side.dir(f"{level}_checkpoints")))
        stats["components_rounds"] = cc.rounds
        facts = items.select("node", "n_chars", *(["score"] if "score" in items.columns else [])).join(
            assigned.select("node", "distance"), "node")
        reps = representatives(cc.labels, facts, cfg.keep)
        gone = reps.where(F.col("node") != F.col("rep"))
        sims = similarity_to_rep(gone, items)
        members = materialized(spark, side, f"{level}_members", reps.join(sims, "node", "left").fillna(1.0, ["similarity"]))
        stats["groups"] = members.select("component").distinct().count()
        stats["removed"] = members.where(F.col("node") != F.col("rep")).count()
    t4 = time.perf_counter()
    stats["seconds"] = {"kmeans": round(t1 - t0, 3), "assign": round(t2 - t1, 3), "within_clusters": round(t3 - t2, 3),
                        "components": round(t4 - t3, 3)}
    return LevelResult(assigned, members, stats)


def _log_histogram(sizes: list) -> dict:
    """Cluster counts by size bucket 1, 2-3, 4-7, ... (powers of two)."""
    out: dict = {}
    for s in sizes:
        lo = 1 << (int(s).bit_length() - 1)
        key = f"{lo}-{2 * lo - 1}" if lo > 1 else "1"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: int(kv[0].split("-")[0])))


def write_clusters(ctx, side, cfg, level: str, items, docs, result: LevelResult) -> None:
    """clusters/ rows of one level, one part per read unit (parts of later levels follow)."""
    from pyspark.sql import functions as F

    spaces = spaces_of(cfg)
    backend = F.element_at(F.array(*[F.lit(b) for b in spaces]), F.col("space").cast("int") + 1)
    rows = (items.select("node", "unit", "doc_pos", "start", "end").join(result.assigned, "node")
            .join(docs.select(F.col("node").alias("doc_pos"), "id"), "doc_pos")
            .select(F.lit(level).alias("level"), "unit", "doc_pos", "id", "start", "end", backend.alias("backend"),
                    "cluster", "cluster_size", "distance"))
    write_by_unit(ctx.spark, side, f"clusters_{level}", rows, ["doc_pos", "start"])


def decide(ctx, plan, side, cfg) -> dict:
    """Every enabled level in order; writes side files `doc_decisions` and `cuts` per unit."""
    from pyspark.sql import functions as F

    spark = ctx.spark
    docs, emb = frame(spark, side, "docs"), frame(spark, side, "embeddings")
    out = {}
    removed_docs, cut_spans = None, None
    for level in [lv for lv in LEVELS if lv in cfg.levels]:
        items = None if emb is None else emb.where(F.col("level") == LEVEL_CODE[level])
        if items is not None and cfg.keep == "score":
            items = items.join(docs.select(F.col("node").alias("doc_pos"), "score"), "doc_pos")
        if items is not None and removed_docs is not None:
            items = items.join(removed_docs, "doc_pos", "left_anti")
        if items is not None and cut_spans is not None:  # sentences inside a cut paragraph are gone
            c = cut_spans.select("doc_pos", F.col("start").alias("_cs"), F.col("end").alias("_ce"))
            inside = items.join(c, "doc_pos").where((F.col("start") >= F.col("_cs")) & (F.col("end") <= F.col("_ce")))
            items = items.join(inside.select("node"), "node", "left_anti")
        if items is None or items.limit(1).count() == 0:
            out[level] = {"units": 0, "pairs": 0, "groups": 0, "removed": 0}
            continue
        items = materialized(spark, side, f"{level}_items", items)
        result = decide_level(ctx, side, cfg, level, items)
        out[level] = result.stats
        write_clusters(ctx, side, cfg, level, items, docs, result)
        ctx.log(f"{level}: {result.stats['units']:,} units, {result.stats['pairs']:,} duplicate pairs, "
                f"{result.stats['removed']:,} to remove")
        if level == DOCUMENT:
            removed_docs = write_document_decisions(spark, side, result, docs)
        elif result.members is not None:
            cuts = write_span_cuts(spark, side, level, result, items, docs)
            cut_spans = cuts if cut_spans is None else cut_spans.unionByName(cuts)
    return out


def write_document_decisions(spark, side, result: LevelResult, docs):
    """Side file doc_decisions per unit (doc_pos, cluster key, cluster_size, rep, rep_id,
    similarity, group_size); returns the removed documents' doc_pos (or None)."""
    from pyspark.sql import functions as F

    rows = result.assigned.select(F.col("node").alias("doc_pos"), "space", "cluster", "cluster_size")
    if result.members is not None:
        m = result.members.select(F.col("node").alias("doc_pos"), "rep", "similarity", F.col("size").alias("group_size"))
        rows = rows.join(m, "doc_pos", "left")
    else:
        rows = rows.select("*", F.lit(None).cast("long").alias("rep"), F.lit(None).cast("double").alias("similarity"),
                           F.lit(None).cast("long").alias("group_size"))
    ids = docs.select(F.col("node").alias("rep"), F.col("id").alias("rep_id"))
    rows = rows.join(ids, "rep", "left").join(docs.select(F.col("node").alias("doc_pos"), "unit"), "doc_pos")
    write_by_unit(spark, side, "doc_decisions", rows.select("unit", "doc_pos", "space", "cluster", "cluster_size",
                                                            "rep", "rep_id", "similarity", "group_size"), ["doc_pos"])
    if result.members is None:
        return None
    return result.members.where(F.col("node") != F.col("rep")).select(F.col("node").alias("doc_pos"))


def write_span_cuts(spark, side, level: str, result: LevelResult, items, docs):
    """Side file cuts_<level> per unit (doc_pos, start, end, similarity, duplicate_of); returns
    the cut spans (doc_pos, start, end)."""
    from pyspark.sql import functions as F

    rep_doc = items.select(F.col("node").alias("rep"), F.col("doc_pos").alias("rep_pos")).join(
        docs.select(F.col("node").alias("rep_pos"), F.col("id").alias("duplicate_of")), "rep_pos")
    cuts = (result.members.where(F.col("node") != F.col("rep")).join(rep_doc, "rep")
            .join(items.select("node", "unit", "doc_pos", "start", "end"), "node")
            .select("unit", "doc_pos", "start", "end", "similarity", "duplicate_of"))
    cuts = materialized(spark, side, f"{level}_cuts", cuts)
    write_by_unit(spark, side, f"cuts_{level}", cuts, ["doc_pos", "start"])
    return cuts.select("doc_pos", "start", "end")


# ---- pass 2 ------------------------------------------------------------------------------------

def output_schemas(doc_schema: pa.Schema) -> dict:
    kept = (doc_schema.append(pa.field("semantic_cluster", pa.string()))
            .append(pa.field("semantic_cluster_size", pa.int64())).append(pa.field("semantic_duplicates", pa.int64())))
    return {"kept": kept, "removed": removed_schema(doc_schema).append(pa.field("similarity", pa.float64())),
            "removed_spans": REMOVED_SPAN_SCHEMA}


def _unit_cuts(side, unit: int, levels) -> pa.Table:
    parts = []
    for lv in levels:
        c = side.read(f"cuts_{lv}", unit)
        if c is not None and c.num_rows:
            parts.append(cuts_table(c.column("doc_pos"), c.column("start"), c.column("end"), lv, SEMANTIC_DUPLICATE,
                                    c.column("duplicate_of"), c.column("similarity")))
    if not parts:
        return cuts_table([], [], [], [], SEMANTIC_DUPLICATE)
    return choose_outermost(pa.concat_tables(parts))


def applier(side, cfg, schemas: dict):
    spaces = spaces_of(cfg)
    span_levels = [lv for lv in (PARAGRAPH, SENTENCE) if lv in cfg.levels]

    def make(unit: int, _ids: dict):
        dec = side.read("doc_decisions", unit)
        cuts = _unit_cuts(side, unit, span_levels)

        def apply(docs: pa.RecordBatch) -> dict:
            return apply_decisions(pa.Table.from_batches([docs]), dec, cuts, cfg.min_doc_chars_after_span_dedup,
                                   schemas, spaces)
        return apply
    return make


def apply_decisions(table: pa.Table, dec, cuts: pa.Table, min_doc_chars: int, schemas: dict, spaces: list) -> dict:
    n = table.num_rows
    cluster, size, dups = [None] * n, np.ones(n, np.int64), np.zeros(n, np.int64)
    reason, dup, sim = [None] * n, [None] * n, [None] * n
    has, rows = decision_rows(table, dec)
    if rows is not None and rows.num_rows:
        idx = np.flatnonzero(has).tolist()
        pos = table.column("doc_pos").to_numpy()
        cols = {c: rows.column(c).to_pylist() for c in ("space", "cluster", "cluster_size", "rep", "rep_id",
                                                         "similarity", "group_size")}
        for k, i in enumerate(idx):
            cluster[i] = f"{spaces[cols['space'][k]]}/{cols['cluster'][k]}"
            size[i] = cols["cluster_size"][k]
            rep = cols["rep"][k]
            if rep is None:
                continue
            if rep != pos[i]:
                reason[i], dup[i], sim[i] = SEMANTIC_DUPLICATE, cols["rep_id"][k], cols["similarity"][k]
            else:
                dups[i] = cols["group_size"][k] - 1
    extra = {"semantic_cluster": pa.array(cluster, pa.string()), "semantic_cluster_size": pa.array(size),
             "semantic_duplicates": pa.array(dups)}
    return split_outputs(table, cuts, reason, dup, {"similarity": pa.array(sim, pa.float64())}, min_doc_chars,
                         TOO_SHORT, extra, schemas)


def model_time(side, plan) -> dict:
    """Task-seconds of pass 1 inside the models' forward passes and inside encode calls."""
    total = {"forward_task_seconds": 0.0, "encode_task_seconds": 0.0}
    for u in range(len(plan.units)):
        t = side.read("model_seconds", u)
        if t is not None:
            total["forward_task_seconds"] += float(pc.sum(t.column("forward")).as_py() or 0)
            total["encode_task_seconds"] += float(pc.sum(t.column("encode")).as_py() or 0)
    return {k: round(v, 3) for k, v in total.items()}


def move_outputs(ctx, side, cfg, plan) -> None:
    """embeddings/ and clusters/ from the side files into the stage's outputs."""
    emb = ctx.work_dir / "embeddings"
    if side.dir("embeddings").is_dir():
        shutil.move(str(side.dir("embeddings")), str(emb))
    ensure_schema_file(emb, pa.schema(EMBEDDING_FIELDS))
    out = ctx.work_dir / "clusters"
    out.mkdir(parents=True, exist_ok=True)
    for u in range(len(plan.units)):
        parts = [side.read(f"clusters_{lv}", u) for lv in LEVELS if lv in cfg.levels]
        parts = [p.cast(CLUSTER_SCHEMA) for p in parts if p is not None and p.num_rows]
        if parts:
            import pyarrow.parquet as pq

            pq.write_table(pa.concat_tables(parts), str(out / f"part-{u:05d}.parquet"))
    ensure_schema_file(out, CLUSTER_SCHEMA)


class SemanticDedupStage(Stage):
    name = "semantic-dedup"
    config_class = SemanticDedupConfig
    description = "dense-embedding clusters (faiss k-means) and semantic duplicates at document, paragraph and sentence level"

    def check(self, cfg) -> None:
        check_config(cfg)

    def fingerprint_extra(self, cfg) -> dict:
        return {"models": {b: [file_sha256(f) for f in model_files(spec_of(cfg, b))] for b in spaces_of(cfg)}}

    def run_units(self, ctx, plan) -> StageOutput:
        cfg = ctx.config
        if cfg.keep == "score" and cfg.score_column not in plan.doc_schema.names:
            raise UserError(f"semantic-dedup.score_column {cfg.score_column!r} is not a column of the input "
                            f"(columns: {', '.join(plan.doc_schema.names)})")
        side = side_files(ctx)
        reuse = check_reuse(cfg, ctx.inputs, ctx.profile)
        with ctx.timed("embed"):
            counts = run_pass1(ctx, plan, fingerprint(cfg, SpanPolicy(ctx.profile.spans), reuse), side)
        model_seconds = model_time(side, plan)
        with ctx.timed("decide"):
            faiss_threads(ctx.spark.sparkContext.defaultParallelism)
            stats = decide(ctx, plan, side, cfg)
        move_outputs(ctx, side, cfg, plan)
        schemas = output_schemas(plan.doc_schema)
        with ctx.timed("apply"):
            run_pass2(ctx, plan, applier(side, cfg, schemas), schemas, ctx.spark.sparkContext.emptyRDD())
        side.remove()
        summary = {"levels": stats, "rule": cfg.rule, "backends": spaces_of(cfg), **model_seconds}
        return StageOutput(written=("kept", "removed", "removed_spans", "clusters", "embeddings"),
                           span_outputs=("removed_spans",),
                           removal_order=(SEMANTIC_DUPLICATE, "removed_spans", TOO_SHORT), input_counts=counts,
                           stats={"semantic": summary, "report": report(ctx.work_dir, summary)})


def report(work_dir, summary: dict) -> dict:
    from dedup.semantic_report import report_of

    return report_of(work_dir, summary)


STAGE = SemanticDedupStage()
