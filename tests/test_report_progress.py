"""jobs/progress.py: periodic stage/task progress lines from Spark's status tracker."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest

from jobs import progress


class FakeTracker:
    def __init__(self, stages):
        self.stages = stages

    def getActiveStageIds(self):
        return list(self.stages)

    def getStageInfo(self, sid):
        return self.stages.get(sid)


def test_stage_lines_format() -> None:
    info = SimpleNamespace(name="mapPartitions at prepare.py:71", numTasks=120, numCompletedTasks=37,
                           numActiveTasks=2, numFailedTasks=1)
    lines = progress.stage_lines(FakeTracker({4: info, 3: None}), "prepare", 72.4)
    assert lines == ["[prepare 01:12] stage 4 mapPartitions at prepare.py:71: 37/120 tasks done, 2 running, 1 failed"]


def test_interval_from_env(monkeypatch) -> None:
    monkeypatch.delenv(progress.ENV_INTERVAL, raising=False)
    assert progress.interval_from_env() == progress.DEFAULT_INTERVAL_S
    monkeypatch.setenv(progress.ENV_INTERVAL, "0")
    assert progress.interval_from_env() == 0
    monkeypatch.setenv(progress.ENV_INTERVAL, "soon")
    with pytest.raises(ValueError, match="DOTS_PROGRESS_S"):
        progress.interval_from_env()


@pytest.mark.spark
def test_track_reports_a_running_job(spark) -> None:
    out = io.StringIO()

    def slow(it):
        time.sleep(1.5)
        yield from it

    with progress.track(spark, "demo", interval_s=0.3, out=out):
        assert spark.sparkContext.parallelize(range(8), 4).mapPartitions(slow).count() == 8
    text = out.getvalue()
    assert "[demo " in text and "tasks done" in text, text
    assert "/4 tasks done" in text
    # Disabled: nothing printed, the body still runs.
    quiet = io.StringIO()
    with progress.track(spark, "demo", interval_s=0, out=quiet):
        spark.sparkContext.parallelize(range(4), 2).count()
    assert quiet.getvalue() == ""
