"""Stage 1 rules without Spark: one test per rule and per drop reason."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.config import load_config
from pipeline.prepare import process as P
from pipeline.prepare.charset import decode_html, normalize_label
from pipeline.prepare.extract import ExtractTimeout, extract, time_budget
from pipeline.prepare.normalize import content_hash, normalize_text
from pipeline.prepare.urlfilter import (
    URL_BLOCKLIST_DOMAIN,
    URL_BLOCKLIST_KEYWORD,
    URL_INVALID,
    UrlFilter,
    normalize_url,
    registered_domain,
)
from pipeline.prepare.warc import ERROR_WARC_CORRUPT, WarcError, iter_records

ARTICLE_EN = " ".join(
    f"The museum opened a new exhibition about river ecology and sediment transport number {i}, "
    "explaining how seasonal floods shape the valley and why farmers depend on them."
    for i in range(12)
)
ARTICLE_ZH = "".join(
    f"第{i}段：研究人员在长江流域开展了为期三年的生态调查，记录了鱼类的种群变化和水质情况，并提出了保护建议。"
    for i in range(12)
)


def page(body_text: str, title: str = "A title", meta: str = "") -> str:
    paras = "".join(f"<p>{body_text[i:i + 400]}</p>" for i in range(0, len(body_text), 400))
    return (
        f"<html><head>{meta}<title>{title}</title></head><body><nav><a href='/'>Home</a> | "
        f"<a href='/news'>News</a></nav><article><h1>{title}</h1>{paras}</article>"
        "<footer>Copyright 2024 Example Corp. All rights reserved.</footer></body></html>"
    )


def warc_bytes(records: list[tuple], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=gz)
    for i, (url, status, ctype, body, rtype) in enumerate(records):
        http = StatusAndHeaders(f"{status} OK", [("Content-Type", ctype)] if ctype else [], protocol="HTTP/1.1")
        rec = w.create_warc_record(
            url,
            rtype,
            payload=io.BytesIO(body),
            http_headers=http if rtype == "response" else None,
            warc_headers_dict={
                "WARC-Date": "2024-01-02T03:04:05Z",
                "WARC-Record-ID": f"<urn:uuid:00000000-0000-0000-0000-{i:012d}>",
            },
        )
        w.write_record(rec)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pcfg():
    return load_config().prepare


@pytest.fixture(scope="module")
def prep(pcfg):
    return P.Prepare(pcfg)


# ---------------------------------------------------------------- normalization / exact dedup key


def test_normalize_text_strips_punct_nfd_lower_spaces():
    assert normalize_text("Hello,   World!\n\tÉté — “quoted”") == normalize_text("hello world e\u0301te\u0301 quoted")
    assert normalize_text("你好，世界。") == "你好世界"
    assert content_hash("A  b, c.") == content_hash("a b c")
    assert content_hash("a b c") != content_hash("a b d")


# ---------------------------------------------------------------- charset


def test_charset_header_meta_bom_and_detector():
    zh = "<html><head><title>新闻</title></head><body><p>" + ARTICLE_ZH + "</p></body></html>"
    gbk = zh.encode("gbk")
    assert decode_html(gbk, "text/html; charset=GB2312") == (zh, "gb18030")
    meta = zh.replace("<head>", '<head><meta charset="gbk">').encode("gbk")
    assert decode_html(meta, "text/html")[1] == "gb18030"
    # No declaration at all: the detector must find a Chinese codec, and the text must round-trip.
    text, cs = decode_html(gbk, None)
    assert text == zh and cs in ("gb18030", "big5hkscs", "gbk") or "gb" in cs
    bom = "\ufeff<html>é</html>".encode("utf-8")
    assert decode_html(bom, "text/html; charset=iso-8859-1") == ("<html>é</html>", "utf-8")
    sj = "<html><body>日本語のページです。東京の天気は晴れ。</body></html>".encode("shift_jis")
    assert decode_html(sj, "text/html; charset=Shift_JIS")[1] == "cp932"
    latin = "<html><body>Café crème brûlée à Paris</body></html>".encode("latin-1")
    assert decode_html(latin, "text/html; charset=ISO-8859-1") == (latin.decode("cp1252"), "cp1252")


def test_charset_labels_map_to_supersets():
    assert normalize_label("GB2312") == "gb18030"
    assert normalize_label("gbk") == "gb18030"
    assert normalize_label("no-such-charset") is None


def test_wrong_declared_charset_falls_back():
    body = ARTICLE_ZH.encode("utf-8")
    text, cs = decode_html(body, "text/html; charset=ascii-bogus")
    assert text == ARTICLE_ZH and cs == "utf-8"


# ---------------------------------------------------------------- URL filter


def test_normalize_url():
    assert normalize_url("HTTP://Example.COM:80/a b#frag") == "http://example.com/a%20b"
    assert normalize_url("https://例子.测试/x") == "https://xn--fsqu00a.xn--0zwm56d/x"
    assert normalize_url("ftp://x.org/") is None
    assert normalize_url("hard::page.html") is None
    assert registered_domain("news.bbc.co.uk") == "bbc.co.uk"


def test_url_filter_reasons():
    f = UrlFilter(domains=["blocked.example"], keywords=["porn", "casino"])
    assert f.check("http://ads.blocked.example/x") == URL_BLOCKLIST_DOMAIN
    assert f.check("http://blocked.example/") == URL_BLOCKLIST_DOMAIN
    assert f.check("http://notblocked.example/") is None
    assert f.check("http://site.org/free-porn-videos") == URL_BLOCKLIST_KEYWORD
    assert f.check("http://site.org/pornography-research") is None  # token match, not substring
    assert f.check("http:///nohost") == URL_INVALID


def test_default_lists_load(prep):
    assert "blocked.example" in prep.url_filter.domains
    assert "porn" in prep.url_filter.keywords


# ---------------------------------------------------------------- extraction


def test_extract_title_and_text():
    title, text = extract(page(ARTICLE_EN, "River ecology"))
    assert title == "River ecology"
    assert "sediment transport number 3" in text
    assert "All rights reserved" not in text
    assert "\n" in text  # lines preserved


def test_extract_empty_page():
    assert extract("<html><body><div></div></body></html>")[1] is None


def test_time_budget_raises():
    import time

    with pytest.raises(ExtractTimeout), time_budget(0.05):
        time.sleep(1)


# ---------------------------------------------------------------- per-record chain, one test per reason


def run_records(prep, records, gz=True):
    data = warc_bytes(records, gz)
    return list(prep.process_records(iter_records(io.BytesIO(data), gz, prep.cfg.max_record_bytes), "mem.warc"))


def test_each_drop_reason(prep):
    html_en = page(ARTICLE_EN).encode()
    html_de = page(
        " ".join(
            "Die Stadtverwaltung hat heute neue Pläne für den Ausbau der Radwege vorgestellt und "
            "die Bürger zu einer Versammlung eingeladen." for _ in range(10)
        )
    ).encode()
    rows = run_records(
        prep,
        [
            ("http://a.org/en", 200, "text/html; charset=utf-8", html_en, "response"),
            ("http://b.org/en-copy", 200, "text/html", html_en, "response"),
            ("http://a.org/req", 200, None, b"GET / HTTP/1.1\r\n\r\n", "request"),
            ("http://a.org/404", 404, "text/html", html_en, "response"),
            ("http://a.org/img.png", 200, "image/png", b"\x89PNG....", "response"),
            ("http://ads.blocked.example/x", 200, "text/html", html_en, "response"),
            ("http://a.org/casino-bonus", 200, "text/html", html_en, "response"),
            ("http://a.org/empty", 200, "text/html", b"<html><body></body></html>", "response"),
            ("http://a.org/de", 200, "text/html", html_de, "response"),
            ("http://a.org/zh", 200, "text/html; charset=gbk", page(ARTICLE_ZH).encode("gbk"), "response"),
        ],
    )
    by_url = {r["url"]: r for r in rows}
    assert by_url["http://a.org/en"]["drop_reason"] is None
    assert by_url["http://a.org/en"]["lang"] == "en" and by_url["http://a.org/en"]["lang_score"] > 0.65
    assert by_url["http://a.org/req"]["drop_reason"] == P.WARC_NOT_RESPONSE
    assert by_url["http://a.org/404"]["drop_reason"] == P.HTTP_STATUS_NOT_200
    assert by_url["http://a.org/img.png"]["drop_reason"] == P.CONTENT_TYPE_NOT_HTML
    assert by_url["http://ads.blocked.example/x"]["drop_reason"] == URL_BLOCKLIST_DOMAIN
    assert by_url["http://a.org/casino-bonus"]["drop_reason"] == URL_BLOCKLIST_KEYWORD
    assert by_url["http://a.org/empty"]["drop_reason"] == P.EXTRACT_EMPTY
    assert by_url["http://a.org/de"]["drop_reason"] == P.LANG_PREFILTER_NOT_KEPT
    assert by_url["http://a.org/de"]["lang"] == "de"
    zh = by_url["http://a.org/zh"]
    assert zh["drop_reason"] is None and zh["lang"] == "zh" and zh["charset"] == "gb18030"
    assert "长江流域" in zh["text"]
    # exact duplicates share the hash (the Spark job picks the survivor)
    assert by_url["http://b.org/en-copy"]["content_hash"] == by_url["http://a.org/en"]["content_hash"]
    # provenance and ids
    assert all(r["warc_file"] == "mem.warc" for r in rows)
    assert len({r["doc_id"] for r in rows}) == len(rows)
    assert by_url["http://a.org/en"]["fetch_time"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    offsets = [r["warc_offset"] for r in rows]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_lang_prefilter_off_gives_lang_not_kept(pcfg):
    import dataclasses

    prep = P.Prepare(dataclasses.replace(pcfg, lang_prefilter_threshold=0.0))
    de = " ".join("Die Stadtverwaltung hat heute neue Pläne für den Ausbau der Radwege vorgestellt." for _ in range(12))
    rows = run_records(prep, [("http://a.org/de", 200, "text/html", page(de).encode(), "response")])
    assert rows[0]["drop_reason"] == P.LANG_NOT_KEPT and rows[0]["lang"] == "de"


def test_lang_prefilter_keeps_kept_language_with_foreign_boilerplate(prep):
    # Chinese article inside an English-heavy navigation: the pre-filter must not drop it.
    nav = "<nav>" + " ".join(f"<a href='/{i}'>Home News Sports Weather Contact</a>" for i in range(5)) + "</nav>"
    html = page(ARTICLE_ZH).replace("<body>", "<body>" + nav).encode()
    rows = run_records(prep, [("http://a.org/zh", 200, "text/html; charset=utf-8", html, "response")])
    assert rows[0]["drop_reason"] is None and rows[0]["lang"] == "zh"


def test_lang_below_threshold(pcfg):
    prep = P.Prepare(pcfg)
    mixed = "ok 123 456 !!! ### lol xd " * 3
    rows = run_records(prep, [("http://a.org/m", 200, "text/html", page(mixed).encode(), "response")])
    assert rows[0]["drop_reason"] in (P.LANG_BELOW_THRESHOLD, P.LANG_NOT_KEPT)
    assert rows[0]["lang_score"] is not None


def test_too_large_record(pcfg):
    import dataclasses

    prep = P.Prepare(dataclasses.replace(pcfg, max_record_bytes=1000))
    rows = run_records(prep, [("http://a.org/big", 200, "text/html", page(ARTICLE_EN).encode(), "response")])
    assert rows[0]["drop_reason"] == P.WARC_RECORD_TOO_LARGE


def test_extract_timeout_and_error_are_drops(prep, monkeypatch):
    def slow(*a, **k):
        raise ExtractTimeout()

    monkeypatch.setattr(P, "extract", slow)
    rows = run_records(prep, [("http://a.org/x", 200, "text/html", page(ARTICLE_EN).encode(), "response")])
    assert rows[0]["drop_reason"] == P.ERROR_EXTRACT_TIMEOUT

    def broken(*a, **k):
        raise ValueError("lxml could not parse")

    monkeypatch.setattr(P, "extract", broken)
    rows = run_records(prep, [("http://a.org/x", 200, "text/html", page(ARTICLE_EN).encode(), "response")])
    assert rows[0]["drop_reason"] == P.ERROR_EXTRACT


def test_import_error_is_not_masked(prep, monkeypatch):
    def missing(*a, **k):
        raise ImportError("no module named trafilatura")

    monkeypatch.setattr(P, "extract", missing)
    with pytest.raises(ImportError):
        run_records(prep, [("http://a.org/x", 200, "text/html", page(ARTICLE_EN).encode(), "response")])


def test_fault_injection_is_a_counted_drop(prep, monkeypatch):
    monkeypatch.setenv("DOTS_FAULT_INJECT", "/boom")
    rows = run_records(
        prep,
        [
            ("http://a.org/boom", 200, "text/html", page(ARTICLE_EN).encode(), "response"),
            ("http://a.org/fine", 200, "text/html", page(ARTICLE_EN).encode(), "response"),
        ],
    )
    assert [r["drop_reason"] for r in rows] == [P.ERROR_RECORD, None]


# ---------------------------------------------------------------- WARC reading robustness


@pytest.mark.parametrize("gz", [True, False])
def test_corrupt_record_in_the_middle_is_skipped(gz, prep):
    good = [(f"http://a.org/{i}", 200, "text/html", page(ARTICLE_EN + str(i)).encode(), "response") for i in range(3)]
    data = warc_bytes(good[:2], gz) + b"WARC/1.0\r\nContent-Length: 99999\r\n\r\ngarbage" * (1 if not gz else 0)
    if gz:
        data += b"\x1f\x8b\x08\x00garbage-not-deflate" * 2
    data += warc_bytes(good[2:], gz)
    items = list(iter_records(io.BytesIO(data), gz, 10**7))
    recs = [i for i in items if not isinstance(i, WarcError)]
    errs = [i for i in items if isinstance(i, WarcError)]
    assert [r.target_uri for r in recs] == ["http://a.org/0", "http://a.org/1", "http://a.org/2"]
    assert len(errs) == 1 and errs[0].reason.startswith("error_warc")
    rows = list(prep.process_records(iter(items), "mem"))
    assert sum(r["drop_reason"] is None for r in rows) == 3
    assert sum((r["drop_reason"] or "").startswith("error_warc") for r in rows) == 1


def test_not_a_warc_at_all():
    items = list(iter_records(io.BytesIO(b"this is not a warc file\n" * 10), False, 1000))
    assert len(items) == 1 and items[0].reason == ERROR_WARC_CORRUPT


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="lang_threshold"):
        load_config(overrides=["prepare.lang_threshold=1.5"])
    with pytest.raises(ValueError, match="does not exist"):
        load_config(overrides=["prepare.blocklist_domain_files=[/nope.txt]"])
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(overrides=["prepare.lang_treshold=0.5"])
    with pytest.raises(ValueError, match="expected a number"):
        load_config(overrides=["prepare.lang_threshold=high"])


def test_memory_bounded_by_largest_record_not_file(tmp_path):
    """Streaming: the reader's peak allocation stays near one record, however long the file."""
    import tracemalloc

    body = page(ARTICLE_EN * 40).encode()  # ~ 200 KB per record
    peaks = {}
    for n in (5, 60):
        path = tmp_path / f"{n}.warc.gz"
        path.write_bytes(warc_bytes([(f"http://a.org/{i}", 200, "text/html", body, "response") for i in range(n)]))
        tracemalloc.start()
        with open(path, "rb") as f:
            count = sum(1 for r in iter_records(f, True, 10**7) if r.body)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == n
    assert peaks[60] < 1.5 * peaks[5] + 2**20, peaks
    assert peaks[60] < 60 * len(body) / 4, peaks


def test_visible_text_skips_scripts_keeps_their_tail():
    from pipeline.prepare.extract import parse_html, visible_text

    tree = parse_html("<html><body><p>Hello</p><script>var x = 1;</script>after script<style>p{}</style></body></html>")
    vt = visible_text(tree)
    assert "Hello" in vt and "after script" in vt and "var x" not in vt and "p{}" not in vt


def test_arc_records_get_the_same_doc_ids_on_every_read():
    """warcio's ARC-to-WARC conversion makes up a random WARC-Record-ID per record: ARC records
    must not use it, so their doc ids (URL + date) are the same on every run."""
    from tests.conftest import shared_data

    arc = shared_data("warcio-warc/test/data/example.arc.gz")
    cfg = load_config().prepare

    def ids() -> list[str]:
        return [r["doc_id"] for r in P.process_warc_file(str(arc), cfg)]

    first = ids()
    assert first, "the ARC fixture yields records"
    assert ids() == first
    with open(arc, "rb") as f:
        recs = [r for r in iter_records(f, True, 1 << 20) if not isinstance(r, WarcError)]
    assert recs and all(r.record_id is None for r in recs)


@pytest.mark.parametrize("fast_readability", [True, False])
def test_a_budget_running_out_inside_trafilaturas_fallbacks_is_not_swallowed(monkeypatch, fast_readability):
    """trafilatura guards readability with ``except Exception``: the timeout must get through it."""
    from trafilatura import readability_lxml

    def out_of_time(self):
        raise ExtractTimeout()

    monkeypatch.setattr(readability_lxml.Document, "summary", out_of_time)
    with pytest.raises(ExtractTimeout):
        extract(page(ARTICLE_EN), fast=False, fast_readability=fast_readability)
    assert extract(page(ARTICLE_EN), fast=True)[1]  # the fast path never runs readability
