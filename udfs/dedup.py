"""Spark adapters for the ``dedup`` stage: MinHash band keys over Arrow batches (numpy-vectorized
signatures), exact shingle Jaccard of candidate pairs, and the seeded survivor priority."""

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

        from pipeline.dedup.minhash import (
            band_keys,
            doc_shingle_hashes,
            make_permutations,
            signatures,
        )

        perms = make_permutations(p.num_perm, p.perm_seed, p.scheme)  # once per task, ~1 ms
        for batch in batches:
            texts = batch.column("text").to_pylist()
            langs = batch.column("lang").to_pylist()
            hl = [doc_shingle_hashes(t, lg, p) for t, lg in zip(texts, langs)]
            n_sh = np.array([len(h) for h in hl], dtype=np.int32)
            has = np.flatnonzero(n_sh)
            keys = band_keys(signatures([hl[i] for i in has], perms), p.bands, p.rows) if len(has) else None
            counts = np.where(n_sh > 0, p.bands, 0).astype(np.int32)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
            values = keys.reshape(-1) if keys is not None else np.empty(0, dtype=np.int64)
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
    (src, dst, jaccard): the exact Jaccard similarity of the two shingle sets."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pipeline.dedup.minhash import doc_shingles, jaccard

        for batch in batches:
            cols = {n: batch.column(n).to_pylist() for n in ("text_a", "lang_a", "text_b", "lang_b")}
            js = [
                jaccard(doc_shingles(ta, la, p), doc_shingles(tb, lb, p))
                for ta, la, tb, lb in zip(cols["text_a"], cols["lang_a"], cols["text_b"], cols["lang_b"])
            ]
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
