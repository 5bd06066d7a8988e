"""Grouped SwiGLU experts: the one entry point every MoE layer calls.

Shapes (torchtitan-style suffixes):
    M  rows = routed (token, expert) pairs, sorted by expert
    H  model width (hidden size)
    I  expert FFN width
    E  number of experts

``grouped_mlp(x_MH, w13_E2IH, w2_EHI, offsets_E)`` computes, for every expert e and its rows
``x[offsets[e-1]:offsets[e]]``::

    gate, up = (x @ w13[e].T).split(I)          # rows [0, I) of w13[e] are gate, [I, 2I) up
    y = (silu(gate) * up) @ w2[e].T             # SwiGLU (Shazeer 2020, "GLU Variants")

Implementations, chosen per call:

* ``fused``: ``models.moe.kernels.grouped_mlp_fused`` (Triton, another area). Used on CUDA when that
  module imports and ``DOTS_GROUPED_MLP`` is not ``reference``. Only the kernels module being absent
  falls back; any other error (a bug in it, a missing Triton) propagates.
* ``grouped_mm``: ``torch._grouped_mm`` (cuBLAS grouped GEMM, Hopper, bf16), with
  ``DOTS_GROUPED_MLP=grouped_mm``.
* ``reference``: a loop over experts with dense matmuls; any device, any float dtype, empty experts
  allowed. It is the correctness oracle for the others and the speed baseline they must beat.

Under autocast the inputs are cast to the autocast dtype first, so every implementation sees the
same dtypes (the fused kernel and ``torch._grouped_mm`` are not autocast-aware).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F

ENV_VAR = "DOTS_GROUPED_MLP"
IMPLS = ("auto", "reference", "grouped_mm", "fused")
KERNELS_MODULE = "models.moe.kernels"

_fused_cache: list[Callable | None] = []  # [] = not looked up yet; [None] = kernels module absent


def check_shapes(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, offsets: torch.Tensor) -> None:
    """Validate the grouped_mlp contract (shared by the reference and the fused kernels)."""
    if x.dim() != 2 or w13.dim() != 3 or w2.dim() != 3 or offsets.dim() != 1:
        raise ValueError(
            f"grouped_mlp expects x [M,H], w13 [E,2I,H], w2 [E,H,I], offsets [E]; got "
            f"{tuple(x.shape)}, {tuple(w13.shape)}, {tuple(w2.shape)}, {tuple(offsets.shape)}"
        )
    e, two_i, h = w13.shape
    if two_i % 2 or x.shape[1] != h or w2.shape != (e, h, two_i // 2) or offsets.shape[0] != e:
        raise ValueError(
            f"grouped_mlp shape mismatch: x {tuple(x.shape)}, w13 {tuple(w13.shape)}, "
            f"w2 {tuple(w2.shape)}, offsets {tuple(offsets.shape)} (want w13 [E,2I,H], w2 [E,H,I])"
        )


def grouped_mlp_reference(
    x_MH: torch.Tensor, w13_E2IH: torch.Tensor, w2_EHI: torch.Tensor, offsets_E: torch.Tensor
) -> torch.Tensor:
    """Per-expert loop of dense matmuls (the oracle). Differentiable; handles empty experts.

    ``offsets_E`` is read on the host (one sync on GPU), which is fine for a reference.
    """
    check_shapes(x_MH, w13_E2IH, w2_EHI, offsets_E)
    inter = w2_EHI.shape[2]
    ends = offsets_E.tolist()
    if ends and ends[-1] != x_MH.shape[0]:
        raise ValueError(f"offsets[-1]={ends[-1]} must equal the number of rows M={x_MH.shape[0]}")
    outs = []
    start = 0
    for e, end in enumerate(ends):
        if end < start:
            raise ValueError(f"offsets must be non-decreasing; offsets[{e}]={end} < {start}")
        if end == start:
            continue
        x_mH = x_MH[start:end]
        gate_up_m2I = x_mH @ w13_E2IH[e].t()
        h_mI = F.silu(gate_up_m2I[:, :inter]) * gate_up_m2I[:, inter:]
        outs.append(h_mI @ w2_EHI[e].t())
        start = end
    if not outs:  # M == 0: keep the graph connected so backward still works
        return x_MH.new_zeros(x_MH.shape) + 0.0 * w2_EHI.sum() * w13_E2IH.sum()
    return torch.cat(outs, dim=0)


def grouped_mlp_grouped_mm(
    x_MH: torch.Tensor, w13_E2IH: torch.Tensor, w2_EHI: torch.Tensor, offsets_E: torch.Tensor
) -> torch.Tensor:
    """``torch._grouped_mm`` path (CUDA, sm90+, bf16; K and N multiples of 16)."""
    check_shapes(x_MH, w13_E2IH, w2_EHI, offsets_E)
    inter = w2_EHI.shape[2]
    offs = offsets_E.to(torch.int32)
    # _grouped_mm takes B as [E, K, N]; a transposed view avoids a copy (torchtitan does the same).
    gate_up_M2I = torch._grouped_mm(x_MH, w13_E2IH.transpose(-2, -1), offs=offs)
    h_MI = F.silu(gate_up_M2I[:, :inter]) * gate_up_M2I[:, inter:]
    return torch._grouped_mm(h_MI, w2_EHI.transpose(-2, -1), offs=offs)


def _load_fused() -> Callable | None:
    """``models.moe.kernels.grouped_mlp_fused``, or None when the kernels module itself is absent."""
    if not _fused_cache:
        try:
            mod = importlib.import_module(KERNELS_MODULE)
        except ImportError as e:
            # Only the kernels package missing means "no fused path"; a missing dependency inside it
            # (triton, a typo'd submodule) is a real error and must not silently slow training down.
            if getattr(e, "name", None) != KERNELS_MODULE:
                raise
            _fused_cache.append(None)
        else:
            fn = getattr(mod, "grouped_mlp_fused", None)
            if fn is None:
                raise ImportError(f"{KERNELS_MODULE} exists but defines no grouped_mlp_fused")
            _fused_cache.append(fn)
    return _fused_cache[0]


def select_impl(is_cuda: bool, choice: str | None = None) -> tuple[str, Callable]:
    """The implementation ``grouped_mlp`` uses for a tensor on CUDA or not, given ``DOTS_GROUPED_MLP``."""
    choice = (choice if choice is not None else os.environ.get(ENV_VAR, "auto")).strip().lower() or "auto"
    if choice not in IMPLS:
        raise ValueError(f"{ENV_VAR}={choice!r}: choose one of {', '.join(IMPLS)}")
    if choice == "reference" or not is_cuda:
        return "reference", grouped_mlp_reference
    if choice == "grouped_mm":
        return "grouped_mm", grouped_mlp_grouped_mm
    fused = _load_fused()
    if fused is None:
        if choice == "fused":
            raise ImportError(f"{ENV_VAR}=fused but {KERNELS_MODULE} is not installed")
        return "reference", grouped_mlp_reference
    return "fused", fused


def grouped_mlp(
    x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """Grouped SwiGLU over experts: x [M, H] sorted by expert, w13 [E, 2I, H], w2 [E, H, I],
    offsets int32 [E] cumulative row ends -> [M, H]. Differentiable."""
    if torch.is_autocast_enabled(x.device.type):
        dt = torch.get_autocast_dtype(x.device.type)
        x, w13, w2 = x.to(dt), w13.to(dt), w2.to(dt)
    _, fn = select_impl(x.is_cuda)
    return fn(x, w13, w2, offsets)
