"""GPU-batched model inference in Spark: the per-worker model cache, the task's device, and the
``filter`` stage's scoring UDF.

* Models are loaded once per Python worker process through :func:`models.common.get_or_load` (Spark
  reuses workers across tasks with ``spark.python.worker.reuse=true``, the default), never per batch
  or task. :func:`load_counts_udf` exposes the counters so tests can check it across tasks.
* The device is the GPU Spark assigned to the task (``TaskContext.get().resources()["gpu"]``, set with
  ``spark.task.resource.gpu.amount``) when ``filter.device`` is ``auto``/``cuda``, else the CPU.
* The Arrow batch size (``spark.sql.execution.arrow.maxRecordsPerBatch``) is set from
  ``filter.arrow_max_records_per_batch`` by the job; inside one Arrow batch the predictors cut
  device-sized model batches (``batch_*_cpu`` / ``batch_*_gpu``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from models.common import category_module
from pipeline.filter.clutter import clean_lines, split_lines
from pipeline.filter.config import lang_threshold

SCORE_FIELDS = [
    ("text_clean", "string"),
    ("clutter_lines_removed", "int"),
    ("quality_score", "float"),
    ("category", "int"),
    ("category_name", "string"),
    ("category_prob", "float"),
]
SCORE_SCHEMA = "struct<" + ",".join(f"{n}:{t}" for n, t in SCORE_FIELDS) + ">"


def task_device(preference: str) -> str:
    """``cpu``; ``cuda:N`` as given; ``auto``/``cuda`` -> the task's assigned GPU, else CPU (auto) or
    the first visible GPU (cuda)."""
    if preference == "cpu" or preference.startswith("cuda:"):
        return preference
    from pyspark import TaskContext

    ctx = TaskContext.get()
    gpus = ctx.resources().get("gpu") if ctx is not None else None
    if gpus is not None and gpus.addresses:
        return f"cuda:{gpus.addresses[0]}"
    return "cuda:0" if preference == "cuda" else "cpu"


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
    """What the executors need (picklable, built on the driver from ``cfg.filter``)."""

    device: str
    clutter_model: str | None
    clutter_threshold: float
    clutter_by_lang: tuple[tuple[str, float], ...]
    clutter_batch: tuple[int, int]  # (cpu, gpu) lines
    quality_model: str | None
    quality_batch: tuple[int, int]  # (cpu, gpu) documents
    category_model: str | None
    category_enabled: bool
    category_batch: tuple[int, int]

    @staticmethod
    def from_config(fc: Any) -> ScoreSpec:
        return ScoreSpec(
            device=fc.device,
            clutter_model=fc.clutter.model if fc.clutter.enabled else None,
            clutter_threshold=fc.clutter.threshold,
            clutter_by_lang=tuple(sorted(fc.clutter.threshold_by_lang.items())),
            clutter_batch=(fc.clutter.batch_lines_cpu, fc.clutter.batch_lines_gpu),
            quality_model=fc.quality.model if fc.quality.enabled else None,
            quality_batch=(fc.quality.batch_docs_cpu, fc.quality.batch_docs_gpu),
            category_model=fc.category.model,
            category_enabled=fc.category.enabled,
            category_batch=(fc.category.batch_docs_cpu, fc.category.batch_docs_gpu),
        )


def _pick(batch: tuple[int, int], device: str) -> int:
    return batch[1] if device.startswith("cuda") else batch[0]


def score_texts(texts: list[str], langs: list[str | None], spec: ScoreSpec, device: str) -> pd.DataFrame:
    """Clean, then score a batch of documents (plain Python; the UDF body). Rows match ``texts``."""
    from models import clutter, quality
    from models.common import get_or_load

    n = len(texts)
    clean = list(texts)
    removed = np.zeros(n, dtype=np.int32)
    if spec.clutter_model is not None:
        cp = clutter.load_cached(spec.clutter_model, device, _pick(spec.clutter_batch, device))
        docs = [split_lines(t) for t in texts]
        by_lang = dict(spec.clutter_by_lang)
        for i, (lines, scores) in enumerate(zip(docs, cp.score_docs(docs))):
            thr = lang_threshold(spec.clutter_threshold, by_lang, langs[i])
            clean[i], removed[i] = clean_lines(lines, scores, thr)
    out = pd.DataFrame({"text_clean": clean, "clutter_lines_removed": removed})
    nonempty = [i for i, t in enumerate(clean) if t.strip()]
    q = np.full(n, np.nan, dtype=np.float32)
    if spec.quality_model is not None and nonempty:
        qp = quality.load_cached(spec.quality_model, device, _pick(spec.quality_batch, device))
        q[nonempty] = qp.predict([clean[i] for i in nonempty])
    out["quality_score"] = q
    cat = pd.array([None] * n, dtype="Int32")
    cat_name = [None] * n
    cat_prob = np.full(n, np.nan, dtype=np.float32)
    mod = category_module() if spec.category_enabled else None
    if mod is not None and nonempty:
        batch = _pick(spec.category_batch, device)
        cm = get_or_load(("category", spec.category_model, device), lambda: mod.load(spec.category_model, device))
        names = get_or_load(("category_names",), mod.category_names)
        ids_all, probs_all = [], []
        texts_ne = [clean[i] for i in nonempty]
        for s in range(0, len(texts_ne), batch):
            ids, probs = cm.predict(texts_ne[s : s + batch])
            ids_all.append(np.asarray(ids))
            probs_all.append(np.asarray(probs, dtype=np.float32))
        ids = np.concatenate(ids_all)
        for j, i in enumerate(nonempty):
            cat[i] = int(ids[j])
            cat_name[i] = names[int(ids[j])]
        cat_prob[nonempty] = np.concatenate(probs_all)
    out["category"] = cat
    out["category_name"] = cat_name
    out["category_prob"] = cat_prob
    return out


def make_score_udf(spec: ScoreSpec):
    """The Spark scalar-iterator pandas UDF ``(text, lang) -> struct`` of :data:`SCORE_FIELDS`."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(SCORE_SCHEMA)
    def score_udf(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        device = task_device(spec.device)
        for text, lang in batches:
            texts = ["" if t is None else str(t) for t in text]
            langs = [None if (x is None or x is pd.NA) else str(x) for x in lang]
            yield score_texts(texts, langs, spec, device)

    return score_udf


def load_counts_udf(spec: ScoreSpec):
    """Test hook: per row, ``(pid, clutter loads in this worker)`` after scoring the row's batch."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("struct<pid:int,loads:int,device:string>")
    def counts(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        from models.common import LOAD_COUNTS

        device = task_device(spec.device)
        for text, lang in batches:
            score_texts(list(text), list(lang), spec, device)
            loads = sum(v for k, v in LOAD_COUNTS.items() if k[:2] == ("clutter", str(spec.clutter_model)))
            yield pd.DataFrame({"pid": [os.getpid()] * len(text), "loads": [loads] * len(text),
                                "device": [device] * len(text)})

    return counts
