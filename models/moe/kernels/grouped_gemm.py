"""Triton grouped GEMMs for SwiGLU experts over tokens sorted by expert (forward and backward).

Layout (the ``models.moe.experts.grouped_mlp`` contract): ``x`` [M, H] rows sorted by expert,
``w13`` [E, 2I, H] (gate rows [0, I), up rows [I, 2I)), ``w2`` [E, H, I], ``offsets`` int32 [E]
cumulative row ends (``offsets[-1] == M``). Expert e owns rows ``[offsets[e-1], offsets[e])``.

Kernels (bf16 operands, fp32 accumulation, one launch each, no host sync, no loop over experts):

* ``_gate_up_kernel``: ``act = silu(x @ gate_e^T) * (x @ up_e^T)`` as one GEMM against the fused
  weight (each program holds a gate and an up accumulator for the same columns), SwiGLU in the
  epilogue; optionally also stores the pre-activations ``h = [gate | up]`` for the backward pass.
* ``_mgrouped_kernel``: ``C = A @ B_e`` over row groups (the down projection ``act @ w2_e^T``; the
  input gradients ``dy @ w2_e`` with the SwiGLU backward fused into its epilogue, and
  ``dh @ w13_e``).
* ``_wgrad_kernel``: ``dW_e = A_e^T @ B_e`` reduced over each expert's rows (weight gradients; a
  grouped GEMM over the token dimension; empty experts get zeros).

Row groups are found on the device: every program reads the E offsets, prefix-sums the per-expert
tile counts (``tl.cumsum``) and looks up its expert. Grid mode launches an upper bound
(``cdiv(M, BLOCK_M) + E`` row tiles) whose surplus programs exit at once; PERSISTENT configs launch one
program per SM that loops over the real tiles (``tl.range(..., flatten=True)``, so the next tile's
loads overlap this tile's epilogue); WS configs (opt-in, ``DOTS_GG_WS=1``, see the config lists) are
persistent with Triton's warp specialization (``tl.range(..., warp_specialize=True)``, unflattened:
producer warps issue the TMA loads while the consumer warps run the MMAs). Rows past an expert's end inside a tile are computed on
neighbouring rows and never stored, so uneven loads, empty experts and row counts that are not tile
multiples need no padding. HALF_TAIL configs run an expert's last tile as a half-height tile when
it holds at most BLOCK_M/2 rows (less of that wasted work), HALF_N configs run the row-grouped GEMM's
last column tile at half width when it holds at most BLOCK_N/2 columns (dh at N = 1408 = 5.5 x 256);
GROUP_M = 0 ("egroup") configs walk the row-grouped kernels' tiles expert by expert, each expert's
row tiles fastest, and TILE_MAP ones read each tile's expert and rows from a table that a small
kernel writes before the launch; dW2 is computed transposed
(``weight_grad(..., trans_out=True)``) so that the expert width sits on the tiles' 128-row side;
EPI_SPLIT configs run the row-grouped kernels' TMA epilogue over 2 or 4 column chunks (gate/up: 2)
of the tile in turn (the SwiGLU backward over a whole 128x256 tile spills registers, and its
persistent loop would not fit in shared memory); EPI_PTR configs (experimental) store through masked pointers
instead of TMA, which needs no shared-memory staging. ``python -m models.moe.kernels.sm90_check``
compiles every config for sm_90 without a GPU (shared memory, registers, spills), and
tests/test_grouped_gemm_interpreter.py runs the kernels' logic in Triton's interpreter on CPU.

With TMA (the default on Hopper, ``DOTS_GG_TMA=1``; needs H and I multiples of 8) operands are loaded
by tensor descriptors, and outputs are stored through ragged descriptors
(``triton.tools.ragged_tma``): the copy engine itself drops rows past the expert's end, and the
weight-gradient kernels read each expert's rows with ragged loads (zeros past the end). Without TMA
the same kernels use masked pointer loads and stores (a correctness fallback, not tuned).
``DOTS_GG_PINGPONG`` (opt-in: ``wgrad``, ``dh``, both as ``1``) runs the weight gradients through the
Gluon ping-pong kernel of ``wgrad_pingpong`` and the SwiGLU backward through that of ``dh_pingpong``
where they apply (sm_90, widths multiples of 128).
``DOTS_GG_AUTOTUNE`` (default 1): autotune tile shapes per (M bucket, N, K, variant), except for
launches that the device's tuned table names a config for (``models.moe.kernel_tables``,
``conf/moe/kernels/<device>.json``, ``DOTS_GG_TUNED``); 0 uses the first config of each list (fast
start, tests).
"""

from __future__ import annotations

import importlib
import os

import torch
import triton
import triton.language as tl

from models.moe import kernel_tables

try:  # Triton >= 3.5: host TMA descriptors and ragged (hardware-bounded) row groups
    from triton.tools.ragged_tma import create_ragged_descriptor, load_ragged, store_ragged
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older Triton: pointer loads and stores only
    TensorDescriptor = None
    create_ragged_descriptor = load_ragged = store_ragged = None

_BLOCK_K = 64  # every config below uses BLOCK_K = 64 (EVEN_K is decided on the host from it)


# ----------------------------------------------------------------------------------------------
# device helpers


@triton.jit
def _swizzle(pid, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Grouped ordering (Triton matmul tutorial): GROUP_M row tiles share each column tile in L2."""
    width = GROUP_M * num_pid_n
    group = pid // width
    first_m = group * GROUP_M
    size_m = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m
    return pid_m, pid_n


@triton.jit
def _expert_major(tile, first, rows, num_pid_n):
    """(global row tile, column tile) of ``tile`` in the expert-by-expert order, for the expert whose
    row tiles are [first, first + rows) and whose tiles start at linear tile first * num_pid_n: its
    row tiles fastest, then its next column tile."""
    local = tile - first * num_pid_n
    return first + local % rows, local // rows


@triton.jit
def _row_tile_order(tile, num_m_bound, num_pid_n, idx, tiles, cum, GROUP_M: tl.constexpr):
    """(global row tile, column tile) of linear tile ``tile`` of a row-grouped kernel.

    GROUP_M > 0: the grouped order over all row tiles (``_swizzle``, ``num_m_bound`` row tiles);
    groups of GROUP_M row tiles cut across expert boundaries (~6.5 row tiles per expert at the
    dots.llm1 shapes), so an expert's weight column tile is used by its rows in two groups, a wave
    apart. GROUP_M == 0 ("egroup"): expert by expert, each expert's row tiles fastest, so each column
    tile of an expert's weights is used by all of that expert's row tiles back to back. A tile past
    the last one gets a row tile past the last expert, which ``_tile_lookup`` reports as empty."""
    if GROUP_M > 0:
        pid_m, pid_n = _swizzle(tile, num_m_bound, num_pid_n, GROUP_M)
    else:
        total_m = tl.sum(tiles, axis=0)
        e = tl.sum((cum * num_pid_n <= tile).to(tl.int32), axis=0)
        sel = idx == e
        base = tl.sum(tl.where(sel, cum - tiles, 0), axis=0)  # the expert's first global row tile
        rows = tl.maximum(tl.sum(tl.where(sel, tiles, 0), axis=0), 1)
        pid_m, pid_n = _expert_major(tile, base, rows, num_pid_n)
        pid_m = tl.where(tile < total_m * num_pid_n, pid_m, total_m)
    return pid_m, pid_n


@triton.jit
def _tile_table(offs_ptr, E, E_P2: tl.constexpr, BLOCK_M: tl.constexpr):
    """Per-expert row starts, ends, row-tile counts and their inclusive prefix sum (on the device)."""
    idx = tl.arange(0, E_P2)
    ends = tl.load(offs_ptr + idx, mask=idx < E, other=0)
    starts = tl.load(offs_ptr + idx - 1, mask=(idx > 0) & (idx < E), other=0)
    counts = tl.where(idx < E, ends - starts, 0)
    tiles = (counts + BLOCK_M - 1) // BLOCK_M
    cum = tl.cumsum(tiles, axis=0)
    return idx, starts, ends, tiles, cum


@triton.jit
def _tile_lookup(tile_m, idx, starts, ends, tiles, cum, BLOCK_M: tl.constexpr):
    """Expert, its first row, the tile's first row and the expert's row end for global row tile
    ``tile_m`` (row0 >= end when there is no such tile)."""
    e = tl.sum((cum <= tile_m).to(tl.int32), axis=0)
    sel = idx == e
    first_tile = tl.sum(tl.where(sel, cum - tiles, 0), axis=0)
    start = tl.sum(tl.where(sel, starts, 0), axis=0)
    end = tl.sum(tl.where(sel, ends, 0), axis=0)
    row0 = start + (tile_m - first_tile) * BLOCK_M
    return e, start, row0, end


@triton.jit
def _tile_at(tile, num_m_bound, num_pid_n, idx, starts, ends, tiles, cum, tmap_ptr,
             GROUP_M: tl.constexpr, TILE_MAP: tl.constexpr, BLOCK_M: tl.constexpr):
    """Expert, its first row, the tile's first row, the expert's row end and the column tile of
    linear tile ``tile`` of a row-grouped kernel (row0 >= end: no such tile, grid mode's surplus).

    TILE_MAP: from the per-row-tile table that ``_fill_tile_map`` wrote before the launch ([expert,
    first row, row end, the expert's first row tile] per global row tile): four scalar loads per tile
    instead of the reductions over the E offsets that ``_tile_lookup`` (and the "egroup" order) do
    per tile, which need cross-warp exchanges through shared memory at E = 128."""
    if TILE_MAP:
        if GROUP_M > 0:
            pid_m, pid_n = _swizzle(tile, num_m_bound, num_pid_n, GROUP_M)
            q = pid_m
        else:  # expert by expert: an expert's tiles start at a multiple of num_pid_n
            q = tile // num_pid_n
        e = tl.load(tmap_ptr + 4 * q)
        start = tl.load(tmap_ptr + 4 * q + 1)
        end = tl.load(tmap_ptr + 4 * q + 2)
        first = tl.load(tmap_ptr + 4 * q + 3)
        if GROUP_M == 0:
            pid_m, pid_n = _expert_major(tile, first, tl.maximum(tl.cdiv(end - start, BLOCK_M), 1), num_pid_n)
        row0 = start + (pid_m - first) * BLOCK_M
    else:
        pid_m, pid_n = _row_tile_order(tile, num_m_bound, num_pid_n, idx, tiles, cum, GROUP_M)
        e, start, row0, end = _tile_lookup(pid_m, idx, starts, ends, tiles, cum, BLOCK_M)
    return e, start, row0, end, pid_n


# ----------------------------------------------------------------------------------------------
# tiles


@triton.jit
def _gate_up_epi(acc_g, acc_u, act_desc, g_desc, u_desc, start, cnt, row0, n0, dt: tl.constexpr,
                 STORE_H: tl.constexpr):
    """TMA epilogue of one [rows, cols] block of the gate and up accumulators at (row0, n0):
    act = silu(g) * u, and with STORE_H the pre-activations g and u."""
    act = acc_g * tl.sigmoid(acc_g) * acc_u
    store_ragged(act_desc, start, cnt, [row0 - start, n0], act.to(dt))
    if STORE_H:
        store_ragged(g_desc, start, cnt, [row0 - start, n0], acc_g.to(dt))
        store_ragged(u_desc, start, cnt, [row0 - start, n0], acc_u.to(dt))


@triton.jit
def _gate_up_epi_halves(acc_g, acc_u, act_desc, g_desc, u_desc, start, cnt, row0, n0, dt: tl.constexpr,
                        STORE_H: tl.constexpr):
    """``_gate_up_epi`` over the left and then the right column half of the accumulators."""
    rows: tl.constexpr = acc_g.shape[0]
    half: tl.constexpr = acc_g.shape[1] // 2
    g0, g1 = acc_g.reshape(rows, 2, half).permute(0, 2, 1).split()
    u0, u1 = acc_u.reshape(rows, 2, half).permute(0, 2, 1).split()
    _gate_up_epi(g0, u0, act_desc, g_desc, u_desc, start, cnt, row0, n0, dt, STORE_H)
    _gate_up_epi(g1, u1, act_desc, g_desc, u_desc, start, cnt, row0, n0 + half, dt, STORE_H)


@triton.jit
def _gate_up_tile(
    x_ptr, w_ptr, x_desc, w_desc, act_desc, g_desc, u_desc, act_ptr, h_ptr,
    e, start, row0, row_end, n0, M, N, K,
    stride_xm, stride_we, stride_wn, stride_am, stride_hm,
    STORE_H: tl.constexpr, USE_TMA: tl.constexpr, EVEN_K: tl.constexpr, EPI_PTR: tl.constexpr,
    EPI_SPLIT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    dt = act_ptr.dtype.element_ty
    if USE_TMA:
        wrow = e * (2 * N) + n0
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            kk = k * BLOCK_K
            a = x_desc.load([row0, kk])
            bg = w_desc.load([wrow, kk])
            bu = w_desc.load([wrow + N, kk])
            acc_g = tl.dot(a, bg.T, acc_g)
            acc_u = tl.dot(a, bu.T, acc_u)
    else:
        offs_k = tl.arange(0, BLOCK_K)
        rows = tl.minimum(row0 + tl.arange(0, BLOCK_M), M - 1).to(tl.int64)
        cols = tl.minimum(n0 + tl.arange(0, BLOCK_N), N - 1)
        a_ptrs = x_ptr + rows[:, None] * stride_xm + offs_k[None, :]
        wg_ptrs = w_ptr + e.to(tl.int64) * stride_we + cols[None, :] * stride_wn + offs_k[:, None]
        wu_ptrs = wg_ptrs + N * stride_wn
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            if EVEN_K:
                a = tl.load(a_ptrs)
                bg = tl.load(wg_ptrs)
                bu = tl.load(wu_ptrs)
            else:
                kmask = offs_k < K - k * BLOCK_K
                a = tl.load(a_ptrs, mask=kmask[None, :], other=0.0)
                bg = tl.load(wg_ptrs, mask=kmask[:, None], other=0.0)
                bu = tl.load(wu_ptrs, mask=kmask[:, None], other=0.0)
            acc_g = tl.dot(a, bg, acc_g)
            acc_u = tl.dot(a, bu, acc_u)
            a_ptrs += BLOCK_K
            wg_ptrs += BLOCK_K
            wu_ptrs += BLOCK_K
    if USE_TMA and not EPI_PTR:
        # ragged stores: the hardware drops rows past the expert's end and columns past N
        cnt = row_end - start
        if EPI_SPLIT == 1:
            _gate_up_epi(acc_g, acc_u, act_desc, g_desc, u_desc, start, cnt, row0, n0, dt, STORE_H)
        else:  # column halves one after another: smaller staging, so persistent loops fit (4 chunks
            # lost in session 9's sweep and were removed)
            tl.static_assert(EPI_SPLIT == 2, "the gate/up kernel's EPI_SPLIT: 1 or 2")
            _gate_up_epi_halves(acc_g, acc_u, act_desc, g_desc, u_desc, start, cnt, row0, n0, dt, STORE_H)
    else:  # masked pointer epilogue (no shared-memory staging)
        act = acc_g * tl.sigmoid(acc_g) * acc_u
        offs_m = row0 + tl.arange(0, BLOCK_M)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask = (offs_m < row_end)[:, None] & (offs_n < N)[None, :]
        rows64 = offs_m.to(tl.int64)
        tl.store(act_ptr + rows64[:, None] * stride_am + offs_n[None, :], act.to(dt), mask=mask)
        if STORE_H:
            hp = h_ptr + rows64[:, None] * stride_hm + offs_n[None, :]
            tl.store(hp, acc_g.to(dt), mask=mask)
            tl.store(hp + N, acc_u.to(dt), mask=mask)


@triton.jit
def _mgrouped_epi(acc, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0, n0, dt: tl.constexpr,
                  SWIGLU_BWD: tl.constexpr):
    """TMA epilogue of one [rows, cols] accumulator block at (row0, n0): C, or with SWIGLU_BWD
    dh = [d(act) * u * silu'(g) | d(act) * silu(g)] from the stored pre-activations g, u."""
    if SWIGLU_BWD:
        g = hg_desc.load([row0, n0]).to(tl.float32)
        u = hu_desc.load([row0, n0]).to(tl.float32)
        sig = tl.sigmoid(g)
        silu = g * sig
        store_ragged(dg_desc, start, cnt, [row0 - start, n0], (acc * u * (sig + silu * (1.0 - sig))).to(dt))
        store_ragged(du_desc, start, cnt, [row0 - start, n0], (acc * silu).to(dt))
    else:
        store_ragged(c_desc, start, cnt, [row0 - start, n0], acc.to(dt))


@triton.jit
def _mgrouped_epi_halves(acc, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0, n0,
                         dt: tl.constexpr, SWIGLU_BWD: tl.constexpr):
    """``_mgrouped_epi`` over the left and then the right column half of ``acc``."""
    rows: tl.constexpr = acc.shape[0]
    half: tl.constexpr = acc.shape[1] // 2
    a0, a1 = acc.reshape(rows, 2, half).permute(0, 2, 1).split()
    _mgrouped_epi(a0, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0, n0, dt, SWIGLU_BWD)
    _mgrouped_epi(a1, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0, n0 + half, dt, SWIGLU_BWD)


@triton.jit
def _mgrouped_tile(
    a_ptr, b_ptr, a_desc, b_desc, c_desc, hg_desc, hu_desc, dg_desc, du_desc, c_ptr, h_ptr,
    e, start, row0, row_end, n0, M, N, K,
    stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
    B_KMAJOR: tl.constexpr, SWIGLU_BWD: tl.constexpr, USE_TMA: tl.constexpr, EVEN_K: tl.constexpr,
    EPI_PTR: tl.constexpr, EPI_SPLIT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    dt: tl.constexpr = c_ptr.dtype.element_ty
    if USE_TMA:
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            kk = k * BLOCK_K
            a = a_desc.load([row0, kk])
            if B_KMAJOR:  # b_desc over [E*N, K]
                b = b_desc.load([e * N + n0, kk]).T
            else:  # b_desc over [E*K, N]
                b = b_desc.load([e * K + kk, n0])
            acc = tl.dot(a, b, acc)
    else:
        offs_k = tl.arange(0, BLOCK_K)
        rows = tl.minimum(row0 + tl.arange(0, BLOCK_M), M - 1).to(tl.int64)
        cols = n0 + tl.arange(0, BLOCK_N)  # masked, not clamped: keeps N-contiguous loads vectorised
        nmask = cols < N
        a_ptrs = a_ptr + rows[:, None] * stride_am + offs_k[None, :]
        b_ptrs = b_ptr + e.to(tl.int64) * stride_be + offs_k[:, None] * stride_bk + cols[None, :] * stride_bn
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            if EVEN_K:
                a = tl.load(a_ptrs)
                b = tl.load(b_ptrs, mask=nmask[None, :], other=0.0)
            else:
                kmask = offs_k < K - k * BLOCK_K
                a = tl.load(a_ptrs, mask=kmask[None, :], other=0.0)
                b = tl.load(b_ptrs, mask=kmask[:, None] & nmask[None, :], other=0.0)
            acc = tl.dot(a, b, acc)
            a_ptrs += BLOCK_K
            b_ptrs += BLOCK_K * stride_bk
    if USE_TMA and not EPI_PTR:
        cnt = row_end - start
        if EPI_SPLIT == 1:
            _mgrouped_epi(acc, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0, n0, dt, SWIGLU_BWD)
        elif EPI_SPLIT == 2:  # column chunks one after another: fewer live registers, smaller staging
            _mgrouped_epi_halves(acc, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0, n0, dt,
                                 SWIGLU_BWD)
        else:
            tl.static_assert(EPI_SPLIT == 4, "EPI_SPLIT: 1, 2 or 4")
            a0, a1 = acc.reshape(BLOCK_M, 2, BLOCK_N // 2).permute(0, 2, 1).split()
            _mgrouped_epi_halves(a0, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0, n0, dt,
                                 SWIGLU_BWD)
            _mgrouped_epi_halves(a1, c_desc, hg_desc, hu_desc, dg_desc, du_desc, start, cnt, row0,
                                 n0 + BLOCK_N // 2, dt, SWIGLU_BWD)
    else:  # masked pointer epilogue: no shared-memory staging (EPI_PTR lets persistent tiles fit)
        offs_m = row0 + tl.arange(0, BLOCK_M)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask = (offs_m < row_end)[:, None] & (offs_n < N)[None, :]
        rows64 = offs_m.to(tl.int64)
        c_ptrs = c_ptr + rows64[:, None] * stride_cm + offs_n[None, :]
        if SWIGLU_BWD:
            hp = h_ptr + rows64[:, None] * stride_hm + offs_n[None, :]
            g = tl.load(hp, mask=mask, other=0.0).to(tl.float32)
            u = tl.load(hp + N, mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(g)
            silu = g * sig
            tl.store(c_ptrs, (acc * u * (sig + silu * (1.0 - sig))).to(dt), mask=mask)
            tl.store(c_ptrs + N, (acc * silu).to(dt), mask=mask)
        else:
            tl.store(c_ptrs, acc.to(dt), mask=mask)


@triton.jit
def _wgrad_operands(a_ptr, b_ptr, a_desc, b_desc, start, cnt, t, r0, c0, R, C, stride_am, stride_bm,
                    USE_TMA: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """A weight-gradient K step's operands, both token-major as stored: A [BLOCK_K, BLOCK_M] (rows
    start + t .. of A, columns r0..; the product takes its transpose) and B [BLOCK_K, BLOCK_N]
    (columns c0..); rows at or past the expert's ``cnt`` read as zeros (ragged TMA loads, or masks on
    the pointer path). The transpose stays at the ``tl.dot``: taken here, it splits the A and B TMA
    loads onto separate barriers in the pipelined loop (sm_90 PTX)."""
    if USE_TMA:
        a = load_ragged(a_desc, start, cnt, [t, r0])
        b = load_ragged(b_desc, start, cnt, [t, c0])
    else:
        tok = (start + t + tl.arange(0, BLOCK_K)).to(tl.int64)
        kmask = tl.arange(0, BLOCK_K) < cnt - t
        offs_r = r0 + tl.arange(0, BLOCK_M)  # masked, not clamped: keeps contiguous loads vectorised
        offs_c = c0 + tl.arange(0, BLOCK_N)
        a = tl.load(a_ptr + tok[:, None] * stride_am + offs_r[None, :],
                    mask=kmask[:, None] & (offs_r[None, :] < R), other=0.0)
        b = tl.load(b_ptr + tok[:, None] * stride_bm + offs_c[None, :],
                    mask=kmask[:, None] & (offs_c[None, :] < C), other=0.0)
    return a, b


@triton.jit
def _wgrad_tile(
    a_ptr, b_ptr, a_desc, b_desc, out_desc, c_ptr,
    e, start, end, r0, c0, R, C,
    stride_am, stride_bm, stride_ce, stride_cr,
    USE_TMA: tl.constexpr, TRANS_OUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    cnt = end - start
    for t in range(0, cnt, BLOCK_K):
        a, b = _wgrad_operands(a_ptr, b_ptr, a_desc, b_desc, start, cnt, t, r0, c0, R, C, stride_am, stride_bm,
                               USE_TMA, BLOCK_M, BLOCK_N, BLOCK_K)
        acc = tl.dot(a.T, b, acc)
    _wgrad_store(out_desc, c_ptr, acc, e, r0, c0, R, C, stride_ce, stride_cr, USE_TMA, TRANS_OUT, BLOCK_M, BLOCK_N)


@triton.jit
def _wgrad_store(out_desc, c_ptr, acc, e, r0, c0, R, C, stride_ce, stride_cr,
                 USE_TMA: tl.constexpr, TRANS_OUT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One weight-gradient tile's epilogue: ``acc`` [BLOCK_M, BLOCK_N] to out[e, r0:, c0:] (or, with
    TRANS_OUT, its transpose to out[e, c0:, r0:])."""
    dt = c_ptr.dtype.element_ty
    if USE_TMA:
        if TRANS_OUT:  # out [E, C, R]
            out_desc.store([e, c0, r0], acc.to(dt).T.reshape(1, BLOCK_N, BLOCK_M))
        else:
            out_desc.store([e, r0, c0], acc.to(dt).reshape(1, BLOCK_M, BLOCK_N))
    else:
        offs_r = r0 + tl.arange(0, BLOCK_M)
        offs_c = c0 + tl.arange(0, BLOCK_N)
        if TRANS_OUT:
            c_ptrs = c_ptr + e.to(tl.int64) * stride_ce + offs_c[None, :] * stride_cr + offs_r[:, None]
        else:
            c_ptrs = c_ptr + e.to(tl.int64) * stride_ce + offs_r[:, None] * stride_cr + offs_c[None, :]
        tl.store(c_ptrs, acc.to(dt), mask=(offs_r[:, None] < R) & (offs_c[None, :] < C))


@triton.jit
def _wgrad_flat(
    a_ptr, b_ptr, a_desc, b_desc, out_desc, c_ptr, offs_ptr, R, C, E, NUM_PROGS,
    stride_am, stride_bm, stride_ce, stride_cr,
    USE_TMA: tl.constexpr, TRANS_OUT: tl.constexpr, E_P2: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """The persistent weight gradient as ONE loop over this program's (tile, K step) pairs.

    Why: a weight-gradient tile reduces over one expert's rows only (~768 at 16K tokens: 12 steps of
    64), and Triton fuses a persistent tile loop with its K loop only when the K loop's bounds do not
    change from tile to tile (FuseNestedLoops), which a per-expert row count does. Unfused, every
    tile loads the offsets, then waits for its first operand loads, then runs its K loop and epilogue.
    As one loop, the software pipeliner issues the next tile's loads while this tile finishes and
    stores. Measured (H200, 16K tokens, same sweep): dW13 571 TFLOP/s vs 559 warp-specialised and 534
    one program per tile; 1-4% over the unfused loop of earlier sweeps, less than the ~15% per-tile
    overhead that 12 K steps per tile leave against one expert (680): the epilogue, during which no
    MMA runs, remains (the ping-pong kernel's subject). Its trip count, this program's tiles' K steps
    summed, comes from the E offsets up front: program p takes tiles p, p + P, ...; of expert e's
    tiles [e * per_e, (e + 1) * per_e) it takes ceil((hi - p) / P) - ceil((lo - p) / P) (clamped at
    0), each max(1, ceil(rows_e / BLOCK_K)) steps (an expert without rows: one step of zeros).
    """
    pid = tl.program_id(0)
    num_r = tl.cdiv(R, BLOCK_M)
    num_c = tl.cdiv(C, BLOCK_N)
    per_e = num_r * num_c
    idx = tl.arange(0, E_P2)
    ends = tl.load(offs_ptr + idx, mask=idx < E, other=0)
    starts = tl.load(offs_ptr + idx - 1, mask=(idx > 0) & (idx < E), other=0)
    ksteps = tl.maximum((ends - starts + BLOCK_K - 1) // BLOCK_K, 1)
    lo = idx * per_e
    mine = (tl.maximum(lo + per_e - pid + NUM_PROGS - 1, 0) // NUM_PROGS
            - tl.maximum(lo - pid + NUM_PROGS - 1, 0) // NUM_PROGS)
    total = tl.sum(tl.where(idx < E, mine * ksteps, 0), axis=0)

    zero = pid * 0  # int32 scalars carried through the loop
    tile = pid - NUM_PROGS
    ki = zero
    kt = zero + 1  # so that the first step starts a tile
    e = zero
    start = zero
    cnt = zero
    r0 = zero
    c0 = zero
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in range(0, total):
        ki = tl.where(ki == kt - 1, 0, ki + 1)
        if ki == 0:  # the next tile
            tile += NUM_PROGS
            e = tile // per_e
            end = tl.load(offs_ptr + e)
            start = tl.load(offs_ptr + e - 1, mask=e > 0, other=0)
            cnt = end - start
            kt = tl.maximum((cnt + BLOCK_K - 1) // BLOCK_K, 1)
            pid_r, pid_c = _swizzle(tile % per_e, num_r, num_c, GROUP_M)
            r0 = pid_r * BLOCK_M
            c0 = pid_c * BLOCK_N
        a, b = _wgrad_operands(a_ptr, b_ptr, a_desc, b_desc, start, cnt, ki * BLOCK_K, r0, c0, R, C,
                               stride_am, stride_bm, USE_TMA, BLOCK_M, BLOCK_N, BLOCK_K)
        acc = tl.dot(a.T, b, acc)
        if ki == kt - 1:  # the tile's last step: store it, start the next from zero
            _wgrad_store(out_desc, c_ptr, acc, e, r0, c0, R, C, stride_ce, stride_cr,
                         USE_TMA, TRANS_OUT, BLOCK_M, BLOCK_N)
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)


# ----------------------------------------------------------------------------------------------
# kernels: one program per tile over an upper-bound grid, or PERSISTENT (one program per SM looping
# over the real tiles; the K loops of consecutive tiles are flattened so that the next tile's loads
# overlap this tile's epilogue)


@triton.jit
def _gate_up_any(
    x_ptr, w_ptr, x_desc, w_desc, act_desc, g_desc, u_desc, x_desc2, act_desc2, g_desc2, u_desc2,
    act_ptr, h_ptr, e, start, row0, row_end, n0, M, N, K,
    stride_xm, stride_we, stride_wn, stride_am, stride_hm,
    STORE_H: tl.constexpr, USE_TMA: tl.constexpr, EVEN_K: tl.constexpr, HALF_TAIL: tl.constexpr,
    EPI_PTR: tl.constexpr, EPI_SPLIT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """One row tile; with HALF_TAIL a tile with <= BLOCK_M/2 rows left in its expert (an expert's
    tail) runs at half height through the "*2" descriptors, halving the work spent on rows past the
    expert's end (at ~768 +- 28 rows per expert, 128-row tiles waste ~8% of the work on them)."""
    if HALF_TAIL and row_end - row0 <= BLOCK_M // 2:
        _gate_up_tile(x_ptr, w_ptr, x_desc2, w_desc, act_desc2, g_desc2, u_desc2, act_ptr, h_ptr,
                      e, start, row0, row_end, n0, M, N, K,
                      stride_xm, stride_we, stride_wn, stride_am, stride_hm,
                      STORE_H, USE_TMA, EVEN_K, EPI_PTR, EPI_SPLIT, BLOCK_M // 2, BLOCK_N, BLOCK_K)
    else:
        _gate_up_tile(x_ptr, w_ptr, x_desc, w_desc, act_desc, g_desc, u_desc, act_ptr, h_ptr,
                      e, start, row0, row_end, n0, M, N, K,
                      stride_xm, stride_we, stride_wn, stride_am, stride_hm,
                      STORE_H, USE_TMA, EVEN_K, EPI_PTR, EPI_SPLIT, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def _gate_up_kernel(
    x_ptr, w_ptr, x_desc, w_desc, act_desc, g_desc, u_desc, x_desc2, act_desc2, g_desc2, u_desc2,
    act_ptr, h_ptr, offs_ptr, tmap_ptr,
    M, N, K, E, M_BUCKET, NUM_PROGS,
    stride_xm, stride_we, stride_wn, stride_am, stride_hm,
    STORE_H: tl.constexpr, USE_TMA: tl.constexpr, EVEN_K: tl.constexpr, E_P2: tl.constexpr,
    PERSISTENT: tl.constexpr, WS: tl.constexpr, FLATTEN: tl.constexpr, HALF_TAIL: tl.constexpr,
    HALF_N: tl.constexpr, EPI_PTR: tl.constexpr, EPI_SPLIT: tl.constexpr, TILE_MAP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """act[M, N] = silu(x @ Wg_e^T) * (x @ Wu_e^T); w [E, 2N, K]; optional h[M, 2N] = [g | u]."""
    tl.static_assert(not HALF_N, "HALF_N: the row-grouped GEMM kernel only")
    num_pid_n = tl.cdiv(N, BLOCK_N)
    idx, starts, ends, tiles, cum = _tile_table(offs_ptr, E, E_P2, BLOCK_M)
    if PERSISTENT:
        total_m = tl.sum(tiles, axis=0)
        for tile in tl.range(tl.program_id(0), total_m * num_pid_n, NUM_PROGS, flatten=FLATTEN, warp_specialize=WS):
            e, start, row0, row_end, pid_n = _tile_at(tile, total_m, num_pid_n, idx, starts, ends, tiles, cum,
                                                      tmap_ptr, GROUP_M, TILE_MAP, BLOCK_M)
            _gate_up_any(x_ptr, w_ptr, x_desc, w_desc, act_desc, g_desc, u_desc, x_desc2, act_desc2, g_desc2,
                         u_desc2, act_ptr, h_ptr, e, start, row0, row_end, pid_n * BLOCK_N, M, N, K,
                         stride_xm, stride_we, stride_wn, stride_am, stride_hm,
                         STORE_H, USE_TMA, EVEN_K, HALF_TAIL, EPI_PTR, EPI_SPLIT, BLOCK_M, BLOCK_N, BLOCK_K)
    else:
        e, start, row0, row_end, pid_n = _tile_at(tl.program_id(0), tl.cdiv(M, BLOCK_M) + E, num_pid_n, idx, starts,
                                                  ends, tiles, cum, tmap_ptr, GROUP_M, TILE_MAP, BLOCK_M)
        if row0 < row_end:
            _gate_up_any(x_ptr, w_ptr, x_desc, w_desc, act_desc, g_desc, u_desc, x_desc2, act_desc2, g_desc2,
                         u_desc2, act_ptr, h_ptr, e, start, row0, row_end, pid_n * BLOCK_N, M, N, K,
                         stride_xm, stride_we, stride_wn, stride_am, stride_hm,
                         STORE_H, USE_TMA, EVEN_K, HALF_TAIL, EPI_PTR, EPI_SPLIT, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def _mgrouped_any(
    a_ptr, b_ptr, a_desc, b_desc, c_desc, hg_desc, hu_desc, dg_desc, du_desc,
    a_desc2, c_desc2, hg_desc2, hu_desc2, dg_desc2, du_desc2, bh_desc, c_ptr, h_ptr,
    e, start, row0, row_end, n0, M, N, K,
    stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
    B_KMAJOR: tl.constexpr, SWIGLU_BWD: tl.constexpr, USE_TMA: tl.constexpr, EVEN_K: tl.constexpr,
    HALF_TAIL: tl.constexpr, HALF_N: tl.constexpr, EPI_PTR: tl.constexpr, EPI_SPLIT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """One tile; HALF_TAIL as in ``_gate_up_any``. HALF_N: a last column tile with at most
    BLOCK_N/2 columns left runs at half width (its B tiles through ``bh_desc``), at full height: the
    dh GEMM has N = 1408 = 5.5 x 256 at the dots.llm1 shapes, so 1 of its 6 column tiles per row
    tile is half empty (8% of its MMA work). The half-width tile runs its epilogue in EPI_SPLIT/2
    chunks, which keeps the chunk width, and with it the epilogue descriptors' block, the same."""
    if HALF_N and N - n0 <= BLOCK_N // 2:
        if USE_TMA and not EPI_PTR:
            tl.static_assert(EPI_SPLIT >= 2, "HALF_N with a TMA epilogue needs EPI_SPLIT >= 2")
        half_split: tl.constexpr = (EPI_SPLIT + 1) // 2
        _mgrouped_tile(a_ptr, b_ptr, a_desc, bh_desc, c_desc, hg_desc, hu_desc, dg_desc, du_desc, c_ptr, h_ptr,
                       e, start, row0, row_end, n0, M, N, K,
                       stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
                       B_KMAJOR, SWIGLU_BWD, USE_TMA, EVEN_K, EPI_PTR, half_split,
                       BLOCK_M, BLOCK_N // 2, BLOCK_K)
    elif HALF_TAIL and row_end - row0 <= BLOCK_M // 2:
        _mgrouped_tile(a_ptr, b_ptr, a_desc2, b_desc, c_desc2, hg_desc2, hu_desc2, dg_desc2, du_desc2, c_ptr, h_ptr,
                       e, start, row0, row_end, n0, M, N, K,
                       stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
                       B_KMAJOR, SWIGLU_BWD, USE_TMA, EVEN_K, EPI_PTR, EPI_SPLIT, BLOCK_M // 2, BLOCK_N, BLOCK_K)
    else:
        _mgrouped_tile(a_ptr, b_ptr, a_desc, b_desc, c_desc, hg_desc, hu_desc, dg_desc, du_desc, c_ptr, h_ptr,
                       e, start, row0, row_end, n0, M, N, K,
                       stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
                       B_KMAJOR, SWIGLU_BWD, USE_TMA, EVEN_K, EPI_PTR, EPI_SPLIT, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def _mgrouped_kernel(
    a_ptr, b_ptr, a_desc, b_desc, c_desc, hg_desc, hu_desc, dg_desc, du_desc,
    a_desc2, c_desc2, hg_desc2, hu_desc2, dg_desc2, du_desc2, bh_desc, c_ptr, h_ptr, offs_ptr, tmap_ptr,
    M, N, K, E, M_BUCKET, NUM_PROGS,
    stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
    B_KMAJOR: tl.constexpr, SWIGLU_BWD: tl.constexpr, USE_TMA: tl.constexpr, EVEN_K: tl.constexpr,
    E_P2: tl.constexpr, PERSISTENT: tl.constexpr, WS: tl.constexpr, FLATTEN: tl.constexpr,
    HALF_TAIL: tl.constexpr, HALF_N: tl.constexpr, EPI_PTR: tl.constexpr, EPI_SPLIT: tl.constexpr,
    TILE_MAP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """C[rows of e] = A[rows of e] @ B_e (B_e[k, n] at b + e*stride_be + k*stride_bk + n*stride_bn).

    SWIGLU_BWD: the product is d(act) [M, N]; h [M, 2N] holds the pre-activations [g | u]; stores
    C [M, 2N] = [d(act) * u * silu'(g) | d(act) * silu(g)].
    """
    num_pid_n = tl.cdiv(N, BLOCK_N)
    idx, starts, ends, tiles, cum = _tile_table(offs_ptr, E, E_P2, BLOCK_M)
    if PERSISTENT:
        total_m = tl.sum(tiles, axis=0)
        for tile in tl.range(tl.program_id(0), total_m * num_pid_n, NUM_PROGS, flatten=FLATTEN, warp_specialize=WS):
            e, start, row0, row_end, pid_n = _tile_at(tile, total_m, num_pid_n, idx, starts, ends, tiles, cum,
                                                      tmap_ptr, GROUP_M, TILE_MAP, BLOCK_M)
            _mgrouped_any(a_ptr, b_ptr, a_desc, b_desc, c_desc, hg_desc, hu_desc, dg_desc, du_desc,
                          a_desc2, c_desc2, hg_desc2, hu_desc2, dg_desc2, du_desc2, bh_desc, c_ptr, h_ptr,
                          e, start, row0, row_end, pid_n * BLOCK_N, M, N, K,
                          stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
                          B_KMAJOR, SWIGLU_BWD, USE_TMA, EVEN_K, HALF_TAIL, HALF_N, EPI_PTR, EPI_SPLIT,
                          BLOCK_M, BLOCK_N, BLOCK_K)
    else:
        e, start, row0, row_end, pid_n = _tile_at(tl.program_id(0), tl.cdiv(M, BLOCK_M) + E, num_pid_n, idx, starts,
                                                  ends, tiles, cum, tmap_ptr, GROUP_M, TILE_MAP, BLOCK_M)
        if row0 < row_end:
            _mgrouped_any(a_ptr, b_ptr, a_desc, b_desc, c_desc, hg_desc, hu_desc, dg_desc, du_desc,
                          a_desc2, c_desc2, hg_desc2, hu_desc2, dg_desc2, du_desc2, bh_desc, c_ptr, h_ptr,
                          e, start, row0, row_end, pid_n * BLOCK_N, M, N, K,
                          stride_am, stride_be, stride_bk, stride_bn, stride_cm, stride_hm,
                          B_KMAJOR, SWIGLU_BWD, USE_TMA, EVEN_K, HALF_TAIL, HALF_N, EPI_PTR, EPI_SPLIT,
                          BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def _wgrad_kernel(
    a_ptr, b_ptr, a_desc, b_desc, out_desc, c_ptr, offs_ptr,
    R, C, E, M_BUCKET, NUM_PROGS,
    stride_am, stride_bm, stride_ce, stride_cr,
    USE_TMA: tl.constexpr, TRANS_OUT: tl.constexpr, E_P2: tl.constexpr,
    PERSISTENT: tl.constexpr, WS: tl.constexpr, FLATTEN: tl.constexpr, HALF_TAIL: tl.constexpr,
    HALF_N: tl.constexpr, EPI_PTR: tl.constexpr, EPI_SPLIT: tl.constexpr, TILE_MAP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """C[e] [R, C] = A[rows of e, :R]^T @ B[rows of e, :C] (fp32 accumulation over the rows);
    zeros for an expert without rows. TRANS_OUT: stored transposed, C[e] [C, R] (so that the side
    that is not a tile multiple, e.g. an expert width of 1408 = 5.5 x 256, can be put on R).
    HALF_TAIL, EPI_PTR, EPI_SPLIT and TILE_MAP are unused here (row tiles are over R, not over tokens);
    HALF_N must be off. PERSISTENT with FLATTEN runs ``_wgrad_flat`` (one loop over tiles and K steps)."""
    tl.static_assert(not HALF_N, "HALF_N: the row-grouped GEMM kernel only")
    tl.static_assert(GROUP_M > 0, "the weight-gradient kernel's tiles are per expert: GROUP_M must be > 0")
    num_r = tl.cdiv(R, BLOCK_M)
    num_c = tl.cdiv(C, BLOCK_N)
    per_e = num_r * num_c
    if PERSISTENT and FLATTEN:
        _wgrad_flat(a_ptr, b_ptr, a_desc, b_desc, out_desc, c_ptr, offs_ptr, R, C, E, NUM_PROGS,
                    stride_am, stride_bm, stride_ce, stride_cr, USE_TMA, TRANS_OUT, E_P2,
                    BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)
    elif PERSISTENT:  # warp-specialised (WS configs are unflattened: FLATTEN = not WS)
        for tile in tl.range(tl.program_id(0), E * per_e, NUM_PROGS, warp_specialize=WS):
            e = tile // per_e
            pid_r, pid_c = _swizzle(tile % per_e, num_r, num_c, GROUP_M)
            end = tl.load(offs_ptr + e)
            start = tl.load(offs_ptr + e - 1, mask=e > 0, other=0)
            _wgrad_tile(a_ptr, b_ptr, a_desc, b_desc, out_desc, c_ptr, e, start, end,
                        pid_r * BLOCK_M, pid_c * BLOCK_N, R, C, stride_am, stride_bm, stride_ce, stride_cr,
                        USE_TMA, TRANS_OUT, BLOCK_M, BLOCK_N, BLOCK_K)
    else:
        pid = tl.program_id(0)
        e = pid // per_e
        pid_r, pid_c = _swizzle(pid % per_e, num_r, num_c, GROUP_M)
        end = tl.load(offs_ptr + e)
        start = tl.load(offs_ptr + e - 1, mask=e > 0, other=0)
        _wgrad_tile(a_ptr, b_ptr, a_desc, b_desc, out_desc, c_ptr, e, start, end,
                    pid_r * BLOCK_M, pid_c * BLOCK_N, R, C, stride_am, stride_bm, stride_ce, stride_cr,
                    USE_TMA, TRANS_OUT, BLOCK_M, BLOCK_N, BLOCK_K)


# ----------------------------------------------------------------------------------------------
# configs and launch


def _cfg(bm: int, bn: int, warps: int, stages: int, persistent: bool = False, group: int = 8,
         bk: int = _BLOCK_K, ws: bool = False, half: bool = False, epi_ptr: bool = False,
         split: int = 1, tmap: bool = False, half_n: bool = False, **extra) -> triton.Config:
    """A tile config. ``ws``: warp-specialised persistent loop (Triton's Hopper warp specialization
    needs an unflattened loop, so FLATTEN = not ws); ``half``: HALF_TAIL, experts' tails of <= bm/2
    rows run as half-height tiles (row-grouped kernels); ``epi_ptr``: EPI_PTR, the row-grouped kernels
    store (and the SwiGLU backward loads h) with masked pointer accesses instead of TMA, which needs
    no shared-memory staging, so persistent configs that otherwise do not fit do (experimental:
    sweep candidates, not yet in the lists); ``split``: EPI_SPLIT, the row-grouped and gate/up
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


_MIN_BLOCK_M = 64  # the smallest row tile of any config: tile-map buffers are sized for it


@triton.jit
def _tile_map_kernel(offs_ptr, tmap_ptr, E, CAP, E_P2: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_Q: tl.constexpr):
    """Rows [BLOCK_Q * pid, ...) of the tile map: per global row tile q, [expert, first row, row end,
    the expert's first row tile]; past the last real tile [0, 0, 0, q] (empty)."""
    idx, starts, ends, tiles, cum = _tile_table(offs_ptr, E, E_P2, BLOCK_M)
    q = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    before = cum[None, :] <= q[:, None]  # [BLOCK_Q, E_P2]: experts whose tiles all come before q
    e = tl.sum(before.to(tl.int32), axis=1)
    first = tl.sum(tl.where(before, tiles[None, :], 0), axis=1)
    valid = e < E
    ec = tl.minimum(e, E - 1)
    end = tl.load(offs_ptr + ec)
    start = tl.load(offs_ptr + ec - 1, mask=ec > 0, other=0)
    inside = q < CAP
    tl.store(tmap_ptr + 4 * q, tl.where(valid, ec, 0), mask=inside)
    tl.store(tmap_ptr + 4 * q + 1, tl.where(valid, start, 0), mask=inside)
    tl.store(tmap_ptr + 4 * q + 2, tl.where(valid, end, 0), mask=inside)
    tl.store(tmap_ptr + 4 * q + 3, tl.where(valid, first, q), mask=inside)


def _fill_tile_map(tmap: torch.Tensor, offsets: torch.Tensor, block_m: int) -> None:
    """Write the row-grouped kernels' per-row-tile table for ``block_m``-row tiles into ``tmap``
    (int32, 4 per row tile: expert, its first row, its row end, its first row tile), for every row
    tile up to the buffer's capacity; tiles past the last real one get an empty entry (first row =
    row end = 0). One small kernel on the device, no host synchronisation (TILE_MAP configs)."""
    if block_m < _MIN_BLOCK_M:
        raise ValueError(f"tile map: BLOCK_M {block_m} < {_MIN_BLOCK_M}, the smallest the buffers are sized for")
    e, cap = offsets.shape[0], tmap.numel() // 4
    _tile_map_kernel[(triton.cdiv(cap, 128),)](offsets, tmap, e, cap, E_P2=triton.next_power_of_2(e),
                                               BLOCK_M=block_m, BLOCK_Q=128)


def _tile_map_buffer(m: int, e: int, device) -> torch.Tensor:
    """Room for the tile map of any config: the grid-mode bound of row tiles at the smallest BLOCK_M."""
    return torch.empty((triton.cdiv(m, _MIN_BLOCK_M) + e) * 4, device=device, dtype=torch.int32)


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
# Candidates chosen by bench/grouped_gemm_sweep.py at the dots.llm1 shapes (16K tokens, TFLOP/s).
# H100, session 3: gate_up storing h 128x128 s4 556 / with half tiles 594, inference 607 / 589;
# down 128x256 persistent 567 > ws 556 > grid 540 (half 537); dh 128x256 half 466 > grid 456;
# dx persistent 605 > half 596 > grid 561; dw2 (transposed) grid 552, ws 558. H200, session 2:
# dw13 128x256 ws 555, persistent 552. H100, session 4 (EPI_SPLIT): dh grid 468 -> split2 484 ->
# persistent split2 498 (the whole-tile SwiGLU-backward epilogue spills 204 B per thread and its
# persistent loop needs 280 KB of shared memory; in two column chunks neither, sm90_check); down
# persistent 562 -> persistent split4 583; dx persistent 611 (split2 608). Half tiles need grid mode
# or a split epilogue (persistent + half + whole-tile epilogue does not fit in shared memory). 64-row
# tiles stay for small row counts. H200, session 6: the expert-by-expert tile order ("egroup", below)
# gained 1-4% in every row-grouped kernel at 16K (gate_up storing h with half tiles 570 -> 592, gate_up
# 592 -> 605, dx persistent split2 594 -> 616, dh half split2 489 -> 499), so its best configs are
# in the lists. The first config of each list must fit every variant (DOTS_GG_AUTOTUNE=0 launches
# it); for the row-grouped list it is the grid split2 one (no spills).
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

# Experimental candidates, not autotuned: bench/grouped_gemm_sweep.py times them and
# tests/test_grouped_gemm_gpu.py checks them, and one moves into a list above once a sweep shows it
# faster. EPI_PTR (pointer epilogues, no shared-memory staging) lets persistent loops fit, but its
# SwiGLU-backward variant spills 13-16 KB per thread (dh 160-210 TFLOP/s, session 4) and its other
# variants were no faster than the TMA epilogues; the EPI_SPLIT ones below lost to those in the lists.
# Session 5 (sm90_check, no spills unless said): 256x128 tiles, the same 128 fp32 accumulators per
# thread as 128x256 but an exact 11 column tiles at N = 1408 (dh; 128x256 computes 5.5 of which the
# half is waste), row-grouped s3 grid/persistent split2 (dh spills 4 B)/persistent half split2; 256x128
# s4 persistent split2 and 128x256x128 s2 persistent split2 (down and dx only: dh needs 262 KB);
# 128x256 s4 persistent split4 (229 KB for dh); wgrad 256x128 s3 grid/persistent; gate/up with
# BLOCK_K = 128 in two stages and 256-row tiles. H200 sweep at 16K tokens: every one lost to the
# lists' best (dh 256x128 grid split2 451 vs 128x256 half split2 471; down 505 vs 561; dx 513 vs 587;
# dw13 544 vs 561; gate/up 418-451 vs 570-582). Session 6 removed them (and the other losers named
# below) from this list, so that GPU test runs and sweeps stop spending device time on them; the
# figures stay in the README.
# Also session 5, measured in session 6 (H200, 16K): "egroup" (group=0) versions of the lists' best
# row-grouped configs. The H200 breakdown (README) has the kernels as fast as cuBLAS as dense GEMMs
# but 9-15% slower grouped with balanced routing, as if weight streaming were not hidden; grouped
# ordering over global row tiles splits most experts' rows across two groups a wave apart, so their
# weight tiles may be read from HBM twice. Expert-by-expert order reads them once: +1-4%, the best
# moved into the lists. And "tmap" (TILE_MAP) versions: each tile's expert and rows come from a
# per-row-tile table written before the launch (four scalar loads) instead of reductions over the
# 128 offsets per tile (cross-warp exchanges through shared memory): persistent down/dx +0-2% (the
# H200 table names them), gate/up 16% slower (one gate/up tmap config stays, for its coverage).
# Session 6: 128x128 persistent split2 row-grouped tiles (s4 / s5; sm_90: dh 181 registers, no spill,
# 164 / 197 KB), for dh's smaller epilogue per tile: slower everywhere (dh 420-449 vs 499); removed. HALF_N ("halfn"): dh's half-empty last column tile (N =
# 1408 = 5.5 x 256) at half width: dh 495 -> 518 (16K, grid half split2 egroup), 515 -> 535 (32K,
# grid split2 egroup); persistent halfn is slower (463; removed). In the H200 table; the half split2 egroup
# config in the list is its halfn version (the same kernel wherever N is a multiple of 256).
EXPERIMENTAL_CONFIGS = {
    # Session 9: the gate/up epilogue in column chunks (EPI_SPLIT), so that persistent loops fit with 4
    # stages (sm_90: 205-221 KB). H200 sweep at 16K, storing h / not, against the grid config's 585 /
    # 605: 128x128 s4 pers split2 egroup 459 / 476, split4 453 / 462, half split2 530 / 543, half
    # split4 526 / 493; s3 pers split2 egroup 462 / 473, half split2 egroup 572 / 581 (kept, for the
    # split epilogue's coverage); s3 pers 454 / 470, s3 pers half 567 / 573. The flattened persistent
    # loop (no half tiles) is 20% slower than the nested one (half tiles keep two inner loops, so
    # nothing is fused): the fused loop holds both accumulators at 255 registers. Warp-specialised
    # gate/up (with and without egroup) tied the grid config (606 / 569 vs 605 / 585; 32K: 612 vs 626).
    "GATE_UP_CONFIGS": [_cfg(128, 128, 8, 3, persistent=True, epi_ptr=True), _cfg(128, 128, 8, 4, group=0),
                        _cfg(128, 128, 8, 4, tmap=True),
                        _cfg(128, 128, 8, 3, persistent=True, half=True, split=2, group=0)],
    "MGROUPED_CONFIGS": [
        _cfg(128, 256, 8, 3, split=2, group=0), _cfg(128, 256, 8, 3, persistent=True, split=4, group=0),
        _cfg(128, 256, 8, 3, persistent=True, epi_ptr=True), _cfg(128, 256, 8, 2, persistent=True, epi_ptr=True),
        _cfg(128, 256, 8, 3, persistent=True, half=True, epi_ptr=True),
        _cfg(128, 256, 8, 3), _cfg(128, 256, 8, 3, split=4), _cfg(128, 256, 8, 3, half=True),
        _cfg(128, 256, 8, 3, persistent=True, half=True, split=2),
        _cfg(128, 256, 8, 3, persistent=True, half=True, split=4),
        _cfg(128, 256, 8, 3, ws=True, split=2), _cfg(128, 256, 8, 3, ws=True, split=4),
        _cfg(128, 256, 8, 3, ws=True, half=True, split=2),
        _cfg(128, 256, 8, 3, persistent=True, split=2, tmap=True),
        _cfg(128, 256, 8, 3, persistent=True, split=2, group=0, tmap=True),
        _cfg(128, 256, 8, 3, persistent=True, split=4, tmap=True), _cfg(128, 256, 8, 3, half=True, split=2, tmap=True),
        _cfg(128, 256, 8, 3, split=2, group=0, tmap=True),
        _cfg(128, 256, 8, 3, half=True, split=2, group=0), _cfg(128, 256, 8, 3, split=2, group=0, half_n=True),
    ],
    # Session 8 tried the flattened persistent loop (``_wgrad_flat``) with other tiles and depths; H200
    # sweep, dW13 / dW2 TFLOP/s at 16K (32K) tokens against 579 / 586 (628 / 602) for 128x256x64 s3
    # pers: 128x256x32 s6 (half the zero rows in an expert's last K step, twice the steps) 503 / 498
    # (541 / 533); 128x128 s5 467 / 463; 256x128 s3 539 / 505; 128x256 s4 with the store in two
    # column halves (a 4th stage fits) 580 / 565 (618 / 603); 256x128 s4 split2 532 / 465. None kept.
    # Also session 8, row-grouped: one warp group per 128x128 (or 64x256) tile in 64-98 KB of shared
    # memory, so that two programs share an SM and one's epilogue (dh: loads h, stores two outputs)
    # overlaps the other's MMAs (ping-pong's effect without warp specialisation). H200, 16K, dh / down /
    # dx against the table's 507 / 591 / 618: 128x128 w4 s3 split2 489 / 522 / 534, + egroup 502 / 525
    # / 538, + half 507 / 540 / 550; s2 split2 egroup 432 / 538 / 558; 64x256 w4 s2 split2 egroup 403 /
    # 452 / 495. Not kept: a tie at best (dh), the half-size tiles' extra operand traffic costs the rest.
    "WGRAD_CONFIGS": [],
}

# Warp-specialised configs are opt-in (DOTS_GG_WS=1). Session 4 sweep on an H100 (16K tokens): the
# gate/up kernel without stored h (inference) 634 vs 607 for the best other config, dw13 576 vs 561,
# dw2 557 vs 549, dx 621 vs 615 in one run and 600 vs 611 in the next (run-to-run spread ~3%); in
# training the gate/up kernel stores h, and there ws is slower (583 vs 593). A 300-step run of
# conf/moe/small.yaml with them as candidates (H200, session 2) ended 0.39 below the reference loss
# by step 150; they pass every GPU test (bit-reproducible at the trainer's shapes), and two correct
# paths drift as far apart after the plateau escape (README "End to end"), but without an
# end-to-end gain to show they stay off.
# the warp-specialised configs of each list, whether or not they are autotuning candidates (tests)
WS_CONFIGS = {name: [c for c in lst if c.kwargs["WS"]] for name, lst in
              (("GATE_UP_CONFIGS", GATE_UP_CONFIGS), ("MGROUPED_CONFIGS", MGROUPED_CONFIGS),
               ("WGRAD_CONFIGS", WGRAD_CONFIGS))}
if os.environ.get("DOTS_GG_WS", "0").strip().lower() in ("", "0", "false", "no", "off"):
    for _lst in (GATE_UP_CONFIGS, MGROUPED_CONFIGS, WGRAD_CONFIGS):
        _lst[:] = [c for c in _lst if not c.kwargs["WS"]]

def _tune_bench(fn, quantiles=None):
    """Autotuning timer: 3x Triton's default measuring time per config. The candidates are within a
    few percent of each other, and with ~100 ms each the pick changed from run to run (H100)."""
    return triton.testing.do_bench(fn, warmup=25, rep=300, quantiles=quantiles)


_KEY = ["M_BUCKET", "N", "K", "USE_TMA"]
_gate_up_tuned = triton.autotune(GATE_UP_CONFIGS, key=_KEY + ["STORE_H"], do_bench=_tune_bench)(_gate_up_kernel)
_mgrouped_tuned = triton.autotune(
    MGROUPED_CONFIGS, key=_KEY + ["B_KMAJOR", "SWIGLU_BWD"], do_bench=_tune_bench)(_mgrouped_kernel)
_wgrad_tuned = triton.autotune(
    WGRAD_CONFIGS, key=["M_BUCKET", "R", "C", "E", "USE_TMA", "TRANS_OUT"], do_bench=_tune_bench)(_wgrad_kernel)


def _env_flag(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    return default if v is None or v == "" else v.strip().lower() not in ("0", "false", "no", "off")


_PINGPONG_KERNELS = ("wgrad", "dh")


def _pingpong_on(kernel: str) -> bool:
    """Whether DOTS_GG_PINGPONG selects the Gluon ping-pong version of ``kernel`` ("wgrad" or "dh"):
    unset or ``0`` none (the default: neither beats the Triton kernel under the H200's power cap,
    README), ``1`` / ``all`` both, or a comma-separated list of names; read per call."""
    v = os.environ.get("DOTS_GG_PINGPONG", "").strip().lower()
    if v in ("", "0", "false", "no", "off", "none"):
        return False
    if v in ("1", "true", "yes", "on", "all"):
        return True
    names = {w.strip() for w in v.split(",") if w.strip()}
    bad = names - set(_PINGPONG_KERNELS)
    if bad:
        raise ValueError(f"DOTS_GG_PINGPONG={v!r}: 0, 1, all or a list of {', '.join(_PINGPONG_KERNELS)}")
    return kernel in names


def _pingpong_module(kernel: str, tma: bool):
    """The Gluon ping-pong module for ``kernel`` (``models.moe.kernels.<kernel>_pingpong``) where
    DOTS_GG_PINGPONG names it and the call takes the TMA path; None otherwise, and with a Triton
    that has no Gluon Hopper API (the Triton kernel runs). Callers still check its ``supported``.
    Both are opt-in: under the H200's power cap the weight-gradient one measured 2-3% slower than the
    Triton kernel and the dh one tied it (README)."""
    if not _pingpong_on(kernel) or not tma:
        return None
    try:
        return importlib.import_module(f"models.moe.kernels.{kernel}_pingpong")
    except ImportError:
        return None


def _autotune() -> bool:
    return _env_flag("DOTS_GG_AUTOTUNE", True)


def _use_tma(t: torch.Tensor, *dims: int) -> bool:
    if TensorDescriptor is None or not _env_flag("DOTS_GG_TMA", True):
        return False
    if not t.is_cuda or torch.cuda.get_device_capability(t.device)[0] < 9 or t.shape[0] == 0:
        return False
    return all(d % 8 == 0 for d in dims)  # TMA: 16-byte aligned row strides and column offsets (bf16)


_NUM_SMS: dict[int, int] = {}


def _num_sms(t: torch.Tensor) -> int:
    """Programs a persistent launch starts: one per SM, or ``DOTS_GG_PERSISTENT_PROGRAMS`` (tests set
    a few so that every program loops over many tiles, empty experts included, even at small shapes)."""
    override = os.environ.get("DOTS_GG_PERSISTENT_PROGRAMS", "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"DOTS_GG_PERSISTENT_PROGRAMS={override!r}: a positive integer")
        return int(override)
    if not t.is_cuda:
        return 4
    dev = t.device.index if t.device.index is not None else torch.cuda.current_device()
    if dev not in _NUM_SMS:
        _NUM_SMS[dev] = torch.cuda.get_device_properties(dev).multi_processor_count
    return _NUM_SMS[dev]


# the table key of the most recent launch (bench/grouped_gemm_sweep.py --write-table records it)
LAST_LAUNCH: dict = {}
# (device index, DOTS_GG_TUNED) -> (the table's key -> config name, (key, id of the list) -> config)
_TABLES: dict[tuple[int, str], tuple[dict[str, str], dict]] = {}


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


def _table_config(t: torch.Tensor, key: str, configs: list) -> triton.Config | None:
    """The config the device's tuned table (models.moe.kernel_tables, ``DOTS_GG_TUNED``) names for
    this launch, or None where it names none. A name that is not among ``table_candidates(configs)``
    is an error: the table was written for other configs."""
    spec = os.environ.get("DOTS_GG_TUNED", "")
    index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    if (index, spec) not in _TABLES:  # read once per device and setting, not per launch
        _TABLES[(index, spec)] = (kernel_tables.table_for(torch.cuda.get_device_name(index), spec), {})
    names, resolved = _TABLES[(index, spec)]
    name = names.get(key)
    if name is None:
        return None
    hit = resolved.get((key, id(configs)))
    if hit is not None:  # resolved once per key, not per launch
        return hit
    known = table_candidates(configs)
    for cfg in known:
        if config_name(cfg) == name:
            resolved[(key, id(configs))] = cfg
            return cfg
    raise ValueError(
        f"tuned kernel table for {torch.cuda.get_device_name(index)!r} (DOTS_GG_TUNED={spec!r}) names {name!r} "
        f"for {key!r}, which is not one of this kernel's configs ({', '.join(config_name(c) for c in known)}); "
        "re-run python -m bench.grouped_gemm_sweep --write-table auto, or set DOTS_GG_TUNED=0")


def _with_tile_map(raw, args: tuple, may_run: list) -> tuple:
    """``args`` with a tile-map buffer in the ``tmap_ptr`` slot where one of the configs that may run
    reads it (TILE_MAP); the wrappers pass the offsets there as a placeholder that the other configs
    never dereference, so launches without TILE_MAP allocate nothing."""
    if "tmap_ptr" not in raw.arg_names or not any(c.kwargs.get("TILE_MAP") for c in may_run):
        return args
    names = raw.arg_names
    i = names.index("tmap_ptr")
    buf = _tile_map_buffer(args[names.index("M")], args[names.index("E")], args[0].device)
    return args[:i] + (buf,) + args[i + 1:]


def _launch(tuned, raw, configs: list, grid, args: tuple, kwargs: dict, key: str) -> None:
    """Launch the config the device's tuned table names for ``key`` (TMA path), else the autotuned
    kernel; with autotuning off, the first config of the list."""
    LAST_LAUNCH["key"] = key
    if _autotune():
        cfg = _table_config(args[0], key, configs) if kwargs["USE_TMA"] else None
        LAST_LAUNCH["config"] = config_name(cfg) if cfg is not None else "autotuned"
        if cfg is None:
            tuned[grid](*_with_tile_map(raw, args, configs), **kwargs)
            return
    else:
        cfg = configs[0]
        LAST_LAUNCH["config"] = config_name(cfg)
    args = _with_tile_map(raw, args, [cfg])
    nargs = dict(zip(raw.arg_names, args, strict=False))
    nargs.update(kwargs)
    nargs.update(cfg.kwargs)
    _pre_launch(nargs)
    raw[grid(cfg.kwargs)](*args, **kwargs, **cfg.kwargs, num_warps=cfg.num_warps, num_stages=cfg.num_stages)


def _desc(t: torch.Tensor):
    """Host TMA descriptor over a 2-D or 3-D tensor or strided view (block shape set by the hook)."""
    return TensorDescriptor(t, list(t.shape), list(t.stride()), [1] * t.dim())


def _ragged(t: torch.Tensor):
    """Ragged descriptor (triton.tools.ragged_tma) over 2-D ``t``: stores and loads are bounded by a
    row group [start, start + count) given at run time, and by the columns of ``t``."""
    return create_ragged_descriptor(t, [1, 1])


def _m_bucket(m: int) -> int:
    return triton.next_power_of_2(max(m, 1))


def _grid_rows(m: int, e: int, n: int, num_progs: int):
    def grid(meta):
        if meta["PERSISTENT"]:
            return (num_progs,)
        return ((triton.cdiv(m, meta["BLOCK_M"]) + e) * triton.cdiv(n, meta["BLOCK_N"]),)

    return grid


def _check(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, offsets: torch.Tensor) -> None:
    from models.moe.experts import check_shapes  # the entry point's contract check (lazy: no cycle)

    check_shapes(x, w13, w2, offsets)
    for name, t in (("x", x), ("w13", w13), ("w2", w2), ("offsets", offsets)):
        if not t.is_cuda or t.device != x.device:
            raise ValueError(f"grouped_mlp_fused: {name} must be on the CUDA device of x ({x.device})")


def gate_up_swiglu(
    x: torch.Tensor, w13: torch.Tensor, offsets: torch.Tensor, store_h: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``act`` [M, I] = silu(x @ gate_e^T) * (x @ up_e^T) per expert; with ``store_h`` also
    ``h`` [M, 2I] = the pre-activations [gate | up] (bf16) for the backward pass."""
    m, k = x.shape
    e, two_n, _ = w13.shape
    n = two_n // 2
    act = torch.empty((m, n), device=x.device, dtype=x.dtype)
    h = torch.empty((m, two_n), device=x.device, dtype=x.dtype) if store_h else None
    if m == 0:
        return act, h
    tma = _use_tma(x, k, n)
    h_arg = h if h is not None else act  # (unused without STORE_H)
    if tma:  # x, w, act, g, u, then the half-height-tile descriptors x2, act2, g2, u2
        descs = (_desc(x), _desc(w13.view(e * two_n, k)), _ragged(act))
        descs += (_ragged(h[:, :n]), _ragged(h[:, n:])) if h is not None else (descs[2], descs[2])
        act2 = _ragged(act)
        descs += (_desc(x), act2) + ((_ragged(h[:, :n]), _ragged(h[:, n:])) if h is not None else (act2, act2))
    else:
        descs = (x, w13, act, act, act, x, act, act, act)
    # the offsets twice: the second is the tile-map placeholder (_launch swaps in a buffer for TILE_MAP)
    args = (x, w13, *descs, act, h_arg, offsets, offsets, m, n, k, e, _m_bucket(m), _num_sms(x),
            x.stride(0), w13.stride(0), w13.stride(1), act.stride(0), h_arg.stride(0))
    kwargs = dict(STORE_H=store_h, USE_TMA=tma, EVEN_K=k % _BLOCK_K == 0, E_P2=triton.next_power_of_2(e))
    key = kernel_tables.table_key("gate_up", m_bucket=_m_bucket(m), n=n, k=k, e=e, store_h=store_h)
    _launch(_gate_up_tuned, _gate_up_kernel, GATE_UP_CONFIGS, _grid_rows(m, e, n, _num_sms(x)), args, kwargs, key)
    return act, h


def grouped_mm_fused(
    a: torch.Tensor, b: torch.Tensor, offsets: torch.Tensor, b_kmajor: bool,
    h: torch.Tensor | None = None,
) -> torch.Tensor:
    """Row-grouped ``A @ B_e``: with ``b_kmajor`` B is [E, N, K] (``A @ b[e]^T``), else [E, K, N]
    (``A @ b[e]``). With ``h`` ([M, 2N] pre-activations) the SwiGLU backward is fused: returns
    ``dh`` [M, 2N] from ``d(act) = A @ B_e``."""
    m, k = a.shape
    e = b.shape[0]
    n = b.shape[1] if b_kmajor else b.shape[2]
    if (b.shape[2] if b_kmajor else b.shape[1]) != k:
        raise ValueError(f"grouped_mm_fused: A {tuple(a.shape)} and B {tuple(b.shape)} disagree on K")
    tma = _use_tma(a, k, n)
    pp = _pingpong_module("dh", tma) if h is not None and not b_kmajor else None
    if pp is not None and pp.supported(a, b, h):  # the SwiGLU backward through the Gluon ping-pong kernel
        return pp.dh_pingpong(a, b, h, offsets, programs=_num_sms(a))
    out_n = 2 * n if h is not None else n
    c = torch.empty((m, out_n), device=a.device, dtype=a.dtype)
    if m == 0:
        return c
    stride_bk, stride_bn = (b.stride(2), b.stride(1)) if b_kmajor else (b.stride(1), b.stride(2))
    h_arg = h if h is not None else c
    if tma:
        b2d = b.view(e * n, k) if b_kmajor else b.view(e * k, n)
        b_desc, bh_desc = _desc(b2d), _desc(b2d)  # full- and half-width column tiles (block shapes differ)
        # a, b, c, hg, hu, dg, du, then the half-height-tile ones a2, c2, hg2, hu2, dg2, du2, then the
        # half-width tile's b
        if h is not None:  # (c_desc unused: dh is stored through its two column halves)
            dg_desc, du_desc = _ragged(c[:, :n]), _ragged(c[:, n:])
            dg2, du2 = _ragged(c[:, :n]), _ragged(c[:, n:])
            descs = (_desc(a), b_desc, dg_desc, _desc(h[:, :n]), _desc(h[:, n:]), dg_desc, du_desc,
                     _desc(a), dg2, _desc(h[:, :n]), _desc(h[:, n:]), dg2, du2, bh_desc)
        else:
            c_desc, c2 = _ragged(c), _ragged(c)
            descs = (_desc(a), b_desc, c_desc, c_desc, c_desc, c_desc, c_desc, _desc(a), c2, c2, c2, c2, c2, bh_desc)
    else:
        descs = (a, b, c, c, c, c, c, a, c, c, c, c, c, b)
    # the offsets twice: the second is the tile-map placeholder (_launch swaps in a buffer for TILE_MAP)
    args = (a, b, *descs, c, h_arg, offsets, offsets, m, n, k, e, _m_bucket(m), _num_sms(a),
            a.stride(0), b.stride(0), stride_bk, stride_bn, c.stride(0), h_arg.stride(0))
    kwargs = dict(B_KMAJOR=b_kmajor, SWIGLU_BWD=h is not None, USE_TMA=tma, EVEN_K=k % _BLOCK_K == 0,
                  E_P2=triton.next_power_of_2(e))
    key = kernel_tables.table_key("mgrouped", m_bucket=_m_bucket(m), n=n, k=k, e=e, b_kmajor=b_kmajor,
                                  swiglu_bwd=h is not None)
    _launch(_mgrouped_tuned, _mgrouped_kernel, MGROUPED_CONFIGS, _grid_rows(m, e, n, _num_sms(a)), args, kwargs, key)
    return c


def weight_grad(
    a: torch.Tensor, b: torch.Tensor, offsets: torch.Tensor, dtype: torch.dtype, trans_out: bool = False
) -> torch.Tensor:
    """``dW[e] = a[rows of e]^T @ b[rows of e]`` -> [E, R, C] (a [M, R], b [M, C]), or with
    ``trans_out`` its transpose [E, C, R]; zeros for an expert without rows."""
    pp = _pingpong_module("wgrad", _use_tma(a, a.shape[1], b.shape[1]))
    if pp is not None and pp.supported(a, b, dtype):  # (a^T b)^T = b^T a: transposed = the swapped product
        lhs, rhs = (b, a) if trans_out else (a, b)
        return pp.weight_grad_pingpong(lhs, rhs, offsets, programs=_num_sms(a))
    m, r = a.shape
    c_dim = b.shape[1]
    e = offsets.shape[0]
    out = torch.empty((e, c_dim, r) if trans_out else (e, r, c_dim), device=a.device, dtype=dtype)
    nsm = _num_sms(a)

    def grid(meta):
        if meta["PERSISTENT"]:
            return (nsm,)
        return (e * triton.cdiv(r, meta["BLOCK_M"]) * triton.cdiv(c_dim, meta["BLOCK_N"]),)

    tma = _use_tma(a, r, c_dim)
    descs = (_ragged(a), _ragged(b), _desc(out)) if tma else (a, b, out)
    args = (a, b, *descs, out, offsets, r, c_dim, e, _m_bucket(m), nsm, a.stride(0), b.stride(0),
            out.stride(0), out.stride(1))
    key = kernel_tables.table_key("wgrad", m_bucket=_m_bucket(m), r=r, c=c_dim, e=e, trans_out=trans_out)
    kwargs = dict(USE_TMA=tma, TRANS_OUT=trans_out, E_P2=triton.next_power_of_2(e))
    _launch(_wgrad_tuned, _wgrad_kernel, WGRAD_CONFIGS, grid, args, kwargs, key)
    return out


# ----------------------------------------------------------------------------------------------
# autograd


class GroupedMLPFunction(torch.autograd.Function):
    """SwiGLU experts over rows sorted by expert; forward 2 kernels, backward 4 kernels.

    Saved for backward: x, the weights, offsets, h = [gate | up] pre-activations and act (bf16).
    """

    @staticmethod
    def forward(ctx, x, w13, w2, offsets):  # noqa: D102
        need_grad = any(ctx.needs_input_grad[:3])
        act, h = gate_up_swiglu(x, w13, offsets, store_h=need_grad)
        y = grouped_mm_fused(act, w2, offsets, b_kmajor=True)
        if need_grad:
            ctx.save_for_backward(x, w13, w2, offsets, h, act)
        return y

    @staticmethod
    def backward(ctx, dy):  # noqa: D102
        x, w13, w2, offsets, h, act = ctx.saved_tensors
        dy = dy.contiguous().to(x.dtype)
        # d(act) = dy @ w2_e ; SwiGLU backward in the epilogue -> dh [M, 2I]
        dh = grouped_mm_fused(dy, w2, offsets, b_kmajor=False, h=h)
        dx = grouped_mm_fused(dh, w13, offsets, b_kmajor=False) if ctx.needs_input_grad[0] else None
        dw13 = weight_grad(dh, x, offsets, w13.dtype) if ctx.needs_input_grad[1] else None
        # dW2[e] = dy_e^T @ act_e [H, I], computed as (act_e^T @ dy_e)^T: the expert width I (1408 =
        # 11 x 128, but 5.5 x 256) goes on the 128-row side of the tiles, so no tile column is wasted
        dw2 = weight_grad(act, dy, offsets, w2.dtype, trans_out=True) if ctx.needs_input_grad[2] else None
        return dx, dw13, dw2, None


_COMPUTE_DTYPES = (torch.bfloat16, torch.float16)


def grouped_mlp_fused(
    x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """Fused grouped SwiGLU experts (Triton): x [M, H] sorted by expert, w13 [E, 2I, H], w2 [E, H, I],
    offsets [E] cumulative row ends (offsets[-1] == M) -> [M, H]. Differentiable.

    Operands are bf16 (fp16 kept as is; other dtypes are cast to bf16 and the result cast back),
    accumulation is fp32. No host synchronisation: ``offsets`` is only read on the device.
    """
    _check(x, w13, w2, offsets)
    out_dtype = x.dtype
    dt = x.dtype if x.dtype in _COMPUTE_DTYPES else torch.bfloat16
    xc = x.to(dt).contiguous()
    w13c = w13.to(dt).contiguous()
    w2c = w2.to(dt).contiguous()
    offs = offsets.to(torch.int32).contiguous()
    y = GroupedMLPFunction.apply(xc, w13c, w2c, offs)
    return y.to(out_dtype)
