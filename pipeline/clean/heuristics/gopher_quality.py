"""Gopher quality filters (Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights
from Training Gopher", App. A.1.1), also adopted by RefinedWeb (Penedo et al. 2023, App. G.1).

Signals only; the bounds live in ``conf/defaults/clean.yaml``. English thresholds of the paper:
50 <= words <= 100,000; 3 <= mean word length <= 10; hash and ellipsis symbol-to-word ratios
<= 0.1; <= 90% of lines starting with a bullet; <= 30% of lines ending with an ellipsis;
>= 80% of words with an alphabetic character; >= 2 stop words present.
For Chinese the words are jieba tokens holding a letter or digit (punctuation tokens are not words, so
the alphabetic-word fraction means what it means for English: the share of words that are not numbers
or symbols) and the length rule counts characters instead.
"""

from __future__ import annotations

import re

REASON_SHORT_DOC = "gopher_short_doc"
REASON_LONG_DOC = "gopher_long_doc"
REASON_SHORT_DOC_CHARS = "gopher_short_doc_chars"
REASON_LONG_DOC_CHARS = "gopher_long_doc_chars"
REASON_MEAN_WORD_LENGTH = "gopher_mean_word_length"
REASON_HASH_RATIO = "gopher_hash_ratio"
REASON_ELLIPSIS_RATIO = "gopher_ellipsis_ratio"
REASON_BULLET_LINES = "gopher_bullet_lines"
REASON_ELLIPSIS_LINES = "gopher_ellipsis_lines"
REASON_ALPHA_WORDS = "gopher_alpha_words"
REASON_STOP_WORDS = "gopher_stop_words"

BULLETS = (
    "•",
    "‣",
    "⁃",
    "◦",
    "●",
    "○",
    "■",
    "□",
    "▪",
    "▫",
    "◆",
    "◇",
    "►",
    "▶",
    "➢",
    "✓",
    "✔",
    "·",
    "-",
    "*",
    "–",
    "—",
)
ELLIPSES = ("...", "…")


_ALPHA = re.compile(r"[^\W\d_]")  # a letter (Unicode)
_ALNUM = re.compile(r"[^\W_]")  # a letter or digit (Unicode)
_ALPHA_TOKEN = re.compile(r"\S*[^\W\d_]\S*")  # a whitespace token holding a letter


def quality_signals(
    text: str, toks: list[str], words: list[str], stopwords: frozenset[str], cjk: bool
) -> dict[str, float | None]:
    """Gopher quality signals of one document.

    ``toks``: the document's tokens (whitespace tokens; for ``cjk`` jieba tokens without
    whitespace); ``words``: the normalized words (casefolded, edge punctuation stripped; for
    ``cjk`` the jieba tokens holding a letter or digit). Gopher's word count and mean word length
    use the whitespace tokens; for jieba the punctuation tokens are not words.
    """
    counted = [t for t in toks if _ALNUM.search(t)] if cjk else toks
    n_words = len(counted)
    n_chars = len("".join(text.split()))
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    n_lines = len(lines)
    n_hash = text.count("#")
    n_ellipsis = text.count("...") + text.count("…")
    stop = float(len(set(words) & stopwords)) if stopwords else None  # no list: rule not applied
    if cjk:  # Gopher counts words: jieba's punctuation tokens are not words (CJK characters are letters)
        n_alpha = sum(1 for t in counted if _ALPHA.search(t))
    else:
        n_alpha = len(_ALPHA_TOKEN.findall(text))
    return {
        "n_words": float(n_words),
        "n_chars": float(n_chars),
        "mean_word_length": (sum(map(len, counted)) / n_words) if n_words else 0.0,
        "hash_ratio": n_hash / n_words if n_words else 0.0,
        "ellipsis_ratio": n_ellipsis / n_words if n_words else 0.0,
        "bullet_line_frac": sum(ln.startswith(BULLETS) for ln in lines) / n_lines if n_lines else 0.0,
        "ellipsis_line_frac": sum(ln.endswith(ELLIPSES) for ln in lines) / n_lines if n_lines else 0.0,
        # Gopher: words "with at least one alphabetic character"; for jieba, over the word tokens.
        "alpha_word_frac": (n_alpha / n_words if n_words else 0.0) if cjk else (n_alpha / len(toks) if toks else 0.0),
        "stop_words": stop,
    }
