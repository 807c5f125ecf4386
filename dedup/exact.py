"""`exact-dedup`: exact duplicates at document, paragraph and sentence level.

Document level: the hash of the normalised text (NFKC, whitespace collapsed); the first copy in
corpus order (smallest doc_pos) stays, the others go to removed/ as `exact_duplicate` with
`duplicate_of` = the id of the copy kept.

Paragraph and sentence level (on the documents that survive): every paragraph / sentence whose
normalised form is at least `min_*_chars` long is hashed; one that occurs more than once in the
corpus is cut from every document except its first occurrence (smallest doc_pos, then offset).
Each cut goes to removed_spans/ with its offsets and text. A document that loses spans and has
fewer than `min_doc_chars_after_span_dedup` characters left is removed as
`too_short_after_span_dedup` (its remaining text in removed/).

All of it is hashes, windows, aggregations and joins in Spark: nothing is collected to the driver. The
first occurrence is well defined across levels: a paragraph's first occurrence contains the first
occurrence of each of its sentences, so cutting both levels in one pass is consistent.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from pipeline.segment import normalize, segment
from pipeline.stage import Stage, StageOutput

PARAGRAPH, SENTENCE = "paragraph", "sentence"
EXACT_DUPLICATE = "exact_duplicate"
TOO_SHORT = "too_short_after_span_dedup"


@dataclass
class ExactDedupConfig:
    document: bool = True
    paragraph: bool = True
    sentence: bool = True
    # Spans shorter than this (normalised characters) are never cut: '谢谢。', 'Yes.', '}'.
    min_paragraph_chars: int = 40
    min_sentence_chars: int = 20
    min_doc_chars_after_span_dedup: int = 50


def _digest(s: str) -> bytes:
    return hashlib.blake2b(s.encode("utf-8"), digest_size=16).digest()


SPAN_TYPE = pa.struct([("level", pa.string()), ("start", pa.int32()), ("end", pa.int32()),
                       ("hash", pa.binary())])
FINGERPRINT_SCHEMA = pa.schema([("doc_pos", pa.int64()), ("id", pa.string()),
                                ("doc_hash", pa.binary()), ("spans", pa.list_(SPAN_TYPE))])


def fingerprint_batches(cfg: dict, code_langs: list):
    code_langs = set(code_langs)

    def run(batches):
        for batch in batches:
            texts = batch.column("text").to_pylist()
            langs = batch.column("lang").to_pylist()
            doc_hashes, spans = [], []
            for text, lang in zip(texts, langs):
                doc_hashes.append(_digest(normalize(text)))
                found = []
                if cfg["paragraph"] or cfg["sentence"]:
                    paras, sents = segment(text, code=lang in code_langs)
                    for (ps, pe), sentence_pieces in zip(paras, sents):
                        if cfg["paragraph"]:
                            norm = normalize(text[ps:pe])
                            if len(norm) >= cfg["min_paragraph_chars"]:
                                found.append({"level": PARAGRAPH, "start": ps, "end": pe, "hash": _digest(norm)})
                        if cfg["sentence"]:
                            for ss, se in sentence_pieces:
                                norm = normalize(text[ss:se])
                                if len(norm) >= cfg["min_sentence_chars"]:
                                    found.append({"level": SENTENCE, "start": ss, "end": se,
                                                  "hash": _digest(norm)})
                spans.append(found)
            yield pa.RecordBatch.from_arrays(
                [batch.column("doc_pos"), batch.column("id"), pa.array(doc_hashes, pa.binary()),
                 pa.array(spans, pa.list_(SPAN_TYPE))], schema=FINGERPRINT_SCHEMA)
    return run


CUT_TYPE = pa.struct([("level", pa.string()), ("start", pa.int32()), ("end", pa.int32()),
                      ("duplicate_of", pa.string())])
REMOVED_SPAN_TYPE = pa.struct([("level", pa.string()), ("start", pa.int32()), ("end", pa.int32()),
                               ("text", pa.string()), ("duplicate_of", pa.string())])


def apply_cuts_batches(min_doc_chars: int):
    """Cut the duplicate spans out of each document; say whether what is left is kept."""
    def run(batches):
        for batch in batches:
            texts = batch.column("text").to_pylist()
            cuts_col = batch.column("_cuts").to_pylist()
            new_texts, status, reasons, removed_spans = [], [], [], []
            for text, cuts in zip(texts, cuts_col):
                if not cuts:
                    new_texts.append(text)
                    status.append(True)
                    reasons.append(None)
                    removed_spans.append(None)
                    continue
                # A paragraph cut covers the sentence cuts inside it: keep the outermost ranges.
                cuts = sorted(cuts, key=lambda c: (c["start"], -c["end"], c["level"] != PARAGRAPH))
                outer, last_end = [], -1
                for c in cuts:
                    if c["start"] >= last_end:
                        outer.append(c)
                        last_end = c["end"]
                pieces, prev, spans = [], 0, []
                for c in outer:
                    pieces.append(text[prev:c["start"]])
                    spans.append({"level": c["level"], "start": c["start"], "end": c["end"],
                                  "text": text[c["start"]:c["end"]], "duplicate_of": c["duplicate_of"]})
                    prev = c["end"]
                pieces.append(text[prev:])
                rest = "".join(pieces)
                keep = len(rest.strip()) >= min_doc_chars
                new_texts.append(rest)
                status.append(keep)
                reasons.append(None if keep else TOO_SHORT)
                removed_spans.append(spans)
            cols = {name: batch.column(name) for name in batch.schema.names if name != "_cuts"}
            cols["text"] = pa.array(new_texts, pa.string())
            cols["_keep"] = pa.array(status, pa.bool_())
            cols["_reason"] = pa.array(reasons, pa.string())
            cols["_spans"] = pa.array(removed_spans, pa.list_(REMOVED_SPAN_TYPE))
            yield pa.RecordBatch.from_pydict(cols)
    return run


class ExactDedupStage(Stage):
    name = "exact-dedup"
    config_class = ExactDedupConfig
    description = "exact duplicates at document, paragraph and sentence level"

    def run(self, ctx, docs) -> StageOutput:
        from pyspark import StorageLevel
        from pyspark.sql import Window
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema
        from pyspark.sql.types import BooleanType, StringType, StructField, StructType

        cfg = ctx.config
        fp = (docs.select("doc_pos", "id", "text", "lang")
                  .mapInArrow(fingerprint_batches(vars(cfg), list(ctx.profile.read.code_langs)),
                              from_arrow_schema(FINGERPRINT_SCHEMA))
                  .persist(StorageLevel.MEMORY_AND_DISK))

        # Document level: first copy in corpus order wins. A window over each hash group is one
        # shuffle (a group-by plus join would be two) and sorts a giant group on disk, not in memory.
        if cfg.document:
            by_doc_hash = Window.partitionBy("doc_hash").orderBy("doc_pos")
            ranked = (fp.withColumn("_rank", F.row_number().over(by_doc_hash))
                        .withColumn("_first_id", F.first("id").over(by_doc_hash))
                        .persist(StorageLevel.MEMORY_AND_DISK))
            doc_dups = ranked.where(F.col("_rank") > 1).select("doc_pos", F.col("_first_id").alias("_dup_of"))
            unique = ranked.where(F.col("_rank") == 1)
        else:
            doc_dups = None
            unique = fp

        # Paragraph and sentence level: every occurrence after the first is cut.
        spans = unique.select("doc_pos", "id", F.explode("spans").alias("s")).select(
            "doc_pos", "id", "s.level", "s.start", "s.end", "s.hash")
        by_span_hash = Window.partitionBy("level", "hash").orderBy("doc_pos", "start")
        cuts = (spans.withColumn("_rank", F.row_number().over(by_span_hash))
                .withColumn("_first_id", F.first("id").over(by_span_hash))
                .where(F.col("_rank") > 1)
                .groupBy("doc_pos")
                .agg(F.collect_list(F.struct("level", "start", "end",
                                             F.col("_first_id").alias("duplicate_of"))).alias("_cuts")))

        annotated = docs
        if doc_dups is not None:
            annotated = annotated.join(doc_dups, "doc_pos", "left")
        else:
            annotated = annotated.withColumn("_dup_of", F.lit(None).cast("string"))
        dup_docs = annotated.where(F.col("_dup_of").isNotNull())
        survivors = annotated.where(F.col("_dup_of").isNull()).drop("_dup_of").join(cuts, "doc_pos", "left")
        base_fields = [f for f in survivors.schema.fields if f.name != "_cuts"]
        out_schema = StructType(base_fields + [
            StructField("_keep", BooleanType()), StructField("_reason", StringType()),
            from_arrow_schema(pa.schema([("_spans", pa.list_(REMOVED_SPAN_TYPE))]))["_spans"],
        ])
        # Only documents that lose spans go through Python; the rest pass straight through.
        untouched = (survivors.where(F.col("_cuts").isNull()).drop("_cuts")
                     .withColumn("_keep", F.lit(True)).withColumn("_reason", F.lit(None).cast("string"))
                     .withColumn("_spans", F.lit(None).cast(out_schema["_spans"].dataType)))
        cut = survivors.where(F.col("_cuts").isNotNull()).mapInArrow(
            apply_cuts_batches(cfg.min_doc_chars_after_span_dedup), out_schema)
        applied = untouched.unionByName(cut).persist(StorageLevel.MEMORY_AND_DISK)

        doc_cols = docs.columns
        kept = applied.where("_keep").select(*doc_cols)
        removed = applied.where(~F.col("_keep")).select(
            *doc_cols, F.col("_reason").alias("reason"),
            F.element_at(F.col("_spans"), 1)["duplicate_of"].alias("duplicate_of"))
        removed = removed.unionByName(dup_docs.select(
            *doc_cols, F.lit(EXACT_DUPLICATE).alias("reason"), F.col("_dup_of").alias("duplicate_of")))
        removed_spans = applied.select("doc_pos", F.col("id").alias("doc_id"), F.explode("_spans").alias("s")).select(
            "doc_pos", "doc_id", "s.level", "s.start", "s.end", "s.text", "s.duplicate_of")
        return StageOutput(kept=kept, removed=removed, extra={"removed_spans": removed_spans},
                           span_outputs=("removed_spans",),
                           order={"removed_spans": ["doc_pos", "start"]})


STAGE = ExactDedupStage()
