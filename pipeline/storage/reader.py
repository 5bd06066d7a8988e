"""Seekable reads from object stores and web servers that survive throttling, resets and truncation.

A :class:`RetryingReader` reads a remote object in chunks (``chunk_bytes``, 8 MiB by default:
about 128 requests for a 1 GB Common Crawl WARC) through a *source* that fetches byte ranges.
A fetch that fails with a retryable error (HTTP 408/429/5xx such as S3's ``503 SlowDown``, a
connection reset or time-out) or returns fewer bytes than asked (a truncated body) is retried with
exponential backoff and full jitter (the AWS "standard" retry scheme), resuming at the first byte
not yet received. Errors that no retry can fix (not found, access denied) are not retried. When the
attempts run out, :class:`UnreadableError` names the object and the byte offset.

``UnreadableError`` is deliberately not an ``OSError``: record parsers catch ``OSError`` as
corrupt data, and an unreadable object must reach the job's ``on_unreadable`` policy instead.
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Protocol

DEFAULT_CHUNK_BYTES = 8 << 20
RETRYABLE_HTTP = {408, 429, 500, 502, 503, 504}
_FATAL_MARKERS = ("ACCESS_DENIED", "NO_SUCH_BUCKET", "NO_SUCH_KEY", "RESOURCE_NOT_FOUND", "INVALID_ACCESS_KEY",
                  "SIGNATURE_DOES_NOT_MATCH", "HTTP status 403", "HTTP status 404", "HTTP status 400")


class UnreadableError(Exception):
    """An object that could not be read after every retry (or with an error no retry fixes)."""

    def __init__(self, uri: str, offset: int, attempts: int, cause: BaseException | str):
        self.uri, self.offset, self.attempts = uri, offset, attempts
        why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"cannot read {uri} at byte {offset} after {attempts} attempt(s): {why}")


class RangeNotSupported(OSError):
    """The server ignores ``Range``: the object can be read from its start only (not retried)."""


class ShortRead(OSError):
    """A fetch returned fewer bytes than the object holds there (a truncated body)."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Attempts per chunk and the backoff between them: ``uniform(0, min(cap, base * 2**n))``."""

    max_attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 20.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        from pipeline.storage.s3 import settings

        return cls(max_attempts=settings().max_attempts)

    def sleep(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(self.cap_s, self.base_s * (2**attempt))))


def retryable(e: BaseException) -> bool:
    """True for errors another attempt can fix (throttling, 5xx, resets, time-outs, truncation)."""
    if isinstance(e, urllib.error.HTTPError):
        return e.code in RETRYABLE_HTTP
    if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError | RangeNotSupported):
        return False
    if isinstance(e, OSError):
        msg = str(e)
        return not any(m in msg for m in _FATAL_MARKERS)
    return isinstance(e, http.client.HTTPException | TimeoutError)


class RangeSource(Protocol):
    size: int

    def fetch(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


def with_retries(uri: str, fn: Callable[[], object], policy: RetryPolicy, offset: int = 0):
    """Call ``fn`` until it succeeds or the attempts run out (then :class:`UnreadableError`)."""
    for attempt in range(policy.max_attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified just below; anything else re-raised
            if not retryable(e):
                if isinstance(e, OSError | http.client.HTTPException):
                    raise UnreadableError(uri, offset, attempt + 1, e) from e
                raise
            if attempt + 1 >= policy.max_attempts:
                raise UnreadableError(uri, offset, attempt + 1, e) from e
            policy.sleep(attempt)
    raise AssertionError("unreachable")


class RetryingReader(io.RawIOBase):
    """A read-only, seekable binary file over a :class:`RangeSource`, one chunk cached."""

    def __init__(
        self,
        uri: str,
        open_source: Callable[[], RangeSource],
        policy: RetryPolicy | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ):
        super().__init__()
        self.uri = uri
        self.policy = policy or RetryPolicy.from_env()
        self.chunk_bytes = chunk_bytes
        self._open_source = open_source
        self._src: RangeSource = with_retries(uri, open_source, self.policy)
        self.size = self._src.size
        self._pos = 0
        self._buf = b""
        self._buf_start = 0
        self.requests = 0
        self.retries = 0

    # -- io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:
        if self._pos >= self.size:
            return 0
        if not self._buf_start <= self._pos < self._buf_start + len(self._buf):
            self._load(self._pos)
        i = self._pos - self._buf_start
        n = min(len(b), len(self._buf) - i)
        b[:n] = self._buf[i : i + n]
        self._pos += n
        return n

    def readall(self) -> bytes:
        out = bytearray()
        while True:
            chunk = self.read(max(self.chunk_bytes, 1))
            if not chunk:
                return bytes(out)
            out += chunk

    def close(self) -> None:
        if not self.closed:
            try:
                self._src.close()
            finally:
                super().close()

    # -- chunk loading with retries and resumption
    def _load(self, start: int) -> None:
        want = min(self.chunk_bytes, self.size - start)
        data = bytearray()
        failures = 0
        while len(data) < want:
            at = start + len(data)
            try:
                self.requests += 1
                got = self._src.fetch(at, want - len(data))
                data += got
                if len(data) < want:
                    raise ShortRead(f"got {len(got)} of {want - len(data) + len(got)} bytes at offset {at}")
            except Exception as e:  # noqa: BLE001 - classified just below; anything else re-raised
                failures += 1
                if not retryable(e):
                    if isinstance(e, OSError | http.client.HTTPException):
                        raise UnreadableError(self.uri, start + len(data), failures, e) from e
                    raise
                if failures >= self.policy.max_attempts:
                    raise UnreadableError(self.uri, start + len(data), failures, e) from e
                self.retries += 1
                self.policy.sleep(failures - 1)
                self._reopen(start + len(data))
        self._buf = bytes(data)
        self._buf_start = start

    def _reopen(self, offset: int) -> None:
        try:
            self._src.close()
        except Exception:  # noqa: BLE001 - the old connection is broken anyway
            pass
        self._src = with_retries(self.uri, self._open_source, self.policy, offset)


# ---------------------------------------------------------------- sources


class ArrowSource:
    """Byte ranges of a file in a pyarrow FileSystem (S3: one ranged GET per fetch)."""

    def __init__(self, fs, path: str):
        self._f = fs.open_input_file(path)
        self.size = self._f.size()

    def fetch(self, offset: int, length: int) -> bytes:
        data = self._f.read_at(length, offset)
        return data if isinstance(data, bytes) else data.to_pybytes()

    def close(self) -> None:
        self._f.close()


class HttpSource:
    """Byte ranges of a URL through ``Range`` requests (urllib; proxies from the environment)."""

    TIMEOUT_S = 60.0

    def __init__(self, url: str):
        self.url = url
        self.size = self._size()

    def _size(self) -> int:
        req = urllib.request.Request(self.url, method="HEAD", headers=_UA)
        try:
            with urllib.request.urlopen(req, timeout=self.TIMEOUT_S) as r:
                if r.headers.get("Content-Length") is not None:
                    return int(r.headers["Content-Length"])
        except urllib.error.HTTPError as e:
            if e.code not in (403, 405, 501):  # some servers refuse HEAD but serve GET
                raise _as_os_error(e) from e
        req = urllib.request.Request(self.url, headers={**_UA, "Range": "bytes=0-0"})
        with urllib.request.urlopen(req, timeout=self.TIMEOUT_S) as r:
            cr = r.headers.get("Content-Range", "")
            if r.status == 206 and "/" in cr and cr.rsplit("/", 1)[1].isdigit():
                return int(cr.rsplit("/", 1)[1])
        raise OSError(f"{self.url}: the server gives no length (no Content-Length, no Range support)")

    def fetch(self, offset: int, length: int) -> bytes:
        end = offset + length - 1
        req = urllib.request.Request(self.url, headers={**_UA, "Range": f"bytes={offset}-{end}"})
        try:
            with urllib.request.urlopen(req, timeout=self.TIMEOUT_S) as r:
                if r.status == 206:
                    return _read_upto(r, length)
                if offset == 0:  # Range ignored: the whole object from the start
                    return _read_upto(r, length)
                raise RangeNotSupported(f"{self.url}: the server ignores Range requests; cannot resume at {offset}")
        except urllib.error.HTTPError as e:
            raise _as_os_error(e) from e

    def close(self) -> None:
        pass


_UA = {"User-Agent": "dots-data (+https://github.com/) urllib"}


def _read_upto(r, length: int) -> bytes:
    out = bytearray()
    try:
        while len(out) < length:
            chunk = r.read(min(1 << 20, length - len(out)))
            if not chunk:
                break
            out += chunk
    except (http.client.IncompleteRead, OSError):
        if not out:
            raise
    return bytes(out)  # shorter than asked: the reader resumes at the first missing byte


def _as_os_error(e: urllib.error.HTTPError) -> OSError:
    if e.code == 404:
        return FileNotFoundError(f"HTTP 404 for {e.url}")
    if e.code in (401, 403):
        return PermissionError(f"HTTP {e.code} for {e.url}")
    return e

