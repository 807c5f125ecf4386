"""Semantic dedup: the within-cluster search (exact and IVF agree), k-means determinism, the
embedder's long-text policy, and the stage on paraphrase-like variants of real English and
Chinese documents (at document and paragraph level), deterministic across partitionings."""
import gzip
import json
import random
import re

import numpy as np
import pyarrow as pa
import pytest

from conftest import CORPORA, read_dir, write_jsonl
from dedup.embed import EmbedderSpec, load_embedder
from dedup.semantic import PairRule, cluster_pairs, nearest_centroid, train_kmeans, vectors_of
from dedup.semantic_dedup import STAGE as SEMANTIC
from pipeline.config import load_profile
from pipeline.errors import UserError
from pipeline.stage import run_stage


def clustered(n, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)) * 1.5
    x = rng.standard_normal((n, dim)) + centres[rng.integers(0, 20, n)]
    dup = rng.choice(n, n // 10, replace=False)
    x = np.concatenate([x, x[dup] + 0.05 * rng.standard_normal((len(dup), dim))]).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), dup


@pytest.mark.parametrize("rule", [PairRule(eps=0.02), PairRule(rule="margin", floor=0.9, margin=0.1, k=4)])
def test_split_cluster_search_finds_the_exact_pairs(rule):
    x, dup = clustered(3000)
    exact = cluster_pairs(x, rule, exact_limit=10**9, part_size=256, seed=1)
    split = cluster_pairs(x, rule, exact_limit=100, part_size=256, seed=1)
    assert exact[3] == "exact" and split[3] == "parts"
    e, f = set(zip(*map(np.ndarray.tolist, exact[:2]))), set(zip(*map(np.ndarray.tolist, split[:2])))
    assert len(e) > len(dup) // 2 and len(e & f) >= 0.99 * len(e) and len(f - e) <= 0.01 * len(e)
    assert all(a < b for a, b in f)
    if rule.rule == "threshold":
        assert {(int(d), 3000 + k) for k, d in enumerate(dup)} <= e  # every planted copy is found
    again = cluster_pairs(x, rule, exact_limit=100, part_size=256, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(split[:3], again[:3]))  # deterministic


def test_kmeans_and_assignment_are_deterministic():
    x, _ = clustered(2000)
    c1, c2 = train_kmeans(x, 16, seed=3), train_kmeans(x, 16, seed=3)
    assert np.array_equal(c1, c2)
    cl, dist = nearest_centroid(x, c1)
    assert cl.min() >= 0 and cl.max() < 16 and (dist >= -1e-5).all() and (dist <= 2).all()
    brute = (x @ (c1 / np.linalg.norm(c1, axis=1, keepdims=True)).T).argmax(1)
    assert np.array_equal(cl, brute)


def test_float16_vectors_round_trip():
    x, _ = clustered(50)
    col = pa.array([np.asarray(v, np.float16).tobytes() for v in x], pa.binary())
    y = vectors_of(col.slice(5, 20))
    assert y.shape == (20, 32) and np.allclose(np.linalg.norm(y, axis=1), 1, atol=1e-6)
    assert np.abs(y - x[5:25]).max() < 2e-3


def test_long_text_policy():
    """truncate embeds the head only; mean embeds chunks and so sees the tail."""
    head = "The committee met on Tuesday to review the annual budget and the hiring plan. " * 40
    tail_a = "Rainfall in the northern valleys was far above the average of the decade. " * 40
    tail_b = "The new compiler release improves loop vectorisation and link times. " * 40
    trunc = load_embedder(EmbedderSpec(backend="sentence-transformers", max_tokens=128))
    mean = load_embedder(EmbedderSpec(backend="sentence-transformers", max_tokens=128, long_text="mean", max_chunks=8))
    assert len(trunc.chunks(head + tail_a)) == 1 and 2 <= len(mean.chunks(head + tail_a)) <= 8
    t = trunc.encode([head + tail_a, head + tail_b])
    m = mean.encode([head + tail_a, head + tail_b])
    assert np.allclose(np.linalg.norm(m, axis=1), 1, atol=1e-5)
    assert float(t[0] @ t[1]) > 0.99  # the same first 128 tokens
    assert float(m[0] @ m[1]) < float(t[0] @ t[1]) - 0.05
    short = ["a short sentence"]
    assert np.allclose(trunc.encode(short), mean.encode(short), atol=1e-6)


def test_multilingual_backend_on_chinese():
    e5 = load_embedder(EmbedderSpec(backend="e5"))
    v = e5.encode(["今天天气很好，我们去公园散步吧。", "今天天气不错，我们去公园走走吧。", "股市今天大跌，投资者损失惨重。"])
    assert v.shape == (3, e5.dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.05


# ---- the stage ---------------------------------------------------------------------------------

def sentences(text, zh):
    parts = re.split(r"(?<=[。！？])" if zh else r"(?<=[.!?])\s+", text)
    return [p for p in parts if p.strip()]


def variant(text, zh, rng):
    """Sentences swapped and one dropped, a boilerplate line added: a paraphrase-like copy."""
    s = sentences(text, zh)
    if len(s) > 3:
        i = rng.randrange(len(s) - 1)
        s[i], s[i + 1] = s[i + 1], s[i]
        del s[rng.randrange(len(s))]
    line = "本文来源：新华网 2021年3月4日" if zh else "Posted on 2021-03-04 by the editors."
    return line + "\n" + ("" if zh else " ").join(s)


def corpus_docs(name, lo, hi, n):
    out = []
    with gzip.open(CORPORA / name, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if lo <= len(r["text"]) <= hi and len(sentences(r["text"], r["lang"] == "zh")) >= 5:
                out.append(r)
            if len(out) == n:
                break
    return out


@pytest.fixture(scope="module")
def paraphrase_corpus(tmp_path_factory):
    rng = random.Random(7)
    tmp = tmp_path_factory.mktemp("semantic")
    en = corpus_docs("en_docs_debian.jsonl.gz", 400, 1500, 12)
    zh = corpus_docs("zh_news_peoples_daily_1998.jsonl.gz", 300, 900, 12)
    records, copies = [], {}
    for lang, docs in (("en", en), ("zh", zh)):
        for i, r in enumerate(docs):
            records.append({"id": r["id"], "text": r["text"], "lang": lang})
        for i, r in enumerate(docs[:5]):
            vid = f"{r['id']}-variant"
            records.append({"id": vid, "text": variant(r["text"], lang == "zh", rng), "lang": lang})
            copies[vid] = r["id"]
    write_jsonl(tmp / "in" / "a.jsonl", records[:20])
    write_jsonl(tmp / "in" / "b.jsonl", records[20:])
    write_jsonl(tmp / "one" / "all.jsonl", records)
    return tmp, records, copies


@pytest.fixture(scope="module")
def stage_result(paraphrase_corpus, spark):
    tmp, _, _ = paraphrase_corpus
    m = run_stage(SEMANTIC, load_profile(None, []), str(tmp / "in"), str(tmp / "out"), spark=spark)
    return m, tmp / "out"


def test_variants_removed_and_originals_kept(paraphrase_corpus, stage_result):
    _, records, copies = paraphrase_corpus
    m, out = stage_result
    removed = {r["id"]: r for r in read_dir(out / "removed")}
    assert set(removed) == set(copies)
    for vid, r in removed.items():
        assert r["reason"] == "semantic_duplicate" and r["duplicate_of"] == copies[vid]
        assert 0.9 <= r["similarity"] <= 1.0
    kept = read_dir(out / "kept")
    assert len(kept) == len(records) - len(copies)
    by_id = {r["id"]: r for r in kept}
    for orig in copies.values():
        assert by_id[orig]["semantic_duplicates"] == 1
    assert all(r["semantic_cluster"] and r["semantic_cluster_size"] >= 1 for r in kept)
    assert {r["semantic_cluster"].split("/")[0] for r in kept} == {"sentence-transformers", "e5"}
    assert m["counts"]["reconciled"]
    clusters = read_dir(out / "clusters")
    assert len(clusters) == len(records) and {r["level"] for r in clusters} == {"document"}
    emb = read_dir(out / "embeddings")
    assert len(emb) == len(records) and all(len(r["vector"]) == 2 * 384 for r in emb)


def test_deterministic_across_files_and_partitions(paraphrase_corpus, stage_result, spark, tmp_path):
    tmp, _, _ = paraphrase_corpus
    _, out = stage_result
    before = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "1")
        run_stage(SEMANTIC, load_profile(None, []), str(tmp / "one"), str(tmp_path / "one"), spark=spark)
        spark.conf.set("spark.sql.shuffle.partitions", "3")
        run_stage(SEMANTIC, load_profile(None, []), str(tmp / "in"), str(tmp_path / "three"), spark=spark)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)

    def rows(d, name, cols):
        return sorted(tuple(r[c] for c in cols) for r in read_dir(d / name))

    for name, cols in (("removed", ("id", "duplicate_of", "similarity")),
                       ("kept", ("id", "semantic_cluster", "semantic_cluster_size", "semantic_duplicates")),
                       ("clusters", ("id", "cluster", "cluster_size", "distance"))):
        assert rows(out, name, cols) == rows(tmp_path / "one", name, cols) == rows(tmp_path / "three", name, cols)


def test_paragraph_level_cuts_reworded_boilerplate(spark, tmp_path):
    """A reworded notice paragraph in several documents: the first stays, later ones are cut;
    code is never split."""
    docs = corpus_docs("en_docs_debian.jsonl.gz", 400, 1200, 4)
    notices = ["This page is maintained by the documentation team of the project. Please send corrections "
               "and suggestions to the mailing list, and include the page name in the subject line.",
               "This page is maintained by the project's documentation team. Please send suggestions and "
               "corrections to the mailing list and include the name of the page in the subject line.",
               "This page is maintained by the documentation team of this project. Send corrections and "
               "suggestions to the mailing list, including the page name in the subject line please."]
    records = [{"id": "d0", "text": docs[0]["text"] + "\n\n" + notices[0], "lang": "en"},
               {"id": "d1", "text": docs[1]["text"] + "\n\n" + notices[1], "lang": "en"},
               {"id": "d2", "text": notices[2] + "\n\n" + docs[2]["text"], "lang": "en"},
               {"id": "code", "text": "def f(x):\n    return x\n\n\n" + notices[0] + "\n", "lang": "code"},
               {"id": "d3", "text": docs[3]["text"], "lang": "en"}]
    write_jsonl(tmp_path / "in" / "a.jsonl", records)
    profile = load_profile(None, ["semantic-dedup.levels=[document, paragraph]"])
    m = run_stage(SEMANTIC, profile, str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    spans = read_dir(tmp_path / "out" / "removed_spans")
    assert sorted(s["doc_id"] for s in spans) == ["d1", "d2"]
    assert all(s["level"] == "paragraph" and s["duplicate_of"] == "d0" and s["score"] >= 0.9 for s in spans)
    assert {s["text"].strip() for s in spans} == {notices[1], notices[2]}
    kept = {r["id"]: r["text"] for r in read_dir(tmp_path / "out" / "kept")}
    assert notices[0] in kept["d0"] and notices[1] not in kept["d1"] and kept["code"] == records[3]["text"]
    c = m["counts"]
    assert c["reconciled"] and c["removed_spans"]["by_level"]["paragraph"]["docs"] == 2


def test_bad_config_is_refused(spark, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": "a", "text": "hello there, a document"}])
    for item, words in (("semantic-dedup.default_backend=word2vec", "backend"),
                        ("semantic-dedup.models={e5: /no/such/model.bin}", "does not exist"),
                        ("semantic-dedup.levels=[chapter]", "levels"),
                        ("semantic-dedup.keep=score", "score_column")):
        with pytest.raises(UserError, match=words):
            run_stage(SEMANTIC, load_profile(None, [item]), str(tmp_path / "in"), str(tmp_path / "o"), spark=spark)


def test_reclustering_reuses_the_embeddings(paraphrase_corpus, stage_result, spark, tmp_path):
    """embeddings_from: another threshold on the same vectors, without a forward pass; refused
    for another input."""
    tmp, _, copies = paraphrase_corpus
    _, out = stage_result
    strict = ["semantic-dedup.embeddings_from=" + str(out), "semantic-dedup.rule=threshold",
              "semantic-dedup.eps={sentence-transformers: {document: 0.001}, e5: {document: 0.001}}"]
    m = run_stage(SEMANTIC, load_profile(None, strict), str(tmp / "in"), str(tmp_path / "strict"), spark=spark)
    assert m["stats"]["semantic"]["forward_task_seconds"] == 0
    assert m["counts"]["removed"]["docs"] < len(copies)
    assert read_dir(tmp_path / "strict" / "embeddings") == read_dir(out / "embeddings")
    with pytest.raises(UserError, match="another input"):
        run_stage(SEMANTIC, load_profile(None, strict[:1]), str(tmp / "one"), str(tmp_path / "x"), spark=spark)
