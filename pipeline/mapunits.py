"""Per-document maps that stream: one Spark task per read unit, no JVM on the data path.

A scoring or filtering stage looks at each document on its own (signals, a classifier's score, a
rule), so it needs no shuffle at all: `map_units` runs one task per read unit that reads the unit
with the pipeline's reader, quarantines what cannot be read, hands each batch of documents to the
stage's `mapper` and writes what it returns ({output name: Arrow table}) to
work_dir/<name>/part-<unit>.parquet, in input order. The text is read, changed and written inside
the task, as `tokenize` does; only one small row of counts per unit reaches the driver.

make_mapper(unit) is called once per unit inside its task (it may load models through
pipeline.models.load_once, or keep per-unit state); the mapper is called per batch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.readers import read_unit, split_read_batch, units_rdd
from pipeline.schema import QUARANTINE_SCHEMA
from pipeline.taskfiles import PartWriter, ensure_schema_file


def _map_one_unit(plan, unit: int, attempt: int, mapper, work: str, outputs: dict) -> tuple[int, int]:
    quarantine = PartWriter(Path(work) / "quarantine", unit, attempt, QUARANTINE_SCHEMA)
    writers = {name: PartWriter(Path(work) / name, unit, attempt, schema) for name, schema in outputs.items()}
    n_docs = n_chars = 0
    for raw in read_unit(plan.units[unit], plan):
        docs, refused = split_read_batch(raw, plan)
        quarantine.write(refused)
        if docs.num_rows == 0:
            continue
        n_docs += docs.num_rows
        n_chars += int(pc.sum(pc.utf8_length(docs.column("text"))).as_py() or 0)
        for name, table in mapper(pa.Table.from_batches([docs])).items():
            writers[name].write(table)
    for w in [quarantine, *writers.values()]:
        w.close()
    return n_docs, n_chars


def map_units(ctx, plan, make_mapper: Callable, outputs: dict) -> dict:
    """Run make_mapper(unit)(docs) -> {name: table} over every unit and write the tables (outputs:
    name -> schema; every unit gets a part of each, empty or not). Returns the documents read,
    {"docs", "chars"}: the runner's input counts."""
    from pyspark import TaskContext

    work = str(ctx.work_dir)

    def run(unit_numbers):
        attempt = TaskContext.get().taskAttemptId()
        for u in unit_numbers:
            yield _map_one_unit(plan, u, attempt, make_mapper(u), work, outputs)

    counts = units_rdd(ctx.spark, plan).mapPartitions(run).collect()
    for name, schema in outputs.items():
        ensure_schema_file(ctx.work_dir / name, schema)
    return {"docs": sum(d for d, _ in counts), "chars": sum(c for _, c in counts)}
