"""The labelled evaluation set: site split, label validation, the text join, and the bench's tables."""

from __future__ import annotations

import json

import pytest

from bench.filters import compare, summarize
from pipeline.filter import evalset
from pipeline.filter.clutter import CLUTTER_EMPTY
from pipeline.filter.decisions import NULL_TEXT, filter_reason
from pipeline.filter.quality import QUALITY_BELOW
from tests.conftest import shared_data

LEAVES = {"Crime Reports", "World News", "Navigation and Index Pages"}


def _doc(doc_id, url="https://news.example.com/a", domain="example.com", lang="en", text="Some text."):
    return {"doc_id": doc_id, "url": url, "domain": domain, "lang": lang, "text": text, "fetch_time": "t"}


def _raw(doc_id, **kw):
    rec = {"id": doc_id, "verdict": "keep", "remove_why": None, "kind": "news", "category": "Crime Reports",
           "category_alts": ["World News"], "note": "rescue story"}
    rec.update(kw)
    return rec


def test_site_is_the_domain_except_on_gold_mirrors():
    assert evalset.site_of("https://a.bbc.co.uk/x", "bbc.co.uk") == "bbc.co.uk"
    u = "http://dragnet_data.html-cleaning.test/R319"
    assert evalset.site_of(u, "dragnet_data.html-cleaning.test") == u
    assert evalset.site_of("http://x.trafilatura-eval.test/1", "x.trafilatura-eval.test").endswith("/1")
    assert evalset.site_of("http://163.gne-news.test/1.html", "163.gne-news.test") == "163.gne-news.test"


def test_split_is_by_site_deterministic_and_near_half():
    sites = [f"site{i}.com" for i in range(2000)]
    splits = [evalset.split_of(s) for s in sites]
    assert splits == [evalset.split_of(s) for s in sites]
    assert 0.45 < splits.count("test") / len(splits) < 0.55
    assert {evalset.split_of("a.com", 0)} == {"dev"} and {evalset.split_of("a.com", 100)} == {"test"}
    docs = {f"d{i}": _doc(f"d{i}", url=f"https://same.com/{i}", domain="same.com") for i in range(20)}
    recs, _ = evalset.build_labels([_raw(d) for d in docs], docs, LEAVES)
    assert len({r["split"] for r in recs}) == 1  # pages of one site never straddle splits


def test_labels_are_validated_and_counted():
    docs = {d: _doc(d) for d in ("a", "b", "c", "d", "e")}
    docs["e"]["text"] = "  "
    raw = [
        _raw("a", category="Hotels", category_alts=["World News", "Nope", "World News"]),
        _raw("b", verdict="remove", remove_why="listing", kind="listing", category="Navigation and Index Pages"),
        _raw("c", verdict="maybe"),
        _raw("a"),  # labelled twice: the first record wins
        _raw("zz"),  # not a page of the crawl
        _raw("d", verdict="keep", remove_why="spam", kind="weird"),
        _raw("e"),
    ]
    recs, probs = evalset.build_labels(raw, docs, LEAVES)
    by = {r["id"]: r for r in recs}
    assert sorted(by) == ["a", "b", "d"]
    assert by["a"]["category"] is None and by["a"]["category_alts"] == ["World News"]
    assert by["b"]["remove_why"] == "listing" and by["b"]["verdict"] == "remove"
    assert by["d"]["remove_why"] is None and by["d"]["kind"] == "other"
    assert probs.dropped == {"bad_verdict": 1, "duplicate_id": 1, "id_not_in_crawl": 1, "no_stage1_text": 1}
    assert probs.changed["category_unknown"] == 1 and probs.changed["category_alt_unknown"] == 1
    assert probs.changed["remove_why_on_keep"] == 1 and probs.changed["kind_unknown"] == 1
    assert evalset.accepted(by["a"]) == ["World News"]


def test_label_file_round_trip_and_errors(tmp_path):
    docs = {"a": _doc("a")}
    recs, _ = evalset.build_labels([_raw("a")], docs, LEAVES)
    p = tmp_path / "labels.jsonl"
    evalset.write_labels(p, recs)
    back = evalset.read_labels(p)
    assert back == recs and "text" not in back[0]  # no page text in the label file
    bad = dict(recs[0], split="train")
    p.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="split"):
        evalset.read_labels(p)
    p.write_text(json.dumps({"id": "a"}) + "\n")
    with pytest.raises(ValueError, match="missing field"):
        evalset.read_labels(p)


def test_join_texts_reports_missing_pages():
    docs = {"a": _doc("a", text="Body."), "b": dict(_doc("b"), text=None, drop_reason="extract_empty")}
    recs, _ = evalset.build_labels([_raw("a")], docs, LEAVES)
    recs.append(dict(recs[0], id="b"))
    joined, missing = evalset.join_texts(recs, docs)
    assert [r["text"] for r in joined] == ["Body."] and missing == ["b"]


def test_shared_warcs_absent_gives_a_reason(tmp_path):
    files, why = evalset.shared_warcs(tmp_path)
    assert files is None and "absent" in why


def test_stage1_documents_runs_prepare_and_caches(tmp_path, monkeypatch):
    warc = shared_data("warcio-warc/test/data/example.warc.gz")
    rows = evalset.stage1_documents([warc], tmp_path, log=lambda *_: None)
    assert rows and all("drop_reason" in r and "text" in r for r in rows.values())
    assert len(list(tmp_path.glob("stage1-*.jsonl.gz"))) == 1

    def boom(*a, **k):
        raise AssertionError("stage 1 must not run again: the cache answers")

    monkeypatch.setattr("pipeline.prepare.process.process_warc_file", boom)
    assert evalset.stage1_documents([warc], tmp_path) == rows


def test_filter_reason_order_and_language_thresholds():
    assert filter_reason(None, None, None, "en", 0.5) == NULL_TEXT
    assert filter_reason("x", "  ", 0.9, "en", 0.5) == CLUTTER_EMPTY
    assert filter_reason("x", "x", 0.3, "en", 0.5) == QUALITY_BELOW
    assert filter_reason("x", "x", 0.3, "zh", 0.5, {"zh": 0.2}) is None
    assert filter_reason("x", "x", 0.3, "en", 0.5, {"zh": 0.2}) == QUALITY_BELOW
    assert filter_reason("x", "x", float("nan"), "en", 0.5) is None
    assert filter_reason("x", "x", None, "en", 0.5) is None


def test_summarize_counts_alone_first_and_totals():
    recs = [
        {"id": "k1", "lang": "en", "verdict": "keep", "url": "u1"},
        {"id": "k2", "lang": "en", "verdict": "keep", "url": "u2"},
        {"id": "j1", "lang": "en", "verdict": "remove", "url": "u3"},
        {"id": "z1", "lang": "zh", "verdict": "keep", "url": "u4"},
    ]
    def c(viol, raw=None):
        return {"violations": viol, "reason": viol[0] if viol else None,
                "reason_without_line_dedup": raw if raw is not None else (viol[0] if viol else None),
                "line_dedup_touched": raw is not None}
    clean = {"k1": c(["gopher_a", "gopher_b"]), "k2": c([]), "j1": c(["gopher_b"]), "z1": c([], raw="gopher_a")}
    filt = {"k1": {"violations": [QUALITY_BELOW], "reason": QUALITY_BELOW}, "k2": {"violations": [], "reason": None},
            "j1": {"violations": [QUALITY_BELOW], "reason": QUALITY_BELOW}, "z1": {"violations": [], "reason": None}}
    s = summarize(recs, clean, filt)
    en = s["en"]
    assert (en["keep"], en["remove"]) == (2, 1)
    assert en["rules"]["gopher_b"]["good_removed_alone"] == 1 and en["rules"]["gopher_b"]["junk_caught_first"] == 1
    assert en["rules"]["gopher_a"]["good_removed_first"] == 1 and en["rules"]["gopher_b"]["good_removed_first"] == 0
    assert en["rules"][QUALITY_BELOW]["good_removed_alone"] == 1 and en["rules"][QUALITY_BELOW]["junk_caught_first"] == 0
    assert en["totals"]["clean+filter"]["good_removed_pct"] == 0.5 and en["totals"]["clean+filter"]["junk_caught_pct"] == 1.0
    assert s["zh"]["rules"]["line_dedup_changed_decision"]["good_removed_alone"] == 1
    assert s["zh"]["line_dedup_touched"] == {"keep": 1, "remove": 0}
    assert list(s) == ["en", "zh"]


def test_compare_with_spark_counts_differences():
    res = compare({"a": None, "b": "x", "c": None}, {"a": None, "b": "y", "d": "z"})
    assert (res["compared"], res["agree"], res["n_differ"]) == (2, 1, 1) and res["differ"] == [("b", "x", "y")]


def test_crawl_estimate_weights_strata_by_their_size():
    from bench.filters import crawl_estimate

    recs = [{"id": f"k{i}", "verdict": "keep"} for i in range(4)] + [{"id": "j", "verdict": "remove"}]
    strata = {"k0": "dropped", "k1": "dropped", "k2": "kept", "k3": "kept", "j": "kept"}
    removed = {"k0", "k1", "j"}
    clean = {r["id"]: {"reason": "x" if r["id"] in removed else None} for r in recs}
    filt = {r["id"]: {"reason": None} for r in recs}
    # 2 dropped pages in the crawl (both labelled), 300 kept (3 labelled): weights 1 and 100
    est = crawl_estimate(recs, clean, filt, strata, {"dropped": 2, "kept": 300})
    assert est["good_removed_pct"] == 2 / (2 + 200)
    assert est["junk_caught_pct"] == 1.0
    assert est["labelled_by_stratum"] == {"dropped": 2, "kept": 3}


def test_annotations_read_in_file_order_and_bad_json_names_the_line(tmp_path):
    (tmp_path / "batch-01.jsonl").write_text(json.dumps({"id": "b"}) + "\n", encoding="utf-8")
    (tmp_path / "batch-00.jsonl").write_text(json.dumps({"id": "a"}) + "\n\n", encoding="utf-8")
    recs = evalset.read_annotations([tmp_path / "batch-01.jsonl", tmp_path / "batch-00.jsonl"])
    assert [r["id"] for r in recs] == ["a", "b"]
    (tmp_path / "batch-02.jsonl").write_text('{"id": "c"}\n{not json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"batch-02.jsonl:2"):
        evalset.read_annotations([tmp_path / "batch-02.jsonl"])


def test_bench_filter_decisions_record_each_model_alone_and_the_first_reason():
    """bench.filters' filter decision with precomputed scores: the keep score applies per language
    (English threshold, Chinese score only), each model's violation is recorded on its own, the
    reason is the first in the stage's order."""
    from bench.filters import filter_decisions
    from pipeline.config import load_config
    from pipeline.filter.keepscore import KEEP_BELOW

    fc = load_config(overrides=["filter.quality.threshold_by_lang={en: 0.5, zh: 0.2}",
                                "filter.keep.threshold_by_lang={en: 0.4, zh: null}"]).filter
    recs = [{"id": i, "lang": lg} for i, lg in (("a", "en"), ("b", "en"), ("c", "zh"), ("d", "en"))]
    clean = {i: {"text": "some text"} for i in "abcd"}
    scores = [{"text_clean": "t", "lines_removed": 0, "quality": 0.3, "keep_score": 0.1},   # both fire
              {"text_clean": "t", "lines_removed": 0, "quality": 0.9, "keep_score": 0.39},  # keep only
              {"text_clean": "t", "lines_removed": 0, "quality": 0.9, "keep_score": 0.01},  # zh: score only
              {"text_clean": "t", "lines_removed": 0, "quality": 0.9, "keep_score": None}]  # no score
    out = filter_decisions(recs, clean, fc, scores=scores)
    assert out["a"]["reason"] == QUALITY_BELOW and out["a"]["violations"] == [QUALITY_BELOW, KEEP_BELOW]
    assert out["b"]["reason"] == KEEP_BELOW and out["b"]["violations"] == [KEEP_BELOW]
    assert out["c"]["reason"] is None and out["c"]["violations"] == []
    assert out["d"]["reason"] is None
