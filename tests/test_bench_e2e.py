"""bench/grouped_gemm_e2e.py's curve comparison (no GPU: synthetic loss curves)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.grouped_gemm_e2e import aligned_distance, escape_step, runs_from_log, summarize


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


def _log(rows_by_run: dict[str, list[tuple[int, float]]]) -> str:
    """A console log as the benchmark prints it: a run's command line, then the trainer's steps."""
    out = []
    for name, rows in rows_by_run.items():
        folder = "warm" if name == "warm" else name
        fp32 = " --set train.bf16=false" if name.endswith("_fp32") else ""
        out.append(f"[e2e] {'reference' if name == 'warm' else name}: python -m jobs.train_moe --out /tmp/e/{folder} "
                   f"--set train.ckpt_every=0{fp32}")
        out += [f"step {s:>6} loss {loss:.4f} aux 7.18e-04 lr 1.00e-03 24,578 tok/s mfu 0.026 imbalance 2.15"
                for s, loss in rows]
        out.append("some other line")
    return "\n".join(out)


def test_runs_from_log_reads_back_every_run_but_the_fork():
    text = _log({"warm": [(1, 10.0), (2, 9.0)], "fused": [(3, 8.0), (4, 7.5)], "reference": [(3, 8.1), (4, 7.4)],
                 "reference_fp32": [(3, 8.2), (4, 7.3)]})
    runs = runs_from_log(text, from_step=2)
    assert list(runs) == ["fused", "reference", "reference_fp32"]
    assert [r["loss"] for r in runs["reference_fp32"]] == [8.2, 7.3]
    assert runs["fused"][0] == {"step": 3, "loss": 8.0, "tokens_per_s": 24578.0, "mfu": 0.026, "load_imbalance": 2.15}
    # a log written before the fp32 run's full name was printed ("[e2e] reference: ... bf16=false")
    old = text.replace("[e2e] reference_fp32:", "[e2e] reference:")
    assert list(runs_from_log(old, 2)) == ["fused", "reference", "reference_fp32"]
    assert summarize(runs)["fused"]["loss_abs_diff_vs_fp32_mean"] == pytest.approx(0.2)
    assert [r["step"] for r in runs_from_log(text)["fused"]] == [3, 4]
    assert runs_from_log(text.replace(" mfu 0.026", ""))["fused"][0]["mfu"] is None  # no MFU printed
    with pytest.raises(ValueError, match="reference"):
        runs_from_log(_log({"fused": [(1, 1.0)]}))


def test_summarize_measures_every_path_against_an_fp32_run():
    ref, fused, exact = _curve(50, noise=0.005, seed=1), _curve(50, noise=0.005, seed=3), _curve(50, noise=0.0, seed=5)
    s = summarize({"fused": _rows(fused, 300.0), "reference": _rows(ref, 100.0),
                   "reference_fp32": _rows(exact, 20.0)})
    for impl in ("fused", "reference"):
        assert 0 < s[impl]["loss_abs_diff_vs_fp32_mean"] <= s[impl]["loss_abs_diff_vs_fp32_max"]
    assert "loss_abs_diff_vs_fp32_mean" not in s["reference_fp32"]
    assert "loss_abs_diff_vs_fp32_mean" not in summarize({"fused": _rows(fused, 3.0), "reference": _rows(ref, 1.0)})["fused"]


@pytest.mark.slow
def test_from_step_forks_every_path_from_one_checkpoint(tmp_path):
    """--from-step: the first steps run once, every path resumes from a copy of that checkpoint and
    only the later steps are compared. On CPU `auto` is the reference path, so the forked curves
    must be identical; the schedule spans --steps in both parts."""
    from bench.grouped_gemm_e2e import main

    out = tmp_path / "e2e"
    rc = main(["--out", str(out), "--config", "conf/moe/tiny.yaml", "--steps", "16", "--from-step", "10",
               "--vocab", "256", "--tokens", "60000", "--impls", "reference,auto,reference_fp32",
               "--set", "train.num_workers=0", "--set", "train.bf16=true"])
    assert rc == 0
    summary = json.loads((out / "e2e_summary.json").read_text())
    assert summary["auto"]["loss_abs_diff_vs_reference_max"] == 0.0
    # the CPU trains in fp32 whatever train.bf16 says, so the fp32 run (train.bf16=false) is the same curve
    assert summary["auto"]["loss_abs_diff_vs_fp32_max"] == 0.0 == summary["reference"]["loss_abs_diff_vs_fp32_max"]
    assert json.loads((out / "reference_fp32" / "config.json").read_text())["train"]["bf16"] is False
    assert json.loads((out / "reference" / "config.json").read_text())["train"]["bf16"] is True
    for impl in ("reference", "auto"):
        steps = [json.loads(line)["step"] for line in (out / impl / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, 17)), steps  # the warm part (copied) then the continuation
    warm = [json.loads(line) for line in (out / "warm" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in warm] == list(range(1, 11))
    ref = [json.loads(line) for line in (out / "reference" / "metrics.jsonl").read_text().splitlines()]
    assert ref[:10] == warm  # the continuation kept the warm part as it was
    # one schedule over --steps: the warm part ends at the peak lr (a 10-step schedule would have
    # decayed by then), the decay comes in the continuation
    assert warm[-1]["lr"] == pytest.approx(3e-3) and ref[-1]["lr"] < warm[-1]["lr"]
    with pytest.raises(SystemExit, match="between 1 and"):
        main(["--out", str(tmp_path / "bad"), "--config", "conf/moe/tiny.yaml", "--steps", "5", "--from-step", "5",
              "--vocab", "256", "--tokens", "60000", "--impls", "reference,auto"])
