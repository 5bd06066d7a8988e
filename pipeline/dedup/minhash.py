"""MinHash signatures, vectorized over a batch of documents with numpy, equal to datasketch's.

Reference: datasketch ``MinHash(num_perm, seed, scheme)`` fed the UTF-8 bytes of each shingle
with its default hash (SHA-1: the first 4 bytes little-endian for ``affine32``/``legacy``, the first
8 for ``affine64``). Permutations are drawn as datasketch draws them from
``numpy.random.RandomState(seed)``:

* ``affine32`` / ``affine64``: ``a`` odd, ``b`` uniform in ``[0, 2^w)``; the input hash is pre-mixed
  with the MurmurHash3 finalizer (fmix32/fmix64) and permuted as ``a * h + b mod 2^w``;
* ``legacy`` (datasketch < 2.0): ``a`` in ``[1, p)``, ``b`` in ``[0, p)`` with the Mersenne prime
  ``p = 2^61 - 1``; ``((a * h + b) mod 2^64 mod p) & (2^32 - 1)``.

Speed: the batch's shingle hashes are concatenated and every permutation is applied to the whole
batch at once (one multiply, one add, one segmented minimum per permutation via
``np.minimum.reduceat``), so the per-call overhead is paid per permutation, not per document.

The dots.llm1 settings are 5-gram shingles of normalized words (jieba tokens for Chinese),
2048 permutations = 128 bands x 16 rows, and ``affine64`` gives 64-bit hashing end to end.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.clean.text import jieba_tokens, uses_jieba
from pipeline.prepare.normalize import normalize_text

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH32 = np.uint64((1 << 32) - 1)
_WIDTH = {"affine32": 32, "affine64": 64, "legacy": 32}
_DTYPE = {"affine32": np.uint32, "affine64": np.uint64, "legacy": np.uint64}
_EMPTY = {"affine32": np.uint32(0xFFFFFFFF), "affine64": np.uint64(0xFFFFFFFFFFFFFFFF), "legacy": MAX_HASH32}


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


# ---- "tokens" shingle hash: each distinct token is hashed once (BLAKE2b-64, cached per worker),
# a shingle's hash mixes its tokens' hashes with fmix64, vectorized over the document's positions.
# Same 64-bit quality as hashing the shingle bytes, without one SHA-1 call per shingle.
_MIX = 0x9E3779B97F4A7C15
_TOKEN_CACHE: dict[str, int] = {}
_TOKEN_CACHE_MAX = 1 << 21
_M64 = (1 << 64) - 1


def token_hash(tok: str) -> int:
    """64-bit hash of one token (BLAKE2b, 8-byte digest, little-endian), cached."""
    v = _TOKEN_CACHE.get(tok)
    if v is None:
        if len(_TOKEN_CACHE) >= _TOKEN_CACHE_MAX:
            _TOKEN_CACHE.clear()
        v = int.from_bytes(hashlib.blake2b(tok.encode("utf-8"), digest_size=8).digest(), "little")
        _TOKEN_CACHE[tok] = v
    return v


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def token_shingle_hash64(shingle: bytes) -> int:
    """Scalar reference of the "tokens" shingle hash for one shingle (tokens joined by spaces):
    ``fmix64(sum_k token_hash(t_k) * MIX^(n-1-k) mod 2^64)``. Pass it to datasketch as ``hashfunc``
    (``& 0xFFFFFFFF`` for the 32-bit schemes) to reproduce our signatures."""
    h = 0
    for t in shingle.decode("utf-8").split(" "):
        h = (h * _MIX + token_hash(t)) & _M64
    return _fmix64_int(h)


def token_shingle_hashes(toks: Sequence[str], n: int = 5, scheme: str = "affine64") -> np.ndarray:
    """Distinct "tokens" hashes of the ``n``-gram shingles of ``toks`` (vectorized); a document
    shorter than ``n`` tokens is one shingle, no tokens no shingles (as :func:`shingles`)."""
    m = len(toks)
    if m == 0:
        return np.empty(0, dtype=_DTYPE[scheme])
    c = _TOKEN_CACHE
    th = np.array([c[t] if t in c else token_hash(t) for t in toks], dtype=np.uint64)
    k = min(n, m)
    w = m - k + 1
    h = th[:w].copy()
    mix = np.uint64(_MIX)
    for j in range(1, k):
        h *= mix
        h += th[j : j + w]
    h = np.unique(fmix64(h))
    if scheme != "affine64":
        h = (h & np.uint64(0xFFFFFFFF)).astype(_DTYPE[scheme])
    return h


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer on a uint32 array (wrapping arithmetic)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer on a uint64 array (wrapping arithmetic)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


# ---------------------------------------------------------------- signatures


def signatures(hash_lists: Sequence[np.ndarray], perms: Permutations, chunk: int = 1 << 15) -> np.ndarray:
    """``[n_docs, num_perm]`` MinHash signatures of a batch; ``hash_lists[i]`` holds document i's
    shingle hashes (any order, duplicates allowed). A document without shingles gets the
    scheme's empty value (datasketch's initial hash values) in every slot.

    Documents are processed in groups of about ``chunk`` shingle hashes: large enough that the
    three numpy calls per permutation are amortized over many documents, small enough that the
    working buffer (``chunk`` x 8 bytes) stays in the CPU caches."""
    n = len(hash_lists)
    if n == 0:
        return np.empty((0, perms.num_perm), dtype=_DTYPE[perms.scheme])
    groups, start, acc = [], 0, 0
    for i, h in enumerate(hash_lists):
        acc += len(h)
        if acc >= chunk:
            groups.append((start, i + 1))
            start, acc = i + 1, 0
    if start < n:
        groups.append((start, n))
    if len(groups) == 1:
        return _signatures(hash_lists, perms)
    return np.concatenate([_signatures(hash_lists[a:b], perms) for a, b in groups])


def _signatures(hash_lists: Sequence[np.ndarray], perms: Permutations) -> np.ndarray:
    scheme = perms.scheme
    dtype = _DTYPE[scheme]
    n = len(hash_lists)
    out = np.full((n, perms.num_perm), _EMPTY[scheme], dtype=dtype)
    lens = np.fromiter((len(h) for h in hash_lists), dtype=np.int64, count=n)
    nz = np.flatnonzero(lens)
    if len(nz) == 0:
        return out
    h = np.concatenate([np.asarray(hash_lists[i], dtype=dtype) for i in nz])
    starts = np.concatenate([[0], np.cumsum(lens[nz])[:-1]])
    if scheme == "affine64":
        h = fmix64(h)
    elif scheme == "affine32":
        h = fmix32(h)
    res = np.empty((perms.num_perm, len(nz)), dtype=dtype)
    buf = np.empty_like(h)
    a, b = perms.a, perms.b
    if scheme == "legacy":
        for j in range(perms.num_perm):
            np.multiply(h, a[j], out=buf)
            np.add(buf, b[j], out=buf)
            np.remainder(buf, MERSENNE_PRIME, out=buf)
            np.bitwise_and(buf, MAX_HASH32, out=buf)
            res[j] = np.minimum.reduceat(buf, starts)
    else:
        for j in range(perms.num_perm):
            np.multiply(h, a[j], out=buf)
            np.add(buf, b[j], out=buf)
            res[j] = np.minimum.reduceat(buf, starts)
    out[nz] = res.T
    return out


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
    shingle_hash: str = "sha1"

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
            d.shingle_hash,
        )


def doc_shingles(text: str | None, lang: str | None, p: MinHashParams) -> set[bytes]:
    return shingles(minhash_tokens(text, lang, p.jieba_langs, p.jieba_hmm), p.shingle_size)


def doc_shingle_hashes(text: str | None, lang: str | None, p: MinHashParams) -> np.ndarray:
    """The document's shingle hashes under ``p.shingle_hash``: ``sha1`` hashes each shingle's
    UTF-8 bytes (datasketch's default hash), ``tokens`` mixes cached token hashes."""
    toks = minhash_tokens(text, lang, p.jieba_langs, p.jieba_hmm)
    if p.shingle_hash == "tokens":
        return token_shingle_hashes(toks, p.shingle_size, p.scheme)
    return hash_shingles(shingles(toks, p.shingle_size), p.scheme)


def batch_signatures(texts: Sequence[str | None], langs: Sequence[str | None], p: MinHashParams, perms=None):
    """``(signatures [n, num_perm], n_shingles [n])`` of a batch of documents."""
    perms = perms or make_permutations(p.num_perm, p.perm_seed, p.scheme)
    hl = [doc_shingle_hashes(t, lg, p) for t, lg in zip(texts, langs)]
    return signatures(hl, perms), np.array([len(h) for h in hl], dtype=np.int64)


# ---------------------------------------------------------------- LSH bands

_BAND_MUL = np.uint64(0x9E3779B97F4A7C15)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``[n, bands]`` signed 64-bit bucket keys: band ``k``'s ``rows`` values mixed into one key
    (fmix64 chain seeded with the band index, so equal rows in different bands do not collide)."""
    n = sig.shape[0]
    if sig.shape[1] != bands * rows:
        raise ValueError(f"signature width {sig.shape[1]} != bands * rows = {bands * rows}")
    v = sig.astype(np.uint64, copy=False).reshape(n, bands, rows)
    h = np.broadcast_to(np.arange(1, bands + 1, dtype=np.uint64) * _BAND_MUL, (n, bands)).copy()
    for r in range(rows):
        h = fmix64(h * _BAND_MUL + v[:, :, r])
    return h.view(np.int64)


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity of two shingle sets (0 for two empty sets)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)
