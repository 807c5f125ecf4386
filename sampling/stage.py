"""`sample`: a weight and integer repeats per document, drawn to a token mixture, on the two-pass engine.

Pass 1 (per read unit): each document's tokens (the SentencePiece model of `tokenizer`, counted as
`tokenize` writes them, with </s>; without a tokenizer, `tokens_per_byte` x its UTF-8 bytes), its
weight (sampling.weights, from its own columns), its mixture cell (source group x language) and
quality bucket go to side files: numbers and short labels, no text.
Decide (Spark over those records, the cell table on the driver): token budgets per cell from the
targets, floors and caps, then one scale per cell by water-filling (sampling.mixture).
Pass 2 (per read unit): each document's expected repeats r = min(scale x weight, max_repeats) and
its integer repeats, floor(r) plus one with probability frac(r) from a hash of its id and `seed`.
kept/ = repeats >= 1, with `weight`, `repeats` and `sample_tokens` (tokenize writes a document
`repeats` times); removed/ = repeats 0, reason `not_sampled`, with the same columns.

The manifest (stats.sampling) and the report give the token share of every source group, language
and quality bucket before sampling (the input), as targeted, and after (sum of repeats x tokens,
counted from the output files), and the cell table with budgets and scales.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import UserError
from pipeline.hashing import file_sha256, uniform01
from pipeline.schema import removed_schema
from pipeline.stage import CliOption, Stage, StageOutput
from pipeline.twopass import decision_rows, run_pass1, run_pass2, side_files
from sampling.mixture import MixtureSettings, draw_repeats, expected_repeats
from sampling.weights import WeightSettings, document_weights, quality_buckets, source_groups, source_patterns

NOT_SAMPLED = "not_sampled"
OUT_COLUMNS = (("weight", pa.float64()), ("repeats", pa.int32()), ("sample_tokens", pa.int64()))
RECORD_SCHEMA = pa.schema([("doc_pos", pa.int64()), ("group", pa.string()), ("lang", pa.string()),
                           ("bucket", pa.string()), ("tokens", pa.int64()), ("weight", pa.float64())])


@dataclass
class SampleConfig:
    seed: int = 1
    tokenizer: str = ""  # SentencePiece model counting tokens; "" = train-tokenizer's in a pipeline, else estimated
    tokens_per_byte: float = 0.25  # the estimate without a tokenizer (zh/en/code all near 0.24-0.29)
    # The mixture (sampling.mixture.MixtureSettings)
    targets: dict = field(default_factory=dict)  # {"source": {pattern: share}, "lang": {lang: share}}
    lang_floor: float = 0.0
    max_repeats: float = 4.0
    total_tokens: int = 0
    # The weight formula (sampling.weights.WeightSettings)
    quality_column: str = "quality_score"
    quality_pivot: float = 0.5
    quality_strength: float = 2.0
    signals: dict = field(default_factory=dict)
    duplicate_exponent: float = 0.5
    cluster_exponent: float = 0.25


def weight_settings(cfg: SampleConfig) -> WeightSettings:
    return WeightSettings(cfg.quality_column, cfg.quality_pivot, cfg.quality_strength, dict(cfg.signals),
                          cfg.duplicate_exponent, cfg.cluster_exponent)


def mixture_settings(cfg: SampleConfig) -> MixtureSettings:
    return MixtureSettings(dict(cfg.targets), cfg.lang_floor, cfg.max_repeats, cfg.total_tokens)


def _cells(table: pa.Table, cfg: SampleConfig) -> tuple[pa.Array, pa.Array]:
    langs = pc.fill_null(table.column("lang"), "(none)").combine_chunks()
    return source_groups(table.column("source"), source_patterns(cfg.targets)), langs


def token_counter(cfg: SampleConfig, tokenizer: str | None):
    """texts -> tokens per text, as `tokenize` counts them (with </s> when the model has it)."""
    if not tokenizer:
        return lambda texts: np.ceil(pc.binary_length(texts.cast(pa.binary())).to_numpy(zero_copy_only=False)
                                     * cfg.tokens_per_byte).astype(np.int64)

    def count(texts):
        import sentencepiece as spm

        from pipeline.models import load_once

        sp = load_once(tokenizer, lambda p: spm.SentencePieceProcessor(model_file=p))
        ids = sp.encode(texts.to_pylist())
        return np.fromiter((len(x) for x in ids), np.int64, len(ids)) + (1 if sp.eos_id() >= 0 else 0)
    return count


def fingerprint(cfg: SampleConfig, tokenizer: str | None):
    """Pass 1: make(unit) -> batch -> {"records": RECORD_SCHEMA table} (no text)."""
    settings, count = weight_settings(cfg), token_counter(cfg, tokenizer)

    def make(_unit):
        def run(docs) -> dict:
            t = pa.Table.from_batches([docs]) if isinstance(docs, pa.RecordBatch) else docs
            group, lang = _cells(t, cfg)
            return {"records": pa.table({
                "doc_pos": t.column("doc_pos"), "group": group, "lang": lang,
                "bucket": quality_buckets(t, cfg.quality_column),
                "tokens": pa.array(count(t.column("text").combine_chunks()), pa.int64()),
                "weight": pa.array(document_weights(t, settings), pa.float64())}, schema=RECORD_SCHEMA)}
        return run
    return make


def out_schemas(doc_schema: pa.Schema) -> dict:
    base = pa.schema([f for f in doc_schema if f.name not in dict(OUT_COLUMNS)])
    kept = pa.schema([*base, *(pa.field(n, t) for n, t in OUT_COLUMNS)])
    return {"kept": kept, "removed": removed_schema(kept)}


def applier(side, cfg: SampleConfig, scale_of: dict, schemas: dict):
    """Pass 2: make_applier(unit, ids) -> batch -> {"kept", "removed"} with weight and repeats."""
    settings = weight_settings(cfg)

    def make(unit: int, _ids):
        records = side.read("records", unit, ["doc_pos", "tokens"])

        def apply(docs) -> dict:
            t = pa.Table.from_batches([docs]) if isinstance(docs, pa.RecordBatch) else docs
            weight = document_weights(t, settings)
            group, lang = _cells(t, cfg)
            scale = np.array([scale_of.get((g, lg), 0.0) for g, lg in zip(group.to_pylist(), lang.to_pylist())])
            repeats = draw_repeats(expected_repeats(weight, scale, cfg.max_repeats),
                                   uniform01(cfg.seed, t.column("id").to_pylist()))
            _, rec = decision_rows(t, records)  # every document has its record (pass 1 wrote them all)
            t = t.drop_columns([n for n, _ in OUT_COLUMNS if n in t.schema.names])
            t = (t.append_column("weight", pa.array(weight)).append_column("repeats", pa.array(repeats))
                 .append_column("sample_tokens", rec.column("tokens")))
            chosen = pa.array(repeats > 0)
            gone = t.filter(pc.invert(chosen))
            gone = gone.append_column("reason", pa.array([NOT_SAMPLED] * gone.num_rows, pa.string())).append_column(
                "duplicate_of", pa.nulls(gone.num_rows, pa.string()))
            return {"kept": t.filter(chosen).cast(schemas["kept"]), "removed": gone.cast(schemas["removed"])}
        return apply
    return make


class SampleStage(Stage):
    name = "sample"
    config_class = SampleConfig
    description = "sampling weights and repeats per document, drawn to a token mixture (sources, languages)"
    cli_options = (CliOption("--tokenizer", "tokenizer", "SentencePiece model that counts tokens"),
                   CliOption("--seed", "seed", "the draw's seed"))

    def prepare(self, cfg, stage_dirs):
        if not cfg.tokenizer and "train-tokenizer" in stage_dirs:
            cfg.tokenizer = str(Path(stage_dirs["train-tokenizer"]) / "tokenizer.model")
        return cfg

    def check(self, cfg) -> None:
        from sampling.decide import check_targets

        if cfg.tokenizer and not Path(cfg.tokenizer).is_file():
            raise UserError(f"sample.tokenizer {cfg.tokenizer}: no such file")
        if cfg.max_repeats < 1 or cfg.tokens_per_byte <= 0 or cfg.total_tokens < 0 or not 0 <= cfg.lang_floor < 1:
            raise UserError("sample: max_repeats >= 1, tokens_per_byte > 0, total_tokens >= 0 and "
                            "0 <= lang_floor < 1 are needed")
        check_targets(cfg.targets)

    def fingerprint_extra(self, cfg) -> dict:
        return {"tokenizer_sha256": file_sha256(cfg.tokenizer)} if cfg.tokenizer else {}

    def run_units(self, ctx, plan) -> StageOutput:
        from pipeline.models import ship
        from sampling.decide import decide_scales, mixture_figure, realised_shares

        cfg = ctx.config
        tokenizer = ship(ctx.spark, cfg.tokenizer).path if cfg.tokenizer else None
        side = side_files(ctx)
        schemas = out_schemas(plan.doc_schema)
        with ctx.timed("pass1"):
            counts = run_pass1(ctx, plan, fingerprint(cfg, tokenizer), side)
        with ctx.timed("decide"):
            scale_of, stats = decide_scales(ctx.spark, len(plan.units), side.root, cfg, mixture_settings(cfg))
        ctx.log(f"{len(scale_of)} mixture cells; {stats['input_tokens']:,} tokens in, "
                f"{stats['total_tokens']:,} to sample")
        with ctx.timed("pass2"):
            run_pass2(ctx, plan, applier(side, cfg, scale_of, schemas), schemas, ctx.spark.sparkContext.emptyRDD())
        side.remove()
        with ctx.timed("shares"):
            stats.update(realised_shares(ctx.spark, ctx.work_dir, stats, cfg))
            mixture_figure(ctx.work_dir, stats["shares"])
        stats["token_counter"] = f"SentencePiece {Path(tokenizer).name}" if tokenizer else \
            f"estimate: {cfg.tokens_per_byte} tokens per UTF-8 byte"
        return StageOutput(written=("kept", "removed"), removal_order=(NOT_SAMPLED,), input_counts=counts,
                           stats={"sampling": stats, "report": stats.pop("report"), "card": card_lines(cfg, stats)})


def card_lines(cfg: SampleConfig, stats: dict) -> list[str]:
    """The dataset card's account of the sampling: the formula, and the shares it reached."""
    from sampling.weights import FORMULA

    lines = ["The sampling weight of a document (sampling.weights):", "", "```", FORMULA, "```", "",
             f"Inside each source group x language cell, expected repeats = min(scale x weight, {cfg.max_repeats}) "
             f"with the cell's scale set so that its tokens meet its budget; integer repeats are drawn from a hash "
             f"of the id with seed {cfg.seed}. Tokens counted with: {stats['token_counter']}.", "",
             "| dimension | value | before % | target % | after % |", "|---|---|---:|---:|---:|"]
    for dim, rows in stats["shares"].items():
        for r in rows:
            target = f"{100 * r['target']:.2f}" if "target" in r else "-"
            lines.append(f"| {dim} | {r['value']} | {100 * r['before']:.2f} | {target} | {100 * r['after']:.2f} |")
    return lines


SAMPLE_STAGE = SampleStage()
