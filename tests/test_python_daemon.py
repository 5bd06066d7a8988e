"""jobs.python_daemon drops from sys.path only the zips that ship inside the installed pyspark."""

from __future__ import annotations

from pathlib import Path

from jobs.python_daemon import bundled_zips


def _package(root: Path, name: str) -> Path:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    return pkg


def _zips(lib: Path) -> tuple[str, str]:
    lib.mkdir(parents=True, exist_ok=True)
    a, b = lib / "pyspark.zip", lib / "py4j-0.10.9.9-src.zip"
    a.write_bytes(b"")
    b.write_bytes(b"")
    return str(a), str(b)


def test_zips_of_the_installed_package_are_dropped(tmp_path):
    site = tmp_path / "site"
    pkg = _package(site, "pyspark")
    _package(site, "py4j")
    zp, z4 = _zips(pkg / "python" / "lib")
    assert bundled_zips([zp, z4, str(site)]) == [zp, z4]


def test_py4j_zip_kept_without_an_installed_py4j(tmp_path):
    site = tmp_path / "site"
    pkg = _package(site, "pyspark")
    zp, z4 = _zips(pkg / "python" / "lib")
    assert bundled_zips([zp, z4, str(site)]) == [zp]


def test_a_spark_distribution_is_left_alone(tmp_path):
    # SPARK_HOME/python/lib zips with no pyspark package outside them: nothing to import instead.
    zp, z4 = _zips(tmp_path / "spark" / "python" / "lib")
    assert bundled_zips([zp, z4, str(tmp_path / "site")]) == []
    # A pyspark package elsewhere (another version) does not make SPARK_HOME's zips redundant.
    _package(tmp_path / "site", "pyspark")
    assert bundled_zips([zp, z4, str(tmp_path / "site")]) == []
