"""Hugging Face tokenizer files for a trained model, and the check that they match SentencePiece.

The conversion itself (`export_tokenizer_hf`: tokenizer.json + tokenizer_config.json, exact against
SentencePiece) lives in the core, `pipeline/hf_tokenizer.py`, because the model export writes the
same files. Here: loading the directory as a user would (AutoTokenizer, no remote code) and
comparing ids and decodes with SentencePiece on held-out text.
"""
from __future__ import annotations

import os
from pathlib import Path

from pipeline.hf_tokenizer import TOKENIZER_CLASS, UnsupportedModel, export_tokenizer_hf  # noqa: F401


def load_tokenizer_hf(out_dir: str | os.PathLike):
    """AutoTokenizer on the exported directory, offline, without remote code."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True, trust_remote_code=False)


def check_hf_ids(out_dir: str | os.PathLike, texts: list[str]) -> dict:
    """Load with AutoTokenizer; compare ids with SentencePiece and decode with the text."""
    import sentencepiece as spm

    from transformers.utils import logging as hf_logging

    tok = load_tokenizer_hf(out_dir)
    sp = spm.SentencePieceProcessor(model_file=str(Path(out_dir) / "tokenizer.model"))
    id_mismatches, decode_mismatches = [], []
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "sequence longer than model_max_length" is expected here
    try:
        for i, t in enumerate(texts):
            ids = tok.encode(t, add_special_tokens=False)
            if ids != sp.encode(t):
                id_mismatches.append(i)
            if tok.decode(ids) != t:
                decode_mismatches.append(i)
    finally:
        hf_logging.set_verbosity(level)
    return {"class": type(tok).__name__, "documents": len(texts), "same_ids": len(texts) - len(id_mismatches),
            "exact_decode": len(texts) - len(decode_mismatches), "mismatched_ids": id_mismatches[:20],
            "mismatched_decode": decode_mismatches[:20], "vocab_size": len(tok)}
