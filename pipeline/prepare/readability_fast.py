"""trafilatura's readability fallback with its hot steps made cheaper, same summary.

With ``fast=False`` trafilatura runs its readability port (``trafilatura.readability_lxml``) on
every page: ~14% of the per-record CPU. :class:`FastDocument` subclasses its ``Document`` and
overrides four methods; each override's docstring says why it leaves the tree, the candidates'
scores and so the summary string exactly as they were. :func:`use_fast_readability` installs it
where ``try_readability`` looks the class up (``trafilatura.external.ReadabilityDocument``).
tests/test_prepare_loop.py compares summaries and ``extract()`` output with and without it.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from trafilatura import readability_lxml as rl
from trafilatura.utils import trim

from pipeline.prepare.extract import trafilatura_checked

_MEMO_MAX_ENTRIES = 1 << 16  # per memo; cleared when full (results never depend on it)
_MEMO_MAX_CHARS = 256  # longer strings are not remembered, so the memos' memory stays bounded

# The class and id values of the elements below a node (the node itself excluded, as in the
# original's findall(".//*")), in document order; each value knows its element.
_CLASS_AND_ID_VALUES = etree.XPath("descendant::*/@class | descendant::*/@id")


def _memo_put(memo: dict[str, Any], key: str, value: Any) -> Any:
    if len(key) <= _MEMO_MAX_CHARS:
        if len(memo) >= _MEMO_MAX_ENTRIES:
            memo.clear()
        memo[key] = value
    return value


_UNLIKELY: dict[str, bool] = {}
_UNLIKELY_WORD: dict[str, bool] = {}
_ATTR_WEIGHT: dict[str, int] = {}


def _unlikely(attrs: str) -> bool:
    low = attrs.lower()
    return _memo_put(
        _UNLIKELY,
        attrs,
        bool(rl.REGEXES["unlikelyCandidatesRe"].search(low))
        and not rl.REGEXES["okMaybeItsACandidateRe"].search(low),
    )


def _unlikely_word(value: str) -> bool:
    # str(): an XPath result string holds its element (and so its whole tree) alive
    return _memo_put(
        _UNLIKELY_WORD, str(value), bool(rl.REGEXES["unlikelyCandidatesRe"].search(value.lower()))
    )


def _attr_weight(value: str) -> int:
    w = 0
    if rl.REGEXES["negativeRe"].search(value):
        w -= 25
    if rl.REGEXES["positiveRe"].search(value):
        w += 25
    return _memo_put(_ATTR_WEIGHT, value, w)


class FastDocument(rl.Document):
    """``readability_lxml.Document`` with cheaper ``class_weight``, ``remove_unlikely_candidates``,
    ``get_link_density`` and ``score_paragraphs``; same results."""

    __slots__ = ()

    def class_weight(self, elem: Any) -> float:
        """The weight is the sum of one term per non-empty attribute (class, id) that depends on
        that string alone: each term is remembered per string across pages."""
        weight = 0
        for value in (elem.get("class"), elem.get("id")):
            if value:
                w = _ATTR_WEIGHT.get(value)
                weight += _attr_weight(value) if w is None else w
        return weight

    def remove_unlikely_candidates(self) -> None:
        """Same drops in the same order. An element is dropped only if the unlikely pattern
        matches its lowercased "class id" string; the pattern is ASCII without spaces and
        lowercasing goes character by character (Greek final sigma aside, not ASCII), so then it
        matches the lowercased class or the lowercased id by itself. Only the elements with such a value are tested (one XPath collects the class and
        id values in document order; the per-value result is remembered across pages), with the
        original's test."""
        frame = rl.FRAME_TAGS
        seen: set[Any] = set()
        for value in _CLASS_AND_ID_VALUES(self.doc):
            hit = _UNLIKELY_WORD.get(value)
            if hit is None:
                hit = _unlikely_word(value)
            if not hit:
                continue
            elem = value.getparent()
            if elem in seen:
                continue
            seen.add(elem)
            cls, ident = elem.get("class"), elem.get("id")
            attrs = f"{cls} {ident}" if cls and ident else (cls or ident or "")
            if len(attrs) < 2 or elem.tag in frame:
                continue
            verdict = _UNLIKELY.get(attrs)
            if verdict is None:
                verdict = _unlikely(attrs)
            if verdict:
                elem.drop_tree()

    def get_link_density(self, elem: Any) -> float:
        """The original's sum with :func:`_text` for ``text_content()`` (``iterdescendants("a")``
        yields what ``findall(".//a")`` finds, in the same order)."""
        total = len(trim(_text(elem))) or 1
        return sum(len(trim(_text(a))) for a in elem.iterdescendants("a")) / total

    def score_paragraphs(self) -> dict[Any, rl.Candidate]:
        """The original's loop; only the trimmed text lengths (``len(trim(text_content()))``) are
        computed differently, and the tree does not change while scoring. A candidate's length is
        composed from its children's (:class:`_Lengths`), so the text of nested candidates is not
        rebuilt and re-split for each of them, and each link's length is computed once for all the
        candidates it is in. Scores are summed in the same order with the same operations; link
        lengths are integers, so the link densities are the same floats."""
        lengths = _Lengths()
        candidates: dict[Any, rl.Candidate] = {}
        min_len = self.min_text_length
        for elem in self.doc.iter("p", "pre", "td"):
            parent_node = elem.getparent()
            if parent_node is None:
                continue
            grand_parent_node = parent_node.getparent()
            elem_text = lengths.read(elem)
            elem_text_len = len(elem_text)
            if elem_text_len < min_len:
                continue
            for node in (parent_node, grand_parent_node):
                if node is not None and node not in candidates:
                    candidates[node] = self.score_node(node)
            score = 1 + len(elem_text.split(",")) + min((elem_text_len / 100), 3)
            candidates[parent_node].score += score
            if grand_parent_node is not None:
                candidates[grand_parent_node].score += score / 2
        lengths.mark(candidates)
        known = lengths.pieces.get
        for elem, candidate in candidates.items():
            total = lengths.of(elem) or 1
            links = 0
            for a in elem.iterdescendants("a"):
                piece = known(a)
                links += piece[0] if piece is not None else lengths.of(a)
            candidate.score *= 1 - links / total
        return candidates


# A piece of text as far as the length of its trimmed form goes: (length of ``trim(s)``, whether s
# starts with whitespace, whether it ends with whitespace); the two flags are None for "".
_Piece = tuple[int, Any, Any]
_EMPTY: _Piece = (0, None, None)
_BLANK: _Piece = (0, True, True)


def _text(elem: Any) -> str:
    """``elem.text_content()``: for an element with no child nodes but text (``len()`` counts
    elements, comments, entities and processing instructions), its ``text``, ~10x cheaper."""
    if len(elem):
        return elem.text_content()
    return elem.text or ""


def _piece(s: str | None, trimmed: str | None = None) -> _Piece:
    if not s:
        return _EMPTY
    if s.isspace():
        return _BLANK
    return (len(trim(s) if trimmed is None else trimmed), s[0].isspace(), s[-1].isspace())


def _join(a: _Piece, b: _Piece) -> _Piece:
    """The piece of the concatenation: ``trim`` keeps the words (maximal runs of non-whitespace,
    ``str.split``) joined by one space; the last word of ``a`` and the first of ``b`` become one
    word when ``a`` ends and ``b`` starts with non-whitespace, losing the space between them."""
    if a[1] is None:
        return b
    if b[1] is None:
        return a
    if not a[0]:
        n = b[0]
    elif not b[0]:
        n = a[0]
    else:
        n = a[0] + b[0] + (1 if a[2] or b[1] else 0)
    return (n, a[1], b[2])


class _Lengths:
    """Trimmed text lengths of the elements of an unchanging tree, each computed once.

    ``text_content()`` is the concatenation of all text nodes below an element, in document order:
    the element's text, then for each child the child's ``text_content()`` and the child's tail.
    An element marked as holding a candidate is composed that way from its children's pieces
    (:func:`_join`); any other from its own ``text_content()``. An element with a child that is
    not an element (a comment, an entity) is always read from its own ``text_content()``."""

    __slots__ = ("pieces", "marked")

    def __init__(self) -> None:
        self.pieces: dict[Any, _Piece] = {}
        self.marked: set[Any] = set()

    def read(self, elem: Any) -> str:
        """``trim(elem.text_content())``, remembering its piece."""
        s = _text(elem)
        t = trim(s)
        self.pieces[elem] = _piece(s, t)
        return t

    def mark(self, elems: Any) -> None:
        """Compose these elements and their ancestors from their children."""
        marked = self.marked
        for elem in elems:
            if elem in marked:
                continue
            marked.add(elem)
            for up in elem.iterancestors():
                if up in marked:
                    break
                marked.add(up)

    def of(self, elem: Any) -> int:
        piece = self.pieces.get(elem)
        if piece is None:
            piece = self._compose(elem)
        return piece[0]

    def _compose(self, elem: Any) -> _Piece:
        pieces, marked = self.pieces, self.marked
        stack = [elem]
        while stack:
            node = stack[-1]
            if node in pieces:
                stack.pop()
                continue
            if node not in marked:
                pieces[node] = _piece(_text(node))
                stack.pop()
                continue
            children = list(node)
            todo = [c for c in children if c in marked and c not in pieces]
            if todo:
                stack.extend(todo)
                continue
            if not all(isinstance(c.tag, str) for c in children):
                pieces[node] = _piece(node.text_content())
                stack.pop()
                continue
            acc = _piece(node.text)
            for c in children:
                piece = pieces.get(c)
                if piece is None:
                    piece = pieces[c] = _piece(_text(c))
                acc = _join(acc, piece)
                tail = c.tail
                if tail:
                    acc = _join(acc, _piece(tail))
            pieces[node] = acc
            stack.pop()
        return pieces[elem]


def use_fast_readability(enabled: bool = True) -> bool:
    """Put :class:`FastDocument` (or, with ``enabled=False``, trafilatura's own class) where
    ``try_readability`` reads it. Another trafilatura release than the checked one always keeps its
    own. Returns whether the fast class is in place; cheap to call again."""
    import trafilatura.external as external

    on = enabled and trafilatura_checked()
    external.ReadabilityDocument = FastDocument if on else rl.Document
    return on
