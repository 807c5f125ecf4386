"""Moving small Arrow tables between Spark tasks: (key, blob) pairs through an RDD shuffle.

Spark shuffles opaque bytes, one blob per (sending task, receiving partition), never a row at a
time: a blob is an Arrow IPC stream, zstd-compressed (keys and hashes do not compress, counts
and positions do). The receiving task concatenates its blobs back into one table. Used for the
keys, hashes and decisions of the two-pass dedup engine and for tokenize's per-sequence rows;
text never goes this way.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def to_blob(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def from_blobs(blobs, schema: pa.Schema | None = None) -> pa.Table | None:
    """One table from the blobs of a partition (None when there are none and no schema)."""
    tables = [pa.ipc.open_stream(b).read_all() for b in blobs]
    if not tables:
        return schema.empty_table() if schema is not None else None
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def split_by(table: pa.Table, part: np.ndarray):
    """Yield (partition, blob) for the rows of `table` going to each partition in `part`."""
    if table.num_rows == 0:
        return
    order = np.argsort(part, kind="stable")
    part = part[order]
    table = table.take(pa.array(order))
    cuts = np.flatnonzero(np.diff(part)) + 1
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(part)]):
        yield int(part[lo]), to_blob(table.slice(lo, hi - lo))


def exchange(pairs_rdd, n: int):
    """(key, blob) pairs with integer keys -> an RDD of n partitions; partition p holds the pairs
    whose key is p modulo n (a key per partition, or several keys, e.g. read units, per task)."""
    return pairs_rdd.partitionBy(max(1, n), lambda k: k)


def tables_by_key(pairs):
    """A partition's (key, blob) pairs -> (key, table) for each key, in key order."""
    blobs: dict = {}
    for k, b in pairs:
        blobs.setdefault(k, []).append(b)
    for k in sorted(blobs):
        yield k, from_blobs(blobs[k])
