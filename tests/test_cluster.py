"""`make submit` on a real Spark standalone cluster (master + 2 workers on 127.0.0.1).

One run covers the issue's cluster checks: the packaged job runs on the cluster, a worker (with its
executor and Python workers) is killed while the job runs, a record that makes its task raise is a
counted ``error_*`` drop, and the output is byte-identical to the local-mode reference run.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.test_cluster_support import (
    FAULT_DELAY_S,
    PROFILE,
    REPO,
    StandaloneCluster,
    _env,
    assert_same_output,
    fault_url,
    kill_group,
    reference_run,
    require_stages,
    sample_crawl,
    tail,
    wait_ok,
)

MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed"]


def _submit(cluster: StandaloneCluster, dist: Path, sample: Path, out: Path, stages: list[str], log: Path):
    bad = fault_url(sample)
    args = [
        "--input", str(sample), "--output", str(out), "--set", f"spark.profile={PROFILE}",
        "--stages", ",".join(stages), "--no-report",
    ]
    conf = [
        "--driver-memory", "768m",
        "--conf", "spark.executor.memory=512m",
        "--conf", "spark.sql.shuffle.partitions=5",  # the reference uses 4: the output must not care
        "--conf", f"spark.executorEnv.DOTS_FAULT_INJECT={bad}",
        "--conf", f"spark.executorEnv.DOTS_FAULT_DELAY_S={FAULT_DELAY_S}",
        "--conf", "spark.ui.enabled=false",
    ]
    cmd = [
        *MAKE, "submit", f"DIST={dist}", "ENV_ARCHIVE=", f"MASTER={cluster.url}", "JOB=pipeline",
        "ARGS=" + shlex.join(args), "SUBMIT_CONF=" + shlex.join(conf),
    ]
    return subprocess.Popen(
        cmd, cwd=REPO, env=_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_for_task_on_a_worker(cluster: StandaloneCluster, proc: subprocess.Popen, log: Path, timeout=400) -> int:
    """Index of the first worker whose executor finished a task (its shuffle output then lives there)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"the job ended (rc={proc.returncode}) before any executor finished a task:\n{tail(log)}")
        for i in range(cluster.n_workers):
            if "Finished task" in cluster.executor_logs(i):
                return i
        time.sleep(0.2)
    pytest.fail(f"no executor finished a task within {timeout}s:\n{tail(log)}")


def _gpu_probe(cluster: StandaloneCluster, dist: Path, log: Path) -> dict:
    """spark-submit tests/test_cluster_gpu_probe.py with GPU executors; its PROBE line as a dict."""
    zip_path = dist / "dots_data.zip"
    cmd = [
        str(REPO / ".venv" / "bin" / "spark-submit"), "--master", cluster.url, "--driver-memory", "512m",
        "--conf", "spark.executor.memory=512m",
        "--conf", "spark.executor.resource.gpu.amount=1",
        "--conf", "spark.ui.enabled=false", "--py-files", str(zip_path), "--archives", f"{zip_path}#dots_data",
        str(REPO / "tests" / "test_cluster_gpu_probe.py"), "filter.device=cuda",
    ]
    with log.open("wb") as f:
        r = subprocess.run(cmd, cwd=REPO, env=_env(), stdout=f, stderr=subprocess.STDOUT, timeout=400)
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("PROBE ")]
    assert r.returncode == 0 and lines, f"GPU probe failed (rc={r.returncode}):\n{tail(log)}"
    return json.loads(lines[-1][len("PROBE "):])


@pytest.mark.cluster
@pytest.mark.spark
def test_submit_on_standalone_cluster_survives_worker_loss(tmp_path: Path, tmp_path_factory) -> None:
    stages = require_stages()
    ref = reference_run(tmp_path_factory)
    sample = sample_crawl(tmp_path_factory.getbasetemp())
    dist = tmp_path / "dist"
    subprocess.run([*MAKE, "package", f"DIST={dist}", "PACK_ENV=0"], cwd=REPO, check=True, capture_output=True)

    out = tmp_path / "run"
    log = tmp_path / "submit.log"
    with StandaloneCluster(tmp_path / "cluster", workers=2, cores=1, memory="1g", fake_gpus=1) as cluster:
        proc = _submit(cluster, dist, sample, out, stages, log)
        try:
            victim = _wait_for_task_on_a_worker(cluster, proc, log)
            assert proc.poll() is None, "the job finished before the worker could be killed"
            assert not (out / f"{len(stages) - 1:02d}_{stages[-1]}" / "_SUCCESS").exists()
            cluster.kill_worker(victim)
            killed_at = time.time()
            wait_ok(proc, log, timeout=600)
            # Both workers ran an executor of this app (a real two-node run), and one was lost.
            for i in range(cluster.n_workers):
                assert list(cluster.worker_dir(i).glob("app-*/*")), f"worker {i} never launched an executor"
            alive = [w for w in cluster.status()["workers"] if w["state"] == "ALIVE"]
            assert len(alive) == cluster.n_workers - 1
        finally:
            kill_group(proc)
        probe = _gpu_probe(cluster, dist, tmp_path / "probe.log")
    text = log.read_text(errors="replace")
    assert "dots_data.zip" in text or (dist / "dots_data.zip").exists()
    print(f"worker {victim} killed {time.time() - killed_at:.0f}s before the job ended")

    # Identical output to the local-mode run, whatever the executors and the lost worker.
    assert_same_output(ref, out)

    # The record whose processing raised is a counted error drop, not a failed job.
    stats = json.loads((out / "00_prepare" / "_stats.json").read_text())
    assert sum(stats["errors"].values()) >= 1, f"no error_* drop counted for the injected fault: {stats}"
    urls = set(pq.read_table(out / "00_prepare", columns=["url"]).column("url").to_pylist())
    assert fault_url(sample) not in urls

    # Stage-level GPU scheduling on the same cluster (workers announce one fake GPU each): only the
    # tasks of the RDD with udfs.resources.gpu_profile get a GPU; and executors import the code from
    # the --py-files zip with REPO_ROOT = the unpacked ./dots_data archive.
    assert probe["master"] == cluster.url
    assert probe["profile"]["task"] == {"cpus": 1.0, "gpu": 1.0} and probe["profile"]["executor"] == {}
    assert [t["gpu"] for t in probe["with_profile"]] == [["0"], ["0"]]
    assert [t["gpu"] for t in probe["default"]] == [[], []]
    for t in probe["with_profile"] + probe["default"]:
        # imported from the executor's copy of the zip (a path relative to its work dir), not the checkout
        assert "dots_data.zip" in t["pipeline_file"] and not t["pipeline_file"].startswith(str(REPO)), t
        assert t["repo_root"].startswith(str(cluster.base)) and t["repo_root"].endswith("dots_data"), t
        assert t["conf_found"], t
