"""Text helpers shared by line dedup and the heuristics: lines, symbol-only lines, words.

Words are Gopher's (Rae et al. 2021): whitespace-separated tokens, for English and every
whitespace-delimited script. Languages listed in ``clean.jieba_langs`` (Chinese) have no spaces,
so their words are jieba tokens; jieba's dictionary is loaded once per worker process (~1 s).
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from pathlib import Path

from pipeline.config import REPO_ROOT


def is_content_char(ch: str) -> bool:
    """True for letters and digits of any script (Unicode categories L* and N*)."""
    return unicodedata.category(ch)[0] in "LN"


def is_symbol_only(line: str) -> bool:
    """True for a line made only of whitespace, punctuation and symbols (no letter or digit)."""
    return not any(is_content_char(ch) for ch in line)


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()  # load the dictionary once per process, not on the first document
    return jieba


def jieba_tokens(text: str, hmm: bool = False) -> list[str]:
    """jieba tokens of ``text`` without whitespace-only tokens (punctuation tokens are kept)."""
    return [t for t in _jieba().lcut(text, HMM=hmm) if not t.isspace()]


def base_lang(lang: str | None) -> str:
    """The base code of ``lang``: the part before ``-`` or ``_`` (``zh-Hant`` -> ``zh``); ``""`` for none."""
    return (lang or "").split("-")[0].split("_")[0]


def lang_key(lang: str | None, keys) -> str | None:
    """The key of ``keys`` that configures ``lang``: the exact code first, then its base code; None if neither.

    Every per-language setting of ``clean`` resolves through this, so ``zh-Hant`` gets the ``zh`` bounds and
    the ``zh`` short-line length alike unless a ``zh-Hant`` key overrides both."""
    if not lang:
        return None
    if lang in keys:
        return lang
    base = base_lang(lang)
    return base if base in keys else None


def uses_jieba(lang: str | None, jieba_langs: list[str] | tuple[str, ...]) -> bool:
    return bool(lang) and base_lang(lang) in jieba_langs


def tokens(text: str, lang: str | None, jieba_langs=("zh",), hmm: bool = False) -> list[str]:
    """Tokens for heuristics: jieba for ``jieba_langs``, whitespace split otherwise (Gopher)."""
    if uses_jieba(lang, jieba_langs):
        return jieba_tokens(text, hmm)
    return text.split()


def strip_punct(tok: str) -> str:
    """Token with leading/trailing non-alphanumeric characters removed, casefolded."""
    i, j = 0, len(tok)
    while i < j and not is_content_char(tok[i]):
        i += 1
    while j > i and not is_content_char(tok[j - 1]):
        j -= 1
    return tok[i:j].casefold()


@functools.lru_cache(maxsize=64)
def load_stopwords(lang: str, stopwords_dir: str = "conf/stopwords") -> frozenset[str]:
    """Stop words of ``lang`` from ``<stopwords_dir>/<lang>.txt`` (one per line, # comments);
    an empty set when there is no list for that language (the stop-word rule is then skipped)."""
    base = Path(stopwords_dir)
    if not base.is_absolute():
        base = REPO_ROOT / base
    p = base / f"{lang}.txt"
    if not p.exists():
        return frozenset()
    words = []
    for line in p.read_text(encoding="utf-8").splitlines():
        w = line.split("#", 1)[0].strip()
        if w:
            words.append(w.casefold())
    return frozenset(words)


def available_stopword_langs(stopwords_dir: str = "conf/stopwords") -> list[str]:
    base = Path(stopwords_dir)
    if not base.is_absolute():
        base = REPO_ROOT / base
    return sorted(f[:-4] for f in os.listdir(base) if f.endswith(".txt")) if base.exists() else []
