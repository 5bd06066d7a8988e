"""MinHash signatures per second on one core: our compiled batch kernels vs datasketch, 2048 permutations.

    .venv/bin/python -m bench.minhash [--docs 300] [--num-perm 2048] [--scheme affine64] [--repeat 3] [--json OUT]

Pages: real page texts from ../shared/data (CleanEval/Dragnet/L3S gold text, tags stripped, pages
of 1-12k characters) or, when absent, generated text of the same length. datasketch gets the
reference shingle sets (5-gram shingles of the normalized words, as ``doc_shingles`` builds them;
that time is included in its end-to-end figure); ours goes from the raw texts to signatures
(``batch_signatures``) and, separately, to LSH band keys. Every signature is checked to be
identical to datasketch's before the figures are printed. Times are CPU seconds of this process
(``time.process_time``), the best of ``--repeat`` runs (the machine is shared), after a warm-up
that loads the compiled kernels.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import time
from pathlib import Path

import numpy as np

from bench import write_json
from pipeline.dedup.minhash import (
    MinHashParams,
    band_keys,
    batch_shingle_hashes,
    batch_signatures,
    doc_shingles,
    make_permutations,
    normalized_words,
    signatures_flat,
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


def best_of(repeat: int, f):
    """(min CPU seconds over ``repeat`` calls of ``f``, last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        out = f()
        best = min(best, time.process_time() - t0)
    return best, out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--num-perm", type=int, default=2048)
    ap.add_argument("--scheme", default="affine64", choices=["affine64", "affine32", "legacy"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    from datasketch import MinHash

    pages, source = load_pages(args.docs)
    n = len(pages)
    langs = ["en"] * n
    p = MinHashParams(
        num_perm=args.num_perm, bands=args.num_perm // 16, rows=16, scheme=args.scheme, perm_seed=args.seed
    )
    perms = make_permutations(args.num_perm, args.seed, args.scheme)
    batch_signatures(pages[:4], langs[:4], p, perms)  # warm-up: punctuation table, compiled kernels
    doc_shingles(pages[0], "en", p)
    rep = args.repeat

    t_shingle, shs = best_of(rep, lambda: [doc_shingles(t, "en", p) for t in pages])
    avg_sh = sum(len(x) for x in shs) / n

    def datasketch(scheme: str):
        out = []
        for x in shs:
            m = MinHash(num_perm=args.num_perm, seed=args.seed, scheme=scheme)
            m.update_batch(list(x))
            out.append(m.hashvalues)
        return out

    t_ds, ref = best_of(rep, lambda: datasketch(args.scheme))
    t_ds_default, _ = best_of(rep, lambda: datasketch("affine32"))  # datasketch's default scheme
    t_ours, (ours, n_sh) = best_of(rep, lambda: batch_signatures(pages, langs, p, perms))

    def with_bands():
        sig, _ = batch_signatures(pages, langs, p, perms)
        return band_keys(sig, p.bands, p.rows)

    t_bands, _ = best_of(rep, with_bands)
    # where our time goes
    t_norm, _ = best_of(rep, lambda: [normalized_words(t, "en", p) for t in pages])
    t_hash, (h, off) = best_of(rep, lambda: batch_shingle_hashes(pages, langs, p))
    t_sig, _ = best_of(rep, lambda: signatures_flat(h, off, perms))

    same = all(np.array_equal(ours[i], ref[i]) for i in range(n)) and all(
        n_sh[i] == len(shs[i]) for i in range(n)
    )
    if not same:
        raise SystemExit("signatures differ from datasketch: benchmark void")

    def rate(t: float) -> float:
        return n / t

    ds_e2e, ds_default = rate(t_ds + t_shingle), rate(t_ds_default + t_shingle)
    print(
        f"pages: {n} ({source}), avg {sum(len(t) for t in pages) / n:,.0f} chars, "
        f"avg {avg_sh:,.0f} distinct 5-gram shingles"
    )
    print(
        f"config: num_perm={args.num_perm} scheme={args.scheme} seed={args.seed}; CPU seconds of one "
        f"process, best of {rep}"
    )
    rows = [
        ("datasketch: text -> shingle sets (reference)", rate(t_shingle), ""),
        (f"datasketch: MinHash.update_batch, {args.scheme}", rate(t_ds), ""),
        (f"datasketch end to end, {args.scheme}", ds_e2e, " 1.00x"),
        ("datasketch end to end, default scheme affine32", ds_default, f" {ds_default / ds_e2e:5.2f}x"),
        (
            f"ours end to end, {args.scheme} (identical: {same})",
            rate(t_ours),
            f" {rate(t_ours) / ds_e2e:5.2f}x  ({rate(t_ours) / ds_default:.2f}x datasketch's default scheme)",
        ),
        ("ours end to end + LSH band keys", rate(t_bands), ""),
    ]
    for label, r, extra in rows:
        print(f"{label:<52s}: {r:8.1f} docs/s/core{extra}")
    print(
        f"ours per document: normalize {t_norm / n * 1e3:.3f} ms, + tokens/SHA-1/distinct "
        f"{(t_hash - t_norm) / n * 1e3:.3f} ms, signatures {t_sig / n * 1e3:.3f} ms, "
        f"band keys {(t_bands - t_ours) / n * 1e3:.3f} ms"
    )
    figures = {
        "pages": n, "source": source, "num_perm": args.num_perm, "scheme": args.scheme, "repeat": rep,
        "identical_to_datasketch": same,
        "docs_per_s_core": {"datasketch": ds_e2e, "datasketch_affine32": ds_default, "ours": rate(t_ours),
                            "ours_with_band_keys": rate(t_bands)},
        "ours_vs_datasketch": rate(t_ours) / ds_e2e,
    }
    if args.json:
        write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
