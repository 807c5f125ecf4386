"""Exact dedup at document, paragraph and sentence level on a fixture with known duplicates."""
import pytest

from conftest import read_dir, write_jsonl
from pipeline.config import load_profile
from pipeline.stage import run_stage
from dedup.exact import STAGE as EXACT

P_SHARED = "This paragraph is shared by two different documents in the corpus, word for word."
S_SHARED = "This sentence appears in two places of the corpus."
ZH_SHARED = "这一句中文在两篇不同的文章里都出现了，应该被删掉。"

DOCS = [
    {"id": "d1", "text": "First document, the original one.\n\n" + P_SHARED, "lang": "en"},
    # d2 = d1 up to whitespace and full-width forms: a document-level duplicate of d1
    {"id": "d2", "text": "First   document,\tthe original one.\n\n" + P_SHARED.replace("T", "Ｔ", 1), "lang": "en"},
    {"id": "d3", "text": "Another opening paragraph that is unique to this text.\n\n" + P_SHARED, "lang": "en"},
    {"id": "d4", "text": "Opening words of document four. " + S_SHARED + " And more words follow here.", "lang": "en"},
    {"id": "d5", "text": "Document five starts differently. " + S_SHARED + " Then it ends in its own way.", "lang": "en"},
    {"id": "z1", "text": "第一篇文章的开头，独一无二。" + ZH_SHARED + "谢谢。", "lang": "zh"},
    {"id": "z2", "text": "第二篇文章换了一个开头，也很独特。" + ZH_SHARED + "谢谢。", "lang": "zh"},
    # only a duplicate paragraph and a short remainder: removed after span dedup
    {"id": "d6", "text": P_SHARED + "\n\nOk.", "lang": "en"},
    {"id": "c1", "text": "def shared_helper(value):\n    return value + 1\n", "lang": "code"},
    {"id": "c2", "text": "import os\nimport sys\n\n\ndef shared_helper(value):\n    return value + 1\n", "lang": "code"},
]


@pytest.fixture(scope="module")
def result(tmp_path_factory, spark):
    tmp = tmp_path_factory.mktemp("exact")
    write_jsonl(tmp / "in" / "docs.jsonl", DOCS)
    prof = load_profile(None, ["write.files_per_output=2", "exact-dedup.min_sentence_chars=15",
                               "exact-dedup.min_paragraph_chars=30", "exact-dedup.min_doc_chars_after_span_dedup=10"])
    m = run_stage(EXACT, prof, str(tmp / "in"), str(tmp / "out"), spark=spark)
    return tmp, m


def test_document_level(result):
    tmp, m = result
    removed = {r["id"]: r for r in read_dir(tmp / "out" / "removed")}
    assert removed["d2"]["reason"] == "exact_duplicate" and removed["d2"]["duplicate_of"] == "d1"
    assert removed["d2"]["text"] == DOCS[1]["text"]  # the whole original document is kept in removed/


def test_paragraph_and_sentence_level(result):
    tmp, m = result
    kept = {r["id"]: r["text"] for r in read_dir(tmp / "out" / "kept")}
    spans = read_dir(tmp / "out" / "removed_spans")
    by_doc = {}
    for s in spans:
        by_doc.setdefault(s["doc_id"], []).append(s)
    # paragraph cut from d3 (d1 holds the first occurrence), kept in d1
    assert P_SHARED in kept["d1"]
    assert kept["d3"] == "Another opening paragraph that is unique to this text.\n\n"
    (p,) = by_doc["d3"]
    assert (p["level"], p["text"], p["duplicate_of"]) == ("paragraph", P_SHARED, "d1")
    assert DOCS[2]["text"][p["start"]:p["end"]] == P_SHARED
    # sentence cut from d5 (first in d4), with the whitespace after it
    assert S_SHARED in kept["d4"]
    assert kept["d5"] == "Document five starts differently. Then it ends in its own way."
    (s,) = by_doc["d5"]
    assert (s["level"], s["text"], s["duplicate_of"]) == ("sentence", S_SHARED + " ", "d4")
    # Chinese sentence cut from z2; the short '谢谢。' survives everywhere
    assert kept["z1"].count(ZH_SHARED) == 1 and ZH_SHARED not in kept["z2"]
    assert kept["z2"].endswith("谢谢。") and kept["z1"].endswith("谢谢。")
    # code is kept whole (the span policy's default): c2 shares a function with c1 and keeps it
    assert kept["c1"] == DOCS[8]["text"] and kept["c2"] == DOCS[9]["text"]
    assert "c1" not in by_doc and "c2" not in by_doc


def test_kept_documents_carry_their_exact_copies(result, spark, tmp_path):
    tmp, _ = result
    copies = {r["id"]: r["exact_copies"] for r in read_dir(tmp / "out" / "kept")}
    assert copies["d1"] == 2 and {v for k, v in copies.items() if k != "d1"} == {1}
    # copies in three read units: the first occurrence stands for all four, wherever they lie
    text = "A text that the corpus holds four times, in three different files of the input."
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": "a1", "text": text, "lang": "en"},
                                              {"id": "a2", "text": "Something else entirely, said once.", "lang": "en"}])
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"id": f"b{i}", "text": text, "lang": "en"} for i in range(2)])
    write_jsonl(tmp_path / "in" / "c.jsonl", [{"id": "c1", "text": text + "  ", "lang": "en"}])
    run_stage(EXACT, load_profile(None, []), str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    kept = {r["id"]: r["exact_copies"] for r in read_dir(tmp_path / "out" / "kept")}
    assert kept == {"a1": 4, "a2": 1}


def test_too_short_after_span_dedup(result):
    tmp, m = result
    removed = {r["id"]: r for r in read_dir(tmp / "out" / "removed")}
    assert removed["d6"]["reason"] == "too_short_after_span_dedup"
    assert removed["d6"]["text"] == "Ok." and removed["d6"]["duplicate_of"] == "d1"


def test_counts_reconcile_exactly(result):
    tmp, m = result
    c = m["counts"]
    total_chars = sum(len(d["text"]) for d in DOCS)
    assert c["input"] == {"docs": len(DOCS), "chars": total_chars}
    assert c["kept"]["docs"] == 8 and c["removed"]["docs"] == 2 and c["quarantined"]["docs"] == 0
    assert c["kept"]["chars"] + c["removed"]["chars"] + c["removed_spans"]["chars"] == total_chars
    assert c["reconciled"] is True
    # every document can be rebuilt from kept/removed text plus its cut spans
    texts = {r["id"]: r["text"] for r in read_dir(tmp / "out" / "kept") + read_dir(tmp / "out" / "removed")}
    spans = read_dir(tmp / "out" / "removed_spans")
    for d in DOCS:
        rebuilt, mine = texts[d["id"]], sorted((s for s in spans if s["doc_id"] == d["id"]), key=lambda s: s["start"])
        for s in mine:
            rebuilt = rebuilt[: s["start"]] + s["text"] + rebuilt[s["start"]:]
        assert rebuilt == d["text"]


def test_rerun_is_a_no_op_and_fresh_run_is_byte_identical(result, spark, capsys, tmp_path):
    tmp, m = result
    prof = load_profile(None, ["write.files_per_output=2", "exact-dedup.min_sentence_chars=15",
                               "exact-dedup.min_paragraph_chars=30", "exact-dedup.min_doc_chars_after_span_dedup=10"])
    again = run_stage(EXACT, prof, str(tmp / "in"), str(tmp / "out"), spark=spark)
    assert "nothing to do" in capsys.readouterr().out
    assert again == m
    fresh = run_stage(EXACT, prof, str(tmp / "in"), str(tmp_path / "out2"), spark=spark)
    assert fresh["counts"] == m["counts"]
    for sub in ("kept", "removed", "removed_spans", "quarantine"):
        a = sorted((tmp / "out" / sub).glob("*.parquet"))
        b = sorted((tmp_path / "out2" / sub).glob("*.parquet"))
        assert [f.name for f in a] == [f.name for f in b]
        for fa, fb in zip(a, b):  # same parts, byte for byte
            assert fa.read_bytes() == fb.read_bytes(), (sub, fa.name)


def test_matches_single_process_reference_on_the_bundled_sample(spark, tmp_path):
    """The Spark stage and a plain one-process implementation of the same rules (bench/) agree on
    real zh/en/code text: same duplicate documents, same number of cut spans and characters."""
    from bench.bench_exact import python_baseline
    from conftest import REPO

    files = sorted((REPO / "data" / "sample").glob("*.jsonl.gz"))
    ref = python_baseline(files)
    m = run_stage(EXACT, load_profile(None, ["write.files_per_output=1"]), str(REPO / "data" / "sample"),
                  str(tmp_path / "out"), spark=spark)
    c = m["counts"]
    assert c["removed"]["by_reason"]["exact_duplicate"]["docs"] == ref["doc_duplicates"] > 0
    assert c["removed_spans"]["docs"] == ref["spans_cut"] > 0
    assert c["removed_spans"]["chars"] == ref["span_chars_cut"]
