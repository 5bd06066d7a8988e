"""GPU-batched model inference in Spark: the per-worker model cache, the task's device, and the
``filter`` stage's scoring function.

* The ``filter`` job scores each Arrow batch of its write pass with :func:`make_score_batches`
  (``jobs.filter.FilterTransform``, run by ``StageContext.write_parts`` in the stage-level GPU profile of
  :func:`udfs.resources.gpu_profile` when one is configured). Each batch passes through untouched and
  gains the score columns of :data:`SCORE_FIELDS`.
* Models are loaded once per Python worker process through :func:`models.common.get_or_load` (Spark
  reuses workers across tasks with ``spark.python.worker.reuse=true``, the default), never per batch
  or task. :func:`load_counts_batches` exposes the counters so tests can check it across tasks.
* The device is the GPU Spark assigned to the task (``TaskContext.get().resources()["gpu"]``, set with
  ``spark.task.resource.gpu.amount`` or the stage's profile) when ``filter.device`` is
  ``auto``/``cuda``, else the CPU.
* The batch size is ``filter.arrow_max_records_per_batch`` (the write pass cuts the input files into
  batches of that many documents); inside one batch the predictors cut
  device-sized model batches (``batch_*_cpu`` / ``batch_*_gpu``).
* The category model reads each row's clutter-cleaned text plus its ``url`` and ``title`` columns when
  the input has them (stage 1 writes both; :mod:`models.category`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
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
    ("keep_score", "float"),
]
# Names of the score columns that make_score_batches appends (prefixed: the input may already hold
# columns of these names from an earlier filter run; the job renames them when it assembles its output).
SCORE_PREFIX = "_s_"


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
    keep_model: str | None
    heuristics: Any  # pipeline.clean.heuristics.HeuristicParams: recomputing signals for the keep score

    @staticmethod
    def from_config(fc: Any, clean_cfg: Any) -> ScoreSpec:
        """``fc``: ``cfg.filter``; ``clean_cfg``: ``cfg.clean`` (how the keep score recomputes the clean
        signals of an input without ``h_*`` columns, with the run's per-language settings)."""
        from pipeline.clean.heuristics import HeuristicParams

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
            keep_model=fc.keep.model if fc.keep.enabled else None,
            heuristics=HeuristicParams.from_config(clean_cfg),
        )


def _pick(batch: tuple[int, int], device: str) -> int:
    return batch[1] if device.startswith("cuda") else batch[0]


def score_texts(texts: list[str], langs: list[str | None], spec: ScoreSpec, device: str,
                signals: list[dict | None] | None = None, urls: list[str | None] | None = None,
                titles: list[str | None] | None = None) -> pd.DataFrame:
    """Clean, then score a batch of documents (plain Python; the UDF body). Rows match ``texts``.
    ``signals``: each document's clean-stage signals (the ``h_*`` columns) for the keep score; a
    missing entry is recomputed from the text. ``urls`` / ``titles``: each page's URL and title, read by
    the category model (None = not available)."""
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
            sel = nonempty[s : s + batch]
            ids, probs = cm.predict(texts_ne[s : s + batch], urls=None if urls is None else [urls[i] for i in sel],
                                    titles=None if titles is None else [titles[i] for i in sel])
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
    keep = np.full(n, np.nan, dtype=np.float32)
    if spec.keep_model is not None and nonempty:
        from pipeline.clean.heuristics import score_document
        from pipeline.filter import keepscore

        km = get_or_load(("keep", spec.keep_model), lambda: keepscore.load(spec.keep_model))
        params = spec.heuristics
        rows = []
        for i in nonempty:
            sig = signals[i] if signals is not None and signals[i] is not None else None
            if sig is None:
                sig = score_document(texts[i], langs[i], params)[1]
            rows.append(keepscore.feature_vector(sig, clean[i], None if np.isnan(q[i]) else float(q[i]),
                                                 int(removed[i]), keepscore.nonempty_lines(texts[i])))
        keep[nonempty] = km.score(np.vstack(rows))
    out["keep_score"] = keep
    return out


def _arrow_types():
    import pyarrow as pa

    return {"string": pa.string(), "int": pa.int32(), "float": pa.float32()}


def _texts_langs(batch, text_col: str, lang_col: str | None) -> tuple[list[str], list[str | None]]:
    texts = ["" if t is None else str(t) for t in batch.column(text_col).to_pylist()]
    if lang_col is None:
        return texts, [None] * len(texts)
    langs = [None if x is None else str(x) for x in batch.column(lang_col).to_pylist()]
    return texts, langs


def _column(batch, name: str) -> list[str | None] | None:
    """A string column of the batch as a list (None when the batch has no such column)."""
    if name not in batch.schema.names:
        return None
    return [None if x is None else str(x) for x in batch.column(name).to_pylist()]


def _signals(batch) -> list[dict | None] | None:
    """The clean stage's signals of each row (``h_*`` columns), or None when the batch lacks any of them."""
    from pipeline.clean.heuristics import SIGNAL_PREFIX, SIGNALS

    names = set(batch.schema.names)
    if not all(SIGNAL_PREFIX + s in names for s in SIGNALS):
        return None
    cols = {s: batch.column(SIGNAL_PREFIX + s).to_pylist() for s in SIGNALS}
    return [{s: cols[s][i] for s in SIGNALS} for i in range(batch.num_rows)]


ArrowBatches = Callable[[Iterator[Any]], Iterator[Any]]  # pyarrow.RecordBatch iterator -> iterator


def make_score_batches(spec: ScoreSpec, text_col: str = "text", lang_col: str | None = "lang") -> ArrowBatches:
    """The ``mapInArrow`` function of the filter stage: for each Arrow batch, every input column
    unchanged plus the :data:`SCORE_FIELDS` (prefixed :data:`SCORE_PREFIX`) of its ``text_col``
    (``lang_col`` picks per-language thresholds; None = no language column). The device is the one
    Spark assigned to the task (:func:`task_device`), read once per task."""

    def score_batches(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        device = task_device(spec.device)
        for batch in batches:
            types = _arrow_types()
            # Strings as the input's text column is typed (large_string under
            # spark.sql.execution.arrow.useLargeVarTypes), so the batch matches the declared schema.
            types["string"] = batch.schema.field(text_col).type
            texts, langs = _texts_langs(batch, text_col, lang_col)
            scored = score_texts(texts, langs, spec, device, _signals(batch) if spec.keep_model else None,
                                 _column(batch, "url"), _column(batch, "title"))
            # from_pandas: NaN (no score for an empty document) and pd.NA become Arrow nulls, as in
            # Spark's own pandas -> Arrow conversion.
            cols = [pa.array(scored[n], type=types[t], from_pandas=True) for n, t in SCORE_FIELDS]
            yield pa.RecordBatch.from_arrays(list(batch.columns) + cols,
                                             names=list(batch.schema.names) + [SCORE_PREFIX + n for n, _ in SCORE_FIELDS])

    return score_batches


def load_counts_batches(spec: ScoreSpec, text_col: str = "text", lang_col: str | None = "lang") -> ArrowBatches:
    """Test hook (``mapInArrow``): scores each batch through :func:`make_score_batches`' function, then
    yields per row ``(pid, clutter loads in this worker, device)``."""
    score = make_score_batches(spec, text_col, lang_col)

    def counts(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from models.common import LOAD_COUNTS

        for batch in batches:
            for out in score(iter([batch])):
                n = out.num_rows
                loads = sum(v for k, v in LOAD_COUNTS.items() if k[:2] == ("clutter", str(spec.clutter_model)))
                yield pa.RecordBatch.from_pydict({
                    "pid": pa.array([os.getpid()] * n, pa.int32()),
                    "loads": pa.array([loads] * n, pa.int32()),
                    "device": pa.array([task_device(spec.device)] * n, pa.string()),
                })

    return counts
