"""Compile every grouped-GEMM kernel variant under every tile config for Hopper (sm_90) without a GPU.

    python -m models.moe.kernels.sm90_check [--json OUT]

Triton compiles to a cubin with its bundled ptxas on any machine, so this checks, before spending
device time, that each config of ``GATE_UP_CONFIGS`` / ``MGROUPED_CONFIGS`` / ``WGRAD_CONFIGS`` (plus
the warp-specialised and ``EXPERIMENTAL_CONFIGS`` candidates) compiles for each kernel variant the
autograd function launches, and how much shared memory it needs against the H100/H200 limit of
227 KiB per block, and how many registers per thread it uses and whether it spills (ptxas -v: the
SwiGLU-backward epilogue over a whole 128x256 tile spills, EPI_SPLIT chunks do not). A config that
does not fit one variant is skipped there by the autotuner
(OutOfResources); the first config of each list must fit every variant, because
``DOTS_GG_AUTOTUNE=0`` launches it unconditionally. Needs Triton (GPU machines, or
``pip install triton`` in a scratch environment); no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

SMEM_LIMIT = 232_448  # bytes: max dynamic shared memory per block on sm_90 (H100, H200)

# (kernel, variant name, the variant's constexprs) as GroupedMLPFunction launches them
VARIANTS = {
    "GATE_UP_CONFIGS": [("gate_up", dict(STORE_H=False)), ("gate_up+h", dict(STORE_H=True))],
    "MGROUPED_CONFIGS": [
        ("down", dict(B_KMAJOR=True, SWIGLU_BWD=False)),
        ("dh", dict(B_KMAJOR=False, SWIGLU_BWD=True)),
        ("dx", dict(B_KMAJOR=False, SWIGLU_BWD=False)),
    ],
    "WGRAD_CONFIGS": [("dw13", dict(TRANS_OUT=False)), ("dw2", dict(TRANS_OUT=True))],
}


@dataclass
class Result:
    """One (config list, config, variant) compile."""

    list_name: str
    config: str
    variant: str
    ok: bool
    shared_bytes: int | None
    fits: bool | None
    error: str | None = None
    registers: int | None = None  # per thread, from ptxas -v
    spill_bytes: int | None = None  # spill stores per thread: > 0 means the config spills to local memory


def _descriptor_types(fn, consts: dict) -> dict[str, str]:
    """Triton signature strings of ``fn``'s TMA descriptor arguments, with the block shapes that the
    kernels' own autotune pre-hook (``grouped_gemm_configs._set_desc_blocks``) gives them for ``consts``."""
    import torch
    from triton.tools.tensor_descriptor import TensorDescriptor

    from models.moe.kernels import grouped_gemm as gg

    base = torch.empty(16, 16, dtype=torch.bfloat16)  # a stand-in: the hook only sets block_shape
    nargs = {name: 0 for name in fn.arg_names}
    nargs.update(consts)
    descs = [n for n in fn.arg_names if n.endswith(("_desc", "_desc2"))]
    for name in descs:
        nargs[name] = TensorDescriptor.from_tensor(base, [1, 1])
    gg._set_desc_blocks(nargs)
    return {n: f"tensordesc<bf16[{','.join(str(d) for d in nargs[n].block_shape)}]>" for n in descs}


def compile_config(list_name: str, cfg, variant: dict, e_p2: int = 128) -> tuple[int, int | None, int | None]:
    """Compile one kernel variant under ``cfg`` for sm_90 (TMA path, K a multiple of BLOCK_K);
    returns its shared memory in bytes, registers per thread and spill-store bytes (the latter two
    from the bundled ptxas run again with -v on the kernel's PTX; None where that output is not
    understood). Raises what Triton raises."""
    from models.moe.kernels import grouped_gemm as gg

    fn = {"GATE_UP_CONFIGS": gg._gate_up_kernel, "MGROUPED_CONFIGS": gg._mgrouped_kernel,
          "WGRAD_CONFIGS": gg._wgrad_kernel}[list_name]
    consts = {**cfg.kwargs, **variant, "USE_TMA": True, "E_P2": e_p2}
    if list_name != "WGRAD_CONFIGS":
        consts.update(EVEN_K=True)
    consts = {k: v for k, v in consts.items() if k in fn.arg_names}
    descs = _descriptor_types(fn, consts)
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name in descs:
            sig[name] = descs[name]
        elif name.endswith("_ptr"):
            sig[name] = "*i32" if name in ("offs_ptr", "tmap_ptr") else "*bf16"
        else:
            sig[name] = "i32"
    kernel = compile_sm90(fn, sig, consts, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    regs, spills = _ptxas_stats(kernel.asm["ptx"])
    return int(kernel.metadata.shared), regs, spills


def compile_sm90(fn, sig: dict[str, str], consts: dict, **options):
    """``fn`` (a @triton.jit or @gluon.jit function) compiled for sm_90 with argument types ``sig``
    (``"constexpr"`` for the names in ``consts``) and compile ``options`` (num_warps, num_stages,
    maxnreg); the compiled kernel."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if fn.is_gluon():
        from triton.experimental.gluon._runtime import GluonASTSource as ASTSource
    src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)


def _ptxas_stats(ptx: str) -> tuple[int | None, int | None]:
    """Registers per thread and spill-store bytes that ptxas reports for ``ptx`` (sm_90a)."""
    import re
    import subprocess
    import tempfile

    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as tmp:
        src = f"{tmp}/k.ptx"
        with open(src, "w") as f:
            f.write(ptx)
        out = subprocess.run([get_ptxas(90).path, "-arch=sm_90a", "-v", src, "-o", f"{tmp}/k.cubin"],
                             capture_output=True, text=True, check=True)
    regs = re.search(r"Used (\d+) registers", out.stderr)
    spills = re.search(r"(\d+) bytes spill stores", out.stderr)
    return (int(regs.group(1)) if regs else None), (int(spills.group(1)) if spills else None)


def candidates() -> dict[str, list]:
    """Every config each list may hold: the list itself, the warp-specialised opt-ins, the
    experimental candidates (deduplicated by name, list order first)."""
    from models.moe.kernels import grouped_gemm as gg

    return {name: gg.table_candidates(getattr(gg, name)) for name in VARIANTS}


def _check_one(task: tuple[str, int, int]) -> Result:
    """Compile candidate ``i`` of ``list_name`` for variant ``v`` (indices into ``candidates()`` and
    ``VARIANTS``, so that a task crosses a process boundary as three plain values)."""
    from models.moe.kernels.grouped_gemm import config_name

    list_name, i, v = task
    cfg = candidates()[list_name][i]
    vname, variant = VARIANTS[list_name][v]
    try:
        smem, regs, spills = compile_config(list_name, cfg, variant)
        return Result(list_name, config_name(cfg), vname, True, smem, smem <= SMEM_LIMIT,
                      registers=regs, spill_bytes=spills)
    except Exception as exc:  # noqa: BLE001 - reported per config, the caller decides
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return Result(list_name, config_name(cfg), vname, False, None, None, msg)


def check_all(jobs: int | None = None) -> list[Result]:
    """Every (list, candidate config, variant) compiled, in that order; over ``jobs`` processes
    (default: one per CPU; the compiles are independent and CPU-bound)."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    tasks = [(list_name, i, v) for list_name, cfgs in candidates().items()
             for i in range(len(cfgs)) for v in range(len(VARIANTS[list_name]))]
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1:
        return [_check_one(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_check_one, tasks, chunksize=4))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    try:
        import triton  # noqa: F401
    except ImportError:
        print("models.moe.kernels.sm90_check needs Triton (pip install triton)", file=sys.stderr)
        return 2
    results = check_all()
    for r in results:
        state = ("fits" if r.fits else "does not fit") if r.ok else f"FAILS: {r.error}"
        smem = f"{r.shared_bytes:>7,d} B" if r.shared_bytes is not None else " " * 9
        regs = f"{r.registers:>4d} regs" if r.registers is not None else " " * 9
        spill = f"spills {r.spill_bytes:>5,d} B" if r.spill_bytes else " " * 15
        print(f"{r.list_name:17s} {r.config:38s} {r.variant:9s} {smem} {regs} {spill}  {state}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    return 1 if any(not r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
