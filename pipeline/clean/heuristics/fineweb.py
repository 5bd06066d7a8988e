"""FineWeb's line-structure filters (Penedo et al. 2024, "The FineWeb Datasets", Sec. 3.6 "Developing
additional heuristic filters"): a page is dropped when fewer than 12 % of its lines end in terminal
punctuation (``line_punct_frac``, listings and menus), or when more than 67 % of its lines are shorter
than 30 characters (``short_line_frac``, link lists and boilerplate). Signals only; the bounds, per
language, live in ``conf/defaults/clean.yaml``.

The short-line length is a number of characters per language (``clean.fineweb.short_line_chars`` and
``short_line_chars_by_lang``): FineWeb's 30 characters are about five English words, while 30 Chinese
characters are a whole clause of ~14 jieba words, so Chinese has its own length (as many words as 30
English characters).
"""

from __future__ import annotations

REASON_LINE_PUNCT = "fineweb_line_punct"
REASON_SHORT_LINES = "fineweb_short_lines"

# FineWeb's terminal punctuation plus the CJK full stops and closing quotes/brackets after them.
TERMINAL = (".", "!", "?", '"', "'", "…", "。", "！", "？", "”", "’", "」", "』", "）", ")")
SHORT_LINE_CHARS = 30  # FineWeb's constant (English); other lengths per language come from conf


def fineweb_lines(text: str) -> list[str]:
    """The non-empty lines of ``text`` as the FineWeb signals see them: each stripped of whitespace and of
    the ``|`` cell separators trafilatura writes for table rows (layout tables hold the prose of many
    older pages)."""
    lines = [ln.strip().strip("| \t") for ln in text.split("\n")]
    return [ln for ln in lines if ln]


def fineweb_signals(text: str, short_line_chars: int = SHORT_LINE_CHARS) -> dict[str, float]:
    """``line_punct_frac`` and ``short_line_frac`` over the lines of :func:`fineweb_lines`. A line is
    short below ``short_line_chars`` characters (the document language's length,
    :meth:`pipeline.clean.heuristics.HeuristicParams.short_line_chars_for`)."""
    lines = fineweb_lines(text)
    if not lines:
        return {"line_punct_frac": 0.0, "short_line_frac": 0.0}
    n = len(lines)
    return {
        "line_punct_frac": sum(ln.endswith(TERMINAL) for ln in lines) / n,
        "short_line_frac": sum(len(ln) < short_line_chars for ln in lines) / n,
    }
