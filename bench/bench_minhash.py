"""Benchmark (a) of issue 10: MinHash signatures with shingling included, one core, against
datasketch (MinHash.update_batch) and rensa (Rust MinHash) fed by plain-Python shingling, on the
same documents and num_perm, alternated rounds (this host's speed drifts), medians and ratios.

Ours: dedup.shingle.shingle_hashes (NFKC, lower-case, Traditional -> Simplified, CJK characters
as tokens, 5-token shingles, one compiled kernel) + dedup.minhash.signatures. The peers get the
shingling a Python user would write for them: NFKC + lower-case, a regex word split (CJK
characters as tokens), 5-token joins. Input: the first --mb of English and of Chinese text from
../shared/corpora, timed separately.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")


def load(corpora: Path, names: list[str], mb: float) -> list[str]:
    out, size = [], 0
    for name in names:
        with gzip.open(corpora / name, "rt", encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)["text"]
                out.append(t)
                size += len(t.encode("utf-8"))
                if size >= mb * 1e6:
                    return out
    return out


def python_shingles(text: str, n: int = 5) -> list[bytes]:
    toks = TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
    if not toks:
        return []
    if len(toks) < n:
        return [" ".join(toks).encode()]
    return [" ".join(toks[i:i + n]).encode() for i in range(len(toks) - n + 1)]


def ours(batches, num_perm):
    """batches: Arrow string arrays of 1,024 texts, the form the stage's reader hands it (the peers
    get Python strings, theirs)."""
    from dedup.minhash import permutations, signatures
    from dedup.shingle import shingle_hashes

    a, b = permutations(num_perm, 1)
    for batch in batches:
        h, o = shingle_hashes(batch)
        signatures(h, o, a, b)


def datasketch_sigs(texts, num_perm):
    from datasketch import MinHash

    for t in texts:
        m = MinHash(num_perm=num_perm)
        m.update_batch(python_shingles(t))


def rensa_sigs(texts, num_perm):
    from rensa import RMinHash

    for t in texts:
        m = RMinHash(num_perm=num_perm, seed=1)
        m.update([s.decode() for s in python_shingles(t)])
        m.digest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "minhash_signatures.json"))
    ap.add_argument("--mb", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--num-perm", type=int, default=128)
    args = ap.parse_args()
    corpora = Path(args.corpora)
    sets = {"en": load(corpora, ["en_brown_corpus.jsonl.gz", "en_state_of_the_union.jsonl.gz"], args.mb),
            "zh": load(corpora, ["zh_news_peoples_daily_1998.jsonl.gz", "zh_reviews_hotel_shopping.jsonl.gz"], args.mb)}
    tools = {"ours": ours, "datasketch": datasketch_sigs, "rensa+python_shingles": rensa_sigs}
    ours([pa.array(sets["en"][:10])], args.num_perm)  # compile (or load the cached kernels) outside the timing
    result = {"what": "MinHash signatures incl. shingling, one core, MB/s", "num_perm": args.num_perm, "langs": {}}
    for lang, texts in sets.items():
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        arrow = [pa.array(texts[i:i + 1024], pa.string()) for i in range(0, len(texts), 1024)]
        times = {k: [] for k in tools}
        for _ in range(args.rounds):
            for name, fn in tools.items():  # alternated: every round runs each tool once
                data = arrow if name == "ours" else texts
                t0 = time.perf_counter()
                fn(data, args.num_perm)
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        result["langs"][lang] = {
            "mb": round(mb, 2), "docs": len(texts),
            "mb_per_s": {k: round(mb / v, 2) for k, v in med.items()},
            "ours_over_datasketch": round(med["datasketch"] / med["ours"], 1),
            "ours_over_rensa_python_shingles": round(med["rensa+python_shingles"] / med["ours"], 1),
            "rounds_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        }
        print(lang, json.dumps(result["langs"][lang]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
