"""Corpus readers: a file, a directory or a glob of JSONL / JSONL.gz / parquet -> documents.

Every input record ends up in exactly one of two places: the documents (DOC_SCHEMA plus any extra
parquet columns) or the quarantine (QUARANTINE_SCHEMA, with the reason, file and record number).

Both formats are read by our own Python code on the executors, one task per read unit (a JSONL
file, or a run of a parquet file's row groups; `plan_read`), into one Arrow schema. Stages get the
documents as a Spark DataFrame (`read_documents`), or, for a stage that streams (one with
`run_units`, e.g. tokenize), read their units themselves inside their own tasks (`read_unit`, `split_read_batch`;
`unit_documents_counted`, which also quarantines and counts) and skip the JVM on the data path altogether.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from pipeline import schema as S
from pipeline.config import ReadSettings
from pipeline.errors import BadInputFiles, UserError

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str  # absolute
    rel: str  # relative to the input root: the stable part of derived ids
    fmt: str  # "jsonl" or "parquet"
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class InputSet:
    spec: str
    root: str
    files: tuple
    # (rel, why) of the files found under the input that are not read: hidden or Spark-style names
    # (a path part starting with "." or "_": _SUCCESS, .crc, a stage's .incomplete work) and files
    # that are not JSONL or parquet. Logged and written to the manifest: nothing is skipped unseen.
    skipped: tuple = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def fingerprint(self) -> list:
        """What identifies this input for idempotent re-runs."""
        return [[f.rel, f.size, f.mtime_ns] for f in self.files]


def _fmt_of(name: str) -> str | None:
    low = name.lower()
    if low.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


HIDDEN = "hidden name (a path part starts with '.' or '_')"
NOT_A_DATA_FILE = "not a JSONL, JSONL.gz or parquet file"


def _is_hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in Path(rel).parts)


def resolve_input(spec: str) -> InputSet:
    """Expand an input spec into a sorted, numbered file list (the order defines doc_pos)."""
    if not spec:
        raise UserError("no input given (--input PATH)")
    p = Path(os.path.abspath(spec))  # absolute, but symlinks left as they are
    if p.is_dir() and (p / "_manifest.json").is_file() and (p / "kept").is_dir():
        p = p / "kept"  # a stage's output directory: read what it kept
    skipped = []
    if p.is_dir():
        root = p
        candidates = []
        for f in sorted(f for f in p.rglob("*") if f.is_file()):
            rel = f.relative_to(root).as_posix()
            if _is_hidden(rel):
                skipped.append((rel, HIDDEN))
            else:
                candidates.append(f)
    elif p.is_file():
        root = p.parent
        candidates = [p]
    elif any(ch in spec for ch in "*?["):
        candidates = [Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file()]
        if not candidates:
            raise UserError(f"input glob matches no files: {spec}")
        candidates = [Path(os.path.abspath(c)) for c in candidates]
        root = Path(os.path.commonpath([str(c.parent) for c in candidates]))
    else:
        raise UserError(f"input not found: {spec}")
    files = []
    for f in sorted(candidates, key=lambda c: c.relative_to(root).as_posix()):
        fmt = _fmt_of(f.name)
        if fmt is None:
            skipped.append((f.relative_to(root).as_posix(), NOT_A_DATA_FILE))
            continue
        st = f.stat()
        rel = f.relative_to(root).as_posix()
        files.append(InputFile(len(files), str(f), rel, fmt, st.st_size, st.st_mtime_ns))
    skipped.sort()
    if not files:
        extra = f" (not read: {', '.join(r for r, _ in skipped[:5])})" if skipped else ""
        raise UserError(f"no JSONL, JSONL.gz or parquet files in input {spec}{extra}")
    for why in (HIDDEN, NOT_A_DATA_FILE):
        names = [r for r, w in skipped if w == why]
        if names:
            print(f"note: not reading {len(names)} file(s) in {spec}, {why}: {', '.join(names[:5])}"
                  + (", ..." if len(names) > 5 else "") + " (listed in the manifest)", flush=True)
    return InputSet(spec=spec, root=str(root), files=tuple(files), skipped=tuple(skipped))


# --------------------------------------------------------------------------------------------
# What every reader yields: the document columns, then (for a refused record) the quarantine
# fields, then the record's file and number. Parquet extras are added after the document columns.

READ_BASE_SCHEMA = pa.schema(list(S.DOC_SCHEMA) + [
    pa.field("_q_reason", pa.string()),
    pa.field("_q_error", pa.string()),
    pa.field("_q_raw", pa.binary()),
    pa.field("_q_truncated", pa.bool_()),
    pa.field("_q_bytes", pa.int64()),
    pa.field("_q_chars", pa.int64()),
    pa.field("_file", pa.string()),
    pa.field("_record", pa.int64()),
])
# QUARANTINE_SCHEMA's columns, from the read schema's: how a refused record becomes a quarantine row
QUARANTINE_FROM_READ = {"file": "_file", "record": "_record", "reason": "_q_reason", "error": "_q_error", "id": "id",
                        "raw": "_q_raw", "raw_truncated": "_q_truncated", "n_bytes": "_q_bytes", "n_chars": "_q_chars"}

_BASE_FIELDS = ("id", "text", "source", "lang", "url")
_META_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _as_opt_str(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


class _Columns:
    """Rows of READ_BASE_SCHEMA, gathered as tuples of the document columns (the hot path: one
    append a record) and turned into columns at flush; a refused record also sets the quarantine
    fields."""
    _DOC = ("id", "text", "source", "lang", "url", "meta", "doc_pos", "_file", "_record")

    def __init__(self):
        self.rows: list = []
        self.refused: list = []  # (row, {quarantine field: value})

    def __len__(self):
        return len(self.rows)

    def add_doc(self, *values):
        self.rows.append(values)

    def add(self, **values):
        self.refused.append((len(self.rows), {k: v for k, v in values.items() if k.startswith("_q_")}))
        self.rows.append(tuple(values.get(n) for n in self._DOC))

    def flush(self) -> pa.RecordBatch:
        n = len(self.rows)
        doc_cols = dict(zip(self._DOC, zip(*self.rows)))
        arrays = []
        for f in READ_BASE_SCHEMA:
            if f.name.startswith("_q_"):
                values = [None] * n
                for row, q in self.refused:
                    values[row] = q.get(f.name)
                arrays.append(pa.array(values, f.type) if self.refused else pa.nulls(n, f.type))
            else:
                arrays.append(pa.array(doc_cols[f.name], f.type))
        self.rows.clear()
        self.refused.clear()
        return pa.RecordBatch.from_arrays(arrays, schema=READ_BASE_SCHEMA)


def parse_jsonl_file(path: str, rel: str, file_index: int, settings: dict):
    """Yield Arrow batches (READ_BASE_SCHEMA) for every record of one JSONL(.gz) file: parsed by
    our own code because Spark's JSON reader silently replaces invalid UTF-8 and cannot say which
    line a record came from."""
    max_text = settings["max_text_bytes"]
    preview = settings["quarantine_preview_bytes"]
    per_batch = settings["records_per_batch"]
    # A JSON line can be up to ~2x its text (\uXXXX escapes); anything longer is too large
    # whatever it holds, and is never read into memory whole.
    max_line = 2 * max_text + (1 << 20)
    source_default = Path(rel).name.split(".")[0]
    out = _Columns()

    def quarantine(line_no, reason, error, raw, truncated=False, n_bytes=None, n_chars=0, rid=None):
        out.add(id=_printable(rid), _q_reason=reason, _q_error=_printable(error), _q_raw=bytes(raw[:preview]) if truncated else bytes(raw),
                _q_truncated=truncated, _q_bytes=n_bytes if n_bytes is not None else len(raw),
                _q_chars=n_chars, _file=rel, _record=line_no)

    opener = gzip.open if path.lower().endswith(".gz") else open
    line_no = 0
    try:
        with opener(path, "rb") as fh:
            while True:
                raw = fh.readline(max_line + 1)
                if not raw:
                    break
                line_no += 1
                if len(raw) > max_line and not raw.endswith(b"\n"):
                    n = len(raw)
                    while True:  # skip the rest of the oversized line
                        more = fh.readline(1 << 20)
                        n += len(more)
                        if not more or more.endswith(b"\n"):
                            break
                    quarantine(line_no, S.TEXT_TOO_LARGE,
                               f"record of {n} bytes exceeds the limit ({max_text} bytes of text)",
                               raw, truncated=True, n_bytes=n)
                else:
                    _parse_line(raw, line_no, rel, file_index, source_default, max_text, preview, out, quarantine)
                if len(out) >= per_batch:
                    yield out.flush()
    except (OSError, EOFError, zlib.error) as exc:  # corrupt or truncated gzip, I/O errors
        quarantine(line_no + 1, S.UNREADABLE_FILE, f"{type(exc).__name__}: {exc}", b"")
    if len(out):
        yield out.flush()


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _printable(value):
    """A string that can be written as UTF-8: lone surrogates (from \\udc00-style escapes in a
    refused record's id, say) become backslash escapes, so one bad record cannot fail its batch."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


# orjson parses most lines several times faster than the standard library and agrees with it
# wherever it succeeds, except that it turns integers beyond 64 bits into floats. So a record whose
# fields hold a float, list or object (where such a number may hide) is parsed again by the
# standard library, and so is every line orjson refuses (invalid UTF-8, lone surrogate escapes,
# NaN, 1e400, nesting deeper than 1024, invalid JSON): its path decides how a bad line is refused.
_MAYBE_ROUNDED = (float, list, dict)


def _fast_load(body: bytes):
    """The record orjson reads, or None where the standard library must read the line."""
    try:
        rec = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(rec) is dict:
        for v in rec.values():
            if type(v) in _MAYBE_ROUNDED:
                return None
    return rec


def _parse_line(raw, line_no, rel, file_index, source_default, max_text, preview, out, quarantine):
    body = raw.rstrip(b"\r\n")
    if not body.strip():
        return  # blank lines separate nothing and hold no record
    rec = _fast_load(body)
    fast = rec is not None  # then flat values only, valid UTF-8, no lone surrogate (orjson refuses both)
    escapes = False
    if not fast:
        try:
            line = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return quarantine(line_no, S.INVALID_UTF8, str(exc), body)
        try:
            rec = json.loads(line)
        except ValueError as exc:
            return quarantine(line_no, S.INVALID_JSON, str(exc), body)
        except RecursionError:  # [[[[... or {"a": {"a": ... nested deeper than Python's stack
            return quarantine(line_no, S.INVALID_JSON, "JSON nested too deeply to parse", body)
        # Valid UTF-8 decodes to no lone surrogate: only a \ud800-style escape makes one.
        escapes = _SURROGATE_ESCAPE.search(body) is not None
    if not isinstance(rec, dict):
        return quarantine(line_no, S.NOT_AN_OBJECT, f"a JSON {type(rec).__name__}, not an object", body)
    rid = _as_opt_str(rec.get("id"))
    text = rec.get("text")
    if "text" not in rec or text is None:
        return quarantine(line_no, S.MISSING_TEXT, "no 'text' field", body, rid=rid)
    if not isinstance(text, str):
        return quarantine(line_no, S.TEXT_NOT_STRING, f"'text' is a {type(text).__name__}", body, rid=rid)
    # Strings are checked (encoded) only when the line has a surrogate escape. A JSON line is never
    # shorter than its text's UTF-8, so the exact size is needed only for a long line.
    if escapes or len(body) > max_text:
        try:
            n_bytes = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:  # lone surrogates from \ud800-style escapes
            return quarantine(line_no, S.INVALID_UTF8, f"text is not valid Unicode: {exc}", body, rid=rid)
        if n_bytes > max_text:
            return quarantine(line_no, S.TEXT_TOO_LARGE, f"text of {n_bytes} bytes exceeds {max_text}",
                              body, truncated=len(body) > preview, n_bytes=len(body), n_chars=len(text), rid=rid)
    if not text or text.isspace():
        return quarantine(line_no, S.EMPTY_TEXT, "text is empty or whitespace only", body, rid=rid)
    extra = {k: v for k, v in rec.items() if k not in _BASE_FIELDS} if len(rec) > 1 else None
    # meta: compact JSON, by orjson for the records it read (flat values: the same text as the
    # standard library's compact form), by the standard library for the rest.
    meta = (orjson.dumps(extra).decode() if fast else _META_JSON(extra)) if extra else None
    source = _as_opt_str(rec.get("source")) or source_default
    lang, url = _as_opt_str(rec.get("lang")), _as_opt_str(rec.get("url"))
    if escapes:
        try:
            for v in (meta, rid, source, lang, url):
                v is None or v.encode("utf-8")
        except UnicodeEncodeError as exc:
            return quarantine(line_no, S.INVALID_UTF8, f"a field is not valid Unicode: {exc}", body, rid=None)
    out.add_doc(rid if rid is not None else f"{rel}:{line_no}", text, source, lang, url, meta,
                S.doc_pos(file_index, line_no), rel, line_no)


# --------------------------------------------------------------------------------------------
# Parquet: read by pyarrow on the executors, so both formats share one path, one output schema
# and one way of splitting the work. A row that cannot be a document is quarantined like a bad
# JSON line; a file whose footer cannot be read is found on the driver before any task starts.

def _spark_arrow_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type Spark's mapInArrow accepts for a parquet column of type `t`."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return _spark_arrow_type(t.value_type)
    if pa.types.is_unsigned_integer(t):  # as Spark's own parquet reader widens them
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(t.bit_width, pa.decimal128(20, 0))
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return pa.list_(_spark_arrow_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _spark_arrow_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_spark_arrow_type(t.key_type), _spark_arrow_type(t.item_type))
    return t


@dataclass(frozen=True)
class ReadUnit:
    """The input one task reads: a JSONL file (gzip cannot be split), or a run of a parquet
    file's row groups holding about `read.unit_bytes` of data. Units depend only on the input
    files and the config, never on the cluster, so per-unit outputs are the same everywhere."""
    index: int
    path: str
    rel: str
    file_index: int
    fmt: str
    row_groups: tuple = ()  # parquet
    first_row: int = 0  # parquet: file row number of the unit's first row
    est_bytes: int = 0  # about how much text it holds: the largest units are scheduled first


@dataclass
class ReadPlan:
    units: list  # [ReadUnit]
    schema: pa.Schema  # what the unit readers yield: documents, extras, quarantine fields
    extras: list  # parquet columns kept beside the document columns
    bad_files: list  # [(rel, error)]: parquet files whose footer cannot be read
    settings: dict  # the ReadSettings the executors need

    @property
    def doc_columns(self) -> list:
        return [*S.DOC_COLUMNS, *self.extras]

    @property
    def doc_schema(self) -> pa.Schema:
        """The documents' schema (what split_read_batch yields, what kept/ holds)."""
        return pa.schema([self.schema.field(n) for n in self.doc_columns])


def plan_read(inputs: InputSet, settings: ReadSettings) -> ReadPlan:
    """Units and output schema of an input, from file names and parquet footers (driver only)."""
    import pyarrow.parquet as pq

    units, bad, extra_fields = [], [], {}
    for f in inputs.files:
        if f.fmt == "jsonl":  # gzip holds ~4x its size in text
            est = f.size * (4 if f.path.lower().endswith(".gz") else 1)
            units.append(ReadUnit(len(units), f.path, f.rel, f.index, "jsonl", est_bytes=est))
            continue
        try:
            meta = pq.ParquetFile(f.path).metadata
            arrow_schema = meta.schema.to_arrow_schema()
        except Exception as exc:  # noqa: BLE001 - any failure to open means unreadable
            bad.append((f.rel, f"{type(exc).__name__}: {exc}"))
            continue
        for field in arrow_schema:
            if field.name in S.DOC_COLUMNS or field.name.startswith("_"):
                continue
            t = _spark_arrow_type(field.type)
            seen = extra_fields.setdefault(field.name, (t, f.rel))
            if seen[0] != t:
                raise UserError(f"parquet column '{field.name}' is {seen[0]} in {seen[1]} but {t} in {f.rel}; "
                                "make the input files agree on its type")
        groups, size, row, first = [], 0, 0, 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            if groups and size + rg.total_byte_size > settings.unit_bytes:
                units.append(ReadUnit(len(units), f.path, f.rel, f.index, "parquet", tuple(groups), first, size))
                groups, size, first = [], 0, row
            groups.append(g)
            size += rg.total_byte_size
            row += rg.num_rows
        if groups:
            units.append(ReadUnit(len(units), f.path, f.rel, f.index, "parquet", tuple(groups), first, size))
    extras = sorted(extra_fields)
    schema = pa.schema(list(S.DOC_SCHEMA) + [pa.field(n, extra_fields[n][0]) for n in extras]
                       + [f for f in READ_BASE_SCHEMA if f.name not in S.DOC_COLUMNS])
    try:
        _spark_schema(schema)
    except Exception as exc:  # noqa: BLE001 - a type Spark cannot hold
        raise UserError(f"input has a parquet column type Spark cannot hold: {exc}") from None
    cfg = {"max_text_bytes": settings.max_text_bytes, "quarantine_preview_bytes": settings.quarantine_preview_bytes,
           "records_per_batch": settings.records_per_batch}
    return ReadPlan(units, schema, extras, bad, cfg)


def _invalid_utf8(text: pa.Array) -> pa.Array:
    """Per row: does the string hold invalid UTF-8? (Validated for the whole batch first; only a
    batch that fails is looked at row by row.)"""
    try:
        text.validate(full=True)
        return pa.repeat(False, len(text))
    except pa.ArrowInvalid:
        bad = []
        for v in text.cast(pa.binary()).to_pylist():
            try:
                bad.append(v is not None and v.decode("utf-8") is None)
            except UnicodeDecodeError:
                bad.append(True)
        return pa.array(bad)


def _text_reasons(batch: pa.RecordBatch, max_text: int) -> pa.Array:
    """Per row: null for a usable text, else the quarantine reason (the JSONL reader's rules)."""
    import pyarrow.compute as pc

    n = batch.num_rows
    if "text" not in batch.schema.names:
        return pa.repeat(S.MISSING_TEXT, n)
    text = batch.column("text")
    if not _is_string(text.type):
        return pc.if_else(text.is_null(), S.MISSING_TEXT, S.TEXT_NOT_STRING)
    bad_utf8 = _invalid_utf8(text)
    if pc.any(bad_utf8).as_py():  # rare: the valid rows rebuilt, so no kernel meets the bad bytes
        raw = text.cast(pa.binary()) if pa.types.is_string(text.type) else text.cast(pa.large_binary())
        text = pa.array([None if b else v for v, b in zip(raw.to_pylist(), bad_utf8.to_pylist())],
                        raw.type).cast(text.type)
    conditions = [bad_utf8, text.is_null(), pc.greater(pc.binary_length(text), max_text),
                  pc.or_(pc.equal(pc.utf8_length(text), 0), pc.utf8_is_space(text))]
    return pc.case_when(pc.make_struct(*[pc.fill_null(c, False) for c in conditions],
                                       field_names=["u", "n", "l", "e"]),
                        S.INVALID_UTF8, S.MISSING_TEXT, S.TEXT_TOO_LARGE, S.EMPTY_TEXT)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary-encoded columns (pandas categoricals, some writers) as their plain values, and a
    binary `text` column as UTF-8 text (checked like any string: invalid rows are refused)."""
    cols, changed = [], False
    for f, col in zip(batch.schema, batch.columns):
        if pa.types.is_dictionary(f.type):
            col, changed = col.dictionary_decode(), True
        if f.name == "text" and (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            col, changed = col.view(pa.string() if pa.types.is_binary(col.type) else pa.large_string()), True
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names) if changed else batch


def _field_reasons(batch: pa.RecordBatch) -> pa.Array:
    """Per row: invalid_utf8 where a string column other than `text` holds invalid UTF-8 (it would
    be written to kept/ as is), else null."""
    import pyarrow.compute as pc

    bad = None
    for f, col in zip(batch.schema, batch.columns):
        if f.name != "text" and _is_string(f.type):
            b = _invalid_utf8(col)
            bad = b if bad is None else pc.or_(bad, b)
    if bad is None or not pc.any(bad).as_py():
        return pa.nulls(batch.num_rows, pa.string())
    return pc.if_else(bad, S.INVALID_UTF8, pa.scalar(None, pa.string()))


def _as_string_column(col: pa.Array) -> pa.Array:
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # nested values: their JSON
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                         for v in col.to_pylist()], pa.string())


def _bytes_as_text(value):
    if isinstance(value, bytes):  # invalid UTF-8 stays byte for byte in the preview
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _row_previews(rows: pa.RecordBatch) -> list:
    """Each row as JSON bytes for the quarantine's `raw`; string columns are read as bytes, so a
    row with invalid UTF-8 keeps its original bytes."""
    as_bytes = pa.RecordBatch.from_arrays(
        [c.cast(pa.binary()) if _is_string(c.type) else c
         for c in rows.columns], names=rows.schema.names)
    try:
        return [json.dumps(r, ensure_ascii=False, default=_bytes_as_text).encode("utf-8", "surrogateescape")
                for r in as_bytes.to_pylist()]
    except (UnicodeDecodeError, ValueError) as exc:  # invalid UTF-8 inside a nested column
        return [f"(row not renderable: {exc})".encode() for _ in range(rows.num_rows)]


def _parquet_batch(batch: pa.RecordBatch, unit: ReadUnit, first_row: int, plan: ReadPlan) -> pa.RecordBatch:
    """One parquet batch -> the read schema: document columns normalised as for JSONL (id defaults
    to `file:row`, source to the file's stem), extras cast to the plan's types, bad rows refused."""
    import numpy as np
    import pyarrow.compute as pc

    batch = _decoded(batch)
    n, names = batch.num_rows, set(batch.schema.names)
    preview = plan.settings["quarantine_preview_bytes"]
    rows = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    reasons = pc.coalesce(_text_reasons(batch, plan.settings["max_text_bytes"]), _field_reasons(batch))
    ok = reasons.is_null()

    def opt_str(name):
        return _as_string_column(batch.column(name)) if name in names else pa.nulls(n, pa.string())

    text_type = batch.schema.field("text").type if "text" in names else None
    text_is_string = text_type is not None and _is_string(text_type)
    rid = opt_str("id")
    if rid.null_count:  # a missing id is `file:row`
        rid = pc.coalesce(rid, pc.binary_join_element_wise(pa.scalar(f"{unit.rel}:"), rows.cast(pa.string()), ""))
    pos = pc.bit_wise_or(rows, pa.scalar(unit.file_index << S.FILE_POS_SHIFT, pa.int64()))
    cols = {
        "id": rid,
        "text": (pc.if_else(ok, batch.column("text").cast(pa.string()), pa.scalar(None, pa.string()))
                 if text_is_string else pa.nulls(n, pa.string())),
        "source": pc.coalesce(opt_str("source"), pa.scalar(Path(unit.rel).name.split(".")[0])),
        "lang": opt_str("lang"), "url": opt_str("url"), "meta": opt_str("meta"),
        "doc_pos": pc.coalesce(batch.column("doc_pos").cast(pa.int64()), pos) if "doc_pos" in names else pos,
    }
    for name in plan.extras:
        t = plan.schema.field(name).type
        cols[name] = batch.column(name).cast(t) if name in names else pa.nulls(n, t)
    q_names = ("_q_reason", "_q_error", "_q_raw", "_q_truncated", "_q_bytes", "_q_chars")
    bad = pc.indices_nonzero(pc.invert(ok)).to_pylist()
    if not bad:
        for k in q_names:
            cols[k] = pa.nulls(n, plan.schema.field(k).type)
    else:  # rare: only refused rows are rendered, in Python
        q = {k: [None] * n for k in q_names}
        sub = batch.select([c for c in batch.schema.names if not c.startswith("_")]).take(pa.array(bad))
        for i, raw in zip(bad, _row_previews(sub)):
            q["_q_reason"][i] = q["_q_error"][i] = reasons[i].as_py()
            q["_q_raw"][i] = raw[:preview]
            q["_q_truncated"][i] = len(raw) > preview
            q["_q_bytes"][i] = len(raw)
            q["_q_chars"][i] = (pc.utf8_length(batch.column("text")[i]).as_py()
                                if q["_q_reason"][i] == S.TEXT_TOO_LARGE else 0)
        for k, v in q.items():
            cols[k] = pa.array(v, plan.schema.field(k).type)
    cols["_file"] = pa.repeat(unit.rel, n)
    cols["_record"] = rows
    return pa.RecordBatch.from_arrays([cols[f.name] for f in plan.schema], schema=plan.schema)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A reader's batch with the plan's extra columns added (as nulls) where it has none."""
    if batch.schema.equals(schema):
        return batch
    names = set(batch.schema.names)
    return pa.RecordBatch.from_arrays(
        [batch.column(f.name) if f.name in names else pa.nulls(batch.num_rows, f.type) for f in schema],
        schema=schema)


def read_unit(unit: ReadUnit, plan: ReadPlan):
    """Yield the read schema's batches for every record of one unit (runs on the executors)."""
    if unit.fmt == "jsonl":
        for batch in parse_jsonl_file(unit.path, unit.rel, unit.file_index, plan.settings):
            yield _conform(batch, plan.schema)
        return
    import pyarrow.parquet as pq

    row = unit.first_row
    try:
        pf = pq.ParquetFile(unit.path)
        for batch in pf.iter_batches(batch_size=plan.settings["records_per_batch"], row_groups=list(unit.row_groups),
                                     use_threads=False):
            yield _parquet_batch(batch, unit, row, plan)
            row += batch.num_rows
    except (OSError, pa.ArrowException) as exc:  # a damaged page: the rows before it are kept
        out = _Columns()
        out.add(_q_reason=S.UNREADABLE_FILE, _q_error=f"{type(exc).__name__}: {exc}", _q_raw=b"",
                _q_truncated=False, _q_bytes=0, _q_chars=0, _file=unit.rel, _record=row)
        yield _conform(out.flush(), plan.schema)


def split_read_batch(batch: pa.RecordBatch, plan: ReadPlan) -> tuple:
    """A read batch -> (documents: the plan's document columns, quarantine: QUARANTINE_SCHEMA)."""
    import pyarrow.compute as pc

    if batch.column("_q_reason").null_count == batch.num_rows:  # the common case: nothing refused
        return batch.select(plan.doc_columns), None
    refused = batch.column("_q_reason").is_valid()
    docs = batch.filter(pc.invert(refused)).select(plan.doc_columns)
    q = batch.filter(refused)
    quarantine = pa.RecordBatch.from_arrays([q.column(c) for c in QUARANTINE_FROM_READ.values()],
                                            schema=S.QUARANTINE_SCHEMA)
    return docs, quarantine


@dataclass
class DocTally:
    """Documents and characters (code points of `text`) a unit's reading has handed on so far."""
    docs: int = 0
    chars: int = 0


def unit_documents_counted(plan: ReadPlan, unit: int, quarantine, tally: DocTally):
    """Yield unit `unit`'s non-empty document batches (the plan's document columns, in input
    order), writing each batch's refused records to `quarantine` (anything with `write(batch or
    None)`, e.g. a taskfiles.PartWriter) and adding each yielded batch to `tally` before it is
    yielded. Every record read ends up in exactly one of the two: the one read loop of the
    streaming engines (pipeline.mapunits, pass 1 of pipeline.twopass)."""
    import pyarrow.compute as pc

    for raw in read_unit(plan.units[unit], plan):
        docs, refused = split_read_batch(raw, plan)
        quarantine.write(refused)
        if docs.num_rows == 0:
            continue
        tally.docs += docs.num_rows
        tally.chars += int(pc.sum(pc.utf8_length(docs.column("text"))).as_py() or 0)
        yield docs


def units_rdd(spark, plan: ReadPlan, tasks: int | None = None):
    """An RDD of unit numbers: one Spark partition (task) per unit, the largest units first (Spark
    starts tasks in partition order: a big unit started last would leave the other cores idle).
    Outputs are named by unit number, so this order never shows in them. tasks: fewer tasks, each
    looping over several units, for light work where a task's fixed cost (~70 ms of a core in
    PySpark) would dominate."""
    order = largest_first(plan)
    n = max(1, len(order) if tasks is None else min(tasks, len(order)))
    return spark.sparkContext.parallelize(order, n) if tasks is None else \
        spark.sparkContext.parallelize(sorted(order), n)


def largest_first(plan: ReadPlan) -> list:
    """Unit numbers, the largest units first (ties in input order)."""
    return [u.index for u in sorted(plan.units, key=lambda u: (-u.est_bytes, u.index))]


def light_tasks(spark) -> int:
    """How many tasks light per-unit work (reading keys or decisions, not text) is spread over."""
    return 2 * spark.sparkContext.defaultParallelism


def units_frame(spark, plan: ReadPlan):
    """units_rdd as a DataFrame (column `unit`), for a mapInArrow reader."""
    from pyspark.sql.types import LongType, StructField, StructType

    return spark.createDataFrame(units_rdd(spark, plan).map(lambda i: (i,)),
                                 StructType([StructField("unit", LongType())]))


def units_of(batches, plan: ReadPlan):
    """The units named by a units_frame partition's batches (inside a mapInArrow function)."""
    for b in batches:
        for i in b.column("unit").to_pylist():
            yield plan.units[i]


def _spark_schema(arrow_schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


@dataclass
class ReadResult:
    docs: object  # DataFrame of documents
    quarantine: object  # DataFrame of QUARANTINE_SCHEMA
    bad_files: list  # [(rel path, error)] found before reading (parquet footers)
    cached: list  # DataFrames persisted while reading: unpersist when the stage is done


def enforce_bad_files(bad_files: list, settings: ReadSettings) -> None:
    """The one bad-file policy: unreadable files [(rel, error)] fail the run unless
    read.skip_bad_files is set (then they are quarantined as unreadable_file and the records read
    before the damage go on). Applied to parquet footers before any task, and to the quarantine's
    unreadable_file records once the input has been read."""
    if bad_files and not settings.skip_bad_files:
        raise BadInputFiles(bad_files)


def unreadable_files(quarantine_dir) -> list:
    """[(file, error)] of the unreadable_file records in a quarantine directory."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = sorted(Path(quarantine_dir).glob("*.parquet")) if Path(quarantine_dir).is_dir() else []
    out = []
    for f in parts:
        t = pq.read_table(f, columns=["file", "reason", "error"])
        t = t.filter(pc.equal(t.column("reason"), S.UNREADABLE_FILE))
        out += list(zip(t.column("file").to_pylist(), t.column("error").to_pylist()))
    return out


def bad_file_records(bad_files: list) -> pa.Table:
    """Quarantine rows (QUARANTINE_SCHEMA) for files found unreadable before any task ran."""
    return pa.Table.from_pylist(
        [{"file": rel, "record": 0, "reason": S.UNREADABLE_FILE, "error": err, "id": None, "raw": b"",
          "raw_truncated": False, "n_bytes": 0, "n_chars": 0} for rel, err in bad_files], schema=S.QUARANTINE_SCHEMA)


def read_documents(spark, inputs: InputSet, settings: ReadSettings) -> ReadResult:
    """The documents and quarantine of an input as Spark DataFrames (one task per unit reads)."""
    plan = plan_read(inputs, settings)
    enforce_bad_files(plan.bad_files, settings)
    return read_plan_documents(spark, plan)


def read_plan_documents(spark, plan: ReadPlan) -> ReadResult:
    """read_documents for an input already planned; the quarantine holds the plan's bad files."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    def run(batches):
        for unit in units_of(batches, plan):
            yield from read_unit(unit, plan)

    parsed = units_frame(spark, plan).mapInArrow(run, _spark_schema(plan.schema))
    # One task per unit reads; the stages after need all cores even when the units are few.
    spread = 2 * spark.sparkContext.defaultParallelism
    if len(plan.units) < spread:
        parsed = parsed.repartition(spread, "doc_pos")
    # Parsed once, then split into documents and quarantine (both read this cache).
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    docs = parsed.where(F.col("_q_reason").isNull()).select(*plan.doc_columns)
    quarantine = parsed.where(F.col("_q_reason").isNotNull()).select(
        *[F.col(src).alias(name) for name, src in QUARANTINE_FROM_READ.items()])
    if plan.bad_files:
        quarantine = quarantine.unionByName(spark.createDataFrame(
            bad_file_records(plan.bad_files).to_pylist(), _spark_schema(S.QUARANTINE_SCHEMA)))
    return ReadResult(docs, quarantine, plan.bad_files, [parsed])
