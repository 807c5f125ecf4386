"""Corpus readers: a file, a directory or a glob of JSONL / JSONL.gz / parquet -> documents.

Every input record ends up in exactly one of two DataFrames: `docs` (DOC_SCHEMA plus any extra
parquet columns) or `quarantine` (QUARANTINE_SCHEMA, with the reason, file and record number).
JSONL is parsed by our own Python reader (one Spark task per file, Arrow batches out), because
Spark's JSON reader silently replaces invalid UTF-8 and cannot say which line a record came from.
Parquet goes through Spark's reader with its hidden `_metadata` row index.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

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


def _is_hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in Path(rel).parts)


def resolve_input(spec: str) -> InputSet:
    """Expand an input spec into a sorted, numbered file list (the order defines doc_pos)."""
    if not spec:
        raise UserError("no input given (--input PATH)")
    p = Path(os.path.abspath(spec))  # absolute, but symlinks left as they are
    if p.is_dir() and (p / "_manifest.json").is_file() and (p / "kept").is_dir():
        p = p / "kept"  # a stage's output directory: read what it kept
    if p.is_dir():
        root = p
        candidates = [f for f in p.rglob("*") if f.is_file()]
        candidates = [f for f in candidates if not _is_hidden(str(f.relative_to(root)))]
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
    skipped = []
    for f in sorted(candidates, key=lambda c: c.relative_to(root).as_posix()):
        fmt = _fmt_of(f.name)
        if fmt is None:
            skipped.append(f.name)
            continue
        st = f.stat()
        rel = f.relative_to(root).as_posix()
        files.append(InputFile(len(files), str(f), rel, fmt, st.st_size, st.st_mtime_ns))
    if not files:
        extra = f" (ignored: {', '.join(sorted(skipped)[:5])})" if skipped else ""
        raise UserError(f"no JSONL, JSONL.gz or parquet files in input {spec}{extra}")
    if skipped:
        print(f"note: ignoring {len(skipped)} file(s) that are not JSONL/parquet in {spec}: "
              f"{', '.join(sorted(skipped)[:5])}", flush=True)
    return InputSet(spec=spec, root=str(root), files=tuple(files))


# --------------------------------------------------------------------------------------------
# JSONL: parsed in Python on the executors, one task per file.

JSONL_OUT_SCHEMA = pa.schema(list(S.DOC_SCHEMA) + [
    pa.field("_q_reason", pa.string()),
    pa.field("_q_error", pa.string()),
    pa.field("_q_raw", pa.binary()),
    pa.field("_q_truncated", pa.bool_()),
    pa.field("_q_bytes", pa.int64()),
    pa.field("_q_chars", pa.int64()),
    pa.field("_file", pa.string()),
    pa.field("_record", pa.int64()),
])

_BASE_FIELDS = ("id", "text", "source", "lang", "url")


def _as_opt_str(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


class _Columns:
    def __init__(self):
        self.cols = {f.name: [] for f in JSONL_OUT_SCHEMA}

    def __len__(self):
        return len(self.cols["_record"])

    def add(self, **values):
        for name, col in self.cols.items():
            col.append(values.get(name))

    def flush(self) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_pydict(self.cols, schema=JSONL_OUT_SCHEMA)
        for col in self.cols.values():
            col.clear()
        return batch


def parse_jsonl_file(path: str, rel: str, file_index: int, settings: dict):
    """Yield Arrow batches (JSONL_OUT_SCHEMA) for every record of one JSONL(.gz) file."""
    max_text = settings["max_text_bytes"]
    preview = settings["quarantine_preview_bytes"]
    per_batch = settings["records_per_batch"]
    # A JSON line can be up to ~2x its text (\uXXXX escapes); anything longer is too large
    # whatever it holds, and is never read into memory whole.
    max_line = 2 * max_text + (1 << 20)
    source_default = Path(rel).name.split(".")[0]
    out = _Columns()

    def quarantine(line_no, reason, error, raw, truncated=False, n_bytes=None, n_chars=0, rid=None):
        out.add(id=rid, _q_reason=reason, _q_error=error, _q_raw=bytes(raw[:preview]) if truncated else bytes(raw),
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


def _parse_line(raw, line_no, rel, file_index, source_default, max_text, preview, out, quarantine):
    body = raw.rstrip(b"\r\n")
    if not body.strip():
        return  # blank lines separate nothing and hold no record
    try:
        line = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return quarantine(line_no, S.INVALID_UTF8, str(exc), body)
    try:
        rec = json.loads(line)
    except ValueError as exc:
        return quarantine(line_no, S.INVALID_JSON, str(exc), body)
    if not isinstance(rec, dict):
        return quarantine(line_no, S.NOT_AN_OBJECT, f"a JSON {type(rec).__name__}, not an object", body)
    rid = _as_opt_str(rec.get("id"))
    text = rec.get("text")
    if "text" not in rec or text is None:
        return quarantine(line_no, S.MISSING_TEXT, "no 'text' field", body, rid=rid)
    if not isinstance(text, str):
        return quarantine(line_no, S.TEXT_NOT_STRING, f"'text' is a {type(text).__name__}", body, rid=rid)
    try:
        n_bytes = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates from \ud800-style escapes
        return quarantine(line_no, S.INVALID_UTF8, f"text is not valid Unicode: {exc}", body, rid=rid)
    if n_bytes > max_text:
        return quarantine(line_no, S.TEXT_TOO_LARGE, f"text of {n_bytes} bytes exceeds {max_text}",
                          body, truncated=len(body) > preview, n_bytes=len(body), n_chars=len(text), rid=rid)
    if not text.strip():
        return quarantine(line_no, S.EMPTY_TEXT, "text is empty or whitespace only", body, rid=rid)
    extra = {k: v for k, v in rec.items() if k not in _BASE_FIELDS}
    try:
        meta = json.dumps(extra, ensure_ascii=False) if extra else None
        meta is None or meta.encode("utf-8")
        source = _as_opt_str(rec.get("source")) or source_default
        lang, url = _as_opt_str(rec.get("lang")), _as_opt_str(rec.get("url"))
        for v in (rid, source, lang, url):
            v is None or v.encode("utf-8")
    except UnicodeEncodeError as exc:
        return quarantine(line_no, S.INVALID_UTF8, f"a field is not valid Unicode: {exc}", body, rid=None)
    out.add(id=rid if rid is not None else f"{rel}:{line_no}", text=text, source=source, lang=lang,
            url=url, meta=meta, doc_pos=S.doc_pos(file_index, line_no), _file=rel, _record=line_no)


def _jsonl_partition(settings: dict):
    def run(batches):
        for batch in batches:
            d = batch.to_pydict()
            for path, rel, idx in zip(d["path"], d["rel"], d["index"]):
                yield from parse_jsonl_file(path, rel, idx, settings)
    return run


def _read_jsonl(spark, files, settings: ReadSettings):
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    schema = StructType([StructField("path", StringType()), StructField("rel", StringType()),
                         StructField("index", LongType())])
    rows = [(f.path, f.rel, f.index) for f in files]
    # One partition per file, without a shuffle.
    listing = spark.createDataFrame(spark.sparkContext.parallelize(rows, len(rows)), schema)
    cfg = {"max_text_bytes": settings.max_text_bytes,
           "quarantine_preview_bytes": settings.quarantine_preview_bytes,
           "records_per_batch": settings.records_per_batch}
    from pyspark import StorageLevel

    # Parsed once, then split into documents and quarantine (both read this cache).
    parsed = listing.mapInArrow(_jsonl_partition(cfg), _spark_schema(JSONL_OUT_SCHEMA))
    # One task per file reads; the stages after need all cores even when the files are few.
    spread = 2 * spark.sparkContext.defaultParallelism
    if len(files) < spread:
        parsed = parsed.repartition(spread, "doc_pos")
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    docs = parsed.where(F.col("_q_reason").isNull()).select(*S.DOC_COLUMNS)
    quarantine = parsed.where(F.col("_q_reason").isNotNull()).select(
        F.col("_file").alias("file"), F.col("_record").alias("record"), F.col("_q_reason").alias("reason"),
        F.col("_q_error").alias("error"), "id", F.col("_q_raw").alias("raw"),
        F.col("_q_truncated").alias("raw_truncated"), F.col("_q_bytes").alias("n_bytes"),
        F.col("_q_chars").alias("n_chars"))
    return parsed, docs, quarantine


# --------------------------------------------------------------------------------------------
# Parquet: Spark's reader; footers are checked first so a truncated file gets a clear message.

def _check_parquet_footers(files) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    bad = []
    for f in files:
        try:
            pq.ParquetFile(f.path).metadata
        except Exception as exc:  # noqa: BLE001 - any failure to open means unreadable
            bad.append((f.rel, f"{type(exc).__name__}: {exc}"))
    return bad


def _read_parquet(spark, files, settings: ReadSettings):
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    df = spark.read.option("mergeSchema", "true").parquet(*[f.path for f in files])
    listing = spark.createDataFrame(
        [(f.path, f.rel, f.index) for f in files],
        StructType([StructField("_uri", StringType()), StructField("_rel", StringType()),
                    StructField("_index", LongType())]),
    )
    # _metadata.file_path is a URI (file:/a%20b/c.parquet): back to a plain absolute path.
    local_path = F.url_decode(F.regexp_replace(F.col("_metadata.file_path"), "^file:/+", "/"))
    df = (df.withColumn("_uri", local_path)
            .withColumn("_row", F.col("_metadata.row_index"))
            .join(F.broadcast(listing), "_uri"))
    cols = set(df.columns)
    text_is_string = "text" in cols and dict(df.dtypes)["text"] == "string"
    if "id" in cols:
        rid = F.coalesce(F.col("id").cast("string"), F.concat_ws(":", "_rel", "_row"))
    else:
        rid = F.concat_ws(":", "_rel", "_row")
    stem = F.element_at(F.split(F.element_at(F.split("_rel", "/"), -1), r"\."), 1)
    df = df.withColumn("id", rid)
    df = df.withColumn("source", F.coalesce(F.col("source").cast("string"), stem) if "source" in cols else stem)
    for name in ("lang", "url", "meta"):
        df = df.withColumn(name, F.col(name).cast("string") if name in cols else F.lit(None).cast("string"))
    if "doc_pos" not in cols:
        df = df.withColumn("doc_pos", F.shiftleft(F.col("_index"), S.FILE_POS_SHIFT).bitwiseOR(F.col("_row")))
    if "text" not in cols:
        reason = F.lit(S.MISSING_TEXT)
    elif not text_is_string:
        reason = F.when(F.col("text").isNull(), S.MISSING_TEXT).otherwise(S.TEXT_NOT_STRING)
    else:
        reason = (F.when(F.col("text").isNull(), S.MISSING_TEXT)
                  .when(F.octet_length("text") > settings.max_text_bytes, S.TEXT_TOO_LARGE)
                  # no non-space character (Unicode-aware, as Python's str.strip); the search
                  # stops at the first such character, so it costs nothing on real text
                  .when(~F.col("text").rlike(r"(?U)\S"), S.EMPTY_TEXT))
    df = df.withColumn("_q_reason", reason)
    extras = [c for c in df.columns if c not in S.DOC_COLUMNS and not c.startswith("_")]
    docs = df.where(F.col("_q_reason").isNull()).select(*S.DOC_COLUMNS, *extras)
    bad = df.where(F.col("_q_reason").isNotNull())
    row_json = F.to_json(F.struct(*[c for c in df.columns if not c.startswith("_")]))
    n_bytes = F.octet_length(row_json).cast("long")
    quarantine = bad.select(
        F.col("_rel").alias("file"), F.col("_row").alias("record"), F.col("_q_reason").alias("reason"),
        F.col("_q_reason").alias("error"), "id",
        F.substring(row_json, 1, settings.quarantine_preview_bytes).cast("binary").alias("raw"),
        (n_bytes > settings.quarantine_preview_bytes).alias("raw_truncated"),
        n_bytes.alias("n_bytes"),
        (F.when(F.col("_q_reason") == S.TEXT_TOO_LARGE, F.char_length("text")).otherwise(0)
         .cast("long").alias("n_chars") if text_is_string else F.lit(0).cast("long").alias("n_chars")),
    )
    return docs, quarantine


def _spark_schema(arrow_schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


@dataclass
class ReadResult:
    docs: object  # DataFrame of documents
    quarantine: object  # DataFrame of QUARANTINE_SCHEMA
    bad_files: list  # [(rel path, error)] found before reading (parquet footers)
    cached: list  # DataFrames persisted while reading: unpersist when the stage is done


def read_documents(spark, inputs: InputSet, settings: ReadSettings) -> ReadResult:
    jsonl = [f for f in inputs.files if f.fmt == "jsonl"]
    parquet = [f for f in inputs.files if f.fmt == "parquet"]
    bad = _check_parquet_footers(parquet)
    if bad and not settings.skip_bad_files:
        raise BadInputFiles(bad)
    bad_names = {rel for rel, _ in bad}
    parquet = [f for f in parquet if f.rel not in bad_names]
    docs, quarantine, cached = [], [], []
    if jsonl:
        parsed, d, q = _read_jsonl(spark, jsonl, settings)
        cached.append(parsed)
        docs.append(d)
        quarantine.append(q)
    if parquet:
        d, q = _read_parquet(spark, parquet, settings)
        docs.append(d)
        quarantine.append(q)
    if bad:
        quarantine.append(spark.createDataFrame(
            [(rel, 0, S.UNREADABLE_FILE, err, None, b"", False, 0, 0) for rel, err in bad],
            _spark_schema(S.QUARANTINE_SCHEMA)))
    out_docs = docs[0]
    for d in docs[1:]:
        out_docs = out_docs.unionByName(d, allowMissingColumns=True)
    out_q = quarantine[0] if quarantine else spark.createDataFrame([], _spark_schema(S.QUARANTINE_SCHEMA))
    for q in quarantine[1:]:
        out_q = out_q.unionByName(q)
    return ReadResult(out_docs, out_q, bad, cached)
