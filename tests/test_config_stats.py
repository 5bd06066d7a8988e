"""Typed config resolution and stage accounting (no Spark)."""

from __future__ import annotations

import json

import pytest

from pipeline.config import deep_merge, load_config, parse_set
from pipeline.stats import StageStats, format_funnel


def test_defaults_load_every_section():
    cfg = load_config()
    for section in ("spark", "prepare", "clean", "dedup", "filter", "balance", "tokenize"):
        assert getattr(cfg, section) is not None, section
    assert cfg.prepare.lang_threshold == 0.65
    assert cfg.prepare.keep_langs == ["zh", "en"]
    json.loads(cfg.to_json())


def test_user_file_and_set_override(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("seed: 7\nprepare:\n  lang_threshold: 0.5\n  keep_langs: [de]\n")
    cfg = load_config(f, ["prepare.keep_langs=[zh, en, fr]"])
    assert cfg.seed == 7
    assert cfg.prepare.lang_threshold == 0.5
    assert cfg.prepare.keep_langs == ["zh", "en", "fr"]


def test_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown config section"):
        load_config(overrides=["nosuchstage.x=1"])
    with pytest.raises(ValueError, match="spark.profile"):
        load_config(overrides=["spark.profile=nope"])
    with pytest.raises(ValueError, match="expected key.path=value"):
        parse_set(["novalue"])
    with pytest.raises(ValueError, match="does not exist"):
        load_config("/no/such/file.yaml")


def test_deep_merge_and_parse_set():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    assert parse_set(["a.b=1", "a.c=[1,2]", "d=true"]) == {"a": {"b": 1, "c": [1, 2]}, "d": True}


def test_stats_add_up_and_errors():
    s = StageStats("x")
    s.add_reasons({None: 5, "lang_not_kept": 3, "error_warc_corrupt": 1})
    s.check()
    d = s.to_dict()
    assert d["input"] == 9 and d["output"] == 5
    assert d["errors"] == {"error_warc_corrupt": 1}
    s.input += 1
    with pytest.raises(AssertionError):
        s.check()
    assert "lang_not_kept" in format_funnel([d])
