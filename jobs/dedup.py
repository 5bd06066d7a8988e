"""Stage 2b ``dedup``: MinHash-LSH near dedup + connected components (dots.llm1 report).

    python -m jobs.dedup --input OUT_clean --output OUT_dedup [--set dedup.verify=true]

Plan (nothing is collected to the driver):
1. every document gets an internal 64-bit node id; ``mapInArrow`` computes its MinHash signature
   (compiled kernels over the Arrow batch) and 128 band keys -> work table (nid, doc_id, keys as
   raw bytes);
2. the (key, nid) pairs are packed per key range (one binary row per range and batch), shuffled
   by range, and each partition sorts its pairs: every bucket with more than one document yields
   star edges from each member to the bucket's smallest node id (no pair enumeration);
3. optionally (``dedup.verify``) edges whose exact shingle Jaccard is below the threshold go;
4. connected components by large-star / small-star rounds (Kiveris et al. 2014), each round
   written to Parquet (lineage cut) until the edges form stars around each component's minimum;
5. per component the document with the smallest (hash(seed:doc_id), doc_id) survives; every row
   gets ``dup_cluster`` (the survivor's doc_id) and ``dup_cluster_size``; the others are dropped
   with reason ``minhash_duplicate``.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import time

from jobs.common import StageContext, main

REASON_DUPLICATE = "minhash_duplicate"
WORK = "_work_dedup"


def connected_components(spark, edges, work: str, max_iterations: int = 60, partitions: int = 8):
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
        ss.distinct().repartition(partitions, "src").write.mode("overwrite").parquet(path)
        e = spark.read.parquet(path)
        done = is_star_forest(e)
    comps = e.select(F.col("src").alias("nid"), F.col("dst").alias("root")).unionByName(
        e.select(F.col("dst").alias("nid"), F.col("dst").alias("root")).distinct()
    )
    return comps, rounds


def run(ctx: StageContext) -> None:
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
    docs = ctx.read_previous()
    if "drop_reason" in docs.columns:
        docs = docs.drop("drop_reason")
    try:
        # 1. signatures -> band keys (raw int64 bytes), computed once and stored with the node id
        sig_path = work + "/signatures"
        (
            docs.select("doc_id", "text", "lang")
            .withColumn("nid", F.monotonically_increasing_id())
            .mapInArrow(bands_fn(p, d.verify), signature_schema(d.verify))
            .write.mode("overwrite")
            .parquet(sig_path)
        )
        sigs = ctx.spark.read.parquet(sig_path)
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
        edges.repartition(parts, "src").write.mode("overwrite").parquet(edges_path)
        edges = ctx.spark.read.parquet(edges_path)
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
            scored.filter(F.col("jaccard") >= d.verify_threshold).select("src", "dst").write.mode(
                "overwrite"
            ).parquet(ver_path)
            edges = ctx.spark.read.parquet(ver_path)
            extra["verified_edges"] = edges.count()
            phase("verify")

        # 4. connected components
        comps, rounds = connected_components(ctx.spark, edges, work, d.max_iterations, parts)
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
            "doc_id",
            F.col("best.doc_id").alias("dup_cluster_id"),
            F.col("size").cast("int").alias("dup_size"),
        )
        clusters_path = work + "/clusters"
        clusters.write.mode("overwrite").parquet(clusters_path)
        clusters = ctx.spark.read.parquet(clusters_path)
        fig = clusters.agg(F.countDistinct("dup_cluster_id").alias("c"), F.count(F.lit(1)).alias("n")).first()
        extra["clusters"] = int(fig["c"] or 0)
        extra["documents_in_clusters"] = int(fig["n"] or 0)
        phase("survivors")
        extra["phase_seconds"] = phases
        ctx.stats.extra["minhash"] = extra

        out = (
            docs.join(clusters, "doc_id", "left")
            .withColumn("dup_cluster", F.coalesce("dup_cluster_id", "doc_id"))
            .withColumn("dup_cluster_size", F.coalesce("dup_size", F.lit(1)).cast("int"))
            .withColumn(
                "drop_reason",
                F.when(F.col("dup_cluster") != F.col("doc_id"), F.lit(REASON_DUPLICATE)).cast("string"),
            )
            .drop("dup_cluster_id", "dup_size")
        )
        ctx.write_documents(out, d.num_files)
        phase("write")
    finally:
        ctx.fs.delete(work)


if __name__ == "__main__":
    main("dedup", run, description=__doc__.splitlines()[0])
