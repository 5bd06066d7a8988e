"""Evaluation figures of the category classifier: top-k accuracy and domain-level accuracy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from pipeline.category.taxonomy import Taxonomy


def evaluate_topk(top_ids: np.ndarray, gold: Sequence[int], taxonomy: Taxonomy) -> dict:
    """``top_ids`` [N, k] predicted leaf ids (best first) vs ``gold`` [N] -> accuracy figures.

    Returns n, top1, top5 (top-k with k = min(5, columns)), domain (top-1 prediction in the gold leaf's
    domain), macro_top1 (mean over gold classes present) and the 10 most frequent confusions."""
    gold_a = np.asarray(gold, dtype=np.int64)
    n = len(gold_a)
    if n == 0:
        return {"n": 0, "top1": None, "top5": None, "domain": None, "macro_top1": None, "confusions": []}
    k = min(5, top_ids.shape[1])
    top1 = top_ids[:, 0] == gold_a
    topk = (top_ids[:, :k] == gold_a[:, None]).any(axis=1)
    dom = np.array(
        [taxonomy.domain_of(int(p)) == taxonomy.domain_of(int(g)) for p, g in zip(top_ids[:, 0], gold_a)]
    )
    per_class: dict[int, list[bool]] = {}
    for g, ok in zip(gold_a.tolist(), top1.tolist()):
        per_class.setdefault(g, []).append(ok)
    macro = float(np.mean([np.mean(v) for v in per_class.values()]))
    conf = Counter(
        (taxonomy.leaves[int(g)].en, taxonomy.leaves[int(p)].en)
        for g, p, ok in zip(gold_a, top_ids[:, 0], top1)
        if not ok
    )
    return {
        "n": n,
        "top1": round(float(top1.mean()), 4),
        f"top{k}": round(float(topk.mean()), 4),
        "domain": round(float(dom.mean()), 4),
        "macro_top1": round(macro, 4),
        "confusions": [f"{g} -> {p}: {c}" for (g, p), c in conf.most_common(10)],
    }


def evaluate_accepted(top_ids: np.ndarray, accepted: Sequence[Sequence[int]], taxonomy: Taxonomy) -> dict:
    """Top-k accuracy against a best leaf *or an accepted alternative* (labels of
    ``data/labels/labels.jsonl``): ``accepted[i]`` = leaf ids, best first.

    top1: the first prediction is accepted; top5: one of the first five is; domain: the first
    prediction lies in the domain of an accepted leaf; top1_best: the first prediction is the best leaf."""
    n = len(accepted)
    if n == 0:
        return {"n": 0, "top1": None, "top5": None, "domain": None, "top1_best": None}
    k = min(5, top_ids.shape[1])
    t1 = t5 = dom = best = 0
    for row, acc in zip(top_ids, accepted):
        acc_set = set(int(a) for a in acc)
        p = int(row[0])
        t1 += p in acc_set
        best += p == int(acc[0])
        t5 += any(int(x) in acc_set for x in row[:k])
        dom += taxonomy.domain_of(p) in {taxonomy.domain_of(a) for a in acc_set}
    return {"n": n, "top1": round(t1 / n, 4), "top5": round(t5 / n, 4), "domain": round(dom / n, 4),
            "top1_best": round(best / n, 4)}
