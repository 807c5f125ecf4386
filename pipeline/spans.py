"""The one span-cutting path, and the schema of the spans it cuts (removed_spans/).

A cut is a half-open character range [start, end) of one document's text (by `doc_pos`) with the
`level` it was found at (paragraph, sentence, line, ...), the `reason` it goes (exact_duplicate, a
quality filter's name, ...), an optional `score` and the `duplicate_of` id (null if not a
duplicate). Cuts come as a table (CUT_SCHEMA), never one object per cut: a unit can hold millions.

Cuts may overlap or nest (a duplicate paragraph holds duplicate sentences): `choose_outermost`
keeps, in text order, each cut that starts at or after the end of the last one kept, trying the
longer and then the coarser level first at equal starts; so every character is cut at most once and
  original text == kept text with each removed span's `text` put back at its `start`
holds exactly (a test rebuilds documents this way). Offsets are in the original text.
`cut_documents` then applies the chosen cuts to a batch of documents: the new texts, and the
removed_spans/ rows (REMOVED_SPAN_SCHEMA).

A stage that cuts spans writes them in REMOVED_SPAN_SCHEMA and names the output in
`StageOutput.span_outputs`; the runner counts its characters in the reconciliation and the report
shows them by reason and level.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REMOVED_SPAN_SCHEMA = pa.schema([
    ("doc_pos", pa.int64()),
    ("doc_id", pa.string()),
    ("lang", pa.string()),  # the document's, so that cuts can be counted per language
    ("level", pa.string()),
    ("start", pa.int32()),
    ("end", pa.int32()),
    ("text", pa.string()),
    ("reason", pa.string()),
    ("score", pa.float64()),
    ("duplicate_of", pa.string()),
])
CUT_SCHEMA = pa.schema([f for f in REMOVED_SPAN_SCHEMA if f.name not in ("doc_id", "lang", "text")])
# The coarser level wins a tie between cuts of the same range; unknown levels rank after these.
LEVEL_RANK = {"document": 0, "header": 1, "paragraph": 1, "sentence": 2, "line": 3}


def cuts_table(doc_pos, start, end, level, reason, duplicate_of=None, score=None) -> pa.Table:
    """A CUT_SCHEMA table from columns (a scalar reason, level or score applies to every cut)."""
    n = len(doc_pos)

    def col(v, t):
        if isinstance(v, (pa.Array, pa.ChunkedArray)):
            return v.cast(t)
        return pa.array(v, t) if isinstance(v, (list, np.ndarray)) else pa.array([v] * n, t)

    return pa.table([col(doc_pos, pa.int64()), col(level, pa.string()), col(start, pa.int32()),
                     col(end, pa.int32()), col(reason, pa.string()), col(score, pa.float64()),
                     col(duplicate_of, pa.string())], schema=CUT_SCHEMA)


def choose_outermost(cuts: pa.Table) -> pa.Table:
    """The cuts not inside (or starting inside) one kept before them, sorted by (doc_pos, start)."""
    if cuts.num_rows == 0:
        return cuts.combine_chunks()
    levels = cuts.column("level").combine_chunks().dictionary_encode()
    rank = np.array([LEVEL_RANK.get(v, 99) for v in levels.dictionary.to_pylist()], np.int64)[levels.indices.to_numpy()]
    pos, start, end = (cuts.column(c).to_numpy() for c in ("doc_pos", "start", "end"))
    order = np.lexsort((rank, -end.astype(np.int64), start, pos))
    keep = _outermost_sorted(pos[order], start[order].astype(np.int64), end[order].astype(np.int64))
    return cuts.take(pa.array(order[keep])).combine_chunks()


def _outermost_sorted(pos: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The keep mask of choose_outermost over cuts sorted by (doc_pos, start, -end, rank).

    Without partial overlaps (segmentation's cuts nest or are disjoint) a cut is kept exactly when
    it starts at or after the furthest end of the cuts before it in its document: one vectorised
    pass. Where some cut partly overlaps an earlier one, the rule is applied cut by cut."""
    n = len(pos)
    new_doc = np.ones(n, dtype=bool)
    new_doc[1:] = pos[1:] != pos[:-1]
    doc = np.cumsum(new_doc) - 1
    big = int(end.max()) + 1
    reach = np.maximum.accumulate(end + doc * big)  # furthest end so far, reset per document
    before = np.empty(n, np.int64)
    before[0] = -1
    before[1:] = reach[:-1] - doc[1:] * big
    before[new_doc] = -1
    if not np.any((start < before) & (end > before)):
        return start >= before
    keep = np.zeros(n, dtype=bool)
    last_doc, last_end = None, -1
    for k, (p, s, e) in enumerate(zip(pos.tolist(), start.tolist(), end.tolist())):
        if p != last_doc:
            last_doc, last_end = p, -1
        if s >= last_end:
            keep[k] = True
            last_end = e
    return keep


def _cuts_of(chosen: pa.Table, pos) -> pa.Table:
    """The rows of `chosen` (sorted by doc_pos) for the documents at positions `pos`."""
    if chosen.num_rows == 0 or len(pos) == 0:
        return chosen.slice(0, 0)
    all_pos = chosen.column("doc_pos").chunk(0).to_numpy()  # one chunk (choose_outermost): no copy
    lo = np.searchsorted(all_pos, pc.min(pos).as_py(), side="left")
    hi = np.searchsorted(all_pos, pc.max(pos).as_py(), side="right")
    window = chosen.slice(int(lo), int(hi - lo))
    return window.filter(pc.is_in(window.column("doc_pos"), value_set=pa.array(pos)))


def cut_documents(docs, chosen: pa.Table) -> tuple[pa.Array, pa.Table, dict]:
    """Apply chosen cuts (choose_outermost's output, any doc_pos) to a batch of documents.
    Returns (the batch's `text` with the cuts taken out, the removed_spans/ rows of the batch in
    REMOVED_SPAN_SCHEMA, {row of the batch: (what is left of it, its first cut's row in the
    removed_spans table)} for each document that lost text)."""
    pos = docs.column("doc_pos")
    text_col = docs.column("text")
    if isinstance(text_col, pa.ChunkedArray):
        text_col = text_col.combine_chunks()
    mine = _cuts_of(chosen, pos)
    if mine.num_rows == 0:
        return text_col, REMOVED_SPAN_SCHEMA.empty_table(), {}
    row_of = {p: i for i, p in enumerate(pos.to_pylist())}
    c_pos, c_start, c_end = (mine.column(c).to_pylist() for c in ("doc_pos", "start", "end"))
    pieces_cut, doc_rows, left = [], [], {}
    k, n = 0, len(c_pos)
    while k < n:  # one document's cuts at a time (they are sorted by doc_pos, start)
        p, first = c_pos[k], k
        row = row_of[p]
        text = text_col[row].as_py()
        keep, prev = [], 0
        while k < n and c_pos[k] == p:
            keep.append(text[prev:c_start[k]])
            pieces_cut.append(text[c_start[k]:c_end[k]])
            prev = c_end[k]
            doc_rows.append(row)
            k += 1
        keep.append(text[prev:])
        left[row] = ("".join(keep), first)
    rows = sorted(left)
    mask = np.zeros(len(pos), dtype=bool)
    mask[rows] = True
    new_text = pc.replace_with_mask(text_col, pa.array(mask), pa.array([left[r][0] for r in rows], pa.string()))
    rows_cut = pa.array(doc_rows)
    ids = docs.column("id").take(rows_cut)
    langs = (docs.column("lang").take(rows_cut) if "lang" in docs.schema.names
             else pa.nulls(len(doc_rows), pa.string()))
    spans = pa.table([mine.column("doc_pos"), ids, langs, mine.column("level"), mine.column("start"), mine.column("end"),
                      pa.array(pieces_cut, pa.string()), mine.column("reason"), mine.column("score"),
                      mine.column("duplicate_of")], schema=REMOVED_SPAN_SCHEMA)
    return new_text, spans, left


def split_outputs(table: pa.Table, cuts: pa.Table, reason: list, duplicate_of: list, removed_columns: dict,
                  min_doc_chars: int, too_short: str, kept_columns: dict, schemas: dict) -> dict:
    """One batch's kept/, removed/ and removed_spans/ for a stage that removes documents (reason[i]
    set) and cuts spans: the cuts are applied, a document left with fewer than min_doc_chars
    characters goes as `too_short` (duplicate_of = its first cut's), kept/ gains kept_columns and
    removed/ reason, duplicate_of and removed_columns (name -> values over the batch, e.g. a dedup
    stage's similarity). reason and duplicate_of are updated in place."""
    import pyarrow.compute as pc

    text, spans, left = cut_documents(table, cuts)
    first_dup = spans.column("duplicate_of").to_pylist() if left else []
    for row, (rest, first_cut) in left.items():
        if reason[row] is None and len(rest.strip()) < min_doc_chars:
            reason[row], duplicate_of[row] = too_short, first_dup[first_cut]
    table = table.set_column(table.schema.get_field_index("text"), "text", text)
    gone = pa.array(reason, pa.string()).is_valid()
    kept = table
    for name, col in kept_columns.items():
        kept = kept.append_column(name, col)
    removed = (table.append_column("reason", pa.array(reason, pa.string()))
               .append_column("duplicate_of", pa.array(duplicate_of, pa.string())))
    for name, col in removed_columns.items():
        removed = removed.append_column(name, col if isinstance(col, (pa.Array, pa.ChunkedArray)) else pa.array(col))
    return {"kept": kept.filter(pc.invert(gone)).cast(schemas["kept"]),
            "removed": removed.filter(gone).cast(schemas["removed"]), "removed_spans": spans}
