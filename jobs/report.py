"""Funnel report of a pipeline run: ``RUN_DIR/report.html`` with PNG charts, and a compact table.

    python -m jobs.report --input out/demo          # also run at the end of jobs.pipeline / make demo

Reads what the stages leave behind, never re-running anything: ``RUN_DIR/NN_<stage>/_stats.json``
(documents in/out, drops by reason, errors, seconds), the Parquet outputs (on-disk bytes, UTF-8 bytes
of ``text``, the ``lang`` and ``category_name`` distributions, read column by column with pyarrow)
and the tokenize stage's ``index.json`` + shards (tokens, per language and category when the
previous stage has those columns). A stage folder without ``_SUCCESS`` is shown as incomplete and
its files are not read. Works on local paths and on any URI pyarrow.fs can open (hdfs://, s3://).

Charts (matplotlib, Agg backend) go to ``RUN_DIR/report/*.png``; ``report.html`` links them.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import argparse
import html
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

STAGE_DIR_RE = re.compile(r"^(\d\d)_([a-z][a-z0-9_]*)$")
DIST_COLUMNS = {"lang": "language", "category_name": "category"}
# Reading text/lang columns of stage outputs larger than this is skipped (say so in the report);
# a cluster-size run reports bytes from file sizes only.
DEFAULT_MAX_SCAN_BYTES = 4 << 30
TOP_N = 20


# ---------------------------------------------------------------- file system


class RunFS:
    """Local paths, ``s3://`` (configured from the AWS variables and files, see
    :mod:`pipeline.storage`) or any pyarrow.fs URI, with the few operations the report needs."""

    def __init__(self, root: str):
        from pipeline import storage

        self.fs, self.root = storage.filesystem(root)
        self.root = self.root.rstrip("/")

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def info(self, path: str) -> pafs.FileInfo:
        return self.fs.get_file_info(path)

    def exists(self, path: str) -> bool:
        return self.info(path).type != pafs.FileType.NotFound

    def listdir(self, path: str) -> list[pafs.FileInfo]:
        if self.info(path).type != pafs.FileType.Directory:
            return []
        return sorted(self.fs.get_file_info(pafs.FileSelector(path)), key=lambda i: i.path)

    def read_text(self, path: str) -> str:
        with self.fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")

    def write_bytes(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        if not isinstance(self.fs, pafs.S3FileSystem):  # object stores have no folders to create
            self.fs.create_dir(parent, recursive=True)
        with self.fs.open_output_stream(path) as f:
            f.write(data)


# ---------------------------------------------------------------- collecting figures


@dataclass
class StageFigures:
    index: int
    stage: str
    path: str
    complete: bool
    stats: dict[str, Any] | None = None
    data_files: list[str] = field(default_factory=list)
    data_bytes: int = 0  # on-disk bytes of the stage's dataset (Parquet or Arrow shards)
    text_bytes: int | None = None  # UTF-8 bytes of the `text` column of kept documents
    columns: list[str] = field(default_factory=list)
    distributions: dict[str, Counter] = field(default_factory=dict)  # column -> value -> documents
    token_index: dict[str, Any] | None = None
    note: str = ""

    @property
    def documents(self) -> int | None:
        return None if self.stats is None else int(self.stats.get("output", 0))


@dataclass
class RunFigures:
    run_dir: str
    stages: list[StageFigures]
    tokens: dict[str, Any] = field(default_factory=dict)  # total, per_shard, by_lang, by_category


def find_stages(rfs: RunFS) -> list[StageFigures]:
    out = []
    for info in rfs.listdir(rfs.root):
        name = info.base_name
        m = STAGE_DIR_RE.match(name)
        if info.type != pafs.FileType.Directory or not m:
            continue
        complete = rfs.exists(f"{info.path}/_SUCCESS")
        sf = StageFigures(index=int(m.group(1)), stage=m.group(2), path=info.path, complete=complete)
        if complete and rfs.exists(f"{info.path}/_stats.json"):
            sf.stats = json.loads(rfs.read_text(f"{info.path}/_stats.json"))
        elif not complete:
            sf.note = "incomplete (no _SUCCESS): not read"
        out.append(sf)
    return sorted(out, key=lambda s: s.index)


def _scan_parquet(rfs: RunFS, sf: StageFigures, max_scan_bytes: int) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = [
        i for i in rfs.listdir(sf.path) if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
    ]
    sf.data_files = [i.path for i in files]
    sf.data_bytes = sum(i.size or 0 for i in files)
    if not files:
        return
    sf.columns = list(pq.read_schema(rfs.fs.open_input_file(files[0].path)).names)
    wanted = [c for c in ("text", *DIST_COLUMNS) if c in sf.columns]
    if not wanted:
        return
    if sf.data_bytes > max_scan_bytes:
        sf.note = f"{sf.data_bytes:,} bytes > max scan {max_scan_bytes:,}: text bytes and distributions skipped"
        return
    text_bytes = 0
    dists: dict[str, Counter] = {c: Counter() for c in wanted if c != "text"}
    for f in files:
        pf = pq.ParquetFile(rfs.fs.open_input_file(f.path))
        for batch in pf.iter_batches(columns=wanted, batch_size=8192):
            if "text" in wanted:
                lengths = pc.binary_length(batch.column("text"))
                text_bytes += int(pc.sum(lengths).as_py() or 0)
            for c, counter in dists.items():
                vc = pc.value_counts(batch.column(c))
                for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    counter["(none)" if v is None else str(v)] += n
    if "text" in wanted:
        sf.text_bytes = text_bytes
    sf.distributions = dists


def _scan_tokens(rfs: RunFS, sf: StageFigures, prev: StageFigures | None, max_scan_bytes: int) -> dict[str, Any]:
    """Token totals from index.json; per language / category by joining shard doc_ids with ``prev``."""
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    idx_path = f"{sf.path}/index.json"
    if not rfs.exists(idx_path):
        sf.note = sf.note or "no index.json"
        return {}
    index = json.loads(rfs.read_text(idx_path))
    sf.token_index = index
    shards = index.get("shards", [])
    shard_infos = [rfs.info(f"{sf.path}/{s['file']}") for s in shards if s.get("file")]
    sf.data_files = [i.path for i in shard_infos]
    sf.data_bytes = sum(i.size or 0 for i in shard_infos)
    tokens: dict[str, Any] = {
        "total": sum(int(s.get("tokens", 0)) for s in shards),
        "documents": sum(int(s.get("documents", 0)) for s in shards),
        "shards": len(shards),
        "per_shard": [int(s.get("tokens", 0)) for s in shards],
        "tokenizer": index.get("tokenizer"),
        "vocab_size": index.get("vocab_size"),
    }
    group_cols = [c for c in DIST_COLUMNS if prev is not None and c in prev.columns]
    if not group_cols or sf.data_bytes + prev.data_bytes > max_scan_bytes:
        return tokens
    # doc_id -> token count from the shards, then group by the previous stage's lang / category.
    per_doc: dict[str, int] = {}
    for info in shard_infos:
        with rfs.fs.open_input_file(info.path) as f:
            table = ipc.open_file(f).read_all()
        n = pc.list_value_length(table.column("input_ids")).to_pylist()
        per_doc.update(zip(table.column("doc_id").to_pylist(), n))
    by: dict[str, Counter] = {c: Counter() for c in group_cols}
    for path in prev.data_files:
        t = pq.read_table(rfs.fs.open_input_file(path), columns=["doc_id", *group_cols])
        ids = t.column("doc_id").to_pylist()
        for c in group_cols:
            for doc_id, v in zip(ids, t.column(c).to_pylist()):
                if doc_id in per_doc:
                    by[c]["(none)" if v is None else str(v)] += per_doc[doc_id]
    tokens.update({f"by_{DIST_COLUMNS[c]}": dict(by[c].most_common()) for c in group_cols})
    return tokens


def collect(run_dir: str, max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES) -> RunFigures:
    """Every figure of the report, from the files of ``run_dir`` (no Spark)."""
    rfs = RunFS(run_dir)
    if not rfs.exists(rfs.root):
        raise ValueError(f"run folder {run_dir} does not exist; pass the --output of jobs.pipeline")
    stages = find_stages(rfs)
    if not stages:
        raise ValueError(f"{run_dir} holds no stage folders (NN_<stage>/); pass the --output of jobs.pipeline")
    figures = RunFigures(run_dir=run_dir, stages=stages)
    prev = None
    for sf in stages:
        if not sf.complete:
            continue
        if sf.stage == "tokenize":
            figures.tokens = _scan_tokens(rfs, sf, prev, max_scan_bytes)
        else:
            _scan_parquet(rfs, sf, max_scan_bytes)
            prev = sf
    return figures


# ---------------------------------------------------------------- text table


def _human(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def format_table(fig: RunFigures) -> str:
    """Compact funnel: one line per stage, then its drop reasons; languages/categories/tokens after."""
    head = f"{'stage':<10} {'in':>9} {'out':>9} {'kept':>6} {'text':>10} {'on disk':>10} {'secs':>7}"
    lines = [head, "-" * len(head)]
    for sf in fig.stages:
        s = sf.stats
        if s is None:
            lines.append(f"{sf.stage:<10} {sf.note or 'no _stats.json'}")
            continue
        kept = f"{100 * s['output'] / s['input']:.0f}%" if s.get("input") else "-"
        lines.append(
            f"{sf.stage:<10} {s['input']:>9,} {s['output']:>9,} {kept:>6} {_human(sf.text_bytes):>10} "
            f"{_human(sf.data_bytes):>10} {s.get('seconds', 0):>7.1f}"
        )
        for reason, n in sorted(s.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    - {reason:<40} {n:>9,}")
    last = _last_with(fig, "lang")
    if last:
        top = ", ".join(f"{k} {v:,}" for k, v in last.distributions["lang"].most_common(8))
        lines.append(f"languages ({last.stage}): {top}")
    last = _last_with(fig, "category_name")
    if last:
        top = ", ".join(f"{k} {v:,}" for k, v in last.distributions["category_name"].most_common(5))
        lines.append(f"categories ({last.stage}, top 5 of {len(last.distributions['category_name'])}): {top}")
    if fig.tokens:
        t = fig.tokens
        lines.append(f"tokens: {t['total']:,} in {t['documents']:,} documents, {t['shards']} shard(s)")
    return "\n".join(lines)


def _last_with(fig: RunFigures, col: str) -> StageFigures | None:
    found = [sf for sf in fig.stages if col in sf.distributions and sf.distributions[col]]
    return found[-1] if found else None


def _first_with(fig: RunFigures, col: str) -> StageFigures | None:
    found = [sf for sf in fig.stages if col in sf.distributions and sf.distributions[col]]
    return found[0] if found else None


# ---------------------------------------------------------------- charts


def _charts(fig: RunFigures) -> dict[str, tuple[str, bytes]]:
    """``{name: (title, png bytes)}``."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, tuple[str, bytes]] = {}

    def save(name: str, title: str, f) -> None:
        buf = io.BytesIO()
        f.tight_layout()
        f.savefig(buf, format="png", dpi=100)
        plt.close(f)
        out[name] = (title, buf.getvalue())

    done = [sf for sf in fig.stages if sf.stats]
    if done:
        labels = ["input"] + [sf.stage for sf in done]
        docs = [done[0].stats["input"]] + [sf.stats["output"] for sf in done]
        f, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        axes[0].bar(labels, docs, color="#4472c4")
        axes[0].set_title("documents after each stage")
        for i, v in enumerate(docs):
            axes[0].text(i, v, f"{v:,}", ha="center", va="bottom", fontsize=8)
        sizes = [(sf.stage, sf.text_bytes if sf.text_bytes is not None else sf.data_bytes) for sf in done]
        top = max([b for _, b in sizes] + [1])
        unit, div = next((u, d) for u, d in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1)) if top >= d)
        axes[1].bar([s for s, _ in sizes], [b / div for _, b in sizes], color="#ed7d31")
        axes[1].set_title(f"{unit} after each stage (text bytes; on-disk for token shards)")
        for ax in axes:
            ax.tick_params(axis="x", rotation=30)
        save("funnel", "Documents and bytes per stage", f)

        reasons = [
            (f"{sf.stage}: {r}", n) for sf in done for r, n in sf.stats.get("dropped", {}).items() if n
        ]
        if reasons:
            reasons.sort(key=lambda kv: kv[1])
            reasons = reasons[-30:]
            f, ax = plt.subplots(figsize=(9, 0.28 * len(reasons) + 1.2))
            colors = ["#c00000" if r.split(": ", 1)[1].startswith("error_") else "#7f7f7f" for r, _ in reasons]
            ax.barh([r for r, _ in reasons], [n for _, n in reasons], color=colors)
            ax.set_title("drops by reason (red: errors)")
            ax.tick_params(axis="y", labelsize=8)
            save("drops", "Drops by reason", f)

    for col, label in DIST_COLUMNS.items():
        first, last = _first_with(fig, col), _last_with(fig, col)
        if not last:
            continue
        keys = [k for k, _ in last.distributions[col].most_common(TOP_N)]
        if first is not last:
            keys += [k for k, _ in first.distributions[col].most_common(TOP_N) if k not in keys][: TOP_N - len(keys)]
        f, ax = plt.subplots(figsize=(10, 3.8))
        x = range(len(keys))
        if first is not last:
            w = 0.4
            ax.bar([i - w / 2 for i in x], [first.distributions[col][k] for k in keys], w, label=first.stage)
            ax.bar([i + w / 2 for i in x], [last.distributions[col][k] for k in keys], w, label=last.stage)
            ax.legend()
        else:
            ax.bar(list(x), [last.distributions[col][k] for k in keys], label=last.stage)
        ax.set_xticks(list(x), keys, rotation=60 if col == "category_name" else 0, ha="right", fontsize=8)
        ax.set_title(f"documents per {label} (top {len(keys)})")
        save(f"dist_{label}", f"Documents per {label}", f)

    by = [(k, v) for k, v in fig.tokens.items() if k.startswith("by_") and v]
    if by:
        f, axes = plt.subplots(1, len(by), figsize=(5.5 * len(by), 3.8), squeeze=False)
        for ax, (k, v) in zip(axes[0], by):
            items = list(v.items())[:TOP_N]
            ax.bar([a for a, _ in items], [b for _, b in items], color="#70ad47")
            ax.set_title(f"tokens {k.replace('_', ' ')}")
            ax.tick_params(axis="x", rotation=60, labelsize=8)
        save("tokens", "Tokens", f)
    return out


# ---------------------------------------------------------------- HTML


def _table(rows: list[list[Any]], head: list[str]) -> str:
    def cell(v: Any) -> str:
        return html.escape(f"{v:,}" if isinstance(v, int) else str(v))

    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render_html(fig: RunFigures, charts: dict[str, tuple[str, bytes]]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dots-data run report</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse;margin:1em 0}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} td:first-child{text-align:left}",
        "img{max-width:100%;display:block;margin:1em 0} .note{color:#a00}</style></head><body>",
        f"<h1>Run report</h1><p><code>{html.escape(fig.run_dir)}</code></p>",
    ]
    rows = []
    for sf in fig.stages:
        s = sf.stats or {}
        rows.append([
            f"{sf.index:02d}_{sf.stage}",
            s.get("input", "-"),
            s.get("output", "-"),
            sum(s.get("dropped", {}).values()) if s else "-",
            sum(s.get("errors", {}).values()) if s else "-",
            _human(sf.text_bytes),
            _human(sf.data_bytes),
            f"{s.get('seconds', 0):.1f}" if s else "-",
            sf.note or ("complete" if sf.complete else "incomplete"),
        ])
    parts.append("<h2>Funnel</h2>")
    parts.append(_table(rows, ["stage", "in", "out", "dropped", "errors", "text", "on disk", "seconds", "status"]))
    for name, (title, _) in charts.items():
        parts.append(f"<h3>{html.escape(title)}</h3><img src='report/{name}.png' alt='{html.escape(title)}'>")
    parts.append("<h2>Drops by reason</h2>")
    drop_rows = [
        [sf.stage, r, n] for sf in fig.stages if sf.stats for r, n in sorted(sf.stats.get("dropped", {}).items())
    ]
    parts.append(_table(drop_rows, ["stage", "reason", "documents"]) if drop_rows else "<p>no drops</p>")
    for col, label in DIST_COLUMNS.items():
        last = _last_with(fig, col)
        if last:
            rows = [[k, v] for k, v in last.distributions[col].most_common()]
            parts.append(f"<h2>Documents per {label} ({html.escape(last.stage)})</h2>")
            parts.append(_table(rows, [label, "documents"]))
    if fig.tokens:
        t = fig.tokens
        parts.append("<h2>Tokens</h2>")
        parts.append(_table(
            [["total tokens", t["total"]], ["documents", t["documents"]], ["shards", t["shards"]],
             ["tokenizer", json.dumps(t.get("tokenizer"))], ["vocab size", t.get("vocab_size") or "-"]],
            ["", "value"],
        ))
        for k, v in t.items():
            if k.startswith("by_") and v:
                parts.append(f"<h3>tokens {html.escape(k.replace('_', ' '))}</h3>")
                parts.append(_table([[a, b] for a, b in v.items()], [k[3:], "tokens"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(output_dir: str, max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES, quiet: bool = False) -> str:
    """Write ``output_dir/report.html`` (+ ``report/*.png``), print the compact table, return the path."""
    fig = collect(output_dir, max_scan_bytes)
    charts = _charts(fig)
    rfs = RunFS(output_dir)
    for name, (_, png) in charts.items():
        rfs.write_bytes(rfs.join("report", f"{name}.png"), png)
    path = rfs.join("report.html")
    rfs.write_bytes(path, render_html(fig, charts).encode("utf-8"))
    from pipeline import storage

    if storage.kind(output_dir) != "local":  # name it as the user did: s3://bucket/..., not bucket/...
        path = output_dir.rstrip("/") + "/report.html"
    if not quiet:
        print(format_table(fig))
        print(f"report: {path}")
    return path


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="jobs.report", description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="a jobs.pipeline --output folder (local path or URI)")
    p.add_argument(
        "--max-scan-bytes", type=int, default=DEFAULT_MAX_SCAN_BYTES,
        help="skip reading text/lang/category columns of stage outputs larger than this",
    )
    args = p.parse_args(argv)
    try:
        return write_report(args.input, args.max_scan_bytes)
    except ValueError as e:
        p.error(str(e))
    return ""


if __name__ == "__main__":
    main(sys.argv[1:])
