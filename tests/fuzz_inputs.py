"""Generated bad input for the fuzz suite (tests/test_fuzz.py, `make fuzz`): random JSONL, JSONL.gz
and parquet files mixing valid records with malformed bytes, wrong types, huge and deep values,
lone surrogates, odd encodings, odd and hidden file names, truncated and corrupt files.

What each record should become is decided by `expected_*`, an oracle written from the README's
rules with the standard library only (not the reader's code), so the check is independent of it:
every generated record is a document (with its characters) or a quarantine row with its reason.
"""
from __future__ import annotations

import gzip
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

MAX_TEXT = 2000  # read.max_text_bytes for the fuzz runs: "huge" stays cheap
DEEP = 50_000  # nesting no JSON parser here takes (the standard library's limit is ~1000)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=80)
WORDS = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd", "Zs", "Po")), min_size=1, max_size=60)
NAME = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd"), whitelist_characters=" -#%+=@中文é"),
               min_size=1, max_size=24)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), TEXT)


@dataclass
class FileSpec:
    rel: str
    fmt: str  # jsonl | gz | parquet
    damage: str  # none | truncate | garbage
    payload: bytes = b""  # the file's bytes
    expected: list = field(default_factory=list)  # per record: ("doc", chars) or (reason,)

    @property
    def hidden(self) -> bool:
        return any(p.startswith((".", "_")) for p in Path(self.rel).parts)


# ---------------------------------------------------------------- the oracle

def _encodable(value) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def expected_line(raw: bytes):
    """None for a blank line (not a record), else ("doc", characters) or (reason,)."""
    body = raw.rstrip(b"\r\n")
    if not body.strip():
        return None
    try:
        line = body.decode("utf-8")
    except UnicodeDecodeError:
        return ("invalid_utf8",)
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return ("invalid_json",)
    return expected_record(rec)


def expected_record(rec):
    if not isinstance(rec, dict):
        return ("not_an_object",)
    text = rec.get("text")
    if text is None:
        return ("missing_text",)
    if not isinstance(text, str):
        return ("text_not_string",)
    if not _encodable(text):
        return ("invalid_utf8",)
    if len(text.encode("utf-8")) > MAX_TEXT:
        return ("text_too_large",)
    if not text.strip():
        return ("empty_text",)
    if not _encodable(rec):
        return ("invalid_utf8",)
    return ("doc", len(text))


# ---------------------------------------------------------------- JSONL records

def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def jsonl_line(draw) -> bytes:
    kind = draw(st.sampled_from(["valid"] * 6 + ["extras", "deep", "garbage", "truncated", "bad_utf8",
                                                 "not_object", "no_text", "wrong_type", "empty", "huge",
                                                 "surrogate", "blank"]))
    rec = {"text": draw(WORDS)}
    if draw(st.booleans()):
        rec["id"] = draw(st.one_of(TEXT, st.integers(-2**70, 2**70), st.none()))
    if draw(st.booleans()):
        rec["lang"] = draw(st.sampled_from(["en", "zh", "code", None, 7]))
    if kind == "extras":
        rec.update(draw(st.dictionaries(TEXT, st.one_of(SCALAR, st.lists(SCALAR, max_size=3)), max_size=3)))
        rec["nested"] = json.loads(_deep(draw(st.integers(1, 30))))
    elif kind == "no_text":
        if draw(st.booleans()):
            rec["text"] = None
        else:
            del rec["text"]
    elif kind == "wrong_type":
        rec["text"] = draw(st.one_of(st.integers(), st.booleans(), st.lists(SCALAR, max_size=2),
                                     st.dictionaries(TEXT, SCALAR, max_size=2)))
    elif kind == "empty":
        rec["text"] = draw(st.sampled_from(["", " ", "\n\t ", "\u3000", "\u2028"]))
    elif kind == "huge":
        rec["text"] = "长" * (MAX_TEXT // 3 + draw(st.integers(1, 50)))
    line = json.dumps(rec, ensure_ascii=draw(st.booleans())).encode("utf-8")
    if kind == "deep":
        inner = _deep(DEEP)
        line = inner.encode() if draw(st.booleans()) else b'{"text": "x", "meta": ' + inner.encode() + b"}"
    elif kind == "garbage":
        line = draw(st.binary(min_size=1, max_size=40)).replace(b"\n", b" ")
    elif kind == "truncated":
        line = line[:draw(st.integers(1, max(1, len(line) - 1)))]
    elif kind == "bad_utf8":
        cut = draw(st.integers(0, len(line)))
        line = line[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88"])) + line[cut:]
    elif kind == "not_object":
        line = json.dumps(draw(st.one_of(SCALAR, st.lists(SCALAR, max_size=3)))).encode()
    elif kind == "surrogate":
        where = draw(st.sampled_from(["text", "id", "key"]))
        esc = draw(st.sampled_from(["\\ud800", "\\udc00", "\\udfff"]))
        line = {"text": f'{{"text": "a{esc}b"}}', "id": f'{{"id": "{esc}", "text": "fine text"}}',
                "key": f'{{"{esc}": 1, "text": "fine text"}}'}[where].encode()
    elif kind == "blank":
        line = draw(st.sampled_from([b"", b"   ", b"\t"]))
    return line + draw(st.sampled_from([b"\n", b"\r\n"]))


# ---------------------------------------------------------------- parquet rows

@st.composite
def parquet_table(draw):
    """(table, expected per row)."""
    n = draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["string", "large_string", "dictionary", "binary", "int", "missing"]))
    texts, expected = [], []
    for _ in range(n):
        choice = draw(st.sampled_from(["ok", "ok", "ok", "null", "empty", "huge", "bad_utf8"]))
        t = {"ok": draw(WORDS), "null": None, "empty": " \n", "huge": "x" * (MAX_TEXT + 1)}.get(choice)
        if choice == "bad_utf8":
            t = b"bad \xff\xfe" if kind == "binary" else None
        texts.append(t)
        if kind == "missing" or t is None:
            expected.append(("missing_text",))
        elif kind == "int":
            expected.append(("text_not_string",))
        elif choice == "bad_utf8":
            expected.append(("invalid_utf8",))
        else:
            expected.append(expected_record({"text": t}))
    cols = {"id": pa.array([draw(st.one_of(st.none(), WORDS)) for _ in range(n)], pa.string()),
            "score": pa.array([draw(st.floats(allow_nan=False)) for _ in range(n)], pa.float64())}
    if kind == "int":
        cols["text"] = pa.array([None if t is None else len(t) for t in texts], pa.int64())
    elif kind == "binary":
        cols["text"] = pa.array([t if t is None or isinstance(t, bytes) else t.encode() for t in texts], pa.binary())
    elif kind != "missing":
        arr = pa.array(texts, pa.large_string() if kind == "large_string" else pa.string())
        cols["text"] = arr.dictionary_encode() if kind == "dictionary" else arr
    return pa.table(cols), expected


# ---------------------------------------------------------------- files

@st.composite
def input_files(draw, allow_damage: bool = True) -> list:
    specs, used = [], set()
    for i in range(draw(st.integers(1, 4))):
        fmt = draw(st.sampled_from(["jsonl", "gz", "parquet"]))
        name = draw(NAME).strip() or "f"
        prefix = draw(st.sampled_from(["", "", "", "_", ".", "sub dir/"]))
        rel = f"{prefix}{name}-{i}" + {"jsonl": ".jsonl", "gz": ".jsonl.gz", "parquet": ".parquet"}[fmt]
        if rel.lower() in used:
            continue
        used.add(rel.lower())
        damage = draw(st.sampled_from(["none"] * 8 + (["truncate", "garbage"] if allow_damage else [])))
        spec = FileSpec(rel, fmt, damage)
        if fmt == "parquet":
            table, spec.expected = draw(parquet_table())
            buf = io.BytesIO()
            pq.write_table(table, buf, row_group_size=draw(st.integers(1, 5)))
            spec.payload = buf.getvalue()
        else:
            lines = draw(st.lists(jsonl_line(), min_size=1, max_size=15))
            spec.expected = [e for e in (expected_line(ln) for ln in lines) if e is not None]
            spec.payload = b"".join(lines)
            if fmt == "gz":
                spec.payload = gzip.compress(spec.payload, mtime=0)
        if damage == "truncate" and fmt != "jsonl":
            spec.payload = spec.payload[:draw(st.integers(1, max(1, len(spec.payload) - 9)))]
        elif damage == "garbage" and fmt != "jsonl":
            rng = random.Random(draw(st.integers(0, 2**32)))
            spec.payload = bytes(rng.getrandbits(8) for _ in range(64)) + spec.payload[64:]
        else:
            spec.damage = "none"  # plain JSONL cannot be "damaged" beyond its lines
        specs.append(spec)
    return specs


def write_files(root: Path, specs: list) -> None:
    for s in specs:
        path = root / s.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s.payload)
