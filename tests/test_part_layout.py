"""The part layout of the stage chassis (jobs.common.InputLayout / StageContext.write_parts): output
part ``p`` holds the rows of a contiguous group of the sorted input files, in input order, whatever
Spark's partitioning, the Arrow batch size or the order the inputs are given in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.common import REASON_COL, InputLayout


def test_layout_groups_are_contiguous_and_cover_every_file():
    for n_files in (1, 3, 7, 8):
        for parts in (1, 2, 3, 8, 11):
            lay = InputLayout(tuple(f"f{i}" for i in range(n_files)), parts)
            groups = [list(lay.files_of(p)) for p in range(parts)]
            assert [i for g in groups for i in g] == list(range(n_files))  # contiguous, in order, complete
            for p, g in enumerate(groups):
                assert all(lay.part_of(i) == p for i in g)
            if parts <= n_files:
                assert all(groups)  # no empty part while there are enough files


def _write_input(folder: Path, tables: list[pa.Table]) -> str:
    folder.mkdir(parents=True)
    for i, t in enumerate(tables):
        pq.write_table(t, folder / f"part-{i:05d}.parquet")
    (folder / "_SUCCESS").write_text("")
    return str(folder)


def _tables(start: int, sizes: list[int]) -> list[pa.Table]:
    out, k = [], start
    for n in sizes:
        ids = [f"d{k + i:04d}" for i in range(n)]
        out.append(pa.table({"doc_id": pa.array(ids, pa.string()), "text": pa.array([f"text of {d}" for d in ids], pa.string())}))
        k += n
    return out


class _Mark:
    """Keeps even documents (tagged with the side value ``tag`` when there is one), drops odd ones."""

    def __call__(self, batch, totals):
        ids = batch.column("doc_id").to_pylist()
        totals["rows"] = totals.get("rows", 0) + len(ids)
        tags = batch.column("tag").to_pylist() if "tag" in batch.schema.names else [None] * len(ids)
        return pa.RecordBatch.from_arrays(
            [batch.column("doc_id"), batch.column("text"), pa.array(tags, pa.string()),
             pa.array([None if int(d[1:]) % 2 == 0 else "odd" for d in ids], pa.string())],
            names=["doc_id", "text", "tag", REASON_COL],
        )


OUT_SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("tag", pa.string()), (REASON_COL, pa.string())])


def _job(num_files, with_side: bool):
    def run(ctx):
        from pyspark.sql import functions as F

        layout = ctx.input_layout(num_files)
        side = None
        if with_side:  # tag every third row of each file, by its place
            pos = ctx.read_rows(
                layout, ["doc_id"],
                lambda bs: (b.select(["file_idx", "row_idx", "doc_id"]) for b in bs),
                "file_idx int, row_idx int, doc_id string",
            )
            side = pos.filter(F.col("row_idx") % 3 == 0).select(
                "file_idx", "row_idx", F.concat(F.lit("t-"), "doc_id").alias("tag")
            )
        totals = ctx.write_parts(layout, _Mark(), OUT_SCHEMA, side=side, side_cols=("tag",) if with_side else (),
                                 batch_rows=5)
        ctx.stats.extra["rows"] = totals["rows"]

    return run


def _digests(folder: Path) -> list[tuple[str, str]]:
    return [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(folder.glob("part-*.parquet"))]


@pytest.mark.spark
@pytest.mark.parametrize("with_side", [False, True])
def test_parts_follow_the_input_layout_whatever_the_partitioning(spark, cfg, tmp_path, with_side):
    from jobs.common import run_stage

    a = _write_input(tmp_path / "a", _tables(0, [7, 0, 12]))
    b = _write_input(tmp_path / "b", _tables(100, [9]))
    files = sorted(str(p) for p in [*(tmp_path / "a").glob("*.parquet"), *(tmp_path / "b").glob("*.parquet")])

    def run(out: str, inputs: list[str], num_files=None, keep_dropped=False) -> dict:
        return run_stage("layout", _job(num_files, with_side), spark, cfg, inputs, out, overwrite=True,
                         keep_dropped=keep_dropped)

    stats = run(str(tmp_path / "o1"), [a, b], keep_dropped=True)
    # one part per input file (sorted paths), rows in input order, odd ones dropped and counted
    rows_in = [pq.read_table(f).column("doc_id").to_pylist() for f in files]
    assert stats["input"] == sum(map(len, rows_in)) == stats["rows"]
    assert stats["output"] + stats["dropped"]["odd"] == stats["input"]
    for p, ids in enumerate(rows_in):
        got = pq.read_table(tmp_path / "o1" / f"part-{p:05d}.parquet")
        assert got.column("doc_id").to_pylist() == [d for d in ids if int(d[1:]) % 2 == 0]
        dropped = pq.read_table(tmp_path / "o1" / "_dropped" / f"part-{p:05d}.parquet")
        assert dropped.column("doc_id").to_pylist() == [d for d in ids if int(d[1:]) % 2 == 1]
        if with_side:
            want = [f"t-{d}" if i % 3 == 0 else None for i, d in enumerate(ids) if int(d[1:]) % 2 == 0]
            assert got.column("tag").to_pylist() == want
    # inputs given in the other order, other shuffle partitions and Arrow batches: the same bytes
    conf = spark.conf
    saved = {k: conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.sql.execution.arrow.maxRecordsPerBatch")}
    try:
        conf.set("spark.sql.shuffle.partitions", "7")
        conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "2")
        run(str(tmp_path / "o2"), [b, a], keep_dropped=True)
    finally:
        for k, v in saved.items():
            conf.set(k, v)
    assert _digests(tmp_path / "o1") == _digests(tmp_path / "o2") and len(_digests(tmp_path / "o1")) == 4
    assert _digests(tmp_path / "o1" / "_dropped") == _digests(tmp_path / "o2" / "_dropped")
    # num_files=2 over 4 files: part 0 = files 0-1, part 1 = files 2-3, contiguous and in order
    run(str(tmp_path / "o3"), [a, b], num_files=2)
    for p, group in enumerate([rows_in[:2], rows_in[2:]]):
        got = pq.read_table(tmp_path / "o3" / f"part-{p:05d}.parquet").column("doc_id").to_pylist()
        assert got == [d for ids in group for d in ids if int(d[1:]) % 2 == 0]
    # more parts than files: every part is written (empty ones carry the schema)
    run(str(tmp_path / "o4"), [b], num_files=3)
    sizes = [pq.read_metadata(tmp_path / "o4" / f"part-{p:05d}.parquet").num_rows for p in range(3)]
    assert sorted(sizes) == [0, 0, 5]
