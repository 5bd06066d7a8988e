"""The synthetic sample crawl: readable, complete, charset-correct, deterministic."""

from __future__ import annotations

import gzip
import re
from collections import Counter

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from pipeline.prepare import samplegen

N = 60  # small: generation ~0.5 s, reading ~0.1 s


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("sg") / "sample.warc.gz"
    manifest = samplegen.generate(str(path), seed=3, n_articles=N)
    return path, manifest


def _article(body: bytes, charset: str) -> list[str]:
    """The article paragraphs: the longest run of consecutive tag-free <p> lines."""
    text = body.lstrip(b"\xef\xbb\xbf").decode(charset)
    runs = re.findall(r"((?:<p>[^<]*</p>\n)+)", text)
    return re.findall(r"<p>([^<]*)</p>", max(runs, key=len)) if runs else []


def _read(path) -> tuple[list[tuple], Exception | None]:
    """[(record_id, warc_type, offset, http status, content-type, body)], error raised at the end."""
    out, err = [], None
    with open(path, "rb") as f:
        it = ArchiveIterator(f)
        try:
            for rec in it:
                status = rec.http_headers.get_statuscode() if rec.http_headers else None
                ct = rec.http_headers.get_header("Content-Type") if rec.http_headers else None
                body = rec.content_stream().read()
                out.append(
                    (
                        rec.rec_headers.get_header("WARC-Record-ID"),
                        rec.rec_type,
                        it.get_record_offset(),
                        status,
                        ct,
                        body,
                    )
                )
        except ArchiveLoadFailed as e:
            err = e
    return out, err


def test_reads_back_with_warcio_until_the_corrupt_tail(sample):
    path, m = sample
    recs, err = _read(path)
    good = [r for r in m["records"] if r["warc_type"] != "corrupt"]
    assert isinstance(err, ArchiveLoadFailed), "the garbage tail must make warcio raise"
    assert [r[0] for r in recs] == [r["record_id"] for r in good]
    assert [r[2] for r in recs] == [r["offset"] for r in good]
    tail = m["records"][-1]
    assert tail["warc_type"] == "corrupt" and tail["expect"] == "error"
    assert recs[-1][2] < tail["offset"] < path.stat().st_size
    assert not path.read_bytes()[tail["offset"] :].startswith((b"WARC/", b"\x1f\x8b"))
    assert len({r["record_id"] for r in good}) == len(good)
    assert sum(1 for r in m["records"] if r["warc_type"] == "response" and r.get("kind") == "html") == N


def test_corrupt_tail_also_fails_the_arc_fallback(sample):
    path, m = sample
    n = 0
    with open(path, "rb") as f, pytest.raises(ArchiveLoadFailed):
        for _ in ArchiveIterator(f, arc2warc=True):
            n += 1
    assert n == m["n_records"] - 1


def test_contains_the_promised_record_kinds(sample):
    _, m = sample
    recs = m["records"]
    types = Counter(r["warc_type"] for r in recs)
    for t in ("warcinfo", "request", "metadata", "revisit", "response", "corrupt"):
        assert types[t] >= 1, t
    cts = {(r.get("content_type") or "").split(";")[0] for r in recs}
    assert {"image/png", "application/pdf", "text/plain", "text/html"} <= cts
    assert {r.get("status") for r in recs} >= {200, 301, 404}
    urls = [r["url"] or "" for r in recs]
    assert any("//ads.blocked.example/" in u for u in urls)
    assert any("porn" in u.split("/", 3)[-1] for u in urls)
    html = [r for r in recs if r.get("kind") == "html"]
    assert {"gbk", "gb2312", "shift_jis", "iso-8859-1", "windows-1252", "windows-1251", "utf-8"} <= {
        r["charset"] for r in html
    }
    sources = {r["charset_source"] for r in html}
    assert {"header", "meta", "header+meta", "none", "bom"} <= sources
    assert any(r["charset"] in ("gbk", "gb2312") and r["charset_source"] == "none" for r in html)
    assert {r["lang"] for r in html} >= {"en", "zh", "de", "fr", "es", "ru", "ja"}
    reasons = Counter(r["reason"] for r in recs)
    for k in (
        None,
        samplegen.KIND_URL_BLOCKLIST,
        samplegen.KIND_NON_HTML,
        samplegen.KIND_HTTP_STATUS,
        samplegen.KIND_EMPTY_TEXT,
        samplegen.KIND_LANG,
        samplegen.KIND_EXACT_DUP,
        samplegen.KIND_ERROR,
        samplegen.KIND_SKIP,
    ):
        assert reasons[k] >= 1, k
    assert any(r.get("near_duplicate_of") for r in recs)
    assert sum(m["counts"].values()) == m["n_records"] == len(recs)


def test_duplicates_follow_their_original_and_share_the_article_text(sample):
    path, m = sample
    bodies = {r[0]: r[5] for r in _read(path)[0]}
    by_url = {r["url"]: r for r in m["records"] if r.get("kind") == "html"}
    pos = {r["url"]: i for i, r in enumerate(m["records"]) if r.get("kind") == "html"}

    def article(r: dict) -> list[str]:
        return _article(bodies[r["record_id"]], r["charset"])

    n_exact = n_near = 0
    for r in by_url.values():
        if r.get("duplicate_of"):
            orig = by_url[r["duplicate_of"]]
            assert pos[orig["url"]] < pos[r["url"]]
            assert orig["url"].split("/")[2] != r["url"].split("/")[2], "a copy lives on another site"
            assert article(r) == article(orig)
            assert bodies[r["record_id"]] != bodies[orig["record_id"]], "boilerplate differs"
            n_exact += 1
        if r.get("near_duplicate_of"):
            orig = by_url[r["near_duplicate_of"]]
            a, b = " ".join(article(r)), " ".join(article(orig))
            assert a != b
            wa, wb = set(a.split()), set(b.split())
            if r["lang"] == "en":
                assert len(wa & wb) / len(wa | wb) > 0.8
            n_near += 1
    assert n_exact >= 2 and n_near >= 2


def test_charsets_decode_as_declared(sample):
    path, m = sample
    recs = {r[0]: r for r in _read(path)[0]}
    for r in m["records"]:
        if r.get("kind") != "html":
            continue
        _, _, _, status, ct, body = recs[r["record_id"]]
        assert status == "200"
        if r["charset_source"] == "bom":
            assert body.startswith(b"\xef\xbb\xbf")
            body = body[3:]
        text = body.decode(r["charset"])  # strict
        if r["title"]:
            assert r["title"].replace("&", "&amp;") in text
            assert r["probe"] in text
        head = text[: text.find("<body")].lower()
        if r["declared_header"]:
            assert r["declared_header"].lower() in ct.lower()
        else:
            assert "charset" not in ct.lower()
        if r["declared_meta"]:
            assert f"charset={r['declared_meta'].lower()}" in head.replace('"', "")
        elif r["charset_source"] != "header+meta":
            assert "charset" not in head
        if r["charset"] != "utf-8" and r["lang"] in ("zh", "ja", "ru", "fr"):
            with pytest.raises(UnicodeDecodeError):
                body.decode("utf-8")
    # the traps that need WHATWG label mapping: gb2312 label on GBK bytes, latin-1 label on cp1252 bytes
    traps = [r for r in m["records"] if "label" in (r.get("charset_source") or "")]
    assert {r["charset"] for r in traps} == {"gbk", "windows-1252"}
    for r in traps:
        body = recs[r["record_id"]][5]
        if r["charset"] == "gbk":
            with pytest.raises(UnicodeDecodeError):
                body.decode("gb2312")
        else:
            assert any(0x80 <= b <= 0x9F for b in body), "cp1252-only bytes present"
            assert "\u20ac" in body.decode("windows-1252") and "\u20ac" not in body.decode("iso-8859-1")


def test_articles_are_long_enough_for_quality_heuristics(sample):
    path, m = sample
    bodies = {r[0]: r[5] for r in _read(path)[0]}
    for r in m["records"]:
        if r.get("kind") == "html" and r["reason"] in (None, samplegen.KIND_EXACT_DUP):
            paras = _article(bodies[r["record_id"]], r["charset"])
            assert len(paras) >= 3
            assert r["words"] >= (300 if r["lang"] == "zh" else 150), r["url"]


def test_non_html_payloads_are_valid(sample):
    path, m = sample
    recs = {r[0]: r for r in _read(path)[0]}
    by_kind = {
        r["kind"]: recs[r["record_id"]] for r in m["records"] if r.get("kind") in ("png", "pdf", "301")
    }
    assert by_kind["png"][5].startswith(b"\x89PNG\r\n\x1a\n") and by_kind["png"][5].endswith(
        b"IEND\xaeB`\x82"
    )
    assert by_kind["pdf"][5].startswith(b"%PDF-1.4") and by_kind["pdf"][5].rstrip().endswith(b"%%EOF")
    assert by_kind["301"][3] == "301"


def test_deterministic_bytes_for_a_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    m1 = samplegen.generate(str(a / "s.warc.gz"), seed=7, n_articles=45)
    m2 = samplegen.generate(str(b / "s.warc.gz"), seed=7, n_articles=45)
    samplegen.generate(str(c / "s.warc.gz"), seed=8, n_articles=45)
    data = (a / "s.warc.gz").read_bytes()
    assert data == (b / "s.warc.gz").read_bytes()
    assert data != (c / "s.warc.gz").read_bytes()
    assert m1["records"] == m2["records"]
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\x00\x00\x00\x00", "gzip member with mtime 0"


def test_plain_warc_holds_the_same_records(tmp_path):
    (tmp_path / "p").mkdir()
    mg = samplegen.generate(str(tmp_path / "s.warc.gz"), seed=1, n_articles=45)
    mp = samplegen.generate(str(tmp_path / "p" / "s.warc.gz"), seed=1, n_articles=45, plain=True)
    raw = (tmp_path / "p" / "s.warc.gz").read_bytes()
    assert raw.startswith(b"WARC/1.0\r\n")
    assert [r["record_id"] for r in mg["records"]] == [r["record_id"] for r in mp["records"]]
    # the gzip file is one member per record: decompressing the good part gives the plain bytes
    gz = (tmp_path / "s.warc.gz").read_bytes()
    good_end = mg["records"][-1]["offset"]
    assert gzip.decompress(gz[:good_end]) == raw[: mp["records"][-1]["offset"]]


def test_cli_writes_warc_and_manifest(tmp_path, capsys):
    out = tmp_path / "sample" / "sample.warc.gz"
    samplegen.main(["--output", str(out), "--seed", "2", "--n-articles", "45"])
    assert out.exists() and (tmp_path / "sample" / "sample.manifest.json").exists()
    assert "records" in capsys.readouterr().out


def test_too_few_articles_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="n_articles"):
        samplegen.generate(str(tmp_path / "s.warc.gz"), n_articles=10)
