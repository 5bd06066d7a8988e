"""Stage 1 on Spark: the generated sample crawl (known outcome per record) and the real data in
../shared/data (every record accounted for, nothing crashes)."""

from __future__ import annotations

import glob
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from jobs import prepare
from jobs.common import run_stage
from pipeline.prepare.process import make_doc_id
from pipeline.prepare.samplegen import generate
from pipeline.prepare.urlfilter import normalize_url
from pipeline.prepare.warc import iter_records
from tests.conftest import shared_data

pytestmark = pytest.mark.spark

EXPECTED = {
    "url_blocklist": {"url_blocklist_domain", "url_blocklist_keyword"},
    "non_html": {"content_type_not_html"},
    "http_status": {"http_status_not_200"},
    "empty_text": {"extract_empty"},
    "lang": {"lang_not_kept", "lang_below_threshold", "lang_prefilter_not_kept"},
    "exact_duplicate": {"exact_duplicate"},
    "error": {"error_warc_corrupt", "error_warc_truncated"},
    "not_a_response": {"warc_not_response"},
}


def read_rows(path) -> list[dict]:
    return pq.read_table(str(path)).to_pylist()


@pytest.fixture(scope="module")
def sample(tmp_path_factory, spark, cfg):
    d = tmp_path_factory.mktemp("prep")
    manifest = generate(str(d / "sample.warc.gz"), seed=3, n_articles=60)
    out = d / "out"
    stats = run_stage("prepare", prepare.run, spark, cfg, [str(d / "sample.warc.gz")], str(out), keep_dropped=True)
    return manifest, out, stats


def test_sample_every_record_accounted(sample):
    manifest, out, stats = sample
    assert stats["input"] == manifest["n_records"]
    assert stats["input"] == stats["output"] + sum(stats["dropped"].values())
    on_disk = json.loads((out / "_stats.json").read_text())
    assert on_disk["input"] == stats["input"] and (out / "_SUCCESS").exists()
    assert json.loads((out / "_config.json").read_text())["prepare"]["lang_threshold"] == 0.65


def test_sample_outcomes_match_manifest(sample):
    manifest, out, _ = sample
    kept = {r["url"]: r for r in read_rows(out)}
    dropped = read_rows(out / "_dropped")
    by_id = {r["doc_id"]: r for r in dropped}
    by_url = {r["url"]: r for r in dropped if r["url"] and r["drop_reason"] != "warc_not_response"}
    reasons = Counter(r["drop_reason"] for r in dropped)
    # Exact-duplicate groups: exactly one member survives (which one is seeded, not positional).
    groups: dict[str, list[str]] = {}
    for rec in manifest["records"]:
        if rec.get("duplicate_of"):
            groups.setdefault(normalize_url(rec["duplicate_of"]), []).append(normalize_url(rec["url"]))
    for first, copies in groups.items():
        members = [first, *copies]
        assert sum(u in kept for u in members) == 1, members
        assert all(by_url[u]["drop_reason"] == "exact_duplicate" for u in members if u not in kept)
    for rec in manifest["records"]:
        url = normalize_url(rec["url"]) if rec["url"] else None
        if rec["expect"] == "kept":
            if url in groups and url not in kept:
                continue
            assert url in kept, rec["url"]
            row = kept[url]
            assert rec["probe"] in row["text"], (rec["url"], rec["charset"], row["charset"])
            assert row["lang"] == rec["lang"]
            assert row["content_hash"] and row["doc_id"]
        elif rec["reason"] in ("exact_duplicate", "error", "not_a_response"):
            continue  # checked by counts below (survivor choice is seeded; errors have no URL)
        else:
            row = by_id[make_doc_id(rec["record_id"], None, None, "", 0)]
            assert row["drop_reason"] in EXPECTED[rec["reason"]], (rec, row["drop_reason"])
    for kind in ("exact_duplicate", "error", "not_a_response"):
        want = manifest["counts"].get(kind, 0)
        assert sum(reasons[r] for r in EXPECTED[kind]) == want, kind


def test_legacy_charsets_decoded(sample):
    manifest, out, _ = sample
    kept = {r["url"]: r for r in read_rows(out)}
    seen = set()
    for rec in manifest["records"]:
        url = normalize_url(rec["url"]) if rec["url"] else None
        if rec["expect"] == "kept" and rec.get("charset") and url in kept:
            seen.add(rec["charset"].lower())
            assert "\ufffd" not in kept[url]["text"]
    assert {"gbk", "utf-8"} <= seen or {"gb2312", "utf-8"} <= seen, seen


def test_exact_dedup_survivor_is_seeded_not_positional(sample, spark, cfg, tmp_path):
    manifest, out, _ = sample
    rows = read_rows(out)
    hashes = Counter(r["content_hash"] for r in rows)
    assert max(hashes.values()) == 1  # one survivor per hash
    # Rerun with another seed and another file count: survivors may change, the set of hashes not.
    from pipeline.config import load_config

    cfg2 = load_config(overrides=["spark.profile=tests", "seed=99", "prepare.num_files=3"])
    src = manifest["path"]
    stats = run_stage("prepare", prepare.run, spark, cfg2, [src], str(tmp_path / "o2"))
    rows2 = read_rows(tmp_path / "o2")
    assert {r["content_hash"] for r in rows2} == set(hashes)
    assert stats["dropped"]["exact_duplicate"] == manifest["counts"]["exact_duplicate"]
    assert len(glob.glob(str(tmp_path / "o2" / "part-*.parquet"))) == 3


def test_rerun_is_byte_identical_and_skips_when_complete(sample, spark, cfg, tmp_path):
    manifest, out, _ = sample
    o = tmp_path / "again"
    run_stage("prepare", prepare.run, spark, cfg, [manifest["path"]], str(o))
    a = sorted(glob.glob(str(out / "part-*.parquet")))
    b = sorted(glob.glob(str(o / "part-*.parquet")))
    assert [open(x, "rb").read() for x in a] == [open(x, "rb").read() for x in b]
    # _SUCCESS present: skipped without recomputing (returns the stored stats)
    stats = run_stage("prepare", prepare.run, spark, cfg, ["/does/not/exist"], str(o))
    assert stats["input"] == manifest["n_records"]


def test_bad_input_path_is_a_clear_error(spark, cfg, tmp_path):
    with pytest.raises(ValueError, match="matches no file"):
        run_stage("prepare", prepare.run, spark, cfg, [str(tmp_path / "nope*.warc.gz")], str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def _count_items(path: str) -> int:
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        return sum(1 for _ in iter_records(f, head == b"\x1f\x8b", 5_000_000))


@pytest.mark.shared_data
def test_broken_fixtures_all_accounted(spark, cfg, tmp_path):
    files = sorted(
        glob.glob(str(shared_data("warcio-warc/test/data")) + "/*")
        + glob.glob(str(shared_data("resiliparse-warc/tests/data")) + "/*")
    )
    files = [f for f in files if not f.endswith((".json", ".txt", ".md"))]
    assert len(files) >= 15
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(files) + "\n")
    stats = run_stage("prepare", prepare.run, spark, cfg, [str(listing)], str(tmp_path / "o"))
    assert stats["input"] == sum(_count_items(f) for f in files)
    assert stats["input"] == stats["output"] + sum(stats["dropped"].values())
    assert stats["output"] > 0
    assert sum(stats["errors"].values()) >= 1  # the broken files are counted, not crashed on


@pytest.mark.shared_data
def test_real_sample_crawl_file(spark, cfg, tmp_path):
    src = shared_data("warc/sample-crawl-00003.warc.gz")
    stats = run_stage("prepare", prepare.run, spark, cfg, [str(src)], str(tmp_path / "o"))
    assert stats["input"] == _count_items(str(src))
    assert stats["input"] == stats["output"] + sum(stats["dropped"].values())
    rows = read_rows(tmp_path / "o")
    assert {r["lang"] for r in rows} <= {"zh", "en"}
    assert all(r["lang_score"] >= 0.65 for r in rows)
    zh = [r for r in rows if r["lang"] == "zh"]
    assert zh and all("\ufffd" not in r["text"][:2000] for r in zh)
