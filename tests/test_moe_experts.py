"""grouped_mlp: reference vs an independent per-row formula (values and gradients), dispatch rules."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F

from models.moe import experts
from models.moe.experts import grouped_mlp, grouped_mlp_reference, select_impl


def per_row_oracle(x, w13, w2, offsets):
    """Gather each row's expert weights and apply SwiGLU row by row (no grouping at all)."""
    counts = torch.diff(offsets.long(), prepend=torch.zeros(1, dtype=torch.long))
    expert_of_row = torch.repeat_interleave(torch.arange(len(counts)), counts)
    inter = w2.shape[2]
    w_gate, w_up = w13[expert_of_row, :inter], w13[expert_of_row, inter:]
    gate = torch.einsum("mh,mih->mi", x, w_gate)
    up = torch.einsum("mh,mih->mi", x, w_up)
    return torch.einsum("mi,mhi->mh", F.silu(gate) * up, w2[expert_of_row])


def make(counts, h=16, inter=12, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    e = len(counts)
    m = sum(counts)
    x = torch.randn(m, h, generator=g, dtype=dtype, requires_grad=True)
    w13 = (torch.randn(e, 2 * inter, h, generator=g, dtype=dtype) * 0.3).requires_grad_()
    w2 = (torch.randn(e, h, inter, generator=g, dtype=dtype) * 0.3).requires_grad_()
    offsets = torch.tensor(counts, dtype=torch.int32).cumsum(0).to(torch.int32)
    return x, w13, w2, offsets


@pytest.mark.parametrize("counts", [[3, 0, 5, 1], [0, 0, 4, 0], [7], [2, 2, 2, 2, 2, 0]])
def test_values_and_gradients_match_per_row_oracle(counts):
    x, w13, w2, off = make(counts)
    y = grouped_mlp(x, w13, w2, off)
    assert y.shape == x.shape
    upstream = torch.randn_like(y)
    grads = torch.autograd.grad((y * upstream).sum(), (x, w13, w2))
    y_ref = per_row_oracle(x, w13, w2, off)
    grads_ref = torch.autograd.grad((y_ref * upstream).sum(), (x, w13, w2))
    torch.testing.assert_close(y, y_ref)
    for g, gr in zip(grads, grads_ref):
        torch.testing.assert_close(g, gr)
    # an empty expert gets exactly zero gradient
    for e, c in enumerate(counts):
        if c == 0:
            assert grads[1][e].abs().sum() == 0 and grads[2][e].abs().sum() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_reference_runs_in_any_float_dtype(dtype):
    x, w13, w2, off = make([4, 0, 3], dtype=dtype)
    y = grouped_mlp_reference(x, w13, w2, off)
    assert y.dtype == dtype
    ref = per_row_oracle(x.double(), w13.double(), w2.double(), off)
    torch.testing.assert_close(y.double(), ref, atol=0.1, rtol=0.05)


def test_no_rows_at_all_is_differentiable():
    x, w13, w2, off = make([0, 0, 0])
    y = grouped_mlp(x, w13, w2, off)
    assert y.shape == (0, 16)
    y.sum().backward()
    assert w13.grad is not None and w13.grad.abs().sum() == 0


def test_bad_shapes_and_offsets_raise():
    x, w13, w2, off = make([2, 3])
    with pytest.raises(ValueError, match="shape mismatch"):
        grouped_mlp(x, w13, w2.transpose(1, 2), off)
    with pytest.raises(ValueError, match="offsets\\[-1\\]"):
        grouped_mlp(x, w13, w2, torch.tensor([2, 4], dtype=torch.int32))
    x, w13, w2, off = make([2, 3, 0])
    with pytest.raises(ValueError, match="non-decreasing"):
        grouped_mlp(x, w13, w2, torch.tensor([4, 2, 5], dtype=torch.int32))


def test_autocast_casts_inputs():
    x, w13, w2, off = make([2, 3], dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert grouped_mlp(x, w13, w2, off).dtype == torch.bfloat16


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(experts, "_fused_cache", [])
    monkeypatch.delenv(experts.ENV_VAR, raising=False)
    yield
    sys.modules.pop(experts.KERNELS_MODULE, None)


def test_dispatch_cpu_always_reference(fresh_cache):
    assert select_impl(False)[0] == "reference"
    assert select_impl(False, "grouped_mm")[0] == "reference"


def test_dispatch_uses_fused_kernel_when_importable(fresh_cache, monkeypatch):
    fake = types.ModuleType(experts.KERNELS_MODULE)
    fake.grouped_mlp_fused = lambda *a: "fused!"
    monkeypatch.setitem(sys.modules, experts.KERNELS_MODULE, fake)
    name, fn = select_impl(True)
    assert name == "fused" and fn() == "fused!"
    monkeypatch.setenv(experts.ENV_VAR, "reference")
    assert select_impl(True)[0] == "reference"
    monkeypatch.setenv(experts.ENV_VAR, "grouped_mm")
    assert select_impl(True)[0] == "grouped_mm"
    monkeypatch.setenv(experts.ENV_VAR, "bogus")
    with pytest.raises(ValueError, match="DOTS_GROUPED_MLP"):
        select_impl(True)


def test_dispatch_missing_kernels_module_falls_back(fresh_cache, monkeypatch):
    import importlib

    real = importlib.import_module

    def fake_import(name, *a, **k):
        if name == experts.KERNELS_MODULE:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *a, **k)

    monkeypatch.setattr(experts.importlib, "import_module", fake_import)
    assert select_impl(True)[0] == "reference"
    with pytest.raises(ImportError, match="not installed"):
        select_impl(True, "fused")


def test_dispatch_other_import_errors_propagate(fresh_cache, monkeypatch):
    import importlib

    real = importlib.import_module

    def fake_import(name, *a, **k):
        if name == experts.KERNELS_MODULE:
            raise ModuleNotFoundError("No module named 'triton'", name="triton")
        return real(name, *a, **k)

    monkeypatch.setattr(experts.importlib, "import_module", fake_import)
    with pytest.raises(ModuleNotFoundError, match="triton"):
        select_impl(True)


def test_dispatch_kernel_runtime_error_propagates(fresh_cache, monkeypatch):
    fake = types.ModuleType(experts.KERNELS_MODULE)

    def broken(*a):
        raise RuntimeError("kernel bug")

    fake.grouped_mlp_fused = broken
    monkeypatch.setitem(sys.modules, experts.KERNELS_MODULE, fake)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    x, w13, w2, off = make([1, 1])
    with pytest.raises(RuntimeError, match="kernel bug"):
        grouped_mlp(x, w13, w2, off)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run through the device tool)")
def test_grouped_mm_path_matches_reference_on_gpu():
    g = torch.Generator().manual_seed(0)
    counts = [130, 0, 17, 300, 64, 1, 0, 96]
    x, w13, w2, off = make(counts, h=128, inter=64, dtype=torch.float32, seed=1)
    x, w13, w2 = (t.detach().cuda().bfloat16().requires_grad_() for t in (x, w13, w2))
    off = off.cuda()
    up = torch.randn(sum(counts), 128, generator=g).cuda().bfloat16()
    outs = []
    for impl in (experts.grouped_mlp_reference, experts.grouped_mlp_grouped_mm):
        y = impl(x, w13, w2, off)
        outs.append((y, *torch.autograd.grad((y.float() * up.float()).sum(), (x, w13, w2))))
    for a, b in zip(*outs):
        torch.testing.assert_close(a.float(), b.float(), atol=2e-2, rtol=2e-2)
