"""Ping-pong SwiGLU-backward GEMM for Hopper, in Gluon: ``dh = swiglu'(dy @ w2_e)`` over rows sorted by
expert, the same contract as ``grouped_gemm.grouped_mm_fused(dy, w2, offsets, b_kmajor=False, h=h)``.

``d(act) = dy[rows of e] @ w2[e]`` ([M, H] @ [H, I]); with the stored pre-activations ``h = [g | u]``
the epilogue writes ``dh = [d(act) * u * silu'(g) | d(act) * silu(g)]`` ([M, 2I]).

Why a separate kernel: in the Triton row-grouped kernel this epilogue is the slowest of the six
(~507 TFLOP/s at 16K tokens against ~590-620 for the plain row-grouped GEMMs). Its 128x256 tile
loads g and u (128 KB) when the main loop ends and writes two outputs, with no MMA running
meanwhile, and a persistent Triton loop does not fit that epilogue's registers and staging buffers.
Here the CUTLASS ping-pong schedule (``KernelTmaWarpSpecializedPingpong``, as in ``wgrad_pingpong``):

* a loader partition (1 warp) streams each tile's dy and w2 blocks through a ring of shared-memory
  stages and, a few K steps into the tile, loads its g and u blocks into one pair of buffers that
  the two groups' epilogues use in turn;
* two consumer warp groups take the program's tiles alternately, each a 128x128 fp32 accumulator;
  when its main loop ends the g and u blocks are already in shared memory, and its epilogue
  (SwiGLU backward, its two results written over g and u, two ragged TMA stores) overlaps the other
  group's main loop. An order barrier makes the main loops take turns.

Tiles come from the tile map (``grouped_gemm_kernels._fill_tile_map``, written on the device, no host
synchronisation), expert by expert and each expert's row tiles fastest (``_tile``), and an expert's
last row tile stores only its own rows (ragged stores). 128-column tiles: I = 1408 is 11 of them,
where 256-column tiles waste half of the last one. Needs I a multiple of 128, H a multiple of 64, bf16/fp16, sm_90 (``supported``).
"""

from __future__ import annotations

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

from models.moe.kernels.sm90_check import SMEM_LIMIT
from models.moe.kernels.wgrad_pingpong import _GL_DTYPES, MAXNREG, _ragged_desc, wait_turn

BLOCK_M = 128  # rows per tile (one consumer warp group's accumulator: 128 fp32 registers/thread)
BLOCK_N = 128  # columns of d(act) per tile
BLOCK_K = 64  # hidden (reduction) elements per pipeline stage
STAGES = 5  # ring: 5 x 32 KiB, + 2 x 32 KiB for the g and u blocks = 224 KiB
H_STEP = 16  # the loader issues a tile's g and u loads at this K step (see _loader)
_BM, _BN, _BK = gl.constexpr(BLOCK_M), gl.constexpr(BLOCK_N), gl.constexpr(BLOCK_K)
_HM = gl.constexpr(BLOCK_M // 2)  # a tile's row half: one accumulator
_BIG = gl.constexpr(0x40000000)  # the ragged descriptors' bounded dimension (wgrad_pingpong._ragged_desc)
_H_STEP = gl.constexpr(H_STEP)


@gluon.jit
def _tile(t, num_n, tmap_ptr):
    """Tile ``t`` -> expert, its first row and row count, the tile's first row and first column.

    Expert by expert, each expert's row tiles fastest: expert e owns tiles [first * num_n, (first +
    its row tiles) * num_n), so ``t // num_n`` is one of its row tiles and that row tile's tile-map
    entry ([expert, first row, row end, the expert's first row tile]) names it. The programs running
    at once then share each column block of the expert's weights across all its row tiles, and its
    dy rows stay in L2 while they walk its columns; with column tiles fastest (the first version),
    ncu counted 40% more DRAM traffic than the Triton kernel's. Past the last real row tile the
    entry is [0, 0, 0, q], so that ``row0 - start < cnt`` is false (no tile)."""
    q = t // num_n
    e = gl.load(tmap_ptr + 4 * q)
    start = gl.load(tmap_ptr + 4 * q + 1)
    end = gl.load(tmap_ptr + 4 * q + 2)
    first = gl.load(tmap_ptr + 4 * q + 3)
    rows_t = gl.maximum((end - start + _BM - 1) // _BM, 1)
    local = t - first * num_n
    return e, start, end - start, start + (local % rows_t) * _BM, (local // rows_t) * _BN


@gluon.jit
def _loader(p):
    """One warp: per tile, its K steps' dy and w2 blocks into the ring, and at K step H_STEP its g and
    u blocks into the one pair of g/u buffers. The two groups' epilogues take turns like their main
    loops, so one pair serves both: tile j's blocks may be loaded once tile j-1's epilogue has stored
    from them, which happens early in tile j's main loop (that epilogue overlaps it); H_STEP steps in,
    the loader rarely waits for it, and the blocks still land long before tile j's epilogue."""
    (a_desc, b_desc, hg_desc, hu_desc, dg_desc, du_desc, tmap_ptr, a_bufs, b_bufs, h_bufs,
     ready, empty, order, hready, hfree, K, NUM_TILES, NUM_PROGS, num_n) = p
    NS: gl.constexpr = a_bufs.shape[0]
    nbytes: gl.constexpr = a_desc.block_type.nbytes + b_desc.block_type.nbytes
    hbytes: gl.constexpr = 2 * hg_desc.block_type.nbytes
    it = 0
    j = 0
    for t in range(gl.program_id(0), NUM_TILES, NUM_PROGS):
        e, start, cnt, row0, n0 = _tile(t, num_n, tmap_ptr)
        if row0 - start < cnt:
            hstep = gl.minimum(_H_STEP, K // _BK - 1)
            for kk in range(K // _BK):
                if kk == hstep:
                    # tile j-1's stores have left the g/u buffers (a fresh barrier passes phase 1)
                    mbarrier.wait(hfree, (j & 1) ^ 1)
                    mbarrier.expect(hready, hbytes)
                    rr = _BIG - cnt + (row0 - start)
                    tma.async_copy_global_to_shared(hg_desc, [_BIG, start + cnt, rr, n0], hready, h_bufs.index(0))
                    tma.async_copy_global_to_shared(hu_desc, [_BIG, start + cnt, rr, n0], hready, h_bufs.index(1))
                k = kk * _BK
                s = it % NS
                mbarrier.wait(empty.index(s), ((it // NS) & 1) ^ 1)
                bar = ready.index(s)
                mbarrier.expect(bar, nbytes)
                # dy rows past the expert's end (the next expert's, or zeros past M) are computed and
                # never stored: the epilogue's stores are ragged
                tma.async_copy_global_to_shared(a_desc, [row0, k], bar, a_bufs.index(s))
                tma.async_copy_global_to_shared(b_desc, [e * K + k, n0], bar, b_bufs.index(s))
                it += 1
            j += 1


@gluon.jit
def _swiglu_bwd(acc, g_view, u_view, acc_layout: gl.constexpr):
    """SwiGLU backward of one 64-row half tile, in two passes so that no more than the accumulator
    and one block live in registers: du = d(act) * silu(g) goes where g was, then
    dg = d(act) * silu'(g) * u where u was (ptxas: no spills, where the whole tile at once spilled)."""
    g = g_view.load(acc_layout).to(gl.float32)
    sig = 1.0 / (1.0 + gl.exp(-g))
    silu = g * sig
    g_view.store((acc * silu).to(g_view.dtype))
    acc = acc * (sig + silu * (1.0 - sig))
    u = u_view.load(acc_layout).to(gl.float32)
    u_view.store((acc * u).to(u_view.dtype))


@gluon.jit
def _consume(p, CID: gl.constexpr):
    """Consumer warp group CID (0 or 1): the program's tiles j with j % 2 == CID."""
    (a_desc, b_desc, hg_desc, hu_desc, dg_desc, du_desc, tmap_ptr, a_bufs, b_bufs, h_bufs,
     ready, empty, order, hready, hfree, K, NUM_TILES, NUM_PROGS, num_n) = p
    NS: gl.constexpr = a_bufs.shape[0]
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                         instr_shape=[16, _BN, 16])
    g_smem = h_bufs.index(0)
    u_smem = h_bufs.index(1)
    g_view = g_smem.reshape([_BM, _BN])
    u_view = u_smem.reshape([_BM, _BN])
    nk = K // _BK
    it = 0  # ring position of the current tile's first K step (both groups' steps)
    j = 0  # the program's local (non-empty) tile index
    turn = 0  # this group's tiles so far: the phase of the order barrier it waits on
    for t in range(gl.program_id(0), NUM_TILES, NUM_PROGS):
        e, start, cnt, row0, n0 = _tile(t, num_n, tmap_ptr)
        if row0 - start < cnt:
            if j % 2 == CID:
                wait_turn(order, CID, turn)
                # the tile's two 64-row halves in two accumulators (the same wgmma instructions as one
                # 128-row accumulator), so that the epilogue can take them one after the other
                acc0 = gl.zeros([_HM, _BN], gl.float32, acc_layout)
                acc1 = gl.zeros([_HM, _BN], gl.float32, acc_layout)
                for k in range(nk):
                    pos = it + k
                    s = pos % NS
                    mbarrier.wait(ready.index(s), (pos // NS) & 1)
                    a_s = a_bufs.index(s)
                    acc0 = warpgroup_mma(a_s.slice(0, _HM), b_bufs.index(s), acc0, is_async=True)
                    acc1 = warpgroup_mma(a_s.slice(_HM, _HM), b_bufs.index(s), acc1, is_async=True)
                    # at most this step's two MMAs in flight: the previous step's stage can be refilled
                    acc0, acc1 = warpgroup_mma_wait(num_outstanding=2, deps=(acc0, acc1))
                    mbarrier.arrive(empty.index((pos + NS - 1) % NS), count=1, pred=k > 0)
                mbarrier.arrive(order.index(CID), count=1)
                acc0, acc1 = warpgroup_mma_wait(num_outstanding=0, deps=(acc0, acc1))
                mbarrier.arrive(empty.index((it + nk + NS - 1) % NS), count=1)
                # epilogue (overlaps the other group's main loop); g and u were loaded during it
                mbarrier.wait(hready, j & 1)
                _swiglu_bwd(acc0, g_view.slice(0, _HM), u_view.slice(0, _HM), acc_layout)
                _swiglu_bwd(acc1, g_view.slice(_HM, _HM), u_view.slice(_HM, _HM), acc_layout)
                fence_async_shared()
                rr = _BIG - cnt + (row0 - start)
                tma.async_copy_shared_to_global(dg_desc, [_BIG, start + cnt, rr, n0], u_smem)
                tma.async_copy_shared_to_global(du_desc, [_BIG, start + cnt, rr, n0], g_smem)
                tma.store_wait(pendings=0)  # the buffers are read: the loader may refill them
                mbarrier.arrive(hfree, count=1)
                turn += 1
            it += nk
            j += 1


@gluon.jit
def _dh_pingpong_kernel(a_desc, b_desc, hg_desc, hu_desc, dg_desc, du_desc, tmap_ptr, K, NUM_TILES, NUM_PROGS,
                        num_n, NUM_STAGES: gl.constexpr, num_warps: gl.constexpr):
    """dh [M, 2N] from dy [M, K], w2 as [E * K, N] and h [M, 2N]; see the module docstring."""
    gl.static_assert(num_warps == 4, "the default partition is one consumer warp group")
    a_bufs = gl.allocate_shared_memory(a_desc.dtype, [NUM_STAGES, _BM, _BK], a_desc.layout)
    b_bufs = gl.allocate_shared_memory(b_desc.dtype, [NUM_STAGES, _BK, _BN], b_desc.layout)
    h_bufs = gl.allocate_shared_memory(hg_desc.dtype, [2, 1, 1, _BM, _BN], hg_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    order = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    hready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    hfree = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(hready, count=1)
    mbarrier.init(hfree, count=1)
    for i in gl.static_range(NUM_STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=1)
    for i in gl.static_range(2):
        mbarrier.init(order.index(i), count=1)
    p = (a_desc, b_desc, hg_desc, hu_desc, dg_desc, du_desc, tmap_ptr, a_bufs, b_bufs, h_bufs,
         ready, empty, order, hready, hfree, K, NUM_TILES, NUM_PROGS, num_n)
    gl.warp_specialize([(_consume, (p, 0)), (_consume, (p, 1)), (_loader, (p,))], [4, 1], [240, 24])


def _smem_bytes(stages: int) -> int:
    return stages * BLOCK_K * (BLOCK_M + BLOCK_N) * 2 + 2 * BLOCK_M * BLOCK_N * 2


def supported(dy: torch.Tensor, w2: torch.Tensor, h: torch.Tensor) -> bool:
    """Whether ``dh_pingpong`` can run this call: sm_90, bf16/fp16 operands of one dtype, the expert
    width a multiple of 128 and the hidden size of 64, contiguous operands with 16-byte aligned rows."""
    if not (dy.is_cuda and torch.cuda.get_device_capability(dy.device) == (9, 0)):
        return False
    if dy.dtype not in _GL_DTYPES or w2.dtype != dy.dtype or h.dtype != dy.dtype:
        return False
    n, k = w2.shape[2], dy.shape[1]
    if n % BLOCK_N or k % BLOCK_K or w2.shape[1] != k or h.shape != (dy.shape[0], 2 * n):
        return False
    return all(t.is_contiguous() and t.data_ptr() % 16 == 0 for t in (dy, w2, h))


def dh_pingpong(dy: torch.Tensor, w2: torch.Tensor, h: torch.Tensor, offsets: torch.Tensor,
                stages: int = STAGES, programs: int | None = None) -> torch.Tensor:
    """``dh`` [M, 2N] for dy [M, K] sorted by expert, w2 [E, K, N], h = [g | u] [M, 2N] and int32
    cumulative row ends ``offsets`` [E]. ``programs``: persistent programs (default one per SM; tests
    pass a few so that both consumer groups alternate over many tiles). Callers check ``supported``."""
    from models.moe.kernels.grouped_gemm_kernels import _fill_tile_map, _tile_map_buffer

    if stages < 2 or _smem_bytes(stages) > SMEM_LIMIT:
        raise ValueError(f"stages={stages}: 2 to 5 ring stages fit in an H100/H200's shared memory")
    m, k = dy.shape
    e, n = w2.shape[0], w2.shape[2]
    out = torch.empty((m, 2 * n), device=dy.device, dtype=dy.dtype)
    if m == 0:
        return out
    gdt = _GL_DTYPES[dy.dtype]
    tmap = _tile_map_buffer(m, e, dy.device)
    _fill_tile_map(tmap, offsets, BLOCK_M)
    a_desc = TensorDescriptor(dy, [m, k], [k, 1], [BLOCK_M, BLOCK_K],
                              gl.NVMMASharedLayout.get_default_for([BLOCK_M, BLOCK_K], gdt))
    b2 = w2.view(e * k, n)
    b_desc = TensorDescriptor(b2, [e * k, n], [n, 1], [BLOCK_K, BLOCK_N],
                              gl.NVMMASharedLayout.get_default_for([BLOCK_K, BLOCK_N], gdt))
    hg, hu, dg, du = (_ragged_desc(t, BLOCK_N, BLOCK_M) for t in (h[:, :n], h[:, n:], out[:, :n], out[:, n:]))
    num_n = n // BLOCK_N
    num_tiles = (triton.cdiv(m, BLOCK_M) + e) * num_n  # row tiles: at most cdiv(M, 128) + E (tile map)
    nsm = programs or torch.cuda.get_device_properties(dy.device).multi_processor_count
    progs = max(1, min(nsm, num_tiles))
    _dh_pingpong_kernel[(progs,)](a_desc, b_desc, hg, hu, dg, du, tmap, k, num_tiles, progs, num_n,
                                  NUM_STAGES=stages, num_warps=4, maxnreg=MAXNREG)
    return out


def compile_sm90(stages: int = STAGES, dtype: str = "bf16"):
    """The kernel compiled for sm_90 without a GPU (``sm90_check.compile_sm90``)."""
    from models.moe.kernels.sm90_check import compile_sm90

    gdt = {"bf16": gl.bfloat16, "fp16": gl.float16}[dtype]

    def desc(block):
        return f"tensordesc<{dtype}[{', '.join(map(str, block))}],{gl.NVMMASharedLayout.get_default_for(block, gdt)!r}>"

    ragged = desc([1, 1, BLOCK_M, BLOCK_N])
    sig = {"a_desc": desc([BLOCK_M, BLOCK_K]), "b_desc": desc([BLOCK_K, BLOCK_N]), "hg_desc": ragged,
           "hu_desc": ragged, "dg_desc": ragged, "du_desc": ragged, "tmap_ptr": "*i32", "K": "i32",
           "NUM_TILES": "i32", "NUM_PROGS": "i32", "num_n": "i32", "NUM_STAGES": "constexpr",
           "num_warps": "constexpr"}
    return compile_sm90(_dh_pingpong_kernel, sig, {"NUM_STAGES": stages, "num_warps": 4},
                        num_warps=4, maxnreg=MAXNREG)
