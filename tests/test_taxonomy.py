"""The 200-leaf taxonomy and its weak-label keyword file."""

from __future__ import annotations

import pytest

from pipeline.category.taxonomy import load_keywords, load_taxonomy, parse_taxonomy


def test_default_taxonomy_shape():
    tax = load_taxonomy()
    assert len(tax) == 200
    assert len(tax.domains) == 20
    en = [leaf.en for leaf in tax.leaves]
    zh = [leaf.zh for leaf in tax.leaves]
    assert len(set(en)) == 200 and len(set(zh)) == 200
    for leaf in tax.leaves:
        assert leaf.en.strip() and leaf.zh.strip() and leaf.desc.strip()
        assert any("\u4e00" <= ch <= "\u9fff" for ch in leaf.zh), leaf.zh
        assert leaf.weight > 0
    assert [leaf.id for leaf in tax.leaves] == list(range(200))
    # every domain has leaves and each leaf points at its domain
    assert sorted({leaf.domain for leaf in tax.leaves}) == list(range(20))


def test_weights_favour_knowledge_over_formulaic_pages():
    tax = load_taxonomy()
    w = {leaf.en: leaf.weight for leaf in tax.leaves}
    for good in ("Physics", "Mathematics", "Dictionaries and Reference Works", "Modern History"):
        for bad in ("Novels and Fiction", "Product Descriptions", "Deals and Coupons", "SEO Spam"):
            assert w[good] > 1.0 > w[bad], (good, bad)


def test_id_of_names_and_ids():
    tax = load_taxonomy()
    assert tax.id_of("Physics") == 0
    assert tax.id_of("physics") == 0
    assert tax.id_of("物理学") == 0
    assert tax.id_of(199) == 199 and tax.id_of("17") == 17
    with pytest.raises(ValueError, match="outside"):
        tax.id_of(200)
    with pytest.raises(ValueError, match="not a leaf"):
        tax.id_of("Quantum Cooking")


def test_keywords_cover_every_leaf_in_both_languages():
    tax = load_taxonomy()
    kw = load_keywords(None, tax)
    assert set(kw) == set(tax.names())
    for name, langs in kw.items():
        assert langs.get("en"), name
        assert langs.get("zh"), name


def test_parse_rejects_bad_entries():
    good = {"en": "A", "zh": "甲", "desc": "d", "weight": 1.0}
    with pytest.raises(ValueError, match="weight"):
        parse_taxonomy({"domains": [{"en": "D", "zh": "丁", "leaves": [dict(good, weight=0)]}]})
    with pytest.raises(ValueError, match="duplicate"):
        parse_taxonomy({"domains": [{"en": "D", "zh": "丁", "leaves": [good, dict(good, zh="乙")]}]})
    with pytest.raises(ValueError, match="'zh'"):
        parse_taxonomy({"domains": [{"en": "D", "zh": "丁", "leaves": [dict(good, zh="")]}]})
