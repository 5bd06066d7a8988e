"""Triton kernels of the grouped-GEMM SwiGLU experts (``models.moe.kernels.grouped_gemm`` launches them).

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
loads overlap this tile's epilogue); WS configs are persistent with Triton's warp specialization
(``tl.range(..., warp_specialize=True)``, unflattened: producer warps issue the TMA loads while the
consumer warps run the MMAs). Rows past an expert's end inside a tile are computed on neighbouring
rows and never stored, so uneven loads, empty experts and row counts that are not tile multiples
need no padding. The tile-shape flags (constexprs; ``grouped_gemm_configs._cfg`` documents them):

* HALF_TAIL runs an expert's last tile as a half-height tile when it holds at most BLOCK_M/2 rows
  (less wasted work); HALF_N runs the row-grouped GEMM's last column tile at half width when it
  holds at most BLOCK_N/2 columns (dh at N = 1408 = 5.5 x 256).
* GROUP_M = 0 ("egroup") walks the row-grouped kernels' tiles expert by expert, each expert's row
  tiles fastest, so an expert's weight tiles are read once; TILE_MAP reads each tile's expert and
  rows from a table that ``_tile_map_kernel`` writes before the launch.
* EPI_SPLIT runs the row-grouped kernels' TMA epilogue over 2 or 4 column chunks (gate/up: 2) of
  the tile in turn: the SwiGLU backward over a whole 128x256 tile spills registers, and its
  persistent loop would not fit in shared memory. EPI_PTR stores through masked pointers instead of
  TMA, which needs no shared-memory staging.

dW2 is computed transposed (``TRANS_OUT``) so that the expert width sits on the tiles' 128-row side.
With TMA, operands are loaded by tensor descriptors and outputs stored through ragged descriptors
(``triton.tools.ragged_tma``): the copy engine itself drops rows past the expert's end, and the
weight-gradient kernels read each expert's rows with ragged loads (zeros past the end). Without TMA
the same kernels use masked pointer loads and stores (a correctness fallback, not tuned).
``python -m models.moe.kernels.sm90_check`` compiles every config for sm_90 without a GPU, and
tests/test_grouped_gemm_interpreter.py runs the kernels' logic in Triton's interpreter on CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

try:  # Triton >= 3.5: ragged (hardware-bounded) row groups
    from triton.tools.ragged_tma import load_ragged, store_ragged
except ImportError:  # pragma: no cover - older Triton: pointer loads and stores only
    load_ragged = store_ragged = None


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
        else:  # column halves one after another: smaller staging, so persistent loops fit
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
    stores. It beats both one program per tile and the warp-specialised loop (docs/KERNELS.md); the
    epilogue, during which no MMA runs, remains (the ping-pong kernel's subject). Its trip count,
    this program's tiles' K steps summed, comes from the E offsets up front: program p takes tiles
    p, p + P, ...; of expert e's tiles [e * per_e, (e + 1) * per_e) it takes
    ceil((hi - p) / P) - ceil((lo - p) / P) (clamped at 0), each max(1, ceil(rows_e / BLOCK_K)) steps
    (an expert without rows: one step of zeros).
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
# the tile map (TILE_MAP configs)


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

