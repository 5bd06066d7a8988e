"""The keep score: features, determinism, training, the artifact, config and the filter decision."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.clean.heuristics import SIGNALS, HeuristicParams, score_document
from pipeline.filter import keepscore as ks
from pipeline.filter.config import FilterConfig, KeepSection, keep_threshold
from pipeline.filter.decisions import filter_reason
from pipeline.filter.quality import QUALITY_BELOW

PROSE = (
    "The council met on Tuesday to discuss the new bridge, which has been delayed by two years.\n"
    "Engineers told the members that the steel had arrived late and that the river was higher than expected.\n"
    "A decision on the extra budget is expected next month, after the public consultation closes."
)
LISTING = "\n".join(f"| Item {i} | $ {i}.99 | Add to cart | 12/0{i % 9 + 1}/2020 |" for i in range(30))


def _x(text: str, lang: str = "en", quality: float | None = 0.7, removed: int = 0) -> np.ndarray:
    sig = score_document(text, lang, HeuristicParams())[1]
    return ks.feature_vector(sig, text, quality, removed, ks.nonempty_lines(text))


def _toy_model(seed: int = 0) -> ks.KeepModel:
    rng = np.random.default_rng(seed)
    n = len(ks.FEATURES)
    return ks.KeepModel(rng.normal(size=n), 0.3, rng.normal(size=n) * 0.1, np.abs(rng.normal(size=n)) + 0.5)


def test_feature_vector_has_every_feature_and_reads_layout():
    x, y = _x(PROSE), _x(LISTING)
    assert x.shape == y.shape == (len(ks.FEATURES),)
    f = dict(zip(ks.FEATURES, x))
    g = dict(zip(ks.FEATURES, y))
    assert f["table_line_frac"] == 0.0 and g["table_line_frac"] == 1.0
    assert g["price_line_frac"] == 1.0 and f["price_line_frac"] == 0.0
    assert g["date_line_frac"] == 1.0
    assert f["quality_score"] == pytest.approx(0.7) and f["quality_missing"] == 0.0
    assert dict(zip(ks.FEATURES, _x(PROSE, quality=None)))["quality_missing"] == 1.0
    hashed = x[len(ks.FEATURES) - ks.HASH_BUCKETS:]
    assert hashed.sum() > 0 and np.all(hashed >= 0)
    assert np.array_equal(_x(PROSE), x)  # deterministic (CRC-32, not Python's salted hash)


def test_score_does_not_depend_on_batching():
    m = _toy_model()
    xs = np.vstack([_x(PROSE), _x(LISTING), _x(PROSE + "\nMore news."), _x(LISTING[:200])])
    together = m.score(xs)
    alone = np.concatenate([m.score(x) for x in xs])
    assert together.tobytes() == alone.tobytes()
    assert np.all((together > 0) & (together < 1))


def test_fit_separates_and_is_deterministic():
    rng = np.random.default_rng(1)
    n = len(ks.FEATURES)
    x = rng.normal(size=(200, n))
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(float)
    a = ks.fit_logistic(x, y, l2=1.0)
    b = ks.fit_logistic(x, y, l2=1.0)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    s = ks.KeepModel(*a).score(x)
    assert ks.auc(s, y) > 0.95
    # stronger L2 shrinks the weights
    assert np.abs(ks.fit_logistic(x, y, l2=1000.0)[0]).sum() < np.abs(a[0]).sum()


def test_pick_threshold_respects_target_with_base_rules():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.05, 0.15])
    y = np.array([0, 0, 1, 1, 1, 1, 0])
    base = np.array([False, False, False, False, False, True, False])  # one good page removed anyway
    t = ks.pick_threshold(scores, base, y, target=0.25)  # 4 good pages: at most 1 removed in all
    c = ks.removal_counts(scores, t, base, y)
    assert c["good_removed"] == 1 and c["junk_caught"] == 3
    assert ks.pick_threshold(scores, base, y, target=0.5) > t  # room for the 0.3 good page


def test_train_picks_threshold_out_of_fold_and_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    n = len(ks.FEATURES)
    x = rng.normal(size=(300, n))
    y = (x[:, 1] - 0.5 * x[:, 2] + 0.5 * rng.normal(size=300) > -1.0).astype(float)
    sites = [f"s{i % 60}" for i in range(300)]
    base = np.zeros(300, dtype=bool)
    model, thr, rep = ks.train(x, y, sites, base, target=0.05, l2_grid=(1.0, 10.0), log=lambda m: None)
    assert rep["dev_out_of_fold"]["good_removed"] <= 0.05 * rep["dev_out_of_fold"]["good"]
    assert rep["l2"] in (1.0, 10.0) and 0 < thr < 1
    v1 = ks.save(model, tmp_path / "a", {"metrics": rep}, "20260101")
    v2 = ks.save(model, tmp_path / "b", {"metrics": rep}, "20260101")
    assert v1 == v2 and v1.startswith("keep-20260101-")
    back = ks.load(tmp_path / "a")
    assert back.version == v1
    assert back.score(x[:20]).tobytes() == model.score(x[:20]).tobytes()


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="filter.keep.enabled=false"):
        ks.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="retrain"):
        ks.KeepModel(np.zeros(3), 0.0, np.zeros(3), np.ones(3), features=("a", "b", "c"))


def test_shipped_artifact_loads_and_separates_prose_from_a_listing():
    m = ks.load("models/keep")
    assert m.version.startswith("keep-")
    s_prose, s_list = m.score(np.vstack([_x(PROSE, quality=0.8), _x(LISTING, quality=0.1)]))
    assert s_prose > s_list


def test_config_validation_and_per_language_threshold():
    cfg = FilterConfig(keep=KeepSection(threshold=None, threshold_by_lang={"en": 0.4, "zh": None}))
    cfg.validate()
    assert keep_threshold(cfg.keep, "en") == 0.4
    assert keep_threshold(cfg.keep, "zh") is None and keep_threshold(cfg.keep, "de") is None
    assert keep_threshold(KeepSection(enabled=False, threshold=0.5), "en") is None
    with pytest.raises(ValueError, match=r"filter.keep.threshold_by_lang.en=1.5"):
        FilterConfig(keep=KeepSection(threshold_by_lang={"en": 1.5})).validate()
    with pytest.raises(ValueError, match=r"filter.keep.threshold=-0.1"):
        FilterConfig(keep=KeepSection(threshold=-0.1)).validate()


def test_filter_reason_keep_comes_after_quality():
    assert filter_reason("x", "x", 0.9, "en", 0.5, None, 0.2, 0.3) == ks.KEEP_BELOW
    assert filter_reason("x", "x", 0.9, "en", 0.5, None, 0.4, 0.3) is None
    assert filter_reason("x", "x", 0.1, "en", 0.5, None, 0.2, 0.3) == QUALITY_BELOW
    assert filter_reason("x", "x", 0.9, "en", 0.5, None, 0.2, None) is None  # score only
    assert filter_reason("x", "x", 0.9, "en", 0.5, None, float("nan"), 0.3) is None


def test_score_texts_reads_signal_columns_or_recomputes_them():
    """The filter's keep score is the same whether the clean stage's h_* signals come with the rows or
    are recomputed from the text (the filter's input text already passed the C4 line rules)."""
    import dataclasses

    from pipeline.config import load_config
    from udfs.models import ScoreSpec, score_texts

    cfg = load_config()
    spec = dataclasses.replace(ScoreSpec.from_config(cfg.filter, cfg.clean), category_enabled=False)
    texts = [PROSE, LISTING, ""]
    langs = ["en", "en", "en"]
    sig = [score_document(t, lg, HeuristicParams.from_config(cfg.clean))[1] for t, lg in zip(texts, langs)]
    assert set(sig[0]) == set(SIGNALS)
    a = score_texts(texts, langs, spec, "cpu", sig)
    b = score_texts(texts, langs, spec, "cpu", None)
    assert a["keep_score"].iloc[:2].tolist() == b["keep_score"].iloc[:2].tolist()
    assert np.isnan(a["keep_score"].iloc[2])  # empty text: no score
    assert a["keep_score"].iloc[0] > a["keep_score"].iloc[1]


def test_line_matches_in_one_pass_equal_a_search_per_line():
    text = ("  Jan 5 meeting at 10:30  \n\n\t$ 20 entry\nwww.example.com\n   \nno match here\n"
            "2019年5月 report\nprice 5 usd\n\u0130stanbul 1999\nends with 12/3/2020")
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    stats = ks.line_stats(text)
    n = len(lines)
    for key, pat in (("date_line_frac", ks._DATE), ("url_line_frac", ks._URL), ("price_line_frac", ks._PRICE)):
        assert stats[key] == sum(bool(pat.search(ln)) for ln in lines) / n, key
    assert stats["date_line_frac"] == 4 / n and stats["price_line_frac"] == 2 / n
