"""Per-language thresholds from labelled pages: loosen the rules that remove good pages, keep the junk.

A page of the labelled set (``data/labels``) is ``{"verdict": keep|remove, "signals": {...}, "forced":
bool}``: its clean-stage signals (:func:`pipeline.clean.heuristics.score_document`) plus ``quality``
(the filter's quality score); ``forced`` marks a removal no threshold here can undo (an empty page).
A *table* maps each rule to ``(signal, Bounds)``: the clean rules of one language
(``clean.rules`` + ``clean.lang_rules.<lang>``) and the quality threshold as the rule
``quality_below_threshold`` (a ``min`` bound on ``quality``).

:func:`calibrate` is a greedy search on the dev pages of one language:

1. while more than ``target`` of the good pages are removed, apply the single bound change that rescues
   the most good pages per junk page it lets through (``gain - junk_cost * loss``); when no change
   rescues a page outright (pages removed by several rules), one that lifts (good page, rule)
   violations without letting junk through. A loosened bound is set half-way between the rescued page's value and the
   next junk value beyond it (a margin for unseen pages; no junk value beyond: 10 % past the page);
2. while fewer junk pages are caught than with the starting table, tighten the bound that catches the
   most junk without removing another good page (half-way between the junk value and the nearest good
   one), never past ``1 - tighten_keep`` of the good pages' values.

Every step is logged so the choice is reviewable. Small samples overfit: the bench reports the chosen
table on the test split, which the search never sees.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable

from pipeline.clean.config import Bounds
from pipeline.clean.heuristics.fineweb import fineweb_lines

QUALITY_RULE = "quality_below_threshold"


def violates(v: float | None, b: Bounds) -> bool:
    if v is None:
        return False
    return (b.min is not None and v < b.min) or (b.max is not None and v > b.max)


def rule_table(bounds: dict[str, Bounds], rule_signal: Callable[[str], str], quality_threshold: float | None) -> dict:
    """``{rule: (signal, Bounds)}`` of the active bounds, plus the quality rule."""
    out = {r: (rule_signal(r), b) for r, b in sorted(bounds.items()) if b.min is not None or b.max is not None}
    if quality_threshold is not None:
        out[QUALITY_RULE] = ("quality", Bounds(min=quality_threshold))
    return out


def _viol(page: dict, table: dict) -> set[str]:
    return {r for r, (sig, b) in table.items() if violates(page["signals"].get(sig), b)}


def removed(page: dict, table: dict) -> bool:
    return page.get("forced", False) or bool(_viol(page, table))


def pairs(pages: list[dict], table: dict) -> int:
    """(good page, violated rule) pairs: progress toward rescuing a page several rules remove."""
    return sum(len(_viol(p, table)) for p in pages if p["verdict"] == "keep")


def counts(pages: list[dict], table: dict) -> tuple[int, int]:
    """(good pages removed, junk pages caught)."""
    good = sum(removed(p, table) for p in pages if p["verdict"] == "keep")
    junk = sum(removed(p, table) for p in pages if p["verdict"] == "remove")
    return good, junk


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def _loosened(v: float, side: str, junk_vals: list[float]) -> float:
    if side == "max":
        beyond = [j for j in junk_vals if j > v]
        return _round(v + (min(beyond) - v) / 2 if beyond else v + max(abs(v) * 0.1, 1e-3))
    beyond = [j for j in junk_vals if j < v]
    return _round(v - (v - max(beyond)) / 2 if beyond else v - max(abs(v) * 0.1, 1e-3))


def _with(table: dict, rule: str, side: str, value: float | None) -> dict:
    sig, b = table[rule]
    return {**table, rule: (sig, dataclasses.replace(b, **{side: value}))}


def _tighten(pages: list[dict], table: dict, goal: int, tighten_keep: float, log: Callable[[str], None]) -> dict:
    """Tighten bounds, one at a time, while fewer than ``goal`` junk pages are caught (see module doc)."""
    keep = [p for p in pages if p["verdict"] == "keep"]
    junk = [p for p in pages if p["verdict"] == "remove"]
    for _ in range(50):
        good, caught = counts(pages, table)
        if caught >= goal:
            break
        best = None
        for rule, (sig, b) in table.items():
            for side in ("min", "max"):
                if getattr(b, side) is None:
                    continue
                kv = [p["signals"][sig] for p in keep if p["signals"].get(sig) is not None]
                for p in junk:
                    v = p["signals"].get(sig)
                    if v is None or removed(p, table):
                        continue
                    if side == "max":  # catch v: a max below v, above every good value below v
                        near = [k for k in kv if k < v]
                        new = _round(v - (v - max(near)) / 2) if near else _round(v * 0.9)
                        if new >= b.max or new >= v:
                            continue
                    else:
                        near = [k for k in kv if k > v]
                        new = _round(v + (min(near) - v) / 2) if near else _round(v * 1.1)
                        if new <= b.min or new <= v:
                            continue
                    hit = sum(violates(k, Bounds(**{side: new})) for k in kv)
                    if hit > (1.0 - tighten_keep) * len(kv):
                        continue  # too close to the good pages: would not hold on unseen ones
                    cand = _with(table, rule, side, new)
                    g, j = counts(pages, cand)
                    if g <= good and j > caught and (best is None or j > best[0]):
                        best = (j, rule, side, cand)
        if best is None:
            log("no tightening catches more junk without removing a good page: stop")
            break
        _, rule, side, cand = best
        log(f"tighten {rule}.{side}: {getattr(table[rule][1], side)} -> {getattr(cand[rule][1], side)} "
            f"(junk caught {caught} -> {best[0]})")
        table = cand
    return table


def calibrate(pages: list[dict], table: dict, target: float, junk_cost: float = 2.0,
              tighten_keep: float = 0.99, junk_floor: int | None = None,
              log: Callable[[str], None] = print) -> dict:
    """The calibrated table (see the module docstring); ``target``: the largest fraction of good pages
    the rules may remove; ``tighten_keep``: a tightened bound must pass at least this fraction of the good
    pages on its own (not only the ones other rules keep), so it does not hug the sample.
    ``junk_floor``: catch at least this many junk pages (e.g. as many as the configuration in use):
    the tightening runs first, to gain room, and no loosening may go below the floor."""
    keep = [p for p in pages if p["verdict"] == "keep"]
    junk = [p for p in pages if p["verdict"] == "remove"]
    if not keep:
        return table
    base_good, base_junk = counts(pages, table)
    log(f"start: {base_good}/{len(keep)} good pages removed, {base_junk}/{len(junk)} junk caught")
    if junk_floor is not None:
        table = _tighten(pages, table, len(junk), tighten_keep, log)
    for _ in range(200):
        good, caught = counts(pages, table)
        if good / len(keep) <= target:
            break
        base_pairs = pairs(pages, table)
        best = None
        for rule, (sig, b) in table.items():
            for side in ("min", "max"):
                if getattr(b, side) is None:
                    continue
                one = Bounds(**{side: getattr(b, side)})
                vals = sorted({p["signals"][sig] for p in keep if violates(p["signals"].get(sig), one)})
                jv = [p["signals"][sig] for p in junk if p["signals"].get(sig) is not None]
                for v in vals:
                    nb = _loosened(v, side, jv)
                    # re-centre on the farthest good value the new bound admits
                    far = [x for x in vals if (x <= nb if side == "max" else x >= nb)]
                    nb = _loosened(max(far) if side == "max" else min(far), side, jv)
                    cand = _with(table, rule, side, nb)
                    g, j = counts(pages, cand)
                    gain, loss = good - g, caught - j
                    if junk_floor is not None and j < junk_floor:
                        continue
                    step = base_pairs - pairs(pages, cand)
                    if gain - junk_cost * loss <= 0 and not (gain == 0 and loss == 0 and step > 0):
                        continue
                    score = (gain - junk_cost * loss, step, -abs(v - getattr(b, side)))
                    if best is None or score > best[0]:
                        best = (score, rule, side, cand, gain, loss)
        if best is None:
            log("no change rescues a good page at an acceptable junk cost: stop")
            break
        _, rule, side, cand, gain, loss = best
        log(f"loosen {rule}.{side}: {getattr(table[rule][1], side)} -> {getattr(cand[rule][1], side)} "
            f"(+{gain} good kept, -{loss} junk caught)")
        table = cand
    table = _tighten(pages, table, base_junk if junk_floor is None else junk_floor, tighten_keep, log)
    good, caught = counts(pages, table)
    log(f"end: {good}/{len(keep)} good pages removed, {caught}/{len(junk)} junk caught")
    return table


# ---------------------------------------------------------------- line lengths in a language's own units


def line_lengths(text: str) -> list[int]:
    """Characters of each line the FineWeb signals see (:func:`pipeline.clean.heuristics.fineweb.fineweb_lines`)."""
    return [len(ln) for ln in fineweb_lines(text)]


def chars_per_word(text: str, words: int) -> float | None:
    """Characters of the non-empty lines (spaces and punctuation included) per word; None without words."""
    return sum(line_lengths(text)) / words if words else None


def word_equivalent_chars(ref_cpw: list[float], cpw: list[float], ref_chars: int) -> float:
    """The line length, in characters of a language with ``cpw`` characters per word (one value per good
    page), that holds as many words as ``ref_chars`` characters of the reference language (``ref_cpw``):
    ``ref_chars * median(cpw) / median(ref_cpw)``. FineWeb's 30 English characters are ~5 words."""
    if not ref_cpw or not cpw:
        raise ValueError("word_equivalent_chars needs pages of both languages")
    return ref_chars * statistics.median(cpw) / statistics.median(ref_cpw)


def share_matched_chars(ref_pages: list[list[int]], pages: list[list[int]], ref_chars: int,
                        max_chars: int = 200) -> tuple[int, float, float]:
    """The length ``n`` under which the share of short lines of a language's good pages (``pages``: the
    line lengths of each page; each page weighs the same) is closest to the share of the reference pages'
    lines shorter than ``ref_chars``. Returns ``(n, reference share, share at n)``; ties go to the
    shorter length."""
    def share(ps: list[list[int]], n: int) -> float:
        ps = [p for p in ps if p]
        return sum(sum(x < n for x in p) / len(p) for p in ps) / len(ps)

    if not any(ref_pages) or not any(pages):
        raise ValueError("share_matched_chars needs pages with lines in both languages")
    q = share(ref_pages, ref_chars)
    best = min(range(1, max_chars + 1), key=lambda n: (abs(share(pages, n) - q), n))
    return best, q, share(pages, best)
