"""bench/grouped_gemm_e2e.py's curve comparison (no GPU: synthetic loss curves)."""

from __future__ import annotations

import numpy as np

from bench.grouped_gemm_e2e import aligned_distance, escape_step, summarize


def _curve(escape: int, n: int = 200, plateau: float = 10.3, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A plateau until ``escape``, then an exponential fall."""
    t = np.arange(n)
    loss = np.where(t < escape, plateau, plateau - 4.0 * (1 - np.exp(-(t - escape) / 30.0)))
    return loss + np.random.default_rng(seed).normal(0, noise, n)


def _rows(losses: np.ndarray, tps: float) -> list[dict]:
    return [{"step": i + 1, "loss": float(v), "tokens_per_s": tps, "mfu": 0.1, "load_imbalance": 10.0 if i < 40 else 2.0}
            for i, v in enumerate(losses)]


def test_escape_step_finds_the_plateau_exit():
    assert escape_step(_curve(60, noise=0.01)) in range(60, 66)  # a 0.1 drop takes a step or two
    assert escape_step(np.full(100, 10.3)) is None
    assert escape_step(_curve(60)[:40]) is None


def test_a_shifted_copy_is_far_step_by_step_but_close_aligned():
    ref, late = _curve(50, noise=0.005, seed=1), _curve(65, noise=0.005, seed=2)
    e_r, e_l = escape_step(ref), escape_step(late)
    assert e_l - e_r in range(13, 18)
    assert np.abs(late - ref).mean() > 0.2
    assert aligned_distance(late, ref, e_l, e_r) < 0.02
    assert aligned_distance(late[:55], ref, 52, 50) is None  # too little overlap to say anything


def test_summarize_reports_speed_escape_and_both_distances():
    ref, fused = _curve(50, noise=0.005, seed=1), _curve(58, noise=0.005, seed=3)
    s = summarize({"fused": _rows(fused, 300.0), "reference": _rows(ref, 100.0)})
    f = s["fused"]
    assert f["speedup_vs_reference"] == 3.0
    assert f["escape_step"] - s["reference"]["escape_step"] in range(6, 11)
    assert f["loss_abs_diff_vs_reference_mean"] > 5 * f["loss_abs_diff_vs_reference_aligned_mean"]
    assert f["loss_abs_diff_vs_reference_first12_max"] < 0.05
    assert s["reference"]["load_imbalance_first_tenth"] == 10.0
