"""Stage ``balance``: re-sample documents toward the taxonomy's category weights, deterministically.

    python -m jobs.balance --input OUT_filter --output OUT_balance [--set balance.temperature=0.5]

Plan: (1) one ``groupBy`` of the category key (leaf id, or -1 for null / unknown ids) counts
documents on the driver; (2) :func:`pipeline.balance.sampling.sample_weights` turns counts and weights
into expected copies per document of each leaf; (3) a pandas UDF decides per document from a hash of
``(seed, doc_id)``: kept with ``sample_weight`` (>= 1: copies for the tokenize stage) or dropped as
``balance_downsampled``; (4) ``write_documents``; (5) the before/after distribution goes to
``OUT/_balance.json``, the console and ``OUT/_balance.png``.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

from jobs.common import REASON_COL, StageContext, main
from pipeline.balance.report import chart_png, distribution, format_table
from pipeline.balance.sampling import BALANCE_DOWNSAMPLED, UNKNOWN, leaf_weights, sample_weights
from pipeline.category.taxonomy import load_taxonomy

REPORT_JSON = "_balance.json"
REPORT_PNG = "_balance.png"


def category_key_col(col_name: str, num_leaves: int):
    """Spark twin of :func:`pipeline.balance.sampling.category_key`."""
    from pyspark.sql import functions as F

    c = F.col(col_name).cast("double")
    ok = c.isNotNull() & ~F.isnan(c) & (c >= 0) & (c < num_leaves) & (c == F.floor(c))
    return F.when(ok, c.cast("int")).otherwise(F.lit(UNKNOWN))


def write_bytes(ctx: StageContext, name: str, data: bytes) -> None:
    """Write a binary side file (``OUT/name``)."""
    ctx.fs.write_bytes(ctx.path(name), data)


def run(ctx: StageContext) -> None:
    from pyspark.sql import functions as F

    from udfs.balance import sample_weight_udf

    sec = ctx.section
    tax = load_taxonomy(sec.taxonomy)
    weights = leaf_weights(tax, sec.weights)  # a bad override fails here, before any task
    df = ctx.read_previous()
    if sec.category_column not in df.columns:
        raise ValueError(
            f"balance: input has no column {sec.category_column!r}; run the filter stage first "
            "(it writes `category`) or set balance.category_column"
        )
    df = df.drop(REASON_COL, "sample_weight").withColumn(
        "_key", category_key_col(sec.category_column, len(tax))
    )
    counts = {
        int(r["_key"]): int(r["n"]) for r in df.groupBy("_key").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    key_w = sample_weights(
        counts, weights, sec.default_weight, sec.temperature, sec.target_ratio, sec.max_weight
    )
    sw = sample_weight_udf(key_w, ctx.cfg.seed)(F.col("doc_id"), F.col("_key"))
    decided = (
        df.withColumn("_sw", sw)
        .withColumn(
            REASON_COL, F.when(F.col("_sw") == 0.0, F.lit(BALANCE_DOWNSAMPLED)).otherwise(F.lit(None))
        )
        .withColumn("sample_weight", F.when(F.col("_sw") > 0.0, F.col("_sw")))
        .drop("_sw")
    ).persist()
    try:
        nchar = F.coalesce(F.length("text"), F.lit(0)).cast("long")
        kept = F.col(REASON_COL).isNull()
        rows = (
            decided.groupBy("_key")
            .agg(
                F.count(F.lit(1)).alias("docs"),
                F.sum(nchar).alias("chars"),
                F.sum(F.when(kept, 1).otherwise(0)).alias("docs_kept"),
                F.sum(F.when(kept, nchar).otherwise(0)).alias("chars_kept"),
            )
            .collect()
        )
        agg = {
            int(r["_key"]): {k: int(r[k] or 0) for k in ("docs", "chars", "docs_kept", "chars_kept")}
            for r in rows
        }
        ctx.write_documents(decided.drop("_key"), num_files=sec.num_files)
    finally:
        decided.unpersist()

    report = distribution(tax, key_w, agg)
    report["config"] = {
        "temperature": sec.temperature,
        "target_ratio": sec.target_ratio,
        "max_weight": sec.max_weight,
        "default_weight": sec.default_weight,
        "seed": ctx.cfg.seed,
        "unknown_key": UNKNOWN,
    }
    ctx.write_json(REPORT_JSON, report)
    if sec.chart:
        write_bytes(ctx, REPORT_PNG, chart_png(report))
    ctx.stats.extra["balance"] = report["totals"]
    print(format_table(report))


if __name__ == "__main__":
    main("balance", run)
