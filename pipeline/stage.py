"""The stage contract: what every stage gets, what it returns, and what the runner guarantees.

A stage is a small class with one job. `run(ctx, docs)` receives the input documents (already
separated from quarantined records) and returns DataFrames; the runner does everything else:

  OUT/kept/          documents that go on (parquet)
  OUT/removed/       documents dropped, each with `reason` and `duplicate_of` (null if n/a)
  OUT/quarantine/    records that could not be read, with file, record number, reason, raw bytes
  OUT/<extra>/       stage-specific outputs (e.g. removed_spans/), parquet
  OUT/_manifest.json counts (input = kept + removed + quarantined, for documents and characters),
                     removals by reason, timings, config, versions, input fingerprint.

Guarantees: output appears atomically (built in a hidden sibling directory, renamed at the end);
a re-run with the same input and config is a no-op that says so; a killed run leaves only the
hidden directory, which the next run removes before redoing the work; content is deterministic
(fixed hash partitioning on a stable key, sorted within files).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import __version__
from pipeline.config import Profile, as_dict, build, config_hash
from pipeline.errors import BadInputFiles, UserError
from pipeline.readers import (InputSet, bad_file_records, check_bad_files, plan_read, read_documents,
                              resolve_input)
from pipeline.schema import QUARANTINE_SCHEMA, UNREADABLE_FILE

MANIFEST = "_manifest.json"


@dataclass
class CliOption:
    """A stage-specific command-line flag that sets one key of the stage's config."""

    flag: str
    key: str
    help: str


@dataclass
class StageOutput:
    kept: Any = None  # DataFrame; None for sink stages (they consume, they do not filter)
    removed: Any = None  # DataFrame with `reason` and `duplicate_of`
    extra: dict = field(default_factory=dict)  # name -> DataFrame, written as OUT/name/
    # Names in `extra` whose rows are character spans cut out of documents (their `text`
    # characters are part of the reconciliation: input = kept + removed + spans + quarantined).
    span_outputs: tuple = ()
    order: dict = field(default_factory=dict)  # name -> sort columns (default: doc_pos)
    stats: dict = field(default_factory=dict)  # stage-specific figures for the manifest
    cached: list = field(default_factory=list)  # DataFrames the stage persisted: released after writing
    # Optional hooks (the defaults are the runner's usual behaviour):
    # written: output names ("kept", "removed", extra names) the stage already wrote itself into
    # work_dir/<name>/ in the contract's layout (deterministic hash partitioning on a stable key,
    # sorted inside each file); the runner does not write them again but counts them as usual.
    written: tuple = ()
    # input_counts: {"docs", "chars"} of the documents a streaming stage (run_units) read; the
    # runner counts them itself for every other stage.
    input_counts: dict | None = None


class Stage:
    name: ClassVar[str] = ""
    config_class: ClassVar[type] = None
    kind: ClassVar[str] = "filter"  # "filter": its kept/ feeds the next stage; "sink": it does not
    cli_options: ClassVar[tuple] = ()
    description: ClassVar[str] = ""
    # A streaming stage defines `run_units(ctx, plan) -> StageOutput` instead of `run`. It reads
    # its input itself, unit by unit inside its own Spark tasks (pipeline.readers.read_unit /
    # split_read_batch; one task per read unit, so its outputs are laid out by the input, never
    # by the cluster), writes kept/ and quarantine/ (QuarantineWriter) and returns input_counts.
    # The runner then makes no pass over the input at all: the data never goes through the JVM.

    def prepare(self, cfg, stage_dirs: dict[str, Path]):
        """In a pipeline run: fill config values that come from earlier stages' outputs."""
        return cfg

    def fingerprint_extra(self, cfg) -> dict:
        """What else, beyond input files and config, decides this stage's output (e.g. the
        checksum of a model file the config points at). Part of the re-run check."""
        return {}

    def run(self, ctx: "StageContext", docs) -> StageOutput:  # pragma: no cover - interface
        raise NotImplementedError


def task_output(path: Path, attempt: int):
    """(temporary path, publish) for a file one Spark task writes: a hidden name that readers
    skip, renamed into place when complete, so a retried or speculative task never leaves half a
    file and writes the same content again."""
    tmp = path.parent / f".{path.name}.{attempt}.tmp"
    return tmp, lambda: os.replace(tmp, path)


class QuarantineWriter:
    """Quarantine rows of one task of a streaming stage -> work_dir/quarantine/part-NNNNN.parquet
    (opened only when the first refused record arrives)."""

    def __init__(self, quarantine_dir: str, part: int, attempt: int):
        self.path, self._publish = task_output(Path(quarantine_dir) / f"part-{part:05d}.parquet", attempt)
        self.writer = None

    def write(self, batch) -> None:
        if batch is None or batch.num_rows == 0:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, QUARANTINE_SCHEMA, compression="zstd")
        self.writer.write_batch(batch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self._publish()


@dataclass
class StageContext:
    spark: Any
    stage: str
    config: Any  # the stage's config dataclass
    profile: Profile
    inputs: InputSet
    work_dir: Path  # the hidden output directory being built: stages may write files into it
    timings: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.time)

    def log(self, msg: str) -> None:
        print(f"[{self.stage} {time.time() - self._t0:7.1f}s] {msg}", flush=True)

    def timed(self, label: str):
        ctx = self

        class _Timer:
            def __enter__(self):
                self.t = time.time()
                return self

            def __exit__(self, *exc):
                ctx.timings[label] = round(ctx.timings.get(label, 0.0) + time.time() - self.t, 3)

        return _Timer()

    @property
    def output_files(self) -> int:
        n = self.profile.write.files_per_output
        return n if n > 0 else max(1, -(-self.inputs.total_bytes // (256 << 20)))


def versions() -> dict:
    import pyarrow
    import pyspark

    out = {"pipeline": __version__, "python": platform.python_version(),
           "pyspark": pyspark.__version__, "pyarrow": pyarrow.__version__}
    try:
        import numpy

        out["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def stage_config(stage: Stage, profile: Profile):
    return build(stage.config_class, profile.section(stage.name), stage.name)


def _fingerprint(stage: Stage, cfg, profile: Profile, inputs: InputSet) -> dict:
    config = {"stage": as_dict(cfg), "read": as_dict(profile.read), "write": as_dict(profile.write)}
    config["read"].pop("skip_bad_files", None)  # decides failing, not content
    return {"input": inputs.fingerprint(),
            "config_hash": config_hash([stage.name, __version__, config, stage.fingerprint_extra(cfg)])}


def read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write(df, path: Path, n_files: int, order: list[str]) -> None:
    """Deterministic parquet: hash-partition on the first order column, sort inside each file."""
    df.repartition(n_files, order[0]).sortWithinPartitions(*order).write.mode("error").parquet(str(path))


def _count(spark, path: Path, group_by: str | None = None) -> dict:
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(path))
    chars = (F.char_length("text") if "text" in df.columns
             else F.col("n_chars") if "n_chars" in df.columns else F.lit(0))
    aggs = [F.count(F.lit(1)).alias("docs"), F.coalesce(F.sum(chars), F.lit(0)).cast("long").alias("chars")]
    if group_by and group_by in df.columns:  # one job: per-group figures, summed here
        rows = df.groupBy(group_by).agg(*aggs).collect()
        groups = {str(r[group_by]): {"docs": int(r["docs"]), "chars": int(r["chars"])}
                  for r in sorted(rows, key=lambda r: str(r[group_by]))}
        return {"docs": sum(g["docs"] for g in groups.values()),
                "chars": sum(g["chars"] for g in groups.values()), "by_" + group_by: groups}
    total = df.agg(*aggs).first()
    return {"docs": int(total["docs"]), "chars": int(total["chars"])}


def _fail_on_bad_files(bad: list, settings, work: Path) -> None:
    try:
        check_bad_files(bad, settings)
    except BadInputFiles:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _count_local(path: Path, group_by: str | None = None) -> dict:
    """_count for a streaming stage's outputs, read on the driver with pyarrow, only the columns
    it needs (n_chars where the stage wrote it, else text; the group column)."""
    import pyarrow.compute as pc

    groups: dict = {}
    for f in sorted(Path(path).glob("*.parquet")):
        pf = pq.ParquetFile(f)
        col = "n_chars" if "n_chars" in pf.schema_arrow.names else "text"
        for batch in pf.iter_batches(columns=[col] + ([group_by] if group_by else []), batch_size=65536):
            chars = batch.column(col) if col == "n_chars" else pc.utf8_length(batch.column(col))
            keys = batch.column(group_by) if group_by else pa.repeat("", batch.num_rows)
            t = pa.table({"k": keys, "c": chars}).group_by("k").aggregate([("c", "count"), ("c", "sum")])
            for k, n, c in zip(*(t.column(x).to_pylist() for x in ("k", "c_count", "c_sum"))):
                g = groups.setdefault(str(k), {"docs": 0, "chars": 0})
                g["docs"] += n
                g["chars"] += int(c or 0)
    out = {"docs": sum(g["docs"] for g in groups.values()), "chars": sum(g["chars"] for g in groups.values())}
    if group_by:
        out["by_" + group_by] = dict(sorted(groups.items()))
    return out


def _unreadable_files(qdir: Path) -> list:
    """[(file, error)] of the unreadable_file records in a quarantine directory."""
    import pyarrow.compute as pc

    t = pq.read_table(qdir, columns=["file", "reason", "error"])
    t = t.filter(pc.equal(t.column("reason"), UNREADABLE_FILE))
    return list(zip(t.column("file").to_pylist(), t.column("error").to_pylist()))


def run_stage(stage: Stage, profile: Profile, input_spec: str, output: str, *, spark=None,
              master: str | None = None, overwrite: bool = False, replace_stale: bool = False,
              cfg=None) -> dict:
    """Run one stage from input directory to output directory under the stage contract.

    overwrite: re-run and replace whatever is there. replace_stale: replace an output made from
    another input or config (a pipeline run owns its directories), but skip a matching one.
    """
    from pyspark.sql import functions as F

    t_start = time.time()
    out = Path(output).resolve()
    cfg = cfg if cfg is not None else stage_config(stage, profile)
    inputs = resolve_input(input_spec)
    if out == Path(inputs.root) or Path(inputs.root).is_relative_to(out):
        raise UserError(f"output {output} would contain the input; choose another output directory")
    fingerprint = _fingerprint(stage, cfg, profile, inputs)
    if out.exists():
        previous = read_manifest(out)
        if previous and previous.get("fingerprint") == fingerprint and not overwrite:
            print(f"[{stage.name}] {output} is already complete for this input and config: nothing to do",
                  flush=True)
            return previous
        if not (overwrite or replace_stale):
            raise UserError(f"output {output} already exists (from another input or config); "
                            "pass --overwrite to replace it or choose another --output")
    work = out.parent / f".{out.name}.incomplete"
    if work.exists():
        print(f"[{stage.name}] removing the incomplete output of an interrupted run: {work}", flush=True)
        shutil.rmtree(work)
    out.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir()

    if spark is None:
        from pipeline.spark import get_spark

        spark = get_spark(profile.spark, master)
    ctx = StageContext(spark=spark, stage=stage.name, config=cfg, profile=profile, inputs=inputs, work_dir=work)
    ctx.log(f"input {input_spec}: {len(inputs.files)} file(s), {inputs.total_bytes / 1e6:.1f} MB")

    streaming = hasattr(stage, "run_units")
    if streaming:
        read = None
        with ctx.timed("read"):
            plan = plan_read(inputs, profile.read)
            _fail_on_bad_files(plan.bad_files, profile.read, work)
            (work / "quarantine").mkdir()
            if plan.bad_files:  # skipped: quarantined like the records the tasks refuse
                pq.write_table(bad_file_records(plan.bad_files), work / "quarantine" / "part-bad-files.parquet")
        with ctx.timed("stage"):
            result = stage.run_units(ctx, plan)
        if result.input_counts is None:
            raise RuntimeError(f"stage {stage.name} streams but returned no input_counts")
        d = result.input_counts
        q_stats = _count_local(work / "quarantine", "reason")
        if UNREADABLE_FILE in q_stats["by_reason"]:  # e.g. a corrupt gzip found by a task
            _fail_on_bad_files(_unreadable_files(work / "quarantine"), profile.read, work)
        n_q, c_q = q_stats["docs"], q_stats["chars"]
    else:
        with ctx.timed("read"):
            try:
                read = read_documents(spark, inputs, profile.read)
            except BadInputFiles:
                shutil.rmtree(work, ignore_errors=True)
                raise
            q_rows = read.quarantine.groupBy("reason").agg(
                F.count(F.lit(1)).alias("docs"), F.sum("n_chars").alias("chars")).collect()
            unreadable = (read.quarantine.where(F.col("reason") == UNREADABLE_FILE).select("file", "error")
                          .collect() if any(r["reason"] == UNREADABLE_FILE for r in q_rows) else [])
            _fail_on_bad_files([(r["file"], r["error"]) for r in unreadable], profile.read, work)
            d = read.docs.agg(F.count(F.lit(1)).alias("docs"),
                              F.coalesce(F.sum(F.char_length("text")), F.lit(0)).alias("chars")).first()
        n_q = sum(int(r["docs"]) for r in q_rows)
        c_q = sum(int(r["chars"] or 0) for r in q_rows)
    ctx.log(f"read {int(d['docs']) + n_q:,} records ({n_q:,} quarantined)")
    if not streaming:
        with ctx.timed("stage"):
            result = stage.run(ctx, read.docs)
    counts_in = {"docs": int(d["docs"]) + n_q, "chars": int(d["chars"]) + c_q}

    with ctx.timed("write"):
        n_files = ctx.output_files
        written = {}
        for name in result.written:
            if name in ("kept", "removed"):
                written[name] = True
        if result.kept is not None and "kept" not in result.written:
            _write(result.kept, work / "kept", n_files, result.order.get("kept", ["doc_pos"]))
            written["kept"] = True
        if result.removed is not None and "removed" not in result.written:
            missing = {"reason", "duplicate_of"} - set(result.removed.columns)
            if missing:
                raise RuntimeError(f"stage {stage.name} returned removed/ without {sorted(missing)}")
            _write(result.removed, work / "removed", n_files, result.order.get("removed", ["doc_pos"]))
            written["removed"] = True
        for name, df in result.extra.items():
            if name in result.written:
                continue
            _write(df, work / name, n_files, result.order.get(name, ["doc_pos"]))
        if not streaming and n_q:
            _write(read.quarantine, work / "quarantine", max(1, min(n_files, 4)), ["file", "record"])
        elif not any((work / "quarantine").glob("*.parquet")):  # an empty file with the schema, no Spark job
            (work / "quarantine").mkdir(exist_ok=True)
            pq.write_table(QUARANTINE_SCHEMA.empty_table(), work / "quarantine" / "part-00000.parquet")
        ctx.log("outputs written")

    with ctx.timed("count"):
        counts = {"input": counts_in}
        if written.get("kept"):  # a streaming stage's own files are counted without the JVM too
            counts["kept"] = _count_local(work / "kept") if streaming else _count(spark, work / "kept")
        if written.get("removed"):
            counts["removed"] = _count(spark, work / "removed", "reason")
        for name in result.span_outputs:
            counts[name] = _count(spark, work / name, "level")
        # a streaming stage's quarantine was counted from its files after the stage (no Spark job)
        counts["quarantined"] = q_stats if streaming else _count(spark, work / "quarantine", "reason")
        if stage.kind == "filter":
            for key in ("docs", "chars"):
                parts = [counts.get(k, {}).get(key, 0) for k in ("kept", "removed", "quarantined")]
                if key == "chars":
                    parts += [counts[n]["chars"] for n in result.span_outputs]
                if sum(parts) != counts_in[key]:
                    raise RuntimeError(
                        f"{stage.name}: counts do not reconcile for {key}: input {counts_in[key]} != "
                        f"kept + removed + spans + quarantined {sum(parts)} ({parts}); output not published")
            counts["reconciled"] = True
        else:
            counts["consumed"] = {"docs": counts_in["docs"] - counts["quarantined"]["docs"],
                                  "chars": counts_in["chars"] - counts["quarantined"]["chars"]}
    for cached in [*([] if streaming else read.cached), *result.cached]:
        cached.unpersist()

    ctx.timings["total"] = round(time.time() - t_start, 3)
    manifest = {
        "stage": stage.name,
        "kind": stage.kind,
        "status": "complete",
        "input": {"spec": input_spec, "root": inputs.root, "files": len(inputs.files),
                  "bytes": inputs.total_bytes},
        "output": str(out),
        "counts": counts,
        "bad_files": [{"file": f, "error": e} for f, e in (plan if streaming else read).bad_files],
        "stats": result.stats,
        "timings_s": ctx.timings,
        "config": {"stage": as_dict(cfg), "read": as_dict(profile.read), "write": as_dict(profile.write)},
        "fingerprint": fingerprint,
        "versions": versions(),
        "spark": {"master": spark.sparkContext.master,
                  "default_parallelism": spark.sparkContext.defaultParallelism},
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                                 encoding="utf-8")
    _publish(work, out)
    kept = counts.get("kept", {}).get("docs", "-")
    ctx.log(f"done in {ctx.timings['total']:.1f}s: {counts_in['docs']:,} in, {kept} kept, "
            f"{counts.get('removed', {}).get('docs', 0):,} removed, {counts['quarantined']['docs']:,} "
            f"quarantined -> {output}")
    return manifest


def _publish(work: Path, out: Path) -> None:
    """Swap the finished directory into place with renames (atomic on one filesystem)."""
    old = out.parent / f".{out.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.rename(out, old)
    os.rename(work, out)
    if old.exists():
        shutil.rmtree(old)
