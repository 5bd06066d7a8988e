"""Stage 1 — document preparation: WARC files -> documents table.

    spark-submit jobs/prepare.py --input 'crawl/*.warc.gz' --output out/prepare
    python -m jobs.prepare --input paths.txt --output out/prepare --set prepare.keep_langs=[zh,en,de]

``--input`` takes WARC/ARC files (gzip or plain), globs, directories (searched recursively) or a
file listing one path per line (``.txt``, ``.lst``, Common Crawl's ``warc.paths.gz``; relative
entries are joined to ``--input-base``), local, ``s3://`` or ``https://``; ``--limit-files N`` keeps
the first N. One Spark task per file; the text never goes through a Spark shuffle (udfs/warc.py).
Exact dedup (dots.llm1): among documents with the same normalized-text MD5, the survivor is the one
with the smallest xxhash64(seed, doc_id) — never partition order; only the keys are shuffled to
decide it. Output part ``p`` holds the rows of a contiguous group of the sorted input files, in
record order.
"""

from __future__ import annotations

import json
import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

from jobs.common import REASON_COL, StageContext, main
from pipeline.prepare.process import Prepare

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz", ".warc.gzip")
# A file listing one path per line: ``.txt``/``.lst``, or Common Crawl's ``warc.paths.gz``
# (gzip, paths relative to the bucket root).
LIST_SUFFIXES = (".txt", ".lst", ".paths", ".paths.gz", ".txt.gz", ".lst.gz")


def _list_entries(raw: str, base: str | None) -> list[str]:
    """The paths of a list file, in list order; relative ones joined to ``base``."""
    from pipeline import storage

    out = []
    for line in storage.read_lines(raw):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if storage.paths.scheme(line) or line.startswith("/"):
            out.append(line)
        elif base:
            out.append(storage.paths.join(base, line))
        elif raw.endswith((".paths", ".paths.gz")):
            raise ValueError(
                f"{raw} lists relative paths ({line}); pass --input-base s3://commoncrawl/ "
                "(AWS credentials) or --input-base https://data.commoncrawl.org/ (no account)"
            )
        else:
            out.append(line)  # relative to the working directory, as on a command line
    return out


def _expand_one(raw: str) -> list[str]:
    """A file, folder (searched recursively for WARC/ARC files) or glob -> sorted file paths."""
    from pipeline import storage

    if storage.kind(raw) == "http":
        return [raw]  # a URL names one file; it cannot be listed
    if storage.kind(raw) == "hadoop":
        raise ValueError(f"--input {raw}: the scheme is not supported; use a local path, s3:// or https://")
    matches = storage.glob_entries(raw)
    if not matches:
        raise ValueError(f"--input {raw} matches no file; check the path or glob")
    out: list[str] = []
    for m in matches:
        if m.is_dir:
            out += [e.path for e in storage.list_files(m.path) if e.path.endswith(WARC_SUFFIXES)]
        else:
            out.append(m.path)
    return sorted(out)


def expand_inputs(ctx: StageContext) -> list[str]:
    """Resolve files, globs, folders and list files into a de-duplicated, sorted list of paths.

    Local paths come back absolute, ``s3a://`` as ``s3://``, URLs unchanged. A list file's relative
    entries are joined to ``--input-base``; ``--limit-files N`` keeps the first N files in input
    order (list order for a list file), so a sample of a crawl snapshot is the same on every run."""
    from pipeline import storage

    args = ctx.extra_args
    base = getattr(args, "input_base", None) if args is not None else None
    limit = getattr(args, "limit_files", None) if args is not None else None
    if limit is not None and limit < 1:
        raise ValueError(f"--limit-files {limit} must be >= 1")
    ordered: list[str] = []
    for raw in ctx.inputs:
        if raw.endswith(LIST_SUFFIXES) and not storage.paths.has_glob(raw):
            if not storage.exists(raw):
                raise ValueError(f"--input {raw}: the list file does not exist")
            ordered += [storage.normalize(p) for p in _list_entries(raw, base)]
        else:
            ordered += _expand_one(raw)
    seen: set[str] = set()
    unique = [p for p in ordered if not (p in seen or seen.add(p))]
    if limit is not None:
        unique = unique[:limit]
    if not unique:
        raise ValueError(f"--input {ctx.inputs} holds no WARC/ARC files ({', '.join(WARC_SUFFIXES)})")
    return sorted(unique)


def local_path(uri: str) -> str:
    return uri.removeprefix("file:") if uri.startswith("file:/") else uri


def run(ctx: StageContext) -> None:
    """Pass 1: one task per WARC file stages its rows (Arrow IPC) and returns keys only. Exact
    dedup is decided on the keys. Pass 2: one group per output part writes its files' rows and
    counts them by drop reason. The whole plan is one Spark job: pass 1 runs once, feeding the
    dedup shuffle directly (nothing is persisted or counted on the side)."""
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
    for folder in [ctx.staging] + ([ctx.path("_dropped")] if ctx.keep_dropped else []):
        ctx.fs.mkdirs(folder)
    spark = ctx.spark
    # One id per Spark partition (JVM only: no Python worker just to hand out paths); the paths
    # travel once per worker as a broadcast, not in every task's closure.
    files = spark.range(0, n_files, 1, n_files).selectExpr("cast(id as int) as idx")
    paths_bc = spark.sparkContext.broadcast(paths)
    keys = files.mapInArrow(PrepareFiles(cfg, ctx.fs.qualify(rows_dir), paths_bc), KEYS_DDL)
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
    # One group per output part: a marker row (so parts without losers are written too) plus
    # that part's losers. Same Python worker kind as pass 1: no second daemon, no RDD pickling.
    part = F.expr(f"cast((cast(file_idx as bigint) * {n_parts}) div {n_files} as int)").alias("part")
    marks = spark.range(0, n_parts).select(
        F.col("id").cast("int").alias("part"),
        F.lit(None).cast("int").alias("file_idx"),
        F.lit(None).cast("int").alias("row_idx"),
    )
    try:
        written = (
            marks.unionByName(losers.select(part, "file_idx", "row_idx"))
            .groupBy("part")
            .applyInArrow(writer.group_fn(), WriteParts.RESULT_DDL)
            .collect()
        )
    finally:
        paths_bc.destroy()
    if sorted(r["part"] for r in written) != list(range(n_parts)):
        raise RuntimeError(
            f"prepare wrote parts {sorted(r['part'] for r in written)}, expected 0..{n_parts - 1}"
        )
    counts: dict[str | None, int] = {}
    for r in written:
        for reason, n in json.loads(r["reasons"]).items():
            counts[reason] = counts.get(reason, 0) + n
        counts[None] = counts.get(None, 0) + r["rows"]
    ctx.stats.add_reasons(counts)
    ctx.fs.delete(rows_dir)


if __name__ == "__main__":
    main("prepare", run)
