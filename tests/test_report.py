"""jobs.report on hand-made run folders (no Spark): figures, table, HTML and charts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from jobs import report
from tests.test_cluster_support import REPO, VPY


def _stage(run: Path, name: str, stats: dict, table: pa.Table | None = None, complete: bool = True) -> Path:
    d = run / name
    d.mkdir(parents=True)
    (d / "_stats.json").write_text(json.dumps(stats))
    if table is not None:
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), d / "part-00000.parquet")
        pq.write_table(table.slice(half), d / "part-00001.parquet")
    if complete:
        (d / "_SUCCESS").write_text("")
    return d


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    docs = pa.table({
        "doc_id": ["a", "b", "c", "d"],
        "text": ["héllo", "world!", "你好", "x"],
        "lang": ["en", "en", "zh", None],
    })
    _stage(run, "00_prepare", {"stage": "prepare", "input": 10, "output": 4, "seconds": 1.5,
                              "dropped": {"lang_not_kept": 5, "error_record": 1}, "errors": {"error_record": 1}}, docs)
    filt = docs.slice(0, 3).append_column("category_name", pa.array(["news", "news", "sports"]))
    _stage(run, "03_filter", {"stage": "filter", "input": 4, "output": 3, "seconds": 2.0,
                             "dropped": {"quality_low": 1}, "errors": {}}, filt)
    tok = run / "05_tokenize"
    tok.mkdir()
    shard = pa.table({
        "input_ids": pa.array([[1, 2, 3, 0], [4, 0], [5, 6, 0]], type=pa.large_list(pa.uint32())),
        "doc_id": ["a", "b", "c"],
    })
    with ipc.new_file(str(tok / "shard-00000.arrow"), shard.schema) as w:
        w.write_table(shard)
    (tok / "index.json").write_text(json.dumps({
        "tokenizer": {"name": "t"}, "vocab_size": 7, "eos_id": 0,
        "shards": [{"file": "shard-00000.arrow", "documents": 3, "tokens": 9}],
    }))
    (tok / "_stats.json").write_text(json.dumps({"stage": "tokenize", "input": 3, "output": 3, "dropped": {},
                                                 "errors": {}, "seconds": 0.5}))
    (tok / "_SUCCESS").write_text("")
    # A crashed stage: folder without _SUCCESS, and a staging leftover: neither is read as complete.
    _stage(run, "04_balance", {"stage": "balance", "input": 999, "output": 999, "dropped": {}}, complete=False)
    (run / "04_balance.__staging-1234abcd").mkdir()
    return run


def test_collect_figures(run_dir: Path) -> None:
    fig = report.collect(str(run_dir))
    names = [f"{s.index:02d}_{s.stage}" for s in fig.stages]
    assert names == ["00_prepare", "03_filter", "04_balance", "05_tokenize"]
    prep, filt, bal, tok = fig.stages
    assert prep.documents == 4 and prep.stats["dropped"]["error_record"] == 1
    assert prep.text_bytes == len("héllo".encode()) + len("world!") + len("你好".encode()) + 1
    assert prep.data_bytes == sum(p.stat().st_size for p in (run_dir / "00_prepare").glob("*.parquet"))
    assert prep.distributions["lang"] == {"en": 2, "zh": 1, "(none)": 1}
    assert filt.distributions["category_name"] == {"news": 2, "sports": 1}
    assert not bal.complete and bal.stats is None and "incomplete" in bal.note
    assert fig.tokens["total"] == 9 and fig.tokens["documents"] == 3
    # tokens joined with the previous complete stage (filter): a=4, b=2 (news), c=3 (sports)
    assert fig.tokens["by_category"] == {"news": 6, "sports": 3}
    assert fig.tokens["by_language"] == {"en": 6, "zh": 3}
    assert tok.data_bytes == (run_dir / "05_tokenize" / "shard-00000.arrow").stat().st_size


def test_write_report_html_charts_and_table(run_dir: Path, capsys) -> None:
    path = report.write_report(str(run_dir))
    assert path == str(run_dir / "report.html")
    page = (run_dir / "report.html").read_text()
    for png in ("funnel", "drops", "dist_language", "dist_category", "tokens"):
        f = run_dir / "report" / f"{png}.png"
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"report/{png}.png" in page
    assert "error_record" in page and "incomplete" in page and "sports" in page
    out = capsys.readouterr().out
    assert "prepare" in out and "- lang_not_kept" in out and "tokens: 9 in 3 documents" in out
    assert "languages (filter): en 2, zh 1" in out


def test_report_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        report.collect(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="no stage folders"):
        report.collect(str(tmp_path))


def test_large_outputs_are_not_scanned(run_dir: Path) -> None:
    fig = report.collect(str(run_dir), max_scan_bytes=10)
    assert fig.stages[0].text_bytes is None and "max scan" in fig.stages[0].note
    assert fig.stages[0].data_bytes > 0  # sizes still come from the file listing


def test_cli(run_dir: Path) -> None:
    r = subprocess.run([VPY, "-m", "jobs.report", "--input", str(run_dir)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "report:" in r.stdout and (run_dir / "report.html").exists()
    r = subprocess.run([VPY, "-m", "jobs.report", "--input", str(run_dir / "missing")], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_report_of_a_real_run(tmp_path_factory) -> None:
    """jobs.pipeline wrote report.html at the end of the reference run; its figures match _stats.json."""
    from tests.test_cluster_support import reference_run

    ref = reference_run(tmp_path_factory)
    page = (ref / "report.html").read_text()
    fig = report.collect(str(ref))
    assert fig.stages and all(s.complete for s in fig.stages)
    for sf in fig.stages:
        stats = json.loads((Path(sf.path) / "_stats.json").read_text())
        assert sf.stats == stats
        assert f"{sf.index:02d}_{sf.stage}" in page and f"{stats['output']:,}" in page
        for reason in stats["dropped"]:
            assert reason in page
    assert (ref / "report" / "funnel.png").exists()
    prep = fig.stages[0]
    assert prep.distributions.get("lang") and set(prep.distributions["lang"]) <= {"en", "zh"}
