"""Main-text extraction with trafilatura under a per-document time budget.

The HTML is parsed once with lxml; the title is read from that tree and the same tree is handed to
trafilatura (no second parse). ``fast=True`` skips trafilatura's readability/justext fallbacks, which
cost most of its time on pages where its own algorithm already succeeds (bench/stage1 measures the
trade-off against gold). A pathological page can't stall a task: the budget is enforced with
SIGALRM in the worker's main thread and surfaces as :class:`ExtractTimeout`.
"""

from __future__ import annotations

import functools
import signal
import threading
from contextlib import contextmanager
from typing import Any


class ExtractTimeout(BaseException):
    """The per-document extraction budget ran out.

    A ``BaseException``, like ``KeyboardInterrupt``: trafilatura wraps its readability and justext
    fallbacks in ``except Exception``, which would otherwise swallow a budget that runs out inside
    them (the page then goes on with no budget left). Callers catch it by name."""


def _on_alarm(signum, frame):  # pragma: no cover - called by the OS
    raise ExtractTimeout()


@contextmanager
def time_budget(seconds: float):
    """Raise :class:`ExtractTimeout` in this block after ``seconds`` (main thread only; elsewhere
    the budget can't be enforced by a signal and the block runs unbounded)."""
    if (
        seconds <= 0
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
    ):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_available() -> None:
    """Import the extractor now (driver preflight): a missing package fails the job at start."""
    import lxml.html  # noqa: F401
    import trafilatura  # noqa: F401


def _title(tree: Any) -> str | None:
    node = tree.find(".//title")
    if node is None or not node.text_content():
        for sel in (".//meta[@property='og:title']", ".//h1"):
            n = tree.find(sel)
            if n is not None:
                t = n.get("content") if n.tag == "meta" else n.text_content()
                if t and t.strip():
                    return " ".join(t.split())
        return None
    return " ".join(node.text_content().split())


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    """trafilatura's HTML parser settings with a C-level element class lookup.

    ``lxml.html.HTMLParser`` picks each element's Python class through a Python callback
    (``HtmlElementClassLookup.lookup``: form, input, label... get their own classes), run for every
    element proxy the extractor creates -- about 5% of the per-record CPU here. Every element is an
    ``HtmlElement`` here instead, which is all trafilatura uses (tests check the extracted text is
    unchanged on the gold sets)."""
    from lxml import etree
    from lxml import html as lhtml

    parser = lhtml.HTMLParser(
        collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True
    )
    parser.set_element_class_lookup(
        etree.ElementDefaultClassLookup(
            element=lhtml.HtmlElement,
            comment=lhtml.HtmlComment,
            pi=lhtml.HtmlProcessingInstruction,
            entity=lhtml.HtmlEntity,
        )
    )
    return parser


def parse_html(html: str) -> Any:
    """Parse once with lxml, as trafilatura's ``load_html`` does for a string (same repairs and
    sanity check, its parser settings) but with :func:`_parser`; None if unparseable.

    The repaired string is handed to libxml2 as UTF-8 bytes: from a ``str`` lxml passes libxml2
    Latin-1 / UTF-16 / UCS-4 buffers that it converts to UTF-8 itself (~20% of the parse). Where
    the two routes could build different trees (a string that is not valid UTF-8, a leading BOM,
    or lxml's full-document test answering differently for the string and its bytes), the string
    is parsed as ``load_html`` parses it."""
    from lxml import html as lhtml
    from trafilatura.utils import is_dubious_html

    beginning = html[:50].lower()
    dubious = is_dubious_html(beginning)
    html, data = _repair(html, beginning)
    parser = _parser()
    if (
        data is not None
        and not html.startswith("\ufeff")
        and bool(_full_html_str(html)) == bool(_full_html_bytes(data))
    ):
        # From a str, lxml raises ValueError on an XML declaration and load_html then parses the
        # bytes; an error or an empty tree is retried from the bytes: the bytes decide either way.
        tree = _parse_bytes(data, parser)
    else:
        tree = None
        retry_bytes = True
        try:
            tree = lhtml.fromstring(html, parser=parser)
        except ValueError:  # "Unicode strings with encoding declaration are not supported."
            tree, retry_bytes = _parse_bytes(html.encode("utf8", "surrogatepass"), parser), False
        except etree_errors():  # e.g. "Document is empty": retried from bytes below, as trafilatura does
            tree = None
        if (tree is None or len(tree) < 1) and retry_bytes:
            tree = _parse_bytes(html.encode("utf8", "surrogatepass"), parser)
    if tree is not None and dubious and len(tree) < 2:
        return None
    return tree


def _full_html_str(html: str) -> Any:
    from lxml.html import _looks_like_full_html_unicode

    return _looks_like_full_html_unicode(html)


def _full_html_bytes(data: bytes) -> Any:
    from lxml.html import _looks_like_full_html_bytes

    return _looks_like_full_html_bytes(data)


def _has_invalid_xml_bytes(data: bytes) -> bool:
    """Whether UTF-8 ``data`` holds a control character that trafilatura's ``INVALID_XML_CHARS``
    removes (C0 controls other than tab, LF, CR): a vectorised scan, ~20x cheaper than the regex."""
    import numpy as np

    a = np.frombuffer(data, np.uint8)
    low = a[a < 32]
    return bool(((low != 9) & (low != 10) & (low != 13)).any())


def _repair(html: str, beginning: str) -> tuple[str, bytes | None]:
    """trafilatura's ``repair_faulty_html`` (same result), plus the UTF-8 bytes of the result (None
    when the string has lone surrogates). Its invalid-character regex runs only when a cheap scan
    finds such a character; the doctype line is rebuilt only when the repair changes it."""
    from trafilatura.utils import DOCTYPE_TAG, FAULTY_HTML, INVALID_XML_CHARS

    try:
        data: bytes | None = html.encode("utf-8")
    except UnicodeEncodeError:
        data = None
    if data is None or "\ufffe" in html or "\uffff" in html or _has_invalid_xml_bytes(data):
        fixed = INVALID_XML_CHARS.sub("", html)
        if fixed != html:
            html, data = fixed, None
    if "doctype" in beginning:  # libxml2/LXML issue: https://bugs.launchpad.net/lxml/+bug/1955915
        firstline, nl, rest = html.partition("\n")
        first = DOCTYPE_TAG.sub("", firstline, count=1)
        if first != firstline or not nl:
            html, data = first + "\n" + rest, None
    for line in html[:4096].splitlines()[:4]:  # self-closing <html/> in the first lines
        if "<html" in line and line.endswith("/>"):
            html, data = FAULTY_HTML.sub(r"\1>", html, count=1), None
            break
    if data is None:
        try:
            data = html.encode("utf-8")
        except UnicodeEncodeError:
            data = None
    return html, data


def etree_errors() -> tuple[type[BaseException], ...]:
    from lxml import etree

    return (etree.ParserError, etree.XMLSyntaxError)


def _parse_bytes(data: bytes, parser: Any) -> Any:
    from lxml import html as lhtml

    try:
        return lhtml.fromstring(data, parser=parser)
    except (ValueError, *etree_errors()):
        return None


_SKIP_TAGS = frozenset(("script", "style", "noscript", "template"))


def visible_text(tree: Any, max_chars: int = 2000) -> str:
    """Cheap visible text of the page body (no boilerplate removal), for the language pre-filter.
    Text inside script/style is skipped; the text that follows them (their tail) is kept."""
    body = tree.find("body")
    parts: list[str] = []
    append = parts.append
    n = 0
    for el in (body if body is not None else tree).iter():
        tag = el.tag
        if isinstance(tag, str) and tag not in _SKIP_TAGS:
            t = el.text
            if t and not t.isspace():
                append(t.strip())
                n += len(t)
        t = el.tail
        if t and not t.isspace():
            append(t.strip())
            n += len(t)
        if n >= max_chars:
            break
    return " ".join(parts)


class _Owned:
    """A parsed tree handed over to trafilatura, which may change it: it is not copied first."""

    __slots__ = ("tree",)

    def __init__(self, tree: Any):
        self.tree = tree


# The trafilatura release that the shortcuts into its internals (:func:`use_fewer_copies`,
# :mod:`pipeline.prepare.readability_fast`) were checked against: tests/test_prepare_loop.py compares
# the output with and without them. Under another release they stay off.
TRAFILATURA_CHECKED = "2.3.1"


def trafilatura_checked() -> bool:
    """Whether the installed trafilatura is :data:`TRAFILATURA_CHECKED`."""
    import trafilatura

    return trafilatura.__version__ == TRAFILATURA_CHECKED


_TRAFILATURA_ORIGINALS: dict[str, Any] = {}
_TRAFILATURA_SHORTCUTS: dict[str, Any] = {}


def use_fewer_copies(enabled: bool = True) -> bool:
    """Skip two of the four whole-tree copies trafilatura makes per page where nothing reads the
    copied-from tree afterwards (each copy is ~0.35 ms, ~2% of the per-record CPU):

    * ``bare_extraction`` copies a tree passed in, to leave the caller's tree as it was. A tree
      wrapped in :class:`_Owned` is given away: ``load_html`` unwraps it, so it is not copied.
    * ``_extract_and_compare`` hands readability a copy of the raw tree. In precision mode (ours)
      the raw tree is not read after that call: the baseline rescue and the recall retry, its only
      later readers, run in the other modes, and ``bare_extraction`` reads only the body. readability
      then gets the raw tree itself.

    The output is unchanged. ``enabled=False`` puts trafilatura's own functions back; another
    trafilatura release than the checked one always keeps them. Returns whether the shortcuts are
    in place; cheap to call again."""
    import trafilatura.core as core

    if not _TRAFILATURA_ORIGINALS:
        _TRAFILATURA_ORIGINALS.update(
            load_html=core.load_html, _extract_and_compare=core._extract_and_compare
        )
        _TRAFILATURA_SHORTCUTS.update(_shortcuts(core, **_TRAFILATURA_ORIGINALS))
    on = enabled and trafilatura_checked()
    for name, fn in (_TRAFILATURA_SHORTCUTS if on else _TRAFILATURA_ORIGINALS).items():
        setattr(core, name, fn)
    return on


def _shortcuts(core: Any, load_html: Any, _extract_and_compare: Any) -> dict[str, Any]:
    def owned_load_html(htmlobject: Any, max_size: int | None = None) -> Any:
        if type(htmlobject) is _Owned:
            return htmlobject.tree
        return load_html(htmlobject, max_size)

    def extract_and_compare(cleaned_tree: Any, backup: Any, tree: Any, options: Any) -> Any:
        if options.focus != "precision":
            return _extract_and_compare(cleaned_tree, backup, tree, options)
        postbody, text = core.extract_content(cleaned_tree, options)
        if not options.fast:
            postbody, text = core.compare_extraction(backup, tree, postbody, text, options)
        return postbody, text

    return {"load_html": owned_load_html, "_extract_and_compare": extract_and_compare}


def extract(
    html: str | Any,
    favor_precision: bool = True,
    include_tables: bool = True,
    fast: bool = True,
    timeout_s: float = 10.0,
    url: str | None = None,
    fast_xpaths: bool = True,
    give_tree: bool = False,
    fewer_copies: bool = True,
    fast_readability: bool = True,
) -> tuple[str | None, str | None]:
    """Return ``(title, text)`` from an HTML string or an already parsed tree; ``text`` is
    newline-separated lines or None when nothing was found.

    ``fast_xpaths`` evaluates trafilatura's pruning XPaths compiled to Python (same node sets,
    :mod:`pipeline.prepare.xpath_fast`). ``give_tree``: the caller does not use the tree it passes
    afterwards, so trafilatura may change it instead of a copy (a string is parsed here and always
    given). ``fewer_copies``: :func:`use_fewer_copies` (same output). ``fast_readability``: the
    readability fallback (``fast=False``) runs :mod:`pipeline.prepare.readability_fast`'s cheaper
    ``Document`` (same output). Raises :class:`ExtractTimeout` when the budget runs out.
    """
    import trafilatura

    from pipeline.prepare.readability_fast import use_fast_readability
    from pipeline.prepare.xpath_fast import use_compiled

    use_compiled(fast_xpaths)
    use_fast_readability(fast_readability)
    fewer_copies = use_fewer_copies(fewer_copies)
    with time_budget(timeout_s):
        given = isinstance(html, str) or give_tree
        tree = parse_html(html) if isinstance(html, str) else html
        if tree is None:
            return None, None
        title = _title(tree)
        text = trafilatura.extract(
            _Owned(tree) if given and fewer_copies else tree,
            url=url,
            fast=fast,
            favor_precision=favor_precision,
            include_comments=False,
            include_tables=include_tables,
            deduplicate=False,
            output_format="txt",
        )
    if text is not None:
        lines = [" ".join(line.split()) for line in text.splitlines()]
        text = "\n".join(line for line in lines if line) or None
    return title, text
