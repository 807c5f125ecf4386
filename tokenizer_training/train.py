"""Train SentencePiece from sentence files, with nothing skipped silently.

SentencePiece reads one sentence per line, skips lines longer than `max_sentence_length` bytes
and lines containing U+2581 (its whitespace meta symbol), and reaches any vocabulary size by
merging pairs that occur zero times. So:

- documents are split into lines here (`document_lines`): at newlines, then long lines at a
  space (or any character boundary) so no line exceeds `max_sentence_length` bytes; lines with
  U+2581 are left out and counted, empty lines are dropped and counted (they hold no text);
- training runs in a child process (`python -m tokenizer_training.train`) so SentencePiece's log
  can be read (its merge log gives the frequency of the last merges) and its peak memory measured,
  and so a fatal error in the C++ code cannot take the caller down;
- the result says how often the last merges occur, and `SampleTooSmall` is raised when that is
  below `min_last_merge_frequency` or SentencePiece refuses the vocabulary size.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tokenizer_training.settings import TrainerSettings

META_SYMBOL = "\u2581"


class TrainingError(RuntimeError):
    """SentencePiece failed, or its result is not usable."""


class SampleTooSmall(TrainingError):
    """The sample cannot support the requested vocabulary size."""


@dataclass
class LineStats:
    documents: int = 0
    lines: int = 0  # lines written
    bytes: int = 0  # UTF-8 bytes written (without newlines)
    chars: int = 0
    empty_lines: int = 0  # dropped: they hold no text
    split_lines: int = 0  # lines over max_sentence_length split into pieces
    extra_lines_from_splits: int = 0
    meta_symbol_lines: int = 0  # lines with U+2581, left out (SentencePiece would skip them)
    meta_symbol_bytes: int = 0

    def add(self, other: "LineStats") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        return asdict(self)


def _split_long(line: str, max_bytes: int) -> list[str]:
    """Split a line into pieces of at most max_bytes UTF-8 bytes, at the last space if one is in
    the second half of the window, else at a character boundary. Concatenated they are the line."""
    out = []
    data = line.encode("utf-8")
    start = 0
    while len(data) - start > max_bytes:
        end = start + max_bytes
        while end > start and (data[end] & 0xC0) == 0x80:  # back up to a character boundary
            end -= 1
        cut = data.rfind(b" ", start + max_bytes // 2, end)
        if cut > start:
            end = cut + 1  # keep the space with the left piece
        out.append(data[start:end].decode("utf-8"))
        start = end
    out.append(data[start:].decode("utf-8"))
    return out


def document_lines(text: str, max_bytes: int, stats: LineStats | None = None) -> list[str]:
    """The training lines of one document (no newline characters in them)."""
    st = stats if stats is not None else LineStats()
    st.documents += 1
    out = []
    for line in text.split("\n"):
        if not line:
            st.empty_lines += 1
            continue
        if META_SYMBOL in line:
            st.meta_symbol_lines += 1
            st.meta_symbol_bytes += len(line.encode("utf-8"))
            continue
        n = len(line.encode("utf-8"))
        pieces = [line] if n <= max_bytes else _split_long(line, max_bytes)
        if len(pieces) > 1:
            st.split_lines += 1
            st.extra_lines_from_splits += len(pieces) - 1
        for p in pieces:
            out.append(p)
            st.lines += 1
            st.bytes += len(p.encode("utf-8"))
            st.chars += len(p)
    return out


def write_sentence_file(texts, path: str | os.PathLike, max_bytes: int) -> LineStats:
    """Write the training lines of `texts` to one file; returns what was written and left out."""
    st = LineStats()
    tmp = str(path) + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for text in texts:
            lines = document_lines(text, max_bytes, st)
            if lines:
                f.write("\n".join(lines))
                f.write("\n")
    os.replace(tmp, path)
    return st


# ------------------------------------------------------------------------------------------
# Training (in a child process)

MERGE_RE = re.compile(r"Merged: freq=(\d+) merges=(\d+) piece=(.*)$")
COMPLETED_RE = re.compile(r"Completed (\d+) merge steps")
LOADED_RE = re.compile(r"Loaded all (\d+) sentences")
SKIPPED_RE = re.compile(r"Skipped (\d+) too long sentences")
SAMPLED_RE = re.compile(r"Sampled (\d+) sentences from (\d+) sentences")
ALPHABET_RE = re.compile(r"Alphabet size=(\d+)")


@dataclass
class TrainResult:
    model_file: str
    vocab_size: int
    wall_s: float
    peak_rss_mb: float
    input_bytes: int
    input_lines: int
    sentences_loaded: int | None = None
    sentences_sampled: int | None = None
    sentences_skipped_too_long: int = 0
    alphabet_size: int | None = None
    merge_steps: int | None = None
    # SentencePiece logs every 100th merge with its frequency: the last logged one is at most 99
    # merges before the end (last_logged_merge_index of merge_steps)
    last_merge_frequency: int | None = None
    last_logged_merge_index: int | None = None
    last_merges: list = field(default_factory=list)  # [[merges, freq, piece], ...] last logged
    min_frequency_last_1000_merges: int | None = None
    merges_with_frequency_below_min: int = 0  # logged merges under min_last_merge_frequency (x100)
    log_file: str = ""
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def parse_log(text: str) -> dict:
    merges = []
    out: dict = {}
    for line in text.splitlines():
        m = MERGE_RE.search(line)
        if m:
            merges.append((int(m.group(2)), int(m.group(1)), m.group(3)))
            continue
        for key, rx in (("merge_steps", COMPLETED_RE), ("sentences_loaded", LOADED_RE),
                        ("sentences_skipped_too_long", SKIPPED_RE), ("alphabet_size", ALPHABET_RE)):
            m = rx.search(line)
            if m:
                out[key] = int(m.group(1))
        m = SAMPLED_RE.search(line)
        if m:
            out["sentences_sampled"] = int(m.group(1))
    out["merges"] = merges
    return out


def _worker_main(spec_path: str) -> int:
    """Child process: train, then write peak memory next to the model."""
    import resource

    import sentencepiece as spm

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    spm.set_random_generator_seed(int(spec["seed"]))
    t0 = time.time()
    try:
        spm.SentencePieceTrainer.train(input=spec["input"], model_prefix=spec["model_prefix"], **spec["kwargs"])
    except Exception as exc:  # noqa: BLE001 - reported to the parent as text
        Path(spec["result"]).write_text(json.dumps({"ok": False, "error": str(exc)}), encoding="utf-8")
        return 1
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(spec["result"]).write_text(json.dumps(
        {"ok": True, "wall_s": time.time() - t0, "peak_rss_mb": peak_kb / 1024.0}), encoding="utf-8")
    return 0


def estimate_memory_gb(input_bytes: int, input_lines: int, settings: TrainerSettings) -> float:
    loaded = input_bytes
    if settings.input_sentence_size and input_lines > settings.input_sentence_size:
        loaded = input_bytes * settings.input_sentence_size / input_lines
    return loaded * settings.train_memory_per_text_byte / 1e9


def train_sentencepiece(sentence_files: list[str], out_dir: str | os.PathLike, settings: TrainerSettings,
                        *, model_name: str = "tokenizer", log=print) -> TrainResult:
    """Train on sentence files (one training line per line) into OUT/<model_name>.model/.vocab.

    Raises SampleTooSmall when the text cannot support the vocabulary, TrainingError when
    SentencePiece fails or the memory bound would be exceeded.
    """
    settings.validate()
    files = [str(Path(f).resolve()) for f in sentence_files]
    if not files:
        raise SampleTooSmall("no sentence files to train on: the sample is empty")
    for f in files:
        if "," in f:
            raise TrainingError(f"sentence file path contains a comma (SentencePiece splits on it): {f}")
    input_bytes = sum(os.path.getsize(f) for f in files)
    input_lines = 0
    for f in files:
        with open(f, "rb") as fh:
            input_lines += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 22), b""))
    if input_lines == 0:
        raise SampleTooSmall("the sentence files hold no lines: the sample is empty")
    est = estimate_memory_gb(input_bytes, input_lines, settings)
    if est > settings.max_train_memory_gb:
        raise TrainingError(
            f"training on {input_bytes / 1e6:.1f} MB ({input_lines:,} lines) needs about {est:.1f} GB "
            f"(~{settings.train_memory_per_text_byte:g} x the text), over max_train_memory_gb="
            f"{settings.max_train_memory_gb:g}: lower the sample size or set input_sentence_size "
            f"(e.g. {int(input_lines * settings.max_train_memory_gb / est):,} lines)")
    out = Path(out_dir).resolve()  # the child process runs inside the work directory
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".{model_name}.training"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    # The trainer spec stored inside the model records the input names and the model prefix: give
    # SentencePiece fixed relative names (links in the work directory, run from there) so the same
    # text and settings give a byte-identical model wherever the files live.
    names = []
    for k, f in enumerate(files):
        link = work / f"input-{k:05d}.txt"
        os.symlink(f, link)
        names.append(link.name)
    spec = {
        "input": ",".join(names),
        "model_prefix": model_name,
        "kwargs": settings.spm_kwargs(),
        "seed": settings.seed,
        "result": str(work / "result.json"),
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    log_path = out / f"{model_name}.train.log"
    log(f"training SentencePiece {settings.model_type} vocab {settings.vocab_size:,} on "
        f"{input_bytes / 1e6:.1f} MB, {input_lines:,} lines, {settings.resolved_threads()} threads "
        f"(estimated peak {est:.2f} GB)")
    t0 = time.time()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")] if p)
    with open(log_path, "wb") as logf:
        proc = subprocess.run([sys.executable, "-m", "tokenizer_training.train", str(spec_path)],
                              stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=str(work))
    wall = time.time() - t0
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    try:
        result = json.loads(Path(spec["result"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = {"ok": False, "error": f"trainer exited with code {proc.returncode}; last log lines:\n"
                  + "\n".join(log_text.splitlines()[-5:])}
    if not result.get("ok"):
        shutil.rmtree(work, ignore_errors=True)
        err = result.get("error", "")
        if "Vocabulary size is smaller than required_chars" in err or "Vocabulary size too high" in err \
                or "vocab_size" in err.lower():
            raise SampleTooSmall(f"SentencePiece cannot build vocab_size={settings.vocab_size:,} from this "
                                 f"sample ({input_bytes / 1e6:.1f} MB): {err.strip()}")
        raise TrainingError(f"SentencePiece training failed: {err.strip()} (log: {log_path})")
    parsed = parse_log(log_text)
    merges = parsed.pop("merges")
    final_model = out / f"{model_name}.model"
    os.replace(work / f"{model_name}.model", final_model)
    if (work / f"{model_name}.vocab").exists():
        os.replace(work / f"{model_name}.vocab", out / f"{model_name}.vocab")
    shutil.rmtree(work, ignore_errors=True)
    res = TrainResult(
        model_file=str(final_model), vocab_size=settings.vocab_size, wall_s=round(wall, 2),
        peak_rss_mb=round(result["peak_rss_mb"], 1), input_bytes=input_bytes, input_lines=input_lines,
        log_file=str(log_path), settings=asdict(settings), **parsed)
    if merges:
        total = merges[-1][0]
        res.last_merge_frequency = merges[-1][1]
        res.last_logged_merge_index = merges[-1][0]
        res.last_merges = [list(m) for m in merges[-5:]]
        tail = [f for n, f, _ in merges if n > total - 1000]
        res.min_frequency_last_1000_merges = min(tail) if tail else None
        k = settings.min_last_merge_frequency
        res.merges_with_frequency_below_min = 100 * sum(1 for _, f, _ in merges if f < k)
    log(f"trained in {wall:.1f}s, peak {res.peak_rss_mb:,.0f} MB; the last logged merge (#"
        f"{res.last_logged_merge_index} of {res.merge_steps}) occurs {res.last_merge_frequency} times "
        f"(min over the last 1000 merges logged: {res.min_frequency_last_1000_merges})")
    if settings.model_type == "bpe" and settings.min_last_merge_frequency > 0:
        if res.last_merge_frequency is None:
            raise TrainingError(f"no merge log in {log_path}: cannot tell how often the last merges occur")
        if res.last_merge_frequency < settings.min_last_merge_frequency:
            final_model.unlink(missing_ok=True)
            raise SampleTooSmall(
                f"the sample ({input_bytes / 1e6:.1f} MB, {input_lines:,} lines) cannot support "
                f"vocab_size={settings.vocab_size:,}: the last merges occur only {res.last_merge_frequency} "
                f"time(s) (< min_last_merge_frequency={settings.min_last_merge_frequency}); about "
                f"{res.merges_with_frequency_below_min:,} merges are that rare. Use a larger sample "
                f"(sample_bytes) or a smaller vocab_size.")
    return res


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1]))
