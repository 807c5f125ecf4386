"""The fuzz suite: generated inputs (tests/fuzz_inputs.py), seeded, bounded in examples.

For every generated input, the reader (no Spark, many cases) and the exact-dedup stage (a real
SparkSession, fewer cases) must account for every record as the oracle says: a document with its
characters, or a quarantine row with its reason; counts reconcile exactly; hidden files are listed
as not read; a damaged file fails the run with one UserError (the CLI's `error:` line), or with
read.skip_bad_files is quarantined as unreadable_file while every other file reconciles. Never
another exception, never a lost record.

`make test` runs a short budget; `make fuzz` sets FUZZ_SCALE (examples x N) and FUZZ_REPORT (a JSON
file that gets the number of cases run and their outcomes).
"""
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_inputs import MAX_TEXT, input_files, write_files
from pipeline.config import ReadSettings, load_profile
from pipeline.errors import BadInputFiles, UserError
from pipeline.readers import plan_read, read_unit, resolve_input, split_read_batch

SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
OUTCOMES: Counter = Counter()
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck),
                print_blob=True)


def _record_outcomes(rows: list) -> dict:
    """{file rel: [outcome in record order]} from (rel, record, outcome) rows."""
    by_file: dict = {}
    for rel, record, outcome in sorted(rows, key=lambda r: (r[0], r[1])):
        by_file.setdefault(rel, []).append(outcome)
    return by_file


def _check(specs, found: dict, unreadable: set, counts: Counter) -> None:
    for s in specs:
        if s.hidden:
            assert s.rel not in found, s.rel
            counts["hidden_files"] += 1
        elif s.damage != "none" and s.rel in unreadable:
            assert len([o for o in found.get(s.rel, []) if o != ("unreadable_file",)]) <= len(s.expected) + 1
            counts["damaged_files_caught"] += 1
        elif s.damage != "none":  # damage the format could not see (e.g. bytes inside a page)
            assert len(found.get(s.rel, [])) == len(s.expected), s.rel
            counts["damaged_files_unseen"] += 1
        else:
            assert found.get(s.rel, []) == s.expected, (s.rel, found.get(s.rel), s.expected)
            counts["records"] += len(s.expected)
            counts.update(o[0] for o in s.expected)


def _report(name: str, counts: Counter) -> None:
    OUTCOMES.update({f"{name}.{k}": v for k, v in counts.items()})
    OUTCOMES[f"{name}.cases"] += 1
    if os.environ.get("FUZZ_REPORT"):
        Path(os.environ["FUZZ_REPORT"]).write_text(json.dumps(dict(sorted(OUTCOMES.items())), indent=2) + "\n")


@settings(max_examples=80 * SCALE, **SETTINGS)
@given(input_files())
def test_reader_accounts_for_every_record(specs):
    with tempfile.TemporaryDirectory() as d:
        write_files(Path(d), specs)
        if all(s.hidden for s in specs):
            try:
                resolve_input(d)
            except UserError:
                return _report("reader", Counter(no_readable_files=1))
            raise AssertionError("an input of hidden files only must be refused")
        plan = plan_read(resolve_input(d), ReadSettings(max_text_bytes=MAX_TEXT))
        rows, unreadable = [], {rel for rel, _ in plan.bad_files}
        for unit in plan.units:
            for raw in read_unit(unit, plan):
                docs, q = split_read_batch(raw, plan)
                rows += [(unit.rel, pos & 0xFFFFFFFF, ("doc", len(t)))
                         for pos, t in zip(docs.column("doc_pos").to_pylist(), docs.column("text").to_pylist())]
                for r in (q.to_pylist() if q is not None else []):
                    rows.append((r["file"], r["record"], (r["reason"],)))
                    if r["reason"] == "unreadable_file":
                        unreadable.add(r["file"])
        counts = Counter()
        _check(specs, _record_outcomes(rows), unreadable, counts)
        _report("reader", counts)


@settings(max_examples=6 * SCALE, **SETTINGS)
@given(input_files(), st.booleans())
def test_stage_reconciles_or_fails_with_one_error(spark, specs, skip_bad):
    from dedup.exact import STAGE as EXACT
    from pipeline.stage import run_stage

    with tempfile.TemporaryDirectory() as d:
        inp = Path(d) / "in"
        write_files(inp, specs)
        prof = load_profile(None, [f"read.max_text_bytes={MAX_TEXT}", f"read.skip_bad_files={str(skip_bad).lower()}",
                                   "exact-dedup.min_sentence_chars=5", "exact-dedup.min_paragraph_chars=8"])
        try:
            m = run_stage(EXACT, prof, str(inp), str(Path(d) / "out"), spark=spark)
        except BadInputFiles:
            assert not skip_bad and any(s.damage != "none" and not s.hidden for s in specs)
            return _report("stage", Counter(failed_on_bad_files=1))
        except UserError:
            assert all(s.hidden for s in specs)
            return _report("stage", Counter(no_readable_files=1))
        out = Path(d) / "out"
        files = [f.rel for f in resolve_input(str(inp)).files]
        assert m["counts"]["reconciled"] is True
        assert {f["file"] for f in m["input"]["skipped_files"]["files"]} == {s.rel for s in specs if s.hidden}
        rows, chars = [], Counter()
        for sub in ("kept", "removed"):
            t = pq.read_table(out / sub, columns=["doc_pos", "text"])
            for pos, n in zip(t.column("doc_pos").to_pylist(), pc.utf8_length(t.column("text")).to_pylist()):
                rows.append((files[pos >> 32], pos & 0xFFFFFFFF, "doc"))
                chars[files[pos >> 32]] += n
        spans = pq.read_table(out / "removed_spans", columns=["doc_pos", "text"])
        for pos, n in zip(spans.column("doc_pos").to_pylist(), pc.utf8_length(spans.column("text")).to_pylist()):
            chars[files[pos >> 32]] += n
        q = pq.read_table(out / "quarantine", columns=["file", "record", "reason"]).to_pylist()
        rows += [(r["file"], r["record"], r["reason"]) for r in q]
        found = _record_outcomes(rows)
        unreadable = {r["file"] for r in q if r["reason"] == "unreadable_file"}
        expected = [(s, [o[0] for o in s.expected]) for s in specs]
        counts = Counter()
        for s, outcomes in expected:
            if not s.hidden and s.damage == "none":
                assert found.get(s.rel, []) == outcomes, (s.rel, found.get(s.rel), outcomes)
                assert chars[s.rel] == sum(o[1] for o in s.expected if o[0] == "doc"), s.rel
                counts["records"] += len(outcomes)
            elif not s.hidden:
                assert s.rel in unreadable or len(found.get(s.rel, [])) == len(outcomes), s.rel
                counts["damaged_files"] += 1
        _report("stage", counts)
