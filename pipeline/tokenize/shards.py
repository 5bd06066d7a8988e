"""Token shards: uncompressed Arrow IPC files that the trainer memory-maps, and their ``index.json``.

Shard schema: ``input_ids: large_list<uint32>`` (one document, EOS appended) and ``doc_id: string``.
A shard is written to a temporary name and renamed when complete, so a reader never sees half a
shard; a shard closes after the document that crosses ``tokens_per_shard`` (documents are never
split). Record batches of about 2^20 tokens keep writer memory flat whatever the shard size.

Sampling (``sample_weight``, written by the balance stage): a document of weight w is emitted
floor(w) times, plus once more when u < w - floor(w), with u = hash64(f"{seed}:{doc_id}") / 2^64.
Copies are ordered by hash64(f"{seed}:{doc_id}:{copy}") so that repeats of a document land far apart
and the order does not depend on how the input was partitioned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from pipeline.tokenize.tokenizer import Encoder, TokenizerInfo

SCHEMA = pa.schema([("input_ids", pa.large_list(pa.uint32())), ("doc_id", pa.string())])
INDEX_FORMAT = "dots-token-shards/1"
RECORD_BATCH_TOKENS = 1 << 20

# Drop reasons of the tokenize stage (family prefix "tokenize_"; error_ = also an error).
REASON_EMPTY_TEXT = "tokenize_empty_text"
REASON_SAMPLED_OUT = "tokenize_sampled_out"
REASON_BAD_WEIGHT = "error_tokenize_bad_sample_weight"


def hash64(key: str) -> int:
    """Unsigned 64-bit hash of ``key`` (BLAKE2b), stable across processes and Python versions."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def signed64(u: int) -> int:
    """The same 64 bits as a signed integer (Spark's LongType sorts these)."""
    return u - (1 << 64) if u >= 1 << 63 else u


def num_copies(seed: int, doc_id: str, weight: float | None) -> int | str:
    """How many times a document is emitted for ``sample_weight`` ``weight``; a reason when invalid."""
    if weight is None:
        return 1
    if not isinstance(weight, (int, float)) or math.isnan(weight) or math.isinf(weight) or weight < 0:
        return REASON_BAD_WEIGHT
    whole = math.floor(weight)
    frac = weight - whole
    extra = 1 if frac > 0 and hash64(f"{seed}:{doc_id}") / 2.0**64 < frac else 0
    return int(whole) + extra


def order_key(seed: int, doc_id: str, copy: int) -> int:
    return signed64(hash64(f"{seed}:{doc_id}:{copy}"))


def expand_documents(
    doc_ids: Sequence[str | None],
    texts: Sequence[str | None],
    weights: Sequence[float | None] | None,
    seed: int,
) -> tuple[list[tuple[int, str, int, str]], dict[str | None, int]]:
    """Apply sample weights: ([(order_key, doc_id, copy, text)], {reason or None(kept): n input docs})."""
    rows: list[tuple[int, str, int, str]] = []
    counts: dict[str | None, int] = {}
    for i, (doc_id, text) in enumerate(zip(doc_ids, texts)):
        if not text or doc_id is None:
            reason: str | None = REASON_EMPTY_TEXT
        else:
            n = num_copies(seed, doc_id, None if weights is None else weights[i])
            if isinstance(n, str):
                reason = n
            elif n == 0:
                reason = REASON_SAMPLED_OUT
            else:
                reason = None
                rows.extend((order_key(seed, doc_id, c), doc_id, c, text) for c in range(n))
        counts[reason] = counts.get(reason, 0) + 1
    return rows, counts


# ---------------------------------------------------------------- file systems


def open_fs(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow FileSystem and path for a local path, ``file:`` URI, ``s3://`` (``s3a://``) URI
    configured from the AWS variables and files (:mod:`pipeline.storage`), or anything pyarrow
    opens (``hdfs://`` needs libhdfs on the workers)."""
    from pipeline import storage

    return storage.filesystem(uri)


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


@dataclasses.dataclass
class ShardMeta:
    file: str
    documents: int
    tokens: int


class ShardWriter:
    """Streams encoded documents into ``{prefix}-{j:05d}.arrow`` files under ``out_uri``."""

    def __init__(self, out_uri: str, prefix: str, tokens_per_shard: int) -> None:
        from pipeline import storage

        self.fs, self.base = open_fs(out_uri)
        self.out_uri = out_uri
        self._remote = not storage.supports_rename(out_uri)
        if not self._remote:
            self.fs.create_dir(self.base, recursive=True)
        self.prefix = prefix
        self.tokens_per_shard = tokens_per_shard
        self.shards: list[ShardMeta] = []
        self._reset_buffers()
        self._writer = None
        self._stream = None
        self._tmp = ""
        self._docs = 0
        self._tokens = 0

    def _reset_buffers(self) -> None:
        self._ids: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._doc_ids: list[str] = []
        self._buffered = 0

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.shards):05d}.arrow"
        # Unique temp name: a retried or speculative task never writes into another attempt's file.
        self._final = _join(self.base, name)
        if self._remote:  # no rename in an object store: a local file, uploaded whole when complete
            fd, self._tmp = tempfile.mkstemp(prefix=f"dots-{name}-")
            os.close(fd)
            self._stream = pafs.LocalFileSystem().open_output_stream(self._tmp)
        else:
            self._tmp = _join(self.base, f"_tmp-{uuid.uuid4().hex[:12]}-{name}")
            self._stream = self.fs.open_output_stream(self._tmp)
        self._writer = pa.ipc.new_file(self._stream, SCHEMA)  # uncompressed: memory-mappable

    def _write_batch(self) -> None:
        if not self._doc_ids:
            return
        if self._writer is None:
            self._open()
        values = np.concatenate(self._ids) if len(self._ids) > 1 else self._ids[0]
        lengths = np.concatenate(self._lengths)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Arrow arrays straight from numpy buffers: no per-token Python objects.
        input_ids = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.uint32()))
        batch = pa.RecordBatch.from_arrays([input_ids, pa.array(self._doc_ids, type=pa.string())], schema=SCHEMA)
        self._writer.write_batch(batch)
        self._docs += len(self._doc_ids)
        self._tokens += int(offsets[-1])
        self._reset_buffers()

    def _close_shard(self) -> None:
        self._write_batch()
        if self._writer is None:
            return
        self._writer.close()
        self._stream.close()
        if self._remote:
            from pipeline import storage

            try:
                storage.upload_file(self._tmp, self.out_uri.rstrip("/") + "/" + self._final.rsplit("/", 1)[-1])
            finally:
                os.remove(self._tmp)
        else:
            self.fs.move(self._tmp, self._final)
        self.shards.append(ShardMeta(self._final.rsplit("/", 1)[-1], self._docs, self._tokens))
        self._writer = self._stream = None
        self._docs = self._tokens = 0

    def add(self, ids: np.ndarray, lengths: np.ndarray, doc_ids: Sequence[str]) -> None:
        """Append encoded documents (flat ids + per-doc lengths) in order."""
        start = 0
        ends = np.cumsum(lengths)
        for i, doc_id in enumerate(doc_ids):
            end = int(ends[i])
            self._ids.append(ids[start:end])
            self._lengths.append(lengths[i : i + 1])
            self._doc_ids.append(doc_id)
            self._buffered += end - start
            start = end
            shard_tokens = self._tokens + self._buffered
            if shard_tokens >= self.tokens_per_shard:
                self._close_shard()
            elif self._buffered >= RECORD_BATCH_TOKENS:
                self._write_batch()

    def close(self) -> list[ShardMeta]:
        self._close_shard()
        return self.shards

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._stream.close()
            if self._remote:
                os.remove(self._tmp)
            else:
                self.fs.delete_file(self._tmp)
            self._writer = self._stream = None


def encode_into(
    writer: ShardWriter, encoder: Encoder, rows: Iterable[tuple[str, str]], batch_docs: int
) -> None:
    """Encode ``(doc_id, text)`` rows in batches of ``batch_docs`` and append them to ``writer``."""
    doc_ids: list[str] = []
    texts: list[str] = []
    for doc_id, text in rows:
        doc_ids.append(doc_id)
        texts.append(text)
        if len(texts) >= batch_docs:
            ids, lengths = encoder.encode(texts)
            writer.add(ids, lengths, doc_ids)
            doc_ids, texts = [], []
    if texts:
        ids, lengths = encoder.encode(texts)
        writer.add(ids, lengths, doc_ids)


def build_index(info: TokenizerInfo, engine: str, shards: Iterable[ShardMeta], **extra) -> dict:
    """The ``index.json`` of a shard folder."""
    shards = sorted(shards, key=lambda s: s.file)
    return {
        "format": INDEX_FORMAT,
        "tokenizer": {"name": info.name, "sha256": info.sha256, "eos_token": info.eos_token},
        "vocab_size": info.vocab_size,
        "eos_id": info.eos_id,
        "dtype": "uint32",
        "engine": engine,
        "documents": sum(s.documents for s in shards),
        "tokens": sum(s.tokens for s in shards),
        "shards": [dataclasses.asdict(s) for s in shards],
        **extra,
    }


def write_index(out_uri: str, index: dict) -> None:
    fs, base = open_fs(out_uri)
    with fs.open_output_stream(_join(base, "index.json")) as f:
        f.write(json.dumps(index, indent=2, sort_keys=True).encode("utf-8"))


def tokenize_table(
    table: pa.Table,
    out_uri: str,
    info: TokenizerInfo,
    seed: int,
    tokens_per_shard: int = 1 << 27,
    engine: str = "auto",
    batch_docs: int = 512,
    use_sample_weight: bool = True,
    verify_docs: int = 256,
    prefix: str = "shard-00000",
) -> tuple[dict, dict[str | None, int]]:
    """The stage without Spark: a documents table (``doc_id``, ``text``[, ``sample_weight``]) ->
    shards + ``index.json`` under ``out_uri``, as one partition. Returns (index, reason counts)."""
    for col in ("doc_id", "text"):
        if col not in table.column_names:
            raise ValueError(f"documents table has no {col!r} column (columns: {table.column_names})")
    weights = None
    if use_sample_weight and "sample_weight" in table.column_names:
        weights = table.column("sample_weight").to_pylist()
    rows, counts = expand_documents(
        table.column("doc_id").to_pylist(), table.column("text").to_pylist(), weights, seed
    )
    rows.sort()
    encoder = Encoder(info, engine, verify_texts=[r[3] for r in rows[:verify_docs]])
    writer = ShardWriter(out_uri, prefix, tokens_per_shard)
    try:
        encode_into(writer, encoder, ((r[1], r[3]) for r in rows), batch_docs)
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    index = build_index(info, encoder.engine, shards, input_documents=sum(counts.values()))
    write_index(out_uri, index)
    return index, counts


def iter_shard_docs(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """(doc_id, ids) of every document of one shard, in order (for tests and inspection)."""
    with pa.memory_map(path, "r") as src:
        reader = pa.ipc.open_file(src)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            ids = batch.column(0)
            offsets = ids.offsets.to_numpy()
            values = ids.values.to_numpy()
            for j, doc_id in enumerate(batch.column(1).to_pylist()):
                yield doc_id, values[offsets[j] : offsets[j + 1]].copy()
