"""Heuristic quality signals as columns: one value per document for every signal in SIGNALS.

Contract: `compute_signals(text, lang)` takes one Arrow batch (a string array of documents and a
string array of their `lang`, which may hold nulls) and returns {signal name: pyarrow.Array}, one
array per entry of SIGNALS, in that order, each with the batch's length and the entry's type
(int -> int64, float -> float64, bool -> bool). Nothing is removed or decided here: this is the
RedPajama-v2 / dolma split (tag every document once, let a later step choose by rules), so that
thresholds can change without recomputing anything. The measures are those of Gopher (Rae et al.
2021), C4 (Raffel et al. 2020) and FineWeb (Penedo et al. 2024), made to work for Chinese.

A value that is undefined is null, never NaN: a ratio whose denominator is 0 (no letters, no lines),
a code measure of a prose document, the mean word length of a CJK document. Null rather than NaN
because Spark orders NaN above every number, so a rule `x > t` would pick NaN rows; a comparison
with null is null, which a filter treats as false. A null text is measured as "".

How a document is measured:
  code  `lang` (trimmed, lower-cased) is one of `code_langs` (pipeline.spanpolicy's
        DEFAULT_CODE_LANGS by default). Every signal is computed; the q_code_* ones only here.
  CJK   otherwise, if `lang` is a CJK language (zh, ja, ko and their variants) or more than half
        of the document's letters are CJK (Han, kana, Hangul): the script decides for every other
        `lang`, null included, so a mislabelled page is measured as what it is.
  words everything else.
A "word" is a CJK character, or a maximal run of characters that are neither whitespace nor CJK
and hold at least one letter or digit ("don't", "3.14", "end." are one word each; a lone "-" or
"…" is none). So English words are the whitespace-separated tokens of Gopher, Chinese text counts
one word per character, and mixed text counts both. Two things differ by mode: mean word length is
null for CJK documents (every CJK word has one character), and a short line is < 30 characters in
words mode but < 10 in CJK mode (a Chinese character carries about three English characters).
Repetition n-grams are over words, hence over characters in Chinese text; a word is compared
lower-cased and without its punctuation ("The" = "the,").

Lines are the non-blank lines of the text, stripped of surrounding whitespace; paragraphs are the
non-blank pieces between blank lines (Gopher). Duplicate lines, paragraphs and n-grams count every
occurrence after the first of the same document (datatrove's reading of Gopher): the value is the
share of the text that dropping repeats would remove.

Boilerplate: q_boilerplate_char_fraction is the share of a prose document's characters that
quality.linefilter's rules (default LineRules: the cuts quality-filter makes) would cut, from its
`boilerplate_cuts` over the chunk's prose documents (Arrow kernels per line; Python only over the
few long lines that close with an interface phrase); 0 for code, which is never cut, and for an
empty document. quality-signals combines it with the classifier (quality.stages.
combined_quality_score).

How (no Python loop per document, word or character): a chunk's UTF-8 is decoded once into a
numpy array of code points; per-character classes come from one lookup table and are counted per
document with one bincount; words are runs found with shifts and cumulative sums, and each gets a
uint64 polynomial hash from one prefix sum over the chunk. Lines, paragraphs and markers use
Arrow's string kernels (split_pattern, utf8_trim_whitespace, RE2 regexes, dictionary_encode).
n-gram repetition groups equal (document, n-gram) hashes with one np.sort per n over the whole
chunk (numpy's argsort is several times slower, so the item index rides in the low bits); an
(n+1)-gram is looked at only where its n-gram repeats, so the long n-grams cost little. A batch
is processed in chunks of about `chunk_bytes` of text, which bounds the per-character arrays
(peak about 60 bytes per character: ~120 MB at the default 2 MB). About 8 MB/s per core on en,
zh and code text.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.spanpolicy import DEFAULT_CODE_LANGS


@dataclass(frozen=True)
class Signal:
    name: str
    type: str  # "int" | "float" | "bool"
    doc: str


_TOP_NGRAMS = (2, 3, 4)
_DUP_NGRAMS = (5, 6, 7, 8, 9, 10)

SIGNALS: list[Signal] = [
    # length
    Signal("q_chars", "int", "characters (Unicode code points)"),
    Signal("q_words", "int",
           "words: CJK characters plus runs of other non-space characters holding a letter or digit"),
    Signal("q_lines", "int", "non-blank lines"),
    Signal("q_mean_word_len", "float",
           "mean characters per non-CJK word (Gopher: 3..10); null for CJK documents or without such words"),
    Signal("q_cjk_share", "float", "CJK characters (Han, kana, Hangul) / letters; null without letters"),
    Signal("q_cjk", "bool", "measured as CJK text (lang zh/ja/ko, or most letters CJK); false for code"),
    # character ratios
    Signal("q_symbol_word_ratio", "float",
           "('#' characters + ellipsis runs '...', '…', '……') / words (Gopher: <= 0.1); null without words"),
    Signal("q_digit_share", "float", "decimal digits / non-whitespace characters"),
    Signal("q_upper_share", "float", "upper-case letters / letters (CJK letters included); null without letters"),
    Signal("q_alpha_share", "float", "letters (CJK included) / non-whitespace characters"),
    Signal("q_whitespace_share", "float", "whitespace characters / characters"),
    Signal("q_punct_share", "float", "punctuation (Unicode P*, 。，、 included) / non-whitespace characters"),
    # lines
    Signal("q_bullet_lines", "float",
           "share of lines starting with a bullet (• · ▪ ● - * – ...) or a list number (1. 2) 1、 （1） 一、)"),
    Signal("q_ellipsis_lines", "float", "share of lines ending with '...' or '…' (Gopher: <= 0.3)"),
    Signal("q_terminal_lines", "float",
           "share of lines ending in terminal punctuation . ! ? \" ' ” ’ 」 』 。 ！ ？ … (C4 keeps such lines)"),
    Signal("q_short_lines", "float", "share of lines shorter than 30 characters (10 for CJK documents) (FineWeb)"),
    Signal("q_mean_line_len", "float", "mean characters per line (stripped)"),
    # repetition (Gopher)
    Signal("q_dup_line_share", "float", "share of lines that repeat an earlier line of the document"),
    Signal("q_dup_line_chars", "float", "share of line characters in lines that repeat an earlier line"),
    Signal("q_dup_para_share", "float", "share of paragraphs that repeat an earlier paragraph"),
    Signal("q_dup_para_chars", "float", "share of paragraph characters in repeated paragraphs"),
    *[Signal(f"q_top_{n}gram", "float",
             f"characters of the most frequent repeated word {n}-gram times its count / word characters "
             f"(0 when no {n}-gram repeats; capped at 1)") for n in _TOP_NGRAMS],
    *[Signal(f"q_dup_{n}gram", "float",
             f"share of word characters covered by repeats (after the first) of word {n}-grams")
      for n in _DUP_NGRAMS],
    # stop words
    Signal("q_stop_words", "int",
           "stop-word occurrences (Gopher's English the/be/to/of/and/that/have/with; "
           "common Chinese function characters 的 了 是 在 ...)"),
    Signal("q_stop_word_share", "float", "stop-word occurrences / words; null without words"),
    Signal("q_has_stop_words", "bool", "at least 2 stop-word occurrences (Gopher)"),
    # boilerplate markers (occurrence counts, case-insensitive)
    Signal("q_lorem_ipsum", "int", "'lorem ipsum' (C4)"),
    Signal("q_javascript", "int", "'enable javascript', 'javascript:void', '启用JavaScript' ..."),
    Signal("q_cookies", "int",
           "cookie notices: 'we use cookies', 'cookie policy', '使用cookie', 'Cookie 政策' ..."),
    Signal("q_policy", "int",
           "'privacy policy', 'terms of use', 'all rights reserved', '隐私政策', '用户协议' ..."),
    Signal("q_click_here", "int", "'click here', '点击这里', '点击此处' ..."),
    Signal("q_curly_braces", "int", "'{' characters (C4 drops prose pages with any)"),
    Signal("q_boilerplate_char_fraction", "float",
           "share of the characters that quality.linefilter's rules would cut (navigation, copyright, "
           "breadcrumb and interface lines and sentences); 0 for code and for an empty document"),
    # code (null for prose)
    Signal("q_code_max_line_len", "int", "code: longest line, characters"),
    Signal("q_code_mean_line_len", "float", "code: mean line length over all lines, blank ones included"),
    Signal("q_code_alnum_share", "float", "code: letters and digits / characters (StarCoder: >= 0.25)"),
    Signal("q_code_comment_lines", "float",
           "code: share of non-blank lines that are comments (start with #, //, /*, *, -- ; C preprocessor "
           "directives are not comments; docstrings are not counted)"),
    Signal("q_code_comment_chars", "float", "code: share of non-blank line characters in comment lines"),
    Signal("q_code_autogen", "bool",
           "code: an 'auto-generated' / 'generated by' / 'do not edit' / '自动生成' marker "
           "in the first 1,000 characters"),
    Signal("q_code_long_lines", "float", "code: share of lines over 1,000 characters"),
]

ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def signals_schema() -> pa.Schema:
    """The Arrow schema of compute_signals' columns, in SIGNALS order."""
    return pa.schema([pa.field(s.name, ARROW_TYPES[s.type], nullable=True) for s in SIGNALS])


# --- characters -----------------------------------------------------------------------------------

LETTER, UPPER, DIGIT, NUMBER, SPACE, PUNCT, CJK, NEWLINE = 1, 2, 4, 8, 16, 32, 64, 128
# Han, kana, Hangul: the same ranges as dedup.shingle.CJK_RANGES (not imported: that module loads
# numba; tests check that the two agree).
CJK_RANGES = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x3040, 0x30FF), (0x3100, 0x312F), (0x3130, 0x318F),
    (0x31A0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF),
    (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x323AF),
)
N_CODEPOINTS = 0x110000
_TABLE_END = 0x40000  # above: unassigned, private use, tags, variation selectors: none of our classes


@lru_cache(maxsize=1)
def char_tables() -> tuple[np.ndarray, np.ndarray]:
    """(flags[cp], lower[cp]): the class bits of every code point and its lower-case code point
    (itself when lower-casing is not one code point). Built once per process (~0.3 s)."""
    flags = np.zeros(N_CODEPOINTS, np.uint8)
    lower = np.arange(N_CODEPOINTS, dtype=np.uint32)
    bits = {"Lu": LETTER | UPPER, "Nd": DIGIT | NUMBER}
    for cp in range(_TABLE_END):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        f = bits.get(cat, 0) | (LETTER if cat[0] == "L" else 0) | (NUMBER if cat[0] == "N" else 0)
        f |= (PUNCT if cat[0] == "P" else 0) | (SPACE if ch.isspace() else 0)
        flags[cp] = f
        low = ch.lower()
        if len(low) == 1:
            lower[cp] = ord(low)
    flags[ord("\n")] |= NEWLINE
    for lo, hi in CJK_RANGES:
        flags[lo:hi + 1] |= CJK
    return flags, lower


@dataclass
class _Chars:
    cps: np.ndarray      # uint32 code points of the whole chunk, document after document
    flags: np.ndarray    # uint8 class bits per character
    offsets: np.ndarray  # int64 [n+1]: document i is cps[offsets[i]:offsets[i+1]]
    doc: np.ndarray      # int32 document index of every character

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1


def _decode(text: pa.Array) -> _Chars:
    """Code points of a large_string array without nulls (one decode of its whole data buffer)."""
    n = len(text)
    lengths = _np(pc.utf8_length(text))
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    byte_offsets = np.frombuffer(text.buffers()[1], np.int64, count=n + 1, offset=text.offset * 8)
    data = text.buffers()[2]
    if data is None or offsets[-1] == 0:
        cps = np.zeros(0, np.uint32)
    else:
        raw = memoryview(data)[byte_offsets[0]:byte_offsets[-1]]
        cps = np.frombuffer(str(raw, "utf-8").encode("utf-32-le"), np.uint32)  # raises on bad UTF-8
    flags, _ = char_tables()
    return _Chars(cps, flags[cps], offsets, np.repeat(np.arange(n, dtype=np.int32), lengths))


def _class_counts(chars: _Chars) -> dict[int, np.ndarray]:
    """Per document, the number of characters carrying each class bit (and "all": every char).
    One bincount over (document, combination of bits present) pairs."""
    present = np.flatnonzero(np.bincount(chars.flags, minlength=256))
    combo_of = np.zeros(256, np.int64)
    combo_of[present] = np.arange(len(present))
    k = max(len(present), 1)
    hist = np.bincount(chars.doc * k + combo_of[chars.flags], minlength=chars.n_docs * k)
    hist = hist.reshape(chars.n_docs, k)
    counts = {bit: hist[:, (present & bit) != 0].sum(axis=1)
              for bit in (LETTER, UPPER, DIGIT, NUMBER, SPACE, PUNCT, CJK, NEWLINE)}
    counts[0] = np.diff(chars.offsets)
    return counts


def _ratio(num, den) -> np.ndarray:
    """num / den as float64, NaN (-> null) where den is 0."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _np(arr: pa.Array) -> np.ndarray:
    """An Arrow array without nulls as numpy (int32 lengths and indices as int64)."""
    out = arr.to_numpy(zero_copy_only=False)
    return out.astype(np.int64) if out.dtype.kind in "iu" else out


# --- words ----------------------------------------------------------------------------------------

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a uint64 array (a new array)."""
    x = x ^ (x >> np.uint64(30))
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


@dataclass
class _Tokens:
    doc: np.ndarray     # int32 document of each word, ascending
    hash: np.ndarray    # uint64 hash of the word, lower-cased, punctuation dropped
    length: np.ndarray  # int64 characters of the word as written
    cjk: np.ndarray     # bool: a CJK character


def _run_starts(chars: _Chars, in_run: np.ndarray) -> np.ndarray:
    """Bool per character: starts a maximal run of in_run characters inside its document."""
    start = in_run.copy()
    start[1:] &= ~in_run[:-1]
    firsts = chars.offsets[:-1]
    firsts = firsts[firsts < len(in_run)]  # (empty documents at the end start past the last char)
    start[firsts] = in_run[firsts]
    return start


def _tokens(chars: _Chars) -> _Tokens:
    """The words of every document, in text order (see the module docstring for what a word is)."""
    flags = chars.flags
    in_run = (flags & (SPACE | CJK)) == 0
    run_start = _run_starts(chars, in_run)
    continues = np.zeros(len(flags), bool)  # the next character belongs to the same run
    continues[:-1] = in_run[1:] & ~run_start[1:]
    starts, ends = np.flatnonzero(run_start), np.flatnonzero(in_run & ~continues)  # ends: last char
    alnum = (flags & (LETTER | NUMBER)) != 0
    alnum_before = np.cumsum(alnum, dtype=np.int32)
    is_word = alnum_before[ends] - alnum_before[starts] + alnum[starts] > 0
    starts, ends = starts[is_word], ends[is_word]

    is_token = (flags & CJK) != 0
    is_token[starts] = True
    pos = np.flatnonzero(is_token)
    tok_cjk = (flags[pos] & CJK) != 0
    tok_hash = np.empty(len(pos), np.uint64)
    tok_hash[tok_cjk] = _mix(chars.cps[pos[tok_cjk]].astype(np.uint64))  # a CJK word: its code point
    tok_hash[~tok_cjk] = _run_hashes(chars, in_run, starts, ends)
    tok_len = np.ones(len(pos), np.int64)
    tok_len[~tok_cjk] = ends - starts + 1
    return _Tokens(chars.doc[pos], tok_hash, tok_len, tok_cjk)


_BASE = 0x100000001B3  # odd, so invertible modulo 2^64
_BASE_INV = pow(_BASE, -1, 1 << 64)


def _run_hashes(chars: _Chars, in_run, starts, ends) -> np.ndarray:
    """uint64 hash of each run [start, end] over its lower-cased non-punctuation characters: a
    polynomial hash, sum of c_j * B^j over the run's kept characters c_0, c_1, ..., computed for
    all runs at once from one prefix sum over every kept character of the chunk (modulo 2^64).
    prefix[stop] - prefix[first] holds B^first too much; multiplying by B^(K - first) and then
    by B^-K (K: kept characters in the chunk) takes it out with powers we have anyway."""
    if len(starts) == 0:
        return np.zeros(0, np.uint64)
    _, lower = char_tables()
    kept = in_run & ((chars.flags & PUNCT) == 0)
    kept_before = np.cumsum(kept, dtype=np.int32)  # kept characters up to and including each
    first = kept_before[starts] - kept[starts]  # index of the run's first kept char among all kept
    stop = kept_before[ends]
    c = lower[chars.cps[kept]].astype(np.uint64)
    k = len(c)
    powers = np.full(k + 1, _BASE, np.uint64)
    powers[0] = 1
    np.cumprod(powers, out=powers)
    prefix = np.zeros(k + 1, np.uint64)
    np.cumsum(c * powers[:-1], out=prefix[1:])
    h = (prefix[stop] - prefix[first]) * powers[k - first] * np.uint64(pow(_BASE_INV, k, 1 << 64))
    return _mix(h + (stop - first).astype(np.uint64))


@lru_cache(maxsize=1)
def stop_word_hashes() -> np.ndarray:
    """Hashes of the stop words, made by the same tokenizer as the documents' words."""
    words = pa.array([" ".join(STOP_WORDS_EN + STOP_WORDS_ZH)], pa.large_string())
    return np.unique(_tokens(_decode(words)).hash)


# Gopher's English list (its rule: at least two occurrences), and the most frequent Chinese
# function characters (each Chinese character is a word here).
STOP_WORDS_EN = ["the", "be", "to", "of", "and", "that", "have", "with"]
STOP_WORDS_ZH = list("的了是在我有和就不人都一这也他们个上中为")


# --- repetition -----------------------------------------------------------------------------------

_POS_MULT = _mix(np.arange(1, max(_DUP_NGRAMS) + 1, dtype=np.uint64)) | np.uint64(1)
_DOC_MULT = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class _Groups:
    """Items grouped by equal uint64 key."""
    count: np.ndarray        # per item: items sharing its key
    first: np.ndarray        # per item: it is the first (lowest index) of its key
    group_first: np.ndarray  # per group: index of its first item
    group_count: np.ndarray  # per group: items


def _group(keys: np.ndarray) -> _Groups:
    """Group items by key with one np.sort (numpy's argsort is several times slower): the item
    index goes into the low bits, the key's top bits above it. Keys must be well-mixed hashes;
    with w items, 64 - ceil(log2 w) key bits are compared (43 for a 2M-word chunk: a false match
    per pair ~ 2^-43)."""
    w = len(keys)
    bits = np.uint64(max(int(w - 1).bit_length(), 1))
    packed = (keys >> bits << bits) | np.arange(w, dtype=np.uint64)
    packed.sort()
    idx = (packed & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    key = packed >> bits
    new = np.ones(w, bool)
    new[1:] = key[1:] != key[:-1]
    gstart = np.flatnonzero(new)
    group_count = np.diff(np.append(gstart, w))
    count = np.empty(w, np.int64)
    count[idx] = np.repeat(group_count, group_count)
    first = np.zeros(w, bool)
    first[idx[gstart]] = True
    return _Groups(count, first, idx[gstart], group_count)


def _top_ngram_fraction(tok: _Tokens, cand: np.ndarray, g: _Groups, n: int, word_chars) -> np.ndarray:
    """Per document: count x characters of its most frequent repeated n-gram (ties: the longer) /
    word characters; 0 where no n-gram repeats."""
    n_docs = len(word_chars)
    repeated = g.group_count >= 2
    starts = cand[g.group_first[repeated]]
    chars = np.zeros(len(starts), np.int64)
    for j in range(n):
        chars += tok.length[starts + j]
    score = g.group_count[repeated].astype(np.int64) << 32 | np.minimum(chars, 2**32 - 1)
    best = np.zeros(n_docs, np.int64)
    np.maximum.at(best, tok.doc[starts], score)
    return np.minimum(_ratio((best >> 32) * (best & (2**32 - 1)), word_chars), 1.0)


def _repetition_signals(tok: _Tokens, n_docs: int) -> dict[str, np.ndarray]:
    """q_top_{2,3,4}gram and q_dup_{5..10}gram for every document of the chunk. The n-gram hash is
    a position-weighted sum of word hashes plus the document, so equal keys mean the same n-gram
    in the same document; it grows one word per n, over the windows still in the running."""
    t = len(tok.doc)
    per_doc = np.bincount(tok.doc, minlength=n_docs)
    left = np.cumsum(per_doc)[tok.doc] - np.arange(t)  # words from each word to its document's end
    word_chars = np.bincount(tok.doc, weights=tok.length, minlength=n_docs)
    char_prefix = np.zeros(t + 1, np.int64)
    np.cumsum(tok.length, out=char_prefix[1:])
    out = {}
    cand = np.arange(t, dtype=np.int64)
    acc = tok.doc.astype(np.uint64) * _DOC_MULT + tok.hash * _POS_MULT[0]
    for n in range(min(_TOP_NGRAMS), max(_DUP_NGRAMS) + 1):
        ok = left[cand] >= n
        cand, acc = cand[ok], acc[ok] + tok.hash[cand[ok] + n - 1] * _POS_MULT[n - 1]
        g = _group(acc)  # sums of mixed word hashes: their top bits are already uniform
        if n in _TOP_NGRAMS:
            out[f"q_top_{n}gram"] = _top_ngram_fraction(tok, cand, g, n, word_chars)
        if n in _DUP_NGRAMS:
            later = cand[(g.count >= 2) & ~g.first]
            out[f"q_dup_{n}gram"] = _covered_share(tok, later, n, char_prefix, word_chars)
        repeated = g.count >= 2
        cand, acc = cand[repeated], acc[repeated]  # an (n+1)-gram repeats only where its n-gram does
    for name in out:
        out[name][word_chars == 0] = np.nan
    return out


def _covered_share(tok: _Tokens, starts: np.ndarray, n: int, char_prefix, word_chars) -> np.ndarray:
    """Share of each document's word characters inside at least one window [s, s+n) (starts
    ascending): the windows merge into disjoint blocks, each block's characters come from the
    prefix sum of word lengths."""
    if len(starts) == 0:
        return _ratio(np.zeros(len(word_chars)), word_chars)
    reach = np.maximum.accumulate(starts + n)
    new = np.ones(len(starts), bool)
    new[1:] = starts[1:] >= reach[:-1]  # windows of another document never overlap
    block = np.flatnonzero(new)
    block_end = reach[np.append(block[1:] - 1, len(starts) - 1)]
    chars = char_prefix[block_end] - char_prefix[starts[block]]
    return _ratio(np.bincount(tok.doc[starts[block]], weights=chars, minlength=len(word_chars)), word_chars)


# --- lines, paragraphs ------------------------------------------------------------------------------

BULLET_RE = (r"^(?:[•·▪▫◦‣∙●○◆◇■□►▶➢➤✓✔★☆*\-–—]"
             r"|[0-9０-９]{1,3}[.)．、）](?:[^0-9０-９]|$)"
             r"|[（(][0-9０-９一二三四五六七八九十]{1,3}[)）]"
             r"|[一二三四五六七八九十]{1,3}、)")
ELLIPSIS_END_RE = r"(?:\.\.\.|…)$"
TERMINAL_END_RE = "[.!?\"'”’」』。！？…]$"
BLANK_LINE_RE = r"\n[^\S\n]*\n"
SHORT_LINE = 30
SHORT_LINE_CJK = 10


@dataclass
class _Lines:
    raw_len: np.ndarray      # characters of every line, blank ones included
    raw_offsets: np.ndarray  # document i's lines are raw_len[raw_offsets[i]:raw_offsets[i+1]]
    text: pa.Array           # the non-blank lines, stripped
    doc: np.ndarray          # document of each non-blank line
    length: np.ndarray       # characters of each non-blank line (stripped)


def _split_lines(text: pa.Array) -> _Lines:
    parts = pc.split_pattern(text, "\n")
    flat = parts.flatten()
    raw_len = _np(pc.utf8_length(flat))
    parent = _np(pc.list_parent_indices(parts))
    raw_offsets = np.asarray(parts.offsets).astype(np.int64) - parts.offsets[0].as_py()
    stripped = pc.utf8_trim_whitespace(flat)
    length = _np(pc.utf8_length(stripped))
    keep = length > 0
    return _Lines(raw_len, raw_offsets, stripped.filter(pa.array(keep)), parent[keep], length[keep])


def _duplicates(doc: np.ndarray, items: pa.Array, length: np.ndarray, n_docs: int):
    """(share of items repeating an earlier item of the same document, share of their characters)."""
    total = np.bincount(doc, minlength=n_docs)
    chars = np.bincount(doc, weights=length, minlength=n_docs)
    if len(items) == 0:
        return _ratio(total, total), _ratio(chars, chars)  # all null
    ids = _np(pc.dictionary_encode(items).indices).astype(np.uint64)
    later = ~_group(_mix(doc.astype(np.uint64) * _DOC_MULT + ids)).first
    return (_ratio(np.bincount(doc[later], minlength=n_docs), total),
            _ratio(np.bincount(doc[later], weights=length[later], minlength=n_docs), chars))


def _line_signals(lines: _Lines, is_cjk: np.ndarray, n_docs: int) -> dict[str, np.ndarray]:
    count = np.bincount(lines.doc, minlength=n_docs)

    def share(mask) -> np.ndarray:
        return _ratio(np.bincount(lines.doc[mask], minlength=n_docs), count)

    tail = pc.utf8_slice_codeunits(lines.text, -3)  # the end-anchored regexes look at 3 characters
    bullet = _np(pc.match_substring_regex(lines.text, BULLET_RE))
    ellipsis = _np(pc.match_substring_regex(tail, ELLIPSIS_END_RE))
    terminal = _np(pc.match_substring_regex(tail, TERMINAL_END_RE))
    short = lines.length < np.where(is_cjk, SHORT_LINE_CJK, SHORT_LINE)[lines.doc]
    dup_share, dup_chars = _duplicates(lines.doc, lines.text, lines.length, n_docs)
    return {
        "q_lines": count.astype(np.float64),
        "q_bullet_lines": share(bullet), "q_ellipsis_lines": share(ellipsis),
        "q_terminal_lines": share(terminal), "q_short_lines": share(short),
        "q_mean_line_len": _ratio(np.bincount(lines.doc, weights=lines.length, minlength=n_docs), count),
        "q_dup_line_share": dup_share, "q_dup_line_chars": dup_chars,
    }


def _paragraph_signals(text: pa.Array) -> dict[str, np.ndarray]:
    parts = pc.split_pattern_regex(text, BLANK_LINE_RE)
    stripped = pc.utf8_trim_whitespace(parts.flatten())
    length, parent = _np(pc.utf8_length(stripped)), _np(pc.list_parent_indices(parts))
    keep = length > 0
    share, chars = _duplicates(parent[keep], stripped.filter(pa.array(keep)), length[keep], len(text))
    return {"q_dup_para_share": share, "q_dup_para_chars": chars}


# --- markers --------------------------------------------------------------------------------------

MARKERS = {
    "q_lorem_ipsum": r"lorem ipsum",
    "q_javascript": (r"(?:enable|enabling|turn on|activate|启用|开启|打开|允许)\s*javascript"
                     r"|javascript\s*:\s*void"
                     r"|javascript (?:is|must be|has been) (?:disabled|required|turned off)"
                     r"|(?:requires|需要)\s*javascript"),
    "q_cookies": (r"(?:we|website|site) uses? cookies|use of cookies|accept (?:all )?cookies"
                  r"|cookies? (?:policy|settings|preferences|notice|consent)"
                  r"|使用\s*cookies?|cookies?\s*(?:政策|设置|声明)"),
    "q_policy": (r"privacy policy|terms of (?:use|service)|terms (?:and|&) conditions|all rights reserved"
                 r"|隐私政策|隐私权政策|服务条款|使用条款|用户协议|版权所有"),
    "q_click_here": r"click here|点击这里|点击此处|点这里|点此处",
}


def _marker_signals(text: pa.Array) -> dict[str, np.ndarray]:
    """Occurrence counts of each marker (RE2, case-insensitive)."""
    out = {}
    for name, pattern in MARKERS.items():
        out[name] = _np(pc.count_substring_regex(text, pattern, ignore_case=True)).astype(np.float64)
    return out


# --- code -----------------------------------------------------------------------------------------

COMMENT_RE = r"^(?:#|//|/\*|\*|--\s)"
DIRECTIVE_RE = r"^#\s*(?:include|define|undef|if|ifdef|ifndef|elif|else|endif|pragma|error|warning|line|import)\b"
AUTOGEN_RE = (r"auto-?generated|automatically generated|generated automatically|generated by"
              r"|this file (?:is|was) generated|do not edit|don't edit|自动生成")
AUTOGEN_HEAD = 1000
LONG_LINE = 1000


def _code_signals(text, lines: _Lines, counts, is_code: np.ndarray) -> dict[str, np.ndarray]:
    """The q_code_* measures; NaN (-> null) for prose documents. A chunk has at least one
    document and every document at least one raw line, so the reduceat segments are not empty."""
    n = len(is_code)
    # Lines as str.splitlines sees them: a final newline ends the last line rather than starting
    # an empty one ("" is one empty line).
    raw_count = np.diff(lines.raw_offsets)
    raw_count -= (lines.raw_len[lines.raw_offsets[1:] - 1] == 0) & (raw_count > 1)
    line_starts, chars = lines.raw_offsets[:-1], counts[0]
    out = {
        "q_code_max_line_len": np.maximum.reduceat(lines.raw_len, line_starts).astype(np.float64),
        "q_code_mean_line_len": _ratio(chars - counts[NEWLINE], raw_count),
        "q_code_alnum_share": _ratio(counts[LETTER] + counts[NUMBER], chars),
        "q_code_long_lines": _ratio(np.add.reduceat(lines.raw_len > LONG_LINE, line_starts), raw_count),
    }
    out.update(_comment_signals(lines, is_code, n))
    autogen = np.zeros(n)
    if is_code.any():
        head = pc.utf8_slice_codeunits(text.filter(pa.array(is_code)), 0, AUTOGEN_HEAD)
        autogen[is_code] = _np(pc.match_substring_regex(head, AUTOGEN_RE, ignore_case=True))
    out["q_code_autogen"] = autogen
    for values in out.values():
        values[~is_code] = np.nan
    return out


def _comment_signals(lines: _Lines, is_code: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Comment lines of code documents (non-blank lines only; prose lines are not looked at)."""
    on_code = is_code[lines.doc]
    code_lines = lines.text.filter(pa.array(on_code))
    doc, length = lines.doc[on_code], lines.length[on_code]
    comment = (_np(pc.match_substring_regex(code_lines, COMMENT_RE))
               & ~_np(pc.match_substring_regex(code_lines, DIRECTIVE_RE)))
    return {
        "q_code_comment_lines": _ratio(np.bincount(doc[comment], minlength=n), np.bincount(doc, minlength=n)),
        "q_code_comment_chars": _ratio(np.bincount(doc[comment], weights=length[comment], minlength=n),
                                       np.bincount(doc, weights=length, minlength=n)),
    }


# --- boilerplate ----------------------------------------------------------------------------------

def _boilerplate_fraction(text: pa.Array, lang: pa.Array, is_code: np.ndarray, chars: np.ndarray) -> np.ndarray:
    """Per document, the share of its characters that quality.linefilter's rules cut (the very
    cuts quality-filter makes with its default LineRules: whole lines with their newline, and
    short sentences closing a long line; disjoint, so their lengths add up). 0 for code (never
    cut: only prose documents are scanned) and for an empty document (nothing to cut)."""
    from quality.linefilter import boilerplate_cuts

    out = np.zeros(len(text))
    prose = np.flatnonzero(~is_code & (chars > 0))
    if len(prose) == 0:
        return out
    rows = pa.array(prose, pa.int64())
    cuts = boilerplate_cuts(text.take(rows), lang.take(rows), prose)
    if cuts.num_rows:
        doc = _np(cuts.column("doc_pos").combine_chunks())
        length = _np(cuts.column("end").combine_chunks()) - _np(cuts.column("start").combine_chunks())
        cut = np.bincount(doc, weights=length, minlength=len(text))
        out[prose] = np.clip(cut[prose] / chars[prose], 0.0, 1.0)
    return out


def boilerplate_char_fraction(text, lang, code_langs=tuple(DEFAULT_CODE_LANGS)) -> np.ndarray:
    """q_boilerplate_char_fraction alone, as float64 (for the benches: what compute_signals writes)."""
    column = compute_signals(text, lang, code_langs)["q_boilerplate_char_fraction"]
    return np.asarray(column.to_numpy(zero_copy_only=False), np.float64)


# --- putting it together --------------------------------------------------------------------------

_CJK_LANG_RE = r"^(?:zh|ja|ko|yue|wuu|cmn|jpn|kor|zho)(?:$|[-_])"


def _modes(lang: pa.Array, counts, code_langs) -> tuple[np.ndarray, np.ndarray]:
    """(is_code, is_cjk) per document: see the module docstring."""
    norm = pc.utf8_lower(pc.utf8_trim_whitespace(lang))
    is_code = _np(pc.fill_null(pc.is_in(norm, value_set=pa.array(list(code_langs), pa.string())), False))
    cjk_lang = _np(pc.fill_null(pc.match_substring_regex(norm, _CJK_LANG_RE), False))
    mostly_cjk = counts[CJK] * 2 > counts[LETTER]
    return is_code, ~is_code & (cjk_lang | mostly_cjk)


def _char_signals(chars: _Chars, counts, tok: _Tokens, is_cjk) -> dict[str, np.ndarray]:
    """Length, character-ratio, stop-word and curly-brace signals."""
    n = chars.n_docs
    non_space = counts[0] - counts[SPACE]
    words = np.bincount(tok.doc, minlength=n)
    latin = ~tok.cjk
    mean_word = _ratio(np.bincount(tok.doc[latin], weights=tok.length[latin], minlength=n),
                       np.bincount(tok.doc[latin], minlength=n))
    mean_word[is_cjk] = np.nan
    stops = np.bincount(tok.doc[np.isin(tok.hash, stop_word_hashes())], minlength=n)
    return {
        "q_chars": counts[0].astype(np.float64), "q_words": words.astype(np.float64),
        "q_mean_word_len": mean_word, "q_cjk_share": _ratio(counts[CJK], counts[LETTER]),
        "q_cjk": is_cjk.astype(np.float64),
        "q_symbol_word_ratio": _ratio(_symbol_counts(chars), words),
        "q_digit_share": _ratio(counts[DIGIT], non_space),
        "q_upper_share": _ratio(counts[UPPER], counts[LETTER]),
        "q_alpha_share": _ratio(counts[LETTER], non_space),
        "q_whitespace_share": _ratio(counts[SPACE], counts[0]),
        "q_punct_share": _ratio(counts[PUNCT], non_space),
        "q_stop_words": stops.astype(np.float64), "q_stop_word_share": _ratio(stops, words),
        "q_has_stop_words": (stops >= 2).astype(np.float64),
        "q_curly_braces": np.bincount(chars.doc[chars.cps == ord("{")], minlength=n).astype(np.float64),
    }


def _symbol_counts(chars: _Chars) -> np.ndarray:
    """Per document: '#' characters, plus runs of '…' and runs of three or more '.' (one each)."""
    cps = chars.cps
    pos = np.flatnonzero((cps == ord("#")) | (cps == ord(".")) | (cps == 0x2026))
    c, d = cps[pos], chars.doc[pos]
    new = np.ones(len(pos), bool)  # starts a run of one character in one document
    new[1:] = (pos[1:] != pos[:-1] + 1) | (c[1:] != c[:-1]) | (d[1:] != d[:-1])
    run_len = np.diff(np.append(np.flatnonzero(new), len(pos)))
    counts = np.where(c[new] == ord("#"), run_len, np.where(c[new] == 0x2026, 1, run_len >= 3))
    return np.bincount(d[new], weights=counts, minlength=chars.n_docs)


def _chunk_signals(text: pa.Array, lang: pa.Array, code_langs) -> dict[str, np.ndarray]:
    """Every signal as float64 (NaN = null) for one chunk of documents."""
    try:
        chars = _decode(text)
    except UnicodeDecodeError:  # unvalidated Arrow data: measure it with U+FFFD for the bad bytes
        raw = text.cast(pa.large_binary()).to_pylist()
        text = pa.array([b.decode("utf-8", "replace") for b in raw], pa.large_string())
        chars = _decode(text)
    counts = _class_counts(chars)
    is_code, is_cjk = _modes(lang, counts, code_langs)
    tok = _tokens(chars)
    lines = _split_lines(text)
    out = _char_signals(chars, counts, tok, is_cjk)
    out.update(_repetition_signals(tok, chars.n_docs))
    out.update(_line_signals(lines, is_cjk, chars.n_docs))
    out.update(_paragraph_signals(text))
    out.update(_marker_signals(text))
    out.update(_code_signals(text, lines, counts, is_code))
    out["q_boilerplate_char_fraction"] = _boilerplate_fraction(text, lang, is_code, counts[0])
    return out


def _to_arrow(values: np.ndarray, kind: str) -> pa.Array:
    """float64 values with NaN for null -> an Arrow array of the signal's type."""
    mask = np.isnan(values)
    if kind == "float":
        return pa.array(values, pa.float64(), mask=mask if mask.any() else None)
    filled = np.where(mask, 0, values)
    arr = filled.astype(np.int64) if kind == "int" else filled != 0
    return pa.array(arr, ARROW_TYPES[kind], mask=mask if mask.any() else None)


def _as_array(values, type_) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, type_)
    return values.cast(type_)


CHUNK_DOCS = 1 << 20


def _chunk_bounds(text: pa.Array, chunk_bytes: int) -> list[tuple[int, int]]:
    """[start, end) document ranges of about chunk_bytes of text each (at least one document, at
    most CHUNK_DOCS: int32 document indices times bit combinations stay far below 2^31)."""
    byte_offsets = np.frombuffer(text.buffers()[1], np.int64, count=len(text) + 1, offset=text.offset * 8)
    bounds, start = [], 0
    while start < len(text):
        end = int(np.searchsorted(byte_offsets, byte_offsets[start] + chunk_bytes, side="right")) - 1
        end = min(max(end, start + 1), start + CHUNK_DOCS, len(text))
        bounds.append((start, end))
        start = end
    return bounds


def compute_signals(text, lang, code_langs=tuple(DEFAULT_CODE_LANGS),
                    chunk_bytes: int = 2 << 20) -> dict[str, pa.Array]:
    """{signal name: pyarrow.Array} for one batch: see the module docstring. `text` and `lang`
    are string arrays (Arrow arrays, chunked arrays or sequences) of the same length."""
    text = pc.fill_null(_as_array(text, pa.large_string()), "")
    lang = _as_array(lang, pa.string())
    if len(lang) != len(text):
        raise ValueError(f"text has {len(text)} documents but lang has {len(lang)}")
    parts = [_chunk_signals(text.slice(s, e - s), lang.slice(s, e - s), code_langs)
             for s, e in _chunk_bounds(text, chunk_bytes)]
    out = {}
    for sig in SIGNALS:
        values = np.concatenate([p[sig.name] for p in parts]) if parts else np.zeros(0)
        out[sig.name] = _to_arrow(values, sig.type)
    return out
