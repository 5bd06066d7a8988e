"""Stage 1 per file: WARC records -> documents-table rows, each kept or dropped with a reason.

``process_warc_file`` is the whole per-record chain minus exact dedup (a global step done by the
Spark job): record type, HTTP status, content type, URL blocklist (before the body is decoded: the
cheapest filters run first), size cap, charset decoding, trafilatura extraction under a time budget,
fastText language ID, and the exact-dedup hash. Rows carry ``drop_reason`` = None when kept.
"""

from __future__ import annotations

import hashlib
import sys
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline import faults
from pipeline.prepare import langid
from pipeline.prepare.charset import decode_html
from pipeline.prepare.extract import ExtractTimeout, extract, parse_html, time_budget, visible_text
from pipeline.prepare.normalize import content_hash
from pipeline.prepare.urlfilter import URL_INVALID, UrlFilter, normalize_url, registered_domain
from pipeline.prepare.warc import WarcError, WarcRecord, iter_records

# Drop reasons of this stage (snake_case, family prefix). error_* are also reported as errors.
WARC_NOT_RESPONSE = "warc_not_response"
WARC_RECORD_TOO_LARGE = "warc_record_too_large"
HTTP_STATUS_NOT_200 = "http_status_not_200"
CONTENT_TYPE_NOT_HTML = "content_type_not_html"
EXTRACT_EMPTY = "extract_empty"
LANG_NOT_KEPT = "lang_not_kept"
LANG_BELOW_THRESHOLD = "lang_below_threshold"
LANG_PREFILTER_NOT_KEPT = "lang_prefilter_not_kept"
EXACT_DUPLICATE = "exact_duplicate"
ERROR_WARC_BODY = "error_warc_body"
ERROR_EXTRACT = "error_extract"
ERROR_EXTRACT_TIMEOUT = "error_extract_timeout"
ERROR_RECORD = "error_record"
ERROR_IO_UNREADABLE = "error_io_unreadable"  # a file still unreadable after the storage retries

COLUMNS = [
    "doc_id",
    "url",
    "domain",
    "warc_file",
    "warc_offset",
    "fetch_time",
    "charset",
    "title",
    "text",
    "lang",
    "lang_score",
    "content_hash",
    "html_bytes",
    "drop_reason",
]

# Errors that mean the code or environment is broken, not the record: never turned into drops.
_FATAL = (ImportError, NameError, SyntaxError, MemoryError, KeyboardInterrupt, SystemExit)


def _row(**kw: Any) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(kw)
    return row


def make_doc_id(record_id: str | None, url: str | None, date: Any, warc_file: str, offset: int) -> str:
    """Hex digest of the WARC-Record-ID; of URL + date when absent; of file + offset as last resort."""
    key = record_id or (f"{url}|{date}" if url else f"{warc_file}@{offset}")
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def _mime(ctype: str | None) -> str:
    return (ctype or "").split(";", 1)[0].strip().lower()


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in head


class Prepare:
    """Per-process state of stage 1 (URL filter lists, language model) built once from config."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.url_filter = UrlFilter.from_files(
            [cfg.resolve(p) for p in cfg.blocklist_domain_files],
            [cfg.resolve(p) for p in cfg.blocklist_url_keyword_files],
            cfg.url_keyword_min_hits,
        )
        self.lang_model = str(cfg.resolve(cfg.lang_model)) if cfg.lang_model else ""
        self.accept = {c.lower() for c in cfg.accept_content_types}
        self._errors_logged = 0

    def preflight(self) -> None:
        """Driver-side check: dependencies import and the language model loads."""
        from pipeline.prepare.extract import check_available

        check_available()
        langid.load_model(self.lang_model)

    # -- one record up to language ID (which is batched)
    def record_to_row(self, rec: WarcRecord, warc_file: str) -> dict[str, Any]:
        cfg = self.cfg
        doc_id = make_doc_id(rec.record_id, rec.target_uri, rec.date, warc_file, rec.offset)
        base = {
            "doc_id": doc_id,
            "url": rec.target_uri,
            "warc_file": warc_file,
            "warc_offset": rec.offset,
            "fetch_time": rec.date,
        }
        if rec.rec_type != "response" and not (rec.rec_type == "resource" and rec.target_uri):
            return _row(**base, drop_reason=WARC_NOT_RESPONSE)
        url = normalize_url(rec.target_uri or "")
        if url is None:
            if not (cfg.allow_non_http_urls and rec.target_uri):
                return _row(**base, drop_reason=URL_INVALID)
            url = rec.target_uri.strip()
            base["domain"] = ""
        else:
            base["domain"] = registered_domain(url.split("/")[2].split(":")[0])
        base["url"] = url
        if rec.rec_type == "response" and rec.status != 200:
            return _row(**base, drop_reason=HTTP_STATUS_NOT_200)
        reason = self.url_filter.check(url) if base["domain"] else None
        if reason:
            return _row(**base, drop_reason=reason)
        if rec.too_large:
            return _row(**base, drop_reason=WARC_RECORD_TOO_LARGE)
        if rec.body_error or rec.body is None:
            return _row(**base, drop_reason=ERROR_WARC_BODY)
        mime = _mime(rec.content_type)
        if mime not in self.accept and not (not mime and cfg.sniff_untyped and _looks_like_html(rec.body)):
            return _row(**base, drop_reason=CONTENT_TYPE_NOT_HTML)
        base["html_bytes"] = len(rec.body)
        html, charset = decode_html(rec.body, rec.content_type, cfg.charset_detector != "none")
        base["charset"] = charset
        try:
            with time_budget(cfg.extract_timeout_s):
                tree = parse_html(html)
            if tree is None:
                return _row(**base, drop_reason=EXTRACT_EMPTY)
            # Cheap pre-filter: a page whose raw visible text is confidently in a language we don't
            # keep skips trafilatura, the costliest step (threshold in conf; 0 disables it).
            if cfg.lang_prefilter_threshold > 0 and cfg.keep_langs:
                lang, score = langid.predict(
                    [visible_text(tree, cfg.lang_sample_chars)], self.lang_model, cfg.lang_sample_chars
                )[0]
                if score >= cfg.lang_prefilter_threshold and lang not in cfg.keep_langs:
                    return _row(**base, lang=lang, lang_score=score, drop_reason=LANG_PREFILTER_NOT_KEPT)
            title, text = extract(
                tree,
                favor_precision=cfg.favor_precision,
                include_tables=cfg.include_tables,
                fast=cfg.fast,
                timeout_s=cfg.extract_timeout_s,
                url=url,
                fast_xpaths=cfg.fast_xpaths,
                give_tree=True,
            )
        except ExtractTimeout:
            return _row(**base, drop_reason=ERROR_EXTRACT_TIMEOUT)
        except _FATAL:
            raise
        except Exception as e:  # noqa: BLE001 - a page the extractor can't handle is a counted drop
            self._log(e, url)
            return _row(**base, drop_reason=ERROR_EXTRACT)
        base["title"] = title
        if not text or len(text) < cfg.min_text_chars:
            return _row(**base, drop_reason=EXTRACT_EMPTY)
        base["text"] = text
        return _row(**base)

    def _log(self, e: BaseException, where: str | None) -> None:
        if self._errors_logged < 5:
            self._errors_logged += 1
            print(f"[prepare] record error at {where}: {type(e).__name__}: {e}", file=sys.stderr)
            traceback.print_exc(limit=3, file=sys.stderr)

    def finish_batch(self, rows: list[dict[str, Any]]) -> None:
        """Language ID (one fastText call for the batch), thresholds, and the exact-dedup hash."""
        todo = [r for r in rows if r["drop_reason"] is None]
        if not todo:
            return
        preds = langid.predict([r["text"] for r in todo], self.lang_model, self.cfg.lang_sample_chars)
        keep = set(self.cfg.keep_langs)
        for r, (lang, score) in zip(todo, preds, strict=True):
            r["lang"], r["lang_score"] = lang, score
            if score < self.cfg.lang_threshold:
                r["drop_reason"] = LANG_BELOW_THRESHOLD
            elif keep and lang not in keep:
                r["drop_reason"] = LANG_NOT_KEPT
            else:
                r["content_hash"] = content_hash(r["text"])

    def process_records(
        self, items: Iterable[WarcRecord | WarcError], warc_file: str, batch_size: int = 64
    ) -> Iterator[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, WarcError):
                doc_id = make_doc_id(None, None, None, warc_file, item.offset)
                row = _row(doc_id=doc_id, warc_file=warc_file, warc_offset=item.offset, drop_reason=item.reason)
            else:
                try:
                    faults.check(item.target_uri)  # test hook; no-op unless DOTS_FAULT_* is set
                    row = self.record_to_row(item, warc_file)
                except _FATAL:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad record must not fail the task
                    self._log(e, item.target_uri)
                    doc_id = make_doc_id(item.record_id, item.target_uri, item.date, warc_file, item.offset)
                    row = _row(
                        doc_id=doc_id,
                        url=item.target_uri,
                        warc_file=warc_file,
                        warc_offset=item.offset,
                        fetch_time=item.date,
                        drop_reason=ERROR_RECORD,
                    )
            batch.append(row)
            if len(batch) >= batch_size:
                self.finish_batch(batch)
                yield from batch
                batch = []
        self.finish_batch(batch)
        yield from batch


def open_binary(path: str):
    """A seekable binary stream of a local path, ``s3://`` object or ``https://`` URL; remote reads
    are retried and resumed (:mod:`pipeline.storage`)."""
    from pipeline import storage

    return storage.open_input(path)


def _unreadable_guard(
    items: Iterator[WarcRecord | WarcError], path: str, on_unreadable: str
) -> Iterator[WarcRecord | WarcError]:
    """Pass records through; a file that stays unreadable after the storage layer's retries either
    fails the task naming it (``fail``) or ends as one ``error_io_unreadable`` item (``drop``)."""
    from pipeline.storage import UnreadableError

    try:
        yield from items
    except UnreadableError as e:
        if on_unreadable != "drop":
            raise
        print(f"[prepare] {e}; counted as {ERROR_IO_UNREADABLE}", file=sys.stderr)
        yield WarcError(offset=e.offset, reason=ERROR_IO_UNREADABLE, message=str(e))


def _records(path: str, cfg: Any) -> Iterator[WarcRecord | WarcError]:
    gz = path.endswith((".gz", ".gzip"))
    with open_binary(path) as f:
        if not gz:
            head = f.read(2)
            f.seek(0)
            gz = head == b"\x1f\x8b"
        yield from iter_records(f, gz, cfg.max_record_bytes)


def process_warc_file(path: str, cfg: Any, prep: Prepare | None = None) -> Iterator[dict[str, Any]]:
    """All rows of one WARC/ARC file (gzip or plain), kept and dropped, before exact dedup."""
    prep = prep or Prepare(cfg)
    items = _unreadable_guard(_records(path, cfg), path, getattr(cfg, "on_unreadable", "fail"))
    yield from prep.process_records(items, path)
