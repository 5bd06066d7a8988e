"""The whole pipeline in one run: prepare -> clean -> dedup -> filter -> balance -> tokenize.

Each stage writes ``OUT/<nn>_<stage>/`` with its own ``_SUCCESS``; a rerun skips finished stages, so a
crashed run resumes where it stopped. ``--stages`` picks a sub-range. The funnel is printed at the end
and written to ``OUT/_funnel.json``.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import argparse
import importlib
import json
import time

from jobs.common import build_parser, get_spark, run_stage
from pipeline.config import load_config
from pipeline.stats import format_funnel

STAGES = ["prepare", "clean", "dedup", "filter", "balance", "tokenize"]


def stage_dir(output: str, i: int, stage: str) -> str:
    return f"{output.rstrip('/')}/{i:02d}_{stage}"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stages",
        default=",".join(STAGES),
        help="comma-separated stages to run, in pipeline order",
    )
    p.add_argument("--no-report", action="store_true", help="skip the funnel report at the end")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = build_parser("pipeline", __doc__.splitlines()[0])
    add_args(parser)
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STAGES]
    if bad:
        parser.error(f"unknown stage(s) {bad}; choose from {STAGES}")
    try:
        cfg = load_config(args.config, args.set)
    except ValueError as e:
        parser.error(str(e))
    # Import every stage module up front: an import error fails here, before any work starts.
    modules = {s: importlib.import_module(f"jobs.{s}") for s in wanted}
    spark = get_spark(cfg, "dots-data:pipeline")
    t0 = time.time()
    all_stats: list[dict] = []
    inputs = list(args.input)
    for i, stage in enumerate(STAGES):
        out = stage_dir(args.output, i, stage)
        if stage not in wanted:
            continue
        print(f"[pipeline] stage {i}: {stage} -> {out}", flush=True)
        stats = run_stage(
            stage, modules[stage].run, spark, cfg, inputs, out, args.overwrite, args.keep_dropped, args
        )
        if stats:
            all_stats.append(stats)
        inputs = [out]
    funnel = {"stages": all_stats, "seconds": round(time.time() - t0, 3), "output": args.output}
    from jobs.common import FS

    fs = FS(spark, args.output)
    fs.write_text(args.output.rstrip("/") + "/_funnel.json", json.dumps(funnel, indent=2))
    print("\n=== funnel ===")
    print(format_funnel(all_stats))
    if not args.no_report:
        try:
            report = importlib.import_module("jobs.report")
        except ModuleNotFoundError as e:
            if e.name != "jobs.report":
                raise
        else:
            report.write_report(args.output)
    print(f"\noutput: {args.output}")
    return all_stats


if __name__ == "__main__":
    main()
