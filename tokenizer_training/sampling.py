"""The tokenizer-training sample plan: how many bytes each (language, source) gives.

Pure function of the corpus's byte counts per (language, source) and the config, so the driver
computes it from one small aggregate; the documents are then drawn in Spark with a seeded hash of
their id (Bernoulli with the planned probability), which needs no global order and gives the same
sample on every run.

Languages get shares of `sample_bytes` proportional to their weight (`lang_weights`, code
up-weighted). A language smaller than its share gives all it has, repeated up to
`max_lang_repeats` times (the upsampling of a small language that multilingual tokenizers use, so
that its merges are not crowded out by the larger languages); what is still missing is reported
as its shortfall, not moved to other languages (that would change the mixture). With repeats
allowed and every language short, the sample shrinks until the best-supplied language fills its
share once (repeating every language alike would only cost time). Inside a language, with
`balance_sources`, every source gets an equal share and a source smaller than its share gives all
of it, the remainder being shared among the larger ones (water-filling); without it, sources are
sampled in proportion to their size.
"""
from __future__ import annotations


def water_fill(sizes: dict, budget: float) -> dict:
    """Equal shares of `budget`, capped at each item's size, remainder to the others."""
    alloc = {k: 0.0 for k in sizes}
    left = dict(sizes)
    remaining = float(budget)
    while left and remaining > 1e-9:
        share = remaining / len(left)
        small = {k: v for k, v in left.items() if v <= share}
        if not small:
            for k in left:
                alloc[k] += share
            remaining = 0.0
            break
        for k, v in small.items():
            alloc[k] += v
            remaining -= v
            del left[k]
    return alloc


def sample_plan(sizes: dict, sample_bytes: int, lang_weights: dict, other_lang_weight: float = 0.0,
                balance_sources: bool = True, max_lang_repeats: float = 1.0) -> dict:
    """sizes: {(lang, source): bytes available}. Returns {"sources": {(lang, source): {...}},
    "langs": {lang: {...}}} with planned bytes and the expected number of copies of each of a
    source's documents ("probability": below 1 a Bernoulli draw, above 1 repeats)."""
    langs: dict = {}
    for (lang, source), n in sizes.items():
        langs.setdefault(lang, {})[source] = n
    weights = {lg: float(lang_weights.get(lg, other_lang_weight)) for lg in langs}
    wsum = sum(w for w in weights.values() if w > 0)
    total = float(sample_bytes)
    if max_lang_repeats > 1 and wsum > 0:
        # When every language is short of its share, repeating them all changes nothing but the run
        # time: shrink the sample until the best-supplied language fills its share exactly once.
        supply = [sum(langs[lg].values()) / (sample_bytes * w / wsum) for lg, w in weights.items() if w > 0]
        total *= min(1.0, max(supply)) if supply else 1.0
    out_sources, out_langs = {}, {}
    for lg, srcs in sorted(langs.items()):
        w = weights[lg]
        avail = float(sum(srcs.values()))
        budget = total * w / wsum if (w > 0 and wsum > 0) else 0.0
        target = min(budget, avail * max_lang_repeats)
        if balance_sources:
            alloc = water_fill({s: n * max_lang_repeats for s, n in srcs.items()}, target)
        else:
            alloc = {s: (target * n / avail if avail else 0.0) for s, n in srcs.items()}
        for s, n in srcs.items():
            p = min(max_lang_repeats, alloc[s] / n) if n > 0 else 0.0
            out_sources[(lg, s)] = {"available_bytes": int(n), "planned_bytes": int(round(alloc[s])),
                                    "probability": p}
        out_langs[lg] = {"weight": w, "share": (w / wsum if wsum > 0 and w > 0 else 0.0),
                         "budget_bytes": int(round(budget)), "available_bytes": int(avail),
                         "planned_bytes": int(round(target)), "repeats": round(target / avail, 4) if avail else 0.0,
                         "shortfall_bytes": int(round(max(0.0, budget - target)))}
    return {"sources": out_sources, "langs": out_langs}
