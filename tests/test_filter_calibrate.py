"""The greedy per-language calibration of rule bounds on labelled pages."""

from __future__ import annotations

from pipeline.clean.config import Bounds
from pipeline.filter.calibrate import QUALITY_RULE, calibrate, counts, removed, rule_table


def _p(verdict, forced=False, **signals):
    return {"verdict": verdict, "signals": signals, "forced": forced}


def test_rule_table_keeps_active_bounds_and_adds_quality():
    t = rule_table({"a": Bounds(max=0.1), "b": Bounds()}, lambda r: "sig_" + r, 0.2)
    assert t == {"a": ("sig_a", Bounds(max=0.1)), QUALITY_RULE: ("quality", Bounds(min=0.2))}
    assert QUALITY_RULE not in rule_table({}, str, None)


def test_loosens_the_rule_that_removes_good_pages_and_keeps_junk():
    pages = [_p("keep", dup=0.05, q=0.9) for _ in range(18)]
    pages += [_p("keep", dup=0.20, q=0.9), _p("keep", dup=0.22, q=0.9)]  # good pages over 0.15
    pages += [_p("remove", dup=0.40, q=0.9), _p("remove", dup=0.5, q=0.1), _p("remove", forced=True, dup=0.0, q=0.9)]
    t = {"dup": ("dup", Bounds(max=0.15)), QUALITY_RULE: ("q", Bounds(min=0.2))}
    assert counts(pages, t) == (2, 3)
    new = calibrate(pages, t, target=0.0, log=lambda m: None)
    assert counts(pages, new) == (0, 3)
    assert 0.22 < new["dup"][1].max < 0.40  # half-way between the last good page and the next junk page
    assert new["dup"][1].max == 0.31


def test_stops_when_rescue_costs_too_much_junk():
    pages = [_p("keep", s=0.5)] + [_p("keep", s=0.0)] * 9 + [_p("remove", s=0.45), _p("remove", s=0.48),
                                                             _p("remove", s=0.52)]
    t = {"r": ("s", Bounds(max=0.3))}
    new = calibrate(pages, t, target=0.0, log=lambda m: None)
    assert new == t  # rescuing one good page would let two junk pages through


def test_tightens_to_restore_junk_caught_without_good_removals():
    pages = [_p("keep", a=0.5, b=0.1)] + [_p("keep", a=0.0, b=0.1)] * 9
    pages += [_p("remove", a=0.5, b=0.9), _p("remove", a=0.7, b=0.8)]
    t = {"a": ("a", Bounds(max=0.3)), "b": ("b", Bounds(max=0.95))}
    new = calibrate(pages, t, target=0.0, junk_cost=0.4, log=lambda m: None)
    good, junk = counts(pages, new)
    assert good == 0 and junk == 2  # a was loosened past the good page, b tightened to catch the junk
    assert new["a"][1].max > 0.5 and 0.1 < new["b"][1].max < 0.9 and all(not removed(p, new) for p in pages if p["verdict"] == "keep")


def test_a_page_removed_by_two_rules_is_rescued_step_by_step():
    pages = [_p("keep", a=0.5, b=0.5)] + [_p("keep", a=0.0, b=0.0)] * 9 + [_p("remove", a=0.9, b=0.9)]
    t = {"a": ("a", Bounds(max=0.3)), "b": ("b", Bounds(max=0.3))}
    new = calibrate(pages, t, target=0.0, log=lambda m: None)
    assert counts(pages, new) == (0, 1)
    assert 0.5 < new["a"][1].max < 0.9 and 0.5 < new["b"][1].max < 0.9


def test_tightening_never_hugs_the_good_pages():
    good = [_p("keep", a=0.0, b=0.9 * i / 94) for i in range(95)]
    good += [_p("keep", forced=True, a=0.0, b=0.96 + 0.01 * i) for i in range(5)]  # removed anyway
    pages = good + [_p("keep", a=0.2, b=0.0), _p("remove", a=0.2, b=0.95)]
    t = {"a": ("a", Bounds(max=0.15)), "b": ("b", Bounds(max=1.5))}
    new = calibrate(pages, t, target=0.05, junk_cost=0.4, log=lambda m: None)
    assert new["a"][1].max > 0.2  # the good page was rescued, the junk page with it
    # catching the junk page with b would need b < 0.95, below 5 % of the good pages' values
    assert new["b"][1].max == 1.5
    assert new == calibrate(pages, t, target=0.05, junk_cost=0.4, tighten_keep=0.99, log=lambda m: None)
    loose = calibrate(pages, t, target=0.05, junk_cost=0.4, tighten_keep=0.9, log=lambda m: None)
    assert 0.9 < loose["b"][1].max < 0.95


def test_junk_floor_is_never_crossed():
    pages = [_p("keep", a=0.5)] * 2 + [_p("keep", a=0.0)] * 8 + [_p("remove", a=0.5), _p("remove", a=0.9)]
    t = {"a": ("a", Bounds(max=0.3))}
    free = calibrate(pages, t, target=0.0, junk_cost=0.4, log=lambda m: None)
    assert counts(pages, free) == (0, 1)  # two good pages rescued, one junk page let through
    floored = calibrate(pages, t, target=0.0, junk_cost=0.4, junk_floor=2, log=lambda m: None)
    assert floored == t and counts(pages, floored) == (2, 2)
