"""Fault injection for resilience tests: make chosen records raise, or make every record slow.

Stages call :func:`check` once per record, *inside* their per-record ``try``, with a key that
identifies the record (the URL in ``prepare``). Nothing happens unless an environment variable is
set, so production runs pay one dictionary lookup per record.

* ``DOTS_FAULT_INJECT=<substring>[,<substring>...]``: a record whose key contains one of the
  substrings raises :class:`InjectedFault`. The stage's per-record error handling must turn it into a
  counted ``error_*`` drop (DESIGN.md "Accounting"), so a test proves that a record which makes a
  task raise never fails the job.
* ``DOTS_FAULT_DELAY_S=<seconds>``: sleep that long per record, so a test can kill a worker or the
  driver while a stage is surely still running.

On a cluster the variables must reach the executors' Python workers:
``--conf spark.executorEnv.DOTS_FAULT_INJECT=...`` (YARN/standalone/K8s alike); in local mode
the driver's environment is inherited.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

ENV_INJECT = "DOTS_FAULT_INJECT"
ENV_DELAY = "DOTS_FAULT_DELAY_S"


class InjectedFault(RuntimeError):
    """Raised by :func:`check` for a record chosen by ``DOTS_FAULT_INJECT``."""


def injected_substrings(environ: Mapping[str, str] | None = None) -> list[str]:
    """The non-empty substrings listed in ``DOTS_FAULT_INJECT`` (comma-separated)."""
    raw = (environ if environ is not None else os.environ).get(ENV_INJECT, "")
    return [s for s in (p.strip() for p in raw.split(",")) if s]


def delay_seconds(environ: Mapping[str, str] | None = None) -> float:
    """Per-record delay from ``DOTS_FAULT_DELAY_S``; a malformed value is an error, not a silent 0."""
    raw = (environ if environ is not None else os.environ).get(ENV_DELAY, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError as e:
        raise ValueError(f"{ENV_DELAY}={raw!r} is not a number of seconds; unset it or give e.g. 0.05") from e
    if value < 0:
        raise ValueError(f"{ENV_DELAY}={raw!r} must be >= 0")
    return value


def check(key: str | None, environ: Mapping[str, str] | None = None) -> None:
    """Apply the configured faults to one record identified by ``key`` (e.g. its URL).

    Raises :class:`InjectedFault` when ``key`` contains a substring of ``DOTS_FAULT_INJECT``.
    """
    env = environ if environ is not None else os.environ
    if ENV_INJECT not in env and ENV_DELAY not in env:
        return
    delay = delay_seconds(env)
    if delay:
        time.sleep(delay)
    if key is None:
        return
    for s in injected_substrings(env):
        if s in key:
            raise InjectedFault(f"injected fault for record {key!r} ({ENV_INJECT} contains {s!r})")
