"""Run the CPU benchmarks and write one results table (``make bench``).

    .venv/bin/python -m bench.run_all [--out bench/results] [--only stage1,minhash,...] [--peer-python PATH]

Runs each bench as ``python -m bench.<name> ... --json FILE`` in its own process, one after the
other (they time CPU seconds, so they must not share the cores with each other):

* ``stage1``: the ``prepare`` stage vs datatrove on the shared sample crawl (speed and extraction
  quality on ``--quality-limit`` pages per gold set);
* ``minhash``: MinHash signatures vs datasketch;
* ``dedup``: the whole ``dedup`` job (Spark, local mode) on a generated corpus with planted duplicates;
* ``tokenizer_speed``: our tokenize shard path vs datatrove's ``DocumentTokenizer``;
* ``model_speed``: the filter stage's predictors (clutter, quality, category) on CPU.

The datatrove peers run in their own venv (``--peer-python``, default ``DOTS_BENCH_PEER_PYTHON`` or
``/work/bench-venv/bin/python``; bench/stage1.py says how to create it); without it those sides are
skipped and the table says so. A bench that fails or lacks its data is reported, and the others
still run. Writes ``RESULTS.md`` (the table) and ``results.json`` (the machine, the command, every
bench's full figures) into ``--out``. Sizes are modest so that the whole run takes about 15 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PEER_PYTHON = os.environ.get("DOTS_BENCH_PEER_PYTHON", "/work/bench-venv/bin/python")
SHARED = REPO.parent / "shared" / "data"


def bench_args(peer_python: str, peer: bool) -> dict[str, list[str]]:
    """Per bench, the arguments ``make bench`` runs it with (``--json`` is added by the runner)."""
    return {
        "stage1": ["--quality-limit", "40"] + (["--peer-python", peer_python] if peer else ["--no-peer"]),
        "minhash": ["--docs", "300", "--repeat", "2"],
        "dedup": ["--docs", "20000", "--work", str(Path(tempfile.gettempdir()) / "bench_dedup")],
        "tokenizer_speed": ["--max-docs", "2000", "--repeat", "2", "--datatrove-python", peer_python],
        "model_speed": ["--device", "cpu", "--docs", "1000", "--min-seconds", "1"],
    }


BENCHES = tuple(bench_args("", False))
# benches that read ../shared/data (minhash falls back to generated text; the others generate theirs)
NEEDS_DATA = {"stage1": "warc", "tokenizer_speed": "html-cleaning-dataset-merged"}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1) if mem_gib else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": commit.stdout.strip() or None,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def run_bench(name: str, args: list[str], work: Path) -> dict[str, Any]:
    """Run ``python -m bench.<name> ARGS --json FILE``; its figures, wall time, status and log tail."""
    out = work / f"{name}.json"
    cmd = [sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - t
    print(proc.stdout, end="", flush=True)
    entry: dict[str, Any] = {"command": "python " + " ".join(cmd[1:-2]), "wall_s": round(wall, 1)}
    if proc.returncode == 0 and out.exists():
        entry.update(status="ok", figures=json.loads(out.read_text(encoding="utf-8")))
    else:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        entry.update(status="failed", returncode=proc.returncode, log_tail=tail)
        print("\n".join(tail), file=sys.stderr)
    return entry


# ---------------------------------------------------------------------------------------------- table
# A row: (measure, unit, ours, peer name, peer value); the ratio column is ours / peer.
Row = tuple[str, str, float | None, str, float | None]


def _stage1_rows(f: dict) -> list[Row]:
    rows: list[Row] = []
    n = sum(f.get("records", {}).values())
    if "ours" in f and n:
        peer = f.get("datatrove")
        rows.append((f"prepare, {n} WARC records", "docs/s/core", n / f["ours"]["cpu_s"], "datatrove",
                     n / peer["cpu_s"] if peer else None))
    for name, sides in f.get("quality", {}).items():
        dt = sides.get("datatrove")
        rows.append((f"extraction F1, {name}", "F1", sides["ours"]["f1"], "datatrove", dt["f1"] if dt else None))
    return rows


def _minhash_rows(f: dict) -> list[Row]:
    r = f["docs_per_s_core"]
    return [(f"MinHash {f['num_perm']} perms, {f['pages']} pages", "docs/s/core", r["ours"], "datasketch",
             r["datasketch"])]


def _dedup_rows(f: dict) -> list[Row]:
    return [
        (f"dedup job, {f['docs']:,} docs ({f['master']})", "docs/s wall", f["docs_per_s"], "", None),
        ("dedup pairwise precision", "", f["precision"], "", None),
        ("dedup pairwise recall", "", f["recall"], "", None),
    ]


def _tokenizer_rows(f: dict) -> list[Row]:
    sides = f["sides"]
    ours = next((v for k, v in sides.items() if k.startswith("ours (")), None)
    peer = sides.get("datatrove DocumentTokenizer")
    return [(f"tokenize to shards, {f['documents']:,} docs", "tokens/s/core",
             ours["tokens_per_s_core"] if ours else None, "datatrove", peer["tokens_per_s_core"] if peer else None)]


def _model_rows(f: list) -> list[Row]:
    best: dict[str, dict] = {}
    for r in f:
        if r.get("device") == "cpu" and (r["model"] not in best or r["end_to_end"] > best[r["model"]]["end_to_end"]):
            best[r["model"]] = r
    return [(f"{m} model, end to end (batch {r['batch']})", r["unit"], r["end_to_end"], "", None)
            for m, r in best.items()]


SUMMARIES: dict[str, Callable[[Any], list[Row]]] = {
    "stage1": _stage1_rows, "minhash": _minhash_rows, "dedup": _dedup_rows,
    "tokenizer_speed": _tokenizer_rows, "model_speed": _model_rows,
}


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) < 10:
        return f"{x:.3f}"
    return f"{x:,.0f}"


def table_rows(results: dict) -> list[dict[str, Any]]:
    """The table's rows from the benches' figures: bench, measure, unit, ours, peer, peer's value,
    ratio ours / peer (None where there is no peer figure)."""
    out = []
    for name, entry in results["benches"].items():
        if entry.get("status") != "ok":
            continue
        for measure, unit, ours, peer, peer_value in SUMMARIES[name](entry["figures"]):
            ratio = ours / peer_value if ours is not None and peer_value else None
            out.append({"bench": name, "measure": measure, "unit": unit, "ours": ours, "peer": peer,
                        "peer_value": peer_value, "ratio": ratio})
    return out


def render_markdown(results: dict) -> str:
    """RESULTS.md: the machine, the command, the table, then notes (skipped peers, failed benches)."""
    m = results["machine"]
    lines = [
        "# Benchmark results (`make bench`)",
        "",
        f"Written by `{results['command']}` on {results['date']} (commit {m.get('commit') or '?'}), "
        f"{results['total_wall_s']:.0f} s in all.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gib') or '?'} GiB, {m['os']}, "
        f"Python {m['python']}; load average at the start {m['load_avg_start']}.",
    ]
    if results.get("note"):
        lines += ["", results["note"]]
    lines += [
        "",
        "| bench | measure | unit | ours | peer | peer's | ours / peer |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for r in results["rows"]:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        lines.append(f"| {r['bench']} | {r['measure']} | {r['unit']} | {_fmt(r['ours'])} | {r['peer'] or '-'} | "
                     f"{_fmt(r['peer_value'])} | {ratio} |")
    lines += ["", "Each bench, its command and wall time:", ""]
    for name, entry in results["benches"].items():
        state = entry["status"] if entry["status"] == "ok" else f"**{entry['status']}**"
        extra = f" ({entry['reason']})" if entry.get("reason") else ""
        wall = f", {entry['wall_s']:.0f} s" if "wall_s" in entry else ""
        lines.append(f"* `{name}`: {state}{extra}{wall} — `{entry.get('command', '-')}`")
    for note in results.get("notes", []):
        lines.append(f"* {note}")
    lines += ["", "Full figures: results.json beside this file.", ""]
    return "\n".join(lines)


def write_results(results: dict, out_dir: Path) -> None:
    """Fill in the table rows and write ``results.json`` and ``RESULTS.md`` into ``out_dir``."""
    results["rows"] = table_rows(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (out_dir / "RESULTS.md").write_text(render_markdown(results), encoding="utf-8")


def command_line(argv: list[str]) -> str:
    """The command that reproduces the run (``--note``, printed above the table, left out)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif not a.startswith("--note="):
            kept.append(a)
    return shlex.join(["python", "-m", "bench.run_all", *kept])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--only", default="", help=f"comma list of benches (default all: {','.join(BENCHES)})")
    ap.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="the datatrove venv's python")
    ap.add_argument("--note", default="", help="a line printed above the table (e.g. the machine was busy)")
    args = ap.parse_args(argv)
    only = [b for b in args.only.split(",") if b] or list(BENCHES)
    unknown = set(only) - set(BENCHES)
    if unknown:
        raise SystemExit(f"--only: unknown bench(es) {sorted(unknown)}; known: {', '.join(BENCHES)}")
    peer = Path(args.peer_python).exists()
    notes = [] if peer else [f"datatrove venv absent ({args.peer_python}): the datatrove sides were skipped "
                             "(bench/stage1.py says how to create it)"]
    results: dict[str, Any] = {
        "command": command_line(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "note": args.note,
        "notes": notes,
        "benches": {},
    }
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-run-all-") as tmp:
        for name, bargs in bench_args(args.peer_python, peer).items():
            if name not in only:
                continue
            needs = NEEDS_DATA.get(name)
            if needs and not (SHARED / needs).exists():
                results["benches"][name] = {"status": "skipped", "reason": f"no shared data at {SHARED / needs}"}
                continue
            results["benches"][name] = run_bench(name, bargs, Path(tmp))
    results["total_wall_s"] = round(time.time() - t0, 1)
    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results(results, Path(args.out))
    print(f"wrote {args.out}/RESULTS.md and results.json ({results['total_wall_s']:.0f} s)")
    return 1 if any(e["status"] == "failed" for e in results["benches"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
