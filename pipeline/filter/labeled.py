"""Reading and writing the labeled files of the retraining jobs (plain Python, no Spark).

Formats: JSON Lines (``.jsonl``, optionally ``.gz``) or Parquet (a ``.parquet`` file or a directory
of them). One record per document; the fields each job needs are documented in its module.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def read_records(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"labeled data {p} does not exist")
    if p.is_dir() or p.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    opener = gzip.open if p.suffix == ".gz" else open
    out = []
    with opener(p, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{p}:{i}: not valid JSON ({e}); expected one JSON object per line") from e
    return out


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(tmp, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(p)  # atomic: a killed run never leaves a truncated file behind
