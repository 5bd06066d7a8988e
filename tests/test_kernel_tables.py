"""Tuned tile-config tables of the grouped-GEMM kernels (models.moe.kernel_tables): keys, lookup
under DOTS_GG_TUNED, merging writes, and the committed tables' shape. No Triton or GPU needed; that
the named configs exist is checked where Triton is (test_grouped_gemm_sm90_compile.py) and that a
table hit launches the named config on the GPU (test_grouped_gemm_gpu.py)."""

from __future__ import annotations

import json
import re

import pytest

from models.moe import kernel_tables as kt

NAME = re.compile(r"\d+x\d+x\d+ w\d+ s\d+( pers| ws)?( half)?( epi_ptr)?( split[24])?( egroup)?( tmap)?( halfn)?")


def test_device_slug_and_key():
    assert kt.device_slug("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"
    assert kt.device_slug("NVIDIA H200") == "nvidia_h200"
    with pytest.raises(ValueError):
        kt.device_slug("  --  ")
    key = kt.table_key("mgrouped", n=1408, k=4096, m_bucket=131072, e=128, swiglu_bwd=True, b_kmajor=False)
    assert key == "mgrouped b_kmajor=0 e=128 k=4096 m_bucket=131072 n=1408 swiglu_bwd=1"
    assert key == kt.table_key("mgrouped", b_kmajor=0, e=128, k=4096, m_bucket=131072, n=1408, swiglu_bwd=1)
    with pytest.raises(ValueError):
        kt.table_key("Bad Name", n=1)


def test_lookup_follows_dots_gg_tuned(tmp_path, monkeypatch):
    monkeypatch.setattr(kt, "TABLE_DIR", tmp_path)
    assert kt.table_for("Some GPU", "") == {}  # no table for this device: autotune everything
    entry = {"config": "128x256x64 w8 s3 pers", "tflops": 600.0, "measured": "test"}
    kt.write_entries(tmp_path / "some_gpu.json", "Some GPU", {"k1": entry})
    assert kt.table_for("Some GPU", "") == {"k1": "128x256x64 w8 s3 pers"}
    assert kt.table_for("Some GPU", "1") == {"k1": "128x256x64 w8 s3 pers"}
    assert kt.table_for("Some GPU", "0") == {}
    assert kt.table_for("Other GPU", "") == {}
    other = tmp_path / "elsewhere.json"
    kt.write_entries(other, "Some GPU", {"k2": entry})
    assert kt.table_for("Other GPU", str(other)) == {"k2": "128x256x64 w8 s3 pers"}  # a path: used as is
    with pytest.raises(FileNotFoundError, match="DOTS_GG_TUNED"):
        kt.table_for("Some GPU", str(tmp_path / "missing.json"))


def test_bad_tables_fail_loudly(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        kt.table_for("x", str(bad))
    bad.write_text(json.dumps({"configs": {"k": "128x256x64 w8 s3"}}))  # entry must be an object
    with pytest.raises(ValueError, match="'config' name"):
        kt.table_for("x", str(bad))
    bad.write_text(json.dumps({"device": "x"}))
    with pytest.raises(ValueError, match="'configs' object"):
        kt.table_for("x", str(bad))


def test_write_merges_and_is_deterministic(tmp_path):
    p = tmp_path / "t.json"
    a = {"config": "128x128x64 w8 s4", "tflops": 1.0, "measured": "a"}
    b = {"config": "128x256x64 w8 s3 pers split2", "tflops": 2.0, "measured": "b"}
    kt.write_entries(p, "GPU", {"zz": a})
    kt.write_entries(p, "GPU", {"aa": b})
    first = p.read_bytes()
    assert list(json.loads(first)["configs"]) == ["aa", "zz"]  # merged, sorted
    q = tmp_path / "q.json"
    kt.write_entries(q, "GPU", {"aa": b, "zz": a})
    assert q.read_bytes() == first
    kt.write_entries(p, "GPU", {"zz": b})  # a new measurement replaces the entry
    assert kt.table_for("GPU", str(p))["zz"] == b["config"]
    with pytest.raises(ValueError, match="is for 'GPU'"):
        kt.write_entries(p, "Another GPU", {"x": a})


def test_committed_tables_are_well_formed():
    tables = sorted(kt.TABLE_DIR.glob("*.json"))
    assert tables, f"no tuned tables in {kt.TABLE_DIR}"
    for path in tables:
        data = json.loads(path.read_text())
        assert kt.device_slug(data["device"]) == path.stem, path
        entries = kt.read_table(path)
        assert entries, path
        for key, entry in entries.items():
            kernel, *dims = key.split()
            assert kernel in ("gate_up", "mgrouped", "wgrad"), key
            assert all(re.fullmatch(r"[a-z_]+=\d+", d) for d in dims), key
            assert NAME.fullmatch(entry["config"]), (key, entry["config"])
            assert entry["tflops"] > 0 and entry["measured"], key
