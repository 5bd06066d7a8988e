"""Stage 3 ``filter``: remove clutter lines, score quality and category, apply thresholds.

    python -m jobs.filter --input OUT/02_dedup --output OUT/03_filter [--set filter.quality.threshold=0.6]

Reads dedup's documents table and adds, per document (score first, decide after):

* ``text``: trafilatura's text without the lines the clutter model scores below
  ``filter.clutter.threshold``; ``clutter_lines_removed``: how many lines went;
* ``quality_score`` (0-1) of the cleaned text;
* ``category`` (0..199), ``category_name``, ``category_prob`` from ``models/category``;
* ``keep_score`` (0-1) from ``models/keep`` over the clean signals (``h_*``), the scores above and line
  statistics (:mod:`pipeline.filter.keepscore`);
* ``clutter_model``, ``quality_model``, ``category_model``, ``keep_model``: the version of each model that
  scored it.

Drops (``_stats.json``, decided by :func:`pipeline.filter.decisions.filter_reason`):
``clutter_empty_after_removal`` (no line left), ``quality_below_threshold``,
``keep_score_below_threshold``, ``error_filter_null_text`` (a row without text). One task per output part (``write_parts``: the
input's part layout, rows in input order, no shuffle) reads its input files in batches of
``filter.arrow_max_records_per_batch`` documents and runs all models on each batch, in the
stage-level GPU profile of :func:`udfs.resources.gpu_profile` when one is configured, on the GPU
Spark assigned to the task (its ``TaskContext`` resources), else on CPU; each model is loaded once
per Python worker. The batches are cut from the input files alone, so batch-wise model numerics do
not depend on Spark.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

from jobs.common import REASON_COL, StageContext, main
from pipeline.filter.decisions import NULL_TEXT  # noqa: F401 - the stage's reasons, re-exported
ARROW_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"  # left as the session has it


def model_versions(fc) -> dict[str, str | None]:
    """Check every enabled model on the driver (fails loudly before any task) and return versions."""
    from models.common import read_config
    from udfs.models import category_module

    out: dict[str, str | None] = {"clutter_model": None, "quality_model": None, "category_model": None,
                                  "keep_model": None}
    if fc.clutter.enabled:
        out["clutter_model"] = read_config(fc.clutter.model)["version"]
    if fc.quality.enabled:
        out["quality_model"] = read_config(fc.quality.model)["version"]
    if fc.keep.enabled:
        from pipeline.filter import keepscore

        out["keep_model"] = keepscore.load(fc.keep.model).version
    if fc.category.enabled:
        mod = category_module()
        if mod is None:
            print("[filter] models.category is not installed: category columns stay null")
        else:
            out["category_model"] = mod.load(fc.category.model, "cpu").version
    return out


def run(ctx: StageContext) -> None:
    fc = ctx.section
    layout = ctx.input_layout()
    in_schema = ctx.input_schema(layout)
    missing = {"doc_id", "text"} - set(in_schema.names)
    if missing:
        raise ValueError(f"filter input lacks column(s) {sorted(missing)}: pass the dedup stage's output")
    versions = model_versions(fc)
    _score_and_write(ctx, layout, in_schema, fc, versions)


class FilterTransform:
    """One Arrow batch of documents -> the filter stage's output batch: every input column (``text``
    replaced by the clutter-cleaned text), the score columns, the model versions and the drop reason
    of :func:`pipeline.filter.decisions.filter_reason`. Adds ``lines_removed``, ``quality_sum`` and
    ``quality_n`` to the part's totals."""

    def __init__(self, spec, has_lang: bool, versions: dict[str, str | None], out_names: list[str],
                 threshold: float, threshold_by_lang: dict[str, float], keep):
        self.spec, self.has_lang, self.versions, self.out_names = spec, has_lang, versions, out_names
        self.threshold, self.threshold_by_lang = threshold, threshold_by_lang
        self.keep = keep  # cfg.filter.keep (its thresholds per language; disabled: score only)

    def __call__(self, batch, totals: dict[str, float]):
        import pyarrow as pa
        import pyarrow.compute as pc

        from pipeline.filter.config import keep_threshold
        from pipeline.filter.decisions import filter_reason
        from udfs.models import SCORE_PREFIX, make_score_batches

        scored = next(make_score_batches(self.spec, "text", "lang" if self.has_lang else None)(iter([batch])))
        texts = batch.column("text").to_pylist()
        clean = scored.column(SCORE_PREFIX + "text_clean")
        quality = scored.column(SCORE_PREFIX + "quality_score")
        langs = batch.column("lang").to_pylist() if self.has_lang else [None] * batch.num_rows
        keep = scored.column(SCORE_PREFIX + "keep_score").to_pylist()
        reasons = [
            filter_reason(t, c, q, lg, self.threshold, self.threshold_by_lang, k,
                          keep_threshold(self.keep, lg))
            for t, c, q, lg, k in zip(texts, clean.to_pylist(), quality.to_pylist(), langs, keep)
        ]
        totals["lines_removed"] = totals.get("lines_removed", 0) + (
            pc.sum(scored.column(SCORE_PREFIX + "clutter_lines_removed")).as_py() or 0
        )
        totals["quality_sum"] = totals.get("quality_sum", 0.0) + (pc.sum(quality.cast(pa.float64())).as_py() or 0.0)
        totals["quality_n"] = totals.get("quality_n", 0) + (len(quality) - quality.null_count)
        n = batch.num_rows
        cols = {name: scored.column(name) for name in scored.schema.names}
        cols["text"] = clean
        for name in self.out_names:
            if SCORE_PREFIX + name in cols and name != "text_clean":
                cols[name] = cols[SCORE_PREFIX + name]
        for k, v in self.versions.items():
            cols[k] = pa.array([v] * n, pa.string())
        cols[REASON_COL] = pa.array(reasons, pa.string())
        return pa.RecordBatch.from_arrays([cols[c] for c in self.out_names], names=self.out_names)


def output_schema(in_schema, versions: dict[str, str | None]):
    """Input columns (an earlier filter run's score/version columns and ``drop_reason`` replaced),
    then the score columns, the model versions and ``drop_reason``."""
    import pyarrow as pa

    from udfs.models import SCORE_FIELDS

    types = {"string": pa.string(), "int": pa.int32(), "float": pa.float32()}
    added = [(n, types[t]) for n, t in SCORE_FIELDS if n != "text_clean"]
    skip = {n for n, _ in added} | set(versions) | {REASON_COL}
    fields = [f for f in in_schema if f.name not in skip]
    fields += [pa.field(n, t) for n, t in added]
    fields += [pa.field(k, pa.string()) for k in versions]
    fields.append(pa.field(REASON_COL, pa.string()))
    return pa.schema(fields)


def _score_and_write(ctx: StageContext, layout, in_schema, fc, versions: dict[str, str | None]) -> None:
    from udfs.models import ScoreSpec
    from udfs.resources import gpu_profile

    spec = ScoreSpec.from_config(fc, ctx.cfg.clean)
    out_schema = output_schema(in_schema, versions)
    transform = FilterTransform(spec, "lang" in in_schema.names, versions, out_schema.names,
                                fc.quality.threshold, dict(fc.quality.threshold_by_lang or {}),
                                fc.keep)
    totals = ctx.write_parts(layout, transform, out_schema, batch_rows=fc.arrow_max_records_per_batch,
                             profile=gpu_profile(ctx.spark, ctx.cfg))
    n = totals.get("quality_n", 0)
    ctx.stats.extra["filter"] = {
        "clutter_lines_removed": int(totals.get("lines_removed", 0)),
        "mean_quality_score": round(totals["quality_sum"] / n, 4) if n else None,
        "models": versions,
    }


if __name__ == "__main__":
    main("filter", run)
