"""Stage 1 — document preparation: WARC files -> documents table.

    spark-submit jobs/prepare.py --input 'crawl/*.warc.gz' --output out/prepare
    python -m jobs.prepare --input paths.txt --output out/prepare --set prepare.keep_langs=[zh,en,de]

``--input`` takes WARC/ARC files (gzip or plain), globs, directories (searched recursively) or a
``.txt`` file listing one path per line, local or any Hadoop URI. One Spark task per file.
Exact dedup (dots.llm1): among documents with the same normalized-text MD5, the survivor is the one
with the smallest xxhash64(seed, doc_id) — never partition order.
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
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from udfs.warc import DOCUMENT_SCHEMA, warc_partition_fn

    cfg = ctx.section
    # Preflight on the driver: a missing package, list file or model fails here, before any task.
    Prepare(cfg).preflight()
    paths = [local_path(p) for p in expand_inputs(ctx)]
    ctx.stats.extra["files"] = len(paths)
    print(f"[prepare] {len(paths)} file(s)", flush=True)
    rdd = ctx.spark.sparkContext.parallelize(paths, len(paths)).mapPartitions(warc_partition_fn(cfg))
    df = ctx.spark.createDataFrame(rdd, DOCUMENT_SCHEMA)
    # Exact dedup among the kept rows: survivor = smallest (xxhash64(seed, doc_id), doc_id).
    rank_key = F.xxhash64(F.lit(ctx.cfg.seed), F.col("doc_id"))
    # Rows without a hash (dropped ones) each get their own window partition: no null-key skew.
    w = Window.partitionBy(F.coalesce(F.col("content_hash"), F.col("doc_id"))).orderBy(rank_key, F.col("doc_id"))
    kept = F.col(REASON_COL).isNull() & F.col("content_hash").isNotNull()
    df = df.withColumn("_rank", F.when(kept, F.row_number().over(w)))
    df = df.withColumn(
        REASON_COL, F.when(F.col("_rank") > 1, F.lit(EXACT_DUPLICATE)).otherwise(F.col(REASON_COL))
    ).drop("_rank")
    ctx.write_documents(df, num_files=cfg.num_files)


if __name__ == "__main__":
    main("prepare", run)
