"""Stage 2b ``dedup``: MinHash-LSH near dedup + connected components (dots.llm1 report).

    python -m jobs.dedup --input OUT_clean --output OUT_dedup [--set dedup.verify=true]

Plan (nothing is collected to the driver):
1. one task per input file reads it with pyarrow; every document gets its place as 64-bit node id
   (``file_idx << 32 | row_idx``), its MinHash signature (compiled kernels over the Arrow batch)
   and 128 band keys -> work table (nid, doc_id, keys as raw bytes);
2. the (key, nid) pairs are packed per key range (one binary row per range and batch), shuffled
   by range, and each partition sorts its pairs: every bucket with more than one document yields
   star edges from each member to the bucket's smallest node id (no pair enumeration);
3. optionally (``dedup.verify``) edges whose exact shingle Jaccard is below the threshold go;
4. connected components by large-star / small-star rounds (Kiveris et al. 2014), each round
   written to Parquet (lineage cut) until the edges form stars around each component's minimum;
5. per component the document with the smallest (hash(seed:doc_id), doc_id) survives; the
   (node id, survivor, size) keys go to the part of their node (``write_parts``, the input's part
   layout), where every row gets ``dup_cluster`` (the survivor's doc_id) and ``dup_cluster_size``;
   the others are dropped with reason ``minhash_duplicate``. Only keys are shuffled, never the text.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import time

from jobs.common import StageContext, main, write_work

REASON_DUPLICATE = "minhash_duplicate"
WORK = "_work_dedup"


def connected_components(edges, work: str, max_iterations: int = 60, partitions: int = 8):
    """(src, dst) edges -> ``(DataFrame(nid, root), rounds)``: every node with an edge and the
    smallest node id of its component. Large-star then small-star per round; each round's edges
    are written under ``work`` (checkpoint) and the loop ends when every edge points to a root
    (0 rounds when the input edges already are such stars)."""
    from pyspark.sql import functions as F

    e = edges.select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst")).filter(
        F.col("src") != F.col("dst")
    )

    def is_star_forest(df) -> bool:
        return (
            df.join(df.select(F.col("src").alias("dst")).distinct(), "dst", "left_semi").limit(1).count() == 0
        )

    rounds = 0
    # LSH star edges are often stars already (small clusters): then no round is needed.
    done = is_star_forest(e.distinct())
    if done:
        e = e.distinct()
    while not done:
        rounds += 1
        if rounds > max_iterations:
            raise RuntimeError(
                f"connected components did not converge in {max_iterations} rounds; raise dedup.max_iterations"
            )
        # large-star: each node links its larger neighbours to min(its neighbourhood + itself)
        both = e.select(F.col("src").alias("u"), F.col("dst").alias("v")).unionByName(
            e.select(F.col("dst").alias("u"), F.col("src").alias("v"))
        )
        mins = both.groupBy("u").agg(F.min("v").alias("mv"))
        ls = (
            both.filter(F.col("v") > F.col("u"))
            .join(mins, "u")
            .select(F.col("v").alias("src"), F.least("u", "mv").alias("dst"))
            .distinct()
        )
        # small-star: each node links itself and its smaller neighbours to the smallest of them
        m2 = ls.groupBy("src").agg(F.min("dst").alias("m"))
        pairs = ls.join(m2, "src").select(
            F.explode(
                F.array(
                    F.struct(F.col("src").alias("a"), F.col("m").alias("b")),
                    F.struct(F.col("dst").alias("a"), F.col("m").alias("b")),
                )
            ).alias("p")
        )
        ss = pairs.select(F.col("p.a").alias("src"), F.col("p.b").alias("dst")).filter(
            F.col("src") != F.col("dst")
        )
        path = f"{work}/cc_{rounds:03d}"
        ss = ss.distinct().repartition(partitions, "src")
        e = write_work(ss, path)
        done = is_star_forest(e)
    comps = e.select(F.col("src").alias("nid"), F.col("dst").alias("root")).unionByName(
        e.select(F.col("dst").alias("nid"), F.col("dst").alias("root")).distinct()
    )
    return comps, rounds


def with_nid(inner):
    """mapInArrow adapter: batches with ``file_idx``/``row_idx`` -> ``inner`` over (doc_id, text,
    lang, nid) where ``nid = file_idx << 32 | row_idx`` (a document's node id is its place)."""

    def run(batches):
        import pyarrow as pa
        import pyarrow.compute as pc

        def add(bs):
            for b in bs:
                nid = pc.add(pc.shift_left(b.column("file_idx").cast(pa.int64()), 32), b.column("row_idx").cast(pa.int64()))
                yield pa.RecordBatch.from_arrays(
                    [b.column("doc_id"), b.column("text"), b.column("lang"), nid], names=["doc_id", "text", "lang", "nid"]
                )

        yield from inner(add(batches))

    return run


class ClusterTransform:
    """One Arrow batch + its side columns (``dup_cluster_id``, ``dup_size``: null for a document in
    no cluster) -> the input columns + ``dup_cluster`` (the survivor's doc_id, itself when alone),
    ``dup_cluster_size`` and ``drop_reason`` (``minhash_duplicate`` for all but the survivor);
    counts ``documents_in_clusters`` and ``clusters`` (their survivors) into the part's totals."""

    def __init__(self, out_names: list[str]):
        self.out_names = out_names

    def __call__(self, batch, totals: dict[str, float]):
        import pyarrow as pa
        import pyarrow.compute as pc

        doc = batch.column("doc_id")
        size = batch.column("dup_size")
        in_cluster = len(size) - size.null_count
        survivors = pc.sum(pc.equal(batch.column("dup_cluster_id"), doc).cast(pa.int64())).as_py() or 0
        totals["documents_in_clusters"] = totals.get("documents_in_clusters", 0) + in_cluster
        totals["clusters"] = totals.get("clusters", 0) + survivors
        cluster = pc.coalesce(batch.column("dup_cluster_id"), doc)
        cols = {n: batch.column(n) for n in batch.schema.names}
        cols["dup_cluster"] = cluster
        cols["dup_cluster_size"] = pc.coalesce(batch.column("dup_size"), pa.scalar(1, pa.int32()))
        cols["drop_reason"] = pc.if_else(pc.equal(cluster, doc), pa.scalar(None, pa.string()), pa.scalar(REASON_DUPLICATE))
        return pa.RecordBatch.from_arrays([cols[n] for n in self.out_names], names=self.out_names)


def run(ctx: StageContext) -> None:
    import pyarrow as pa
    from pyspark.sql import functions as F

    from pipeline.dedup.minhash import MinHashParams
    from udfs.dedup import (
        EDGES_SCHEMA,
        JACCARD_SCHEMA,
        PAIRS_SCHEMA,
        bands_fn,
        bucket_edges_fn,
        bucket_pairs_fn,
        jaccard_fn,
        priority_fn,
        signature_schema,
    )

    d = ctx.section
    p = MinHashParams.from_config(d)
    t0 = time.time()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        nonlocal t0
        phases[name] = round(time.time() - t0, 2)
        t0 = time.time()

    parts = d.cc_partitions or int(ctx.cfg.spark.settings().get("spark.sql.shuffle.partitions", 8))
    work = ctx.work_path(WORK)
    layout = ctx.input_layout(d.num_files)
    in_schema = ctx.input_schema(layout)
    missing = {"doc_id", "text", "lang"} - set(in_schema.names)
    if missing:
        raise ValueError(f"dedup input lacks column(s) {sorted(missing)}: pass the clean stage's output")
    try:
        # 1. signatures -> band keys (raw int64 bytes), computed once and stored with the node id
        # (file_idx << 32 | row_idx: where the document is, so the result needs no join on the text)
        sig_path = work + "/signatures"
        sigs = write_work(ctx.read_rows(
            layout, ["doc_id", "text", "lang"], with_nid(bands_fn(p, d.verify)), signature_schema(d.verify)
        ), sig_path)
        n_docs = sigs.count()
        phase("signatures")

        # 2. buckets -> star edges: the (key, nid) pairs travel packed per key range; each shuffle
        # partition sorts its pairs and links every member of a multi-document bucket to the
        # bucket's smallest nid (no pair enumeration); edges repeated across bands or partitions
        # are removed by the final distinct.
        bparts = d.bucket_partitions or max(parts, -(-n_docs * p.bands // d.pairs_per_partition))
        edges = (
            sigs.select("nid", "keys")
            .mapInArrow(bucket_pairs_fn(4 * bparts), PAIRS_SCHEMA)
            .repartition(bparts, "part")
            .mapInArrow(bucket_edges_fn(), EDGES_SCHEMA)
            .distinct()
        )
        edges_path = work + "/edges"
        edges = edges.repartition(parts, "src")
        edges = write_work(edges, edges_path)
        extra: dict = {"candidate_edges": edges.count(), "bucket_partitions": bparts}
        phase("edges")

        # 3. optional verification by exact shingle Jaccard
        if d.verify:
            a = sigs.select(
                F.col("nid").alias("src"), F.col("text").alias("text_a"), F.col("lang").alias("lang_a")
            )
            b = sigs.select(
                F.col("nid").alias("dst"), F.col("text").alias("text_b"), F.col("lang").alias("lang_b")
            )
            scored = edges.join(a, "src").join(b, "dst").mapInArrow(jaccard_fn(p), JACCARD_SCHEMA)
            ver_path = work + "/edges_verified"
            ver = scored.filter(F.col("jaccard") >= d.verify_threshold).select("src", "dst")
            edges = write_work(ver, ver_path)
            extra["verified_edges"] = edges.count()
            phase("verify")

        # 4. connected components
        comps, rounds = connected_components(edges, work, d.max_iterations, parts)
        extra["cc_rounds"] = rounds
        phase("components")

        # 5. survivor per component: smallest (hash(seed:doc_id), doc_id)
        members = sigs.select("nid", "doc_id").join(comps, "nid")
        members = members.mapInArrow(
            priority_fn(ctx.cfg.seed),
            "nid long, doc_id string, root long, prio long",
        )
        best = members.groupBy("root").agg(
            F.min(F.struct("prio", "doc_id")).alias("best"), F.count(F.lit(1)).alias("size")
        )
        clusters = members.join(best, "root").select(
            "nid",
            F.col("best.doc_id").alias("dup_cluster_id"),
            F.col("size").cast("int").alias("dup_size"),
        )

        side = clusters.select(
            F.shiftright("nid", 32).cast("int").alias("file_idx"),
            F.col("nid").bitwiseAND(F.lit(0xFFFFFFFF)).cast("int").alias("row_idx"),
            "dup_cluster_id",
            "dup_size",
        )
        drop = {"drop_reason", "dup_cluster", "dup_cluster_size"}
        out_schema = pa.schema(
            [f for f in in_schema if f.name not in drop]
            + [pa.field("dup_cluster", pa.string()), pa.field("dup_cluster_size", pa.int32()),
               pa.field("drop_reason", pa.string())]
        )
        totals = ctx.write_parts(layout, ClusterTransform(out_schema.names), out_schema, side=side,
                                 side_cols=("dup_cluster_id", "dup_size"))
        extra["clusters"] = int(totals.get("clusters", 0))
        extra["documents_in_clusters"] = int(totals.get("documents_in_clusters", 0))
        phase("survivors_and_write")
        extra["phase_seconds"] = phases
        ctx.stats.extra["minhash"] = extra
    finally:
        ctx.fs.delete(work)


if __name__ == "__main__":
    main("dedup", run, description=__doc__.splitlines()[0])
