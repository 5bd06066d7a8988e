"""Path kinds and URI helpers shared by the storage layer (no I/O here).

A path is one of:

* ``local``: a plain path or a ``file:`` URI (``file:/x``, ``file:///x``), returned as an absolute
  local path;
* ``s3``: ``s3://bucket/key``; ``s3a://`` and ``s3n://`` (Hadoop's names) are synonyms and are
  rewritten to ``s3://``;
* ``http``: ``https://`` or ``http://`` (read-only);
* ``hadoop``: any other scheme (``hdfs://``, ``gs://``...), left to Hadoop's FileSystem in the JVM.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

LOCAL, S3, HTTP, HADOOP = "local", "s3", "http", "hadoop"
_S3_SCHEMES = ("s3", "s3a", "s3n")
GLOB_CHARS = "*?[{"


def scheme(path: str) -> str:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", path)
    # "C:\\..." is not a scheme; one letter before the colon is a Windows drive.
    return m.group(1).lower() if m and len(m.group(1)) > 1 else ""


def kind(path: str) -> str:
    """``local``, ``s3``, ``http`` or ``hadoop`` (see the module docstring)."""
    s = scheme(path)
    if s in ("", "file"):
        return LOCAL
    if s in _S3_SCHEMES:
        return S3
    if s in ("http", "https"):
        return HTTP
    return HADOOP


def normalize(path: str) -> str:
    """Canonical form: absolute local path, ``s3://bucket/key`` (no trailing slash kept for keys),
    URLs and other URIs unchanged."""
    k = kind(path)
    if k == LOCAL:
        if scheme(path) == "file":
            p = urlparse(path)
            return os.path.abspath(p.path or "/")
        return os.path.abspath(path)
    if k == S3:
        rest = path.split("://", 1)[1] if "://" in path else path.split(":", 1)[1].lstrip("/")
        return "s3://" + rest
    return path


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    rest = normalize(uri)[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket; write s3://BUCKET/KEY")
    return bucket, key


def join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name.lstrip("/")


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0]


def relative(root: str, path: str) -> str:
    """``path`` relative to ``root`` (both in the same canonical form)."""
    r = root.rstrip("/") + "/"
    if not path.startswith(r):
        raise ValueError(f"{path} is not under {root}")
    return path[len(r) :]


def has_glob(path: str) -> bool:
    return any(c in path for c in GLOB_CHARS)


def glob_prefix(pattern: str) -> str:
    """The part of ``pattern`` before its first path segment that holds a glob character."""
    parts = pattern.split("/")
    for i, seg in enumerate(parts):
        if has_glob(seg):
            return "/".join(parts[:i])
    return pattern


def expand_braces(pattern: str) -> list[str]:
    """``a{b,c}d`` -> ``[abd, acd]`` (nested braces are expanded from the first one outwards)."""
    i = pattern.find("{")
    j = pattern.find("}", i + 1) if i >= 0 else -1
    if i < 0 or j < 0:
        return [pattern]
    out = []
    for alt in pattern[i + 1 : j].split(","):
        out += expand_braces(pattern[:i] + alt + pattern[j + 1 :])
    return out


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Hadoop/shell glob semantics: ``*`` and ``?`` stay inside one segment, ``**`` crosses
    segments, ``[...]`` is a character class, ``{a,b}`` an alternation."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = j
        elif c == "{":
            j = pattern.find("}", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                out.append("(?:" + "|".join(re.escape(a) for a in pattern[i + 1 : j].split(",")) + ")")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")
