"""The ``clean`` job end to end on small documents tables: line dedup equals the plain-Python
reference, counts are stored and merged incrementally, every drop is counted, output is stable."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from pipeline.clean.linededup import dedup_lines_reference, line_hash, normalize_line
from pipeline.config import load_config

FOOTER = "Copyright ACME Corp. All rights reserved."
HEADER = "Home | News | Sport | Weather"
STOP = ["the", "of", "and", "to", "with", "that", "be", "have"]
VOCAB = [
    f"{a}{b}"
    for a in ("bar", "cor", "dim", "fen", "gal", "hup", "lor", "mip")
    for b in ("an", "el", "is", "ot", "um", "ys")
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(STOP) if rng.random() < 0.3 else rng.choice(VOCAB) for _ in range(n)) + "."


def make_docs(n: int, seed: int = 0, start: dt.datetime = dt.datetime(2024, 1, 1)) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        body = [_sentence(rng, 12) for _ in range(8)]
        lines = ([HEADER] if i % 3 == 0 else []) + body + [FOOTER]
        docs.append(
            {
                "doc_id": f"{seed}-{i:05d}",
                "url": f"https://site{i % 7}.example/{i}",
                "domain": f"site{i % 7}.example",
                "warc_file": "x.warc.gz",
                "warc_offset": i * 1000,
                "fetch_time": start + dt.timedelta(seconds=(i * 7919) % n),
                "charset": "utf-8",
                "title": f"t{i}",
                "text": "\n".join(lines),
                "lang": "en",
                "lang_score": 0.9,
                "content_hash": f"h{seed}-{i}",
            }
        )
    return docs


def write_table(spark, docs: list[dict], path: str, parts: int = 3) -> str:
    from udfs.warc import DOCUMENT_SCHEMA  # the prepare stage's output schema

    fields = [f for f in DOCUMENT_SCHEMA.fields if f.name not in ("html_bytes", "drop_reason")]
    from pyspark.sql import types as T

    schema = T.StructType(fields)
    rows = [tuple(d[f.name] for f in fields) for d in docs]
    spark.createDataFrame(rows, schema).repartition(parts).write.mode("overwrite").parquet(path)
    open(path + "/_SUCCESS", "w").close()
    return path


def run_clean(spark, inp: str, out: str, overrides: list[str], keep_dropped: bool = True) -> dict:
    from jobs.clean import run
    from jobs.common import run_stage

    cfg = load_config(overrides=["spark.profile=tests", *overrides])
    return run_stage("clean", run, spark, cfg, [inp], out, overwrite=True, keep_dropped=keep_dropped)


@pytest.mark.spark
def test_clean_line_dedup_matches_reference(spark, tmp_path):
    docs = make_docs(60)
    # rule-breaking documents, one per reason family
    bad = make_docs(3, seed=9)
    bad[0]["text"] = "Too short to keep."
    bad[1]["text"] = bad[1]["text"] + "\nfunction f() { return 1; }"
    bad[2]["text"] = None
    inp = write_table(spark, docs + bad, str(tmp_path / "in"))
    # C4's "no curly brace" constant for English (the shipped English bound allows a few braces)
    stats = run_clean(spark, inp, str(tmp_path / "out"),
                      ["clean.line_dedup.max_occurrences=25", "clean.lang_rules.en.c4_curly_brace.max=0"])

    ref, counts = dedup_lines_reference(
        [(d["doc_id"], d["fetch_time"], d["text"]) for d in docs + bad], max_occurrences=25
    )
    out = {r["doc_id"]: r for r in spark.read.parquet(str(tmp_path / "out")).collect()}
    assert set(out) == {d["doc_id"] for d in docs}
    for d in docs:
        assert out[d["doc_id"]]["text"] == ref[d["doc_id"]], d["doc_id"]
    # 61 footers (bad[1] has one too and is early: it takes one of the 25 slots, then is dropped)
    assert sum(FOOTER in r["text"] for r in out.values()) == 24
    assert sum(HEADER in r["text"] for r in out.values()) == 20  # 20 headers < limit: none deleted
    assert sum(r["line_dedup_removed"] for r in out.values()) == 61 - 25
    assert all(r["h_n_words"] >= 50 for r in out.values())

    assert stats["input"] == 63 and stats["output"] == 60
    assert stats["dropped"] == {"gopher_short_doc": 1, "c4_curly_brace": 1, "clean_empty_doc": 1}
    assert stats["line_dedup"]["lines_deleted"] == 61 - 25
    assert stats["line_dedup"]["lines_over_limit"] == 1
    dropped = {
        r["doc_id"]: r["drop_reason"] for r in spark.read.parquet(str(tmp_path / "out/_dropped")).collect()
    }
    assert dropped == {
        "9-00000": "gopher_short_doc",
        "9-00001": "c4_curly_brace",
        "9-00002": "clean_empty_doc",
    }

    lc = {r["line_hash"]: r for r in spark.read.parquet(str(tmp_path / "out/_line_counts")).collect()}
    key = line_hash(normalize_line(FOOTER))
    assert lc[key]["count"] == counts[key] == 61
    assert lc[key]["example"] == normalize_line(FOOTER)
    assert json.loads((tmp_path / "out/_stats.json").read_text())["output"] == 60


@pytest.mark.spark
def test_clean_incremental_counts_and_determinism(spark, tmp_path):
    first = make_docs(30, seed=1)
    second = make_docs(30, seed=2, start=dt.datetime(2024, 6, 1))
    a = write_table(spark, first, str(tmp_path / "a"))
    run_clean(spark, a, str(tmp_path / "out_a"), ["clean.line_dedup.max_occurrences=40"])
    lc_a = str(tmp_path / "out_a/_line_counts")
    b = write_table(spark, second, str(tmp_path / "b"))
    stats = run_clean(
        spark,
        b,
        str(tmp_path / "out_b"),
        ["clean.line_dedup.max_occurrences=40", f"clean.line_dedup.previous_counts={lc_a}"],
    )
    key = line_hash(normalize_line(FOOTER))
    prev = {r["line_hash"]: r["count"] for r in spark.read.parquet(lc_a).collect()}
    assert prev[key] == 30
    ref, merged = dedup_lines_reference(
        [(d["doc_id"], d["fetch_time"], d["text"]) for d in second], max_occurrences=40, previous_counts=prev
    )
    out = {r["doc_id"]: r["text"] for r in spark.read.parquet(str(tmp_path / "out_b")).collect()}
    assert out == ref
    assert sum(FOOTER in t for t in out.values()) == 10  # 30 seen before + first 10 of this crawl
    lc_b = {
        r["line_hash"]: r["count"] for r in spark.read.parquet(str(tmp_path / "out_b/_line_counts")).collect()
    }
    assert lc_b == merged and lc_b[key] == 60
    assert stats["line_dedup"]["lines_deleted"] == 20

    # the same documents split and ordered otherwise -> the same rows (the layout follows the input)
    b2 = write_table(spark, list(reversed(second)), str(tmp_path / "b2"), parts=5)
    run_clean(
        spark,
        b2,
        str(tmp_path / "out_b2"),
        ["clean.line_dedup.max_occurrences=40", f"clean.line_dedup.previous_counts={lc_a}"],
    )
    out2 = {r["doc_id"]: r for r in spark.read.parquet(str(tmp_path / "out_b2")).collect()}
    out1 = {r["doc_id"]: r for r in spark.read.parquet(str(tmp_path / "out_b")).collect()}
    assert out1 == out2
    # the same input under other Spark partitioning -> byte-identical documents
    saved = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "7")
        run_clean(
            spark,
            b,
            str(tmp_path / "out_b3"),
            ["clean.line_dedup.max_occurrences=40", f"clean.line_dedup.previous_counts={lc_a}"],
        )
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", saved)
    files = sorted(p.name for p in (tmp_path / "out_b").glob("part-*.parquet"))
    assert files and files == sorted(p.name for p in (tmp_path / "out_b3").glob("part-*.parquet"))
    for f in files:
        assert (tmp_path / "out_b" / f).read_bytes() == (tmp_path / "out_b3" / f).read_bytes()

    with pytest.raises(ValueError, match="previous line counts"):
        run_clean(spark, b, str(tmp_path / "out_c"), [f"clean.line_dedup.previous_counts={tmp_path}/missing"])


def test_score_fn_turns_a_failing_record_into_a_counted_error(monkeypatch):
    """The adapter catches a record that raises (fault injection) as reason error_clean; the
    chassis counts reasons (tested above). Runs the mapInArrow function in-process, no JVM."""
    import pyarrow as pa
    from pyspark.sql import types as T

    from pipeline.clean.heuristics import HeuristicParams
    from udfs.clean import score_fn, scored_schema

    docs = make_docs(3, seed=3)
    batch = pa.RecordBatch.from_pylist(
        [{"doc_id": d["doc_id"], "text": d["text"], "lang": "en"} for d in docs]
    )
    in_schema = T.StructType([T.StructField(n, T.StringType()) for n in ("doc_id", "text", "lang")])
    out_schema = scored_schema(in_schema)
    cfg = load_config()
    monkeypatch.setenv("DOTS_FAULT_INJECT", "3-00001")
    fn = score_fn(HeuristicParams.from_config(cfg.clean), cfg.clean.bounds_for, out_schema)
    (out,) = list(fn(iter([batch])))
    assert out.schema.names == [f.name for f in out_schema.fields]
    assert out.column("drop_reason").to_pylist() == [None, "error_clean", None]
    assert out.column("text").to_pylist()[1] == docs[1]["text"]  # the failing record is passed through
