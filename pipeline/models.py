"""The one way to ship a model file to the workers: a tokenizer today, language-id, quality and
embedding models next.

`ship(spark, path)` on the driver: checks the file, takes its sha256 (the stage's re-run
fingerprint: a model retrained at the same path must not pass for the old one) and, on a cluster,
sends it to every executor with SparkContext.addFile. `locate(path)` on a worker: the file itself
where the driver's path is visible (local mode, a shared filesystem), else the shipped copy.
`load_once(path, loader)`: the loaded model, once per Python worker process (workers are reused
across tasks), keyed by the file's path, size and mtime.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.hashing import file_sha256

_LOADED: dict = {}  # (loader, path, size, mtime_ns) -> model


@dataclass(frozen=True)
class ShippedModel:
    path: str  # absolute path on the driver
    sha256: str

    @property
    def name(self) -> str:
        return Path(self.path).name


def ship(spark, path: str | os.PathLike) -> ShippedModel:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    shipped = ShippedModel(str(p.resolve()), file_sha256(p))
    if not spark.sparkContext.master.startswith("local"):
        spark.sparkContext.addFile(shipped.path)
    return shipped


def locate(path: str | os.PathLike) -> str:
    """The model file's path in this process: the file if it is here, else the shipped copy."""
    p = Path(path)
    if p.is_file():
        return str(p.resolve())
    try:
        from pyspark import SparkFiles

        copy = Path(SparkFiles.get(p.name))
        if copy.is_file():
            return str(copy)
    except Exception:  # noqa: BLE001 - not in a Spark worker
        pass
    raise FileNotFoundError(f"model file not found: {path}")


def load_once(path: str | os.PathLike, loader):
    """loader(real path), called once per process for each (loader, file version)."""
    real = locate(path)
    st = os.stat(real)
    key = (getattr(loader, "__qualname__", repr(loader)), real, st.st_size, st.st_mtime_ns)
    model = _LOADED.get(key)
    if model is None:
        stale = [k for k in _LOADED if k[:2] == key[:2]]
        for k in stale:  # a newer version of the same file replaces the old one
            del _LOADED[k]
        model = _LOADED[key] = loader(real)
    return model
