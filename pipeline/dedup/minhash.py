"""MinHash signatures of document batches, identical to datasketch's, from compiled kernels.

Reference: datasketch ``MinHash(num_perm, seed, scheme)`` fed the UTF-8 bytes of each shingle
with its default hash (SHA-1: the first 4 bytes little-endian for ``affine32``/``legacy``, the first
8 for ``affine64``). Permutations are drawn as datasketch draws them from
``numpy.random.RandomState(seed)``:

* ``affine32`` / ``affine64``: ``a`` odd, ``b`` uniform in ``[0, 2^w)``; the input hash is pre-mixed
  with the MurmurHash3 finalizer (fmix32/fmix64) and permuted as ``a * h + b mod 2^w``;
* ``legacy`` (datasketch < 2.0): ``a`` in ``[1, p)``, ``b`` in ``[0, p)`` with the Mersenne prime
  ``p = 2^61 - 1``; ``((a * h + b) mod 2^64 mod p) & (2^32 - 1)``.

Speed: a batch's normalized texts are concatenated into one byte buffer; one numba call finds the
tokens, hashes every 5-token byte span with SHA-1 and keeps each document's distinct hashes, and
one more computes all signatures (:mod:`pipeline.dedup.kernels`). Only the normalization runs in
Python (``bytes.translate`` for ASCII texts, a codepoint table otherwise).

The dots.llm1 settings are 5-gram shingles of normalized words (jieba tokens for Chinese),
2048 permutations = 128 bands x 16 rows, and ``affine64`` gives 64-bit hashing end to end.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.clean.text import jieba_tokens, uses_jieba
from pipeline.dedup import kernels
from pipeline.prepare.normalize import normalize_text, strip_punct

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH32 = np.uint64((1 << 32) - 1)
_WIDTH = {"affine32": 32, "affine64": 64, "legacy": 32}
_DTYPE = {"affine32": np.uint32, "affine64": np.uint64, "legacy": np.uint64}


@dataclasses.dataclass(frozen=True)
class Permutations:
    """``a``, ``b``: ``[num_perm]`` permutation parameters of ``scheme`` (datasketch layout)."""

    scheme: str
    a: np.ndarray
    b: np.ndarray

    @property
    def num_perm(self) -> int:
        return len(self.a)


def make_permutations(num_perm: int, seed: int = 1, scheme: str = "affine64") -> Permutations:
    """The permutations datasketch ``MinHash(num_perm, seed, scheme=scheme)`` draws."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        ab = np.array(
            [
                (
                    gen.randint(1, MERSENNE_PRIME, dtype=np.uint64),
                    gen.randint(0, MERSENNE_PRIME, dtype=np.uint64),
                )
                for _ in range(num_perm)
            ],
            dtype=np.uint64,
        ).T
        return Permutations(scheme, ab[0].copy(), ab[1].copy())
    if scheme not in _WIDTH:
        raise ValueError(f"unknown MinHash scheme {scheme!r}; choose affine64, affine32 or legacy")
    width, dtype = _WIDTH[scheme], _DTYPE[scheme]
    a = gen.randint(0, 1 << (width - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
    b = gen.randint(0, 1 << width, num_perm, dtype=dtype)
    return Permutations(scheme, a, b)


# ---------------------------------------------------------------- hashing


def sha1_hash32(data: bytes) -> int:
    """datasketch's default 32-bit hash: the first 4 bytes of SHA-1, little-endian."""
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")


def sha1_hash64(data: bytes) -> int:
    """datasketch's default 64-bit hash (``affine64``): the first 8 bytes of SHA-1, little-endian."""
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "little")


def hash_shingles(shingles: Iterable[bytes], scheme: str = "affine64") -> np.ndarray:
    """Hash values of ``shingles`` with the scheme's default hash (dtype of the scheme)."""
    f = sha1_hash64 if scheme == "affine64" else sha1_hash32
    return np.fromiter((f(s) for s in shingles), dtype=_DTYPE[scheme])


# ---------------------------------------------------------------- signatures


def signatures_flat(h: np.ndarray, doc_off: np.ndarray, perms: Permutations) -> np.ndarray:
    """``[n_docs, num_perm]`` MinHash signatures; document ``d``'s shingle hashes are
    ``h[doc_off[d]:doc_off[d+1]]`` (uint64; 64-bit hashes for ``affine64``, values < 2^32 or
    64-bit hashes whose low 32 bits are used for the 32-bit schemes; duplicates allowed). A document
    without shingles gets the scheme's empty value (datasketch's initial hash values) everywhere."""
    h = np.ascontiguousarray(h, dtype=np.uint64)
    doc_off = np.ascontiguousarray(doc_off, dtype=np.int64)
    if perms.scheme == "affine64":
        return kernels.minhash_affine64(h, doc_off, perms.a, perms.b)
    if perms.scheme == "affine32":
        return kernels.minhash_affine32(h, doc_off, perms.a, perms.b)
    return kernels.minhash_legacy(h, doc_off, perms.a, perms.b)


def signatures(hash_lists: Sequence[np.ndarray], perms: Permutations) -> np.ndarray:
    """:func:`signatures_flat` of a list of per-document hash arrays."""
    n = len(hash_lists)
    if n == 0:
        return np.empty((0, perms.num_perm), dtype=_DTYPE[perms.scheme])
    lens = np.fromiter((len(x) for x in hash_lists), dtype=np.int64, count=n)
    doc_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    parts = [np.asarray(x).astype(np.uint64, copy=False) for x in hash_lists if len(x)]
    h = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    return signatures_flat(h, doc_off, perms)


# ---------------------------------------------------------------- text -> shingles


def minhash_tokens(text: str | None, lang: str | None, jieba_langs=("zh",), hmm: bool = False) -> list[str]:
    """Tokens for shingling: the exact-dedup normalization (punctuation removed, NFD, lowercase,
    whitespace collapsed), then jieba tokens for ``jieba_langs`` and words otherwise."""
    if not text:
        return []
    norm = normalize_text(text)
    if uses_jieba(lang, jieba_langs):
        return jieba_tokens(norm, hmm)
    return norm.split()


def shingles(toks: Sequence[str], n: int = 5) -> set[bytes]:
    """Word ``n``-gram shingles (tokens joined by one space, UTF-8). A document shorter than ``n``
    tokens is one shingle of all its tokens; no tokens, no shingles."""
    if not toks:
        return set()
    if len(toks) < n:
        return {" ".join(toks).encode("utf-8")}
    return {" ".join(toks[i : i + n]).encode("utf-8") for i in range(len(toks) - n + 1)}


@dataclasses.dataclass(frozen=True)
class MinHashParams:
    """What the batch functions need from ``cfg.dedup`` (plain, picklable)."""

    shingle_size: int = 5
    num_perm: int = 2048
    bands: int = 128
    rows: int = 16
    scheme: str = "affine64"
    perm_seed: int = 1
    jieba_langs: tuple[str, ...] = ("zh",)
    jieba_hmm: bool = False

    @classmethod
    def from_config(cls, d) -> MinHashParams:
        return cls(
            d.shingle_size,
            d.num_perm,
            d.bands,
            d.rows,
            d.scheme,
            d.perm_seed,
            tuple(d.jieba_langs),
            d.jieba_hmm,
        )


def doc_shingles(text: str | None, lang: str | None, p: MinHashParams) -> set[bytes]:
    return shingles(minhash_tokens(text, lang, p.jieba_langs, p.jieba_hmm), p.shingle_size)


def normalized_words(text: str | None, lang: str | None, p: MinHashParams) -> bytes:
    """UTF-8 of the document's shingling tokens joined by single spaces, i.e.
    ``" ".join(minhash_tokens(text, lang, ...)).encode()``, computed faster: ASCII texts go through
    one ``bytes.translate`` (punctuation deleted, lowercased), others through a codepoint table
    (:func:`pipeline.prepare.normalize.strip_punct`), NFD and lowercase; ``str.split`` collapses whitespace exactly as the
    reference's ``\\s+`` does (both use ``str.isspace``)."""
    if not text:
        return b""
    if uses_jieba(lang, p.jieba_langs):
        toks = minhash_tokens(text, lang, p.jieba_langs, p.jieba_hmm)
        out = " ".join(toks).encode("utf-8")
        if out.count(b" ") != max(len(toks) - 1, 0):
            raise ValueError("a jieba token contains a space; shingle spans would be wrong")
        return out
    if text.isascii():
        return b" ".join(text.encode("ascii").translate(_ascii_map(), _ascii_punct()).split())
    t = unicodedata.normalize("NFD", strip_punct(text)).lower()
    return " ".join(t.split()).encode("utf-8")


@functools.lru_cache(maxsize=1)
def _ascii_punct() -> bytes:
    return bytes(c for c in range(128) if unicodedata.category(chr(c)).startswith("P"))


@functools.lru_cache(maxsize=1)
def _ascii_map() -> bytes:
    # lowercase, and the ASCII separators \x1c-\x1f (str.isspace() but not bytes.isspace()) -> space
    src = bytes(range(65, 91)) + bytes(range(0x1C, 0x20))
    return bytes.maketrans(src, bytes(range(97, 123)) + b"    ")


def batch_shingle_hashes(
    texts: Sequence[str | None], langs: Sequence[str | None], p: MinHashParams
) -> tuple[np.ndarray, np.ndarray]:
    """``(h, doc_off)``: the distinct shingle hashes of every document of the batch, document ``d``
    owning ``h[doc_off[d]:doc_off[d+1]]`` (uint64): the first 8 bytes of SHA-1 of each shingle's
    UTF-8, little-endian (datasketch's 64-bit hash; its low 32 bits are the 32-bit hash). The
    shingles are byte spans of the normalized text (:mod:`pipeline.dedup.kernels`), never built."""
    n = len(texts)
    blobs = [normalized_words(t, lg, p) for t, lg in zip(texts, langs)]
    doc_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, blobs), dtype=np.int64, count=n), out=doc_off[1:])
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    ts, te, doc_tok = kernels.space_tokens(buf, doc_off)
    return kernels.shingle_hashes(buf, ts, te, doc_tok, p.shingle_size)


def batch_signatures(
    texts: Sequence[str | None],
    langs: Sequence[str | None],
    p: MinHashParams,
    perms: Permutations | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(signatures [n, num_perm], n_shingles [n])`` of a batch of documents."""
    perms = perms or make_permutations(p.num_perm, p.perm_seed, p.scheme)
    h, doc_off = batch_shingle_hashes(texts, langs, p)
    return signatures_flat(h, doc_off, perms), np.diff(doc_off)


# ---------------------------------------------------------------- LSH bands


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``[n, bands]`` signed 64-bit bucket keys: band ``k``'s ``rows`` values mixed into one key
    (fmix64 chain seeded with the band index, so equal rows in different bands do not collide)."""
    if sig.shape[1] != bands * rows:
        raise ValueError(f"signature width {sig.shape[1]} != bands * rows = {bands * rows}")
    return kernels.band_keys(np.ascontiguousarray(sig), bands, rows)


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity of two shingle sets (0 for two empty sets)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)
