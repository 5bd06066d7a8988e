"""Streaming WARC/ARC reading with warcio that survives corrupt and truncated input.

Records are yielded one at a time with their start offset; only one record body is ever held in
memory, capped at ``max_record_bytes`` (memory per task is bounded by the largest record, not the
file). When warcio fails in the middle of a file, the reader resynchronises at the next record
boundary (the next gzip member for ``.gz`` files, the next ``WARC/`` header line otherwise) and
goes on; each corrupt region becomes one :class:`WarcError` so it can be counted as a drop.
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

ERROR_WARC_CORRUPT = "error_warc_corrupt"
ERROR_WARC_TRUNCATED = "error_warc_truncated"

_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGIC = b"WARC/"
_CHUNK = 1 << 20


@dataclasses.dataclass
class WarcRecord:
    """One parsed record. ``body`` is the HTTP payload (dechunked and content-decoded), or None
    when it was not read (non-response records, or bigger than the cap: ``too_large``)."""

    offset: int
    rec_type: str
    record_id: str | None
    target_uri: str | None
    date: datetime | None
    status: int | None
    content_type: str | None
    body: bytes | None
    too_large: bool = False
    body_error: str | None = None


@dataclasses.dataclass
class WarcError:
    offset: int
    reason: str
    message: str


def parse_warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    v = value.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y%m%d%H%M%S", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            d = datetime.strptime(v, fmt)
            return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
        except ValueError:
            continue
    return None


def _find_next(f: IO[bytes], start: int, magic: bytes) -> int | None:
    """Offset of the next ``magic`` at or after ``start``."""
    pos = start
    tail = b""
    while True:
        f.seek(pos)
        chunk = f.read(_CHUNK)
        if not chunk:
            return None
        buf = tail + chunk
        i = buf.find(magic)
        if i >= 0:
            found = pos - len(tail) + i
            return found
        tail = buf[-(len(magic) - 1) :]
        pos += len(chunk)


def _read_body(rec, cap: int) -> tuple[bytes | None, bool, str | None]:
    try:
        stream = rec.content_stream()
        data = stream.read(cap + 1)
    except (zlib.error, EOFError, OSError, ValueError) as e:
        return None, False, f"{type(e).__name__}: {e}"
    if len(data) > cap:
        return None, True, None
    return data, False, None


def _http_fields(rec) -> tuple[int | None, str | None]:
    h = rec.http_headers
    if h is None:
        return None, None
    try:
        status = int(h.get_statuscode())
    except (TypeError, ValueError):
        status = None
    return status, h.get_header("Content-Type")


def iter_records(f: IO[bytes], gzipped: bool, max_record_bytes: int) -> Iterator[WarcRecord | WarcError]:
    """Yield records (and errors) from a seekable binary stream positioned at 0.

    A gzip file that is one single gzip member for many records ("non-chunked", which warcio
    refuses after the first record) is re-read through a streaming decompressor; offsets are then
    offsets in the decompressed stream.
    """
    yielded = 0
    for item in _iter_records(f, gzipped, max_record_bytes):
        if isinstance(item, WarcError) and gzipped and "non-chunked gzip" in item.message:
            f.seek(0)
            with gzip.GzipFile(fileobj=f) as g:
                for j, rec in enumerate(_iter_records(g, False, max_record_bytes)):
                    if j >= yielded:
                        yield rec
            return
        yielded += 1
        yield item


def sniff_format(f: IO[bytes], gzipped: bool) -> str:
    """'warc', 'arc' or 'unknown' from the first bytes of the (decompressed) stream."""
    f.seek(0)
    head = f.read(4096)
    f.seek(0)
    if gzipped:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
        except zlib.error:
            return "unknown"
    head = head.lstrip(b"\r\n")
    if head.startswith(b"WARC/"):
        return "warc"
    if head.startswith(b"filedesc://"):
        return "arc"
    return "unknown"


def _iter_records(f: IO[bytes], gzipped: bool, max_record_bytes: int) -> Iterator[WarcRecord | WarcError]:
    magic = _GZIP_MAGIC if gzipped else _WARC_MAGIC
    pos = 0
    in_bad_region = False  # consecutive failed resync attempts count as one corrupt region
    fmt = sniff_format(f, gzipped)
    is_arc = fmt == "arc"
    if fmt == "unknown":
        yield WarcError(offset=0, reason=ERROR_WARC_CORRUPT, message="not a WARC or ARC file (unknown header)")
        in_bad_region = True
        nxt = _find_next(f, 1, magic)
        if nxt is None:
            return
        pos = nxt
    while True:
        f.seek(pos)
        # arc2warc only for ARC files: in a WARC file, warcio's ARC fallback would read any line of
        # garbage as an ARC header; without it a non-WARC header raises and we resynchronise.
        it = ArchiveIterator(f, arc2warc=is_arc, ensure_http_headers=False)
        try:
            for rec in it:
                rtype = rec.rec_type or ""
                if not is_arc and not rtype:
                    raise ArchiveLoadFailed("WARC record without WARC-Type (corrupt header)")
                in_bad_region = False
                headers = rec.rec_headers
                body = None
                too_large = False
                body_error = None
                status, ctype = (None, None)
                if rtype in ("response", "resource"):
                    status, ctype = _http_fields(rec)
                    if rtype == "resource":
                        ctype = ctype or headers.get_header("Content-Type")
                    body, too_large, body_error = _read_body(rec, max_record_bytes)
                yield WarcRecord(
                    offset=it.offset,  # start of this record (warcio advances it after the record)
                    rec_type=rtype,
                    # warcio's ARC-to-WARC conversion invents a random record id: ARC records have
                    # none, so their doc id comes from URL + date (deterministic).
                    record_id=None if is_arc else headers.get_header("WARC-Record-ID"),
                    target_uri=headers.get_header("WARC-Target-URI"),
                    date=parse_warc_date(headers.get_header("WARC-Date") or headers.get_header("archive-date")),
                    status=status,
                    content_type=ctype,
                    body=body,
                    too_large=too_large,
                    body_error=body_error,
                )
            return
        except (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError, IndexError, KeyError) as e:
            bad = max(it.offset, pos)
            msg = f"{type(e).__name__}: {str(e)[:200]}"
            truncated = isinstance(e, EOFError) or "truncat" in msg.lower()
            if not in_bad_region:
                yield WarcError(offset=bad, reason=ERROR_WARC_TRUNCATED if truncated else ERROR_WARC_CORRUPT, message=msg)
            in_bad_region = True
            nxt = _find_next(f, bad + 1, magic)
            if nxt is None or nxt <= pos:
                return
            pos = nxt
