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


class ExtractTimeout(Exception):
    """The per-document extraction budget ran out."""


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
    sanity check, its parser settings) but with :func:`_parser`; None if unparseable."""
    from lxml import html as lhtml
    from trafilatura.utils import is_dubious_html, repair_faulty_html

    beginning = html[:50].lower()
    dubious = is_dubious_html(beginning)
    html = repair_faulty_html(html, beginning)
    parser = _parser()
    tree = None
    retry_bytes = True
    try:
        tree = lhtml.fromstring(html, parser=parser)
    except ValueError:  # "Unicode strings with encoding declaration are not supported."
        tree, retry_bytes = _parse_bytes(html, parser), False
    except etree_errors():  # e.g. "Document is empty": retried from bytes below, as trafilatura does
        tree = None
    if (tree is None or len(tree) < 1) and retry_bytes:
        tree = _parse_bytes(html, parser)
    if tree is not None and dubious and len(tree) < 2:
        return None
    return tree


def etree_errors() -> tuple[type[BaseException], ...]:
    from lxml import etree

    return (etree.ParserError, etree.XMLSyntaxError)


def _parse_bytes(html: str, parser: Any) -> Any:
    from lxml import html as lhtml

    try:
        return lhtml.fromstring(html.encode("utf8", "surrogatepass"), parser=parser)
    except (ValueError, *etree_errors()):
        return None


_SKIP_TAGS = frozenset(("script", "style", "noscript", "template"))


def visible_text(tree: Any, max_chars: int = 2000) -> str:
    """Cheap visible text of the page body (no boilerplate removal), for the language pre-filter.
    Text inside script/style is skipped; the text that follows them (their tail) is kept."""
    body = tree.find("body")
    parts: list[str] = []
    n = 0
    for el in (body if body is not None else tree).iter():
        texts = (el.tail,) if not isinstance(el.tag, str) or el.tag in _SKIP_TAGS else (el.text, el.tail)
        for t in texts:
            if t and not t.isspace():
                parts.append(t.strip())
                n += len(t)
        if n >= max_chars:
            break
    return " ".join(parts)


def extract(
    html: str | Any,
    favor_precision: bool = True,
    include_tables: bool = True,
    fast: bool = True,
    timeout_s: float = 10.0,
    url: str | None = None,
    fast_xpaths: bool = True,
) -> tuple[str | None, str | None]:
    """Return ``(title, text)`` from an HTML string or an already parsed tree; ``text`` is
    newline-separated lines or None when nothing was found.

    ``fast_xpaths`` evaluates trafilatura's pruning XPaths compiled to Python (same node sets,
    :mod:`pipeline.prepare.xpath_fast`). Raises :class:`ExtractTimeout` when the budget runs out.
    """
    import trafilatura

    from pipeline.prepare.xpath_fast import use_compiled

    use_compiled(fast_xpaths)
    with time_budget(timeout_s):
        tree = parse_html(html) if isinstance(html, str) else html
        if tree is None:
            return None, None
        title = _title(tree)
        text = trafilatura.extract(
            tree,
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
