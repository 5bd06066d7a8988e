"""Crash and rerun: finished stages are skipped, a partial output is never taken as complete.

The crashed-and-resumed run uses ``local[1]`` and 7 shuffle partitions, the reference ``local[2]``
and 4: equal outputs also show that the executor count and the partitioning do not matter.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.test_cluster_support import (
    assert_same_output,
    kill_group,
    reference_run,
    require_stages,
    sample_crawl,
    stage_dirs,
    start_pipeline,
    tail,
    wait_ok,
)

STAGING_RE = re.compile(r"^(\d\d)_([a-z_]+)\.__staging-")


def _wait_for_staging(out: Path, first_index: int, proc, log: Path, timeout: float = 900) -> Path:
    """The staging folder of the first stage after the first one: that stage is surely mid-way."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc={proc.returncode}) before a later stage started:\n{tail(log)}")
        if out.exists():
            for p in out.iterdir():
                m = STAGING_RE.match(p.name)
                if m and int(m.group(1)) > first_index:
                    return p
        time.sleep(0.05)
    pytest.fail(f"no stage after the first started within {timeout}s:\n{tail(log)}")


@pytest.mark.spark
@pytest.mark.slow
def test_killed_run_resumes_and_skips_finished_stages(tmp_path: Path, tmp_path_factory) -> None:
    stages = require_stages()
    if len(stages) < 2:
        pytest.skip(f"needs two stages to kill one after another finished (present: {stages})")
    ref = reference_run(tmp_path_factory)
    sample = sample_crawl(tmp_path_factory.getbasetemp())
    stages = stages[:3]  # enough to crash after a finished stage; keeps the test's wall time down
    out = tmp_path / "run"
    first = out / "00_prepare"

    log1 = tmp_path / "log1.txt"
    proc = start_pipeline(sample, out, stages, log1, master="local[1]", shuffle_partitions=7)
    try:
        staging = _wait_for_staging(out, 0, proc, log1)
        kill_group(proc)  # SIGKILL the driver, its JVM and Python workers: a hard crash mid-stage
    finally:
        kill_group(proc)
    killed = out / staging.name.split(".__staging-")[0]
    assert (first / "_SUCCESS").exists(), "the first stage should have finished before the kill"
    assert not (killed / "_SUCCESS").exists(), f"{killed.name} was killed mid-way but looks complete"
    success_mtime = (first / "_SUCCESS").stat().st_mtime_ns
    parts_before = {p.name: p.stat().st_mtime_ns for p in first.glob("*.parquet")}

    log2 = tmp_path / "log2.txt"
    text = wait_ok(start_pipeline(sample, out, stages, log2, master="local[1]", shuffle_partitions=7), log2)
    assert re.search(r"\[prepare\] .*00_prepare is complete \(_SUCCESS\); skipping", text), tail(log2)
    assert (first / "_SUCCESS").stat().st_mtime_ns == success_mtime
    assert {p.name: p.stat().st_mtime_ns for p in first.glob("*.parquet")} == parts_before
    assert (killed / "_SUCCESS").exists()
    dirs = stage_dirs(out)
    assert [d.name.split("_", 1)[1] for d in dirs] == stages
    for d in dirs:  # the resumed run equals the uninterrupted reference, stage by stage
        assert_same_output(ref / d.name, d)


@pytest.mark.spark
def test_partial_output_is_never_read_as_complete(spark, cfg, tmp_path: Path) -> None:
    """A folder without _SUCCESS (crash after the data, before the marker) is refused as input and
    recomputed as output."""
    from jobs.common import REASON_COL, run_stage

    partial = tmp_path / "01_clean"
    spark.createDataFrame([("a", "t")], "doc_id string, text string").write.parquet(str(partial))
    (partial / "_SUCCESS").unlink()

    def read_prev(ctx):
        ctx.read_previous()

    with pytest.raises(ValueError, match="no _SUCCESS"):
        run_stage("dedup", read_prev, spark, cfg, [str(partial)], str(tmp_path / "02_dedup"))
    assert not list(tmp_path.glob("02_dedup*")), "a failed stage must leave neither output nor staging"

    def write_two(ctx):
        from pyspark.sql import functions as F

        df = spark.createDataFrame([("x", "1"), ("y", "2")], "doc_id string, text string")
        ctx.write_documents(df.withColumn(REASON_COL, F.lit(None).cast("string")), num_files=1)

    # OUT exists without _SUCCESS: not skipped, recomputed, and the stale file is gone.
    stats = run_stage("clean", write_two, spark, cfg, ["unused"], str(partial))
    assert stats is not None and stats["output"] == 2
    assert (partial / "_SUCCESS").exists()
    assert sorted(p.name for p in partial.glob("*.parquet")) == ["part-00000.parquet"]
    # Now complete: a rerun skips it.
    assert run_stage("clean", write_two, spark, cfg, ["unused"], str(partial))["output"] == 2
