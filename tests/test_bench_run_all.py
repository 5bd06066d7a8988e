"""The `make bench` runner's results table (bench/run_all.py), on figures shaped like each bench's --json."""

from __future__ import annotations

import copy
import json

import pytest

from bench import run_all

FIGURES = {
    "stage1": {
        "records": {"response": 1000, "request": 21},
        "ours": {"cpu_s": 10.21, "wall_s": 12.0, "kept": 600},
        "datatrove": {"cpu_s": 20.42, "wall_s": 25.0, "kept": 580},
        "speed_ratio_per_core": 2.0,
        "quality": {"cleaneval": {"ours": {"f1": 0.9, "precision": 0.9, "recall": 0.9},
                                  "datatrove": {"f1": 0.8, "precision": 0.8, "recall": 0.8}}},
    },
    "minhash": {"pages": 300, "num_perm": 2048, "docs_per_s_core": {"ours": 300.0, "datasketch": 100.0}},
    "dedup": {"docs": 20000, "master": "local[2]", "docs_per_s": 1234.5, "precision": 1.0, "recall": 0.99},
    "tokenizer_speed": {"documents": 2000, "sides": {
        "ours (tiktoken)": {"tokens_per_s_core": 3.0e6}, "ours-hf (hf)": {"tokens_per_s_core": 1.0e6},
        "datatrove DocumentTokenizer": {"tokens_per_s_core": 1.5e6}}},
    "model_speed": [
        {"model": "clutter", "device": "cpu", "batch": 1024, "end_to_end": 5000.0, "unit": "lines/s"},
        {"model": "clutter", "device": "cpu", "batch": 8192, "end_to_end": 7000.0, "unit": "lines/s"},
        {"model": "quality", "device": "cpu", "batch": 64, "end_to_end": 300.0, "unit": "docs/s"},
    ],
}


def _results() -> dict:
    benches = {name: {"status": "ok", "figures": copy.deepcopy(f), "command": f"python -m bench.{name}", "wall_s": 10.0}
               for name, f in FIGURES.items()}
    benches["dedup"] = {"status": "failed", "returncode": 1, "log_tail": ["boom"], "command": "python -m bench.dedup",
                        "wall_s": 1.0}
    benches["extra"] = {"status": "skipped", "reason": "no shared data at /x"}
    return {
        "command": "python -m bench.run_all", "date": "2026-01-01 00:00 UTC", "total_wall_s": 41.0,
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gib": 8.0, "os": "Linux", "python": "3.11.9",
                    "commit": "abc1234", "load_avg_start": [1.0, 1.0, 1.0]},
        "note": "figures from a busy machine", "notes": ["datatrove venv absent"], "benches": benches,
    }


def test_rows_carry_ours_peer_and_ratio_for_each_bench():
    rows = run_all.table_rows(_results())
    by = {(r["bench"], r["measure"]): r for r in rows}
    speed = by[("stage1", "prepare, 1021 WARC records")]
    assert speed["ours"] == pytest.approx(100.0) and speed["peer_value"] == pytest.approx(50.0)
    assert speed["ratio"] == pytest.approx(2.0) and speed["peer"] == "datatrove"
    assert by[("stage1", "extraction F1, cleaneval")]["ratio"] == pytest.approx(0.9 / 0.8)
    assert by[("minhash", "MinHash 2048 perms, 300 pages")]["ratio"] == pytest.approx(3.0)
    tok = by[("tokenizer_speed", "tokenize to shards, 2,000 docs")]
    assert tok["ours"] == 3.0e6 and tok["ratio"] == pytest.approx(2.0)
    clutter = by[("model_speed", "clutter model, end to end (batch 8192)")]  # the best batch per model
    assert clutter["ours"] == 7000.0 and clutter["ratio"] is None
    assert not any(r["bench"] in ("dedup", "extra") for r in rows)  # failed and skipped benches have no rows


def test_a_side_without_peer_figures_has_no_ratio():
    res = _results()
    del res["benches"]["stage1"]["figures"]["datatrove"]
    res["benches"]["stage1"]["figures"]["quality"]["cleaneval"].pop("datatrove")
    rows = [r for r in run_all.table_rows(res) if r["bench"] == "stage1"]
    assert rows and all(r["peer_value"] is None and r["ratio"] is None for r in rows)


def test_write_results_writes_the_markdown_table_and_the_json(tmp_path):
    run_all.write_results(_results(), tmp_path)
    md = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "Machine: Test CPU, 2 cores, 8.0 GiB" in md and "figures from a busy machine" in md
    assert "| stage1 | prepare, 1021 WARC records | docs/s/core | 100 | datatrove | 50 | 2.00x |" in md
    assert "| model_speed | quality model, end to end (batch 64) | docs/s | 300 | - | - | - |" in md
    assert "`dedup`: **failed**" in md and "`extra`: **skipped** (no shared data at /x)" in md
    assert "* datatrove venv absent" in md
    data = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert data["machine"]["cores"] == 2 and len(data["rows"]) == 6
    assert data["benches"]["minhash"]["figures"]["docs_per_s_core"]["ours"] == 300.0


def test_a_failing_bench_is_reported_with_its_log(tmp_path):
    entry = run_all.run_bench("no_such_bench", [], tmp_path)
    assert entry["status"] == "failed" and entry["returncode"] != 0
    assert any("no_such_bench" in line for line in entry["log_tail"])


def test_unknown_bench_names_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown bench"):
        run_all.main(["--only", "stage1,nope", "--out", str(tmp_path)])


def test_the_recorded_command_leaves_out_the_note():
    assert run_all.command_line(["--only", "minhash", "--note", "busy machine"]) == \
        "python -m bench.run_all --only minhash"
    assert run_all.command_line(["--note=busy", "--out", "a b"]) == "python -m bench.run_all --out 'a b'"
