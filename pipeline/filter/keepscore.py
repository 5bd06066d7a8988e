"""Keep score: a logistic regression over the signals clean and filter already compute.

The score is the probability that an annotator keeps the document (``data/labels/GUIDELINE.md``). Its
inputs are the clean stage's Gopher / C4 / FineWeb signals (the ``h_*`` columns, or recomputed from
the text with :func:`pipeline.clean.heuristics.score_document` when a table lacks them), the quality
score, the clutter model's removed-line fraction, and line statistics of the text the filter keeps
(table rows, title-case words, digits, link and date lines) and a small hashed bag of words: the cues of listings,
navigation and short teaser posts that the single-signal rules miss. Combining the rule signals in
one learned model follows the classifier stage of quality filters such as CCNet's and RefinedWeb's
ablations (one score, a threshold chosen on labelled data); here the model is deliberately small
(a linear model, standardized inputs) because the labelled set is ~1,500 pages per split.

Score first, decide later: the filter stage writes ``keep_score`` and drops a document below
``filter.keep.threshold`` (per language: ``threshold_by_lang``; null = score only) with the reason
:data:`KEEP_BELOW`. Inference is float64 numpy on one document at a time, so the score does not depend
on batching. Artifact: ``models/keep/`` (``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``),
trained by ``python -m bench.filters --train-keep OUT`` on the dev split.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

KEEP_BELOW = "keep_score_below_threshold"

# clean-stage signals used as inputs (h_<name> columns); javascript/policy line counts are left out:
# the filter's input text has those lines removed already, so they cannot be recomputed from it.
SIGNAL_INPUTS: tuple[str, ...] = (
    "mean_word_length", "hash_ratio", "ellipsis_ratio", "bullet_line_frac", "ellipsis_line_frac",
    "alpha_word_frac", "dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac",
    "top_2gram_char_frac", "top_3gram_char_frac", "top_4gram_char_frac",
    "dup_5gram_char_frac", "dup_6gram_char_frac", "dup_7gram_char_frac", "dup_8gram_char_frac",
    "dup_9gram_char_frac", "dup_10gram_char_frac", "line_punct_frac", "short_line_frac",
)
LOG_SIGNAL_INPUTS: tuple[str, ...] = ("n_words", "n_chars", "stop_words", "curly_braces")

_DIGIT = re.compile(r"\d")
_TITLE = re.compile(r"^[A-Z][a-z]")
_DATE = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}\b|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"
    r"|\b(?:19|20)\d\d\b|\d{1,2}:\d\d|\d+年\d+月", re.I)
_URL = re.compile(r"https?://|www\.|\.(?:com|org|net|html?)\b", re.I)
_PRICE = re.compile(r"[$£€¥] ?\d|\d ?(?:元|美元|usd|eur)\b", re.I)
_TERMINAL = ("."
             , "!", "?", "\"", "'", "”", "’", "。", "！", "？", "」", "』", ")", "）")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

LINE_INPUTS: tuple[str, ...] = (
    "table_line_frac",       # lines starting or ending with "|" (extracted tables, layout grids)
    "pipe_per_line",         # "|" characters per line
    "title_word_frac",       # words in title case (headline lists, menus)
    "digit_char_frac",       # digits among non-space characters
    "date_line_frac",        # lines holding a date or time (calendars, archives, listings)
    "url_line_frac",         # lines holding a URL or domain
    "price_line_frac",       # lines holding a price
    "log_lines",             # log(1 + non-empty lines)
    "log_mean_line_chars",   # log(1 + mean characters per line)
    "long_line_frac",        # lines of >= 200 characters (paragraphs of prose)
    "sentence_words",        # words per sentence-ending punctuation mark, log
    "no_terminal_long_frac", # lines of >= 60 characters not ending in punctuation (teasers, rows)
    "cjk_char_frac",         # CJK characters among non-space characters
)
MODEL_INPUTS: tuple[str, ...] = ("quality_score", "quality_missing", "clutter_removed_frac")
# Hashed word unigrams (fastText-style bag, Joulin et al. 2017): lowercased \w+ tokens, CRC-32 modulo
# HASH_BUCKETS, log(1 + count) / log(1 + tokens). They carry the vocabulary of junk pages (prices,
# "register", "archives", "posted by") that no single statistic sees.
HASH_BUCKETS = 512
FEATURES: tuple[str, ...] = (*SIGNAL_INPUTS, *(f"log_{s}" for s in LOG_SIGNAL_INPUTS), *LINE_INPUTS, *MODEL_INPUTS,
                             *(f"hash_{i}" for i in range(HASH_BUCKETS)))
_WORD = re.compile(r"\w+")


def _lines_matching(pattern: re.Pattern, text: str, starts: list[int], nonempty: set[int]) -> int:
    """How many non-empty lines hold a match (one pass over the whole text; no pattern spans a newline)."""
    return len({bisect.bisect_right(starts, m.start()) - 1 for m in pattern.finditer(text)} & nonempty)


def line_stats(text: str) -> dict[str, float]:
    """The :data:`LINE_INPUTS` of one text (the text the filter keeps after clutter removal)."""
    raw = text.split("\n")
    starts, pos = [], 0
    for ln in raw:
        starts.append(pos)
        pos += len(ln) + 1
    nonempty = {i for i, ln in enumerate(raw) if ln.strip()}
    lines = [raw[i].strip() for i in sorted(nonempty)]
    n = len(lines)
    chars = "".join(text.split())
    nc = len(chars)
    words = text.split()
    nw = len(words)
    if n == 0:
        return {k: 0.0 for k in LINE_INPUTS}
    ends = sum(text.count(p) for p in (".", "!", "?", "。", "！", "？"))
    return {
        "table_line_frac": sum(ln.startswith("|") or ln.endswith("|") for ln in lines) / n,
        "pipe_per_line": math.log1p(text.count("|") / n),
        "title_word_frac": sum(bool(_TITLE.match(w)) for w in words) / nw if nw else 0.0,
        "digit_char_frac": len(_DIGIT.findall(chars)) / nc if nc else 0.0,
        "date_line_frac": _lines_matching(_DATE, text, starts, nonempty) / n,
        "url_line_frac": _lines_matching(_URL, text, starts, nonempty) / n,
        "price_line_frac": _lines_matching(_PRICE, text, starts, nonempty) / n,
        "log_lines": math.log1p(n),
        "log_mean_line_chars": math.log1p(nc / n),
        "long_line_frac": sum(len(ln) >= 200 for ln in lines) / n,
        "sentence_words": math.log1p(nw / (ends + 1)),
        "no_terminal_long_frac": sum(len(ln) >= 60 and not ln.endswith(_TERMINAL) for ln in lines) / n,
        "cjk_char_frac": len(_CJK.findall(chars)) / nc if nc else 0.0,
    }


def hashed_words(text: str, buckets: int = HASH_BUCKETS) -> np.ndarray:
    """Bag of hashed lowercased word unigrams, ``log1p(count) / log1p(n_tokens)``."""
    out = np.zeros(buckets, dtype=np.float64)
    toks = _WORD.findall(text.lower())
    if not toks:
        return out
    idx = np.fromiter((zlib.crc32(t.encode("utf-8")) % buckets for t in toks), dtype=np.int64, count=len(toks))
    out += np.bincount(idx, minlength=buckets)
    return np.log1p(out) / math.log1p(len(toks))


def _num(v: float | None) -> float:
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def feature_vector(signals: Mapping[str, float | None], text_clean: str, quality: float | None,
                   lines_removed: int, lines_in: int) -> np.ndarray:
    """The :data:`FEATURES` of one document (float64). ``signals``: the clean stage's signals;
    ``text_clean``: the text after clutter removal; ``lines_in``: non-empty lines before it."""
    q_missing = quality is None or (isinstance(quality, float) and math.isnan(quality))
    ls = line_stats(text_clean)
    vals = [_num(signals.get(s)) for s in SIGNAL_INPUTS]
    vals += [math.log1p(max(0.0, _num(signals.get(s)))) for s in LOG_SIGNAL_INPUTS]
    vals += [ls[k] for k in LINE_INPUTS]
    vals += [0.0 if q_missing else float(quality), 1.0 if q_missing else 0.0,
             lines_removed / lines_in if lines_in else 0.0]
    return np.concatenate([np.asarray(vals, dtype=np.float64), hashed_words(text_clean)])


def nonempty_lines(text: str) -> int:
    return sum(1 for ln in text.split("\n") if ln.strip())


# ---------------------------------------------------------------- model


class KeepModel:
    """Standardize, then a logistic regression: ``sigmoid(w . (x - mean) / scale + b)``."""

    def __init__(self, weights: np.ndarray, bias: float, mean: np.ndarray, scale: np.ndarray,
                 features: Sequence[str] = FEATURES, version: str = "keep-untrained", meta: dict | None = None):
        if not (len(weights) == len(mean) == len(scale) == len(features)):
            raise ValueError(f"keep model: {len(weights)} weights, {len(mean)} means, {len(scale)} scales for "
                             f"{len(features)} features; the artifact is inconsistent")
        if tuple(features) != FEATURES:
            raise ValueError("keep model: its features differ from pipeline.filter.keepscore.FEATURES; retrain it "
                             "with python -m bench.filters --train-keep DIR")
        self.w = np.asarray(weights, dtype=np.float64)
        self.b = float(bias)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.features = tuple(features)
        self.version = version
        self.meta = meta or {}

    def score(self, x: np.ndarray) -> np.ndarray:
        """Keep probability of each row of ``x`` ([n, F] or [F]); row by row, so batching cannot change it."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        z = np.array([float(np.dot((row - self.mean) / self.scale, self.w)) + self.b for row in x])
        return 1.0 / (1.0 + np.exp(-z))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, sample_weight: np.ndarray | None = None,
                 iters: int = 100) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2-regularized logistic regression by Newton's method (deterministic: no random start, no
    shuffling). Returns ``(weights, bias, mean, scale)`` on standardized inputs."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(z @ beta)))
        g = z.T @ (sw * (p - y)) + reg * beta
        h = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(h, g)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:-1], float(beta[-1]), mean, scale


# ---------------------------------------------------------------- artifact

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save(model: KeepModel, out_dir: str | Path, meta: dict, date: str) -> str:
    """Write ``model.safetensors`` (float64 tensors) + ``config.json``; returns the version
    ``keep-<date>-<sha256 of the tensors>[:8]``."""
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {"weights": model.w, "bias": np.array([model.b]), "mean": model.mean, "scale": model.scale}
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(np.ascontiguousarray(tensors[k], dtype=np.float64).tobytes())
    version = f"keep-{date}-{h.hexdigest()[:8]}"
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()}, str(out / WEIGHTS))
    cfg = {"arch": "standardized logistic regression", "version": version, "features": list(model.features), **meta}
    (out / CONFIG).write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return version


def load(model_dir: str | Path) -> KeepModel:
    """Load an artifact written by :func:`save` (repo-relative paths are taken from the repo root)."""
    from safetensors.numpy import load_file

    from pipeline.config import REPO_ROOT

    d = Path(model_dir)
    if not d.is_absolute() and not d.exists():
        d = REPO_ROOT / d
    if not (d / WEIGHTS).is_file() or not (d / CONFIG).is_file():
        raise FileNotFoundError(f"keep model: {d} lacks {WEIGHTS} or {CONFIG}; set filter.keep.model to an artifact "
                                "directory (python -m bench.filters --train-keep DIR writes one) or filter.keep.enabled=false")
    cfg = json.loads((d / CONFIG).read_text(encoding="utf-8"))
    t = load_file(str(d / WEIGHTS))
    return KeepModel(t["weights"], float(t["bias"][0]), t["mean"], t["scale"], cfg["features"], cfg["version"], cfg)


# ---------------------------------------------------------------- training on labelled pages


def site_fold(site: str, folds: int) -> int:
    """Cross-validation fold of a site (pages of one site share a fold)."""
    return int(hashlib.sha1(site.encode("utf-8")).hexdigest(), 16) % folds


def auc(scores: np.ndarray, y: np.ndarray) -> float | None:
    """ROC-AUC of ``scores`` for the positives ``y == 1`` (ties by rank order; None without both classes)."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(len(order))
    return float((ranks[pos].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg))


def removal_counts(scores: np.ndarray, threshold: float, base: np.ndarray, y: np.ndarray) -> dict:
    """Good pages removed and junk caught when a page goes if ``base`` (another rule) or score < threshold."""
    rem = base | (scores < threshold)
    good, junk = y == 1, y == 0
    return {"good": int(good.sum()), "good_removed": int(rem[good].sum()),
            "junk": int(junk.sum()), "junk_caught": int(rem[junk].sum())}


def pick_threshold(scores: np.ndarray, base: np.ndarray, y: np.ndarray, target: float) -> float:
    """The largest threshold (4 significant digits) whose removals, with ``base``, keep the fraction of
    good pages removed at or below ``target``; 0.0 when even the base rules remove more."""
    best = 0.0
    for t in sorted({float(f"{v:.4g}") for v in scores}):
        c = removal_counts(scores, t, base, y)
        if c["good"] and c["good_removed"] / c["good"] <= target:
            best = t
    return best


def train(x: np.ndarray, y: np.ndarray, sites: Sequence[str], base: np.ndarray, target: float,
          l2_grid: Sequence[float] = (30.0, 100.0, 300.0), junk_weight: float = 3.0, folds: int = 5,
          log=print) -> tuple[KeepModel, float, dict]:
    """Train on labelled (dev) pages: ``y`` 1 = keep, 0 = remove; ``base``: pages the other rules remove.

    1. for each L2 strength, out-of-fold scores by ``folds``-fold cross-validation grouped by site; the
       strength with the best out-of-fold ROC-AUC wins;
    2. the threshold is picked on those out-of-fold scores (never on scores of the pages a model was
       fitted on): the largest whose removals plus ``base`` remove at most ``target`` of the good pages;
    3. the model is refitted on all pages. Junk pages weigh ``junk_weight`` in the loss."""
    y = np.asarray(y, dtype=np.float64)
    base = np.asarray(base, dtype=bool)
    fold = np.array([site_fold(s, folds) for s in sites])
    sw = np.where(y == 0, junk_weight, 1.0)
    cv: dict[float, float | None] = {}
    oof_by_l2: dict[float, np.ndarray] = {}
    for l2 in l2_grid:
        oof = np.full(len(y), np.nan)
        for k in range(folds):
            tr, te = fold != k, fold == k
            if not te.any():
                continue
            w, b, m, sc = fit_logistic(x[tr], y[tr], l2, sw[tr])
            oof[te] = KeepModel(w, b, m, sc).score(x[te])
        oof_by_l2[l2] = oof
        cv[l2] = auc(oof, y)
        log(f"[keep] l2={l2}: out-of-fold ROC-AUC {cv[l2]}")
    l2 = max(l2_grid, key=lambda v: (cv[v] or 0.0, -v))
    oof = oof_by_l2[l2]
    thr = pick_threshold(oof, base, y, target)
    w, b, m, sc = fit_logistic(x, y, l2, sw)
    report = {"l2": l2, "cv_auc": {str(k): v for k, v in cv.items()}, "junk_weight": junk_weight, "folds": folds,
              "target": target, "threshold": thr, "dev_out_of_fold": removal_counts(oof, thr, base, y),
              "dev_base": removal_counts(np.ones(len(y)), 0.0, base, y)}
    log(f"[keep] chose l2={l2}, threshold {thr}: dev (out of fold) {report['dev_out_of_fold']}")
    return KeepModel(w, b, m, sc), thr, report
