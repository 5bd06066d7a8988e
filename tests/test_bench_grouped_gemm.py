"""The grouped-GEMM benchmark's routings (bench/grouped_gemm.py; the timings themselves need a GPU)."""

from __future__ import annotations

import pytest
import torch

from bench.grouped_gemm import routing_counts


@pytest.mark.parametrize("kind", ["uniform", "skewed", "balanced"])
def test_routings_place_every_token_topk_times(kind):
    counts = routing_counts(1000, 16, 3, kind, torch.Generator().manual_seed(0))
    assert counts.shape == (16,) and int(counts.sum()) == 3000
    assert int(counts.max()) <= 1000  # top-k experts are distinct per token


def test_balanced_has_no_partial_tiles_at_dots_shapes_and_skewed_is_skewed():
    bal = routing_counts(16384, 128, 6, "balanced", None)
    assert bal.unique().tolist() == [768] and 768 % 128 == 0
    odd = routing_counts(1000, 7, 3, "balanced", None)
    assert int(odd.max()) - int(odd.min()) == 1
    skew = routing_counts(16384, 128, 6, "skewed", torch.Generator().manual_seed(0))
    uni = routing_counts(16384, 128, 6, "uniform", torch.Generator().manual_seed(0))
    assert int(skew.max()) > 5 * int(uni.max())
    with pytest.raises(ValueError, match="balanced"):
        routing_counts(10, 4, 2, "zipf", None)
