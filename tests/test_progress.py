"""Progress lines while Spark tasks run (pipeline/progress.py), on a real local SparkSession."""
import time

from pipeline.progress import TaskProgress, default_interval, progress_line


def test_progress_lines_while_tasks_run(spark):
    def slow(_):  # defined here: pickled by value, the workers cannot import this test module
        import time

        time.sleep(0.4)
        return 1

    lines = []
    assert progress_line(spark) is None  # nothing runs
    with TaskProgress(spark, lines.append, every=0.3):
        total = spark.sparkContext.parallelize(range(12), 12).map(slow).sum()
    assert total == 12
    assert lines and all(x.startswith("progress: Spark stage ") for x in lines)
    done = [int(x.split(": ")[2].split("/")[0]) for x in lines]
    assert all(x.split("/")[1].startswith("12 tasks done") for x in lines)
    assert done == sorted(done) and len(set(lines)) == len(lines)  # a line only when something changed
    n = len(lines)
    time.sleep(0.8)
    assert len(lines) == n  # the thread stopped with the block


def test_progress_off():
    lines = []
    with TaskProgress(None, lines.append, every=0.1):
        time.sleep(0.3)
    with TaskProgress(object(), lines.append, every=0):
        time.sleep(0.2)
    assert lines == []
    assert default_interval(30.0) in (0.0, 30.0)
