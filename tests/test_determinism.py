"""Same input + config -> byte-identical output, whatever the shuffle partitioning.

Every stage after the first is rerun in the shared session on the reference run's input with other
``spark.sql.shuffle.partitions`` / ``spark.default.parallelism`` than the reference (4): its Parquet
files, side tables, token shards and ``_stats.json`` (timings aside) must equal the reference's byte
for byte. Output file counts come from the config, not from the session (``write_documents``
hash-partitions into a configured number of files and sorts each by doc_id). A different executor
count (``local[1]`` vs ``local[2]``) is covered by tests/test_resume.py, whose resumed ``local[1]``
run must also equal the reference; a standalone cluster by tests/test_cluster.py.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.test_cluster_support import (
    assert_same_output,
    reference_run,
    require_stages,
    stage_dirs,
)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("partitions", [7])
def test_stages_identical_across_shuffle_partitions(spark, cfg, tmp_path: Path, tmp_path_factory, partitions) -> None:
    from jobs.common import run_stage

    require_stages()
    ref = reference_run(tmp_path_factory)
    dirs = stage_dirs(ref)
    assert len(dirs) >= 2, f"the reference run has fewer than two stages: {[d.name for d in dirs]}"
    conf = spark.conf
    saved = {k: conf.get(k) for k in ("spark.sql.shuffle.partitions",)}
    try:
        conf.set("spark.sql.shuffle.partitions", str(partitions))
        for prev, ref_dir in zip(dirs, dirs[1:]):
            stage = ref_dir.name.split("_", 1)[1]
            module = importlib.import_module(f"jobs.{stage}")
            out = tmp_path / ref_dir.name
            stats = run_stage(stage, module.run, spark, cfg, [str(prev)], str(out))
            assert stats is not None
            # compare this stage's folder alone (paths relative to it)
            assert_same_output(ref_dir, out)
    finally:
        for k, v in saved.items():
            conf.set(k, v)
    # The comparison covered real data: the counts in _stats.json match the Parquet rows.
    for d in dirs:
        stats = json.loads((d / "_stats.json").read_text())
        files = sorted(d.glob("*.parquet"))
        if files:
            assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == stats["output"], d.name
    assert any(json.loads((d / "_stats.json").read_text())["output"] > 0 for d in dirs[1:])
