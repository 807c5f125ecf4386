"""The document schema every stage reads and writes, and the quarantine record schema.

Documents: `id`, `text`, `source`, `lang`, `url`, `meta` (JSON of any other input fields) and
`doc_pos`, an int64 corpus-order key (input file index << 32 | record number) that makes every
"first occurrence" choice deterministic. Stages add their own columns beside these (scores,
flags, ...) and keep the ones they do not know.
"""
from __future__ import annotations

import pyarrow as pa

DOC_COLUMNS = ("id", "text", "source", "lang", "url", "meta", "doc_pos")

DOC_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("text", pa.string()),
    ("source", pa.string()),
    ("lang", pa.string()),
    ("url", pa.string()),
    ("meta", pa.string()),
    ("doc_pos", pa.int64()),
])

QUARANTINE_SCHEMA = pa.schema([
    ("file", pa.string()),
    ("record", pa.int64()),  # 1-based line (JSONL) or 0-based row (parquet)
    ("reason", pa.string()),
    ("error", pa.string()),
    ("id", pa.string()),
    ("raw", pa.binary()),  # the original bytes, or the first `quarantine_preview_bytes`
    ("raw_truncated", pa.bool_()),
    ("n_bytes", pa.int64()),
    ("n_chars", pa.int64()),  # characters of a readable text that was refused (too large), else 0
])



def removed_schema(doc_schema: pa.Schema) -> pa.Schema:
    """removed/: the documents' columns, then why each went and the id it duplicates (or null)."""
    return doc_schema.append(pa.field("reason", pa.string())).append(pa.field("duplicate_of", pa.string()))


# Reasons a record is quarantined.
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
INVALID_UTF8 = "invalid_utf8"
MISSING_TEXT = "missing_text"
TEXT_NOT_STRING = "text_not_string"
EMPTY_TEXT = "empty_text"
TEXT_TOO_LARGE = "text_too_large"
UNREADABLE_FILE = "unreadable_file"

FILE_POS_SHIFT = 32


def doc_pos(file_index: int, record: int) -> int:
    return (file_index << FILE_POS_SHIFT) | record
