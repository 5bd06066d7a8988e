"""`make submit` on a standalone cluster (master + one worker on 127.0.0.1) with its WARC input and
its output in moto's S3 server: executors read the WARCs and write the Parquet parts in Python,
with the AWS settings the driver ships to them (no s3a jars). The rows equal the local reference
run's ``00_prepare`` (``warc_file`` compared by file name)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.test_cluster_support import (
    PROFILE,
    REPO,
    StandaloneCluster,
    _env,
    fault_url,
    reference_run,
    sample_crawl,
    tail,
)
from tests.test_object_storage_spark import _download, _upload, assert_same_run

MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed"]
AWS_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
            "AWS_EC2_METADATA_DISABLED", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@pytest.mark.cluster
@pytest.mark.spark
def test_submit_prepare_with_warcs_and_output_in_s3(tmp_path: Path, tmp_path_factory, s3_bucket) -> None:
    import os

    ref = reference_run(tmp_path_factory)
    sample = sample_crawl(tmp_path_factory.getbasetemp())
    for w in sorted(sample.glob("*.warc.gz")):
        _upload(s3_bucket, f"crawl/{w.name}", w)
    dist = tmp_path / "dist"
    subprocess.run([*MAKE, "package", f"DIST={dist}", "PACK_ENV=0"], cwd=REPO, check=True, capture_output=True)
    out = f"{s3_bucket}/cluster-prepare"
    args = ["--input", f"{s3_bucket}/crawl/*.warc.gz", "--output", out, "--set", f"spark.profile={PROFILE}"]
    conf = [
        "--driver-memory", "768m", "--conf", "spark.executor.memory=512m", "--conf", "spark.ui.enabled=false",
        # the reference run's injected record fault (tests/test_cluster_support.fault_env)
        "--conf", f"spark.executorEnv.DOTS_FAULT_INJECT={fault_url(sample)}",
    ]
    log = tmp_path / "submit.log"
    aws = {k: os.environ[k] for k in AWS_KEYS}
    with StandaloneCluster(tmp_path / "cluster", workers=1, cores=2, memory="1g") as cluster:
        cmd = [
            *MAKE, "submit", f"DIST={dist}", "ENV_ARCHIVE=", f"MASTER={cluster.url}", "JOB=prepare",
            "ARGS=" + shlex.join(args), "SUBMIT_CONF=" + shlex.join(conf),
        ]
        with log.open("wb") as f:
            r = subprocess.run(cmd, cwd=REPO, env=_env(**aws), stdout=f, stderr=subprocess.STDOUT, timeout=600)
        assert r.returncode == 0, f"submit failed:\n{tail(log)}"
        ran_on_worker = "Finished task" in cluster.executor_logs(0)
    assert ran_on_worker, "no task ran on the cluster's executor"
    got = _download(out, tmp_path / "got")
    assert assert_same_run(ref / "00_prepare", got) >= 3
    manifest = json.loads((got / "_SUCCESS").read_text())
    assert sorted(f["path"] for f in manifest["files"] if f["path"].startswith("part-")) == sorted(
        p.name for p in got.glob("part-*.parquet")
    )
