"""Spark's Python daemon (``spark.python.daemon.module``) importing pyspark from the installed
package instead of the zip Spark puts first on the workers' ``PYTHONPATH``.

Spark starts its Python daemon (which forks the Python workers) with
``SPARK_HOME/python/lib/pyspark.zip`` and ``py4j-*.zip`` ahead of everything else on the path.
Python cannot cache bytecode for modules imported from a zip, so the daemon and every worker
compile pyspark's sources again: ~0.5 CPU-s in the daemon and as much again in a worker, per
job. When pyspark is pip-installed, those zips are the ones inside the installed package, the
same code as the package itself; this module then drops them from ``sys.path`` (so the imports
use the package and its ``.pyc`` files) and runs ``pyspark.daemon``. With any other layout
(a Spark distribution whose zips are not part of an installed pyspark package) it changes nothing.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys


def _installed_dir(name: str, path: list[str]) -> str | None:
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.realpath(list(spec.submodule_search_locations)[0])


def bundled_zips(path: list[str]) -> list[str]:
    """The entries of ``path`` that are the pyspark / py4j zips shipped inside the pyspark package
    that ``path`` also holds outside any zip (empty when there is no such package)."""
    plain = [p for p in path if not p.endswith(".zip")]
    pkg = _installed_dir("pyspark", plain)
    if pkg is None:
        return []
    lib = os.path.join(pkg, "python", "lib")
    has_py4j = _installed_dir("py4j", plain) is not None
    out = []
    for p in path:
        if not p.endswith(".zip") or os.path.dirname(os.path.realpath(p)) != lib:
            continue
        name = os.path.basename(p)
        if name == "pyspark.zip" or (name.startswith("py4j-") and has_py4j):
            out.append(p)
    return out


def main() -> None:
    for p in bundled_zips(sys.path):
        sys.path.remove(p)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
