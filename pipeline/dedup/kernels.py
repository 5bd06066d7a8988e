"""Compiled (numba) MinHash kernels: shingle SHA-1, permutation minima, band keys.

Everything here works on flat arrays so that one call handles a whole batch of documents:

* ``buf``: the documents' normalized texts, UTF-8, tokens separated by single spaces, concatenated;
* ``tok_start`` / ``tok_end``: byte spans of the tokens in ``buf``; ``doc_tok``: ``[n_docs + 1]``
  offsets of each document's tokens. A shingle of ``k`` tokens is the byte span from its first
  token's start to its last token's end, i.e. exactly ``" ".join(tokens).encode()`` of the
  reference implementation, so no shingle string is ever built.

The per-shingle hash is SHA-1 (FIPS 180-4), computed here rather than through ``hashlib`` to avoid
one Python call per shingle; its digest's first 8 bytes read little-endian give datasketch's 64-bit
hash (``affine64``), the first 4 its 32-bit hash. The permutation step
``min_s (a_p * fmix(h_s) + b_p) mod 2^w`` runs with the permutations innermost (vectorized by LLVM)
and eight shingles per pass, so each load/store of the running minima serves eight products.

Signed arithmetic in numba carries LLVM's no-signed-wrap flag (overflow is undefined behaviour), so
all wrapping products are done in ``uint64``; for the 64-bit minimum the values are biased by 2^63
(folded into ``b``) and compared as signed integers, which AVX2 supports natively.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_M32 = 0xFFFFFFFF
_BIAS = np.uint64(1 << 63)
_MERSENNE = np.uint64((1 << 61) - 1)
_I64_MAX = np.int64(0x7FFFFFFFFFFFFFFF)

# ---------------------------------------------------------------- SHA-1 (FIPS 180-4)
# Words are kept in int64 below 2^32 and masked after every step: sums of a few 32-bit values and
# left shifts of < 32 bits stay far below 2^63, so no signed overflow can occur.


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & _M32


@njit(cache=True, nogil=True)
def _sha1_block(st, blk, off, w):
    """One SHA-1 compression of the 64 bytes ``blk[off:off+64]`` into state ``st`` (int64[5]); the
    rounds are unrolled five at a time so the variable rotation needs no moves."""
    for t in range(16):
        j = off + 4 * t
        w[t] = (
            (np.int64(blk[j]) << 24) | (np.int64(blk[j + 1]) << 16) | (np.int64(blk[j + 2]) << 8) | blk[j + 3]
        )
    for t in range(16, 80):
        w[t] = _rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1)
    a, b, c, d, e = st[0], st[1], st[2], st[3], st[4]
    for t in range(0, 20, 5):
        e = (e + _rotl(a, 5) + (d ^ (b & (c ^ d))) + 0x5A827999 + w[t]) & _M32
        b = _rotl(b, 30)
        d = (d + _rotl(e, 5) + (c ^ (a & (b ^ c))) + 0x5A827999 + w[t + 1]) & _M32
        a = _rotl(a, 30)
        c = (c + _rotl(d, 5) + (b ^ (e & (a ^ b))) + 0x5A827999 + w[t + 2]) & _M32
        e = _rotl(e, 30)
        b = (b + _rotl(c, 5) + (a ^ (d & (e ^ a))) + 0x5A827999 + w[t + 3]) & _M32
        d = _rotl(d, 30)
        a = (a + _rotl(b, 5) + (e ^ (c & (d ^ e))) + 0x5A827999 + w[t + 4]) & _M32
        c = _rotl(c, 30)
    for t in range(20, 40, 5):
        e = (e + _rotl(a, 5) + (b ^ c ^ d) + 0x6ED9EBA1 + w[t]) & _M32
        b = _rotl(b, 30)
        d = (d + _rotl(e, 5) + (a ^ b ^ c) + 0x6ED9EBA1 + w[t + 1]) & _M32
        a = _rotl(a, 30)
        c = (c + _rotl(d, 5) + (e ^ a ^ b) + 0x6ED9EBA1 + w[t + 2]) & _M32
        e = _rotl(e, 30)
        b = (b + _rotl(c, 5) + (d ^ e ^ a) + 0x6ED9EBA1 + w[t + 3]) & _M32
        d = _rotl(d, 30)
        a = (a + _rotl(b, 5) + (c ^ d ^ e) + 0x6ED9EBA1 + w[t + 4]) & _M32
        c = _rotl(c, 30)
    for t in range(40, 60, 5):
        e = (e + _rotl(a, 5) + ((b & c) | (d & (b | c))) + 0x8F1BBCDC + w[t]) & _M32
        b = _rotl(b, 30)
        d = (d + _rotl(e, 5) + ((a & b) | (c & (a | b))) + 0x8F1BBCDC + w[t + 1]) & _M32
        a = _rotl(a, 30)
        c = (c + _rotl(d, 5) + ((e & a) | (b & (e | a))) + 0x8F1BBCDC + w[t + 2]) & _M32
        e = _rotl(e, 30)
        b = (b + _rotl(c, 5) + ((d & e) | (a & (d | e))) + 0x8F1BBCDC + w[t + 3]) & _M32
        d = _rotl(d, 30)
        a = (a + _rotl(b, 5) + ((c & d) | (e & (c | d))) + 0x8F1BBCDC + w[t + 4]) & _M32
        c = _rotl(c, 30)
    for t in range(60, 80, 5):
        e = (e + _rotl(a, 5) + (b ^ c ^ d) + 0xCA62C1D6 + w[t]) & _M32
        b = _rotl(b, 30)
        d = (d + _rotl(e, 5) + (a ^ b ^ c) + 0xCA62C1D6 + w[t + 1]) & _M32
        a = _rotl(a, 30)
        c = (c + _rotl(d, 5) + (e ^ a ^ b) + 0xCA62C1D6 + w[t + 2]) & _M32
        e = _rotl(e, 30)
        b = (b + _rotl(c, 5) + (d ^ e ^ a) + 0xCA62C1D6 + w[t + 3]) & _M32
        d = _rotl(d, 30)
        a = (a + _rotl(b, 5) + (c ^ d ^ e) + 0xCA62C1D6 + w[t + 4]) & _M32
        c = _rotl(c, 30)
    st[0] = (st[0] + a) & _M32
    st[1] = (st[1] + b) & _M32
    st[2] = (st[2] + c) & _M32
    st[3] = (st[3] + d) & _M32
    st[4] = (st[4] + e) & _M32


@njit(cache=True, nogil=True, inline="always")
def _bswap32(x):
    return ((x & 0xFF) << 24) | ((x & 0xFF00) << 8) | ((x >> 8) & 0xFF00) | ((x >> 24) & 0xFF)


@njit(cache=True, nogil=True)
def _sha1_prefix64(buf, s, e, st, w, pad):
    """First 8 bytes of SHA-1(``buf[s:e]``) read little-endian (datasketch's ``sha1_hash64``)."""
    st[0] = 0x67452301
    st[1] = 0xEFCDAB89
    st[2] = 0x98BADCFE
    st[3] = 0x10325476
    st[4] = 0xC3D2E1F0
    n = e - s
    full = n // 64
    for k in range(full):
        _sha1_block(st, buf, s + 64 * k, w)
    rem = n - 64 * full
    last = 64 if rem < 56 else 128
    for k in range(rem):
        pad[k] = buf[s + 64 * full + k]
    pad[rem] = 0x80
    for k in range(rem + 1, last - 8):
        pad[k] = 0
    bits = n * 8
    for k in range(8):
        pad[last - 1 - k] = (bits >> (8 * k)) & 0xFF
    _sha1_block(st, pad, 0, w)
    if last == 128:
        _sha1_block(st, pad, 64, w)
    return np.uint64(_bswap32(st[0])) | (np.uint64(_bswap32(st[1])) << np.uint64(32))


@njit(cache=True, nogil=True)
def sha1_prefix64_spans(buf, starts, ends):
    """``uint64[n]``: :func:`_sha1_prefix64` of every byte span ``buf[starts[i]:ends[i]]``."""
    st = np.empty(5, np.int64)
    w = np.empty(80, np.int64)
    pad = np.empty(128, np.uint8)
    out = np.empty(len(starts), np.uint64)
    for i in range(len(starts)):
        out[i] = _sha1_prefix64(buf, starts[i], ends[i], st, w, pad)
    return out


# ---------------------------------------------------------------- tokens and shingles


@njit(cache=True, nogil=True)
def space_tokens(buf, doc_off):
    """Token spans of documents whose normalized text is ``buf[doc_off[d]:doc_off[d+1]]`` with tokens
    separated by single ASCII spaces -> ``(tok_start, tok_end, doc_tok)``."""
    n_docs = len(doc_off) - 1
    cap = 0
    for d in range(n_docs):
        if doc_off[d + 1] > doc_off[d]:
            cap += 1
    for i in range(doc_off[0], doc_off[n_docs]):
        if buf[i] == 32:
            cap += 1
    ts = np.empty(cap, np.int64)
    te = np.empty(cap, np.int64)
    doc_tok = np.empty(n_docs + 1, np.int64)
    k = 0
    for d in range(n_docs):
        doc_tok[d] = k
        s, e = doc_off[d], doc_off[d + 1]
        if e == s:
            continue
        start = s
        for i in range(s, e):
            if buf[i] == 32:
                ts[k] = start
                te[k] = i
                k += 1
                start = i + 1
        ts[k] = start
        te[k] = e
        k += 1
    doc_tok[n_docs] = k
    return ts[:k], te[:k], doc_tok


@njit(cache=True, nogil=True)
def shingle_hashes(buf, tok_start, tok_end, doc_tok, k):
    """Distinct 64-bit SHA-1 prefixes of every document's ``k``-token shingles (a document of fewer
    than ``k`` tokens is one shingle, none without tokens) -> ``(hashes, doc_off)``, each document's
    hashes sorted ascending. Duplicate shingles share a hash and are kept once; two distinct
    shingles collide with probability ~2^-64."""
    n_docs = len(doc_tok) - 1
    cap = 0
    for d in range(n_docs):
        m = doc_tok[d + 1] - doc_tok[d]
        cap += max(m - k + 1, 1) if m > 0 else 0
    out = np.empty(cap, np.uint64)
    doc_off = np.empty(n_docs + 1, np.int64)
    st = np.empty(5, np.int64)
    w = np.empty(80, np.int64)
    pad = np.empty(128, np.uint8)
    pos = 0
    for d in range(n_docs):
        doc_off[d] = pos
        t0, t1 = doc_tok[d], doc_tok[d + 1]
        m = t1 - t0
        if m == 0:
            continue
        kk = min(k, m)
        start = pos
        for i in range(t0, t1 - kk + 1):
            out[pos] = _sha1_prefix64(buf, tok_start[i], tok_end[i + kk - 1], st, w, pad)
            pos += 1
        seg = np.sort(out[start:pos])
        u = 0
        for j in range(len(seg)):
            if j == 0 or seg[j] != seg[j - 1]:
                out[start + u] = seg[j]
                u += 1
        pos = start + u
    doc_off[n_docs] = pos
    return out[:pos], doc_off


# ---------------------------------------------------------------- permutation minima


@njit(cache=True, nogil=True, inline="always")
def _fmix64(h):
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@njit(cache=True, nogil=True, inline="always")
def _fmix32(h):
    m = np.uint64(_M32)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & m
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & m
    return h ^ (h >> np.uint64(16))


@njit(cache=True, nogil=True)
def _min_affine64(x, a, bx, row):
    """``row[p] = min_i (a[p] * x[i] + b[p]) mod 2^64`` with values biased by 2^63 (``bx = b ^ 2^63``)
    and compared as signed: ``row`` (int64) holds ``value ^ 2^63``."""
    P = a.shape[0]
    n = x.shape[0]
    i = 0
    while i + 8 <= n:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        x4, x5, x6, x7 = x[i + 4], x[i + 5], x[i + 6], x[i + 7]
        for p in range(P):
            ap = a[p]
            bp = bx[p]
            m0 = min(np.int64(ap * x0 + bp), np.int64(ap * x1 + bp))
            m1 = min(np.int64(ap * x2 + bp), np.int64(ap * x3 + bp))
            m2 = min(np.int64(ap * x4 + bp), np.int64(ap * x5 + bp))
            m3 = min(np.int64(ap * x6 + bp), np.int64(ap * x7 + bp))
            m = min(min(m0, m1), min(m2, m3))
            o = row[p]
            row[p] = m if m < o else o
        i += 8
    while i < n:
        xi = x[i]
        for p in range(P):
            v = np.int64(a[p] * xi + bx[p])
            if v < row[p]:
                row[p] = v
        i += 1


@njit(cache=True, nogil=True)
def _min_affine32(x, a, b, row):
    """``row[p] = min_i (a[p] * x[i] + b[p]) mod 2^32`` (uint32 lanes)."""
    P = a.shape[0]
    n = x.shape[0]
    i = 0
    while i + 8 <= n:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        x4, x5, x6, x7 = x[i + 4], x[i + 5], x[i + 6], x[i + 7]
        for p in range(P):
            ap = a[p]
            bp = b[p]
            m0 = min(np.uint32(ap * x0 + bp), np.uint32(ap * x1 + bp))
            m1 = min(np.uint32(ap * x2 + bp), np.uint32(ap * x3 + bp))
            m2 = min(np.uint32(ap * x4 + bp), np.uint32(ap * x5 + bp))
            m3 = min(np.uint32(ap * x6 + bp), np.uint32(ap * x7 + bp))
            m = min(min(m0, m1), min(m2, m3))
            o = row[p]
            row[p] = m if m < o else o
        i += 8
    while i < n:
        xi = x[i]
        for p in range(P):
            v = np.uint32(a[p] * xi + b[p])
            if v < row[p]:
                row[p] = v
        i += 1


@njit(cache=True, nogil=True)
def _min_legacy(x, a, b, row):
    """``row[p] = min_i ((a[p] * x[i] + b[p]) mod 2^64 mod (2^61 - 1)) & (2^32 - 1)``; the Mersenne
    reduction is ``(v & p) + (v >> 61)`` then one conditional subtraction (v < 2^64 -> sum < 2p)."""
    P = a.shape[0]
    n = x.shape[0]
    mp = _MERSENNE
    m32 = np.uint64(_M32)
    for i in range(n):
        xi = x[i]
        for p in range(P):
            v = a[p] * xi + b[p]
            r = (v & mp) + (v >> np.uint64(61))
            if r >= mp:
                r -= mp
            r &= m32
            if r < row[p]:
                row[p] = r


@njit(cache=True, nogil=True)
def minhash_affine64(h, doc_off, a, b):
    """``uint64[n_docs, P]`` affine64 signatures: ``h`` raw 64-bit shingle hashes (fmix64 applied
    here), document ``d`` owning ``h[doc_off[d]:doc_off[d+1]]``; empty documents get 2^64 - 1."""
    n_docs = len(doc_off) - 1
    P = a.shape[0]
    bx = b ^ _BIAS
    out = np.empty((n_docs, P), np.uint64)
    row = np.empty(P, np.int64)
    xs = np.empty(0, np.uint64)
    for d in range(n_docs):
        s, e = doc_off[d], doc_off[d + 1]
        if len(xs) < e - s:
            xs = np.empty(e - s, np.uint64)
        for i in range(e - s):
            xs[i] = _fmix64(h[s + i])
        row[:] = _I64_MAX
        _min_affine64(xs[: e - s], a, bx, row)
        for p in range(P):
            out[d, p] = np.uint64(row[p]) ^ _BIAS
    return out


@njit(cache=True, nogil=True)
def minhash_affine32(h, doc_off, a, b):
    """``uint32[n_docs, P]`` affine32 signatures of 32-bit hashes ``h`` (uint64 holding < 2^32;
    fmix32 applied here); empty documents get 2^32 - 1."""
    n_docs = len(doc_off) - 1
    P = a.shape[0]
    out = np.empty((n_docs, P), np.uint32)
    row = np.empty(P, np.uint32)
    xs = np.empty(0, np.uint32)
    for d in range(n_docs):
        s, e = doc_off[d], doc_off[d + 1]
        if len(xs) < e - s:
            xs = np.empty(e - s, np.uint32)
        for i in range(e - s):
            xs[i] = np.uint32(_fmix32(h[s + i] & np.uint64(_M32)))
        row[:] = np.uint32(_M32)
        _min_affine32(xs[: e - s], a, b, row)
        out[d, :] = row
    return out


@njit(cache=True, nogil=True)
def minhash_legacy(h, doc_off, a, b):
    """``uint64[n_docs, P]`` legacy (datasketch < 2.0) signatures of 32-bit hashes ``h``; empty
    documents get 2^32 - 1."""
    n_docs = len(doc_off) - 1
    P = a.shape[0]
    out = np.empty((n_docs, P), np.uint64)
    row = np.empty(P, np.uint64)
    xs = np.empty(0, np.uint64)
    for d in range(n_docs):
        s, e = doc_off[d], doc_off[d + 1]
        if len(xs) < e - s:
            xs = np.empty(e - s, np.uint64)
        for i in range(e - s):
            xs[i] = h[s + i] & np.uint64(_M32)
        row[:] = np.uint64(_M32)
        _min_legacy(xs[: e - s], a, b, row)
        out[d, :] = row
    return out


# ---------------------------------------------------------------- LSH band keys

_BAND_MUL = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def band_keys(sig, bands, rows):
    """``int64[n, bands]``: band ``k``'s ``rows`` signature values mixed into one key (fmix64 chain
    seeded with ``(k + 1) * MUL``, so equal rows in different bands do not collide)."""
    n = sig.shape[0]
    out = np.empty((n, bands), np.int64)
    for i in range(n):
        for k in range(bands):
            h = np.uint64(k + 1) * _BAND_MUL
            for r in range(rows):
                h = _fmix64(h * _BAND_MUL + np.uint64(sig[i, k * rows + r]))
            out[i, k] = np.int64(h)
    return out


@njit(cache=True, nogil=True)
def pair_jaccard(ha, off_a, hb, off_b):
    """``float64[n]``: Jaccard similarity of the sorted distinct hash sets ``ha[off_a[i]:off_a[i+1]]``
    and ``hb[off_b[i]:off_b[i+1]]`` (merge count; 0 when both are empty)."""
    n = len(off_a) - 1
    out = np.zeros(n, np.float64)
    for i in range(n):
        i0, i1, j0, j1 = off_a[i], off_a[i + 1], off_b[i], off_b[i + 1]
        inter = 0
        while i0 < i1 and j0 < j1:
            x, y = ha[i0], hb[j0]
            if x == y:
                inter += 1
                i0 += 1
                j0 += 1
            elif x < y:
                i0 += 1
            else:
                j0 += 1
        union = (off_a[i + 1] - off_a[i]) + (off_b[i + 1] - off_b[i]) - inter
        if union > 0:
            out[i] = inter / union
    return out


# ---------------------------------------------------------------- LSH buckets -> star edges


@njit(cache=True, nogil=True)
def star_edges(keys, nids):
    """Candidate edges of the buckets among ``(keys[i], nids[i])`` pairs sorted by ``keys`` (bucket
    key, node id; a node appears at most once per key): every member of a bucket with several
    nodes -> the bucket's smallest node id; no pair of a bucket is enumerated. Returns
    ``(src, dst)`` sorted by ``(src, dst)`` without duplicates (a pair shared by many bands is
    emitted once)."""
    n = len(keys)
    src = np.empty(n, np.int64)
    dst = np.empty(n, np.int64)
    k = 0
    i = 0
    while i < n:
        m = nids[i]
        j = i + 1
        while j < n and keys[j] == keys[i]:
            m = min(m, nids[j])
            j += 1
        if j - i > 1:
            for t in range(i, j):
                if nids[t] != m:
                    src[k] = nids[t]
                    dst[k] = m
                    k += 1
        i = j
    src = src[:k]
    dst = dst[:k]
    o = np.argsort(dst, kind="mergesort")
    o = o[np.argsort(src[o], kind="mergesort")]
    out_s = np.empty(k, np.int64)
    out_d = np.empty(k, np.int64)
    u = 0
    for t in range(k):
        s, d = src[o[t]], dst[o[t]]
        if u == 0 or s != out_s[u - 1] or d != out_d[u - 1]:
            out_s[u] = s
            out_d[u] = d
            u += 1
    return out_s[:u], out_d[:u]
