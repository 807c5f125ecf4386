import gzip
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
CORPORA = REPO.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole suite (start-up costs ~10 s)."""
    from pipeline.config import SparkSettings
    from pipeline.spark import get_spark

    session = get_spark(SparkSettings(master="local[2]", driver_memory="3g", shuffle_partitions=4,
                                      app_name="tests"))
    yield session
    session.stop()


def write_jsonl(path: Path, records, gz: bool = False) -> Path:
    """Write records (dicts, or raw bytes lines) as JSONL (optionally gzip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode("utf-8") for r in records]
    data = b"".join(line + b"\n" for line in lines)
    if gz:
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def read_dir(path: Path):
    """All rows of a parquet output directory, as a list of dicts in file then row order."""
    import pyarrow.parquet as pq

    files = sorted(Path(path).glob("*.parquet"))
    rows = []
    for f in files:
        rows.extend(pq.read_table(f).to_pylist())
    return rows


# A small vocabulary cannot hold the full profile's fixed pieces (~23,400 required characters,
# 1,000 reserved tokens, HTML and punctuation pieces): tests that train one leave them out.
SMALL_VOCAB = {"required_charsets": [], "reserved_tokens": 0, "user_defined_symbols": []}
SMALL_VOCAB_SET = ["train-tokenizer.required_charsets=[]", "train-tokenizer.reserved_tokens=0",
                   "train-tokenizer.user_defined_symbols=[]"]


def small_tokenizer(texts, out_dir: Path, vocab_size: int, **settings) -> str:
    """A SentencePiece model trained on `texts` by our trainer into out_dir (a small vocabulary
    trains in seconds; SMALL_VOCAB unless `settings` say otherwise); returns the tokenizer.model path."""
    from tokenizer_training.settings import TrainerSettings
    from tokenizer_training.train import train_sentencepiece, write_sentence_file

    out_dir.mkdir(parents=True, exist_ok=True)
    write_sentence_file(list(texts), out_dir / "sentences.txt", 4192)
    return train_sentencepiece([str(out_dir / "sentences.txt")], out_dir,
                               TrainerSettings(vocab_size=vocab_size, **{**SMALL_VOCAB, **settings})).model_file
