"""Heuristic document filters as *signals first, decisions later* (Dolma's taggers + mixer).

:func:`score_document` turns one document into its signal values (one float column each in the
Spark output, prefixed ``h_``); :func:`decide` applies the configured bounds and returns the first
violated rule's drop reason. Every rule is named by its drop reason and cites its source:

* ``gopher_*`` quality rules: :mod:`.gopher_quality` (Rae et al. 2021, App. A.1.1);
* ``gopher_dup_*`` / ``gopher_top_*`` repetition rules: :mod:`.gopher_repetition` (same paper);
* ``c4_*`` rules: :mod:`.c4` (Raffel et al. 2020, Sec. 2.2);
* ``fineweb_*`` line-structure rules: :mod:`.fineweb` (Penedo et al. 2024, Sec. 3.6).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from pipeline.clean.heuristics import c4, fineweb
from pipeline.clean.heuristics import gopher_quality as gq
from pipeline.clean.heuristics import gopher_repetition as gr
from pipeline.clean.text import lang_key, load_stopwords, tokens, uses_jieba

REASON_EMPTY = "clean_empty_doc"
REASON_ERROR = "error_clean"


@dataclasses.dataclass(frozen=True)
class Rule:
    """A rule drops a document whose ``signal`` is below ``min`` or above ``max`` (from conf)."""

    signal: str
    source: str


_G = "Gopher, Rae et al. 2021, App. A.1.1"
_C4 = "C4, Raffel et al. 2020, Sec. 2.2"
_FW = "FineWeb, Penedo et al. 2024, Sec. 3.6"
RULES: dict[str, Rule] = {
    gq.REASON_SHORT_DOC: Rule("n_words", _G),
    gq.REASON_LONG_DOC: Rule("n_words", _G),
    gq.REASON_SHORT_DOC_CHARS: Rule("n_chars", _G + " (characters for Chinese)"),
    gq.REASON_LONG_DOC_CHARS: Rule("n_chars", _G + " (characters for Chinese)"),
    gq.REASON_MEAN_WORD_LENGTH: Rule("mean_word_length", _G),
    gq.REASON_HASH_RATIO: Rule("hash_ratio", _G),
    gq.REASON_ELLIPSIS_RATIO: Rule("ellipsis_ratio", _G),
    gq.REASON_BULLET_LINES: Rule("bullet_line_frac", _G),
    gq.REASON_ELLIPSIS_LINES: Rule("ellipsis_line_frac", _G),
    gq.REASON_ALPHA_WORDS: Rule("alpha_word_frac", _G),
    gq.REASON_STOP_WORDS: Rule("stop_words", _G),
    gr.REASON_DUP_LINE_FRAC: Rule("dup_line_frac", _G + " Table A1"),
    gr.REASON_DUP_PARA_FRAC: Rule("dup_para_frac", _G + " Table A1"),
    gr.REASON_DUP_LINE_CHAR_FRAC: Rule("dup_line_char_frac", _G + " Table A1"),
    gr.REASON_DUP_PARA_CHAR_FRAC: Rule("dup_para_char_frac", _G + " Table A1"),
    **{r: Rule(f"top_{n}gram_char_frac", _G + " Table A1") for n, r in gr.REASON_TOP_NGRAM.items()},
    **{r: Rule(f"dup_{n}gram_char_frac", _G + " Table A1") for n, r in gr.REASON_DUP_NGRAM.items()},
    c4.REASON_LOREM_IPSUM: Rule("lorem_ipsum", _C4),
    c4.REASON_CURLY_BRACE: Rule("curly_braces", _C4),
    c4.REASON_JAVASCRIPT: Rule("javascript_line_frac", _C4 + " (line rule; page threshold ours)"),
    c4.REASON_POLICY: Rule("policy_line_frac", _C4 + " (line rule; page threshold ours)"),
    fineweb.REASON_LINE_PUNCT: Rule("line_punct_frac", _FW),
    fineweb.REASON_SHORT_LINES: Rule("short_line_frac", _FW),
}

# Signals computed on words (jieba tokens for clean.jieba_langs): a language segmented by jieba needs
# its own bounds for the rules on these (CleanConfig.validate checks clean.lang_rules sets them).
WORD_SIGNALS = frozenset(
    {"n_words", "mean_word_length", "hash_ratio", "ellipsis_ratio", "alpha_word_frac", "stop_words"}
    | {f"top_{n}gram_char_frac" for n in gr.TOP_NGRAMS}
    | {f"dup_{n}gram_char_frac" for n in gr.DUP_NGRAMS}
)

# Column prefix of the signals in the stage outputs (``h_<signal>``); filter's keep score reads them back.
SIGNAL_PREFIX = "h_"
# Every signal column, in output order.
SIGNALS: tuple[str, ...] = (
    "n_words",
    "n_chars",
    "mean_word_length",
    "hash_ratio",
    "ellipsis_ratio",
    "bullet_line_frac",
    "ellipsis_line_frac",
    "alpha_word_frac",
    "stop_words",
    "dup_line_frac",
    "dup_para_frac",
    "dup_line_char_frac",
    "dup_para_char_frac",
    *(f"top_{n}gram_char_frac" for n in gr.TOP_NGRAMS),
    *(f"dup_{n}gram_char_frac" for n in gr.DUP_NGRAMS),
    "lorem_ipsum",
    "curly_braces",
    "javascript_lines",
    "policy_lines",
    "javascript_line_frac",
    "policy_line_frac",
    "line_punct_frac",
    "short_line_frac",
)


@dataclasses.dataclass(frozen=True)
class HeuristicParams:
    """What :func:`score_document` needs from ``cfg.clean`` (plain values, picklable)."""

    jieba_langs: tuple[str, ...] = ("zh",)
    jieba_hmm: bool = False
    stopwords_dir: str = "conf/stopwords"
    remove_javascript_lines: bool = True
    remove_policy_lines: bool = True
    policy_phrases: tuple[str, ...] = c4.DEFAULT_POLICY_PHRASES
    # FineWeb short-line length in characters, and per-language lengths ((lang, chars) pairs)
    short_line_chars: int = fineweb.SHORT_LINE_CHARS
    short_line_chars_by_lang: tuple[tuple[str, int], ...] = ()

    def short_line_chars_for(self, lang: str | None) -> int:
        """The short-line length of documents of ``lang`` (exact code, then base code: see :func:`lang_key`)."""
        by_lang = dict(self.short_line_chars_by_lang)
        key = lang_key(lang, by_lang)
        return self.short_line_chars if key is None else by_lang[key]

    @classmethod
    def from_config(cls, clean_cfg) -> HeuristicParams:
        return cls(
            jieba_langs=tuple(clean_cfg.jieba_langs),
            jieba_hmm=clean_cfg.jieba_hmm,
            stopwords_dir=clean_cfg.stopwords_dir,
            remove_javascript_lines=clean_cfg.c4.remove_javascript_lines,
            remove_policy_lines=clean_cfg.c4.remove_policy_lines,
            policy_phrases=tuple(clean_cfg.c4.policy_phrases) or c4.DEFAULT_POLICY_PHRASES,
            short_line_chars=clean_cfg.fineweb.short_line_chars,
            short_line_chars_by_lang=tuple(sorted(clean_cfg.fineweb.short_line_chars_by_lang.items())),
        )


def score_document(
    text: str, lang: str | None, params: HeuristicParams = HeuristicParams()
) -> tuple[str, dict]:
    """Apply the C4 line rules, then compute every signal on the remaining text.

    Returns ``(text_after_line_rules, {signal: value or None})``.
    """
    text, signals = c4.c4_line_rules(
        text, params.policy_phrases, params.remove_javascript_lines, params.remove_policy_lines
    )
    cjk = uses_jieba(lang, params.jieba_langs)
    toks = tokens(text, lang, params.jieba_langs, params.jieba_hmm)
    base_lang = (lang or "").split("-")[0].split("_")[0]
    stop = load_stopwords(base_lang, params.stopwords_dir) if base_lang else frozenset()
    if cjk:
        words = [t.casefold() for t in toks if _ALNUM.search(t)]
    else:
        words = normalized_words(text)
    signals.update(gq.quality_signals(text, toks, words, stop, cjk))
    signals.update(gr.repetition_signals(text, words))
    signals.update(c4.c4_page_signals(text))
    signals.update(fineweb.fineweb_signals(text, params.short_line_chars_for(lang)))
    return text, signals


_ALNUM = re.compile(r"[^\W_]")
# A whitespace token from its first to its last letter/digit: the token with its edge punctuation
# stripped (same as text.strip_punct on each whitespace token, in one C-level pass).
_WORD = re.compile(r"[^\W_](?:\S*[^\W_])?")


def normalized_words(text: str) -> list[str]:
    """Casefolded whitespace words without leading/trailing punctuation (empty ones dropped)."""
    return _WORD.findall(text.casefold())


def decide(signals: Mapping[str, float | None], bounds: Mapping) -> str | None:
    """The first rule (in :data:`RULES` order) whose bounds the signals violate, else None.

    ``bounds``: ``{reason: Bounds(min, max)}``; a null bound or a null signal is not checked.
    """
    found = violations(signals, bounds)
    return found[0] if found else None


def violations(signals: Mapping[str, float | None], bounds: Mapping) -> list[str]:
    """Every violated rule's reason (RULES order); ``decide`` returns the first of these."""
    out = []
    for reason, rule in RULES.items():
        b = bounds.get(reason)
        v = signals.get(rule.signal)
        if b is None or v is None:
            continue
        if (b.min is not None and v < b.min) or (b.max is not None and v > b.max):
            out.append(reason)
    return out
