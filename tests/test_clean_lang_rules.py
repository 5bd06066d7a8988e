"""Per-language bounds of the clean rules: selection, the jieba-language check, and the Spark adapter
deciding with the same per-language values as the plain-Python decision."""

from __future__ import annotations

import pytest

from pipeline.clean.config import Bounds, CleanConfig, word_rules
from pipeline.clean.heuristics import RULES, decide
from pipeline.config import load_config


def test_bounds_for_overrides_per_language_only():
    c = CleanConfig(
        rules={"gopher_dup_5gram": Bounds(max=0.15), "gopher_short_doc": Bounds(min=50)},
        lang_rules={"zh": {r: Bounds() for r in word_rules()} | {"gopher_dup_5gram": Bounds(max=0.3)}},
    )
    c.validate()
    assert c.bounds_for("en")["gopher_dup_5gram"].max == 0.15
    assert c.bounds_for(None)["gopher_dup_5gram"].max == 0.15
    assert c.bounds_for("zh")["gopher_dup_5gram"].max == 0.3
    assert c.bounds_for("zh")["gopher_short_doc"] == Bounds()  # explicitly off for jieba tokens
    sig = {"dup_5gram_char_frac": 0.2, "n_words": 100.0}
    assert decide(sig, c.bounds_for("en")) == "gopher_dup_5gram"
    assert decide(sig, c.bounds_for("zh")) is None


def test_regional_codes_resolve_like_the_short_line_length():
    """Bounds and the short-line length pick the same key: the exact code first, then the base code."""
    from pipeline.clean.heuristics import HeuristicParams

    zh_off = {r: Bounds() for r in word_rules()}
    c = load_config().clean
    c.lang_rules = {"zh": zh_off | {"gopher_dup_5gram": Bounds(max=0.3)},
                    "zh-Hant": zh_off | {"gopher_dup_5gram": Bounds(max=0.4)}}
    c.fineweb.short_line_chars_by_lang = {"zh": 10, "zh-Hant": 12}
    p = HeuristicParams.from_config(c)
    for lang, dup_max, chars in [("zh", 0.3, 10), ("zh-Hant", 0.4, 12), ("zh_Hant", 0.3, 10), ("zh-CN", 0.3, 10)]:
        assert c.bounds_for(lang)["gopher_dup_5gram"].max == dup_max, lang
        assert p.short_line_chars_for(lang) == chars, lang
    base = c.rules["gopher_dup_5gram"].max
    assert c.bounds_for("en-GB")["gopher_dup_5gram"].max == base and p.short_line_chars_for("en-GB") == 30


def test_jieba_language_needs_its_own_word_rule_bounds():
    c = CleanConfig(rules={"gopher_dup_5gram": Bounds(max=0.15), "gopher_dup_line_frac": Bounds(max=0.3)})
    with pytest.raises(ValueError, match=r"clean.lang_rules.zh lacks gopher_dup_5gram"):
        c.validate()
    c.lang_rules = {"zh": {"gopher_dup_5gram": Bounds()}}  # off is an explicit choice
    c.validate()
    c.jieba_langs = []  # no jieba language: nothing to check
    c.lang_rules = {}
    c.validate()
    assert "gopher_dup_line_frac" not in word_rules()  # line rules do not count words
    assert {"gopher_dup_5gram", "gopher_alpha_words", "gopher_short_doc"} <= set(word_rules())


def test_shipped_config_sets_every_word_rule_for_chinese():
    c = load_config().clean
    zh = c.lang_rules["zh"]
    for r in word_rules():
        if c.rules.get(r) and (c.rules[r].min is not None or c.rules[r].max is not None):
            assert r in zh, r
    assert set(c.lang_rules) <= {"en", "zh"} and all(r in RULES for rules in c.lang_rules.values() for r in rules)


def test_set_override_of_a_language_bound_reaches_bounds_for():
    c = load_config(overrides=["clean.lang_rules.zh.gopher_dup_5gram.max=0.5"]).clean
    assert c.bounds_for("zh")["gopher_dup_5gram"].max == 0.5
    with pytest.raises(ValueError, match="min 0.9 > max 0.1"):
        load_config(overrides=["clean.lang_rules.zh.gopher_alpha_words.min=0.9",
                               "clean.lang_rules.zh.gopher_alpha_words.max=0.1"])


def test_spark_adapter_decides_with_the_language_bounds():
    """udfs.clean.score_fn (the clean job's mapInArrow body, called here on one Arrow batch without a
    session) gives each row the drop reason of its own language's bounds."""
    import pyarrow as pa
    from pyspark.sql import types as T

    from pipeline.clean.heuristics import HeuristicParams, score_document, violations
    from udfs.clean import score_fn, scored_schema

    text = "\n".join(["the same words again and again in this long line."] * 3 + ["one other line of words here, longer."])
    c = load_config(overrides=["clean.rules.gopher_short_doc.min=1"]).clean
    c.lang_rules = {**c.lang_rules, "en": {"gopher_dup_line_frac": Bounds(max=0.9), "gopher_stop_words": Bounds(),
                                           **{r: Bounds() for r in RULES if r.startswith(("gopher_dup", "gopher_top"))}}}
    params = HeuristicParams.from_config(c)
    sig = score_document(text, "de", params)[1]
    assert violations(sig, c.bounds_for("de"))
    assert not violations(score_document(text, "en", params)[1], c.bounds_for("en"))
    schema = T.StructType([T.StructField("doc_id", T.StringType()), T.StructField("text", T.StringType()),
                           T.StructField("lang", T.StringType()),
                           T.StructField("del_idx", T.ArrayType(T.IntegerType()))])
    out_schema = scored_schema(schema)
    batch = pa.RecordBatch.from_pydict({"doc_id": ["a", "b"], "text": [text, text], "lang": ["en", "de"],
                                        "del_idx": pa.array([None, None], pa.list_(pa.int32()))})
    (out,) = list(score_fn(params, c.bounds_for, out_schema)(iter([batch])))
    reasons = out.column("drop_reason").to_pylist()
    assert reasons[0] is None and reasons[1] == violations(sig, c.bounds_for("de"))[0]
