"""Every SentencePiece setting, with Baichuan 2's values as the defaults, and the stage configs.

`TrainerSettings` holds what goes to `SentencePieceTrainer.train` (plus our own guards: the
minimum frequency of the last merges, a memory bound). `TrainTokenizerConfig` adds the sampling
(size, language mixture with code up-weighted, held-out split) and evaluation settings of the
`train-tokenizer` stage; `TokenizeConfig` is the `tokenize` stage's. All are flat dataclasses so
every key can be set from the YAML profile or `--set section.key=value`.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields

# Pieces SentencePiece itself reserves; user-defined symbols may not collide with them.
META_PIECES = ("<unk>", "<s>", "</s>")

# The user-defined pieces of Baichuan 2's released tokenizer that fit a zh/en/code corpus: HTML
# structure tags (open, close, self-closing), full-width digits (one token each, as split_digits
# does for ASCII digits), Chinese punctuation runs, Markdown fences and HTML comments. Left out on
# purpose: its single ASCII operators and punctuation ("+", "-", "=", ".", "!", "?") as pieces,
# which forbid merges such as "->", "==", ".append" and cost code compression.
HTML_TAGS = ("p", "br", "b", "strong", "img", "h1", "h2", "h3", "h4", "h5", "table", "tbody", "tr", "td", "li")
BAICHUAN2_USER_DEFINED = (
    [f"<{t}>" for t in HTML_TAGS] + [f"</{t}>" for t in HTML_TAGS] + [f"<{t}/>" for t in HTML_TAGS]
    + [chr(0xFF10 + d) for d in range(10)]
    + ["\u3002\u3002\u3002", "\u3002" * 6, "\u2026\u2026", "\u2014\u2014", "\uff01\uff01", "\uff1f\uff1f"]
    + ["```", "<!--", "-->", "<!DOCTYPE"])


@dataclass
class TrainerSettings:
    # --- the Baichuan 2 tokenizer (paper, section 2.2) ---
    model_type: str = "bpe"
    vocab_size: int = 125696
    split_digits: bool = True  # every digit is its own token
    byte_fallback: bool = True  # characters outside the vocabulary become UTF-8 byte tokens, never <unk>
    normalization_rule_name: str = "identity"  # no NFKC: the text is encoded exactly as written
    add_dummy_prefix: bool = False
    remove_extra_whitespaces: bool = False
    allow_whitespace_only_pieces: bool = True  # runs of spaces are pieces (code indentation)
    max_sentencepiece_length: int = 32  # long Chinese phrases
    character_coverage: float = 0.9999
    # special ids: <unk>=0 (also used as padding), <s>=1, </s>=2; pad_id -1 = no separate pad piece
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    # configurable special tokens: user-defined pieces are always one token, also inside text;
    # control symbols are ids only (never produced from text)
    user_defined_symbols: list = field(default_factory=lambda: list(BAICHUAN2_USER_DEFINED))
    control_symbols: list = field(default_factory=list)
    # <reserved_0> .. <reserved_{N-1}>: control symbols kept for later special use (chat roles,
    # tool calls) without retraining; as control symbols a literal "<reserved_3>" in crawled text
    # stays text (Baichuan 2 reserves 1,000, as user-defined pieces)
    reserved_tokens: int = 1000
    # whitespace-run pieces for code, added as user-defined pieces (0 = none): runs of 2..N spaces
    # and 1..M tabs. BPE also learns whitespace-only pieces itself (allow_whitespace_only_pieces).
    space_run_pieces: int = 16
    tab_run_pieces: int = 4
    # Newlines: training lines never hold one, so "\n" exists only as user-defined pieces: runs of
    # 1..N newlines, "\r\n", and (newline_indent_pieces) a newline followed by each space or tab
    # run above, so a code line's newline and indentation are one token.
    newline_pieces: int = 4
    newline_indent_pieces: bool = True
    # Coverage: every character of these sets is a single-character piece (see charsets.py; gbk =
    # all 20,902 basic CJK ideographs, big5 = Traditional, cp1252 = Western European letters and
    # typographic quotes, latin-extended = the other Latin letters, emoji), and so are the
    # characters of required_chars. [] and "" = character_coverage alone decides.
    required_charsets: list = field(default_factory=lambda: ["gbk", "big5", "cp1252", "latin-extended", "emoji"])
    required_chars: str = ""
    # SentencePiece's pre-tokenisation (its defaults, written out so they are visible)
    split_by_whitespace: bool = True
    split_by_unicode_script: bool = True
    split_by_number: bool = True
    treat_whitespace_as_suffix: bool = False
    # --- bounds on the training job ---
    max_sentence_length: int = 4192  # bytes; longer lines are split before training (never skipped)
    input_sentence_size: int = 0  # 0 = every line; else SentencePiece samples this many lines
    shuffle_input_sentence: bool = True
    num_threads: int = 0  # 0 = the machine's cores
    max_train_memory_gb: float = 16.0  # refuse to start when the estimate (~10.5 x text) is above
    train_memory_per_text_byte: float = 10.5  # measured: ~9-10 MB of RAM per MB of text (environment.md)
    seed: int = 1234  # SentencePiece's random generator (line sampling and shuffling)
    # --- is the sample big enough for the vocabulary? ---
    # The last merges of a BPE vocabulary that the sample cannot support occur 0-2 times: fail
    # with a clear error when the last logged merge occurs fewer times than this (0 = no check).
    min_last_merge_frequency: int = 3

    def resolved_threads(self) -> int:
        return self.num_threads if self.num_threads > 0 else (os.cpu_count() or 1)

    def whitespace_pieces(self) -> list[str]:
        spaces = ["\u2581" * k for k in range(2, self.space_run_pieces + 1)]
        tabs = ["\t" * k for k in range(1, self.tab_run_pieces + 1)]
        return spaces + tabs

    def newline_pieces_list(self) -> list[str]:
        if self.newline_pieces <= 0:
            return []
        runs = ["\n" * k for k in range(1, self.newline_pieces + 1)] + ["\r\n"]
        if self.newline_indent_pieces:
            indents = ["\u2581"] + self.whitespace_pieces()
            runs += ["\n" + w for w in indents]
        return runs

    def all_user_defined(self) -> list[str]:
        out, seen = [], set()
        for s in self.newline_pieces_list() + list(self.user_defined_symbols) + self.whitespace_pieces():
            if s not in seen:
                seen.add(s)
                out.append(s)
        return out

    def all_control(self) -> list[str]:
        return list(self.control_symbols) + [f"<reserved_{i}>" for i in range(self.reserved_tokens)]

    def required_chars_string(self) -> str:
        from tokenizer_training.charsets import required_characters

        return required_characters(self.required_charsets, self.required_chars,
                                   exclude=[s for s in self.all_user_defined() if len(s) == 1])

    def fixed_pieces(self) -> int:
        """Pieces that are not learned merges: meta, user-defined, control, bytes, required characters."""
        return (3 + len(self.all_user_defined()) + len(self.all_control()) + (256 if self.byte_fallback else 0)
                + len(self.required_chars_string()))

    def validate(self) -> None:
        errs = []
        if self.model_type not in ("bpe", "unigram", "char", "word"):
            errs.append(f"model_type {self.model_type!r} is not a SentencePiece model type")
        if self.vocab_size < 16:
            errs.append(f"vocab_size {self.vocab_size} is too small")
        if not 0.0 < self.character_coverage <= 1.0:
            errs.append("character_coverage must be in (0, 1]")
        if self.max_sentence_length < 64:
            errs.append("max_sentence_length must be at least 64 bytes")
        ids = [i for i in (self.unk_id, self.bos_id, self.eos_id, self.pad_id) if i >= 0]
        if len(ids) != len(set(ids)):
            errs.append("unk_id, bos_id, eos_id and pad_id must differ (pad_id -1 means pad = <unk>)")
        if self.unk_id < 0:
            errs.append("unk_id must be set (SentencePiece needs <unk>)")
        for s in list(self.user_defined_symbols) + list(self.control_symbols):
            if not isinstance(s, str) or not s:
                errs.append(f"special token {s!r} must be a non-empty string")
            elif s in META_PIECES:
                errs.append(f"special token {s!r} is already a reserved piece")
            elif " " in s:
                # SentencePiece matches user-defined pieces after turning spaces into U+2581
                errs.append(f"special token {s!r} contains a space: write it as \u2581 (U+2581)")
        if self.space_run_pieces < 0 or self.tab_run_pieces < 0 or self.newline_pieces < 0 \
                or self.reserved_tokens < 0:
            errs.append("space_run_pieces, tab_run_pieces, newline_pieces and reserved_tokens must be >= 0")
        if not errs:
            try:
                fixed = self.fixed_pieces()
            except ValueError as exc:
                errs.append(str(exc))
            else:
                if fixed >= self.vocab_size:
                    errs.append(
                        f"vocab_size {self.vocab_size:,} leaves no room for merges: {fixed:,} pieces are fixed "
                        f"({len(self.required_chars_string()):,} required characters of {self.required_charsets}, "
                        f"{self.reserved_tokens:,} reserved tokens, byte and user-defined pieces); a small "
                        f"vocabulary wants required_charsets=[] and reserved_tokens=0")
        if errs:
            raise ValueError("invalid tokenizer settings: " + "; ".join(errs))

    def spm_kwargs(self) -> dict:
        """Keyword arguments for `SentencePieceTrainer.train` (without input/model_prefix)."""
        return {
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "split_digits": self.split_digits,
            "byte_fallback": self.byte_fallback,
            "normalization_rule_name": self.normalization_rule_name,
            "add_dummy_prefix": self.add_dummy_prefix,
            "remove_extra_whitespaces": self.remove_extra_whitespaces,
            "allow_whitespace_only_pieces": self.allow_whitespace_only_pieces,
            "max_sentencepiece_length": self.max_sentencepiece_length,
            "character_coverage": self.character_coverage,
            "unk_id": self.unk_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "pad_id": self.pad_id,
            "unk_piece": self.unk_piece,
            "bos_piece": self.bos_piece,
            "eos_piece": self.eos_piece,
            "user_defined_symbols": self.all_user_defined(),
            "control_symbols": self.all_control(),
            "required_chars": self.required_chars_string(),
            "split_by_whitespace": self.split_by_whitespace,
            "split_by_unicode_script": self.split_by_unicode_script,
            "split_by_number": self.split_by_number,
            "treat_whitespace_as_suffix": self.treat_whitespace_as_suffix,
            "max_sentence_length": self.max_sentence_length,
            "input_sentence_size": self.input_sentence_size,
            "shuffle_input_sentence": self.shuffle_input_sentence,
            "num_threads": self.resolved_threads(),
            "minloglevel": 0,  # INFO: the merge log is where the last merges' frequencies come from
        }


def trainer_settings_of(cfg) -> TrainerSettings:
    """The TrainerSettings part of any dataclass that extends it."""
    names = {f.name for f in fields(TrainerSettings)}
    return TrainerSettings(**{k: v for k, v in asdict(cfg).items() if k in names})


@dataclass
class TrainTokenizerConfig(TrainerSettings):
    """`train-tokenizer` stage: sample in Spark, train SentencePiece, export, evaluate."""

    # Sample size (UTF-8 bytes of text) and mixture. Languages get shares proportional to
    # lang_weights (code up-weighted 1.5x over a zh/en balance, as Baichuan 2 adds extra code);
    # inside a language every source gets an equal share, and a source smaller than its share
    # gives all of it, the rest going to the larger sources of that language.
    sample_bytes: int = 200_000_000
    lang_weights: dict = field(default_factory=lambda: {"zh": 1.0, "en": 1.0, "code": 1.5})
    other_lang_weight: float = 0.0  # languages not in lang_weights (and null lang)
    # A language with less text than its share is repeated up to this many times (1 = never): the
    # BPE merges of a small language are not crowded out by the large ones (on ../shared/corpora,
    # zh: 34 MB after exact duplicates are dropped, 57 MB wanted)
    max_lang_repeats: float = 2.0
    balance_sources: bool = True  # False: within a language, sample proportionally to size
    drop_exact_duplicates: bool = True  # identical texts are sampled once
    sample_seed: int = 1234
    # Held-out documents (never sampled) for the evaluation, chosen by a hash of the id.
    heldout_fraction: float = 0.02
    heldout_max_bytes_per_lang: int = 2_000_000
    # Evaluation after training, with these comparison tokenizers (see evaluate.COMPARATORS).
    evaluate: bool = True
    compare: list = field(default_factory=lambda: [
        "mistral-sp-32k", "mistral-tekken-131k", "qwen2.5", "qwen3.6", "cl100k_base", "o200k_base",
        "deepseek-v3"])
    # Baichuan 2's released tokenizer, evaluated beside ours as "baichuan2 (released)"; a relative
    # path is tried from the working directory, then from the repository root; absent = row skipped
    reference_tokenizer: str = "../shared/reference/baichuan2-tokenizer/tokenizer.model"
    keep_sentence_files: bool = False
    export_hf: bool = True


@dataclass
class TokenizeConfig:
    """`tokenize` stage: SentencePiece ids in Spark -> Megatron .bin/.idx shards + parquet."""

    tokenizer: str = ""  # path to tokenizer.model (or a train-tokenizer output directory)
    append_eos: bool = True  # </s> after every document
    shard_size_tokens: int = 250_000_000  # target tokens per .bin/.idx pair (shards are hash buckets)
    shuffle: bool = True  # seeded document order inside the shards (False: corpus order)
    seed: int = 1234
    honour_repeats: bool = True  # a `repeats` column (from sampling) writes a document that many times
    encode_threads: int = 1  # SentencePiece threads per Spark task (tasks already use every core)
    batch_docs: int = 256  # documents per SentencePiece batch call
