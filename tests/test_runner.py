"""The runner's steps: config checked before any input is planned, one counter for every output,
shuffle figures in the manifest and the report, and the packages a cluster needs from the one
stage registry."""
import importlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import write_jsonl
from pipeline.config import load_profile
from pipeline.errors import UserError
from pipeline.registry import STAGES, stage_packages
from pipeline.stage import count_outputs, run_stage


def test_config_is_checked_before_the_input(tmp_path):
    from tokenizer_training.stage import TOKENIZE_STAGE

    with pytest.raises(UserError, match="no tokenizer given"):
        run_stage(TOKENIZE_STAGE, load_profile(None, []), str(tmp_path / "no-such-input"), str(tmp_path / "out"))
    with pytest.raises(UserError, match="shard_size_tokens"):
        model = tmp_path / "tokenizer.model"
        model.write_bytes(b"x")
        run_stage(TOKENIZE_STAGE, load_profile(None, [f"tokenize.tokenizer={model}", "tokenize.shard_size_tokens=0"]),
                  str(tmp_path / "no-such-input"), str(tmp_path / "out"))


def test_shipped_packages_come_from_the_registry():
    packages = stage_packages()
    assert packages[0] == "pipeline"
    for target in STAGES.values():
        module = target.split(":")[0]
        assert module.split(".")[0] in packages
        importlib.import_module(module)


def test_one_counter_for_files_and_groups(spark, tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    pq.write_table(pa.table({"text": ["ab", "cde", "f"], "reason": ["x", "y", "x"]}), d / "part-00000.parquet")
    pq.write_table(pa.table({"text": ["ghij"], "reason": ["y"]}), d / "part-00001.parquet")
    tok = tmp_path / "tok"
    tok.mkdir()
    pq.write_table(pa.table({"n_chars": pa.array([10, 20], pa.int64())}), tok / "part-00000.parquet")
    empty = tmp_path / "empty"
    empty.mkdir()
    got = count_outputs(spark, {"removed": (d, ["reason"]), "kept": (tok, []), "none": (empty, ["reason"])})
    assert got["removed"] == {"docs": 4, "chars": 10, "by_reason": {"x": {"docs": 2, "chars": 3},
                                                                    "y": {"docs": 2, "chars": 7}}}
    assert got["kept"] == {"docs": 2, "chars": 30}
    assert got["none"] == {"docs": 0, "chars": 0, "by_reason": {}}


def test_manifest_and_report_show_shuffle_volume(spark, tmp_path):
    from dedup.exact import STAGE as EXACT
    from pipeline.report import write_report

    docs = [{"id": f"d{i}", "text": f"Shared sentence number {i % 4} appears in many documents here. "
                                    f"And a unique sentence, long enough to keep, for document {i} of the corpus."} for i in range(200)]
    write_jsonl(tmp_path / "in" / "a.jsonl", docs)
    m = run_stage(EXACT, load_profile(None, []), str(tmp_path / "in"), str(tmp_path / "run" / "exact-dedup"),
                  spark=spark)
    sh = m["shuffle"]
    assert 0 < sh["shuffle_write_bytes"] < m["input"]["bytes"] and sh["spark_stages"] > 0
    assert m["timings_s"]["spark_session"] >= 0 and m["input"]["read_units"] == 1
    page = write_report(tmp_path / "run").read_text(encoding="utf-8")
    assert "Data moved by Spark" in page and "removed_spans" in page
