"""Ping-pong (Gluon) kernels vs the Triton ones (GPU): correctness, then TFLOP/s.

    python -m bench.wgrad_pingpong [--tokens 16384] [--stages 4,5] [--dh-stages 4,5] [--repeat 3]
                                   [--kernels dW13,dW2,dh]

At the dots.llm1 shapes (128 experts, top-6, hidden 4096, expert width 1408), uniform routing:
dW13 = dh^T @ x ([E, 2I, H]) and dW2 = dy^T @ act ([E, H, I]; the Triton path computes it as the
transpose of act^T @ dy) through ``wgrad_pingpong``, and dh = swiglu'(dy @ w2_e) through
``dh_pingpong``. Times are do_bench medians, the kernels interleaved over ``--repeat`` rounds, after
checking the results against each other (correctness against an fp64 loop is the GPU tests' job:
tests/test_grouped_gemm_gpu.py -k pingpong).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--stages", default="4,5", help="ring stages of the weight-gradient kernel")
    ap.add_argument("--dh-stages", default="4,5", help="ring stages of the dh kernel")
    ap.add_argument("--kernels", default="dW13,dW2,dh")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--routing", default="uniform",
                    help="uniform, balanced (768 rows each), one (one expert holding every row: a dense GEMM)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    os.environ["DOTS_GG_PINGPONG"] = "0"  # grouped_gemm.weight_grad: the Triton kernel even if set outside
    from triton.testing import do_bench

    from bench.grouped_gemm import routing_counts
    from models.moe.kernels import dh_pingpong as dp
    from models.moe.kernels import grouped_gemm as gg
    from models.moe.kernels import wgrad_pingpong as pp

    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)
    e, hid, inter, k = 128, 4096, 1408, 6
    m = args.tokens * k
    if args.routing == "one":
        e, counts = 1, torch.tensor([m])
    else:
        counts = routing_counts(args.tokens, e, k, args.routing, gen)
    offs = torch.cumsum(counts, 0).to(dev, torch.int32)
    x = torch.randn(m, hid, device=dev, dtype=torch.bfloat16)
    dy = torch.randn(m, hid, device=dev, dtype=torch.bfloat16)
    dh = torch.randn(m, 2 * inter, device=dev, dtype=torch.bfloat16)
    act = torch.randn(m, inter, device=dev, dtype=torch.bfloat16)
    h = torch.randn(m, 2 * inter, device=dev, dtype=torch.bfloat16)
    w2 = (torch.randn(e, hid, inter, device=dev) / hid**0.5).to(torch.bfloat16)
    wst = [int(s) for s in args.stages.split(",")]
    cases = {
        "dW13": (lambda: gg.weight_grad(dh, x, offs, torch.bfloat16),
                 lambda st: pp.weight_grad_pingpong(dh, x, offs, stages=st), 4, wst),
        "dW2": (lambda: gg.weight_grad(act, dy, offs, torch.bfloat16, trans_out=True),
                lambda st: pp.weight_grad_pingpong(dy, act, offs, stages=st), 2, wst),
        "dh": (lambda: gg.grouped_mm_fused(dy, w2, offs, b_kmajor=False, h=h),
               lambda st: dp.dh_pingpong(dy, w2, h, offs, stages=st), 2,
               [int(s) for s in args.dh_stages.split(",")]),
    }
    for name in args.kernels.split(","):
        tri, ping, mult, stages = cases[name]
        want = tri().float()
        for st in stages:
            got = ping(st).float()
            err = ((got - want).norm() / want.norm()).item()
            print(f"{name} stages={st}: rel diff vs Triton kernel {err:.2e}", flush=True)
            assert err < 1e-2, err
        flops = mult * m * hid * inter / 1e9
        res = {"triton": []} | {f"pingpong s{st}": [] for st in stages}
        for _ in range(args.repeat):
            res["triton"].append(do_bench(tri, warmup=25, rep=200, return_mode="median"))
            for st in stages:
                res[f"pingpong s{st}"].append(do_bench(lambda st=st, ping=ping: ping(st), warmup=25, rep=200,
                                                       return_mode="median"))
        print(f"{name} at {args.tokens} tokens, {args.routing}: " + ", ".join(
            f"{kname} {sorted(v)[len(v) // 2]:.3f} ms = {flops / sorted(v)[len(v) // 2]:.0f} TFLOP/s"
            for kname, v in res.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
