"""The sample stage's decide step and its figures: sums over pass 1's records, never the documents.

Every sum is taken per read unit inside a task (numpy/Arrow over the unit's small records) and the
partial sums are added on the driver with math.fsum, which rounds exactly: the scales, and so every
draw, are the same however the units are spread over tasks (local or cluster).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import UserError
from pipeline.readers import light_tasks
from sampling.mixture import Cells, budgets, scales
from sampling.weights import quality_buckets, source_groups, source_patterns

DIMENSIONS = ("source", "lang")


def check_targets(targets) -> None:
    if not isinstance(targets, dict) or set(targets) - set(DIMENSIONS):
        raise UserError(f"sample.targets: a mapping with keys among {', '.join(DIMENSIONS)}, got {targets!r}")
    for dim, shares in targets.items():
        if not isinstance(shares, dict) or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in shares.values()):
            raise UserError(f"sample.targets.{dim}: a mapping of names to shares in [0, 1], got {shares!r}")
        if sum(shares.values()) > 1 + 1e-9:
            raise UserError(f"sample.targets.{dim}: the shares add up to {sum(shares.values()):.4f} > 1")


def _partials(spark, n_units: int, root: str, name: str, per_unit) -> dict:
    """per_unit(table of side file `name` of a unit) -> {key: tuple of numbers}, summed over units."""
    def run(units):
        from pipeline.taskfiles import read_part

        for u in units:
            t = read_part(Path(root) / name, u)
            if t is not None and t.num_rows:
                yield from per_unit(t).items()

    pairs = spark.sparkContext.parallelize(range(n_units), max(1, min(n_units, light_tasks(spark)))) \
        .mapPartitions(run).collect()
    acc: dict = {}
    for key, values in pairs:
        acc.setdefault(key, []).append(values)
    return {k: tuple(math.fsum(v[i] for v in vs) for i in range(len(vs[0]))) for k, vs in sorted(acc.items())}


def _grouped(t: pa.Table, keys: list, values: dict) -> dict:
    """{key tuple: sums} of the value columns over t's rows grouped by `keys`."""
    cols = {k: t.column(k) for k in keys} | {f"v{i}": v for i, v in enumerate(values.values())}
    g = pa.table(cols).group_by(keys).aggregate([(f"v{i}", "sum") for i in range(len(values))])
    key_lists = [g.column(k).to_pylist() for k in keys]
    sums = [g.column(f"v{i}_sum").to_pylist() for i in range(len(values))]
    return {tuple(k[j] for k in key_lists): tuple(s[j] for s in sums) for j in range(g.num_rows)}


def cell_table(spark, n_units: int, root: str) -> tuple[Cells, dict]:
    """The mixture cells from the records; and tokens per (group, lang, bucket) before sampling."""
    def per_unit(t):
        w = pc.multiply(t.column("weight"), t.column("tokens").cast(pa.float64()))
        return {("cell", *k): v for k, v in _grouped(t, ["group", "lang"], {
            "docs": pa.array(np.ones(t.num_rows)), "tokens": t.column("tokens").cast(pa.float64()), "w": w}).items()} | \
            {("bucket", *k): v for k, v in _grouped(t, ["group", "lang", "bucket"], {
                "tokens": t.column("tokens").cast(pa.float64())}).items()}
    sums = _partials(spark, n_units, root, "records", per_unit)
    cells = sorted(k[1:] for k in sums if k[0] == "cell")
    table = Cells(group=[g for g, _ in cells], lang=[lg for _, lg in cells],
                  tokens=np.array([sums[("cell", *c)][1] for c in cells]),
                  weighted=np.array([sums[("cell", *c)][2] for c in cells]))
    before = {k[1:]: v[0] for k, v in sums.items() if k[0] == "bucket"}
    docs = {c: sums[("cell", *c)][0] for c in cells}
    return table, {"tokens_by_cell_bucket": before, "docs_by_cell": docs}


def decide_scales(spark, n_units: int, root: str, cfg, mixture) -> tuple[dict, dict]:
    """{(group, lang): scale} and the figures of the decision."""
    cells, before = cell_table(spark, n_units, root)
    if not cells.group:
        return {}, {"input_tokens": 0, "total_tokens": 0, "cells": [], **before}
    total = float(cfg.total_tokens or cells.tokens.sum())
    budget, info = budgets(cells, mixture, total)
    index = {c: i for i, c in enumerate(zip(cells.group, cells.lang))}
    cap = mixture.max_repeats

    def sums(c: np.ndarray):
        scale = {k: float(c[i]) for k, i in index.items()}

        def per_unit(t):
            s = np.array([scale[k] for k in zip(t.column("group").to_pylist(), t.column("lang").to_pylist())])
            w, tok = t.column("weight").to_numpy(), t.column("tokens").to_numpy().astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                capped = s * w >= cap
            return _grouped(t, ["group", "lang"], {"capped": pa.array(np.where(capped, tok, 0.0)),
                                                   "free": pa.array(np.where(capped, 0.0, w * tok))})
        got = _partials(spark, n_units, root, "records", per_unit)
        out = np.zeros((2, len(index)))
        for k, (capped, free) in got.items():
            out[:, index[k]] = (capped, free)
        return out[0], out[1]

    c = scales(budget, cells.weighted, cap, sums)
    rows = [{"group": g, "lang": lg, "docs": int(before["docs_by_cell"][(g, lg)]), "tokens": int(t),
             "weighted_tokens": float(w), "budget_tokens": float(b), "scale": float(s),
             "at_capacity": bool(b >= cap * t * (1 - 1e-9))}
            for g, lg, t, w, b, s in zip(cells.group, cells.lang, cells.tokens, cells.weighted, budget, c)]
    stats = {"input_tokens": int(cells.tokens.sum()), "total_tokens": int(round(total)), "cells": rows, **info,
             **before}
    return {(g, lg): float(s) for g, lg, s in zip(cells.group, cells.lang, c)}, stats


def realised_shares(spark, work_dir: Path, stats: dict, cfg) -> dict:
    """Token shares per source group, language and quality bucket: before (the input), targeted
    and after (sum of repeats x sample_tokens over kept/), with the report's tables and figure."""
    files = [str(f) for f in sorted((Path(work_dir) / "kept").glob("*.parquet"))]
    pats, qcol = source_patterns(cfg.targets), cfg.quality_column

    def per_file(paths):
        import pyarrow.parquet as pq

        for path in paths:
            names = pq.ParquetFile(path).schema_arrow.names
            t = pq.read_table(path, columns=[c for c in ("source", "lang", qcol, "repeats", "sample_tokens") if c in names])
            if not t.num_rows:
                continue
            tok = pc.multiply(t.column("repeats").cast(pa.int64()), t.column("sample_tokens"))
            t = pa.table({"group": source_groups(t.column("source"), pats),
                          "lang": pc.fill_null(t.column("lang"), "(none)"), "bucket": quality_buckets(t, qcol),
                          "tokens": tok.cast(pa.float64()), "copies": t.column("repeats").cast(pa.float64())})
            yield from _grouped(t, ["group", "lang", "bucket"], {"tokens": t.column("tokens"),
                                                                 "copies": t.column("copies")}).items()
    pairs = spark.sparkContext.parallelize(files, max(1, min(len(files), light_tasks(spark)))).mapPartitions(per_file).collect() if files else []
    after: dict = {}
    for k, (tok, _) in pairs:
        after[k] = after.get(k, 0.0) + tok
    before = stats.pop("tokens_by_cell_bucket")
    stats.pop("docs_by_cell", None)
    shares = {dim: _shares(before, after, i, stats.get("targets", {}).get(dim, {}))
              for dim, i in (("source", 0), ("lang", 1), ("quality_bucket", 2))}
    max_error = max([abs(r["after"] - r["target"]) for dim in DIMENSIONS for r in shares[dim]] or [0.0])
    return {"shares": shares, "sampled_tokens": int(sum(after.values())),
            "max_abs_share_error": round(max_error, 6), "report": _report(shares, stats)}


def _shares(before: dict, after: dict, i: int, targets: dict) -> list:
    b_tot, a_tot = sum(before.values()) or 1.0, sum(after.values()) or 1.0
    values = sorted({k[i] for k in before} | {k[i] for k in after})
    rows = []
    for v in values:
        b = sum(x for k, x in before.items() if k[i] == v) / b_tot
        a = sum(x for k, x in after.items() if k[i] == v) / a_tot
        row = {"value": v, "before": round(b, 6), "after": round(a, 6)}
        if targets:
            row["target"] = round(float(targets.get(v, 0.0)), 6)
        rows.append(row)
    return rows


def _report(shares: dict, stats: dict) -> dict:
    tables = []
    for dim, rows in shares.items():
        has_target = any("target" in r for r in rows)
        tables.append({"title": f"Token share by {dim.replace('_', ' ')}: before and after sampling",
                       "columns": [dim, "before %", *(["target %"] if has_target else []), "after %"],
                       "rows": [[r["value"], 100 * r["before"], *([100 * r["target"]] if has_target else []),
                                 100 * r["after"]] for r in rows]})
    tables.append({"title": "Mixture cells (source group x language)",
                   "columns": ["source group", "lang", "documents", "tokens", "budget tokens", "scale", "at capacity"],
                   "rows": [[c["group"], c["lang"], c["docs"], c["tokens"], round(c["budget_tokens"]),
                             c["scale"], c["at_capacity"]] for c in stats.get("cells", [])]})
    return {"tables": tables, "figures": [{"title": "Mixture before and after sampling", "path": "mixture.png"}]}


def mixture_figure(work_dir: Path, shares: dict) -> None:
    """mixture.png: token share per language and per source group, before / target / after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 3]})
    for ax, dim in zip(axes, DIMENSIONS):
        rows = shares[dim]
        x = np.arange(len(rows))
        series = [("before", "#9aa5b1")] + ([("target", "#f0b429")] if any("target" in r for r in rows) else []) + \
            [("after", "#2680c2")]
        width = 0.8 / len(series)
        for j, (key, colour) in enumerate(series):
            ax.bar(x + (j - (len(series) - 1) / 2) * width, [100 * r.get(key, 0.0) for r in rows], width,
                   label=key, color=colour)
        ax.set_xticks(x, [r["value"] for r in rows], rotation=60 if dim == "source" else 0, ha="right", fontsize=7)
        ax.set_ylabel("% of tokens")
        ax.set_title(f"by {dim}")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(Path(work_dir) / "mixture.png", dpi=110)
    plt.close(fig)
