import random

import pytest

from pipeline.segment import normalize, paragraphs, segment, sentences

ZH = "今天天气很好。我们去公园吧！你觉得呢？好的……走吧；\n明天见。\n\n第二段：北京欢迎你！「真的吗？」他问。"
EN = ("Mr. Smith paid $3.14 for it. Dr. J. Watson agreed! Did he? Yes, e.g. he did.\n\n"
      "The U.S. economy grew 2.5 percent. It was fine.")
MIXED = "Python 3.11 发布了。It is fast! 我们都很喜欢。Really.\n\n第二段 second paragraph."
CODE = "def f(x):\n    return x * 2\n\n\nclass A:\n    pass\n"


def pieces(text, spans):
    return [text[s:e] for s, e in spans]


@pytest.mark.parametrize("text,code", [(ZH, False), (EN, False), (MIXED, False), (CODE, True),
                                       ("", False), ("\n\n\nx", False), ("no terminator", False)])
def test_pieces_tile_the_text_exactly(text, code):
    paras, sents = segment(text, code)
    assert "".join(pieces(text, paras)) == text
    assert "".join(text[s:e] for ss in sents for s, e in ss) == text
    for (ps, pe), ss in zip(paras, sents):
        assert ss[0][0] == ps and ss[-1][1] == pe
        assert all(a[1] == b[0] for a, b in zip(ss, ss[1:]))


def test_chinese_sentences():
    paras, sents = segment(ZH)
    assert [p.strip() for p in pieces(ZH, paras)] == [
        "今天天气很好。我们去公园吧！你觉得呢？好的……走吧；\n明天见。", "第二段：北京欢迎你！「真的吗？」他问。"]
    first = [s.strip() for s in pieces(ZH, sents[0])]
    assert first == ["今天天气很好。", "我们去公园吧！", "你觉得呢？", "好的……", "走吧；", "明天见。"]
    second = [s.strip() for s in pieces(ZH, sents[1])]
    assert second == ["第二段：北京欢迎你！", "「真的吗？」", "他问。"]


def test_english_abbreviations_and_decimals_do_not_split():
    _, sents = segment(EN)
    assert [s.strip() for s in pieces(EN, sents[0])] == [
        "Mr. Smith paid $3.14 for it.", "Dr. J. Watson agreed!", "Did he?", "Yes, e.g. he did."]
    assert [s.strip() for s in pieces(EN, sents[1])] == ["The U.S. economy grew 2.5 percent.", "It was fine."]


def test_mixed_language():
    _, sents = segment(MIXED)
    assert [s.strip() for s in pieces(MIXED, sents[0])] == [
        "Python 3.11 发布了。", "It is fast!", "我们都很喜欢。", "Really."]


def test_code_is_split_into_lines():
    paras, sents = segment(CODE, code=True)
    assert pieces(CODE, paras) == ["def f(x):\n    return x * 2\n\n\n", "class A:\n    pass\n"]
    assert pieces(CODE, sents[0]) == ["def f(x):\n", "    return x * 2\n\n\n"]


def test_single_newlines_split_paragraphs_when_there_are_no_blank_lines():
    text = "line one.\nline two.\nline three."
    assert pieces(text, paragraphs(text)) == ["line one.\n", "line two.\n", "line three."]
    assert len(paragraphs("a\n\nb\nc")) == 2  # blank lines win when present


def test_random_text_round_trips():
    rng = random.Random(0)
    alphabet = list("abc XYZ.!?。！？；…\n\t 　”」3.1") + ["\n\n", "Mr. ", "e.g. "]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        for code in (False, True):
            paras, sents = segment(text, code)
            assert "".join(text[s:e] for ss in sents for s, e in ss) == text


def test_normalize():
    assert normalize("  Ｈｅｌｌｏ\u3000 world\n\n") == "Hello world"
    assert sentences("abc", 0, 3) == [(0, 3)]
