"""pipeline.components against a union-find reference: random graphs, a long chain, large stars,
and the same answer on 1, 3 and 8 partitions."""
import random

import pytest

from pipeline.components import connected_components


def union_find(edges) -> dict:
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def components_of(spark, edges, tmp_path, partitions=4):
    df = spark.createDataFrame(edges, "src long, dst long").repartition(partitions)
    result = connected_components(df, str(tmp_path / "ckpt"))
    rows = result.labels.collect()
    labels = {r["node"]: r["component"] for r in rows}
    assert len(labels) == len(rows), "a node got two labels"
    return labels, result.rounds


def random_graph(rng, n_nodes, n_edges):
    return [(rng.randrange(n_nodes) * 7919 + 3, rng.randrange(n_nodes) * 7919 + 3) for _ in range(n_edges)]


@pytest.mark.parametrize("seed", [0, 1])
def test_random_graphs_match_union_find(spark, tmp_path, seed):
    rng = random.Random(seed)
    edges = random_graph(rng, 3000, 2200) + [(5, 5), (9, 9)]  # many small components, self-loops
    labels, _ = components_of(spark, edges, tmp_path)
    assert labels == union_find(edges)


def test_long_chain_converges_in_few_rounds(spark, tmp_path):
    nodes = list(range(10_000))
    random.Random(3).shuffle(nodes)  # the chain's order is not the ids' order
    edges = list(zip(nodes, nodes[1:]))
    labels, rounds = components_of(spark, edges, tmp_path)
    assert set(labels.values()) == {0} and len(labels) == 10_000
    assert rounds <= 30  # label propagation would take ~10,000


def test_large_stars_and_repeated_edges(spark, tmp_path):
    edges = [(10**12, leaf) for leaf in range(1, 3001)]  # centre is the largest id
    edges += [(leaf, 10**12) for leaf in range(1, 3001)]  # each edge again, reversed
    edges += [(5000 + i, 9000) for i in range(2000)]  # a second star, centre in the middle
    labels, _ = components_of(spark, edges, tmp_path)
    assert labels == union_find(edges)
    assert set(labels.values()) == {1, 5000}


def test_same_answer_on_any_partitioning(spark, tmp_path):
    rng = random.Random(7)
    edges = random_graph(rng, 2000, 1800)
    answers = [components_of(spark, edges, tmp_path / str(p), partitions=p)[0] for p in (1, 3, 8)]
    assert answers[0] == answers[1] == answers[2] == union_find(edges)
