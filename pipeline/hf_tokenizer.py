"""Hugging Face export: a fast tokenizer (`tokenizer.json`) that encodes to SentencePiece's ids and
decodes every text back exactly, beside `tokenizer.model`, loadable with no remote code by every
transformers version since 4.3x (`tokenizer_class: PreTrainedTokenizerFast`).

Why a conversion of our own: transformers' SentencePiece backend strips leading whitespace and
prints byte pieces literally in `decode`, exists only in 5.x, and Baichuan's own
`tokenization_baichuan.py` stops working after 4.33. A `tokenizers` BPE reproduces SentencePiece's
BPE exactly when it is given the same pieces and the same rules:

- normaliser: `" "` -> `"▁"` only (the models here use identity normalisation, no dummy prefix, no
  whitespace collapsing; anything else is refused, not approximated);
- no pre-tokeniser: SentencePiece's BPE merges over the whole text (its word splitting is a
  training-time rule only);
- merges: every split `left + right` of a normal piece whose halves are normal pieces, ranked by
  the piece's score (SentencePiece merges the adjacent pair whose union scores highest);
- user-defined pieces (`"\n"`, whitespace runs, HTML tags, ...) are added tokens matched
  leftmost-longest on the normalised text, as SentencePiece's prefix matcher freezes them before
  merging; control pieces (`<s>`, `</s>`, reserved tokens) and `<unk>` are special added tokens;
- byte fallback on, and the decoder `"▁"` -> `" "`, byte pieces -> bytes, fuse: nothing stripped.

Differences left (documented, tested): SentencePiece cannot round-trip U+2581 itself (it is the
space symbol, in any SentencePiece model); a literal special-token string in the text ("</s>")
becomes that special id in transformers unless `split_special_tokens` is honoured (it is set).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pipeline.spm_model import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED, SpmModel, read_model

TOKENIZER_CLASS = "PreTrainedTokenizerFast"
SPACE = "\u2581"


class UnsupportedModel(ValueError):
    """A SentencePiece model that a `tokenizers` BPE cannot reproduce exactly."""


def check_convertible(model: SpmModel) -> None:
    problems = []
    if model.model_type != "bpe":
        problems.append(f"model type {model.model_type} (only BPE converts exactly)")
    if not model.identity_normalizer:
        problems.append(f"normalisation {model.normalizer.get('name')!r} (only identity converts exactly)")
    if model.add_dummy_prefix:
        problems.append("add_dummy_prefix")
    if model.remove_extra_whitespaces:
        problems.append("remove_extra_whitespaces")
    if not model.escape_whitespaces:
        problems.append("escape_whitespaces off")
    if model.trainer.get("treat_whitespace_as_suffix"):
        problems.append("treat_whitespace_as_suffix")
    if problems:
        raise UnsupportedModel("cannot export an exact fast tokenizer for this SentencePiece model: "
                               + ", ".join(problems))


def bpe_merges(model: SpmModel) -> list[tuple[str, str]]:
    """Every (left, right) pair of normal pieces whose concatenation is a normal piece, in the order
    SentencePiece prefers them: higher score of the merged piece first, then lower id."""
    normal = {p.piece: i for i, p in enumerate(model.pieces) if p.type == NORMAL}
    ranked = []
    for piece, i in normal.items():
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in normal and right in normal:
                ranked.append((-model.pieces[i].score, i, k, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _added(i: int, content: str, special: bool) -> dict:
    # Special pieces are matched on the raw text; user-defined ones on the normalised text, as
    # SentencePiece matches them after escaping spaces ("▁▁" pieces).
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special, "special": special}


def fast_tokenizer(model: SpmModel) -> dict:
    """The `tokenizer.json` document for `tokenizers.Tokenizer.from_str`."""
    check_convertible(model)
    merges = bpe_merges(model)
    if any(" " in left or " " in right for left, right in merges):
        raise UnsupportedModel("a piece contains a raw space: merges cannot be written as 'left right'")
    added = [_added(i, p.piece, p.type != USER_DEFINED) for i, p in enumerate(model.pieces)
             if p.type in (UNKNOWN, CONTROL, USER_DEFINED)]
    unk = next((p.piece for p in model.pieces if p.type == UNKNOWN), None)
    replace = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
    decoders = [{"type": "Replace", "pattern": {"String": SPACE}, "content": " "}]
    if any(p.type == BYTE for p in model.pieces):
        decoders.append({"type": "ByteFallback"})
    decoders.append({"type": "Fuse"})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": replace,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": model.byte_fallback,
                  "vocab": {p.piece: i for i, p in enumerate(model.pieces)},
                  # "left right" strings: the one merges format every tokenizers release reads
                  "merges": [f"{left} {right}" for left, right in merges]},
    }


def _special_names(model: SpmModel) -> dict:
    t = model.trainer
    def piece(key, default):
        i = t.get(key, default)
        return model.pieces[i].piece if 0 <= i < len(model.pieces) else None
    unk = piece("unk_id", 0)
    names = {"unk_token": unk, "bos_token": piece("bos_id", 1), "eos_token": piece("eos_id", 2),
             "pad_token": piece("pad_id", -1) or unk}  # pad = <unk> (id 0) when the model has no pad
    return {k: v for k, v in names.items() if v is not None}


def _write_json(path: Path, obj: dict) -> str:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return str(path)


def export_tokenizer_hf(model_file: str | os.PathLike, out_dir: str | os.PathLike, *,
                        model_max_length: int = 4096, add_bos_token: bool = False,
                        add_eos_token: bool = False) -> list[str]:
    """Write tokenizer.model (copied if elsewhere), tokenizer.json, tokenizer_config.json and
    special_tokens_map.json into `out_dir`; returns their paths.

    `add_bos_token` / `add_eos_token` go into tokenizer.json's post-processor (default off: the
    pipeline appends </s> itself, and `tok(text).input_ids` then equals `sp.encode(text)`).
    The tokenizer files only; the train-tokenizer stage and the model export (model.hf_export) both
    write them through this function.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "tokenizer.model"
    if Path(model_file).resolve() != target.resolve():
        shutil.copyfile(model_file, target)
    model = read_model(target)
    doc = fast_tokenizer(model)
    special = _special_names(model)
    if add_bos_token or add_eos_token:
        doc["post_processor"] = _template(model, special, add_bos_token, add_eos_token)
    decoder = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in doc["added_tokens"]
               if t["special"]}
    config = {
        "tokenizer_class": TOKENIZER_CLASS,
        "model_max_length": model_max_length,
        "add_bos_token": add_bos_token,
        "add_eos_token": add_eos_token,
        "clean_up_tokenization_spaces": False,
        # a literal "</s>" in the text stays text, as in SentencePiece (where transformers honours it)
        "split_special_tokens": True,
        "padding_side": "right",
        "added_tokens_decoder": decoder,
        **special,
    }
    files = [str(target), _write_json(out / "tokenizer.json", doc),
             _write_json(out / "tokenizer_config.json", config),
             _write_json(out / "special_tokens_map.json", special)]
    return files


def _template(model: SpmModel, special: dict, bos: bool, eos: bool) -> dict:
    ids = {p.piece: i for i, p in enumerate(model.pieces)}
    single = ([{"SpecialToken": {"id": special["bos_token"], "type_id": 0}}] if bos else []) + \
        [{"Sequence": {"id": "A", "type_id": 0}}] + \
        ([{"SpecialToken": {"id": special["eos_token"], "type_id": 0}}] if eos else [])
    pair = single + [x if "SpecialToken" in x else {"Sequence": {"id": "B", "type_id": 0}} for x in single]
    tokens = {special[k]: {"id": special[k], "ids": [ids[special[k]]], "tokens": [special[k]]}
              for k, on in (("bos_token", bos), ("eos_token", eos)) if on}
    return {"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": tokens}
