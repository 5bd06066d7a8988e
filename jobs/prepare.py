"""Stage 1 — document preparation: WARC files -> documents table.

    spark-submit jobs/prepare.py --input 'crawl/*.warc.gz' --output out/prepare
    python -m jobs.prepare --input paths.txt --output out/prepare --set prepare.keep_langs=[zh,en,de]

``--input`` takes WARC/ARC files (gzip or plain), globs, directories (searched recursively) or a
``.txt`` file listing one path per line, local or any Hadoop URI. One Spark task per file; the text
never goes through a Spark shuffle (udfs/warc.py). Exact dedup (dots.llm1): among documents with the
same normalized-text MD5, the survivor is the one with the smallest xxhash64(seed, doc_id) — never
partition order; only the keys are shuffled to decide it. Output part ``p`` holds the rows of a
contiguous group of the sorted input files, in record order.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

from jobs.common import REASON_COL, StageContext, main
from pipeline.prepare.process import EXACT_DUPLICATE, Prepare

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz", ".warc.gzip")


def expand_inputs(ctx: StageContext) -> list[str]:
    """Resolve globs, folders and list files into a sorted, de-duplicated list of file paths."""
    spark = ctx.spark
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    Path = jvm.org.apache.hadoop.fs.Path
    out: set[str] = set()
    for raw in ctx.inputs:
        p = Path(raw)
        fs = p.getFileSystem(conf)
        if raw.endswith((".txt", ".lst")) and fs.isFile(p):
            listed = [line.strip() for line in ctx.fs.read_text(raw).splitlines()]
            for line in listed:
                if line and not line.startswith("#"):
                    out.add(str(fs.makeQualified(Path(line)).toString()) if "://" not in line else line)
            continue
        statuses = fs.globStatus(p)
        if not statuses:
            raise ValueError(f"--input {raw} matches no file; check the path or glob")
        for st in statuses:
            if st.isDirectory():
                it = fs.listFiles(st.getPath(), True)
                while it.hasNext():
                    f = str(it.next().getPath().toString())
                    if f.endswith(WARC_SUFFIXES):
                        out.add(f)
            else:
                out.add(str(st.getPath().toString()))
    if not out:
        raise ValueError(f"--input {ctx.inputs} holds no WARC/ARC files ({', '.join(WARC_SUFFIXES)})")
    return sorted(out)


def local_path(uri: str) -> str:
    return uri.removeprefix("file:") if uri.startswith("file:/") else uri


def run(ctx: StageContext) -> None:
    """Pass 1: one task per WARC file stages its rows (Arrow IPC) and returns keys only. Exact
    dedup is decided on the keys. Pass 2: one group per output part writes its files' rows."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from udfs.warc import KEYS_DDL, PrepareFiles, WriteParts

    cfg = ctx.section
    # Preflight on the driver: a missing package, list file or model fails here, before any task.
    Prepare(cfg).preflight()
    paths = [local_path(p) for p in expand_inputs(ctx)]
    n_files, n_parts = len(paths), cfg.num_files
    ctx.stats.extra["files"] = n_files
    print(f"[prepare] {n_files} file(s) -> {n_parts} part(s)", flush=True)
    rows_dir = ctx.path("_prepare_rows")
    ctx.fs.mkdirs(rows_dir)
    spark = ctx.spark
    # One id per Spark partition (JVM only: no Python worker just to hand out paths); the paths
    # travel once per worker as a broadcast, not in every task's closure.
    files = spark.range(0, n_files, 1, n_files).selectExpr("cast(id as int) as idx")
    paths_bc = spark.sparkContext.broadcast(paths)
    keys = files.mapInArrow(PrepareFiles(cfg, ctx.fs.qualify(rows_dir), paths_bc), KEYS_DDL)
    keys = keys.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {r[REASON_COL]: int(r["count"]) for r in keys.groupBy(REASON_COL).count().collect()}
        # Exact dedup on keys only: survivor = smallest (xxhash64(seed, doc_id), doc_id); file and row
        # index break ties between records that share a doc_id.
        rank = [F.xxhash64(F.lit(ctx.cfg.seed), F.col("doc_id")), "doc_id", "file_idx", "row_idx"]
        kept = keys.filter(F.col(REASON_COL).isNull() & F.col("content_hash").isNotNull())
        losers = (
            kept.withColumn("_rank", F.row_number().over(Window.partitionBy("content_hash").orderBy(*rank)))
            .filter(F.col("_rank") > 1)
            .select("file_idx", "row_idx")
        )
        writer = WriteParts(
            ctx.fs.qualify(rows_dir),
            ctx.fs.qualify(ctx.staging),
            ctx.fs.qualify(ctx.path("_dropped")) if ctx.keep_dropped else None,
            n_files,
            n_parts,
        )
        for folder in [ctx.staging] + ([ctx.path("_dropped")] if ctx.keep_dropped else []):
            ctx.fs.mkdirs(folder)
        # One group per output part: a marker row (so parts without losers are written too) plus
        # that part's losers. Same Python worker kind as pass 1: no second daemon, no RDD pickling.
        part = F.expr(f"cast((cast(file_idx as bigint) * {n_parts}) div {n_files} as int)").alias("part")
        marks = spark.range(0, n_parts).select(
            F.col("id").cast("int").alias("part"),
            F.lit(None).cast("int").alias("file_idx"),
            F.lit(None).cast("int").alias("row_idx"),
        )
        written = [
            (r["part"], r["rows"], r["dups"])
            for r in marks.unionByName(losers.select(part, "file_idx", "row_idx"))
            .groupBy("part")
            .applyInArrow(writer.group_fn(), WriteParts.RESULT_DDL)
            .collect()
        ]
    finally:
        keys.unpersist()
        paths_bc.destroy()
    duplicates = sum(d for _, _, d in written)
    if sorted(p for p, _, _ in written) != list(range(n_parts)):
        raise RuntimeError(
            f"prepare wrote parts {sorted(p for p, _, _ in written)}, expected 0..{n_parts - 1}"
        )
    counts[None] = counts.get(None, 0) - duplicates
    if duplicates:
        counts[EXACT_DUPLICATE] = counts.get(EXACT_DUPLICATE, 0) + duplicates
    if sum(k for _, k, _ in written) != counts[None]:
        raise RuntimeError(f"prepare wrote {sum(k for _, k, _ in written)} rows, its keys say {counts[None]}")
    ctx.stats.add_reasons(counts)
    ctx.fs.delete(rows_dir)


if __name__ == "__main__":
    main("prepare", run)
