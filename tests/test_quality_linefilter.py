"""The sentence-level boilerplate filter (quality.linefilter): every rule cuts its English and
Chinese boilerplate and keeps the prose that looks like it; cuts are whole lines or sentences,
through the one span-cutting path, and the original text is rebuilt exactly."""
import gzip
import json

import numpy as np
import pyarrow as pa
import pytest

from conftest import CORPORA
from pipeline.spans import CUT_SCHEMA, REMOVED_SPAN_SCHEMA, choose_outermost, cut_documents
from quality.linefilter import LineRules, boilerplate_cuts, boilerplate_scan

EN_PARAS = [
    "The city council voted on Tuesday to expand the bus network to the northern suburbs, after two years of "
    "debate about the cost of the new routes and the number of drivers needed to run them every day.",
    "Officials said the first new lines would open next spring, and that fares would stay the same for at least "
    "a year while the council studies how many people actually use the service in the evenings.",
]
ZH_PARAS = [
    "市议会周二投票决定把公交线路延伸到北部郊区，此前围绕新线路的成本和所需司机人数的争论已经持续了整整两年。",
    "官员表示，第一批新线路将于明年春天开通，票价至少一年内保持不变，议会将研究到底有多少人在晚上使用这项服务。",
]
EN_MENU = ["Home", "World", "Business", "Technology", "Sports"]
ZH_MENU = ["首页", "国内", "国际", "财经", "体育"]
EN_TITLE, ZH_TITLE = "Council expands the bus network", "市议会扩大公交网络"
EN_POEM = ("Rain on the tin roof\nthe kettle starting to sing\nmy mother humming\nan old song from the valley\n"
           "we are all listening\nnobody says a word\nthe light goes amber\nand the evening comes in")
ZH_POEM = "窗外下着小雨\n炉上的水壶开始唱歌\n母亲轻轻哼着\n山谷里的老歌\n我们都在听\n谁也不说话\n灯光慢慢变黄\n夜晚走进屋来"


def en_page(*body: str) -> str:
    """A small English web page: a menu, a title, two paragraphs, `body`, a footer."""
    return "\n".join(EN_MENU + [EN_TITLE] + EN_PARAS + list(body) + ["Privacy Policy", "Terms of Use"])


def zh_page(*body: str) -> str:
    return "\n".join(ZH_MENU + [ZH_TITLE] + ZH_PARAS + list(body) + ["联系我们", "隐私政策"])


def cuts_of(text: str, lang: str, rules: LineRules | None = None) -> dict:
    """{cut text stripped: reason} of one document."""
    t = boilerplate_cuts([text], [lang], np.array([0]), rules)
    return {text[s:e].strip(): r for s, e, r in zip(*(t.column(c).to_pylist() for c in ("start", "end", "reason")))}


def rebuild(kept: str, spans) -> str:
    for start, piece in sorted(spans):
        kept = kept[:start] + piece + kept[start:]
    return kept


# -- the page gate and nav_fragment ---------------------------------------------------------------

@pytest.mark.parametrize("page, menu, title, paras", [(en_page, EN_MENU, EN_TITLE, EN_PARAS),
                                                      (zh_page, ZH_MENU, ZH_TITLE, ZH_PARAS)])
def test_menu_runs_of_a_page_go_and_its_title_and_paragraphs_stay(page, menu, title, paras):
    cut = cuts_of(page(), "en" if page is en_page else "zh")
    assert set(menu) <= set(cut) and {cut[m] for m in menu} <= {"nav_fragment", "boilerplate_phrase"}
    assert title not in cut and not any(p in cut for p in paras)


@pytest.mark.parametrize("poem, lang", [(EN_POEM, "en"), (ZH_POEM, "zh")])
def test_a_poem_of_short_lines_is_not_a_page(poem, lang):
    assert cuts_of(poem, lang) == {}
    # with an essay around it, still no interface text: not a page either
    paras = EN_PARAS if lang == "en" else ZH_PARAS
    essay = "\n".join([paras[0], poem, paras[1]])
    assert cuts_of(essay, lang) == {}


@pytest.mark.parametrize("lang, lines", [
    ("en", ["Ingredients", "1. Two cups of flour", "2. One egg", "3. A pinch of salt", "4. Warm milk"]),
    ("zh", ["招生专业", "1、中国画理论", "2、艺术设计学", "3、中外美术史", "4、美术鉴藏史论"]),
])
def test_enumerated_lists_of_a_page_stay(lang, lines):
    cut = cuts_of((en_page if lang == "en" else zh_page)(*lines), lang)
    assert not any(line in cut for line in lines[1:])


def test_code_and_preformatted_lines_of_a_page_stay():
    lines = ["Install it with:", "$ pip install example", "x = load(path)", "  indented output", "/usr/share/doc/x"]
    cut = cuts_of(en_page(*lines), "en")
    assert not any(line.strip() in cut for line in lines[1:])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_long_table_inside_the_article_stays_but_a_long_menu_goes(lang):
    paras = EN_PARAS if lang == "en" else ZH_PARAS
    table = [f"Row {i} value {i * 7}" if lang == "en" else f"第{i}行数据{i * 7}" for i in range(1, 17)]
    menu = (["Home"] + [f"Section {i}" for i in range(1, 16)] if lang == "en"
            else ["首页"] + [f"栏目{i}" for i in range(1, 16)])
    frame = (["Privacy Policy"] if lang == "en" else ["隐私政策"])
    text = "\n".join(menu + [paras[0]] + table + [paras[1]] + frame)
    cut = cuts_of(text, lang)
    assert not any(row in cut for row in table)
    assert all(item in cut for item in menu[:-1])  # the last, right before the prose, may be a heading
    assert menu[-1] not in cut


def test_hard_wrapped_prose_is_not_a_page():
    wrapped = ("The committee met again on Thursday and\nheard from residents who live near the\n"
               "proposed depot, most of whom said that\nthey welcomed the buses but not the noise\n"
               "of engines starting before dawn every\nmorning, and asked for a later start.\n")
    text = "\n".join(EN_MENU) + "\n" + EN_PARAS[0] + "\n" + wrapped * 2 + "Privacy Policy\n"
    cut = cuts_of(text, "en")
    assert not any(line in cut for line in wrapped.splitlines())


# -- copyright ------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, line", [("en", "Copyright 2012 Example Media Inc. All rights reserved."),
                                        ("en", "© 2024 Example News"),
                                        ("zh", "版权所有 © 2005 新浪网"),
                                        ("zh", "京ICP备05002345号")])
def test_copyright_lines_go_in_a_page_and_in_a_plain_text(lang, line):
    assert cuts_of((en_page if lang == "en" else zh_page)(line), lang)[line] == "copyright"
    plain = (EN_PARAS[0] if lang == "en" else ZH_PARAS[0]) + "\n\n" + line + "\n"
    assert cuts_of(plain, lang) == {line: "copyright"}


@pytest.mark.parametrize("lang, text", [
    ("en", "The copyright of the novel passed to his widow in 1952, and she guarded it fiercely for decades."),
    ("zh", "他研究版权法的历史已经二十年了，写过很多关于著作权保护的文章。"),
])
def test_prose_about_copyright_stays(lang, text):
    assert cuts_of(text, lang) == {}


@pytest.mark.parametrize("lang, para, notice", [
    ("en", EN_PARAS[0], " Copyright 2012 Example Media. All rights reserved."),
    ("zh", ZH_PARAS[0], "版权所有 © 2005 新浪网。未经授权不得转载。"),
])
def test_copyright_sentences_closing_a_long_line_go_alone(lang, para, notice):
    text = para + notice + "\n" + (EN_PARAS[1] if lang == "en" else ZH_PARAS[1]) + "\n"
    t = boilerplate_cuts([text], [lang], np.array([0]))
    pieces = [text[s:e] for s, e in zip(t.column("start").to_pylist(), t.column("end").to_pylist())]
    assert "".join(pieces) == notice.lstrip() + "\n" and len(pieces) == 2
    assert set(t.column("reason").to_pylist()) == {"copyright"}
    # the same notice in the middle of the paragraph is the writer's own: kept
    assert cuts_of(notice.strip() + " " + para + "\n", lang) == {}


# -- breadcrumb -----------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, line", [("en", "You are here: Home > News > World"), ("en", "Home > Local > Transport"),
                                        ("zh", "当前位置：首页 > 新闻 > 国际"), ("zh", "首页 > 艺术教育 > 院校招生")])
def test_breadcrumbs_go(lang, line):
    assert cuts_of((en_page if lang == "en" else zh_page)(line), lang)[line] == "breadcrumb"


@pytest.mark.parametrize("lang, line", [("en", "Home is where she wanted to be, she said, and nowhere else."),
                                        ("zh", "这本书的首页写着他的名字和一句话。")])
def test_prose_starting_like_a_breadcrumb_stays(lang, line):
    assert line not in cuts_of((en_page if lang == "en" else zh_page)(line), lang)


# -- boilerplate_phrase ---------------------------------------------------------------------------

@pytest.mark.parametrize("lang, line", [
    ("en", "Click here to subscribe to our newsletter"), ("en", "Share this article on Facebook"),
    ("en", "This site uses cookies to improve your experience"), ("en", "« Previous post"), ("en", "Reply"),
    ("en", "Sign in"), ("en", "Related articles"),
    ("zh", "点击这里查看更多图片"), ("zh", "分享到：微博 微信"), ("zh", "订阅本站新闻"), ("zh", "登录 | 注册"),
    ("zh", "上一篇：市长会见外宾"), ("zh", "返回顶部"), ("zh", "相关文章"), ("zh", "责任编辑：王小明"),
])
def test_interface_phrases_go(lang, line):
    cut = cuts_of((en_page if lang == "en" else zh_page)(line), lang)
    assert cut.get(line) in {"boilerplate_phrase", "nav_list", "breadcrumb"}


@pytest.mark.parametrize("lang, text", [
    ("en", "Let the cookies cool on the tray for ten minutes before you move them, or they will break apart."),
    ("en", "Would you subscribe to it? I asked him twice, and twice he laughed at me before he answered."),
    ("zh", "我们把这篇文章分享到了班级群里，大家讨论了很久，最后决定一起去图书馆查资料。"),
    ("zh", "她在厨房里烤了一盘饼干，等饼干凉了以后再装进盒子里，第二天带去学校。"),
])
def test_prose_mentioning_a_phrase_stays(lang, text):
    assert cuts_of(text, lang) == {}
    assert text not in cuts_of((en_page if lang == "en" else zh_page)(text), lang)


@pytest.mark.parametrize("lang, dialogue", [
    ("en", '"Where are you going?"\n"Home."\n"Home?"\n"Reply to me when you get there."\n"Next week, maybe."\n'
           '"Share the bread with your sister."\n"I will."\n"Sign in at the desk first."'),
    ("zh", "“你去哪儿？”\n“回家。”\n“首页那张照片是谁？”\n“返回吧。”\n“好。”\n“订阅的报纸到了吗？”\n“到了。”\n“那就好。”"),
])
def test_short_dialogue_lines_are_not_interface_text(lang, dialogue):
    assert cuts_of(dialogue, lang) == {}


def test_a_closing_read_more_goes_as_a_sentence_and_the_paragraph_stays():
    line = EN_PARAS[0] + " Read more"
    cut = cuts_of(en_page(line), "en")
    assert cut.get("Read more") == "boilerplate_phrase" and EN_PARAS[0] not in cut


# -- nav_list and symbols -------------------------------------------------------------------------

@pytest.mark.parametrize("lang, line", [("en", "Home | News | Sports | Weather | Contact"),
                                        ("en", "About · Careers · Press · Help"),
                                        ("zh", "首页|艺术快讯|当代艺术|艺术史论|艺术设计"),
                                        ("zh", "新闻 | 体育 | 娱乐 | 财经")])
def test_menus_on_one_line_go(lang, line):
    assert cuts_of((en_page if lang == "en" else zh_page)(line), lang)[line] in {"nav_list", "breadcrumb",
                                                                                 "boilerplate_phrase"}


@pytest.mark.parametrize("lang, line", [("en", "| Year | Riders | Routes |"), ("en", ">>> a | b | c"),
                                        ("zh", "| 年份 | 乘客 | 线路 |"),
                                        ("en", "Rents rose in Paris | London | Rome last year, the report says.")])
def test_table_rows_prompts_and_prose_with_pipes_are_not_menus(lang, line):
    cut = cuts_of((en_page if lang == "en" else zh_page)(line, *(EN_PARAS if lang == "en" else ZH_PARAS)), lang)
    assert cut.get(line) != "nav_list"


@pytest.mark.parametrize("lang, line", [("en", "» » »"), ("en", "-------"), ("zh", "※※※※※"), ("zh", "【 】 ◆ ◆")])
def test_symbol_lines_of_a_page_go(lang, line):
    assert cuts_of((en_page if lang == "en" else zh_page)(line), lang)[line] == "symbols"


@pytest.mark.parametrize("lang, text", [
    ("en", EN_PARAS[0] + "\n* * *\n" + EN_PARAS[1]),
    ("zh", ZH_PARAS[0] + "\n※ ※ ※\n" + ZH_PARAS[1]),
])
def test_a_scene_break_outside_a_page_stays(lang, text):
    assert cuts_of(text, lang) == {}


def test_box_drawing_lines_are_a_diagram_not_symbols():
    diagram = ["┌──────┐", "│", "└──┬───┘", "↓"]
    cut = cuts_of(zh_page(*diagram), "zh")
    assert not any(cut.get(d) == "symbols" for d in diagram[:3])


# -- code, shapes of text, offsets ----------------------------------------------------------------

def test_code_documents_are_never_cut():
    code = "# Copyright 2012 Example Inc. All rights reserved.\n" + en_page("Click here") + "\nimport os\n"
    for lang in ("python", "c", "code", "CPP"):
        assert cuts_of(code, lang) == {}
    assert cuts_of(code, "en") != {}


def test_empty_null_and_single_line_documents():
    texts = ["", None, "Click here to subscribe", EN_PARAS[0], "\n\n\n"]
    scan = boilerplate_scan(texts, ["en", "en", "en", "en", None], np.array([10, 11, 12, 13, 14]))
    assert scan.cuts.schema == CUT_SCHEMA
    rows = list(zip(*(scan.cuts.column(c).to_pylist() for c in ("doc_pos", "start", "end", "level", "reason"))))
    assert rows == [(12, 0, 23, "sentence", "boilerplate_phrase")]
    assert scan.lines.tolist() == [0, 0, 1, 1, 0] and scan.candidates.tolist() == [0, 0, 1, 0, 0]


def test_crlf_lines_are_cut_with_their_line_end_like_lf():
    lf_text = en_page("Click here to subscribe")
    crlf_text = lf_text.replace("\n", "\r\n")
    lf_cut, crlf_cut = cuts_of(lf_text, "en"), cuts_of(crlf_text, "en")
    assert lf_cut == crlf_cut
    t = boilerplate_cuts([crlf_text], ["en"], np.array([0]))
    pieces = [crlf_text[s:e] for s, e in zip(t.column("start").to_pylist(), t.column("end").to_pylist())]
    assert all(p.endswith("\r\n") for p in pieces[:-1]) and pieces[-1] == "Terms of Use"


def test_offsets_rebuild_every_document_through_the_span_path():
    texts = [en_page("Click here 👉", "Home | News | Sports", "» » »", "© 2024 Example 🎉"), zh_page("分享到", "首页|新闻|体育"),
             EN_POEM, "", en_page("Share this").replace("\n", "\r\n"), ZH_PARAS[0] + " 版权所有 © 2005 新浪网。"]
    langs = ["en", "zh", "en", "en", "en", "zh"]
    pos = np.arange(100, 100 + len(texts))
    cuts = boilerplate_cuts(texts, langs, pos)
    starts, ends = cuts.column("start").to_pylist(), cuts.column("end").to_pylist()
    docs = pa.table({"doc_pos": pa.array(pos, pa.int64()), "id": [f"d{i}" for i in range(len(texts))],
                     "text": texts, "lang": langs})
    kept, spans, left = cut_documents(docs, choose_outermost(cuts))
    assert spans.schema == REMOVED_SPAN_SCHEMA and spans.num_rows == cuts.num_rows > 10
    assert set(spans.column("level").to_pylist()) == {"sentence"}
    for row, text in enumerate(texts):
        mine = [(s, t) for p, s, t in zip(*(spans.column(c).to_pylist() for c in ("doc_pos", "start", "text")))
                if p == pos[row]]
        assert rebuild(kept[row].as_py(), mine) == text
    for p, s, e in zip(cuts.column("doc_pos").to_pylist(), starts, ends):  # whole lines or whole sentences
        text = texts[p - 100]
        assert s == 0 or text[s - 1] in "\n " or text[s - 1] in "。"
        assert e == len(text) or text[e - 1] in "\n "


def test_rules_are_config():
    text = en_page("Click here to subscribe")
    strict = LineRules(phrases_anywhere=[], phrases_line_start=[], nav_words=[], fragment_min_run=99, list_min_run=99)
    cut = cuts_of(text, "en", strict)
    assert "Click here to subscribe" not in cut and "World" not in cut
    assert "World" in cuts_of(text, "en")


# -- real text ------------------------------------------------------------------------------------

def read_corpus(name: str, n: int) -> list[dict]:
    rows = []
    with gzip.open(CORPORA / name, "rt", encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


@pytest.mark.parametrize("name, n", [("en_brown_corpus.jsonl.gz", 150), ("zh_wiki_drcd_traditional.jsonl.gz", 200),
                                     ("en_manpages.jsonl.gz", 100), ("code_python_stdlib_5versions.jsonl.gz", 100)])
def test_edited_prose_manuals_and_code_of_the_corpora_lose_almost_nothing(name, n):
    rows = read_corpus(name, n)
    texts = [r["text"] for r in rows]
    cuts = boilerplate_cuts(texts, [r["lang"] for r in rows], np.arange(len(rows)))
    cut_chars = sum(e - s for s, e in zip(cuts.column("start").to_pylist(), cuts.column("end").to_pylist()))
    assert cut_chars <= 0.001 * sum(len(t) for t in texts)
    if name.startswith("code_"):
        assert cuts.num_rows == 0
