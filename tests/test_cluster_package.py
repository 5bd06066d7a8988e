"""`make package` / `make submit` artifacts, without a cluster (no JVM)."""

from __future__ import annotations

import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.test_cluster_support import REPO, VPY

MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dist")
    subprocess.run([*MAKE, "package", f"DIST={d}", "PACK_ENV=0"], cwd=REPO, check=True, capture_output=True)
    return d


def test_package_zip_holds_code_and_conf(dist: Path) -> None:
    names = zipfile.ZipFile(dist / "dots_data.zip").namelist()
    for must in ("pipeline/config.py", "jobs/common.py", "jobs/pipeline.py", "pipeline/faults.py", "conf/defaults/spark.yaml"):
        assert must in names, f"{must} missing from dots_data.zip"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert (dist / "conf" / "defaults" / "spark.yaml").is_file()
    assert "runpy.run_module" in (dist / "launch.py").read_text()
    assert not (dist / "environment.tar.gz").exists(), "PACK_ENV=0 must not leave an environment archive"


def _python_from_zip(zip_path: Path, cwd: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DOTS_HOME")}
    e.update(PYTHONPATH=str(zip_path), **env)
    return subprocess.run([VPY, "-c", code], cwd=cwd, env=e, capture_output=True, text=True)


def test_config_from_zip_finds_shipped_conf(dist: Path, tmp_path: Path) -> None:
    """On a node the code is imported from the zip; conf/ comes from ./dots_data (the archive)."""
    node = tmp_path / "node"
    (node / "dots_data").mkdir(parents=True)
    zipfile.ZipFile(dist / "dots_data.zip").extractall(node / "dots_data")
    code = "from pipeline.config import REPO_ROOT, default_mapping; print(REPO_ROOT); print(sorted(default_mapping()))"
    r = _python_from_zip(dist / "dots_data.zip", node, code)
    assert r.returncode == 0, r.stderr
    root, keys = r.stdout.splitlines()
    assert Path(root) == (node / "dots_data").resolve()
    assert "spark" in keys and "seed" in keys


def test_config_from_zip_without_conf_fails_loudly(dist: Path, tmp_path: Path) -> None:
    r = _python_from_zip(dist / "dots_data.zip", tmp_path, "from pipeline.config import default_mapping; default_mapping()")
    assert r.returncode != 0
    assert "DOTS_HOME" in r.stderr  # the error names the fix
    r = _python_from_zip(
        dist / "dots_data.zip", tmp_path, "from pipeline.config import default_mapping; print(len(default_mapping()))",
        DOTS_HOME=str(dist),
    )
    assert r.returncode == 0 and int(r.stdout) > 0, r.stderr


def test_submit_requires_package(tmp_path: Path) -> None:
    r = subprocess.run([*MAKE, "submit", f"DIST={tmp_path}"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0 and "make package" in r.stderr


def test_submit_command_line(dist: Path) -> None:
    """Client mode ships the zip as --py-files and as ./dots_data; the env archive switches Python."""
    r = subprocess.run(
        [*MAKE, "-n", "submit", f"DIST={dist}", "MASTER=spark://h:7077", "JOB=clean", "ARGS=--input a --output b"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    cmd = r.stdout
    assert f"--py-files {dist}/dots_data.zip" in cmd and f"{dist}/dots_data.zip\\#dots_data" in cmd
    assert f"{dist}/launch.py jobs.clean --input a --output b" in cmd and "spark.pyspark.python" not in cmd
    (dist / "environment.tar.gz").write_bytes(b"")
    try:
        r = subprocess.run(
            [*MAKE, "-n", "submit", f"DIST={dist}", "MASTER=yarn", "DEPLOY_MODE=cluster"],
            cwd=REPO, capture_output=True, text=True, check=True,
        )
    finally:
        (dist / "environment.tar.gz").unlink()
    assert "environment.tar.gz\\#environment" in r.stdout
    assert "spark.pyspark.python=./environment/bin/python" in r.stdout
    assert "spark.pyspark.driver.python=./environment/bin/python" in r.stdout


def test_venv_pack_archive_runs_relocated(tmp_path: Path) -> None:
    """venv-pack (what `make package` uses) gives an archive whose bin/python runs from any folder.

    Packs a small slice of .venv (pyyaml) to stay fast; the interpreter itself is a link to the
    base Python, which is the caveat docs/CLUSTER.md explains."""
    venv = REPO / ".venv"
    if not (venv / "bin" / "venv-pack").exists():
        pytest.skip(".venv/bin/venv-pack is absent (pip install venv-pack==0.2.0)")
    arch = tmp_path / "env.tar.gz"
    subprocess.run(
        [str(venv / "bin" / "venv-pack"), "-p", str(venv), "-o", str(arch), "-q", "--exclude", "*",
         "--include", "bin/*", "--include", "pyvenv.cfg", "--include", "lib/python3*/site-packages/yaml/*"],
        check=True,
    )
    target = tmp_path / "somewhere" / "environment"
    target.mkdir(parents=True)
    with tarfile.open(arch) as t:
        t.extractall(target, filter="fully_trusted")
    r = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import sys, yaml; print(sys.prefix); print(yaml.__file__)"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    prefix, yaml_file = r.stdout.splitlines()
    assert Path(prefix) == target and yaml_file.startswith(str(target))
    assert os.path.islink(target / "bin" / "python3"), "venv-pack keeps python as a link to the base interpreter"
