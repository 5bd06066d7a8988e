"""Progress of long local runs: a daemon thread that prints Spark stage/task progress every few seconds.

The console progress bar is off in our profiles (``spark.ui.showConsoleProgress=false``: it garbles
logs), so without this a long local run is silent between stages. Use it around a stage::

    with track(spark, "prepare"):
        run(ctx)

which prints, every ``DOTS_PROGRESS_S`` seconds (default 5; 0 disables), one line per active
Spark stage, e.g. ``[prepare 00:42] stage 3 mapPartitions at prepare.py:71: 37/120 tasks done,
2 running, 0 failed``. It reads ``SparkContext.statusTracker()`` only, so it works on any master.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

ENV_INTERVAL = "DOTS_PROGRESS_S"
DEFAULT_INTERVAL_S = 5.0


def interval_from_env() -> float:
    raw = os.environ.get(ENV_INTERVAL, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        return max(0.0, float(raw))
    except ValueError as e:
        raise ValueError(f"{ENV_INTERVAL}={raw!r} must be a number of seconds (0 disables progress)") from e


def stage_lines(tracker, label: str, elapsed_s: float) -> list[str]:
    """One line per active stage from a ``StatusTracker`` (sorted by stage id)."""
    mins, secs = divmod(int(elapsed_s), 60)
    lines = []
    for sid in sorted(tracker.getActiveStageIds()):
        info = tracker.getStageInfo(sid)
        if info is None:
            continue
        lines.append(
            f"[{label} {mins:02d}:{secs:02d}] stage {sid} {info.name}: {info.numCompletedTasks}/{info.numTasks} "
            f"tasks done, {info.numActiveTasks} running, {info.numFailedTasks} failed"
        )
    return lines


class ProgressThread(threading.Thread):
    """Prints :func:`stage_lines` every ``interval_s`` until :meth:`stop`; silent when nothing changed."""

    def __init__(self, spark, label: str, interval_s: float, out: TextIO | None = None):
        super().__init__(name=f"progress-{label}", daemon=True)
        self._tracker = spark.sparkContext.statusTracker()
        self._label = label
        self._interval = interval_s
        self._out = out or sys.stderr
        self._stop_event = threading.Event()
        self._t0 = time.time()

    def run(self) -> None:
        last: list[str] = []
        while not self._stop_event.wait(self._interval):
            try:
                lines = stage_lines(self._tracker, self._label, time.time() - self._t0)
            except Exception as e:  # noqa: BLE001 - progress is informative; a closed context ends it
                print(f"[{self._label}] progress stopped: {e}", file=self._out, flush=True)
                return
            # Print when the figures moved (the elapsed time alone does not count as a change).
            key = [line.split("] ", 1)[1] for line in lines]
            if lines and key != last:
                print("\n".join(lines), file=self._out, flush=True)
            last = key

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=max(1.0, self._interval * 2))


@contextmanager
def track(spark, label: str, interval_s: float | None = None, out: TextIO | None = None) -> Iterator[None]:
    """Run the body while a :class:`ProgressThread` reports on ``spark``'s active stages."""
    interval = interval_from_env() if interval_s is None else interval_s
    if interval <= 0:
        yield
        return
    thread = ProgressThread(spark, label, interval, out)
    thread.start()
    try:
        yield
    finally:
        thread.stop()
