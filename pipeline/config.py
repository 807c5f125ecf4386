"""Config profiles (YAML) -> typed dataclasses, with one-line errors for unknown keys.

A profile has these top-level sections:
  spark:    SparkSettings (master, memory, partitions, extra conf)
  read:     ReadSettings (input limits, quarantine previews, read units)
  write:    WriteSettings (output files)
  spans:    pipeline.spanpolicy.SpanSettings (which levels may be cut, per lang; what counts as code)
  pipeline: {stages: [names in order]}
  <stage>:  that stage's own config dataclass (e.g. exact-dedup: {...})
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError
from pipeline.spanpolicy import SpanSettings


@dataclass
class SparkSettings:
    master: str = "local[*]"
    app_name: str = "pretrain-pipeline"
    driver_memory: str = "auto"  # auto: 40% of this machine's RAM, for local mode
    shuffle_partitions: int = 0  # 0: 4 x cores
    log_level: str = "WARN"
    # JVM flags for the driver (where we start it) and the executors. The JVM here only schedules
    # tasks and moves small key records (text stays in the Python tasks), so C2's optimising
    # compiler costs more CPU than it saves: ~6 CPU-s of a 30 s exact-dedup run on 2 cores. C1
    # alone makes that stage ~13% faster; "" restores the JVM's default JIT.
    java_options: str = "-XX:TieredStopAtLevel=1"
    conf: dict = field(default_factory=dict)  # any other spark.* settings
    # seconds between progress lines (tasks done per Spark stage) while a stage runs, when output
    # goes to a log file (a terminal shows Spark's progress bar instead); 0 = none
    progress_seconds: float = 30.0


@dataclass
class ReadSettings:
    max_text_bytes: int = 16 * 1024 * 1024  # larger texts are quarantined (with a preview)
    quarantine_preview_bytes: int = 4096  # how much of a too-large record quarantine keeps
    records_per_batch: int = 1024  # Arrow batch size out of the readers
    # A task reads one JSONL file, or a run of one parquet file's row groups of about this many
    # (uncompressed) bytes: the unit of read parallelism, fixed by the input, not the cluster.
    unit_bytes: int = 256 * 1024 * 1024
    skip_bad_files: bool = False  # unreadable files: fail (default) or quarantine and go on
    # A two-pass stage reads each unit twice. Parsing JSON is most of the cost of reading JSONL,
    # so pass 1 keeps a parsed copy of each JSONL unit (Arrow IPC, lz4) in the stage's work dir for
    # pass 2, at the price of that much scratch disk; false: pass 2 parses the input again.
    # Parquet units are always read again from the input. Decides how, never what: the output is
    # the same either way.
    stage_jsonl_for_second_pass: bool = True


@dataclass
class WriteSettings:
    # Output parquet files per directory; 0 = one per ~256 MB of input. A fixed count (not the
    # cluster's parallelism) keeps output content identical across local and cluster runs.
    files_per_output: int = 0


def _type_ok(value: Any, annotation: Any) -> bool:
    kind = annotation if isinstance(annotation, type) else typing.get_origin(annotation)
    if kind is None:
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def build(cls, data: dict | None, where: str):
    """Build dataclass `cls` from a mapping, naming the section in every error."""
    data = data or {}
    if not isinstance(data, dict):
        raise UserError(f"config section '{where}' must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(
            f"unknown config key(s) {', '.join(repr(k) for k in unknown)} in section '{where}' "
            f"(known: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        hint = hints.get(key)
        optional = typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None))
        if value is None and optional:
            continue
        if optional:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0] if len(args) == 1 else None
        if hint is not None and not _type_ok(value, hint):
            want = getattr(hint, "__name__", str(hint))
            raise UserError(
                f"config key '{where}.{key}' must be {want}, got {value!r} ({type(value).__name__})"
            )
    return cls(**data)


@dataclass
class Profile:
    """A loaded config profile: raw sections plus the typed shared settings."""

    path: str | None
    raw: dict
    spark: SparkSettings
    read: ReadSettings
    write: WriteSettings
    spans: SpanSettings
    stages: list

    def section(self, name: str) -> dict:
        return self.raw.get(name) or {}


KNOWN_SHARED = {"spark", "read", "write", "spans", "pipeline"}


def load_profile(path: str | None, overrides: list[str] | None = None,
                 stage_names: set[str] | None = None) -> Profile:
    raw: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise UserError(f"config file {path} must hold a mapping of sections")
    for item in overrides or []:
        apply_override(raw, item)
    if stage_names is not None:
        unknown = sorted(set(raw) - KNOWN_SHARED - stage_names)
        if unknown:
            raise UserError(
                f"unknown config section(s) {', '.join(unknown)} in {path or 'overrides'} "
                f"(known: {', '.join(sorted(KNOWN_SHARED | stage_names))})"
            )
    pipeline = raw.get("pipeline") or {}
    if not isinstance(pipeline, dict) or set(pipeline) - {"stages"}:
        raise UserError("config section 'pipeline' takes one key, 'stages' (a list of stage names)")
    stages = list(pipeline.get("stages") or [])
    return Profile(
        path=path,
        raw=raw,
        spark=build(SparkSettings, raw.get("spark"), "spark"),
        read=build(ReadSettings, raw.get("read"), "read"),
        write=build(WriteSettings, raw.get("write"), "write"),
        spans=build(SpanSettings, raw.get("spans"), "spans"),
        stages=stages,
    )


def apply_override(raw: dict, item: str) -> None:
    """`section.key=value` (value parsed as YAML) -> raw[section][key] = value."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise UserError(f"--set takes section.key=value, got {item!r}")
    dotted, value = item.split("=", 1)
    keys = dotted.split(".")
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {item}: '{k}' is not a section")
    try:
        node[keys[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise UserError(f"--set {item}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None


def config_hash(obj: Any) -> str:
    """Stable hash of a JSON-able config: the key of idempotent re-runs."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def as_dict(obj) -> dict:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)
