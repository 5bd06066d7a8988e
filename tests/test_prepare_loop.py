"""The per-record loop's fast paths give exactly what the plain versions give (no Spark)."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from lxml import etree
from lxml import html as lhtml
from trafilatura.utils import load_html

from pipeline.prepare.extract import extract, parse_html
from pipeline.prepare.normalize import _punct_table, normalize_text
from tests.conftest import shared_data


def test_punct_table_covers_every_punctuation_code_point():
    full = {cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P")}
    assert set(_punct_table()) == full


@pytest.mark.parametrize(
    "text",
    [
        "Hello,   World!\n\nNext line",
        "a\x1cb\x1dc\x1ed\x1fe",  # ASCII separators: whitespace for str.isspace
        "no\u00a0break\u3000ideographic\u2028line\x85next\u200bzero-width",
        "  «Guillemets» — dash… 《书名》，标点。 ",
        "Ｆｕｌｌｗｉｄｔｈ Ａ and Å (A + ring)",
        "",
    ],
)
def test_normalize_text_matches_the_regex_reference(text):
    t = unicodedata.normalize("NFD", text.translate(_punct_table())).lower()
    assert normalize_text(text) == re.sub(r"\s+", " ", t).strip()


PAGES = [
    "<html><head><title>T</title></head><body><form><p>inside a form</p><input name=q></form>"
    "<p>Body text here.</p><!-- comment --></body></html>",
    "<?xml version='1.0' encoding='utf-8'?><html><body><p>declared</p></body></html>",
    "<!DOCTYPE html><html/><body><p>self-closing html</p></body>",
    "<p>just a fragment</p>",
    "no markup at all",
    "",
]


@pytest.mark.parametrize("page", PAGES)
def test_parse_html_builds_the_tree_trafilatura_builds(page):
    ours, theirs = parse_html(page), load_html(page)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert etree.tostring(ours) == etree.tostring(theirs)
        assert all(type(e) is lhtml.HtmlElement for e in ours.iter() if isinstance(e.tag, str))


@pytest.mark.shared_data
def test_extraction_unchanged_on_gold_pages():
    import gzip

    files = sorted(shared_data("trafilatura-eval/tests/eval").glob("*.html*"))[:60]
    files += sorted(shared_data("html-cleaning-dataset-merged/cleaneval-dev/input").glob("*.html.gz"))[:40]
    assert len(files) >= 50
    for f in files:
        raw = f.read_bytes()
        html = (gzip.decompress(raw) if f.name.endswith(".gz") else raw).decode("utf-8", "replace")
        theirs = load_html(html)
        ours = parse_html(html)
        want = extract(theirs) if theirs is not None else (None, None)
        got = extract(ours) if ours is not None else (None, None)
        assert got == want, f.name


XPATH_PAGE = """<html><body>
<div class="share-box" id="main">a</div><div id="main" class="share-box">b</div>
<span role="Navigation">c</span><p data-lp-replacement-content="">d</p>
<section class="comments-title">e</section><div style="display: none">f</div>
<div class="Teaser x">g</div><div id="infinite-scroll"><h1>kept: has h1</h1></div>
<div class="infinite-scroll">h</div><ul class="comment-list"><li>i</li></ul>
<article aria-hidden="true">j</article><header>k</header><em class="caption">l</em>
</body></html>"""


def test_compiled_xpaths_match_lxml_on_an_inline_page():
    import trafilatura.xpaths as xp

    from pipeline.prepare.xpath_fast import CompiledXPath, use_compiled

    assert use_compiled(False)["OVERALL_DISCARD_XPATH"] == 2
    tree = parse_html(XPATH_PAGE)
    compared = 0
    for name in (
        "OVERALL_DISCARD_XPATH",
        "RAW_TREE_PRUNE_XPATH",
        "REMOVE_COMMENTS_AND_LISTS_XPATH",
        "TEASER_DISCARD_XPATH",
        "PRECISION_DISCARD_XPATH",
        "DISCARD_IMAGE_ELEMENTS",
    ):
        for expr in getattr(xp, name):
            got = CompiledXPath(expr.path)(tree)
            assert got == expr(tree), (name, expr.path[:60])
            compared += bool(got)
    assert compared >= 5  # the page exercises most expressions


@pytest.mark.shared_data
def test_compiled_xpaths_match_lxml_on_gold_pages():
    import gzip

    import trafilatura.xpaths as xp

    from pipeline.prepare.xpath_fast import PRUNE_LISTS, CompiledXPath, Unsupported, use_compiled

    use_compiled(False)
    files = sorted(shared_data("trafilatura-eval/tests/eval").glob("*.html*"))[::4]
    trees = []
    for f in files:
        raw = f.read_bytes()
        tree = parse_html(
            (gzip.decompress(raw) if f.name.endswith(".gz") else raw).decode("utf-8", "replace")
        )
        if tree is not None:
            trees.append(tree)
    assert len(trees) >= 100
    for name in PRUNE_LISTS:
        for expr in getattr(xp, name):
            try:
                compiled = CompiledXPath(expr.path)
            except Unsupported:
                continue
            assert all(compiled(t) == expr(t) for t in trees), (name, expr.path[:60])


@pytest.mark.shared_data
def test_extraction_unchanged_with_compiled_xpaths():
    import gzip

    files = sorted(shared_data("html-cleaning-dataset-merged/page-signal-master/input").glob("*.html.gz"))[
        :60
    ]
    assert len(files) >= 50
    for f in files:
        html = gzip.decompress(f.read_bytes()).decode("utf-8", "replace")
        want = extract(parse_html(html), fast_xpaths=False)
        assert extract(parse_html(html), fast_xpaths=True) == want, f.name
