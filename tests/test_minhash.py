"""MinHash signatures equal datasketch's; the LSH S-curve of 128 bands x 16 rows holds empirically."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from pipeline.dedup.minhash import (
    MinHashParams,
    band_keys,
    batch_signatures,
    doc_shingles,
    hash_shingles,
    jaccard,
    make_permutations,
    minhash_tokens,
    shingles,
    signatures,
)

TEXTS = [
    "The harbour workers gathered near the old crane to discuss the schedule for unloading grain, "
    "while the storm clouds rolled in from the west and the gulls went quiet.",
    "The harbour workers gathered near the old crane to discuss the schedule for unloading wheat, "
    "while the storm clouds rolled in from the west and the gulls went quiet!",
    "Café naïve résumé — a short one.",
    "",
    "二零二四年夏天，我们在南方的一个小镇度过了两个星期，镇上的老街保留着许多明清时期的建筑。",
]
LANGS = ["en", "en", "fr", "en", "zh"]


def _datasketch(shs, num_perm, seed, scheme):
    m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
    m.update_batch(list(shs))
    return m.hashvalues


@pytest.mark.parametrize("scheme", ["affine64", "affine32", "legacy"])
def test_permutations_match_datasketch(scheme):
    ours = make_permutations(64, seed=3, scheme=scheme)
    a, b = MinHash(num_perm=64, seed=3, scheme=scheme).permutations
    assert np.array_equal(ours.a, a) and np.array_equal(ours.b, b)


@pytest.mark.parametrize(
    "scheme,num_perm,seed", [("affine64", 2048, 1), ("affine32", 256, 5), ("legacy", 128, 42)]
)
def test_signatures_equal_datasketch(scheme, num_perm, seed):
    p = MinHashParams(num_perm=num_perm, bands=num_perm // 16, rows=16, scheme=scheme, perm_seed=seed)
    sig, n_sh = batch_signatures(TEXTS, LANGS, p)
    assert sig.shape == (len(TEXTS), num_perm)
    for i, (t, lg) in enumerate(zip(TEXTS, LANGS)):
        shs = doc_shingles(t, lg, p)
        assert n_sh[i] == len(shs)
        ref = _datasketch(shs, num_perm, seed, scheme)
        assert ref.dtype == sig.dtype
        assert np.array_equal(ref, sig[i]), f"doc {i} differs from datasketch ({scheme})"


def test_signatures_random_batches_equal_datasketch():
    rng = np.random.default_rng(11)
    docs = [{f"s{x}".encode() for x in rng.integers(0, 5000, rng.integers(0, 400))} for _ in range(30)]
    perms = make_permutations(2048, 1, "affine64")
    sig = signatures([hash_shingles(d) for d in docs], perms)
    for i, d in enumerate(docs):
        assert np.array_equal(sig[i], _datasketch(d, 2048, 1, "affine64"))


def test_tokens_and_shingles():
    toks = minhash_tokens("Hello,   WORLD!  Café", "en")
    assert toks == ["hello", "world", "cafe\u0301"]  # punctuation gone, NFD, lowercase
    zh = minhash_tokens("我们在北京的清华大学学习。", "zh")
    assert "清华大学" in zh and "。" not in zh
    assert shingles(["a", "b", "c", "d", "e", "f"], 5) == {b"a b c d e", b"b c d e f"}
    assert shingles(["a", "b"], 5) == {b"a b"}
    assert shingles([], 5) == set()
    # punctuation-only differences give identical shingles
    p = MinHashParams()
    assert doc_shingles("Hello, world: one two three!", "en", p) == doc_shingles(
        "hello world one two three", "en", p
    )
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5 and jaccard(set(), set()) == 0.0


def test_band_keys():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**63, (3, 2048), dtype=np.uint64)
    sig[1] = sig[0]
    sig[1, 17] ^= np.uint64(1)  # band 1 (rows 16..31) differs
    keys = band_keys(sig, 128, 16)
    assert keys.shape == (3, 128) and keys.dtype == np.int64
    same = keys[0] == keys[1]
    assert not same[1] and same.sum() == 127
    assert not (keys[0] == keys[2]).any()
    flat = np.zeros((1, 32), dtype=np.uint64)  # equal rows in two bands -> different bucket keys
    k = band_keys(flat, 2, 16)
    assert k[0, 0] != k[0, 1]
    with pytest.raises(ValueError):
        band_keys(sig, 100, 16)


def _pair_sets(rng, jac: float, union: int = 240):
    shared = round(jac * union)
    each = (union - shared) // 2
    vals = rng.integers(0, 2**64 - 1, shared + 2 * each, dtype=np.uint64, endpoint=True)
    a = vals[: shared + each]
    b = np.concatenate([vals[:shared], vals[shared + each :]])
    return a, b, shared / (shared + 2 * each)


def test_lsh_s_curve_128x16():
    """Empirical candidate rate of pairs with known Jaccard vs 1 - (1 - J^16)^128."""
    rng = np.random.default_rng(2024)
    perms = make_permutations(2048, 1, "affine64")
    n_pairs = 250
    for target in (0.5, 0.7, 0.8, 0.9):
        hl, js = [], []
        for _ in range(n_pairs):
            a, b, j = _pair_sets(rng, target)
            hl += [a, b]
            js.append(j)
        keys = band_keys(signatures(hl, perms), 128, 16)
        hit = (keys[0::2] == keys[1::2]).any(axis=1)
        rate = hit.mean()
        j = float(np.mean(js))
        theory = 1 - (1 - j**16) ** 128
        assert abs(rate - theory) < 0.08, (target, rate, theory)
        if target == 0.8:
            assert rate >= 0.93  # ~97% caught
        if target == 0.5:
            assert rate <= 0.02  # almost never


# ---------------------------------------------------------------- compiled kernels


def test_kernel_sha1_equals_hashlib():
    """SHA-1 prefixes of byte spans of every length around the padding boundaries (55/56/64)."""
    import hashlib

    from pipeline.dedup.kernels import sha1_prefix64_spans

    rng = np.random.default_rng(5)
    buf = rng.integers(0, 256, 2000, dtype=np.uint8)
    lengths = list(range(0, 140)) + [191, 192, 255, 256, 1000]
    starts = rng.integers(0, 500, len(lengths)).astype(np.int64)
    ends = starts + np.array(lengths, dtype=np.int64)
    got = sha1_prefix64_spans(buf, starts, ends)
    for s, e, g in zip(starts, ends, got):
        ref = int.from_bytes(hashlib.sha1(buf[s:e].tobytes()).digest()[:8], "little")
        assert int(g) == ref, (s, e)


NORM_CASES = [
    "",
    "   ",
    "...!!!",
    "one",
    "Hello, WORLD!",
    "a b c d",  # fewer tokens than the shingle size: one shingle
    "a\x1cb\x1dc\x1ed\x1ff\tg\nh\x0bi\x0cj\rk",  # every ASCII separator str.split() knows
    "".join(chr(c) for c in range(128)),
    "caf\u00e9 NA\u00cfVE \u201cquoted\u201d \u2014 dash\u00a0nbsp\u3000ideo\u2028sep \u0130stanbul",
    "x" * 300 + " " + "y" * 70,  # long shingles (several SHA-1 blocks)
    "\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0391; \u00bfQu\u00e9? \u00abguillemets\u00bb",
]


def test_normalized_words_equal_reference():
    from pipeline.dedup.minhash import normalized_words

    p = MinHashParams()
    for t in NORM_CASES + TEXTS:
        for lang in ("en", "zh"):
            ref = " ".join(minhash_tokens(t, lang)).encode("utf-8")
            assert normalized_words(t, lang, p) == ref, (t, lang)
    assert normalized_words(None, "en", p) == b""


@pytest.mark.parametrize("scheme", ["affine64", "affine32", "legacy"])
def test_kernel_edge_documents_equal_datasketch(scheme):
    """Empty documents, punctuation-only ones, single-token, single-shingle, exactly-5-token and
    repeated-shingle documents, in one batch, against datasketch document by document."""
    texts = NORM_CASES + [
        "one two three four five",
        "one two three four five six",
        "la la la la la la la la la la la",  # one distinct shingle repeated
        None,
        *TEXTS,
    ]
    langs = ["en"] * (len(texts) - len(TEXTS)) + LANGS
    p = MinHashParams(num_perm=256, bands=16, rows=16, scheme=scheme, perm_seed=7)
    sig, n_sh = batch_signatures(texts, langs, p)
    empty = {"affine64": 2**64 - 1, "affine32": 2**32 - 1, "legacy": 2**32 - 1}[scheme]
    for i, (t, lg) in enumerate(zip(texts, langs)):
        shs = doc_shingles(t, lg, p)
        assert n_sh[i] == len(shs), (i, t)
        if not shs:
            assert (sig[i] == empty).all()
        assert np.array_equal(sig[i], _datasketch(shs, 256, 7, scheme)), (i, t)
    assert n_sh[texts.index("la la la la la la la la la la la")] == 1
    assert n_sh[texts.index("a b c d")] == 1


def test_kernel_batch_composition_does_not_matter():
    """A document's signature is the same alone, in a batch, and in any order."""
    p = MinHashParams()
    perms = make_permutations(2048, 1, "affine64")
    texts = NORM_CASES + TEXTS
    langs = ["en"] * len(NORM_CASES) + LANGS
    whole, _ = batch_signatures(texts, langs, p, perms)
    order = np.random.default_rng(3).permutation(len(texts))
    shuffled, _ = batch_signatures([texts[i] for i in order], [langs[i] for i in order], p, perms)
    assert np.array_equal(shuffled, whole[order])
    for i in (0, 5, len(texts) - 1):
        alone, _ = batch_signatures([texts[i]], [langs[i]], p, perms)
        assert np.array_equal(alone[0], whole[i])


def test_kernel_star_edges_equal_reference():
    """Bucket star edges from sorted (key, nid) pairs equal the dict-based reference, deduplicated."""
    from pipeline.dedup.kernels import star_edges as star_edges_kernel
    from pipeline.dedup.lsh import star_edges

    rng = np.random.default_rng(8)
    n, bands = 300, 16
    keys = rng.integers(0, 40, (n, bands)).astype(np.int64) + np.arange(bands) * 1000  # many collisions
    keys[rng.random(n) < 0.3] = rng.integers(10**6, 10**9, bands)  # some unique rows
    # sparse, large node ids, increasing with the row (the reference roots a bucket at its first row)
    nids = np.sort(rng.permutation(10 * n)[:n]).astype(np.int64) * 7 + 2**40
    ref = {(int(nids[a]), int(nids[b])) for a, b in star_edges(keys)}
    flat_k, flat_n = keys.reshape(-1), np.repeat(nids, bands)
    order = np.argsort(flat_k, kind="stable")
    src, dst = star_edges_kernel(flat_k[order], flat_n[order])
    got = list(zip(src.tolist(), dst.tolist()))
    assert got == sorted(set(got)) and set(got) == ref and len(ref) > 50
    shuffled = rng.permutation(len(flat_k))  # ties in any order: same edges
    o2 = shuffled[np.argsort(flat_k[shuffled], kind="stable")]
    s2, d2 = star_edges_kernel(flat_k[o2], flat_n[o2])
    assert np.array_equal(s2, src) and np.array_equal(d2, dst)
    e0 = star_edges_kernel(np.empty(0, np.int64), np.empty(0, np.int64))
    assert len(e0[0]) == 0 and len(e0[1]) == 0
