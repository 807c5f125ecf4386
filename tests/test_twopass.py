"""The two-pass engine (pipeline.twopass) on a real local SparkSession: keys decided across read
units give the same first occurrences as the rule applied to the whole corpus at once, ids come
from the units that hold them, and pass 2 writes one part per unit from the input read again."""
import sys

import numpy as np
import pyarrow as pa
from pyspark import cloudpickle

from conftest import read_dir, write_jsonl
from pipeline.config import load_profile
from pipeline.first import first_occurrence
from pipeline.hashing import content_key, key_words
from pipeline.readers import plan_read, resolve_input
from pipeline.schema import removed_schema
from pipeline.stage import StageContext
from pipeline.twopass import Decision, decide, match_firsts, run_pass1, run_pass2, side_files

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # its functions run in Spark's workers
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


def corpus(tmp_path):
    """4 JSONL files (4 read units), texts drawn from 6 words: many repeats within and across
    files, plus one bad line."""
    rng = np.random.default_rng(11)
    for f in range(4):
        recs = [{"id": f"f{f}-{i}", "text": f"the {WORDS[int(rng.integers(0, 6))]} text"} for i in range(30)]
        lines = list(recs)
        if f == 2:
            lines.insert(5, b"{not json")
        write_jsonl(tmp_path / "in" / f"part{f}.jsonl", lines)
    return tmp_path / "in"


def keys_fingerprint(docs: pa.RecordBatch) -> dict:
    hi, lo = key_words([content_key(t) for t in docs.column("text").to_pylist()])
    return {"docs": pa.table({"doc_pos": docs.column("doc_pos"), "id": docs.column("id"), "hi": hi, "lo": lo})}


def test_engine_matches_the_rule_on_the_whole_corpus(spark, tmp_path):
    inp = corpus(tmp_path)
    prof = load_profile(None, [])
    inputs = resolve_input(str(inp))
    plan = plan_read(inputs, prof.read)
    assert len(plan.units) == 4
    work = tmp_path / "work"
    work.mkdir()
    ctx = StageContext(spark, "test", None, prof, inputs, work)
    side = side_files(ctx)
    counts = run_pass1(ctx, plan, lambda unit: keys_fingerprint, side)
    assert counts["docs"] == 120
    assert [r["reason"] for r in read_dir(work / "quarantine")] == ["invalid_json"]

    step = Decision("firsts", lambda u: side.read("docs", u), ("hi", "lo"), ("doc_pos",))
    answers = decide(ctx, plan, side, [step], lambda u: side.read("docs", u, ["doc_pos", "id"]))

    def make_applier(unit, ids):
        dups = match_firsts(side.read("docs", unit), side.read("firsts", unit), ["hi", "lo"], ["doc_pos"])
        dup_of = ({} if dups is None else
                  {p: ids[f] for p, f in zip(dups.column("doc_pos").to_pylist(), dups.column("first_doc_pos").to_pylist())})

        def apply(docs):
            table = pa.Table.from_batches([docs])
            gone = pa.array([p in dup_of for p in docs.column("doc_pos").to_pylist()])
            removed = table.filter(gone)
            removed = removed.append_column("reason", pa.array(["dup"] * removed.num_rows, pa.string()))
            removed = removed.append_column("duplicate_of", pa.array(
                [dup_of[p] for p in removed.column("doc_pos").to_pylist()], pa.string()))
            return {"kept": table.filter(pa.compute.invert(gone)), "removed": removed}
        return apply

    run_pass2(ctx, plan, make_applier, {"kept": plan.doc_schema, "removed": removed_schema(plan.doc_schema)}, answers)

    # the rule over the whole corpus in one table
    whole = pa.concat_tables([side.read("docs", u) for u in range(4)])
    g = first_occurrence(whole, ["hi", "lo"], ["doc_pos"])
    want_dup_of = {p: whole.column("id")[int(f)].as_py()
                   for p, f, first in zip(whole.column("doc_pos").to_pylist(), g.first, g.is_first) if not first}
    size_of = {(h, l): int(sz) for h, l, sz in zip(whole.column("hi").to_pylist(), whole.column("lo").to_pylist(), g.size)}
    for u in range(4):  # every unit's decisions carry the corpus-wide group size
        decisions = side.read("firsts", u)
        assert decisions.column("group_size").to_pylist() == [
            size_of[k] for k in zip(decisions.column("hi").to_pylist(), decisions.column("lo").to_pylist())]
    distinct = len(set(whole.column("hi").to_pylist()))
    kept = read_dir(work / "kept")
    removed = read_dir(work / "removed")
    assert {r["doc_pos"]: r["duplicate_of"] for r in removed} == want_dup_of
    assert len(want_dup_of) == 120 - distinct and len(kept) == distinct
    # one part per unit that has rows: every unit has copies, the firsts all sit in unit 0
    assert sorted(p.name for p in (work / "removed").glob("*.parquet")) == [f"part-{u:05d}.parquet" for u in range(4)]
    assert sorted(p.name for p in (work / "kept").glob("*.parquet")) == ["part-00000.parquet"]
    assert len({r["text"] for r in kept}) == distinct
