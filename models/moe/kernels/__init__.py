"""Fused grouped-GEMM SwiGLU expert kernels (Triton) behind ``models.moe.experts.grouped_mlp``.

``grouped_mlp_fused(x, w13, w2, offsets)`` computes, for tokens sorted by expert, every expert's
``(silu(x @ gate_e^T) * (x @ up_e^T)) @ w2_e^T`` with Triton grouped GEMMs (forward and backward, no
host synchronisation, no Python loop over experts). See docs/KERNELS.md.

Importing this package needs Triton; without it the import raises ``ImportError`` (``name="triton"``),
so a CPU-only install never loads kernel code. It imports on a machine without a GPU when Triton is
installed (kernels are compiled on first use).
"""

from __future__ import annotations

try:
    import triton  # noqa: F401
except ImportError as exc:  # CPU venvs have no Triton: the experts dispatcher uses the reference path
    raise ImportError(
        "models.moe.kernels needs Triton (pip install triton, GPU machines only); "
        "use DOTS_GROUPED_MLP=reference or grouped_mm without it",
        name="triton",
    ) from exc

from models.moe.kernels.grouped_gemm import (  # noqa: E402
    GroupedMLPFunction,
    gate_up_swiglu,
    grouped_mlp_fused,
    grouped_mm_fused,
    weight_grad,
)

__all__ = ["GroupedMLPFunction", "gate_up_swiglu", "grouped_mlp_fused", "grouped_mm_fused", "weight_grad"]
