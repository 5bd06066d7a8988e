"""Connected components of the candidate-duplicate graph, in plain Python.

The Spark job runs the *large-star / small-star* algorithm of Kiveris et al. 2014 ("Connected
Components in MapReduce and Beyond", SoCC) on DataFrames; :func:`star_components` is the same
algorithm on Python sets (same operations, same fixed point), and :func:`union_find_components` the
reference both are tested against.

Edges are pairs of comparable node ids. The result maps every node that has an edge to the
smallest node id of its component.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def union_find_components(edges: Iterable[tuple[int, int]]) -> dict[int, int]:
    """node -> smallest node of its component (union-find with path halving)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            if ru < rv:
                parent[rv] = ru
            else:
                parent[ru] = rv
    return {x: find(x) for x in list(parent)}


def large_star(edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """For every node u, link each strictly larger neighbour v to m(u) = min(N(u) + u).
    Output edges are (larger, smaller)."""
    nbrs: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        nbrs[a].add(b)
        nbrs[b].add(a)
    out = set()
    for u, ns in nbrs.items():
        m = min(min(ns), u)
        for v in ns:
            if v > u:
                out.add((v, m))
    return out


def small_star(edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """For every node u, link u and each smaller neighbour v to m(u) = min of u's smaller
    neighbours (input edges are (larger, smaller)). Output edges are (larger, smaller)."""
    smaller: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        smaller[a].add(b)  # a > b
    out = set()
    for u, ns in smaller.items():
        m = min(ns)
        out.add((u, m))
        for v in ns:
            if v != m:
                out.add((v, m))
    return out


def is_star_forest(edges: set[tuple[int, int]]) -> bool:
    """True when no edge points to a node that itself points further (every target is a root)."""
    sources = {a for a, _ in edges}
    return not any(b in sources for _, b in edges)


def star_components(
    edges: Iterable[tuple[int, int]], max_iterations: int = 100
) -> tuple[dict[int, int], int]:
    """Alternate large-star and small-star until the edges form stars around each component's
    minimum. Returns ``(node -> component minimum, rounds)``."""
    e = {(max(a, b), min(a, b)) for a, b in edges if a != b}
    nodes = {x for a, b in edges for x in (a, b)}
    rounds = 0
    while True:
        rounds += 1
        if rounds > max_iterations:
            raise RuntimeError(f"connected components did not converge in {max_iterations} rounds")
        e = small_star(large_star(e))
        if is_star_forest(e):
            break
    comp = {n: n for n in nodes}
    for a, b in e:
        comp[a] = b
    return comp, rounds
