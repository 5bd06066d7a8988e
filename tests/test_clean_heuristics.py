"""Each heuristic rule and its drop reason, for English, another Latin-script language and Chinese."""

from __future__ import annotations

import pytest

from pipeline.clean.config import Bounds
from pipeline.clean.heuristics import RULES, SIGNALS, HeuristicParams, decide, score_document, violations
from pipeline.clean.heuristics.gopher_repetition import ngram_signals
from pipeline.config import load_config

GOOD_EN = (
    "Early on a grey Tuesday morning the harbour workers gathered near the old crane to discuss "
    "the schedule for unloading grain.\n"
    "Nobody expected that the storm would arrive two days early, yet every captain had already "
    "secured ropes and checked the engines with care.\n"
    "By noon the market square was busy with farmers selling apples, cheese and fresh bread to "
    "travellers who had been stuck at the station.\n"
    "Later that evening a small orchestra played in the town hall while children ran between the "
    "tables of visitors and their patient parents."
)
GOOD_DE = (
    "Am frühen Morgen gingen die Fischer zum Hafen und prüften ihre Netze, bevor das Wetter sich "
    "änderte.\n"
    "Der Bürgermeister sprach mit den Händlern über den neuen Markt, der im Sommer auf dem alten "
    "Platz eröffnet werden soll.\n"
    "Viele Familien kamen aus den Dörfern, um Brot, Käse und frisches Obst zu kaufen und mit "
    "Freunden zu reden.\n"
    "Am Abend spielte eine kleine Kapelle im Rathaus, während die Kinder zwischen den Tischen "
    "fröhlich umherliefen."
)
GOOD_ZH = (
    "今年夏天，我们在南方的一个小镇度过了两个星期。镇上的老街保留着许多明清时期的建筑，"
    "每天早上都有农民把新鲜的蔬菜和水果运到市场上出售。\n"
    "当地的居民非常热情，他们经常邀请游客到家里喝茶，并讲述这个地方的历史和传说。"
    "晚上，河边的灯笼亮起来，年轻人在桥上唱歌，老人们则坐在树下聊天。\n"
    "离开的时候，我们买了一些手工制作的竹篮和丝绸围巾，作为送给朋友的礼物。"
)


@pytest.fixture(scope="module")
def clean_cfg():
    """Every rule at its published constant (the shipped per-language bounds turn some off for English)."""
    from pipeline.config import REPO_ROOT

    return load_config(REPO_ROOT / "conf" / "calibrate" / "published-constants.yaml").clean


def test_shipped_bounds_pass_good_documents(params):
    shipped = load_config().clean
    for text, lang in ((GOOD_EN, "en"), (GOOD_DE, "de"), (GOOD_ZH, "zh")):
        assert violations(_score(text, lang, params), shipped.bounds_for(lang)) == [], lang


@pytest.fixture(scope="module")
def params(clean_cfg):
    return HeuristicParams.from_config(clean_cfg)


def _score(text, lang, params):
    return score_document(text, lang, params)[1]


def _check(text, lang, reason, clean_cfg, params):
    s = _score(text, lang, params)
    bounds = clean_cfg.bounds_for(lang)
    assert reason in violations(s, bounds), (reason, s)
    assert decide(s, {reason: bounds[reason]}) == reason


def test_every_rule_has_a_source_and_default_bounds(clean_cfg):
    for reason, rule in RULES.items():
        assert rule.signal in SIGNALS
        assert rule.source
        assert reason in clean_cfg.rules, f"conf/defaults/clean.yaml lacks rules.{reason}"


@pytest.mark.parametrize(
    "text,lang", [(GOOD_EN, "en"), (GOOD_DE, "de"), (GOOD_ZH, "zh")], ids=["en", "de", "zh"]
)
def test_good_documents_pass(text, lang, clean_cfg, params):
    s = _score(text, lang, params)
    assert set(s) == set(SIGNALS)
    assert violations(s, clean_cfg.bounds_for(lang)) == []


def test_signal_values_en(params):
    s = _score(GOOD_EN, "en", params)
    assert s["n_words"] == len(GOOD_EN.split())
    assert s["stop_words"] == 6  # the, to, of, and, that, with (be, have absent)
    assert s["alpha_word_frac"] == 1.0


def test_short_and_long_doc(clean_cfg, params):
    _check("Just a few words here with the end of it.", "en", "gopher_short_doc", clean_cfg, params)
    many = " ".join(f"w{i}x" for i in range(100_001))
    _check(many, "en", "gopher_long_doc", clean_cfg, params)


def test_chinese_length_counts_characters(clean_cfg, params):
    short = "今天我们在北京的公园里散步。"  # 14 characters, no whitespace words at all
    _check(short, "zh", "gopher_short_doc_chars", clean_cfg, params)
    s = _score(GOOD_ZH, "zh", params)
    assert s["n_chars"] == sum(1 for c in GOOD_ZH if not c.isspace())
    # words rule is off for zh, chars rule off for en
    assert "gopher_short_doc" not in violations(_score(short, "zh", params), clean_cfg.bounds_for("zh"))
    big = GOOD_ZH * 2000
    assert "gopher_long_doc_chars" in violations({"n_chars": float(len(big))}, clean_cfg.bounds_for("zh"))


def test_mean_word_length(clean_cfg, params):
    longw = " ".join(["internationalization" + str(i) for i in range(60)]) + " the and"
    _check(longw, "en", "gopher_mean_word_length", clean_cfg, params)
    shortw = " ".join(["a b c d e f the of"] * 10) + " " + " ".join(f"q{i}" for i in range(20))
    _check(shortw, "en", "gopher_mean_word_length", clean_cfg, params)


def test_hash_and_ellipsis_ratio(clean_cfg, params):
    _check(
        GOOD_EN + "\n" + " ".join(f"#tag{i}" for i in range(30)), "en", "gopher_hash_ratio", clean_cfg, params
    )
    ell = " ".join(w + "..." if i % 5 == 0 else w for i, w in enumerate(GOOD_EN.split(" ")))
    _check(ell, "en", "gopher_ellipsis_ratio", clean_cfg, params)
    zh = GOOD_ZH.replace("，", "……")
    _check(zh, "zh", "gopher_ellipsis_ratio", clean_cfg, params)


def test_bullet_and_ellipsis_lines(clean_cfg, params):
    bullets = "\n".join(f"• item {i} about the tools and parts of the kit number {i}" for i in range(20))
    _check(bullets, "en", "gopher_bullet_lines", clean_cfg, params)
    ell = "\n".join(line + " and more..." for line in GOOD_EN.split("\n"))
    _check(ell, "en", "gopher_ellipsis_lines", clean_cfg, params)
    zh = "\n".join(line + "……" for line in GOOD_ZH.split("\n"))
    _check(zh, "zh", "gopher_ellipsis_lines", clean_cfg, params)


def test_alpha_words(clean_cfg, params):
    nums = GOOD_EN + "\n" + " ".join(f"{i}.{i}" for i in range(200))
    _check(nums, "en", "gopher_alpha_words", clean_cfg, params)
    zh = GOOD_ZH + "\n" + " ".join(str(i) for i in range(400))
    _check(zh, "zh", "gopher_alpha_words", clean_cfg, params)


def test_stop_words_per_language(clean_cfg, params):
    no_stop = " ".join(f"word{i} alpha beta gamma" for i in range(20))
    _check(no_stop, "en", "gopher_stop_words", clean_cfg, params)
    _check(no_stop, "de", "gopher_stop_words", clean_cfg, params)
    assert _score(GOOD_DE, "de", params)["stop_words"] >= 2
    # an English-only document scored as German has no German stop words
    assert _score(GOOD_EN, "de", params)["stop_words"] < 2
    # no list for this language: signal is null and the rule is not applied
    assert _score(no_stop, "xx", params)["stop_words"] is None
    zh_no_stop = "北京上海广州深圳天津重庆南京杭州成都武汉西安苏州郑州长沙青岛宁波厦门大连沈阳济南" * 5
    _check(zh_no_stop, "zh", "gopher_stop_words", clean_cfg, params)


def test_duplicate_lines_and_paragraphs(clean_cfg, params):
    lines = GOOD_EN.split("\n")
    dup = "\n".join(lines + [lines[0]] * 3)
    _check(dup, "en", "gopher_dup_line_frac", clean_cfg, params)
    _check(dup, "en", "gopher_dup_line_char_frac", clean_cfg, params)
    paras = "\n\n".join(
        [GOOD_EN, "A short closing remark.", "A short closing remark.", "A short closing remark."]
    )
    _check(paras, "en", "gopher_dup_para_frac", clean_cfg, params)
    big_para = "\n\n".join([GOOD_EN, GOOD_EN])
    _check(big_para, "en", "gopher_dup_para_char_frac", clean_cfg, params)
    zh = "\n".join(GOOD_ZH.split("\n") + [GOOD_ZH.split("\n")[0]] * 2)
    _check(zh, "zh", "gopher_dup_line_char_frac", clean_cfg, params)


def test_top_ngrams(clean_cfg, params):
    for n, phrase in [(2, "spam offer"), (3, "cheap spam offer"), (4, "buy cheap spam offer")]:
        text = GOOD_EN + "\n" + " ".join([phrase] * 40)
        s = _score(text, "en", params)
        assert s[f"top_{n}gram_char_frac"] > {2: 0.2, 3: 0.18, 4: 0.16}[n]
        _check(text, "en", f"gopher_top_{n}gram", clean_cfg, params)
    zh = GOOD_ZH + "\n" + "便宜的手机" * 60
    _check(zh, "zh", "gopher_top_2gram", clean_cfg, params)


def test_duplicate_ngrams(clean_cfg, params):
    s_good = _score(GOOD_EN, "en", params)
    assert all(s_good[f"dup_{n}gram_char_frac"] == 0.0 for n in range(5, 11))
    sentence = " ".join(GOOD_EN.split()[:12])
    text = GOOD_EN + "\n" + "\n".join(f"{sentence} version {i}" for i in range(6))
    for n in range(5, 11):
        _check(text, "en", f"gopher_dup_{n}gram", clean_cfg, params)
    zh_sentence = GOOD_ZH.split("。")[0]
    zh = GOOD_ZH + "\n" + "\n".join(f"{zh_sentence}第{i}次。" for i in range(6))
    _check(zh, "zh", "gopher_dup_5gram", clean_cfg, params)


def test_ngram_signals_exact():
    # "a b c a b c": 2-gram "a b" occurs twice -> 2 * 2 chars / 6 chars
    s = ngram_signals(["a", "b", "c", "a", "b", "c"])
    assert s["top_2gram_char_frac"] == pytest.approx(4 / 6)
    assert s["top_3gram_char_frac"] == pytest.approx(6 / 6)
    assert s["dup_5gram_char_frac"] == 0.0
    words = [f"w{i}" for i in range(5)] * 2 + ["zz"]  # the 5-gram w0..w4 occurs twice
    s = ngram_signals(words)
    assert s["dup_5gram_char_frac"] == pytest.approx(20 / 22)
    assert s["dup_6gram_char_frac"] == 0.0


def test_c4_rules(clean_cfg, params):
    _check(GOOD_EN + "\nLorem ipsum dolor sit amet.", "en", "c4_lorem_ipsum", clean_cfg, params)
    _check(GOOD_EN + "\nfunction f() { return 1; }", "en", "c4_curly_brace", clean_cfg, params)
    js = (
        "Please enable JavaScript to use this site.\nYour browser has JavaScript disabled.\n"
        + GOOD_EN.split("\n")[0]
    )
    _check(js, "en", "c4_javascript", clean_cfg, params)
    pol = "Read our Privacy Policy.\nThis site uses cookies.\nTerms of Use apply.\n" + GOOD_EN.split("\n")[0]
    _check(pol, "en", "c4_policy", clean_cfg, params)
    zh_pol = "请阅读我们的隐私政策。\n使用条款\n" + GOOD_ZH.split("\n")[0]
    _check(zh_pol, "zh", "c4_policy", clean_cfg, params)


def test_c4_line_removal(params):
    text = GOOD_EN + "\nPlease enable JavaScript.\nWe use cookies to improve this site."
    out, s = score_document(text, "en", params)
    assert out == GOOD_EN
    assert s["javascript_lines"] == 1 and s["policy_lines"] == 1
    keep = HeuristicParams(remove_javascript_lines=False, remove_policy_lines=False)
    out, _ = score_document(text, "en", keep)
    assert out == text


def test_bounds_both_sides_and_null():
    sig = {"n_words": 10.0, "mean_word_length": 5.0}
    assert decide(sig, {"gopher_short_doc": Bounds(min=11)}) == "gopher_short_doc"
    assert decide(sig, {"gopher_short_doc": Bounds(min=10)}) is None
    assert decide(sig, {"gopher_mean_word_length": Bounds(min=3, max=4)}) == "gopher_mean_word_length"
    assert decide(sig, {"gopher_mean_word_length": Bounds()}) is None
    assert decide({"stop_words": None}, {"gopher_stop_words": Bounds(min=2)}) is None


def test_config_rejects_unknown_rule_and_bad_bounds():
    with pytest.raises(ValueError, match="unknown rule"):
        load_config(overrides=["clean.rules.gopher_nonsense={max: 1}"])
    with pytest.raises(ValueError, match="min .* > max"):
        load_config(overrides=["clean.rules.gopher_short_doc={min: 5, max: 1}"])


def test_normalized_words_equal_strip_punct_per_token():
    from pipeline.clean.heuristics import normalized_words
    from pipeline.clean.text import strip_punct

    text = "Hello, World! «Quoted» (x) -- a_b __init__ 3.14% ¿Qué? naïve… it's 日本語。 ## end."
    assert normalized_words(text) == [w for w in (strip_punct(t) for t in text.split()) if w]


def test_fineweb_line_rules(clean_cfg, params):
    from pipeline.clean.heuristics.fineweb import fineweb_signals

    listing = "\n".join(f"Item {i} | Price {i} EUR" for i in range(20))
    s = fineweb_signals(listing)
    assert s == {"line_punct_frac": 0.0, "short_line_frac": 1.0}
    _check(listing * 3, "en", "fineweb_line_punct", clean_cfg, params)
    _check(listing * 3, "en", "fineweb_short_lines", clean_cfg, params)
    zh = fineweb_signals("第一行内容结束了。\n第二行没有标点\n")
    assert zh["line_punct_frac"] == 0.5 and zh["short_line_frac"] == 1.0
    assert fineweb_signals("") == {"line_punct_frac": 0.0, "short_line_frac": 0.0}
    assert violations(_score(GOOD_EN, "en", params), clean_cfg.bounds_for("en")) == []


def test_fineweb_rules_read_through_table_cells():
    from pipeline.clean.heuristics.fineweb import fineweb_signals

    s = fineweb_signals("| | | |\n| Hoya is a genus of tropical plants in the Asclepiad family. | |\n| Hoya Links | Email |")
    assert s == {"line_punct_frac": 0.5, "short_line_frac": 0.5}


def test_chinese_alpha_words_count_words_not_punctuation(params):
    """Gopher's alphabetic-word fraction over jieba words: punctuation tokens are not words, so clean
    Chinese prose scores 1.0 (as clean English does) and numbers lower it."""
    s = _score(GOOD_ZH, "zh", params)
    assert s["alpha_word_frac"] == 1.0
    nums = _score(GOOD_ZH + "\n" + " ".join(str(i) for i in range(100)), "zh", params)
    assert nums["alpha_word_frac"] < 0.6
