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
    # parse_html's bytes route and its exceptions
    "<!DOCTYPE html>",  # no newline: the doctype repair appends one
    "<!DOCTYPE html/><html><body><p>bad doctype</p></body></html>",
    "<html><body><p>control\x00 chars\x0b and \ufffe here</p></body></html>",
    "\ufeff<html><body><p>leading BOM</p></body></html>",
    "\u3000<html><body><p>ideographic space first</p></body></html>",  # full-html test: str yes, bytes no
    "<html><body><p>lone \ud800 surrogate</p></body></html>",
    "<html><head><meta charset='gbk'></head><body><p>中文 meta says gbk</p></body></html>",
]


@pytest.mark.parametrize("page", PAGES)
def test_parse_html_builds_the_tree_trafilatura_builds(page):
    ours, theirs = parse_html(page), load_html(page)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert etree.tostring(ours) == etree.tostring(theirs)
        assert all(type(e) is lhtml.HtmlElement for e in ours.iter() if isinstance(e.tag, str))


def _read_page(f) -> str:
    import gzip

    raw = f.read_bytes()
    return (gzip.decompress(raw) if f.name.endswith(".gz") else raw).decode("utf-8", "replace")


@pytest.mark.shared_data
def test_extraction_unchanged_on_gold_pages():
    files = sorted(shared_data("trafilatura-eval/tests/eval").glob("*.html*"))[:60]
    files += sorted(shared_data("html-cleaning-dataset-merged/cleaneval-dev/input").glob("*.html.gz"))[:40]
    assert len(files) >= 50
    for f in files:
        html = _read_page(f)
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
<div class="share-box" style="display:none">both expressions of OVERALL_DISCARD_XPATH</div>
<div class="sidebar"><p>x<span style="display:none">inside an earlier match</span>y</p>tail</div>
<header><div class="bottom">a later match inside an earlier one</div></header>
<div class="infinite-scroll"><div class="elementor-share-buttons">nested second</div></div>
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


def _same_pruning(tree, name: str) -> None:
    """The grouped form of trafilatura's list ``name`` gives prune_unwanted_nodes what the
    XPath objects give it: the same ``dict.fromkeys`` of matches and, in both modes, the same tree."""
    import copy

    from trafilatura.htmlprocessing import prune_unwanted_nodes

    from pipeline.prepare.xpath_fast import _COMPILED, _ORIGINAL

    def matches(exprs):
        return list(dict.fromkeys(e for x in exprs for e in x(tree)))

    assert matches(_COMPILED[name]) == matches(_ORIGINAL[name]), name
    for group in _COMPILED[name]:
        got = group(tree)
        assert len(got) == len(set(got)), name  # each element in the group of its first expression
    for with_backup in (False, True):
        theirs, ours = copy.deepcopy(tree), copy.deepcopy(tree)
        prune_unwanted_nodes(theirs, _ORIGINAL[name], with_backup)
        prune_unwanted_nodes(ours, _COMPILED[name], with_backup)
        assert etree.tostring(ours) == etree.tostring(theirs), (name, with_backup)


def test_grouped_xpaths_prune_like_lxml_on_an_inline_page():
    from pipeline.prepare.xpath_fast import _COMPILED, _ORIGINAL, PRUNE_LISTS, CompiledXPath, use_compiled

    use_compiled(False)
    # the lists of several expressions run as one walk each
    for name in ("OVERALL_DISCARD_XPATH", "PRECISION_DISCARD_XPATH", "RAW_TREE_PRUNE_XPATH"):
        assert len(_COMPILED[name]) == 1 and isinstance(_COMPILED[name][0], CompiledXPath), name
    tree = parse_html(XPATH_PAGE)
    for name in PRUNE_LISTS:
        if name in _COMPILED:
            _same_pruning(tree, name)
    # the page has what makes grouping delicate: an element both expressions match, and a
    # match of the second expression inside a match of the first
    first, second = (CompiledXPath(e.path)(tree) for e in _ORIGINAL["OVERALL_DISCARD_XPATH"])
    assert set(first) & set(second)
    assert any(set(e.iterancestors()) & set(first) for e in second if e not in first)


def test_an_expression_reading_descendants_starts_its_own_run():
    """Sequentially, a ``not(.//h1)`` test sees the tree after the earlier expressions deleted
    their matches; a grouped walk would see it before."""
    from trafilatura.htmlprocessing import prune_unwanted_nodes

    from pipeline.prepare.xpath_fast import CompiledXPath, Unsupported, group

    first = etree.XPath(".//*[self::div][@class='drop']")
    second = etree.XPath(".//*[self::div or self::section][@id='x'][not(.//h1)]")
    third = etree.XPath(".//*[self::section][@id='x']")
    with pytest.raises(Unsupported):
        CompiledXPath([first.path, second.path])
    grouped = group([first, second, third])
    assert [len(g.paths) for g in grouped] == [1, 2]
    page = (
        '<html><body><div id="x"><div class="drop"><h1>t</h1></div><p>keep?</p></div><p>b</p></body></html>'
    )
    theirs = prune_unwanted_nodes(parse_html(page), [first, second, third])
    ours = prune_unwanted_nodes(parse_html(page), grouped)
    assert etree.tostring(ours) == etree.tostring(theirs)
    assert b"keep?" not in etree.tostring(ours)  # the outer div lost its h1, then matched


@pytest.mark.shared_data
def test_compiled_xpaths_match_lxml_on_gold_pages():
    import trafilatura.xpaths as xp

    from pipeline.prepare.xpath_fast import PRUNE_LISTS, CompiledXPath, Unsupported, use_compiled

    use_compiled(False)
    files = sorted(shared_data("trafilatura-eval/tests/eval").glob("*.html*"))[::4]
    trees = []
    for f in files:
        tree = parse_html(_read_page(f))
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
    for tree in trees[::8]:
        for name in PRUNE_LISTS:
            _same_pruning(tree, name)


@pytest.mark.shared_data
def test_extraction_unchanged_with_compiled_xpaths():
    """extract() gives byte-identical output with the compiled, grouped pruning lists and with
    trafilatura's own XPath objects, on gold pages of three sets."""
    root = "html-cleaning-dataset-merged"
    files = sorted(shared_data(f"{root}/page-signal-master/input").glob("*.html.gz"))[:60]
    files += sorted(shared_data(f"{root}/cleaneval-final/input").glob("*.html.gz"))[:30]
    files += sorted(shared_data("trafilatura-eval/tests/eval").glob("*.html*"))[1::8][:50]
    assert len(files) >= 130
    differing = []
    for f in files:
        html = _read_page(f)
        want = extract(parse_html(html), fast_xpaths=False)
        if extract(parse_html(html), fast_xpaths=True) != want:
            differing.append(f.name)
    assert differing == []


def _gold_files(n_each: int) -> list:
    root = "html-cleaning-dataset-merged"
    files = sorted(shared_data(f"{root}/page-signal-master/input").glob("*.html.gz"))[2::7][:n_each]
    files += sorted(shared_data(f"{root}/cleaneval-final/input").glob("*.html.gz"))[3::5][:n_each]
    files += sorted(shared_data("trafilatura-eval/tests/eval").glob("*.html*"))[5::8][:n_each]
    return files


@pytest.mark.shared_data
@pytest.mark.parametrize("precision", [True, False])
def test_extraction_unchanged_with_fewer_tree_copies(precision):
    """A given tree and, in precision mode, readability on the raw tree itself: the same output as
    trafilatura's copies, with its fallbacks on (fast=False), on gold pages of three sets."""
    files = _gold_files(25)
    assert len(files) >= 60
    differing = []
    for f in files:
        html = _read_page(f)
        kw = {"fast": False, "favor_precision": precision}
        want = extract(parse_html(html), fewer_copies=False, **kw)
        if extract(parse_html(html), give_tree=True, fewer_copies=True, **kw) != want:
            differing.append(f.name)
    assert differing == []


def test_fewer_copies_skips_two_copies_and_leaves_a_tree_not_given_alone(monkeypatch):
    import copy as copy_module

    import trafilatura.core as core

    calls = []

    def counting_copy(x):
        calls.append(type(x).__name__)
        return copy_module.copy(x)

    monkeypatch.setattr(core, "copy", counting_copy)
    page = "<html><body><div><p>" + "A sentence about the weather in the hills. " * 20 + "</p></div></body></html>"
    counts = {}
    for mode in (False, True):
        calls.clear()
        extract(parse_html(page), fast=False, give_tree=True, fewer_copies=mode)
        counts[mode] = calls.count("HtmlElement")
    assert counts == {False: 4, True: 2}
    tree = parse_html(page)
    before = etree.tostring(tree)
    assert extract(tree, fast=False, fewer_copies=True)[1]
    assert etree.tostring(tree) == before  # not given: trafilatura worked on a copy
    given = parse_html(page)
    extract(given, fast=False, give_tree=True, fewer_copies=True)
    assert etree.tostring(given) != before  # given: changed in place, no copy made


@pytest.mark.shared_data
@pytest.mark.parametrize("precision", [True, False])
def test_extraction_unchanged_with_fast_readability(precision):
    """The readability fallback (fast=False) with the cheaper Document: the same output, and the same
    summary on each page's whole tree, on gold pages of three sets."""
    from trafilatura.readability_lxml import Document

    from pipeline.prepare.readability_fast import FastDocument

    files = _gold_files(25)
    assert len(files) >= 60
    differing, summaries = [], []
    for f in files:
        html = _read_page(f)
        kw = {"fast": False, "favor_precision": precision}
        want = extract(parse_html(html), give_tree=True, fast_readability=False, **kw)
        if extract(parse_html(html), give_tree=True, fast_readability=True, **kw) != want:
            differing.append(f.name)
        tree = parse_html(html)
        if (
            precision
            and tree is not None
            and Document(tree).summary() != FastDocument(parse_html(html)).summary()
        ):
            summaries.append(f.name)
    assert differing == []
    assert summaries == []


READABILITY_PAGE = """<html><head><title>t</title></head><body class="has-Sidebar">
<div id="Header-Menu"><a href="/">Home</a> <a href="/a">About</a></div>
<div class="SideBar widget"><p>Sidebar text that is long enough to be scored, with, commas.</p></div>
<div class="comment-list article">kept: ok-maybe wins over comment<p>A paragraph in a kept comment
block, long enough to count, with a comma, or two.</p></div>
<div id="main" class="content"><div class="Entry">   Loose text of a misused div, long enough to be a
paragraph, yes.<br>After a break\u00a0with a no-break space,<br/>
<span>inline</span>tail text that becomes its own paragraph, long enough.</div>
<p>First   real paragraph, with commas, more commas, and <b>bold</b>text<i> glued</i> to words.</p>
<p>\u00a0Second paragraph\u2003with em spaces and a <a href="/x">link inside the text</a>, more.</p>
<table><tr><td>A table cell with enough text to be scored as a paragraph, surely.</td></tr></table>
<div class="links"><p><a href="/1">one link</a> <a href="/2">two links</a> <a href="/3">three links
here</a> and a few words</p></div>
<div><a href="/only">a div holding only a link, no loose text</a></div>
<div>Loose text before a block, in a div that stays a div.<p>A block paragraph inside it, long
enough to be scored, yes.</p>Tail text after the block, long enough.<br>After a br.<br> </div>
<div><h2 class="meta">A negative header</h2><h3><a href="/h">A link header</a></h3>
<pre>preformatted text,
 with lines, long enough to be scored</pre></div>
</div>
<div class="footer-nav"><ul><li><a href="/f">Footer</a></li></ul></div>
</body></html>"""


def test_fast_readability_summary_matches_on_an_inline_page():
    """Unlikely candidates (mixed case, class and id, the ok-maybe exception), misused divs, nested
    candidates with text glued across elements and Unicode spaces, link-heavy blocks: the same
    summary, from our parser and from lxml's default one (which keeps comments)."""
    from trafilatura.readability_lxml import Document

    from pipeline.prepare.readability_fast import FastDocument

    pages = [READABILITY_PAGE, READABILITY_PAGE.replace("<p>First", "<!-- a comment --><p>First")]
    for page in pages:
        for parse in (parse_html, lhtml.fromstring):
            want = Document(parse(page)).summary()
            assert "real paragraph" in want and "Sidebar text" not in want and "<p>Tail text" in want
            assert FastDocument(parse(page)).summary() == want


def test_composed_text_lengths_equal_trimmed_text_content():
    """_Lengths composes an element's trimmed text length from its children's; every element of the
    inline page, composed (all marked) or read directly, gives len(trim(text_content()))."""
    from trafilatura.utils import trim

    from pipeline.prepare.readability_fast import _Lengths

    for parse in (parse_html, lhtml.fromstring):
        tree = parse(READABILITY_PAGE.replace("<p>First", "<!-- c --><p>First"))
        elems = list(tree.iter(etree.Element))
        composed = _Lengths()
        composed.mark(elems)
        want = [len(trim(e.text_content())) for e in elems]
        assert [composed.of(e) for e in elems] == want
        assert [_Lengths().of(e) for e in elems] == want
        assert len(set(want)) > 10  # the page has elements of many different lengths


def test_fast_readability_switch_installs_and_removes_the_class(monkeypatch):
    import trafilatura
    import trafilatura.external as external
    from trafilatura.readability_lxml import Document

    from pipeline.prepare.readability_fast import FastDocument, use_fast_readability

    page = "<html><body><div><p>" + "A sentence about the weather. " * 20 + "</p></div></body></html>"
    extract(page, fast=False, fast_readability=False)
    assert external.ReadabilityDocument is Document
    extract(page, fast=False, fast_readability=True)
    assert external.ReadabilityDocument is FastDocument
    monkeypatch.setattr(trafilatura, "__version__", "0.0.0")
    assert use_fast_readability(True) is False
    assert external.ReadabilityDocument is Document
    monkeypatch.undo()
    assert use_fast_readability(True) is True
    assert external.ReadabilityDocument is FastDocument
