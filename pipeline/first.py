""""First occurrence wins": the one rule that marks duplicates inside a group of equal keys.

Rows with equal values in `keys` form a group; the group's first row is the smallest by `order`
(corpus order by default: `doc_pos`, then e.g. a span's `start`; a quality score or length
column with "descending" later). Every other row of the group is a duplicate of that one. Ties in
`order` are broken by the row's position in the table, so the answer is deterministic whatever
the input order as long as `order` is unique, as (doc_pos, start) is.

`first_occurrence(table, keys, order)` applies the rule to an Arrow table (vectorised: one sort,
no Python per row). The rule is associative: applying it to parts of a group and then to the
parts' firsts (with `counts`, the number of rows each part-first stands for) gives the same first
and the same group size as applying it once to the whole group, which is how the two-pass engine
(`pipeline.twopass.global_firsts`) decides across a cluster without moving every row.
`mark_first_occurrences(df, keys, order, carry)` is the same rule for a Spark DataFrame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CORPUS_ORDER = ("doc_pos",)


@dataclass
class Groups:
    """first[i]: row index of row i's group first; size[i]: the group's size (summed counts)."""
    first: np.ndarray
    size: np.ndarray

    @property
    def is_first(self) -> np.ndarray:
        return self.first == np.arange(len(self.first))


def _sort_keys(keys, order) -> list:
    out = [(k, "ascending") for k in keys]
    for o in order:
        out.append((o, "ascending") if isinstance(o, str) else tuple(o))
    return out


def _sort_order(table: pa.Table, keys, order) -> np.ndarray:
    """Row indices sorted by keys, then order, then position: numpy's lexsort (stable, about twice
    as fast as Arrow's multi-column sort) when every column is a number, else Arrow's sort."""
    sort_keys = _sort_keys(keys, order)
    numeric = all((pa.types.is_integer(table.schema.field(name).type) or pa.types.is_floating(table.schema.field(name).type))
                  and table.column(name).null_count == 0 for name, _ in sort_keys)
    if numeric:
        cols = []
        for name, direction in sort_keys:
            col = table.column(name).to_numpy()
            if direction == "descending":  # order-preserving flip that also works for unsigned
                col = -col if np.issubdtype(col.dtype, np.floating) else ~col
            cols.append(col)
        return np.lexsort(cols[::-1])
    return pc.sort_indices(table, sort_keys=sort_keys).to_numpy()


def first_occurrence(table: pa.Table, keys, order=CORPUS_ORDER, counts: str | None = None) -> Groups:
    """Group `table` by `keys` and find each group's first row by `order` (column names, or
    (name, "descending") pairs). counts: a column with the number of rows each row stands for."""
    n = table.num_rows
    if n == 0:
        return Groups(np.zeros(0, np.int64), np.zeros(0, np.int64))
    idx = _sort_order(table, keys, order)
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for k in keys:
        col = table.column(k)
        if col.null_count == 0 and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            v = col.to_numpy()[idx]
            new[1:] |= v[1:] != v[:-1]
        else:
            col = col.take(idx)
            new[1:] |= pc.not_equal(col.slice(1), col.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    weights = (table.column(counts).to_numpy(zero_copy_only=False).astype(np.int64)[idx] if counts
               else np.ones(n, np.int64))
    sizes = np.add.reduceat(weights, starts)
    first, size = np.empty(n, np.int64), np.empty(n, np.int64)
    first[idx] = idx[starts][group]
    size[idx] = sizes[group]
    return Groups(first, size)


def mark_first_occurrences(df, keys, order=CORPUS_ORDER, carry=("id",), partitions: int | None = None):
    """The rule for a Spark DataFrame: adds `_is_first`, `_group_size` and `_first_<c>` for each
    column c in `carry` (e.g. the first's id, for `duplicate_of`). Each group is moved to one
    partition and decided there by first_occurrence, so the DataFrame should hold keys, order
    and carried columns only, never text."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import BooleanType, LongType, StructField, StructType

    base = to_arrow_schema(df.schema)
    extra = [StructField("_is_first", BooleanType()), StructField("_group_size", LongType())]
    extra += [StructField(f"_first_{c}", df.schema[c].dataType) for c in carry]
    out_schema = StructType(list(df.schema.fields) + extra)

    def run(batches):
        t = pa.Table.from_batches(list(batches), schema=base)
        if t.num_rows == 0:
            return
        g = first_occurrence(t, keys, order)
        t = t.append_column("_is_first", pa.array(g.is_first)).append_column("_group_size", pa.array(g.size))
        take = pa.array(g.first)
        for c in carry:
            t = t.append_column(f"_first_{c}", t.column(c).take(take))
        yield from t.to_batches()

    n = partitions or df.sparkSession.sparkContext.defaultParallelism * 2
    return df.repartition(n, *keys).mapInArrow(run, out_schema)

