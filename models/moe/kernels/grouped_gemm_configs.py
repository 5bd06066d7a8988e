"""Tile configs of the grouped-GEMM kernels: the autotuning lists, the candidates a tuned table may
name, and the autotune pre-hook that fits TMA descriptors and the tile map to the config being run.

``GATE_UP_CONFIGS`` / ``MGROUPED_CONFIGS`` / ``WGRAD_CONFIGS`` are what autotuning tries (the first
of each is what ``DOTS_GG_AUTOTUNE=0`` launches, so it must fit every kernel variant);
``WS_CONFIGS`` the warp-specialised ones (autotuned only with ``DOTS_GG_WS=1``);
``EXPERIMENTAL_CONFIGS`` configs that only a tuned table (``models.moe.kernel_tables``) picks, or
that GPU tests run to cover a code path. ``bench/grouped_gemm_sweep.py`` times candidates and writes
the tables; ``python -m models.moe.kernels.sm90_check`` compiles every config for sm_90.
"""

from __future__ import annotations

import os

import triton

from models.moe.kernels.grouped_gemm_kernels import _fill_tile_map

try:  # Triton >= 3.5: host TMA descriptors
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older Triton: pointer loads and stores only
    TensorDescriptor = None

_BLOCK_K = 64  # every config below uses BLOCK_K = 64 (EVEN_K is decided on the host from it)


def _cfg(bm: int, bn: int, warps: int, stages: int, persistent: bool = False, group: int = 8,
         bk: int = _BLOCK_K, ws: bool = False, half: bool = False, epi_ptr: bool = False,
         split: int = 1, tmap: bool = False, half_n: bool = False, **extra) -> triton.Config:
    """A tile config. ``ws``: warp-specialised persistent loop (Triton's Hopper warp specialization
    needs an unflattened loop, so FLATTEN = not ws); ``half``: HALF_TAIL, experts' tails of <= bm/2
    rows run as half-height tiles (row-grouped kernels); ``epi_ptr``: EPI_PTR, the row-grouped kernels
    store (and the SwiGLU backward loads h) with masked pointer accesses instead of TMA, which needs
    no shared-memory staging, so persistent configs that otherwise do not fit do (no list holds
    one: the TMA epilogues are faster); ``split``: EPI_SPLIT, the row-grouped and gate/up
    kernels' TMA epilogue runs over ``split`` column chunks of the tile one after another (fewer live
    registers for the SwiGLU backward, smaller staging buffers); ``group=0`` ("egroup"): the row-grouped kernels
    walk their tiles expert by expert (``_row_tile_order``) instead of in groups of ``group`` row
    tiles; ``tmap``: TILE_MAP, the row-grouped kernels read each tile's expert and rows from a
    per-row-tile table written before the launch (``_fill_tile_map``) instead of reducing over the
    E offsets per tile; ``half_n``: HALF_N, the row-grouped GEMM kernel runs a last column tile
    with at most bn/2 columns at half width (``_mgrouped_any``); ``extra``: kernel-specific constexprs."""
    return triton.Config(
        {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": group, "PERSISTENT": persistent or ws,
         "WS": ws, "FLATTEN": not ws, "HALF_TAIL": half, "EPI_PTR": epi_ptr, "EPI_SPLIT": split,
         "TILE_MAP": tmap, "HALF_N": half_n, **extra},
        num_warps=warps, num_stages=stages, pre_hook=_pre_launch,
    )


def config_name(cfg: triton.Config) -> str:
    """A config's short name, e.g. ``128x256x64 w8 s3 pers half split2`` (sweeps, checks, tests)."""
    kw = cfg.kwargs
    flags = [f for f, on in (("pers", kw["PERSISTENT"] and not kw["WS"]), ("ws", kw["WS"]),
                             ("half", kw["HALF_TAIL"]), ("epi_ptr", kw["EPI_PTR"]),
                             (f"split{kw['EPI_SPLIT']}", kw["EPI_SPLIT"] > 1), ("egroup", kw["GROUP_M"] == 0),
                             ("tmap", kw["TILE_MAP"]), ("halfn", kw["HALF_N"]))
             if on]
    return f"{kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']} w{cfg.num_warps} s{cfg.num_stages} {' '.join(flags)}".strip()


# descriptor argument -> block shape from (BLOCK_M, BLOCK_N, BLOCK_K); ragged ones get [1, 1] in front
_DESC_BLOCKS = {
    "x_desc": lambda m, n, k: [m, k],
    "x_desc2": lambda m, n, k: [m // 2, k],
    "a_desc2": lambda m, n, k: [m // 2, k],
    "act_desc2": lambda m, n, k: [1, 1, m // 2, n],
    "g_desc2": lambda m, n, k: [1, 1, m // 2, n],
    "u_desc2": lambda m, n, k: [1, 1, m // 2, n],
    "c_desc2": lambda m, n, k: [1, 1, m // 2, n],
    "dg_desc2": lambda m, n, k: [1, 1, m // 2, n],
    "du_desc2": lambda m, n, k: [1, 1, m // 2, n],
    "hg_desc2": lambda m, n, k: [m // 2, n],
    "hu_desc2": lambda m, n, k: [m // 2, n],
    "w_desc": lambda m, n, k: [n, k],
    "act_desc": lambda m, n, k: [1, 1, m, n],
    "g_desc": lambda m, n, k: [1, 1, m, n],
    "u_desc": lambda m, n, k: [1, 1, m, n],
    "c_desc": lambda m, n, k: [1, 1, m, n],
    "dg_desc": lambda m, n, k: [1, 1, m, n],
    "du_desc": lambda m, n, k: [1, 1, m, n],
    "hg_desc": lambda m, n, k: [m, n],
    "hu_desc": lambda m, n, k: [m, n],
}


# the row-grouped and gate/up kernels' epilogue descriptors (their column block is BLOCK_N // EPI_SPLIT)
_EPI_DESCS = {"c_desc", "hg_desc", "hu_desc", "dg_desc", "du_desc",
              "c_desc2", "hg_desc2", "hu_desc2", "dg_desc2", "du_desc2",
              "act_desc", "g_desc", "u_desc", "act_desc2", "g_desc2", "u_desc2"}

def _pre_launch(nargs: dict) -> None:
    """Autotune pre-hook (and the raw launch's): the tile map for TILE_MAP configs, then the TMA
    descriptors' block shapes."""
    if nargs.get("TILE_MAP"):
        _fill_tile_map(nargs["tmap_ptr"], nargs["offs_ptr"], nargs["BLOCK_M"])
    _set_desc_blocks(nargs)


def _set_desc_blocks(nargs: dict) -> None:
    """Autotune pre-hook: TMA block shapes follow the config being run."""
    if TensorDescriptor is None:
        return
    bm, bn, bk = nargs["BLOCK_M"], nargs["BLOCK_N"], nargs["BLOCK_K"]
    bn_epi = bn // nargs.get("EPI_SPLIT", 1)  # the row-grouped kernel's epilogue column chunk
    for name, val in nargs.items():
        if not isinstance(val, TensorDescriptor):
            continue
        if name in _EPI_DESCS:
            val.block_shape = _DESC_BLOCKS[name](bm, bn_epi, bk)
        elif name == "out_desc":
            val.block_shape = [1, bn, bm] if nargs.get("TRANS_OUT") else [1, bm, bn]
        elif name in _DESC_BLOCKS:
            val.block_shape = _DESC_BLOCKS[name](bm, bn, bk)
        elif name == "a_desc":
            val.block_shape = [1, 1, bk, bm] if "R" in nargs else [bm, bk]
        elif name == "bh_desc":  # the half-width column tile's B (HALF_N)
            val.block_shape = [bn // 2, bk] if nargs.get("B_KMAJOR") else [bk, bn // 2]
        elif name == "b_desc":
            if "R" in nargs:
                val.block_shape = [1, 1, bk, bn]
            else:
                val.block_shape = [bn, bk] if nargs.get("B_KMAJOR") else [bk, bn]


# BLOCK_N of the gate/up kernel is per half: a program computes BLOCK_M x (2 * BLOCK_N) outputs.
# Each list holds the configs that bench/grouped_gemm_sweep.py measured fastest for some launch at
# the dots.llm1 shapes (docs/KERNELS.md gives the figures). The row-grouped SwiGLU backward (dh)
# needs a split epilogue (EPI_SPLIT) to run persistent: over a whole 128x256 tile it spills
# registers and its persistent loop does not fit in shared memory (sm90_check); half tiles likewise
# need grid mode or a split epilogue. 64-row tiles are for small row counts. The first config of each
# list must fit every variant (DOTS_GG_AUTOTUNE=0 launches it): for the row-grouped list it is the
# grid split2 one (no spills).
GATE_UP_CONFIGS = [
    _cfg(128, 128, 8, 4), _cfg(128, 128, 8, 4, half=True), _cfg(128, 128, 8, 3), _cfg(128, 128, 8, 4, ws=True),
    _cfg(64, 128, 4, 4), _cfg(128, 128, 8, 4, half=True, group=0),
]
MGROUPED_CONFIGS = [
    _cfg(128, 256, 8, 3, split=2), _cfg(128, 256, 8, 3, persistent=True, split=2),
    _cfg(128, 256, 8, 3, persistent=True, split=4), _cfg(128, 256, 8, 3, persistent=True),
    _cfg(128, 256, 8, 3, ws=True), _cfg(128, 256, 8, 3, half=True, split=2),
    _cfg(128, 128, 8, 4), _cfg(128, 128, 8, 4, ws=True), _cfg(64, 128, 4, 4),
    _cfg(128, 256, 8, 3, persistent=True, split=2, group=0),
    _cfg(128, 256, 8, 3, half=True, split=2, group=0, half_n=True),
]
WGRAD_CONFIGS = [
    _cfg(128, 256, 8, 3), _cfg(128, 256, 8, 3, persistent=True), _cfg(128, 256, 8, 3, ws=True),
    _cfg(128, 128, 8, 4), _cfg(128, 128, 8, 4, ws=True),
]

# Not autotuned: configs that a tuned table names (the sweep measured them fastest for that launch
# only) or that the GPU tests run to cover a code path; bench/grouped_gemm_sweep.py may time others.
EXPERIMENTAL_CONFIGS = {
    "GATE_UP_CONFIGS": [
        _cfg(128, 128, 8, 4, group=0),  # in the H200 table
        _cfg(128, 128, 8, 4, tmap=True),  # coverage: the gate/up kernel's TILE_MAP path
        _cfg(128, 128, 8, 3, persistent=True, half=True, split=2, group=0),  # coverage: gate/up split epilogue
        _cfg(128, 128, 8, 3, persistent=True, epi_ptr=True),  # coverage: EPI_PTR on the TMA path
    ],
    "MGROUPED_CONFIGS": [
        _cfg(128, 256, 8, 3, split=2, group=0, half_n=True),  # in the H200 table
        _cfg(128, 256, 8, 3, half=True),  # in the H200 table
        _cfg(128, 256, 8, 3, persistent=True, split=2, group=0, tmap=True),  # in the H200 table
        _cfg(128, 256, 8, 3, persistent=True, epi_ptr=True),  # coverage: EPI_PTR on the TMA path
        _cfg(128, 256, 8, 3, persistent=True, half=True, split=2),  # coverage: persistent half tiles
    ],
    "WGRAD_CONFIGS": [],
}

# Warp-specialised configs are opt-in (DOTS_GG_WS=1): they win some launches (the gate/up kernel
# without stored h, dW13) but lose where training stores h, and showed no end-to-end gain.
# The warp-specialised configs of each list, whether or not they are autotuning candidates (tests).
WS_CONFIGS = {name: [c for c in lst if c.kwargs["WS"]] for name, lst in
              (("GATE_UP_CONFIGS", GATE_UP_CONFIGS), ("MGROUPED_CONFIGS", MGROUPED_CONFIGS),
               ("WGRAD_CONFIGS", WGRAD_CONFIGS))}
if os.environ.get("DOTS_GG_WS", "0").strip().lower() in ("", "0", "false", "no", "off"):
    for _lst in (GATE_UP_CONFIGS, MGROUPED_CONFIGS, WGRAD_CONFIGS):
        _lst[:] = [c for c in _lst if not c.kwargs["WS"]]


def unique_by_name(configs: list) -> list:
    """``configs`` without repeats (by ``config_name``), in order."""
    seen: set[str] = set()
    out = []
    for cfg in configs:
        name = config_name(cfg)
        if name not in seen:
            seen.add(name)
            out.append(cfg)
    return out


def table_candidates(configs: list) -> list:
    """The configs a tuned table may name for the kernel whose autotuning list is ``configs``: the
    list, then its warp-specialised and experimental candidates (deduplicated by name). Every one of
    them is checked by the GPU tests, and the sweep writes a config into a table only where it ran
    and was fastest for that launch, so a table can pick a config that autotuning does not consider
    (one that fits only some kernel variants, or is slower at other shapes)."""
    for name, lst in (("GATE_UP_CONFIGS", GATE_UP_CONFIGS), ("MGROUPED_CONFIGS", MGROUPED_CONFIGS),
                      ("WGRAD_CONFIGS", WGRAD_CONFIGS)):
        if configs is lst:
            return unique_by_name(list(lst) + WS_CONFIGS[name] + EXPERIMENTAL_CONFIGS.get(name, []))
    return list(configs)

