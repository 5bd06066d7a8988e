"""Whole-job CPU of every stage after ``prepare`` against its plain-Python loop on the same records.

    .venv/bin/python -m bench.chassis [--stages clean,dedup,filter,balance,tokenize] [--scale 4]
                                      [--input PREPARE_OUT] [--master local[1]] [--json FILE]

Input: ``--input`` (a finished ``prepare`` output), by default the prepare output of the four shared
sample-crawl files, built once under ``out/bench/chassis/``. The stages run as a chain: each stage's
input is the previous stage's output (made once per input and cached there).

Per stage:

* **job**: ``python -m jobs.<stage>`` under ``--master <master>`` (JVM, driver, Python workers);
  CPU is summed over the whole process tree with bench/stage1.py's accounting (this process is the
  subreaper of the job's processes; the Python workers that Spark's daemon leaves to the kernel are
  sampled from /proc);
* **loop**: the stage's ``pipeline/`` functions over a Python list of the same records, single
  process, in a child process; the loop's CPU is its timed region (records already in memory, models
  and tokenizer loaded before the clock starts; training the ``auto`` tokenizer is inside, as in the
  job);
* chassis share = (job CPU - loop CPU) / job CPU, records per CPU-second of both.

Fixed costs (JVM start, session, driver imports) do not grow with the input, so with ``--scale K``
every stage also runs on its input replicated K times (distinct ``doc_id``s and URLs, made once) and
the marginal chassis share = 1 - (loop(K) - loop(1)) / (job(K) - job(1)) is printed: what a record
costs on a corpus large enough for the fixed costs to vanish.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stage1 import REPO, SHARED, format_breakdown, job_env, run_tree

STAGES = ("clean", "dedup", "filter", "balance", "tokenize")
BASE = REPO / "out" / "bench" / "chassis"
WARCS = [SHARED / "warc" / f"sample-crawl-0000{i}.warc.gz" for i in range(4)]


def _complete(path: Path) -> bool:
    return (path / "_SUCCESS").exists()


def run_job(stage: str, inp: Path, out: Path, master: str, sets: list[str]) -> dict[str, Any]:
    """One whole stage job; CPU of its process tree, wall time, its ``_stats.json``."""
    args = [x for s in sets for x in ("--set", s)]
    cmd = [sys.executable, "-m", f"jobs.{stage}", "--input", str(inp), "--output", str(out), "--overwrite", *args]
    r = run_tree(cmd, job_env(master))
    stats = json.loads((out / "_stats.json").read_text(encoding="utf-8"))
    return {
        "cpu_s": r["cpu_s"], "wall_s": r["wall_s"], "records": stats["input"], "kept": stats["output"],
        "breakdown": r["breakdown"],
    }


def prepare_input(master: str) -> Path:
    """The shared sample crawl's prepare output (built once)."""
    out = BASE / "x1" / "prepare"
    if not _complete(out):
        missing = [str(p) for p in WARCS if not p.exists()]
        if missing:
            raise SystemExit(f"{missing} absent (shared data not beside this checkout); pass --input")
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "jobs.prepare", "--input", *map(str, WARCS), "--output", str(out)]
        run_tree(cmd, job_env(master))
    return out


def replicate(src: Path, dst: Path, k: int) -> Path:
    """``src`` (a finished stage output) with every row ``k`` times: copy ``c > 0`` gets
    ``doc_id + "-r<c>"`` and ``url + "#r<c>"``; same file names, rows of each file ``k`` times."""
    if _complete(dst):
        return dst
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from jobs.common import FS, build_manifest, committed_files

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in committed_files(FS(), str(src)):
        t = pq.read_table(f)
        copies = [t]
        for c in range(1, k):
            x = t.set_column(t.schema.get_field_index("doc_id"), t.schema.field("doc_id"),
                             pc.binary_join_element_wise(t.column("doc_id"), pa.scalar(f"r{c}"), "-"))
            if "url" in x.column_names:
                x = x.set_column(x.schema.get_field_index("url"), x.schema.field("url"),
                                 pc.binary_join_element_wise(x.column("url"), pa.scalar(f"r{c}"), "#"))
            copies.append(x)
        pq.write_table(pa.concat_tables(copies), dst / f.rsplit("/", 1)[-1], compression="zstd")
    (dst / "_SUCCESS").write_text(json.dumps(build_manifest(FS(), str(dst))), encoding="utf-8")
    return dst


def stage_input(stage: str, scale: int, master: str, sets: list[str], base_input: Path | None) -> Path:
    """The input of ``stage`` at ``scale``: the chain's output of the stage before it (x1), replicated."""
    order = ("prepare",) + STAGES
    prev = order[order.index(stage) - 1]
    if prev == "prepare":
        x1 = base_input or prepare_input(master)
    else:
        x1 = BASE / "x1" / prev
        if not _complete(x1):
            run_job(prev, stage_input(prev, 1, master, sets, base_input), x1, master, sets)
    return x1 if scale == 1 else replicate(x1, BASE / f"x{scale}" / f"{prev}-input", scale)


# ---------------------------------------------------------------- the loops (child process)


def _records(inp: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    from jobs.common import FS, committed_files

    rows: list[dict[str, Any]] = []
    for f in committed_files(FS(), inp):
        t = pq.read_table(f)
        rows += t.select([c for c in (columns or t.column_names) if c in t.column_names]).to_pylist()
    return rows


def loop(stage: str, inp: str, sets: list[str]) -> dict[str, Any]:
    """The stage's per-record logic over a list; returns records and the loop's CPU seconds."""
    from pipeline.config import load_config

    cfg = load_config(None, sets)
    fn = globals()[f"_loop_{stage}"]
    recs = _records(inp)
    setup = fn(cfg, recs)  # loads models etc.; returns the timed body
    t0 = time.process_time()
    kept = setup()
    return {"records": len(recs), "kept": kept, "cpu_s": time.process_time() - t0}


def _loop_clean(cfg, recs):
    from pipeline.clean.heuristics import REASON_EMPTY, HeuristicParams, decide, score_document
    from pipeline.clean.linededup import dedup_lines_reference

    c = cfg.clean
    params = HeuristicParams.from_config(c)
    ld = c.line_dedup

    def body() -> int:
        rows = [(r["doc_id"], r.get("fetch_time"), r.get("text") or "") for r in recs]
        texts = dict((d, t) for d, _, t in rows)
        if ld.enabled:
            texts, _ = dedup_lines_reference(rows, ld.max_occurrences, ld.head_lines, ld.tail_lines)
        kept, bounds = 0, {}
        for r in recs:
            t3, sig = score_document(texts[r["doc_id"]], r.get("lang"), params)
            lg = r.get("lang")
            if lg not in bounds:
                bounds[lg] = c.bounds_for(lg)
            reason = REASON_EMPTY if not t3.strip() else decide(sig, bounds[lg])
            kept += reason is None
        return kept

    return body


def _loop_dedup(cfg, recs):
    from pipeline.dedup.lsh import dedup_reference
    from pipeline.dedup.minhash import MinHashParams

    p = MinHashParams.from_config(cfg.dedup)

    def body() -> int:
        out = dedup_reference([(r["doc_id"], r.get("text"), r.get("lang")) for r in recs], p, cfg.seed)
        return sum(1 for d, (best, _) in out.items() if best == d)

    return body


def _str_column(chunk: list[dict], name: str) -> list[str | None] | None:
    """Column ``name`` of the records as strings (None: the input has no such column), as
    :func:`udfs.models._column` reads it from an Arrow batch."""
    if not chunk or name not in chunk[0]:
        return None
    return [None if r.get(name) is None else str(r[name]) for r in chunk]


def _loop_filter(cfg, recs):
    import dataclasses

    from jobs.filter import model_versions
    from pipeline.filter.decisions import filter_reason
    from udfs.models import ScoreSpec, score_texts

    fc = cfg.filter
    spec = dataclasses.replace(ScoreSpec.from_config(fc, cfg.clean), device="cpu")
    model_versions(fc)
    score_texts(["warm up the models."], [None], spec, "cpu")
    step = fc.arrow_max_records_per_batch

    def body() -> int:
        kept = 0
        for s in range(0, len(recs), step):
            chunk = recs[s : s + step]
            # the url and title columns, as the Spark filter gives them to the category model
            df = score_texts([r.get("text") or "" for r in chunk], [r.get("lang") for r in chunk], spec, "cpu",
                             urls=_str_column(chunk, "url"), titles=_str_column(chunk, "title"))
            for r, row in zip(chunk, df.itertuples(index=False)):
                q = float(row.quality_score)
                reason = filter_reason(r.get("text"), row.text_clean, None if q != q else q, r.get("lang"),
                                       fc.quality.threshold, fc.quality.threshold_by_lang)
                kept += reason is None
        return kept

    return body


def _loop_balance(cfg, recs):
    from collections import Counter

    from pipeline.balance.sampling import category_key, decide, leaf_weights, sample_weights
    from pipeline.category.taxonomy import load_taxonomy

    sec = cfg.balance
    tax = load_taxonomy(sec.taxonomy)
    weights = leaf_weights(tax, sec.weights)

    def body() -> int:
        keys = [category_key(r.get(sec.category_column), len(tax)) for r in recs]
        kw = sample_weights(Counter(keys), weights, sec.default_weight, sec.temperature, sec.target_ratio,
                            sec.max_weight)
        return sum(decide(cfg.seed, r["doc_id"], kw[k]) is not None for r, k in zip(recs, keys))

    return body


def _loop_tokenize(cfg, recs):
    from jobs.tokenize import SAMPLE_MAX_CHARS
    from pipeline.tokenize.shards import expand_documents
    from pipeline.tokenize.tokenizer import EOS_TOKEN, Encoder, info_from_tokenizer, load_tokenizer, train_bpe

    tc = cfg.tokenize

    def body() -> int:
        from pipeline.dedup.lsh import survivor_priority

        weights = [r.get("sample_weight") for r in recs] if tc.sample_weight else None
        rows, _ = expand_documents([r["doc_id"] for r in recs], [r.get("text") for r in recs], weights, cfg.seed)
        want = tc.auto_sample_docs if tc.train_auto else tc.verify_docs
        have = sorted((survivor_priority(cfg.seed, r["doc_id"]), r["doc_id"], r["text"]) for r in recs if r.get("text"))
        sample = [t[:SAMPLE_MAX_CHARS] for _, _, t in have[: max(want, 1)]]
        if tc.train_auto:
            info = info_from_tokenizer(train_bpe(sample, tc.auto_vocab_size, tc.auto_min_frequency), "t", EOS_TOKEN)
        else:
            info = load_tokenizer(tc.tokenizer, tc.eos_token)
        enc = Encoder(info, tc.engine, verify_texts=sample[: tc.verify_docs])
        rows.sort()
        for s in range(0, len(rows), tc.batch_docs):
            enc.encode([t for *_, t in rows[s : s + tc.batch_docs]])
        return len(rows)

    return body


def run_loop(stage: str, inp: Path, sets: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [x for s in sets for x in ("--set", s)]
    r = run_tree([sys.executable, "-m", "bench.chassis", "--_loop", stage, str(inp), *args], env)
    inner = json.loads(r["stdout"].strip().splitlines()[-1])
    return {**inner, "process_cpu_s": r["cpu_s"]}


# ---------------------------------------------------------------- main


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(stage: str, scale: int, master: str, sets: list[str], base_input: Path | None) -> dict[str, Any]:
    inp = stage_input(stage, scale, master, sets, base_input)
    la0 = load()
    with tempfile.TemporaryDirectory() as tmp:
        job = run_job(stage, inp, Path(tmp) / "out", master, sets)
    lp = run_loop(stage, inp, sets)
    share = (job["cpu_s"] - lp["cpu_s"]) / job["cpu_s"]
    r = {"stage": stage, "scale": scale, "records": job["records"], "job": job, "loop": lp, "chassis": share,
         "load_before": la0, "load_after": load()}
    print(
        f"{stage:9s} x{scale}  {job['records']:6d} rec | job {job['cpu_s']:7.1f} CPU-s ({job['wall_s']:6.1f} s wall)"
        f" | loop {lp['cpu_s']:7.1f} CPU-s | chassis {100 * share:5.1f}%"
        f" | rec/CPU-s job {job['records'] / job['cpu_s']:7.1f} loop {lp['records'] / max(lp['cpu_s'], 1e-9):7.1f}"
        f" | load {la0} -> {r['load_after']}",
        flush=True,
    )
    print(format_breakdown("job", job["breakdown"]), flush=True)
    return r


def table(out: dict[str, Any]) -> str:
    """The figures of :func:`main` (or its ``--json`` file) as a Markdown table."""
    lines = [
        "| stage | records | job CPU-s | loop CPU-s | chassis | rec/CPU-s job | rec/CPU-s loop | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in out["stages"]:
        for r in (row["small"], row["big"]):
            if not r:
                continue
            j, lp = r["job"], r["loop"]
            lines.append(
                f"| {r['stage']} x{r['scale']} | {r['records']:,} | {j['cpu_s']:.1f} | {lp['cpu_s']:.1f} | "
                f"{100 * r['chassis']:.0f}% | {r['records'] / j['cpu_s']:.0f} | {lp['records'] / max(lp['cpu_s'], 1e-9):.0f} | "
                f"{r['load_before'].split()[0]}-{r['load_after'].split()[0]} |"
            )
        m = row["small"].get("marginal")
        if m:
            share = "n/a (noise)" if m["chassis"] is None else f"{100 * m['chassis']:.0f}%"
            lines.append(
                f"| {row['small']['stage']} marginal | +{m['records']:,} | +{m['job_cpu_s']:.1f} | +{m['loop_cpu_s']:.1f} | "
                f"{share} | | | |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench.chassis", description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    ap.add_argument("--input", default=None, help="a finished prepare output (default: the shared sample crawl's)")
    ap.add_argument("--scale", type=int, default=4, help="replication factor of the marginal run (1 = none)")
    ap.add_argument("--master", default="local[1]")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--_loop", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._loop:
        print(json.dumps(loop(a._loop[0], a._loop[1], a.sets)))
        return {}
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    bad = sorted(set(stages) - set(STAGES))
    if bad:
        ap.error(f"unknown stage(s) {bad}; choose from {', '.join(STAGES)}")
    base = Path(a.input).resolve() if a.input else None
    print(f"== whole job vs loop, master {a.master}, load average {load()}")
    rows = []
    for s in stages:
        small = measure(s, 1, a.master, a.sets, base)
        big = measure(s, a.scale, a.master, a.sets, base) if a.scale > 1 else None
        if big:
            dj = big["job"]["cpu_s"] - small["job"]["cpu_s"]
            dl = big["loop"]["cpu_s"] - small["loop"]["cpu_s"]
            dn = big["records"] - small["records"]
            small["marginal"] = {"records": dn, "job_cpu_s": dj, "loop_cpu_s": dl, "chassis": 1 - dl / dj if dj > 0 else None}
            m = small["marginal"]["chassis"]
            print(f"{s:9s} marginal ({dn} more records): job +{dj:.1f} CPU-s, loop +{dl:.1f} CPU-s, "
                  f"chassis {'n/a' if m is None else f'{100 * m:.1f}%'}", flush=True)
        rows.append({"small": small, "big": big})
    out = {"master": a.master, "scale": a.scale, "stages": rows}
    print(table(out))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
