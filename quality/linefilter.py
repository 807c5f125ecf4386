"""Sentence-level boilerplate filter: which lines (and sentences) of a web page to cut.

Contract: `boilerplate_cuts(texts, langs, doc_pos, rules)` returns the spans to cut from a batch of
documents as a `pipeline.spans.CUT_SCHEMA` table (level "sentence", reason = the rule's name,
offsets in characters of the original text, sorted by doc_pos and start); each span is a whole line
with its newline, or a whole sentence closing a long line. The caller cuts them through the one
span-cutting path (`choose_outermost`, `cut_documents`), so original text == kept text with the
spans put back. `boilerplate_scan` returns the same cuts with, per document, its
non-blank lines, the spans cut (the candidates) and whether it looked like a web page. Code
documents (lang in code_langs, pipeline.spanpolicy's list) are never cut. Removing a document left
too short after its cuts is the calling stage's (pipeline.spans.split_outputs, min_doc_chars).

Why lines: text extracted from HTML has one block (a menu item, a heading, a paragraph, a footer)
per line, and boilerplate comes as whole blocks. A line's size is counted in "units": words of
alphabetic scripts plus CJK characters / cjk_chars_per_word (a Chinese word is ~1.5 characters),
so one threshold serves English and Chinese. A "fragment" is a line of <= fragment_max_units with
no sentence end; a "prose line" has >= prose_min_units and a sentence end.

Page-like (the gate of the rules that judge a line by its shape): >= page_min_lines non-blank
lines, >= page_min_fragment_share of them fragments, a prose line, a paragraph written on one line
(>= page_min_paragraph_units: hard-wrapped text has none), fewer than wrapped_min_share of lines
running on into a lower-case next line (hard-wrapped mail, manuals, books), and some interface text
(a copyright, breadcrumb, phrase or menu line). A poem, a dialogue, a glossary or a table with no
interface text around it is never page-like, so its short lines stay.

The rules, in the order they claim a line, and why each is safe on prose:
  copyright          a line of <= copyright_max_units with a copyright notice (©, "(c) 2012",
                     "Copyright 2012", "all rights reserved", 版权所有, ICP备). Prose about
                     copyright is longer, or lacks the notice form.
  breadcrumb         a short line starting with a "you are here" marker (当前位置, 您的位置) or a home
                     link and a path separator ("Home >", "首页 >"). Prose never starts so.
  boilerplate_phrase a line of <= phrase_max_units holding interface wording: `phrases_anywhere`
                     (click here, share on, subscribe to, privacy policy, cookie banners, back to
                     top, 点击这里, 分享到, 返回顶部, 相关文章, ...) in any prose document;
                     `phrases_line_start` (Subscribe, Sign in, Next post, Related articles, 订阅,
                     登录, 上一篇, ...) and `nav_words` (the line is only that word: Home, Reply, 首页)
                     in page-like documents only, where a one-word line is a link, not dialogue. A
                     long line merely mentioning the phrase ("cookie" in a recipe) is not cut; of a
                     long line only the short sentences closing it that hold an anywhere phrase or
                     a copyright notice are cut ("Copyright 2012 X. All rights reserved." after a
                     footer, "Read more" after a teaser): boilerplate is stuck on to the end of a
                     block, a phrase earlier in a paragraph is the writer's own.
  nav_list           (page-like) a line starting with a letter or digit, made of >=
                     nav_list_min_items items joined by menu separators (| • » › > and spaced / ·)
                     averaging <= nav_list_max_item_units: "首页|新闻|体育". Prose joins words with
                     spaces and commas; table rows ("| a | b |") and prompts (">>> x") start with the
                     separator and are kept.
  symbols            (page-like) a line mostly of symbols and punctuation (>= symbols_min_share):
                     separators, arrows, "« 1 2 3 »". Box-drawing characters count as content
                     (a diagram).
  nav_fragment       (page-like) a fragment in a run of >= fragment_min_run fragments, or a line of
                     <= list_max_units without a sentence end in a run of >= list_min_run such lines
                     (headline lists): menus, tag clouds, archives and link columns come as such
                     runs, article text as sentences. Kept: the heading_guard_lines lines right
                     before a prose line (a title, a heading, a byline), enumerated items ("1、",
                     "(2)", "第三章"), preformatted lines (indented, or columns aligned by runs of
                     spaces), code-like lines (assignments, braces, prompts, paths, snake_case), and
                     the article's own tables: runs of >= table_min_run lines between the document's
                     first and last prose line with no interface line in them or within
                     table_evidence_lines of them.

Outside page-like documents a copyright, breadcrumb or phrase line is cut only when it is a unit of
its own (whole_units): in hard-wrapped text a line between blank lines, or one that holds whole
sentences; a wrapped line of prose that happens to hold "terms and conditions" is kept.

Vectorised: the batch is split into lines once (Arrow split_pattern + list_parent_indices); every
feature is an Arrow kernel over all lines of the batch (regex counts and matches with
ignore_case), and runs, neighbours and page statistics are numpy over the flat line arrays. Python
touches only the few long lines that hold a phrase, to split them into sentences (pipeline.segment).
Measured on ../shared/webpages by bench/quality_webpages.py (bench/results/quality_linefilter.json).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.segment import sentences
from pipeline.spanpolicy import DEFAULT_CODE_LANGS
from pipeline.spans import cuts_table

LEVEL = "sentence"
COPYRIGHT, BREADCRUMB, PHRASE = "copyright", "breadcrumb", "boilerplate_phrase"
NAV_LIST, SYMBOLS, FRAGMENT = "nav_list", "symbols", "nav_fragment"
REASONS = (COPYRIGHT, BREADCRUMB, PHRASE, NAV_LIST, SYMBOLS, FRAGMENT)  # the order rules claim a line

CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
WORD = rf"[^\s{CJK}\p{{P}}\p{{S}}]+"  # a run of letters or digits of an alphabetic script

COPYRIGHT_EN = [r"©", r"\(c\)\s*(?:19|20)\d\d", r"copyright\s*(?:©|\(c\))?\s*(?:19|20)\d\d",
                r"(?:19|20)\d\d\s*(?:-\s*(?:19|20)?\d\d)?\s*copyright", r"all rights reserved"]
COPYRIGHT_ZH = [r"版权所有", r"版权归.{0,12}所有", r"保留(?:所有|一切)权利", r"ICP备", r"ICP证",
                r"未经.{0,10}(?:授权|许可).{0,10}(?:转载|复制)"]
BREADCRUMB_EN = [r"^you are here\b", r"^(?:home|homepage|main page)\s*(?:>|»|›|→|/|::)"]
BREADCRUMB_ZH = [r"^(?:您|你)(?:现在)?的?(?:当前)?位置", r"^当前位置", r"^(?:首页|主页|网站首页)\s*(?:>|»|›|→|/|::|＞|》)"]
PHRASES_ANYWHERE_EN = [
    r"\bclick here\b", r"\bread (?:the )?(?:full|rest|more)\b", r"\bcontinue reading\b", r"\bshare (?:this|on|via)\b",
    r"\b(?:like|follow|find|join) us on\b", r"\bsubscribe (?:to|now|for|via)\b", r"\bsign up (?:for|to)\b",
    r"\b(?:e-?mail|newsletter) (?:sign ?up|alerts?)\b", r"\b(?:this|our) (?:site|website) uses cookies\b",
    r"\bwe use cookies\b", r"\bcookie (?:policy|settings|preferences|consent)\b", r"\baccept (?:all )?cookies\b",
    r"\bprivacy policy\b", r"\bterms (?:of (?:use|service)|and conditions)\b", r"\bback to top\b",
    r"\bskip to (?:main )?(?:content|navigation)\b", r"\b(?:leave|post|add|write) a (?:comment|reply)\b",
    r"\bforgot (?:your )?password\b", r"\b(?:log|sign) in to\b",
    r"\be-?mail (?:this|to a friend)\b", r"\bprint (?:this|page)\b", r"\bjavascript (?:is )?(?:disabled|required)\b",
    r"\benable javascript\b", r"\bno comments yet\b", r"\bbookmark the permalink\b",
    r"\bnotify me of (?:new|follow-?up)\b", r"\byour comment (?:has|could|is|was|will)\b", r"\bpost another comment\b",
    r"\benter your (?:comment|e-?mail|name)\b", r"\bplease enter (?:a valid|your)\b", r"\brate this\b",
    r"\bcomments (?:to this entry )?are closed\b", r"\bdelivered to your inbox\b", r"\bjoin the conversation\b",
    r"\bad ?choices\b", r"(?:»|>>|›)\s*more\W*$",
]
PHRASES_ANYWHERE_ZH = [
    r"点击(?:这里|此处|进入|查看|阅读|下载|收听|播放)", r"分享到", r"返回顶部", r"回到顶部", r"返回首页", r"返回列表",
    r"责任编辑", r"关闭窗口", r"打印(?:本页|此页|本文|此文)", r"(?:推荐|发送)给(?:朋友|好友)", r"收藏(?:本文|本页|此页)",
    r"【\s*字号|字号\s*[:：]|字号\s*[大中小]", r"[【\[]\s*大\s*中\s*小\s*[】\]]", r"免责声明", r"设为首页", r"加入收藏",
    r"网站地图", r"友情链接",
    r"我要评论", r"网友评论", r"相关(?:文章|新闻|阅读|链接|报道|专题|推荐|搜索)", r"(?:热门|最新|推荐)(?:文章|新闻|阅读)",
    r"猜你喜欢", r"阅读全文", r"(?:本站|本网站?)使用\s*cookies?", r"订阅(?:本站|我们|邮件|新闻|RSS)", r"隐私(?:政策|条款|声明)",
    r"使用条款", r"联系我们", r"关于我们", r"意见反馈", r"忘记密码", r"我来说两句", r"我要说说", r"给编辑写信",
    r"经营许可证", r"验证码", r"(?:正在|努力)(?:读取|加载)", r"加载中", r"阅读排行", r"更多\s*(?:»|>>|\.{2,}|…)",
]
PHRASES_LINE_START_EN = [
    r"share(?:\s+(?:this|on|via|it|story|article|post|page)\b|\s*[:|])", r"tweet\b", r"subscribe\b",
    r"(?:log|sign) ?(?:in|out|up)\b", r"register\b", r"my account\b",
    r"(?:«\s*)?(?:previous|next|prev|older|newer) (?:post|article|story|page|entry|entries|posts|stories)\b",
    r"(?:related|recent|popular|recommended|featured|trending|more) "
    r"(?:posts?|articles?|stories|news|links|videos|content)\b",
    r"most (?:read|popular|viewed|emailed|e-mailed|commented|shared)\b", r"\d+\s+comments?\b", r"comments?\s*\(\d+\)",
    r"(?:posted|filed) (?:in|under)\b", r"tags?\s*:", r"categor(?:y|ies)\s*:", r"advertisement\b", r"sponsored\b",
    r"follow us\b", r"connect with us\b", r"contact us\b", r"about us\b", r"(?:see|view) (?:all|more)\b",
    r"re:", r"labels?\s*:", r"loading\b", r"(?:recent|latest|top) comments\b", r"copyright\b", r"powered by\b",
    r"rss\b", r"permalink\b", r"trackback\b", r"\d+\s+(?:votes?|likes?|replies)\b",
    r"\d+\s+(?:seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?)\s+ago\b",
]
PHRASES_LINE_START_ZH = [
    r"订阅", r"(?:登录|登陆|注册|退出|注销)", r"上一(?:篇|页|条|章)", r"下一(?:篇|页|条|章)", r"广告(?:\s|$|[:：|]|服务|合作|招商)",
    r"标签\s*[:：]", r"分类\s*[:：]", r"来源\s*[:：]", r"更多", r"往期", r"热点(?:新闻|推荐|专题|排行)",
    r"热门(?:文章|新闻|推荐|话题|标签|排行)", r"精彩(?:推荐|图片|专题|视频)", r"网友(?:评论|留言|回复|\s*[:：])",
    r"扫描?二维码", r"(?:关注|加入)我们",
    r"(?:发表|查看)评论", r"回复\s*[:：]", r"(?:用户|发表人|网友)\s*[:：]", r"相关(?:内容|信息|评论)",
]
NAV_WORDS_EN = [
    "home", "homepage", "next", "previous", "prev", "back", "more", "menu", "search", "top", "contact", "about",
    "sitemap", "site map", "archives?", "categories", "tags", "reply", "comments?", "share", "email", "e-mail", "print",
    "login", "log in", "logout", "log out", "sign in", "sign out", "sign up", "register", "subscribe", "rss", "help",
    "faq", "news", "blog", "blogs", "video", "videos", "photos", "sports", "business", "opinion", "careers", "jobs",
    "advertise", "newer posts?", "older posts?", "newer entries", "older entries", "read more", "more news",
    "related", "recent posts", "popular posts", "follow", "like", "tweet", "facebook", "twitter", "google\\+",
    "linkedin", "pinterest", "digg", "reddit", "stumbleupon", "delicious", "close", "cancel", "submit", "go",
    "name", "website", "featured", "disclaimer", "labels", "delete", "replydelete", "edit", "report", "loading",
]
NAV_WORDS_ZH = [
    "首页", "主页", "上一页", "下一页", "上一篇", "下一篇", "返回", "更多", "搜索", "登录", "注册", "帮助", "导航", "新闻", "评论",
    "打印", "关闭", "收藏", "分享", "推荐", "订阅", "留言", "论坛", "博客", "视频", "图片", "社区", "频道", "专题", "排行",
]
SENTENCE_END = r"[.!?。！？…]['\"”’」』)）\]]*$"
# An enumerated item ("1、", "(2)", "3.", "一、", "第三章"): a list or table of the document's own.
ENUMERATION = (r"^\s*(?:[\d０-９]{1,3}\s*[、.．)）]|[（(]\s*[\d０-９]{1,3}\s*[)）]|[一二三四五六七八九十]{1,3}\s*[、.．]"
               r"|第[一二三四五六七八九十百\d]+[章节条部篇回])")
# A line of code, a command, a config entry or a path: an assignment, sigils and braces, a shell
# prompt, a path of several directories, a snake_case name.
CODE_LINE = r"[={};\\]|\$[A-Za-z{(]|^[#$%>]\s|[A-Za-z_.~-]/[A-Za-z_.-]+/|[a-z]_[a-z]"
LEAD = r"^[^\p{L}\p{N}]*"  # bullets, arrows and brackets before a line's first word
NAV_SEPARATOR = r"\s*(?:[|｜│•»›>＞]+)\s*|\s+[/·]\s+"


@dataclass
class LineRules:
    """Every threshold and phrase list of the filter (regex fragments, RE2 syntax, matched
    case-insensitively against the whitespace-trimmed line)."""
    code_langs: list = field(default_factory=lambda: list(DEFAULT_CODE_LANGS))
    cjk_chars_per_word: float = 1.5
    sentence_end: str = SENTENCE_END
    enumeration: str = ENUMERATION
    code_line: str = CODE_LINE
    copyright: list = field(default_factory=lambda: COPYRIGHT_EN + COPYRIGHT_ZH)
    copyright_max_units: float = 40
    breadcrumb: list = field(default_factory=lambda: BREADCRUMB_EN + BREADCRUMB_ZH)
    breadcrumb_max_units: float = 30
    phrases_anywhere: list = field(default_factory=lambda: PHRASES_ANYWHERE_EN + PHRASES_ANYWHERE_ZH)
    phrases_line_start: list = field(default_factory=lambda: PHRASES_LINE_START_EN + PHRASES_LINE_START_ZH)
    nav_words: list = field(default_factory=lambda: NAV_WORDS_EN + NAV_WORDS_ZH)
    phrase_max_units: float = 12
    cut_sentences: bool = True  # cut a phrase's own short sentence out of a long line
    nav_separator: str = NAV_SEPARATOR
    nav_list_min_items: int = 3
    nav_list_max_item_units: float = 4
    symbols_min_share: float = 0.5
    fragment_max_units: float = 8
    fragment_min_run: int = 3
    list_max_units: float = 20
    list_min_run: int = 4
    heading_guard_lines: int = 1
    table_min_run: int = 15
    table_evidence_lines: int = 3
    prose_min_units: float = 12
    page_min_lines: int = 8
    page_min_fragment_share: float = 0.3
    page_min_prose_lines: int = 1
    page_min_paragraph_units: float = 30
    wrapped_min_share: float = 0.3  # of lines running on into a lower-case next line: hard-wrapped text
    page_min_interface_lines: int = 1


@dataclass
class Lines:
    """The non-blank lines of a batch, flat: their text, document (row of the batch) and character
    range in the document, newline included."""
    text: pa.Array
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray


@dataclass
class LineScan:
    """boilerplate_scan's answer: the cuts, and per document of the batch its non-blank lines, the
    candidate lines cut and whether it looked like a web page."""
    cuts: pa.Table
    lines: np.ndarray
    candidates: np.ndarray
    page_like: np.ndarray


def _alternation(patterns: list, prefix: str = "", suffix: str = "") -> str:
    """One RE2 pattern matching any of `patterns` (none: a pattern that never matches)."""
    if not patterns:
        return r"[^\s\S]"
    return prefix + "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")" + suffix


def split_lines(texts: pa.Array) -> Lines:
    """Every non-blank line of every text, with its [start, end) in characters (the end past the
    newline, except on a last line without one)."""
    texts = pc.fill_null(texts, "")
    parts = pc.split_pattern(texts, "\n")
    flat = pc.list_flatten(parts)
    doc = pc.list_parent_indices(parts).to_numpy().astype(np.int64)
    length = pc.utf8_length(flat).to_numpy().astype(np.int64)
    offsets = parts.offsets.to_numpy()[:-1].astype(np.int64)
    step = np.cumsum(length + 1) - (length + 1)  # start of each line in its batch-wide concatenation
    start = step - step[offsets[doc]]
    doc_len = pc.utf8_length(texts).to_numpy().astype(np.int64)
    end = np.minimum(start + length + 1, doc_len[doc])
    keep = pc.utf8_length(pc.utf8_trim_whitespace(flat)).to_numpy() > 0
    return Lines(flat.filter(pa.array(keep)), doc[keep], start[keep], end[keep])


def line_features(raw: pa.Array, rules: LineRules) -> dict:
    """Per line (or sentence): its size in units, whether it ends a sentence, and which
    rule patterns it matches (numpy arrays over the whole batch)."""
    text = pc.utf8_trim_whitespace(raw)
    count = lambda pattern: pc.count_substring_regex(text, pattern).to_numpy().astype(np.float64)
    match = lambda pattern: pc.match_substring_regex(text, pattern, ignore_case=True).to_numpy(zero_copy_only=False)
    chars = pc.utf8_length(text).to_numpy().astype(np.float64)
    # characters of a class = all characters less those left once its runs are removed (one regex
    # match per run, not per character: several times faster than counting single characters)
    outside = lambda cls: pc.utf8_length(pc.replace_substring_regex(text, cls + "+", "")).to_numpy().astype(np.float64)
    units = count(WORD) + (chars - outside(f"[{CJK}]")) / rules.cjk_chars_per_word
    content_chars = chars - outside(r"[\p{L}\p{N}\s\x{2500}-\x{257F}]")  # box drawing is a diagram: content
    return {
        "units": units,
        "ends": match(rules.sentence_end),
        "symbol_share": (chars - content_chars) / np.maximum(chars, 1),
        "enumeration": match(rules.enumeration),
        # indented, or columns aligned with runs of spaces: preformatted text (code, a table, output)
        "preformatted": pc.match_substring_regex(raw, r"^(?: {2,}|\t)|\S(?: {3,}|\t)\S").to_numpy(zero_copy_only=False),
        "starts_item": match(r"^[\p{L}\p{N}]"),
        "code_line": match(rules.code_line),
        "lower_start": pc.match_substring_regex(text, r"^\p{Ll}").to_numpy(zero_copy_only=False),
        "separators": count(rules.nav_separator),
        COPYRIGHT: match(_alternation(rules.copyright)) & (units <= rules.copyright_max_units),
        BREADCRUMB: match(_alternation(rules.breadcrumb, "^")) & (units <= rules.breadcrumb_max_units),
        "anywhere": match(_alternation(rules.phrases_anywhere)) & (units <= rules.phrase_max_units),
        "line_start": match(_alternation(rules.phrases_line_start, LEAD)) & (units <= rules.phrase_max_units),
        "nav_word": match(_alternation(rules.nav_words, LEAD, r"[^\p{L}\p{N}]*$")),
    }


def _run_ids(flag: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """For each line, the number of the run of equal `flag` values (inside one document) it is in."""
    brk = np.ones(len(flag), dtype=bool)
    brk[1:] = (flag[1:] != flag[:-1]) | (doc[1:] != doc[:-1])
    return np.cumsum(brk) - 1


def _runs(flag: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """For each line, the length of the run of equal `flag` values (inside one document) it is in."""
    ids = _run_ids(flag, doc)
    return np.bincount(ids)[ids] if len(ids) else np.zeros(0, np.int64)


def _near(mask: np.ndarray, doc: np.ndarray, steps, barrier: np.ndarray | None = None) -> np.ndarray:
    """Whether the line `step` lines away (for any of `steps`, in the same document, with no
    `barrier` line strictly between the two) is in mask."""
    n = len(mask)
    walls = np.concatenate([[0], np.cumsum(barrier if barrier is not None else np.zeros(n, bool))])
    out = np.zeros(n, dtype=bool)
    for step in steps:
        if step == 0:
            out |= mask
            continue
        k = abs(step)
        if k >= n:
            continue
        lo, hi = np.arange(n - k), np.arange(k, n)  # pairs of lines k apart
        ok = (doc[lo] == doc[hi]) & (walls[hi] - walls[lo + 1] == 0)
        if step > 0:
            out[lo] |= mask[hi] & ok
        else:
            out[hi] |= mask[lo] & ok
    return out


def _inside_body(prose: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """Lines after the first and before the last prose line of their document."""
    idx = np.arange(len(doc))
    n_docs = int(doc.max()) + 1 if len(doc) else 0
    first = np.full(n_docs, len(doc))
    last = np.full(n_docs, -1)
    np.minimum.at(first, doc[prose], idx[prose])
    np.maximum.at(last, doc[prose], idx[prose])
    return (idx > first[doc]) & (idx < last[doc])


def _article_tables(f: dict, doc: np.ndarray, listy: np.ndarray, prose: np.ndarray, rules: LineRules) -> np.ndarray:
    """Long runs of short lines inside the article body with no interface text in them or within
    table_evidence_lines of them (not across a prose line): a table or a list of the article's
    own, not a menu."""
    ids = _run_ids(listy, doc)
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    interface = _interface(f, rules) | f["nav_word"] | (f["symbol_share"] >= rules.symbols_min_share)
    near = _near(interface, doc, range(-rules.table_evidence_lines, rules.table_evidence_lines + 1), barrier=prose)
    no_interface = np.bincount(ids, weights=near)[ids] == 0
    return listy & (np.bincount(ids)[ids] >= rules.table_min_run) & no_interface & _inside_body(prose, doc)


def _wrap_joins(f: dict, doc: np.ndarray) -> np.ndarray:
    """Lines that continue a sentence onto the next line: no sentence end, and the next line
    starts with a lower-case letter (hard-wrapped text of an alphabetic script)."""
    joins = np.zeros(len(doc), dtype=bool)
    joins[:-1] = ~f["ends"][:-1] & f["lower_start"][1:] & (doc[1:] == doc[:-1])
    return joins


def _fragments(f: dict, doc: np.ndarray, page: np.ndarray, rules: LineRules) -> np.ndarray:
    """nav_fragment: short lines in runs of short lines (and headline-sized lines in long runs), in
    page-like documents, except enumerated items, preformatted or code lines, the heading lines
    right before prose, and the article's own tables."""
    short = (f["units"] <= rules.fragment_max_units) & ~f["ends"]
    listy = (f["units"] <= rules.list_max_units) & ~f["ends"]
    in_run = ((short & (_runs(short, doc) >= rules.fragment_min_run))
              | (listy & (_runs(listy, doc) >= rules.list_min_run)))
    prose = (f["units"] >= rules.prose_min_units) & f["ends"]
    heading = _near(prose, doc, range(1, rules.heading_guard_lines + 1))
    kept = (f["enumeration"] | f["preformatted"] | f["code_line"] | heading
            | _article_tables(f, doc, listy, prose, rules))
    return in_run & page & ~kept


def _nav_list(f: dict, rules: LineRules) -> np.ndarray:
    """Lines of >= nav_list_min_items short items joined by menu separators."""
    items = f["separators"] + 1
    return (f["starts_item"] & ~f["ends"] & (items >= rules.nav_list_min_items)
            & (f["units"] <= rules.nav_list_max_item_units * items))


def _interface(f: dict, rules: LineRules) -> np.ndarray:
    """Lines that look like interface text (a menu, a footer, a button), the evidence that a
    document is a web page and not a poem or a table."""
    return f[COPYRIGHT] | f[BREADCRUMB] | f["anywhere"] | f["line_start"] | _nav_list(f, rules)


def page_like(f: dict, doc: np.ndarray, n_docs: int, rules: LineRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document: (non-blank lines, whether it looks like a web page: prose, many short lines
    and some interface text; whether it is hard-wrapped text)."""
    count = lambda flags: np.bincount(doc, weights=flags, minlength=n_docs)
    lines = np.bincount(doc, minlength=n_docs)
    short = count((f["units"] <= rules.fragment_max_units) & ~f["ends"])
    prose = count((f["units"] >= rules.prose_min_units) & f["ends"])
    paragraph = count(f["units"] >= rules.page_min_paragraph_units)  # none in hard-wrapped text
    wrapped = count(_wrap_joins(f, doc)) >= rules.wrapped_min_share * np.maximum(lines, 1)
    page = ((lines >= rules.page_min_lines) & (short >= rules.page_min_fragment_share * np.maximum(lines, 1))
            & (prose >= rules.page_min_prose_lines) & (paragraph >= 1) & ~wrapped
            & (count(_interface(f, rules)) >= rules.page_min_interface_lines))
    return lines, page, wrapped


def whole_units(f: dict, lines: Lines, wrapped_doc: np.ndarray) -> np.ndarray:
    """Lines that are a unit of their own: any line of a text that is not hard-wrapped, and in
    hard-wrapped text a line that stands between blank lines or holds whole sentences (the line
    before it ends a sentence, and so does it)."""
    n = len(lines.doc)
    first = np.ones(n, dtype=bool)
    first[1:] = lines.doc[1:] != lines.doc[:-1]
    gap_before = first.copy()
    gap_before[1:] |= lines.start[1:] > lines.end[:-1]  # a blank line in between
    gap_after = np.ones(n, dtype=bool)
    gap_after[:-1] = gap_before[1:]
    opens = gap_before.copy()
    opens[1:] |= f["ends"][:-1] & ~first[1:]
    return ~wrapped_doc[lines.doc] | (gap_before & gap_after) | (opens & (f["ends"] | gap_after))


def line_reasons(f: dict, doc: np.ndarray, page_doc: np.ndarray, whole: np.ndarray, rules: LineRules) -> np.ndarray:
    """The reason each line is cut for ("" = kept): the first rule, in REASONS order, that claims it.
    Outside page-like documents a copyright, breadcrumb or phrase line is cut only when it is a
    unit of its own (whole_units): a line of hard-wrapped prose that happens to hold "terms and
    conditions" is kept."""
    page = page_doc[doc]
    whole = whole | page
    phrase = (f["anywhere"] & whole) | (page & (f["line_start"] | f["nav_word"]))
    symbols = page & (f["symbol_share"] >= rules.symbols_min_share)
    fragment = _fragments(f, doc, page, rules)
    return np.select([f[COPYRIGHT] & whole, f[BREADCRUMB] & whole, phrase, page & _nav_list(f, rules), symbols,
                      fragment], list(REASONS), "")


def _sentence_cuts(texts: pa.Array, lines: Lines, long_hits: np.ndarray, rules: LineRules) -> tuple:
    """(doc, start, end, reason) of the short sentences closing a long line that a phrase or
    copyright rule claims ("Copyright 2012 X. All rights reserved." after a footer paragraph, "Read
    more" after a teaser): boilerplate is stuck on to the end of a block, so the cut takes the run
    of claimed sentences at the line's end and stops at the first sentence of the writer's own; a
    phrase earlier in a paragraph stays. Python runs only over the few long lines holding a phrase."""
    where = np.flatnonzero(long_hits)
    docs, starts, ends, pieces, from_end = [], [], [], [], []
    cached = (None, None)
    for k in where.tolist():
        d = int(lines.doc[k])
        text = cached[1] if cached[0] == d else texts[d].as_py()
        cached = (d, text)
        spans = sentences(text, int(lines.start[k]), int(lines.end[k]))
        for i, (s, e) in enumerate(spans):
            docs.append(d), starts.append(s), ends.append(e), pieces.append(text[s:e])
            from_end.append(len(spans) - 1 - i)
    if not pieces:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, str),)
    f = line_features(pa.array(pieces, pa.string()), rules)
    reason = np.select([f[COPYRIGHT], f["anywhere"]], [COPYRIGHT, PHRASE], "")
    claimed = (reason != "") & (f["units"] <= rules.phrase_max_units)
    # a sentence goes when it and every sentence after it on its line are claimed: no unclaimed
    # sentence from it to its line's last one (suffix sums of the unclaimed, per line)
    suffix = np.concatenate([np.cumsum((~claimed)[::-1])[::-1], [0]])
    idx = np.arange(len(claimed))
    hit = suffix[idx] - suffix[idx + np.array(from_end) + 1] == 0
    return np.array(docs, np.int64)[hit], np.array(starts, np.int64)[hit], np.array(ends, np.int64)[hit], reason[hit]


def _string_array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else pa.array(values, pa.string())


def boilerplate_scan(texts, langs, doc_pos: np.ndarray, rules: LineRules | None = None) -> LineScan:
    """The cuts of a batch and its per-document line counts (see the module docstring)."""
    rules = rules or LineRules()
    texts, langs = _string_array(texts), _string_array(langs)
    n_docs = len(texts)
    code = pc.fill_null(pc.is_in(pc.utf8_lower(langs), value_set=pa.array(rules.code_langs, pa.string())), False)
    prose_doc = ~code.to_numpy(zero_copy_only=False).astype(bool)
    lines = split_lines(texts)
    f = line_features(lines.text, rules)
    n_lines, page, wrapped = page_like(f, lines.doc, n_docs, rules)
    whole = whole_units(f, lines, wrapped) & prose_doc[lines.doc]
    reason = line_reasons(f, lines.doc, page, whole, rules)
    reason[~prose_doc[lines.doc]] = ""
    cut = reason != ""
    docs, starts, ends, reasons = lines.doc[cut], lines.start[cut], lines.end[cut], reason[cut]
    if rules.cut_sentences:
        phrase = pc.match_substring_regex(pc.utf8_trim_whitespace(lines.text), _long_line_pattern(rules),
                                          ignore_case=True).to_numpy(zero_copy_only=False)
        long_hits = ~cut & (whole | page[lines.doc]) & (f["units"] > rules.phrase_max_units) & phrase
        more = _sentence_cuts(texts, lines, long_hits, rules)
        docs, starts, ends, reasons = (np.concatenate([a, b]) for a, b in zip((docs, starts, ends, reasons), more))
    order = np.lexsort((starts, docs))
    doc_pos = np.asarray(doc_pos, dtype=np.int64)
    cuts = cuts_table(doc_pos[docs[order]], starts[order], ends[order], LEVEL, reasons[order].tolist())
    return LineScan(cuts, n_lines, np.bincount(docs, minlength=n_docs), page)


def _long_line_pattern(rules: LineRules) -> str:
    return _alternation(rules.copyright + rules.phrases_anywhere)


def boilerplate_cuts(texts, langs, doc_pos: np.ndarray, rules: LineRules | None = None) -> pa.Table:
    """The boilerplate spans of a batch of documents, in pipeline.spans.CUT_SCHEMA (level
    "sentence", reason = the rule), sorted by (doc_pos, start); none in code documents."""
    return boilerplate_scan(texts, langs, doc_pos, rules).cuts
