"""The Spark chassis shared by every stage job (cc-pyspark style: the job owns the plan,
``pipeline/`` owns the per-record logic).

A stage module defines ``run(ctx: StageContext) -> None`` and ends with
``if __name__ == "__main__": main("<stage>", run)``. The chassis:

* parses the CLI of DESIGN.md (``--input``, ``--output``, ``--config``, ``--set``, ``--overwrite``,
  ``--keep-dropped``), resolves and validates the config on the driver before any task starts;
* skips a stage whose ``OUT/_SUCCESS`` exists unless ``--overwrite``;
* commits the output so that a reader never takes a half-written one for a finished one: on a
  local disk (or HDFS) the stage writes into a staging folder beside ``OUT`` that one rename makes
  ``OUT``; in an object store, which has no rename, it first deletes ``OUT/_SUCCESS`` and every
  earlier key, then writes in place. Either way ``_SUCCESS`` is written last and holds the
  manifest (every file with its size); readers and resumed runs trust only a ``_SUCCESS``'d output
  and read exactly the files its manifest lists (docs/OBJECT_STORAGE.md);
* writes ``_stats.json`` (counts add up, checked) and ``_config.json`` (the resolved config);
* writes the documents in the input's part layout (:class:`InputLayout`, :meth:`StageContext.write_parts`):
  one task per output part reads its own input files with pyarrow, so documents are never shuffled
  or persisted to be placed, and the per-reason counts come from that one pass.

Paths go through :mod:`pipeline.storage` (local, ``file:``, ``s3://``/``s3a://``, ``https://``
inputs) in Python on the driver and in the tasks: no JVM connector is needed. Other schemes
(``hdfs://``) use Hadoop's FileSystem in the JVM.
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
from pipeline import storage
from pipeline.config import PipelineConfig, load_config
from pipeline.stats import StageStats, format_funnel
from pipeline.storage.paths import HADOOP

REASON_COL = "drop_reason"
SUCCESS = "_SUCCESS"
MANIFEST_FORMAT = "dots-data/manifest-v1"
# Standard AWS variables the Python tasks need as well (see forward_aws_env). On a cluster, instance
# roles or profile files on the nodes avoid shipping credentials with the job at all.
AWS_ENV = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_MAX_ATTEMPTS", "AWS_NO_SIGN_REQUEST", "AWS_EC2_METADATA_DISABLED",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
)


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
    if stage in ("prepare", "pipeline"):
        p.add_argument(
            "--input-base",
            default=None,
            help="prefix for the relative paths of a path list, e.g. s3://commoncrawl/ or https://data.commoncrawl.org/",
        )
        p.add_argument(
            "--limit-files",
            type=int,
            default=None,
            metavar="N",
            help="read only the first N input files, in list order (a sample of a crawl snapshot)",
        )
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
        forward_aws_env(active)
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
    spark = builder.getOrCreate()
    forward_aws_env(spark)
    return spark


_FORWARDED: set[str] = set()


def forward_aws_env(spark) -> None:
    """Give Python tasks the driver's current AWS settings (:data:`AWS_ENV`).

    PySpark ships ``SparkContext.environment`` with every Python function, so the values reach the
    Python workers of every executor, and a change made after the session started (a later
    ``export``, a test's server) applies to the next job. Values set with
    ``spark.executorEnv.*`` and absent here are left alone."""
    env = spark.sparkContext.environment
    for k in AWS_ENV:
        if k in os.environ:
            env[k] = os.environ[k]
            _FORWARDED.add(k)
        elif k in _FORWARDED:
            env.pop(k, None)
            _FORWARDED.discard(k)


class _HadoopFS:
    """Hadoop's FileSystem through the JVM, for schemes the Python storage layer leaves to it."""

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

    def write_bytes(self, path: str, data: bytes) -> None:
        out = self.fs.create(self.Path(path), True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    def read_bytes(self, path: str) -> bytes:
        stream = self.fs.open(self.Path(path))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def list(self, path: str) -> list[str]:
        if not self.exists(path):
            return []
        return sorted(str(s.getPath().toString()) for s in self.fs.listStatus(self.Path(path)))

    def list_files(self, path: str) -> list[storage.Entry]:
        if not self.exists(path):
            return []
        it = self.fs.listFiles(self.Path(path), True)
        out = []
        while it.hasNext():
            st = it.next()
            out.append(storage.Entry(str(st.getPath().toString()), int(st.getLen())))
        return sorted(out, key=lambda e: e.path)


class FS:
    """File operations on any path: :mod:`pipeline.storage` for local, ``s3://`` and ``https://``
    paths, Hadoop's FileSystem (JVM) for other schemes such as ``hdfs://``."""

    def __init__(self, spark=None, path: str = ""):
        self._spark = spark
        self._hadoop: _HadoopFS | None = None

    def _h(self, path: str) -> _HadoopFS | None:
        if storage.kind(path) != HADOOP:
            return None
        if self._hadoop is None:
            if self._spark is None:
                raise ValueError(f"{path}: this scheme needs Hadoop's FileSystem, i.e. a Spark session")
            self._hadoop = _HadoopFS(self._spark, path)
        return self._hadoop

    def qualify(self, path: str) -> str:
        h = self._h(path)
        return h.qualify(path) if h else storage.normalize(path)

    def exists(self, path: str) -> bool:
        h = self._h(path)
        return h.exists(path) if h else storage.exists(path)

    def delete(self, path: str) -> None:
        h = self._h(path)
        return h.delete(path) if h else storage.delete(path)

    def mkdirs(self, path: str) -> None:
        h = self._h(path)
        return h.mkdirs(path) if h else storage.makedirs(path)

    def rename(self, src: str, dst: str) -> None:
        h = self._h(src)
        return h.rename(src, dst) if h else storage.move(src, dst)

    def write_bytes(self, path: str, data: bytes) -> None:
        h = self._h(path)
        return h.write_bytes(path, data) if h else storage.write_bytes(path, data)

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def read_bytes(self, path: str) -> bytes:
        h = self._h(path)
        return h.read_bytes(path) if h else storage.read_bytes(path)

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def list(self, path: str) -> list[str]:
        """Immediate children of a folder, sorted; [] when it does not exist."""
        h = self._h(path)
        return h.list(path) if h else [e.path for e in storage.list_dir(path)]

    def list_files(self, path: str) -> list[storage.Entry]:
        """Every file under a folder (recursive) with its size, sorted by path."""
        h = self._h(path)
        return h.list_files(path) if h else storage.list_files(path)


# ---------------------------------------------------------------- manifests (the commit record)


def build_manifest(fs: FS, folder: str) -> dict:
    """Every file under ``folder`` (paths relative to it) with its size: the content of ``_SUCCESS``."""
    root = folder.rstrip("/")
    files = []
    for e in fs.list_files(root):
        rel = e.path[len(root) + 1 :] if e.path.startswith(root + "/") else e.path.rsplit("/", 1)[-1]
        if rel != SUCCESS:
            files.append({"path": rel, "size": e.size})
    return {"format": MANIFEST_FORMAT, "files": files}


def read_manifest(fs: FS, output: str) -> dict | None:
    """The manifest in ``OUT/_SUCCESS``; None for an empty marker (outputs made by other tools)."""
    marker = output.rstrip("/") + "/" + SUCCESS
    if not fs.exists(marker):
        raise ValueError(
            f"input {output} has no _SUCCESS: it is not a complete stage output; "
            "rerun the previous stage (or pass its finished OUT directory)"
        )
    text = fs.read_text(marker).strip()
    if not text:
        return None
    try:
        m = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{marker} is neither empty nor a manifest ({e}); rerun the stage that wrote it") from e
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{marker} holds no {MANIFEST_FORMAT} manifest; rerun the stage that wrote it")
    return m


def committed_files(fs: FS, output: str, check: bool = True) -> list[str]:
    """The Parquet files of a finished stage output, exactly as its ``_SUCCESS`` manifest lists them
    (checked against the store: a file missing or of another size means the folder changed after
    its commit). An empty ``_SUCCESS`` falls back to listing the folder's ``*.parquet`` files."""
    root = fs.qualify(output).rstrip("/")
    manifest = read_manifest(fs, root)
    if manifest is None:
        names = [(p.rsplit("/", 1)[-1], None) for p in fs.list(root)]
    else:
        names = [(f["path"], f["size"]) for f in manifest["files"] if "/" not in f["path"]]
    names = [(n, sz) for n, sz in names if n.endswith(".parquet") and not n.startswith(("_", "."))]
    if check and manifest is not None:
        present = {e.path.rsplit("/", 1)[-1]: e.size for e in fs.list_files(root) if e.path.count("/") == root.count("/") + 1}
        for n, sz in names:
            if present.get(n) != sz:
                raise ValueError(
                    f"{root}/{n} is listed in {root}/_SUCCESS with {sz} bytes but the store has "
                    f"{present.get(n)}: the output changed after its commit; rerun the stage that wrote it"
                )
    return [f"{root}/{n}" for n, _ in sorted(names)]


def read_parquet_files(spark, files: list[str]):
    """A DataFrame of these Parquet files. Local and Hadoop paths use Spark's reader; object-store
    and other remote files are read with pyarrow in Python tasks, one task per file."""
    if all(storage.kind(f) in ("local", HADOOP) for f in files):
        return spark.read.parquet(*files)
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema

    with storage.open_input(files[0]) as f:
        schema = pq.read_schema(f)
    sschema = _as_nullable(from_arrow_schema(schema.remove_metadata()))
    reader = _ParquetReader(schema.remove_metadata().serialize().to_pybytes())
    rdd = spark.sparkContext.parallelize([(f,) for f in files], len(files))
    return spark.createDataFrame(rdd, "path string").mapInArrow(reader, sschema)


def read_work(spark, path: str, schema):
    """A work table this job wrote with ``df.write.parquet``, read with the ``StructType`` it was
    written with: Spark then plans the read without a job that infers the schema from the files'
    footers (one Spark job less per read; at a few thousand documents each job costs ~0.3 CPU-s)."""
    return spark.read.schema(_as_nullable(schema)).parquet(path)


def write_work(df, path: str):
    """Write ``df`` as the work table ``path`` (overwriting it) and return it read back with
    :func:`read_work` and ``df``'s own schema: later steps read the stored table, not a re-run of
    ``df``'s plan."""
    df.write.mode("overwrite").parquet(path)
    return read_work(df.sparkSession, path, df.schema)


def _as_nullable(schema):
    """Every field (nested ones too) nullable, as Spark's own Parquet reader makes them, so a stage
    reads the same schema from a bucket as from a local folder."""
    from pyspark.sql.types import StructType

    j = re.sub(r'"(nullable|containsNull|valueContainsNull)":\s*false', r'"\1":true', schema.json())
    return StructType.fromJson(json.loads(j))


class _ParquetReader:
    """mapInArrow function: read the Parquet files named in the ``path`` column, batch by batch,
    through :mod:`pipeline.storage` (retried, resumable reads)."""

    def __init__(self, schema_bytes: bytes):
        self.schema_bytes = schema_bytes

    def __call__(self, batches):
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.ipc.read_schema(pa.py_buffer(self.schema_bytes))
        for b in batches:
            for path in b.column("path").to_pylist():
                with storage.open_input(path) as f:
                    pf = pq.ParquetFile(f)
                    got = pf.schema_arrow.remove_metadata()
                    if not got.equals(schema):
                        raise ValueError(f"{path} has schema {got}, not the dataset's {schema}")
                    for batch in pf.iter_batches(batch_size=4096):
                        yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)


# ---------------------------------------------------------------- the part layout (no shuffle of documents)


@dataclass(frozen=True)
class InputLayout:
    """Where each input row goes: the committed Parquet files of the inputs, sorted by path, split
    into ``parts`` contiguous groups; output part ``p`` holds the rows of the input files ``i`` with
    ``i * parts // len(files) == p``, in file order then row order. The bytes of a stage's output
    thus depend on its input files and config only, never on how Spark cut the work. The default
    ``parts`` is the number of input files (input part ``p`` -> output part ``p``)."""

    files: tuple[str, ...]
    parts: int

    def part_of(self, file_idx: int) -> int:
        return file_idx * self.parts // len(self.files)

    def files_of(self, part: int) -> range:
        n = len(self.files)
        return range(-(-part * n // self.parts), -(-(part + 1) * n // self.parts))


def open_parquet(path: str):
    """A pyarrow ``ParquetFile`` of any input path (local, object store, http, Hadoop schemes)."""
    import pyarrow.parquet as pq

    if storage.kind(path) == HADOOP:
        fs, p = storage.filesystem(path)
        return pq.ParquetFile(fs.open_input_file(p))
    if storage.kind(path) == "local":
        return pq.ParquetFile(storage.normalize(path).removeprefix("file:"))
    return pq.ParquetFile(storage.open_input(path))


def spark_readable(schema):
    """``schema`` with the types Spark's Parquet reader accepts: timestamps in microseconds (Spark's
    own INT96 files read as nanoseconds in pyarrow) with a time zone (UTC for naive INT96 ones)."""
    import pyarrow as pa

    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_timestamp(t) and (t.unit != "us" or t.tz is None):
            t = pa.timestamp("us", tz=t.tz or "UTC")
        fields.append(f.with_type(t))
    return pa.schema(fields)


def conform(batch, schema):
    """``batch`` with the columns of ``schema``, in its order and types (a cast where they differ)."""
    import pyarrow as pa

    cols = []
    for f in schema:
        c = batch.column(f.name)
        cols.append(c if c.type == f.type else c.cast(f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


class _FileRows:
    """mapInArrow function over file indices (one per Spark partition): read ``columns`` of each
    input file in batches of ``batch_rows``, add ``file_idx`` and ``row_idx`` (int32) and pass the
    batches through ``fn`` (itself a mapInArrow-style function)."""

    def __init__(self, files: tuple[str, ...], columns: list[str], fn, batch_rows: int):
        self.files, self.columns, self.fn, self.batch_rows = files, columns, fn, batch_rows

    def batches(self, idx: int):
        import numpy as np
        import pyarrow as pa

        pf = open_parquet(self.files[idx])
        start = 0
        for b in pf.iter_batches(batch_size=self.batch_rows, columns=self.columns):
            n = b.num_rows
            yield pa.RecordBatch.from_arrays(
                [*b.columns, pa.array(np.full(n, idx, np.int32)), pa.array(np.arange(start, start + n, dtype=np.int32))],
                names=[*b.schema.names, "file_idx", "row_idx"],
            )
            start += n

    def __call__(self, batches):
        for batch in batches:
            for idx in batch.column("idx").to_pylist():
                yield from self.fn(self.batches(idx))


class PartTask:
    """Writes output part ``p`` of a :class:`InputLayout` in one task, no shuffle of documents: reads
    the part's input files in batches of ``batch_rows`` (fixed: batch boundaries, and so any
    batch-wise computation, do not depend on Spark), appends the side columns of matching rows
    (``(file_idx, row_idx)`` keyed, e.g. dedup's cluster of a document), calls
    ``transform(batch, totals) -> batch`` (with ``drop_reason``; ``totals`` is a dict of numbers the
    transform may add to), and writes kept rows to ``part-PPPPP.parquet`` and, when asked, dropped
    rows to ``_dropped/part-PPPPP.parquet``. Returns one row ``(part, reasons, totals)`` (JSON)."""

    RESULT_DDL = "part int, reasons string, totals string"

    def __init__(self, layout: InputLayout, transform, in_schema_bytes: bytes, out_schema_bytes: bytes,
                 output_uri: str, dropped_uri: str | None, batch_rows: int, side_cols: tuple[str, ...] = ()):
        self.layout = layout
        self.transform = transform
        self.in_schema_bytes = in_schema_bytes
        self.out_schema_bytes = out_schema_bytes
        self.output_uri = output_uri
        self.dropped_uri = dropped_uri
        self.batch_rows = batch_rows
        self.side_cols = side_cols

    def write(self, part: int, side=None):
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyspark import TaskContext

        tc = TaskContext.get()
        attempt = f"{tc.stageId()}-{tc.attemptNumber()}" if tc else "local"
        in_schema = pa.ipc.read_schema(pa.py_buffer(self.in_schema_bytes))
        out_schema = pa.ipc.read_schema(pa.py_buffer(self.out_schema_bytes))
        kept_schema = out_schema.remove(out_schema.get_field_index(REASON_COL))
        name = f"part-{part:05d}.parquet"
        kept_out = _PartFile(self.output_uri, name, kept_schema, attempt)
        dropped_out = _PartFile(self.dropped_uri, name, out_schema, attempt) if self.dropped_uri else None
        reasons: dict[str, int] = {}
        totals: dict[str, float] = {}
        side_by_file: dict[int, Any] = {}
        if side is not None and side.num_rows:
            side = side.sort_by([("file_idx", "ascending"), ("row_idx", "ascending")])
            fidx = side.column("file_idx").to_numpy()
            for f in np.unique(fidx):
                lo, hi = np.searchsorted(fidx, [f, f + 1])
                side_by_file[int(f)] = side.slice(lo, hi - lo)
        try:
            for file_idx in self.layout.files_of(part):
                path = self.layout.files[file_idx]
                pf = open_parquet(path)
                got = pf.schema_arrow.remove_metadata()
                if not got.equals(in_schema):
                    raise ValueError(f"{path} has schema {got}, not the dataset's {in_schema}; pass outputs of one stage")
                here = side_by_file.pop(file_idx, None)
                rows = here.column("row_idx").to_numpy() if here is not None else None
                start = 0
                for batch in pf.iter_batches(batch_size=self.batch_rows):
                    n = batch.num_rows
                    if self.side_cols:
                        pos = np.full(n, -1, np.int64)
                        if rows is not None:
                            lo, hi = np.searchsorted(rows, [start, start + n])
                            pos[rows[lo:hi] - start] = np.arange(lo, hi)
                        take = pa.array(pos, mask=pos < 0)
                        extra = [(here.column(c).take(take) if here is not None else
                                  pa.nulls(n, side.schema.field(c).type)) for c in self.side_cols]
                        batch = pa.RecordBatch.from_arrays(
                            [*batch.columns, *[e.combine_chunks() if hasattr(e, "combine_chunks") else e for e in extra]],
                            names=[*batch.schema.names, *self.side_cols],
                        )
                    start += n
                    out = conform(self.transform(batch, totals), out_schema)
                    reason = out.column(REASON_COL)
                    for v in pc.value_counts(reason).to_pylist():
                        reasons[str(v["values"]) if v["values"] is not None else ""] = (
                            reasons.get(str(v["values"]) if v["values"] is not None else "", 0) + v["counts"]
                        )
                    keep = pc.is_null(reason)
                    kept_out.write(out.filter(keep).drop_columns([REASON_COL]))
                    if dropped_out is not None:
                        dropped_out.write(out.filter(pc.invert(keep)))
            if side_by_file:
                raise ValueError(f"part {part}: side rows for files {sorted(side_by_file)} outside this part")
            kept_out.close()
            if dropped_out is not None:
                dropped_out.close()
        except BaseException:
            kept_out.abort()
            if dropped_out is not None:
                dropped_out.abort()
            raise
        return pa.RecordBatch.from_pydict({
            "part": pa.array([part], pa.int32()),
            "reasons": pa.array([json.dumps(reasons, sort_keys=True)]),
            "totals": pa.array([json.dumps(totals, sort_keys=True)]),
        })

    def map_fn(self):
        """mapInArrow function over part ids (no side table)."""

        def run(batches):
            for b in batches:
                for part in b.column("part").to_pylist():
                    yield self.write(part)

        return run

    def group_fn(self):
        """applyInArrow function: one part's group (a marker row with null ``file_idx`` + its side rows)."""

        def run(table):
            import pyarrow as pa
            import pyarrow.compute as pc

            part = table.column("part")[0].as_py()
            side = table.filter(pc.is_valid(table.column("file_idx")))
            return pa.Table.from_batches([self.write(part, side)])

        return run


class _PartFile:
    """One Parquet file (zstd) written from a stream of batches in row groups of exactly
    ``ROW_GROUP_ROWS`` rows (the last one fewer), each from one contiguous chunk, so the bytes do not
    depend on how the rows were cut into batches. Where rename exists (local, HDFS) the file is
    written under a hidden name and renamed; in an object store it is written to a local temporary
    file and uploaded whole (a PUT becomes visible whole or not at all)."""

    ROW_GROUP_ROWS = 16384

    def __init__(self, uri: str, name: str, schema, attempt: str):
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        self.uri, self.name, self.schema = uri, name, schema
        self.rename = storage.supports_rename(uri)
        self.fs, root = storage.filesystem(uri)
        self.final = f"{root}/{name}"
        if self.rename:
            self.tmp = f"{root}/.{name}.{attempt}.tmp"
            out_fs = self.fs
        else:
            import tempfile

            fd, self.tmp = tempfile.mkstemp(prefix=f"dots-{name}-", suffix=".parquet")
            os.close(fd)
            out_fs = pafs.LocalFileSystem()
        self.rows = 0
        self._pending: list = []
        self._buffered = 0
        self._out = out_fs.open_output_stream(self.tmp)
        self._writer = pq.ParquetWriter(self._out, schema, compression="zstd")

    def _flush(self, table) -> None:
        self._writer.write_table(table.combine_chunks(), row_group_size=self.ROW_GROUP_ROWS)

    def write(self, batch) -> None:
        import pyarrow as pa

        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        step = self.ROW_GROUP_ROWS
        if self._buffered >= step:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            full = (self._buffered // step) * step
            self._flush(table.slice(0, full))
            rest = table.slice(full)
            self._pending, self._buffered = rest.to_batches(), rest.num_rows

    def close(self) -> None:
        import pyarrow as pa

        if self._buffered:
            self._flush(pa.Table.from_batches(self._pending, schema=self.schema))
        self._writer.close()
        self._out.close()
        if self.rename:
            self.fs.move(self.tmp, self.final)
        else:
            try:
                storage.upload_file(self.tmp, f"{self.uri}/{self.name}")
            finally:
                os.remove(self.tmp)

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - cleanup of a failed attempt; its error is re-raised
            pass
        try:
            if self.rename:
                self.fs.delete_file(self.tmp)
            else:
                os.remove(self.tmp)
        except Exception:  # noqa: BLE001 - idem (a leftover .tmp is removed at commit)
            pass


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
    scratch: str = ""  # where Spark's intermediate tables go when OUT is in an object store

    @property
    def section(self) -> Any:
        return getattr(self.cfg, self.stage)

    def path(self, name: str) -> str:
        """A path inside the staging folder (becomes ``OUT/name`` on commit)."""
        return self.staging.rstrip("/") + "/" + name

    def work_path(self, name: str) -> str:
        """A folder for Spark's own intermediate Parquet (written with ``df.write``): inside the
        staging folder on a local disk or HDFS, under the scratch folder when OUT is in an object
        store (Spark's Hadoop writer cannot reach one). Delete it when done."""
        if storage.supports_rename(self.staging):
            return self.path(name)
        if not self.scratch:
            raise ValueError(
                f"OUT={self.output} is in an object store and the master is not local: set "
                "storage.scratch_dir to a folder every node sees (hdfs://... or a shared mount) "
                "for Spark's intermediate tables"
            )
        return self.scratch.rstrip("/") + "/" + name

    def read_previous(self):
        """Read the previous stage's documents table: only a finished (``_SUCCESS``) output, and
        exactly the Parquet files its manifest lists."""
        files: list[str] = []
        for p in self.inputs:
            files += committed_files(self.fs, p)
        if not files:
            raise ValueError(f"inputs {self.inputs} hold no Parquet files; pass a stage's OUT directory")
        return read_parquet_files(self.spark, files)

    def input_files(self) -> tuple[str, ...]:
        """The committed Parquet files of every input, sorted by path (each once)."""
        files: set[str] = set()
        for p in self.inputs:
            files.update(committed_files(self.fs, p))
        if not files:
            raise ValueError(f"inputs {self.inputs} hold no Parquet files; pass a stage's OUT directory")
        return tuple(sorted(files))

    def input_layout(self, num_files: int | None = None) -> InputLayout:
        """The :class:`InputLayout` of this stage: ``num_files`` output parts (None: one per input file)."""
        files = self.input_files()
        parts = num_files or len(files)
        if parts < 1:
            raise ValueError(f"{self.stage}.num_files={num_files} must be >= 1 (or null: one per input file)")
        return InputLayout(files, parts)

    def input_schema(self, layout: InputLayout, raw: bool = False):
        """The Arrow schema of the input files (the first file's; every task checks its own), in the
        types an output may carry (:func:`spark_readable`; ``raw``: as the files have it)."""
        schema = open_parquet(layout.files[0]).schema_arrow.remove_metadata()
        return schema if raw else spark_readable(schema)

    def read_rows(self, layout: InputLayout, columns: list[str], fn, schema, batch_rows: int = 1024):
        """DataFrame ``fn`` makes of each input file's ``columns`` + ``file_idx``/``row_idx`` (int),
        one Spark task per input file, read with pyarrow in the task (no JVM Parquet reader, no
        row conversion): for key tables whose rows point back at the documents."""
        n = len(layout.files)
        ids = self.spark.range(0, n, 1, n).selectExpr("cast(id as int) as idx")
        return ids.mapInArrow(_FileRows(layout.files, columns, fn, batch_rows), schema)

    def write_parts(self, layout: InputLayout, transform, out_schema, side=None, side_cols: tuple[str, ...] = (),
                    batch_rows: int = 1024, profile=None) -> dict[str, float]:
        """Write the stage output in the :class:`InputLayout` (see :class:`PartTask`) in one Spark
        job; the per-reason counts become the stats. ``side``: a DataFrame ``(file_idx, row_idx,
        *side_cols)`` of per-document values computed by Spark (keys only), shuffled to their part.
        Returns the summed ``totals`` of the transform."""
        import pyarrow as pa
        from pyspark.sql import functions as F

        from udfs.resources import map_in_arrow

        fs = self.fs
        for folder in [self.staging] + ([self.path("_dropped")] if self.keep_dropped else []):
            fs.mkdirs(folder)
        task = PartTask(
            layout, transform,
            self.input_schema(layout, raw=True).serialize().to_pybytes(),
            pa.schema(out_schema).serialize().to_pybytes(),
            fs.qualify(self.staging),
            fs.qualify(self.path("_dropped")) if self.keep_dropped else None,
            batch_rows, tuple(side_cols),
        )
        spark, p = self.spark, layout.parts
        if side is None:
            parts = spark.range(0, p, 1, p).selectExpr("cast(id as int) as part")
            rows = map_in_arrow(parts, task.map_fn(), PartTask.RESULT_DDL, profile).collect()
        else:
            nf = len(layout.files)
            part = F.expr(f"cast((cast(file_idx as bigint) * {p}) div {nf} as int)").alias("part")
            side = side.select("file_idx", "row_idx", *side_cols)
            marks = spark.range(0, p).select(
                F.col("id").cast("int").alias("part"),
                *[F.lit(None).cast(f.dataType).alias(f.name) for f in side.schema.fields],
            )
            grouped = marks.unionByName(side.select(part, *side.columns)).groupBy("part")
            if profile is not None:
                raise ValueError("write_parts: a GPU profile with a side table is not supported")
            rows = grouped.applyInArrow(task.group_fn(), PartTask.RESULT_DDL).collect()
        if sorted(r["part"] for r in rows) != list(range(p)):
            raise RuntimeError(f"{self.stage} wrote parts {sorted(r['part'] for r in rows)}, expected 0..{p - 1}")
        counts: dict[str | None, int] = {}
        totals: dict[str, float] = {}
        for r in sorted(rows, key=lambda r: r["part"]):
            for k, v in json.loads(r["reasons"]).items():
                counts[k or None] = counts.get(k or None, 0) + int(v)
            for k, v in json.loads(r["totals"]).items():
                totals[k] = totals.get(k, 0) + v
        self.stats.add_reasons(counts)
        return totals

    def write_documents(self, df, num_files: int | None = None, sort_col: str = "doc_id") -> None:
        """Write a DataFrame computed by Spark (with a nullable ``drop_reason`` column) as the stage
        output, for outputs that do not follow an input layout (:meth:`write_parts` does for the
        documents stages).

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
    path = fs.qualify(path)
    # The schema an empty partition writes: the same conversion Spark applies to Arrow batches.
    schema = to_arrow_schema(
        df.schema,
        timezone=spark.conf.get("spark.sql.session.timeZone", "UTC"),
        prefers_large_types=spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true",
    )
    schema_bytes = schema.serialize().to_pybytes()
    writer = _PartWriter(path, schema_bytes)
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
        import pyarrow.parquet as pq

        pfs, root = storage.filesystem(path)
        for pid in missing:
            with pfs.open_output_stream(f"{root}/part-{pid:05d}.parquet") as out:
                pq.ParquetWriter(out, schema, compression="zstd").close()


class _PartWriter:
    """mapInArrow function: write this partition's batches as one Parquet file (zstd).

    Row groups hold exactly ``ROW_GROUP_ROWS`` rows (the last one fewer) and each is written from
    one contiguous chunk, so the bytes do not depend on how Spark cut the Arrow batches. Where
    rename exists (local, HDFS) the file is written under a hidden name and renamed; in an object
    store it goes straight to its final key (a PUT becomes visible whole or not at all)."""

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
        fs, root = storage.filesystem(self.uri)
        final = f"{root}/part-{pid:05d}.parquet"
        rename = storage.supports_rename(self.uri)
        if rename:
            tmp = f"{root}/.part-{pid:05d}.parquet.{tc.stageId()}-{tc.attemptNumber()}.tmp"
        else:  # object store: a local file, uploaded whole once complete
            import tempfile

            fs_out = pafs.LocalFileSystem()
            fd, tmp = tempfile.mkstemp(prefix=f"dots-part-{pid:05d}-", suffix=".parquet")
            os.close(fd)
        rows = 0
        writer = None
        pending: list = []
        buffered = 0
        step = self.ROW_GROUP_ROWS

        def flush(table):
            writer.write_table(table.combine_chunks(), row_group_size=step)

        with (fs if rename else fs_out).open_output_stream(tmp) as out:
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
        if rename:
            fs.move(tmp, final)
        else:
            try:
                storage.upload_file(tmp, f"{self.uri}/part-{pid:05d}.parquet")
            finally:
                os.remove(tmp)
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
    return FS(spark, output).exists(output.rstrip("/") + "/" + SUCCESS)


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
    """Run one stage and commit its output (module docstring). Returns its stats dict (None when
    skipped)."""
    forward_aws_env(spark)
    fs = FS(spark, output)
    output = fs.qualify(output).rstrip("/")
    success = output + "/" + SUCCESS
    if fs.exists(success) and not overwrite:
        print(f"[{stage}] {output} is complete (_SUCCESS); skipping (use --overwrite to recompute)")
        try:
            return json.loads(fs.read_text(output + "/_stats.json"))
        except Exception:  # noqa: BLE001 - stats are informative only when skipping
            return None
    in_place = not storage.supports_rename(output)
    scratch = ""
    if in_place:
        # No rename in an object store: the marker goes first (from now on no reader or resumed run
        # takes OUT for finished), then every key of the earlier run, finished or crashed.
        fs.delete(success)
        fs.delete(output)
        staging = output
        scratch = _scratch_folder(spark, cfg, stage, output)
    else:
        staging = output + f".__staging-{uuid.uuid4().hex[:8]}"
        # A hard-killed earlier run may have left its staging folder: never read, removed here.
        for old in fs.list(output.rsplit("/", 1)[0]):
            if old.rsplit("/", 1)[-1].startswith(output.rsplit("/", 1)[-1] + ".__staging-"):
                fs.delete(old)
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
        scratch=scratch,
    )
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
        manifest = build_manifest(fs, staging)  # paths relative to the folder: valid after the rename
        if not in_place:
            # Replace OUT by the staging folder in one rename.
            fs.delete(output)
            fs.rename(staging, output)
        # Last: the marker, holding the manifest readers go by.
        fs.write_text(success, json.dumps(manifest, indent=1, sort_keys=True))
    except BaseException:
        try:
            fs.delete(staging)  # in place: the partial output (a later run would delete it anyway)
        except Exception as e:  # noqa: BLE001 - cleanup only; the stage's own error is re-raised
            print(f"[{stage}] could not remove the partial output {staging}: {e}", file=sys.stderr)
        raise
    finally:
        if scratch and fs.exists(scratch):
            fs.delete(scratch)
    stats = ctx.stats.to_dict()
    print(format_funnel([stats]))
    return stats


def _scratch_folder(spark, cfg: PipelineConfig, stage: str, output: str) -> str:
    """Folder for Spark's intermediate tables of a stage whose OUT is in an object store."""
    import tempfile

    root = cfg.storage.scratch_dir
    if root:
        return root.rstrip("/") + f"/{output.rsplit('/', 1)[-1]}.__work-{uuid.uuid4().hex[:8]}"
    if spark.sparkContext.master.startswith("local"):
        base = spark.conf.get("spark.local.dir", None) or tempfile.gettempdir()
        return os.path.join(base.split(",")[0], f"dots-{stage}-work-{uuid.uuid4().hex[:8]}")
    return ""


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
