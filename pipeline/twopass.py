"""The two-pass dedup engine: dedup moves keys across the cluster, never text.

Pass 1, per read unit (one Spark task per unit, as `tokenize` reads): read the unit with the
pipeline's reader, quarantine the refused records, and write the stage's small per-document
records (its `fingerprint`: keys, hashes, offsets; later signatures or embeddings) to side files
`_twopass/<name>/part-NNNNN.parquet`. No text leaves the task.

Decide, over those records only (`decide`, a list of `Decision`s run in order): pipeline.first's
"first occurrence wins" rule over every key of the corpus. Each unit first reduces its records to one row per key (the
unit's first occurrence and a count: the rule is associative), those rows are exchanged by key,
the rule is applied again per key, and every unit gets back, for its keys that occur more than
once anywhere, the position of the corpus-wide first occurrence: one decision file per unit.
The ids of those first occurrences are then fetched from the units that hold them (for
`duplicate_of`). Every exchange moves Arrow blobs of keys and positions (pipeline.exchange).

Pass 2, per read unit: read the unit again where it lies, apply its decisions (the stage's
`applier`: drop documents, cut spans through pipeline.spans) and write kept/, removed/ and span
outputs, one file per unit, in input order.

A stage can run all three as one Spark job (exact-dedup does): pass1_tasks(then=the first
decision) hands each unit's first combine straight to `decide`, whose answers feed `run_pass2`.

The cost is reading the input twice (cheap next to fingerprinting) and shuffling about one
small row per distinct key per unit; text is read, cut and written only inside the tasks.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.exchange import exchange, from_blobs, split_by, tables_by_key
from pipeline.first import first_occurrence
from pipeline.hashing import partition_of
from pipeline.readers import (DocTally, largest_first, light_tasks, read_unit, split_read_batch, unit_documents_counted,
                              units_rdd)
from pipeline.schema import QUARANTINE_SCHEMA
from pipeline.taskfiles import PartWriter, ensure_schema_file, read_part, task_output, write_part

SIDE_DIR = "_twopass"


@dataclass(frozen=True)
class Side:
    """The engine's per-unit side files (records, decisions), inside the stage's work dir."""
    root: str

    def dir(self, name: str) -> Path:
        return Path(self.root) / name

    def read(self, name: str, unit: int, columns=None) -> pa.Table | None:
        return read_part(self.dir(name), unit, columns)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def side_files(ctx) -> Side:
    return Side(str(ctx.work_dir / SIDE_DIR))


def task_attempt() -> int:
    from pyspark import TaskContext

    return TaskContext.get().taskAttemptId()


def _order_names(order) -> list[str]:
    return [o if isinstance(o, str) else o[0] for o in order]


def _shuffle_partitions(spark) -> int:
    return max(1, int(spark.conf.get("spark.sql.shuffle.partitions")))


STAGED = "_staged"  # side files: parsed copies of JSONL units for pass 2


class _StagedWriter:
    """A unit's documents as pass 1 parsed them -> side/_staged/part-NNNNN.arrow (Arrow IPC, lz4)."""

    def __init__(self, side: Side, unit: int, attempt: int, schema: pa.Schema):
        path = _staged_path(side, unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp, self._publish = task_output(path, attempt)
        self.sink = pa.BufferedOutputStream(pa.OSFile(str(self.tmp), "wb"), buffer_size=STAGED_BUFFER)
        self.writer = pa.ipc.new_file(self.sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4"))

    def write(self, batch) -> None:
        if batch.num_rows:
            self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.close()
        self.sink.close()
        self._publish()


STAGED_BUFFER = 8 << 20  # bytes: a unit's parsed copy goes to disk in few large writes


def _staged_path(side: Side, unit: int) -> Path:
    return side.dir(STAGED) / f"part-{unit:05d}.arrow"


def unit_documents(plan, unit: int, side: Side):
    """A unit's documents for any pass after the first (pass 2, a re-read of candidates): pass 1's
    parsed copy if it kept one, else the input again (also for a retried task that finds the copy
    already gone)."""
    staged = _staged_path(side, unit)
    if staged.is_file():
        with pa.OSFile(str(staged)) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
        return
    for raw in read_unit(plan.units[unit], plan):
        docs, _ = split_read_batch(raw, plan)  # refused records were quarantined in pass 1
        if docs.num_rows:
            yield docs


def run_pass1(ctx, plan, make_fingerprint, side: Side) -> dict:
    """Read every unit, quarantine refused records, write fingerprint(docs) -> {name: table} to
    side files (fingerprint = make_fingerprint(unit): it may keep state across a unit's batches)
    (and a parsed copy of JSONL units, see read.stage_jsonl_for_second_pass). Returns the
    documents' {"docs", "chars"} (the runner's input counts)."""
    pass1_tasks(ctx, plan, make_fingerprint, side).count()
    return pass1_counts(side, plan)


def pass1_tasks(ctx, plan, make_fingerprint, side: Side, then: "Decision | None" = None):
    """run_pass1 as a lazy RDD, one task per unit. With `then`, each task goes on to that
    decision's per-unit combine and yields its exchange pairs: `decide(..., first_pairs=)` takes
    them, and pass 1, the decisions and pass 2 run as one Spark job (no stage that only re-reads
    what pass 1 just wrote)."""
    quarantine_dir = str(ctx.work_dir / "quarantine")
    stage_jsonl = ctx.profile.read.stage_jsonl_for_second_pass
    n_parts = _shuffle_partitions(ctx.spark)

    def run(unit_numbers):
        attempt = task_attempt()
        for u in unit_numbers:
            _pass1_unit(plan, u, attempt, make_fingerprint(u), side, quarantine_dir, stage_jsonl)
            if then is not None:
                yield from _combine(then, u, n_parts)
        if then is None:
            yield 0  # consume: a task that yields nothing keeps its Python worker busy longer

    return units_rdd(ctx.spark, plan).mapPartitions(run)


def _pass1_unit(plan, u: int, attempt: int, fingerprint, side: Side, quarantine_dir: str, stage_jsonl: bool) -> None:
    """Pass 1 of one unit: refused records to quarantine_dir, fingerprint(docs) to the side files
    (a writer per name it returns), a parsed copy of a JSONL unit when stage_jsonl, and the unit's
    {"docs", "chars"} to the COUNTS side file."""
    quarantine = PartWriter(quarantine_dir, u, attempt, QUARANTINE_SCHEMA)
    staged = (_StagedWriter(side, u, attempt, plan.doc_schema)
              if stage_jsonl and plan.units[u].fmt == "jsonl" else None)
    writers: dict = {}
    tally = DocTally()
    for docs in unit_documents_counted(plan, u, quarantine, tally):
        if staged is not None:
            staged.write(docs)
        for name, table in fingerprint(docs).items():
            if name not in writers:
                writers[name] = PartWriter(side.dir(name), u, attempt, table.schema)
            writers[name].write(table)
    quarantine.close()
    for w in [*writers.values(), *([staged] if staged else [])]:
        w.close()
    write_part(side.dir(COUNTS), u, attempt, pa.table({"docs": [tally.docs], "chars": [tally.chars]}))


COUNTS = "_counts"  # side files: each unit's documents and characters


def pass1_counts(side: Side, plan) -> dict:
    """The documents' {"docs", "chars"} over all units (from pass 1's count files)."""
    total = {"docs": 0, "chars": 0}
    for u in range(len(plan.units)):
        t = side.read(COUNTS, u)
        total["docs"] += t.column("docs")[0].as_py()
        total["chars"] += t.column("chars")[0].as_py()
    return total


@dataclass(frozen=True)
class Decision:
    """One "first occurrence wins" decision over one kind of key (documents, spans, ...).

    keys_of_unit(unit) -> a table with the `keys` and `order` columns of the unit's rows (or None);
    it may read the decisions of the steps before it (exact dedup keys the spans of the documents
    that survive document-level dedup). `hash_key`: a uniformly hashed uint64 key column that picks
    the exchange partition. The decisions go to side file `name`, one part per unit: a row per key
    of the unit that occurs more than once in the corpus, with the corpus-wide first occurrence
    (`first_<order column>`, `first_unit`) and `group_size`."""
    name: str
    keys_of_unit: Callable
    keys: tuple
    order: tuple
    hash_key: str = "hi"


def _combine(step: Decision, unit: int, n_parts: int):
    """Map side, per unit: one row per key (the unit's first occurrence) with a count."""
    t = step.keys_of_unit(unit)
    if t is None or t.num_rows == 0:
        return
    t = t.select([*step.keys, *_order_names(step.order)])
    g = first_occurrence(t, list(step.keys), step.order)
    firsts = t.filter(pa.array(g.is_first))
    firsts = firsts.append_column("count", pa.array(g.size[g.is_first])).append_column(
        "unit", pa.array(np.full(firsts.num_rows, unit, np.int32)))
    yield from split_by(firsts, partition_of(firsts.column(step.hash_key).to_numpy(), n_parts))


def _reduce(step: Decision):
    """Per key partition: the rule again over the units' firsts; decisions go to the units."""
    keys, order_names = list(step.keys), _order_names(step.order)

    def run(pairs):
        t = from_blobs(b for _, b in pairs)
        if t is None:
            return
        g = first_occurrence(t, keys, step.order, counts="count")
        dup = g.size > 1
        if not dup.any():
            return
        rows, first = t.filter(pa.array(dup)), pa.array(g.first[dup])
        cols = {k: rows.column(k) for k in keys}
        cols.update({f"first_{o}": t.column(o).take(first) for o in order_names})
        cols["first_unit"] = t.column("unit").take(first)
        cols["group_size"] = pa.array(g.size[dup])
        yield from split_by(pa.table(cols), rows.column("unit").to_numpy())
    return run


def _id_requests(side: Side, decisions: list, unit: int):
    """The first occurrences a unit's decisions name, as requests to the units holding them."""
    refs = [t for t in (side.read(d.name, unit, ["first_unit", "first_doc_pos"]) for d in decisions) if t is not None]
    if not refs:
        return
    refs = pa.concat_tables(refs).group_by(["first_unit", "first_doc_pos"]).aggregate([])
    refs = refs.append_column("target", pa.array(np.full(refs.num_rows, unit, np.int32)))
    yield from split_by(refs, refs.column("first_unit").to_numpy())


def decide(ctx, plan, side: Side, decisions: list, ids_of_unit, first_pairs=None):
    """Run the decisions in order, then look up the ids of every first occurrence they name
    (ids_of_unit(u) -> table (doc_pos, id) of the unit that holds it). Returns the RDD of id
    answers that run_pass2 consumes: one Spark job runs the decisions and pass 2 together, each
    unit's decision files written as its keys come back (the tasks that write a step's decisions
    also combine the next step's keys, so no stage of Spark tasks only writes). first_pairs: the
    first decision's combine pairs from pass1_tasks(then=decisions[0]) (else read from the side
    files in a stage of their own)."""
    n_light, n_parts, n_units = light_tasks(ctx.spark), _shuffle_partitions(ctx.spark), len(plan.units)
    first = decisions[0]
    pairs = first_pairs if first_pairs is not None else units_rdd(ctx.spark, plan, n_light).mapPartitions(
        lambda us: (p for u in us for p in _combine(first, u, n_parts)))
    for i, step in enumerate(decisions):
        nxt = decisions[i + 1] if i + 1 < len(decisions) else None

        def after(index, pairs, step=step, nxt=nxt):  # per unit: write the decisions, start the next step
            attempt = task_attempt()
            got = dict(tables_by_key(pairs))
            for u in range(index, n_units, n_light):  # the units exchange() sent to this partition
                if u in got:
                    write_part(side.dir(step.name), u, attempt, got[u].sort_by([(k, "ascending") for k in step.keys]))
                yield from (_combine(nxt, u, n_parts) if nxt else _id_requests(side, decisions, u))

        decided = exchange(pairs, n_parts).mapPartitions(_reduce(step))
        pairs = exchange(decided, n_light).mapPartitionsWithIndex(after)
    rank = _pass2_rank(plan)

    def answer(pairs):
        for holder, refs in tables_by_key(pairs):
            ids = ids_of_unit(holder).rename_columns(["first_doc_pos", "id"])
            found = refs.join(ids, "first_doc_pos", join_type="inner")
            yield from split_by(found.select(["first_doc_pos", "id"]), rank[found.column("target").to_numpy()])

    return exchange(pairs, n_light).mapPartitions(answer)


def _pass2_rank(plan) -> np.ndarray:
    """rank[unit]: the pass-2 task (partition) of each unit, the largest units first."""
    order = largest_first(plan)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def match_firsts(rows: pa.Table | None, firsts: pa.Table | None, keys, order) -> pa.Table | None:
    """The rows (in their order) whose key is in a unit's decisions and that are not the first
    occurrence themselves, with the decision's columns (first_<order>, first_unit, ...); None
    when the unit has no such rows."""
    order_names = _order_names(order)
    if rows is None or firsts is None or rows.num_rows == 0 or firsts.num_rows == 0:
        return None
    rows = rows.append_column("_row", pa.array(np.arange(rows.num_rows)))
    j = rows.join(firsts, keys, join_type="inner")
    same = None
    for o in order_names:
        eq = pc.equal(j.column(o), j.column(f"first_{o}"))
        same = eq if same is None else pc.and_(same, eq)
    return j.filter(pc.invert(same)).sort_by("_row").drop_columns(["_row"])


def run_pass2(ctx, plan, make_applier, outputs: dict, id_answers) -> None:
    """Read every unit again (pass 1's parsed copy of a JSONL unit, else the input) and write
    applier(docs) -> {output name: table} into work_dir/<name>/ (one part per unit; `outputs`:
    name -> schema). make_applier(unit, ids) loads the unit's decisions once and returns the
    applier for its batches; ids: {first_doc_pos: id} from decide's answers. Refused records were
    quarantined in pass 1."""
    work = str(ctx.work_dir)
    side = side_files(ctx)
    order = largest_first(plan)

    def run(index, pairs):
        attempt = task_attempt()
        u = order[index]
        answers = from_blobs(b for _, b in pairs)
        ids = dict(zip(*(answers.column(c).to_pylist() for c in ("first_doc_pos", "id")))) if answers else {}
        apply = make_applier(u, ids)
        writers = {name: PartWriter(Path(work) / name, u, attempt, schema) for name, schema in outputs.items()}
        for docs in unit_documents(plan, u, side):
            for name, table in apply(docs).items():
                writers[name].write(table)
        for w in writers.values():
            w.close()
        _staged_path(side, u).unlink(missing_ok=True)  # scratch space back as the pass goes
        yield u

    exchange(id_answers, len(plan.units)).mapPartitionsWithIndex(run).count()
    for name, schema in outputs.items():
        ensure_schema_file(ctx.work_dir / name, schema)


# Helpers for decide steps written over Spark DataFrames (minhash-dedup, semantic-dedup).

def frame(spark, side, name: str):
    d = side.dir(name)
    return spark.read.parquet(str(d)) if d.is_dir() and any(d.glob("*.parquet")) else None


def materialized(spark, side, name: str, df):
    """df written once to side files `name` and read back: computed once, however often it is used."""
    df.write.parquet(str(side.dir(name)))
    return spark.read.parquet(str(side.dir(name)))


def write_by_unit(spark, side, name: str, rows, sort: list, directory: str | None = None) -> None:
    """A DataFrame with a `unit` column -> side file `name` (or `directory`), one part per unit
    (sorted by `sort`): the decide step's answers, read back per unit by pass 2."""
    from pyspark.sql.pandas.types import from_arrow_schema

    directory = directory or str(side.dir(name))

    def run(batches):
        batches = list(batches)
        t = pa.Table.from_batches(batches) if batches else None
        if t is not None and t.num_rows:
            attempt = task_attempt()
            units = t.column("unit").to_numpy()
            for u in np.unique(units).tolist():
                write_part(directory, u, attempt, t.filter(pa.array(units == u)).drop_columns(["unit"]).sort_by(
                    [(c, "ascending") for c in sort]))
        yield pa.RecordBatch.from_pydict({"n": [t.num_rows if t is not None else 0]})

    rows.repartition(light_tasks(spark), "unit").mapInArrow(
        run, from_arrow_schema(pa.schema([("n", pa.int64())]))).collect()


def decision_rows(table: pa.Table, dec: pa.Table | None) -> tuple[np.ndarray, pa.Table | None]:
    """(mask over the batch's rows that have a decision, the decision row of each) for a batch;
    dec is a unit's decisions sorted by doc_pos."""
    p = table.column("doc_pos").to_numpy()
    if dec is None or dec.num_rows == 0:
        return np.zeros(len(p), bool), None
    pos = dec.column("doc_pos").to_numpy()
    at = np.minimum(np.searchsorted(pos, p), len(pos) - 1)
    member = pos[at] == p
    return member, dec.take(pa.array(at[member]))
