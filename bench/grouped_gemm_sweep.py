"""Per-kernel tile-config sweep of the fused grouped-GEMM kernels (GPU; a tuning aid).

    python -m bench.grouped_gemm_sweep [--tokens 16384] [--routing uniform] [--roles all] [--json OUT]
                                       [--only egroup] [--exclude epi_ptr] [--write-table auto|PATH]

Times every kernel role of ``models.moe.kernels`` (gate_up with and without the stored
pre-activations, down, dh = d(act) with the SwiGLU backward, dx, dw13, dw2) at the dots.llm1 shapes
under each candidate config below, one config at a time (autotuning off), and prints TFLOP/s per role
and config. A config that fails to compile or run is reported with its error and skipped. The
winners go into ``GATE_UP_CONFIGS`` / ``MGROUPED_CONFIGS`` / ``WGRAD_CONFIGS`` so that autotuning
considers them. ``EXPERIMENTAL_CONFIGS`` (not autotuned) are swept too. ``--write-table`` records,
for each launched kernel variant, the fastest config a table may name (``table_candidates``: the
list's and the experimental configs, the warp-specialised ones only with ``DOTS_GG_WS=1``) in a tuned table
(``models.moe.kernel_tables``; ``auto`` = ``conf/moe/kernels/<this device>.json``), which the kernels
then launch at this M bucket instead of autotuning.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch


def candidates(gg) -> dict[str, list]:
    """Per role: every config a tuned table may name for its kernel (its list, warp-specialised and
    experimental configs: ``grouped_gemm.table_candidates``), then a few sweep-only variations."""
    c = gg._cfg
    extra_gate_up = [c(128, 128, 8, 3, half=True), c(128, 128, 8, 3, persistent=True),
                     c(128, 128, 8, 3, persistent=True, half=True), c(128, 128, 8, 4, ws=True, group=0),
                     c(128, 128, 8, 3, ws=True, group=0)]
    extra_mg = [c(128, 128, 8, 4, half=True)]

    gate_up = gg.unique_by_name(gg.table_candidates(gg.GATE_UP_CONFIGS) + extra_gate_up)
    mg = gg.unique_by_name(gg.table_candidates(gg.MGROUPED_CONFIGS) + extra_mg)
    wg = gg.table_candidates(gg.WGRAD_CONFIGS)
    return {"gate_up_h": gate_up, "gate_up": gate_up, "down": mg, "dh": mg + [c(64, 256, 4, 3)], "dx": mg,
            "dw13": wg, "dw2": wg, "dw2_untransposed": wg}


def select(cfgs: list, name, only: str, exclude: str) -> list:
    """The configs whose name (``name(cfg)``, space-separated words) has one of the comma-separated
    words of ``only`` (all of them when it is empty) and none of those of ``exclude``."""
    keep = [w for w in only.split(",") if w]
    skip = [w for w in exclude.split(",") if w]
    out = []
    for c in cfgs:
        words = name(c).split()
        if (not keep or any(w in words for w in keep)) and not any(w in words for w in skip):
            out.append(c)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--routing", default="uniform")
    ap.add_argument("--roles", default="all")
    ap.add_argument("--experts", type=int, default=128)
    ap.add_argument("--topk", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--inter", type=int, default=1408)
    ap.add_argument("--json", default=None)
    ap.add_argument("--exclude", default="", metavar="WORD[,WORD]",
                    help="skip configs whose name contains one of these words (e.g. epi_ptr)")
    ap.add_argument("--only", default="", metavar="WORD[,WORD]",
                    help="time only configs whose name contains one of these words (e.g. egroup), then --exclude")
    ap.add_argument("--write-table", default=None, metavar="auto|PATH",
                    help="merge the fastest config a table may name, per kernel variant, into this tuned table")
    ap.add_argument("--keep-within", type=float, default=0.01, metavar="FRAC",
                    help="--write-table keeps a key's current config where this sweep timed it within FRAC "
                         "of the fastest (default 0.01: run-to-run noise on a power-capped card is larger)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU (run it through the device tool)", file=sys.stderr)
        return 2
    os.environ["DOTS_GG_AUTOTUNE"] = "0"
    from triton.testing import do_bench

    import models.moe.kernels.grouped_gemm as gg
    from bench.grouped_gemm import routing_counts

    dev = torch.device("cuda")
    e, hid, inter, k = args.experts, args.hidden, args.inter, args.topk
    m = args.tokens * k
    gen = torch.Generator().manual_seed(0)
    counts = routing_counts(args.tokens, e, k, args.routing, gen)
    offs = torch.cumsum(counts, 0).to(dev, torch.int32)
    x = torch.randn(m, hid, device=dev, dtype=torch.bfloat16)
    dy = torch.randn(m, hid, device=dev, dtype=torch.bfloat16)
    w13 = (torch.randn(e, 2 * inter, hid, device=dev) / hid**0.5).to(torch.bfloat16)
    w2 = (torch.randn(e, hid, inter, device=dev) / inter**0.5).to(torch.bfloat16)
    act, h = gg.gate_up_swiglu(x, w13, offs, store_h=True)
    dh = gg.grouped_mm_fused(dy, w2, offs, b_kmajor=False, h=h)
    unit = m * hid * inter  # FLOPs = mult * unit
    roles = {
        "gate_up_h": ("GATE_UP_CONFIGS", lambda: gg.gate_up_swiglu(x, w13, offs, store_h=True), 4),
        "gate_up": ("GATE_UP_CONFIGS", lambda: gg.gate_up_swiglu(x, w13, offs), 4),
        "down": ("MGROUPED_CONFIGS", lambda: gg.grouped_mm_fused(act, w2, offs, b_kmajor=True), 2),
        "dh": ("MGROUPED_CONFIGS", lambda: gg.grouped_mm_fused(dy, w2, offs, b_kmajor=False, h=h), 2),
        "dx": ("MGROUPED_CONFIGS", lambda: gg.grouped_mm_fused(dh, w13, offs, b_kmajor=False), 4),
        "dw13": ("WGRAD_CONFIGS", lambda: gg.weight_grad(dh, x, offs, torch.bfloat16), 4),
        "dw2": ("WGRAD_CONFIGS", lambda: gg.weight_grad(act, dy, offs, torch.bfloat16, trans_out=True), 2),
        "dw2_untransposed": ("WGRAD_CONFIGS", lambda: gg.weight_grad(dy, act, offs, torch.bfloat16), 2),
    }
    wanted = list(roles) if args.roles == "all" else args.roles.split(",")
    cands = candidates(gg)
    cands = {role: select(cfgs, gg.config_name, args.only, args.exclude) for role, cfgs in cands.items()}
    rows = []
    print(f"device: {torch.cuda.get_device_name()}  tokens {args.tokens} {args.routing}  rows {m}", flush=True)
    keys, listed = {}, {}
    for role in wanted:
        list_name, fn, mult = roles[role]
        lst = getattr(gg, list_name)
        saved = list(lst)
        # what --write-table may record: the configs a table may name, warp-specialised ones only
        # where they are autotuning candidates (DOTS_GG_WS=1)
        listed[role] = {gg.config_name(c) for c in gg.table_candidates(lst)
                        if not c.kwargs["WS"] or any(c is d for d in saved)}
        ref = fn()
        keys[role] = gg.LAST_LAUNCH["key"]
        ref = ref[0] if isinstance(ref, tuple) else ref
        for cfg in cands[role]:
            tag = gg.config_name(cfg)
            lst[0] = cfg
            t0 = time.time()
            try:
                out = fn()
                out = out[0] if isinstance(out, tuple) else out
                torch.cuda.synchronize()
                err = ((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()
                ms = do_bench(fn, warmup=25, rep=200, return_mode="median")
                r = {"role": role, "cfg": tag, "ms": ms, "tflops": mult * unit / ms / 1e9, "rel_err": err}
            except Exception as exc:  # noqa: BLE001 - a sweep reports a config that fails and goes on
                r = {"role": role, "cfg": tag, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
            r["compile_s"] = round(time.time() - t0, 1)
            rows.append(r)
            print(json.dumps(r), flush=True)
        lst[:] = saved
    print()
    for role in wanted:
        best = max((r for r in rows if r["role"] == role and "tflops" in r), key=lambda r: r["tflops"], default=None)
        line = "  ".join(f"{r['cfg']}={r['tflops']:.0f}" if "tflops" in r else f"{r['cfg']}=ERR"
                         for r in rows if r["role"] == role)
        print(f"{role:9s} best {best['cfg'] if best else '-'} {best['tflops'] if best else 0:.0f} | {line}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.write_table:
        write_table(args, rows, keys, listed)
    return 0


def table_pick(timed: list[dict], incumbent: str | None, keep_within: float) -> dict:
    """The row to record for one launch key: the fastest of ``timed`` (rows with "cfg" and "tflops"),
    unless the table's current config ``incumbent`` was timed too and is within ``keep_within`` (a
    fraction) of it, which then stays: sweeps move by a few per cent from run to run on a
    power-capped card, and a table should not change its pick on a near-tie."""
    if not 0 <= keep_within < 1:
        raise ValueError(f"--keep-within {keep_within}: a fraction in [0, 1)")
    best = max(timed, key=lambda r: r["tflops"])
    kept = next((r for r in timed if r["cfg"] == incumbent), None)
    if kept is not None and kept["tflops"] >= best["tflops"] * (1 - keep_within):
        return kept
    return best


def write_table(args, rows: list[dict], keys: dict[str, str], listed: dict[str, set]) -> None:
    """The fastest config a table may name (``listed``) of each role into the tuned table (dw2_untransposed is not a launch
    the autograd function makes, so it is left out)."""
    from models.moe import kernel_tables

    device = torch.cuda.get_device_name()
    path = kernel_tables.default_path(device) if args.write_table == "auto" else args.write_table
    stamp = time.strftime("%Y-%m-%d")
    current = kernel_tables.read_table(path) if Path(path).exists() else {}
    entries = {}
    for role, key in keys.items():
        ok = [r for r in rows if r["role"] == role and "tflops" in r and r["cfg"] in listed[role]]
        if role == "dw2_untransposed" or not ok:
            continue
        best = table_pick(ok, current.get(key, {}).get("config"), args.keep_within)
        entries[key] = {"config": best["cfg"], "tflops": round(best["tflops"], 1),
                        "measured": f"{stamp} bench.grouped_gemm_sweep --tokens {args.tokens} --routing {args.routing}"}
    kernel_tables.write_entries(path, device, entries)
    print(f"wrote {len(entries)} entries to {path}")


if __name__ == "__main__":
    sys.exit(main())
