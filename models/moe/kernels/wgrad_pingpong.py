"""Ping-pong weight-gradient grouped GEMM for Hopper, in Gluon (``triton.experimental.gluon``).

``dW[e] = A[rows of e]^T @ B[rows of e]`` (A [M, R], B [M, C], rows sorted by expert, int32
cumulative ``offsets``), the same contract as ``grouped_gemm.weight_grad``.

Why a separate kernel: every expert's reduction is short (K = its row count, ~768 at 16K tokens and
128 experts, i.e. 12 steps of 64), so each 128x128 output tile spends a large share of its time in
the epilogue (fp32 -> bf16, shared-memory staging, TMA store) and the pipeline fill. Triton's
``tl.range`` pipelining overlaps the next tile's loads with the epilogue but not its MMAs, which
costs the Triton wgrad kernel 15-20% against one expert holding every row (that runs at cuBLAS
speed; docs/KERNELS.md). This kernel is the CUTLASS "ping-pong" schedule (NVIDIA,
CUTLASS 3 ``KernelTmaWarpSpecializedPingpong``), written with Gluon's explicit warp specialization:

* a loader partition (1 warp) streams each tile's A and B blocks through a ring of shared-memory
  stages with TMA, ragged descriptors zero-filling rows past the expert's end;
* two consumer warp groups take the program's tiles alternately; each runs its tile's wgmma main
  loop into a 128x128 fp32 register accumulator and then its own epilogue, so one group's epilogue
  overlaps the other group's MMAs. An order barrier makes the main loops take turns, which also
  keeps every wait on a ring stage at most one phase ahead (mbarrier waits are by phase parity).

Persistent: one program per SM, tiles ``pid, pid + NUM_PROGS, ...`` over (expert, row block,
column block). Needs R and C multiples of the 128x128 tile (dots.llm1: 2816, 4096, 1408 all are),
bf16/fp16 operands with TMA-able strides, sm_90; ``supported`` says whether a call qualifies.
"""

from __future__ import annotations

import torch
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
from triton.tools.ragged_tma import create_ragged_descriptor

from models.moe.kernels.sm90_check import SMEM_LIMIT

BLOCK_M = 128  # rows of R per tile (one consumer warp group's accumulator: 128 fp32 registers/thread)
BLOCK_N = 128  # columns of C per tile
BLOCK_K = 64  # expert rows per pipeline stage
STAGES = 4  # ring stages: 4 x 32 KiB + 2 x 32 KiB epilogue buffers = 192 KiB of shared memory
# the tile as Gluon constexprs for the jit functions (the host builds the descriptors' blocks from the ints)
_BM, _BN, _BK = gl.constexpr(BLOCK_M), gl.constexpr(BLOCK_N), gl.constexpr(BLOCK_K)
_BIG = gl.constexpr(0x40000000)  # 2**30: the ragged descriptors' bounded dimension (see _ragged_desc)
MAXNREG = 168  # registers/thread at launch: 4 + 4 + 1 warps run as 3 warp groups, 65536 / 384 = 170


@gluon.jit
def _tile_coords(tile, per_e, num_c, offs_ptr):
    """Tile index -> expert, first row of R, first column of C, the expert's first row and row count."""
    e = tile // per_e
    within = tile % per_e
    r0 = (within // num_c) * _BM
    c0 = (within % num_c) * _BN
    end = gl.load(offs_ptr + e)
    prev = gl.load(offs_ptr + gl.maximum(e - 1, 0))
    start = gl.where(e > 0, prev, 0)
    return e, r0, c0, start, end - start


@gluon.jit
def wait_turn(order, CID: gl.constexpr, turn):
    """Consumer group CID waits until the other group has issued the last MMA of its previous main
    loop (order[1 - CID] completes a phase per main loop of that group), so that the two groups'
    main loops alternate; group 0's first tile starts at once. ``turn``: main loops this group ran.
    (Shared with ``dh_pingpong``.)"""
    if CID == 1:
        mbarrier.wait(order.index(0), turn & 1)
    else:
        mbarrier.wait(order.index(1), (turn & 1) ^ 1, pred=turn > 0)


@gluon.jit
def _loader(p):
    """One warp: for every tile of this program, its K steps' A and B blocks into the ring."""
    (a_desc, b_desc, c_desc, offs_ptr, a_bufs, b_bufs, c_bufs, ready, empty, order,
     E, R, NUM_PROGS, num_c, per_e) = p
    NS: gl.constexpr = a_bufs.shape[0]
    nbytes: gl.constexpr = a_desc.block_type.nbytes + b_desc.block_type.nbytes
    it = 0
    for tile in range(gl.program_id(0), E * per_e, NUM_PROGS):
        e, r0, c0, start, cnt = _tile_coords(tile, per_e, num_c, offs_ptr)
        for k in range(0, cnt, _BK):
            s = it % NS
            mbarrier.wait(empty.index(s), ((it // NS) & 1) ^ 1)  # a fresh barrier passes phase 1
            bar = ready.index(s)
            mbarrier.expect(bar, nbytes)
            # ragged coordinates: rows start + k ... of the expert; rows at or past its end read zeros
            tma.async_copy_global_to_shared(a_desc, [_BIG, start + cnt, _BIG - cnt + k, r0], bar, a_bufs.index(s))
            tma.async_copy_global_to_shared(b_desc, [_BIG, start + cnt, _BIG - cnt + k, c0], bar, b_bufs.index(s))
            it += 1


@gluon.jit
def _consume(p, CID: gl.constexpr):
    """Consumer warp group CID (0 or 1): the program's tiles j with j % 2 == CID."""
    (a_desc, b_desc, c_desc, offs_ptr, a_bufs, b_bufs, c_bufs, ready, empty, order,
     E, R, NUM_PROGS, num_c, per_e) = p
    NS: gl.constexpr = a_bufs.shape[0]
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                         instr_shape=[16, _BN, 16])
    c_smem = c_bufs.index(CID)
    it = 0  # ring position of the current tile's first K step (every tile's steps, both groups')
    j = 0  # the program's local tile index
    turn = 0  # how many main loops this group ran: the phase of the order barrier it waits on
    for tile in range(gl.program_id(0), E * per_e, NUM_PROGS):
        e, r0, c0, start, cnt = _tile_coords(tile, per_e, num_c, offs_ptr)
        nk = gl.cdiv(cnt, _BK)
        if j % 2 == CID:
            wait_turn(order, CID, turn)
            acc = gl.zeros([_BM, _BN], gl.float32, acc_layout)
            for k in range(nk):
                pos = it + k
                s = pos % NS
                mbarrier.wait(ready.index(s), (pos // NS) & 1)
                a_t = a_bufs.index(s).reshape([_BK, _BM]).permute((1, 0))
                b_t = b_bufs.index(s).reshape([_BK, _BN])
                acc = warpgroup_mma(a_t, b_t, acc, is_async=True)
                # at most this MMA in flight: the previous step's stage can be refilled
                acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
                mbarrier.arrive(empty.index((pos + NS - 1) % NS), count=1, pred=k > 0)
            # every MMA of this tile is issued: the other group may start its main loop while the
            # last one drains (CUTLASS's ping-pong also hands over before its final wait)
            mbarrier.arrive(order.index(CID), count=1)
            acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
            mbarrier.arrive(empty.index((it + nk + NS - 1) % NS), count=1, pred=nk > 0)
            turn += 1
            # epilogue (overlaps the other group's main loop)
            tma.store_wait(pendings=0)  # this group's previous store has left c_smem
            c_smem.store(acc.to(c_desc.dtype))
            fence_async_shared()
            tma.async_copy_shared_to_global(c_desc, [e * R + r0, c0], c_smem)
        it += nk
        j += 1
    tma.store_wait(pendings=0)


@gluon.jit
def _wgrad_pingpong_kernel(a_desc, b_desc, c_desc, offs_ptr, E, R, C, NUM_PROGS,
                           NUM_STAGES: gl.constexpr, num_warps: gl.constexpr):
    """out [E * R, C] (row block e * R + r) = A_e^T @ B_e; see the module docstring."""
    gl.static_assert(num_warps == 4, "the default partition is one consumer warp group")
    a_bufs = gl.allocate_shared_memory(a_desc.dtype, [NUM_STAGES, 1, 1, _BK, _BM], a_desc.layout)
    b_bufs = gl.allocate_shared_memory(b_desc.dtype, [NUM_STAGES, 1, 1, _BK, _BN], b_desc.layout)
    c_bufs = gl.allocate_shared_memory(c_desc.dtype, [2, _BM, _BN], c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    order = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(NUM_STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=1)
    for i in gl.static_range(2):
        mbarrier.init(order.index(i), count=1)
    num_c = C // _BN
    per_e = (R // _BM) * num_c
    p = (a_desc, b_desc, c_desc, offs_ptr, a_bufs, b_bufs, c_bufs, ready, empty, order,
         E, R, NUM_PROGS, num_c, per_e)
    gl.warp_specialize([(_consume, (p, 0)), (_consume, (p, 1)), (_loader, (p,))], [4, 1], [232, 24])


def _ragged_desc(t: torch.Tensor, block_cols: int, block_rows: int = BLOCK_K) -> TensorDescriptor:
    """Triton's ragged descriptor (``triton.tools.ragged_tma.create_ragged_descriptor``) over 2-D ``t``
    with [1, 1, block_rows, block_cols] boxes, re-made as a Gluon descriptor (which carries its
    shared-memory layout). Coordinates ``[2**30, start + cnt, 2**30 - cnt + k, col]`` read
    ``t[start + k, col]`` and zeros at or past row ``start + cnt`` (see ``_loader``); a store through
    them writes only the rows before ``start + cnt`` (``dh_pingpong``)."""
    d = create_ragged_descriptor(t, [block_rows, block_cols])
    layout = gl.NVMMASharedLayout.get_default_for(d.block_shape, _GL_DTYPES[t.dtype])
    return TensorDescriptor(d.base, d.shape, d.strides, d.block_shape, layout)


_GL_DTYPES = {torch.bfloat16: gl.bfloat16, torch.float16: gl.float16}


def supported(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether ``weight_grad_pingpong`` can run this call: sm_90, bf16/fp16 operands of one dtype and
    output in it, R and C multiples of 128, contiguous rows with 16-byte aligned strides."""
    if not (a.is_cuda and torch.cuda.get_device_capability(a.device) == (9, 0)):
        return False
    if a.dtype not in _GL_DTYPES or b.dtype != a.dtype or dtype != a.dtype:
        return False
    r, c = a.shape[1], b.shape[1]
    if r % BLOCK_M or c % BLOCK_N:
        return False
    return all(t.stride(1) == 1 and (t.stride(0) * t.element_size()) % 16 == 0 and t.data_ptr() % 16 == 0
               for t in (a, b))


def weight_grad_pingpong(a: torch.Tensor, b: torch.Tensor, offsets: torch.Tensor,
                         stages: int = STAGES, programs: int | None = None) -> torch.Tensor:
    """``dW[e] = a[rows of e]^T @ b[rows of e]`` -> [E, R, C] in a's dtype (zeros for an expert
    without rows); a [M, R], b [M, C] rows sorted by expert, ``offsets`` int32 [E] row ends.
    ``programs``: how many persistent programs (default one per SM; tests pass a few, so that
    every program's two consumer groups alternate over many tiles). Callers check ``supported``."""
    if stages < 2 or stages * (BLOCK_K * (BLOCK_M + BLOCK_N) * 2) + 2 * BLOCK_M * BLOCK_N * 2 > SMEM_LIMIT:
        raise ValueError(f"stages={stages}: 2 to 5 ring stages fit in an H100/H200's shared memory")
    m, r = a.shape
    c = b.shape[1]
    e = offsets.shape[0]
    out = torch.empty((e, r, c), device=a.device, dtype=a.dtype)
    if e == 0 or m == 0:
        return out.zero_()
    out2 = out.view(e * r, c)
    c_layout = gl.NVMMASharedLayout.get_default_for([BLOCK_M, BLOCK_N], _GL_DTYPES[a.dtype])
    c_desc = TensorDescriptor(out2, list(out2.shape), list(out2.stride()), [BLOCK_M, BLOCK_N], c_layout)
    nsm = programs or torch.cuda.get_device_properties(a.device).multi_processor_count
    tiles = e * (r // BLOCK_M) * (c // BLOCK_N)
    progs = max(1, min(nsm, tiles))
    # warp specialization redistributes the MAXNREG registers (loader 24, consumers ~232)
    _wgrad_pingpong_kernel[(progs,)](_ragged_desc(a, BLOCK_M), _ragged_desc(b, BLOCK_N), c_desc, offsets,
                                     e, r, c, progs, NUM_STAGES=stages, num_warps=4, maxnreg=MAXNREG)
    return out


def compile_sm90(stages: int = STAGES, dtype: str = "bf16"):
    """The kernel compiled for sm_90 without a GPU (``sm90_check.compile_sm90``)."""
    from models.moe.kernels.sm90_check import compile_sm90

    gdt = {"bf16": gl.bfloat16, "fp16": gl.float16}[dtype]

    def desc(block):
        return f"tensordesc<{dtype}[{', '.join(map(str, block))}],{gl.NVMMASharedLayout.get_default_for(block, gdt)!r}>"

    sig = {"a_desc": desc([1, 1, BLOCK_K, BLOCK_M]), "b_desc": desc([1, 1, BLOCK_K, BLOCK_N]),
           "c_desc": desc([BLOCK_M, BLOCK_N]), "offs_ptr": "*i32", "E": "i32", "R": "i32", "C": "i32",
           "NUM_PROGS": "i32", "NUM_STAGES": "constexpr", "num_warps": "constexpr"}
    return compile_sm90(_wgrad_pingpong_kernel, sig, {"NUM_STAGES": stages, "num_warps": 4},
                        num_warps=4, maxnreg=MAXNREG)
