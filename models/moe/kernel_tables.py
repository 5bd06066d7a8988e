"""Tuned tile-config tables for the fused grouped-GEMM kernels (no Triton needed to read or write them).

A table maps a kernel launch (kernel, M bucket, shapes, variant) to the name of the tile config that
``bench/grouped_gemm_sweep.py --write-table`` measured fastest on one GPU model, e.g.::

    {"device": "NVIDIA H100 80GB HBM3",
     "configs": {"mgrouped b_kmajor=0 e=128 k=4096 m_bucket=131072 n=1408 swiglu_bwd=1":
                 {"config": "128x256x64 w8 s3 pers split2", "tflops": 498.0, "measured": "..."}}}

Tables live in ``conf/moe/kernels/<device>.json`` (the device name as torch reports it, lowercased,
runs of other characters as ``_``). ``models.moe.kernels`` launches a listed config directly and
autotunes only launches the table does not list: the pick is the same from run to run (autotuning
picks among candidates a few percent apart, and its picks moved between runs) and the trainer starts
without tuning those kernels. The same idea as vLLM's per-device fused-MoE config files.

``DOTS_GG_TUNED``: unset, empty or ``1``: the current device's table if there is one; ``0``: no
table (autotune everything); anything else: the path of a table file to use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

TABLE_DIR = Path(__file__).resolve().parents[2] / "conf" / "moe" / "kernels"


def device_slug(device_name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``nvidia_h100_80gb_hbm3``."""
    slug = re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_")
    if not slug:
        raise ValueError(f"device name {device_name!r} gives an empty table name")
    return slug


def default_path(device_name: str) -> Path:
    return TABLE_DIR / f"{device_slug(device_name)}.json"


def table_key(kernel: str, **dims: int) -> str:
    """The launch key: kernel name, then ``name=value`` for every shape and variant dimension, sorted."""
    if not re.fullmatch(r"[a-z_0-9]+", kernel):
        raise ValueError(f"kernel name {kernel!r}: lowercase letters, digits and _")
    return " ".join([kernel] + [f"{k}={int(v)}" for k, v in sorted(dims.items())])


def _load(path: Path) -> dict:
    """A table file's whole content, validated; errors name the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"kernel config table {path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("configs"), dict):
        raise ValueError(f"kernel config table {path}: expected an object with a 'configs' object")
    for key, entry in data["configs"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), str):
            raise ValueError(f"kernel config table {path}: entry {key!r} needs a 'config' name string")
    return data


def read_table(path: Path) -> dict[str, dict]:
    """The ``configs`` entries of a table file."""
    return _load(path)["configs"]


def table_for(device_name: str, spec: str | None) -> dict[str, str]:
    """Launch key -> config name for ``device_name`` under ``DOTS_GG_TUNED=spec`` (see module doc)."""
    spec = (spec or "").strip()
    if spec.lower() in ("0", "false", "no", "off"):
        return {}
    if spec.lower() in ("", "1", "true", "yes", "on"):
        path = default_path(device_name)
        if not path.exists():
            return {}
    else:
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(
                f"DOTS_GG_TUNED={spec!r}: no such table file (0 turns tables off, 1 uses "
                f"{TABLE_DIR}/<device>.json)")
    return {key: entry["config"] for key, entry in read_table(path).items()}


def write_entries(path: Path, device_name: str, entries: dict[str, dict]) -> None:
    """Merge ``entries`` (key -> {"config", "tflops", "measured"}) into the table at ``path``
    (created if absent); keys sorted so that the file is the same for the same content."""
    path = Path(path)
    data = {"device": device_name, "configs": {}}
    if path.exists():
        old = _load(path)
        if old.get("device") not in (None, device_name):
            raise ValueError(f"kernel config table {path} is for {old['device']!r}, not {device_name!r}")
        data["configs"].update(old["configs"])
    for key, entry in entries.items():
        if not isinstance(entry.get("config"), str):
            raise ValueError(f"entry {key!r}: needs a 'config' name")
        data["configs"][key] = entry
    data["configs"] = dict(sorted(data["configs"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
