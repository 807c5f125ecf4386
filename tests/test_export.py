"""OUT/corpus/ after a pipeline run (exact-dedup, train-tokenizer, sample, tokenize on the bundled
sample): the card's counts equal the manifests', the data and shards are the stages' own files,
the same seed gives a byte-identical corpus/, and a re-run resumes without redoing a stage."""
import json
import re
from pathlib import Path

import pytest

from conftest import REPO, SMALL_VOCAB_SET
from pipeline.cli import load_stage
from pipeline.config import load_profile
from pipeline.run import run_pipeline

STAGES = ["exact-dedup", "train-tokenizer", "sample", "tokenize"]
OVERRIDES = ["write.files_per_output=1", "train-tokenizer.vocab_size=4000", *SMALL_VOCAB_SET,
             "train-tokenizer.evaluate=false",
             "train-tokenizer.min_last_merge_frequency=0", "train-tokenizer.heldout_fraction=0.05",
             'sample.targets={"lang": {"en": 0.5, "zh": 0.3, "code": 0.2}}', "tokenize.shard_size_tokens=50000"]


def run(out: Path, *extra) -> list:
    profile = load_profile(None, OVERRIDES + list(extra))
    return run_pipeline(profile, [load_stage(s) for s in STAGES], str(REPO / "data" / "sample"), str(out))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, spark):
    tmp = tmp_path_factory.mktemp("export")
    return tmp, run(tmp / "a"), run(tmp / "b")


def table_rows(card: str, heading: str) -> dict:
    """{first cell: [other cells as numbers or None]} of the first markdown table under `heading`."""
    lines = card.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [None if c == "-" else float(c.replace(",", "")) if "." in c else int(c.replace(",", ""))
                          for c in cells[1:]]
    return rows


def test_card_counts_equal_the_manifests(runs):
    tmp, manifests, _ = runs
    by = {m["stage"]: m for m in manifests}
    kept, tok = by["sample"]["counts"]["kept"], by["tokenize"]["stats"]
    card = (tmp / "a" / "corpus" / "README.md").read_text(encoding="utf-8")
    assert table_rows(card, "## Contents")["corpus"] == [kept["docs"], kept["chars"], tok["tokens"]]
    langs = table_rows(card, "### By lang")
    assert langs == {k: [v["docs"], v["chars"], tok["tokens_by_lang"][k]] for k, v in kept["by_lang"].items()}
    sources = table_rows(card, "### By source")
    assert sources == {k: [v["docs"], v["chars"], tok["tokens_by_source"][k]] for k, v in kept["by_source"].items()}
    facts = json.loads((tmp / "a" / "corpus" / "card.json").read_text())
    assert facts["documents"] == kept["docs"] and facts["tokens"] == tok["tokens"]
    funnel = table_rows(card, "## Funnel")  # the funnel ends where the sampled corpus stands
    assert list(funnel.values())[-1][:2] == [kept["docs"], kept["chars"]]
    assert "not_sampled" in card and "exact_duplicate" in card and "```\nweight = exp(" in card


def test_corpus_holds_the_stage_files_and_listed_shards(runs):
    tmp, _, _ = runs
    corpus = tmp / "a" / "corpus"
    data = sorted(f.name for f in (corpus / "data").glob("*.parquet"))
    assert data == sorted(f.name for f in (tmp / "a" / "sample" / "kept").glob("*.parquet"))
    for name in data:
        assert (corpus / "data" / name).read_bytes() == (tmp / "a" / "sample" / "kept" / name).read_bytes()
    shards = json.loads((corpus / "shards" / "_manifest.json").read_text())["shards"]
    card = (corpus / "README.md").read_text(encoding="utf-8")
    for e in shards:
        assert (corpus / "shards" / e["bin"]).is_file() and f"`{e['bin_sha256']}`" in card
    import pyarrow.parquet as pq

    cols = pq.read_schema(corpus / "data" / data[0]).names
    assert {"text", "id", "source", "lang", "exact_copies", "weight", "repeats"} <= set(cols)


def test_same_seed_byte_identical_corpus(runs):
    tmp, _, _ = runs
    a = sorted(p.relative_to(tmp / "a" / "corpus") for p in (tmp / "a" / "corpus").rglob("*") if p.is_file())
    b = sorted(p.relative_to(tmp / "b" / "corpus") for p in (tmp / "b" / "corpus").rglob("*") if p.is_file())
    assert a == b and len(a) > 4
    for rel in a:
        assert (tmp / "a" / "corpus" / rel).read_bytes() == (tmp / "b" / "corpus" / rel).read_bytes(), rel
    assert not re.search(str(tmp), (tmp / "a" / "corpus" / "README.md").read_text(encoding="utf-8"))


def test_rerun_resumes_and_keeps_the_corpus(runs, capsys):
    tmp, _, _ = runs
    before = (tmp / "a" / "corpus" / "card.json").read_bytes()
    run(tmp / "a")
    said = capsys.readouterr().out
    assert all(f"[{s}]" in said and "nothing to do" in said for s in STAGES)
    assert (tmp / "a" / "corpus" / "card.json").read_bytes() == before
