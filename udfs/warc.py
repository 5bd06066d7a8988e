"""Spark adapters for stage 1: WARC files -> staged Arrow rows -> deterministic Parquet parts.

Two passes, neither of which moves the text through Spark:

1. :class:`PrepareFiles` (``mapInArrow`` over one file index per Spark partition) runs ``pipeline.prepare`` on one
   file, writes every row (kept and dropped, in record order) to an Arrow IPC file in a staging
   folder, and returns only the keys ``(file_idx, row_idx, doc_id, content_hash, drop_reason)``.
2. After the exact-dedup decision is taken on those keys, :class:`WriteParts` (one
   ``applyInArrow`` group per output part) reads the staged rows of its input files in file order, marks the losers
   ``exact_duplicate`` and writes ``part-NNNNN.parquet`` (kept rows) and, when asked,
   ``_dropped/part-NNNNN.parquet``.

Output part ``p`` holds the input files ``i`` (sorted paths) with ``i * parts // files == p``, rows
in record order: the bytes depend on the inputs and the config, never on how Spark cut the work.
"""

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

# What pass 1 returns to Spark: one small row per WARC record, never its text.
KEYS_DDL = "file_idx int, row_idx int, doc_id string, content_hash string, drop_reason string"

STAGED_BATCH_ROWS = 1024
ROW_GROUP_ROWS = 16384


def arrow_schema():
    """The documents table (with ``drop_reason``) as Arrow: the types Spark's own conversion of
    :data:`DOCUMENT_SCHEMA` gives (``doc_id`` not null, timestamps in microseconds UTC)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("url", pa.string()),
            pa.field("domain", pa.string()),
            pa.field("warc_file", pa.string()),
            pa.field("warc_offset", pa.int64()),
            pa.field("fetch_time", pa.timestamp("us", tz="UTC")),
            pa.field("charset", pa.string()),
            pa.field("title", pa.string()),
            pa.field("text", pa.string()),
            pa.field("lang", pa.string()),
            pa.field("lang_score", pa.float64()),
            pa.field("content_hash", pa.string()),
            pa.field("html_bytes", pa.int64()),
            pa.field("drop_reason", pa.string()),
        ]
    )


def part_of(file_idx: int, n_files: int, n_parts: int) -> int:
    """Output part of input file ``file_idx`` (contiguous, balanced groups of the sorted inputs)."""
    return file_idx * n_parts // n_files


def staged_name(file_idx: int) -> str:
    return f"file-{file_idx:07d}.arrow"


def _fs(uri: str):
    """``(pyarrow FileSystem, path)`` through the storage layer, so an ``s3://`` output gets the
    endpoint, region and credentials of the standard AWS settings (pipeline/storage)."""
    from pipeline import storage

    return storage.filesystem(uri)


def rows_to_batch(rows: list[dict[str, Any]], schema) -> Any:
    import pyarrow as pa

    return pa.RecordBatch.from_pydict({f.name: [r[f.name] for r in rows] for f in schema}, schema=schema)


class PrepareFiles:
    """``mapInArrow`` function of pass 1: ``(idx, path)`` rows in, key rows out.

    The stage state (URL lists, fastText model) is built once per Python worker. A task writes its
    staged file under a temporary name and renames it, so a retried attempt rewrites the same bytes.
    """

    def __init__(self, cfg: Any, staging_uri: str, paths: Any):
        self.cfg = cfg
        self.staging_uri = staging_uri
        self.paths = paths  # a Spark broadcast of the sorted input paths

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        from pipeline.prepare.process import Prepare

        prep = Prepare(self.cfg)
        paths = self.paths.value
        for batch in batches:
            for idx in batch.column("idx").to_pylist():
                yield self.one_file(prep, idx, paths[idx])

    def one_file(self, prep: Any, idx: int, path: str) -> Any:
        import pyarrow as pa

        from pipeline.prepare.process import process_warc_file

        schema = arrow_schema()
        fs, root = _fs(self.staging_uri)
        final = f"{root}/{staged_name(idx)}"
        tmp = f"{final}.{id(self)}.tmp"
        doc_ids: list[str] = []
        hashes: list[str | None] = []
        reasons: list[str | None] = []
        with fs.open_output_stream(tmp) as out, pa.ipc.new_file(out, schema) as writer:
            rows: list[dict[str, Any]] = []
            for row in process_warc_file(path, self.cfg, prep):
                doc_ids.append(row["doc_id"])
                hashes.append(row["content_hash"])
                reasons.append(row["drop_reason"])
                rows.append(row)
                if len(rows) >= STAGED_BATCH_ROWS:
                    writer.write_batch(rows_to_batch(rows, schema))
                    rows = []
            if rows:
                writer.write_batch(rows_to_batch(rows, schema))
        fs.move(tmp, final)
        n = len(doc_ids)
        return pa.RecordBatch.from_pydict(
            {
                "file_idx": pa.array([idx] * n, pa.int32()),
                "row_idx": pa.array(range(n), pa.int32()),
                "doc_id": pa.array(doc_ids, pa.string()),
                "content_hash": pa.array(hashes, pa.string()),
                "drop_reason": pa.array(reasons, pa.string()),
            }
        )


class ParquetPart:
    """One Parquet file (zstd) written from a stream of batches, row groups of exactly
    ``ROW_GROUP_ROWS`` rows (the last one fewer), each from one contiguous chunk: the bytes do not
    depend on how the input was cut into batches. Written under a temporary name, then renamed."""

    def __init__(self, uri: str, name: str, schema: Any, attempt: str):
        self.fs, root = _fs(uri)
        self.final = f"{root}/{name}"
        self.tmp = f"{root}/.{name}.{attempt}.tmp"
        self.schema = schema
        self.rows = 0
        self._pending: list = []
        self._buffered = 0
        self._out = self.fs.open_output_stream(self.tmp)
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(self._out, schema, compression="zstd")

    def _flush(self, batches: list) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches(batches, schema=self.schema).combine_chunks()
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def write(self, batch: Any) -> None:
        import pyarrow as pa

        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            full = (self._buffered // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
            self._flush(table.slice(0, full).to_batches())
            rest = table.slice(full)
            self._pending, self._buffered = rest.to_batches(), rest.num_rows

    def close(self) -> None:
        if self._buffered:
            self._flush(self._pending)
        self._writer.close()
        self._out.close()
        self.fs.move(self.tmp, self.final)


class WriteParts:
    """Pass 2, one call per output part: ``write(part, losers)`` writes part ``part`` from the
    staged rows of its input files, marking ``losers`` (``(file_idx, row_idx)`` pairs) as exact
    duplicates, and counts its rows: kept, and dropped per reason (the stage's stats).
    :meth:`group_fn` adapts it to ``groupBy("part").applyInArrow``."""

    RESULT_DDL = "part int, rows long, reasons string"

    def __init__(
        self, staging_uri: str, output_uri: str, dropped_uri: str | None, n_files: int, n_parts: int
    ):
        self.staging_uri = staging_uri
        self.output_uri = output_uri
        self.dropped_uri = dropped_uri
        self.n_files = n_files
        self.n_parts = n_parts

    def files_of(self, part: int) -> list[int]:
        lo = -(-part * self.n_files // self.n_parts)
        hi = -(-(part + 1) * self.n_files // self.n_parts)
        return list(range(lo, hi))

    def group_fn(self):
        """``applyInArrow`` function: the group of one part (a marker row with null indices, plus
        one row per loser) in, ``(part, kept rows, {drop reason: rows} as JSON)`` out."""

        def write_group(table):
            import json

            import pyarrow as pa

            part = table.column("part")[0].as_py()
            files, rows = table.column("file_idx").to_pylist(), table.column("row_idx").to_pylist()
            losers = [(f, r) for f, r in zip(files, rows, strict=True) if f is not None]
            kept, reasons = self.write(part, losers)
            return pa.table(
                {
                    "part": pa.array([part], pa.int32()),
                    "rows": pa.array([kept], pa.int64()),
                    "reasons": pa.array([json.dumps(reasons, sort_keys=True)], pa.string()),
                }
            )

        return write_group

    def write(self, part: int, losers: list[tuple[int, int]]) -> tuple[int, dict[str, int]]:
        """Write output part ``part``; returns ``(kept rows, {drop reason: rows})``, the exact
        duplicates it marked included."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyspark import TaskContext

        from pipeline.prepare.process import EXACT_DUPLICATE

        by_file: dict[int, list[int]] = {}
        for file_idx, row_idx in losers:
            by_file.setdefault(file_idx, []).append(row_idx)
        tc = TaskContext.get()
        attempt = f"{tc.stageId()}-{tc.attemptNumber()}" if tc else "local"
        schema = arrow_schema()
        kept_schema = schema.remove(schema.get_field_index("drop_reason"))
        name = f"part-{part:05d}.parquet"
        kept_out = ParquetPart(self.output_uri, name, kept_schema, attempt)
        dropped_out = ParquetPart(self.dropped_uri, name, schema, attempt) if self.dropped_uri else None
        fs, root = _fs(self.staging_uri)
        reasons: dict[str, int] = {}
        for file_idx in self.files_of(part):
            lost = np.array(sorted(by_file.pop(file_idx, [])), dtype=np.int64)
            start = 0
            with fs.open_input_file(f"{root}/{staged_name(file_idx)}") as f:
                reader = pa.ipc.open_file(f)
                for i in range(reader.num_record_batches):
                    batch = reader.get_batch(i)
                    n = batch.num_rows
                    reason = batch.column("drop_reason")
                    here = lost[(lost >= start) & (lost < start + n)] - start
                    if len(here):
                        mask = np.zeros(n, dtype=bool)
                        mask[here] = True
                        reason = pc.if_else(pa.array(mask), pa.scalar(EXACT_DUPLICATE), reason)
                        batch = batch.set_column(
                            batch.schema.get_field_index("drop_reason"), "drop_reason", reason
                        )
                    start += n
                    for v in pc.value_counts(reason).to_pylist():
                        if v["values"] is not None:
                            reasons[v["values"]] = reasons.get(v["values"], 0) + v["counts"]
                    keep = pc.is_null(reason)
                    kept_out.write(batch.filter(keep).drop_columns(["drop_reason"]))
                    if dropped_out is not None:
                        dropped_out.write(batch.filter(pc.invert(keep)))
            if len(lost) and lost[-1] >= start:
                raise ValueError(
                    f"part {part}: duplicate key row {int(lost[-1])} is past the {start} rows staged for file {file_idx}"
                )
        if by_file:
            raise ValueError(f"part {part}: duplicate keys for files {sorted(by_file)} outside this part")
        kept_out.close()
        if dropped_out is not None:
            dropped_out.close()
        return kept_out.rows, reasons
