"""The one SparkSession factory.

Master: the --master flag, else $SPARK_MASTER, else the profile's `spark.master` (local[*]).
Under spark-submit the master and driver memory come from spark-submit and are left alone.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

from pipeline.config import SparkSettings
from pipeline.errors import UserError
from pipeline.registry import stage_packages

REPO_ROOT = Path(__file__).resolve().parent.parent
MASTER_URL = re.compile(r"local(\[(\*|\d+)(,\s*\d+)?\])?|local-cluster\[\d+,\s*\d+,\s*\d+\]|"
                        r"spark://[^\s/]+(:\d+)?(,[^\s/]+(:\d+)?)*/?|yarn|k8s://\S+")
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"


def _auto_driver_memory() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return "4g"
    # In local mode the driver JVM also runs the executors; Python workers and Arrow batches
    # live outside it, so leave well over half of the machine to them.
    return f"{max(1, int(total * 0.4 / 2**30))}g"


def _package_zip() -> str:
    """Zip our packages for executors on other machines (spark.submit.pyFiles equivalent)."""
    out = Path(tempfile.mkdtemp(prefix="pipeline-pyfiles-")) / "pipeline_packages.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in stage_packages():  # the functions given to Spark tasks live in them
            for f in sorted((REPO_ROOT / pkg).rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f.relative_to(REPO_ROOT).as_posix())
    return str(out)


def under_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(settings: SparkSettings | None = None, master: str | None = None):
    settings = settings or SparkSettings()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("GLIBC_TUNABLES", MALLOC_TUNABLES)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    builder = SparkSession.builder.appName(settings.app_name)
    submitted = under_spark_submit()
    chosen = None
    if not submitted:
        chosen = master or os.environ.get("SPARK_MASTER") or settings.master
        if not MASTER_URL.fullmatch(chosen):  # else the JVM prints a stack trace before we can speak
            raise UserError(f"invalid Spark master {chosen!r}: use local, local[N], local[*], spark://HOST:PORT, "
                            "yarn or k8s://URL")
        builder = builder.master(chosen)
        memory = _auto_driver_memory() if settings.driver_memory == "auto" else settings.driver_memory
        builder = builder.config("spark.driver.memory", memory)
        log4j = REPO_ROOT / "pipeline" / "log4j2.properties"
        builder = builder.config("spark.driver.extraJavaOptions",
                                 f"-Dlog4j2.configurationFile=file:{log4j} {settings.java_options}".strip())
    cores = os.cpu_count() or 2
    shuffle = settings.shuffle_partitions or 4 * cores
    pythonpath = os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p)
    conf = {
        "spark.sql.shuffle.partitions": str(shuffle),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        # Spark's progress bar on a terminal; plain log lines (ours) when output goes to a file.
        "spark.ui.showConsoleProgress": "true" if sys.stderr.isatty() else "false",
        "spark.ui.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.executorEnv.GLIBC_TUNABLES": MALLOC_TUNABLES,
        "spark.executorEnv.PYTHONPATH": pythonpath,
        "spark.executorEnv.PYTHONHASHSEED": "0",
        "spark.python.worker.reuse": "true",
        "spark.executor.extraJavaOptions": settings.java_options,
        # every stage's shuffle figures stay in the status store until the stage's manifest has them
        "spark.ui.retainedStages": "10000",
        "spark.ui.retainedJobs": "10000",
    }
    conf.update({k: str(v) for k, v in settings.conf.items()})
    for k, v in conf.items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - a bad master URL or conf value, a JVM that cannot start
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "Exception" in ln or "Error" in ln), lines[0] if lines else type(exc).__name__)
        raise UserError(f"cannot start Spark (master {chosen if not submitted else 'from spark-submit'!r}): "
                        f"{why[:300]}") from None
    spark.sparkContext.setLogLevel(settings.log_level)
    if not spark.sparkContext.master.startswith("local"):
        spark.sparkContext.addPyFile(_package_zip())
    return spark


def stage_metrics(spark) -> dict:
    """{stage id: (shuffle bytes written, bytes spilled to memory + disk)} of the Spark stages this
    session has completed (Spark's own status store: what its UI would show)."""
    store = spark.sparkContext._jsc.sc().statusStore()
    defaults = [getattr(store, f"stageList$default${i}")() for i in range(2, 6)]
    out = {}
    it = store.stageList(None, *defaults).iterator()
    while it.hasNext():
        st = it.next()
        out[(st.stageId(), st.attemptId())] = (int(st.shuffleWriteBytes()),
                                               int(st.memoryBytesSpilled()) + int(st.diskBytesSpilled()))
    return out


def shuffle_since(spark, before: dict) -> dict:
    """Bytes shuffled and spilled by the stages completed since `before` (a stage_metrics snapshot)."""
    new = {k: v for k, v in stage_metrics(spark).items() if k not in before}
    return {"shuffle_write_bytes": sum(v[0] for v in new.values()),
            "spill_bytes": sum(v[1] for v in new.values()), "spark_stages": len(new)}
