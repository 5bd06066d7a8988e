"""Config section ``clean`` (defaults in ``conf/defaults/clean.yaml``).

Rules are named by their drop reason; thresholds are ``{min, max}`` bounds on the rule's signal
column, a null bound is off. ``lang_rules`` overrides bounds per language (``zh`` counts characters
instead of words, for example), so a new threshold never needs a re-score.
"""

from __future__ import annotations

import dataclasses

from pipeline.clean.text import lang_key
from pipeline.config import register_section


@dataclasses.dataclass
class Bounds:
    """Keep a document when ``min <= signal <= max``; a null bound is not checked."""

    min: float | None = None
    max: float | None = None


@dataclasses.dataclass
class LineDedupConfig:
    """Line-level dedup of the dots.llm1 report: head/tail lines seen too often are deleted."""

    enabled: bool = True
    head_lines: int = 5
    tail_lines: int = 5
    max_occurrences: int = 200
    # A previous run's OUT/_line_counts (Parquet: line_hash, count); its counts are added first, so
    # lines already seen max_occurrences times in an earlier crawl are deleted from this one.
    previous_counts: str | None = None
    # Keep the text of lines over the limit in OUT/_line_counts (column `example`) for inspection.
    store_examples: bool = True


@dataclasses.dataclass
class C4Config:
    """C4 line rules (Raffel et al. 2020, Sec. 2.2): remove javascript and policy/cookie lines."""

    remove_javascript_lines: bool = True
    remove_policy_lines: bool = True
    policy_phrases: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FineWebConfig:
    """FineWeb's line-structure signals (Penedo et al. 2024, Sec. 3.6): the short-line length.

    ``short_line_chars``: a line shorter than this many characters is short (FineWeb: 30, about five
    English words). ``short_line_chars_by_lang``: the length for a language whose characters carry more
    (lid.176 code -> characters): the characters of as many of its words as 30 English characters hold,
    measured on the good dev pages (``python -m bench.filters --short-line-chars``).
    """

    short_line_chars: int = 30
    short_line_chars_by_lang: dict[str, int] = dataclasses.field(default_factory=dict)


def _active(b: Bounds | None) -> bool:
    return b is not None and (b.min is not None or b.max is not None)


def word_rules() -> tuple[str, ...]:
    """Rules whose signal counts words: their English bounds mean something else on jieba tokens."""
    from pipeline.clean.heuristics import RULES, WORD_SIGNALS

    return tuple(r for r, rule in RULES.items() if rule.signal in WORD_SIGNALS)


@register_section("clean")
@dataclasses.dataclass
class CleanConfig:
    line_dedup: LineDedupConfig = dataclasses.field(default_factory=LineDedupConfig)
    c4: C4Config = dataclasses.field(default_factory=C4Config)
    fineweb: FineWebConfig = dataclasses.field(default_factory=FineWebConfig)
    # Languages (lid.176 codes) tokenized into words with jieba; every other language splits on
    # whitespace (Gopher's word definition).
    jieba_langs: list[str] = dataclasses.field(default_factory=lambda: ["zh"])
    jieba_hmm: bool = False
    # Stop-word lists: conf/stopwords/<lang>.txt (relative paths are taken from the repo root).
    stopwords_dir: str = "conf/stopwords"
    rules: dict[str, Bounds] = dataclasses.field(default_factory=dict)
    lang_rules: dict[str, dict[str, Bounds]] = dataclasses.field(default_factory=dict)
    # Output files of the kept documents (null: spark.sql.shuffle.partitions).
    num_files: int | None = None

    def validate(self) -> None:
        from pipeline.clean.heuristics import RULES

        ld = self.line_dedup
        if ld.head_lines < 0 or ld.tail_lines < 0 or ld.head_lines + ld.tail_lines == 0:
            raise ValueError("clean.line_dedup.head_lines/tail_lines must be >= 0 and not both 0")
        if ld.max_occurrences < 1:
            raise ValueError("clean.line_dedup.max_occurrences must be >= 1 (e.g. 200)")
        fw = self.fineweb
        for where, n in [("clean.fineweb.short_line_chars", fw.short_line_chars)] + [
            (f"clean.fineweb.short_line_chars_by_lang.{lang}", n) for lang, n in fw.short_line_chars_by_lang.items()
        ]:
            if n < 1:
                raise ValueError(f"{where}: {n}; give a line length in characters >= 1 (FineWeb: 30)")
        for where, rules in [("clean.rules", self.rules)] + [
            (f"clean.lang_rules.{lang}", r) for lang, r in self.lang_rules.items()
        ]:
            for name, b in rules.items():
                if name not in RULES:
                    raise ValueError(f"{where}.{name}: unknown rule; known rules: {', '.join(sorted(RULES))}")
                if b.min is not None and b.max is not None and b.min > b.max:
                    raise ValueError(f"{where}.{name}: min {b.min} > max {b.max}; swap or null one bound")

        for lang in self.jieba_langs:
            own = self.lang_rules.get(lang, {})
            missing = [r for r in word_rules() if _active(self.rules.get(r)) and r not in own]
            if missing:
                raise ValueError(
                    f"clean.lang_rules.{lang} lacks {', '.join(missing)}: {lang} words are jieba tokens, so the "
                    f"English bounds of clean.rules do not carry over; set each from {lang} data "
                    "(python -m bench.filters --calibrate) or to {} to turn it off for this language"
                )
            if _active(self.bounds_for(lang).get("fineweb_short_lines")) and lang not in fw.short_line_chars_by_lang:
                raise ValueError(
                    f"clean.fineweb.short_line_chars_by_lang lacks {lang}: a {lang} character carries more than "
                    f"a Latin one, so FineWeb's {fw.short_line_chars}-character short line means something else "
                    f"there; set it from {lang} data (python -m bench.filters --short-line-chars) or turn "
                    f"clean.lang_rules.{lang}.fineweb_short_lines off ({{}})"
                )

    def bounds_for(self, lang: str | None) -> dict[str, Bounds]:
        """The rule bounds that apply to documents of language ``lang`` (defaults + overrides).

        The overrides are those of ``lang``'s exact code, else of its base code (:func:`lang_key`)."""
        out = dict(self.rules)
        key = lang_key(lang, self.lang_rules)
        if key is not None:
            out.update(self.lang_rules[key])
        return out
