"""Large-star / small-star connected components against a union-find reference (plain Python)."""

from __future__ import annotations

import random

import pytest

from pipeline.dedup.components import is_star_forest, star_components, union_find_components


def random_graph(rng: random.Random, n_nodes: int, n_edges: int, chains: int = 0, chain_len: int = 0):
    ids = rng.sample(range(10 * (n_nodes + chains * chain_len) + 10), n_nodes + chains * chain_len)
    nodes, rest = ids[:n_nodes], ids[n_nodes:]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(n_edges)]
    for c in range(chains):  # long paths over shuffled ids: the hard case for label propagation
        path = rest[c * chain_len : (c + 1) * chain_len]
        edges += list(zip(path, path[1:]))
    return [(a, b) for a, b in edges if a != b]


@pytest.mark.parametrize("seed", range(25))
def test_star_components_equal_union_find(seed):
    rng = random.Random(seed)
    edges = random_graph(
        rng, rng.randint(2, 300), rng.randint(1, 400), chains=rng.randint(0, 3), chain_len=rng.randint(2, 400)
    )
    comp, rounds = star_components(edges)
    assert comp == union_find_components(edges)
    assert rounds < 40


def test_long_chain_and_star():
    rng = random.Random(7)
    path = rng.sample(range(100_000), 5000)
    edges = list(zip(path, path[1:]))
    comp, rounds = star_components(edges)
    assert set(comp.values()) == {min(path)}
    assert rounds <= 30
    assert union_find_components(edges) == comp
    star = [(0, i) for i in range(1, 50)]
    assert star_components(star) == ({i: 0 for i in range(50)}, 1)
    assert is_star_forest({(5, 1), (6, 1), (9, 2)}) and not is_star_forest({(5, 1), (1, 0)})


def test_max_iterations():
    path = list(range(1000))[::-1]
    with pytest.raises(RuntimeError, match="did not converge"):
        star_components(list(zip(path, path[1:])), max_iterations=1)
