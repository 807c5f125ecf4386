"""One test per defect the hardening review found: each failed before its fix."""
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, read_dir, write_jsonl
from dedup.exact import STAGE as EXACT
from pipeline.config import ReadSettings, load_profile
from pipeline.errors import UserError
from pipeline.outdir import output_lock
from pipeline.readers import plan_read, read_unit, resolve_input, split_read_batch
from pipeline.stage import run_stage

ENV = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1", PYTHONUNBUFFERED="1")
GOOD = {"id": "ok", "text": "A perfectly ordinary document that should be kept.", "lang": "en"}


def read_all(path) -> tuple[list, list]:
    """(documents, quarantine rows) of an input, straight from the reader (no Spark)."""
    plan = plan_read(resolve_input(str(path)), ReadSettings())
    docs, quarantined = [], []
    for unit in plan.units:
        for raw in read_unit(unit, plan):
            d, q = split_read_batch(raw, plan)
            docs += d.to_pylist()
            quarantined += q.to_pylist() if q is not None else []
    return docs, quarantined


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(r) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("WARNING: Using incubator")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    return lines[0]


# 1. One record cannot crash the job.
def test_deeply_nested_json_and_a_lone_surrogate_id_are_quarantined(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    lines = [json.dumps(GOOD).encode(), deep.encode(), ('{"text": "x", "meta": ' + deep + "}").encode(),
             b'{"id": "\\udc00"}', b'{"id": "\\udc00", "text": 5}']
    write_jsonl(tmp_path / "in" / "a.jsonl", lines)
    docs, q = read_all(tmp_path / "in")
    assert [d["id"] for d in docs] == ["ok"]
    assert [(r["record"], r["reason"]) for r in q] == [(2, "invalid_json"), (3, "invalid_json"),
                                                       (4, "missing_text"), (5, "text_not_string")]
    assert q[2]["id"] == "\\udc00" and q[2]["raw"] == lines[3]


# 2. Valid text in other parquet encodings; invalid UTF-8 in any string column refused.
def test_parquet_dictionary_and_binary_text(tmp_path):
    (tmp_path / "in").mkdir()
    texts = ["First text, from a pandas categorical column.", "Second text, the same way."]
    pq.write_table(pa.table({"text": pa.array(texts).dictionary_encode(),
                             "lang": pa.array(["en", "en"]).dictionary_encode()}), tmp_path / "in" / "a.parquet")
    pq.write_table(pa.table({"text": pa.array([t.encode() for t in texts] + [b"\xff\xfe bad"], pa.binary()),
                             "id": ["b0", "b1", "b2"]}), tmp_path / "in" / "b.parquet")
    pq.write_table(pa.table({"text": pa.array([b"good text here", b"more good text"], pa.binary()).view(pa.string()),
                             "lang": pa.array([b"en", b"\xc3"], pa.binary()).view(pa.string())}),
                   tmp_path / "in" / "c.parquet")
    docs, q = read_all(tmp_path / "in")
    assert [d["text"] for d in docs] == texts + texts + ["good text here"]
    assert docs[0]["lang"] == "en"
    assert [(r["file"], r["record"], r["reason"]) for r in q] == [("b.parquet", 2, "invalid_utf8"),
                                                                  ("c.parquet", 1, "invalid_utf8")]


# 3. Files not read are said, in the log and the manifest.
def test_skipped_files_are_listed(tmp_path, spark, capsys):
    write_jsonl(tmp_path / "in" / "a.jsonl", [GOOD])
    write_jsonl(tmp_path / "in" / "_part.jsonl", [GOOD])
    write_jsonl(tmp_path / "in" / ".hidden.jsonl", [GOOD])
    (tmp_path / "in" / "notes.txt").write_text("not data")
    m = run_stage(EXACT, load_profile(None), str(tmp_path / "in"), str(tmp_path / "out"), spark=spark)
    listed = {f["file"]: f["why"] for f in m["input"]["skipped_files"]["files"]}
    assert m["input"]["skipped_files"]["count"] == 3
    assert set(listed) == {"_part.jsonl", ".hidden.jsonl", "notes.txt"} and "hidden" in listed["_part.jsonl"]
    log = capsys.readouterr().out
    assert "not reading 2 file(s)" in log and "_part.jsonl" in log and "notes.txt" in log


# 4. Two runs on one output: the second gets one clear error.
def test_second_run_on_a_locked_output_is_refused(tmp_path, spark):
    write_jsonl(tmp_path / "in" / "a.jsonl", [GOOD])
    out = tmp_path / "out"
    with output_lock(out.resolve()):  # another run holds the output
        with pytest.raises(UserError, match="another run is writing output"):
            run_stage(EXACT, load_profile(None), str(tmp_path / "in"), str(out), spark=spark)
    assert not out.exists() and not (tmp_path / ".out.incomplete").exists()
    run_stage(EXACT, load_profile(None), str(tmp_path / "in"), str(out), spark=spark)  # free again
    assert read_dir(out / "kept")[0]["id"] == "ok"
    assert not (tmp_path / ".out.lock").exists()


# 5. Output inside the input, output that is a file.
def test_output_inside_the_input_or_a_file_is_refused(tmp_path, spark):
    write_jsonl(tmp_path / "in" / "a.jsonl", [GOOD])
    with pytest.raises(UserError, match="inside the input directory"):
        run_stage(EXACT, load_profile(None), str(tmp_path / "in"), str(tmp_path / "in" / "out"), spark=spark)
    (tmp_path / "file").write_text("precious")
    with pytest.raises(UserError, match="is not a directory"):
        run_stage(EXACT, load_profile(None), str(tmp_path / "in"), str(tmp_path / "file"), spark=spark,
                  overwrite=True)
    assert (tmp_path / "file").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "in"]


# 6. User mistakes that gave tracebacks.
def test_user_mistakes_get_one_error_line_and_leave_nothing(tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [GOOD])
    (tmp_path / "afile").write_text("x")
    line = one_error_line(cli("exact-dedup", "--input", str(tmp_path / "in"), "--output",
                              str(tmp_path / "afile" / "out")))
    assert "cannot create the output's parent directory" in line
    line = one_error_line(cli("exact-dedup", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
                              "--set", "exact-dedup.min_sentence_chars=[1, 2"))
    assert "not valid YAML" in line
    line = one_error_line(cli("exact-dedup", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
                              "--master", "nonsense://x"))
    assert "invalid Spark master" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "in"]  # no .o.incomplete, no lock


def test_unwritable_output_parent_is_one_error(tmp_path, spark):
    """A parent the run may not write into (immutable: refused even to root, as these tests run)."""
    write_jsonl(tmp_path / "in" / "a.jsonl", [GOOD])
    parent = tmp_path / "ro"
    parent.mkdir()
    if subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        with pytest.raises(UserError, match="cannot write output"):
            run_stage(EXACT, load_profile(None), str(tmp_path / "in"), str(parent / "out"), spark=spark)
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=True)
    assert list(parent.iterdir()) == []


# 7. A checkpoint cannot run code on resume.
class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_crafted_pickle_in_a_checkpoint_is_refused(tmp_path):
    import random

    import numpy as np
    import torch

    from model import checkpoint as ckpt

    _Exploit.marker = tmp_path / "pwned"
    buf = io.BytesIO()
    pickle.dump({"torch": _Exploit()}, buf)
    (tmp_path / "rng.pt").write_bytes(buf.getvalue())
    with pytest.raises(ckpt.CheckpointError, match="refusing to load"):
        ckpt.load_data_only(tmp_path / "rng.pt")
    assert not _Exploit.marker.exists()
    # the RNG state the trainer writes loads data-only and restores every generator
    torch.save(ckpt.rng_state(), tmp_path / "ok.pt")
    want = (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random())
    ckpt.set_rng_state(ckpt.load_data_only(tmp_path / "ok.pt"))
    assert (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random()) == want


# 8. Byte-identical output, also where a stage's output is a Spark DataFrame (train-tokenizer's
# sample): Spark's own writer listed column encodings in a run-dependent order, under random names.
def test_dataframe_outputs_are_byte_identical_between_runs(tmp_path, spark):
    from pipeline.stage import _write

    rows = [(i, f"doc {i}: " + "some words " * (i % 7), "en" if i % 3 else None) for i in range(2000)]
    df = spark.createDataFrame(rows, "doc_pos long, text string, lang string")
    for k in range(2):
        _write(df.repartition(7), tmp_path / f"o{k}", 3, ["doc_pos"])
    names = sorted(p.name for p in (tmp_path / "o0").iterdir())
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    for name in names:
        assert (tmp_path / "o0" / name).read_bytes() == (tmp_path / "o1" / name).read_bytes(), name
    back = sorted(r["doc_pos"] for r in read_dir(tmp_path / "o0"))
    assert back == list(range(2000))
