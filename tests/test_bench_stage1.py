"""bench.stage1 helpers (the timed runs are the bench itself)."""

from __future__ import annotations

from bench import stage1
from pipeline.prepare.process import process_warc_file


def test_the_floor_input_is_one_record_that_stage1_keeps(tmp_path):
    warc = stage1.one_record_warc(tmp_path / "one.warc.gz")
    rows = list(process_warc_file(warc, stage1._prepare_cfg()))
    assert len(rows) == 1
    assert rows[0]["drop_reason"] is None and rows[0]["lang"] == "en"
    assert rows[0]["url"] == "https://floor.example.org/a"


def test_process_roles_name_the_parts_of_a_job():
    java = "/usr/lib/jvm/bin/java -cp x org.apache.spark.deploy.SparkSubmit pyspark-shell"
    assert stage1.process_role(java, "") == "jvm"
    assert stage1.process_role("/usr/bin/java -cp x org.apache.spark.launcher.Main", "") == "launcher"
    daemon = "/v/bin/python -m jobs.python_daemon"
    assert stage1.process_role(daemon, "/v/bin/python -m jobs.prepare") == "py-daemon"
    assert stage1.process_role(daemon, daemon) == "py-worker"
    assert stage1.process_role("/v/bin/python -m jobs.prepare --input x", "bash") == "driver"
