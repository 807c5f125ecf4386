"""Benchmark: what the sentence-level boilerplate filter (quality/linefilter.py) cuts from real web
pages, judged against the same pages' gold article text (../shared/webpages, pairs by `cluster`).

Every `page_with_boilerplate` text goes through `boilerplate_cuts`, and the cuts through the one
span-cutting path (pipeline.spans: choose_outermost, cut_documents; the original page is rebuilt
from the kept text and the spans to check the offsets). Each cut span is judged, on its
whitespace-normalised, case-folded text (Chinese: whitespace removed, as the data set's own
containment check does):
  article          it equals a line of the same cluster's article_body, or is a substring of the
                   article and at least SHORT characters long;
  short_ambiguous  shorter than SHORT and a substring of the article without being one of its lines
                   ("Home", "Sports", "2012" occur inside article sentences by chance): counted apart;
  boilerplate      otherwise.
Precision = boilerplate / (boilerplate + article), by spans and by characters; the strict figure
also counts short_ambiguous as article. Recall by characters: of the page's boilerplate characters
(its non-blank lines judged boilerplate the same way), the share cut. Per rule: spans, characters,
precision. The article bodies alone go through the filter too: the characters cut from clean
articles (should be near 0), and a sample of each prose file of ../shared/corpora (not web pages:
edited prose, poems, dictionaries, manuals, e-mail; code must stay untouched).
Figures and 20 example cut spans per language to bench/results/quality_linefilter.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.spans import choose_outermost, cut_documents  # noqa: E402
from quality.linefilter import REASONS, LineRules, boilerplate_cuts  # noqa: E402

SHARED = REPO.parent / "shared"
PAGE_FILES = {"en": "en_web_pages_dragnet.jsonl.gz", "zh": "zh_web_pages_cwce.jsonl.gz"}
SHORT = 15
CORPORA_SAMPLE = {  # file -> documents read (the first n): text that is not a web page
    "en_brown_corpus.jsonl.gz": 500, "en_state_of_the_union.jsonl.gz": 233, "en_fortunes.jsonl.gz": 5000,
    "en_dict_gcide_sample.jsonl.gz": 3000, "en_docs_python311.jsonl.gz": 300, "en_docs_debian.jsonl.gz": 361,
    "en_manpages.jsonl.gz": 500, "en_email_spamassassin.jsonl.gz": 2000, "en_sentences_nlp_corpus.jsonl.gz": 5000,
    "zh_news_peoples_daily_1998.jsonl.gz": 2000, "zh_wiki_drcd_traditional.jsonl.gz": 1000,
    "zh_reviews_hotel_shopping.jsonl.gz": 3000, "zh_docs_debian.jsonl.gz": 300, "zh_manpages.jsonl.gz": 300,
    "zhen_libreoffice_help.jsonl.gz": 2000, "code_python_stdlib_5versions.jsonl.gz": 300,
    "code_c_cpp_headers.jsonl.gz": 300,
}


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


def load_pairs(path: Path) -> list[dict]:
    """[{cluster, lang, page, article}] for every cluster holding both texts, in file order."""
    by = defaultdict(dict)
    for r in read_jsonl(path):
        by[r["cluster"]][r["label"]] = r
    return [{"cluster": c, "lang": d["page_with_boilerplate"]["lang"], "page": d["page_with_boilerplate"]["text"],
             "article": d["article_body"]["text"], "group": d["page_with_boilerplate"].get("group")}
            for c, d in by.items() if len(d) == 2]


def normaliser(lang: str):
    ws = re.compile(r"\s+")
    sep = "" if lang.startswith("zh") else " "
    return lambda s: ws.sub(sep, s.casefold()).strip()


class ArticleJudge:
    """Judges a piece of a page against the page's gold article (see the module docstring)."""

    def __init__(self, article: str, lang: str):
        self.norm = normaliser(lang)
        self.lines = {self.norm(x) for x in article.split("\n")}
        self.text = self.norm(article.replace("\n", " "))

    def __call__(self, piece: str) -> str:
        p = self.norm(piece)
        if not p:
            return "blank"
        if p in self.lines:
            return "article"
        if p in self.text:
            return "article" if len(p) >= SHORT else "short_ambiguous"
        return "boilerplate"


def page_char_labels(page: str, judge: ArticleJudge) -> tuple[np.ndarray, np.ndarray]:
    """Per character of the page: 0 blank/newline, 1 boilerplate, 2 article, 3 short_ambiguous
    (each non-blank line judged whole); and whether its line ends a sentence."""
    code = {"boilerplate": 1, "article": 2, "short_ambiguous": 3}
    labels = np.zeros(len(page), np.int8)
    sentence = np.zeros(len(page), bool)
    pos = 0
    for line in page.split("\n"):
        verdict = judge(line)
        if verdict in code:
            labels[pos:pos + len(line)] = code[verdict]
            sentence[pos:pos + len(line)] = bool(SENTENCE_END.search(line))
        pos += len(line) + 1
    return labels, sentence


def apply_cuts(texts: list[str], langs: list[str]) -> tuple[list[list[tuple]], list[str], float]:
    """Run the filter and the span-cutting path over a batch: per document its (start, end, reason,
    text) spans, the kept texts, and the filter's seconds. Checks the exact rebuild."""
    t0 = time.perf_counter()
    cuts = boilerplate_cuts(texts, langs, np.arange(len(texts)), LineRules())
    seconds = time.perf_counter() - t0
    docs = pa.table({"doc_pos": pa.array(np.arange(len(texts)), pa.int64()), "id": [str(i) for i in range(len(texts))],
                     "text": pa.array(texts, pa.string()), "lang": langs})
    kept, spans, _ = cut_documents(docs, choose_outermost(cuts))
    per_doc = [[] for _ in texts]
    for p, s, e, r, t in zip(*(spans.column(c).to_pylist() for c in ("doc_pos", "start", "end", "reason", "text"))):
        per_doc[p].append((s, e, r, t))
    kept = kept.to_pylist()
    for i, text in enumerate(texts):
        rebuilt = kept[i]
        for s, _, _, t in per_doc[i]:
            rebuilt = rebuilt[:s] + t + rebuilt[s:]
        assert rebuilt == text, f"document {i}: the kept text with its spans put back differs from the original"
    return per_doc, kept, seconds


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


SENTENCE_END = re.compile(r"[.!?。！？…]['\"”’」』)）\]]*\s*$")


def judge_pages(pairs: list[dict], per_doc: list[list[tuple]]) -> tuple[dict, list[tuple]]:
    """Spans judged, per rule and per page, and the recall by characters over the pages of one
    language; recall also apart for boilerplate lines that end a sentence (comments, teasers:
    prose, out of reach of a line filter that must keep prose) and for the others."""
    spans, chars = Counter(), Counter()
    rule_spans, rule_chars = defaultdict(Counter), defaultdict(Counter)
    totals = Counter()
    page_precision, article_loss, verdicts = [], [], []
    for pair, cuts in zip(pairs, per_doc):
        judge = ArticleJudge(pair["article"], pair["lang"])
        labels, sentence_lines = page_char_labels(pair["page"], judge)
        cut_mask = np.zeros(len(pair["page"]), bool)
        page = Counter()
        for s, e, reason, text in cuts:
            cut_mask[s:e] = True
            v, n = judge(text), len(text.strip())
            spans[v] += 1
            chars[v] += n
            page[v] += 1
            rule_spans[reason][v] += 1
            rule_chars[reason][v] += n
            verdicts.append((pair["cluster"], reason, v, text.strip()))
        for kind, mask in (("all", labels == 1), ("ends_sentence", (labels == 1) & sentence_lines),
                           ("other", (labels == 1) & ~sentence_lines)):
            totals[kind] += int(mask.sum())
            totals[kind + "_cut"] += int((mask & cut_mask).sum())
        totals["article"] += int((labels == 2).sum())
        totals["article_cut"] += int(((labels == 2) & cut_mask).sum())
        if page["boilerplate"] + page["article"]:
            page_precision.append(page["boilerplate"] / (page["boilerplate"] + page["article"]))
        article_loss.append((page["article"], pair["cluster"]))
    return {
        "pages": len(pairs),
        "spans_cut": sum(spans.values()),
        "chars_cut": sum(chars.values()),
        "spans_by_verdict": dict(spans),
        "chars_by_verdict": dict(chars),
        **precision(spans, chars),
        "precision_spans_page_mean": round(float(np.mean(page_precision)), 4) if page_precision else None,
        "pages_with_cuts": len(page_precision),
        "pages_below_0_9_precision": int(sum(p < 0.9 for p in page_precision)),
        "pages_most_article_spans_cut": [{"cluster": c, "article_spans": a} for a, c in sorted(article_loss)[::-1][:5]],
        "recall_boilerplate_chars": ratio(totals["all_cut"], totals["all"]),
        "boilerplate_chars": totals["all"],
        "recall_boilerplate_chars_lines_ending_a_sentence": ratio(totals["ends_sentence_cut"], totals["ends_sentence"]),
        "boilerplate_chars_lines_ending_a_sentence": totals["ends_sentence"],
        "recall_boilerplate_chars_other_lines": ratio(totals["other_cut"], totals["other"]),
        "article_chars_of_pages_cut_share": ratio(totals["article_cut"], totals["article"]),
        "per_rule": {r: {"spans": sum(rule_spans[r].values()), "chars": sum(rule_chars[r].values()),
                         **precision(rule_spans[r], rule_chars[r])} for r in REASONS if rule_spans[r]},
    }, verdicts


def precision(spans: Counter, chars: Counter) -> dict:
    return {
        "precision_spans": ratio(spans["boilerplate"], spans["boilerplate"] + spans["article"]),
        "precision_chars": ratio(chars["boilerplate"], chars["boilerplate"] + chars["article"]),
        "precision_spans_strict": ratio(spans["boilerplate"], sum(spans.values())),
        "precision_chars_strict": ratio(chars["boilerplate"], sum(chars.values())),
    }


def examples(verdicts: list[tuple], n: int, seed: int = 0) -> list[dict]:
    """n cut spans drawn at random (fixed seed), truncated to 100 characters."""
    pick = random.Random(seed).sample(verdicts, min(n, len(verdicts)))
    return [{"cluster": c, "reason": r, "verdict": v, "text": t[:100]} for c, r, v, t in pick]


def clean_text_cuts(texts: list[str], langs: list[str]) -> dict:
    """Characters cut from texts that should lose (almost) nothing."""
    per_doc, _, _ = apply_cuts(texts, langs)
    total = sum(len(t) for t in texts)
    cut = sum(e - s for d in per_doc for s, e, _, _ in d)
    reasons = Counter(r for d in per_doc for _, _, r, _ in d)
    return {"docs": len(texts), "chars": total, "chars_cut": cut, "cut_share": ratio(cut, total),
            "docs_with_cuts": sum(1 for d in per_doc if d), "spans_by_rule": dict(reasons)}


def bench_language(lang: str, path: Path, n_examples: int) -> dict:
    pairs = load_pairs(path)
    texts = [p["page"] for p in pairs]
    per_doc, _, seconds = apply_cuts(texts, [p["lang"] for p in pairs])
    figures, verdicts = judge_pages(pairs, per_doc)
    figures["filter_seconds"] = round(seconds, 3)
    figures["filter_chars_per_second"] = int(sum(len(t) for t in texts) / max(seconds, 1e-9))
    figures["articles_alone"] = clean_text_cuts([p["article"] for p in pairs], [p["lang"] for p in pairs])
    figures["by_group"] = by_group(pairs, per_doc)
    figures["examples"] = examples(verdicts, n_examples)
    return figures


def by_group(pairs: list[dict], per_doc: list[list[tuple]]) -> dict:
    """The headline figures per `group` of the data set (Dragnet's train / test split)."""
    out = {}
    for group in sorted({p["group"] for p in pairs if p["group"]}):
        rows = [i for i, p in enumerate(pairs) if p["group"] == group]
        figures, _ = judge_pages([pairs[i] for i in rows], [per_doc[i] for i in rows])
        out[group] = {k: figures[k] for k in ("pages", "spans_cut", "precision_spans", "precision_chars",
                                              "recall_boilerplate_chars", "recall_boilerplate_chars_other_lines")}
    return out


def bench_corpora(corpora: Path) -> dict:
    out = {}
    for name, n in CORPORA_SAMPLE.items():
        rows = read_jsonl(corpora / name, n)
        out[name] = clean_text_cuts([r["text"] for r in rows], [r.get("lang") or "" for r in rows])
    return out


def print_language(lang: str, r: dict) -> None:
    print(f"{lang}: pages {r['pages']} spans {r['spans_cut']} precision spans {r['precision_spans']} "
          f"chars {r['precision_chars']} (strict {r['precision_spans_strict']}/{r['precision_chars_strict']}, "
          f"page mean {r['precision_spans_page_mean']}) recall {r['recall_boilerplate_chars']} "
          f"(lines not ending a sentence {r['recall_boilerplate_chars_other_lines']}) "
          f"clean articles cut {r['articles_alone']['cut_share']}")
    for rule, v in r["per_rule"].items():
        print(f"   {rule:20s} spans {v['spans']:6d} chars {v['chars']:8d} p_spans {v['precision_spans']} "
              f"p_chars {v['precision_chars']}")
    for group, v in r["by_group"].items():
        print(f"   group {group}: {v}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--webpages", default=str(SHARED / "webpages"))
    ap.add_argument("--corpora", default=str(SHARED / "corpora"))
    ap.add_argument("--examples", type=int, default=20)
    ap.add_argument("--skip-corpora", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "quality_linefilter.json"))
    args = ap.parse_args()
    result = {"judgement": {"short_chars": SHORT, "rules": "see bench/quality_webpages.py docstring"}}
    for lang, name in PAGE_FILES.items():
        result[lang] = bench_language(lang, Path(args.webpages) / name, args.examples)
        print_language(lang, result[lang])
    if not args.skip_corpora:
        result["corpora"] = bench_corpora(Path(args.corpora))
        for name, v in result["corpora"].items():
            print(f"   {name:40s} docs {v['docs']:5d} cut share {v['cut_share']} "
                  f"docs cut {v['docs_with_cuts']} {v['spans_by_rule']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
