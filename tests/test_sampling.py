"""The sample stage: the weight formula, the mixture solver, the draw, and the stage on a real
SparkSession (token shares against targets, determinism, another seed, neutral missing columns)."""
import json

import numpy as np
import pyarrow as pa
import pytest

from conftest import read_dir, write_jsonl
from pipeline.config import load_profile
from pipeline.errors import UserError
from pipeline.hashing import uniform01
from pipeline.stage import run_stage
from sampling.mixture import Cells, MixtureSettings, budgets, draw_repeats, expected_repeats, scales, shares_for
from sampling.stage import SAMPLE_STAGE, SampleConfig
from sampling.weights import WeightSettings, copies, document_weights, source_groups


def test_weight_formula_by_hand():
    t = pa.table({"quality_score": [0.5, 1.0, 0.0, None], "exact_copies": [1, 4, 1, 1],
                  "minhash_cluster_size": [1, 1, 3, None], "semantic_duplicates": [0, 0, 2, None],
                  "semantic_cluster_size": [1, 16, None, 1], "q_words": [10, 0, 0, None]})
    s = WeightSettings(quality_pivot=0.5, quality_strength=2.0, signals={"q_words": 0.1},
                       duplicate_exponent=0.5, cluster_exponent=0.25)
    assert copies(t).tolist() == [1.0, 4.0, 5.0, 1.0]  # exact + (near - 1) + semantic
    w = document_weights(t, s)
    expected = [np.exp(1.0), np.exp(1.0) * 4 ** -0.5 * 16 ** -0.25, np.exp(-1.0) * 5 ** -0.5, 1.0]
    assert np.allclose(w, expected)


def test_absent_columns_are_neutral():
    t = pa.table({"text": ["a", "b"]})
    assert document_weights(t, WeightSettings(signals={"q_missing": 3.0})).tolist() == [1.0, 1.0]


def test_source_groups_by_pattern():
    g = source_groups(pa.array(["cpython_3.8", "brown", None, "cpython_2.7"]), ["cpython_*", "brown"])
    assert g.to_pylist() == ["cpython_*", "brown", "(rest)", "cpython_*"]


def test_shares_rest_and_floor():
    share, missing = shares_for(["code", "en", "fr", "zh"], np.array([0.2, 0.5, 0.001, 0.299]), {"en": 0.4, "x": 0.1})
    assert missing == ["x"]
    # en as named; the rest (0.6) split among the others by their natural shares (0.2 : 0.001 : 0.299)
    assert np.allclose(share, [0.24, 0.4, 0.0012, 0.3588])
    floored, _ = shares_for(["code", "en", "fr", "zh"], np.array([0.2, 0.5, 0.001, 0.299]), {}, floor=0.05)
    assert floored[2] == pytest.approx(0.05) and floored.sum() == pytest.approx(1.0)
    assert (floored[[0, 1, 3]] < [0.2, 0.5, 0.299]).all()


def test_budgets_meet_both_marginals_under_caps():
    cells = Cells(group=["a", "a", "b", "c"], lang=["en", "zh", "en", "code"],
                  tokens=np.array([1000.0, 500.0, 3000.0, 300.0]), weighted=np.array([900.0, 400.0, 1500.0, 90.0]))
    s = MixtureSettings(targets={"source": {"a": 0.4, "b": 0.4}, "lang": {"code": 0.2}}, max_repeats=4)
    b, info = budgets(cells, s, total=4800.0)
    lang_share = {lg: b[[i for i, x in enumerate(cells.lang) if x == lg]].sum() / 4800 for lg in ("en", "zh", "code")}
    assert b[0] + b[1] == pytest.approx(0.4 * 4800, rel=1e-6) and b[2] == pytest.approx(0.4 * 4800, rel=1e-6)
    assert lang_share["code"] == pytest.approx(0.2, abs=1e-6)
    assert (b <= 4 * cells.tokens + 1e-6).all()
    assert info["targets"]["source"]["c"] == pytest.approx(0.2)
    # a target beyond a cell's capacity (4 x its tokens): the cell gives all it has, no more
    b, _ = budgets(cells, MixtureSettings(targets={"lang": {"code": 0.5}}, max_repeats=4), total=4800.0)
    assert b[3] == pytest.approx(4 * 300.0)


def test_water_filling_scale_is_exact():
    rng = np.random.default_rng(0)
    w, t = rng.lognormal(0, 1.5, 500), rng.integers(1, 200, 500).astype(float)
    cap = 3.0

    def sums(c):
        capped = c[0] * w >= cap
        return np.array([t[capped].sum()]), np.array([(w * t)[~capped].sum()])
    budget = np.array([0.6 * cap * t.sum()])  # many documents must hit the cap
    (c,) = scales(budget, np.array([(w * t).sum()]), cap, sums)
    got = (expected_repeats(w, np.full(500, c), cap) * t).sum()
    assert got == pytest.approx(budget[0], rel=1e-9)
    assert (expected_repeats(w, np.full(500, c), cap) == cap).sum() > 10


def test_mean_repeats_over_seeds_follow_the_formula():
    """E[repeats] = min(scale * weight, cap): the mean of the draws over 4,000 seeds, per document."""
    w = np.array([0.05, 0.3, 0.5, 1.0, 1.7, 2.5, 9.0])
    r = expected_repeats(w, np.full(len(w), 1.3), 4.0)
    ids = [f"doc-{i}" for i in range(len(w))]
    draws = np.array([draw_repeats(r, uniform01(seed, ids)) for seed in range(4000)])
    assert np.allclose(draws.mean(axis=0), r, atol=0.04)  # 4,000 draws: standard error <= 0.008
    assert set(np.unique(draws[:, -1])) == {4}  # capped: exactly the cap
    assert ((draws == np.floor(r)) | (draws == np.ceil(r))).all()


def corpus(n_per: int = 150) -> list[dict]:
    """Three sources x languages with long and short documents and quality scores."""
    rng = np.random.default_rng(1)
    docs = []
    for src, lang, unit in (("news_zh", "zh", "新闻报道的内容。"), ("books_en", "en", "A sentence from a book. "),
                            ("web_en", "en", "Some web text here. "), ("code_py", "code", "x = compute(y)\n")):
        for i in range(n_per):
            docs.append({"id": f"{src}-{i}", "text": unit * int(rng.integers(5, 60)), "lang": lang, "source": src,
                         "quality_score": float(rng.uniform(0, 1)), "exact_copies": int(rng.integers(1, 4))})
    return docs


TARGETS = {"source": {"books_*": 0.3, "web_*": 0.2}, "lang": {"zh": 0.25, "code": 0.25}}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, spark):
    tmp = tmp_path_factory.mktemp("sample")
    docs = corpus()
    for k in range(3):
        write_jsonl(tmp / "in" / f"part{k}.jsonl", docs[k::3])
    over = [f"sample.targets={json.dumps(TARGETS)}", "sample.max_repeats=3", "write.files_per_output=2"]
    runs = {name: run_stage(SAMPLE_STAGE, load_profile(None, over + extra), str(tmp / "in"), str(tmp / name), spark=spark)
            for name, extra in (("a", []), ("b", []), ("seed2", ["sample.seed=2"]))}
    return tmp, runs


def test_shares_match_targets(sampled):
    tmp, runs = sampled
    s = runs["a"]["stats"]["sampling"]
    shares = {dim: {r["value"]: r for r in s["shares"][dim]} for dim in ("source", "lang")}
    assert shares["source"]["books_*"]["target"] == 0.3 and shares["lang"]["zh"]["target"] == 0.25
    assert s["max_abs_share_error"] < 0.02
    kept = read_dir(tmp / "a" / "kept")
    tokens = {}
    for r in kept:  # recount from the rows: repeats x tokens
        tokens[r["lang"]] = tokens.get(r["lang"], 0) + r["repeats"] * r["sample_tokens"]
    total = sum(tokens.values())
    assert abs(tokens["code"] / total - 0.25) < 0.02 and abs(tokens["zh"] / total - 0.25) < 0.02
    assert max(r["repeats"] for r in kept) <= 3 and any(r["repeats"] > 1 for r in kept)


def test_removed_are_not_sampled_and_counts_reconcile(sampled):
    tmp, runs = sampled
    m = runs["a"]
    removed = read_dir(tmp / "a" / "removed")
    assert removed and {r["reason"] for r in removed} == {"not_sampled"} and all(r["repeats"] == 0 for r in removed)
    assert m["counts"]["reconciled"] and m["counts"]["input"]["docs"] == 600
    assert m["counts"]["kept"]["docs"] + m["counts"]["removed"]["docs"] == 600


def test_repeats_follow_the_weights_and_scales(sampled):
    """Each kept/removed document's repeats is floor or ceil of min(scale of its cell x weight, cap)."""
    tmp, runs = sampled
    scale = {(c["group"], c["lang"]): c["scale"] for c in runs["a"]["stats"]["sampling"]["cells"]}
    groups = {"books_en": "books_*", "web_en": "web_*"}
    for r in read_dir(tmp / "a" / "kept") + read_dir(tmp / "a" / "removed"):
        e = min(scale[(groups.get(r["source"], "(rest)"), r["lang"])] * r["weight"], 3.0)
        assert r["repeats"] in (np.floor(e), np.ceil(e))


def test_same_seed_same_bytes_other_seed_other_sample(sampled):
    tmp, runs = sampled
    for sub in ("kept", "removed"):
        a, b = sorted((tmp / "a" / sub).glob("*.parquet")), sorted((tmp / "b" / sub).glob("*.parquet"))
        assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b]
    rep = {r["id"]: r["repeats"] for r in read_dir(tmp / "a" / "kept") + read_dir(tmp / "a" / "removed")}
    rep2 = {r["id"]: r["repeats"] for r in read_dir(tmp / "seed2" / "kept") + read_dir(tmp / "seed2" / "removed")}
    assert rep.keys() == rep2.keys() and sum(rep[k] != rep2[k] for k in rep) > 50
    assert runs["seed2"]["stats"]["sampling"]["max_abs_share_error"] < 0.02


def test_bad_targets_are_a_user_error():
    for targets in ({"lang": {"en": 0.8, "zh": 0.4}}, {"country": {"x": 1.0}}, {"lang": {"en": "half"}}):
        with pytest.raises(UserError):
            SAMPLE_STAGE.check(SampleConfig(targets=targets))
