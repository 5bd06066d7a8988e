"""Document quality features, synthetic corruptions for training labels, and the decision.

The score targets the criteria of the dots.llm1 report's quality classifier (fluency, coherence,
redundancy, repetition). Dense features are the document statistics the Gopher rules and
RefinedWeb use as hard cut-offs (Rae et al. 2021, "Scaling Language Models", Appendix A: mean word
length, symbol ratio, lines ending in ellipsis/bullets, duplicate lines and paragraphs, top-n-gram
and duplicate-n-gram character fractions), given to the model as soft inputs; hashed word/CJK
unigrams + bigrams carry fluency (shuffled or machine-garbled text has unseen bigrams).

Negatives are made the way quality-classifier papers make them when no human ratings exist
(e.g. the corruption tasks of "Deduplicating Training Data..." and synthetic noise in CCNet-style
filters): word-order shuffles (fluency), sentence shuffles + foreign-line splices (coherence),
repeated lines / n-grams (repetition, redundancy), truncation mid-sentence, and clutter-heavy text.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np

from pipeline.filter.features import Features
from pipeline.filter.text import (
    char_counts,
    cjk_count,
    ends_with_terminal,
    eval_tokens,
    hashed_ngrams,
    tokens,
)

QUALITY_BELOW = "quality_below_threshold"

N_DOC_FEATURES = 24
MAX_DOC_TOKENS = 2048
MAX_DOC_CHARS = 20000


def _dup_ngram_frac(words: list[str], lens: list[int], total: int, n: int) -> float:
    """Gopher: fraction of characters inside n-grams that occur more than once."""
    if len(words) < n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i : i + n] = [True] * n
    return sum(ln for ln, c in zip(lens, covered) if c) / total


def _top_ngram_frac(words: list[str], total: int, n: int) -> float:
    """Gopher: fraction of characters in the most frequent n-gram."""
    if len(words) < n:
        return 0.0
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, c = counts.most_common(1)[0]
    return min(1.0, c * sum(len(w) for w in gram) / total) if c > 1 else 0.0


def doc_features(text: str) -> np.ndarray:
    """Dense features ``[N_DOC_FEATURES]`` of one document."""
    text = text[:MAX_DOC_CHARS]
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    words = eval_tokens(text)
    toks = tokens(text)
    n_chars = max(1, len(text))
    n_words = max(1, len(words))
    line_counts = Counter(lines)
    dup_lines = sum(c for c in line_counts.values() if c > 1)
    dup_line_chars = sum(len(ln) * c for ln, c in line_counts.items() if c > 1)
    cc = char_counts(text)
    letters = cc["letters"]
    lens = [len(w) for w in words]
    total = sum(lens) or 1
    sentences = char_counts(text, {"t": ".!?。！？"})["t"] or 1
    symbols = text.count("#") + text.count("...") + text.count("…")
    bullets = sum(1 for ln in lines if ln[:1] in "-*•·")
    return np.array(
        [
            math.log1p(len(text)),
            math.log1p(len(words)),
            math.log1p(len(lines)),
            sum(lens) / n_words / 10.0,
            len(set(words)) / n_words,
            sum(1 for ln in lines if ends_with_terminal(ln)) / max(1, len(lines)),
            bullets / max(1, len(lines)),
            dup_lines / max(1, len(lines)),
            dup_line_chars / n_chars,
            _top_ngram_frac(words, total, 2),
            _top_ngram_frac(words, total, 3),
            _top_ngram_frac(words, total, 4),
            _dup_ngram_frac(words, lens, total, 5),
            _dup_ngram_frac(words, lens, total, 7),
            _dup_ngram_frac(words, lens, total, 10),
            symbols / n_words,
            letters / n_chars,
            cc["digits"] / n_chars,
            cc["upper"] / max(1, letters),
            cjk_count(text) / n_chars,
            float(ends_with_terminal(text)),
            math.log1p(n_words / sentences),
            (len(toks) - len(words)) / max(1, len(toks)),
            float(np.mean([len(ln) for ln in lines])) / 200.0 if lines else 0.0,
        ],
        dtype=np.float32,
    )


def featurize_docs(texts: list[str], n_buckets: int, labels: list[float] | None = None) -> Features:
    """Model input of a batch of documents (one item per document, no context links)."""
    ids = [hashed_ngrams(tokens(t[:MAX_DOC_CHARS]), n_buckets, MAX_DOC_TOKENS) for t in texts]
    feats = np.stack([doc_features(t) for t in texts]) if texts else np.zeros((0, N_DOC_FEATURES))
    return Features.build(ids, feats, labels=None if labels is None else np.array(labels))


# ---------------------------------------------------------------- synthetic negatives

CORRUPTIONS = ("word_shuffle", "sentence_shuffle", "repeat_lines", "repeat_ngram", "truncate", "splice")


def _split_sentences(text: str) -> list[str]:
    out, cur = [], []
    for ch in text:
        cur.append(ch)
        if ch in ".!?。！？\n":
            s = "".join(cur).strip()
            if s:
                out.append(s)
            cur = []
    tail = "".join(cur).strip()
    if tail:
        out.append(tail)
    return out


def corrupt(text: str, kind: str, rng: random.Random, other: str = "") -> str:
    """A low-quality version of ``text`` (see the module docstring); ``other`` feeds ``splice``."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    cjk = cjk_count(text) > len(text) * 0.3
    if kind == "word_shuffle":
        out = []
        for ln in lines:
            toks = list(ln) if cjk else ln.split()
            rng.shuffle(toks)
            out.append(("" if cjk else " ").join(toks))
        return "\n".join(out)
    if kind == "sentence_shuffle":
        sents = _split_sentences(text.replace("\n", " "))
        rng.shuffle(sents)
        per = max(1, rng.randint(1, 4))
        return "\n".join(" ".join(sents[i : i + per]) for i in range(0, len(sents), per))
    if kind == "repeat_lines":
        if not lines:
            return text
        src = lines[: max(1, rng.randint(1, 3))]
        return "\n".join(lines + src * rng.randint(3, 8))
    if kind == "repeat_ngram":
        words = text.split() if not cjk else list(text.replace("\n", ""))
        if len(words) < 4:
            return text
        i = rng.randrange(0, len(words) - 3)
        gram = words[i : i + rng.randint(2, 4)]
        reps = (" " if not cjk else "").join(gram * rng.randint(10, 30))
        return text + "\n" + reps
    if kind == "truncate":
        cut = rng.randint(max(1, len(text) // 20), max(2, len(text) // 4))
        body = text[:cut].rstrip()
        return body[: max(1, len(body) - rng.randint(1, 5))]
    if kind == "splice":
        olines = [ln for ln in other.split("\n") if ln.strip()] or ["Home | About | Contact"]
        out = []
        for ln in lines:
            out.append(ln)
            if rng.random() < 0.5:
                out.extend(rng.sample(olines, min(len(olines), rng.randint(1, 3))))
        return "\n".join(out)
    raise ValueError(f"unknown corruption {kind!r}; choose one of {CORRUPTIONS}")
