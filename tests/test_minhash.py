"""MinHash near-dup dedup: shingling rules, the estimator, banding, bucket pairs, and the stage on
injected near-duplicates of real English, Chinese and code text (and a Traditional copy)."""
import gzip
import json
import random

import numpy as np
import pyarrow as pa
import pytest

from conftest import CORPORA, read_dir, write_jsonl
from dedup.minhash import choose_bands, jaccard_pairs, permutations, s_curve, signatures
from dedup.lsh import bucket_pairs, shingle_set
from dedup.minhash_dedup import STAGE as MINHASH
from dedup.shingle import ShingleSettings, shingle_hashes, shingle_sets
from pipeline.config import load_profile
from pipeline.errors import UserError
from pipeline.stage import run_stage


def n_shingles(text, **kw):
    h, o = shingle_hashes(pa.array([text]), ShingleSettings(**kw))
    return len(h)


def test_shingling_rules():
    assert n_shingles("") == 0 and n_shingles("!!! ...") == 0  # no tokens, no shingle
    assert n_shingles("one two") == 1  # fewer than n tokens: one shingle
    assert n_shingles("a b c d e f g") == 3  # 7 tokens, 5-grams
    assert n_shingles("中文字符每个都是一个词") == 11 - 4  # each CJK character is a token
    same = shingle_sets(pa.array(["Hello,   WORLD! The quick brown fox.", "hello world the quick—brown fox"]))
    assert np.array_equal(same[0], same[1])  # case, punctuation and spacing do not matter
    ff = shingle_sets(pa.array(["ｆｕｌｌ ｗｉｄｔｈ ｔｅｘｔ", "full width text"]))  # NFKC
    assert np.array_equal(ff[0], ff[1])
    order = shingle_sets(pa.array(["a b c d e", "e d c b a"]))
    assert not np.array_equal(order[0], order[1])


def test_traditional_folds_to_simplified_and_can_be_switched_off():
    trad, simp = "這是一個關於電腦軟體與網絡發展的簡單說明。", "这是一个关于电脑软体与网络发展的简单说明。"
    on = shingle_sets(pa.array([trad, simp]))
    assert np.array_equal(on[0], on[1])
    off = shingle_sets(pa.array([trad, simp]), ShingleSettings(fold_traditional=False))
    assert not np.array_equal(off[0], off[1])


def test_estimator_is_unbiased():
    rng = np.random.default_rng(0)
    a, b = permutations(128, 1)
    errors = []
    for _ in range(200):
        common = rng.integers(0, 2**63, 300, dtype=np.uint64)
        x = np.concatenate([common, rng.integers(0, 2**63, 50, dtype=np.uint64)])
        y = np.concatenate([common, rng.integers(0, 2**63, 50, dtype=np.uint64)])
        sig = signatures(np.concatenate([x, y]), np.array([0, len(x), len(x) + len(y)]), a, b)
        errors.append((sig[0] == sig[1]).mean() - 300 / 400)
    assert abs(np.mean(errors)) < 0.01
    assert np.std(errors) < 0.05  # sqrt(0.75 * 0.25 / 128) = 0.038


def test_bands_from_the_candidate_threshold():
    bands, rows = choose_bands(128, 0.6)
    assert bands * rows <= 128
    assert s_curve(0.8, bands, rows) > 0.99  # pairs at the verification threshold are found
    assert s_curve(0.3, bands, rows) < 0.05


def test_bucket_pairs_star_chain_and_giant():
    band = np.zeros(7, np.int16)
    key = np.array([5, 5, 5, 5, 9, 7, 7], np.int64)
    pos = np.array([40, 10, 30, 20, 1, 3, 2], np.int64)
    a, b, giant = bucket_pairs(band, key, pos, max_bucket=10)
    assert sorted(zip(a.tolist(), b.tolist())) == [(2, 3), (10, 20), (10, 30), (10, 40), (20, 30), (30, 40)]
    assert giant == 0
    a, b, giant = bucket_pairs(band, key, pos, max_bucket=3)  # the 4-bucket is a chain only
    assert sorted(zip(a.tolist(), b.tolist())) == [(2, 3), (10, 20), (20, 30), (30, 40)]
    assert giant == 1


def test_exact_jaccard():
    x, y = np.array([1, 2, 3, 5], np.uint32), np.array([2, 3, 4], np.uint32)
    got = jaccard_pairs(np.concatenate([x, x]), [0, 4, 8], np.concatenate([y, x]), [0, 3, 7])
    assert got.tolist() == [2 / 5, 1.0]
    assert len(shingle_set(np.array([1 << 40, (1 << 40) + 1, 7 << 33], np.uint64))) == 2


def _texts(name, n, min_len=400):
    out = []
    with gzip.open(CORPORA / name, "rt", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            if len(t) >= min_len:
                out.append(t)
            if len(out) == n:
                break
    return out


def _edit(text, rate, rng, cjk=False):
    units = list(text) if cjk else text.split(" ")
    words = [k for k, u in enumerate(units) if u.strip()]  # not indentation
    for k in rng.sample(words, max(1, int(len(words) * rate))):
        units[k] = "变" if cjk else "edited"
    return ("" if cjk else " ").join(units)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    docs, dups = [], {}
    for lang, name, cjk in (("en", "en_brown_corpus.jsonl.gz", False), ("zh", "zh_news_peoples_daily_1998.jsonl.gz", True),
                            ("code", "code_python_stdlib_5versions.jsonl.gz", False)):
        for i, t in enumerate(_texts(name, 12, 800)):
            docs.append({"id": f"{lang}{i}", "text": t, "lang": lang})
            if i % 3 == 0:  # a copy with 1% of its tokens changed: J about 0.8-0.9
                docs.append({"id": f"{lang}{i}-edit", "text": _edit(t, 0.01, rng, cjk), "lang": lang})
                dups[f"{lang}{i}-edit"] = f"{lang}{i}"
    simp = _texts("zh_news_peoples_daily_1998.jsonl.gz", 1, 800)[0]
    import opencc
    docs.append({"id": "zh-traditional", "text": opencc.OpenCC("s2t").convert(simp), "lang": "zh"})
    dups["zh-traditional"] = "zh0"
    docs += [{"id": "tiny", "text": "word", "lang": "en"}, {"id": "tiny2", "text": "word", "lang": "en"},
             {"id": "no-tokens", "text": "!!! ... ???", "lang": "en"}, {"id": "no-tokens2", "text": "--- ...", "lang": "en"}]
    dups["tiny2"] = "tiny"
    tmp = tmp_path_factory.mktemp("minhash")
    write_jsonl(tmp / "in" / "docs.jsonl", docs)
    return tmp, docs, dups


@pytest.fixture(scope="module")
def result(corpus, spark):
    tmp, docs, dups = corpus
    m = run_stage(MINHASH, load_profile(None, []), str(tmp / "in"), str(tmp / "out"), spark=spark)
    return tmp, m


def test_near_duplicates_removed_with_their_original(corpus, result):
    _, docs, dups = corpus
    tmp, m = result
    removed = {r["id"]: r for r in read_dir(tmp / "out" / "removed")}
    assert {k: r["duplicate_of"] for k, r in removed.items()} == dups
    assert all(r["reason"] == "near_duplicate" and 0.8 <= r["similarity"] <= 1.0 for r in removed.values())
    kept = read_dir(tmp / "out" / "kept")
    assert len(kept) == len(docs) - len(dups)
    sizes = {r["id"]: r["minhash_cluster_size"] for r in kept}
    assert sizes["zh0"] == 3 and sizes["en0"] == 2 and sizes["en1"] == 1
    c = m["counts"]
    assert c["reconciled"] and c["input"]["docs"] == c["kept"]["docs"] + c["removed"]["docs"]
    clusters = read_dir(tmp / "out" / "clusters")
    assert {r["id"] for r in clusters} == set(dups) | set(dups.values())
    assert m["stats"]["minhash"]["bands"] * m["stats"]["minhash"]["rows"] <= 128
    assert len(read_dir(tmp / "out" / "signatures")) == len(docs)


def test_rerun_is_identical(corpus, result, spark, tmp_path):
    tmp, _ = result
    m = run_stage(MINHASH, load_profile(None, []), str(tmp / "in"), str(tmp_path / "again"), spark=spark)
    for out in ("kept", "removed", "clusters", "signatures"):
        a = sorted((tmp / "out" / out).glob("*.parquet"))
        b = sorted((tmp_path / "again" / out).glob("*.parquet"))
        assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b], out
    assert m["counts"]["removed"]["docs"] == len(corpus[2])


@pytest.mark.parametrize("case", ["identical", "no_duplicates", "shared_shingle"])
def test_edge_corpora_reconcile(case, spark, tmp_path):
    base = "the same words in every single document of this corpus"
    if case == "identical":
        docs = [{"id": f"d{i}", "text": base} for i in range(30)]
    elif case == "no_duplicates":
        docs = [{"id": f"d{i}", "text": f"document {i} " + " ".join(str(i * 31 + k) for k in range(40))}
                for i in range(30)]
    else:  # one long shingle in every document, and a 1 MB document
        docs = [{"id": f"d{i}", "text": base + " " + " ".join(str(i * 97 + k) for k in range(60))} for i in range(30)]
        docs.append({"id": "big", "text": " ".join(str(k) for k in range(180_000))})
    docs.append({"id": "empty", "text": ""})  # quarantined by the reader (empty_text), still counted
    write_jsonl(tmp_path / "in" / "d.jsonl", docs)
    m = run_stage(MINHASH, load_profile(None, []), str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    c = m["counts"]
    assert c["reconciled"] and c["quarantined"]["by_reason"]["empty_text"]["docs"] == 1
    removed = {"identical": 29, "no_duplicates": 0, "shared_shingle": 0}[case]
    assert c["removed"]["docs"] == removed and c["kept"]["docs"] == len(docs) - 1 - removed


def test_bad_config_is_refused():
    cfg = MINHASH.config_class(keep="best")
    with pytest.raises(UserError):
        MINHASH.check(cfg)
    with pytest.raises(UserError):
        MINHASH.check(MINHASH.config_class(bands=20, rows=7))


BOILERPLATE = ("This newsletter was sent to {name} on {day} March because you subscribed to our mailing list at "
               "the example website. To stop receiving these messages, follow the unsubscribe link at the bottom of "
               "this page or write to our support team, who answer every request within two working days and never "
               "share your address with anyone else. Our postal address is one Main Street in Springfield, and our "
               "office is open from nine in the morning until five in the afternoon on every working day of the week, "
               "public holidays excepted, so that you can always reach a person who knows your account.")


def test_paragraph_level_near_duplicates(spark, tmp_path):
    body = lambda i: " ".join(f"topic{i} word{k} of letter {i}" for k in range(30))  # noqa: E731
    docs = [{"id": f"n{i}", "lang": "en",
             "text": f"Letter {i}: {body(i)}.\n\n" + BOILERPLATE.format(name=f"reader{i}", day=i + 1)} for i in range(4)]
    docs.append({"id": "short", "lang": "en", "text": "Hi.\n\n" + BOILERPLATE.format(name="someone", day=9)})
    code = "\n".join(f"value_{k} = compute_{k}(value_{k - 1}, {k})" for k in range(1, 60))
    docs.append({"id": "code", "lang": "code", "text": code + "\n\n" + BOILERPLATE.format(name="code", day=7)})
    write_jsonl(tmp_path / "in" / "d.jsonl", docs)
    m = run_stage(MINHASH, load_profile(None, []), str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    spans = read_dir(tmp_path / "out" / "removed_spans")
    assert sorted(s["doc_id"] for s in spans) == ["n1", "n2", "n3", "short"]  # n0 holds the first occurrence
    by_id = {d["id"]: d["text"] for d in docs}
    for s in spans:
        assert s["level"] == "paragraph" and s["reason"] == "near_duplicate" and s["duplicate_of"] == "n0"
        assert 0.8 <= s["score"] < 1.0
        assert by_id[s["doc_id"]][s["start"]:s["end"]] == s["text"] and s["text"].startswith("This newsletter")
    kept = {d["id"]: d["text"] for d in read_dir(tmp_path / "out" / "kept")}
    assert kept["n0"] == by_id["n0"] and kept["code"] == by_id["code"]  # code is never cut (span policy)
    assert "newsletter" not in kept["n2"] and kept["n2"].startswith("Letter 2:")
    removed = {d["id"]: d for d in read_dir(tmp_path / "out" / "removed")}
    assert removed["short"]["reason"] == "too_short_after_near_dup_paragraphs"
    assert removed["short"]["duplicate_of"] == "n0"
    c = m["counts"]
    assert c["reconciled"] and c["removed_spans"]["by_level"]["paragraph"]["docs"] == 4
    assert m["stats"]["minhash"]["paragraphs"]["clusters"] == 1
