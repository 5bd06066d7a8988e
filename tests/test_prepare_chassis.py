"""The prepare job's plan: bytes independent of Spark's partitioning and of the input order,
exact dedup decided on keys only with the seeded survivor, staging cleaned up."""

from __future__ import annotations

import glob
import hashlib

import pyarrow.parquet as pq
import pytest

from jobs import prepare
from jobs.common import run_stage
from pipeline.prepare.samplegen import generate
from udfs.warc import WriteParts, arrow_schema, part_of

pytestmark = pytest.mark.spark


def _digests(path) -> list[str]:
    return [
        hashlib.md5(open(f, "rb").read()).hexdigest() for f in sorted(glob.glob(f"{path}/part-*.parquet"))
    ]


@pytest.fixture(scope="module")
def warcs(tmp_path_factory):
    d = tmp_path_factory.mktemp("chassis")
    return [generate(str(d / f"w{i}.warc.gz"), seed=10 + i, n_articles=42)["path"] for i in range(3)]


def test_part_grouping_is_contiguous_and_covers_every_file():
    for n_files, n_parts in [(1, 8), (3, 8), (8, 3), (10, 4), (7, 7)]:
        parts = [part_of(i, n_files, n_parts) for i in range(n_files)]
        assert parts == sorted(parts) and all(0 <= p < n_parts for p in parts)
        w = WriteParts("", "", None, n_files, n_parts)
        assert [i for p in range(n_parts) for i in w.files_of(p)] == list(range(n_files))
        assert all(part_of(i, n_files, n_parts) == p for p in range(n_parts) for i in w.files_of(p))


def test_bytes_do_not_depend_on_partitioning_or_input_order(spark, cfg, warcs, tmp_path):
    outs = []
    old = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        for i, (order, shuffle_parts) in enumerate([([0, 1, 2], "4"), ([2, 0, 1], "1"), ([1, 2, 0], "7")]):
            spark.conf.set("spark.sql.shuffle.partitions", shuffle_parts)
            out = tmp_path / f"o{i}"
            run_stage(
                "prepare", prepare.run, spark, cfg, [warcs[j] for j in order], str(out), keep_dropped=True
            )
            outs.append((_digests(out), _digests(out / "_dropped")))
            assert not (out / "_prepare_rows").exists()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old)
    assert len(outs[0][0]) == cfg.prepare.num_files
    assert outs[0] == outs[1] == outs[2]


def test_rows_stay_in_record_order_per_file(spark, cfg, warcs, tmp_path):
    out = tmp_path / "o"
    run_stage("prepare", prepare.run, spark, cfg, warcs, str(out), keep_dropped=True)
    for f in sorted(glob.glob(str(out / "part-*.parquet"))):
        t = pq.read_table(f)
        assert t.schema.equals(arrow_schema().remove(arrow_schema().get_field_index("drop_reason")))
        keys = list(zip(t.column("warc_file").to_pylist(), t.column("warc_offset").to_pylist(), strict=True))
        assert keys == sorted(keys)


def test_keys_only_dedup_keeps_the_seeded_survivor(spark, cfg, warcs, tmp_path):
    from pyspark.sql import functions as F

    out = tmp_path / "o"
    stats = run_stage("prepare", prepare.run, spark, cfg, warcs, str(out), keep_dropped=True)
    kept = pq.read_table(str(out)).select(["doc_id", "content_hash"]).to_pylist()
    dropped = pq.read_table(str(out / "_dropped")).to_pylist()
    dups = [r for r in dropped if r["drop_reason"] == "exact_duplicate"]
    assert dups and stats["dropped"]["exact_duplicate"] == len(dups)
    # The rule the window over whole rows applied: smallest (xxhash64(seed, doc_id), doc_id).
    cands = spark.createDataFrame(
        kept + [{"doc_id": r["doc_id"], "content_hash": r["content_hash"]} for r in dups]
    )
    ranked = cands.withColumn("k", F.xxhash64(F.lit(cfg.seed), F.col("doc_id"))).collect()
    want: dict[str, tuple[int, str]] = {}
    for r in ranked:
        want[r["content_hash"]] = min(
            want.get(r["content_hash"], (r["k"], r["doc_id"])), (r["k"], r["doc_id"])
        )
    assert {r["content_hash"]: r["doc_id"] for r in kept} == {h: d for h, (_, d) in want.items()}
