"""The fused grouped-GEMM kernels compile for Hopper (sm_90) under every candidate tile config, and
the configs fit in shared memory where they must — checked without a GPU (Triton compiles with its
bundled ptxas). Skips, with the reason, where Triton is not installed (the CPU venv); run it in any
environment that has Triton, e.g. before spending device time on a kernel change."""

from __future__ import annotations

import pytest

pytest.importorskip("triton", reason="needs Triton to compile the kernels (pip install triton; no GPU needed)")


@pytest.fixture(scope="module")
def results():
    from models.moe.kernels import sm90_check

    return sm90_check.check_all()


def test_every_candidate_compiles(results):
    failed = [r for r in results if not r.ok]
    assert not failed, "\n".join(f"{r.list_name} {r.config} {r.variant}: {r.error}" for r in failed)
    variants = {(r.list_name, r.variant) for r in results}
    assert len(variants) == 7, variants  # gate_up +-h, down, dh, dx, dw13, dw2


def test_first_config_of_each_list_fits_every_variant(results):
    """DOTS_GG_AUTOTUNE=0 launches the first config of each list unconditionally."""
    from models.moe.kernels import grouped_gemm as gg

    for list_name in ("GATE_UP_CONFIGS", "MGROUPED_CONFIGS", "WGRAD_CONFIGS"):
        first = gg.config_name(getattr(gg, list_name)[0])
        rows = [r for r in results if r.list_name == list_name and r.config == first]
        assert rows and all(r.fits for r in rows), [(r.variant, r.shared_bytes) for r in rows]


def test_every_config_fits_some_variant(results):
    """A config that fits no variant would be dead weight in autotuning (and in the sweep)."""
    by_cfg: dict[tuple[str, str], list] = {}
    for r in results:
        by_cfg.setdefault((r.list_name, r.config), []).append(r)
    dead = [k for k, rows in by_cfg.items() if not any(r.fits for r in rows)]
    assert not dead, dead


def _row_grouped(variant: str, **cfg) -> tuple[bool, int | None]:
    """(fits in shared memory, spill-store bytes) of the row-grouped kernel's ``variant`` compiled
    under ``_cfg(128, 256, 8, **cfg)``, whether or not a config list holds that config."""
    from models.moe.kernels import sm90_check
    from models.moe.kernels.grouped_gemm_configs import _cfg

    consts = dict(sm90_check.VARIANTS["MGROUPED_CONFIGS"])[variant]
    smem, _, spills = sm90_check.compile_config("MGROUPED_CONFIGS", _cfg(128, 256, 8, **cfg), consts)
    return smem <= sm90_check.SMEM_LIMIT, spills


def test_epilogue_variants_do_what_they_were_added_for():
    """EPI_SPLIT exists to stop the SwiGLU-backward epilogue spilling and to let its persistent loop
    fit; EPI_PTR to let persistent loops fit: the persistent dh at 2 stages and the persistent
    half-tile loop fit with it (their TMA-epilogue counterparts do not)."""
    assert _row_grouped("dh", stages=3)[1], "the whole-tile SwiGLU-backward epilogue was expected to spill"
    assert _row_grouped("dh", stages=3, split=2)[1] == 0
    assert _row_grouped("dh", stages=3, persistent=True, split=2)[0]
    assert not _row_grouped("dh", stages=3, persistent=True)[0]
    assert _row_grouped("dh", stages=2, persistent=True, epi_ptr=True)[0]
    for variant in ("down", "dh", "dx"):
        assert _row_grouped(variant, stages=3, persistent=True, half=True, epi_ptr=True)[0], variant


def test_committed_tuned_tables_name_known_configs():
    """Every config a committed tuned table names (conf/moe/kernels/*.json) is one its kernel's
    launch accepts from a table (``table_candidates``: the list, its warp-specialised and
    experimental configs), so a table hit never raises at launch."""
    from models.moe import kernel_tables as kt
    from models.moe.kernels import grouped_gemm as gg

    lists = {"gate_up": gg.GATE_UP_CONFIGS, "mgrouped": gg.MGROUPED_CONFIGS, "wgrad": gg.WGRAD_CONFIGS}
    for path in sorted(kt.TABLE_DIR.glob("*.json")):
        for key, entry in kt.read_table(path).items():
            names = {gg.config_name(c) for c in gg.table_candidates(lists[key.split()[0]])}
            assert entry["config"] in names, (path.name, key, entry["config"], sorted(names))


def test_tile_map_kernel_compiles():
    """The TILE_MAP configs' table kernel (one launch before each of their GEMMs) compiles for sm_90
    at the dots.llm1 expert count."""
    from models.moe.kernels import grouped_gemm as gg
    from models.moe.kernels.sm90_check import SMEM_LIMIT, compile_sm90

    fn = gg._tile_map_kernel
    consts = {"E_P2": 128, "BLOCK_M": 128, "BLOCK_Q": 128}
    sig = {n: "constexpr" if n in consts else ("*i32" if n.endswith("_ptr") else "i32") for n in fn.arg_names}
    kernel = compile_sm90(fn, sig, consts, num_warps=4)
    assert kernel.asm["ptx"] and kernel.metadata.shared <= SMEM_LIMIT


# (module, the ring depths from which ptxas must report no spills): the weight-gradient kernel at
# every depth; the dh kernel at those it runs with (4, the default 5): its epilogue over the whole
# 128-row tile at once spilled 140 bytes per thread, in two row halves none, and at 2-3 stages fp16
# spills 8 bytes
PINGPONG_KERNELS = [("wgrad_pingpong", 2), ("dh_pingpong", 4)]


@pytest.mark.parametrize("stages", [2, 3, 4, 5])
@pytest.mark.parametrize("module,no_spills_from", PINGPONG_KERNELS, ids=[m for m, _ in PINGPONG_KERNELS])
def test_pingpong_kernel_compiles(module, no_spills_from, stages):
    """The Gluon ping-pong kernels (opt-in, DOTS_GG_PINGPONG) compile for sm_90 at every ring depth
    they accept, bf16 and fp16, fit in shared memory, use wgmma and setmaxnreg, and do not spill
    (see PINGPONG_KERNELS)."""
    pytest.importorskip("triton.experimental.gluon.language.nvidia.hopper",
                        reason="needs Triton with Gluon's Hopper API (3.5+)")
    import importlib

    from models.moe.kernels import sm90_check

    mod = importlib.import_module(f"models.moe.kernels.{module}")
    for dtype in ("bf16", "fp16"):
        k = mod.compile_sm90(stages=stages, dtype=dtype)
        assert k.metadata.shared <= sm90_check.SMEM_LIMIT, k.metadata.shared
        regs, spills = sm90_check._ptxas_stats(k.asm["ptx"])
        assert regs is not None
        if stages >= no_spills_from:
            assert not spills, (stages, dtype, regs, spills)
        assert "wgmma.mma_async" in k.asm["ptx"] and "setmaxnreg" in k.asm["ptx"]
