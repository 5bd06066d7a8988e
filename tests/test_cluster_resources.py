"""GPU stage-level scheduling helper (udfs/resources.py) and the shipped discovery script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.test_cluster_support import REPO
from udfs import resources

SCRIPT = REPO / "conf" / "gpu" / "getGpusResources.sh"
GPU_EXECUTORS = {"spark.executor.resource.gpu.amount": "1", "spark.executor.resource.gpu.discoveryScript": "/opt/gpu.sh"}


def section(**kw):
    return SimpleNamespace(**kw)


def test_plan_off_and_local() -> None:
    assert resources.plan_gpu("spark://h:7077", {}, section(gpu=False)).mode == "none"
    assert resources.plan_gpu("spark://h:7077", {}, section(device="cpu")).mode == "none"
    assert resources.plan_gpu("local[4]", {}, section(gpu=True)).mode == "local"
    assert resources.plan_gpu("local[4]", {}, section(device="cuda")).mode == "local"  # no filter.gpu key


def test_plan_static_executors_is_task_profile() -> None:
    plan = resources.plan_gpu("spark://h:7077", dict(GPU_EXECUTORS, **{"spark.task.resource.gpu.amount": "0.25"}),
                              section(gpu=True))
    assert plan.mode == "task" and plan.task_gpus == 0.25 and plan.discovery_script == "/opt/gpu.sh"


def test_plan_without_gpu_executors_names_the_fix() -> None:
    with pytest.raises(ValueError, match="spark.executor.resource.gpu.amount"):
        resources.plan_gpu("yarn", {}, section(gpu=True))


def test_plan_dynamic_allocation_asks_for_gpu_executors() -> None:
    conf = {"spark.dynamicAllocation.enabled": "true", "spark.executor.cores": "8"}
    plan = resources.plan_gpu("k8s://https://api:6443", conf, section(gpu=True, gpu_executor_memory="24g"))
    assert plan.mode == "executor" and plan.executor_cores == 8 and plan.executor_memory == "24g"
    assert plan.discovery_script == resources.DEFAULT_DISCOVERY_SCRIPT


@pytest.mark.parametrize("amount", ["0.3", "1.5", "0", "-1"])
def test_plan_rejects_bad_task_amounts(amount: str) -> None:
    with pytest.raises(ValueError, match="fraction 1/n"):
        resources.plan_gpu("yarn", dict(GPU_EXECUTORS, **{"spark.task.resource.gpu.amount": amount}), section(gpu=True))


@pytest.mark.spark
def test_profiles_build_and_local_returns_none(spark, cfg) -> None:
    task = resources.build_profile(resources.GpuPlan("task", "", task_gpus=0.5, task_cpus=2))
    assert task.taskResources["gpu"].amount == 0.5 and task.taskResources["cpus"].amount == 2
    assert not task.executorResources
    ex = resources.build_profile(
        resources.GpuPlan("executor", "", executor_gpus=2, executor_cores=8, executor_memory="16g",
                          discovery_script="/opt/gpu.sh")
    )
    assert ex.executorResources["gpu"].amount == 2 and ex.executorResources["gpu"].discoveryScript == "/opt/gpu.sh"
    assert ex.executorResources["cores"].amount == 8
    # Local master: no profile, and the helpers run the function in the default profile.
    assert resources.gpu_profile(spark, cfg) is None
    df = spark.range(10)
    out = resources.map_in_pandas(df, lambda it: (b * 2 for b in it), df.schema, None)
    assert sorted(r.id for r in out.collect()) == [2 * i for i in range(10)]


def _fake_nvidia_smi(tmp_path: Path, output: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    f = bin_dir / "nvidia-smi"
    f.write_text(f"#!/bin/sh\nprintf '{output}'\n")
    f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    return env


def test_discovery_script_reports_gpus(tmp_path: Path) -> None:
    env = _fake_nvidia_smi(tmp_path, "0\\n1\\n2\\n")
    r = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"name": "gpu", "addresses": ["0", "1", "2"]}
    r = subprocess.run([str(SCRIPT)], env=dict(env, CUDA_VISIBLE_DEVICES="2,0"), capture_output=True, text=True)
    assert json.loads(r.stdout)["addresses"] == ["0", "1"]  # CUDA ordinals inside the process


def test_discovery_script_fails_loudly_without_gpus(tmp_path: Path) -> None:
    r = subprocess.run([str(SCRIPT)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert r.returncode != 0 and "nvidia-smi not found" in r.stderr
    env = _fake_nvidia_smi(tmp_path, "")
    r = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "no GPU visible" in r.stderr
