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
    """A small untrained clutter artifact: the context network (``context``) or the older bag MLP."""
    torch.manual_seed(0)
    from models.clutter.net import ARCH, ClutterContextNet
    from pipeline.filter.clutter import N_LINE_FEATURES

    if context:
        m = ClutterContextNet(2048, 8, N_LINE_FEATURES, 16, context_layers=2)
        save_model(path, "clutter", m, {"task": "test", "arch": ARCH, "context_layers": 2}, "# tiny {version}\n")
    else:
        m = HashedBagMLP(2048, 8, N_LINE_FEATURES, 16, context=True)
        save_model(path, "clutter", m, {"task": "test"}, "# tiny {version}\n")
    return path


def _docs():
    from tests.test_clutter import synthetic_docs

    return [r["lines"] for r in synthetic_docs(40, seed=5)]


@pytest.mark.gpu
def test_cpu_gpu_parity_tiny_model(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: run through the device tool (python -m bench.model_speed --parity)")
    from models.clutter import load

    path = _tiny_model(tmp_path / "tiny", context=True)
    cpu = np.concatenate(load(path, "cpu").score_docs(_docs()))
    gpu = np.concatenate(load(path, "cuda", batch_lines=100).score_docs(_docs()))
    np.testing.assert_allclose(cpu, gpu, atol=1e-5)


@pytest.mark.parametrize("context", [True, False])
def test_batching_does_not_change_scores(tmp_path, context):
    from models.clutter import load

    path = _tiny_model(tmp_path / "tiny", context=context)
    whole = np.concatenate(load(path, "cpu", batch_lines=100000).score_docs(_docs()))
    small = np.concatenate(load(path, "cpu", batch_lines=7).score_docs(_docs()))
    # Bit-identical (float64 forward pass): output bytes must not depend on Arrow batch composition.
    assert np.array_equal(whole, small)
    # ... nor on which other documents share the batch (the context layers stay inside a document).
    docs = _docs()
    alone = np.concatenate([load(path, "cpu").score_docs([d])[0] for d in docs[::-1]][::-1])
    assert np.array_equal(whole, alone)


def test_clutter_artifact_with_other_features_is_a_clear_error(tmp_path):
    import json

    from models.clutter import load

    path = _tiny_model(tmp_path / "tiny", context=True)
    cfg = json.loads((path / "config.json").read_text())
    cfg["n_features"] = 7
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="retrain it with jobs/train_clutter.py"):
        load(path, "cpu")


def test_score_batches_pass_columns_through_and_add_scores(tmp_path, monkeypatch):
    """The filter stage's mapInArrow body, without Spark: input columns unchanged, score columns
    appended, nulls where a document has no score, CPU when the task has no GPU."""
    import pyarrow as pa
    import pyspark

    from udfs.models import SCORE_FIELDS, SCORE_PREFIX, make_score_batches

    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: None))
    path = _tiny_model(tmp_path / "tiny", context=True)
    spec = dataclasses.replace(ScoreSpec.from_config(*_filter_clean_cfg()), clutter_model=str(path), quality_model=None,
                               category_enabled=False, clutter_threshold=0.0)
    batch = pa.RecordBatch.from_pydict({
        "doc_id": pa.array(["a", "b", "c"]),
        "text": pa.array(["Home | News\nA sentence here.", None, ""]),
        "lang": pa.array(["en", None, "zh"]),
        "n": pa.array([1, 2, 3], pa.int64()),
    })
    out = list(make_score_batches(spec)(iter([batch])))
    assert len(out) == 1 and out[0].num_rows == 3
    got = out[0]
    assert got.schema.names == batch.schema.names + [SCORE_PREFIX + n for n, _ in SCORE_FIELDS]
    for name in batch.schema.names:
        assert got.column(name).equals(batch.column(name))
    assert got.column(SCORE_PREFIX + "text_clean").to_pylist() == ["Home | News\nA sentence here.", "", ""]
    assert got.column(SCORE_PREFIX + "clutter_lines_removed").to_pylist() == [0, 0, 0]
    assert got.column(SCORE_PREFIX + "quality_score").null_count == 3  # quality off: nulls, not NaN
    assert got.schema.field(SCORE_PREFIX + "clutter_lines_removed").type == pa.int32()


def test_score_batches_give_the_category_model_urls_and_titles(monkeypatch):
    """The filter reads each row's ``url`` and ``title`` columns into the category model (when the input
    has them): the same leaves as the predictor given those URLs and titles, none of them without."""
    import pyarrow as pa
    import pyspark

    from models.category import load
    from udfs.models import SCORE_PREFIX, make_score_batches

    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: None))
    spec = dataclasses.replace(ScoreSpec.from_config(*_filter_clean_cfg()), clutter_model=None, quality_model=None,
                               keep_model=None, category_enabled=True, category_model=None)
    texts = ["The results are in.", "Tickets for Saturday are on sale now.", "No title or URL here."]
    urls = ["https://example.com/sports/football/report", None, None]
    titles = [None, "Opera season opens: La Traviata", None]
    cols = {"doc_id": pa.array(["a", "b", "c"]), "text": pa.array(texts), "lang": pa.array(["en"] * 3)}
    with_meta = pa.RecordBatch.from_pydict({**cols, "url": pa.array(urls), "title": pa.array(titles)})
    got = next(make_score_batches(spec)(iter([with_meta]))).column(SCORE_PREFIX + "category").to_pylist()
    bare = next(make_score_batches(spec)(iter([pa.RecordBatch.from_pydict(cols)])))
    pred = load(None, "cpu")
    assert got == pred.predict(texts, urls=urls, titles=titles)[0].tolist()
    assert bare.column(SCORE_PREFIX + "category").to_pylist() == pred.predict(texts)[0].tolist()
    assert got[2] == bare.column(SCORE_PREFIX + "category").to_pylist()[2]


def _filter_clean_cfg():
    from pipeline.config import load_config

    cfg = load_config()
    return cfg.filter, cfg.clean


@pytest.mark.spark
def test_model_loaded_once_per_python_worker(spark, cfg, tmp_path):
    from udfs.models import load_counts_batches
    from udfs.resources import map_in_arrow

    path = _tiny_model(tmp_path / "tiny-spark", context=True)
    assert spark.sparkContext.getConf().get("spark.python.worker.reuse", "true") == "true"
    spec = ScoreSpec.from_config(cfg.filter, cfg.clean)
    spec = dataclasses.replace(spec, clutter_model=str(path), quality_model=None, category_enabled=False,
                               device="cpu")
    df = spark.createDataFrame([(f"line {i}\nShare this", "en") for i in range(48)], "text string, lang string")
    # The filter stage's path: mapInArrow (through udfs.resources, as the job applies its GPU profile).
    rows = map_in_arrow(df.repartition(12), load_counts_batches(spec), "pid int, loads int, device string",
                        None).collect()
    per_pid: dict[int, set] = {}
    for r in rows:
        per_pid.setdefault(r["pid"], set()).add(r["loads"])
        assert r["device"] == "cpu"
    # Every worker loaded the model exactly once, although workers served several of the 12 tasks.
    assert all(v == {1} for v in per_pid.values()), per_pid
    assert len(per_pid) < 12
