"""Document -> paragraphs -> sentences, as character offsets that tile the text exactly.

Every piece is a half-open range [start, end); consecutive pieces touch, so joining
text[start:end] over the pieces gives back the original text, whitespace and all. A piece
carries the whitespace that follows it, so cutting a piece leaves clean text behind.

Paragraphs: separated by blank lines; a document without blank lines splits on single newlines.
Sentences (inside a paragraph):
  prose: Chinese terminators 。！？；… and full-width forms (no space needed after them);
         ASCII . ! ? followed by whitespace, except after common abbreviations, initials, or
         when the next word starts lower-case (decimals like 3.14 never have a space).
  code:  one sentence per line.
"""
from __future__ import annotations

import re
import unicodedata

BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
NEWLINE = re.compile(r"\n\s*")
LINE = re.compile(r"\n(?:[^\S\n]*\n)*")  # a line plus any blank lines after it
CLOSERS = "\"'”’」』）》】〕〉)]"
CJK_END = re.compile(rf"(?:[。！？；]|…+|\.{{3,}})[{re.escape(CLOSERS)}]*\s*")
ASCII_END = re.compile(rf"[.!?]+[{re.escape(CLOSERS)}]*\s+")
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st vs etc e.g i.e cf al inc ltd co corp jan feb mar apr jun jul aug sep
sept oct nov dec no nos fig figs eq eqs vol vols pp p ed eds approx dept est gen gov lt col sgt
capt mt ft u.s u.k a.m p.m ph.d
""".split())
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _tile(start: int, end: int, cuts) -> list[tuple[int, int]]:
    """Pieces [start, c1), [c1, c2), ..., [ck, end) from sorted interior cut points."""
    pieces, prev = [], start
    for c in cuts:
        if start < c < end and c > prev:
            pieces.append((prev, c))
            prev = c
    if prev < end or not pieces:
        pieces.append((prev, end))
    return pieces


def paragraphs(text: str) -> list[tuple[int, int]]:
    sep = BLANK_LINE if BLANK_LINE.search(text) else NEWLINE
    return _tile(0, len(text), (m.end() for m in sep.finditer(text)))


def _ascii_boundary_ok(text: str, m: re.Match, para_start: int) -> bool:
    if text[m.start()] != ".":
        return True  # ! and ? always end a sentence
    nxt = text[m.end()] if m.end() < len(text) else ""
    if nxt and nxt.islower():
        return False  # "etc. and", "e.g. the"
    word = _WORD_BEFORE.search(text, max(para_start, m.start() - 12), m.start())
    if word:
        w = word.group(1).lower().rstrip(".")
        if w in ABBREVIATIONS or (len(w) == 1 and word.group(1).isupper()):
            return False  # "Dr. Smith", "J. Smith"
    return True


def sentences(text: str, start: int, end: int, code: bool = False) -> list[tuple[int, int]]:
    if code:
        return _tile(start, end, (m.end() for m in LINE.finditer(text, start, end)))
    cuts = {m.end() for m in CJK_END.finditer(text, start, end)}
    cuts.update(m.end() for m in ASCII_END.finditer(text, start, end) if _ascii_boundary_ok(text, m, start))
    return _tile(start, end, sorted(cuts))


def segment(text: str, code: bool = False) -> tuple[list[tuple[int, int]], list[list[tuple[int, int]]]]:
    """Paragraph pieces, and for each paragraph its sentence pieces."""
    paras = paragraphs(text)
    return paras, [sentences(text, s, e, code) for s, e in paras]


_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The form duplicates are compared in: NFKC, whitespace runs collapsed, ends trimmed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()
