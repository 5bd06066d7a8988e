"""Stage 2a ``clean``: line-level dedup (dots.llm1) + Gopher/RefinedWeb/C4 heuristic filters.

    python -m jobs.clean --input OUT_prepare --output OUT_clean [--set clean.line_dedup.previous_counts=OLD/_line_counts]

Plan (nothing is collected to the driver; the text never goes through a shuffle):
1. one task per input file reads it with pyarrow (``read_rows``): each document's first/last
   content lines -> (doc_id, fetch_time, line_idx, line_hash, line, file_idx, row_idx) rows,
   written once to a work folder;
2. counts per line_hash (+ a previous run's counts when configured) -> ``OUT/_line_counts``;
3. for lines over the limit, ``row_number`` over (fetch_time, doc_id, line_idx) marks the
   occurrences past the limit; they are grouped per document place (file_idx, row_idx) into ``del_idx``;
4. ``write_parts``: one task per output part (the input's part layout, ``jobs.common.InputLayout``)
   reads its input files, joins its documents' ``del_idx``, deletes those lines, applies the C4 line
   rules, computes every ``h_*`` signal and the drop reason from the configured bounds, and writes
   kept (and dropped) rows in input order.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import argparse

from jobs.common import StageContext, _rename_parts, main, read_parquet_files, write_sorted, write_work

LINE_COUNTS = "_line_counts"
WORK = "_work_clean"


def line_dedup_deletions(ctx: StageContext, layout):
    """DataFrame (file_idx, row_idx, del_idx: array<int>) of the line occurrences to delete, by the
    document's place in the input layout; writes the merged line-count table to
    ``OUT/_line_counts`` and its figures to ``stats.extra`` (the deletions are counted by the write
    pass, :class:`ScoreTransform`)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from udfs.clean import CANDIDATE_POS_SCHEMA, candidates_fn

    ld = ctx.section.line_dedup
    prev_path = previous_counts_path(ctx)
    work = ctx.work_path(WORK)
    cand_path = work + "/candidates"
    fn = candidates_fn(ld.head_lines, ld.tail_lines, ld.store_examples, positions=True)
    cand = write_work(ctx.read_rows(layout, ["doc_id", "fetch_time", "text"], fn, CANDIDATE_POS_SCHEMA), cand_path)
    counts = cand.groupBy("line_hash").agg(F.count(F.lit(1)).alias("here"))
    if prev_path:
        prev = read_parquet_files(ctx.spark, _parquet_files(ctx, prev_path)).select("line_hash", F.col("count").alias("prev"))
        merged = counts.join(prev, "line_hash", "full_outer")
    else:
        merged = counts.withColumn("prev", F.lit(None).cast("long"))
    merged = merged.select(
        "line_hash",
        F.coalesce("prev", F.lit(0)).cast("long").alias("prev"),
        (F.coalesce("here", F.lit(0)) + F.coalesce("prev", F.lit(0))).cast("long").alias("count"),
    )
    merged_path = work + "/merged"
    merged = write_work(merged, merged_path)
    over = merged.filter(F.col("count") > ld.max_occurrences).select("line_hash", "prev")
    occ = cand.join(over, "line_hash")
    w = Window.partitionBy("line_hash").orderBy(F.asc_nulls_last("fetch_time"), "doc_id", "line_idx")
    ranked = occ.withColumn("rank", F.row_number().over(w))
    deleted = ranked.filter(F.col("prev") + F.col("rank") > ld.max_occurrences)

    table = merged.select("line_hash", "count")
    if ld.store_examples:
        ex = (
            cand.join(over.select("line_hash"), "line_hash")
            .groupBy("line_hash")
            .agg(F.min("line").alias("example"))
        )
        table = table.join(ex, "line_hash", "left")
    write_sorted(table, ctx.path(LINE_COUNTS), max(1, _partitions(ctx) // 4), "line_hash", mode="overwrite")
    _rename_parts(ctx.fs, ctx.path(LINE_COUNTS))

    figures = merged.agg(
        F.count(F.lit(1)).alias("distinct_lines"),
        F.sum(F.col("count") - F.col("prev")).alias("candidate_lines"),
        F.sum(F.when(F.col("count") > ld.max_occurrences, 1).otherwise(0)).alias("lines_over_limit"),
    ).first()
    ctx.stats.extra["line_dedup"] = {
        "candidate_lines": int(figures["candidate_lines"] or 0),
        "distinct_lines": int(figures["distinct_lines"] or 0),
        "lines_over_limit": int(figures["lines_over_limit"] or 0),
        "previous_counts": prev_path,
    }
    return deleted.groupBy("file_idx", "row_idx").agg(F.collect_list("line_idx").alias("del_idx"))


def previous_counts_path(ctx: StageContext) -> str | None:
    """``--previous-line-counts`` wins over ``clean.line_dedup.previous_counts``; checked to exist."""
    cli = getattr(ctx.extra_args, "previous_line_counts", None) if ctx.extra_args else None
    p = cli or ctx.section.line_dedup.previous_counts
    if p and not ctx.fs.exists(p):
        raise ValueError(
            f"previous line counts {p} do not exist; pass an earlier clean run's OUT/{LINE_COUNTS} "
            "or unset clean.line_dedup.previous_counts"
        )
    return p


def _parquet_files(ctx: StageContext, folder: str) -> list[str]:
    """The ``part-*.parquet`` files of an earlier run's ``_line_counts`` folder."""
    files = [p for p in ctx.fs.list(folder) if p.rsplit("/", 1)[-1].endswith(".parquet")]
    if not files:
        raise ValueError(f"previous line counts {folder} hold no Parquet files")
    return files


def _partitions(ctx: StageContext) -> int:
    return int(ctx.cfg.spark.settings().get("spark.sql.shuffle.partitions", 8))


class ScoreTransform:
    """One Arrow batch (+ ``del_idx``, the line-dedup deletions) -> the scored batch of
    :func:`udfs.clean.score_fn` (text without the deleted lines and C4 lines, signals, reason);
    counts ``lines_deleted`` and ``documents_touched`` into the part's totals."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, batch, totals: dict[str, float]):
        import pyarrow.compute as pc

        if "del_idx" in batch.schema.names:
            dels = batch.column("del_idx")
            totals["lines_deleted"] = totals.get("lines_deleted", 0) + (pc.sum(pc.list_value_length(dels)).as_py() or 0)
            totals["documents_touched"] = totals.get("documents_touched", 0) + len(dels) - dels.null_count
        return next(self.fn(iter([batch])))


def output_schema(in_schema):
    """Input columns (less ``del_idx``/``drop_reason``/an earlier run's signals), then
    ``line_dedup_removed``, the ``h_*`` signals and ``drop_reason``."""
    import pyarrow as pa

    from pipeline.clean.heuristics import SIGNAL_PREFIX, SIGNALS

    added = [pa.field("line_dedup_removed", pa.int32())] + [pa.field(SIGNAL_PREFIX + s, pa.float64()) for s in SIGNALS]
    skip = {f.name for f in added} | {"del_idx", "drop_reason"}
    return pa.schema([f for f in in_schema if f.name not in skip] + added + [pa.field("drop_reason", pa.string())])


def run(ctx: StageContext) -> None:
    from pyspark.sql.pandas.types import from_arrow_schema

    from pipeline.clean.heuristics import HeuristicParams
    from udfs.clean import score_fn

    c = ctx.section
    layout = ctx.input_layout(c.num_files)
    in_schema = ctx.input_schema(layout)
    missing = {"doc_id", "text"} - set(in_schema.names)
    if missing:
        raise ValueError(f"clean input lacks column(s) {sorted(missing)}: pass the prepare stage's output")
    out_schema = output_schema(in_schema)
    fn = score_fn(HeuristicParams.from_config(c), c.bounds_for, from_arrow_schema(out_schema))
    try:
        side = line_dedup_deletions(ctx, layout) if c.line_dedup.enabled else None
        totals = ctx.write_parts(layout, ScoreTransform(fn), out_schema, side=side,
                                 side_cols=("del_idx",) if side is not None else ())
        if side is not None:
            ctx.stats.extra["line_dedup"].update(
                {k: int(totals.get(k, 0)) for k in ("lines_deleted", "documents_touched")}
            )
    finally:
        ctx.fs.delete(ctx.work_path(WORK))


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--previous-line-counts",
        default=None,
        help="an earlier clean run's OUT/_line_counts; its counts are added first (incremental line dedup)",
    )


if __name__ == "__main__":
    main("clean", run, add_args=add_args, description=__doc__.splitlines()[0])
