"""Tokenization and feature hashing shared by the clutter and quality models (plain Python + NumPy).

Tokens: every CJK/kana/hangul character is one token (no segmenter needed, as in the character
n-gram features of Chinese text classifiers), other scripts split into alphanumeric runs, and each
punctuation/symbol character is a token of its own. Digits are folded to ``0`` for hashing so
dates and prices share buckets. Hashed n-gram features are the "hashing trick" of fastText
(Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification"): unigrams + bigrams into a
fixed number of buckets, with CRC32 as a stable hash (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

import numpy as np

CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{CJK_CLASS}]")
_TOKEN_RE = re.compile(f"[{CJK_CLASS}]|[^\\W_{CJK_CLASS}]+|[^\\w\\s]", re.UNICODE)
_WORD_RE = re.compile(f"[{CJK_CLASS}]|[^\\W_{CJK_CLASS}]+", re.UNICODE)
_DIGIT_RE = re.compile(r"\d")

# Sentence-final punctuation in Latin and CJK text (closing quotes/brackets allowed after it).
TERMINALS = ".!?。！？…"
_TERMINAL_RE = re.compile(r"[.!?。！？…][\"'”’»)）\]】」』]*\s*$")


def tokens(text: str) -> list[str]:
    """Words, CJK characters and punctuation characters, in order (case kept)."""
    return _TOKEN_RE.findall(text)


def eval_tokens(text: str) -> list[str]:
    """Lower-cased words and CJK characters, punctuation dropped: the unit of token P/R/F1."""
    return [t.lower() for t in _WORD_RE.findall(text)]


def cjk_count(text: str) -> int:
    return len(_CJK_RE.findall(text))


def ends_with_terminal(line: str) -> bool:
    return bool(_TERMINAL_RE.search(line))


def _bucket(s: str, n_buckets: int) -> int:
    return zlib.crc32(s.encode("utf-8")) % n_buckets


# Memo tables (identical results, fewer crc32/lower/regex calls: web text is Zipfian). Bounded: cleared
# when they grow past _MEMO_MAX entries, so a long-lived Spark worker does not grow without limit.
_MEMO_MAX = 1 << 20
_NORM: dict[str, str] = {}
_BUCKETS: dict[int, dict[str, int]] = {}


def _norm_token(t: str) -> str:
    n = _NORM.get(t)
    if n is None:
        if len(_NORM) > _MEMO_MAX:
            _NORM.clear()
        n = _NORM[t] = _DIGIT_RE.sub("0", t.lower())
    return n


def _bucket_memo(s: str, n_buckets: int, memo: dict[str, int]) -> int:
    b = memo.get(s)
    if b is None:
        if len(memo) > _MEMO_MAX:
            memo.clear()
        b = memo[s] = zlib.crc32(s.encode("utf-8")) % n_buckets
    return b


def hashed_ngrams(toks: list[str], n_buckets: int, max_tokens: int, markers: bool = False) -> list[int]:
    """Bucket ids of the unigrams and bigrams of ``toks[:max_tokens]`` (lower-cased, digits -> 0).

    ``markers`` adds ``^first`` / ``last$`` tokens so the model can see how a line starts and ends
    (navigation lines start with ``Home``, copyright lines with ``©``), as boundary markers in
    fastText's character n-grams do.
    """
    memo = _BUCKETS.setdefault(n_buckets, {})
    norm = [_norm_token(t) for t in toks[:max_tokens]]
    out = [_bucket_memo("u:" + t, n_buckets, memo) for t in norm]
    out.extend(_bucket_memo("b:" + a + " " + b, n_buckets, memo) for a, b in zip(norm, norm[1:]))
    if markers and norm:
        out.append(_bucket("^" + norm[0], n_buckets))
        out.append(_bucket(norm[-1] + "$", n_buckets))
    if not out:
        out.append(_bucket("<empty>", n_buckets))
    return out


def char_counts(text: str, classes: dict[str, str] | None = None) -> dict[str, int]:
    """Counts of letters, upper-case, digit and whitespace characters, plus, for each ``name: chars``
    of ``classes``, the characters of ``text`` found in ``chars``. One C-level ``Counter`` pass, then a
    loop over distinct characters only (same numbers as per-character ``str.isalpha()``... sums)."""
    out = {"letters": 0, "upper": 0, "digits": 0, "spaces": 0}
    classes = classes or {}
    for name in classes:
        out[name] = 0
    for c, n in Counter(text).items():
        if c.isalpha():
            out["letters"] += n
        if c.isupper():
            out["upper"] += n
        if c.isdigit():
            out["digits"] += n
        if c.isspace():
            out["spaces"] += n
        for name, chars in classes.items():
            if c in chars:
                out[name] += n
    return out


def token_prf(pred: str, gold: str) -> tuple[int, int, int]:
    """Bag-of-tokens overlap ``(tp, n_pred, n_gold)`` as in the CleanEval / article-extraction
    benchmarks: the multiset intersection of :func:`eval_tokens` of both texts."""
    p = Counter(eval_tokens(pred))
    g = Counter(eval_tokens(gold))
    tp = sum((p & g).values())
    return tp, sum(p.values()), sum(g.values())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists, exact, by the bit-parallel
    algorithm of Hyyrö 2004 ("Bit-parallel LCS-length computation revisited"): one row of the dynamic
    programme is a ``len(b)``-bit integer ``V``; per token of ``a`` with match mask ``M``,
    ``U = V & M; V = (V + U) | (V - U)``; the LCS is the number of zero bits of ``V``."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for j, t in enumerate(b):
        masks[t] = masks.get(t, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for t in a:
        m = masks.get(t)
        if m is not None:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def token_prf_aligned(pred: str, gold: str) -> tuple[int, int, int]:
    """``(tp, n_pred, n_gold)`` where ``tp`` counts the tokens of the longest common subsequence of the
    two token sequences: tokens match only in order, as in CleanEval's alignment-based scoring (Baroni
    et al. 2008), so a clutter line's common words (or, in Chinese, its characters) no longer match gold
    tokens elsewhere in the page the way they do in the bag-of-tokens overlap of :func:`token_prf`."""
    p, g = eval_tokens(pred), eval_tokens(gold)
    return lcs_length(p, g), len(p), len(g)


def prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney U) formula, ties given average ranks."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both positive and negative labels")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
