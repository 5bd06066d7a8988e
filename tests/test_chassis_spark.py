"""The deterministic part writer of the stage chassis."""

from __future__ import annotations

import glob
import hashlib

import pyarrow.parquet as pq
import pytest

from jobs.common import _PartWriter, write_sorted

pytestmark = pytest.mark.spark


def _digests(path) -> list[str]:
    return [hashlib.md5(open(f, "rb").read()).hexdigest() for f in sorted(glob.glob(f"{path}/part-*.parquet"))]


def test_bytes_do_not_depend_on_arrow_batches_or_input_partitions(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(_PartWriter, "ROW_GROUP_ROWS", 100)
    df = spark.range(0, 1000).selectExpr("cast(id as string) as doc_id", "repeat('x', cast(id % 50 as int)) as text")
    old = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    outs = []
    try:
        for i, (mrb, parts) in enumerate([(7, 3), (64, 1), (1000, 5)]):
            spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(mrb))
            write_sorted(df.repartition(parts), str(tmp_path / f"o{i}"), 2)
            outs.append(_digests(tmp_path / f"o{i}"))
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", old)
    assert len(outs[0]) == 2 and outs[0] == outs[1] == outs[2]
    rows = pq.read_table(str(tmp_path / "o0")).to_pylist()
    assert len(rows) == 1000
    first = pq.read_table(sorted(glob.glob(str(tmp_path / "o0" / "part-*.parquet")))[0]).column("doc_id").to_pylist()
    assert first == sorted(first)  # sorted inside each file


def test_empty_result_still_writes_every_file(spark, tmp_path):
    df = spark.range(0, 10).selectExpr("cast(id as string) as doc_id").filter("doc_id = 'none'")
    write_sorted(df, str(tmp_path / "e"), 3)
    files = sorted(glob.glob(str(tmp_path / "e" / "part-*.parquet")))
    assert [f.rsplit("/", 1)[1] for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert spark.read.parquet(str(tmp_path / "e")).count() == 0


def test_read_work_reads_a_work_table_without_a_spark_job(spark, tmp_path):
    from pyspark.sql import types as T

    from jobs.common import read_work

    schema = T.StructType([T.StructField("src", T.LongType(), False), T.StructField("tag", T.StringType(), True)])
    df = spark.createDataFrame([(3, "c"), (1, None), (2, "b")], schema)
    path = str(tmp_path / "w")
    df.write.parquet(path)
    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("read-work-test", "read_work")
    try:
        got = read_work(spark, path, schema)
        assert tracker.getJobIdsForGroup("read-work-test") == []  # planned from the given schema alone
        assert [f.nullable for f in got.schema.fields] == [True, True]  # as Spark's own reader makes them
        assert sorted(tuple(r) for r in got.collect()) == [(1, None), (2, "b"), (3, "c")]
        ran = len(tracker.getJobIdsForGroup("read-work-test"))
        assert ran >= 1  # the collect: the group is tracked
        inferred = spark.read.parquet(path)
        assert len(tracker.getJobIdsForGroup("read-work-test")) > ran  # inferring from the footers is a job
    finally:
        spark.sparkContext.setJobGroup("", "")
    assert inferred.schema == got.schema
