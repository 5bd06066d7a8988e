"""Remote inputs and outputs for the single-process training jobs (tokenizer, clutter, quality,
category, MoE trainer), which read local files (memory-mapped shards, Parquet, JSONL, WARC).

* :func:`stage_inputs` downloads ``s3://`` / ``s3a://`` / ``https://`` inputs once into a local
  cache folder and returns local paths; local paths pass through unchanged (no copy). A file is
  written to a temporary name and renamed when its size matches the listing, so a cached copy is
  either complete or absent, and a later run reuses it without downloading again.
* :func:`publish_dir` uploads a finished local output folder to ``s3://``: every file first, then
  the marker files (:data:`MARKERS`: a model's ``config.json``, then ``_SUCCESS``), so a reader
  that waits for the marker never sees a half-uploaded model or run folder.
* :func:`remote_io` wraps a job's ``main(argv)``: it rewrites the named input flags to staged local
  paths and the named output flags to a temporary local folder, runs the job, then publishes.

Cache folder: ``--cache-dir`` (consumed by :func:`remote_io`), else ``$DOTS_CACHE_DIR``, else
``<system temp dir>/dots-cache``. Each remote input gets ``<cache>/<sha1(uri)[:16]>/``: a file keeps
its base name there; a folder (key prefix) is mirrored below it with its relative paths.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence

from pipeline import storage
from pipeline.storage import paths
from pipeline.storage.paths import HTTP, LOCAL, S3, kind, normalize
from pipeline.storage.reader import DEFAULT_CHUNK_BYTES

MARKERS = ("config.json", "_SUCCESS")
CACHE_ENV = "DOTS_CACHE_DIR"


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "dots-cache")


def _remote(uri: str) -> bool:
    """Inputs this module stages: ``s3://`` (``s3a://``) and ``http(s)://``; everything else (local
    paths, ``synthetic:N``, ``hdfs://``) goes to the job unchanged."""
    return kind(uri) in (S3, HTTP)


def _slot(uri: str, cache_dir: str) -> str:
    return os.path.join(cache_dir, hashlib.sha1(normalize(uri).encode()).hexdigest()[:16])


def _download(uri: str, size: int, dest: str) -> str:
    """``uri`` to ``dest`` unless a complete copy (same size) is there already."""
    if os.path.isfile(dest) and os.path.getsize(dest) == size:
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = os.path.join(os.path.dirname(dest), f".part-{uuid.uuid4().hex[:12]}-{os.path.basename(dest)}")
    try:
        with storage.open_input(uri) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, DEFAULT_CHUNK_BYTES)
        got = os.path.getsize(tmp)
        if got != size:
            raise OSError(f"{uri}: downloaded {got} bytes, the store lists {size}; run again")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def stage(uri: str, cache_dir: str | None = None) -> str:
    """One input as a local path: a local path unchanged; a remote file as its cached copy; a remote
    folder (key prefix) as the cached mirror folder of every file under it."""
    if not _remote(uri):
        return uri
    cache_dir = cache_dir or default_cache_dir()
    slot = _slot(uri, cache_dir)
    if kind(uri) == HTTP:
        return _download(uri, storage.size(uri), os.path.join(slot, paths.basename(uri.split("?")[0])))
    root = normalize(uri).rstrip("/")
    if not storage.is_dir(root):
        if not storage.exists(root):
            raise FileNotFoundError(f"{uri}: no such object or prefix")
        return _download(root, storage.size(root), os.path.join(slot, paths.basename(root)))
    entries = storage.list_files(root)
    if not entries:
        raise FileNotFoundError(f"{uri}: no files under this prefix")
    local_root = os.path.join(slot, paths.basename(root))
    for e in entries:
        _download(e.path, e.size, os.path.join(local_root, *paths.relative(root, e.path).split("/")))
    return local_root


def stage_inputs(uris: Sequence[str], cache_dir: str | None = None) -> list[str]:
    """Local paths for ``uris``: globs expand to their matches (each staged), folders and prefixes to
    a local folder (:func:`stage`), local paths pass through unchanged. Raises when a remote pattern
    matches nothing."""
    out: list[str] = []
    for uri in uris:
        if _remote(uri) and (paths.has_glob(uri) or "{" in uri):
            hits = storage.glob(uri)
            if not hits:
                raise FileNotFoundError(f"{uri}: the pattern matches nothing")
            out.extend(stage(h, cache_dir) for h in hits)
        else:
            out.append(stage(uri, cache_dir))
    return out


def publish_dir(local_dir: str, uri: str) -> list[str]:
    """Upload every file under ``local_dir`` to ``uri`` (same relative paths), the :data:`MARKERS`
    last in that order; returns the uploaded URIs in upload order. A local ``uri`` is a plain copy."""
    files = sorted(
        os.path.relpath(os.path.join(d, f), local_dir).replace(os.sep, "/")
        for d, _, fs in os.walk(local_dir)
        for f in fs
    )
    rank = {m: i + 1 for i, m in enumerate(MARKERS)}
    files.sort(key=lambda r: (rank.get(r, 0), r))  # top-level markers last
    base = normalize(uri).rstrip("/")
    done = []
    for rel in files:
        dst = paths.join(base, rel)
        if kind(dst) == LOCAL:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
        storage.upload_file(os.path.join(local_dir, rel), dst)
        done.append(dst)
    return done


def _flag_values(argv: list[str], flag: str) -> list[tuple[int, bool]]:
    """Positions of ``flag``'s values in argv: (index, inline) where inline means ``--flag=value``."""
    out = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == flag:
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                out.append((i, False))
                i += 1
            continue
        if a.startswith(flag + "="):
            out.append((i, True))
        i += 1
    return out


def remote_io(
    argv: Sequence[str] | None,
    run: Callable[[list[str]], object],
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    publish: bool = True,
):
    """Run ``run(argv)`` with remote inputs staged and remote outputs written locally then published.

    ``inputs``/``outputs`` name flags (``"--input"``); remote values of an input flag are replaced by
    their staged local paths (a glob may become several), a remote output value by a fresh temporary
    folder that :func:`publish_dir` uploads once ``run`` returns (``publish=False``: a non-zero rank
    of a distributed run, which leaves publishing to rank 0). ``--cache-dir DIR`` is taken out of
    argv here (the jobs list it in ``--help`` only). Without remote values, ``run`` gets argv unchanged."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cache_dir = None
    for i, a in enumerate(argv):
        if a == "--cache-dir" and i + 1 < len(argv):
            cache_dir = argv[i + 1]
            del argv[i : i + 2]
            break
        if a.startswith("--cache-dir="):
            cache_dir = a.split("=", 1)[1]
            del argv[i]
            break
    for flag in inputs:
        for i, inline in reversed(_flag_values(argv, flag)):
            value = argv[i].split("=", 1)[1] if inline else argv[i]
            if not _remote(value):
                continue
            staged = stage_inputs([value], cache_dir)
            if inline:
                argv[i : i + 1] = [f"{flag}={staged[0]}"] + staged[1:] if len(staged) == 1 else [flag, *staged]
            else:
                argv[i : i + 1] = staged
    pending: list[tuple[str, str]] = []
    try:
        for flag in outputs:
            for i, inline in _flag_values(argv, flag):
                value = argv[i].split("=", 1)[1] if inline else argv[i]
                if not _remote(value):
                    continue
                if kind(value) == HTTP:
                    raise ValueError(f"{flag} {value}: https URLs are read-only; write to a local path or s3://")
                tmp = tempfile.mkdtemp(prefix="dots-out-")
                local = os.path.join(tmp, paths.basename(normalize(value).rstrip("/")) or "out")
                pending.append((local, value))
                argv[i] = f"{flag}={local}" if inline else local
        result = run(argv)
        if publish:
            for local, value in pending:
                if os.path.isdir(local):
                    publish_dir(local, value)
        return result
    finally:
        for local, _ in pending:
            shutil.rmtree(os.path.dirname(local), ignore_errors=True)
