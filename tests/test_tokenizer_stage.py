"""The `train-tokenizer` stage in Spark: balanced seeded sample, training, HF export, evaluation
with round trip on held-out documents, outputs under the stage contract; CLI registration."""
import gzip
import itertools
import json

import pytest
import sentencepiece as spm

from conftest import CORPORA, SMALL_VOCAB_SET, read_dir, write_jsonl
from pipeline.config import load_profile
from pipeline.errors import UserError
from pipeline.stage import run_stage
from tokenizer_training.stage import TRAIN_TOKENIZER_STAGE

FILES = {  # file -> docs taken (texts cut to 3,000 characters: many small documents per source)
    "zh_news_peoples_daily_1998": 300, "zh_reviews_hotel_shopping": 1500,
    "en_fortunes": 1200, "en_brown_corpus": 60,
    "code_c_cpp_headers": 200, "code_python_stdlib_5versions": 200,
}


def fixture_docs():
    out = []
    for name, n in FILES.items():
        with gzip.open(CORPORA / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in itertools.islice(f, n):
                d = json.loads(line)
                out.append({"id": d["id"], "text": d["text"][:3000], "source": d["source"], "lang": d["lang"]})
    return out


SAMPLE_BYTES = 900_000


def profile(*extra):
    return load_profile(None, [
        "write.files_per_output=1", "train-tokenizer.vocab_size=4000", *SMALL_VOCAB_SET,
        f"train-tokenizer.sample_bytes={SAMPLE_BYTES}", "train-tokenizer.heldout_fraction=0.05",
        "train-tokenizer.num_threads=2", "train-tokenizer.min_last_merge_frequency=2",
        "train-tokenizer.compare=[mistral-sp-32k, not-a-tokenizer]", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spark):
    tmp = tmp_path_factory.mktemp("train_stage")
    docs = fixture_docs()
    write_jsonl(tmp / "in" / "docs.jsonl.gz", docs, gz=True)
    m = run_stage(TRAIN_TOKENIZER_STAGE, profile(), str(tmp / "in"), str(tmp / "out"), spark=spark)
    return tmp, docs, m


def test_outputs(trained):
    tmp, docs, m = trained
    out = tmp / "out"
    for name in ("tokenizer.model", "tokenizer.vocab", "tokenizer_config.json", "special_tokens_map.json",
                 "tokenizer.train.log", "train_stats.json", "eval/eval.json", "eval/eval.md", "eval/eval.html",
                 "eval/eval.png", "_manifest.json"):
        assert (out / name).is_file(), name
    assert not (out / "sentences").exists()  # sentence files removed after training
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    assert sp.get_piece_size() == 4000 and sp.eos_id() == 2
    assert not m["reconciles"] and not m["feeds_next_stage"] and m["counts"]["consumed"]["docs"] == len(docs)
    tr = m["stats"]["training"]
    assert tr["last_merge_frequency"] >= 2 and tr["sentences_skipped_too_long"] == 0
    hf = m["stats"]["hf_check"]
    assert hf["same_ids"] == hf["exact_decode"] == hf["documents"] > 0
    assert (out / "tokenizer.json").is_file()


def test_sample_mixture_and_heldout(trained):
    tmp, docs, m = trained
    sample = read_dir(tmp / "out" / "sample")
    held = read_dir(tmp / "out" / "heldout")
    assert sample and held
    assert not ({r["id"] for r in sample} & {r["id"] for r in held})  # held-out never trained on
    plan = m["stats"]["sample"]["plan_by_lang"]
    total = sum(r["n_bytes"] for r in sample)
    assert abs(total - SAMPLE_BYTES) / SAMPLE_BYTES < 0.1
    want = {"zh": 1 / 3.5, "en": 1 / 3.5, "code": 1.5 / 3.5}  # code up-weighted 1.5x
    for lang, share in want.items():
        got = sum(r["n_bytes"] for r in sample if r["lang"] == lang) / total
        assert abs(got - share) < 0.05, (lang, got, share)
        assert plan[lang]["share"] == pytest.approx(share)
    # inside a language the sources get equal shares (each is large enough here)
    by_src = m["stats"]["sample"]["by_source"]
    zh = [v["sampled_bytes"] for k, v in by_src.items() if k.startswith("zh/")]
    assert max(zh) / min(zh) < 1.3


def test_short_language_is_repeated(trained, spark, tmp_path):
    tmp, docs, _ = trained
    zh_bytes = sum(len(d["text"].encode()) for d in docs if d["lang"] == "zh")
    m = run_stage(TRAIN_TOKENIZER_STAGE, profile("train-tokenizer.evaluate=false", "train-tokenizer.export_hf=false",
                                                 "train-tokenizer.max_lang_repeats=2",
                                                 # zh wants ~3x its text, en and code a few % of theirs
                                                 "train-tokenizer.lang_weights={zh: 1.0, en: 0.01, code: 0.01}",
                                                 f"train-tokenizer.sample_bytes={3 * zh_bytes}",
                                                 "train-tokenizer.keep_sentence_files=true"),
                  str(tmp / "in"), str(tmp_path / "out"), spark=spark)
    zh = m["stats"]["sample"]["plan_by_lang"]["zh"]
    assert zh["repeats"] == 2.0 and zh["shortfall_bytes"] > 0  # zh wanted 2x its text; got all of it twice
    sample = read_dir(tmp_path / "out" / "sample")
    assert {r["copies"] for r in sample if r["lang"] == "zh"} == {2}
    assert {r["copies"] for r in sample if r["lang"] != "zh"} == {1}
    assert zh["sampled_bytes"] == 2 * sum(r["n_bytes"] for r in sample if r["lang"] == "zh")
    lines = "".join(p.read_text() for p in sorted((tmp_path / "out" / "sentences").glob("*.txt"))).split("\n")
    first_zh = next(r["text"] for r in sample if r["lang"] == "zh").split("\n")[0]
    assert lines.count(first_zh) >= 2  # its training lines were written twice


def test_roundtrip_and_comparators(trained):
    tmp, _, m = trained
    ev = json.loads((tmp / "out" / "eval" / "eval.json").read_text())
    ours = ev["rows"][0]
    assert ev["languages"] == ["zh", "en", "code"]
    for lang in ev["languages"]:
        assert ours["results"][lang]["round_trip_rate"] == 1.0
        assert ours["results"][lang]["unk_rate"] == 0.0
    status = {r["tokenizer"]: r["status"] for r in ev["rows"]}
    assert status["not-a-tokenizer"] == "unknown comparator"
    assert all(s == "ok" or s.startswith("not installed") for k, s in status.items() if k != "not-a-tokenizer")
    tables = m["stats"]["report"]["tables"]
    assert any("compression" in t["title"].lower() for t in tables)
    assert m["stats"]["report"]["figures"][0]["path"] == "eval/eval.png"


def test_deterministic_sample(trained, spark, tmp_path):
    tmp, _, m = trained
    again = run_stage(TRAIN_TOKENIZER_STAGE, profile("train-tokenizer.evaluate=false",
                                                     "train-tokenizer.export_hf=false"),
                      str(tmp / "in"), str(tmp_path / "out"), spark=spark)
    a = sorted(r["id"] for r in read_dir(tmp / "out" / "sample"))
    b = sorted(r["id"] for r in read_dir(tmp_path / "out" / "sample"))
    assert a == b
    assert (tmp / "out" / "tokenizer.model").read_bytes() == (tmp_path / "out" / "tokenizer.model").read_bytes()
    assert again["stats"]["evaluation"] is None


def test_too_small_sample_is_a_clear_error(trained, spark, tmp_path):
    tmp, _, _ = trained
    with pytest.raises(UserError, match="cannot (support|build) vocab_size"):
        run_stage(TRAIN_TOKENIZER_STAGE, profile("train-tokenizer.sample_bytes=150000",
                                                 "train-tokenizer.min_last_merge_frequency=3",
                                                 "train-tokenizer.vocab_size=6000"),
                  str(tmp / "in"), str(tmp_path / "small"), spark=spark)
    assert not (tmp_path / "small").exists()


def test_cli_registration():
    from pipeline.cli import available_stages, build_parser

    names = available_stages()
    assert "train-tokenizer" in names and "tokenize" in names
    args = build_parser(names).parse_args(["tokenize", "--input", "a", "--output", "b", "--tokenizer", "m.model"])
    assert args.stage_opt_tokenizer == "m.model"
