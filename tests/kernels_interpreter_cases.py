"""Cases for tests/test_grouped_gemm_interpreter.py, which runs this file in a child pytest process
with TRITON_INTERPRET=1 (Triton decides between compiled and interpreted functions, its own
language helpers included, when they are defined, so the mode has to be set before Triton is
imported). Not collected on its own (the name does not start with test_)."""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("run by tests/test_grouped_gemm_interpreter.py with TRITON_INTERPRET=1", allow_module_level=True)

import triton  # noqa: E402 - only under TRITON_INTERPRET=1 (above)
import triton.language as tl  # noqa: E402

from models.moe.kernels.grouped_gemm import _row_tile_order, _tile_at, _tile_table  # noqa: E402

U_FP16 = 2.0**-11
TOL = 4 * U_FP16  # as in the GPU tests (4 roundings' worth), for fp16 operands


@pytest.fixture(scope="module")
def gg():
    """The kernels module, decorated in interpreter mode (this process was started with
    TRITON_INTERPRET=1 before Triton was imported)."""
    from triton.runtime.interpreter import InterpretedFunction

    import models.moe.kernels.grouped_gemm as mod

    assert isinstance(mod._mgrouped_kernel, InterpretedFunction), type(mod._mgrouped_kernel)
    return mod


def _inputs(counts: list[int], h: int, i: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    counts_t = torch.tensor(counts)
    m, e = int(counts_t.sum()), len(counts)
    x = torch.randn(m, h, generator=gen).half()
    w13 = (torch.randn(e, 2 * i, h, generator=gen) / h**0.5).half()
    w2 = (torch.randn(e, h, i, generator=gen) / i**0.5).half()
    dy = torch.randn(m, h, generator=gen).half()
    return x, w13, w2, torch.cumsum(counts_t, 0).to(torch.int32), dy


def _reference(x, w13, w2, counts, dy):
    """Per-expert fp64 loop (the GPU tests' reference): output and the gradients of x, w13, w2."""
    from tests.test_grouped_gemm_gpu import _loop_reference

    return _loop_reference(x, w13, w2, torch.tensor(counts), dy)


def _fused(gg, x, w13, w2, offsets, dy):
    xs, w13s, w2s = (t.clone().requires_grad_() for t in (x, w13, w2))
    y = gg.GroupedMLPFunction.apply(xs, w13s, w2s, offsets)
    y.backward(dy)
    return y.detach(), xs.grad, w13s.grad, w2s.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    assert torch.isfinite(a).all()
    den = b.norm().item()
    return (a - b).norm().item() / den if den > 0 else (a - b).norm().item()


def _pointer_path_configs(gg, name: str) -> list:
    """The configs of a list (with the warp-specialised and experimental ones) that differ on the
    pointer path: the epilogue flags only change the TMA path."""
    seen, out = set(), []
    for cfg in gg.table_candidates(getattr(gg, name)):
        kw = cfg.kwargs
        sig = (kw["BLOCK_M"], kw["BLOCK_N"], kw["PERSISTENT"], kw["HALF_TAIL"], kw["GROUP_M"] == 0, kw["TILE_MAP"], kw["FLATTEN"],
               kw["HALF_N"])
        if sig not in seen:
            seen.add(sig)
            out.append(cfg)
    return out


@pytest.mark.parametrize("programs", ["", "3"], ids=["one-per-sm", "3-programs"])
@pytest.mark.parametrize("list_name", ["GATE_UP_CONFIGS", "MGROUPED_CONFIGS", "WGRAD_CONFIGS"])
def test_every_config_forward_and_backward(gg, list_name, programs, monkeypatch):
    """Each config (first in its list, the others at their first) gives the reference output and
    gradients, with empty experts and experts smaller than a tile, on 4 (CPU default) or 3 programs."""
    monkeypatch.setenv("DOTS_GG_AUTOTUNE", "0")
    monkeypatch.setenv("DOTS_GG_PERSISTENT_PROGRAMS", programs)
    counts = [70, 0, 3, 200, 0, 129]
    x, w13, w2, offsets, dy = _inputs(counts, 64, 48, 5)
    want = _reference(x, w13, w2, counts, dy)
    configs = getattr(gg, list_name)
    saved = list(configs)
    try:
        for cfg in _pointer_path_configs(gg, list_name):
            configs[0] = cfg
            got = _fused(gg, x, w13, w2, offsets, dy)
            for name, g, w in zip(("y", "dx", "dw13", "dw2"), got, want):
                assert _rel(g, w) <= TOL, f"{gg.config_name(cfg)}: {name}"
    finally:
        configs[:] = saved


@triton.jit
def _order_kernel(offs_ptr, out_ptr, E, NUM_PID_N, N_TILES, E_P2: tl.constexpr, BLOCK_M: tl.constexpr,
                  GROUP_M: tl.constexpr):
    """Writes ``_row_tile_order``'s (row tile, column tile) for each program."""
    idx, starts, ends, tiles, cum = _tile_table(offs_ptr, E, E_P2, BLOCK_M)
    t = tl.program_id(0)
    pid_m, pid_n = _row_tile_order(t, N_TILES, NUM_PID_N, idx, tiles, cum, GROUP_M)
    tl.store(out_ptr + 2 * t, pid_m)
    tl.store(out_ptr + 2 * t + 1, pid_n)


@pytest.mark.parametrize("group_m", [0, 8], ids=["egroup", "group8"])
def test_row_tile_order_visits_every_tile_once(gg, group_m):
    """The row-grouped kernels' tile order (``_row_tile_order``) over the real tiles is a permutation
    of (row tile, column tile); "egroup" (GROUP_M = 0) walks expert by expert with each expert's row
    tiles fastest; tiles past the last one (grid mode's upper bound) land past the last row tile."""
    counts = [130, 0, 5, 300, 0, 0, 128, 1]  # 2 + 0 + 1 + 3 + 0 + 0 + 1 + 1 = 8 row tiles of 128
    rows_tiles = [(c + 127) // 128 for c in counts]
    total_m, npn = sum(rows_tiles), 3
    offsets = torch.cumsum(torch.tensor(counts), 0).to(torch.int32)
    grid_tiles = (sum(counts) // 128 + 1 + len(counts)) * npn  # grid mode's upper bound
    out = torch.full((grid_tiles, 2), -1, dtype=torch.int32)
    _order_kernel[(grid_tiles,)](offsets, out, len(counts), npn, grid_tiles // npn, E_P2=8, BLOCK_M=128,
                                GROUP_M=group_m)
    real = [tuple(p) for p in out[: total_m * npn].tolist()]
    assert sorted(real) == [(m, n) for m in range(total_m) for n in range(npn)]
    if group_m == 0:
        expert_of = [e for e, r in enumerate(rows_tiles) for _ in range(r)]
        experts = [expert_of[m] for m, _ in real]
        assert experts == sorted(experts)  # expert by expert
        first = 0
        for e, r in enumerate(rows_tiles):  # within an expert: rows fastest, then the next column
            block = real[first * npn : (first + r) * npn]
            assert block == [(first + i % r, i // r) for i in range(r * npn)], e
            first += r
        assert all(m >= total_m for m, _ in out[total_m * npn :].tolist())  # surplus programs exit


@triton.jit
def _tile_at_kernel(offs_ptr, tmap_ptr, out_ptr, E, NUM_PID_N, N_TILES, E_P2: tl.constexpr, BLOCK_M: tl.constexpr,
                    GROUP_M: tl.constexpr, TILE_MAP: tl.constexpr):
    """Writes ``_tile_at``'s (expert, first row, tile's first row, row end, column tile) per program."""
    idx, starts, ends, tiles, cum = _tile_table(offs_ptr, E, E_P2, BLOCK_M)
    t = tl.program_id(0)
    e, start, row0, end, pid_n = _tile_at(t, N_TILES, NUM_PID_N, idx, starts, ends, tiles, cum, tmap_ptr,
                                          GROUP_M, TILE_MAP, BLOCK_M)
    tl.store(out_ptr + 5 * t, e)
    tl.store(out_ptr + 5 * t + 1, start)
    tl.store(out_ptr + 5 * t + 2, row0)
    tl.store(out_ptr + 5 * t + 3, end)
    tl.store(out_ptr + 5 * t + 4, pid_n)


@pytest.mark.parametrize("block_m", [64, 128, 256])
@pytest.mark.parametrize("group_m", [0, 8], ids=["egroup", "group8"])
def test_tile_map_gives_the_same_tiles_as_the_reductions(gg, group_m, block_m):
    """TILE_MAP (the per-row-tile table written by ``_fill_tile_map``) gives every tile the same
    expert, rows and column as the per-tile reductions over the offsets, in both tile orders, and
    marks grid mode's surplus tiles empty."""
    counts = [130, 0, 5, 300, 0, 0, 128, 1, 64, 65]
    e, npn = len(counts), 3
    offsets = torch.cumsum(torch.tensor(counts), 0).to(torch.int32)
    m = int(offsets[-1])
    tmap = gg._tile_map_buffer(m, e, "cpu")
    gg._fill_tile_map(tmap, offsets, block_m)
    bound = (m + block_m - 1) // block_m + e  # grid mode's row-tile bound
    outs = {}
    for use_map in (False, True):
        out = torch.full((bound * npn, 5), -7, dtype=torch.int32)
        _tile_at_kernel[(bound * npn,)](offsets, tmap, out, e, npn, bound, E_P2=16, BLOCK_M=block_m,
                                        GROUP_M=group_m, TILE_MAP=use_map)
        outs[use_map] = out
    total = sum((c + block_m - 1) // block_m for c in counts) * npn
    real = outs[False][:total] if group_m == 0 else outs[False][outs[False][:, 2] < outs[False][:, 3]]
    assert len(real) == total
    both_real = (outs[False][:, 2] < outs[False][:, 3]) | (outs[True][:, 2] < outs[True][:, 3])
    assert torch.equal(outs[False][both_real], outs[True][both_real])
    assert int(both_real.sum()) == total  # no surplus tile turned real, none lost
    with pytest.raises(ValueError, match="BLOCK_M 32"):
        gg._fill_tile_map(tmap, offsets, 32)


def test_tile_map_buffer_only_for_configs_that_read_it(gg):
    """Launches whose configs do not read the tile map keep the wrappers' placeholder (nothing is
    allocated); a TILE_MAP config gets a buffer sized for the grid-mode bound at 64-row tiles."""
    offsets = torch.tensor([100, 300, 301], dtype=torch.int32)
    args = (torch.zeros(1), offsets, offsets, 301, 3)
    raw = _FakeKernel(["x", "offs_ptr", "tmap_ptr", "M", "E"])
    plain, mapped = gg._cfg(128, 256, 8, 3), gg._cfg(128, 256, 8, 3, tmap=True)
    assert gg._with_tile_map(raw, args, [plain]) is args
    got = gg._with_tile_map(raw, args, [plain, mapped])
    assert got[2] is not offsets and got[2].dtype == torch.int32 and got[2].numel() == ((301 + 63) // 64 + 3) * 4
    assert got[:2] == args[:2] and got[3:] == args[3:]
    assert gg._with_tile_map(_FakeKernel(["a"]), args, [mapped]) is args  # a kernel without the slot


HALF_TAIL_COUNTS = [0, 1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 0, 64]


@pytest.mark.parametrize("persistent", [False, True], ids=["grid", "persistent"])
def test_half_tail_tiles_at_boundaries(gg, persistent, monkeypatch):
    """Half-height tail tiles (<= 64 rows left in an expert) at every row-count boundary: every
    expert's rows written and right, forward and backward."""
    monkeypatch.setenv("DOTS_GG_AUTOTUNE", "0")
    monkeypatch.setenv("DOTS_GG_PERSISTENT_PROGRAMS", "3")
    x, w13, w2, offsets, dy = _inputs(HALF_TAIL_COUNTS, 32, 16, 9)
    want = _reference(x, w13, w2, HALF_TAIL_COUNTS, dy)
    saved = list(gg.GATE_UP_CONFIGS), list(gg.MGROUPED_CONFIGS)
    try:
        gg.GATE_UP_CONFIGS[0] = gg._cfg(128, 128, 8, 4, half=True, persistent=persistent)
        gg.MGROUPED_CONFIGS[0] = gg._cfg(128, 256, 8, 3, half=True, persistent=persistent)
        got = _fused(gg, x, w13, w2, offsets, dy)
        for name, g, w in zip(("y", "dx", "dw13", "dw2"), got, want):
            assert _rel(g, w) <= TOL, name
        start = 0
        for c in HALF_TAIL_COUNTS:
            if c:
                assert _rel(got[0][start : start + c], want[0][start : start + c]) <= TOL, f"{c}-row expert"
            start += c
    finally:
        gg.GATE_UP_CONFIGS[:], gg.MGROUPED_CONFIGS[:] = saved


@pytest.mark.parametrize("persistent", [False, True], ids=["grid", "persistent"])
@pytest.mark.parametrize("hidden,inter", [(320, 384), (256, 400)], ids=["half-width-last", "full-last"])
def test_half_width_column_tiles(gg, persistent, hidden, inter, monkeypatch):
    """HALF_N: a last column tile with <= BLOCK_N/2 columns left runs at half width. With 256-column
    tiles, N = 320 and 384 end in such a tile (64 and 128 columns), N = 400 in a full-width one
    (144 columns), N = 256 has none: every row-grouped GEMM (down N = hidden, dh N = inter, dx N =
    hidden) gives the reference output and gradients, with half-height tail tiles on too."""
    monkeypatch.setenv("DOTS_GG_AUTOTUNE", "0")
    monkeypatch.setenv("DOTS_GG_PERSISTENT_PROGRAMS", "3")
    counts = [70, 0, 3, 130]
    x, w13, w2, offsets, dy = _inputs(counts, hidden, inter, 13)
    want = _reference(x, w13, w2, counts, dy)
    saved = list(gg.MGROUPED_CONFIGS)
    try:
        gg.MGROUPED_CONFIGS[0] = gg._cfg(128, 256, 8, 3, half=not persistent, persistent=persistent, split=2,
                                         group=0, half_n=True)
        got = _fused(gg, x, w13, w2, offsets, dy)
        for name, g, w in zip(("y", "dx", "dw13", "dw2"), got, want):
            assert _rel(g, w) <= TOL, name
    finally:
        gg.MGROUPED_CONFIGS[:] = saved


def test_weight_grad_transposed_matches_plain(gg, monkeypatch):
    monkeypatch.setenv("DOTS_GG_AUTOTUNE", "0")
    counts = [0, 5, 130, 0, 64]
    gen = torch.Generator().manual_seed(3)
    m = sum(counts)
    a = torch.randn(m, 48, generator=gen).half()
    b = torch.randn(m, 80, generator=gen).half()
    offsets = torch.cumsum(torch.tensor(counts), 0).to(torch.int32)
    plain = gg.weight_grad(b, a, offsets, torch.float16)  # [E, 80, 48]
    trans = gg.weight_grad(a, b, offsets, torch.float16, trans_out=True)
    start = 0
    for ex, c in enumerate(counts):
        want = b[start : start + c].double().t() @ a[start : start + c].double()
        if c == 0:
            assert torch.count_nonzero(trans[ex]) == 0 and torch.count_nonzero(plain[ex]) == 0
        else:
            assert _rel(trans[ex], want) <= TOL and _rel(plain[ex], want) <= TOL
        start += c


class _FakeKernel:
    """Stands in for a kernel in ``_launch``: records how it was launched."""

    def __init__(self, arg_names):
        self.arg_names = arg_names
        self.calls = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append(kwargs)


def test_launch_picks_table_config_then_autotune(gg, tmp_path, monkeypatch):
    """With autotuning on, a TMA launch that the tuned table names a config for runs that config;
    others autotune; a table naming a non-candidate fails loudly; DOTS_GG_TUNED=0 ignores tables;
    with autotuning off the list's first config runs."""
    from models.moe import kernel_tables as kt

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)  # the fake launches pass CPU tensors
    configs = [gg._cfg(128, 256, 8, 3), gg._cfg(128, 256, 8, 3, persistent=True, split=2)]
    table = tmp_path / "t.json"
    kt.write_entries(table, "Fake GPU", {"mgrouped n=1": {"config": gg.config_name(configs[1]), "tflops": 1.0,
                                                          "measured": "test"}})
    monkeypatch.setenv("DOTS_GG_TUNED", str(table))
    monkeypatch.setenv("DOTS_GG_AUTOTUNE", "1")
    gg._TABLES.clear()

    def launch(key, use_tma=True):
        tuned, raw = _FakeKernel(["a"]), _FakeKernel(["a"])
        gg._launch(tuned, raw, configs, lambda meta: (1,), (torch.zeros(1),), {"USE_TMA": use_tma}, key)
        return tuned, raw

    resolutions = []
    real_candidates = gg.table_candidates
    monkeypatch.setattr(gg, "table_candidates", lambda c: resolutions.append(1) or real_candidates(c))
    tuned, raw = launch("mgrouped n=1")
    assert not tuned.calls and raw.calls[0]["EPI_SPLIT"] == 2 and raw.calls[0]["PERSISTENT"]
    assert gg.LAST_LAUNCH == {"key": "mgrouped n=1", "config": gg.config_name(configs[1])}
    tuned, raw = launch("mgrouped n=1")  # a second hit: same config, the name is not resolved again
    assert raw.calls[0]["EPI_SPLIT"] == 2 and len(resolutions) == 1
    monkeypatch.setattr(gg, "table_candidates", real_candidates)
    tuned, raw = launch("mgrouped n=2")  # not in the table
    assert len(tuned.calls) == 1 and not raw.calls and gg.LAST_LAUNCH["config"] == "autotuned"
    tuned, raw = launch("mgrouped n=1", use_tma=False)  # tables are for the TMA path
    assert len(tuned.calls) == 1 and not raw.calls
    monkeypatch.setenv("DOTS_GG_AUTOTUNE", "0")
    tuned, raw = launch("mgrouped n=1")
    assert raw.calls[0]["EPI_SPLIT"] == 1 and not raw.calls[0]["PERSISTENT"]  # the first config
    monkeypatch.setenv("DOTS_GG_AUTOTUNE", "1")
    monkeypatch.setenv("DOTS_GG_TUNED", "0")
    tuned, raw = launch("mgrouped n=1")
    assert len(tuned.calls) == 1 and not raw.calls
    kt.write_entries(table, "Fake GPU", {"mgrouped n=1": {"config": "64x64x64 w4 s2", "tflops": 1.0,
                                                          "measured": "test"}})
    monkeypatch.setenv("DOTS_GG_TUNED", str(table))
    gg._TABLES.clear()
    with pytest.raises(ValueError, match="not one of this kernel.s configs"):
        launch("mgrouped n=1")
    # for the kernels' own lists a table may also name their experimental and warp-specialised configs
    exp, ws = gg.EXPERIMENTAL_CONFIGS["MGROUPED_CONFIGS"][0], gg.WS_CONFIGS["MGROUPED_CONFIGS"][0]
    names = [gg.config_name(c) for c in gg.table_candidates(gg.MGROUPED_CONFIGS)]
    assert len(names) == len(set(names)) and {gg.config_name(exp), gg.config_name(ws)} <= set(names)
    kt.write_entries(table, "Fake GPU", {"mgrouped n=1": {"config": gg.config_name(exp), "tflops": 1.0,
                                                          "measured": "test"}})
    gg._TABLES.clear()
    raw = _FakeKernel(["a"])
    gg._launch(_FakeKernel(["a"]), raw, gg.MGROUPED_CONFIGS, lambda meta: (1,), (torch.zeros(1),),
               {"USE_TMA": True}, "mgrouped n=1")
    assert raw.calls[0]["BLOCK_M"] == exp.kwargs["BLOCK_M"] and gg.LAST_LAUNCH["config"] == gg.config_name(exp)
    gg._TABLES.clear()


def test_pingpong_flag_names_kernels(gg, monkeypatch):
    """DOTS_GG_PINGPONG: unset / 0 none, 1 / all both, a list names kernels, a typo fails loudly."""
    for value, want in (("", set()), ("0", set()), ("1", {"wgrad", "dh"}), ("all", {"wgrad", "dh"}),
                        ("dh", {"dh"}), ("wgrad, dh", {"wgrad", "dh"}), ("WGRAD", {"wgrad"})):
        monkeypatch.setenv("DOTS_GG_PINGPONG", value)
        assert {k for k in ("wgrad", "dh") if gg._pingpong_on(k)} == want, value
    monkeypatch.delenv("DOTS_GG_PINGPONG")
    assert not gg._pingpong_on("dh")
    monkeypatch.setenv("DOTS_GG_PINGPONG", "dgrad")
    with pytest.raises(ValueError, match="DOTS_GG_PINGPONG"):
        gg._pingpong_on("dh")
