"""Faster evaluation of trafilatura's pruning XPaths, same node sets.

trafilatura removes boilerplate sections with XPath expressions of the form
``.//*[self::div or ...][re:test(@id, '...') or contains(@class, '...') or ...]``. lxml runs each
EXSLT ``re:test`` as a Python callback and libxml2 re-reads every attribute for every predicate:
two such expressions (OVERALL_DISCARD_XPATH) cost ~10 ms per page, a quarter of the loop's CPU,
run twice per page. This module compiles the expressions of that shape into one Python pass over
the elements (each attribute read once, each regex precompiled) returning the same elements in the
same (document) order, and :func:`use_compiled` puts them in trafilatura's lists in place of the XPath
objects (``prune_unwanted_nodes`` only calls them). An expression outside the supported subset is
left as it is. ``tests/test_prepare_loop.py`` checks equal node sets on the gold pages.

Supported: a path ``.//*`` or ``.//name`` followed by predicates built from ``or``, ``and``,
``not(...)``, parentheses, ``self::name``, ``.//name`` (inside ``not``), ``@a`` (exists),
``@a='lit'``, ``contains(S, 'lit')``, ``starts-with(S, 'lit')``, ``re:test(S, 'pattern')``
where ``S`` is ``@a``, ``@a|@b`` or ``translate(@a, 'from', 'to')``. XPath semantics kept: the
string value of ``@a|@b`` is that of the first of them in document (= source) order; a missing
attribute is the empty string.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^']*'|\"[^\"]*\")|(?P<path>\.//[\w\-:*]+)|(?P<axis>self::[\w\-]+)"
    r"|(?P<attr>@[\w\-:]+)|(?P<name>[\w\-]+(?::[\w\-]+)?)|(?P<op>[()\[\],|=]))"
)


class Unsupported(ValueError):
    """The expression is outside the subset this module compiles."""


def _tokens(src: str) -> list[tuple[str, str]]:
    out, pos, src = [], 0, src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot tokenize at {src[pos : pos + 30]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    return out


def _first(at: dict[str, str], names: frozenset[str]) -> str:
    """String value of ``@a|@b``: the first of those attributes in source (document) order."""
    for k in at:
        if k in names:
            return at[k]
    return ""


class _Parser:
    """Recursive descent over one predicate, emitting a Python expression over ``el`` (the
    element), ``tag`` (its tag) and ``at`` (its attributes, a dict in source order)."""

    def __init__(self, src: str, consts: dict[str, Any]):
        self.toks = _tokens(src)
        self.i = 0
        self.consts = consts

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise Unsupported(f"expected {kind or ''} {value or ''} at token {self.i}: {tok}")
        self.i += 1
        return tok[1]

    def expr(self) -> str:
        parts = [self.and_expr()]
        while self.peek() == ("name", "or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.atom()]
        while self.peek() == ("name", "and"):
            self.take()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def attr_names(self) -> list[str]:
        names = [self.take("attr")[1:]]
        while self.peek() == ("op", "|"):
            self.take()
            names.append(self.take("attr")[1:])
        return names

    def literal(self) -> str:
        return self.take("str")[1:-1]

    def string_arg(self) -> str:
        kind, value = self.peek() or ("", "")
        if kind == "attr":
            names = self.attr_names()
            if len(names) == 1:
                return f"at.get({names[0]!r}, '')"
            return f"_first(at, {self.const(frozenset(names))})"
        if (kind, value) == ("name", "translate"):
            self.take()
            self.take("op", "(")
            inner = self.string_arg()
            self.take("op", ",")
            src = self.literal()
            self.take("op", ",")
            dst = self.literal()
            self.take("op", ")")
            table = str.maketrans(src[: len(dst)], dst[: len(src)], src[len(dst) :])
            return f"{inner}.translate({self.const(table)})"
        raise Unsupported(f"unsupported string argument {self.peek()}")

    def atom(self) -> str:
        kind, value = self.peek() or ("", "")
        if (kind, value) == ("op", "("):
            self.take()
            inner = self.expr()
            self.take("op", ")")
            return inner
        if kind == "axis":
            self.take()
            return f"tag == {value[len('self::') :]!r}"
        if (kind, value) == ("name", "not"):
            self.take()
            self.take("op", "(")
            if self.peek() and self.peek()[0] == "path":
                path = self.take("path")
                self.take("op", ")")
                if path.endswith("*"):
                    raise Unsupported("not(.//*)")
                return f"el.find({path!r}) is None"
            inner = self.expr()
            self.take("op", ")")
            return f"(not {inner})"
        if kind == "attr":
            names = self.attr_names()
            if self.peek() == ("op", "="):
                self.take()
                lit = self.literal()
                return "(" + " or ".join(f"at.get({n!r}) == {lit!r}" for n in names) + ")"
            return "(" + " or ".join(f"{n!r} in at" for n in names) + ")"
        if kind == "name" and value in ("contains", "starts-with", "re:test"):
            self.take()
            self.take("op", "(")
            arg = self.string_arg()
            self.take("op", ",")
            lit = self.literal()
            self.take("op", ")")
            if value == "contains":
                return f"({lit!r} in {arg})"
            if value == "starts-with":
                return f"{arg}.startswith({lit!r})"
            return f"({self.const(re.compile(lit))}.search({arg}) is not None)"
        raise Unsupported(f"unsupported atom {self.peek()}")


def _predicates(rest: str) -> list[str]:
    """The bodies of the ``[...]`` predicates that follow the path step."""
    out = []
    rest = rest.strip()
    while rest:
        if not rest.startswith("["):
            raise Unsupported(f"expected a predicate at {rest[:40]!r}")
        depth, end, quote = 0, None, None
        for i, ch in enumerate(rest):
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end is None:
            raise Unsupported("unbalanced predicate")
        out.append(rest[1:end])
        rest = rest[end + 1 :].strip()
    return out


_SELF_ONLY = re.compile(r"^\s*self::[\w\-]+(?:\s+or\s+self::[\w\-]+)*\s*$")


class CompiledXPath:
    """A callable like ``lxml.etree.XPath`` for one supported expression: ``expr(tree)`` -> the
    matching descendant elements in document order."""

    def __init__(self, path: str):
        src = path.strip()
        m = re.match(r"\.//(\*|[\w\-]+)", src)
        if not m:
            raise Unsupported(f"path must start with .//* or .//name: {src[:40]!r}")
        self.path = path
        preds = _predicates(src[m.end() :])
        # A first predicate of self:: tests only becomes the C-level tag filter of the walk.
        if m.group(1) != "*":
            self.tags: tuple[str, ...] = (m.group(1),)
        elif preds and _SELF_ONLY.match(preds[0]):
            self.tags = tuple(t.strip() for t in re.findall(r"self::([\w\-]+)", preds[0]))
            preds = preds[1:]
        else:
            self.tags = ()
        consts: dict[str, Any] = {"_first": _first}
        body = []
        for p in preds:
            parser = _Parser(p, consts)
            body.append(parser.expr())
            if parser.peek() is not None:
                raise Unsupported(f"trailing tokens {parser.toks[parser.i :]}")
        code = "def _match(el, tag, at):\n    return " + (" and ".join(body) or "True") + "\n"
        ns: dict[str, Any] = dict(consts)
        exec(compile(code, f"<xpath {src[:40]!r}>", "exec"), ns)  # noqa: S102 - code built above from a parsed subset
        self._match = ns["_match"]
        self.source = code

    def __call__(self, tree: Any) -> list[Any]:
        from lxml import etree

        it = tree.iterdescendants(*self.tags) if self.tags else tree.iterdescendants(etree.Element)
        match = self._match
        empty: dict[str, str] = {}
        out = []
        for el in it:
            items = el.items()
            if match(el, el.tag, dict(items) if items else empty):
                out.append(el)
        return out


# trafilatura's lists that it only ever hands to ``prune_unwanted_nodes`` (which just calls them).
PRUNE_LISTS = (
    "OVERALL_DISCARD_XPATH",
    "PRECISION_DISCARD_XPATH",
    "RAW_TREE_PRUNE_XPATH",
    "REMOVE_COMMENTS_AND_LISTS_XPATH",
    "REMOVE_COMMENTS_XPATH",
    "TEASER_DISCARD_XPATH",
    "DISCARD_IMAGE_ELEMENTS",
    "COMMENTS_DISCARD_XPATH",
    "AUTHOR_DISCARD_XPATHS",
)
_ORIGINAL: dict[str, list[Any]] = {}
_COMPILED: dict[str, list[Any]] = {}


def use_compiled(enabled: bool = True) -> dict[str, int]:
    """Put the compiled forms (``enabled``) or trafilatura's own XPath objects back into its
    pruning lists, in place. Returns ``{list: expressions compiled}``; cheap to call again."""
    import trafilatura.xpaths as xp

    if not _ORIGINAL:
        for name in PRUNE_LISTS:
            exprs = getattr(xp, name, None)
            if not isinstance(exprs, list):
                continue
            _ORIGINAL[name] = list(exprs)
            compiled = []
            for e in exprs:
                try:
                    compiled.append(CompiledXPath(e.path))
                except (Unsupported, re.error, AttributeError):
                    compiled.append(e)
            _COMPILED[name] = compiled
    for name, exprs in (_COMPILED if enabled else _ORIGINAL).items():
        getattr(xp, name)[:] = exprs
    return {n: sum(isinstance(e, CompiledXPath) for e in c) for n, c in _COMPILED.items()}
