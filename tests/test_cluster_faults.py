"""pipeline/faults.py: the fault-injection hook stages call per record."""

from __future__ import annotations

import time

import pytest

from pipeline import faults


def test_no_env_is_a_no_op() -> None:
    faults.check("http://a.example/x", environ={})
    faults.check(None, environ={})


def test_matching_records_raise() -> None:
    env = {faults.ENV_INJECT: " bad.example/1 , other "}
    assert faults.injected_substrings(env) == ["bad.example/1", "other"]
    with pytest.raises(faults.InjectedFault, match="bad.example/1"):
        faults.check("http://bad.example/1?q", environ=env)
    with pytest.raises(faults.InjectedFault):
        faults.check("http://x.example/other", environ=env)
    faults.check("http://good.example/2", environ=env)
    faults.check(None, environ=env)


def test_delay_and_bad_delay() -> None:
    t0 = time.perf_counter()
    faults.check("k", environ={faults.ENV_DELAY: "0.05"})
    assert time.perf_counter() - t0 >= 0.05
    with pytest.raises(ValueError, match="DOTS_FAULT_DELAY_S"):
        faults.check("k", environ={faults.ENV_DELAY: "soon"})
    with pytest.raises(ValueError, match=">= 0"):
        faults.delay_seconds({faults.ENV_DELAY: "-1"})


def test_reads_the_process_environment(monkeypatch) -> None:
    monkeypatch.setenv(faults.ENV_INJECT, "needle")
    with pytest.raises(faults.InjectedFault):
        faults.check("hay-needle-stack")
    monkeypatch.delenv(faults.ENV_INJECT)
    faults.check("hay-needle-stack")
