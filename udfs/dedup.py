"""Spark adapters for the ``dedup`` stage: MinHash band keys over Arrow batches (compiled batch
kernels), exact shingle Jaccard of candidate pairs, and the seeded survivor priority."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import types as T

from pipeline.dedup.minhash import MinHashParams


def signature_schema(keep_text: bool) -> T.StructType:
    fields = [
        T.StructField("nid", T.LongType(), False),
        T.StructField("doc_id", T.StringType(), False),
        T.StructField("n_shingles", T.IntegerType(), False),
        T.StructField("keys", T.BinaryType(), False),
    ]
    if keep_text:
        fields += [T.StructField("text", T.StringType(), True), T.StructField("lang", T.StringType(), True)]
    return T.StructType(fields)


def bands_fn(p: MinHashParams, keep_text: bool):
    """``mapInArrow`` function: (nid, doc_id, text, lang) -> (nid, doc_id, n_shingles, keys) where
    ``keys`` holds the document's ``bands`` int64 bucket keys as raw bytes (one binary value per
    row is far cheaper through Arrow, Parquet and the JVM than an array of longs). Documents
    without shingles get empty ``keys`` (they can only be singletons)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        from pipeline.dedup.minhash import band_keys, batch_shingle_hashes, make_permutations, signatures_flat

        perms = make_permutations(p.num_perm, p.perm_seed, p.scheme)  # once per task, ~1 ms
        for batch in batches:
            texts = batch.column("text").to_pylist()
            langs = batch.column("lang").to_pylist()
            h, doc_off = batch_shingle_hashes(texts, langs, p)
            n_sh = np.diff(doc_off).astype(np.int32)
            has = np.flatnonzero(n_sh)
            # documents without shingles get no keys: drop their (empty) slices before hashing
            sig = signatures_flat(h, np.concatenate([[0], doc_off[1:][has]]), perms)
            keys = band_keys(sig, p.bands, p.rows)
            offsets = np.zeros(len(n_sh) + 1, dtype=np.int32)
            np.cumsum(np.where(n_sh > 0, p.bands * 8, 0), out=offsets[1:])
            blob = pa.Array.from_buffers(
                pa.binary(), len(n_sh), [None, pa.py_buffer(offsets), pa.py_buffer(keys.tobytes())]
            )
            arrays = [batch.column("nid"), batch.column("doc_id"), pa.array(n_sh, type=pa.int32()), blob]
            names = ["nid", "doc_id", "n_shingles", "keys"]
            if keep_text:
                arrays += [batch.column("text"), batch.column("lang")]
                names += ["text", "lang"]
            yield pa.RecordBatch.from_arrays(arrays, names=names)

    return run


def _binary_values(col: pa.Array):
    """(values as uint8 numpy, int64 offsets relative to them) of a binary Arrow array, no copy."""
    import numpy as np

    bufs = col.buffers()
    dt = np.int64 if pa.types.is_large_binary(col.type) else np.int32
    off = np.frombuffer(bufs[1], dtype=dt)[col.offset : col.offset + len(col) + 1].astype(np.int64)
    if bufs[2] is None or off[-1] == off[0]:
        return np.empty(0, dtype=np.uint8), off - off[0]
    return np.frombuffer(bufs[2], dtype=np.uint8)[off[0] : off[-1]], off - off[0]


PAIRS_SCHEMA = T.StructType(
    [T.StructField("part", T.IntegerType(), False), T.StructField("pairs", T.BinaryType(), False)]
)
EDGES_SCHEMA = T.StructType(
    [T.StructField("src", T.LongType(), False), T.StructField("dst", T.LongType(), False)]
)


def bucket_pairs_fn(n_parts: int):
    """``mapInArrow`` function: (nid, keys) -> (part, pairs): the batch's (bucket key, nid) pairs,
    split by ``part`` = the key's top bits mod ``n_parts`` and packed as raw int64 pairs, one row
    per part. Equal keys always get the same part, so grouping each part's pairs finds every
    bucket: one shuffle of a few large values instead of one row per (document, band)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        for batch in batches:
            data, off = _binary_values(batch.column("keys"))
            keys = data.view(np.int64)
            counts = np.diff(off) // 8
            nids = np.repeat(batch.column("nid").to_numpy(), counts)
            part = ((keys.view(np.uint64) >> np.uint64(32)) % np.uint64(n_parts)).astype(np.int64)
            order = np.argsort(part, kind="stable")
            bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
            pairs = np.empty((len(keys), 2), dtype=np.int64)
            pairs[:, 0] = keys[order]
            pairs[:, 1] = nids[order]
            ps, blobs = [], []
            for q in range(n_parts):
                if bounds[q + 1] > bounds[q]:
                    ps.append(q)
                    blobs.append(pairs[bounds[q] : bounds[q + 1]].tobytes())
            yield pa.RecordBatch.from_arrays(
                [pa.array(ps, type=pa.int32()), pa.array(blobs, type=pa.binary())], names=["part", "pairs"]
            )

    return run


def bucket_edges_fn():
    """``mapInArrow`` function over one shuffle partition of (part, pairs) rows -> star edges
    (src, dst) of all its buckets (:func:`pipeline.dedup.kernels.star_edges`), deduplicated within
    the partition."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        from pipeline.dedup.kernels import star_edges

        chunks = []
        for batch in batches:
            data, _ = _binary_values(batch.column("pairs"))
            if len(data):
                chunks.append(data.view(np.int64).reshape(-1, 2).copy())
        if not chunks:
            return
        pairs = np.concatenate(chunks)
        del chunks
        order = np.argsort(pairs[:, 0])
        src, dst = star_edges(pairs[order, 0], pairs[order, 1])
        yield pa.RecordBatch.from_arrays(
            [pa.array(src, type=pa.int64()), pa.array(dst, type=pa.int64())], names=["src", "dst"]
        )

    return run


def jaccard_fn(p: MinHashParams):
    """``mapInArrow`` function over candidate pairs (src, dst, text_a, lang_a, text_b, lang_b) ->
    (src, dst, jaccard): the exact Jaccard similarity of the two shingle sets (computed on their
    64-bit shingle hashes)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pipeline.dedup.kernels import pair_jaccard
        from pipeline.dedup.minhash import batch_shingle_hashes

        for batch in batches:
            ha, off_a = batch_shingle_hashes(
                batch.column("text_a").to_pylist(), batch.column("lang_a").to_pylist(), p
            )
            hb, off_b = batch_shingle_hashes(
                batch.column("text_b").to_pylist(), batch.column("lang_b").to_pylist(), p
            )
            js = pair_jaccard(ha, off_a, hb, off_b)
            yield pa.RecordBatch.from_arrays(
                [batch.column("src"), batch.column("dst"), pa.array(js, type=pa.float64())],
                names=["src", "dst", "jaccard"],
            )

    return run


JACCARD_SCHEMA = T.StructType(
    [
        T.StructField("src", T.LongType(), False),
        T.StructField("dst", T.LongType(), False),
        T.StructField("jaccard", T.DoubleType(), False),
    ]
)


def priority_fn(seed: int):
    """``mapInArrow`` function: (doc_id, ...) -> the same rows + ``prio`` = 63-bit hash of
    ``f"{seed}:{doc_id}"``; the smallest ``(prio, doc_id)`` of a component survives."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pipeline.prepare.normalize import stable_hash64

        for batch in batches:
            prio = [stable_hash64(seed, d) for d in batch.column("doc_id").to_pylist()]
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(prio, type=pa.int64())], names=[*batch.schema.names, "prio"]
            )

    return run
