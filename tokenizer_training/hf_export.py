"""Hugging Face export: `tokenizer_config.json` + `special_tokens_map.json` beside tokenizer.model.

`AutoTokenizer.from_pretrained(dir)` then loads it with transformers' SentencePiece backend
(`SentencePieceBackend`, the slow path that calls SentencePiece itself: no conversion to a
`tokenizers` BPE, no remote code), and `tok.encode(text, add_special_tokens=False)` gives the
ids SentencePiece gives. `legacy: true` keeps transformers from rewriting the model's
normaliser (its non-legacy path toggles add_dummy_prefix and prepends `<unk>` tricks).
add_bos_token / add_eos_token are false by default: the pipeline appends </s> itself, and this
way `tok(text).input_ids` equals `sp.encode(text)`.

Known, documented differences from SentencePiece (both come from transformers' generic code):
- a special-token string written literally in the text ("<s>", "</s>", "<unk>") becomes that
  special id in transformers, while SentencePiece encodes the characters;
- `tok.decode` strips leading/trailing spaces (convert_tokens_to_string); use
  `tok.sp_model.decode` (or SentencePiece) for an exact round trip.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

TOKENIZER_CLASS = "SentencePieceBackend"


def export_tokenizer_hf(model_file: str | os.PathLike, out_dir: str | os.PathLike, *,
                        model_max_length: int = 4096, add_bos_token: bool = False,
                        add_eos_token: bool = False) -> list[str]:
    """Write tokenizer.model (copied if elsewhere), tokenizer_config.json, special_tokens_map.json;
    returns their paths.

    The tokenizer files only: model.hf_export.export_model_hf writes a model's weights and config.
    """
    import sentencepiece as spm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "tokenizer.model"
    if Path(model_file).resolve() != target.resolve():
        shutil.copyfile(model_file, target)
    sp = spm.SentencePieceProcessor(model_file=str(target))
    unk = sp.id_to_piece(sp.unk_id())
    bos = sp.id_to_piece(sp.bos_id()) if sp.bos_id() >= 0 else None
    eos = sp.id_to_piece(sp.eos_id()) if sp.eos_id() >= 0 else None
    pad = sp.id_to_piece(sp.pad_id()) if sp.pad_id() >= 0 else unk  # pad = <unk> (id 0)
    special = {"unk_token": unk, "bos_token": bos, "eos_token": eos, "pad_token": pad}
    special = {k: v for k, v in special.items() if v is not None}

    def token(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": False,
                "rstrip": False, "single_word": False, "special": True}

    added = {}
    for i in sorted({sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()} - {-1}):
        added[str(i)] = {k: v for k, v in token(sp.id_to_piece(i)).items() if k != "__type"}
    config = {
        "tokenizer_class": TOKENIZER_CLASS,
        "backend": "sentencepiece",
        "vocab_file": "tokenizer.model",
        "legacy": True,
        "add_bos_token": add_bos_token,
        "add_eos_token": add_eos_token,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "sp_model_kwargs": {},
        "padding_side": "right",
        "added_tokens_decoder": added,
        **{k: token(v) for k, v in special.items()},
    }
    files = []
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json",
                                                          {k: token(v) for k, v in special.items()})):
        p = out / name
        tmp = out / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, p)
        files.append(str(p))
    return [str(target)] + files


def load_tokenizer_hf(out_dir: str | os.PathLike):
    """AutoTokenizer on the exported directory, offline, without remote code."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True, trust_remote_code=False)


def check_hf_ids(out_dir: str | os.PathLike, texts: list[str]) -> dict:
    """Load with AutoTokenizer and compare ids with SentencePiece on `texts`."""
    import sentencepiece as spm

    from transformers.utils import logging as hf_logging

    tok = load_tokenizer_hf(out_dir)
    sp = spm.SentencePieceProcessor(model_file=str(Path(out_dir) / "tokenizer.model"))
    mismatches = []
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "sequence longer than model_max_length" is expected here
    try:
        for i, t in enumerate(texts):
            if tok.encode(t, add_special_tokens=False) != sp.encode(t):
                mismatches.append(i)
    finally:
        hf_logging.set_verbosity(level)
    return {"class": type(tok).__name__, "documents": len(texts), "same_ids": len(texts) - len(mismatches),
            "mismatched_documents": mismatches[:20], "vocab_size": len(tok)}
