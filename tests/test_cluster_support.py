"""Helpers shared by the cluster, determinism and resume tests (no tests of its own).

* :func:`sample_crawl` — a small generated WARC (``pipeline.prepare.samplegen`` when present,
  else a tiny synthetic crawl written with warcio), one per test session;
* :func:`run_pipeline` — ``python -m jobs.pipeline`` in a subprocess with its own master / shuffle
  partitions (``PYSPARK_SUBMIT_ARGS``), so several JVM set-ups can be compared;
* :func:`reference_run` — the local-mode run every other run is compared to (cached per session);
* :class:`StandaloneCluster` — a Spark master and workers from the pyspark installation on
  127.0.0.1, random free ports, own work/log folders, every process stopped by its process group;
* :func:`output_digest` / :func:`assert_same_output` — byte comparison of two run folders.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VPY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
STAGES = ["prepare", "clean", "dedup", "filter", "balance", "tokenize"]
PROFILE = "tests"  # every compared run uses this profile: it fixes the output file count
# Per-record slowdown (pipeline.faults) so kills land while a stage is running; output is unaffected.
FAULT_DELAY_S = "0.02"
# Files of a run folder that legitimately differ between runs (timings, rendered report).
_VOLATILE = {"_SUCCESS", "_funnel.json", "report.html"}

_CACHE: dict[str, object] = {}


def present_stages() -> list[str]:
    """The stages whose job module exists, in pipeline order (the final version has all six).

    ``DOTS_TEST_STAGES=prepare,clean`` narrows it (while developing a stage)."""
    wanted = [s for s in os.environ.get("DOTS_TEST_STAGES", "").split(",") if s]
    return [s for s in STAGES if (REPO / "jobs" / f"{s}.py").exists() and (not wanted or s in wanted)]


def require_stages() -> list[str]:
    stages = present_stages()
    if not stages or stages[0] != "prepare":
        pytest.skip(f"jobs/prepare.py is absent (stages present: {stages}): nothing to run end to end")
    return stages


# ---------------------------------------------------------------- sample crawl

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no what can more out up about "
    "into them some could time these two may then do first any my now such like our over man me even most "
    "made after also did many before must through back years where much your way well down should because "
    "each just those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three river garden market winter bridge village music teacher"
).split()


def _synthetic_page(rng: random.Random, i: int) -> tuple[str, bytes]:
    paras = []
    for _ in range(rng.randint(4, 7)):
        sents = []
        for _ in range(rng.randint(3, 6)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 18))]
            sents.append(" ".join(words).capitalize() + ".")
        paras.append("<p>" + " ".join(sents) + "</p>")
    title = f"Notes from the village, part {i}"
    html = (
        f"<!doctype html><html><head><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>{''.join(paras)}</article>"
        f"<footer>Copyright 2024 example site. All rights reserved.</footer></body></html>"
    )
    return f"http://site{i % 7}.example.org/post/{i}", html.encode("utf-8")


def write_tiny_warc(path: Path, n: int = 60, seed: int = 7) -> Path:
    """A synthetic English crawl of ``n`` pages (a few exact duplicates) written with warcio."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    pages = [_synthetic_page(rng, i) for i in range(n)]
    pages += [(u.replace("/post/", "/copy/"), b) for u, b in pages[:5]]  # exact duplicates
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, (url, body) in enumerate(pages):
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            rec = w.create_warc_record(
                url,
                "response",
                payload=BytesIO(body),
                http_headers=http,
                warc_headers_dict={"WARC-Date": f"2024-01-{1 + i % 28:02d}T00:00:00Z"},
            )
            w.write_record(rec)
    return path


def sample_crawl(base: Path) -> Path:
    """The session's sample crawl: a folder of two WARC files (two prepare tasks), written by
    ``pipeline.prepare.samplegen`` (seeds 0 and 1) when present, else synthetic pages."""
    if "sample" in _CACHE:
        return _CACHE["sample"]  # type: ignore[return-value]
    out = base / "sample"
    for seed in (0, 1):
        warc = out / f"sample-{seed}.warc.gz"
        if importlib.util.find_spec("pipeline.prepare.samplegen") is not None:
            subprocess.run(
                [VPY, "-m", "pipeline.prepare.samplegen", "--output", str(warc), "--seed", str(seed),
                 "--n-articles", "42"],
                cwd=REPO,
                env=_env(),
                check=True,
                timeout=300,
                capture_output=True,
            )
        else:
            write_tiny_warc(warc, n=40, seed=seed)
    _CACHE["sample"] = out
    return out


def warc_urls(path: Path) -> list[str]:
    """Response URLs of a WARC, read until the first unreadable record (samples end in garbage)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    urls = []
    with path.open("rb") as f:
        try:
            for r in ArchiveIterator(f):
                u = r.rec_headers.get_header("WARC-Target-URI")
                if r.rec_type == "response" and u:
                    urls.append(u)
        except ArchiveLoadFailed:
            pass
    return urls


def fault_url(sample: Path) -> str:
    """One URL of the sample that the fault hook makes raise: a page prepare would keep, unique in
    the crawl (from samplegen's manifest when there is one)."""
    files = sorted(sample.glob("*.warc.gz"))
    urls = [u for f in files for u in warc_urls(f)]
    manifest = files[0].with_name(files[0].name.replace(".warc.gz", ".manifest.json"))
    candidates = urls[len(urls) // 3 :]
    if manifest.exists():
        recs = json.loads(manifest.read_text())["records"]
        candidates = [r["url"] for r in recs if r.get("expect") == "kept" and r.get("url")][5:]
    for u in candidates:
        if sum(u in v for v in urls) == 1:
            return u
    raise AssertionError(f"no unique URL in {sample}")


# ---------------------------------------------------------------- local runs


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        PYSPARK_PYTHON=VPY,
        PYSPARK_DRIVER_PYTHON=VPY,
        SPARK_LOCAL_IP="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    env.update(extra)
    return env


def fault_env(sample: Path) -> dict[str, str]:
    return {"DOTS_FAULT_INJECT": fault_url(sample), "DOTS_FAULT_DELAY_S": FAULT_DELAY_S}


def pipeline_cmd(sample: Path, out: Path, stages: list[str], report: bool = False) -> list[str]:
    cmd = ["--input", str(sample), "--output", str(out), "--set", f"spark.profile={PROFILE}"]
    cmd += ["--stages", ",".join(stages)]
    return cmd + ([] if report else ["--no-report"])


def start_pipeline(
    sample: Path,
    out: Path,
    stages: list[str],
    log: Path,
    master: str = "local[2]",
    shuffle_partitions: int | None = None,
    report: bool = False,
) -> subprocess.Popen:
    """``python -m jobs.pipeline`` in its own process group (so a test can kill it and its JVM)."""
    submit = f"--master {master} --driver-memory 1g"
    if shuffle_partitions:
        submit += f" --conf spark.sql.shuffle.partitions={shuffle_partitions}"
        submit += f" --conf spark.default.parallelism={shuffle_partitions}"
    env = _env(PYSPARK_SUBMIT_ARGS=submit + " pyspark-shell", **fault_env(sample))
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [VPY, "-m", "jobs.pipeline", *pipeline_cmd(sample, out, stages, report)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ok(proc: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"run timed out after {timeout}s; log tail:\n{tail(log)}") from None
    text = log.read_text(errors="replace")
    assert rc == 0, f"run failed (rc={rc}); log tail:\n{tail(log)}"
    return text


def tail(log: Path, n: int = 60) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Kill the process group that ``proc`` leads (it was started with start_new_session=True)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def reference_run(tmp_path_factory) -> Path:
    """The local-mode run (local[2], profile ``tests``) that other runs must reproduce byte for byte."""
    if "ref" in _CACHE:
        return _CACHE["ref"]  # type: ignore[return-value]
    stages = require_stages()
    base = tmp_path_factory.mktemp("ref")
    sample = sample_crawl(tmp_path_factory.getbasetemp())
    out = base / "run"
    proc = start_pipeline(sample, out, stages, base / "log.txt", report=True)
    wait_ok(proc, base / "log.txt")
    _CACHE["ref"] = out
    return out


# ---------------------------------------------------------------- comparing runs


def output_digest(run_dir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every output file of a run, timings left out.

    ``_stats.json`` is compared without ``seconds``; staging leftovers, ``_SUCCESS`` and the report
    are skipped."""
    out: dict[str, str] = {}
    for p in sorted(run_dir.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(run_dir).as_posix()
        if (
            ".__staging-" in rel
            or p.name in _VOLATILE
            or p.name.endswith(".crc")
            or rel.startswith("report/")
        ):
            continue
        data = p.read_bytes()
        if p.name == "_stats.json":
            data = json.dumps(_drop_timings(json.loads(data)), sort_keys=True).encode()
        elif p.suffix == ".parquet" and _written_by_parquet_mr(p):
            data = parquet_canonical_bytes(p, data)  # pyarrow-written files are compared raw
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def _drop_timings(obj):
    """A stats dict without wall-clock figures (any key containing 'seconds', at any depth)."""
    if isinstance(obj, dict):
        return {k: _drop_timings(v) for k, v in obj.items() if "seconds" not in k}
    return obj


def _written_by_parquet_mr(path: Path) -> bool:
    import pyarrow.parquet as pq

    return (pq.ParquetFile(path).metadata.created_by or "").startswith("parquet-mr")


def parquet_canonical_bytes(path: Path, data: bytes) -> bytes:
    """Every byte of a Parquet file, except that each column chunk's ``encodings`` list is sorted.

    parquet-mr (Spark's writer) fills that footer list from a ``HashSet<Encoding>``; Java enums hash
    by identity, which differs from one JVM to the next, so the *order* of that set (e.g.
    ``[BIT_PACKED, RLE, PLAIN]`` vs ``[RLE, PLAIN, BIT_PACKED]``) is the only thing that varies
    between two JVMs writing the same rows. Data pages, statistics, offsets and everything else in the
    footer are compared exactly: the data region byte for byte, the footer through pyarrow's full
    metadata dump with those lists sorted."""
    import pyarrow.parquet as pq

    footer_len = int.from_bytes(data[-8:-4], "little")
    body = data[: len(data) - 8 - footer_len]
    md = pq.ParquetFile(path).metadata
    meta = md.to_dict()
    for rg in meta.get("row_groups", []):
        for col in rg.get("columns", []):
            if isinstance(col.get("encodings"), (list, tuple)):
                col["encodings"] = sorted(col["encodings"])
    canon = {
        "meta": meta,
        "kv": {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (md.metadata or {}).items()},
        "schema": md.schema.to_arrow_schema().to_string(show_schema_metadata=False),
        "footer_len": footer_len,
    }
    return body + json.dumps(canon, sort_keys=True, default=str).encode()


def assert_same_output(a: Path, b: Path) -> None:
    da, db = output_digest(a), output_digest(b)
    assert da, f"{a} holds no output files"
    only_a = sorted(set(da) - set(db))
    only_b = sorted(set(db) - set(da))
    differ = sorted(k for k in set(da) & set(db) if da[k] != db[k])
    assert not (only_a or only_b or differ), (
        f"outputs differ: only in {a.name}: {only_a[:10]}; only in {b.name}: {only_b[:10]}; "
        f"different bytes: {differ[:20]}"
    )


def stage_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name[:2].isdigit() and "__staging" not in p.name)


# ---------------------------------------------------------------- standalone cluster


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    assert spec and spec.origin, "pyspark is not installed in this interpreter"
    return Path(spec.origin).parent


class StandaloneCluster:
    """A Spark standalone master + ``workers`` workers on 127.0.0.1 (``bin/spark-class``).

    Each daemon runs in its own process group, so :meth:`kill_worker` and :meth:`stop` end the
    worker together with the executors and Python workers it launched — and nothing else."""

    def __init__(self, base: Path, workers: int = 2, cores: int = 1, memory: str = "1g", fake_gpus: int = 0):
        self.base = base
        self.fake_gpus = fake_gpus
        self.n_workers = workers
        self.cores = cores
        self.memory = memory
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = free_port()
        self.webui = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.conf_dir = base / "conf"  # empty: no site spark-defaults / log4j from the machine
        self.conf_dir.mkdir(parents=True, exist_ok=True)

    def _env(self) -> dict[str, str]:
        return _env(
            SPARK_HOME=str(spark_home()),
            SPARK_CONF_DIR=str(self.conf_dir),
            SPARK_LOG_DIR=str(self.base / "logs"),
            SPARK_DAEMON_MEMORY="384m",
            SPARK_NO_DAEMONIZE="1",
            SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
        )

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = self.base / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.procs[name] = subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args],
            env=env,
            cwd=self.base,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui}/json/", timeout=5) as r:
            return json.loads(r.read())

    def _wait(self, what: str, cond, timeout: float = 180) -> None:
        t0 = time.time()
        last = None
        while time.time() - t0 < timeout:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise AssertionError(f"{name} exited (rc={p.returncode}):\n{tail(self.base / 'logs' / f'{name}.log')}")
            try:
                if cond():
                    return
            except OSError as e:  # UI not up yet
                last = e
            time.sleep(1)
        raise AssertionError(f"cluster: timed out waiting for {what} ({last})")

    def start(self) -> StandaloneCluster:
        env = self._env()
        self._spawn(
            "master",
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.port),
             "--webui-port", str(self.webui)],
            env,
        )
        self._wait("the master", lambda: self.status().get("status") == "ALIVE")
        worker_opts = ""
        if self.fake_gpus:
            # Each worker announces GPUs through a discovery script (addresses 0..n-1): enough to
            # exercise Spark's resource scheduling without a GPU.
            script = self.base / "fake_gpus.sh"
            addrs = ", ".join(f'"{i}"' for i in range(self.fake_gpus))
            script.write_text(f"#!/bin/sh\necho '{{\"name\": \"gpu\", \"addresses\": [{addrs}]}}'\n")
            script.chmod(0o755)
            worker_opts = (
                f"-Dspark.worker.resource.gpu.amount={self.fake_gpus} "
                f"-Dspark.worker.resource.gpu.discoveryScript={script}"
            )
        for i in range(self.n_workers):
            wenv = dict(env, SPARK_WORKER_DIR=str(self.worker_dir(i)), SPARK_WORKER_OPTS=worker_opts)
            self._spawn(
                f"worker{i}",
                ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(free_port()),
                 "--webui-port", str(free_port()), "--cores", str(self.cores), "--memory", self.memory,
                 "--work-dir", str(self.worker_dir(i)), self.url],
                wenv,
            )
        self._wait(
            f"{self.n_workers} workers",
            lambda: sum(w.get("state") == "ALIVE" for w in self.status().get("workers", [])) == self.n_workers,
        )
        return self

    def worker_dir(self, i: int) -> Path:
        return self.base / f"worker{i}"

    def executor_logs(self, i: int) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.worker_dir(i).glob("app-*/*/stderr")))

    def kill_worker(self, i: int) -> None:
        kill_group(self.procs[f"worker{i}"])

    def stop(self) -> None:
        for name in sorted(self.procs, reverse=True):  # workers first, then the master
            p = self.procs[name]
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            kill_group(p)

    def __enter__(self) -> StandaloneCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
