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
        T.StructField("keys", T.ArrayType(T.LongType(), False), False),
    ]
    if keep_text:
        fields += [T.StructField("text", T.StringType(), True), T.StructField("lang", T.StringType(), True)]
    return T.StructType(fields)


def bands_fn(p: MinHashParams, keep_text: bool):
    """``mapInArrow`` function: (nid, doc_id, text, lang) -> (nid, doc_id, n_shingles, keys[bands]).

    Documents without shingles get an empty ``keys`` list (they can only be singletons)."""

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
            keys = band_keys(
                signatures_flat(h, np.concatenate([[0], doc_off[1:][has]]), perms), p.bands, p.rows
            )
            counts = np.where(n_sh > 0, p.bands, 0).astype(np.int32)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
            values = keys.reshape(-1)
            arrays = [
                batch.column("nid"),
                batch.column("doc_id"),
                pa.array(n_sh, type=pa.int32()),
                pa.ListArray.from_arrays(
                    pa.array(offsets, type=pa.int32()), pa.array(values, type=pa.int64())
                ),
            ]
            names = ["nid", "doc_id", "n_shingles", "keys"]
            if keep_text:
                arrays += [batch.column("text"), batch.column("lang")]
                names += ["text", "lang"]
            yield pa.RecordBatch.from_arrays(arrays, names=names)

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
