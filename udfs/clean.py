"""Spark adapters for the ``clean`` stage: ``mapInArrow`` functions over Arrow record batches that
call :mod:`pipeline.clean` (line-dedup candidates; line removal + heuristic signals + decision)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import types as T

from pipeline.clean.heuristics import REASON_EMPTY, REASON_ERROR, SIGNAL_PREFIX, SIGNALS, HeuristicParams

CANDIDATE_SCHEMA = T.StructType(
    [
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("fetch_time", T.TimestampType(), True),
        T.StructField("line_idx", T.IntegerType(), False),
        T.StructField("line_hash", T.LongType(), False),
        T.StructField("line", T.StringType(), True),
    ]
)
# The same rows with the document's place in the input layout (jobs.common.InputLayout).
CANDIDATE_POS_SCHEMA = T.StructType(
    CANDIDATE_SCHEMA.fields
    + [T.StructField("file_idx", T.IntegerType(), False), T.StructField("row_idx", T.IntegerType(), False)]
)
EXAMPLE_CHARS = 300  # normalized line text kept for inspection of over-limit lines


def candidates_fn(head: int, tail: int, keep_text: bool, positions: bool = False):
    """``mapInArrow`` function: (doc_id, fetch_time, text) -> one row per head/tail content line
    (:data:`CANDIDATE_SCHEMA`); with ``positions``, the batches also carry ``file_idx``/``row_idx``
    and so do the rows (:data:`CANDIDATE_POS_SCHEMA`)."""
    schema = CANDIDATE_POS_SCHEMA if positions else CANDIDATE_SCHEMA

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pipeline.clean.linededup import candidate_lines

        for batch in batches:
            ids = batch.column("doc_id").to_pylist()
            texts = batch.column("text").to_pylist()
            ft = batch.column("fetch_time")
            take, idx, keys, lines = [], [], [], []
            for row, (d, t) in enumerate(zip(ids, texts)):
                if d is None:
                    continue
                for i, k, norm in candidate_lines(t, head, tail):
                    take.append(row)
                    idx.append(i)
                    keys.append(k)
                    lines.append(norm[:EXAMPLE_CHARS] if keep_text else None)
            rows = pa.array(take, type=pa.int64())
            if ft.type != pa.timestamp("us", tz="UTC"):
                ft = ft.cast(pa.timestamp("us", tz="UTC"))
            arrays = [
                batch.column("doc_id").take(rows),
                ft.take(rows),
                pa.array(idx, type=pa.int32()),
                pa.array(keys, type=pa.int64()),
                pa.array(lines, type=pa.string()),
            ]
            if positions:
                arrays += [batch.column("file_idx").take(rows), batch.column("row_idx").take(rows)]
            yield pa.RecordBatch.from_arrays(arrays, names=[f.name for f in schema.fields])

    return run


def scored_schema(input_schema: T.StructType) -> T.StructType:
    """The input columns (minus ``del_idx``) + ``line_dedup_removed`` + ``h_*`` signals + reason."""
    fields = [f for f in input_schema.fields if f.name not in ("del_idx", "drop_reason")]
    fields.append(T.StructField("line_dedup_removed", T.IntegerType(), False))
    fields += [T.StructField(SIGNAL_PREFIX + s, T.DoubleType(), True) for s in SIGNALS]
    fields.append(T.StructField("drop_reason", T.StringType(), True))
    return T.StructType(fields)


def score_fn(params: HeuristicParams, bounds_by_lang: Any, out_schema: T.StructType):
    """``mapInArrow`` function: remove line-dedup lines (``del_idx``), apply the C4 line rules,
    compute every signal, decide the drop reason with ``bounds_by_lang(lang)``.

    A record that raises is dropped with reason ``error_clean`` (counted), never failing the task.
    """
    out_names = [f.name for f in out_schema.fields]
    passthrough = [
        f.name for f in out_schema.fields if f.name not in ("text", "line_dedup_removed", "drop_reason")
    ]
    passthrough = [n for n in passthrough if not n.startswith(SIGNAL_PREFIX)]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pipeline import faults
        from pipeline.clean.heuristics import decide, score_document
        from pipeline.clean.linededup import remove_lines

        bounds_cache: dict = {}
        for batch in batches:
            names = batch.schema.names
            texts = batch.column("text").to_pylist()
            langs = batch.column("lang").to_pylist() if "lang" in names else [None] * batch.num_rows
            dels = batch.column("del_idx").to_pylist() if "del_idx" in names else [None] * batch.num_rows
            ids = batch.column("doc_id").to_pylist()
            out_text, removed, reasons = [], [], []
            sig_cols: dict[str, list] = {s: [] for s in SIGNALS}
            for d, t, lg, di in zip(ids, texts, langs, dels):
                sig: dict = {}
                try:
                    faults.check(d)
                    t2, n_removed = remove_lines(t or "", di or [])
                    t3, sig = score_document(t2, lg, params)
                    if not t3.strip():
                        reason = REASON_EMPTY
                    else:
                        if lg not in bounds_cache:
                            bounds_cache[lg] = bounds_by_lang(lg)
                        reason = decide(sig, bounds_cache[lg])
                except Exception:  # noqa: BLE001 - a bad record is a counted drop, never a failed task
                    t3, n_removed, sig, reason = t, 0, {}, REASON_ERROR
                out_text.append(t3)
                removed.append(n_removed)
                reasons.append(reason)
                for s in SIGNALS:
                    sig_cols[s].append(sig.get(s))
            arrays = []
            for name in out_names:
                if name in passthrough:
                    arrays.append(batch.column(name))
                elif name == "text":
                    arrays.append(pa.array(out_text, type=pa.string()))
                elif name == "line_dedup_removed":
                    arrays.append(pa.array(removed, type=pa.int32()))
                elif name == "drop_reason":
                    arrays.append(pa.array(reasons, type=pa.string()))
                else:
                    arrays.append(pa.array(sig_cols[name[len(SIGNAL_PREFIX) :]], type=pa.float64()))
            yield pa.RecordBatch.from_arrays(arrays, names=out_names)

    return run
