"""OUT/corpus/: the exported training corpus of a pipeline run, and its dataset card.

    corpus/data/     the last text stage's kept/ parquet (for a full run: `sample`'s, with every
                     signal, score, cluster and copy column, `weight` and `repeats`), hard-linked
    corpus/shards/   the token shards (.bin/.idx and their _manifest.json), hard-linked, when a
                     stage wrote shards/
    corpus/README.md the dataset card, generated from the stages' manifests only: documents,
                     characters and tokens per source and language, the funnel, every stage with its
                     settings and removals, what stages add under stats.card (the tokenizer, the
                     weight formula, the shards with their checksums), how to reproduce the run
    corpus/card.json the card's figures, for programs

The card holds nothing that differs between two runs of the same input and config (no times, no
absolute paths), so the same seed gives a byte-identical corpus/. It is rebuilt after every run
(in a hidden sibling, then swapped in).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pipeline.outdir import MANIFEST

SHARDS = "shards"


def _link_tree(src: Path, dst: Path, *patterns: str) -> list[str]:
    dst.mkdir(parents=True, exist_ok=True)
    names = []
    for f in sorted(f for p in patterns for f in src.glob(p)):
        if f.is_file():
            try:
                os.link(f, dst / f.name)
            except OSError:  # another filesystem: copy
                shutil.copy2(f, dst / f.name)
            names.append(f.name)
    return names


def _token_stage(manifests: list[dict]) -> dict | None:
    return next((m for m in reversed(manifests) if "tokens_by_lang" in (m.get("stats") or {})), None)


def card_facts(run: dict, manifests: list[dict], final: dict) -> dict:
    """The card's figures: per source and language documents and characters (the final text
    stage's kept/ counts) and tokens (the tokenizing stage's, repeats included), and the funnel."""
    from pipeline.report import funnel_steps

    kept = final["counts"]["kept"]
    tok = (_token_stage(manifests) or {}).get("stats", {})
    facts = {"input": run["input"], "config": run["config"], "stages": run["stages"],
             "documents": kept["docs"], "characters": kept["chars"], "tokens": tok.get("tokens"),
             "sequences": tok.get("sequences")}
    for dim in ("source", "lang"):
        facts[f"by_{dim}"] = {k: {"documents": v["docs"], "characters": v["chars"],
                                  "tokens": tok.get(f"tokens_by_{dim}", {}).get(k)}
                              for k, v in kept.get(f"by_{dim}", {}).items()}
    facts["funnel"] = funnel_steps(manifests)
    facts["versions"] = final.get("versions", {})
    facts["input_fingerprint"] = (manifests[0].get("fingerprint") or {}).get("input") if manifests else None
    return facts


def _table(columns: list, rows: list) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return out


def _cell(v) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.2f}" if isinstance(v, float) else str(v)


def _stage_section(m: dict) -> list[str]:
    c = m["counts"]
    lines = [f"### {m['stage']}", "",
             f"{c['input']['docs']:,} documents in ({c['input']['chars']:,} characters); "
             f"{c.get('kept', c.get('consumed', {})).get('docs', 0):,} kept or consumed; "
             f"{c['quarantined']['docs']:,} quarantined.", ""]
    rows = [["removed", r, v["docs"], v["chars"]] for r, v in c.get("removed", {}).get("by_reason", {}).items()]
    rows += [[name, f"{lv} spans", v["docs"], v["chars"]] for name in m.get("span_outputs", [])
             for lv, v in c[name].get("by_level", {}).items()]
    if rows:
        lines += _table(["output", "reason", "records", "characters"], rows) + [""]
    settings = [f"{k}: {json.dumps(v, ensure_ascii=False, sort_keys=True)}" for k, v in sorted(m["config"]["stage"].items())]
    lines += ["<details><summary>settings</summary>", "", "```yaml", *settings, "```", "", "</details>", ""]
    return lines + list((m.get("stats") or {}).get("card", [])) + [""]


def card_markdown(facts: dict, manifests: list[dict]) -> str:
    lines = ["# Dataset card", "",
             f"Built by the pre-training data pipeline from `{facts['input']}` with `{facts['config']}`; "
             f"stages: {', '.join(facts['stages'])}.", "",
             "## Contents", ""]
    lines += _table(["", "documents", "characters", "tokens (repeats included)"],
                    [["corpus", facts["documents"], facts["characters"], facts["tokens"]]]) + [""]
    for dim in ("source", "lang"):
        rows = [[k, v["documents"], v["characters"], v["tokens"]] for k, v in facts[f"by_{dim}"].items()]
        lines += [f"### By {dim}", ""] + _table([dim, "documents", "characters", "tokens"], rows) + [""]
    lines += ["## Funnel", "", "From the raw input through every removal, in order.", ""]
    base = facts["funnel"][0]["chars"] if facts["funnel"] else 1
    lines += _table(["step", "documents left", "characters left", "% characters"],
                    [[s["step"], s["docs"], s["chars"], 100 * s["chars"] / max(base, 1)] for s in facts["funnel"]]) + [""]
    lines += ["## Stages", ""]
    for m in manifests:
        lines += _stage_section(m)
    lines += ["## Reproduce", "", "```", f"python -m pipeline run --config {facts['config']} --input {facts['input']} "
              "--output OUT", "```", "",
              f"Versions: {', '.join(f'{k} {v}' for k, v in sorted(facts['versions'].items()))}.", "",
              f"Input fingerprint: `{json.dumps(facts['input_fingerprint'], sort_keys=True)}`.", ""]
    return "\n".join(lines)


def export_corpus(out: Path, run: dict, stage_dirs: dict, final_stage: str) -> Path:
    """Build OUT/corpus/ from the stage outputs named in `stage_dirs` (name -> dir, run order)."""
    out = Path(out)
    manifests = [json.loads((Path(d) / MANIFEST).read_text()) for d in stage_dirs.values()]
    final = json.loads((Path(stage_dirs[final_stage]) / MANIFEST).read_text())
    tmp, target = out / ".corpus.tmp", out / "corpus"
    shutil.rmtree(tmp, ignore_errors=True)
    _link_tree(Path(stage_dirs[final_stage]) / "kept", tmp / "data", "*.parquet")
    here = str(out.resolve())  # paths inside the run's own output read as OUT/...: the corpus moves with it
    for d in stage_dirs.values():
        if (Path(d) / SHARDS / MANIFEST).is_file():
            _link_tree(Path(d) / SHARDS, tmp / SHARDS, "*.bin", "*.idx")
            text = (Path(d) / SHARDS / MANIFEST).read_text(encoding="utf-8")
            (tmp / SHARDS / MANIFEST).write_text(text.replace(here, "OUT"), encoding="utf-8")
    facts = card_facts(run, manifests, final)
    (tmp / "README.md").write_text(card_markdown(facts, manifests).replace(here, "OUT"), encoding="utf-8")
    (tmp / "card.json").write_text(json.dumps(facts, indent=1, ensure_ascii=False, sort_keys=True).replace(here, "OUT")
                                   + "\n", encoding="utf-8")
    old = out / ".corpus.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target
