"""The ``filter`` stage: config validation, the scoring body, and the Spark job end to end."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from pipeline.config import build_dataclass
from pipeline.filter.config import FilterConfig
from tests.test_quality import PARAGRAPH

CLUTTER_DOC = "Home | News | Sport | Weather | Contact\nShare on Facebook | Tweet | Email\n© 2024 Example Media. All rights reserved."
MIXED_DOC = "Home | News | Sport | Contact\n" + PARAGRAPH + "\nShare on Facebook | Tweet\nCookie settings | Privacy policy"


def _defaults() -> dict:
    from pipeline.config import DEFAULTS_DIR

    return yaml.safe_load((DEFAULTS_DIR / "filter.yaml").read_text())


def _clean_cfg():
    from pipeline.config import load_config

    return load_config().clean


def test_config_defaults_and_validation():
    fc = build_dataclass(FilterConfig, _defaults(), "filter")
    assert 0 < fc.clutter.threshold < 1 and 0 < fc.quality.threshold < 1
    with pytest.raises(ValueError, match="filter.quality.threshold=1.5"):
        build_dataclass(FilterConfig, {"quality": {"threshold": 1.5}}, "filter")
    with pytest.raises(ValueError, match=r"threshold_by_lang.zh=-0.1"):
        build_dataclass(FilterConfig, {"clutter": {"threshold_by_lang": {"zh": -0.1}}}, "filter")
    with pytest.raises(ValueError, match="raise filter.arrow_max_records_per_batch"):
        build_dataclass(FilterConfig, {"arrow_max_records_per_batch": 64}, "filter")
    with pytest.raises(ValueError, match="filter.device"):
        build_dataclass(FilterConfig, {"device": "tpu"}, "filter")


def test_score_texts_cleans_and_scores():
    from udfs.models import ScoreSpec, category_module, score_texts

    spec = ScoreSpec.from_config(build_dataclass(FilterConfig, _defaults(), "filter"), _clean_cfg())
    out = score_texts([MIXED_DOC, ""], ["en", None], spec, "cpu")
    assert list(out.columns) == ["text_clean", "clutter_lines_removed", "quality_score", "category",
                                 "category_name", "category_prob", "keep_score"]
    assert 0 < out["keep_score"][0] < 1 and out["keep_score"].isna()[1]
    assert PARAGRAPH.split("\n")[0] in out["text_clean"][0]
    # The cleaned text is exactly the lines the clutter model scores >= the configured threshold ...
    from models.clutter import load
    from pipeline.filter.clutter import split_lines

    lines = split_lines(MIXED_DOC)
    scores = load(None, "cpu").score_docs([lines])[0]
    kept = [ln for ln, x in zip(lines, scores) if x >= spec.clutter_threshold]
    assert out["text_clean"][0] == "\n".join(kept) and out["clutter_lines_removed"][0] == len(lines) - len(kept)
    # ... and the committed model removes the navigation and cookie lines at that threshold.
    assert out["clutter_lines_removed"][0] >= 2 and "Cookie settings" not in out["text_clean"][0]
    assert "Home | News" not in out["text_clean"][0]
    assert 0 <= out["quality_score"][0] <= 1
    assert out["text_clean"][1] == "" and out["clutter_lines_removed"][1] == 0
    if category_module() is not None:
        assert 0 <= out["category"][0] < 200 and isinstance(out["category_name"][0], str)


def test_score_texts_is_independent_of_batch_composition():
    from tests.test_quality import PARAGRAPH as P
    from udfs.models import ScoreSpec, score_texts

    spec = ScoreSpec.from_config(build_dataclass(FilterConfig, _defaults(), "filter"), _clean_cfg())
    rng = random.Random(11)
    texts = [MIXED_DOC, CLUTTER_DOC, P] + ["\n".join(rng.sample(P.split("\n") + CLUTTER_DOC.split("\n"), 4))
                                          for _ in range(9)]
    langs = ["en"] * len(texts)
    whole = score_texts(texts, langs, spec, "cpu")
    parts = [score_texts(texts[i : i + 5], langs[i : i + 5], spec, "cpu") for i in range(0, len(texts), 5)]
    split = __import__("pandas").concat(parts, ignore_index=True)
    for col in ("text_clean", "clutter_lines_removed", "quality_score"):
        assert whole[col].equals(split[col]), col  # NaN (empty text) compares equal here


@pytest.mark.spark
def test_filter_job_on_small_documents_table(spark, cfg, tmp_path, monkeypatch):
    from jobs import filter as filter_job
    from jobs.common import run_stage
    from pipeline.config import load_config
    from pipeline.filter.quality import corrupt
    from udfs import resources
    from udfs.models import ScoreSpec, category_module, score_texts

    bad = corrupt(PARAGRAPH, "word_shuffle", random.Random(3))
    docs = [
        ("d1", "https://a.example/1", PARAGRAPH, "en"),
        ("d2", "https://a.example/2", MIXED_DOC, "en"),
        ("d3", "https://b.example/3", CLUTTER_DOC, "xx"),
        ("d4", "https://b.example/4", None, "en"),
        ("d5", "https://c.example/5", bad, "yy"),
        ("d6", "https://c.example/6", PARAGRAPH + "\nMore at the town hall.", "zz"),
    ]
    # Thresholds from the CPU scores, so that each drop reason fires on a known document.
    base = ScoreSpec.from_config(cfg.filter, cfg.clean)
    sc = score_texts([d[2] or "" for d in docs], [d[3] for d in docs], base, "cpu")
    from models.clutter import load as load_clutter
    from pipeline.filter.clutter import split_lines

    d3_max = float(load_clutter(None, "cpu").score_docs([split_lines(CLUTTER_DOC)])[0].max())
    assert d3_max < 0.999, "the clutter model should not score pure navigation lines ~1"
    q5 = float(sc["quality_score"][4])
    assert q5 < 0.999
    k6 = float(sc["keep_score"][5])
    assert k6 < 0.999
    overrides = [
        "spark.profile=tests",
        f"filter.clutter.threshold_by_lang={{xx: {min(1.0, d3_max + 1e-3)}}}",
        f"filter.quality.threshold_by_lang={{yy: {min(1.0, q5 + 1e-3)}}}",
        "filter.quality.threshold=0.0",
        f"filter.keep.threshold_by_lang={{en: null, zz: {min(1.0, k6 + 1e-3)}}}",
    ]
    run_cfg = load_config(overrides=overrides)

    inp = tmp_path / "in"
    df = spark.createDataFrame(docs, "doc_id string, url string, text string, lang string")
    df.repartition(3).write.parquet(str(inp))
    (inp / "_SUCCESS").write_text("")
    out = tmp_path / "out"
    arrow_before = spark.conf.get(filter_job.ARROW_BATCH_CONF, None)
    # The models run through the batched path of udfs.resources (mapInArrow in the stage's GPU profile;
    # a local master has no stage-level scheduling, so the profile is None here).
    calls = []
    real = resources.map_in_arrow

    def spy(df, func, schema, profile=None):
        calls.append(profile)
        return real(df, func, schema, profile)

    monkeypatch.setattr(resources, "map_in_arrow", spy)
    stats = run_stage("filter", filter_job.run, spark, run_cfg, [str(inp)], str(out), keep_dropped=True)
    assert spark.conf.get(filter_job.ARROW_BATCH_CONF, None) == arrow_before  # restored for later stages
    assert calls == [None]

    assert stats["input"] == 6 and stats["output"] == 2
    assert stats["dropped"] == {"clutter_empty_after_removal": 1, "error_filter_null_text": 1,
                                "quality_below_threshold": 1, "keep_score_below_threshold": 1}
    assert json.loads((out / "_stats.json").read_text())["filter"]["clutter_lines_removed"] >= 5
    kept = {r["doc_id"]: r for r in spark.read.parquet(str(out)).collect()}
    dropped = {r["doc_id"]: r["drop_reason"] for r in spark.read.parquet(str(out / "_dropped")).collect()}
    assert set(kept) == {"d1", "d2"}
    assert dropped == {"d3": "clutter_empty_after_removal", "d4": "error_filter_null_text",
                       "d5": "quality_below_threshold", "d6": "keep_score_below_threshold"}
    d2 = kept["d2"]
    assert d2["text"] == sc["text_clean"][1] and d2["clutter_lines_removed"] == int(sc["clutter_lines_removed"][1])
    assert d2["quality_score"] == pytest.approx(float(sc["quality_score"][1]), abs=1e-5)
    assert d2["clutter_model"].startswith("clutter-") and d2["quality_model"].startswith("quality-")
    assert d2["keep_model"].startswith("keep-")
    assert d2["keep_score"] == pytest.approx(float(sc["keep_score"][1]), abs=1e-6)
    assert d2["url"] == "https://a.example/2"
    if category_module() is not None:
        assert d2["category_model"] and 0 <= d2["category"] < 200 and d2["category_name"]
    else:
        assert d2["category"] is None and d2["category_model"] is None
