"""Weak (silver) category labels from keyword and URL rules, for users who bring no annotations.

A labeling-function approach in the spirit of Snorkel (Ratner et al., 2017) reduced to its simplest
useful form: each leaf has keyword lists (``conf/category_keywords.yaml``) in English (word or phrase
matches, ``word*`` = prefix) and Chinese (substring counts), plus URL words. A document's score for a
leaf is the sum over that leaf's keywords of ``min(count, cap)`` plus ``url_weight`` per URL word. The
top leaf becomes the label only when the evidence is confident: at least ``min_distinct`` different
keywords, a score of at least ``min_score`` (and ``min_density`` hits per 1,000 words, so one long page
cannot collect incidental hits), and ``min_ratio`` times the runner-up's score (thresholds in the
``_thresholds`` block of the keyword file). Other documents get no label and are left out of the silver
training set.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from pipeline.category.taxonomy import DEFAULT_KEYWORDS, REPO_ROOT, Taxonomy

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_URL_SPLIT = re.compile(r"[^a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters/digits runs); CJK runs come out as single tokens."""
    return _WORD.findall(text.lower())


def url_words(url: str | None) -> set[str]:
    """Words of a URL's host labels and path (scheme and ``www`` dropped). A host under the reserved
    ``.test`` top-level domain (RFC 2606: never a real site; the re-hosted evaluation collections use it)
    gives no words, like a missing URL."""
    if not url:
        return set()
    u = url.lower().split("://", 1)[-1]
    if u.split("/", 1)[0].split(":", 1)[0].endswith(".test"):
        return set()
    return {w for w in _URL_SPLIT.split(u) if w and w not in ("www", "html", "htm", "php", "aspx")}


@dataclasses.dataclass(frozen=True)
class WeakLabel:
    category: int
    score: float
    runner_up: float
    distinct: int


@dataclasses.dataclass
class WeakLabelConfig:
    """Defaults mirror ``_thresholds`` in ``conf/category_keywords.yaml`` (which the jobs read)."""

    min_score: float = 2.0
    min_distinct: int = 2
    min_ratio: float = 1.1
    min_density: float = 1.0  # keyword hits per 1,000 words
    cap: int = 3
    url_weight: float = 3.0
    max_chars: int = 30_000


def load_config(path: str | Path | None = None) -> WeakLabelConfig:
    """The ``_thresholds`` block of the keyword file (default ``conf/category_keywords.yaml``)."""
    p = Path(path) if path else DEFAULT_KEYWORDS
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p
    with p.open(encoding="utf-8") as f:
        block = (yaml.safe_load(f) or {}).get("_thresholds") or {}
    fields = {f.name: f.type for f in dataclasses.fields(WeakLabelConfig)}
    unknown = sorted(set(block) - set(fields))
    if unknown:
        raise ValueError(f"{p}: unknown _thresholds key(s) {unknown}; valid: {sorted(fields)}")
    return WeakLabelConfig(**block)


class WeakLabeler:
    """Scores documents against every leaf's keyword lists; ``label()`` returns a confident leaf or None."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        keywords: Mapping[str, Mapping[str, list[str]]],
        config: WeakLabelConfig | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.cfg = config or WeakLabelConfig()
        # keyword key = index into self.kw_leaf (one entry per (leaf, keyword))
        self.kw_leaf: list[int] = []
        self.exact: dict[str, list[int]] = defaultdict(list)
        self.prefix: dict[str, list[int]] = defaultdict(list)
        self.phrases: dict[str, list[tuple[tuple[str, ...], bool, int]]] = defaultdict(list)
        self.cjk: list[tuple[str, int]] = []
        self.url: dict[str, list[int]] = defaultdict(list)
        for name, langs in keywords.items():
            leaf = taxonomy.id_of(name)
            for lang, items in langs.items():
                for raw in items:
                    self._add(leaf, lang, raw.strip().lower())
        self.prefix_lengths = sorted({len(p) for p in self.prefix})
        self.cjk_index: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for kw, k in self.cjk:
            runs = _CJK_RUN.findall(kw)
            two = next((r[:2] for r in runs if len(r) >= 2), None)
            self.cjk_index[two or runs[0][0]].append((kw, k))
        self._word_hits: dict[str, tuple[int, ...]] = {}  # word -> its exact and prefix keyword hits

    def _hits(self, t: str) -> tuple[int, ...]:
        out = list(self.exact.get(t, ()))
        for L in self.prefix_lengths:
            if L > len(t):
                break
            out.extend(self.prefix.get(t[:L], ()))
        return tuple(out)

    def _add(self, leaf: int, lang: str, kw: str) -> None:
        if not kw:
            return
        k = len(self.kw_leaf)
        self.kw_leaf.append(leaf)
        if lang == "url":
            self.url[kw].append(k)
            return
        if _CJK.search(kw):
            self.cjk.append((kw, k))
            return
        star = kw.endswith("*")
        toks = words(kw.rstrip("*"))
        if not toks:
            return
        if len(toks) == 1:
            (self.prefix if star else self.exact)[toks[0]].append(k)
        else:
            self.phrases[toks[0]].append((tuple(toks[1:]), star, k))

    def keyword_counts(self, text: str) -> dict[int, int]:
        """Occurrences per keyword index in ``text`` (truncated to ``max_chars``)."""
        text = text[: self.cfg.max_chars]
        toks = words(text)
        counts: dict[int, int] = defaultdict(int)
        phrases, cache = self.phrases, self._word_hits
        n = len(toks)
        for t, c in Counter(toks).items():  # each distinct word once
            hits = cache.get(t)
            if hits is None:
                hits = self._hits(t)
                if len(cache) < 500_000:
                    cache[t] = hits
            for k in hits:
                counts[k] += c
        for i in [i for i, t in enumerate(toks) if t in phrases]:
            for rest, star, k in phrases[toks[i]]:
                m = len(rest)
                if i + m >= n:
                    continue
                if star:
                    if toks[i + 1 : i + m] == list(rest[:-1]) and toks[i + m].startswith(rest[-1]):
                        counts[k] += 1
                elif tuple(toks[i + 1 : i + 1 + m]) == rest:
                    counts[k] += 1
        if self.cjk and _CJK.search(text):
            # count only keywords whose CJK key (first CJK bigram, else character) occurs in the text
            runs = _CJK_RUN.findall(text)
            present = {r[i : i + 2] for r in runs for i in range(len(r) - 1)}
            present.update(ch for r in runs for ch in r)
            for key in present.intersection(self.cjk_index):
                for kw, k in self.cjk_index[key]:
                    c = text.count(kw)
                    if c:
                        counts[k] += c
        return counts

    def scores(self, text: str, url: str | None = None) -> tuple[dict[int, float], dict[int, int], int]:
        """Per-leaf score and number of distinct matching keywords, plus the document's word count."""
        cap = self.cfg.cap
        score: dict[int, float] = defaultdict(float)
        distinct: dict[int, int] = defaultdict(int)
        for k, c in self.keyword_counts(text).items():
            leaf = self.kw_leaf[k]
            score[leaf] += min(c, cap)
            distinct[leaf] += 1
        for w in url_words(url):
            for k in self.url.get(w, ()):
                leaf = self.kw_leaf[k]
                score[leaf] += self.cfg.url_weight
                distinct[leaf] += 1
        n_words = len(_WORD.findall(text[: self.cfg.max_chars])) + len(
            _CJK.findall(text[: self.cfg.max_chars])
        )
        return dict(score), dict(distinct), n_words

    def score_matrix(
        self, texts: list[str], max_chars: int | None = None, urls: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """float32 [N, C] per-leaf keyword scores of ``texts``, each text cut to ``max_chars`` (default: the
        config's), plus the URL-word scores of ``urls`` (one per text, None = no URL). The category model's
        keyword prior reads this."""
        if urls is not None and len(urls) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(urls)} urls")
        out = np.zeros((len(texts), len(self.taxonomy)), dtype=np.float32)
        for i, t in enumerate(texts):
            s, _, _ = self.scores((t or "")[: max_chars or self.cfg.max_chars], None if urls is None else urls[i])
            for leaf, v in s.items():
                out[i, leaf] = v
        return out

    def label(self, text: str, url: str | None = None) -> WeakLabel | None:
        """The confident leaf for a document, or None (then the document is not used for training)."""
        score, distinct, n_words = self.scores(text, url)
        if not score:
            return None
        ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))
        top, s1 = ranked[0]
        s2 = ranked[1][1] if len(ranked) > 1 else 0.0
        c = self.cfg
        if s1 < c.min_score or distinct.get(top, 0) < c.min_distinct or s1 < c.min_ratio * s2:
            return None
        if 1000.0 * s1 / max(n_words, 1) < c.min_density:
            return None
        return WeakLabel(top, s1, s2, distinct[top])


def seed_documents(
    taxonomy: Taxonomy, keywords: Mapping[str, Mapping[str, list[str]]]
) -> list[tuple[str, int]]:
    """One English and one Chinese pseudo-document per leaf (names, description, keywords).

    Added to the silver training set so every leaf has some evidence even when the corpus gives it
    no confident page (the "label names as data" idea of dataless classification, Chang et al., 2008)."""
    out: list[tuple[str, int]] = []
    for leaf in taxonomy.leaves:
        kw = keywords.get(leaf.en, {})
        en = [w.rstrip("*") for lang, ws in kw.items() if lang != "url" for w in ws if not _CJK.search(w)]
        zh = [w for lang, ws in kw.items() if lang != "url" for w in ws if _CJK.search(w)]
        out.append((f"{leaf.en}. {leaf.desc} {' '.join(en)}", leaf.id))
        out.append((f"{leaf.zh}。{'，'.join(zh)}", leaf.id))
    return out
