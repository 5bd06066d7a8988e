"""MinHash signatures per second on one core: our numpy batch vs datasketch, 2048 permutations.

    PYTHONPATH=. .venv/bin/python bench/minhash.py [--docs 300] [--num-perm 2048] [--scheme affine64]

Pages: real page texts from ../shared/data (CleanEval/Dragnet/L3S gold text, tags stripped, pages
of 1-12k characters) or, when absent, generated text of the same length. Both sides get the same
shingle sets (5-gram shingles of the normalized words, as the dedup job builds them); the time of
building them is reported separately and included in the end-to-end figures. Every signature is
checked to be identical to datasketch's before the figures are printed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pages, source = load_pages(args.docs)
    p = MinHashParams(
        num_perm=args.num_perm, bands=args.num_perm // 16, rows=16, scheme=args.scheme, perm_seed=args.seed
    )
    n = len(pages)
    avg_chars = sum(len(t) for t in pages) / n

    t0 = time.process_time()
    shs = [doc_shingles(t, "en", p) for t in pages]
    t_shingle = time.process_time() - t0
    avg_sh = sum(len(s) for s in shs) / n

    t0 = time.process_time()
    perms = make_permutations(args.num_perm, args.seed, args.scheme)
    hl = [hash_shingles(s, args.scheme) for s in shs]
    t_hash = time.process_time() - t0
    t0 = time.process_time()
    ours = signatures(hl, perms)
    t_ours = time.process_time() - t0 + t_hash

    t0 = time.process_time()
    ref = []
    for s in shs:
        m = MinHash(num_perm=args.num_perm, seed=args.seed, scheme=args.scheme)
        m.update_batch(list(s))
        ref.append(m.hashvalues)
    t_ds = time.process_time() - t0
    identical = all(np.array_equal(ours[i], ref[i]) for i in range(n))
    if not identical:
        raise SystemExit("signatures differ from datasketch: the benchmark is void")

    def rate(t: float) -> float:
        return n / t

    print(f"pages: {n} ({source}), avg {avg_chars:,.0f} chars, avg {avg_sh:,.0f} distinct 5-gram shingles")
    print(f"config: num_perm={args.num_perm} scheme={args.scheme} seed={args.seed}; CPU time of one process")
    print(f"shingling (shared by both)      : {rate(t_shingle):9.1f} docs/s")
    print(f"datasketch MinHash.update_batch : {rate(t_ds):9.1f} docs/s  (signature only)")
    print(f"ours hash + numpy batch         : {rate(t_ours):9.1f} docs/s  (signature only)")
    e2e_ds, e2e_ours = rate(t_ds + t_shingle), rate(t_ours + t_shingle)
    print(f"end to end datasketch           : {e2e_ds:9.1f} docs/s/core")
    print(f"end to end ours                 : {e2e_ours:9.1f} docs/s/core")
    print(f"speedup signature only          : {t_ds / t_ours:6.2f}x")
    print(f"speedup end to end              : {e2e_ours / e2e_ds:6.2f}x   identical signatures: {identical}")


if __name__ == "__main__":
    main()
