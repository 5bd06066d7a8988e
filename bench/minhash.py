"""MinHash signatures per second on one core: our numpy batch vs datasketch, 2048 permutations.

    PYTHONPATH=. .venv/bin/python bench/minhash.py [--docs 300] [--num-perm 2048] [--scheme affine64]

Pages: real page texts from ../shared/data (CleanEval/Dragnet/L3S gold text, tags stripped, pages
of 1-12k characters) or, when absent, generated text of the same length. Both sides get the same
shingle sets (5-gram shingles of the normalized words, as the dedup job builds them); the time of
building them is reported separately and included in the end-to-end figures. Every signature is
checked to be identical to datasketch's before the figures are printed.
"""

# ruff: noqa: E402, I001 - the sys.path fix below must run before the other imports
from __future__ import annotations

import sys
from os.path import abspath, dirname

# Run as a script: drop bench/ from the path (its modules, e.g. bench/tokenize.py, would shadow the
# standard library's) and put the repo root first.
_HERE = dirname(abspath(__file__))
sys.path[:] = [p for p in sys.path if abspath(p or ".") != _HERE]
sys.path.insert(0, dirname(_HERE))

import argparse
import gzip
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.dedup.minhash import (  # noqa: E402
    MinHashParams,
    doc_shingles,
    hash_shingles,
    make_permutations,
    signatures,
)

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "html-cleaning-dataset-merged"


def load_pages(n: int, seed: int = 0) -> tuple[list[str], str]:
    files = sorted(SHARED.glob("*/GoldStandard/*.txt.gz")) if SHARED.exists() else []
    pages = []
    for f in files:
        t = re.sub(r"<[^>]+>", " ", gzip.open(f).read().decode("utf-8", "replace"))
        if 1000 <= len(t) <= 12000:
            pages.append(t)
        if len(pages) >= n:
            break
    if len(pages) >= n:
        return pages, "shared gold page texts"
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    pages = [" ".join(rng.choices(vocab, weights, k=rng.randint(200, 1800))) for _ in range(n)]
    return pages, "generated Zipf text (shared data absent)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--num-perm", type=int, default=2048)
    ap.add_argument("--scheme", default="affine64", choices=["affine64", "affine32", "legacy"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from datasketch import MinHash

    from pipeline.dedup.minhash import batch_signatures, token_shingle_hash64
    from pipeline.prepare.normalize import normalize_text

    pages, source = load_pages(args.docs)
    n = len(pages)
    langs = ["en"] * n
    mk = dict(
        num_perm=args.num_perm, bands=args.num_perm // 16, rows=16, scheme=args.scheme, perm_seed=args.seed
    )
    p_sha1 = MinHashParams(**mk, shingle_hash="sha1")
    p_tok = MinHashParams(**mk, shingle_hash="tokens")
    normalize_text("warm up")  # builds the punctuation table once per process (not per document)
    perms = make_permutations(args.num_perm, args.seed, args.scheme)
    clock = time.process_time

    t0 = clock()
    shs = [doc_shingles(t, "en", p_sha1) for t in pages]
    t_shingle = clock() - t0
    avg_sh = sum(len(x) for x in shs) / n

    t0 = clock()
    ref = []
    for x in shs:
        m = MinHash(num_perm=args.num_perm, seed=args.seed, scheme=args.scheme)
        m.update_batch(list(x))
        ref.append(m.hashvalues)
    t_ds = clock() - t0

    t0 = clock()
    ours = signatures([hash_shingles(x, args.scheme) for x in shs], perms)
    t_ours = clock() - t0

    t0 = clock()
    ours_e2e, _ = batch_signatures(pages, langs, p_sha1, perms)
    t_ours_e2e = clock() - t0
    t0 = clock()
    tok_e2e, _ = batch_signatures(pages, langs, p_tok, perms)
    t_tok_e2e = clock() - t0

    # datasketch with its default scheme (affine32, 32-bit), the usual peer figure
    t0 = clock()
    for x in shs:
        m = MinHash(num_perm=args.num_perm, seed=args.seed)
        m.update_batch(list(x))
    t_ds_default = clock() - t0

    same = all(np.array_equal(ours[i], ref[i]) and np.array_equal(ours_e2e[i], ref[i]) for i in range(n))
    f = (
        token_shingle_hash64
        if args.scheme == "affine64"
        else (lambda b: token_shingle_hash64(b) & 0xFFFFFFFF)
    )
    same_tok = True
    for i in range(min(n, 20)):
        m = MinHash(num_perm=args.num_perm, seed=args.seed, scheme=args.scheme, hashfunc=f)
        m.update_batch(list(shs[i]))
        same_tok &= bool(np.array_equal(m.hashvalues, tok_e2e[i]))
    if not (same and same_tok):
        raise SystemExit(
            f"signatures differ from datasketch (sha1 {same}, tokens {same_tok}): benchmark void"
        )

    def rate(t: float) -> float:
        return n / t

    ds_e2e = rate(t_ds + t_shingle)
    print(
        f"pages: {n} ({source}), avg {sum(len(t) for t in pages) / n:,.0f} chars, "
        f"avg {avg_sh:,.0f} distinct 5-gram shingles"
    )
    print(
        f"config: num_perm={args.num_perm} scheme={args.scheme} seed={args.seed}; CPU seconds of one process"
    )
    print(f"text -> shingles (normalize, words, 5-grams)      : {rate(t_shingle):8.1f} docs/s")
    print(f"signature only  datasketch MinHash.update_batch   : {rate(t_ds):8.1f} docs/s")
    print(
        f"signature only  ours (sha1 per shingle + numpy)   : {rate(t_ours):8.1f} docs/s   {t_ds / t_ours:5.2f}x"
    )
    print(f"end to end      datasketch (shingles + MinHash)   : {ds_e2e:8.1f} docs/s/core")
    print(
        f"end to end      ours shingle_hash=sha1            : {rate(t_ours_e2e):8.1f} docs/s/core   "
        f"{rate(t_ours_e2e) / ds_e2e:5.2f}x  (identical to datasketch: {same})"
    )
    print(
        f"end to end      ours shingle_hash=tokens          : {rate(t_tok_e2e):8.1f} docs/s/core   "
        f"{rate(t_tok_e2e) / ds_e2e:5.2f}x  (identical to datasketch with hashfunc=token_shingle_hash64: "
        f"{same_tok})"
    )
    ds_default = rate(t_ds_default + t_shingle)
    print(
        f"end to end      datasketch default scheme affine32: {ds_default:8.1f} docs/s/core (the usual peer figure)"
    )
    print(
        f"ours shingle_hash=tokens, {args.scheme}, vs datasketch default scheme: {rate(t_tok_e2e) / ds_default:5.2f}x"
    )


if __name__ == "__main__":
    main()
