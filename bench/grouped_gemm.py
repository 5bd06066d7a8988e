"""Grouped SwiGLU expert GEMMs: fused Triton kernels vs torch._grouped_mm vs dense cuBLAS (GPU).

    python -m bench.grouped_gemm [--tokens 4096,16384,32768] [--routing uniform,skewed] [--json OUT]

dots.llm1 shapes by default: 128 experts, top-6, hidden 4096, expert width 1408; M = tokens * 6 rows.
For each size and routing it times (median of CUDA-event timings, triton.testing.do_bench):

* fused: models.moe.kernels.grouped_mlp_fused (2 kernels forward, 4 backward);
* grouped_mm: torch._grouped_mm for gate+up and down, SwiGLU in between (autograd backward);
* dense: cuBLAS matmuls of equal FLOPs ([M, H] x [H, 2I] then [M, I] x [I, H], no activation).

FLOPs counted: forward 6*M*H*I, forward+backward 18*M*H*I (all three paths). With ``--repeat N``
the paths are timed in N interleaved rounds (medians; ratios are medians of per-round ratios). Forward is timed without
autograd (inference); forward+backward with x, w13 and w2 requiring grad. Also prints the error of
the fused output vs torch._grouped_mm, and a per-kernel breakdown for the first size (each kernel
also with one expert holding every row, i.e. as a dense GEMM, and cuBLAS on that GEMM's shape: what
the grouping costs, and how far the Triton kernel itself is from cuBLAS; ``--breakdown``).
``--timeline`` profiles every path at the first size over 5 calls back to back (torch.profiler: no
cache flush and no wait for the host between calls, unlike do_bench's one-call timings) and prints
each path's span per call, kernel and idle time, host enqueue time, CUDA-event times per call back to
back and after an L2 flush (``_loop_times``) and the fused-over-peer ratios of the spans, with the
fused forward+backward's kernels one by one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F


def routing_counts(tokens: int, experts: int, topk: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Rows per expert. uniform: every token picks topk distinct experts uniformly; skewed: the
    same with expert popularity ~ 1/rank (Zipf, s=1), so the top expert gets ~70% of the tokens;
    balanced: every expert the same row count (the remainder spread one row each), which at the
    dots.llm1 shapes is a whole number of 128-row tiles: no partial tail tiles (a diagnostic)."""
    if kind == "balanced":
        rows = tokens * topk
        return torch.full((experts,), rows // experts, dtype=torch.int64) + (torch.arange(experts) < rows % experts)
    if kind == "uniform":
        probs = torch.ones(experts)
    elif kind == "skewed":
        probs = 1.0 / torch.arange(1, experts + 1, dtype=torch.float64)
        probs = probs[torch.randperm(experts, generator=gen)]
    else:
        raise ValueError(f"routing {kind!r}: uniform, skewed or balanced")
    choice = torch.multinomial(probs.float().expand(tokens, experts), topk, replacement=False, generator=gen)
    return torch.bincount(choice.flatten(), minlength=experts)


def grouped_mm_mlp(x, w13, w2, offs):
    inter = w2.shape[2]
    h = torch._grouped_mm(x, w13.transpose(-2, -1), offs=offs)
    return torch._grouped_mm(F.silu(h[:, :inter]) * h[:, inter:], w2.transpose(-2, -1), offs=offs)


def dense_mlp(x, w1, w2):
    inter = w2.shape[0]
    return torch.mm(torch.mm(x, w1)[:, :inter], w2)  # [M,H]x[H,2I], then [M,I]x[I,H]: 6*M*H*I


def _paths(x, dy, w13, w2, w1d, w2d, offs) -> dict:
    """Path name -> (forward, forward+backward, the tensors whose grads to reset between calls)."""
    from models.moe.kernels import grouped_mlp_fused

    xg, w13g, w2g = (t.detach().clone().requires_grad_() for t in (x, w13, w2))
    xd, w1g, w2dg = (t.detach().clone().requires_grad_() for t in (x, w1d, w2d))
    paths = {
        "fused": (lambda: grouped_mlp_fused(x, w13, w2, offs),
                  lambda: grouped_mlp_fused(xg, w13g, w2g, offs).backward(dy), (xg, w13g, w2g)),
        "dense": (lambda: dense_mlp(x, w1d, w2d), lambda: dense_mlp(xd, w1g, w2dg).backward(dy), (xd, w1g, w2dg)),
    }
    if hasattr(torch, "_grouped_mm"):
        paths["gmm"] = (lambda: grouped_mm_mlp(x, w13, w2, offs),
                        lambda: grouped_mm_mlp(xg, w13g, w2g, offs).backward(dy), (xg, w13g, w2g))
    return paths


def _time_paths(r: dict, x, dy, w13, w2, w1d, w2d, offs, bench, repeat: int = 1) -> None:
    """Forward and forward+backward times of the three paths into ``r`` (ms, TFLOP/s and ratios).

    The three paths are timed in turn ``repeat`` times (interleaved, so that a change of the card's
    clocks during the run hits all of them alike); times are the medians over the rounds and each
    ratio is the median of the per-round ratios."""
    import statistics

    from models.moe.kernels import grouped_mlp_fused

    m, hid = x.shape
    inter = w2.shape[2]
    paths = _paths(x, dy, w13, w2, w1d, w2d, offs)
    if "gmm" in paths:
        with torch.no_grad():
            y_f, y_g = grouped_mlp_fused(x, w13, w2, offs), grouped_mm_mlp(x, w13, w2, offs)
            r["err_vs_grouped_mm"] = ((y_f.float() - y_g.float()).norm() / y_g.float().norm()).item()
    times: dict[str, list[float]] = {}
    for _ in range(max(1, repeat)):
        for p, (fwd, fb, grads) in paths.items():
            with torch.no_grad():
                times.setdefault(f"{p}_fwd_ms", []).append(bench(fwd))
            times.setdefault(f"{p}_fb_ms", []).append(bench(fb, grads))
    fwd_flops, fb_flops = 6 * m * hid * inter, 18 * m * hid * inter
    for key, vals in times.items():
        r[key] = statistics.median(vals)
        r[key.replace("_ms", "_tflops")] = (fwd_flops if "_fwd_" in key else fb_flops) / r[key] / 1e9
    for kind in ("fwd", "fb"):
        f = times[f"fused_{kind}_ms"]
        for peer in ("gmm", "dense"):
            if f"{peer}_{kind}_ms" in times:  # ratio of TFLOP/s = inverse ratio of times, per round
                r[f"fused_over_{peer}_{kind}"] = statistics.median(
                    p / q for p, q in zip(times[f"{peer}_{kind}_ms"], f, strict=True))
    if repeat > 1:
        r["rounds"] = repeat
        r["fused_fb_ms_spread"] = [min(times["fused_fb_ms"]), max(times["fused_fb_ms"])]


def timeline_summary(trace: dict, iters: int) -> dict:
    """GPU kernels of a profiler trace (Chrome trace JSON from ``torch.profiler``) of ``iters``
    back-to-back calls: per call, the span from the first kernel's start to the last one's end,
    the time kernels ran and the GPU's idle time between them; when every call launched the same
    number of kernels, each launch's mean duration and mean idle time before it (calls after the
    first). Idle time inside the span is what a call loses to the host (launch overhead, Python,
    allocations) beyond the kernels themselves."""
    ks = sorted((e for e in trace.get("traceEvents", []) if e.get("cat") == "kernel" and "dur" in e),
                key=lambda e: e["ts"])
    if not ks:
        raise ValueError("the trace has no GPU kernel events")
    span = ks[-1]["ts"] + ks[-1]["dur"] - ks[0]["ts"]
    end = ks[0]["ts"]
    gaps = []  # idle time before each kernel
    for e in ks:
        gaps.append(max(0.0, e["ts"] - end))
        end = max(end, e["ts"] + e["dur"])
    idle = sum(gaps)
    busy = span - idle  # time at least one kernel ran (overlapping kernels counted once)
    out = {"calls": iters, "span_ms_per_call": span / iters / 1e3, "kernel_ms_per_call": busy / iters / 1e3,
           "idle_ms_per_call": idle / iters / 1e3, "kernels_per_call": len(ks) / iters}
    if len(ks) % iters == 0:  # every call launched the same sequence: means by position in it
        n = len(ks) // iters
        out["sequence"] = [{"name": ks[i]["name"],
                            "mean_ms": sum(ks[c * n + i]["dur"] for c in range(iters)) / iters / 1e3,
                            "idle_before_ms": sum(gaps[c * n + i] for c in range(1, iters)) / max(iters - 1, 1) / 1e3}
                           for i in range(n)]
    return out


def _timeline(paths: dict, iters: int = 5) -> dict:
    """Each path's forward and forward+backward profiled over ``iters`` calls back to back (after a
    warm-up; no cache flush, no synchronisation between calls), summarised by ``timeline_summary``,
    plus the host's time to enqueue one call (``host_ms_per_call``: wall time of the calls without
    the profiler, before the final synchronisation). Unlike ``do_bench``'s per-call timings, the
    GPU time here is free of any wait for the host at a call's start."""
    import tempfile
    import time

    from torch.profiler import ProfilerActivity, profile

    out = {}
    for p, (fwd, fb, grads) in paths.items():
        def fb_call(fb=fb, grads=grads):
            for t in grads:
                t.grad = None
            fb()

        for kind, fn in (("fwd", fwd), ("fb", fb_call)):
            with torch.set_grad_enabled(kind == "fb"):
                for _ in range(3):
                    fn()
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                host = (time.perf_counter() - t0) / iters * 1e3
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    for _ in range(iters):
                        fn()
                    torch.cuda.synchronize()
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                prof.export_chrome_trace(f.name)
                with open(f.name) as fh:
                    trace = json.load(fh)
            out[f"{p}_{kind}"] = {**timeline_summary(trace, iters), "host_ms_per_call": host,
                                  **_loop_times(fn, kind == "fb")}
    return out


def _loop_times(fn, grad: bool, iters: int = 10) -> dict:
    """CUDA-event time per call of ``iters`` calls back to back (``loop_ms``), and of ``iters`` calls
    each after do_bench's L2 flush, less the flushes timed alone (``loop_flush_ms``): with the
    profiled span and do_bench's one-call time, this tells the flush, the per-call event timing and
    the profiler apart as causes of a difference."""
    from triton import runtime

    drv = runtime.driver.active
    cache = drv.get_empty_cache_for_benchmark()

    def timed(body) -> float:
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            body()
        b.record()
        torch.cuda.synchronize()
        return a.elapsed_time(b) / iters

    def flushed():
        drv.clear_cache(cache)
        fn()

    with torch.set_grad_enabled(grad):
        loop = timed(fn)
        flush_alone = timed(lambda: drv.clear_cache(cache))
        loop_flush = timed(flushed) - flush_alone
    return {"loop_ms": loop, "loop_flush_ms": loop_flush, "flush_ms": flush_alone}


def _bench_size(tokens, args, w13, w2, gen, bench, breakdown: bool, timeline: bool = False) -> list[dict]:
    """Rows for one token count (every routing); optionally a per-kernel breakdown and a profiled
    timeline of every path (``_timeline``, into the first row, key ``timeline``)."""
    from models.moe.kernels import grouped_gemm as gg

    dev = w13.device
    n_exp, hid, inter, k = args.experts, args.hidden, args.inter, args.topk
    m = tokens * k
    x = torch.randn(m, hid, device=dev, dtype=torch.bfloat16)
    dy = torch.randn(m, hid, device=dev, dtype=torch.bfloat16)
    w1d = torch.randn(hid, 2 * inter, device=dev, dtype=torch.bfloat16) / hid**0.5
    w2d = torch.randn(inter, hid, device=dev, dtype=torch.bfloat16) / inter**0.5
    rows, first_offs = [], None
    for routing in args.routing.split(","):
        counts = routing_counts(tokens, n_exp, k, routing, gen)
        offs = torch.cumsum(counts, 0).to(dev, torch.int32)
        first_offs = offs if first_offs is None else first_offs  # the timeline and breakdown use it
        r = {"tokens": tokens, "rows": m, "routing": routing, "max_rows": int(counts.max()),
             "empty": int((counts == 0).sum())}
        _time_paths(r, x, dy, w13, w2, w1d, w2d, offs, bench, args.repeat)
        rows.append(r)
        print(json.dumps(r), flush=True)
        torch.cuda.empty_cache()
    if timeline:
        tls = _timeline(_paths(x, dy, w13, w2, w1d, w2d, first_offs))
        flops = {"fwd": 6 * m * hid * inter, "fb": 18 * m * hid * inter}
        print(f"timeline at {tokens} tokens (profiled, calls back to back): per call span = kernels + GPU idle, "
              "host enqueue time, TFLOP/s over the span")
        for name, t in tls.items():
            tf = flops[name.rsplit("_", 1)[1]] / t["span_ms_per_call"] / 1e9
            print(f"  {name:9s} {t['span_ms_per_call']:7.3f} = {t['kernel_ms_per_call']:7.3f} + "
                  f"{t['idle_ms_per_call']:6.3f} ms, host {t['host_ms_per_call']:6.3f} ms, "
                  f"{t['kernels_per_call']:4.0f} kernels, {tf:5.0f} TFLOP/s; events per call: back to back "
                  f"{t['loop_ms']:7.3f} ms, after a flush {t['loop_flush_ms']:7.3f} ms (flush {t['flush_ms']:.3f})")
            for v in t.get("sequence", []) if name == "fused_fb" else []:
                print(f"      {v['mean_ms']:7.3f} ms after {v['idle_before_ms']:6.3f} ms idle  {v['name'][:80]}")
        for kind in ("fwd", "fb"):
            f = tls[f"fused_{kind}"]["span_ms_per_call"]
            peers = {p: tls[f"{p}_{kind}"]["span_ms_per_call"] / f for p in ("gmm", "dense") if f"{p}_{kind}" in tls}
            tls[f"ratios_{kind}"] = peers
            print(f"  {kind}: fused over " + ", ".join(f"{p} {r:.2f}x" for p, r in peers.items()) + " (spans)")
        rows[0]["timeline"] = tls
    if breakdown:
        routing, offs = args.routing.split(",")[0], first_offs
        act, h = gg.gate_up_swiglu(x, w13, offs, store_h=True)
        dh = gg.grouped_mm_fused(dy, w2, offs, b_kmajor=False, h=h)
        one = torch.tensor([m], device=dev, dtype=torch.int32)  # one expert holding every row: a dense GEMM
        w13_1, w2_1 = w13[:1], w2[:1]
        act1, h1 = gg.gate_up_swiglu(x, w13_1, one, store_h=True)
        dh1 = gg.grouped_mm_fused(dy, w2_1, one, b_kmajor=False, h=h1)
        # (grouped, the same kernel with one expert, cuBLAS on the same GEMM shape, FLOPs / unit)
        parts = {
            "gate_up+swiglu (store h)": (lambda: gg.gate_up_swiglu(x, w13, offs, store_h=True),
                                         lambda: gg.gate_up_swiglu(x, w13_1, one, store_h=True),
                                         lambda: torch.mm(x, w13[0].t()), 4),
            "gate_up+swiglu": (lambda: gg.gate_up_swiglu(x, w13, offs), lambda: gg.gate_up_swiglu(x, w13_1, one),
                               lambda: torch.mm(x, w13[0].t()), 4),
            "down": (lambda: gg.grouped_mm_fused(act, w2, offs, b_kmajor=True),
                     lambda: gg.grouped_mm_fused(act1, w2_1, one, b_kmajor=True), lambda: torch.mm(act, w2[0].t()), 2),
            "d_act+swiglu_bwd": (lambda: gg.grouped_mm_fused(dy, w2, offs, b_kmajor=False, h=h),
                                 lambda: gg.grouped_mm_fused(dy, w2_1, one, b_kmajor=False, h=h1),
                                 lambda: torch.mm(dy, w2[0]), 2),
            "dx": (lambda: gg.grouped_mm_fused(dh, w13, offs, b_kmajor=False),
                   lambda: gg.grouped_mm_fused(dh1, w13_1, one, b_kmajor=False), lambda: torch.mm(dh, w13[0]), 4),
            "dw13": (lambda: gg.weight_grad(dh, x, offs, torch.bfloat16),
                     lambda: gg.weight_grad(dh1, x, one, torch.bfloat16), lambda: torch.mm(dh.t(), x), 4),
            "dw2": (lambda: gg.weight_grad(act, dy, offs, torch.bfloat16, trans_out=True),
                    lambda: gg.weight_grad(act1, dy, one, torch.bfloat16, trans_out=True),
                    lambda: torch.mm(dy.t(), act), 2),
        }
        print(f"breakdown at {tokens} tokens, {routing} routing, TFLOP/s: {n_exp} experts | the same kernel "
              "with one expert (a dense GEMM) | cuBLAS on that GEMM shape (no fused epilogue)")
        for name, (fn, fn1, fn_mm, mult) in parts.items():
            ms, ms1, ms_mm = bench(fn), bench(fn1), bench(fn_mm)
            flops = mult * m * hid * inter / 1e9
            print(f"  {name:26s} {ms:7.3f} ms  {flops / ms:6.0f} | {flops / ms1:6.0f} | {flops / ms_mm:6.0f}",
                  flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="4096,16384,32768")
    ap.add_argument("--routing", default="uniform,skewed", help="uniform, skewed, balanced (the breakdown uses the first)")
    ap.add_argument("--experts", type=int, default=128)
    ap.add_argument("--topk", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--inter", type=int, default=1408)
    ap.add_argument("--rep-ms", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=1,
                    help="time the three paths this many rounds, interleaved; report medians")
    ap.add_argument("--breakdown", action="store_true", help="per-kernel timings for the first size")
    ap.add_argument("--timeline", action="store_true",
                    help="profile each path back to back at the first size: spans, kernel times, GPU idle, "
                         "host time per call, and the fused path's kernels one by one")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/grouped_gemm.py needs a CUDA GPU (run it through the device tool)", file=sys.stderr)
        return 2
    import triton
    from triton.testing import do_bench

    dev = torch.device("cuda")
    n_exp, hid, inter = args.experts, args.hidden, args.inter
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  triton {triton.__version__}")
    gen = torch.Generator().manual_seed(0)
    w13 = (torch.randn(n_exp, 2 * inter, hid, device=dev) / hid**0.5).to(torch.bfloat16)
    w2 = (torch.randn(n_exp, hid, inter, device=dev) / inter**0.5).to(torch.bfloat16)

    def bench(fn, grads=()):
        return do_bench(fn, warmup=50, rep=args.rep_ms, grad_to_none=list(grads), return_mode="median")

    rows = []
    for n, tokens in enumerate(int(t) for t in args.tokens.split(",")):
        rows += _bench_size(tokens, args, w13, w2, gen, bench, breakdown=args.breakdown and n == 0,
                            timeline=args.timeline and n == 0)
        torch.cuda.empty_cache()

    print()
    hdr = (f"{'tokens':>6} {'routing':>8} | {'fwd TFLOP/s fused/gmm/dense':>28} {'x gmm':>6} {'x dense':>7} | "
           f"{'fwd+bwd TFLOP/s fused/gmm/dense':>31} {'x gmm':>6} {'x dense':>7} | err")
    print(hdr)
    for r in rows:
        nan = float("nan")
        g_f, g_b = r.get("gmm_fwd_tflops", nan), r.get("gmm_fb_tflops", nan)
        print(f"{r['tokens']:>6} {r['routing']:>8} | "
              f"{r['fused_fwd_tflops']:>8.0f} {g_f:>8.0f} {r['dense_fwd_tflops']:>10.0f} "
              f"{r.get('fused_over_gmm_fwd', nan):>6.2f} {r['fused_over_dense_fwd']:>7.2f} | "
              f"{r['fused_fb_tflops']:>9.0f} {g_b:>9.0f} {r['dense_fb_tflops']:>11.0f} "
              f"{r.get('fused_over_gmm_fb', nan):>6.2f} {r['fused_over_dense_fb']:>7.2f} | "
              f"{r.get('err_vs_grouped_mm', nan):.1e}")
    from models.moe import kernel_tables
    from models.moe.kernels import grouped_gemm as gg

    table = kernel_tables.table_for(torch.cuda.get_device_name(), os.environ.get("DOTS_GG_TUNED", ""))
    print(f"tuned-table configs ({len(table)}; launched as named wherever the key matches, DOTS_GG_TUNED):")
    for key, name in table.items():
        print(f"  {key} -> {name}")
    print("autotuned configs (key -> config):")
    for name, tuned in (("gate_up", gg._gate_up_tuned), ("mgrouped", gg._mgrouped_tuned), ("wgrad", gg._wgrad_tuned)):
        for key, cfg in tuned.cache.items():
            print(f"  {name:8s} {key[:8]} -> {cfg.kwargs} w{cfg.num_warps} s{cfg.num_stages}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
