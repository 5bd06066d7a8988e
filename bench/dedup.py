"""The whole ``dedup`` job on a generated corpus of short documents with planted duplicate clusters.

    .venv/bin/python -m bench.dedup --docs 100000 [--work /tmp/bench_dedup] [--verify] [--json OUT]

Corpus: ``--docs`` documents of 60-120 Zipf-distributed words; a fraction ``--dup-frac`` of them are
near copies of a base document (``--edits`` random word substitutions each, clusters of 2..
``--max-cluster``). Prints wall time, peak resident memory of the whole process tree (driver,
JVM, Python workers) and pairwise precision / recall of the output clusters vs the planted truth.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from pathlib import Path

from bench import write_json


def generate(
    n_docs: int, dup_frac: float, max_cluster: int, edits: int, seed: int, out: Path
) -> dict[str, str]:
    """Write the documents table (Parquet + _SUCCESS) and return doc_id -> planted cluster id."""
    import datetime as dt

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    vocab = np.array(
        [f"{a}{b}{c}" for a in "bcdfghklmnprstvz" for b in "aeiouy" for c in "bdgklmnprstxz"] * 1
    )
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 0.8
    weights /= weights.sum()
    truth: dict[str, str] = {}
    texts: list[str] = []
    ids: list[str] = []
    n_dup_target = int(n_docs * dup_frac)
    n_in_clusters = 0
    c = 0
    while len(ids) < n_docs:
        words = rng.choice(len(vocab), size=int(rng.integers(60, 121)), p=weights)
        size = 1
        if n_in_clusters < n_dup_target:
            size = int(rng.integers(2, max_cluster + 1))
            size = min(size, n_docs - len(ids))
            n_in_clusters += size
        for k in range(size):
            w = words.copy()
            if k:
                pos = rng.integers(0, len(w), size=edits)
                w[pos] = rng.integers(0, len(vocab), size=edits)
            did = f"{c:08d}-{k}"
            ids.append(did)
            texts.append(" ".join(vocab[w]))
            truth[did] = f"c{c}"
        c += 1
    perm = rng.permutation(len(ids))  # clusters scattered over the files
    ids = [ids[i] for i in perm]
    texts = [texts[i] for i in perm]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    n_files = 8
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for f in range(n_files):
        sl = slice(f * len(ids) // n_files, (f + 1) * len(ids) // n_files)
        m = len(ids[sl])
        table = pa.table(
            {
                "doc_id": pa.array(ids[sl], pa.string()),
                "url": pa.array([f"https://x.example/{d}" for d in ids[sl]], pa.string()),
                "domain": pa.array(["x.example"] * m, pa.string()),
                "warc_file": pa.array(["gen.warc.gz"] * m, pa.string()),
                "warc_offset": pa.array(np.arange(m, dtype=np.int64)),
                "fetch_time": pa.array([t0] * m, pa.timestamp("us", tz="UTC")),
                "charset": pa.array(["utf-8"] * m, pa.string()),
                "title": pa.array([""] * m, pa.string()),
                "text": pa.array(texts[sl], pa.string()),
                "lang": pa.array(["en"] * m, pa.string()),
                "lang_score": pa.array(np.full(m, 0.9)),
                "content_hash": pa.array(ids[sl], pa.string()),
            }
        )
        pq.write_table(table, out / f"part-{f:05d}.parquet", compression="zstd")
    (out / "_SUCCESS").write_text("")
    return truth


def tree_usage(root: int) -> tuple[int, dict[int, float]]:
    """(resident bytes, {pid: CPU seconds so far}) of ``root`` and all its descendants (/proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(parts[1]), int(parts[21])
            cpu[int(d)] = (int(parts[11]) + int(parts[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack, seen = 0, [root], {}
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        seen[p] = cpu.get(p, 0.0)
        stack += children.get(p, [])
    return total, seen


def pair_metrics(pred: dict[str, str], truth: dict[str, str]) -> tuple[float, float, int, int]:
    """Pairwise precision / recall of clusterings given as doc -> cluster labels."""
    from collections import Counter

    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    both = Counter((pred[d], truth[d]) for d in truth)
    tp = pairs(both)
    pp, tpairs = pairs(Counter(pred.values())), pairs(Counter(truth.values()))
    return (tp / pp if pp else 1.0), (tp / tpairs if tpairs else 1.0), pp, tpairs


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--dup-frac", type=float, default=0.2)
    ap.add_argument("--max-cluster", type=int, default=5)
    ap.add_argument("--edits", type=int, default=1, help="word substitutions per near copy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/bench_dedup")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)

    from jobs.common import get_spark, run_stage
    from jobs.dedup import run
    from pipeline.config import load_config

    work = Path(args.work)
    t = time.time()
    truth = generate(args.docs, args.dup_frac, args.max_cluster, args.edits, args.seed, work / "in")
    print(
        f"generated {len(truth):,} docs, {len(set(truth.values())):,} planted clusters in {time.time() - t:.1f}s"
    )

    overrides = [f"dedup.verify={'true' if args.verify else 'false'}", *args.set]
    cfg = load_config(overrides=overrides)
    spark = get_spark(cfg, "bench-dedup")
    spark.sparkContext.setLogLevel("ERROR")
    peak = [0]
    cpu_by_pid: dict[int, float] = {}
    loads: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss, cpu = tree_usage(os.getpid())
            peak[0] = max(peak[0], rss)
            cpu_by_pid.update(cpu)
            loads.append(os.getloadavg()[0])
            stop.wait(0.5)

    _, cpu0 = tree_usage(os.getpid())

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t = time.time()
    stats = run_stage(
        "dedup", run, spark, cfg, [str(work / "in")], str(work / "out"), overwrite=True, keep_dropped=True
    )
    wall = time.time() - t
    stop.set()
    th.join()
    # CPU seconds of the job: driver, JVM and Python workers (sampled every 0.5 s, minus the start)
    cpu_s = sum(v - cpu0.get(pid, 0.0) for pid, v in cpu_by_pid.items())

    rows = spark.read.parquet(str(work / "out")).select("doc_id", "dup_cluster").collect()
    rows += spark.read.parquet(str(work / "out/_dropped")).select("doc_id", "dup_cluster").collect()
    pred = {r["doc_id"]: r["dup_cluster"] for r in rows}
    precision, recall, pp, tp = pair_metrics(pred, truth)
    planted_dups = len(truth) - len(set(truth.values()))
    print(
        f"dedup job on {args.docs:,} docs ({spark.sparkContext.master}, {os.cpu_count()} cores): wall {wall:.1f}s, "
        f"{args.docs / wall:,.0f} docs/s, peak RSS (driver+JVM+workers) {peak[0] / 2**30:.2f} GiB"
    )
    print(
        f"CPU (driver+JVM+workers) {cpu_s:,.0f} s = {cpu_s / wall:.2f} cores busy on average; "
        f"load average (1 min) during the run min {min(loads):.1f} / mean {sum(loads) / len(loads):.1f} / "
        f"max {max(loads):.1f}"
    )
    print(
        f"dropped {stats['dropped'].get('minhash_duplicate', 0):,} (planted duplicates {planted_dups:,}); "
        f"{stats.get('minhash', {})}"
    )
    print(
        f"pairwise precision {precision:.4f}  recall {recall:.4f}  (predicted pairs {pp:,}, true pairs {tp:,})"
    )
    figures = {
        "docs": args.docs, "master": spark.sparkContext.master, "cpu_count": os.cpu_count(), "wall_s": wall,
        "docs_per_s": args.docs / wall, "cpu_s": cpu_s, "peak_rss_gib": peak[0] / 2**30,
        "load_avg_mean": sum(loads) / len(loads) if loads else None,
        "dropped_minhash_duplicate": stats["dropped"].get("minhash_duplicate", 0), "planted_duplicates": planted_dups,
        "precision": precision, "recall": recall,
    }
    if args.json:
        write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
