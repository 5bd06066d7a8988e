"""Model-UDF infrastructure: per-worker cache, task device, CPU/GPU parity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.common import LOAD_COUNTS, HashedBagMLP, get_or_load, save_model
from udfs.models import ScoreSpec, task_device


def test_get_or_load_loads_once_per_key():
    calls = []

    def loader():
        calls.append(1)
        return object()

    a = get_or_load(("test-cache", 1), loader)
    b = get_or_load(("test-cache", 1), loader)
    c = get_or_load(("test-cache", 2), loader)
    assert a is b and a is not c
    assert len(calls) == 2 and LOAD_COUNTS[("test-cache", 1)] == 1


class _FakeCtx:
    def __init__(self, gpus):
        from pyspark.resource import ResourceInformation

        self._res = {"gpu": ResourceInformation("gpu", gpus)} if gpus else {}

    def resources(self):
        return self._res


def test_task_device_reads_the_gpu_spark_assigned(monkeypatch):
    import pyspark

    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: _FakeCtx(["3"])))
    assert task_device("auto") == "cuda:3" and task_device("cuda") == "cuda:3"
    assert task_device("cpu") == "cpu"
    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: _FakeCtx([])))
    assert task_device("auto") == "cpu" and task_device("cuda") == "cuda:0"
    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: None))
    assert task_device("auto") == "cpu"


def _tiny_model(path, context: bool):
    torch.manual_seed(0)
    from pipeline.filter.clutter import N_LINE_FEATURES

    m = HashedBagMLP(2048, 8, N_LINE_FEATURES, 16, context=context)
    save_model(path, "clutter", m, {"task": "test"}, "# tiny {version}\n")
    return path


def _docs():
    from tests.test_clutter import synthetic_docs

    return [r["lines"] for r in synthetic_docs(40, seed=5)]


@pytest.mark.gpu
def test_cpu_gpu_parity_tiny_model(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: run through the device tool (bench/models.py --parity)")
    from models.clutter import load

    path = _tiny_model(tmp_path / "tiny", context=True)
    cpu = np.concatenate(load(path, "cpu").score_docs(_docs()))
    gpu = np.concatenate(load(path, "cuda", batch_lines=100).score_docs(_docs()))
    np.testing.assert_allclose(cpu, gpu, atol=1e-5)


def test_batching_does_not_change_scores(tmp_path):
    from models.clutter import load

    path = _tiny_model(tmp_path / "tiny", context=True)
    whole = np.concatenate(load(path, "cpu", batch_lines=100000).score_docs(_docs()))
    small = np.concatenate(load(path, "cpu", batch_lines=7).score_docs(_docs()))
    # Bit-identical (float64 forward pass): output bytes must not depend on Arrow batch composition.
    assert np.array_equal(whole, small)


@pytest.mark.spark
def test_model_loaded_once_per_python_worker(spark, cfg, tmp_path):
    from udfs.models import load_counts_udf

    path = _tiny_model(tmp_path / "tiny-spark", context=True)
    assert spark.sparkContext.getConf().get("spark.python.worker.reuse", "true") == "true"
    spec = ScoreSpec.from_config(cfg.filter)
    spec = dataclasses.replace(spec, clutter_model=str(path), quality_model=None, category_enabled=False,
                               device="cpu")
    df = spark.createDataFrame([(f"line {i}\nShare this", "en") for i in range(48)], "text string, lang string")
    rows = df.repartition(12).select(load_counts_udf(spec)("text", "lang").alias("r")).select("r.*").collect()
    per_pid: dict[int, set] = {}
    for r in rows:
        per_pid.setdefault(r["pid"], set()).add(r["loads"])
        assert r["device"] == "cpu"
    # Every worker loaded the model exactly once, although workers served several of the 12 tasks.
    assert all(v == {1} for v in per_pid.values()), per_pid
    assert len(per_pid) < 12
