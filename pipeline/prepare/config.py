"""Config section ``prepare`` (defaults in conf/defaults/prepare.yaml)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.config import REPO_ROOT, register_section


@register_section("prepare")
@dataclasses.dataclass
class PrepareConfig:
    # --- WARC reading
    max_record_bytes: int = 5_000_000
    on_unreadable: str = "fail"  # fail | drop: a WARC still unreadable after the storage retries
    accept_content_types: list[str] = dataclasses.field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"]
    )
    sniff_untyped: bool = True
    allow_non_http_urls: bool = False
    # --- charset
    charset_detector: str = "charset_normalizer"
    # --- URL filter (RefinedWeb-style)
    blocklist_domain_files: list[str] = dataclasses.field(default_factory=list)
    blocklist_url_keyword_files: list[str] = dataclasses.field(default_factory=list)
    url_keyword_min_hits: int = 1
    # --- extraction
    extract_timeout_s: float = 10.0
    favor_precision: bool = True
    include_tables: bool = True
    fast: bool = False
    fast_xpaths: bool = True
    min_text_chars: int = 1
    # --- language ID
    lang_model: str = ""
    lang_threshold: float = 0.65
    keep_langs: list[str] = dataclasses.field(default_factory=lambda: ["zh", "en"])
    lang_sample_chars: int = 2000
    lang_prefilter_threshold: float = 0.95
    # --- output
    num_files: int = 8

    def resolve(self, p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else REPO_ROOT / path

    def validate(self) -> None:
        if not 0.0 <= self.lang_threshold <= 1.0:
            raise ValueError(f"prepare.lang_threshold={self.lang_threshold} must be in [0, 1]")
        if not 0.0 <= self.lang_prefilter_threshold <= 1.0:
            raise ValueError("prepare.lang_prefilter_threshold must be in [0, 1] (0 disables the pre-filter)")
        if self.extract_timeout_s <= 0:
            raise ValueError("prepare.extract_timeout_s must be > 0 (seconds per document)")
        if self.charset_detector not in ("charset_normalizer", "none"):
            raise ValueError("prepare.charset_detector must be 'charset_normalizer' or 'none'")
        for f in self.blocklist_domain_files + self.blocklist_url_keyword_files:
            if not self.resolve(f).exists():
                raise ValueError(f"URL blocklist file {f} does not exist; fix prepare.blocklist_* in the config")
        if self.lang_model and not self.resolve(self.lang_model).exists():
            raise ValueError(f"prepare.lang_model={self.lang_model} does not exist; leave it empty for lid.176")
        if self.on_unreadable not in ("fail", "drop"):
            raise ValueError(f"prepare.on_unreadable={self.on_unreadable!r} must be 'fail' or 'drop'")
        if self.num_files < 1:
            raise ValueError("prepare.num_files must be >= 1")
