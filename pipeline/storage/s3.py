"""S3 settings from the standard AWS variables and files, and pyarrow S3 file systems built from them.

pyarrow's ``S3FileSystem`` (the AWS C++ SDK) finds credentials through the SDK's default chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` with
``~/.aws/credentials`` and ``~/.aws/config``, web identity, ECS and EC2 instance roles) and the
profile's region, but ignores the endpoint variables and ``max_attempts``; those are read here,
with the precedence the AWS CLI documents:

* endpoint: ``AWS_ENDPOINT_URL_S3`` > ``AWS_ENDPOINT_URL`` > the profile's ``s3 = endpoint_url``
  sub-setting > the profile's ``endpoint_url``; ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` turns
  all of them off;
* region: ``AWS_REGION`` > ``AWS_DEFAULT_REGION`` > the profile's ``region`` > the bucket's own
  region (asked from S3 once per bucket) when no endpoint is set;
* attempts per request: ``AWS_MAX_ATTEMPTS`` > the profile's ``max_attempts`` > 5;
* anonymous (unsigned) requests for public buckets: ``AWS_NO_SIGN_REQUEST=true`` (the AWS CLI's
  ``--no-sign-request`` as a variable, the name GDAL and rasterio use).
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import threading
from collections.abc import Mapping
from urllib.parse import urlparse

DEFAULT_MAX_ATTEMPTS = 5
_TRUE = ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None  # URL, e.g. http://127.0.0.1:9000
    region: str | None = None
    anonymous: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    profile: str = "default"


def _profile_section(environ: Mapping[str, str], profile: str) -> dict[str, str]:
    path = environ.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    if not os.path.isfile(path):
        return {}
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error as e:
        raise ValueError(f"cannot parse the AWS config file {path}: {e}") from e
    name = "default" if profile == "default" else f"profile {profile}"
    return dict(cp[name]) if cp.has_section(name) else {}


def _nested(value: str, key: str) -> str | None:
    """A sub-setting of an indented block (``s3 =\\n  endpoint_url = ...``)."""
    for line in value.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == key:
            return v.strip()
    return None


def settings(environ: Mapping[str, str] | None = None) -> S3Settings:
    """The S3 settings of this process, from the environment and the AWS config file."""
    env = os.environ if environ is None else environ
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    prof = _profile_section(env, profile)
    endpoint = None
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() not in _TRUE:
        endpoint = (
            env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or (_nested(prof["s3"], "endpoint_url") if "s3" in prof else None)
            or prof.get("endpoint_url")
        )
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or prof.get("region") or None
    raw_attempts = env.get("AWS_MAX_ATTEMPTS") or prof.get("max_attempts") or str(DEFAULT_MAX_ATTEMPTS)
    try:
        attempts = int(raw_attempts)
    except ValueError as e:
        raise ValueError(f"AWS_MAX_ATTEMPTS / max_attempts={raw_attempts!r} is not an integer") from e
    if attempts < 1:
        raise ValueError(f"AWS_MAX_ATTEMPTS / max_attempts={attempts} must be >= 1")
    if endpoint and urlparse(endpoint).scheme not in ("http", "https"):
        raise ValueError(f"S3 endpoint {endpoint!r} must be a URL such as http://127.0.0.1:9000")
    return S3Settings(
        endpoint=endpoint.rstrip("/") if endpoint else None,
        region=region,
        anonymous=env.get("AWS_NO_SIGN_REQUEST", "").lower() in _TRUE,
        max_attempts=attempts,
        profile=profile,
    )


_CACHE: dict[tuple, object] = {}
_REGIONS: dict[str, str] = {}
_LOCK = threading.Lock()


def _bucket_region(bucket: str) -> str:
    import pyarrow.fs as pafs

    with _LOCK:
        if bucket not in _REGIONS:
            try:
                _REGIONS[bucket] = pafs.resolve_s3_region(bucket)
            except OSError:
                _REGIONS[bucket] = "us-east-1"  # S3's default; a wrong guess fails with a clear error
        return _REGIONS[bucket]


def filesystem(bucket: str, s: S3Settings | None = None):
    """A (cached) ``pyarrow.fs.S3FileSystem`` for ``bucket`` under settings ``s``."""
    import pyarrow.fs as pafs

    s = s or settings()
    region = s.region or ("us-east-1" if s.endpoint else _bucket_region(bucket))
    key = (s, region)
    fs = _CACHE.get(key)
    if fs is None:
        kw: dict = {
            "region": region,
            "anonymous": s.anonymous,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=s.max_attempts),
            "connect_timeout": 10.0,
            "request_timeout": 120.0,
        }
        if s.endpoint:
            u = urlparse(s.endpoint)
            kw["endpoint_override"] = u.netloc + u.path.rstrip("/")
            kw["scheme"] = u.scheme
        fs = pafs.S3FileSystem(**kw)
        _CACHE[key] = fs
    return fs
