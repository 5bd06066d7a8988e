"""Gopher repetition filters (Rae et al. 2021, App. A.1.1, Table A1), also used by RefinedWeb.

Duplicate lines / paragraphs: the fraction of lines (paragraphs) that repeat an earlier one, and
the fraction of characters in those repeats; paper thresholds 0.30 / 0.30 / 0.20 / 0.20.
Top n-gram (n = 2, 3, 4): characters covered by the most frequent n-gram over all word characters;
thresholds 0.20, 0.18, 0.16. Duplicate n-grams (n = 5..10): characters of the words covered by any
n-gram occurring more than once; thresholds 0.15, 0.14, 0.13, 0.12, 0.11, 0.10.
Words: whitespace tokens casefolded and stripped of edge punctuation (jieba words for Chinese).
The n-gram counting is vectorized with numpy on 64-bit polynomial n-gram keys.
"""

from __future__ import annotations

import re

import numpy as np

REASON_DUP_LINE_FRAC = "gopher_dup_line_frac"
REASON_DUP_PARA_FRAC = "gopher_dup_para_frac"
REASON_DUP_LINE_CHAR_FRAC = "gopher_dup_line_char_frac"
REASON_DUP_PARA_CHAR_FRAC = "gopher_dup_para_char_frac"
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)
REASON_TOP_NGRAM = {n: f"gopher_top_{n}gram" for n in TOP_NGRAMS}
REASON_DUP_NGRAM = {n: f"gopher_dup_{n}gram" for n in DUP_NGRAMS}

_PARA_SPLIT = re.compile(r"\n\s*\n")
_P = np.uint64(0x9E3779B97F4A7C15)


def _dup_fracs(items: list[str]) -> tuple[float, float]:
    """(fraction of items repeating an earlier item, fraction of characters in those repeats)."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_n = dup_c = total_c = 0
    for it in items:
        total_c += len(it)
        if it in seen:
            dup_n += 1
            dup_c += len(it)
        else:
            seen.add(it)
    return dup_n / len(items), (dup_c / total_c if total_c else 0.0)


def ngram_signals(words: list[str]) -> dict[str, float]:
    """Top n-gram and duplicate n-gram character fractions of a word list."""
    out: dict[str, float] = {}
    m = len(words)
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words), start=1)}
    ids = np.array(list(map(vocab.__getitem__, words)), dtype=np.uint64)
    lens = np.array(list(map(len, words)), dtype=np.int64)
    total = int(lens.sum())
    csum = np.concatenate([[0], np.cumsum(lens)])
    keys = ids.copy()
    for n in range(2, max(DUP_NGRAMS) + 1):
        if m < n or total == 0:
            if n in TOP_NGRAMS:
                out[f"top_{n}gram_char_frac"] = 0.0
            if n in DUP_NGRAMS:
                out[f"dup_{n}gram_char_frac"] = 0.0
            continue
        keys = keys[:-1] * _P + ids[n - 1 :]  # key of words[i:i+n], wrapping mod 2^64
        uniq, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
        if n in TOP_NGRAMS:
            best = int(np.argmax(counts))
            c = int(counts[best])
            if c > 1:
                start = int(np.flatnonzero(inv == best)[0])
                chars = int(csum[start + n] - csum[start])
                out[f"top_{n}gram_char_frac"] = min(1.0, chars * c / total)
            else:
                out[f"top_{n}gram_char_frac"] = 0.0
        if n in DUP_NGRAMS:
            dup_start = (counts[inv] > 1).astype(np.int64)
            # word i is covered when some duplicated n-gram starts in [i-n+1, i]
            cover = np.convolve(dup_start, np.ones(n, dtype=np.int64))[:m] > 0
            out[f"dup_{n}gram_char_frac"] = float(lens[cover].sum()) / total
    return out


def repetition_signals(text: str, words: list[str]) -> dict[str, float]:
    """All Gopher repetition signals of a document (``words``: normalized words)."""
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    paras = [p.strip() for p in _PARA_SPLIT.split(text)]
    paras = [p for p in paras if p]
    dl, dlc = _dup_fracs(lines)
    dp, dpc = _dup_fracs(paras)
    out = {
        "dup_line_frac": dl,
        "dup_para_frac": dp,
        "dup_line_char_frac": dlc,
        "dup_para_char_frac": dpc,
    }
    out.update(ngram_signals(words))
    return out
