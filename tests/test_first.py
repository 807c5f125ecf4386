"""The one "first occurrence wins" rule (pipeline.first): groups, order, ties, associativity, and
the same answer from the numpy path (numeric keys), the Arrow path (string keys) and Spark."""
import numpy as np
import pyarrow as pa

from pipeline.first import first_occurrence, mark_first_occurrences


def brute_force(keys, order):
    """Per row: (index of its group's first row, group size), by plain Python."""
    out = []
    for i, k in enumerate(keys):
        group = [j for j, kk in enumerate(keys) if kk == k]
        first = min(group, key=lambda j: (order[j], j))
        out.append((first, len(group)))
    return out


def test_groups_first_and_size_match_brute_force():
    rng = np.random.default_rng(7)
    n = 400
    key = rng.integers(0, 40, n).astype(np.uint64)
    level = rng.integers(0, 2, n).astype(np.int8)
    pos = rng.permutation(n).astype(np.int64) // 3  # ties in doc_pos, broken by start
    start = rng.integers(0, 5, n).astype(np.int32)
    t = pa.table({"key": key, "level": level, "doc_pos": pos, "start": start})
    g = first_occurrence(t, ["key", "level"], ["doc_pos", "start"])
    expect = brute_force(list(zip(key.tolist(), level.tolist())), list(zip(pos.tolist(), start.tolist())))
    assert list(zip(g.first.tolist(), g.size.tolist())) == expect
    assert g.is_first.sum() == len(set(zip(key.tolist(), level.tolist())))


def test_string_keys_take_the_arrow_path_with_the_same_answer():
    keys = ["b", "a", "b", "c", "a", "b"]
    pos = [5, 3, 1, 9, 4, 2]
    g = first_occurrence(pa.table({"k": keys, "doc_pos": pos}), ["k"])
    assert g.first.tolist() == [2, 1, 2, 3, 1, 2]
    assert g.size.tolist() == [3, 2, 3, 1, 2, 3]
    codes = pa.table({"k": np.array([ord(k) for k in keys], np.uint64), "doc_pos": pos})
    assert first_occurrence(codes, ["k"]).first.tolist() == g.first.tolist()


def test_descending_order_picks_the_highest_score():
    t = pa.table({"k": [1, 1, 1, 2], "score": [0.2, 0.9, 0.5, 0.1], "doc_pos": [0, 1, 2, 3]})
    g = first_occurrence(t, ["k"], [("score", "descending"), "doc_pos"])
    assert g.first.tolist() == [1, 1, 1, 3]
    u = pa.table({"k": [1, 1], "n": pa.array([3, 7], pa.uint32())})
    assert first_occurrence(u, ["k"], [("n", "descending")]).first.tolist() == [1, 1]


def test_rule_is_associative_over_parts_with_counts():
    """Deciding parts first and then their firsts (with counts) gives the whole table's answer:
    what lets the two-pass engine move one row per key per read unit."""
    rng = np.random.default_rng(3)
    n = 1000
    t = pa.table({"k": rng.integers(0, 60, n).astype(np.uint64), "doc_pos": rng.permutation(n).astype(np.int64)})
    whole = first_occurrence(t, ["k"])
    parts = []
    for lo in range(0, n, 137):
        part = t.slice(lo, 137)
        g = first_occurrence(part, ["k"])
        firsts = part.filter(pa.array(g.is_first))
        parts.append(firsts.append_column("count", pa.array(g.size[g.is_first])))
    merged = pa.concat_tables(parts)
    g2 = first_occurrence(merged, ["k"], counts="count")
    got = {k: (merged.column("doc_pos")[int(f)].as_py(), int(s))
           for k, f, s in zip(merged.column("k").to_pylist(), g2.first, g2.size)}
    want = {k: (t.column("doc_pos")[int(f)].as_py(), int(s))
            for k, f, s in zip(t.column("k").to_pylist(), whole.first, whole.size)}
    assert got == want


def test_empty_table():
    g = first_occurrence(pa.table({"k": pa.array([], pa.uint64()), "doc_pos": pa.array([], pa.int64())}), ["k"])
    assert len(g.first) == 0 and len(g.size) == 0


def test_spark_dataframe_marking(spark):
    rows = [("x", 3, "d3"), ("y", 1, "d1"), ("x", 2, "d2"), ("x", 7, "d7"), ("z", 5, "d5")]
    df = spark.createDataFrame(rows, "k string, doc_pos long, id string")
    out = {r["id"]: r for r in mark_first_occurrences(df, ["k"], partitions=3).collect()}
    assert {i for i, r in out.items() if r["_is_first"]} == {"d2", "d1", "d5"}
    assert out["d7"]["_first_id"] == "d2" and out["d7"]["_group_size"] == 3
    assert out["d1"]["_first_id"] == "d1" and out["d1"]["_group_size"] == 1
