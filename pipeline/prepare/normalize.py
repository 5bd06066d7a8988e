"""Exact-dedup normalization and hashing, as the dots.llm1 report describes it: remove punctuation,
Unicode NFD, lowercase, collapse whitespace, then MD5 of the UTF-8 bytes.

"Punctuation" is every code point of Unicode general category P* (ASCII and CJK punctuation alike).
The same normalization feeds MinHash shingling in stage 2.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata

_WS_RE = re.compile(r"\s+")


@functools.lru_cache(maxsize=1)
def _punct_table() -> dict[int, None]:
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P")}


def normalize_text(text: str) -> str:
    """Punctuation removed, NFD, lowercased, whitespace collapsed to single spaces, stripped."""
    t = text.translate(_punct_table())
    t = unicodedata.normalize("NFD", t).lower()
    return _WS_RE.sub(" ", t).strip()


def content_hash(text: str) -> str:
    """MD5 hex digest of :func:`normalize_text` (the exact-dedup key)."""
    return hashlib.md5(normalize_text(text).encode("utf-8")).hexdigest()


def stable_hash64(*parts: object) -> int:
    """A 64-bit hash of the parts joined by ':' (blake2b), for seeded deterministic choices."""
    key = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1
