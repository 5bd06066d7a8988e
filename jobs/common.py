"""The Spark chassis shared by every stage job (cc-pyspark style: the job owns the plan,
``pipeline/`` owns the per-record logic).

A stage module defines ``run(ctx: StageContext) -> None`` and ends with
``if __name__ == "__main__": main("<stage>", run)``. The chassis:

* parses the CLI of DESIGN.md (``--input``, ``--output``, ``--config``, ``--set``, ``--overwrite``,
  ``--keep-dropped``), resolves and validates the config on the driver before any task starts;
* skips a stage whose ``OUT/_SUCCESS`` exists unless ``--overwrite``;
* lets the stage write into a staging folder beside ``OUT`` and commits it with one rename, so a
  crashed run never leaves a folder that looks complete; ``_SUCCESS`` is written last;
* writes ``_stats.json`` (counts add up, checked) and ``_config.json`` (the resolved config).

Paths go through Hadoop's FileSystem API, so local paths, ``file://``, ``hdfs://`` and ``s3a://``
behave the same.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs import progress
from pipeline.config import PipelineConfig, load_config
from pipeline.stats import StageStats, format_funnel

REASON_COL = "drop_reason"


def build_parser(stage: str, description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"jobs.{stage}",
        description=description or f"Run the '{stage}' stage.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--input", required=True, nargs="+", help="input path(s); see README for each stage")
    p.add_argument("--output", required=True, help="output directory (Parquet + _stats.json + _SUCCESS)")
    p.add_argument("--config", default=None, help="YAML file deep-merged over conf/defaults/*.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--overwrite", action="store_true", help="recompute even if OUT/_SUCCESS exists")
    p.add_argument("--keep-dropped", action="store_true", help="also write dropped rows to OUT/_dropped/")
    return p


# ---------------------------------------------------------------- Spark session and file system


def launcher_settings() -> dict[str, str]:
    """Settings given to the launcher, which win over the profile.

    Under spark-submit the JVM already runs (``PYSPARK_GATEWAY_PORT`` is set) and holds
    ``--master``/``--conf`` as system properties; a bare ``SparkConf()`` made before the
    SparkContext cannot see them, so attach to that JVM first. Under ``python -m jobs.X`` they
    come from ``PYSPARK_SUBMIT_ARGS`` (``--master``, ``--conf k=v``)."""
    import shlex

    from pyspark import SparkConf, SparkContext

    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        SparkContext._ensure_initialized()
        return {k: v for k, v in SparkConf().getAll()}
    out: dict[str, str] = {}
    args = shlex.split(os.environ.get("PYSPARK_SUBMIT_ARGS", ""))
    for flag, value in zip(args, args[1:]):
        if flag == "--master":
            out["spark.master"] = value
        elif flag == "--conf" and "=" in value:
            k, v = value.split("=", 1)
            out[k] = v
        elif flag == "--driver-memory":
            out["spark.driver.memory"] = value
    return out


def get_spark(cfg: PipelineConfig, app_name: str | None = None):
    """Build (or reuse) the SparkSession from the configured profile.

    A master given by ``spark-submit --master`` (visible as ``spark.master`` in the launcher's
    conf) wins over the profile's master.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    launcher = launcher_settings()
    builder = SparkSession.builder.appName(app_name or cfg.spark.app_name)
    for k, v in cfg.spark.settings().items():
        if k in launcher:
            continue  # spark-submit's --master / --conf (or PYSPARK_SUBMIT_ARGS) win over the profile
        builder = builder.config(k, v)
    # Make the repo importable on executors started by a local master.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pp = os.environ.get("PYTHONPATH", "")
    if repo not in pp.split(os.pathsep):
        os.environ["PYTHONPATH"] = repo + (os.pathsep + pp if pp else "")
    builder = builder.config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
    return builder.getOrCreate()


class FS:
    """Minimal Hadoop FileSystem wrapper (works for file://, hdfs://, s3a://...)."""

    def __init__(self, spark, path: str):
        jvm = spark._jvm
        self._jvm = jvm
        self._conf = spark._jsc.hadoopConfiguration()
        self.Path = jvm.org.apache.hadoop.fs.Path
        self.fs = self.Path(path).getFileSystem(self._conf)

    def qualify(self, path: str) -> str:
        return str(self.fs.makeQualified(self.Path(path)).toString())

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self.Path(path)))

    def delete(self, path: str) -> None:
        if self.exists(path):
            self.fs.delete(self.Path(path), True)

    def mkdirs(self, path: str) -> None:
        self.fs.mkdirs(self.Path(path))

    def rename(self, src: str, dst: str) -> None:
        if not self.fs.rename(self.Path(src), self.Path(dst)):
            raise OSError(f"rename {src} -> {dst} failed")

    def write_text(self, path: str, text: str) -> None:
        out = self.fs.create(self.Path(path), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()

    def read_text(self, path: str) -> str:
        stream = self.fs.open(self.Path(path))
        try:
            reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            while True:
                line = reader.readLine()
                if line is None:
                    break
                lines.append(line)
            return "\n".join(lines)
        finally:
            stream.close()

    def list(self, path: str) -> list[str]:
        if not self.exists(path):
            return []
        return sorted(str(s.getPath().toString()) for s in self.fs.listStatus(self.Path(path)))


# ---------------------------------------------------------------- stage context


@dataclass
class StageContext:
    stage: str
    spark: Any
    cfg: PipelineConfig
    inputs: list[str]
    output: str
    staging: str
    keep_dropped: bool
    stats: StageStats
    fs: FS
    extra_args: argparse.Namespace | None = None
    written: list[str] = field(default_factory=list)

    @property
    def section(self) -> Any:
        return getattr(self.cfg, self.stage)

    def path(self, name: str) -> str:
        """A path inside the staging folder (becomes ``OUT/name`` on commit)."""
        return self.staging.rstrip("/") + "/" + name

    def read_previous(self):
        """Read the previous stage's documents table, refusing an incomplete one."""
        for p in self.inputs:
            if not self.fs.exists(p.rstrip("/") + "/_SUCCESS"):
                raise ValueError(
                    f"input {p} has no _SUCCESS: it is not a complete stage output; "
                    "rerun the previous stage (or pass its finished OUT directory)"
                )
        return self.spark.read.parquet(*self.inputs)

    def write_documents(self, df, num_files: int | None = None, sort_col: str = "doc_id") -> None:
        """Write ``df`` (with a nullable ``drop_reason`` column) as the stage output.

        Kept rows (null reason) go to the Parquet dataset, dropped rows to ``_dropped/`` when
        ``--keep-dropped``; the per-reason counts become the stats. Rows are hash-partitioned on
        ``sort_col`` into ``num_files`` files and sorted inside each, so the output is
        byte-identical whatever the input partitioning.
        """
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        n = num_files or int(self.cfg.spark.settings().get("spark.sql.shuffle.partitions", 8))
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = {r[REASON_COL]: int(r["count"]) for r in df.groupBy(REASON_COL).count().collect()}
            self.stats.add_reasons(counts)
            kept = df.filter(F.col(REASON_COL).isNull()).drop(REASON_COL)
            # Kept rows form the dataset at the folder's root; Spark readers ignore _* entries.
            write_sorted(kept, self.staging, n, sort_col)
            if self.keep_dropped:
                dropped = df.filter(F.col(REASON_COL).isNotNull())
                write_sorted(dropped, self.path("_dropped"), max(1, n // 4), sort_col)
        finally:
            df.unpersist()

    def write_json(self, name: str, obj: Any) -> None:
        self.fs.write_text(self.path(name), json.dumps(obj, indent=2, sort_keys=True, default=str))


def write_sorted(df, path: str, num_files: int, sort_col: str = "doc_id", mode: str = "append") -> None:
    """Deterministic Parquet write: hash-partition by ``sort_col`` into ``num_files`` partitions,
    sort within each, and write partition ``i`` as ``path/part-0000i.parquet`` with pyarrow.

    pyarrow rather than Spark's writer: parquet-mr lists each column chunk's encodings from a Java
    HashSet whose order changes from one JVM to the next, so its files are not byte-identical
    across runs; pyarrow's are. Every partition writes a file (empty ones carry the schema), so the
    file count is the configured one. A task writes to a hidden temporary name and renames it, so a
    retried or speculative attempt never leaves a half-written part. ``append`` keeps what the
    folder already holds (side tables such as ``_dropped``); ``overwrite`` empties it first.
    """
    from pyspark.sql.pandas.types import to_arrow_schema

    spark = df.sparkSession
    fs = FS(spark, path)
    if mode == "overwrite":
        fs.delete(path)
    elif mode != "append":
        raise ValueError(f"write_sorted mode must be 'append' or 'overwrite', not {mode!r}")
    fs.mkdirs(path)
    # The schema an empty partition writes: the same conversion Spark applies to Arrow batches.
    schema = to_arrow_schema(
        df.schema,
        timezone=spark.conf.get("spark.sql.session.timeZone", "UTC"),
        prefers_large_types=spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true",
    )
    schema_bytes = schema.serialize().to_pybytes()
    writer = _PartWriter(fs.qualify(path), schema_bytes)
    parts = (
        df.repartition(num_files, sort_col)
        .sortWithinPartitions(sort_col)
        .mapInArrow(writer, "part int, rows long")
        .collect()
    )
    # Spark may run no task at all for an empty result (AQE turns it into an empty relation):
    # write the missing parts here so the folder always holds the configured files.
    missing = sorted(set(range(num_files)) - {r["part"] for r in parts})
    if missing:
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        pfs, root = pafs.FileSystem.from_uri(fs.qualify(path))
        for pid in missing:
            with pfs.open_output_stream(f"{root}/part-{pid:05d}.parquet") as out:
                pq.ParquetWriter(out, schema, compression="zstd").close()


class _PartWriter:
    """mapInArrow function: write this partition's batches as one Parquet file (zstd).

    Row groups hold exactly ``ROW_GROUP_ROWS`` rows (the last one fewer) and each is written from
    one contiguous chunk, so the bytes do not depend on how Spark cut the Arrow batches."""

    ROW_GROUP_ROWS = 16384

    def __init__(self, uri: str, schema_bytes: bytes):
        self.uri = uri
        self.schema_bytes = schema_bytes

    def __call__(self, batches):
        import pyarrow as pa
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        tc = TaskContext.get()
        pid = tc.partitionId()
        fs, root = pafs.FileSystem.from_uri(self.uri)
        final = f"{root}/part-{pid:05d}.parquet"
        tmp = f"{root}/.part-{pid:05d}.parquet.{tc.stageId()}-{tc.attemptNumber()}.tmp"
        rows = 0
        writer = None
        pending: list = []
        buffered = 0
        step = self.ROW_GROUP_ROWS

        def flush(table):
            writer.write_table(table.combine_chunks(), row_group_size=step)

        with fs.open_output_stream(tmp) as out:
            for batch in batches:
                if writer is None:
                    writer = pq.ParquetWriter(out, batch.schema, compression="zstd")
                pending.append(batch)
                buffered += batch.num_rows
                rows += batch.num_rows
                if buffered >= step:
                    table = pa.Table.from_batches(pending)
                    full = (buffered // step) * step
                    flush(table.slice(0, full))
                    rest = table.slice(full)
                    pending, buffered = rest.to_batches(), rest.num_rows
            if writer is None:  # empty partition: a file with the schema and no rows
                schema = pa.ipc.read_schema(pa.py_buffer(self.schema_bytes))
                writer = pq.ParquetWriter(out, schema, compression="zstd")
            elif buffered:
                flush(pa.Table.from_batches(pending))
            writer.close()
        fs.move(tmp, final)
        yield pa.RecordBatch.from_pydict(
            {"part": pa.array([pid], pa.int32()), "rows": pa.array([rows], pa.int64())}
        )


_PART_RE = re.compile(r"^part-\d{5}\.parquet$")


def _rename_parts(fs: FS, folder: str) -> None:
    """Normalise part-file names (part-00000.parquet, ...) and remove markers and leftovers."""
    for p in fs.list(folder):
        name = p.rsplit("/", 1)[-1]
        if _PART_RE.match(name):
            continue
        if name.startswith("part-") and name.endswith(".parquet"):
            idx = name.split("-")[1]
            fs.rename(p, folder.rstrip("/") + f"/part-{idx}.parquet")
        elif name == "_SUCCESS" or name.endswith((".crc", ".tmp")):
            fs.delete(p)


def stage_output_complete(spark, output: str) -> bool:
    return FS(spark, output).exists(output.rstrip("/") + "/_SUCCESS")


def run_stage(
    stage: str,
    run: Callable[[StageContext], None],
    spark,
    cfg: PipelineConfig,
    inputs: list[str],
    output: str,
    overwrite: bool = False,
    keep_dropped: bool = False,
    extra_args: argparse.Namespace | None = None,
) -> dict | None:
    """Run one stage with staging + atomic commit. Returns its stats dict (None when skipped)."""
    fs = FS(spark, output)
    output = fs.qualify(output)
    if fs.exists(output + "/_SUCCESS") and not overwrite:
        print(f"[{stage}] {output} is complete (_SUCCESS); skipping (use --overwrite to recompute)")
        try:
            return json.loads(fs.read_text(output + "/_stats.json"))
        except Exception:  # noqa: BLE001 - stats are informative only when skipping
            return None
    staging = output.rstrip("/") + f".__staging-{uuid.uuid4().hex[:8]}"
    ctx = StageContext(
        stage=stage,
        spark=spark,
        cfg=cfg,
        inputs=list(inputs),
        output=output,
        staging=staging,
        keep_dropped=keep_dropped,
        stats=StageStats(stage),
        fs=fs,
        extra_args=extra_args,
    )
    # A hard-killed earlier run may have left its staging folder: never read, removed here.
    for old in fs.list(output.rsplit("/", 1)[0]):
        if old.rsplit("/", 1)[-1].startswith(output.rsplit("/", 1)[-1] + ".__staging-"):
            fs.delete(old)
    t0 = time.time()
    spark.sparkContext.setJobGroup(stage, f"stage {stage}")
    try:
        with progress.track(spark, stage):
            run(ctx)
        ctx.stats.seconds = time.time() - t0
        ctx.stats.check()
        for folder in (staging, ctx.path("_dropped")):
            if fs.exists(folder):
                _rename_parts(fs, folder)
        fs.mkdirs(staging)
        fs.write_text(ctx.path("_stats.json"), ctx.stats.to_json())
        fs.write_text(ctx.path("_config.json"), cfg.to_json())
        # Commit: replace OUT by the staging folder in one rename, then mark it complete.
        fs.delete(output)
        fs.rename(staging, output)
        fs.write_text(output + "/_SUCCESS", "")
    except BaseException:
        fs.delete(staging)
        raise
    stats = ctx.stats.to_dict()
    print(format_funnel([stats]))
    return stats


def main(
    stage: str,
    run: Callable[[StageContext], None],
    argv: list[str] | None = None,
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str | None = None,
) -> dict | None:
    parser = build_parser(stage, description)
    if add_args:
        add_args(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except ValueError as e:
        parser.error(str(e))
    spark = get_spark(cfg, f"dots-data:{stage}")
    return run_stage(
        stage, run, spark, cfg, args.input, args.output, args.overwrite, args.keep_dropped, args
    )
