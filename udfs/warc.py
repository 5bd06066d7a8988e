"""Spark adapter for stage 1: one task per WARC file, rows streamed from pipeline.prepare."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyspark.sql import types as T

DOCUMENT_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("url", T.StringType(), True),
        T.StructField("domain", T.StringType(), True),
        T.StructField("warc_file", T.StringType(), True),
        T.StructField("warc_offset", T.LongType(), True),
        T.StructField("fetch_time", T.TimestampType(), True),
        T.StructField("charset", T.StringType(), True),
        T.StructField("title", T.StringType(), True),
        T.StructField("text", T.StringType(), True),
        T.StructField("lang", T.StringType(), True),
        T.StructField("lang_score", T.DoubleType(), True),
        T.StructField("content_hash", T.StringType(), True),
        T.StructField("html_bytes", T.LongType(), True),
        T.StructField("drop_reason", T.StringType(), True),
    ]
)


def warc_partition_fn(cfg: Any):
    """Return a ``mapPartitions`` function turning WARC paths into document tuples.

    The stage state (URL lists, fastText model) is built once per partition; the model itself is
    cached per Python worker by ``pipeline.prepare.langid.load_model``.
    """
    names = [f.name for f in DOCUMENT_SCHEMA.fields]

    def run(paths: Iterator[str]) -> Iterator[tuple]:
        from pipeline.prepare.process import Prepare, process_warc_file

        prep = Prepare(cfg)
        for path in paths:
            for row in process_warc_file(path, cfg, prep):
                yield tuple(row[n] for n in names)

    return run
