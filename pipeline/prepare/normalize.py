"""Exact-dedup normalization and hashing, as the dots.llm1 report describes it: remove punctuation,
Unicode NFD, lowercase, collapse whitespace, then MD5 of the UTF-8 bytes.

"Punctuation" is every code point of Unicode general category P* (ASCII and CJK punctuation alike).
The same normalization feeds MinHash shingling in stage 2.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata

# Every P* code point lies in planes 0-1: planes 2-3 hold ideographs, 14 tags and variation
# selectors, 15-16 private use (tests check this against the full range). Scanning 128 Ki code
# points instead of 1.1 Mi makes the table 10x cheaper to build in each worker.
_PUNCT_SCAN_END = 0x20000


@functools.lru_cache(maxsize=1)
def _punct_table() -> dict[int, None]:
    return {cp: None for cp in range(_PUNCT_SCAN_END) if unicodedata.category(chr(cp)).startswith("P")}


def normalize_text(text: str) -> str:
    """Punctuation removed, NFD, lowercased, whitespace collapsed to single spaces, stripped."""
    t = text.translate(_punct_table())
    # str.split() and re's \s agree on what is whitespace (str.isspace); split + join is faster.
    return " ".join(unicodedata.normalize("NFD", t).lower().split())


def content_hash(text: str) -> str:
    """MD5 hex digest of :func:`normalize_text` (the exact-dedup key)."""
    return hashlib.md5(normalize_text(text).encode("utf-8")).hexdigest()


def stable_hash64(*parts: object) -> int:
    """A 64-bit hash of the parts joined by ':' (blake2b), for seeded deterministic choices."""
    key = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1
