"""Line-level web-clutter features and the cleaning decision (plain Python).

Each non-blank line of trafilatura's output becomes one item: hashed word/CJK-character unigrams
and bigrams with start/end markers, plus dense features of the line and its context. The dense
features follow the shallow text features that boilerplate detectors found decisive: line length,
link-like and separator characters, sentence-final punctuation, capitalisation and the position of
the block in the page (Kohlschütter et al. 2010, "Boilerplate Detection using Shallow Text
Features"; CleanEval 2007; jusText's length/stopword classes). The model also sees the embeddings of
the previous and next lines (``Features.prev/next``), so a short line between two paragraphs is judged
differently from a short line inside a menu.

The decision: a line is kept when its score ``>= threshold``; the cleaned text is the kept lines in
order; a document with no line left is dropped as :data:`CLUTTER_EMPTY`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from pipeline.filter.features import Features
from pipeline.filter.text import char_counts, cjk_count, ends_with_terminal, hashed_ngrams, tokens

# Drop reasons of this family.
CLUTTER_EMPTY = "clutter_empty_after_removal"

_SEPARATORS = "|»«·•/>›‹–—:;"
_CLASSES = {"seps": _SEPARATORS, "terminals": ".!?。！？"}
_BULLET_RE = re.compile(r"^\s*([-*•·▪►◦]|\d+[.)]\s)")
_URL_RE = re.compile(r"https?://|www\.|\.com\b|@\w+\.", re.IGNORECASE)
_COPYRIGHT_RE = re.compile(r"©|\(c\)|copyright|all rights reserved|版权所有", re.IGNORECASE)
_DATE_RE = re.compile(r"\b(19|20)\d\d\b|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}年")

N_LINE_FEATURES = 32
MAX_LINE_TOKENS = 64


def split_lines(text: str) -> list[str]:
    """The non-blank lines of ``text`` (stripped of trailing whitespace)."""
    return [ln.rstrip() for ln in text.split("\n") if ln.strip()]


def _line_stats(line: str) -> dict[str, float]:
    toks = tokens(line)
    n_chars = len(line)
    cc = char_counts(line, _CLASSES)
    letters, upper, digits, spaces = cc["letters"], cc["upper"], cc["digits"], cc["spaces"]
    cjk = cjk_count(line)
    punct = n_chars - letters - digits - spaces
    words = [t for t in toks if t[0].isalnum()]
    title = sum(1 for w in words if w[0].isupper())
    seps = cc["seps"]
    terminals = cc["terminals"]
    return {
        "n_chars": n_chars,
        "n_tokens": len(toks),
        "n_words": len(words),
        "alpha": letters / max(1, n_chars),
        "upper": upper / max(1, letters),
        "digit": digits / max(1, n_chars),
        "punct": punct / max(1, n_chars),
        "cjk": cjk / max(1, n_chars),
        "title": title / max(1, len(words)),
        "seps": seps,
        "terminals": terminals,
        "mean_word": sum(len(w) for w in words) / max(1, len(words)),
        "terminal_end": float(ends_with_terminal(line)),
    }


def line_features(lines: list[str]) -> np.ndarray:
    """Dense features ``[len(lines), N_LINE_FEATURES]`` of the lines of one document."""
    n = len(lines)
    out = np.zeros((n, N_LINE_FEATURES), dtype=np.float32)
    if n == 0:
        return out
    stats = [_line_stats(ln) for ln in lines]
    log_len = np.array([math.log1p(s["n_chars"]) for s in stats], dtype=np.float32)
    max_len = max(s["n_chars"] for s in stats) or 1
    counts: dict[str, int] = {}
    for ln in lines:
        key = ln.strip().lower()
        counts[key] = counts.get(key, 0) + 1
    doc_chars = sum(s["n_chars"] for s in stats) or 1
    for i, (ln, s) in enumerate(zip(lines, stats)):
        prev = stats[i - 1] if i > 0 else None
        nxt = stats[i + 1] if i + 1 < n else None
        stripped = ln.strip()
        out[i] = [
            i / max(1, n - 1),
            float(i == 0),
            float(i == n - 1),
            math.log1p(i),
            math.log1p(n - 1 - i),
            math.log1p(n),
            log_len[i],
            math.log1p(s["n_words"]),
            s["alpha"],
            s["upper"],
            s["digit"],
            s["punct"],
            s["cjk"],
            s["title"],
            math.log1p(s["seps"]),
            s["terminals"] / max(1, s["n_tokens"]),
            s["mean_word"] / 10.0,
            s["terminal_end"],
            float(stripped.endswith(":")),
            float(bool(_BULLET_RE.match(ln))),
            float(bool(_URL_RE.search(ln))),
            float(bool(_COPYRIGHT_RE.search(ln))),
            float(bool(_DATE_RE.search(ln))),
            float(counts[stripped.lower()] > 1),
            s["n_chars"] / max_len,
            s["n_chars"] / doc_chars,
            float(log_len.mean()),
            math.log1p(prev["n_chars"]) if prev else 0.0,
            math.log1p(nxt["n_chars"]) if nxt else 0.0,
            prev["terminal_end"] if prev else 0.0,
            nxt["terminal_end"] if nxt else 0.0,
            float(stripped.isupper() and s["n_words"] > 0),
        ]
    return out


def featurize_doc(lines: list[str], n_buckets: int, labels: list[float] | None = None) -> Features:
    """Model input of one document's lines; ``prev/next`` link neighbouring lines."""
    n = len(lines)
    ids = [hashed_ngrams(tokens(ln), n_buckets, MAX_LINE_TOKENS, markers=True) for ln in lines]
    idx = np.arange(n, dtype=np.int64)
    prev = idx - 1
    nxt = np.where(idx + 1 < n, idx + 1, -1)
    return Features.build(ids, line_features(lines), prev, nxt, None if labels is None else np.array(labels))


def clean_lines(lines: list[str], scores: np.ndarray | list[float], threshold: float) -> tuple[str, int]:
    """Keep lines scoring ``>= threshold``; returns ``(cleaned_text, removed_line_count)``."""
    if len(lines) != len(scores):
        raise ValueError(f"{len(lines)} lines but {len(scores)} scores")
    kept = [ln for ln, s in zip(lines, scores) if s >= threshold]
    return "\n".join(kept), len(lines) - len(kept)
