"""Same input + config -> byte-identical output, whatever the executors and shuffle partitions.

The reference run uses ``local[2]`` and the profile's 4 shuffle partitions; this one ``local[1]`` and
7 shuffle partitions (and 7 default RDD partitions). Output file counts come from the config
(``write_documents`` hash-partitions into a configured number of files and sorts each by doc_id), so
every Parquet file, ``_stats.json`` (timings aside) and token shard must match byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.test_cluster_support import (
    assert_same_output,
    reference_run,
    require_stages,
    sample_crawl,
    stage_dirs,
    start_pipeline,
    wait_ok,
)


@pytest.mark.spark
@pytest.mark.slow
def test_output_identical_across_executors_and_partitions(tmp_path: Path, tmp_path_factory) -> None:
    stages = require_stages()
    ref = reference_run(tmp_path_factory)
    sample = sample_crawl(tmp_path_factory.getbasetemp())
    out, log = tmp_path / "run", tmp_path / "log.txt"
    wait_ok(start_pipeline(sample, out, stages, log, master="local[1]", shuffle_partitions=7), log)
    assert_same_output(ref, out)
    # The comparison covered real data: every stage wrote rows, and the counts add up.
    for d in stage_dirs(out):
        stats = json.loads((d / "_stats.json").read_text())
        files = sorted(d.glob("*.parquet"))
        if files:
            assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == stats["output"], d.name
    assert any(json.loads((d / "_stats.json").read_text())["output"] > 0 for d in stage_dirs(out))
