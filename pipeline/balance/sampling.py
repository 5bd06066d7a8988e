"""Deterministic category re-sampling (plain Python; the Spark job calls these functions).

The target mix follows the practice of weighting data sources/domains by quality and temperature
sampling over their natural shares (XLM-R / mT5 use ``p_i ~ n_i^alpha`` over languages; the
dots.llm1, DeepSeek-V3 and Llama-3 reports up-weight knowledge-rich, educational and scientific data
and down-weight low-value web domains). A document of leaf ``c`` gets the expected number of copies

    s_c = scale * w_c * (n_c / N) ** (temperature - 1),  capped at max_weight,

``scale`` chosen so that ``sum_c n_c * s_c = target_ratio * N`` (capped leaves are fixed at the cap and
the rest re-scaled, water-filling). The per-document decision depends only on ``(seed, doc_id)`` and
the leaf's ``s_c``, so any partitioning of the input gives the same output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from pipeline.category.taxonomy import Taxonomy

BALANCE_DOWNSAMPLED = "balance_downsampled"
UNKNOWN = -1  # key of rows whose category is null or not a leaf id


def unit_hash(seed: int, doc_id: str | None) -> float:
    """Uniform number in [0, 1) from a 64-bit BLAKE2b hash of ``f"{seed}:{doc_id}"``."""
    h = hashlib.blake2b(f"{seed}:{doc_id or ''}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 18446744073709551616.0


def category_key(value: object, num_leaves: int) -> int:
    """Leaf id for a category cell, or ``UNKNOWN`` for null, NaN, non-integers and ids outside the taxonomy."""
    if value is None or isinstance(value, bool):
        return UNKNOWN
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return UNKNOWN
    if f != f or f != int(f):
        return UNKNOWN
    i = int(f)
    return i if 0 <= i < num_leaves else UNKNOWN


def leaf_weights(taxonomy: Taxonomy, overrides: Mapping[str, float] | None = None) -> list[float]:
    """Per-leaf weights: the taxonomy's, with overrides by English leaf name or domain name."""
    w = taxonomy.weights()
    leaf_ids = {leaf.en: leaf.id for leaf in taxonomy.leaves}
    domain_ids = {en: i for i, (en, _) in enumerate(taxonomy.domains)}
    for key, value in (overrides or {}).items():
        if key in leaf_ids:
            w[leaf_ids[key]] = float(value)
        elif key in domain_ids:
            for leaf in taxonomy.leaves:
                if leaf.domain == domain_ids[key]:
                    w[leaf.id] = float(value)
        else:
            raise ValueError(
                f"balance.weights: {key!r} is neither an English leaf name nor a domain name of {taxonomy.path}"
            )
    return w


def sample_weights(
    counts: Mapping[int, int],
    weights: list[float],
    default_weight: float = 1.0,
    temperature: float = 1.0,
    target_ratio: float = 1.0,
    max_weight: float = 4.0,
) -> dict[int, float]:
    """Expected copies per document of each key of ``counts`` (leaf id or ``UNKNOWN``)."""
    total = sum(n for n in counts.values() if n > 0)
    if total == 0:
        return {}
    keys = sorted(k for k, n in counts.items() if n > 0)

    def base(k: int) -> float:
        w = default_weight if k == UNKNOWN else weights[k]
        return w * (counts[k] / total) ** (temperature - 1.0)

    raw = {k: base(k) for k in keys}
    target = target_ratio * total
    capped: dict[int, float] = {}
    while True:
        free = [k for k in keys if k not in capped]
        budget = target - sum(counts[k] * capped[k] for k in capped)
        denom = sum(counts[k] * raw[k] for k in free)
        if not free or denom <= 0 or budget <= 0:
            break
        scale = budget / denom
        over = [k for k in free if raw[k] * scale > max_weight]
        if not over:
            capped.update({k: raw[k] * scale for k in free})
            break
        capped.update({k: max_weight for k in over})
    return {k: capped.get(k, max_weight) for k in keys}


def decide(seed: int, doc_id: str | None, weight: float) -> float | None:
    """``sample_weight`` of a kept document, or None when it is down-sampled.

    ``weight >= 1``: kept, ``sample_weight = weight`` (the tokenize stage repeats it). ``weight < 1``:
    kept with probability ``weight`` decided by :func:`unit_hash`, then ``sample_weight = 1``."""
    if weight >= 1.0:
        return float(weight)
    return 1.0 if unit_hash(seed, doc_id) < weight else None


def balance_records(
    records: Iterable[Mapping],
    key_weights: Mapping[int, float],
    num_leaves: int,
    seed: int,
    column: str = "category",
) -> list[dict]:
    """Reference implementation on plain dicts: each record gets ``sample_weight`` and ``drop_reason``."""
    out = []
    for r in records:
        k = category_key(r.get(column), num_leaves)
        sw = decide(seed, r.get("doc_id"), key_weights[k])
        out.append({**r, "sample_weight": sw, "drop_reason": None if sw is not None else BALANCE_DOWNSAMPLED})
    return out
