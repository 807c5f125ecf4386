"""A document's sampling weight: one formula, every coefficient in config, signals apart from the mixture.

FORMULA (also written into the dataset card):

    weight = exp(quality_strength * (quality_score - quality_pivot))       quality, up or down
           * prod over `signals`: exp(coefficient * value)                   chosen q_ signals
           * copies ** -duplicate_exponent                                   near/exact duplicates
           * semantic_cluster_size ** -cluster_exponent                      crowded topics

    copies = exact_copies + (minhash_cluster_size - 1) + semantic_duplicates
             (how many input documents this one stands for after the three dedup stages; 1 for a
             document that had no duplicate)

A column the input lacks, or a null in it, is neutral (factor 1), so any subset of the earlier
stages works. The weight is relative: the mixture (sampling.mixture) scales the weights of each
(source group, language) cell to that cell's token budget, caps a document's expected repeats at
`max_repeats` and draws integer repeats. Weights are computed from the document's own columns, in
pass 1 and again in pass 2, so no per-document decision needs to move.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from textwrap import dedent

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FORMULA = dedent(__doc__.split("FORMULA (also written into the dataset card):")[1].split("A column the input lacks")[0]).strip()
REST = "(rest)"  # the source group of sources no target pattern names


@dataclass
class WeightSettings:
    quality_column: str = "quality_score"
    quality_pivot: float = 0.5
    quality_strength: float = 2.0  # e^{+-1} at scores 1 / 0 with the pivot at 0.5
    signals: dict = field(default_factory=dict)  # {column: coefficient}: factor exp(coefficient * value)
    duplicate_exponent: float = 0.5  # a text that stood for 100 documents: 0.1x
    cluster_exponent: float = 0.25  # a topic cluster 16x larger: 0.5x


def _column(table: pa.Table, name: str) -> np.ndarray | None:
    """A numeric column as float64 with nulls as NaN, or None when the table lacks it."""
    if name not in table.schema.names:
        return None
    col = table.column(name)
    if pa.types.is_boolean(col.type):
        col = col.cast(pa.int8())
    return pc.fill_null(col.cast(pa.float64()), float("nan")).to_numpy()


def _neutral(x: np.ndarray | None, n: int, fill: float) -> np.ndarray:
    return np.full(n, fill) if x is None else np.where(np.isnan(x), fill, x)


def copies(table: pa.Table) -> np.ndarray:
    """How many input documents each document stands for (>= 1)."""
    n = table.num_rows
    exact = _neutral(_column(table, "exact_copies"), n, 1.0)
    near = _neutral(_column(table, "minhash_cluster_size"), n, 1.0)
    semantic = _neutral(_column(table, "semantic_duplicates"), n, 0.0)
    return np.maximum(1.0, exact + np.maximum(near - 1.0, 0.0) + np.maximum(semantic, 0.0))


def document_weights(table: pa.Table, s: WeightSettings) -> np.ndarray:
    """The formula above for every row of `table` (float64, > 0)."""
    n = table.num_rows
    log_w = np.zeros(n)
    q = _column(table, s.quality_column)
    if q is not None:
        log_w += s.quality_strength * _neutral(q - s.quality_pivot, n, 0.0)
    for name, coefficient in s.signals.items():
        log_w += float(coefficient) * _neutral(_column(table, name), n, 0.0)
    log_w -= s.duplicate_exponent * np.log(copies(table))
    size = _neutral(_column(table, "semantic_cluster_size"), n, 1.0)
    log_w -= s.cluster_exponent * np.log(np.maximum(size, 1.0))
    return np.exp(np.clip(log_w, -50.0, 50.0))


def source_patterns(targets: dict | None) -> list:
    """The source patterns a mixture's targets name, in config order."""
    return list((targets or {}).get("source", {}))


def source_groups(sources: pa.ChunkedArray | pa.Array, patterns: list) -> pa.Array:
    """Each source's mixture group: the first target pattern (fnmatch, e.g. "cpython_stdlib_*")
    that matches it, else REST. Decided once per distinct source of the batch."""
    values = pc.fill_null(sources, "")
    distinct = pc.unique(values).to_pylist()
    group = {v: next((p for p in patterns if fnmatchcase(v, p)), REST) for v in distinct}
    return pa.array([group[v] for v in distinct], pa.string()).take(pc.index_in(values, pa.array(distinct)))


QUALITY_EDGES = (0.2, 0.4, 0.6, 0.8)


def quality_buckets(table: pa.Table, column: str) -> pa.Array:
    """'0.0-0.2' ... '0.8-1.0' by the quality score, '(none)' where there is none."""
    q = _column(table, column)
    labels = ["0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"]
    if q is None:
        return pa.array(["(none)"] * table.num_rows, pa.string())
    idx = np.searchsorted(np.array(QUALITY_EDGES), np.nan_to_num(q, nan=0.0), side="right")
    return pa.array(np.where(np.isnan(q), "(none)", np.array(labels, dtype=object)[idx]).tolist(), pa.string())
