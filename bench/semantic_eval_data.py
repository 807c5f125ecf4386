"""Labelled near-duplicate sets for semantic (dense-embedding) dedup: real text from
../shared/corpora (see its README.md), with seeded paraphrase-like variants and same-topic hard
negatives, at three levels (documents, paragraphs, sentences) for en and zh.

`build(corpora, seed)` -> list of units, each
    {"uid", "lang", "level", "group", "text", "kind": "source"|"variant"|"negative",
     "origin": "<file>:<doc id>", "ops": [...]}   (origin/ops are for inspection only)
in a seeded shuffled order, uids in that order (uid order = corpus order). Units sharing `group` are
duplicates (a source and its 1-2 variants); any two units of different groups are not.

How a set is made, per language, from five files each (en: brown, state_of_the_union,
docs_python311, docs_debian, email ham; zh: news_peoples_daily, wiki_drcd_traditional (kept
Traditional), docs_debian (Simplified pages only: the zh-TW pages are translations of them),
manpages, libreoffice help zh-CN):

- every original document becomes a list of prose blocks: paragraphs cleaned of markup, code,
  quotes and navigation (State of the Union has no paragraph breaks: runs of 3-6 sentences
  stand in for paragraphs); Chinese line-wrapping whitespace is removed;
- documents: an excerpt of consecutive blocks, 300-3000 chars (one per original document);
  paragraphs: single blocks of 100-1000 chars; sentences: 30-300 chars;
- per file 30 sources (documents: 24; each from a different original document) with 1 or 2
  variants, and 80 (documents: 64) hard negatives: units of the same file (other addresses, articles, man pages, mails; for
  paragraphs and sentences one of them from the source's own document), so negatives are on
  the same topic and at least as many as the duplicate units;
- variants (ops recorded in `ops`): documents and paragraphs get 2-4 of: sentences reordered
  (a few swaps), 10-20% of sentences dropped, a sentence duplicated, a header/footer
  boilerplate line, a date/number or a name/place changed (paragraphs also: a word changed);
  sentences get 1-2 of: a word changed, punctuation changed, a clause added or dropped, a
  number/date/name changed;
- label noise guard: a unit is accepted only if its character 5-gram containment with every
  accepted unit of another group is < 0.3 (after lower-casing, t2s folding and removing
  punctuation), so natural near-duplicates inside the corpora (quoted mails, boilerplate
  paragraphs, formulaic sentences) do not end up as "non-duplicates".

python bench/semantic_eval_data.py [--seed 0] [--out /tmp/semantic_eval_data.jsonl]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
if not CORPORA.is_dir():
    CORPORA = Path("/work/shared/corpora")

LANGS = ("en", "zh")
LEVELS = ("documents", "paragraphs", "sentences")
FILES = {
    "en": ("en_brown_corpus", "en_state_of_the_union", "en_docs_python311", "en_docs_debian",
           "en_email_spamassassin"),
    "zh": ("zh_news_peoples_daily_1998", "zh_wiki_drcd_traditional", "zh_docs_debian", "zh_manpages",
           "zhen_libreoffice_help"),
}
# per file; documents fewer, to keep the e5 embedding time of a calibration run in budget
SOURCES_PER_FILE = {"documents": 24, "paragraphs": 30, "sentences": 30}
NEGATIVES_PER_FILE = {"documents": 64, "paragraphs": 80, "sentences": 80}
LENGTHS = {"documents": (300, 3000), "paragraphs": (100, 1000), "sentences": (30, 300)}
CONTAINMENT_MAX = 0.3

CJK = "\u4e00-\u9fff\u3400-\u4dbf"
_CJK_RE = re.compile(f"[{CJK}]")


def sub_rng(seed: int, *parts) -> random.Random:
    h = hashlib.sha256(("|".join(map(str, (seed,) + parts))).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "little"))


# ---------------------------------------------------------------- reading and cleaning

def read_file(name: str, corpora: Path = CORPORA) -> list[dict]:
    with gzip.open(corpora / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def join_lines_zh(p: str) -> str:
    p = re.sub(r"[ \t]*\n[ \t]*", "\n", p.strip())
    p = re.sub(f"(?<=[{CJK}，。、；：！？）」』”])\\s+(?=[{CJK}，。、；：！？（「『“])", "", p)
    return re.sub(r"\s+", " ", p)


def join_lines_en(p: str) -> str:
    return re.sub(r"\s+", " ", p.strip())


_SYM = set("{}[]<>=_*`|\\/#$@%^~")


def prose_en(p: str) -> bool:
    if len(p) < 40:
        return False
    words = p.split()
    if len(words) < 7:
        return False
    letters = sum(c.isalpha() for c in p)
    if letters / len(p) < 0.72 or sum(c in _SYM for c in p) / len(p) > 0.02:
        return False
    if not re.search(r"[.!?][\"')]?$", p) or re.search(r"https?://|www\.|@\w+\.", p):
        return False
    return 3.0 <= letters / len(words) <= 9.0


def prose_zh(p: str) -> bool:
    if len(p) < 20:
        return False
    nonspace = re.sub(r"\s", "", p)
    cjk = len(_CJK_RE.findall(nonspace))
    if cjk / max(len(nonspace), 1) < 0.55 or sum(c in _SYM for c in p) / len(p) > 0.03:
        return False
    return bool(re.search("[。！？]", p))


def rst_clean(p: str) -> str:
    p = re.sub(r":[a-zA-Z:]+:`~?([^`<]*?)\s*(<[^>]*>)?`", r"\1", p)  # :func:`x` -> x
    p = re.sub(r"``([^`]*)``", r"\1", p)
    p = re.sub(r"`([^`<]*?)\s*(<[^>]*>)?`_*", r"\1", p)
    p = re.sub(r"\*\*([^*]+)\*\*|\*([^*]+)\*", lambda m: m.group(1) or m.group(2), p)
    return re.sub(r"::$", ":", p)


def blocks_of(fname: str, doc: dict, seed: int) -> list[str]:
    """The prose paragraphs of one original document, in order."""
    text = doc["text"]
    if fname == "en_state_of_the_union":
        sents = split_sentences(join_lines_en(text), "en")
        rng, out, i = sub_rng(seed, "sotu", doc["id"]), [], 0
        while i < len(sents):
            n = rng.randint(3, 6)
            out.append(" ".join(sents[i:i + n]))
            i += n
        return [b for b in out if prose_en(b)]
    if fname == "en_email_spamassassin":
        lines = []
        for ln in text.split("\n")[1:]:  # the Subject: line dropped
            s = ln.strip()
            if s in ("--", "-- ") or s.startswith("_____") or s.startswith("-----Original") \
                    or re.match(r"^-+\s*(Forwarded|Original)", s):
                break
            if s.startswith(">") or re.search(r"wrote:$|writes:$", s):
                continue
            lines.append(ln)
        text = "\n".join(lines)
    paras = re.split(r"\n\s*\n", text)
    lang = "zh" if fname.startswith("zh") else "en"
    out = []
    for p in paras:
        if fname == "en_docs_python311":
            if re.match(r"\s*(\.\.|>>>|\$ |[=\-~^*#]{3,})", p) or re.search(r"\n\s*[=\-~^]{3,}\s*$", p):
                continue
            p = rst_clean(p)
        if fname in ("en_docs_debian", "zh_docs_debian") and re.match(r"\s*[#$] ", p):
            continue
        p = join_lines_zh(p) if lang == "zh" else join_lines_en(p)
        if (prose_zh if lang == "zh" else prose_en)(p):
            out.append(p)
    return out


def file_docs(fname: str, corpora: Path, seed: int) -> list[tuple[str, list[str]]]:
    """(doc id, prose blocks) of a file's usable original documents."""
    out = []
    for d in read_file(fname, corpora):
        if fname == "en_email_spamassassin" and d.get("label") != "ham":
            continue
        if fname == "zh_docs_debian" and d.get("variant") != "hans":
            continue
        if fname == "zhen_libreoffice_help" and d.get("lang") != "zh":
            continue
        b = blocks_of(fname, d, seed)
        if b:
            out.append((d["id"], b))
    return out


# ---------------------------------------------------------------- sentences

_ABBR = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Gov|Sen|Rep|Co|Inc|Ltd|vs|etc|No|Nos|Vol|Fig|"
                   r"U\.S|e\.g|i\.e|cf|al|approx|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)|\b[A-Z])\.$")


def split_sentences(text: str, lang: str) -> list[str]:
    if lang == "zh":
        parts = [p for p in re.split(r"(?<=[。！？][”」』）])|(?<=[。！？；])(?![”」』）])", text) if p.strip()]
        return [p.strip() for p in parts if p.strip()]
    pieces = re.split(r"(?:(?<=[.!?])|(?<=[.!?][\"')]))\s+(?=[\"'(]?[A-Z0-9])", text)
    out: list[str] = []
    for p in pieces:
        if out and _ABBR.search(out[-1]):
            out[-1] += " " + p
        else:
            out.append(p)
    return [p.strip() for p in out if p.strip()]


def join_sentences(sents: list[str], lang: str) -> str:
    return ("" if lang == "zh" else " ").join(sents)


# ---------------------------------------------------------------- edit operations

EN_FIRST = ["James", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "Thomas", "Nancy"]
EN_LAST = ["Johnson", "Miller", "Harris", "Walker", "Turner", "Collins", "Morgan", "Bennett", "Foster", "Hayes"]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
             "October", "November", "December"]
EN_SYN = {
    "important": "significant", "large": "big", "small": "little", "show": "demonstrate", "use": "employ",
    "used": "employed", "begin": "start", "began": "started", "help": "assist", "need": "require",
    "needs": "requires", "country": "nation", "people": "citizens", "new": "novel", "many": "numerous",
    "often": "frequently", "quickly": "rapidly", "problem": "issue", "problems": "issues",
    "believe": "think", "however": "nevertheless", "also": "additionally", "good": "fine",
    "great": "considerable", "government": "administration", "create": "make", "creates": "makes",
    "provide": "supply", "provides": "supplies", "example": "instance", "file": "document",
    "files": "documents", "system": "platform", "must": "should", "can": "may", "will": "shall",
    "because": "since", "about": "roughly", "increase": "rise", "work": "labor", "said": "stated",
}
ZH_SYN = {
    "重要": "关键", "发展": "进步", "我们": "大家", "今天": "昨天", "进行": "开展", "表示": "指出",
    "已经": "早已", "非常": "十分", "可以": "能够", "使用": "采用", "文件": "档案", "系统": "体系",
    "问题": "难题", "工作": "事务", "提高": "提升", "目前": "当前", "认为": "觉得", "同时": "此外",
    "主要": "首要", "国家": "国度", "建设": "建立", "增加": "增长", "需要": "须要", "如果": "假如",
    "因为": "由于", "但是": "然而", "所以": "因此", "程序": "软件", "命令": "指令", "选项": "参数",
    "網球": "庭球", "使用者": "用户", "軟體": "软体", "可以": "能夠", "經濟": "經貿", "發展": "進步",
}
EN_ADVERBS = ["very", "also", "just", "only", "really", "quite", "still", "even", "already", "usually", "often"]
ZH_ADVERBS = ["非常", "十分", "已经", "正在", "一直", "特别", "很", "也", "都", "还"]
ZH_NAMES_FOUND = ["李鹏", "江泽民", "朱镕基", "乔石", "李瑞环", "胡锦涛", "邓小平", "毛泽东", "钱其琛", "吴邦国"]
ZH_NAMES_NEW = ["王明", "张伟", "刘洋", "陈静", "杨帆", "赵磊"]
ZH_PLACES_FOUND = ["北京", "上海", "天津", "广州", "深圳", "南京", "武汉", "香港", "臺北", "台北", "美国", "美國",
                   "日本", "英国", "英國", "德国", "德國", "法国", "法國"]
ZH_PLACES_NEW = ["杭州", "成都", "西安", "重庆", "昆明", "青岛"]
ZH_DIGITS = ("0123456789", "０１２３４５６７８９", "〇一二三四五六七八九")


def en_date(rng: random.Random) -> str:
    return f"{rng.choice(EN_MONTHS)} {rng.randint(1, 28)}, {rng.randint(1995, 2023)}"


def zh_date(rng: random.Random) -> str:
    return f"{rng.randint(1995, 2023)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"


def boiler_doc(lang: str, rng: random.Random, hant: bool) -> tuple[str, str]:
    """A header or footer line for a document: (line, 'header'|'footer')."""
    if lang == "en":
        name = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
        opts = [(f"Posted on {rng.randint(2010, 2023)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} by admin", "header"),
                (f"Originally published {en_date(rng)}. Last updated by {name}.", "header"),
                (f"From: {name} <{name.split()[0].lower()}@example.com>", "header"),
                ("Share this: Facebook | Twitter | Email | Print", "footer"),
                (f"Copyright (c) {rng.randint(2001, 2023)} {name}. All rights reserved.", "footer"),
                ("Click here to subscribe to our newsletter and never miss an update.", "footer"),
                (f"Filed under: {rng.choice(['Politics', 'Technology', 'News', 'Documentation', 'Archive'])}", "footer")]
    else:
        name = rng.choice(ZH_NAMES_NEW)
        opts = [(f"本文来源：新华网 {zh_date(rng)}", "header"),
                (f"发布时间：{zh_date(rng)}  作者：{name}", "header"),
                (f"（本报记者 {name}）", "header"),
                (f"责任编辑：{name}", "footer"),
                (f"版权所有 © {rng.randint(2001, 2023)} 转载请注明出处", "footer"),
                ("点击关注我们的公众号，获取更多精彩资讯。", "footer"),
                ("更多精彩内容，请访问本站首页。", "footer")]
    line, where = rng.choice(opts)
    return (to_hant(line) if hant else line), where


def boiler_par(lang: str, rng: random.Random, hant: bool) -> tuple[str, str]:
    if lang == "en":
        opts = [("Update: ", "prefix"), ("Editor's note: ", "prefix"), ("(AP) - ", "prefix"),
                (" Read more at example.com.", "suffix"), (f" (Posted {en_date(rng)}.)", "suffix")]
    else:
        opts = [("据新华社报道，", "prefix"), ("【编者按】", "prefix"), (f"（记者 {rng.choice(ZH_NAMES_NEW)}）", "suffix"),
                ("（来源：人民网）", "suffix"), (f"（{zh_date(rng)}）", "suffix")]
    s, where = rng.choice(opts)
    return (to_hant(s) if hant else s), where


_S2T = None


def to_hant(s: str) -> str:
    global _S2T
    if _S2T is None:
        import opencc
        _S2T = opencc.OpenCC("s2t")
    return _S2T.convert(s)


def change_entity(text: str, lang: str, rng: random.Random, common: frozenset = frozenset()) -> tuple[str, str]:
    """Change one date, number or name (every occurrence of it). Returns (text, op name)."""
    choices = []
    if lang == "en":
        years = sorted(set(re.findall(r"\b(1[6-9]\d\d|20[0-2]\d)\b", text)))
        if years:
            choices.append("year")
        months = sorted({m for m in EN_MONTHS if re.search(rf"\b{m}\b", text)} - {"May"})
        if months:
            choices.append("month")
        nums = sorted(set(re.findall(r"(?<![\w.])\d{1,3}(?![\w.])", text)))
        if nums:
            choices.append("number")
        names = sorted(w for w in set(re.findall(r"(?<=[a-z,;] )[A-Z][a-z]{3,}\b", text))
                       if w.lower() not in common and w not in EN_MONTHS)  # a name, not a capitalised word
        if names:
            choices.append("name")
        if not choices:
            return text, ""
        kind = rng.choice(choices)
        if kind == "year":
            y = rng.choice(years)
            return re.sub(rf"\b{y}\b", str(int(y) + rng.choice([-1, 1]) * rng.randint(1, 30)), text), "year"
        if kind == "month":
            m = rng.choice(months)
            return re.sub(rf"\b{m}\b", rng.choice([x for x in EN_MONTHS if x != m]), text), "month"
        if kind == "number":
            n = rng.choice(nums)
            new = str(int(n) + rng.randint(1, 9)) if rng.random() < 0.5 or int(n) < 10 else str(int(n) * 2)
            return re.sub(rf"(?<![\w.]){n}(?![\w.])", new, text), "number"
        nm = rng.choice(names)
        return re.sub(rf"\b{nm}\b", rng.choice([x for x in EN_LAST + EN_FIRST if x != nm]), text), "name"
    hant = bool(re.search("[們這個說對於與國會]", text))
    for found, new, kind in ((ZH_NAMES_FOUND, ZH_NAMES_NEW, "name"), (ZH_PLACES_FOUND, ZH_PLACES_NEW, "place")):
        present = [w for w in found if w in text]
        if present:
            choices.append((kind, present, new))
    digit_spots = [m for m in re.finditer(r"[0-9０-９〇一二三四五六七八九十]+(?=[年月日号號点點时時%％万萬亿億个個名位次项項])", text)]
    if digit_spots:
        choices.append(("date", digit_spots, None))
    any_digits = [m for m in re.finditer(r"[0-9０-９]+", text)]
    if any_digits and not digit_spots:
        choices.append(("number", any_digits, None))
    if not choices:
        return text, ""
    kind, items, new = rng.choice(choices)
    if kind in ("name", "place"):
        w = rng.choice(items)
        rep = rng.choice(new)
        return text.replace(w, to_hant(rep) if hant else rep), kind
    m = rng.choice(items)
    s = m.group(0)
    unit = text[m.end():m.end() + 1]
    if unit in ("月", "日", "号", "號"):  # keep months and days plausible
        hi = 12 if unit == "月" else 28
        old = zh_number(s)
        v = rng.choice([x for x in range(1, hi + 1) if x != old])
        if s[0] in ZH_DIGITS[2] or s[0] == "十":
            s2 = zh_numeral(v)
        else:
            digits = ZH_DIGITS[1] if s[0] in ZH_DIGITS[1] else ZH_DIGITS[0]
            s2 = "".join(digits[int(c)] for c in str(v))
        return text[:m.start()] + s2 + text[m.end():], kind
    k = rng.randrange(len(s))
    for digits in ZH_DIGITS:
        if s[k] in digits:
            s2 = s[:k] + rng.choice([d for d in digits[1:] if d != s[k]]) + s[k + 1:]
            return text[:m.start()] + s2 + text[m.end():], kind
    return text, ""


def zh_number(s: str) -> int:
    """Value of a short number in ASCII, full-width or Chinese digits (-1 if not one)."""
    for digits in ZH_DIGITS[:2]:
        if all(c in digits for c in s):
            return int("".join(str(digits.index(c)) for c in s))
    d = ZH_DIGITS[2]
    if s == "十":
        return 10
    if "十" in s:
        a, _, b = s.partition("十")
        return (d.index(a) if a else 1) * 10 + (d.index(b) if b else 0)
    return int("".join(str(d.index(c)) for c in s)) if all(c in d for c in s) else -1


def zh_numeral(v: int) -> str:
    d = ZH_DIGITS[2]
    if v < 10:
        return d[v]
    return ("" if v // 10 == 1 else d[v // 10]) + "十" + (d[v % 10] if v % 10 else "")


def change_word(text: str, lang: str, rng: random.Random, vocab: list[str]) -> tuple[str, str]:
    if lang == "en":
        hits = [m for m in re.finditer(r"\b[A-Za-z]+\b", text) if m.group(0).lower() in EN_SYN]
        if hits:
            m = rng.choice(hits)
            w = EN_SYN[m.group(0).lower()]
            w = w.capitalize() if m.group(0)[0].isupper() else w
            return text[:m.start()] + w + text[m.end():], "synonym"
        adv = [m for m in re.finditer(rf"\b({'|'.join(EN_ADVERBS)}) ", text)]
        if adv:  # an adverb dropped
            m = rng.choice(adv)
            return text[:m.start()] + text[m.end():], "word"
        aux = [m for m in re.finditer(r"\b(is|are|was|were|will|can|has|have|had|may|must|should|would) ", text)]
        if aux:  # an adverb added
            m = rng.choice(aux)
            return text[:m.end()] + rng.choice(["also ", "really ", "still ", "often "]) + text[m.end():], "word"
        det = [m for m in re.finditer(r"\bthe\b", text)]
        if det:
            m = rng.choice(det)
            return text[:m.start()] + rng.choice(["this", "that"]) + text[m.end():], "word"
        return text, ""
    hits = [w for w in ZH_SYN if w in text]
    if hits:
        w = rng.choice(hits)
        i = rng.choice([m.start() for m in re.finditer(re.escape(w), text)])
        return text[:i] + ZH_SYN[w] + text[i + len(w):], "synonym"
    adv = [(m.start(), m.group(0)) for m in re.finditer("|".join(ZH_ADVERBS), text)]
    if adv:  # an adverb dropped
        i, w = rng.choice(adv)
        return text[:i] + text[i + len(w):], "word"
    commas = [m.end() for m in re.finditer("，", text)]
    if commas:  # an adverb added after a comma
        i = rng.choice(commas)
        return text[:i] + rng.choice(["同时", "并且", "而且"]) + text[i:], "word"
    return text, ""


def change_punct(text: str, lang: str, rng: random.Random) -> tuple[str, str]:
    if lang == "en":
        opts = []
        if text.endswith("."):
            opts += ["end!", "end;", "end-"]
        if ", " in text:
            opts += ["nocomma", "semicolon"]
        opts.append("quote" if '"' not in text else "unquote")
        o = rng.choice(opts)
        if o == "end!":
            return text[:-1] + "!", "punct"
        if o == "end;":
            return text[:-1] + ";", "punct"
        if o == "end-":
            return text[:-1], "punct"
        if o == "nocomma":
            return text.replace(", ", " "), "punct"
        if o == "semicolon":
            idx = [m.start() for m in re.finditer(", ", text)]
            i = rng.choice(idx)
            return text[:i] + ";" + text[i + 1:], "punct"
        if o == "quote":
            return f'"{text}"', "punct"
        return text.replace('"', ""), "punct"
    opts = []
    if text.endswith("。"):
        opts += ["end!", "end-"]
    if "，" in text:
        opts += ["pause", "nocomma"]
    if "“" in text or "”" in text:
        opts.append("quotes")
    opts.append("spaces")
    o = rng.choice(opts)
    if o == "end!":
        return text[:-1] + "！", "punct"
    if o == "end-":
        return text[:-1], "punct"
    if o == "pause":
        idx = [m.start() for m in re.finditer("，", text)]
        i = rng.choice(idx)
        return text[:i] + rng.choice("、；") + text[i + 1:], "punct"
    if o == "nocomma":
        idx = [m.start() for m in re.finditer("，", text)]
        i = rng.choice(idx)
        return text[:i] + text[i + 1:], "punct"
    if o == "quotes":
        return text.replace("“", "「").replace("”", "」"), "punct"
    return text.replace("，", ", ").replace("。", ". "), "punct"


EN_CLAUSES_PRE = ["However, ", "In fact, ", "As noted above, ", "According to the report, ", "Indeed, "]
EN_CLAUSES_POST = [", as mentioned earlier", ", according to officials", ", in most cases", ", of course",
                   ", at least for now"]
ZH_CLAUSES_PRE = ["据报道，", "事实上，", "如上所述，", "一般来说，", "值得注意的是，"]
ZH_CLAUSES_POST = ["，这一点十分重要", "，据有关人士介绍", "，在大多数情况下", "，当然", "，至少目前如此"]


def change_clause(text: str, lang: str, rng: random.Random) -> tuple[str, str]:
    sep = "，" if lang == "zh" else ", "
    segs = text.split(sep)
    if len(segs) >= 3 and rng.random() < 0.6:
        k = rng.randrange(1, len(segs) - 1) if len(segs) > 3 else 1
        out = sep.join(segs[:k] + segs[k + 1:])
        if len(out) >= 0.6 * len(text):
            return out, "clause-"
    hant = lang == "zh" and bool(re.search("[們這個說對於與國會]", text))
    if rng.random() < 0.5:
        pre = rng.choice(ZH_CLAUSES_PRE if lang == "zh" else EN_CLAUSES_PRE)
        pre = to_hant(pre) if hant else pre
        body = text if lang == "zh" else (text[0].lower() + text[1:] if text[:2].istitle() and not
                                          re.match(r"[A-Z][a-z]+ [A-Z]", text) else text)
        return pre + body, "clause+"
    post = rng.choice(ZH_CLAUSES_POST if lang == "zh" else EN_CLAUSES_POST)
    post = to_hant(post) if hant else post
    m = re.search(r"[.!?;。！？；][\"'”」』)）]?$", text)
    if m:
        return text[:m.start()] + post + text[m.start():], "clause+"
    return text + post, "clause+"


def sentence_variant(text: str, lang: str, rng: random.Random, vocab: list[str]) -> tuple[str, list[str]]:
    ops = ["word", "punct", "clause", "entity"]
    out, done = text, []
    for op in rng.sample(ops, rng.choice([1, 1, 2])):
        if op == "word":
            out, name = change_word(out, lang, rng, vocab)
        elif op == "punct":
            out, name = change_punct(out, lang, rng)
        elif op == "clause":
            out, name = change_clause(out, lang, rng)
        else:
            out, name = change_entity(out, lang, rng, frozenset(vocab))
        if name:
            done.append(name)
    if out == text or not done:
        out, name = change_clause(out, lang, rng)
        done.append(name)
    return out, done


def structured_variant(paras: list[list[str]], lang: str, rng: random.Random, level: str, hant: bool,
                       vocab: list[str]) -> tuple[str, list[str]]:
    """A variant of a text given as paragraphs of sentences (documents, or one paragraph)."""
    paras = [list(p) for p in paras]
    common = frozenset(vocab)
    n_sent = sum(len(p) for p in paras)
    pool = ["reorder", "drop", "duplicate", "boilerplate", "entity"]
    if level == "paragraphs":
        pool.append("word")
    k = rng.choice([2, 3, 3, 4]) if level == "documents" else rng.choice([2, 2, 3])
    ops = rng.sample(pool, min(k, len(pool)))
    if n_sent < 5 and "drop" in ops:  # too few sentences to drop 10-20%: edit a clause instead
        ops[ops.index("drop")] = "clause"
    done = []
    header = footer = None
    for op in ("entity", "word", "clause", "drop", "reorder", "duplicate", "boilerplate"):
        if op not in ops:
            continue
        flat = [(i, j) for i, p in enumerate(paras) for j in range(len(p))]
        if op == "reorder":
            swaps = 0
            for _ in range(rng.randint(1, 3)):
                cand = [(i, j) for i, p in enumerate(paras) for j in range(len(p) - 1)]
                if level == "documents" and len(paras) >= 3 and rng.random() < 0.3:
                    a = rng.randrange(len(paras) - 1)
                    paras[a], paras[a + 1] = paras[a + 1], paras[a]
                    swaps += 1
                elif cand:
                    i, j = rng.choice(cand)
                    paras[i][j], paras[i][j + 1] = paras[i][j + 1], paras[i][j]
                    swaps += 1
            if swaps:
                done.append(f"reorder{swaps}")
        elif op == "drop":
            n = max(1, round(len(flat) * rng.uniform(0.10, 0.20)))
            gone = set(rng.sample(flat, n))
            paras = [[s for j, s in enumerate(p) if (i, j) not in gone] for i, p in enumerate(paras)]
            paras = [p for p in paras if p]
            done.append(f"drop{n}/{len(flat)}")
        elif op == "duplicate":
            i, j = rng.choice(flat)
            s = paras[i][j]
            if rng.random() < 0.5:
                paras[i].insert(j + 1, s)
            else:
                paras[i].append(s)
            done.append("duplicate")
        elif op in ("entity", "word", "clause"):
            i, j = rng.choice(flat)
            for _ in range(8):  # find a sentence the op applies to
                if op == "entity":
                    new, name = change_entity(paras[i][j], lang, rng, common)
                elif op == "word":
                    new, name = change_word(paras[i][j], lang, rng, vocab)
                else:
                    new, name = change_clause(paras[i][j], lang, rng)
                if name:
                    paras[i][j] = new
                    done.append(name)
                    break
                i, j = rng.choice(flat)
        elif op == "boilerplate":
            if level == "documents":
                line, where = boiler_doc(lang, rng, hant)
                header, footer = (line, None) if where == "header" else (None, line)
            else:
                s, where = boiler_par(lang, rng, hant)
                header, footer = (s, None) if where == "prefix" else (None, s)
            done.append(f"boilerplate-{where}")
    if level == "documents":
        body = "\n\n".join(join_sentences(p, lang) for p in paras)
        text = "\n\n".join(x for x in (header, body, footer) if x)
    else:
        text = (header or "") + join_sentences([s for p in paras for s in p], lang) + (footer or "")
    return text, done


# ---------------------------------------------------------------- unit candidates per file

def doc_excerpt(blocks: list[str], rng: random.Random) -> str | None:
    lo, hi = LENGTHS["documents"]
    target = rng.uniform(500, hi)
    start = rng.randrange(max(1, len(blocks) // 2)) if len(blocks) > 3 else 0
    out, size = [], 0
    for b in blocks[start:]:
        if size + len(b) + 2 > hi:
            if out:
                break
            continue
        out.append(b)
        size += len(b) + 2
        if size >= target:
            break
    text = "\n\n".join(out)
    return text if lo <= len(text) <= hi else None


def candidates(fname: str, docs: list[tuple[str, list[str]]], level: str, lang: str, seed: int) \
        -> dict[str, list[str]]:
    """doc id -> candidate unit texts of that level."""
    lo, hi = LENGTHS[level]
    out: dict[str, list[str]] = {}
    for did, blocks in docs:
        rng = sub_rng(seed, "excerpt", fname, did)
        if level == "documents":
            t = doc_excerpt(blocks, rng)
            got = [t] if t and len(split_sentences(t, lang)) >= 4 else []
        elif level == "paragraphs":
            got = [b for b in blocks if lo <= len(b) <= hi and len(split_sentences(b, lang)) >= 2]
        else:
            got = [s for b in blocks for s in split_sentences(b, lang)
                   if lo <= len(s) <= hi and (lang == "zh" or len(s.split()) >= 5)
                   and (prose_zh(s) if lang == "zh" else prose_en(s) or len(s) < 40)]
        if got:
            out[did] = got
    return out


# ---------------------------------------------------------------- label-noise guard

def shingles(text: str) -> set[int]:
    global _T2S
    if _T2S is None:
        import opencc
        _T2S = opencc.OpenCC("t2s")
    t = _T2S.convert(text.lower()) if _CJK_RE.search(text) else text.lower()
    t = re.sub(r"[\W_]+", "", t)
    if len(t) < 5:
        return {int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")} if t else set()
    return {int.from_bytes(hashlib.blake2b(t[i:i + 5].encode(), digest_size=8).digest(), "little")
            for i in range(len(t) - 4)}


_T2S = None


class Guard:
    """Accepts a unit only if it is not a near-copy of an accepted unit of another group."""

    def __init__(self) -> None:
        self.index: dict[int, list[int]] = defaultdict(list)
        self.sizes: list[int] = []
        self.groups: list[str] = []
        self.exact: set[str] = set()

    def conflicts(self, text: str, group: str) -> bool:
        norm = re.sub(r"\s+", " ", text.strip().lower())
        if norm in self.exact:
            return True
        sh = shingles(text)
        if not sh:
            return True
        hits: Counter = Counter()
        for h in sh:
            for u in self.index.get(h, ()):
                hits[u] += 1
        return any(self.groups[u] != group and c / min(len(sh), self.sizes[u]) >= CONTAINMENT_MAX
                   for u, c in hits.items())

    def add(self, text: str, group: str) -> None:
        u = len(self.sizes)
        sh = shingles(text)
        for h in sh:
            self.index[h].append(u)
        self.sizes.append(len(sh))
        self.groups.append(group)
        self.exact.add(re.sub(r"\s+", " ", text.strip().lower()))


# ---------------------------------------------------------------- the sets

def to_structure(text: str, lang: str, level: str) -> list[list[str]]:
    if level == "documents":
        return [split_sentences(p, lang) for p in text.split("\n\n")]
    return [split_sentences(text, lang)]


def vocab_of(cands: dict[str, list[str]], lang: str) -> list[str]:
    """Lower-case words seen >= 3 times in the file (a capitalised one of them is not a name)."""
    if lang != "en":
        return []
    words: Counter = Counter()
    for texts in cands.values():
        for t in texts[:20]:
            words.update(re.findall(r"\b[a-z]{4,}\b", t))
    return sorted(w for w, c in words.items() if c >= 3)


def cached_docs(fname: str, corpora: Path, seed: int, file_cache: dict | None):
    if file_cache is not None and fname in file_cache:
        return file_cache[fname]
    docs = file_docs(fname, corpora, seed)
    if file_cache is not None:
        file_cache[fname] = docs
    return docs


def make_variants(text: str, lang: str, level: str, fname: str, did: str, seed: int, n: int,
                  vocab: list[str]) -> list[tuple[str, list[str]]]:
    """Up to n distinct paraphrase-like variants (text, ops) of a source unit, each seeded."""
    hant = lang == "zh" and fname == "zh_wiki_drcd_traditional"
    variants: list = []
    for v in range(n):
        vr = sub_rng(seed, "variant", lang, level, fname, did, v)
        if level == "sentences":
            vt, ops = sentence_variant(text, lang, vr, vocab)
        else:
            vt, ops = structured_variant(to_structure(text, lang, level), lang, vr, level, hant, vocab)
        if vt != text and all(vt != t for t, _ in variants):
            variants.append((vt, ops))
    return variants


def build_set(lang: str, level: str, seed: int, corpora: Path = CORPORA,
              file_cache: dict | None = None) -> list[dict]:
    units: list[dict] = []
    guard = Guard()
    n_group = 0
    for fname in FILES[lang]:
        docs = cached_docs(fname, corpora, seed, file_cache)
        cands = candidates(fname, docs, level, lang, seed)
        vocab = vocab_of(cands, lang)
        rng = sub_rng(seed, "pick", lang, level, fname)
        ids = sorted(cands)
        rng.shuffle(ids)
        used_docs: set[str] = set()
        n_src = n_neg = 0
        own_negs: list[tuple[str, str]] = []  # (doc id, group) of sources, for same-document negatives
        it = iter(ids)
        for did in it:  # sources
            if n_src >= SOURCES_PER_FILE[level]:
                break
            text = rng.choice(cands[did])
            group = f"{lang}-{level}-g{n_group:04d}"
            if guard.conflicts(text, group):
                continue
            variants = make_variants(text, lang, level, fname, did, seed, rng.choice([1, 2]), vocab)
            if not variants or any(guard.conflicts(vt, group) for vt, _ in variants):
                continue
            n_group += 1
            used_docs.add(did)
            origin = f"{fname}:{did}"
            guard.add(text, group)
            units.append({"lang": lang, "level": level, "group": group, "text": text, "kind": "source",
                          "origin": origin, "ops": []})
            for vt, ops in variants:
                guard.add(vt, group)
                units.append({"lang": lang, "level": level, "group": group, "text": vt, "kind": "variant",
                              "origin": origin, "ops": ops})
            own_negs.append((did, text))
            n_src += 1

        def add_negative(did: str, text: str) -> bool:
            nonlocal n_group, n_neg
            group = f"{lang}-{level}-g{n_group:04d}"
            if guard.conflicts(text, group):
                return False
            n_group += 1
            guard.add(text, group)
            units.append({"lang": lang, "level": level, "group": group, "text": text, "kind": "negative",
                          "origin": f"{fname}:{did}", "ops": []})
            n_neg += 1
            return True

        if level != "documents":  # one hard negative from each source's own document
            for did, src_text in own_negs:
                others = [t for t in cands[did] if t != src_text]
                rng.shuffle(others)
                for t in others[:5]:
                    if add_negative(did, t):
                        break
        for did in it:  # the rest: other documents of the same file
            if n_neg >= NEGATIVES_PER_FILE[level]:
                break
            if did in used_docs:
                continue
            add_negative(did, rng.choice(cands[did]))
        used_docs.update(ids)
    order = sub_rng(seed, "order", lang, level)
    order.shuffle(units)
    for i, u in enumerate(units):
        u["uid"] = f"{lang}-{level[:3]}-{i:04d}"
    keys = ("uid", "lang", "level", "group", "text", "kind", "origin", "ops")
    return [{k: u[k] for k in keys} for u in units]


def build(corpora: Path = CORPORA, seed: int = 0, langs=LANGS, levels=LEVELS) -> list[dict]:
    out = []
    for lang in langs:
        cache: dict = {}
        for level in levels:
            out += build_set(lang, level, seed, corpora, cache)
    return out


def summary(units: list[dict]) -> dict:
    by: dict = defaultdict(Counter)
    for u in units:
        by[(u["lang"], u["level"])][u["kind"]] += 1
    res = {}
    for (lang, level), c in sorted(by.items()):
        sizes = Counter(u["group"] for u in units if u["lang"] == lang and u["level"] == level)
        res[f"{lang}/{level}"] = {"units": sum(c.values()), **dict(c),
                                  "dup_groups": sum(1 for s in sizes.values() if s >= 2),
                                  "to_remove": sum(s - 1 for s in sizes.values())}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, default=CORPORA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/semantic_eval_data.jsonl"))
    a = ap.parse_args(argv)
    units = build(a.corpora, a.seed)
    with open(a.out, "w", encoding="utf-8") as f:
        for u in units:
            f.write(json.dumps(u, ensure_ascii=False) + "\n")
    print(json.dumps(summary(units), indent=1))
    print(f"{len(units)} units -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
