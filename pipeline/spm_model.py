"""Read a SentencePiece `.model` file without protobuf: its pieces (text, score, type) and the
trainer and normaliser settings stored in it.

The Python `sentencepiece` package encodes and decodes but does not say which pieces are
user-defined, nor what the normaliser does; both decide how a model converts to a Hugging Face
fast tokenizer (`hf_tokenizer.py`). The file is a `ModelProto` message (sentencepiece_model.proto);
only the fields below are read, every other field is skipped by its wire type, so newer files
still parse.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

# SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}

# field number -> (name, kind) of the messages read here
_PIECE_FIELDS = {1: ("piece", "str"), 2: ("score", "float"), 3: ("type", "int")}
_TRAINER_FIELDS = {3: ("model_type", "int"), 4: ("vocab_size", "int"), 10: ("character_coverage", "float"),
                   18: ("max_sentence_length", "int"), 20: ("max_sentencepiece_length", "int"),
                   25: ("split_digits", "bool"), 26: ("allow_whitespace_only_pieces", "bool"),
                   24: ("treat_whitespace_as_suffix", "bool"), 35: ("byte_fallback", "bool"),
                   36: ("required_chars", "str"), 40: ("unk_id", "int"), 41: ("bos_id", "int"),
                   42: ("eos_id", "int"), 43: ("pad_id", "int")}
_NORMALIZER_FIELDS = {1: ("name", "str"), 2: ("precompiled_charsmap", "bytes"), 3: ("add_dummy_prefix", "bool"),
                      4: ("remove_extra_whitespaces", "bool"), 5: ("escape_whitespaces", "bool")}


@dataclass
class Piece:
    piece: str
    score: float = 0.0
    type: int = NORMAL


@dataclass
class SpmModel:
    pieces: list[Piece]
    trainer: dict = field(default_factory=dict)
    normalizer: dict = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return MODEL_TYPES.get(self.trainer.get("model_type", 1), "unknown")

    @property
    def byte_fallback(self) -> bool:
        return bool(self.trainer.get("byte_fallback", False))

    @property
    def add_dummy_prefix(self) -> bool:
        return bool(self.normalizer.get("add_dummy_prefix", True))  # proto default: true

    @property
    def escape_whitespaces(self) -> bool:
        return bool(self.normalizer.get("escape_whitespaces", True))

    @property
    def remove_extra_whitespaces(self) -> bool:
        return bool(self.normalizer.get("remove_extra_whitespaces", True))

    @property
    def identity_normalizer(self) -> bool:
        """True when the normaliser maps no character (only whitespace escaping is left)."""
        return not self.normalizer.get("precompiled_charsmap") and \
            self.normalizer.get("name", "identity") == "identity"

    def ids_of_type(self, kind: int) -> list[int]:
        return [i for i, p in enumerate(self.pieces) if p.type == kind]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of one message; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {num}): not a SentencePiece model?")
        yield num, wire, value


def _message(buf: bytes, spec: dict) -> dict:
    out: dict = {}
    for num, _wire, value in _fields(buf):
        if num not in spec:
            continue
        name, kind = spec[num]
        if kind == "str":
            out[name] = value.decode("utf-8")
        elif kind == "bytes":
            out[name] = bytes(value)
        elif kind == "float":
            out[name] = struct.unpack("<f", value)[0]
        elif kind == "bool":
            out[name] = bool(value)
        else:  # int32 fields are sign-extended to 64 bits on the wire (pad_id = -1)
            out[name] = value - (1 << 64) if value >= 1 << 63 else value
    return out


def parse_model(data: bytes) -> SpmModel:
    pieces, trainer, normalizer = [], {}, {}
    for num, wire, value in _fields(data):
        if wire != 2:
            continue
        if num == 1:
            p = _message(value, _PIECE_FIELDS)
            pieces.append(Piece(p.get("piece", ""), p.get("score", 0.0), p.get("type", NORMAL)))
        elif num == 2:
            trainer = _message(value, _TRAINER_FIELDS)
        elif num == 3:
            normalizer = _message(value, _NORMALIZER_FIELDS)
    if not pieces:
        raise ValueError("no pieces: not a SentencePiece model file")
    return SpmModel(pieces, trainer, normalizer)


def read_model(path) -> SpmModel:
    return parse_model(Path(path).read_bytes())
