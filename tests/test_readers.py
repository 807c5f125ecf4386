"""Bad input is quarantined with its reason, never dropped; unreadable files fail clearly."""
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import read_dir, small_tokenizer, write_jsonl
from pipeline.config import load_profile
from pipeline.errors import BadInputFiles, UserError
from pipeline.readers import DocTally, plan_read, read_documents, resolve_input, unit_documents_counted
from pipeline.schema import QUARANTINE_SCHEMA
from pipeline.stage import run_stage
from pipeline.taskfiles import PartWriter
from dedup.exact import STAGE as EXACT

GOOD = [{"id": "g1", "text": "A perfectly fine English document.", "lang": "en", "source": "s", "extra": [1, 2]},
        {"text": "没有编号的中文文档。", "lang": "zh"}]
BAD_LINES = [
    (b"{not json", "invalid_json"),
    (b'["a", "list"]', "not_an_object"),
    (b'{"id": "m"}', "missing_text"),
    (b'{"text": null}', "missing_text"),
    (b'{"text": 42}', "text_not_string"),
    (b'{"text": ""}', "empty_text"),
    (b'{"text": "  \\n\\t "}', "empty_text"),
    (b'{"text": "bad \xff\xfe bytes"}', "invalid_utf8"),
    (b'{"text": "lone \\ud800 surrogate"}', "invalid_utf8"),
    (b'{"text": "' + b"x" * 300 + b'"}', "text_too_large"),
]


def profile(tmp_path, **read):
    overrides = [f"read.{k}={json.dumps(v)}" for k, v in read.items()]
    overrides.append("write.files_per_output=1")
    return load_profile(None, overrides)


def test_every_bad_record_kind_is_quarantined_with_reason(tmp_path, spark):
    lines = [json.dumps(GOOD[0]).encode(), *[line for line, _ in BAD_LINES], json.dumps(GOOD[1], ensure_ascii=False).encode()]
    write_jsonl(tmp_path / "in" / "mixed.jsonl", lines)
    prof = profile(tmp_path, max_text_bytes=200, quarantine_preview_bytes=64)
    res = read_documents(spark, resolve_input(str(tmp_path / "in")), prof.read)
    docs = {r["id"]: r for r in res.docs.collect()}
    q = sorted(res.quarantine.collect(), key=lambda r: r["record"])
    assert set(docs) == {"g1", "mixed.jsonl:12"}  # missing id -> file name + line number
    assert json.loads(docs["g1"]["meta"]) == {"extra": [1, 2]}
    assert docs["mixed.jsonl:12"]["source"] == "mixed"  # default source: the file's stem
    assert [(r["record"], r["reason"]) for r in q] == [(i + 2, reason) for i, (_, reason) in enumerate(BAD_LINES)]
    for r, (line, _) in zip(q, BAD_LINES):
        assert r["file"] == "mixed.jsonl" and r["error"]
        if r["reason"] == "text_too_large":
            assert r["raw_truncated"] and r["raw"] == line[:64] and r["n_bytes"] == len(line)
            assert r["n_chars"] == 300
        else:
            assert bytes(r["raw"]) == line  # the original bytes, untouched


def test_stage_counts_reconcile_with_bad_input(tmp_path, spark):
    lines = [json.dumps(GOOD[0]).encode(), *[line for line, _ in BAD_LINES], json.dumps(GOOD[1]).encode()]
    write_jsonl(tmp_path / "in" / "a.jsonl", lines)
    write_jsonl(tmp_path / "in" / "b.jsonl.gz", [GOOD[0] | {"id": "g2"}], gz=True)
    prof = profile(tmp_path, max_text_bytes=200)
    m = run_stage(EXACT, prof, str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    c = m["counts"]
    assert c["input"]["docs"] == 13
    assert c["quarantined"]["docs"] == len(BAD_LINES)
    assert c["kept"]["docs"] + c["removed"]["docs"] + c["quarantined"]["docs"] == 13
    assert c["removed"]["by_reason"] == {"exact_duplicate": {"docs": 1, "chars": len(GOOD[0]["text"])}}
    assert c["input"]["chars"] == c["kept"]["chars"] + c["removed"]["chars"] + c["quarantined"]["chars"] + \
        c["removed_spans"]["chars"]
    assert len(read_dir(tmp_path / "out" / "quarantine")) == len(BAD_LINES)
    reasons = {r: v["docs"] for r, v in c["quarantined"]["by_reason"].items()}
    assert reasons == {"invalid_json": 1, "not_an_object": 1, "missing_text": 2, "text_not_string": 1,
                       "empty_text": 2, "invalid_utf8": 2, "text_too_large": 1}


def test_unit_documents_counted_yields_good_quarantines_bad_and_counts(tmp_path):
    """The streaming engines' read loop on one unit: the good records in input order (no empty
    batch), every refused one in the quarantine writer with its reason, the tally = what it yielded."""
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": "other", "text": "another unit"}])
    lines = [json.dumps(GOOD[0]).encode(), *[line for line, _ in BAD_LINES[:5]],
             json.dumps(GOOD[1], ensure_ascii=False).encode(), *[line for line, _ in BAD_LINES[5:]]]
    write_jsonl(tmp_path / "in" / "mixed.jsonl", lines)
    prof = profile(tmp_path, max_text_bytes=200, records_per_batch=3)
    plan = plan_read(resolve_input(str(tmp_path / "in")), prof.read)
    unit = next(u.index for u in plan.units if u.rel == "mixed.jsonl")
    quarantine, tally = PartWriter(tmp_path / "q", unit, 0, QUARANTINE_SCHEMA), DocTally()
    batches = list(unit_documents_counted(plan, unit, quarantine, tally))
    quarantine.close()
    # batches of 3 records: [good, bad, bad] [bad x3: none yielded] [good, bad, bad] [bad x3]
    assert [b.num_rows for b in batches] == [1, 1] and all(b.schema.equals(plan.doc_schema) for b in batches)
    docs = [r for b in batches for r in b.to_pylist()]
    assert [(d["id"], d["text"]) for d in docs] == [("g1", GOOD[0]["text"]), ("mixed.jsonl:7", GOOD[1]["text"])]
    assert [(r["file"], r["record"], r["reason"]) for r in read_dir(tmp_path / "q")] == \
        [("mixed.jsonl", line_no, reason) for line_no, (_, reason) in zip([2, 3, 4, 5, 6, 8, 9, 10, 11, 12], BAD_LINES)]
    assert (tally.docs, tally.chars) == (2, len(GOOD[0]["text"]) + len(GOOD[1]["text"]))


def test_oversized_line_is_never_read_whole(tmp_path, spark):
    big = b'{"text": "' + b"y" * 5000 + b'"}'
    write_jsonl(tmp_path / "in" / "big.jsonl", [big, json.dumps(GOOD[0]).encode()])
    prof = profile(tmp_path, max_text_bytes=100, quarantine_preview_bytes=32)
    res = read_documents(spark, resolve_input(str(tmp_path / "in")), prof.read)
    (q,) = res.quarantine.collect()
    assert q["reason"] == "text_too_large" and q["n_bytes"] == len(big) and len(q["raw"]) == 32
    assert [r["id"] for r in res.docs.collect()] == ["g1"]


def _corrupt_gzip(path: Path):
    good = gzip.compress(b"".join(json.dumps({"text": f"record number {i} " * 20}).encode() + b"\n"
                                  for i in range(2000)), mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(good[: len(good) // 2])  # truncated stream


def test_corrupt_gzip_fails_clearly_unless_skipped(tmp_path, spark):
    _corrupt_gzip(tmp_path / "in" / "broken.jsonl.gz")
    write_jsonl(tmp_path / "in" / "ok.jsonl", GOOD)
    with pytest.raises(BadInputFiles, match="broken.jsonl.gz"):
        run_stage(EXACT, profile(tmp_path), str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.incomplete").exists()
    m = run_stage(EXACT, profile(tmp_path, skip_bad_files=True), str(tmp_path / "in"), str(tmp_path / "out2"),
                  spark=spark)
    q = m["counts"]["quarantined"]["by_reason"]
    assert q["unreadable_file"]["docs"] == 1
    # the records before the corruption were read; the kept/removed/quarantined counts still add up
    assert m["counts"]["kept"]["docs"] > 2 and m["counts"]["reconciled"]


def test_streaming_stage_bad_files_like_any_stage(tmp_path, spark):
    """A streaming stage (tokenize reads its own units) fails on a corrupt gzip or a truncated
    parquet file, or with --skip-bad-files quarantines them as unreadable_file and reconciles."""
    from tokenizer_training.stage import TOKENIZE_STAGE

    lines = [f"sample line {i} with words and digits {i * 7}" for i in range(400)]
    model = small_tokenizer(lines, tmp_path / "m", 340, min_last_merge_frequency=0)
    _corrupt_gzip(tmp_path / "in" / "broken.jsonl.gz")
    write_jsonl(tmp_path / "in" / "ok.jsonl", GOOD)
    pq.write_table(pa.table({"text": ["a parquet document"] * 50}), tmp_path / "in" / "p.parquet")
    data = (tmp_path / "in" / "p.parquet").read_bytes()
    (tmp_path / "in" / "t.parquet").write_bytes(data[: len(data) // 2])
    prof = [f"tokenize.tokenizer={model}"]
    with pytest.raises(BadInputFiles, match="t.parquet"):
        run_stage(TOKENIZE_STAGE, load_profile(None, prof), str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    (tmp_path / "in" / "t.parquet").unlink()
    with pytest.raises(BadInputFiles, match="broken.jsonl.gz"):
        run_stage(TOKENIZE_STAGE, load_profile(None, prof), str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.incomplete").exists()
    (tmp_path / "in" / "t.parquet").write_bytes(data[: len(data) // 2])
    m = run_stage(TOKENIZE_STAGE, load_profile(None, [*prof, "read.skip_bad_files=true"]), str(tmp_path / "in"),
                  str(tmp_path / "out"), spark=spark)
    q = m["counts"]["quarantined"]["by_reason"]
    assert q["unreadable_file"]["docs"] == 2 and m["counts"]["reconciled"]
    assert {r["file"] for r in m["bad_files"]} == {"t.parquet"}
    assert m["counts"]["kept"]["docs"] > 2 + 50  # records before the gzip damage, ok.jsonl, p.parquet


def test_parquet_input_and_truncated_parquet(tmp_path, spark):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"text": ["First parquet document here.", "Second one, different.", None, "\u3000 \n"],
                             "score": [0.5, 0.25, 1.0, 2.0]}), tmp_path / "in" / "p.parquet")
    res = read_documents(spark, resolve_input(str(tmp_path / "in")), profile(tmp_path).read)
    rows = sorted(res.docs.collect(), key=lambda r: r["doc_pos"])
    assert [r["id"] for r in rows] == ["p.parquet:0", "p.parquet:1"]
    assert [r["score"] for r in rows] == [0.5, 0.25]  # extra columns are kept
    assert sorted(r["reason"] for r in res.quarantine.collect()) == ["empty_text", "missing_text"]
    data = (tmp_path / "in" / "p.parquet").read_bytes()
    (tmp_path / "in" / "t.parquet").write_bytes(data[: len(data) - 20])
    with pytest.raises(BadInputFiles, match="t.parquet"):
        read_documents(spark, resolve_input(str(tmp_path / "in")), profile(tmp_path).read)


def test_parquet_types_and_row_groups(tmp_path, spark):
    """Parquet read by our own reader: ids of any type become strings, extra columns of types
    Spark has no exact match for are widened, files without a column get nulls, invalid UTF-8 and
    a non-string text are quarantined, and units split at row groups keep row numbers."""
    (tmp_path / "in").mkdir()
    bad_utf8 = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(b"\x00\x00\x00\x00\x04\x00\x00\x00"),
                                                       pa.py_buffer(b"ab\xff!")])
    texts = pa.concat_arrays([pa.array([f"document number {i}" for i in range(6)]), bad_utf8])
    pq.write_table(pa.table({"id": pa.array(range(7), pa.int64()), "text": texts,
                             "n": pa.array(range(7), pa.uint32()),
                             "tag": pa.array(["a", "b"] * 3 + ["a"]).dictionary_encode(),
                             "note": pa.array(["x"] * 7, pa.large_string())}),
                   tmp_path / "in" / "a.parquet", row_group_size=3)
    pq.write_table(pa.table({"text": pa.array([1, 2], pa.int64())}), tmp_path / "in" / "b.parquet")
    pq.write_table(pa.table({"text": ["y" * 300]}), tmp_path / "in" / "c.parquet")
    settings = profile(tmp_path, unit_bytes=1, max_text_bytes=200, quarantine_preview_bytes=100).read
    from pipeline.readers import plan_read

    plan = plan_read(resolve_input(str(tmp_path / "in")), settings)
    assert [(u.rel, u.row_groups, u.first_row) for u in plan.units] == [
        ("a.parquet", (0,), 0), ("a.parquet", (1,), 3), ("a.parquet", (2,), 6), ("b.parquet", (0,), 0),
        ("c.parquet", (0,), 0)]
    res = read_documents(spark, resolve_input(str(tmp_path / "in")), settings)
    rows = sorted(res.docs.collect(), key=lambda r: r["doc_pos"])
    assert [r["id"] for r in rows] == [str(i) for i in range(6)]
    assert [r["n"] for r in rows] == list(range(6)) and rows[0]["tag"] == "a" and rows[0]["note"] == "x"
    assert [r["doc_pos"] & 0xFFFFFFFF for r in rows] == list(range(6))
    assert rows[0]["source"] == "a"
    q = sorted(res.quarantine.collect(), key=lambda r: (r["file"], r["record"]))
    assert [(r["file"], r["record"], r["reason"]) for r in q] == [
        ("a.parquet", 6, "invalid_utf8"), ("b.parquet", 0, "text_not_string"), ("b.parquet", 1, "text_not_string"),
        ("c.parquet", 0, "text_too_large")]
    assert b"ab\xff!" in q[0]["raw"]  # the original bytes, not a replacement character
    assert q[3]["n_chars"] == 300 and q[3]["raw_truncated"] and len(q[3]["raw"]) == 100


def test_user_mistakes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="input not found"):
        resolve_input(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no JSONL"):
        resolve_input(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="unknown config key"):
        load_profile(None, ["read.max_text_byte=3"])
    with pytest.raises(UserError, match="must be int"):
        load_profile(None, ["read.max_text_bytes=lots"])
