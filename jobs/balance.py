"""Stage ``balance``: re-sample documents toward the taxonomy's category weights, deterministically.

    python -m jobs.balance --input OUT_filter --output OUT_balance [--set balance.temperature=0.5]

Plan: (1) the category key column alone (leaf id, or -1 for null / unknown ids), read and counted
per key by Spark; (2) :func:`pipeline.balance.sampling.sample_weights` turns counts and weights
into expected copies per document of each leaf; (3) one task per output part (``write_parts``, the
input's part layout) reads its input files, decides per document from a hash of ``(seed, doc_id)``
(:func:`pipeline.balance.sampling.decide`): kept with ``sample_weight`` (>= 1: copies for the
tokenize stage) or dropped as ``balance_downsampled``, writes its part and returns per-key totals;
(4) the before/after distribution goes to ``OUT/_balance.json``, the console and ``OUT/_balance.png``.
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
from pipeline.balance.sampling import BALANCE_DOWNSAMPLED, UNKNOWN, category_key, leaf_weights, sample_weights
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


class BalanceTransform:
    """One Arrow batch -> the same columns (without an earlier ``sample_weight``), ``drop_reason``
    (``balance_downsampled``) and ``sample_weight``, decided per document by
    :func:`pipeline.balance.sampling.decide`; per category key the part's totals gain
    ``docs``/``chars``/``docs_kept``/``chars_kept`` (``"<key>/<name>"``)."""

    def __init__(self, key_weights: dict[int, float], seed: int, column: str, num_leaves: int, out_names: list[str]):
        self.key_weights, self.seed, self.column = dict(key_weights), seed, column
        self.num_leaves, self.out_names = num_leaves, out_names

    def _key(self, value) -> int:
        try:
            return category_key(value, self.num_leaves)
        except OverflowError:  # +-inf: not a leaf id
            return UNKNOWN

    def __call__(self, batch, totals: dict[str, float]):
        import pyarrow as pa
        import pyarrow.compute as pc

        from pipeline.balance.sampling import decide

        keys = [self._key(v) for v in batch.column(self.column).to_pylist()]
        ids = batch.column("doc_id").to_pylist()
        sw = [decide(self.seed, d, self.key_weights[k]) for d, k in zip(ids, keys)]
        nchar = pc.fill_null(pc.utf8_length(batch.column("text")), 0).to_pylist()
        for k, w, c in zip(keys, sw, nchar):
            totals[f"{k}/docs"] = totals.get(f"{k}/docs", 0) + 1
            totals[f"{k}/chars"] = totals.get(f"{k}/chars", 0) + c
            if w is not None:
                totals[f"{k}/docs_kept"] = totals.get(f"{k}/docs_kept", 0) + 1
                totals[f"{k}/chars_kept"] = totals.get(f"{k}/chars_kept", 0) + c
        cols = {n: batch.column(n) for n in batch.schema.names}
        cols[REASON_COL] = pa.array([None if w is not None else BALANCE_DOWNSAMPLED for w in sw], pa.string())
        cols["sample_weight"] = pa.array(sw, pa.float64())
        return pa.RecordBatch.from_arrays([cols[n] for n in self.out_names], names=self.out_names)


def run(ctx: StageContext) -> None:
    import pyarrow as pa
    from pyspark.sql import functions as F

    from jobs.common import read_parquet_files

    sec = ctx.section
    tax = load_taxonomy(sec.taxonomy)
    weights = leaf_weights(tax, sec.weights)  # a bad override fails here, before any task
    layout = ctx.input_layout(sec.num_files)
    in_schema = ctx.input_schema(layout)
    if sec.category_column not in in_schema.names:
        raise ValueError(
            f"balance: input has no column {sec.category_column!r}; run the filter stage first "
            "(it writes `category`) or set balance.category_column"
        )
    if "text" not in in_schema.names or "doc_id" not in in_schema.names:
        raise ValueError(f"balance: input {ctx.inputs} lacks doc_id or text; pass the filter stage's output")
    # 1. documents per category key: the key column alone, read and counted in the JVM
    keyed = read_parquet_files(ctx.spark, list(layout.files)).select(
        category_key_col(sec.category_column, len(tax)).alias("_key")
    )
    counts = {int(r["_key"]): int(r["n"]) for r in keyed.groupBy("_key").agg(F.count(F.lit(1)).alias("n")).collect()}
    key_w = sample_weights(
        counts, weights, sec.default_weight, sec.temperature, sec.target_ratio, sec.max_weight
    )
    # 2. decide and write, one task per output part
    fields = [f for f in in_schema if f.name not in (REASON_COL, "sample_weight")]
    out_schema = pa.schema(fields + [pa.field(REASON_COL, pa.string()), pa.field("sample_weight", pa.float64())])
    transform = BalanceTransform(key_w, ctx.cfg.seed, sec.category_column, len(tax), out_schema.names)
    totals = ctx.write_parts(layout, transform, out_schema)
    agg: dict[int, dict[str, int]] = {}
    for name, v in totals.items():
        k, field_name = name.split("/")
        agg.setdefault(int(k), {"docs": 0, "chars": 0, "docs_kept": 0, "chars_kept": 0})[field_name] = int(v)

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
