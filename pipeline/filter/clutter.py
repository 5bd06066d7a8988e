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
_CLASSES = {"seps": _SEPARATORS, "terminals": ".!?。！？", "clauses": ",，、;；"}
_BULLET_RE = re.compile(r"^\s*([-*•·▪►◦]|\d+[.)、]\s?)")
_URL_RE = re.compile(r"https?://|www\.|\.com\b|\.cn\b|@\w+\.", re.IGNORECASE)
_DATE_RE = re.compile(r"\b(19|20)\d\d\b|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}年|\d{1,2}月\d{1,2}日|\d\d:\d\d")
# Words of page furniture in English and Chinese: sharing, following, accounts, navigation, related
# lists, comments, ads, legal lines. The hashed n-grams learn these from data too; the lexicon carries
# them to a language with few training pages (Chinese here). A line's count of hits is a feature:
# English words and phrases are matched on the line's lower-cased tokens, Chinese words as substrings.
_LEXICON_EN = frozenset(
    "share shares tweet facebook twitter linkedin pinterest whatsapp email print subscribe newsletter follow "
    "login register cookie cookies privacy terms advertisement sponsored related recommended popular trending "
    "comment comments reply permalink next previous prev home menu search download app click tag tags "
    "categories posted rss".split()
)
_LEXICON_EN_PHRASES = frozenset({("sign", "in"), ("sign", "up"), ("log", "in"), ("read", "more"),
                                 ("more", "stories"), ("skip", "to"), ("back", "to"), ("filed", "under")})
_LEXICON_ZH = tuple(
    "分享 转发 扫一扫 二维码 关注 公众号 微信 微博 客户端 下载 点击 登录 注册 评论 跟贴 留言 举报 推荐 热门 热点 排行 "
    "相关 上一篇 下一篇 返回 首页 频道 专题 收藏 打印 关闭 字号 免责 声明 版权 编辑 责编 来源 作者 记者 原标题 原题 "
    "通讯员 摄影 供图 广告 赞助 订阅 更多 加载 阅读原文".split()
)
_COPYRIGHT = ("©", "(c)", "copyright", "all rights reserved", "版权所有", "备案", "icp")


def lexicon_hits(toks: list[str], line: str, has_cjk: bool) -> int:
    """Page-furniture words and phrases in a line (``toks`` = :func:`tokens` of ``line``)."""
    low = [t.lower() for t in toks if t[0].isalnum()]
    n = sum(1 for t in low if t in _LEXICON_EN)
    n += sum(1 for pair in zip(low, low[1:]) if pair in _LEXICON_EN_PHRASES)
    if has_cjk:
        n += sum(line.count(w) for w in _LEXICON_ZH)
    return n


# A line that is only credits: source / editor / author / original-title (Chinese news) or a byline.
_CREDIT_RE = re.compile(
    r"^[\s(（【\[]*(来源|本文来源|信息来源|资料来源|作者|编辑|责任编辑|责编|记者|采写|原标题|原题|本文原标题|"
    r"通讯员|摄影|校对|图片来源|图|by|posted by|written by|photo|image|source|credit)\s*[:：|丨/]?",
    re.IGNORECASE,
)

N_LINE_FEATURES = 48
MAX_LINE_TOKENS = 64
# A "paragraph" line: long enough in word-equivalents (CJK characters count half a word) and ending a
# sentence. Main text lies between the first and the last paragraph line (the densest-block idea of
# Kohlschütter et al. 2010 and of Readability-style extractors, here on trafilatura's lines).
_PARA_UNITS = 12.0
_SHORT_UNITS = 5.0


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
    latin_words = len(words) - cjk
    return {
        "n_chars": n_chars,
        "n_tokens": len(toks),
        "n_words": len(words),
        "units": latin_words + 0.5 * cjk,
        "alpha": letters / max(1, n_chars),
        "upper": upper / max(1, letters),
        "digit": digits / max(1, n_chars),
        "punct": punct / max(1, n_chars),
        "cjk": cjk / max(1, n_chars),
        "title": title / max(1, len(words)),
        "seps": cc["seps"],
        "terminals": cc["terminals"],
        "clauses": cc["clauses"],
        "mean_word": sum(len(w) for w in words) / max(1, len(words)),
        "digits": digits,
        "terminal_end": float(ends_with_terminal(line)),
        "lexicon": lexicon_hits(toks, line, cjk > 0),
    }


def _runs(flags: list[bool]) -> list[int]:
    """For each position, the length of the run of equal flags it belongs to."""
    out = [0] * len(flags)
    i = 0
    while i < len(flags):
        j = i
        while j + 1 < len(flags) and flags[j + 1] == flags[i]:
            j += 1
        for k in range(i, j + 1):
            out[k] = j - i + 1
        i = j + 1
    return out


def line_features(lines: list[str]) -> np.ndarray:
    """Dense features ``[len(lines), N_LINE_FEATURES]`` of the lines of one document.

    Per line: position (index, character offset, distance to the main-text span), length, character
    classes, punctuation, cues of page furniture (separators, URLs, copyright, dates, the lexicon,
    credit lines), repetition in the document; context: the length / sentence-end of the lines one
    and two away, and the run of short lines the line sits in (menus and link lists come in runs).
    Depends on this document only, so scores never depend on how documents are batched.
    """
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
    para = [s["units"] >= _PARA_UNITS and s["terminal_end"] > 0 for s in stats]
    para_idx = [i for i, p in enumerate(para) if p]
    first_para, last_para = (para_idx[0], para_idx[-1]) if para_idx else (n, -1)
    short = [s["units"] < _SHORT_UNITS for s in stats]
    short_run = _runs(short)
    n_para = len(para_idx)
    cum = 0
    prev_para = -1
    dist_prev_para = []
    for i in range(n):
        dist_prev_para.append(i - prev_para if prev_para >= 0 else n + 1)
        if para[i]:
            prev_para = i
    next_para = -1
    dist_next_para = [0] * n
    for i in range(n - 1, -1, -1):
        dist_next_para[i] = next_para - i if next_para >= 0 else n + 1
        if para[i]:
            next_para = i

    def at(i: int, key: str) -> float:
        return float(stats[i][key]) if 0 <= i < n else 0.0

    def log_len_at(i: int) -> float:
        return float(log_len[i]) if 0 <= i < n else 0.0

    mean_log_len = float(log_len.mean())
    for i, (ln, s) in enumerate(zip(lines, stats)):
        stripped = ln.strip()
        low = ln.lower()
        start_frac = cum / doc_chars
        cum += s["n_chars"]
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
            float(stripped.endswith((":", "："))),
            float(bool(_BULLET_RE.match(ln))),
            float(bool(_URL_RE.search(ln))),
            float(any(c in low for c in _COPYRIGHT)),
            float(s["digits"] > 0 and bool(_DATE_RE.search(ln))),  # every date pattern has a digit
            float(counts[stripped.lower()] > 1),
            s["n_chars"] / max_len,
            s["n_chars"] / doc_chars,
            mean_log_len,
            log_len_at(i - 1),
            log_len_at(i + 1),
            at(i - 1, "terminal_end"),
            at(i + 1, "terminal_end"),
            float(stripped.isupper() and s["n_words"] > 0),
            # --- added with the context model (2026-11)
            math.log1p(s["units"]),
            s["clauses"] / max(1, s["n_tokens"]),
            math.log1p(s["lexicon"]),
            float(bool(_CREDIT_RE.match(stripped))),
            start_frac,
            cum / doc_chars,
            float(first_para <= i <= last_para),
            math.log1p(min(dist_prev_para[i], n + 1)),
            math.log1p(min(dist_next_para[i], n + 1)),
            float(para[i]),
            n_para / n,
            math.log1p(short_run[i]) if short[i] else 0.0,
            log_len_at(i - 2),
            log_len_at(i + 2),
            at(i - 2, "terminal_end"),
            at(i + 2, "terminal_end"),
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
