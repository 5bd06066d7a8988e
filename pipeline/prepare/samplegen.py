"""Generate a small, fully synthetic sample crawl (WARC) for the demo and the tests.

Third-party pages cannot ship with the project, so every page here is built from text written for
this module: sentence templates whose slots are filled by a seeded RNG, wrapped in the structure real
pages have (navigation, cookie banners, share lines, related-links boxes, footers). The file holds the
record kinds and the traps a stage-1 ``prepare`` run must handle:

* English and Chinese articles (>= 150 words / >= 300 CJK characters, several paragraphs) on several
  site "skins", plus long articles in German, French, Spanish, Russian and Japanese;
* exact duplicates (same article, other URL and other boilerplate; one pair also in another charset)
  and near-duplicates (a few words changed);
* legacy charsets: GBK and GB2312 (declared in the HTTP header, in ``<meta>``, in both, or nowhere),
  GB2312 declared for bytes that need GBK, Shift_JIS, ISO-8859-1 and windows-1252 (including the
  common "ISO-8859-1 label, windows-1252 bytes" case), windows-1251, and a UTF-8 BOM page;
* non-HTML responses (image/png, application/pdf, text/plain), request, metadata, revisit and
  warcinfo records, a 404 and a 301;
* URLs that a blocklist must catch (host ``ads.blocked.example``, path containing ``porn``, host
  with ``xxx``), a page with almost no text, short pages in languages outside zh/en;
* garbage bytes after the last record, so that warcio raises ``ArchiveLoadFailed`` there (the other
  records still read; a reader counts it as one error).

:func:`generate` returns a manifest describing, for each record, what a correct stage 1 should do
with it (``expect`` / ``reason``), the true charset and how it was declared, and probe strings that
must / must not appear in the extracted text. Output is deterministic for a seed: fixed WARC-Date,
WARC-Record-IDs derived from the seed, gzip members with mtime 0, so the file is byte-identical.
The text (word lists, sentence templates, site names, page skins) is data in ``samplegen_data/``;
``samplegen_pages`` fills it in, ``samplegen_plan`` plans the records, this module writes them.

CLI: ``python -m pipeline.prepare.samplegen --output out/sample/sample.warc.gz [--seed N] [--plain]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.prepare.samplegen_pages import EN_SITES, en_article, tiny_pdf, tiny_png
from pipeline.prepare.samplegen_plan import (  # noqa: F401 - the KIND_* names are the manifest's API
    BASE_DATE,
    DEFAULT_KEEP_LANGS,
    KIND_EMPTY_TEXT,
    KIND_ERROR,
    KIND_EXACT_DUP,
    KIND_HTTP_STATUS,
    KIND_KEPT,
    KIND_LANG,
    KIND_NON_HTML,
    KIND_SKIP,
    KIND_URL_BLOCKLIST,
    Page,
    _plan,
)

# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


class _Ids:
    def __init__(self, seed: int):
        self.seed = seed
        self.n = 0
        self.t = BASE_DATE

    def next(self) -> tuple[str, str]:
        self.n += 1
        self.t += dt.timedelta(seconds=17 + (self.n * 7919) % 41)
        h = hashlib.sha1(f"samplegen:{self.seed}:{self.n}".encode()).digest()[:16]
        return f"<urn:uuid:{uuid.UUID(bytes=h, version=4)}>", self.t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _http(status: str, headers: list[tuple[str, str]]) -> StatusAndHeaders:
    return StatusAndHeaders(status, headers, protocol="HTTP/1.1")


def _server_headers(content_type: str | None, body: bytes) -> list[tuple[str, str]]:
    hs = [("Date", "Mon, 06 May 2024 08:00:00 GMT"), ("Server", "nginx")]
    if content_type is not None:
        hs.append(("Content-Type", content_type))
    hs.append(("Content-Length", str(len(body))))
    return hs


def generate(path: str, seed: int = 0, n_articles: int = 120, plain: bool | None = None) -> dict[str, Any]:
    """Write the sample crawl to ``path`` and return its manifest.

    ``n_articles`` is the number of HTML 200 responses (articles, duplicates, blocked-URL, empty and
    other-language pages); a handful of other records (warcinfo, request, metadata, revisit, PNG,
    PDF, text/plain, 404, 301) and a corrupt tail come on top. ``plain`` writes an uncompressed WARC;
    by default the file is gzipped (one member per record) unless ``path`` does not end in ``.gz``.

    The manifest: ``{"seed", "path", "n_records", "counts": {reason: n}, "records": [...]}`` where each
    record has ``url``, ``warc_type``, ``record_id``, ``offset``, ``status``, ``content_type``,
    ``expect`` ("kept" | "drop" | "skip" | "error"), ``reason`` (None for kept; a family from this
    module's KIND_* constants), and for HTML pages ``lang``, ``charset`` (the true encoding),
    ``charset_source``, ``title``, ``probe`` (text the extraction must contain), ``words``, and
    ``duplicate_of`` / ``near_duplicate_of`` (URL of the first-written copy). ``lang`` expectations
    assume the default kept languages en and zh.
    """
    if plain is None:
        plain = not str(path).endswith(".gz")
    rng = random.Random(seed * 1_000_003 + 7)
    pages, _ = _plan(seed, n_articles)
    ids = _Ids(seed)
    out_path = Path(path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=not plain)

    def write(
        rec_type: str,
        url: str,
        payload: bytes | None,
        http: StatusAndHeaders | None,
        extra: dict[str, str] | None = None,
        warc_ct: str = "",
    ) -> tuple[str, int]:
        rid, date = ids.next()
        hdrs = {"WARC-Record-ID": rid, "WARC-Date": date, **(extra or {})}
        if rec_type in ("response", "request") and url:
            hdrs["WARC-IP-Address"] = f"192.0.2.{1 + (hash_int(url) % 250)}"
        rec = writer.create_warc_record(
            url,
            rec_type,
            payload=io.BytesIO(payload or b""),
            length=len(payload or b""),
            http_headers=http,
            warc_headers_dict=hdrs,
            warc_content_type=warc_ct,
        )
        offset = buf.tell()
        writer.write_record(rec)
        return rid, offset

    fields = (
        f"software: dots-data samplegen\r\nformat: WARC File Format 1.0\r\n"
        f"description: synthetic sample crawl, seed {seed}\r\nisPartOf: sample-{seed}\r\n"
    ).encode()
    rid, off = write(
        "warcinfo", "", fields, None, {"WARC-Filename": out_path.name}, warc_ct="application/warc-fields"
    )
    records.append(
        {
            "url": None,
            "warc_type": "warcinfo",
            "record_id": rid,
            "offset": off,
            "expect": "skip",
            "reason": KIND_SKIP,
        }
    )

    # the non-article records, spread evenly between the pages (so every kind exists at any size)
    extra_kinds = [
        "request",
        "metadata",
        "png",
        "pdf",
        "text",
        "404",
        "301",
        "robots",
        "revisit",
        "request",
        "metadata",
    ]
    extras_at = {(k + 1) * len(pages) // (len(extra_kinds) + 1): kind for k, kind in enumerate(extra_kinds)}
    last_response: dict[str, Any] = {}
    for i, page in enumerate(pages):
        kind = extras_at.get(i)
        if kind:
            records.extend(_write_extra(kind, rng, write, last_response))
        if kind == "request":
            # a request record right before the response it belongs to
            rid_req, off_req = write(
                "request",
                page.url,
                None,
                StatusAndHeaders(
                    f"GET /{page.url.split('/', 3)[-1]} HTTP/1.1",
                    [
                        ("Host", page.url.split("/")[2]),
                        ("User-Agent", "dots-data-samplegen/1.0"),
                        ("Accept", "text/html"),
                    ],
                    is_http_request=True,
                ),
            )
            records.append(
                {
                    "url": page.url,
                    "warc_type": "request",
                    "record_id": rid_req,
                    "offset": off_req,
                    "expect": "skip",
                    "reason": KIND_SKIP,
                }
            )
        hdrs = _server_headers(page.content_type, page.body) + page.extra_headers
        rid, off = write("response", page.url, page.body, _http(page.status, hdrs))
        reason = page.info.get("reason", KIND_KEPT)
        rec = {
            "url": page.url,
            "warc_type": "response",
            "record_id": rid,
            "offset": off,
            "status": int(page.status.split()[0]),
            "content_type": page.content_type,
            "expect": "kept" if reason is None else "drop",
            "reason": reason,
            **{k: v for k, v in page.info.items() if k != "reason"},
        }
        records.append(rec)
        last_response = rec

    body = buf.getvalue()
    corrupt_offset = len(body)
    # garbage bytes after the last good record (an interrupted upload): warcio raises
    # ArchiveLoadFailed when it gets there, also with arc2warc=True (no spaces, so it can't pass for
    # an ARC header line either)
    noise = bytes(b for b in (rng.randrange(256) for _ in range(200)) if b not in b" \r\n\t")
    garbage = b"\x00\x00\x13\x37" + noise[:96] + b"\r\n"
    body += garbage
    records.append(
        {
            "url": None,
            "warc_type": "corrupt",
            "record_id": None,
            "offset": corrupt_offset,
            "expect": "error",
            "reason": KIND_ERROR,
        }
    )
    out_path.write_bytes(body)

    counts: dict[str, int] = {}
    for r in records:
        key = r["reason"] or "kept"
        counts[key] = counts.get(key, 0) + 1
    return {
        "seed": seed,
        "path": str(out_path),
        "gzip": not plain,
        "n_records": len(records),
        "n_articles": n_articles,
        "keep_langs": list(DEFAULT_KEEP_LANGS),
        "counts": counts,
        "records": records,
    }


def hash_int(s: str) -> int:
    """Stable (process-independent) small hash of a string."""
    return int.from_bytes(hashlib.md5(s.encode()).digest()[:4], "big")


def _write_extra(
    kind: str, rng: random.Random, write: Callable[..., tuple[str, int]], last: dict[str, Any]
) -> list[dict[str, Any]]:
    site = rng.choice(EN_SITES)
    if kind == "request":
        return []  # written by the caller, next to its response
    if kind == "metadata":
        if not last:
            return []
        payload = (
            f"via: https://{site}/\r\nhopsFromSeed: L\r\nfetchTimeMs: {rng.randint(40, 900)}\r\n"
            f"outlinks: {rng.randint(10, 90)}\r\n"
        ).encode()
        rid, off = write(
            "metadata",
            last["url"],
            payload,
            None,
            {"WARC-Concurrent-To": last["record_id"]},
            warc_ct="application/warc-fields",
        )
        return [
            {
                "url": last["url"],
                "warc_type": "metadata",
                "record_id": rid,
                "offset": off,
                "expect": "skip",
                "reason": KIND_SKIP,
            }
        ]
    if kind == "revisit":
        if not last:
            return []
        url = last["url"]
        http = _http("200 OK", [("Content-Type", last.get("content_type") or "text/html")])
        rid, off = write(
            "revisit",
            url,
            None,
            http,
            {
                "WARC-Profile": "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest",
                "WARC-Refers-To-Target-URI": url,
                "WARC-Payload-Digest": "sha1:" + "A" * 32,
            },
        )
        return [
            {
                "url": url,
                "warc_type": "revisit",
                "record_id": rid,
                "offset": off,
                "expect": "skip",
                "reason": KIND_SKIP,
            }
        ]
    if kind == "png":
        url, ct, body, status = (
            f"https://{site}/img/logo-{rng.randint(1, 99)}.png",
            "image/png",
            tiny_png(rng),
            "200 OK",
        )
    elif kind == "pdf":
        url, ct, status = (
            f"https://{site}/files/annual-report-{rng.randint(2015, 2023)}.pdf",
            "application/pdf",
            "200 OK",
        )
        body = tiny_pdf("Annual report of the Ashford Herald community fund")
    elif kind == "text":
        t, p = en_article(rng)
        url, ct, status = (
            f"https://{site}/export/{rng.randint(100, 999)}.txt",
            "text/plain; charset=utf-8",
            "200 OK",
        )
        body = (t + "\n\n" + "\n\n".join(p) + "\n").encode()
    elif kind == "robots":
        url, ct, status = f"https://{site}/robots.txt", "text/plain", "200 OK"
        body = b"User-agent: *\nDisallow: /search\nDisallow: /admin/\nSitemap: /sitemap.xml\n"
    elif kind == "404":
        url, ct, status = (
            f"https://{site}/news/this-story-was-removed-{rng.randint(1, 999)}.html",
            "text/html; charset=utf-8",
            "404 Not Found",
        )
        body = (
            b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Page not found</h1>"
            b"<p>Sorry, the page you are looking for does not exist or has been moved.</p>"
            b'<p><a href="/">Back to the home page</a></p></body></html>'
        )
    elif kind == "301":
        url, ct, status = (
            f"http://{site}/old/story-{rng.randint(1, 999)}",
            "text/html",
            "301 Moved Permanently",
        )
        body = b"<html><head><title>301 Moved Permanently</title></head><body>Moved</body></html>"
    else:
        raise ValueError(kind)
    hdrs = _server_headers(ct, body)
    if kind == "301":
        hdrs.append(("Location", url.replace("http://", "https://").replace("/old/", "/news/") + ".html"))
    rid, off = write("response", url, body, _http(status, hdrs))
    reason = KIND_HTTP_STATUS if kind in ("404", "301") else KIND_NON_HTML
    return [
        {
            "url": url,
            "warc_type": "response",
            "record_id": rid,
            "offset": off,
            "status": int(status.split()[0]),
            "content_type": ct,
            "expect": "drop",
            "reason": reason,
            "kind": kind,
        }
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.prepare.samplegen", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--output", required=True, help="WARC file to write (e.g. out/sample/sample.warc.gz)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-articles", type=int, default=120, help="number of HTML 200 responses")
    ap.add_argument("--plain", action="store_true", help="write an uncompressed WARC")
    ap.add_argument(
        "--manifest",
        default=None,
        help="where to write the manifest JSON (default: next to the WARC, *.manifest.json)",
    )
    args = ap.parse_args(argv)
    manifest = generate(args.output, seed=args.seed, n_articles=args.n_articles, plain=args.plain)
    mpath = args.manifest
    if mpath is None:
        stem = args.output
        for suf in (".gz", ".warc"):
            stem = stem[: -len(suf)] if stem.endswith(suf) else stem
        mpath = stem + ".manifest.json"
    Path(mpath).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(
        f"wrote {args.output} ({manifest['n_records']} records) and {mpath}: {json.dumps(manifest['counts'])}"
    )


if __name__ == "__main__":
    main()
