"""bench.chassis helpers: the replicated input and the table (the whole-job runs are the bench itself)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from bench import chassis


def test_replicate_makes_distinct_ids_and_urls_with_a_manifest(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"doc_id": [f"a{i}", f"b{i}"], "url": [f"u{i}", None], "text": ["x", "y"]}),
                       src / f"part-{i:05d}.parquet")
    (src / "_SUCCESS").write_text("")
    out = chassis.replicate(src, tmp_path / "x3", 3)
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 12 and len({r["doc_id"] for r in rows}) == 12
    assert {r["doc_id"] for r in rows} >= {"a0", "a0-r1", "a0-r2"}
    assert sum(r["url"] == "u0#r2" for r in rows) == 1
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert sorted(f["path"] for f in manifest["files"]) == ["part-00000.parquet", "part-00001.parquet"]
    assert pq.read_table(out / "part-00000.parquet").column("doc_id").to_pylist()[:4] == ["a0", "b0", "a0-r1", "b0-r1"]


def test_table_lists_each_run_and_the_marginal_share():
    def run(stage, scale, n, job, loop):
        return {"stage": stage, "scale": scale, "records": n, "job": {"cpu_s": job}, "loop": {"cpu_s": loop, "records": n},
                "chassis": (job - loop) / job, "load_before": "1.00 1.00 1.00", "load_after": "2.00 1.00 1.00"}

    small, big = run("clean", 1, 100, 20.0, 5.0), run("clean", 4, 400, 40.0, 20.0)
    small["marginal"] = {"records": 300, "job_cpu_s": 20.0, "loop_cpu_s": 15.0, "chassis": 0.25}
    text = chassis.table({"stages": [{"small": small, "big": big}]})
    lines = text.splitlines()
    assert lines[2].startswith("| clean x1 | 100 | 20.0 | 5.0 | 75% |")
    assert lines[3].startswith("| clean x4 | 400 | 40.0 | 20.0 | 50% |")
    assert lines[4].startswith("| clean marginal | +300 | +20.0 | +15.0 | 25% |")


def test_loop_filter_gives_the_category_model_urls_and_titles(monkeypatch):
    """The loop scores with the url and title columns, as the Spark filter does (None when absent)."""
    import pandas as pd

    import jobs.filter
    import udfs.models
    from bench.chassis import _loop_filter
    from pipeline.config import load_config

    seen = []

    def fake_score(texts, langs, spec, device, signals=None, urls=None, titles=None):
        seen.append((urls, titles))
        return pd.DataFrame({"text_clean": texts, "quality_score": [1.0] * len(texts)})

    monkeypatch.setattr(udfs.models, "score_texts", fake_score)
    monkeypatch.setattr(jobs.filter, "model_versions", lambda fc: None)
    cfg = load_config()
    recs = [{"text": "A page.", "lang": "en", "url": "https://a.example/x", "title": None},
            {"text": "Another.", "lang": "en", "url": None, "title": "Opera"}]
    assert _loop_filter(cfg, recs)() == 2
    assert seen[-1] == (["https://a.example/x", None], [None, "Opera"])
    _loop_filter(cfg, [{"text": "No metadata.", "lang": "en"}])()
    assert seen[-1] == (None, None)
