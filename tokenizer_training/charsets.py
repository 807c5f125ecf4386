"""Character sets whose every character must be a single-character piece (`required_chars`).

Without them a character the training sample rarely holds (a rare or Traditional Chinese
character, an accented letter) falls outside `character_coverage` and costs one token per UTF-8
byte (three for a CJK character) wherever it appears later. Baichuan 2's released tokenizer holds
20,338 single CJK characters for this reason; a BPE trained on a few hundred MB holds ~5,000.

A set is named by a Python codec (every character the codec can encode: `gbk` = all 20,902
CJK Unified Ideographs of the basic block plus GB symbols, `gb2312` = 6,763 common Simplified
characters, `big5` = 13,060 Traditional characters, `cp1252` = Western European letters and
punctuation, `euc_kr`, `shift_jis`, ...) or by a name in NAMED_RANGES. Codec tables are fixed
in Python, so the same names give the same characters everywhere.
"""
from __future__ import annotations

import codecs
from functools import lru_cache

# Unicode ranges by name, for sets no codec describes.
NAMED_RANGES = {
    "cjk-basic": [(0x4E00, 0x9FFF)],
    "cjk-ext-a": [(0x3400, 0x4DBF)],
    "kana": [(0x3041, 0x30FF)],
    "hangul": [(0xAC00, 0xD7A3)],
    "latin-extended": [(0x00C0, 0x024F)],
    "emoji": [(0x1F300, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF)],
}

# Never required: SentencePiece's space symbol (U+2581 stands for " "), the character its trainer
# uses for unknown characters (U+2585; it refuses to require it), and the space itself.
EXCLUDED = {"\u2581", "\u2585", " "}


@lru_cache(maxsize=None)
def charset(name: str) -> frozenset:
    """The characters of one named set (ASCII left out: SentencePiece keeps it by coverage)."""
    if name in NAMED_RANGES:
        chars = {chr(o) for lo, hi in NAMED_RANGES[name] for o in range(lo, hi + 1)}
    else:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ValueError(f"unknown character set {name!r}: use a Python codec name "
                             f"(gbk, big5, cp1252, ...) or one of {sorted(NAMED_RANGES)}") from None
        chars = set()
        for o in range(0x80, 0x10000):
            if 0xD800 <= o <= 0xDFFF:
                continue
            try:
                chr(o).encode(name)
            except UnicodeEncodeError:
                continue
            chars.add(chr(o))
    return frozenset(c for c in chars if c not in EXCLUDED and c.isprintable())


def required_characters(names, extra: str = "", exclude=()) -> str:
    """The sorted, de-duplicated characters of `names` and `extra`, less `exclude` (e.g. characters
    that are user-defined pieces already: a piece cannot be both)."""
    chars = set(extra) - EXCLUDED
    for name in names:
        chars |= charset(name)
    return "".join(sorted(chars - set(exclude)))
