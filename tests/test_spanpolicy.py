"""The span policy: code is kept whole by default, a top-of-file comment block is the only code
span a user may opt in to, and what is cut is counted per language."""
import ast

import pytest

from conftest import read_dir, write_jsonl
from dedup.exact import STAGE as EXACT
from pipeline.config import load_profile
from pipeline.errors import UserError
from pipeline.spanpolicy import SpanPolicy, SpanSettings, candidate_spans, header_comment_end
from pipeline.stage import run_stage

LICENSE = ("# Copyright (c) 2001 The Example Software Foundation.\n"
           "# Licensed under the Example License, version 2; see LICENSE for the terms.\n"
           "\n")
SHARED_METHOD = ('    def __repr__(self):\n'
                 '        return f"{type(self).__name__}({self.name!r}, {self.value!r})"\n')
MOD_A = (LICENSE + '"""Module a."""\nimport os\nimport sys\nfrom typing import Any\n\n\n'
         "class Alpha:\n    def __init__(self, name: str, value: Any):\n        self.name, self.value = name, value\n\n"
         + SHARED_METHOD + "\n\ndef main():\n    print(os.getcwd(), sys.argv)\n")
MOD_B = (LICENSE + '"""Module b: another one."""\nimport os\nimport sys\nfrom typing import Any\n\n\n'
         "class Beta:\n    def __init__(self, name: str, value: Any):\n        self.name, self.value = name, value\n\n"
         + SHARED_METHOD + "\n\ndef run(path):\n    return os.path.join(path, sys.prefix)\n")
PROSE = "This paragraph is shared by the two English documents of the fixture, word for word."
DOCS = [
    {"id": "a", "text": MOD_A, "lang": "code"},
    {"id": "b", "text": MOD_B, "lang": "code"},
    {"id": "e1", "text": "The first English text opens on its own words.\n\n" + PROSE, "lang": "en"},
    {"id": "e2", "text": "The second English text has another opening paragraph.\n\n" + PROSE, "lang": "en"},
]
LOW = ["exact-dedup.min_paragraph_chars=30", "exact-dedup.min_sentence_chars=15",
       "exact-dedup.min_doc_chars_after_span_dedup=10"]


def test_header_is_the_top_comment_block_and_nothing_else():
    assert MOD_A[:header_comment_end(MOD_A)] == LICENSE
    c = "/*\n * SPDX-License-Identifier: MIT\n */\n\n// more\n#ifndef X_H\n#define X_H\n"
    assert c[:header_comment_end(c)] == "/*\n * SPDX-License-Identifier: MIT\n */\n\n// more\n"
    assert header_comment_end("#include <stdio.h>\n/* not a header */\n") == 0  # a directive is code
    assert header_comment_end("/* a */ int x;\n") == 0  # code on the comment's line
    assert header_comment_end("// continued \\\nint x;\n") == 0  # a C line comment runs on
    assert header_comment_end("/* never closed\nint x;\n") == 0
    assert header_comment_end("import os\n# late comment\n") == 0
    assert header_comment_end("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nx = 1\n") == 47


def test_policy_defaults_and_candidates():
    policy = SpanPolicy(SpanSettings())
    assert policy.levels("en") == {"paragraph", "sentence"} and policy.levels(None) == {"paragraph", "sentence"}
    assert policy.levels("code") == set() and policy.levels("python") == set()
    assert candidate_spans(MOD_A, policy.levels("code")) == []
    opted = SpanPolicy(SpanSettings(code_levels=["header"], by_lang={"zh": ["sentence"]}))
    assert candidate_spans(MOD_A, opted.levels("code")) == [("header", 0, len(LICENSE))]
    assert opted.levels("zh") == {"sentence"}
    levels = [lv for lv, _, _ in candidate_spans("One. Two.\n\nThree.", opted.levels("en"))]
    assert levels == ["paragraph", "sentence", "sentence", "paragraph", "sentence"]


@pytest.mark.parametrize("override", ["spans.code_levels=[sentence]", "spans.by_lang={code: [paragraph]}",
                                      "spans.prose_levels=[line]", "spans.prose_levels=paragraph"])
def test_policy_refuses_cuts_inside_code_and_unknown_levels(override):
    with pytest.raises(UserError, match="spans"):
        load_profile(None, [override])


def _run(tmp_path, spark, overrides):
    write_jsonl(tmp_path / "in" / "docs.jsonl", DOCS)
    m = run_stage(EXACT, load_profile(None, LOW + overrides), str(tmp_path / "in"), str(tmp_path / "out"),
                  spark=spark)
    kept = {r["id"]: r["text"] for r in read_dir(tmp_path / "out" / "kept")}
    return m, kept, read_dir(tmp_path / "out" / "removed_spans")


def test_code_keeps_every_line_by_default(tmp_path, spark):
    """Two Python modules that share imports, a licence header and a method keep every line (and
    still parse); the prose beside them is cut as before; the cuts are counted per language."""
    m, kept, spans = _run(tmp_path, spark, [])
    assert kept["a"] == MOD_A and kept["b"] == MOD_B
    ast.parse(kept["b"])
    assert [(s["doc_id"], s["lang"], s["level"], s["text"]) for s in spans] == [("e2", "en", "paragraph", PROSE)]
    cut = m["counts"]["cut_by_lang"]
    assert cut["code"] == {"chars": len(MOD_A) + len(MOD_B), "cut_chars": 0, "cut_share": 0.0, "by_level": {}}
    en_chars = len(DOCS[2]["text"]) + len(DOCS[3]["text"])
    assert cut["en"]["chars"] == en_chars and cut["en"]["by_level"]["paragraph"]["chars"] == len(PROSE)
    assert cut["en"]["cut_share"] == round(len(PROSE) / en_chars, 6)


def test_opted_in_header_is_cut_whole_and_code_still_parses(tmp_path, spark):
    m, kept, spans = _run(tmp_path, spark, ["spans.code_levels=[header]"])
    assert kept["a"] == MOD_A and kept["b"] == MOD_B[len(LICENSE):]
    ast.parse(kept["b"])
    code_cuts = [(s["doc_id"], s["level"], s["text"], s["duplicate_of"]) for s in spans if s["lang"] == "code"]
    assert code_cuts == [("b", "header", LICENSE, "a")]
    assert m["counts"]["cut_by_lang"]["code"]["by_level"]["header"]["chars"] == len(LICENSE)
