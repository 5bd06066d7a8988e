"""Stage-level GPU scheduling: only the model stage (filter) holds GPUs.

Spark's stage-level scheduling (``pyspark.resource``) attaches a :class:`ResourceProfile` to the
RDD / ``mapInPandas`` / ``mapInArrow`` of one stage. The rest of the pipeline runs with the default
profile (no GPU per task), so CPU stages never wait for, or hold, a GPU.

Two modes, chosen from the Spark conf on the driver (:func:`plan_gpu`):

* ``executor`` — dynamic allocation on (YARN, Kubernetes, standalone): a full profile with executor
  requests (GPUs, cores, memory, discovery script) and task requests. Spark starts GPU executors for
  the model stage only and releases them when idle.
* ``task`` — dynamic allocation off: a task-only profile (``TaskResourceProfile``; standalone since
  Spark 3.4, YARN/K8s since 3.5). Executors are started with GPUs
  (``spark.executor.resource.gpu.amount``), and only the model stage's tasks claim them.

A local master has no stage-level scheduling: the profile is ``None`` and the task uses the
machine's GPU through ``filter.device`` (auto/cuda). A GPU request the cluster conf cannot satisfy
raises ``ValueError`` on the driver, naming the settings to add.

Settings come from the ``filter`` section when it defines them (``gpu``, ``gpu_task_amount``,
``gpu_executor_amount``, ``gpu_executor_cores``, ``gpu_executor_memory``, ``gpu_discovery_script``),
else from the Spark conf (``spark.task.resource.gpu.amount``, ``spark.executor.resource.gpu.*``),
else the defaults below. Without a ``filter.gpu`` key, ``filter.device: cuda`` requests a GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_DISCOVERY_SCRIPT = "./dots_data/conf/gpu/getGpusResources.sh"  # YARN: --archives are in the cwd


@dataclasses.dataclass(frozen=True)
class GpuPlan:
    """What :func:`gpu_profile` will build. ``mode``: none | local | task | executor."""

    mode: str
    reason: str
    task_gpus: float = 1.0
    task_cpus: int = 1
    executor_gpus: int = 1
    executor_cores: int | None = None
    executor_memory: str | None = None
    discovery_script: str | None = None


def _section_value(section: Any, name: str) -> Any:
    return getattr(section, name, None) if section is not None else None


def gpu_requested(section: Any) -> bool:
    """``filter.gpu`` when the section has it, else ``filter.device`` naming CUDA."""
    flag = _section_value(section, "gpu")
    if flag is not None:
        return bool(flag)
    device = str(_section_value(section, "device") or "")
    return device == "cuda" or device.startswith("cuda:")


def plan_gpu(master: str, conf: Mapping[str, str], section: Any) -> GpuPlan:
    """Decide how the model stage gets its GPUs (pure function: unit-tested without Spark)."""
    if not gpu_requested(section):
        return GpuPlan("none", "filter.gpu is off: the model stage runs on CPU executors")
    if master.startswith("local"):
        return GpuPlan("local", f"master {master}: no stage-level scheduling; tasks see the machine's GPUs")

    def pick(attr: str, key: str, default: Any, cast: Callable[[Any], Any]) -> Any:
        v = _section_value(section, attr)
        if v is None:
            v = conf.get(key)
        return cast(v) if v is not None else default

    task_gpus = pick("gpu_task_amount", "spark.task.resource.gpu.amount", 1.0, float)
    if task_gpus <= 0 or (task_gpus < 1 and abs(1 / task_gpus - round(1 / task_gpus)) > 1e-9) or (
        task_gpus > 1 and task_gpus != int(task_gpus)
    ):
        raise ValueError(
            f"GPU amount per task {task_gpus}: use a fraction 1/n (0.25 = 4 tasks share a GPU) or a whole number"
        )
    common = {
        "task_gpus": task_gpus,
        "task_cpus": pick("gpu_task_cpus", "spark.task.cpus", 1, int),
        "executor_gpus": pick("gpu_executor_amount", "spark.executor.resource.gpu.amount", 1, int),
        "executor_cores": pick("gpu_executor_cores", "spark.executor.cores", None, int),
        "executor_memory": pick("gpu_executor_memory", "spark.executor.memory", None, str),
        "discovery_script": pick(
            "gpu_discovery_script", "spark.executor.resource.gpu.discoveryScript", DEFAULT_DISCOVERY_SCRIPT, str
        ),
    }
    if str(conf.get("spark.dynamicAllocation.enabled", "false")).lower() == "true":
        return GpuPlan("executor", "dynamic allocation: GPU executors are started for the model stage only", **common)
    if "spark.executor.resource.gpu.amount" not in conf and _section_value(section, "gpu_executor_amount") is None:
        raise ValueError(
            "filter.gpu is on but executors have no GPUs and dynamic allocation is off: start executors with "
            "--conf spark.executor.resource.gpu.amount=1 --conf spark.executor.resource.gpu.discoveryScript=PATH "
            "(standalone workers also need spark.worker.resource.gpu.amount/discoveryScript), or enable "
            "spark.dynamicAllocation.enabled so GPU executors are started for the model stage only"
        )
    return GpuPlan("task", "static executors with GPUs: only the model stage's tasks claim one", **common)


def build_profile(plan: GpuPlan):
    """The :class:`pyspark.resource.ResourceProfile` of ``plan`` (None for modes none/local)."""
    if plan.mode in ("none", "local"):
        return None
    from pyspark.resource import ExecutorResourceRequests, ResourceProfileBuilder, TaskResourceRequests

    builder = ResourceProfileBuilder()
    builder.require(TaskResourceRequests().cpus(plan.task_cpus).resource("gpu", plan.task_gpus))
    if plan.mode == "executor":
        ereq = ExecutorResourceRequests().resource("gpu", plan.executor_gpus, plan.discovery_script or "")
        if plan.executor_cores:
            ereq = ereq.cores(plan.executor_cores)
        if plan.executor_memory:
            ereq = ereq.memory(plan.executor_memory)
        builder.require(ereq)
    return builder.build


def gpu_profile(spark, cfg) -> Any:
    """The GPU profile for the filter stage, or None when it needs none (GPU off, or local master).

    Apply it with :func:`map_in_pandas` / :func:`map_in_arrow` (DataFrames) or
    ``rdd.withResources(profile)``. Raises ``ValueError`` on the driver when the cluster conf
    cannot give GPUs."""
    sc = spark.sparkContext
    conf = dict(sc.getConf().getAll())
    plan = plan_gpu(sc.master, conf, getattr(cfg, "filter", None))
    print(f"[resources] GPU plan: {plan.mode} ({plan.reason})", flush=True)
    return build_profile(plan)


def map_in_pandas(df, func: Callable, schema, profile=None):
    """``df.mapInPandas(func, schema)`` in the stage-level ``profile`` (None = default profile)."""
    return df.mapInPandas(func, schema, profile=profile) if profile is not None else df.mapInPandas(func, schema)


def map_in_arrow(df, func: Callable, schema, profile=None):
    """``df.mapInArrow(func, schema)`` in the stage-level ``profile`` (None = default profile)."""
    return df.mapInArrow(func, schema, profile=profile) if profile is not None else df.mapInArrow(func, schema)
