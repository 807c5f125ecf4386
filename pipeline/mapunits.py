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

from pipeline.readers import DocTally, unit_documents_counted, units_rdd
from pipeline.schema import QUARANTINE_SCHEMA
from pipeline.taskfiles import PartWriter, ensure_schema_file


def _map_one_unit(plan, unit: int, attempt: int, mapper, work: str, outputs: dict) -> tuple[int, int]:
    """Map one unit: its documents through `mapper` into work/<name>/, its refused records into
    work/quarantine/. Returns the (documents, characters) read."""
    quarantine = PartWriter(Path(work) / "quarantine", unit, attempt, QUARANTINE_SCHEMA)
    writers = {name: PartWriter(Path(work) / name, unit, attempt, schema) for name, schema in outputs.items()}
    tally = DocTally()
    for docs in unit_documents_counted(plan, unit, quarantine, tally):
        for name, table in mapper(pa.Table.from_batches([docs])).items():
            writers[name].write(table)
    for w in [quarantine, *writers.values()]:
        w.close()
    return tally.docs, tally.chars


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
