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


# ---------------------------------------------------------------- object storage (moto on 127.0.0.1)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server for the whole run (started by the first test that needs it)."""
    pytest.importorskip("moto", reason="moto[server] is a dev requirement (requirements.txt); run make setup")
    from tests.storage_servers import moto_server

    with moto_server() as url:
        yield url


def s3_env(monkeypatch, endpoint: str, **extra: str) -> None:
    """Point the standard AWS variables at ``endpoint`` (moto accepts any key)."""
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_NO_SIGN_REQUEST", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **extra,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch, request):
    """A fresh bucket on the moto server, with the AWS variables pointing at it: ``s3://NAME``."""
    import re
    import uuid

    import boto3

    s3_env(monkeypatch, s3_endpoint)
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return f"s3://{name}"
