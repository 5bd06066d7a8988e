"""The fused grouped-GEMM kernels' logic on CPU, under Triton's interpreter (TRITON_INTERPRET=1).

The GPU tests (test_grouped_gemm_gpu.py) run only through the device tool. The cases in
tests/kernels_interpreter_cases.py run the same kernels on CPU tensors in Triton's interpreter, so
that the row-group bookkeeping is checked on any machine with Triton: the tile table and lookup, grid
and persistent loops (1 and 3 programs), half-height tail tiles at every boundary, empty experts,
the weight-gradient kernels (plain and transposed), and which config a launch picks (first config,
tuned table, autotuning). What they cannot cover: the interpreter has no TMA (CPU tensors take the
masked-pointer path, so the TMA epilogues, split ones included, are GPU-tested only), its bf16
emulation is wrong (the cases compute in fp16), and it says nothing about speed.

Triton picks interpreted or compiled functions when they are defined, its own language helpers
included, so the cases run in a child pytest process started with TRITON_INTERPRET=1. Needs Triton
and numpy < 2.4 (Triton 3.6's interpreter converts 1-element arrays with ``int()``, which numpy 2.4
refuses): ``make check-kernels`` installs both into ``.kernels-check/``; elsewhere this skips and says
which is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="needs Triton (make check-kernels installs it into .kernels-check/)")
import numpy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_under_the_interpreter():
    if tuple(int(p) for p in numpy.__version__.split(".")[:2]) >= (2, 4):
        pytest.skip(f"Triton 3.6's interpreter needs numpy < 2.4, this is {numpy.__version__} "
                    "(make check-kernels puts numpy 2.3 into .kernels-check/)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
         "tests/kernels_interpreter_cases.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    tail = run.stdout[-8000:] + run.stderr[-4000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1], tail
