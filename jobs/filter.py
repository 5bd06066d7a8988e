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

Drops (``_stats.json``): ``clutter_empty_after_removal`` (no line left), ``quality_below_threshold``,
``keep_score_below_threshold``, ``error_filter_null_text`` (a row without text). One ``mapInArrow`` function runs all models on each
Arrow batch (``filter.arrow_max_records_per_batch`` documents), in the stage-level GPU profile of
:func:`udfs.resources.gpu_profile` when one is configured, on the GPU Spark assigned to the task (its
``TaskContext`` resources), else on CPU; each model is loaded once per Python worker.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

from jobs.common import REASON_COL, StageContext, main
from pipeline.filter.clutter import CLUTTER_EMPTY
from pipeline.filter.keepscore import KEEP_BELOW
from pipeline.filter.quality import QUALITY_BELOW

NULL_TEXT = "error_filter_null_text"
ARROW_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"


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
    df = ctx.read_previous()
    missing = {"doc_id", "text"} - set(df.columns)
    if missing:
        raise ValueError(f"filter input lacks column(s) {sorted(missing)}: pass the dedup stage's output")
    versions = model_versions(fc)
    previous = ctx.spark.conf.get(ARROW_BATCH_CONF, None)
    ctx.spark.conf.set(ARROW_BATCH_CONF, str(fc.arrow_max_records_per_batch))
    try:
        _score_and_write(ctx, df, fc, versions)
    finally:  # later stages of a `pipeline` run share the session: give them back their setting
        if previous is None:
            ctx.spark.conf.unset(ARROW_BATCH_CONF)
        else:
            ctx.spark.conf.set(ARROW_BATCH_CONF, previous)


def _score_and_write(ctx: StageContext, df, fc, versions: dict[str, str | None]) -> None:
    from pyspark.sql import functions as F

    from udfs.models import SCORE_FIELDS, SCORE_PREFIX, ScoreSpec, make_score_batches, score_columns_schema
    from udfs.resources import gpu_profile, map_in_arrow

    spec = ScoreSpec.from_config(fc, ctx.cfg.clean)
    has_lang = "lang" in df.columns
    lang = F.col("lang") if has_lang else F.lit(None).cast("string")
    profile = gpu_profile(ctx.spark, ctx.cfg)
    scored = map_in_arrow(df, make_score_batches(spec, "text", "lang" if has_lang else None),
                          score_columns_schema(df.schema), profile)

    def s(name: str):  # a score column of the mapInArrow output
        return F.col(SCORE_PREFIX + name)

    added = [n for n, _ in SCORE_FIELDS if n != "text_clean"]
    cols = [s("text_clean").alias("text") if c == "text" else F.col(c) for c in df.columns
            if c not in added and c not in versions and c != REASON_COL]
    cols += [s(n).alias(n) for n in added]
    cols += [F.lit(v).cast("string").alias(k) for k, v in versions.items()]

    q_threshold = F.lit(fc.quality.threshold)
    if fc.quality.threshold_by_lang:
        m = F.create_map(*[x for k, v in sorted(fc.quality.threshold_by_lang.items()) for x in (F.lit(k), F.lit(v))])
        q_threshold = F.coalesce(m[lang], q_threshold)
    # keep threshold per language; a null threshold (default or per language) only scores
    k_threshold = F.lit(fc.keep.threshold if fc.keep.enabled else None).cast("double")
    if fc.keep.enabled:
        for k, v in sorted(fc.keep.threshold_by_lang.items(), reverse=True):
            k_threshold = F.when(lang == F.lit(k), F.lit(v).cast("double")).otherwise(k_threshold)
    reason = (
        F.when(F.col("text").isNull(), F.lit(NULL_TEXT))
        .when(F.length(F.trim(s("text_clean"))) == 0, F.lit(CLUTTER_EMPTY))
        .when(s("quality_score").isNotNull() & (s("quality_score") < q_threshold), F.lit(QUALITY_BELOW))
        .when(k_threshold.isNotNull() & s("keep_score").isNotNull() & (s("keep_score") < k_threshold),
              F.lit(KEEP_BELOW))
        .otherwise(F.lit(None).cast("string"))
    )
    out = scored.select(*cols, reason.alias(REASON_COL))
    out = out.persist()
    try:
        agg = out.agg(
            F.sum("clutter_lines_removed").alias("lines_removed"),
            F.avg("quality_score").alias("mean_quality"),
        ).collect()[0]
        ctx.stats.extra["filter"] = {
            "clutter_lines_removed": int(agg["lines_removed"] or 0),
            "mean_quality_score": None if agg["mean_quality"] is None else round(float(agg["mean_quality"]), 4),
            "models": versions,
        }
        ctx.write_documents(out)
    finally:
        out.unpersist()


if __name__ == "__main__":
    main("filter", run)
