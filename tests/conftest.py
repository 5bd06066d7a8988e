"""Shared fixtures. One SparkSession per test run (JVM start is ~20-30 s here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def shared_data(sub: str = "") -> Path:
    """Path under ../shared/data, or skip the test saying why when it is absent."""
    p = SHARED_DATA / sub
    if not p.exists():
        pytest.skip(f"{p} is absent: the shared real-data folder is not beside this checkout")
    return p


@pytest.fixture(scope="session")
def cfg():
    from pipeline.config import load_config

    return load_config(overrides=["spark.profile=tests"])


@pytest.fixture(scope="session")
def spark(cfg):
    from jobs.common import get_spark

    s = get_spark(cfg, "dots-data-tests")
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()
