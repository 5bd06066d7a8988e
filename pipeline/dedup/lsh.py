"""LSH banding -> candidate edges -> components -> survivors, in plain Python.

The Spark job distributes exactly these steps; :func:`dedup_reference` runs them on a list of
documents (tests, small corpora) and is what the job's output is compared with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from pipeline.dedup.components import union_find_components
from pipeline.dedup.minhash import (
    MinHashParams,
    band_keys,
    batch_shingle_hashes,
    doc_shingles,
    jaccard,
    make_permutations,
    signatures_flat,
)

REASON_DUPLICATE = "minhash_duplicate"


def survivor_priority(seed: int, doc_id: str) -> int:
    """63-bit hash of ``f"{seed}:{doc_id}"`` (BLAKE2b); the smallest ``(priority, doc_id)`` of a
    component survives, so the choice depends on the seed and the ids only."""
    from pipeline.prepare.normalize import stable_hash64

    return stable_hash64(seed, doc_id)


def star_edges(keys: np.ndarray) -> set[tuple[int, int]]:
    """Candidate edges from band keys ``[n, bands]`` (row index = node id): every member of a
    bucket with several documents -> the bucket's smallest member (no pair enumeration)."""
    buckets: dict[tuple[int, int], int] = {}
    edges = set()
    for i in range(keys.shape[0]):
        for b, k in enumerate(keys[i]):
            root = buckets.setdefault((b, int(k)), i)
            if root != i:
                edges.add((i, root))
    return edges


def dedup_reference(
    docs: Sequence[tuple[str, str | None, str | None]],
    p: MinHashParams = MinHashParams(),
    seed: int = 0,
    verify_threshold: float | None = None,
) -> dict[str, tuple[str, int]]:
    """``docs``: ``[(doc_id, text, lang)]`` -> ``{doc_id: (dup_cluster, dup_cluster_size)}`` where
    ``dup_cluster`` is the surviving doc_id of the document's component (itself when alone)."""
    perms = make_permutations(p.num_perm, p.perm_seed, p.scheme)
    h, doc_off = batch_shingle_hashes([t for _, t, _ in docs], [lg for _, _, lg in docs], p)
    nz = [int(i) for i in np.flatnonzero(np.diff(doc_off))]
    sig = signatures_flat(h, np.concatenate([[0], doc_off[1:][nz]]), perms)
    keys = band_keys(sig, p.bands, p.rows) if nz else np.zeros((0, p.bands), dtype=np.int64)
    edges = {(nz[a], nz[b]) for a, b in star_edges(keys)}
    if verify_threshold is not None:
        shs = {i: doc_shingles(docs[i][1], docs[i][2], p) for e in edges for i in e}
        edges = {(a, b) for a, b in edges if jaccard(shs[a], shs[b]) >= verify_threshold}
    comp = union_find_components(edges)
    groups: dict[int, list[int]] = defaultdict(list)
    for node, root in comp.items():
        groups[root].append(node)
    out = {d: (d, 1) for d, _, _ in docs}
    for members in groups.values():
        ids = [docs[i][0] for i in members]
        best = min(ids, key=lambda d: (survivor_priority(seed, d), d))
        for d in ids:
            out[d] = (best, len(ids))
    return out
