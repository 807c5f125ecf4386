"""The one span-cutting path, and the schema of the spans it cuts (removed_spans/).

A cut is a half-open character range [start, end) of a document's text with the `level` it was
found at (paragraph, sentence, line, ...), the `reason` it goes (exact_duplicate, a quality
filter's name, ...), an optional `score` and the `duplicate_of` id (null if not a duplicate).
Cuts may overlap or nest (a duplicate paragraph holds duplicate sentences): the outermost range
wins, ties going to the coarser level, so every character is cut at most once and
  original text == kept text with each removed span's `text` put back at its `start`
holds exactly (a test rebuilds documents this way). Offsets are in the original text.

A stage that cuts spans returns them in REMOVED_SPAN_SCHEMA and names the output in
`StageOutput.span_outputs`; the runner counts its characters in the reconciliation and the report
shows them by reason and level.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

REMOVED_SPAN_SCHEMA = pa.schema([
    ("doc_pos", pa.int64()),
    ("doc_id", pa.string()),
    ("level", pa.string()),
    ("start", pa.int32()),
    ("end", pa.int32()),
    ("text", pa.string()),
    ("reason", pa.string()),
    ("score", pa.float64()),
    ("duplicate_of", pa.string()),
])
# The coarser level wins a tie between cuts of the same range; unknown levels rank after these.
LEVEL_RANK = {"document": 0, "paragraph": 1, "sentence": 2, "line": 3}


@dataclass(frozen=True)
class Cut:
    start: int
    end: int
    level: str
    reason: str
    duplicate_of: str | None = None
    score: float | None = None


def outermost(cuts) -> list[Cut]:
    """The cuts that are not inside an earlier, larger one, in text order."""
    ordered = sorted(cuts, key=lambda c: (c.start, -c.end, LEVEL_RANK.get(c.level, 99)))
    out, last_end = [], -1
    for c in ordered:
        if c.start >= last_end:
            out.append(c)
            last_end = c.end
    return out


def cut_text(text: str, cuts) -> tuple[str, list[Cut]]:
    """(text without the outermost cuts, those cuts in text order)."""
    chosen = outermost(cuts)
    pieces, prev = [], 0
    for c in chosen:
        pieces.append(text[prev:c.start])
        prev = c.end
    pieces.append(text[prev:])
    return "".join(pieces), chosen


def span_rows(doc_pos: int, doc_id: str, text: str, chosen) -> list[dict]:
    """removed_spans/ rows (REMOVED_SPAN_SCHEMA) of one document's chosen cuts."""
    return [{"doc_pos": doc_pos, "doc_id": doc_id, "level": c.level, "start": c.start, "end": c.end,
             "text": text[c.start:c.end], "reason": c.reason, "score": c.score, "duplicate_of": c.duplicate_of}
            for c in chosen]
