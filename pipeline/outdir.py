"""A stage's output directory: where it may be, who may write it, and how it is published.

  check_output_path  the output is not a file, not the input or inside it, and not holding it:
                     a second run would read its own output as input.
  output_lock        one run at a time per output: `.NAME.lock` beside it (flock), taken before
                     anything is written; a second run gets one `error:` line, never a race on
                     the work directory.
  claim_output       a complete output for the same input and config is a no-op; otherwise a
                     fresh hidden work directory `.NAME.incomplete` (left by a killed run: removed).
  publish            the finished work directory renamed into place (atomic on one filesystem).
Problems a user can fix (permissions, a file in the way) are UserErrors: one line, exit code 2.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import UserError

MANIFEST = "_manifest.json"


def check_output_path(out: Path, inputs) -> None:
    root = Path(inputs.root)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory; choose another --output")
    if out == root or root.is_relative_to(out) or any(Path(f.path).is_relative_to(out) for f in inputs.files):
        raise UserError(f"output {out} would contain the input; choose another output directory")
    if Path(os.path.abspath(inputs.spec)).is_dir() and out.is_relative_to(root):
        raise UserError(f"output {out} is inside the input directory {root}: a later run would read it as "
                        "input; choose an output outside it")


def _writable_parent(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output's parent directory {out.parent}: {exc.strerror}") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write output {out}: its parent directory {out.parent} is not writable")


@contextmanager
def output_lock(out: Path):
    """Hold `.NAME.lock` (flock, exclusive) beside `out` for the run; removed when it ends."""
    _writable_parent(out)
    lock = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or immutable parent, even for root
            raise UserError(f"cannot write output {out}: {exc.strerror} in {out.parent}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"another run is writing output {out} (it holds {lock}); wait for it to end "
                            "or choose another --output") from None
        try:  # the holder before us may have removed the file between our open and our lock
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def claim_output(name: str, out: Path, fingerprint: dict, *, overwrite: bool, replace_stale: bool):
    """(manifest of a complete matching output, None) or (None, a fresh hidden work directory)."""
    if out.exists():
        previous = read_manifest(out)
        if previous and previous.get("fingerprint") == fingerprint and not overwrite:
            print(f"[{name}] {out} is already complete for this input and config: nothing to do", flush=True)
            return previous, None
        if not (overwrite or replace_stale):
            raise UserError(f"output {out} already exists (from another input or config); "
                            "pass --overwrite to replace it or choose another --output")
    work = work_dir(out)
    if work.exists():
        print(f"[{name}] removing the incomplete output of an interrupted run: {work}", flush=True)
        shutil.rmtree(work)
    try:
        work.mkdir()
    except OSError as exc:
        raise UserError(f"cannot create {work}: {exc.strerror}") from None
    return None, work


def work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.incomplete"


def publish(work: Path, out: Path) -> None:
    """Swap the finished directory into place with renames (atomic on one filesystem)."""
    old = out.parent / f".{out.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.rename(out, old)
    os.rename(work, out)
    if old.exists():
        shutil.rmtree(old)
