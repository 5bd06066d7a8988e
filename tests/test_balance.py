"""Balance stage: weights, deterministic sampling independent of partitioning, drop reason, report."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.balance.report import aggregate, chart_png, distribution, format_table
from pipeline.balance.sampling import (
    BALANCE_DOWNSAMPLED,
    UNKNOWN,
    balance_records,
    category_key,
    decide,
    leaf_weights,
    sample_weights,
)
from pipeline.category.taxonomy import load_taxonomy
from pipeline.config import load_config

TAX = load_taxonomy()
PHYSICS, NOVELS, DEALS = TAX.id_of("Physics"), TAX.id_of("Novels and Fiction"), TAX.id_of("Deals and Coupons")


def make_docs(n: int = 600, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    cats = [PHYSICS, NOVELS, DEALS, None, 250]  # 250: not a leaf -> treated like a missing category
    return [
        {"doc_id": f"d{i:05d}", "text": "x" * rng.randint(10, 200), "category": cats[i % len(cats)]}
        for i in range(n)
    ]


def test_sample_weights_normalise_and_cap():
    w = TAX.weights()
    counts = {PHYSICS: 100, NOVELS: 300, UNKNOWN: 100}
    s = sample_weights(counts, w, default_weight=1.0)
    total = sum(counts[k] * s[k] for k in counts)
    assert total == pytest.approx(500)  # target_ratio 1: corpus size kept in expectation
    assert s[PHYSICS] / s[NOVELS] == pytest.approx(w[PHYSICS] / w[NOVELS])
    assert s[UNKNOWN] / s[NOVELS] == pytest.approx(1.0 / w[NOVELS])
    # a tiny, heavily weighted leaf hits the cap; the rest is re-scaled to keep the target
    s2 = sample_weights({PHYSICS: 1, NOVELS: 999}, w, max_weight=3.0, temperature=0.0)
    assert s2[PHYSICS] == 3.0
    assert 1 * 3.0 + 999 * s2[NOVELS] == pytest.approx(1000)
    # temperature 0 and equal weights: equal expected copies per category
    eq = sample_weights({0: 10, 1: 1000}, [1.0, 1.0], temperature=0.0, max_weight=1000.0)
    assert 10 * eq[0] == pytest.approx(1000 * eq[1])
    assert sample_weights({}, w) == {}


def test_leaf_weight_overrides():
    w = leaf_weights(TAX, {"Physics": 0.5, "Sports": 2.0})
    assert w[PHYSICS] == 0.5
    assert all(w[leaf.id] == 2.0 for leaf in TAX.leaves if leaf.domain_en == "Sports")
    with pytest.raises(ValueError, match="neither"):
        leaf_weights(TAX, {"Underwater Basketry": 1.0})


def test_category_key():
    assert category_key(3, 200) == 3 and category_key(3.0, 200) == 3
    for bad in (None, float("nan"), -1, 200, 2.5, "abc", True):
        assert category_key(bad, 200) == UNKNOWN


def test_decide_is_deterministic_and_unbiased():
    assert decide(1, "a", 2.5) == 2.5 and decide(1, "a", 1.0) == 1.0
    kept = [decide(7, f"doc{i}", 0.3) for i in range(20000)]
    assert set(kept) <= {1.0, None}
    frac = sum(k is not None for k in kept) / len(kept)
    assert abs(frac - 0.3) < 0.015
    assert kept == [decide(7, f"doc{i}", 0.3) for i in range(20000)]
    assert kept != [decide(8, f"doc{i}", 0.3) for i in range(20000)]  # the seed matters


def test_partitioning_does_not_change_the_result():
    docs = make_docs()
    counts: dict[int, int] = {}
    for d in docs:
        k = category_key(d["category"], len(TAX))
        counts[k] = counts.get(k, 0) + 1
    kw = sample_weights(counts, TAX.weights())
    ref = {
        r["doc_id"]: (r["sample_weight"], r["drop_reason"]) for r in balance_records(docs, kw, len(TAX), 1234)
    }
    shuffled = docs[:]
    random.Random(5).shuffle(shuffled)
    parts = [shuffled[i::3] for i in range(3)]  # three "partitions" processed independently
    got = {}
    for p in parts:
        got.update(
            {
                r["doc_id"]: (r["sample_weight"], r["drop_reason"])
                for r in balance_records(p, kw, len(TAX), 1234)
            }
        )
    assert got == ref
    # the drop reason is the only one, and it is used
    reasons = {r for _, r in ref.values()}
    assert reasons == {None, BALANCE_DOWNSAMPLED}
    # up-weighted physics is never dropped and carries its weight; deals are mostly dropped
    phys = [v for d, v in ref.items() if docs[int(d[1:])]["category"] == PHYSICS]
    assert all(sw == pytest.approx(kw[PHYSICS]) and r is None for sw, r in phys)
    deals = [v for d, v in ref.items() if docs[int(d[1:])]["category"] == DEALS]
    assert sum(r == BALANCE_DOWNSAMPLED for _, r in deals) > 0.7 * len(deals)


def test_report_table_and_chart(tmp_path):
    docs = make_docs()
    counts: dict[int, int] = {}
    for d in docs:
        k = category_key(d["category"], len(TAX))
        counts[k] = counts.get(k, 0) + 1
    kw = sample_weights(counts, TAX.weights())
    out = balance_records(docs, kw, len(TAX), 1234)
    rep = distribution(TAX, kw, aggregate(out, "category", len(TAX)))
    t = rep["totals"]
    assert t["docs_before"] == len(docs)
    assert t["docs_kept"] == sum(r["drop_reason"] is None for r in out)
    assert t["copies_after"] == pytest.approx(sum(r["sample_weight"] or 0 for r in out))
    by_name = {r["name"]: r for r in rep["categories"]}
    assert set(by_name) == {"Physics", "Novels and Fiction", "Deals and Coupons", "(no category)"}
    assert by_name["(no category)"]["docs_before"] == 240  # None and the out-of-range id 250
    assert by_name["Physics"]["share_docs_after"] > by_name["Physics"]["share_docs_before"]
    assert (
        by_name["Deals and Coupons"]["share_docs_after"] < by_name["Deals and Coupons"]["share_docs_before"]
    )
    assert sum(r["share_docs_before"] for r in rep["categories"]) == pytest.approx(1.0, abs=1e-5)
    text = format_table(rep)
    assert "Physics" in text and "Science" in text
    png = chart_png(rep)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    json.dumps(rep)  # serialisable


def test_config_validation():
    cfg = load_config(overrides=["spark.profile=tests"])
    assert cfg.balance.category_column == "category" and cfg.balance.max_weight >= 1
    with pytest.raises(ValueError, match="temperature"):
        load_config(overrides=["balance.temperature=2"])
    with pytest.raises(ValueError, match="max_weight"):
        load_config(overrides=["balance.max_weight=0.5"])
    with pytest.raises(ValueError, match="weights"):
        load_config(overrides=["balance.weights={Physics: 0}"])


# ----------------------------------------------------------------------------------------- Spark


def _write_input(spark, docs: list[dict], path: Path, parts: int) -> str:
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("doc_id", T.StringType()),
            T.StructField("text", T.StringType()),
            T.StructField("category", T.IntegerType()),
        ]
    )
    rows = [(d["doc_id"], d["text"], d["category"]) for d in docs]
    spark.createDataFrame(rows, schema).repartition(parts).write.mode("overwrite").parquet(str(path))
    (path / "_SUCCESS").write_text("")
    return str(path)


@pytest.mark.spark
def test_balance_job_matches_reference_for_any_partitioning(spark, tmp_path):
    from jobs.balance import REPORT_JSON, REPORT_PNG, run
    from jobs.common import run_stage

    cfg = load_config(overrides=["spark.profile=tests"])
    docs = make_docs(400)
    outs = []
    for parts in (1, 5):
        shuffled = docs[:]
        random.Random(parts).shuffle(shuffled)
        inp = _write_input(spark, shuffled, tmp_path / f"in{parts}", parts)
        out = str(tmp_path / f"out{parts}")
        stats = run_stage("balance", run, spark, cfg, [inp], out, overwrite=True)
        outs.append((out, stats))
    (o1, s1), (o2, s2) = outs
    # The decisions do not depend on how the input is split into files or ordered (the output's
    # layout follows the input's: one part per input file, rows in input order).
    assert len(list(Path(o1).glob("part-*.parquet"))) == 1 and len(list(Path(o2).glob("part-*.parquet"))) == 5
    rows1 = sorted(tuple(r.values()) for r in pq.read_table(o1).select(["doc_id", "sample_weight"]).to_pylist())
    rows2 = sorted(tuple(r.values()) for r in pq.read_table(o2).select(["doc_id", "sample_weight"]).to_pylist())
    assert rows1 == rows2 and s1["dropped"] == s2["dropped"]
    assert (Path(o1) / REPORT_JSON).read_text() == (Path(o2) / REPORT_JSON).read_text()
    # Same input, other Spark partitioning and Arrow batches: the same bytes.
    conf = spark.conf
    saved = {k: conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.sql.execution.arrow.maxRecordsPerBatch")}
    try:
        conf.set("spark.sql.shuffle.partitions", "7")
        conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "13")
        o3 = str(tmp_path / "out5b")
        run_stage("balance", run, spark, cfg, [str(tmp_path / "in5")], o3, overwrite=True)
    finally:
        for k, v in saved.items():
            conf.set(k, v)
    files2 = sorted(p.name for p in Path(o2).glob("part-*.parquet"))
    assert files2 == sorted(p.name for p in Path(o3).glob("part-*.parquet"))
    for f in files2:
        assert (Path(o2) / f).read_bytes() == (Path(o3) / f).read_bytes()
    assert (Path(o1) / REPORT_PNG).read_bytes()[:4] == b"\x89PNG"

    # equal to the plain-Python reference, and the drop reason is counted
    counts: dict[int, int] = {}
    for d in docs:
        k = category_key(d["category"], len(TAX))
        counts[k] = counts.get(k, 0) + 1
    kw = sample_weights(counts, TAX.weights(), cfg.balance.default_weight, max_weight=cfg.balance.max_weight)
    ref = balance_records(docs, kw, len(TAX), cfg.seed)
    n_drop = sum(r["drop_reason"] == BALANCE_DOWNSAMPLED for r in ref)
    assert s1["dropped"] == {BALANCE_DOWNSAMPLED: n_drop} and s1["output"] == len(docs) - n_drop
    got = {
        r["doc_id"]: r["sample_weight"]
        for r in spark.read.parquet(o1).select("doc_id", "sample_weight").collect()
    }
    want = {r["doc_id"]: r["sample_weight"] for r in ref if r["drop_reason"] is None}
    assert got == want
    rep = json.loads((Path(o1) / REPORT_JSON).read_text())
    assert rep["totals"]["docs_before"] == len(docs) and rep["totals"]["docs_kept"] == len(want)
