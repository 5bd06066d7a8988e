"""FineWeb's line-structure filters (Penedo et al. 2024, "The FineWeb Datasets", Sec. 3.6 "Developing
additional heuristic filters"): a page is dropped when fewer than 12 % of its lines end in terminal
punctuation (``line_punct_frac``, listings and menus), or when more than 67 % of its lines are shorter
than 30 characters (``short_line_frac``, link lists and boilerplate). Signals only; the bounds, per
language, live in ``conf/defaults/clean.yaml`` (a Chinese character carries more than a Latin one, so
Chinese needs its own bounds).
"""

from __future__ import annotations

REASON_LINE_PUNCT = "fineweb_line_punct"
REASON_SHORT_LINES = "fineweb_short_lines"

# FineWeb's terminal punctuation plus the CJK full stops and closing quotes/brackets after them.
TERMINAL = (".", "!", "?", '"', "'", "…", "。", "！", "？", "”", "’", "」", "』", "）", ")")
SHORT_LINE_CHARS = 30


def fineweb_signals(text: str) -> dict[str, float]:
    """``line_punct_frac`` and ``short_line_frac`` over the non-empty lines of ``text``, each stripped of
    whitespace and of the ``|`` cell separators trafilatura writes for table rows (layout tables hold the
    prose of many older pages)."""
    lines = [ln.strip().strip("| \t") for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        return {"line_punct_frac": 0.0, "short_line_frac": 0.0}
    n = len(lines)
    return {
        "line_punct_frac": sum(ln.endswith(TERMINAL) for ln in lines) / n,
        "short_line_frac": sum(len(ln) < SHORT_LINE_CHARS for ln in lines) / n,
    }
