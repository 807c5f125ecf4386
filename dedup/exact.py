"""`exact-dedup`: exact duplicates at document, paragraph and sentence level, on the two-pass engine.

Document level: the key of the normalised text (NFKC, whitespace collapsed); the first copy in
corpus order (smallest doc_pos) stays, the others go to removed/ as `exact_duplicate` with
`duplicate_of` = the id of the copy kept. Every kept document carries `exact_copies`: how many
documents of the input had its text (1 for a unique one), the frequency sampling reads.

Paragraph and sentence level (on the documents that survive): every paragraph / sentence whose
normalised form is at least `min_*_chars` long is keyed; one that occurs more than once in the
corpus is cut from every document except its first occurrence (smallest doc_pos, then offset).
Each cut goes to removed_spans/ with its offsets and text. A document that loses spans and has
fewer than `min_doc_chars_after_span_dedup` characters left is removed as
`too_short_after_span_dedup` (its remaining text in removed/).

Which spans may be cut is the profile's span policy (pipeline.spanpolicy), not this stage's: by
default prose is cut at paragraph and sentence level and source code not at all (a code file is
kept or removed whole). Where a user opts code in to `header`, the comment block at the top of a
file is keyed as one span (with `min_paragraph_chars`, and switched by `paragraph`).

How (pipeline.twopass): pass 1 keys every document and span inside the read tasks; the decisions
are "first occurrence wins" over the keys alone, document level first, then the spans of the
documents that survive it; pass 2 reads each unit again and cuts. A paragraph's first occurrence
contains the first occurrence of each of its sentences, so cutting both levels in one pass is
consistent (pipeline.spans: the outermost cut wins).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.hashing import content_key, key_words
from pipeline.schema import removed_schema
from pipeline.segment import normalize
from pipeline.spanpolicy import HEADER, PARAGRAPH, SENTENCE, SpanPolicy, candidate_spans
from pipeline.spans import CUT_SCHEMA, REMOVED_SPAN_SCHEMA, choose_outermost, cut_documents, cuts_table
from pipeline.stage import Stage, StageOutput
from pipeline.twopass import Decision, decide, match_firsts, pass1_counts, pass1_tasks, run_pass2, side_files

LEVELS = (PARAGRAPH, SENTENCE, HEADER)  # stored as int8 codes in the side files
LEVEL_CODE = {level: code for code, level in enumerate(LEVELS)}
EXACT_DUPLICATE = "exact_duplicate"
TOO_SHORT = "too_short_after_span_dedup"
DOC_KEYS, SPAN_KEYS = ["hi", "lo"], ["hi", "lo", "level"]
DOC_ORDER, SPAN_ORDER = ["doc_pos"], ["doc_pos", "start"]


@dataclass
class ExactDedupConfig:
    document: bool = True
    paragraph: bool = True
    sentence: bool = True
    # Spans shorter than this (normalised characters) are never cut: '谢谢。', 'Yes.', '}'.
    min_paragraph_chars: int = 40
    min_sentence_chars: int = 20
    min_doc_chars_after_span_dedup: int = 50


def _doc_spans(text: str, levels: frozenset, min_chars: dict, out: tuple) -> None:
    """Append the keyed spans of one document (the policy's candidates at `levels` that are at
    least min_chars[level] long, normalised) to the column lists in `out`."""
    codes, starts, ends, keys = out
    for level, start, end in candidate_spans(text, levels):
        norm = normalize(text[start:end])
        if len(norm) >= min_chars[level]:
            codes.append(LEVEL_CODE[level])
            starts.append(start)
            ends.append(end)
            keys.append(content_key(norm))


def _levels_by_lang(cfg: dict, policy: SpanPolicy):
    """lang -> the levels this stage keys in documents of that lang (config x policy), memoised."""
    wanted = frozenset(lv for lv, on in ((PARAGRAPH, cfg["paragraph"]), (SENTENCE, cfg["sentence"]),
                                         (HEADER, cfg["paragraph"])) if on)
    memo: dict = {}

    def levels(lang) -> frozenset:
        if lang not in memo:
            memo[lang] = policy.levels(lang) & wanted
        return memo[lang]
    return levels


def fingerprint(cfg: dict, policy: SpanPolicy):
    """Pass 1: make(unit) -> a function from a batch of the unit's documents to {"docs": (doc_pos,
    id, hi, lo), "spans": (doc_pos, level, start, end, hi, lo)}: keys and offsets, no text.

    A document whose key the unit has already seen at a smaller doc_pos is a copy whatever the rest
    of the corpus holds: its spans are never cut or kept (only surviving documents' spans are), so
    they are not keyed at all."""
    levels_of = _levels_by_lang(cfg, policy)
    min_chars = {PARAGRAPH: cfg["min_paragraph_chars"], SENTENCE: cfg["min_sentence_chars"],
                 HEADER: cfg["min_paragraph_chars"]}

    def make(unit: int):
        seen: dict = {}  # document key -> smallest doc_pos in this unit so far

        def run(docs: pa.RecordBatch) -> dict:
            texts, langs = docs.column("text").to_pylist(), docs.column("lang").to_pylist()
            positions = docs.column("doc_pos").to_pylist()
            doc_keys, per_doc = [], []
            cols = ([], [], [], [])
            for text, lang, pos in zip(texts, langs, positions):
                key = content_key(normalize(text)) if cfg["document"] else bytes(16)
                doc_keys.append(key)
                before = len(cols[0])
                copy = cfg["document"] and seen.get(key, pos) < pos
                if not copy:
                    seen[key] = min(pos, seen.get(key, pos))
                    levels = levels_of(lang)
                    if levels:
                        _doc_spans(text, levels, min_chars, cols)
                per_doc.append(len(cols[0]) - before)
            hi, lo = key_words(doc_keys)
            out = {"docs": pa.table({"doc_pos": docs.column("doc_pos"), "id": docs.column("id"), "hi": hi, "lo": lo})}
            s_hi, s_lo = key_words(cols[3])
            pos = np.repeat(docs.column("doc_pos").to_numpy(), per_doc)
            out["spans"] = pa.table({"doc_pos": pos, "level": pa.array(cols[0], pa.int8()),
                                     "start": pa.array(cols[1], pa.int32()), "end": pa.array(cols[2], pa.int32()),
                                     "hi": s_hi, "lo": s_lo})
            return out
        return run
    return make


def doc_duplicates(side, unit: int) -> pa.Table | None:
    """The unit's documents that are copies of an earlier one: doc_pos, first_doc_pos, ..."""
    return match_firsts(side.read("docs", unit, ["doc_pos", *DOC_KEYS]), side.read("doc_firsts", unit),
                        DOC_KEYS, DOC_ORDER)


def surviving_spans(side, unit: int) -> pa.Table | None:
    """The unit's keyed spans, less those of documents removed as duplicates."""
    spans = side.read("spans", unit)
    dups = doc_duplicates(side, unit)
    if spans is None or dups is None:
        return spans
    return spans.filter(pc.invert(pc.is_in(spans.column("doc_pos"), dups.column("doc_pos"))))


def unit_cuts(side, unit: int, ids: dict) -> pa.Table:
    """The unit's spans to cut (CUT_SCHEMA, outermost only): every keyed span of a surviving
    document whose key occurs earlier in the corpus."""
    dups = match_firsts(surviving_spans(side, unit), side.read("span_firsts", unit), SPAN_KEYS, SPAN_ORDER)
    if dups is None:
        return CUT_SCHEMA.empty_table()
    levels = pa.array(LEVELS).take(dups.column("level").cast(pa.int32()))
    first_ids = [ids.get(f) for f in dups.column("first_doc_pos").to_pylist()]
    return choose_outermost(cuts_table(dups.column("doc_pos"), dups.column("start"), dups.column("end"), levels,
                                       EXACT_DUPLICATE, first_ids))


COPIES = "exact_copies"


def kept_schema(doc_schema: pa.Schema) -> pa.Schema:
    """kept/: the input's columns (an earlier `exact_copies` replaced) and `exact_copies`."""
    if COPIES in doc_schema.names:
        doc_schema = doc_schema.remove(doc_schema.get_field_index(COPIES))
    return doc_schema.append(pa.field(COPIES, pa.int64()))


def copies_of_firsts(side, unit: int) -> dict:
    """{doc_pos: copies in the corpus} for the unit's documents that are the first occurrence of a
    text found more than once (every other document stands for itself alone)."""
    firsts = side.read("doc_firsts", unit, ["first_unit", "first_doc_pos", "group_size"])
    if firsts is None:
        return {}
    mine = firsts.filter(pc.equal(firsts.column("first_unit"), unit))
    return dict(zip(mine.column("first_doc_pos").to_pylist(), mine.column("group_size").to_pylist()))


def applier(side, min_doc_chars: int, doc_schema: pa.Schema):
    """Pass 2: make_applier(unit) for run_pass2."""
    gone_schema, keep_schema = removed_schema(doc_schema), kept_schema(doc_schema)

    def make(unit: int, ids: dict):
        dups = doc_duplicates(side, unit)
        dup_of = ({p: ids.get(f) for p, f in zip(dups.column("doc_pos").to_pylist(),
                                                  dups.column("first_doc_pos").to_pylist())} if dups else {})
        cuts = unit_cuts(side, unit, ids)
        copies = copies_of_firsts(side, unit)

        def apply(docs: pa.RecordBatch) -> dict:
            out = apply_decisions(docs, dup_of, cuts, min_doc_chars, gone_schema)
            kept = out["kept"]
            n = [copies.get(p, 1) for p in kept.column("doc_pos").to_pylist()]
            if COPIES in kept.schema.names:
                kept = kept.drop_columns([COPIES])
            out["kept"] = kept.append_column(COPIES, pa.array(n, pa.int64())).cast(keep_schema)
            return out
        return apply
    return make


def apply_decisions(docs: pa.RecordBatch, dup_of: dict, cuts: pa.Table, min_doc_chars: int,
                    gone_schema: pa.Schema) -> dict:
    """One batch: documents that are duplicates go to removed/; the others lose their cut spans
    and go to kept/, or to removed/ if too little is left (duplicate_of: its first cut's)."""
    n = docs.num_rows
    reason, dup_col = [None] * n, [None] * n
    for i, p in enumerate(docs.column("doc_pos").to_pylist()):
        if p in dup_of:
            reason[i], dup_col[i] = EXACT_DUPLICATE, dup_of[p]
    text, spans, left = cut_documents(docs, cuts)
    first_dup = spans.column("duplicate_of").to_pylist() if left else []
    for row, (rest, first_cut) in left.items():
        if len(rest.strip()) < min_doc_chars:
            reason[row], dup_col[row] = TOO_SHORT, first_dup[first_cut]
    table = pa.Table.from_batches([docs])
    table = table.set_column(table.schema.get_field_index("text"), "text", text)
    reasons = pa.array(reason, pa.string())
    gone = reasons.is_valid()
    removed = table.append_column("reason", reasons).append_column("duplicate_of", pa.array(dup_col, pa.string()))
    return {"kept": table.filter(pc.invert(gone)), "removed": removed.filter(gone).cast(gone_schema),
            "removed_spans": spans}


class ExactDedupStage(Stage):
    name = "exact-dedup"
    config_class = ExactDedupConfig
    description = "exact duplicates at document, paragraph and sentence level"

    def run_units(self, ctx, plan) -> StageOutput:
        cfg = ctx.config
        side = side_files(ctx)
        steps = [Decision("span_firsts", lambda u: surviving_spans(side, u), tuple(SPAN_KEYS), tuple(SPAN_ORDER))]
        if cfg.document:
            steps.insert(0, Decision("doc_firsts", lambda u: side.read("docs", u), tuple(DOC_KEYS), tuple(DOC_ORDER)))
        with ctx.timed("passes"):  # one Spark job: pass 1, the decisions, then each unit read again
            first = pass1_tasks(ctx, plan, fingerprint(vars(cfg), SpanPolicy(ctx.profile.spans)), side, then=steps[0])
            answers = decide(ctx, plan, side, steps, lambda u: side.read("docs", u, ["doc_pos", "id"]),
                             first_pairs=first)
            doc_schema = plan.doc_schema
            run_pass2(ctx, plan, applier(side, cfg.min_doc_chars_after_span_dedup, doc_schema),
                      {"kept": kept_schema(doc_schema), "removed": removed_schema(doc_schema),
                       "removed_spans": REMOVED_SPAN_SCHEMA}, answers)
            counts = pass1_counts(side, plan)
        ctx.log(f"keyed and decided {counts['docs']:,} documents")
        side.remove()
        return StageOutput(written=("kept", "removed", "removed_spans"), span_outputs=("removed_spans",),
                           removal_order=(EXACT_DUPLICATE, "removed_spans", TOO_SHORT), input_counts=counts)


STAGE = ExactDedupStage()
