"""Triton grouped GEMMs for SwiGLU experts over tokens sorted by expert: launch, dispatch, autograd.

Layout (the ``models.moe.experts.grouped_mlp`` contract): ``x`` [M, H] rows sorted by expert,
``w13`` [E, 2I, H] (gate rows [0, I), up rows [I, 2I)), ``w2`` [E, H, I], ``offsets`` int32 [E]
cumulative row ends (``offsets[-1] == M``). Expert e owns rows ``[offsets[e-1], offsets[e])``.

``gate_up_swiglu`` (act = SwiGLU of the fused gate/up GEMM, optionally the pre-activations h),
``grouped_mm_fused`` (row-grouped ``A @ B_e``, optionally with the SwiGLU backward fused) and
``weight_grad`` (``dW_e = A_e^T @ B_e``) launch the kernels of ``grouped_gemm_kernels`` under the tile
configs of ``grouped_gemm_configs``; ``GroupedMLPFunction`` / ``grouped_mlp_fused`` chain them into
the differentiable expert MLP (forward 2 launches, backward 4). The configs and kernels are
re-exported here (the tests, sm90_check and the benches reach them through this module).

Environment flags:

* ``DOTS_GG_TMA`` (default 1): TMA descriptors on Hopper (needs H and I multiples of 8); 0 takes the
  masked-pointer path.
* ``DOTS_GG_AUTOTUNE`` (default 1): autotune tile shapes per (M bucket, N, K, variant), except for
  launches that the device's tuned table names a config for (``models.moe.kernel_tables``,
  ``conf/moe/kernels/<device>.json``, ``DOTS_GG_TUNED``); 0 uses the first config of each list (fast
  start, tests).
* ``DOTS_GG_WS`` (default 0): the warp-specialised configs join autotuning.
* ``DOTS_GG_PINGPONG`` (opt-in: ``wgrad``, ``dh``, both as ``1``) runs the weight gradients through the
  Gluon ping-pong kernel of ``wgrad_pingpong`` and the SwiGLU backward through that of ``dh_pingpong``
  where they apply (sm_90, widths multiples of 128).
* ``DOTS_GG_PERSISTENT_PROGRAMS``: programs of a persistent launch (default one per SM).
"""

from __future__ import annotations

import importlib
import os

import torch
import triton

from models.moe import kernel_tables
from models.moe.kernels.grouped_gemm_configs import (  # noqa: F401 - re-exported
    _BLOCK_K,
    _DESC_BLOCKS,
    _EPI_DESCS,
    EXPERIMENTAL_CONFIGS,
    GATE_UP_CONFIGS,
    MGROUPED_CONFIGS,
    WGRAD_CONFIGS,
    WS_CONFIGS,
    _cfg,
    _pre_launch,
    _set_desc_blocks,
    config_name,
    table_candidates,
    unique_by_name,
)
from models.moe.kernels.grouped_gemm_kernels import (  # noqa: F401 - re-exported
    _MIN_BLOCK_M,
    _fill_tile_map,
    _gate_up_kernel,
    _mgrouped_kernel,
    _row_tile_order,
    _tile_at,
    _tile_map_buffer,
    _tile_map_kernel,
    _tile_table,
    _wgrad_kernel,
)

try:  # Triton >= 3.5: host TMA descriptors and ragged (hardware-bounded) row groups
    from triton.tools.ragged_tma import create_ragged_descriptor
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older Triton: pointer loads and stores only
    TensorDescriptor = None
    create_ragged_descriptor = None


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
    docs/KERNELS.md), ``1`` / ``all`` both, or a comma-separated list of names; read per call."""
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
    Triton kernel and the dh one tied it (docs/KERNELS.md)."""
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
