"""Which spans of a document a span-cutting stage may cut: the one policy every such stage asks.

Paragraph and sentence cuts are Baichuan 2's tool for natural-language text. Source code is
different: a file with lines cut out of its middle no longer compiles, and a model trained on it
learns broken code; large code corpora dedup whole files (exact and near-duplicate) and keep a
file whole or remove it whole. So the profile's `spans:` section says, per `lang`, which levels
may be cut:

  prose (every lang not in code_langs)  prose_levels, default [paragraph, sentence]
  code (the langs in code_langs)        code_levels, default []: whole-document decisions only.
                                        The one level a user may opt in to is `header`: the
                                        comment block at the very top of a file (a license
                                        header), cut whole, never a line inside code.
  by_lang                               {lang: [levels]} for single languages (a code lang still
                                        takes `header` only)

A stage asks `policy.levels(lang)` and gets the candidate spans of a document from
`candidate_spans(text, levels)`: offsets that tile like pipeline.segment's, each with its level.
What a stage then does with a candidate (key it, score it, cut it) is its own business.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.errors import UserError
from pipeline.segment import paragraphs, segment

PARAGRAPH, SENTENCE, HEADER = "paragraph", "sentence", "header"
PROSE_LEVELS = (PARAGRAPH, SENTENCE)
CODE_LEVELS = (HEADER,)
# `lang` values that mean source code by default: the generic "code" and common language names
# (none of which is an ISO 639-1 code).
DEFAULT_CODE_LANGS = ["code", "python", "c", "cpp", "c++", "java", "javascript", "typescript", "go",
                      "rust", "ruby", "php", "shell", "bash", "sql", "scala", "kotlin", "swift", "c#", "csharp"]


@dataclass
class SpanSettings:
    code_langs: list = field(default_factory=lambda: list(DEFAULT_CODE_LANGS))
    prose_levels: list = field(default_factory=lambda: list(PROSE_LEVELS))
    code_levels: list = field(default_factory=list)
    by_lang: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_levels("spans.prose_levels", self.prose_levels, PROSE_LEVELS)
        _check_levels("spans.code_levels", self.code_levels, CODE_LEVELS)
        for lang, levels in self.by_lang.items():
            allowed = CODE_LEVELS if lang in self.code_langs else PROSE_LEVELS
            _check_levels(f"spans.by_lang.{lang}", levels, allowed)


def _check_levels(where: str, levels, allowed: tuple) -> None:
    if not isinstance(levels, list) or any(v not in allowed for v in levels):
        raise UserError(f"config key '{where}' must be a list of levels out of {list(allowed)}, got {levels!r}"
                        + (" (code is never cut inside; only its top-of-file comment block, `header`, may be)"
                           if allowed == CODE_LEVELS else ""))


class SpanPolicy:
    """policy.levels(lang) -> the frozenset of levels that may be cut in a document of that lang."""

    def __init__(self, settings: SpanSettings):
        self.code_langs = frozenset(settings.code_langs)
        self._prose = frozenset(settings.prose_levels)
        self._code = frozenset(settings.code_levels)
        self._by_lang = {k: frozenset(v) for k, v in settings.by_lang.items()}

    def is_code(self, lang) -> bool:
        return lang in self.code_langs

    def levels(self, lang) -> frozenset:
        if lang in self._by_lang:
            return self._by_lang[lang]
        return self._code if lang in self.code_langs else self._prose


def candidate_spans(text: str, levels: frozenset) -> list[tuple[str, int, int]]:
    """(level, start, end) of every span of `text` at the given levels: the header block, then
    each paragraph followed by its sentences (in text order)."""
    out = []
    if HEADER in levels:
        end = header_comment_end(text)
        if end:
            out.append((HEADER, 0, end))
    if SENTENCE not in levels:  # paragraphs alone: no sentence splitting (most of segment's cost)
        if PARAGRAPH in levels:
            out.extend((PARAGRAPH, ps, pe) for ps, pe in paragraphs(text))
        return out
    paras, sents = segment(text)
    for (ps, pe), pieces in zip(paras, sents):
        if PARAGRAPH in levels:
            out.append((PARAGRAPH, ps, pe))
        out.extend((SENTENCE, ss, se) for ss, se in pieces)
    return out


# A line the header may hold: blank, or a whole-line comment (# or //); a C preprocessor line is
# code, not a comment; a // comment ending in a backslash continues onto the next line in C, so
# the block stops before it.
_BLANK = re.compile(r"[^\S\n]*(?:\n|$)")
_LINE_COMMENT = re.compile(r"[^\S\n]*(?:#|//)[^\n]*(?:\n|$)")
_DIRECTIVE = re.compile(r"[^\S\n]*#[^\S\n]*(?:include|define|undef|if|ifdef|ifndef|elif|else|endif|pragma|error|"
                        r"warning|line|import|include_next)\b")
_BLOCK_START = re.compile(r"[^\S\n]*/\*")
_REST_BLANK = re.compile(r"[^\S\n]*(?:\n|$)")


def header_comment_end(text: str) -> int:
    """The end of the comment block at the top of a source file (blank lines, whole-line `#` or `//`
    comments, `/* ... */` blocks that end their line), with the blank lines after it; 0 if the file
    does not start with a comment. Removing text[:end] removes only comments and blank lines."""
    pos, end, n = 0, 0, len(text)
    while pos < n:
        if m := _BLANK.match(text, pos):
            if m.end() == pos:
                break
            pos = m.end()
            continue
        if _BLOCK_START.match(text, pos):
            close = text.find("*/", text.index("/*", pos) + 2)
            rest = _REST_BLANK.match(text, close + 2) if close >= 0 else None
            if rest is None:
                break  # unclosed, or code after the comment on its line
            pos = end = rest.end()
            continue
        m = _LINE_COMMENT.match(text, pos)
        if m is None or _DIRECTIVE.match(text, pos) or m.group().rstrip("\n").endswith("\\"):
            break
        pos = end = m.end()
    if end == 0:
        return 0
    while (m := _BLANK.match(text, end)) and m.end() > end:  # the blank lines after the block
        end = m.end()
    return end
