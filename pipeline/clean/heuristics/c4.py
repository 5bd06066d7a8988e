"""C4 rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer", Sec. 2.2 "Colossal Clean Crawled Corpus").

Line rules: lines mentioning "javascript" (enable-JavaScript warnings) and lines with policy/cookie
phrases (the phrase list of the C4 preprocessing code: terms of use, privacy policy, cookie policy,
uses cookies, use of cookies, use cookies; Chinese equivalents added in conf) are removed.
Page rules: a page containing "lorem ipsum" or a curly brace "{" (code) is dropped. The removed line
fractions are signals too, so a page that is mostly warnings can be dropped by threshold.
"""

from __future__ import annotations

import re

REASON_LOREM_IPSUM = "c4_lorem_ipsum"
REASON_CURLY_BRACE = "c4_curly_brace"
REASON_JAVASCRIPT = "c4_javascript"
REASON_POLICY = "c4_policy"

DEFAULT_POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


def c4_line_rules(
    text: str,
    policy_phrases: tuple[str, ...] | list[str] = DEFAULT_POLICY_PHRASES,
    remove_javascript: bool = True,
    remove_policy: bool = True,
) -> tuple[str, dict[str, float]]:
    """Apply the C4 line rules; returns ``(text_after, signals)``.

    Signals: ``javascript_lines`` / ``policy_lines`` (counts of matching lines) and their fractions
    of the non-empty lines. Matching is case-insensitive.
    """
    lines = text.split("\n")
    policy = re.compile("|".join(re.escape(p.casefold()) for p in policy_phrases)) if policy_phrases else None
    keep = []
    n_js = n_pol = n_nonempty = 0
    for ln in lines:
        low = ln.casefold()
        if ln.strip():
            n_nonempty += 1
        js = "javascript" in low
        pol = bool(policy and policy.search(low))
        n_js += js
        n_pol += pol
        if (js and remove_javascript) or (pol and remove_policy):
            continue
        keep.append(ln)
    out_text = "\n".join(keep) if len(keep) != len(lines) else text
    return out_text, {
        "javascript_lines": float(n_js),
        "policy_lines": float(n_pol),
        "javascript_line_frac": n_js / n_nonempty if n_nonempty else 0.0,
        "policy_line_frac": n_pol / n_nonempty if n_nonempty else 0.0,
    }


def c4_page_signals(text: str) -> dict[str, float]:
    """``lorem_ipsum`` (occurrences, case-insensitive) and ``curly_braces`` (count of "{")."""
    return {
        "lorem_ipsum": float(text.casefold().count("lorem ipsum")),
        "curly_braces": float(text.count("{")),
    }
