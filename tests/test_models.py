"""The one way to ship a model file to the workers (pipeline.models): checksum for the re-run
fingerprint, found again on a worker, loaded once per process and again when the file changes."""
import os

import pytest

from pipeline.hashing import file_sha256
from pipeline.models import load_once, locate, ship

LOADS = []


def count_loads(path):
    LOADS.append(path)
    return open(path, encoding="utf-8").read()


def test_ship_checksums_and_locates(spark, tmp_path):
    model = tmp_path / "lid.bin"
    model.write_text("weights v1", encoding="utf-8")
    shipped = ship(spark, model)
    assert shipped.sha256 == file_sha256(model) and shipped.name == "lid.bin"
    assert locate(shipped.path) == str(model.resolve())
    # on a worker of the local session the driver's path is visible: the task finds the same file
    found = spark.sparkContext.parallelize([0], 1).map(lambda _: locate(shipped.path)).collect()
    assert found == [str(model.resolve())]
    with pytest.raises(FileNotFoundError):
        ship(spark, tmp_path / "missing.bin")


def test_load_once_per_process_and_again_when_the_file_changes(tmp_path):
    model = tmp_path / "m.txt"
    model.write_text("one", encoding="utf-8")
    LOADS.clear()
    assert load_once(model, count_loads) == "one"
    assert load_once(str(model), count_loads) == "one"
    assert len(LOADS) == 1
    model.write_text("two!", encoding="utf-8")
    st = os.stat(model)
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a retrained model at the same path
    assert load_once(model, count_loads) == "two!"
    assert len(LOADS) == 2
