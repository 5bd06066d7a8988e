"""The ``filter`` stage's drop decision as plain Python: :mod:`jobs.filter` calls :func:`filter_reason`
on every document of each Arrow batch, and ``bench.filters`` calls it on the labelled pages.

Order: a row without text (``error_filter_null_text``), then no line left after clutter removal
(:data:`~pipeline.filter.clutter.CLUTTER_EMPTY`), then a quality score below the document language's
threshold (:data:`~pipeline.filter.quality.QUALITY_BELOW`; ``filter.quality.threshold_by_lang``
overrides ``filter.quality.threshold``), then a keep score below the language's keep threshold
(:data:`~pipeline.filter.keepscore.KEEP_BELOW`; a null threshold only scores). A missing score (model
off) never drops.
"""

from __future__ import annotations

import math

from pipeline.filter.clutter import CLUTTER_EMPTY
from pipeline.filter.config import lang_threshold
from pipeline.filter.keepscore import KEEP_BELOW
from pipeline.filter.quality import QUALITY_BELOW

NULL_TEXT = "error_filter_null_text"


def filter_reason(
    text: str | None,
    text_clean: str | None,
    quality_score: float | None,
    lang: str | None,
    threshold: float,
    threshold_by_lang: dict[str, float] | None = None,
    keep_score: float | None = None,
    keep_threshold: float | None = None,
) -> str | None:
    """The filter stage's drop reason of one document, or None when it is kept."""
    if text is None:
        return NULL_TEXT
    if not (text_clean or "").strip():
        return CLUTTER_EMPTY
    if quality_score is not None and not math.isnan(quality_score):
        if quality_score < lang_threshold(threshold, threshold_by_lang or {}, lang):
            return QUALITY_BELOW
    if keep_threshold is not None and keep_score is not None and not math.isnan(keep_score):
        if keep_score < keep_threshold:
            return KEEP_BELOW
    return None
