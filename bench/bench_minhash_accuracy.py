"""Accuracy harness of minhash-dedup (issue 10): pair recall, precision and F1 at thresholds 0.7,
0.8 and 0.9, per language, against an exact-Jaccard ground truth over all of ../shared/corpora
plus injected near-duplicates of real documents.

Injected (seeded): for each of en, zh and code, copies of real documents with 0.5-10% of their
tokens edited (replaced, deleted or inserted; words for en and code, characters for zh), and
Traditional-script copies (OpenCC s2t) of Simplified Chinese documents.

Ground truth: every pair with exact Jaccard >= 0.7 of the stage's own shingle sets
(dedup.shingle), found by a prefix-filtered all-pairs join (bench/jaccard_truth.py): exact, not
sampled. Then, with the stage run as a user runs it (its own Spark, default config but the
threshold):
  pair recall  = ground-truth pairs with J >= t whose two documents end in one cluster;
  precision    = removed documents that have a true near-duplicate (J >= 0.7) in their cluster;
  F1           = their harmonic mean,
per language (a pair's language is its first document's). Figures to
bench/results/minhash_accuracy.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LANGS = ("en", "zh", "code")


def load_corpora(corpora: Path) -> tuple[list[Path], list[dict]]:
    files = sorted(corpora.glob("*.jsonl.gz"))
    docs = []
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                docs.append({"id": r["id"], "text": r["text"], "lang": r.get("lang")})
    return files, docs


def edit(text: str, rate: float, rng: random.Random, chars: bool) -> str:
    """Replace, delete or insert `rate` of the text's tokens (words, or characters for Chinese)."""
    units = list(text) if chars else text.split(" ")
    vocab = [u for u in units if u.strip()] or ["x"]
    spots = [k for k, u in enumerate(units) if u.strip()]
    for k in sorted(rng.sample(spots, max(1, int(len(spots) * rate))), reverse=True):
        op = rng.random()
        if op < 0.5:
            units[k] = rng.choice(vocab)
        elif op < 0.75:
            del units[k]
        else:
            units.insert(k, rng.choice(vocab))
    return ("" if chars else " ").join(units)


def inject(docs: list[dict], per_lang: int, traditional: int, seed: int) -> list[dict]:
    import opencc

    rng = random.Random(seed)
    out = []
    for lang in LANGS:
        pool = [d for d in docs if d["lang"] == lang and 300 <= len(d["text"]) <= 200_000]
        for i, d in enumerate(rng.sample(pool, min(per_lang, len(pool)))):
            rate = rng.choice([0.005, 0.01, 0.02, 0.03, 0.05, 0.1])
            out.append({"id": f"injected-{lang}-{i}-edit{rate}", "text": edit(d["text"], rate, rng, lang == "zh"),
                        "lang": lang})
    s2t = opencc.OpenCC("s2t")
    pool = [d for d in docs if d["lang"] == "zh" and 300 <= len(d["text"]) <= 100_000]
    for i, d in enumerate(rng.sample(pool, min(traditional, len(pool)))):
        out.append({"id": f"injected-zh-{i}-traditional", "text": s2t.convert(d["text"]), "lang": "zh"})
    return out


def build_corpus(corpora: Path, inp: Path, per_lang: int = 300, traditional: int = 150, seed: int = 0):
    """inp/: the corpora's files (linked) and zz_injected.jsonl.gz; returns (files, every document
    in the order the stage reads them, the injected ones)."""
    files, docs = load_corpora(corpora)
    injected = inject(docs, per_lang, traditional, seed)
    inp.mkdir(parents=True)
    for f in files:
        os.symlink(f.resolve(), inp / f.name)
    with gzip.open(inp / "zz_injected.jsonl.gz", "wt", encoding="utf-8") as fh:
        for d in injected:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    return files, docs + injected, injected  # files are read in name order: zz_injected last


def truth(texts: list[str], t: float):
    from bench.jaccard_truth import similar_pairs
    from dedup.shingle import shingle_sets

    sets = []
    for i in range(0, len(texts), 2048):
        sets += shingle_sets(pa.array(texts[i:i + 2048]))
    return similar_pairs(sets, t)


def run_stage(inp: Path, out: Path, threshold: float, env: dict) -> dict:
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "pipeline", "minhash-dedup", "--input", str(inp), "--output", str(out),
                        "--overwrite", "--set", f"minhash-dedup.threshold={threshold}"],
                       cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"minhash-dedup failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    m = json.loads((out / "_manifest.json").read_text())
    m["_wall_s"] = time.time() - t0
    return m


def clusters_of(out: Path) -> tuple[dict, set]:
    import pyarrow.parquet as pq

    c = pq.read_table(out / "clusters", columns=["id", "cluster_id"])
    r = pq.read_table(out / "removed", columns=["id", "reason"])
    removed = [i for i, why in zip(r.column("id").to_pylist(), r.column("reason").to_pylist()) if why == "near_duplicate"]
    return dict(zip(c.column("id").to_pylist(), c.column("cluster_id").to_pylist())), set(removed)


def _kind(doc: dict) -> str:
    """The group an injected copy's pairs are also scored in (zh-traditional, en-edit, ...), "-" for
    the corpora's own documents: a pair with an injected copy in it counts in the copy's group."""
    if not doc["id"].startswith("injected-"):
        return "-"
    lang, kind = doc["id"].split("-")[1], doc["id"].rsplit("-", 1)[1]
    return f"{lang}-{'traditional' if kind == 'traditional' else 'edit'}"


def scores(ids, langs, a, b, j, cluster, removed, t: float) -> dict:
    out = {}
    hit, total = defaultdict(int), defaultdict(int)
    for x, y, s in zip(a.tolist(), b.tolist(), j.tolist()):
        if s < t:
            continue
        lang = langs[x] if langs[y] == "-" or langs[x] != "-" else langs[y]
        total[lang] += 1
        cx, cy = cluster.get(ids[x]), cluster.get(ids[y])
        hit[lang] += cx is not None and cx == cy
    near = defaultdict(set)  # doc -> its true near-duplicates (J >= 0.7)
    for x, y in zip(a.tolist(), b.tolist()):
        near[x].add(y)
        near[y].add(x)
    index = {d: i for i, d in enumerate(ids)}
    good, gone = defaultdict(int), defaultdict(int)
    for d in removed:
        i = index[d]
        gone[langs[i]] += 1
        good[langs[i]] += any(cluster.get(ids[k]) == cluster[d] for k in near[i])
    for lang in sorted(set(total) | set(gone)):
        r = hit[lang] / total[lang] if total[lang] else None
        p = good[lang] / gone[lang] if gone[lang] else None
        f1 = 2 * p * r / (p + r) if p and r else None
        out[lang] = {"true_pairs": total[lang], "pairs_found": hit[lang], "recall": r and round(r, 4),
                     "removed": gone[lang], "removed_with_true_near_duplicate": good[lang], "precision": p and round(p, 4),
                     "f1": f1 and round(f1, 4)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "minhash_accuracy.json"))
    ap.add_argument("--per-lang", type=int, default=300)
    ap.add_argument("--traditional", type=int, default=150)
    ap.add_argument("--thresholds", default="0.7,0.8,0.9")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-minhash-acc-"))
    files, docs, injected = build_corpus(Path(args.corpora), work / "in", args.per_lang, args.traditional, args.seed)
    inp = work / "in"
    ids, langs = [d["id"] for d in docs], [d["lang"] if d["lang"] in LANGS else "other" for d in docs]
    kinds = [_kind(d) for d in docs]
    t0 = time.time()
    a, b, j = truth([d["text"] for d in docs], 0.7)
    truth_s = time.time() - t0
    print(f"ground truth: {len(a):,} pairs with J >= 0.7 among {len(docs):,} documents ({truth_s:.0f} s)", flush=True)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    result = {"what": "minhash-dedup pair recall / precision / F1 vs exact-Jaccard ground truth",
              "corpus": {"docs": len(docs), "injected": len(injected), "files": len(files) + 1},
              "ground_truth": {"pairs_j_ge_0.7": int(len(a)), "seconds": round(truth_s, 1),
                               "method": "prefix-filtered all-pairs join, exact Jaccard of the stage's shingle sets"},
              "thresholds": {}}
    for t in (float(x) for x in args.thresholds.split(",")):
        m = run_stage(inp, work / f"out-{t}", t, env)
        cluster, removed = clusters_of(work / f"out-{t}")
        s = scores(ids, langs, a, b, j, cluster, removed, t)
        inj = scores(ids, kinds, a, b, j, cluster, removed, t)
        result["thresholds"][str(t)] = {"by_lang": s, "injected_pairs": {k: v for k, v in inj.items() if k != "-"},
                                        "stage_wall_s": round(m["_wall_s"], 1),
                                        "minhash": m["stats"]["minhash"]}
        print(f"threshold {t}: " + json.dumps(s), flush=True)
        shutil.rmtree(work / f"out-{t}", ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
