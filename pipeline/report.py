"""report.html: one static page (no server, images inlined) for a pipeline output directory.

The data funnel (documents and characters left after each removal step, as a share of the raw
input: the shape of Baichuan 2's data-processing figure), a table of removals by reason, and any
figures or tables stages list in their manifests under stats.report.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

MANIFEST = "_manifest.json"


def _stage_dirs(out: Path) -> list[Path]:
    meta = out / "_pipeline.json"
    if meta.is_file():
        names = json.loads(meta.read_text())["stages"]
        return [out / n for n in names if (out / n / MANIFEST).is_file()]
    return sorted(p for p in out.iterdir() if (p / MANIFEST).is_file())


def removal_steps(m: dict) -> list[str]:
    """A stage's removals in the order it applies them: the removed/ reasons and span outputs it
    lists in `removal_order`, then any others (reasons first, then span outputs)."""
    reasons = list(m["counts"].get("removed", {}).get("by_reason", {}))
    present = set(reasons) | set(m.get("span_outputs", []))
    listed = [s for s in m.get("removal_order", []) if s in present]
    return listed + [r for r in reasons if r not in listed] + [s for s in m.get("span_outputs", []) if s not in listed]


def funnel_steps(manifests: list[dict]) -> list[dict]:
    """[{step, docs, chars}] from the raw input through every removal, in order."""
    filters = [m for m in manifests if m.get("reconciles")]
    if not filters:
        return []
    first = filters[0]["counts"]["input"]
    docs, chars = first["docs"], first["chars"]
    steps = [{"step": "raw input", "docs": docs, "chars": chars}]
    for m in filters:
        c = m["counts"]
        name = m["stage"]
        drops = []
        if c["quarantined"]["docs"]:
            drops.append((f"{name}: quarantined", c["quarantined"]["docs"], c["quarantined"]["chars"]))
        for step in removal_steps(m):
            if step in m.get("span_outputs", []):
                for level, lv in c[step]["by_level"].items():
                    drops.append((f"{name}: {level} spans cut", 0, lv["chars"]))
            else:
                v = c["removed"]["by_reason"][step]
                drops.append((f"{name}: {step}", v["docs"], v["chars"]))
        for label, d, ch in drops:
            docs -= d
            chars -= ch
            steps.append({"step": label, "docs": docs, "chars": chars})
        kept = c.get("kept", {"docs": docs, "chars": chars})
        assert kept["docs"] == docs and kept["chars"] == chars, f"{name}: funnel does not reconcile"
    return steps


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def funnel_figure(steps: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [s["step"] for s in steps][::-1]
    base_d, base_c = steps[0]["docs"] or 1, steps[0]["chars"] or 1
    docs = [100 * s["docs"] / base_d for s in steps][::-1]
    chars = [100 * s["chars"] / base_c for s in steps][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.55 * len(steps) + 1.5), sharey=True)
    for ax, vals, title, color in ((axes[0], chars, "characters left (% of raw)", "#3b7dd8"),
                                   (axes[1], docs, "documents left (% of raw)", "#e07b39")):
        ax.barh(labels, vals, color=color, left=[(100 - v) / 2 for v in vals])  # centred: a funnel
        for y, v in enumerate(vals):
            drop = vals[y + 1] - v if y + 1 < len(vals) else 0.0  # share of raw removed by this step
            label = f"{v:.2f}%" + (f"  (-{drop:.2f})" if drop > 0 else "")
            ax.text(50, y, label, ha="center", va="center", color="white", fontsize=9, weight="bold")
        ax.set_xlim(0, 100)
        ax.set_title(title)
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
    fig.suptitle("Data funnel: what is left after each step")
    out = _png(fig)
    plt.close(fig)
    return out


def cut_rows(manifests: list[dict]) -> tuple[list[list], list[str]]:
    """[stage, lang, characters in, % cut, % per level...] for every stage that cuts spans."""
    levels = sorted({lv for m in manifests for v in m["counts"].get("cut_by_lang", {}).values() for lv in v["by_level"]})
    rows = []
    for m in manifests:
        for lang, v in m["counts"].get("cut_by_lang", {}).items():
            rows.append([m["stage"], lang, v["chars"], 100 * v["cut_share"],
                         *(100 * v["by_level"].get(lv, {}).get("share", 0.0) for lv in levels)])
    return rows, levels


def cut_figure(rows: list[list], levels: list[str]) -> str:
    """Share of each language's characters cut at span level, stacked by level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r[0]}: {r[1]}" for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    left = [0.0] * len(rows)
    for k, level in enumerate(levels):
        vals = [r[4 + k] for r in rows][::-1]
        ax.barh(labels, vals, left=left, label=level)
        left = [a + b for a, b in zip(left, vals)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.1f}%", va="center", fontsize=9)
    ax.set_xlabel("% of the language's characters cut")
    ax.set_xlim(0, max([*left, 1.0]) * 1.15)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("Characters cut at span level, per language")
    out = _png(fig)
    plt.close(fig)
    return out


def _table(columns: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def write_report(out: Path, figures: list[tuple[str, Path]] | None = None) -> Path:
    """Write OUT/report.html; `figures` adds (title, png path) sections, e.g. a training loss curve."""
    out = Path(out)
    dirs = _stage_dirs(out)
    manifests = [json.loads((d / MANIFEST).read_text()) for d in dirs]
    parts = [f"<h1>Pipeline report</h1><p>Output: <code>{html.escape(str(out.resolve()))}</code></p>"]
    steps = funnel_steps(manifests)
    if steps:
        parts.append(f'<h2>Data funnel</h2><img alt="data funnel" src="data:image/png;base64,{funnel_figure(steps)}">')
        base_d, base_c = steps[0]["docs"] or 1, steps[0]["chars"] or 1
        parts.append(_table(["step", "documents left", "% docs", "characters left", "% chars"],
                            [[s["step"], s["docs"], 100 * s["docs"] / base_d, s["chars"], 100 * s["chars"] / base_c]
                             for s in steps]))
    rows = []
    for m in manifests:
        c = m["counts"]
        for reason, v in c.get("removed", {}).get("by_reason", {}).items():
            rows.append([m["stage"], "removed", reason, v["docs"], v["chars"]])
        for span_output in m.get("span_outputs", []):
            for reason, v in c[span_output]["by_reason"].items():
                rows.append([m["stage"], span_output, reason, v["docs"], v["chars"]])
        for reason, v in c["quarantined"].get("by_reason", {}).items():
            rows.append([m["stage"], "quarantined", reason, v["docs"], v["chars"]])
    parts.append("<h2>Removals by reason</h2>" + (_table(["stage", "output", "reason", "records", "characters"], rows)
                                                  if rows else "<p>Nothing was removed.</p>"))
    cuts, levels = cut_rows(manifests)
    if cuts:
        parts.append("<h2>Characters cut at span level, per language</h2><p>The share of each language's "
                     "characters that span cuts took, per level (the span policy: <code>spans:</code> in the "
                     "profile; code is kept or removed whole by default).</p>"
                     f'<img alt="span cuts per language" src="data:image/png;base64,{cut_figure(cuts, levels)}">'
                     + _table(["stage", "lang", "characters in", "% cut", *(f"% {lv}" for lv in levels)], cuts))
    shuffle_rows = [[m["stage"], m["input"]["bytes"] / 1e6, m["shuffle"]["shuffle_write_bytes"] / 1e6,
                     m["shuffle"]["spill_bytes"] / 1e6,
                     m["shuffle"]["shuffle_write_bytes"] / max(1, m["input"]["bytes"])]
                    for m in manifests if "shuffle" in m]
    if shuffle_rows:
        parts.append("<h2>Data moved by Spark</h2><p>Bytes each stage's Spark jobs wrote to shuffle files and "
                     "spilled, beside the size of its input files.</p>"
                     + _table(["stage", "input MB", "shuffled MB", "spilled MB", "shuffled / input"], shuffle_rows))
    parts.append("<h2>Stages</h2>")
    for d, m in zip(dirs, manifests):
        c = m["counts"]
        t = m.get("timings_s", {})
        parts.append(f"<h3>{html.escape(m['stage'])}</h3><p>{c['input']['docs']:,} records in, "
                     f"{c.get('kept', c.get('consumed', {})).get('docs', 0):,} kept/consumed, "
                     f"{c['quarantined']['docs']:,} quarantined; {t.get('total', 0):.1f} s; "
                     f"<code>{html.escape(str(d / MANIFEST))}</code></p>")
        rep = (m.get("stats") or {}).get("report") or {}
        for table in rep.get("tables", []):
            parts.append(f"<h4>{html.escape(table['title'])}</h4>" + _table(table["columns"], table["rows"]))
        for fig in rep.get("figures", []):
            path = d / fig["path"]
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f"<h4>{html.escape(fig.get('title', fig['path']))}</h4>"
                             f'<img alt="{html.escape(fig["path"])}" src="data:image/png;base64,{data}">')
    for title, path in figures or []:
        if Path(path).is_file():
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            parts.append(f"<h2>{html.escape(title)}</h2><p><code>{html.escape(str(path))}</code></p>"
                         f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Pipeline report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    target = out / "report.html"
    tmp = out / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
