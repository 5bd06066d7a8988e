"""Jobs against object storage: moto's S3 server and a Range-capable HTTP server on 127.0.0.1.

* the whole pipeline (prepare -> ... -> tokenize, with the report) with input and output in a
  bucket equals the local reference run (tests/test_cluster_support.reference_run): the same rows
  in every Parquet file (``warc_file`` compared by file name: it names where the WARC was read
  from), byte-identical token shards and index, the same stats;
* throttling (503 SlowDown), connection resets and truncated bodies injected by a proxy in front of
  moto are retried; a WARC that stays unreadable fails the task naming it, or with
  ``prepare.on_unreadable=drop`` is one counted ``error_io_unreadable`` drop;
* an https:// WARC read with Range requests (one truncated answer on the way);
* reruns in a bucket: the old keys go, the manifest lists exactly what is there, a reader refuses an
  output without ``_SUCCESS``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import storage
from tests.conftest import s3_env
from tests.storage_servers import Faults, fault_proxy, range_server
from tests.test_cluster_support import _drop_timings, fault_env, reference_run, require_stages, sample_crawl

pytestmark = pytest.mark.spark

_SKIP = {"_SUCCESS", "_funnel.json", "report.html"}


def _upload(bucket: str, key: str, path: Path) -> str:
    import boto3

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).put_object(
        Bucket=bucket.removeprefix("s3://"), Key=key, Body=path.read_bytes()
    )
    return f"{bucket}/{key}"


def _download(prefix: str, dest: Path) -> Path:
    for e in storage.list_files(prefix):
        target = dest / e.path[len(prefix.rstrip("/")) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.read_bytes(e.path))
    return dest


def _table(path: Path):
    t = pq.read_table(path)
    if "warc_file" in t.column_names:  # where the WARC was read from: compare the file name only
        i = t.column_names.index("warc_file")
        names = [None if v is None else v.rsplit("/", 1)[-1] for v in t.column("warc_file").to_pylist()]
        import pyarrow as pa

        t = t.set_column(i, t.schema.field(i), pa.array(names, t.schema.field(i).type))
    return t


def assert_same_run(ref: Path, got: Path) -> int:
    """Every output file of ``ref`` is in ``got`` with the same content (see the module docstring);
    returns how many files were compared."""

    def files(root: Path) -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.name not in _SKIP and not p.relative_to(root).as_posix().startswith("report/")
        }

    fa, fb = files(ref), files(got)
    assert fa == fb, f"only local: {sorted(fa - fb)[:10]}; only in the bucket: {sorted(fb - fa)[:10]}"
    for rel in sorted(fa):
        a, b = ref / rel, got / rel
        if rel.endswith(".parquet"):
            ta, tb = _table(a), _table(b)
            assert ta.schema.equals(tb.schema), rel
            assert ta.equals(tb), f"{rel}: rows differ"
        elif rel.endswith("_stats.json"):
            assert _drop_timings(json.loads(a.read_text())) == _drop_timings(json.loads(b.read_text())), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel
    return len(fa)


def _manifest_matches_listing(out: str) -> None:
    manifest = json.loads(storage.read_text(f"{out}/_SUCCESS"))
    listed = {e.path[len(out) + 1 :]: e.size for e in storage.list_files(out) if not e.path.endswith("/_SUCCESS")}
    assert {f["path"]: f["size"] for f in manifest["files"]} == listed


def test_pipeline_in_a_bucket_equals_the_local_run(spark, s3_bucket, tmp_path, tmp_path_factory):
    from jobs import pipeline

    stages = require_stages()
    ref = reference_run(tmp_path_factory)
    sample = sample_crawl(tmp_path_factory.getbasetemp())
    for w in sorted(sample.glob("*.warc.gz")):
        _upload(s3_bucket, f"crawl/{w.name}", w)
    out = f"{s3_bucket}/run"
    # The reference run injects a record fault (tests/test_cluster_support.fault_env): so does this one.
    env = spark.sparkContext.environment
    faults = fault_env(sample)
    env.update(faults)
    try:
        pipeline.main(
            ["--input", f"{s3_bucket}/crawl/", "--output", out.replace("s3://", "s3a://"),
             "--set", "spark.profile=tests", "--stages", ",".join(stages)]
        )
    finally:
        for k in faults:
            env.pop(k, None)
    got = _download(out, tmp_path / "got")
    assert assert_same_run(ref, got) >= 6 * len(stages) // 2
    for d in sorted(p.name for p in got.iterdir() if p.is_dir() and p.name[:2].isdigit()):
        _manifest_matches_listing(f"{out}/{d}")
    assert (got / "report.html").stat().st_size > 0 and (got / "_funnel.json").exists()
    prep = json.loads((got / "00_prepare" / "_stats.json").read_text())
    assert prep["input"] > 0 and prep["files"] == 2
    assert not [k for k in storage.list_files(out) if ".__staging" in k.path or "__work" in k.path]


# ---------------------------------------------------------------- prepare: faults, https, reruns


@pytest.fixture(scope="module")
def one_warc(tmp_path_factory) -> Path:
    return sorted(sample_crawl(tmp_path_factory.getbasetemp()).glob("*.warc.gz"))[0]


@pytest.fixture(scope="module")
def local_prepare(spark, cfg, one_warc, tmp_path_factory) -> Path:
    from jobs import prepare
    from jobs.common import run_stage

    out = tmp_path_factory.mktemp("local_prepare") / "out"
    run_stage("prepare", prepare.run, spark, cfg, [str(one_warc)], str(out))
    return out


def _same_prepare(local: Path, got: Path) -> dict:
    stats = json.loads((got / "_stats.json").read_text())
    assert _drop_timings(stats) == _drop_timings(json.loads((local / "_stats.json").read_text()))
    for p in sorted(local.glob("part-*.parquet")):
        assert _table(p).equals(_table(got / p.name)), p.name
    return stats


def test_prepare_retries_throttling_resets_and_truncation(spark, cfg, s3_endpoint, s3_bucket, monkeypatch,
                                                          one_warc, local_prepare, tmp_path):
    from jobs import prepare
    from jobs.common import run_stage
    from pipeline.config import load_config

    src = _upload(s3_bucket, f"in/{one_warc.name}", one_warc)
    faults = Faults()
    with fault_proxy(s3_endpoint, faults) as proxy:
        s3_env(monkeypatch, proxy, AWS_MAX_ATTEMPTS="4")
        faults.plan(one_warc.name, ["503", "503", "reset", "truncate"])
        run_stage("prepare", prepare.run, spark, cfg, [src], str(tmp_path / "retried"))
        assert [k for _, k in faults.injected] == ["503", "503", "reset", "truncate"]
        _same_prepare(local_prepare, tmp_path / "retried")

        # Still unreadable after every attempt: the task (so the job) fails, naming the file.
        s3_env(monkeypatch, proxy, AWS_MAX_ATTEMPTS="2")
        faults.clear()
        faults.always(one_warc.name, "503")
        with pytest.raises(Exception, match=rf"cannot read {src}") as err:
            run_stage("prepare", prepare.run, spark, cfg, [src], str(tmp_path / "failed"))
        assert "SLOW_DOWN" in str(err.value)  # the last error, as the SDK names S3's 503 SlowDown
        assert not (tmp_path / "failed" / "_SUCCESS").exists()

        # ... or, with the switch, one counted drop: nothing lost silently.
        drop_cfg = load_config(overrides=["spark.profile=tests", "prepare.on_unreadable=drop"])
        stats = run_stage("prepare", prepare.run, spark, drop_cfg, [src], str(tmp_path / "dropped"))
    assert stats["dropped"] == {"error_io_unreadable": 1} and stats["output"] == 0 and stats["input"] == 1
    row = pq.read_table(tmp_path / "dropped").num_rows
    assert row == 0


def test_prepare_reads_an_https_warc_with_range_requests(spark, cfg, one_warc, local_prepare, tmp_path):
    from jobs import prepare
    from jobs.common import run_stage

    faults = Faults()
    with range_server(str(one_warc.parent), faults) as url:
        faults.plan(one_warc.name, ["truncate"])
        run_stage("prepare", prepare.run, spark, cfg, [f"{url}/{one_warc.name}"], str(tmp_path / "https"))
    assert [k for _, k in faults.injected] == ["truncate"]
    assert faults.gets[f"/{one_warc.name}"] >= 2  # the truncated answer was followed by a resumed range
    stats = _same_prepare(local_prepare, tmp_path / "https")
    assert stats["output"] > 0
    files = set(pq.read_table(tmp_path / "https", columns=["warc_file"]).column("warc_file").to_pylist())
    assert files == {f"{url}/{one_warc.name}"}


def test_rerun_in_a_bucket_replaces_the_output_and_readers_need_success(spark, cfg, s3_bucket, one_warc):
    from jobs import clean, prepare
    from jobs.common import run_stage

    src = _upload(s3_bucket, f"in/{one_warc.name}", one_warc)
    out = f"{s3_bucket}/prep"
    first = run_stage("prepare", prepare.run, spark, cfg, [src], out, keep_dropped=True)
    assert run_stage("prepare", prepare.run, spark, cfg, [src], out) == first  # finished: skipped
    _manifest_matches_listing(out)
    dropped = [e.path for e in storage.list_files(f"{out}/_dropped")]
    assert dropped and all(p.rsplit("/", 1)[-1].startswith("part-") for p in dropped)
    from jobs.common import read_parquet_files

    assert read_parquet_files(spark, dropped).count() == sum(first["dropped"].values()) > 0
    storage.write_bytes(f"{out}/part-00042.parquet", b"left by an older run")
    run_stage("prepare", prepare.run, spark, cfg, [src], out, overwrite=True)  # now without _dropped
    assert not storage.exists(f"{out}/part-00042.parquet") and not storage.exists(f"{out}/_dropped")
    _manifest_matches_listing(out)
    # A crash between the data and the marker: the next stage refuses the folder.
    storage.delete(f"{out}/_SUCCESS")
    with pytest.raises(ValueError, match="no _SUCCESS"):
        run_stage("clean", clean.run, spark, cfg, [out], f"{s3_bucket}/clean")
    assert not storage.exists(f"{s3_bucket}/clean/_SUCCESS")
