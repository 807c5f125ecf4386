"""Token shards: the `tokenize` stage in Spark, read back with an independent Megatron reader
written here from the documented format, plus the parquet token shards, reproducibility,
`repeats`, and the trainer's packing read over the stage's shards."""
import gzip
import hashlib
import itertools
import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from conftest import CORPORA, read_dir, small_tokenizer, write_jsonl
from pipeline.config import load_profile
from pipeline.stage import run_stage
from model.data import PackedSamples, TokenShards, find_shards, manifest_vocab_size
from pipeline.indexed_dataset import IndexedDatasetWriter
from tokenizer_training.shards import shard_entry, shard_name
from tokenizer_training.stage import TOKENIZE_STAGE

# ------------------------------------------------------------------------------------------
# An independent reader of Megatron-LM's indexed dataset, from the documented format only:
#   .idx: magic b"MMIDIDX\x00\x00" | <Q version=1 | <B dtype code | <Q sequence_count |
#         <Q document_count | int32 lengths[sequence_count] | int64 pointers[sequence_count] |
#         int64 document_indices[document_count];   .bin: the ids, concatenated.
DTYPES = {1: "u1", 2: "i1", 3: "<i2", 4: "<i4", 5: "<i8", 6: "<f8", 7: "<f4", 8: "<u2"}


def megatron_read(prefix):
    raw = Path(str(prefix) + ".idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, = struct.unpack("<Q", raw[9:17])
    code, = struct.unpack("<B", raw[17:18])
    n_seq, n_doc = struct.unpack("<QQ", raw[18:34])
    assert version == 1
    off = 34
    lengths = struct.unpack(f"<{n_seq}i", raw[off:off + 4 * n_seq])
    off += 4 * n_seq
    pointers = struct.unpack(f"<{n_seq}q", raw[off:off + 8 * n_seq])
    off += 8 * n_seq
    doc_idx = struct.unpack(f"<{n_doc}q", raw[off:off + 8 * n_doc])
    assert off + 8 * n_doc == len(raw)
    data = Path(str(prefix) + ".bin").read_bytes()
    dt = np.dtype(DTYPES[code])
    seqs = [np.frombuffer(data, dtype=dt, count=n, offset=p).tolist() for n, p in zip(lengths, pointers)]
    assert sum(lengths) * dt.itemsize == len(data)
    return code, seqs, list(doc_idx)


def read_all_shards(shard_dir):
    seqs = []
    for idx in sorted(Path(shard_dir).glob("*.idx")):
        code, s, doc_idx = megatron_read(idx.with_suffix(""))
        assert code == 4  # int32
        assert doc_idx == list(range(len(s) + 1))
        seqs.extend(s)
    return seqs


# ------------------------------------------------------------------------------------------
EDGE = ["emoji 😀 and rare 𠀀 and control \x01 chars", "    indented\n\tcode();\n", "数字 2024 年 12 月",
        "ＡＢＣ full width", "  leading and trailing  "]


def docs_fixture():
    out = []
    for name, n in (("zh_news_peoples_daily_1998", 60), ("en_fortunes", 80), ("code_c_cpp_headers", 20)):
        with gzip.open(CORPORA / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in itertools.islice(f, n):
                d = json.loads(line)
                out.append({"id": d["id"], "text": d["text"][:6000], "source": d["source"], "lang": d["lang"]})
    out += [{"id": f"edge-{i}", "text": t, "source": "edge", "lang": "en"} for i, t in enumerate(EDGE)]
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return small_tokenizer((d["text"] for d in docs_fixture()), tmp_path_factory.mktemp("model"), 4000,
                           num_threads=2, min_last_merge_frequency=2)


def profile(*extra):
    return load_profile(None, ["write.files_per_output=2", "tokenize.shard_size_tokens=40000", *extra])


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory, spark, model):
    tmp = tmp_path_factory.mktemp("tokenize")
    docs = docs_fixture()
    write_jsonl(tmp / "in" / "docs.jsonl", docs)
    prof = profile(f"tokenize.tokenizer={model}")
    m1 = run_stage(TOKENIZE_STAGE, prof, str(tmp / "in"), str(tmp / "out1"), spark=spark)
    m2 = run_stage(TOKENIZE_STAGE, prof, str(tmp / "in"), str(tmp / "out2"), spark=spark)
    return tmp, docs, m1, m2


def expected_ids(sp, text):
    return sp.encode(text) + [sp.eos_id()]


def test_bin_idx_match_sentencepiece(tokenized, model):
    tmp, docs, m1, _ = tokenized
    sp = spm.SentencePieceProcessor(model_file=model)
    seqs = read_all_shards(tmp / "out1" / "shards")
    assert len(seqs) == len(docs)
    assert Counter(map(tuple, seqs)) == Counter(tuple(expected_ids(sp, d["text"])) for d in docs)
    assert all(s[-1] == 2 and 2 not in s[:-1] for s in seqs)  # one </s>, at the end
    man = json.loads((tmp / "out1" / "shards" / "_manifest.json").read_text())
    assert man["vocab_size"] == sp.get_piece_size() == 4000 and man["dtype"] == "int32"
    assert man["tokens"] == sum(map(len, seqs)) and man["documents"] == len(docs)
    assert len(man["shards"]) > 1 and sum(s["tokens"] for s in man["shards"]) == man["tokens"]
    by_lang = Counter()
    for d in docs:
        by_lang[d["lang"]] += len(expected_ids(sp, d["text"]))
    assert man["tokens_by_lang"] == dict(by_lang)
    for s in man["shards"]:  # the manifest's checksums are those of the files
        for key in ("bin", "idx"):
            f = tmp / "out1" / "shards" / s[key]
            assert hashlib.sha256(f.read_bytes()).hexdigest() == s[key + "_sha256"]
            assert f.stat().st_size == s[key + "_bytes"]


def test_parquet_token_shards(tokenized, model):
    tmp, docs, m1, _ = tokenized
    sp = spm.SentencePieceProcessor(model_file=model)
    by_id = {d["id"]: d for d in docs}
    files = sorted((tmp / "out1" / "kept").glob("*.parquet"))
    assert len(files) == 1  # one file per read unit: the input is one JSONL file
    schema = pq.read_schema(files[0])
    assert schema.field("input_ids").type == pa.list_(pa.int32()) or \
        schema.field("input_ids").type.value_type == pa.int32()
    rows = read_dir(tmp / "out1" / "kept")
    assert sorted(r["id"] for r in rows) == sorted(by_id)
    for r in rows:
        d = by_id[r["id"]]
        assert r["input_ids"] == expected_ids(sp, d["text"])
        assert r["n_tokens"] == len(r["input_ids"]) and r["n_chars"] == len(d["text"])
        assert r["n_bytes"] == len(d["text"].encode("utf-8"))
        assert (r["source"], r["lang"]) == (d["source"], d["lang"])
    c = m1["counts"]
    assert c["reconciled"] and c["kept"]["docs"] == len(docs)
    assert c["kept"]["chars"] == sum(len(d["text"]) for d in docs)
    assert m1["stats"]["vocab_size"] == 4000
    assert m1["stats"]["encode_cpu_s"] > 0  # CPU inside SentencePiece, reported by the tasks


def test_reproducible(tokenized):
    tmp, _, m1, m2 = tokenized
    a = json.loads((tmp / "out1" / "shards" / "_manifest.json").read_text())
    b = json.loads((tmp / "out2" / "shards" / "_manifest.json").read_text())
    assert [(s["bin_sha256"], s["idx_sha256"]) for s in a["shards"]] == \
        [(s["bin_sha256"], s["idx_sha256"]) for s in b["shards"]]
    assert a == b  # the shards' manifest holds no timings: a re-run gives the same file
    ra, rb = read_dir(tmp / "out1" / "kept"), read_dir(tmp / "out2" / "kept")
    assert ra == rb


def test_repeats_and_seed(tmp_path, spark, model):
    docs = docs_fixture()[:40]
    reps = [i % 4 for i in range(len(docs))]  # 0..3 copies
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs],
                      "source": [d["source"] for d in docs], "lang": [d["lang"] for d in docs],
                      "repeats": pa.array(reps, pa.int32())})
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "part-0.parquet")
    run_stage(TOKENIZE_STAGE, profile(f"tokenize.tokenizer={model}", "tokenize.seed=7"), str(tmp_path / "in"),
              str(tmp_path / "out"), spark=spark)
    sp = spm.SentencePieceProcessor(model_file=model)
    seqs = read_all_shards(tmp_path / "out" / "shards")
    want = Counter()
    for d, k in zip(docs, reps):
        want[tuple(expected_ids(sp, d["text"]))] += k
    assert Counter(map(tuple, seqs)) == want
    rows = read_dir(tmp_path / "out" / "kept")
    assert len(rows) == len(docs) and sorted(r["repeats"] for r in rows) == sorted(reps)
    man = json.loads((tmp_path / "out" / "shards" / "_manifest.json").read_text())
    assert man["sequences"] == sum(reps) and man["seed"] == 7


def _shard_sums(out):
    man = json.loads((out / "shards" / "_manifest.json").read_text())
    return [(e["bin_sha256"], e["idx_sha256"]) for e in man["shards"]]


def test_shards_do_not_depend_on_read_units(tmp_path, spark, model):
    """One parquet file read as one unit or as many (one row group each, read.unit_bytes=1): the
    .bin/.idx shards are byte-identical and kept/ holds the same rows, one file per unit."""
    docs = docs_fixture()
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "in" / "docs.parquet", row_group_size=20)
    prof = [f"tokenize.tokenizer={model}"]
    m_one = run_stage(TOKENIZE_STAGE, profile(*prof), str(tmp_path / "in"), str(tmp_path / "one"), spark=spark)
    m_many = run_stage(TOKENIZE_STAGE, profile(*prof, "read.unit_bytes=1"), str(tmp_path / "in"),
                       str(tmp_path / "many"), spark=spark)
    assert _shard_sums(tmp_path / "one") == _shard_sums(tmp_path / "many")
    assert len(list((tmp_path / "one" / "kept").glob("*.parquet"))) == 1
    assert len(list((tmp_path / "many" / "kept").glob("*.parquet"))) == -(-len(docs) // 20)
    assert read_dir(tmp_path / "one" / "kept") == read_dir(tmp_path / "many" / "kept")
    assert m_one["counts"]["kept"] == m_many["counts"]["kept"]


def test_bad_records_are_quarantined_and_reconciled(tmp_path, spark, model):
    good = docs_fixture()[:10]
    lines = [json.dumps(d, ensure_ascii=False) for d in good[:5]] + [
        "{not json", json.dumps({"id": "no-text"}), json.dumps({"id": "blank", "text": "  \n "})] + \
        [json.dumps(d, ensure_ascii=False) for d in good[5:]]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": ["parquet doc one", None, "\u3000"], "repeats": pa.array([2, 1, 1], pa.int32())}),
                   tmp_path / "in" / "b.parquet")
    m = run_stage(TOKENIZE_STAGE, profile(f"tokenize.tokenizer={model}"), str(tmp_path / "in"),
                  str(tmp_path / "out"), spark=spark)
    q = read_dir(tmp_path / "out" / "quarantine")
    assert sorted((r["file"], r["record"], r["reason"]) for r in q) == [
        ("a.jsonl", 6, "invalid_json"), ("a.jsonl", 7, "missing_text"), ("a.jsonl", 8, "empty_text"),
        ("b.parquet", 1, "missing_text"), ("b.parquet", 2, "empty_text")]
    c = m["counts"]
    assert c["reconciled"] and c["input"]["docs"] == 16 and c["quarantined"]["docs"] == 5
    assert c["kept"]["docs"] == 11
    kept = {r["id"]: r for r in read_dir(tmp_path / "out" / "kept")}
    assert kept["b.parquet:0"]["repeats"] == 2 and kept["b.parquet:0"]["source"] == "b"
    assert m["stats"]["sequences"] == 12  # the parquet document twice


def test_trainer_reads_shards(tokenized):
    """model/data.py's PackedSamples (the one packer) over the stage's shards, checked against the
    documents as the independent Megatron reader above sees them."""
    tmp, docs, _, _ = tokenized
    d = tmp / "out1" / "shards"
    assert manifest_vocab_size(d) == 4000
    seqs = read_all_shards(d)
    shards = TokenShards(find_shards(d))
    assert shards.num_docs == len(docs) and shards.num_tokens == sum(map(len, seqs))
    T = 64
    # File order: sample i is the stream's window [i*T, i*T + T + 1), documents whole and in order.
    stream = np.concatenate([np.asarray(s) for s in seqs])
    seq = PackedSamples(shards, T, shuffle=False)
    assert len(seq) == (len(stream) - 1) // T
    for i in range(len(seq)):
        assert np.array_equal(seq.sample(i), stream[i * T: i * T + T + 1])
    # Shuffled: every sample is a window of that epoch's stream of whole documents, each once; a new
    # reader with the same seed gives the same samples.
    ps = PackedSamples(shards, T, seed=3)
    ps._prepare(0)
    assert sorted(ps._doc_order.tolist()) == list(range(len(docs)))
    shuffled = np.concatenate([shards.doc(int(i)) for i in ps._doc_order])
    windows = {tuple(shuffled[k * T: k * T + T + 1]) for k in range(len(ps))}
    samples = ps.batch(0, len(ps))
    assert {tuple(s) for s in samples} == windows
    again = PackedSamples(TokenShards(find_shards(d)), T, seed=3)
    assert np.array_equal(again.batch(0, len(ps)), samples)


# ------------------------------------------------------------------------------------------
def test_shard_int32_large_ids_and_entry(tmp_path):
    """The stage's way of writing a shard (IndexedDatasetWriter, int32, then shard_entry) keeps ids
    beyond 16 bits and empty documents, and the entry's checksums are those of the files."""
    docs = [[0, 1, 65535, 65536, 125695], [], [7] * 10, list(range(70000, 70100))]
    prefix = tmp_path / shard_name(3)
    with IndexedDatasetWriter(prefix, dtype=np.int32) as w:
        for doc in docs:
            w.add_document(np.asarray(doc, dtype=np.int32))
    entry = shard_entry(prefix, 3, len(docs), 115, {"b": 0, "a": 15, "c": 100}, {"en": 115})
    code, seqs, doc_idx = megatron_read(prefix)
    assert code == 4 and seqs == docs and doc_idx == [0, 1, 2, 3, 4]
    assert entry["prefix"] == "shard-00003" and (entry["bin"], entry["idx"]) == ("shard-00003.bin", "shard-00003.idx")
    # sorted keys: a re-run writes the same manifest bytes
    assert entry["tokens"] == 115 and list(entry["tokens_by_source"]) == ["a", "b", "c"]
    for key in ("bin", "idx"):
        f = tmp_path / entry[key]
        assert entry[key + "_sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert entry[key + "_bytes"] == f.stat().st_size
    assert entry["bin_bytes"] == 4 * 115  # int32
