"""The `train-tokenizer` and `tokenize` stages (registered in pipeline/cli.py STAGES).

train-tokenizer (a sink): a seeded, language- and source-balanced sample of the documents is
drawn in Spark (tokenizer_training.sampling), written as sentence files by the executors, and
SentencePiece is trained on them (tokenizer_training.train). Output directory:
  tokenizer.model, tokenizer.vocab, tokenizer_config.json, special_tokens_map.json (HF export),
  tokenizer.train.log, train_stats.json, eval/ (eval.json/.md/.html/.png),
  sample/ (the sampled documents, parquet), heldout/ (held-out documents used by the evaluation),
  quarantine/, _manifest.json (runner).

tokenize (accounts for every document, removes none, its kept/ holds token ids; run_units): one pass, without
the JVM on the data path. Each Spark task reads one read unit of the input (a JSONL file or a run
of a parquet file's row groups; pipeline.readers) with the pipeline's reader, quarantines what
cannot be read, encodes the documents with SentencePiece (model loaded once per Python worker),
appends </s>, and writes
  kept/      parquet token shards, one file per read unit, in input order: id, source, lang, url,
             doc_pos, repeats, input_ids (int32 list), n_tokens (with </s>), n_chars and n_bytes
             of the source text
plus a temporary flat token buffer and one small row per shard sequence. Then
  shards/    Megatron shard-NNNNN.bin/.idx pairs (int32) + shards/_manifest.json (vocab_size,
             tokenizer checksum, documents and tokens per source and language, shard checksums)
are written from the token buffers after shuffling only the small per-sequence rows.
A document with `repeats` = k (from sampling) is written k times to the .bin shards (each copy
placed by its own seeded key) and once to kept/. A copy goes to shard
`copy_hash(seed, SHARD, doc_pos, copy) mod n_shards` (n_shards = ceil(tokens / shard_size_tokens)),
sorted inside the shard by another seeded hash (or by corpus order with shuffle=false): the
shards, like the kept/ files, depend only on the input, the model and the seed.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pyarrow as pa

from pipeline.errors import UserError
from pipeline.exchange import exchange, from_blobs, split_by
from pipeline.first import mark_first_occurrences
from pipeline.hashing import copy_hash, file_sha256, hash01
from pipeline.readers import units_rdd
from pipeline.stage import CliOption, Stage, StageOutput
from tokenizer_training.encode import resolve_model_path
from tokenizer_training.settings import TokenizeConfig, TrainTokenizerConfig, trainer_settings_of

# ------------------------------------------------------------------------------------------
# train-tokenizer

SENTENCE_STATS_SCHEMA = pa.schema([
    ("file", pa.string()), ("documents", pa.int64()), ("lines", pa.int64()), ("bytes", pa.int64()),
    ("chars", pa.int64()), ("empty_lines", pa.int64()), ("split_lines", pa.int64()),
    ("extra_lines_from_splits", pa.int64()), ("meta_symbol_lines", pa.int64()),
    ("meta_symbol_bytes", pa.int64())])


def sentence_writer(out_dir: str, max_bytes: int):
    """mapInArrow function: each partition writes its documents' training lines to one file."""
    def run(batches):
        from pyspark import TaskContext

        from tokenizer_training.train import LineStats, document_lines

        pid = TaskContext.get().partitionId()
        path = Path(out_dir) / f"part-{pid:05d}.txt"
        st = LineStats()
        f = None
        try:
            for batch in batches:
                for text, copies in zip(batch.column("text").to_pylist(), batch.column("copies").to_pylist()):
                    lines = document_lines(text, max_bytes, st)
                    if lines:
                        if f is None:
                            f = open(str(path) + ".tmp", "w", encoding="utf-8", newline="\n")
                        f.write(("\n".join(lines) + "\n") * copies)
        finally:
            if f is not None:
                f.close()
        if f is not None:
            os.replace(str(path) + ".tmp", path)
        d = st.as_dict()
        yield pa.RecordBatch.from_pylist([{"file": path.name if f is not None else None, **d}],
                                         schema=SENTENCE_STATS_SCHEMA)
    return run


class TrainTokenizerStage(Stage):
    name = "train-tokenizer"
    config_class = TrainTokenizerConfig
    feeds_next_stage = False
    reconciles = False  # it consumes the documents into a model
    description = "sample the corpus and train the SentencePiece BPE tokenizer (Baichuan 2 settings)"
    cli_options = (
        CliOption("--vocab-size", "vocab_size", "vocabulary size (default 125696)"),
        CliOption("--sample-bytes", "sample_bytes", "bytes of text to sample for training"),
    )

    def check(self, cfg) -> None:
        try:
            trainer_settings_of(cfg).validate()
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not 0.0 <= cfg.heldout_fraction < 1.0:
            raise UserError("train-tokenizer.heldout_fraction must be in [0, 1)")

    def run(self, ctx, docs) -> StageOutput:
        cfg = ctx.config
        settings = trainer_settings_of(cfg)
        seed = int(cfg.sample_seed)
        pool, heldout_all = split_heldout(docs, cfg, seed)
        with ctx.timed("sample"):
            sampled, plan, total_sampled = draw_sample(ctx, pool, cfg, seed)
        with ctx.timed("sentence_files"):
            files, line_stats = write_sentence_files(ctx, sampled, settings, total_sampled)
        with ctx.timed("train"):
            result = train_model(ctx, files, settings)
        if not cfg.keep_sentence_files:
            shutil.rmtree(ctx.work_dir / "sentences")
        model_file = ctx.work_dir / "tokenizer.model"
        heldout, heldout_docs = heldout_documents(heldout_all, cfg)
        hf = {}
        if cfg.export_hf:
            with ctx.timed("hf_export"):
                hf = export_and_check_hf(ctx, model_file, heldout_docs)
        report, eval_summary = {"tables": [], "figures": []}, None
        if cfg.evaluate and heldout_docs:
            with ctx.timed("evaluate"):
                report, eval_summary = evaluate_heldout(ctx, cfg, model_file, heldout_docs)
        report["tables"][:0] = [sample_table(plan), training_table(result, line_stats)]
        stats = {
            "sample": {"plan_by_lang": plan["langs"],
                       "by_source": {f"{lg}/{src}": v for (lg, src), v in sorted(plan["sources"].items())},
                       "sampled_bytes": total_sampled, "drop_exact_duplicates": cfg.drop_exact_duplicates,
                       "seed": seed},
            "sentences": line_stats,
            "training": {k: v for k, v in result.as_dict().items() if k != "settings"},
            "hf_check": hf,
            "heldout": {"documents": len(heldout_docs),
                        "bytes_by_lang": {lg: sum(d["n_bytes"] for d in heldout_docs if d["lang"] == lg)
                                          for lg in sorted({d["lang"] for d in heldout_docs})}},
            "evaluation": eval_summary,
            "report": report,
        }
        for key in ("log_file", "model_file"):
            stats["training"][key] = os.path.basename(stats["training"][key])
        stats["card"] = tokenizer_card(result.vocab_size, total_sampled, seed, model_file)
        (ctx.work_dir / "train_stats.json").write_text(
            json.dumps(stats, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        pool.unpersist()
        return StageOutput(kept=None, extra={"sample": sampled, "heldout": heldout}, stats=stats)


# The train-tokenizer steps, in the order run() calls them.

def split_heldout(docs, cfg, seed: int):
    """(pool, held-out candidates): a seeded hash of the id holds documents out; the pool drops
    exact duplicate texts (the first occurrence stays) when drop_exact_duplicates is set."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    base = (docs.select("id", "text", "source", "lang", "doc_pos")
            .withColumn("lang", F.coalesce(F.col("lang"), F.lit("unknown")))
            .withColumn("source", F.coalesce(F.col("source"), F.lit("unknown")))
            .withColumn("n_bytes", F.octet_length("text").cast("long"))
            .withColumn("_u_held", hash01(F.lit(seed), F.lit("heldout"), F.col("id"))))
    heldout_all = base.where(F.col("_u_held") < cfg.heldout_fraction)
    pool = base.where(F.col("_u_held") >= cfg.heldout_fraction)
    if cfg.drop_exact_duplicates:
        keys = pool.select("doc_pos", F.sha2("text", 256).alias("_h"))
        firsts = mark_first_occurrences(keys, ["_h"], carry=()).where("_is_first").select("doc_pos")
        pool = pool.join(firsts, "doc_pos", "left_semi")
    return pool.persist(StorageLevel.MEMORY_AND_DISK), heldout_all


def draw_sample(ctx, pool, cfg, seed: int):
    """(sampled documents with their `copies`, the plan with what was drawn, sampled bytes): the plan
    from one small aggregate of bytes per (lang, source), the draw from a seeded hash of the id."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from tokenizer_training.sampling import sample_plan

    sizes = {(r["lang"], r["source"]): int(r["bytes"]) for r in
             pool.groupBy("lang", "source").agg(F.sum("n_bytes").alias("bytes")).collect()}
    if not sizes:
        raise UserError("train-tokenizer: no documents to sample from")
    plan = sample_plan(sizes, cfg.sample_bytes, dict(cfg.lang_weights), cfg.other_lang_weight,
                       cfg.balance_sources, cfg.max_lang_repeats)
    probs = ctx.spark.createDataFrame(
        [(lg, src, float(v["probability"])) for (lg, src), v in sorted(plan["sources"].items())],
        "lang string, source string, _p double")
    # copies = floor(p) + Bernoulli(frac(p)) from a seeded hash of the id (p > 1: upsampled)
    copies = F.floor("_p") + (hash01(F.lit(seed), F.lit("sample"), F.col("id"))
                              < F.col("_p") - F.floor("_p")).cast("int")
    sampled = (pool.join(F.broadcast(probs), ["lang", "source"])
               .withColumn("copies", copies.cast("int")).where("copies > 0")
               .select("id", "text", "source", "lang", "doc_pos", "n_bytes", "copies")
               .persist(StorageLevel.MEMORY_AND_DISK))
    got = sampled.groupBy("lang", "source").agg(F.count(F.lit(1)).alias("docs"),
                                                F.sum(F.col("n_bytes") * F.col("copies")).alias("bytes")).collect()
    total = sum(int(r["bytes"]) for r in got)
    if total == 0:
        raise UserError("train-tokenizer: the sample is empty (check lang_weights against the "
                        "corpus's `lang` values and sample_bytes)")
    for r in got:
        plan["sources"][(r["lang"], r["source"])].update(sampled_docs=int(r["docs"]), sampled_bytes=int(r["bytes"]))
    for lg, v in plan["langs"].items():
        v["sampled_bytes"] = sum(int(r["bytes"]) for r in got if r["lang"] == lg)
        v["sampled_share"] = v["sampled_bytes"] / total
    ctx.log(f"sampled {total / 1e6:.1f} MB: " + ", ".join(
        f"{lg} {v['sampled_bytes'] / 1e6:.1f} MB ({100 * v['sampled_share']:.1f}%)"
        for lg, v in sorted(plan["langs"].items())))
    return sampled, plan, total


def write_sentence_files(ctx, sampled, settings, total_bytes: int):
    """(sentence files, line statistics): Spark tasks write the sample's training lines into
    OUT/sentences/, each document `copies` times, in files of about 32 MB."""
    from pyspark.sql.pandas.types import from_arrow_schema

    sent_dir = ctx.work_dir / "sentences"
    sent_dir.mkdir()
    n_files = max(2, min(64, total_bytes // (32 << 20) + 1))
    rows = (sampled.select("doc_pos", "text", "copies").repartition(n_files, "doc_pos")
            .sortWithinPartitions("doc_pos")
            .mapInArrow(sentence_writer(str(sent_dir), settings.max_sentence_length),
                        from_arrow_schema(SENTENCE_STATS_SCHEMA)).collect())
    line_stats = {k: sum(int(r[k]) for r in rows) for k in SENTENCE_STATS_SCHEMA.names if k != "file"}
    files = sorted(str(sent_dir / r["file"]) for r in rows if r["file"])
    ctx.log(f"{line_stats['lines']:,} training lines in {len(files)} files; "
            f"{line_stats['split_lines']:,} long lines split, {line_stats['meta_symbol_lines']:,} lines "
            f"with U+2581 left out ({line_stats['meta_symbol_bytes']:,} bytes), "
            f"{line_stats['empty_lines']:,} empty lines dropped")
    return files, line_stats


def train_model(ctx, files, settings):
    from tokenizer_training.train import SampleTooSmall, TrainingError, train_sentencepiece

    try:
        return train_sentencepiece(files, ctx.work_dir, settings, model_name="tokenizer", log=ctx.log)
    except (SampleTooSmall, TrainingError) as exc:
        raise UserError(f"train-tokenizer: {exc}") from None


def heldout_documents(heldout_all, cfg):
    """Held-out documents per language, in seeded order, up to heldout_max_bytes_per_lang:
    (the DataFrame written to heldout/, the same rows as dicts for the evaluation)."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    w = Window.partitionBy("lang").orderBy("_u_held", "id")
    heldout = (heldout_all.withColumn("_cum", F.sum("n_bytes").over(w))
               .where((F.col("_cum") <= cfg.heldout_max_bytes_per_lang) | (F.col("_cum") == F.col("n_bytes")))
               .select("id", "text", "source", "lang", "doc_pos", "n_bytes"))
    return heldout, [r.asDict() for r in heldout.orderBy("lang", "id").collect()]


def export_and_check_hf(ctx, model_file, heldout_docs) -> dict:
    """The Hugging Face files beside the model, loaded back with AutoTokenizer and compared with
    SentencePiece on every held-out document."""
    from tokenizer_training.hf_export import check_hf_ids, export_tokenizer_hf

    export_tokenizer_hf(model_file, ctx.work_dir, model_max_length=4096)
    hf = check_hf_ids(ctx.work_dir, [d["text"] for d in heldout_docs] or ["hello world 123"])
    ctx.log(f"transformers {hf['class']}: same ids as SentencePiece on {hf['same_ids']}/"
            f"{hf['documents']} held-out documents, decode exact on {hf['exact_decode']}")
    return hf


SUMMARY_KEYS = ("documents", "tokens_per_char", "tokens_per_byte", "bytes_per_token", "unk_rate",
                "byte_fallback_rate", "newline_byte_rate", "other_byte_rate", "round_trip_rate")


def evaluate_heldout(ctx, cfg, model_file, heldout_docs):
    """(report tables and figures, our figures per language): eval/ beside the model."""
    from tokenizer_training import evaluate as ev

    er = ev.evaluate(model_file, heldout_docs, list(cfg.compare), name="ours", log=ctx.log,
                     reference=cfg.reference_tokenizer)
    er["model"] = "tokenizer.model"  # relative to the output directory (built under a temporary name)
    ev.write_outputs(er, ctx.work_dir / "eval")
    cols, trs = ev.table_rows(er)
    report = {"tables": [{"title": "Tokenizer compression on held-out text (tokens per character, lower is "
                                   "better) and exact round trips", "columns": cols, "rows": trs}],
              "figures": [{"path": "eval/eval.png", "title": "Tokens per character by language"}]}
    ours = er["rows"][0]["results"]
    summary = {lg: {k: ours[lg][k] for k in SUMMARY_KEYS} for lg in er["languages"] + ["all"]}
    bad = ours["all"]["round_trip_failures"]
    ctx.log(f"evaluation: round trip exact on {ours['all']['round_trip_ok']}/"
            f"{ours['all']['documents']} held-out documents" + (f" ({bad} FAILED)" if bad else ""))
    return report, summary


def sample_table(plan) -> dict:
    return {"title": "Tokenizer training sample by language",
            "columns": ["lang", "weight", "share planned", "available MB", "planned MB", "repeats", "sampled MB",
                        "share sampled", "shortfall MB"],
            "rows": [[lg, v["weight"], round(v["share"], 4), round(v["available_bytes"] / 1e6, 2),
                      round(v["planned_bytes"] / 1e6, 2), v["repeats"], round(v["sampled_bytes"] / 1e6, 2),
                      round(v["sampled_share"], 4), round(v["shortfall_bytes"] / 1e6, 2)]
                     for lg, v in sorted(plan["langs"].items())]}


def training_table(result, line_stats) -> dict:
    return {"title": "SentencePiece training",
            "columns": ["vocab", "text MB", "lines", "wall s", "peak RSS MB", "last merge freq",
                        "min freq last 1000 merges", "long lines split", "U+2581 lines left out"],
            "rows": [[result.vocab_size, round(result.input_bytes / 1e6, 2), result.input_lines, result.wall_s,
                      result.peak_rss_mb, result.last_merge_frequency, result.min_frequency_last_1000_merges,
                      line_stats["split_lines"], line_stats["meta_symbol_lines"]]]}


# ------------------------------------------------------------------------------------------
# tokenize

KEPT_SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("lang", pa.string()), ("url", pa.string()),
    ("doc_pos", pa.int64()), ("repeats", pa.int32()), ("input_ids", pa.list_(pa.int32())),
    ("n_tokens", pa.int64()), ("n_chars", pa.int64()), ("n_bytes", pa.int64())])
COPY_SCHEMA = pa.schema([
    ("h_shard", pa.int64()), ("key", pa.int64()), ("doc_pos", pa.int64()), ("copy", pa.int32()),
    ("part", pa.int32()), ("offset", pa.int64()), ("length", pa.int64()), ("source", pa.string()),
    ("lang", pa.string())])
_SHARD_TAG, _ORDER_TAG = 0x5348415244, 0x4F52444552  # "SHARD", "ORDER"


def encode_writer(plan, model_path: str, opts: dict, kept_dir: str, tmp_dir: str, quarantine_dir: str):
    """mapPartitions function over read unit numbers (one per task; only the numbers go through
    Spark, never the data): reads the unit's records, quarantines
    the refused ones, encodes the documents and writes kept/part-NNNNN.zstd.parquet (the parquet
    token shards, in input order), the unit's flat int32 token buffer and one row per shard
    sequence (a document's copy) pointing into it; yields one record per task: its (source, lang)
    totals and the CPU seconds it spent inside SentencePiece. Every file is
    written under a temporary name and renamed when complete (a retried task writes the same
    content again)."""
    def run(unit_numbers):
        import numpy as np
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        from pipeline.readers import read_unit, split_read_batch
        from pipeline.schema import QUARANTINE_SCHEMA
        from pipeline.taskfiles import PartWriter, task_output
        from tokenizer_training.encode import encode_batch, encode_cpu_seconds

        attempt = TaskContext.get().taskAttemptId()
        cpu0 = encode_cpu_seconds()
        seed = opts["seed"]
        use_repeats = opts["honour_repeats"] and "repeats" in plan.extras
        totals = []
        for unit in (plan.units[i] for i in unit_numbers):
            part = unit.index
            kept_path, kept_done = task_output(Path(kept_dir) / f"part-{part:05d}.zstd.parquet", attempt)
            tok_path, tok_done = task_output(Path(tmp_dir) / "tokens" / f"part-{part:05d}.bin", attempt)
            copy_path, copy_done = task_output(Path(tmp_dir) / "copies" / f"part-{part:05d}.parquet", attempt)
            quarantine = PartWriter(quarantine_dir, part, attempt, QUARANTINE_SCHEMA)
            offset = 0
            with pq.ParquetWriter(kept_path, KEPT_SCHEMA, compression="zstd") as kept_w, \
                    pq.ParquetWriter(copy_path, COPY_SCHEMA, compression="zstd") as copy_w, \
                    open(tok_path, "wb") as tok_f:
                for raw in read_unit(unit, plan):
                    docs, refused = split_read_batch(raw, plan)
                    quarantine.write(refused)
                    n = docs.num_rows
                    if n == 0:
                        continue
                    reps = (pc.fill_null(docs.column("repeats").cast(pa.int32()), 1) if use_repeats
                            else pa.array(np.ones(n, np.int32)))
                    doc = pa.RecordBatch.from_arrays(
                        [docs.column("id"), pc.fill_null(docs.column("source"), "unknown"),
                         pc.fill_null(docs.column("lang"), "unknown"), docs.column("url"), docs.column("doc_pos"),
                         reps, docs.column("text")],
                        names=["id", "source", "lang", "url", "doc_pos", "repeats", "text"])
                    enc = encode_batch(doc, model_path, append_eos=opts["append_eos"],
                                       num_threads=opts["encode_threads"], batch_docs=opts["batch_docs"])
                    kept_w.write_batch(pa.RecordBatch.from_arrays(
                        [enc.column(f.name).cast(f.type) for f in KEPT_SCHEMA], schema=KEPT_SCHEMA))
                    ids = enc.column("input_ids")
                    offs = ids.offsets.to_numpy().astype(np.int64)
                    tok_f.write(ids.values.to_numpy()[offs[0]:offs[-1]].tobytes())
                    starts = offs[:-1] - offs[0] + offset
                    lengths = np.diff(offs)
                    offset += int(offs[-1] - offs[0])
                    # one row per copy (repeats = k: k copies, each placed by its own hashes)
                    n_copies = np.maximum(reps.to_numpy(zero_copy_only=False), 0).astype(np.int64)
                    parent = np.repeat(np.arange(n), n_copies)
                    if len(parent):
                        copy_no = np.arange(len(parent)) - np.repeat(np.cumsum(n_copies) - n_copies, n_copies)
                        pos = docs.column("doc_pos").to_numpy()[parent]
                        take = pa.array(parent)
                        copy_w.write_batch(pa.RecordBatch.from_arrays([
                            pa.array(copy_hash(seed, _SHARD_TAG, pos, copy_no)),
                            pa.array(copy_hash(seed, _ORDER_TAG, pos, copy_no) if opts["shuffle"] else pos),
                            pa.array(pos), pa.array(copy_no.astype(np.int32)),
                            pa.array(np.full(len(parent), part, np.int32)), pa.array(starts[parent]),
                            pa.array(lengths[parent]), enc.column("source").take(take),
                            enc.column("lang").take(take)], schema=COPY_SCHEMA))
                    totals.append(pa.table({
                        "source": enc.column("source"), "lang": enc.column("lang"),
                        "tokens": pa.array(lengths * n_copies), "seqs": pa.array(n_copies),
                        "bytes": enc.column("n_bytes"), "chars": enc.column("n_chars")}))
            quarantine.close()
            kept_done()
            tok_done()
            copy_done()
        groups = []
        if totals:
            t = pa.concat_tables(totals).group_by(["source", "lang"]).aggregate(
                [("tokens", "count"), ("tokens", "sum"), ("seqs", "sum"), ("bytes", "sum"), ("chars", "sum")])
            groups = t.rename_columns(["source", "lang", "docs", "tokens", "seqs", "bytes", "chars"]).to_pylist()
        yield {"groups": groups, "encode_cpu_s": encode_cpu_seconds() - cpu0}
    return run


def copies_by_shard(copies_dir: str, n_shards: int):
    """mapPartitions function over unit numbers: each unit's copy rows split by shard
    (h_shard mod n_shards), yielded as (shard, blob) pairs (pipeline.exchange): one blob per
    (unit, shard), never a row at a time."""
    def run(unit_numbers):
        import numpy as np
        import pyarrow.parquet as pq

        for i in unit_numbers:
            t = pq.read_table(Path(copies_dir) / f"part-{i:05d}.parquet")
            yield from split_by(t, np.mod(t.column("h_shard").to_numpy(), n_shards))
    return run


def shard_writer(out_dir: str, tokens_dir: str):
    """mapPartitions function over one shard's (shard, IPC bytes) blobs: its copies sorted by
    (key, doc_pos, copy) -> one .bin/.idx pair, each document's ids read from the encoding tasks'
    token buffers; yields the shard's manifest entry."""
    def run(pairs):
        import numpy as np

        from pipeline.indexed_dataset import IndexedDatasetWriter
        from tokenizer_training.shards import shard_entry, shard_name

        pairs = list(pairs)
        if not pairs:
            return
        shard_ids = {s for s, _ in pairs}
        if len(shard_ids) != 1:
            raise RuntimeError(f"one shard per task expected, got {sorted(shard_ids)}")
        shard = shard_ids.pop()
        t = from_blobs(blob for _, blob in pairs)
        t = t.sort_by([("key", "ascending"), ("doc_pos", "ascending"), ("copy", "ascending")])
        buffers: dict = {}
        parts, offsets, lengths = (t.column(c).to_numpy() for c in ("part", "offset", "length"))
        by_src, by_lang = ({r[col]: r["length_sum"] for r in t.group_by(col).aggregate([("length", "sum")]).to_pylist()}
                           for col in ("source", "lang"))
        prefix = Path(out_dir) / shard_name(shard)
        with IndexedDatasetWriter(prefix, dtype=np.int32) as w:
            for part, o, n in zip(parts.tolist(), offsets.tolist(), lengths.tolist()):
                buf = buffers.get(part)
                if buf is None:
                    path = Path(tokens_dir) / f"part-{part:05d}.bin"
                    buf = np.memmap(path, dtype=np.int32, mode="r") if path.stat().st_size else np.zeros(0, np.int32)
                    buffers[part] = buf
                w.add_document(np.asarray(buf[o:o + n]))
        yield json.dumps(shard_entry(prefix, shard, t.num_rows, int(lengths.sum()), by_src, by_lang))
    return run


def _merge_counts(entries, key):
    out: dict = {}
    for e in entries:
        for k, v in e[key].items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


class TokenizeStage(Stage):
    name = "tokenize"
    config_class = TokenizeConfig
    feeds_next_stage = False  # its kept/ holds token ids, not text
    description = "encode documents with the SentencePiece model into Megatron .bin/.idx + parquet token shards"
    cli_options = (
        CliOption("--tokenizer", "tokenizer", "tokenizer.model (or a train-tokenizer output directory)"),
        CliOption("--shard-size-tokens", "shard_size_tokens", "target tokens per .bin/.idx shard"),
    )

    def prepare(self, cfg, stage_dirs):
        if not cfg.tokenizer and "train-tokenizer" in stage_dirs:
            cfg.tokenizer = str(Path(stage_dirs["train-tokenizer"]) / "tokenizer.model")
        return cfg

    def check(self, cfg) -> None:
        if not cfg.tokenizer:
            raise UserError("tokenize: no tokenizer given (--tokenizer PATH/tokenizer.model, or "
                            "tokenize.tokenizer in the config)")
        try:
            resolve_model_path(cfg.tokenizer)
        except FileNotFoundError as exc:
            raise UserError(f"tokenize: {exc}") from None
        if cfg.shard_size_tokens < 1:
            raise UserError("tokenize.shard_size_tokens must be >= 1")

    def fingerprint_extra(self, cfg) -> dict:
        # A model retrained at the same path must not pass for the old one.
        try:
            return {"tokenizer_sha256": file_sha256(resolve_model_path(cfg.tokenizer))}
        except (FileNotFoundError, OSError, ValueError):
            return {}

    def run_units(self, ctx, plan) -> StageOutput:
        from pipeline.models import ship
        from tokenizer_training.encode import load_sentencepiece

        cfg = ctx.config
        shipped = ship(ctx.spark, resolve_model_path(cfg.tokenizer))
        model_path, model_sha = shipped.path, shipped.sha256
        sp = load_sentencepiece(model_path)
        vocab_size = sp.get_piece_size()
        if cfg.append_eos and sp.eos_id() < 0:
            raise UserError(f"tokenize: {model_path} has no </s> piece but append_eos is set")
        if len(plan.units) < ctx.spark.sparkContext.defaultParallelism and ctx.inputs.total_bytes > 64 << 20:
            ctx.log(f"note: the input has {len(plan.units)} read unit(s) for "
                    f"{ctx.spark.sparkContext.defaultParallelism} cores; split it into more files "
                    "(or lower read.unit_bytes) to use them all")
        seed = int(cfg.seed)
        # One pass, without the JVM on the data path: each task reads one unit of the input with
        # the pipeline's reader, encodes it and writes its kept/ parquet file, its token buffer and
        # one row per shard sequence (copy) with that copy's seeded shard and order hashes. The
        # .bin/.idx shards are then written from the token buffers: only the small per-copy rows
        # are shuffled, never the token arrays.
        kept_dir = ctx.work_dir / "kept"
        tmp_dir = ctx.work_dir / "_tokenize_tmp"
        for d in (kept_dir, tmp_dir / "tokens", tmp_dir / "copies"):
            d.mkdir(parents=True)
        opts = {"seed": seed, "shuffle": cfg.shuffle, "honour_repeats": cfg.honour_repeats,
                "append_eos": cfg.append_eos, "encode_threads": cfg.encode_threads, "batch_docs": cfg.batch_docs}
        with ctx.timed("encode"):
            task_rows = (units_rdd(ctx.spark, plan)
                         .mapPartitions(encode_writer(plan, model_path, opts, str(kept_dir), str(tmp_dir),
                                                      str(ctx.work_dir / "quarantine")))
                         .collect())  # a few (source, lang) totals per task: summed here, no shuffle
        groups = [g for r in task_rows for g in r["groups"]]
        encode_cpu = sum(r["encode_cpu_s"] for r in task_rows)
        tot = {k: sum(int(r[k] or 0) for r in groups) for k in ("docs", "tokens", "seqs", "bytes", "chars")}
        docs_by_source, docs_by_lang = {}, {}
        for r in groups:
            docs_by_source[r["source"]] = docs_by_source.get(r["source"], 0) + int(r["docs"])
            docs_by_lang[r["lang"]] = docs_by_lang.get(r["lang"], 0) + int(r["docs"])
        total_tokens, n_seqs = int(tot["tokens"]), int(tot["seqs"])
        n_shards = max(1, math.ceil(total_tokens / cfg.shard_size_tokens))
        ctx.log(f"encoded {int(tot['docs']):,} documents ({int(tot['bytes']) / 1e6:.1f} MB): "
                f"{total_tokens:,} tokens in {n_seqs:,} sequences -> {n_shards} shard(s)")

        shard_dir = ctx.work_dir / "shards"
        shard_dir.mkdir()
        with ctx.timed("shards"):
            # Only the small per-copy rows move (as Arrow blobs per unit and shard), never tokens.
            blobs = units_rdd(ctx.spark, plan).mapPartitions(copies_by_shard(str(tmp_dir / "copies"), n_shards))
            rows = exchange(blobs, n_shards).mapPartitions(shard_writer(str(shard_dir), str(tmp_dir / "tokens"))).collect()
        shutil.rmtree(tmp_dir)
        entries = sorted((json.loads(r) for r in rows), key=lambda e: e["shard"])
        if sum(e["tokens"] for e in entries) != total_tokens:
            raise RuntimeError("tokenize: the shards do not hold every token; output not published")
        manifest = {
            "format": "megatron-lm indexed dataset v1 (MMIDIDX), one sequence per document",
            "dtype": "int32",
            "vocab_size": vocab_size,
            "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(),
            "pad_id": sp.pad_id() if sp.pad_id() >= 0 else sp.unk_id(),
            "append_eos": cfg.append_eos,
            "tokenizer": {"path": model_path, "sha256": model_sha},
            "seed": seed, "shuffle": cfg.shuffle, "shard_size_tokens": cfg.shard_size_tokens,
            "documents": int(tot["docs"]), "sequences": n_seqs, "tokens": total_tokens,
            "text_bytes": int(tot["bytes"]),
            "documents_by_source": dict(sorted(docs_by_source.items())),
            "documents_by_lang": dict(sorted(docs_by_lang.items())),
            "tokens_by_source": _merge_counts(entries, "tokens_by_source"),
            "tokens_by_lang": _merge_counts(entries, "tokens_by_lang"),
            "shards": entries,
        }
        (shard_dir / "_manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                                  encoding="utf-8")
        summary = {k: v for k, v in manifest.items() if k != "shards"}
        summary["shard_count"] = len(entries)
        # A timing: in the stage manifest only, so the shards' own manifest stays byte-reproducible.
        summary["encode_cpu_s"] = round(encode_cpu, 3)  # inside SentencePiece, summed over tasks
        summary["card"] = shards_card(manifest, entries)
        summary["report"] = {"tables": [{
            "title": "Tokens by language",
            "columns": ["lang", "documents", "tokens"],
            "rows": [[lg, manifest["documents_by_lang"].get(lg, 0), n]
                     for lg, n in manifest["tokens_by_lang"].items()]}]}
        return StageOutput(written=("kept",), stats=summary,
                           input_counts={"docs": int(tot["docs"]), "chars": int(tot["chars"])})


def tokenizer_card(vocab_size: int, sampled_bytes: int, seed: int, model: Path) -> list[str]:
    """The dataset card's line on the tokenizer (pipeline.export reads stats.card)."""
    return [f"Tokenizer: SentencePiece, {vocab_size:,} pieces, trained on {sampled_bytes / 1e6:.1f} MB sampled "
            f"from this stage's input by language (seed {seed}); `tokenizer.model` sha256 `{file_sha256(model)}`."]


def shards_card(manifest: dict, entries: list) -> list[str]:
    """The dataset card's lines on the token shards: format, totals, each shard with its checksums."""
    lines = [f"Token shards: Megatron-LM indexed dataset (.bin/.idx, {manifest['dtype']}), {manifest['tokens']:,} "
             f"tokens in {manifest['sequences']:,} sequences (a document with repeats = k is k sequences), "
             f"tokenizer sha256 `{manifest['tokenizer']['sha256']}`.", "",
             "| shard | documents | tokens | .bin sha256 | .idx sha256 |", "|---|---:|---:|---|---|"]
    return lines + [f"| {e['prefix']} | {e['documents']:,} | {e['tokens']:,} | `{e['bin_sha256']}` | "
                    f"`{e['idx_sha256']}` |" for e in entries]


TRAIN_TOKENIZER_STAGE = TrainTokenizerStage()
TOKENIZE_STAGE = TokenizeStage()
