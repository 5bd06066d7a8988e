"""Weak labeler (keywords + URL words, English and Chinese) and the hashed n-gram features."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.category.features import batch_features, feature_ids, tokens
from pipeline.category.taxonomy import load_keywords, load_taxonomy
from pipeline.category.weak_labels import WeakLabeler, load_config, seed_documents, url_words


@pytest.fixture(scope="module")
def tax():
    return load_taxonomy()


@pytest.fixture(scope="module")
def labeler(tax):
    return WeakLabeler(tax, load_keywords(None, tax), load_config())


def name(tax, wl):
    return None if wl is None else tax.leaves[wl.category].en


EN_RECIPE = (
    "Preheat the oven to 200 degrees. For this recipe you need two cups of flour, a teaspoon of salt "
    "and a tablespoon of sugar. Stir the ingredients, then bake for 25 minutes. Baking tips: let the "
    "dough rest. Season with salt and pepper. This recipe serves four."
)
EN_PHYSICS = (
    "Quantum physics describes how electrons and photons behave. Physicists measured the particle "
    "spectrum; relativity and electromagnetism explain the rest. The experiment confirmed quantum "
    "entanglement of photons, a key result of modern physics."
)
ZH_FOOTBALL = "昨晚的足球比赛中，球队前锋两次进球。这场中超联赛的比赛让球迷兴奋，足球教练称赞球队的表现，下一轮将迎战英超球队。"
ZH_STOCKS = "今日股市大涨，上证指数上涨2%，投资者信心回升。基金经理表示，股票估值合理，证券板块领涨，多只股票股价创新高。"


def test_english_texts(tax, labeler):
    assert name(tax, labeler.label(EN_RECIPE)) == "Recipes and Cooking"
    assert name(tax, labeler.label(EN_PHYSICS)) == "Physics"


def test_chinese_texts(tax, labeler):
    assert name(tax, labeler.label(ZH_FOOTBALL)) == "Football (Soccer)"
    assert name(tax, labeler.label(ZH_STOCKS)) == "Investing and Stock Markets"


def test_unconfident_or_generic_text_gets_no_label(labeler):
    assert labeler.label("") is None
    assert labeler.label("Hello and welcome. We are glad you are here today.") is None
    # one recipe word in a long neutral page: too sparse (density rule)
    neutral = " ".join(["the weather was fine and we walked along the old road"] * 60)
    assert labeler.label(neutral + " recipe") is None


def test_url_words_add_evidence(tax, labeler):
    text = "Our new recipe: stir the sauce and bake it. Salt and pepper to taste."
    s_no, _, _ = labeler.scores(text)
    s_url, d_url, _ = labeler.scores(text, "https://example.com/rezepte/recipe/123")
    leaf = tax.id_of("Recipes and Cooking")
    assert s_url[leaf] > s_no.get(leaf, 0)
    assert "rezepte" in url_words("https://www.example.com/rezepte/x-y.html")
    assert name(tax, labeler.label(text, "https://example.com/recipes/rezepte/123")) == "Recipes and Cooking"


def test_reserved_test_hosts_give_no_url_words(tax, labeler):
    """RFC 2606 `.test` hosts (the re-hosted evaluation collections) carry no topic: like no URL."""
    assert url_words("http://dragnet_data.html-cleaning.test/sports/R411") == set()
    assert url_words("http://example.test:8080/recipes") == set()
    assert "recipes" in url_words("http://example.com/recipes")
    texts = ["Stir the sauce.", "Der Trainer lobte die Mannschaft."]
    base = labeler.score_matrix(texts, 2000)
    assert (labeler.score_matrix(texts, 2000, ["http://x.html-cleaning.test/recipes", None]) == base).all()
    with_url = labeler.score_matrix(texts, 2000, ["https://example.com/recipes/1", None])
    leaf = tax.id_of("Recipes and Cooking")
    assert with_url[0, leaf] > base[0, leaf] and (with_url[1] == base[1]).all()


def test_prefix_and_phrase_matching(tax, labeler):
    counts = labeler.keyword_counts("Physicists met at a press release event. Black holes and a black hole.")
    leaves = {tax.leaves[labeler.kw_leaf[k]].en for k in counts}
    assert "Physics" in leaves  # physicist* prefix
    assert "Astronomy and Space" in leaves  # "black hole*" phrase with prefix


def test_seed_documents_cover_all_leaves(tax):
    docs = seed_documents(tax, load_keywords(None, tax))
    assert len(docs) == 2 * len(tax)
    assert {c for _, c in docs} == set(range(len(tax)))


def test_features_are_stable_and_in_range():
    toks = tokens("Die Bundesregierung 2019: 中国人民银行 ok")
    assert toks == ["die", "bundesregierung", "2019", "中", "国", "人", "民", "银", "行", "ok"]
    a = feature_ids("Die Bundesregierung 2019: 中国人民银行 ok", 1 << 10)
    b = feature_ids("Die Bundesregierung 2019: 中国人民银行 ok", 1 << 10)
    assert a.dtype == np.int64 and (a >= 0).all() and (a < 1 << 10).all()
    assert np.array_equal(a, b)
    # 10 unigrams + 9 bigrams + 1 prefix (bundesregierung)
    assert len(a) == 20
    # numbers are normalised: another year gives the same features
    assert np.array_equal(feature_ids("in 2019 we", 1 << 16), feature_ids("in 2021 we", 1 << 16))
    ids, offs = batch_features(["a b", "", "c"], 1 << 8)
    assert offs.tolist() == [0, 3, 3] and len(ids) == 4
