"""One storage layer for local paths, ``s3://`` (``s3a://``) and ``https://``, used by the driver
and by Python tasks alike (no JVM jars: Spark's Hadoop reader never touches an object store).

Functions take path strings of any kind (:mod:`pipeline.storage.paths`): local paths and
``file:`` URIs go to the local disk, ``s3://`` to pyarrow's S3 client configured from the standard
AWS variables and files (:mod:`pipeline.storage.s3`), ``http(s)://`` to range requests (read-only),
and other schemes (``hdfs://``...) to pyarrow's file system for them. Remote reads go through
:class:`~pipeline.storage.reader.RetryingReader` (backoff, resumption at the byte offset reached).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import uuid

from pipeline.storage import paths
from pipeline.storage.paths import HADOOP, HTTP, LOCAL, S3, kind, normalize
from pipeline.storage.reader import (
    DEFAULT_CHUNK_BYTES,
    ArrowSource,
    HttpSource,
    RetryingReader,
    RetryPolicy,
    UnreadableError,
    with_retries,
)

__all__ = [
    "UnreadableError",
    "RetryPolicy",
    "Entry",
    "kind",
    "normalize",
    "paths",
    "filesystem",
    "exists",
    "is_dir",
    "size",
    "list_files",
    "list_dir",
    "glob",
    "glob_entries",
    "open_input",
    "read_bytes",
    "read_text",
    "read_lines",
    "write_bytes",
    "upload_file",
    "write_text",
    "delete",
    "makedirs",
    "move",
    "supports_rename",
]


@dataclasses.dataclass(frozen=True)
class Entry:
    path: str  # same form as the listed root (absolute local path or URI)
    size: int
    is_dir: bool = False


def filesystem(uri: str):
    """``(pyarrow FileSystem, path inside it)`` for a local, S3 or Hadoop-scheme path."""
    import pyarrow.fs as pafs

    k = kind(uri)
    if k == LOCAL:
        return pafs.LocalFileSystem(), normalize(uri)
    if k == S3:
        from pipeline.storage import s3

        bucket, key = paths.split_s3(uri)
        return s3.filesystem(bucket), f"{bucket}/{key}".rstrip("/")
    if k == HTTP:
        raise ValueError(f"{uri}: http(s) paths are read-only inputs; write outputs to a local path or s3://")
    return pafs.FileSystem.from_uri(uri)


def _uri(root_uri: str, root_path: str, path: str) -> str:
    """Map a pyarrow path under ``root_path`` back to the URI form of ``root_uri``."""
    return paths.join(root_uri, paths.relative(root_path, path)) if path != root_path else root_uri


def _info(uri: str):
    fs, p = filesystem(uri)
    return with_retries(uri, lambda: fs.get_file_info(p), RetryPolicy.from_env())


def exists(uri: str) -> bool:
    k = kind(uri)
    if k == LOCAL:
        return os.path.exists(normalize(uri))
    if k == HTTP:
        try:
            HttpSource(uri)
            return True
        except FileNotFoundError:
            return False
    import pyarrow.fs as pafs

    return _info(uri).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    k = kind(uri)
    if k == LOCAL:
        return os.path.isdir(normalize(uri))
    if k == HTTP:
        return False
    import pyarrow.fs as pafs

    return _info(uri).type == pafs.FileType.Directory


def size(uri: str) -> int:
    if kind(uri) == HTTP:
        return HttpSource(uri).size
    if kind(uri) == LOCAL:
        return os.path.getsize(normalize(uri))
    info = _info(uri)
    if info.size is None:
        raise FileNotFoundError(uri)
    return info.size


def list_files(root: str, recursive: bool = True) -> list[Entry]:
    """Files under ``root`` (a folder or key prefix ending at a ``/``), sorted by path."""
    import pyarrow.fs as pafs

    if kind(root) == HTTP:
        raise ValueError(f"{root}: an https URL cannot be listed; give file URLs or a path list")
    root = normalize(root).rstrip("/")
    fs, base = filesystem(root)
    sel = pafs.FileSelector(base, recursive=recursive, allow_not_found=True)
    infos = with_retries(root, lambda: fs.get_file_info(sel), RetryPolicy.from_env())
    out = [
        Entry(_uri(root, base, i.path), i.size or 0)
        for i in infos
        if i.type == pafs.FileType.File
    ]
    return sorted(out, key=lambda e: e.path)


def list_dir(root: str) -> list[Entry]:
    """Immediate children (files and folders) of ``root``, sorted by path; [] when absent."""
    import pyarrow.fs as pafs

    root = normalize(root).rstrip("/")
    fs, base = filesystem(root)
    sel = pafs.FileSelector(base, recursive=False, allow_not_found=True)
    infos = with_retries(root, lambda: fs.get_file_info(sel), RetryPolicy.from_env())
    out = [Entry(_uri(root, base, i.path), i.size or 0, i.type == pafs.FileType.Directory) for i in infos]
    return sorted(out, key=lambda e: e.path)


def glob(pattern: str) -> list[str]:
    """Paths (files and folders) matching a glob (``*``, ``?``, ``[..]``, ``{a,b}``, ``**``), sorted."""
    return [e.path for e in glob_entries(pattern)]


def glob_entries(pattern: str) -> list[Entry]:
    """:func:`glob` with sizes and folder flags (one listing, no request per match)."""
    import pyarrow.fs as pafs

    pattern = normalize(pattern)
    if not paths.has_glob(pattern) and "{" not in pattern:
        if not exists(pattern):
            return []
        d = is_dir(pattern)
        return [Entry(pattern, 0 if d else size(pattern), d)]
    if kind(pattern) == HTTP:
        raise ValueError(f"{pattern}: https URLs cannot be globbed; give file URLs or a path list")
    if kind(pattern) == LOCAL:
        import glob as _glob

        hits = sorted({h for p in paths.expand_braces(pattern) for h in _glob.glob(p, recursive=True)})
        return [Entry(h, 0 if os.path.isdir(h) else os.path.getsize(h), os.path.isdir(h)) for h in hits]
    prefix = paths.glob_prefix(pattern)
    rx = paths.glob_regex(pattern)
    fs, base = filesystem(prefix)
    # A pattern in the last segment only needs one level listed (one LIST request per 1000 keys).
    one_level = "**" not in pattern and "/" not in pattern[len(prefix) :].strip("/")
    sel = pafs.FileSelector(base, recursive=not one_level, allow_not_found=True)
    infos = with_retries(prefix, lambda: fs.get_file_info(sel), RetryPolicy.from_env())
    found = {_uri(prefix, base, i.path): i for i in infos}
    return [
        Entry(p, found[p].size or 0, found[p].type == pafs.FileType.Directory)
        for p in sorted(found)
        if rx.match(p)
    ]


def open_input(uri: str, policy: RetryPolicy | None = None):
    """A seekable binary file. Remote objects are read in retried, resumable chunks."""
    k = kind(uri)
    if k == LOCAL:
        return open(normalize(uri), "rb")
    if k == HTTP:
        return RetryingReader(uri, lambda: HttpSource(uri), policy)
    fs, p = filesystem(uri)
    return RetryingReader(uri, lambda: ArrowSource(fs, p), policy)


def read_bytes(uri: str) -> bytes:
    with open_input(uri) as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def read_lines(uri: str) -> list[str]:
    """Lines of a text file, gunzipped when it is gzip (``.gz`` or the gzip magic)."""
    data = read_bytes(uri)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8").splitlines()


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object. Local: a temporary file renamed over the target (atomic); S3: one PUT
    (atomic: readers see the old object or the new one), retried on throttling and resets."""
    k = kind(uri)
    if k == LOCAL:
        path = normalize(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex[:12]}-{os.path.basename(path)}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return
    fs, p = filesystem(uri)

    def put() -> None:
        with fs.open_output_stream(p) as out:
            out.write(data)

    with_retries(uri, put, RetryPolicy.from_env())


def upload_file(local_path: str, uri: str) -> None:
    """Copy a finished local file to ``uri`` in one retried upload: the object appears whole, and a
    task that fails while writing its local file leaves nothing in the store."""
    if kind(uri) == LOCAL:
        shutil.copyfile(local_path, normalize(uri))
        return
    fs, p = filesystem(uri)

    def put() -> None:
        with open(local_path, "rb") as src, fs.open_output_stream(p) as out:
            shutil.copyfileobj(src, out, DEFAULT_CHUNK_BYTES)

    with_retries(uri, put, RetryPolicy.from_env())


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def delete(uri: str) -> None:
    """Remove a file or a whole folder / key prefix; nothing happens when it is absent."""
    import pyarrow.fs as pafs

    k = kind(uri)
    if k == LOCAL:
        path = normalize(uri)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        return
    fs, p = filesystem(uri)
    info = _info(uri)
    if info.type == pafs.FileType.File:
        with_retries(uri, lambda: fs.delete_file(p), RetryPolicy.from_env())
    elif info.type == pafs.FileType.Directory:
        if k == S3 and "/" not in p:  # a bucket root: empty it, keep the bucket
            with_retries(uri, lambda: fs.delete_dir_contents(p, missing_dir_ok=True), RetryPolicy.from_env())
        else:
            with_retries(uri, lambda: fs.delete_dir(p), RetryPolicy.from_env())


def makedirs(uri: str) -> None:
    """Create a folder (local, Hadoop); object stores have no folders, so nothing to do there."""
    k = kind(uri)
    if k == LOCAL:
        os.makedirs(normalize(uri), exist_ok=True)
    elif k == HADOOP:
        fs, p = filesystem(uri)
        fs.create_dir(p, recursive=True)


def supports_rename(uri: str) -> bool:
    """Whether a folder can be renamed in one step (local, HDFS); object stores copy every key."""
    return kind(uri) in (LOCAL, HADOOP)


def move(src: str, dst: str) -> None:
    """Rename a file or folder (atomic on a local disk; a copy and delete on S3)."""
    if kind(src) == LOCAL and kind(dst) == LOCAL:
        os.replace(normalize(src), normalize(dst))
        return
    fs, p = filesystem(src)
    _, q = filesystem(dst)
    fs.move(p, q)
