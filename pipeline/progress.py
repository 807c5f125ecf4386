"""Progress lines for long Spark work when no terminal shows Spark's own progress bar.

Stages that run for minutes (semantic-dedup's embedding pass, a trillion-token tokenize) are
otherwise silent in a log file between their step lines. `TaskProgress` is a daemon thread on the
driver that asks Spark's status tracker every `every` seconds how many tasks of each active
Spark stage are done, and logs one line when that changed. On a terminal Spark's progress bar
(spark.ui.showConsoleProgress) does the same job, so `every` defaults to off there.
"""
from __future__ import annotations

import sys
import threading


def default_interval(seconds: float) -> float:
    """The configured interval, or 0 (off) when stderr is a terminal with Spark's progress bar."""
    return 0.0 if sys.stderr.isatty() else float(seconds)


def progress_line(spark) -> str | None:
    """'stage 12: 3/8 tasks done, 2 running; ...' for the active Spark stages, None when idle."""
    tracker = spark.sparkContext.statusTracker()
    parts = []
    for sid in sorted(tracker.getActiveStageIds()):
        info = tracker.getStageInfo(sid)
        if info is not None:
            parts.append(f"Spark stage {sid}: {info.numCompletedTasks}/{info.numTasks} tasks done, "
                         f"{info.numActiveTasks} running")
    return "; ".join(parts) or None


class TaskProgress:
    """with TaskProgress(spark, log, every=30): ... logs progress lines while the block runs."""

    def __init__(self, spark, log, every: float):
        self.spark, self.log, self.every = spark, log, every
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.every > 0 and self.spark is not None:
            self._thread = threading.Thread(target=self._loop, name="task-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self):
        last = None
        while not self._stop.wait(self.every):
            try:
                line = progress_line(self.spark)
            except Exception:  # noqa: BLE001 - a status query must never fail the stage
                continue
            if line and line != last:
                self.log(f"progress: {line}")
                last = line
