"""The stage contract: what every stage gets, what it returns, and what the runner guarantees.

A stage is a small class with one job. It defines one of
  run_units(ctx, plan) -> StageOutput   reads its input itself, unit by unit inside its own Spark
                                        tasks (pipeline.readers.read_unit; e.g. pipeline.twopass),
                                        writes kept/ and quarantine/ parts and returns input_counts:
                                        the data never passes through the JVM;
  run(ctx, docs) -> StageOutput         gets the documents as a Spark DataFrame (the runner reads
                                        them and writes the quarantine) and returns DataFrames.
The runner does everything else, as a sequence of named steps:

  claim the output   a re-run with the same input and config is a no-op that says so; the output is
                     built in a hidden sibling directory that a killed run leaves behind and the next
                     run removes;
  plan and run       the stage's config is checked, the input planned (read units, parquet footers),
                     unreadable files handled by the one bad-file policy (readers.enforce_bad_files);
  write              DataFrames the stage returned, as deterministic parquet;
  count, reconcile   every output counted from its files by one counter (count_outputs); for a stage
                     that accounts for every document: input = kept + removed + cut spans +
                     quarantined, in documents and characters, or nothing is published;
  manifest, publish  OUT/_manifest.json (counts, removals by reason, spans by reason and level, bytes
                     Spark shuffled and spilled, timings, config, versions, input fingerprint); the
                     hidden directory is renamed into place.

  OUT/kept/          documents that go on (parquet)
  OUT/removed/       documents dropped, each with `reason` and `duplicate_of` (null if n/a)
  OUT/removed_spans/ spans cut out of kept documents (pipeline.spans.REMOVED_SPAN_SCHEMA)
  OUT/quarantine/    records that could not be read, with file, record number, reason, raw bytes
  OUT/<extra>/       other stage-specific outputs, parquet
"""
from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from pipeline import __version__
from pipeline.config import Profile, as_dict, build, config_hash
from pipeline.outdir import MANIFEST, check_output_path, claim_output, output_lock, publish
from pipeline.readers import (InputSet, bad_file_records, enforce_bad_files, plan_read, read_plan_documents,
                              resolve_input, unreadable_files)
from pipeline.schema import QUARANTINE_SCHEMA
from pipeline.taskfiles import PartWriter, ensure_schema_file



@dataclass
class CliOption:
    """A stage-specific command-line flag that sets one key of the stage's config."""

    flag: str
    key: str
    help: str


@dataclass
class StageOutput:
    kept: Any = None  # DataFrame; None when the stage wrote kept/ itself or keeps nothing
    removed: Any = None  # DataFrame with `reason` and `duplicate_of`
    extra: dict = field(default_factory=dict)  # name -> DataFrame, written as OUT/name/
    # Outputs (written or in `extra`) whose rows are character spans cut out of documents, in
    # pipeline.spans.REMOVED_SPAN_SCHEMA: their characters are part of the reconciliation.
    span_outputs: tuple = ()
    # The removed/ reasons and span outputs in the order the stage applies them (the report's
    # data funnel shows them so); unlisted ones follow.
    removal_order: tuple = ()
    order: dict = field(default_factory=dict)  # name -> sort columns (default: doc_pos)
    stats: dict = field(default_factory=dict)  # stage-specific figures for the manifest
    cached: list = field(default_factory=list)  # DataFrames the stage persisted: released after writing
    # Outputs ("kept", "removed", extra names) the stage wrote itself into work_dir/<name>/ (one
    # part per read unit); the runner counts them like the others.
    written: tuple = ()
    # {"docs", "chars"} of the documents read (a run_units stage returns it; the runner fills it
    # in for a run stage).
    input_counts: dict | None = None


class Stage:
    name: ClassVar[str] = ""
    config_class: ClassVar[type] = None
    # Its kept/ holds documents (text and all) that the next stage of a pipeline reads.
    feeds_next_stage: ClassVar[bool] = True
    # Every input document ends up in exactly one of kept/, removed/ and quarantine/ (less the
    # spans cut out of it): the runner checks the counts add up. A stage that consumes its input
    # into something else (a tokenizer) does not.
    reconciles: ClassVar[bool] = True
    cli_options: ClassVar[tuple] = ()
    description: ClassVar[str] = ""

    def check(self, cfg) -> None:
        """Refuse a config that cannot work (raise UserError), before any input is planned."""

    def prepare(self, cfg, stage_dirs: dict[str, Path]):
        """In a pipeline run: fill config values that come from earlier stages' outputs."""
        return cfg

    def fingerprint_extra(self, cfg) -> dict:
        """What else, beyond input files and config, decides this stage's output (e.g. the
        checksum of a model file the config points at). Part of the re-run check."""
        return {}

    @property
    def streams(self) -> bool:
        return hasattr(self, "run_units")


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


MAX_LISTED_SKIPPED = 1000  # the manifest lists this many files not read (and counts them all)


def versions() -> dict:
    import numpy
    import pyarrow
    import pyspark

    return {"pipeline": __version__, "python": platform.python_version(), "pyspark": pyspark.__version__,
            "pyarrow": pyarrow.__version__, "numpy": numpy.__version__}


def stage_config(stage: Stage, profile: Profile):
    return build(stage.config_class, profile.section(stage.name), stage.name)


def _fingerprint(stage: Stage, cfg, profile: Profile, inputs: InputSet) -> dict:
    config = {"stage": as_dict(cfg), "read": as_dict(profile.read), "write": as_dict(profile.write),
              "spans": as_dict(profile.spans)}
    config["read"].pop("skip_bad_files", None)  # decides failing, not content
    config["read"].pop("stage_jsonl_for_second_pass", None)  # decides how, not what
    return {"input": inputs.fingerprint(),
            "config_hash": config_hash([stage.name, __version__, config, stage.fingerprint_extra(cfg)])}


# ------------------------------------------------------------------------------------------
# The steps


def _progress(ctx: StageContext):
    """Progress lines while the stage's Spark jobs run (see pipeline/progress.py)."""
    from pipeline.progress import TaskProgress, default_interval

    return TaskProgress(ctx.spark, ctx.log, default_interval(ctx.profile.spark.progress_seconds))


def plan_and_run(stage: Stage, ctx: StageContext):
    """Plan the input, run the stage, leave a complete quarantine/; (plan, StageOutput)."""
    settings = ctx.profile.read
    with ctx.timed("plan"):
        plan = plan_read(ctx.inputs, settings)
        enforce_bad_files(plan.bad_files, settings)  # found in parquet footers, before any task
        qdir = ctx.work_dir / "quarantine"
    if stage.streams:
        if plan.bad_files:  # skipped: quarantined like the records the tasks refuse
            import pyarrow.parquet as pq

            qdir.mkdir()
            pq.write_table(bad_file_records(plan.bad_files), qdir / "part-bad-files.parquet")
        with ctx.timed("stage"), _progress(ctx):
            result = stage.run_units(ctx, plan)
        if result.input_counts is None:
            raise RuntimeError(f"stage {stage.name} streams but returned no input_counts")
        enforce_bad_files(unreadable_files(qdir), settings)  # e.g. a corrupt gzip found by a task
    else:
        with ctx.timed("read"):
            read = read_plan_documents(ctx.spark, plan)  # its quarantine holds the plan's bad files
            _write(read.quarantine, qdir, max(1, min(ctx.output_files, 4)), ["file", "record"])
            enforce_bad_files(unreadable_files(qdir), settings)
            counts = count_outputs(ctx.spark, {"docs": (read.docs, [])})
        with ctx.timed("stage"), _progress(ctx):
            result = stage.run(ctx, read.docs)
        result.input_counts = counts["docs"]
        result.cached += read.cached
    ensure_schema_file(qdir, QUARANTINE_SCHEMA)
    return plan, result


def _write(df, path: Path, n_files: int, order: list[str]) -> None:
    """Deterministic parquet: hash-partition on the first order column, sort inside each file, and
    write each partition with pyarrow as part-NNNNN.parquet (the name is the partition number).
    Not Spark's writer: its files carry a random name and list each column's encodings in an
    order that changes from run to run, so equal rows would not give equal bytes."""
    from pyspark import TaskContext
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(df.schema)
    directory = str(path)

    def write(batches):
        ctx = TaskContext.get()
        w = PartWriter(directory, ctx.partitionId(), ctx.taskAttemptId(), schema)
        rows = 0
        for b in batches:
            w.write(b.cast(schema) if not b.schema.equals(schema) else b)
            rows += b.num_rows
        w.close()
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    sorted_df = df.repartition(n_files, order[0]).sortWithinPartitions(*order)
    sorted_df.mapInArrow(write, "rows long").collect()
    ensure_schema_file(path, schema)


def write_outputs(stage: Stage, ctx: StageContext, result: StageOutput) -> list[str]:
    """Write the DataFrames the stage returned; the names of every document/span output."""
    frames = {"kept": result.kept, "removed": result.removed, **result.extra}
    if result.removed is not None:
        missing = {"reason", "duplicate_of"} - set(result.removed.columns)
        if missing:
            raise RuntimeError(f"stage {stage.name} returned removed/ without {sorted(missing)}")
    with ctx.timed("write"):
        for name, df in frames.items():
            if df is not None and name not in result.written:
                _write(df, ctx.work_dir / name, ctx.output_files, result.order.get(name, ["doc_pos"]))
    for cached in result.cached:
        cached.unpersist()
    return [n for n in ("kept", "removed") if n in result.written or frames[n] is not None]


def count_outputs(spark, outputs: dict) -> dict:
    """The one counter: {name: {"docs", "chars", "by_<col>": {value: {"docs", "chars"}}}} for
    outputs given as name -> (parquet directory or DataFrame, [group columns]). Characters are a
    row's `n_chars` where it has one, else the length of its `text`, else 0. Directories are
    counted from their files by Spark tasks with pyarrow (one job for all of them; nothing large
    reaches the driver)."""
    out, files = {}, []
    for name, (where, groups) in outputs.items():
        if isinstance(where, (str, Path)):
            files += [(name, str(f), tuple(groups)) for f in sorted(Path(where).glob("*.parquet"))]
        else:
            out[name] = _count_frame(where)
    if files:
        n = min(len(files), 4 * spark.sparkContext.defaultParallelism)
        partial = spark.sparkContext.parallelize(files, n).mapPartitions(_count_files).collect()
        for name in outputs:
            if name not in out:
                out[name] = _merge_counts([p for p in partial if p[0] == name], outputs[name][1])
    return out


def _count_files(items):
    """Per (output, file, groups): (output, group column, value, docs, chars) rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for name, path, groups in items:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        col = "n_chars" if "n_chars" in names else "text" if "text" in names else None
        have = [g for g in groups if isinstance(g, str) and g in names]
        pairs = [g for g in groups if isinstance(g, tuple) and set(g) <= set(names)]
        read = sorted({c for g in have + pairs for c in ((g,) if isinstance(g, str) else g)})
        for batch in pf.iter_batches(columns=([col] if col else []) + read, batch_size=65536):
            chars = (pa.repeat(0, batch.num_rows) if col is None else batch.column(col) if col == "n_chars"
                     else pc.utf8_length(batch.column(col)))
            for g in [None, *have, *pairs]:
                keys = pa.repeat("", batch.num_rows) if g is None else _group_key(batch, g)
                t = pa.table({"k": keys, "c": chars.cast(pa.int64())}).group_by("k").aggregate(
                    [("c", "count"), ("c", "sum")])
                for k, d, c in zip(*(t.column(x).to_pylist() for x in ("k", "c_count", "c_sum"))):
                    yield name, g, k, int(d), int(c or 0)


def _group_key(batch, group):
    """A group column (nulls as "(none)"), or for a tuple of columns their values joined by "/"."""
    import pyarrow.compute as pc

    cols = [pc.fill_null(batch.column(c).cast("string"), "(none)") for c in ((group,) if isinstance(group, str) else group)]
    return cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, "/")


def _group_name(group) -> str:
    return "by_" + (group if isinstance(group, str) else "_".join(group))


def _merge_counts(rows, groups) -> dict:
    total = {"docs": 0, "chars": 0}
    by = {g: {} for g in groups}
    for _, g, k, d, c in rows:
        if g is None:
            total["docs"] += d
            total["chars"] += c
        else:
            slot = by[g].setdefault(str(k), {"docs": 0, "chars": 0})
            slot["docs"] += d
            slot["chars"] += c
    for g in groups:
        total[_group_name(g)] = dict(sorted(by[g].items()))
    return total


def _count_frame(df) -> dict:
    from pyspark.sql import functions as F

    chars = F.char_length("text") if "text" in df.columns else F.lit(0)
    rows = df.agg(F.count(F.lit(1)).alias("docs"), F.coalesce(F.sum(chars), F.lit(0)).alias("chars")).first()
    return {"docs": int(rows["docs"]), "chars": int(rows["chars"])}


def count_and_reconcile(stage: Stage, ctx: StageContext, result: StageOutput, doc_outputs: list) -> dict:
    work = ctx.work_dir
    wanted = {n: (work / n, ["reason", "lang", "source"] if n == "removed" else ["lang", "source"]) for n in doc_outputs}
    wanted.update({n: (work / n, ["reason", "level", "lang", ("lang", "level")]) for n in result.span_outputs})
    wanted["quarantined"] = (work / "quarantine", ["reason"])
    with ctx.timed("count"):
        found = count_outputs(ctx.spark, wanted)
    q = found["quarantined"]
    counts = {"input": {"docs": result.input_counts["docs"] + q["docs"],
                        "chars": result.input_counts["chars"] + q["chars"]}, **found}
    if not stage.reconciles:
        counts["consumed"] = dict(result.input_counts)
        return counts
    for key in ("docs", "chars"):
        parts = [counts[n][key] for n in (*doc_outputs, "quarantined")]
        parts += [counts[n]["chars"] for n in result.span_outputs] if key == "chars" else []
        if sum(parts) != counts["input"][key]:
            raise RuntimeError(f"{stage.name}: counts do not reconcile for {key}: input {counts['input'][key]} != "
                               f"kept + removed + spans + quarantined {sum(parts)} ({parts}); output not published")
    counts["reconciled"] = True
    if result.span_outputs:
        counts["cut_by_lang"] = cut_by_lang(counts, doc_outputs, result.span_outputs)
    return counts


def cut_by_lang(counts: dict, doc_outputs: list, span_outputs: tuple) -> dict:
    """{lang: {"chars": its characters in the stage's input (quarantine aside), "cut_chars",
    "cut_share", "by_level": {level: {"chars", "share"}}}}: how much of each language the
    stage's span cuts took, so that a policy that eats a language shows at a glance."""
    out: dict = {}
    for name in (*doc_outputs, *span_outputs):
        for lang, v in counts[name].get("by_lang", {}).items():
            out.setdefault(lang, {"chars": 0, "cut_chars": 0, "by_level": {}})["chars"] += v["chars"]
    for name in span_outputs:
        for key, v in counts[name].get("by_lang_level", {}).items():
            lang, level = key.rsplit("/", 1)
            slot = out[lang]["by_level"].setdefault(level, {"chars": 0})
            slot["chars"] += v["chars"]
            out[lang]["cut_chars"] += v["chars"]
    for lang in out.values():
        lang["cut_share"] = round(lang["cut_chars"] / lang["chars"], 6) if lang["chars"] else 0.0
        for level in lang["by_level"].values():
            level["share"] = round(level["chars"] / lang["chars"], 6) if lang["chars"] else 0.0
    return dict(sorted(out.items()))


def run_stage(stage: Stage, profile: Profile, input_spec: str, output: str, *, spark=None,
              master: str | None = None, overwrite: bool = False, replace_stale: bool = False,
              cfg=None) -> dict:
    """Run one stage from input directory to output directory under the stage contract.

    overwrite: re-run and replace whatever is there. replace_stale: replace an output made from
    another input or config (a pipeline run owns its directories), but skip a matching one.
    """
    t_start = time.time()
    out = Path(output).resolve()
    cfg = cfg if cfg is not None else stage_config(stage, profile)
    stage.check(cfg)
    inputs = resolve_input(input_spec)
    check_output_path(out, inputs)
    fingerprint = _fingerprint(stage, cfg, profile, inputs)
    with output_lock(out):
        previous, work = claim_output(stage.name, out, fingerprint, overwrite=overwrite, replace_stale=replace_stale)
        if previous is not None:
            return previous
        try:  # a run that fails leaves nothing behind (a killed one leaves `work`: the next run removes it)
            manifest = _run_into(work, out, stage, cfg, profile, inputs, spark, master, fingerprint, t_start)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        publish(work, out)
    return manifest


def _run_into(work: Path, out: Path, stage: Stage, cfg, profile: Profile, inputs: InputSet, spark, master, fingerprint: dict,
              t_start: float) -> dict:
    """The steps inside a claimed work directory; returns the manifest it wrote there."""
    from pipeline.spark import get_spark, shuffle_since, stage_metrics

    t_spark = time.time()
    spark = spark or get_spark(profile.spark, master)
    ctx = StageContext(spark=spark, stage=stage.name, config=cfg, profile=profile, inputs=inputs, work_dir=work)
    ctx.timings["spark_session"] = round(time.time() - t_spark, 3)
    ctx.log(f"input {inputs.spec}: {len(inputs.files)} file(s), {inputs.total_bytes / 1e6:.1f} MB")
    before = stage_metrics(spark)
    plan, result = plan_and_run(stage, ctx)
    doc_outputs = write_outputs(stage, ctx, result)
    counts = count_and_reconcile(stage, ctx, result, doc_outputs)
    ctx.timings["total"] = round(time.time() - t_start, 3)
    manifest = {
        "stage": stage.name,
        "feeds_next_stage": stage.feeds_next_stage,
        "reconciles": stage.reconciles,
        "status": "complete",
        "input": {"spec": inputs.spec, "root": inputs.root, "files": len(inputs.files), "bytes": inputs.total_bytes,
                  "read_units": len(plan.units), "skipped_files": {
                      "count": len(inputs.skipped),
                      "files": [{"file": f, "why": w} for f, w in inputs.skipped[:MAX_LISTED_SKIPPED]]}},
        "output": str(out),
        "counts": counts,
        "span_outputs": list(result.span_outputs),
        "removal_order": list(result.removal_order),
        "bad_files": [{"file": f, "error": e} for f, e in plan.bad_files],
        "shuffle": shuffle_since(spark, before),
        "stats": result.stats,
        "timings_s": ctx.timings,
        "config": {"stage": as_dict(cfg), "read": as_dict(profile.read), "write": as_dict(profile.write),
                   "spans": as_dict(profile.spans)},
        "fingerprint": fingerprint,
        "versions": versions(),
        "spark": {"master": spark.sparkContext.master, "default_parallelism": spark.sparkContext.defaultParallelism},
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                                 encoding="utf-8")
    kept = counts.get("kept", {}).get("docs", "-")
    ctx.log(f"done in {ctx.timings['total']:.1f}s: {counts['input']['docs']:,} in, {kept} kept, "
            f"{counts.get('removed', {}).get('docs', 0):,} removed, {counts['quarantined']['docs']:,} "
            f"quarantined; {manifest['shuffle']['shuffle_write_bytes'] / 1e6:.1f} MB shuffled -> {manifest['output']}")
    return manifest
