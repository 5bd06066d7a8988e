"""FineWeb's short-line rule in each language's own units: the length comes from conf
(``clean.fineweb.short_line_chars`` / ``short_line_chars_by_lang``), so a Chinese article written a phrase
per line is kept while a Chinese link list is still caught, and English keeps FineWeb's 30 characters."""

from __future__ import annotations

import pytest

from pipeline.clean.config import Bounds, CleanConfig
from pipeline.clean.heuristics import HeuristicParams, score_document, violations
from pipeline.config import load_config

# A traffic notice written one clause per line (12-18 characters a line): prose, not a menu.
PHRASE_PER_LINE_ZH = (
    "受京沪高速路面维修工程影响，\n"
    "本周六起至下月十日，\n"
    "无锡至江阴方向的主线将全封闭施工，\n"
    "过往车辆须在无锡收费站提前驶离，\n"
    "沿国道或者省道绕行前往目的地。\n"
    "施工期间交警将在各个路口设置提示牌，\n"
    "并安排专人在匝道口指挥疏导交通，\n"
    "货车和危险品运输车辆一律不得进入。\n"
    "管理部门提醒广大驾驶人朋友，\n"
    "出发之前请查询最新的路况信息，\n"
    "合理规划出行的时间和路线，\n"
    "尽量避开早晚高峰时段通行，\n"
    "给您带来的不便敬请谅解。"
)
# A portal's channel menu and headline teasers (2-10 characters a line), one sentence at the end.
LINK_LIST_ZH = "\n".join(
    ["首页", "新闻中心", "国内", "国际", "体育", "娱乐", "财经", "科技频道", "汽车", "房产", "旅游", "教育"]
    + ["男子夜跑遇险获救", "暴雨致多地停课", "新能源车销量大涨", "股市今日小幅收涨", "多地发布高温预警",
       "高校公布录取分数", "地铁新线开通试运营", "国产大飞机再获订单", "春运火车票开售", "博物馆推出夜场"]
    + ["联系我们", "关于本站", "网站地图", "版权所有，未经授权的转载和使用都将被依法追究相关的责任。"]
)
LINK_LIST_EN = "\n".join(f"Item {i} | Price {i} EUR" for i in range(20))


@pytest.fixture(scope="module")
def shipped():
    c = load_config().clean
    return c, HeuristicParams.from_config(c)


def test_chinese_phrase_per_line_article_is_kept(shipped):
    c, params = shipped
    sig = score_document(PHRASE_PER_LINE_ZH, "zh", params)[1]
    assert sig["short_line_frac"] < c.bounds_for("zh")["fineweb_short_lines"].max
    assert violations(sig, c.bounds_for("zh")) == []
    # FineWeb's English length counts every clause as a short line: the rule would drop the article
    c30 = load_config(overrides=["clean.fineweb.short_line_chars_by_lang.zh=30"]).clean
    sig30 = score_document(PHRASE_PER_LINE_ZH, "zh", HeuristicParams.from_config(c30))[1]
    assert sig30["short_line_frac"] == 1.0
    assert "fineweb_short_lines" in violations(sig30, c30.bounds_for("zh"))


def test_chinese_link_list_is_still_caught(shipped):
    c, params = shipped
    sig = score_document(LINK_LIST_ZH, "zh", params)[1]
    assert sig["n_chars"] >= c.bounds_for("zh")["gopher_short_doc_chars"].min  # long enough for the length rule
    assert sig["short_line_frac"] > 0.9
    assert "fineweb_short_lines" in violations(sig, c.bounds_for("zh"))


def test_english_keeps_finewebs_30_characters(shipped):
    from pipeline.clean.heuristics.fineweb import SHORT_LINE_CHARS, fineweb_signals

    c, params = shipped
    assert c.fineweb.short_line_chars == SHORT_LINE_CHARS == 30
    assert params.short_line_chars_for("en") == 30 and params.short_line_chars_for(None) == 30
    line = "A sentence of exactly thirty c"  # 30 characters: not short; 29 are
    assert fineweb_signals(line)["short_line_frac"] == 0.0
    assert fineweb_signals(line[:-1])["short_line_frac"] == 1.0
    sig = score_document(LINK_LIST_EN, "en", params)[1]
    assert sig["short_line_frac"] == 1.0
    # a Chinese length never reaches other languages
    c2 = load_config(overrides=["clean.fineweb.short_line_chars_by_lang.zh=5"]).clean
    p2 = HeuristicParams.from_config(c2)
    assert score_document(LINK_LIST_EN, "en", p2)[1] == sig


def test_short_line_length_comes_from_conf():
    c = load_config(overrides=["clean.fineweb.short_line_chars_by_lang.zh=3", "clean.fineweb.short_line_chars=5"]).clean
    p = HeuristicParams.from_config(c)
    assert p.short_line_chars_for("zh") == 3 and p.short_line_chars_for("zh-Hant") == 3
    assert p.short_line_chars_for("de") == 5
    assert score_document("第一行\n第二行内容", "zh", p)[1]["short_line_frac"] == 0.0
    assert score_document("ab cd\nabcdef", "de", p)[1]["short_line_frac"] == 0.0
    assert score_document("ab\nabcdef", "de", p)[1]["short_line_frac"] == 0.5
    shipped = load_config().clean.fineweb.short_line_chars_by_lang
    assert 8 <= shipped["zh"] <= 15  # a few Chinese words, far below FineWeb's 30 characters


def test_jieba_language_needs_its_own_short_line_length():
    on = {"fineweb_short_lines": Bounds(max=0.67)}
    c = CleanConfig(rules=dict(on))
    with pytest.raises(ValueError, match=r"short_line_chars_by_lang lacks zh"):
        c.validate()
    c.fineweb.short_line_chars_by_lang = {"zh": 11}
    c.validate()
    c = CleanConfig(rules=dict(on), lang_rules={"zh": {"fineweb_short_lines": Bounds()}})  # off for zh: fine
    c.validate()
    with pytest.raises(ValueError, match=r"short_line_chars_by_lang.zh: 0"):
        load_config(overrides=["clean.fineweb.short_line_chars_by_lang.zh=0"])


def test_unit_calibration_functions():
    from pipeline.filter.calibrate import (
        chars_per_word,
        line_lengths,
        share_matched_chars,
        word_equivalent_chars,
    )

    assert line_lengths(" ab \n\n| cde |\n") == [2, 3]
    assert chars_per_word("abcd efgh", 2) == 4.5 and chars_per_word("x", 0) is None
    # 6 characters per English word, 2 per Chinese word: 30 characters are 10 Chinese characters
    assert word_equivalent_chars([6.0, 5.0, 7.0], [2.0, 1.0, 3.0], 30) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        word_equivalent_chars([], [2.0], 30)
    ref = [[10, 40, 50, 60], [20, 80]]  # page-weighted share under 30: (1/4 + 1/2) / 2 = 0.375
    pages = [[3, 5, 12, 20], [4, 30]]   # under 4: 0.125; under 5: (1/4 + 1/2) / 2 = 0.375; under 6: 0.5
    n, q, qn = share_matched_chars(ref, pages, 30)
    assert q == pytest.approx(0.375)
    assert n == 5 and qn == pytest.approx(0.375)
    n, _, qn = share_matched_chars([[1, 9]], [[2, 4]], 5)  # 0.5 wanted; under 3 and under 4 both give it
    assert n == 3 and qn == 0.5  # the shorter length wins a tie


def test_spark_adapter_uses_the_language_length():
    """udfs.clean.score_fn (the clean job's mapInArrow body) writes the same h_short_line_frac as the
    plain-Python scorer with the conf length of each row's language."""
    import pyarrow as pa
    from pyspark.sql import types as T

    from udfs.clean import score_fn, scored_schema

    c = load_config().clean
    params = HeuristicParams.from_config(c)
    schema = T.StructType([T.StructField("doc_id", T.StringType()), T.StructField("text", T.StringType()),
                           T.StructField("lang", T.StringType()),
                           T.StructField("del_idx", T.ArrayType(T.IntegerType()))])
    batch = pa.RecordBatch.from_pydict({"doc_id": ["zh", "en"], "text": [PHRASE_PER_LINE_ZH, PHRASE_PER_LINE_ZH],
                                        "lang": ["zh", "en"],
                                        "del_idx": pa.array([None, None], pa.list_(pa.int32()))})
    out = pa.Table.from_batches(list(score_fn(params, c.bounds_for, scored_schema(schema))(iter([batch])))).to_pylist()
    got = {r["doc_id"]: r for r in out}
    for lang in ("zh", "en"):
        assert got[lang]["h_short_line_frac"] == score_document(PHRASE_PER_LINE_ZH, lang, params)[1]["short_line_frac"]
    assert got["zh"]["h_short_line_frac"] < 0.67 < got["en"]["h_short_line_frac"]
    assert got["zh"]["drop_reason"] is None
