"""The storage layer (pipeline.storage) without Spark: path kinds, AWS settings, S3 against moto's
server on 127.0.0.1, HTTP range reads, retries through a fault-injecting proxy, path lists, and the
commit manifest."""

from __future__ import annotations

import gzip
import os
from types import SimpleNamespace

import pytest

from pipeline import storage
from pipeline.storage import paths, s3
from pipeline.storage.reader import RetryingReader, RetryPolicy, UnreadableError
from tests.conftest import s3_env
from tests.storage_servers import Faults, fault_proxy, range_server

FAST = RetryPolicy(max_attempts=4, base_s=0.01, cap_s=0.05)


def _put(bucket: str, key: str, data: bytes) -> None:
    """Upload with boto3: moto 5.2 stores the aws-chunked framing of the C++ SDK's uploads to keys
    ending in .gz/.bz2 (never written by the pipeline), so fixtures go in through boto3."""
    import boto3

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).put_object(
        Bucket=bucket.removeprefix("s3://"), Key=key, Body=data
    )


# ---------------------------------------------------------------- paths and settings


def test_path_kinds_and_normalisation(tmp_path):
    assert paths.kind("a/b") == paths.kind("file:///x") == "local"
    assert paths.kind("s3a://b/k") == paths.kind("S3://b/k") == "s3"
    assert paths.kind("https://data.commoncrawl.org/x") == "http"
    assert paths.kind("hdfs://nn/x") == "hadoop"
    assert paths.normalize("s3a://bkt/a/b") == "s3://bkt/a/b"
    assert paths.normalize("file:///tmp/x") == "/tmp/x" and paths.normalize("file:/tmp/x") == "/tmp/x"
    assert paths.split_s3("s3a://bkt/a/b") == ("bkt", "a/b")
    with pytest.raises(ValueError, match="names no bucket"):
        paths.split_s3("s3:///key")
    rx = paths.glob_regex("s3://b/crawl/*/warc/*.warc.{gz,warc}")
    assert rx.match("s3://b/crawl/CC-1/warc/x.warc.gz") and not rx.match("s3://b/crawl/CC-1/sub/warc/x.warc.gz")
    assert paths.glob_regex("s3://b/**.gz").match("s3://b/a/b/c.gz")
    assert paths.expand_braces("a{1,2}b{x,y}") == ["a1bx", "a1by", "a2bx", "a2by"]


def test_s3_settings_follow_the_aws_precedence(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text(
        "[default]\nregion = eu-west-1\n\n[profile minio]\nregion = us-west-2\nmax_attempts = 7\n"
        "s3 =\n  endpoint_url = http://minio.local:9000\n"
    )
    base = {"AWS_CONFIG_FILE": str(cfg)}
    assert s3.settings(base) == s3.S3Settings(region="eu-west-1")
    got = s3.settings({**base, "AWS_PROFILE": "minio"})
    assert (got.endpoint, got.region, got.max_attempts) == ("http://minio.local:9000", "us-west-2", 7)
    got = s3.settings({**base, "AWS_PROFILE": "minio", "AWS_ENDPOINT_URL": "http://a:1", "AWS_REGION": "r1"})
    assert (got.endpoint, got.region) == ("http://a:1", "r1")
    assert s3.settings({**base, "AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}).endpoint == "http://s3:2"
    assert s3.settings({**base, "AWS_PROFILE": "minio", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}).endpoint is None
    assert s3.settings({**base, "AWS_NO_SIGN_REQUEST": "YES"}).anonymous
    with pytest.raises(ValueError, match="AWS_MAX_ATTEMPTS"):
        s3.settings({**base, "AWS_MAX_ATTEMPTS": "many"})
    with pytest.raises(ValueError, match="must be a URL"):
        s3.settings({**base, "AWS_ENDPOINT_URL": "minio:9000"})


# ---------------------------------------------------------------- S3 on moto


def test_s3_round_trip_list_glob_delete(s3_bucket):
    b = s3_bucket
    storage.write_text(f"{b}/run/a.json", '{"x": 1}')
    storage.write_bytes(f"{b}/run/sub/part-00000.parquet", b"P" * 10)
    _put(b, "crawl/CC-1/warc/x.warc.gz", b"gz1")
    _put(b, "crawl/CC-2/warc/y.warc.gz", b"gz22")
    assert storage.read_text(f"{b}/run/a.json") == '{"x": 1}'
    assert storage.read_bytes(f"{b}/crawl/CC-1/warc/x.warc.gz".replace("s3://", "s3a://")) == b"gz1"
    assert storage.exists(f"{b}/run") and storage.is_dir(f"{b}/run") and not storage.exists(f"{b}/nope")
    assert [(e.path, e.size) for e in storage.list_files(f"{b}/run")] == [
        (f"{b}/run/a.json", 8), (f"{b}/run/sub/part-00000.parquet", 10)
    ]
    assert storage.glob(f"{b}/crawl/*/warc/*.warc.gz") == [
        f"{b}/crawl/CC-1/warc/x.warc.gz", f"{b}/crawl/CC-2/warc/y.warc.gz"
    ]
    assert storage.glob(f"{b}/crawl/CC-{{2,3}}/**") == [f"{b}/crawl/CC-2/warc", f"{b}/crawl/CC-2/warc/y.warc.gz"]
    storage.delete(f"{b}/run")
    assert not storage.exists(f"{b}/run/a.json") and storage.exists(f"{b}/crawl")


def test_s3_reads_survive_503_reset_and_truncation(s3_endpoint, s3_bucket, monkeypatch):
    data = os.urandom(300_000)
    _put(s3_bucket, "obj.bin", data)
    faults = Faults()
    with fault_proxy(s3_endpoint, faults) as proxy:
        s3_env(monkeypatch, proxy, AWS_MAX_ATTEMPTS="1")  # the SDK's own retries off: ours are tested
        faults.plan("obj.bin", ["503", "503", "reset", "truncate"])
        with storage.open_input(f"{s3_bucket}/obj.bin", FAST) as f:
            f.chunk_bytes = 64 << 10
            assert f.read() == data
            assert f.retries >= 2  # every planned fault cost a retry (some hit the open's HEAD)
        assert [k for _, k in faults.injected] == ["503", "503", "reset", "truncate"]
        # Random access after a truncated chunk resumes at the exact byte.
        faults.plan("obj.bin", ["truncate"])
        with storage.open_input(f"{s3_bucket}/obj.bin", FAST) as f:
            f.seek(123_457)
            assert f.read(1000) == data[123_457:124_457]
        # A fault that persists: the read fails naming the object, after the configured attempts.
        faults.always("obj.bin", "503")
        with pytest.raises(UnreadableError, match=r"cannot read s3://.*/obj\.bin .* after 4 attempt"):
            with storage.open_input(f"{s3_bucket}/obj.bin", FAST) as f:
                f.read()


def test_s3_missing_object_is_not_retried(s3_bucket):
    with pytest.raises((UnreadableError, FileNotFoundError)):
        storage.open_input(f"{s3_bucket}/absent.warc.gz", FAST)


# ---------------------------------------------------------------- https with Range requests


def test_http_range_reads_resume_after_faults(tmp_path):
    data = os.urandom(200_000)
    (tmp_path / "f.warc.gz").write_bytes(data)
    faults = Faults()
    with range_server(str(tmp_path), faults) as url:
        faults.plan("f.warc.gz", ["503", "truncate", "reset"])
        with storage.open_input(f"{url}/f.warc.gz", FAST) as f:
            f.chunk_bytes = 50_000
            assert f.size == len(data)
            assert f.read() == data
            f.seek(150_001)
            assert f.read(10) == data[150_001:150_011]
        assert storage.exists(f"{url}/f.warc.gz") and not storage.exists(f"{url}/none.warc.gz")
        gets_before = sum(faults.gets.values())
        with pytest.raises(UnreadableError, match="none.warc.gz"):
            storage.open_input(f"{url}/none.warc.gz", FAST)
        assert sum(faults.gets.values()) - gets_before <= 1  # 404: not retried
        faults.always("f.warc.gz", "reset")
        with pytest.raises(UnreadableError, match=r"f\.warc\.gz at byte 0 after 4 attempt"):
            with storage.open_input(f"{url}/f.warc.gz", FAST) as f:
                f.read()


def test_retrying_reader_counts_short_reads_as_failures():
    class Short:
        size = 100

        def fetch(self, offset, length):
            return b"x" * min(length, 7)  # always truncated

        def close(self):
            pass

    r = RetryingReader("mem://short", Short, FAST, chunk_bytes=100)
    with pytest.raises(UnreadableError, match="at byte 28 after 4 attempt"):
        r.read()


# ---------------------------------------------------------------- path lists (Common Crawl)


def test_path_list_with_base_and_limit(s3_bucket, tmp_path):
    from jobs.prepare import expand_inputs

    rel = [f"crawl-data/CC-MAIN-2024-10/segments/1/warc/f{i}.warc.gz" for i in (3, 1, 2)]
    lst = tmp_path / "warc.paths.gz"
    lst.write_bytes(gzip.compress(("\n".join(rel) + "\n").encode()))

    def ctx(inputs, **kw):
        return SimpleNamespace(inputs=inputs, extra_args=SimpleNamespace(input_base=kw.get("base"), limit_files=kw.get("n")))

    got = expand_inputs(ctx([str(lst)], base="s3a://commoncrawl/", n=2))
    # the first two in list order (f3, f1), returned sorted; s3a:// becomes s3://
    assert got == [f"s3://commoncrawl/{rel[1]}", f"s3://commoncrawl/{rel[0]}"]
    https = expand_inputs(ctx([str(lst)], base="https://data.commoncrawl.org"))
    assert https == sorted(f"https://data.commoncrawl.org/{r}" for r in rel)
    with pytest.raises(ValueError, match="--input-base"):
        expand_inputs(ctx([str(lst)]))
    with pytest.raises(ValueError, match="--limit-files 0"):
        expand_inputs(ctx([str(lst)], base="s3://commoncrawl/", n=0))
    # the list itself in the bucket, and a folder / glob of the bucket
    _put(s3_bucket, "lists/warc.paths.gz", lst.read_bytes())
    _put(s3_bucket, "crawl/a.warc.gz", b"x")
    _put(s3_bucket, "crawl/b.txt", b"x")
    assert expand_inputs(ctx([f"{s3_bucket}/lists/warc.paths.gz"], base=f"{s3_bucket}/", n=1)) == [f"{s3_bucket}/{rel[0]}"]
    assert expand_inputs(ctx([f"{s3_bucket}/crawl/"])) == [f"{s3_bucket}/crawl/a.warc.gz"]
    assert expand_inputs(ctx([f"{s3_bucket}/crawl/*.warc.gz"])) == [f"{s3_bucket}/crawl/a.warc.gz"]
    with pytest.raises(ValueError, match="matches no file"):
        expand_inputs(ctx([f"{s3_bucket}/nothing/*.warc.gz"]))
    # a list served over https (Common Crawl publishes them at data.commoncrawl.org)
    with range_server(str(tmp_path)) as url:
        assert expand_inputs(ctx([f"{url}/warc.paths.gz"], base="https://data.commoncrawl.org/", n=1)) == [
            f"https://data.commoncrawl.org/{rel[0]}"
        ]


# ---------------------------------------------------------------- commit manifest


@pytest.mark.parametrize("where", ["local", "s3"])
def test_manifest_is_what_readers_trust(where, tmp_path, request):
    from jobs.common import FS, build_manifest, committed_files

    root = f"{request.getfixturevalue('s3_bucket')}/out" if where == "s3" else str(tmp_path / "out")
    fs = FS()
    for name, body in [("part-00000.parquet", b"a" * 5), ("part-00001.parquet", b"b" * 3), ("_stats.json", b"{}"),
                       ("_dropped/part-00000.parquet", b"d")]:
        fs.write_bytes(f"{root}/{name}", body)
    with pytest.raises(ValueError, match="no _SUCCESS"):
        committed_files(fs, root)
    import json

    fs.write_text(f"{root}/_SUCCESS", json.dumps(build_manifest(fs, root)))
    assert committed_files(fs, root) == [f"{root}/part-00000.parquet", f"{root}/part-00001.parquet"]
    fs.write_bytes(f"{root}/part-00099.parquet", b"stray")  # not in the manifest: never read
    assert committed_files(fs, root)[-1].endswith("part-00001.parquet")
    fs.write_bytes(f"{root}/part-00001.parquet", b"changed!")
    with pytest.raises(ValueError, match="changed after its commit"):
        committed_files(fs, root)
    fs.write_text(f"{root}/_SUCCESS", "not json")
    with pytest.raises(ValueError, match="neither empty nor a manifest"):
        committed_files(fs, root)


def test_spark_work_tables_of_an_object_store_output_need_a_scratch_folder(tmp_path):
    from jobs.common import StageContext
    from pipeline.config import load_config

    def ctx(staging: str, scratch: str) -> StageContext:
        return StageContext("clean", None, None, [], staging, staging, False, None, None, scratch=scratch)

    assert ctx(str(tmp_path / "o.__staging-1"), "").work_path("_w") == str(tmp_path / "o.__staging-1") + "/_w"
    assert ctx("s3://b/o", "/tmp/dots-clean-work-1").work_path("_w") == "/tmp/dots-clean-work-1/_w"
    with pytest.raises(ValueError, match="storage.scratch_dir"):
        ctx("s3://b/o", "").work_path("_w")  # object-store OUT on a cluster master, no scratch_dir
    with pytest.raises(ValueError, match="not an object store"):
        load_config(overrides=["storage.scratch_dir=s3://b/tmp"])
    with pytest.raises(ValueError, match="on_unreadable"):
        load_config(overrides=["prepare.on_unreadable=ignore"])
