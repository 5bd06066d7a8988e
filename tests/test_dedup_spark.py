"""The ``dedup`` job end to end: Spark output equals the plain-Python reference on planted
near-duplicate clusters, survivors are seeded and stable, verification splits low-Jaccard edges,
and the Spark connected components equal union-find on random graphs with long chains."""

from __future__ import annotations

import random

import pytest

from pipeline.config import load_config
from pipeline.dedup.components import union_find_components
from pipeline.dedup.lsh import dedup_reference
from pipeline.dedup.minhash import MinHashParams
from tests.test_clean_spark import write_table

pytestmark = pytest.mark.spark

VOCAB = [f"{a}{b}{c}" for a in "bcdfgklmnp" for b in "aeiou" for c in ("n", "r", "s", "t")]


def planted_docs(seed: int = 0, n_clusters: int = 8, n_single: int = 12):
    """Clusters of 1..4 copies of a base text with one word changed per copy (Jaccard ~0.9),
    one exact-copy cluster, and unrelated singletons. Returns (docs, truth: doc_id -> cluster)."""
    rng = random.Random(seed)
    docs, truth = [], {}

    def text(n=90):
        return " ".join(rng.choice(VOCAB) for _ in range(n))

    for c in range(n_clusters):
        base = text().split()
        for k in range(1 + c % 4):
            words = list(base)
            if k:
                words[rng.randrange(len(words))] = f"changed{k}"
            did = f"c{c}-{k}"
            docs.append({"doc_id": did, "text": " ".join(words)})
            truth[did] = f"c{c}"
    for k in range(3):
        docs.append({"doc_id": f"exact-{k}", "text": "Exact copy. " + " ".join(VOCAB[:80])})
        truth[f"exact-{k}"] = "exact"
    for s in range(n_single):
        docs.append({"doc_id": f"s{s}", "text": text()})
        truth[f"s{s}"] = f"s{s}"
    docs.append({"doc_id": "empty", "text": ""})
    truth["empty"] = "empty"
    full = []
    for i, d in enumerate(docs):
        full.append(
            {
                "doc_id": d["doc_id"],
                "url": f"u{i}",
                "domain": "d",
                "warc_file": "w",
                "warc_offset": i,
                "fetch_time": None,
                "charset": "utf-8",
                "title": "",
                "text": d["text"],
                "lang": "en",
                "lang_score": 0.9,
                "content_hash": str(i),
            }
        )
    return full, truth


def run_dedup(spark, inp: str, out: str, overrides: list[str]) -> dict:
    from jobs.common import run_stage
    from jobs.dedup import run

    cfg = load_config(overrides=["spark.profile=tests", "dedup.cc_partitions=2", *overrides])
    return run_stage("dedup", run, spark, cfg, [inp], out, overwrite=True, keep_dropped=True)


def test_dedup_job_planted_clusters(spark, tmp_path):
    docs, truth = planted_docs()
    inp = write_table(spark, docs, str(tmp_path / "in"), parts=3)
    stats = run_dedup(spark, inp, str(tmp_path / "out"), [])
    ref = dedup_reference([(d["doc_id"], d["text"], "en") for d in docs], MinHashParams(), seed=1234)

    kept = {r["doc_id"]: r for r in spark.read.parquet(str(tmp_path / "out")).collect()}
    dropped = {r["doc_id"]: r for r in spark.read.parquet(str(tmp_path / "out/_dropped")).collect()}
    rows = {**kept, **dropped}
    assert set(rows) == set(truth)
    for did, r in rows.items():
        assert (r["dup_cluster"], r["dup_cluster_size"]) == ref[did], did
        assert (did in kept) == (r["dup_cluster"] == did)
    assert all(r["drop_reason"] == "minhash_duplicate" for r in dropped.values())
    # planted truth: one survivor per cluster, every copy found
    n_clusters = len(set(truth.values()))
    assert len(kept) == n_clusters
    by_cluster: dict[str, set] = {}
    for did, c in truth.items():
        by_cluster.setdefault(c, set()).add(rows[did]["dup_cluster"])
    assert all(len(v) == 1 for v in by_cluster.values())
    assert stats["dropped"] == {"minhash_duplicate": len(truth) - n_clusters}
    assert stats["minhash"]["cc_rounds"] >= 0 and stats["minhash"]["candidate_edges"] > 0
    in_clusters = [d for d, (_, size) in ref.items() if size > 1]
    assert stats["minhash"]["documents_in_clusters"] == len(in_clusters)
    assert stats["minhash"]["clusters"] == len({ref[d][0] for d in in_clusters})

    # the same documents split and ordered otherwise -> the same rows (the layout follows the input)
    inp2 = write_table(spark, list(reversed(docs)), str(tmp_path / "in2"), parts=5)
    run_dedup(spark, inp2, str(tmp_path / "out2"), [])
    kept2 = {r["doc_id"]: r for r in spark.read.parquet(str(tmp_path / "out2")).collect()}
    assert kept2 == kept
    # the same input under other Spark partitioning -> byte-identical output
    saved = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "7")
        run_dedup(spark, inp, str(tmp_path / "out3"), [])
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", saved)
    files = sorted(p.name for p in (tmp_path / "out").glob("part-*.parquet"))
    assert len(files) == 3 and files == sorted(p.name for p in (tmp_path / "out3").glob("part-*.parquet"))
    for f in files:
        assert (tmp_path / "out" / f).read_bytes() == (tmp_path / "out3" / f).read_bytes()


def test_dedup_verification_splits_low_jaccard_edges(spark, tmp_path):
    docs, truth = planted_docs(seed=5, n_clusters=4, n_single=2)
    inp = write_table(spark, docs, str(tmp_path / "in"), parts=2)
    stats = run_dedup(
        spark, inp, str(tmp_path / "out"), ["dedup.verify=true", "dedup.verify_threshold=0.99", "seed=7"]
    )
    kept = {r["doc_id"] for r in spark.read.parquet(str(tmp_path / "out")).collect()}
    ref = dedup_reference(
        [(d["doc_id"], d["text"], "en") for d in docs], MinHashParams(), seed=7, verify_threshold=0.99
    )
    assert kept == {d for d, (c, _) in ref.items() if c == d}
    # one-word edits (Jaccard ~0.9) are no longer duplicates; the exact copies still are
    assert {d for d in truth if d.startswith("c")} <= kept
    assert len([d for d in kept if d.startswith("exact")]) == 1
    assert stats["minhash"]["verified_edges"] < stats["minhash"]["candidate_edges"]


def test_spark_connected_components_vs_union_find(spark, tmp_path):
    from jobs.dedup import connected_components

    rng = random.Random(3)
    ids = rng.sample(range(1, 10**6), 500)
    nodes, chain = ids[:200], ids[200:]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(150)]
    edges += list(zip(chain, chain[1:]))  # a 300-node path over shuffled ids
    edges = [(a, b) for a, b in edges if a != b]
    df = spark.createDataFrame(edges, "src long, dst long")
    comps, rounds = connected_components(df, str(tmp_path / "cc"), max_iterations=40, partitions=2)
    got = {r["nid"]: r["root"] for r in comps.collect()}
    assert got == union_find_components(edges)
    assert 1 <= rounds <= 40
    star = spark.createDataFrame([(i, 5) for i in range(6, 12)] + [(30, 20)], "src long, dst long")
    comps, rounds = connected_components(star, str(tmp_path / "cc3"), partitions=2)
    assert rounds == 0 and {r["nid"]: r["root"] for r in comps.collect()} == {
        **{i: 5 for i in range(5, 12)},
        30: 20,
        20: 20,
    }
    with pytest.raises(RuntimeError, match="did not converge"):
        connected_components(df, str(tmp_path / "cc2"), max_iterations=1, partitions=2)
