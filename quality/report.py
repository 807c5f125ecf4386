"""The quality stages' part of report.html: what people would rather see than read.

quality-signals: per language, the distribution of `quality_score` and of a few main signals
(histograms), and a table of documents, mean score and language-id agreement. quality-filter:
removals per rule come from the runner's table; here, examples of the lines and sentences the
boilerplate filter cut. Both read small column sets of the stage's own outputs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

# q_boilerplate_char_fraction is in quality_score (classifier x (1 - it)), so its spread is shown too
MAIN_SIGNALS = ("q_words", "q_alpha_share", "q_stop_word_share", "q_dup_line_chars", "q_short_lines",
                "q_terminal_lines", "q_boilerplate_char_fraction")
MAX_LANGS = 4  # the largest languages get a histogram each
EXAMPLES = 12


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _by_lang(table, column: str, langs: list) -> dict:
    lang = pc.fill_null(table.column("lang"), "(none)").to_numpy(zero_copy_only=False)
    values = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    return {lg: values[(lang == lg) & ~np.isnan(values)] for lg in langs}


def _histograms(table, columns: list, langs: list, path: Path, title: str) -> None:
    plt = _plt()
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows + 0.4), squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, col in zip(axes.flat, columns):
        data = _by_lang(table, col, langs)
        log = col == "q_words"
        for lg, v in data.items():
            if len(v):
                v = np.log10(np.maximum(v, 1)) if log else v
                ax.hist(v, bins=30, histtype="step", label=lg, density=True)
        ax.set_title(f"log10 {col}" if log else col, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def signals_report(work_dir: Path) -> dict:
    names = set(ds.dataset(str(work_dir / "kept")).schema.names)
    cols = ["lang", "lang_id", "quality_score", *[c for c in MAIN_SIGNALS if c in names]]
    t = ds.dataset(str(work_dir / "kept")).to_table(columns=cols)
    if t.num_rows == 0:
        return {}
    counts = t.group_by("lang").aggregate([("lang", "count")]).sort_by([("lang_count", "descending")])
    langs = [lg if lg is not None else "(none)" for lg in counts.column("lang").to_pylist()][:MAX_LANGS]
    figures = []
    if t.column("quality_score").null_count < t.num_rows:
        _histograms(t, ["quality_score"], langs, work_dir / "quality_score.png", "quality_score per language")
        figures.append({"title": "Quality score per language", "path": "quality_score.png"})
    signals = [c for c in MAIN_SIGNALS if c in names]
    if signals:
        _histograms(t, signals, langs, work_dir / "quality_signals.png", "main signals per language")
        figures.append({"title": "Main quality signals per language", "path": "quality_signals.png"})
    rows = []
    lang, lid = (pc.fill_null(t.column(c), "(none)").to_numpy(zero_copy_only=False) for c in ("lang", "lang_id"))
    score = t.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64)
    for lg in langs:
        m = lang == lg
        s = score[m & ~np.isnan(score)]
        rows.append([lg, int(m.sum()), f"{s.mean():.3f}" if len(s) else "-", f"{np.median(s):.3f}" if len(s) else "-",
                     f"{(lid[m] == lg).mean():.1%}"])
    table = {"title": "Quality signals per language", "rows": rows,
             "columns": ["lang", "documents", "mean quality_score", "median", "lang_id agrees"]}
    return {"tables": [table], "figures": figures}


def filter_report(work_dir: Path) -> dict:
    spans = ds.dataset(str(work_dir / "removed_spans")).to_table(columns=["lang", "reason", "text"])
    if spans.num_rows == 0:
        return {}
    step = max(1, spans.num_rows // EXAMPLES)
    rows = [[r["lang"] or "", r["reason"], (r["text"] or "").strip()[:160]]
            for r in spans.take(np.arange(0, spans.num_rows, step)[:EXAMPLES]).to_pylist()]
    return {"tables": [{"title": "Examples of cut boilerplate", "columns": ["lang", "rule", "text"], "rows": rows}]}
