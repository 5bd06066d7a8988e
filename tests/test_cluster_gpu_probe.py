"""Driver script that tests/test_cluster.py spark-submits to the standalone cluster (no tests here).

Its workers announce one fake GPU (a discovery script printing address "0"), executors are started
with ``spark.executor.resource.gpu.amount=1``. The probe checks, and prints as one JSON line:

* the code on executors is imported from the ``--py-files`` zip and ``REPO_ROOT`` is the unpacked
  ``./dots_data`` archive (what a real multi-node cluster relies on);
* ``udfs.resources.gpu_profile`` builds a task profile here, and only the tasks of the RDD it is
  attached to get a GPU address; tasks of the default profile get none.
"""

from __future__ import annotations

import json
import sys


def _task_view(_):
    from pyspark import TaskContext

    import pipeline
    from pipeline.config import REPO_ROOT

    res = TaskContext.get().resources()
    yield {
        "gpu": sorted(res["gpu"].addresses) if "gpu" in res else [],
        "pipeline_file": pipeline.__file__,
        "repo_root": str(REPO_ROOT),
        "conf_found": (REPO_ROOT / "conf" / "defaults").is_dir(),
    }


def main() -> None:
    from jobs.common import get_spark
    from pipeline.config import load_config
    from udfs.resources import gpu_profile

    cfg = load_config(overrides=["spark.profile=tests", *sys.argv[1:]])
    spark = get_spark(cfg, "dots-data:gpu-probe")
    sc = spark.sparkContext
    profile = gpu_profile(spark, cfg)
    result = {
        "master": sc.master,
        "profile": None if profile is None else {
            "task": {k: v.amount for k, v in profile.taskResources.items()},
            "executor": {k: v.amount for k, v in profile.executorResources.items()},
        },
        "with_profile": sc.parallelize([0, 1], 2).withResources(profile).mapPartitions(_task_view).collect(),
        "default": sc.parallelize([0, 1], 2).mapPartitions(_task_view).collect(),
    }
    print("PROBE " + json.dumps(result), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
