"""Build the JVM class archive (AppCDS) that the ``local`` Spark profile names, so a local job's
driver JVM maps Spark's classes from it instead of loading and verifying them one by one.

    python -m jobs.jvm_archive            # writes out/jvm/spark-classes.jsa (the profile's path)

It runs a ``prepare`` job on a small generated WARC with ``-XX:ArchiveClassesAtExit``, so the
archive holds the classes a stage job loads, and renames the archive into place when the JVM has
exited. The JVM ignores an archive that does not match its Java version or class path (a warning,
no failure), so a stale one costs nothing but the start-up it would have saved; rerun this after
upgrading Java or pyspark.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from pipeline.config import REPO_ROOT, load_config

_ARCHIVE_RE = re.compile(r"-XX:SharedArchiveFile=(\S+)")


def archive_path(java_options: str) -> str | None:
    m = _ARCHIVE_RE.search(java_options)
    return m.group(1) if m else None


def _adopt_orphans() -> None:
    """The driver's JVM outlives it and writes the archive as it exits: adopt orphaned descendants
    (Linux child subreaper) so they can be waited for."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="jobs.jvm_archive", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--profile", default="local", help="Spark profile whose extraJavaOptions name the archive"
    )
    a = ap.parse_args(argv)
    cfg = load_config(overrides=[f"spark.profile={a.profile}"])
    opts = cfg.spark.settings().get("spark.driver.extraJavaOptions", "")
    target = archive_path(opts)
    if not target:
        raise SystemExit(
            f"profile {a.profile!r} names no -XX:SharedArchiveFile in spark.driver.extraJavaOptions"
        )
    final = Path(target) if os.path.isabs(target) else REPO_ROOT / target
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    dump_opts = _ARCHIVE_RE.sub(f"-XX:ArchiveClassesAtExit={tmp}", opts)
    from pipeline.prepare.samplegen import generate

    with tempfile.TemporaryDirectory() as d:
        generate(f"{d}/sample.warc.gz", seed=1, n_articles=42)
        env = {
            **os.environ,
            "PYSPARK_SUBMIT_ARGS": f"--conf {shlex.quote('spark.driver.extraJavaOptions=' + dump_opts)} pyspark-shell",
            "DOTS_PROGRESS_S": "0",
        }
        cmd = [sys.executable, "-m", "jobs.prepare", "--input", f"{d}/sample.warc.gz", "--output", f"{d}/out"]
        cmd += ["--set", f"spark.profile={a.profile}"]
        _adopt_orphans()
        proc = subprocess.run(cmd, cwd=str(REPO_ROOT), env=env, capture_output=True, text=True)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"building the class archive failed ({proc.returncode}): {proc.stderr[-2000:]}")
    tmp.replace(final)
    print(f"[jvm_archive] {final} ({final.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
