"""From document weights to expected repeats: token budgets per mixture cell, then one scale per cell.

The corpus is split into cells (source group x language). A cell's weighted tokens W = sum(weight *
tokens) say how much of it the weights want; its capacity K = max_repeats * tokens is the most it
can give. The budgets B (tokens per cell, summing to the sampled corpus size) are found by
iterative proportional fitting: start from the weighted mixture (B proportional to W), then scale
the cells of each source group to its target share, the cells of each language to its target
share, clip every cell at its capacity, and repeat until both marginals hold. A target names a
share for some values of a dimension (sources by fnmatch pattern); the values it does not name
share the rest in proportion to their weighted tokens; every language gets at least `lang_floor`
(the floor lifts rare languages, taking from the others in proportion to what they hold above it).

Inside a cell, document i's expected repeats are r_i = min(c * weight_i, max_repeats), with the
one scale c that makes sum(r_i * tokens_i) = B. c is found by water-filling: c = (B - cap *
tokens of the capped documents) / (weighted tokens of the others), recomputed while the capped set
grows (it only grows, and each step needs two sums per cell over the documents: a Spark
aggregation, never the documents on the driver). The integer repeats are floor(r) plus one with
probability frac(r), drawn from a seeded hash of the document id (pipeline.hashing.uniform01), so
E[repeats] = r and the draw does not depend on partitioning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class MixtureSettings:
    # {"source": {pattern: share}, "lang": {lang: share}}: token shares of the sampled corpus.
    targets: dict = field(default_factory=dict)
    lang_floor: float = 0.0  # every language present gets at least this token share
    max_repeats: float = 4.0  # cap on a document's expected repeats (~4 epochs cost little: Muennighoff et al.)
    total_tokens: int = 0  # size of the sampled corpus in tokens; 0 = the input's tokens


def shares_for(values: list, natural: np.ndarray, explicit: dict, floor: float = 0.0) -> tuple[np.ndarray, list]:
    """Target share per value: the explicit ones, the rest of 1 split by `natural` share among the
    values not named, then the floor. Returns (shares summing to 1, explicit names with no data)."""
    named = np.array([v in explicit for v in values], bool)
    share = np.array([float(explicit.get(v, 0.0)) for v in values])
    rest = max(0.0, 1.0 - share[named].sum())
    free = natural * ~named
    if free.sum() > 0:
        share[~named] = rest * free[~named] / free.sum()
    share = share / share.sum() if share.sum() > 0 else np.full(len(values), 1.0 / max(1, len(values)))
    if floor > 0:
        share = _apply_floor(share, floor)
    return share, sorted(set(explicit) - set(values))


def _apply_floor(share: np.ndarray, floor: float) -> np.ndarray:
    floor = min(floor, 1.0 / len(share))
    low = share < floor
    if not low.any():
        return share
    deficit = (floor - share[low]).sum()
    excess = np.where(low, 0.0, share - floor)
    out = np.where(low, floor, share - deficit * excess / excess.sum())
    return out / out.sum()


@dataclass
class Cells:
    """One row per (source group, language) cell."""
    group: list
    lang: list
    tokens: np.ndarray  # raw tokens
    weighted: np.ndarray  # sum of weight * tokens


def budgets(cells: Cells, s: MixtureSettings, total: float, rounds: int = 1000) -> tuple[np.ndarray, dict]:
    """Token budget per cell by iterative proportional fitting under the caps; and the targets used."""
    dims = {"source": np.array(cells.group, object), "lang": np.array(cells.lang, object)}
    natural = cells.weighted / cells.weighted.sum()
    capacity = s.max_repeats * cells.tokens
    target, missing = {}, {}
    for dim, col in dims.items():
        values = sorted(set(col))
        nat = np.array([natural[col == v].sum() for v in values])
        floor = s.lang_floor if dim == "lang" else 0.0
        share, missing[dim] = shares_for(values, nat, s.targets.get(dim, {}), floor)
        target[dim] = dict(zip(values, share))
    b = natural * total
    for _ in range(rounds):
        for dim, col in dims.items():
            for v, share in target[dim].items():
                m = col == v
                have = b[m].sum()
                if have > 0:
                    b[m] *= share * total / have
        b = np.minimum(b, capacity)
        if _marginal_error(b, dims, target, total) < 1e-9:
            break
    return b, {"targets": {d: {v: round(float(x), 6) for v, x in t.items()} for d, t in target.items()},
               "targets_without_documents": {d: m for d, m in missing.items() if m}}


def _marginal_error(b, dims, target, total) -> float:
    return max(abs(b[col == v].sum() / total - share) for dim, col in dims.items() for v, share in target[dim].items())


def scales(budget: np.ndarray, weighted: np.ndarray, cap: float, sums: Callable, max_rounds: int = 100) -> np.ndarray:
    """The scale c per cell with sum_i min(c * w_i, cap) * t_i = budget, by water-filling.

    sums(c) -> (capped_tokens, free_weighted) per cell: the tokens of the documents with c * w_i >=
    cap and the weighted tokens of the others. A cell whose budget is its capacity gets c = inf."""
    c = np.where(weighted > 0, budget / np.maximum(weighted, 1e-300), 0.0)
    capped_before = None
    for _ in range(max_rounds):
        capped, free = sums(c)
        if capped_before is not None and np.array_equal(capped, capped_before):
            break
        capped_before = capped
        left = budget - cap * capped
        c = np.where(free > 0, np.maximum(left, 0.0) / np.maximum(free, 1e-300), np.inf)
    return c


def expected_repeats(weight: np.ndarray, scale: np.ndarray, cap: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.minimum(scale * weight, cap)
    return np.where(np.isnan(r), cap, r)


def draw_repeats(expected: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Integer repeats with E = expected: floor, plus one where the uniform u < the fraction."""
    base = np.floor(expected)
    return (base + (u < expected - base)).astype(np.int32)
