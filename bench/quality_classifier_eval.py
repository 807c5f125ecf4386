"""Train the fastText quality classifier with the default recipe on ../shared/corpora and measure it.

Figures (bench/results/quality_classifier.json), per language (en, zh):
- held-out AUC, precision and recall at 0.5 on the corpora's contrast data (the split of
  quality.classifier.split_examples: by a seeded hash of the document's group), train time,
  model size, train/held-out sizes, mean held-out score per source;
- scoring speed (docs/s and MB/s, one process) on the webpages below;
- webpage pairs (../shared/webpages, evaluation only, never trained on): each page's full text
  (navigation, menus, footers, comments) against the same page's gold article alone; the share of
  pairs where the article scores strictly higher (target >= 0.8), ties counted apart, on all pairs
  and on the pairs whose article is under 95% of the page's characters (13 of the 61 zh pairs are
  their article plus a title or byline line, near coin flips for any scorer). The score is
  `quality_score` exactly as quality-signals writes it (quality.stages.quality_scores: the
  classifier combined with q_boilerplate_char_fraction by QualitySignalsConfig.boilerplate_penalty,
  float32); `classifier_only` holds the same figures for the classifier's probability alone;
- the same AUC and pair figures for further seeds (other split, other link lists, other
  training order): the spread says how much of a figure is the seed (zh has only 61 pairs);
- determinism: the first seed trained twice, the model files compared byte for byte.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quality.classifier import (DEFAULT_RULES, LINK_LISTS, MAX_PER_SOURCE, MODEL_NAME,  # noqa: E402
                                labelled_documents, load_classifier, read_jsonl_gz, split_examples,
                                train_classifier)
from quality.signals import boilerplate_char_fraction  # noqa: E402
from quality.stages import QualitySignalsConfig, classifier_scores, quality_scores  # noqa: E402

WEBPAGES = {"en": "en_web_pages_dragnet.jsonl.gz", "zh": "zh_web_pages_cwce.jsonl.gz"}
MOSTLY_ARTICLE = 0.95


def webpage_pairs(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(page texts, article texts, groups) of the pairs, in cluster order."""
    by_cluster: dict = {}
    for doc in read_jsonl_gz(path):
        by_cluster.setdefault(doc["cluster"], {})[doc["label"]] = doc
    pairs = [v for _, v in sorted(by_cluster.items()) if {"page_with_boilerplate", "article_body"} <= v.keys()]
    return ([p["page_with_boilerplate"]["text"] for p in pairs], [p["article_body"]["text"] for p in pairs],
            [p["article_body"].get("group") or "all" for p in pairs])


def _shares(article_scores, page_scores, boilerplate: np.ndarray) -> dict:
    wins, ties = article_scores > page_scores, article_scores == page_scores
    return {"article_higher_share": round(float(wins.mean()), 4), "ties": int(ties.sum()),
            "article_higher_share_with_boilerplate": round(float(wins[boilerplate].mean()), 4),
            "mean_page_score": round(float(page_scores.mean()), 4),
            "mean_article_score": round(float(article_scores.mean()), 4)}


def pair_figures(model, path: Path, lang: str, cfg: QualitySignalsConfig | None = None) -> dict:
    """Pair figures of `quality_score` exactly as quality-signals writes it (quality.stages.
    quality_scores: the classifier on the first score_chars characters, combined with
    q_boilerplate_char_fraction by boilerplate_penalty, as float32), and of the classifier alone
    (`classifier_only`) for comparison."""
    cfg = cfg or QualitySignalsConfig()
    pages, articles, groups = webpage_pairs(path)
    langs = [lang] * len(pages)
    t0 = time.perf_counter()
    raw_page = classifier_scores({lang: model}, pages, langs, cfg.score_chars)
    seconds = time.perf_counter() - t0
    raw_article = classifier_scores({lang: model}, articles, langs, cfg.score_chars)
    frac_page, frac_article = boilerplate_char_fraction(pages, langs), boilerplate_char_fraction(articles, langs)
    page_scores = quality_scores({lang: model}, pages, langs, frac_page, cfg).to_numpy(zero_copy_only=False)
    article_scores = quality_scores({lang: model}, articles, langs, frac_article, cfg).to_numpy(zero_copy_only=False)
    boilerplate = np.array([len(a) / max(len(p), 1) < MOSTLY_ARTICLE for a, p in zip(articles, pages)])
    out = {"pairs": len(pages), "pairs_with_boilerplate": int(boilerplate.sum()),
           "score": "quality_score (classifier * (1 - q_boilerplate_char_fraction) ** boilerplate_penalty)",
           "boilerplate_penalty": cfg.boilerplate_penalty,
           **_shares(article_scores, page_scores, boilerplate),
           "classifier_only": _shares(raw_article, raw_page, boilerplate),
           "mean_page_boilerplate_char_fraction": round(float(frac_page.mean()), 4),
           "mean_article_boilerplate_char_fraction": round(float(frac_article.mean()), 4),
           "scoring_docs_per_s": round(len(pages) / seconds),
           "scoring_mb_per_s": round(sum(len(t) for t in pages) / seconds / 1e6, 2)}
    wins = article_scores > page_scores
    groups = np.asarray(groups)
    if len(set(groups)) > 1:
        out["article_higher_share_by_group"] = {str(g): round(float(wins[groups == g].mean()), 4)
                                                for g in sorted(set(groups))}
    return out


def model_digests(out_dir: Path, langs) -> dict:
    return {lang: hashlib.sha256((out_dir / MODEL_NAME.format(lang=lang)).read_bytes()).hexdigest()
            for lang in langs}


def train_and_measure(docs: dict, seed: int, out_dir: Path, webpages: Path, hyper: dict) -> dict:
    data = split_examples(docs["texts"], docs["langs"], docs["labels"], docs["groups"], seed,
                          sources=docs["sources"])
    metrics = train_classifier(data, out_dir, seed, **hyper)
    for lang, row in metrics["langs"].items():
        row["webpage_pairs"] = pair_figures(load_classifier(out_dir / row["model"]), webpages / WEBPAGES[lang], lang)
    return metrics


def seed_summary(metrics: dict) -> dict:
    return {lang: {"auc": row["auc"], "precision": row["precision"], "recall": row["recall"],
                   "article_higher_share": row["webpage_pairs"]["article_higher_share"],
                   "article_higher_share_with_boilerplate":
                       row["webpage_pairs"]["article_higher_share_with_boilerplate"],
                   "classifier_only_article_higher_share":
                       row["webpage_pairs"]["classifier_only"]["article_higher_share"],
                   "classifier_only_article_higher_share_with_boilerplate":
                       row["webpage_pairs"]["classifier_only"]["article_higher_share_with_boilerplate"]}
            for lang, row in metrics["langs"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    ap.add_argument("--webpages", type=Path, default=REPO.parent / "shared" / "webpages")
    ap.add_argument("--seeds", default="0,1,2", help="the first one is the reported model")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality_classifier.json")
    ap.add_argument("--hyper", default="{}", help="JSON of fastText settings over the defaults")
    ap.add_argument("--no-determinism", action="store_true", help="skip training the first seed twice")
    args = ap.parse_args()
    hyper = json.loads(args.hyper)
    seeds = [int(s) for s in args.seeds.split(",")]

    t0 = time.perf_counter()
    docs = labelled_documents(args.corpora, DEFAULT_RULES)
    read_s = time.perf_counter() - t0
    runs, determinism = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            runs[seed] = train_and_measure(docs, seed, Path(tmp) / f"seed{seed}", args.webpages, hyper)
            print(json.dumps({f"seed {seed}": seed_summary(runs[seed])}))
        if not args.no_determinism:
            again = Path(tmp) / "again"
            data = split_examples(docs["texts"], docs["langs"], docs["labels"], docs["groups"], seeds[0],
                                  sources=docs["sources"])
            train_classifier(data, again, seeds[0], **hyper)
            first, second = model_digests(Path(tmp) / f"seed{seeds[0]}", data), model_digests(again, data)
            determinism = {"same_bytes": first == second, "sha256": first}
    main_run = runs[seeds[0]]
    result = {"what": "fastText quality classifier, default recipe (quality.classifier.DEFAULT_RULES, "
                      "MAX_PER_SOURCE, LINK_LISTS) on ../shared/corpora; webpage pairs of ../shared/webpages "
                      "for evaluation only",
              "rules": DEFAULT_RULES.__dict__, "max_per_source": MAX_PER_SOURCE, "link_lists_per_lang": LINK_LISTS,
              "read_corpora_s": round(read_s, 1), "targets": {"heldout_auc": 0.95, "article_higher_share": 0.8},
              "determinism": determinism, **main_run,
              "by_seed": {str(seed): seed_summary(run) for seed, run in runs.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({"by_seed": result["by_seed"], "determinism": determinism,
                      "model_bytes": {k: v["model_bytes"] for k, v in main_run["langs"].items()}}, indent=2))


if __name__ == "__main__":
    main()
