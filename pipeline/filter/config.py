"""Config section ``filter`` (defaults in ``conf/defaults/filter.yaml``)."""

from __future__ import annotations

import dataclasses

from pipeline.config import register_section

DEVICES = ("auto", "cpu", "cuda")


@dataclasses.dataclass
class ClutterSection:
    """Line-level web-clutter model: lines scoring below ``threshold`` are removed."""

    enabled: bool = True
    model: str = "models/clutter"
    threshold: float = 0.5
    # Per-language thresholds (lid.176 codes) override ``threshold``.
    threshold_by_lang: dict[str, float] = dataclasses.field(default_factory=dict)
    batch_lines_cpu: int = 8192
    batch_lines_gpu: int = 65536


@dataclasses.dataclass
class QualitySection:
    """Document quality model: documents scoring below ``threshold`` are dropped."""

    enabled: bool = True
    model: str = "models/quality"
    threshold: float = 0.5
    threshold_by_lang: dict[str, float] = dataclasses.field(default_factory=dict)
    batch_docs_cpu: int = 256
    batch_docs_gpu: int = 1024


@dataclasses.dataclass
class KeepSection:
    """Keep score (``pipeline.filter.keepscore``, artifact ``models/keep``): documents scoring below the
    threshold of their language are dropped; a null threshold only scores."""

    enabled: bool = True
    model: str = "models/keep"
    threshold: float | None = None
    # Per-language thresholds (lid.176 codes) override ``threshold``; null = score only for that language.
    threshold_by_lang: dict[str, float | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class CategorySection:
    """200-class category model (``models/category``): scores only, no threshold here."""

    enabled: bool = True
    model: str | None = None  # None: the package's default artifact
    batch_docs_cpu: int = 256
    batch_docs_gpu: int = 1024


@register_section("filter")
@dataclasses.dataclass
class FilterConfig:
    """``arrow_max_records_per_batch`` is set as ``spark.sql.execution.arrow.maxRecordsPerBatch`` while
    the filter UDF runs: one Arrow batch is the most documents a UDF call sees, so the documents batch
    sizes of the models may not exceed it."""

    device: str = "auto"
    arrow_max_records_per_batch: int = 1024
    clutter: ClutterSection = dataclasses.field(default_factory=ClutterSection)
    quality: QualitySection = dataclasses.field(default_factory=QualitySection)
    category: CategorySection = dataclasses.field(default_factory=CategorySection)
    keep: KeepSection = dataclasses.field(default_factory=KeepSection)

    def validate(self) -> None:
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"filter.device={self.device!r}: use one of {DEVICES} or cuda:N")
        if self.arrow_max_records_per_batch < 1:
            raise ValueError("filter.arrow_max_records_per_batch must be >= 1")
        for sec, name in ((self.clutter, "clutter"), (self.quality, "quality")):
            for lang, t in {"": sec.threshold, **sec.threshold_by_lang}.items():
                if not 0.0 <= t <= 1.0:
                    key = f"filter.{name}.threshold" + (f"_by_lang.{lang}" if lang else "")
                    raise ValueError(f"{key}={t} must lie in [0, 1]")
        for lang, t in {"": self.keep.threshold, **self.keep.threshold_by_lang}.items():
            if t is not None and not 0.0 <= t <= 1.0:
                key = "filter.keep.threshold" + (f"_by_lang.{lang}" if lang else "")
                raise ValueError(f"{key}={t} must lie in [0, 1] (or null: score only)")
        sizes = {
            "filter.clutter.batch_lines_cpu": self.clutter.batch_lines_cpu,
            "filter.clutter.batch_lines_gpu": self.clutter.batch_lines_gpu,
            "filter.quality.batch_docs_cpu": self.quality.batch_docs_cpu,
            "filter.quality.batch_docs_gpu": self.quality.batch_docs_gpu,
            "filter.category.batch_docs_cpu": self.category.batch_docs_cpu,
            "filter.category.batch_docs_gpu": self.category.batch_docs_gpu,
        }
        for key, v in sizes.items():
            if v < 1:
                raise ValueError(f"{key}={v} must be >= 1")
            if key.startswith(("filter.quality", "filter.category")) and v > self.arrow_max_records_per_batch:
                raise ValueError(
                    f"{key}={v} exceeds filter.arrow_max_records_per_batch="
                    f"{self.arrow_max_records_per_batch}: a model batch never spans Arrow batches, so raise "
                    f"filter.arrow_max_records_per_batch to at least {v} (or lower {key})"
                )


def lang_threshold(default: float, by_lang: dict[str, float], lang: str | None) -> float:
    return by_lang.get(lang or "", default)


def keep_threshold(fk: KeepSection, lang: str | None) -> float | None:
    """The keep-score threshold of documents in ``lang`` (None: never dropped by the keep score)."""
    if not fk.enabled:
        return None
    key = lang or ""
    return fk.threshold_by_lang[key] if key in fk.threshold_by_lang else fk.threshold
