"""Text sources for training the category classifier (plain Python, no Spark).

``iter_documents(paths)`` yields ``{"url", "text"}`` (plus ``title`` and ``category`` when the file has
them; WARC pages carry no title here, so a model trained on them reads their text alone) from:

* WARC files (``*.warc``, ``*.warc.gz``): HTTP 200 ``text/html`` responses are decoded (HTTP header
  charset, then ``<meta charset>``, then charset-normalizer detection, then UTF-8 with replacement) and
  reduced to main text with trafilatura, as the ``prepare`` stage does;
* Parquet files or folders (a pipeline stage output, or user labels) with a ``text`` column;
* JSONL files (one JSON object per line with ``text``).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Decode HTML bytes: declared charset (HTTP, then meta) when it decodes cleanly, else detection."""
    import codecs

    candidates: list[str] = []
    if content_type:
        m = _HTTP_CHARSET.search(content_type)
        if m:
            candidates.append(m.group(1))
    m = _META_CHARSET.search(body[:4096])
    if m:
        candidates.append(m.group(1).decode("ascii", "ignore"))
    for cs in candidates:
        try:
            codecs.lookup(cs)
            return body.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    if best is not None:
        return str(best)
    return body.decode("utf-8", errors="replace")


def extract_text(html: str) -> str:
    """Main text of a page with trafilatura (comments and tables off, like the prepare stage)."""
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=False) or ""


def iter_warc(path: str | Path) -> Iterator[dict]:
    """``{"url", "text"}`` for each HTML response of a WARC file; pages without text are skipped."""
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            url = rec.rec_headers.get_header("WARC-Target-URI") or ""
            ctype = rec.http_headers.get_header("Content-Type") if rec.http_headers else None
            if ctype and "html" not in ctype.lower():
                continue
            body = rec.content_stream().read()
            text = extract_text(decode_html(body, ctype))
            if text.strip():
                yield {"url": url, "text": text}


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e}); expected one object per line") from e
            if not isinstance(obj, dict) or "text" not in obj:
                raise ValueError(f"{path}:{i}: each line needs a 'text' field")
            yield obj


def iter_parquet(path: str | Path) -> Iterator[dict]:
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(path), format="parquet", exclude_invalid_files=True)
    names = set(dataset.schema.names)
    if "text" not in names:
        raise ValueError(f"{path}: Parquet data needs a 'text' column (has {sorted(names)})")
    cols = [c for c in ("url", "title", "text", "category", "doc_id") if c in names]
    for batch in dataset.to_batches(columns=cols):
        yield from batch.to_pylist()


def iter_documents(paths: list[str]) -> Iterator[dict]:
    """Documents from WARC, Parquet (file or folder) and JSONL inputs, in the order given."""
    for p in paths:
        path = Path(p)
        name = path.name.lower()
        if path.is_dir() or name.endswith(".parquet"):
            yield from iter_parquet(path)
        elif name.endswith((".warc", ".warc.gz", ".arc.gz")):
            yield from iter_warc(path)
        elif name.endswith((".jsonl", ".jsonl.gz", ".json")):
            yield from iter_jsonl(path)
        else:
            raise ValueError(f"{p}: unknown input kind; give WARC (.warc.gz), Parquet or JSONL (.jsonl)")
