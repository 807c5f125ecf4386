"""Connected components of a graph held as a Spark DataFrame of edges: distributed, deterministic.

`connected_components(edges, checkpoint_dir)` takes a DataFrame of int64 `src`, `dst` (an
undirected edge each; repeats and self-loops allowed) and returns (`node`, `component`) for every
node of an edge (self-loops included), where `component` is the smallest node of its component. The answer
depends on the graph alone: the same on any number of partitions, executors or runs.

The algorithm is Kiveris et al.'s alternating large-star / small-star ("Connected Components in
MapReduce and Beyond", SoCC 2014), each step a group-by and a join over edges only:
- large-star: every node u links each larger neighbour to m(u), the smallest of u and its
  neighbours;
- small-star: every node u links itself and each smaller neighbour to the smallest of them.
Both keep the components and shrink the labels, and the graph ends as one star per component
around its smallest node: a long chain takes O(log n) rounds, not O(n) as label propagation
does, and no node or task ever holds a whole component's edges, only its own neighbours. No
collect to the driver, no single-task union-find. Each round's edges are checkpointed to
`checkpoint_dir`, which cuts the lineage (a plan that grows per round) and is what a restarted
executor reads back. The loop ends when a round leaves the edge set unchanged (count and a
64-bit order-free checksum). `rounds` in the result says how many it took.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Components:
    labels: object  # DataFrame (node, component)
    rounds: int


def _oriented(edges):
    """Distinct (hi, lo) pairs, hi > lo: one row per undirected edge, self-loops dropped."""
    from pyspark.sql import functions as F

    return (edges.select(F.greatest("src", "dst").alias("hi"), F.least("src", "dst").alias("lo"))
            .where(F.col("hi") != F.col("lo")).distinct())


def _both_ways(e):
    from pyspark.sql import functions as F

    return e.select(F.col("hi").alias("u"), F.col("lo").alias("v")).unionByName(
        e.select(F.col("lo").alias("u"), F.col("hi").alias("v")))


def _large_star(e):
    """(hi, lo) -> edges (v, m(u)) for every neighbour v > u of every node u."""
    from pyspark.sql import functions as F

    nb = _both_ways(e)
    m = nb.groupBy("u").agg(F.least(F.min("v"), F.col("u")).alias("m"))
    out = nb.where(F.col("v") > F.col("u")).join(m, "u").select(F.col("v").alias("src"), F.col("m").alias("dst"))
    return _oriented(out)


def _small_star(e):
    """(hi, lo) -> edges (v, m) and (u, m) for every node u, its smaller neighbours v and their
    smallest m."""
    from pyspark.sql import functions as F

    m = e.groupBy("hi").agg(F.min("lo").alias("m"))
    out = e.join(m, "hi").select(F.col("lo").alias("src"), F.col("m").alias("dst")).unionByName(
        m.select(F.col("hi").alias("src"), F.col("m").alias("dst")))
    return _oriented(out)


def _signature(e) -> tuple:
    from pyspark.sql import functions as F

    row = e.agg(F.count(F.lit(1)).alias("n"),
                F.sum(F.xxhash64("hi", "lo").cast("decimal(38,0)")).alias("h")).collect()[0]
    return row["n"], row["h"]


def connected_components(edges, checkpoint_dir: str, max_rounds: int = 200) -> Components:
    spark = edges.sparkSession
    spark.sparkContext.setCheckpointDir(checkpoint_dir)
    e = _oriented(edges).checkpoint(eager=True)
    before, rounds = _signature(e), 0
    while True:
        rounds += 1
        e = _small_star(_large_star(e)).checkpoint(eager=True)
        now = _signature(e)
        if now == before:
            break
        if rounds >= max_rounds:
            raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
        before = now
    from pyspark.sql import functions as F

    # A star forest now: every edge joins a node to its component's smallest node. A node with
    # only self-loops is a component of its own.
    labels = e.select(F.col("hi").alias("node"), F.col("lo").alias("component")).unionByName(
        e.select(F.col("lo").alias("node"), F.col("lo").alias("component")))
    loops = edges.where(F.col("src") == F.col("dst")).select(F.col("src").alias("node"), F.col("src").alias("component"))
    labels = labels.unionByName(loops).groupBy("node").agg(F.min("component").alias("component"))
    return Components(labels, rounds)
