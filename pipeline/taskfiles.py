"""Files that Spark tasks write themselves: one per read unit, complete or absent.

A task writes under a hidden temporary name (readers skip names starting with '.') and renames
the file into place when it is complete, so a retried or speculative task never leaves half a
file, and writes the same content again. Parts are named `part-NNNNN.parquet` by read unit, so an
output's layout depends only on the input, never on the cluster.
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def part_path(directory, unit: int) -> Path:
    return Path(directory) / f"part-{unit:05d}.parquet"


def task_output(path: Path, attempt: int):
    """(temporary path, publish) for a file one Spark task writes."""
    tmp = path.parent / f".{path.name}.{attempt}.tmp"
    return tmp, lambda: os.replace(tmp, path)


class PartWriter:
    """Batches of one schema -> DIR/part-NNNNN.parquet, opened when the first row arrives (a unit
    with nothing to write leaves no file) and published on close."""

    def __init__(self, directory, unit: int, attempt: int, schema: pa.Schema):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path, self._publish = task_output(part_path(directory, unit), attempt)
        self.schema = schema
        self.writer = None

    def write(self, batch) -> None:
        if batch is None or batch.num_rows == 0:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        if isinstance(batch, pa.Table):
            self.writer.write_table(batch)
        else:
            self.writer.write_batch(batch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self._publish()


def write_part(directory, unit: int, attempt: int, table: pa.Table) -> None:
    w = PartWriter(directory, unit, attempt, table.schema)
    w.write(table)
    w.close()


def read_part(directory, unit: int, columns=None) -> pa.Table | None:
    """A unit's part (those columns), or None when the unit wrote none."""
    path = part_path(directory, unit)
    return pq.read_table(path, columns=columns) if path.is_file() else None


def ensure_schema_file(directory, schema: pa.Schema) -> None:
    """An output directory with no part gets one empty file, so readers still see its schema."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("*.parquet")):
        pq.write_table(schema.empty_table(), part_path(directory, 0), compression="zstd")
