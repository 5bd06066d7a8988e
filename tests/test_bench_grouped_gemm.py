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


def test_timeline_summary_counts_idle_time_between_kernels():
    from bench.grouped_gemm import timeline_summary

    def k(name, ts, dur):
        return {"cat": "kernel", "name": name, "ts": ts, "dur": dur}

    # two calls of [a, b]: 10 us idle before b in the first call, 5 us between the calls, b's 2nd
    # launch overlaps a's end by 2 us (counted once as busy time, no negative idle)
    trace = {"traceEvents": [k("a", 0, 100), k("b", 110, 50), {"cat": "cpu_op", "name": "x", "ts": 0, "dur": 999},
                             k("a", 165, 100), k("b", 263, 40)]}
    s = timeline_summary(trace, 2)
    assert s["span_ms_per_call"] == (303 / 2) / 1e3
    assert s["kernel_ms_per_call"] == (288 / 2) / 1e3
    assert s["idle_ms_per_call"] == (15 / 2) / 1e3
    assert s["kernels_per_call"] == 2
    assert [k["name"] for k in s["sequence"]] == ["a", "b"] and s["sequence"][1]["mean_ms"] == 45 / 1e3
    assert s["sequence"][0]["idle_before_ms"] == 5 / 1e3 and s["sequence"][1]["idle_before_ms"] == 0
    assert "sequence" not in timeline_summary({"traceEvents": trace["traceEvents"][:4]}, 2)  # 3 kernels, 2 calls
    with pytest.raises(ValueError, match="no GPU kernel"):
        timeline_summary({"traceEvents": [{"cat": "cpu_op", "ts": 0, "dur": 1}]}, 1)


def test_sweep_select_keeps_only_then_excludes_by_whole_words():
    from bench.grouped_gemm_sweep import select

    names = ["128x256x64 w8 s3 split2 egroup", "128x256x64 w8 s3 split2 egroup tmap", "128x256x64 w8 s3 pers",
             "128x128x64 w8 s4 half egroup halfn"]
    assert select(names, str, "", "") == names
    assert select(names, str, "egroup", "tmap") == [names[0], names[3]]
    assert select(names, str, "", "s3") == [names[3]]
    assert select(names, str, "half", "") == [names[3]]  # "half" is a word of the last name only


def test_sweep_table_pick_keeps_the_incumbent_on_a_near_tie():
    from bench.grouped_gemm_sweep import table_pick

    rows = [{"cfg": "a", "tflops": 579.0}, {"cfg": "b", "tflops": 579.6}, {"cfg": "c", "tflops": 560.0}]
    assert table_pick(rows, "a", 0.01)["cfg"] == "a"  # 0.1% slower: stays
    assert table_pick(rows, "a", 0.0)["cfg"] == "b"  # no tolerance: the fastest
    assert table_pick(rows, "c", 0.01)["cfg"] == "b"  # 3.4% slower: replaced
    assert table_pick(rows, "gone", 0.01)["cfg"] == "b"  # the incumbent was not timed
    assert table_pick(rows, None, 0.01)["cfg"] == "b"  # no entry yet
    with pytest.raises(ValueError, match="fraction"):
        table_pick(rows, "a", 1.5)
