"""Faster evaluation of trafilatura's pruning XPath lists, same pruning.

trafilatura removes boilerplate sections with XPath expressions of the form
``.//*[self::div or ...][re:test(@id, '...') or contains(@class, '...') or ...]``. lxml runs each
EXSLT ``re:test`` as a Python callback and libxml2 re-reads every attribute for every predicate:
two such expressions (OVERALL_DISCARD_XPATH) cost ~10 ms per page, a quarter of the loop's CPU,
run twice per page. This module compiles each run of consecutive expressions of that shape into
ONE generated Python walk over the elements (each attribute read once, each regex precompiled and
its results remembered per value) that gives ``prune_unwanted_nodes`` what the expressions give it
one by one (:class:`CompiledXPath`), and :func:`use_compiled` puts the runs in trafilatura's lists
in place of the XPath objects (``prune_unwanted_nodes`` only calls them). An expression outside the
supported subset is left as it is, between runs. ``tests/test_prepare_loop.py`` checks equal node
sets, equal pruned trees and equal ``extract()`` output on gold pages.

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


_MEMO_MAX_ENTRIES = 1 << 16  # per regex; cleared when full (results never depend on it)
_MEMO_MAX_CHARS = 256  # longer values are searched directly, so the memo's memory stays bounded


def _memo_search(rx: re.Pattern[str]) -> tuple[dict[str, bool], Any]:
    """``(seen, test)``: ``test(v)`` is ``rx.search(v) is not None``, remembered in ``seen`` for
    short values (the generated code looks ``seen`` up inline first): class and id strings repeat
    across the elements of a page and across pages, and a dict hit is ~10x cheaper than a search."""
    seen: dict[str, bool] = {}
    search = rx.search

    def test(v: str) -> bool:
        hit = search(v) is not None
        if len(v) <= _MEMO_MAX_CHARS:
            if len(seen) >= _MEMO_MAX_ENTRIES:
                seen.clear()
            seen[v] = hit
        return hit

    return seen, test


class _Code:
    """What the predicates of one walk share: constants, and the string values they read (each
    computed once per element, in the order registered, as locals ``_vN``)."""

    def __init__(self) -> None:
        self.consts: dict[str, Any] = {"_first": _first}
        self.values: dict[tuple[Any, ...], tuple[str, str]] = {}
        self.reads: set[str] = set()  # the attribute names the predicates read

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def value(self, key: tuple[Any, ...], code: str) -> str:
        if key not in self.values:
            self.values[key] = (f"_v{len(self.values)}", code)
        return self.values[key][0]

    def inline_single_use(self, body: str) -> tuple[dict[str, str], str]:
        """The values read more than once (``{local: code}``, computed up front for each element)
        and ``body`` with each value read once written in its place, evaluated only if reached."""
        values = dict(self.values.values())
        for var in reversed(list(values)):  # a value's code reads only values registered before it
            use = re.compile(rf"\b{var}\b")
            places = [body, *(c for v, c in values.items() if v != var)]
            if sum(len(use.findall(t)) for t in places) != 1:
                continue
            inline = f"({values.pop(var)})"
            body = use.sub(lambda _, r=inline: r, body)
            values = {v: use.sub(lambda _, r=inline: r, c) for v, c in values.items()}
        return values, body


class _Parser:
    """Recursive descent over one predicate, emitting a Python expression over ``el`` (the
    element), ``tag`` (its tag), ``at`` (its attributes, a dict in source order) and the shared
    values of :class:`_Code`. Each method returns ``(code, needs_attr)``: ``needs_attr`` is true
    when the expression is false for an element that has none of the attributes it reads (the
    walk then skips those)."""

    def __init__(self, src: str, code: _Code):
        self.toks = _tokens(src)
        self.i = 0
        self.code = code
        self.reads_descendants = False

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise Unsupported(f"expected {kind or ''} {value or ''} at token {self.i}: {tok}")
        self.i += 1
        return tok[1]

    def expr(self) -> tuple[str, bool]:
        parts = [self.and_expr()]
        while self.peek() == ("name", "or"):
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return "(" + " or ".join(c for c, _ in parts) + ")", all(n for _, n in parts)

    def and_expr(self) -> tuple[str, bool]:
        parts = [self.atom()]
        while self.peek() == ("name", "and"):
            self.take()
            parts.append(self.atom())
        if len(parts) == 1:
            return parts[0]
        return "(" + " and ".join(c for c, _ in parts) + ")", any(n for _, n in parts)

    def attr_names(self) -> list[str]:
        names = [self.take("attr")[1:]]
        while self.peek() == ("op", "|"):
            self.take()
            names.append(self.take("attr")[1:])
        self.code.reads.update(names)
        return list(dict.fromkeys(names))

    def literal(self) -> str:
        return self.take("str")[1:-1]

    def string_arg(self) -> tuple[tuple[Any, ...], str]:
        """``(key, local)`` of a string argument; the key also tells :meth:`atom` the value is
        empty when the element has no attributes."""
        kind, value = self.peek() or ("", "")
        c = self.code
        if kind == "attr":
            names = self.attr_names()
            if len(names) == 1:
                code = f"at.get({names[0]!r}, '')"
            elif len(names) == 2:
                a, b = names
                fs = c.const(frozenset(names))
                code = f"(at.get({a!r}, '') if {b!r} not in at else at[{b!r}] if {a!r} not in at else _first(at, {fs}))"
            else:
                code = f"_first(at, {c.const(frozenset(names))})"
            key: tuple[Any, ...] = ("attr", tuple(names))
            return key, c.value(key, code)
        if (kind, value) == ("name", "translate"):
            self.take()
            self.take("op", "(")
            inner_key, inner = self.string_arg()
            self.take("op", ",")
            src = self.literal()
            self.take("op", ",")
            dst = self.literal()
            self.take("op", ")")
            table = str.maketrans(src[: len(dst)], dst[: len(src)], src[len(dst) :])
            key = ("translate", inner_key, src, dst)
            return key, c.value(key, f"{inner}.translate({c.const(table)})")
        raise Unsupported(f"unsupported string argument {self.peek()}")

    def atom(self) -> tuple[str, bool]:
        kind, value = self.peek() or ("", "")
        if (kind, value) == ("op", "("):
            self.take()
            inner = self.expr()
            self.take("op", ")")
            return inner
        if kind == "axis":
            self.take()
            return f"tag == {value[len('self::') :]!r}", False
        if (kind, value) == ("name", "not"):
            self.take()
            self.take("op", "(")
            if self.peek() and self.peek()[0] == "path":
                path = self.take("path")
                self.take("op", ")")
                if path.endswith("*"):
                    raise Unsupported("not(.//*)")
                self.reads_descendants = True
                return f"el.find({path!r}) is None", False
            inner, _ = self.expr()
            self.take("op", ")")
            return f"(not {inner})", False
        if kind == "attr":
            names = self.attr_names()
            if self.peek() == ("op", "="):
                self.take()
                lit = self.literal()
                return "(" + " or ".join(f"at.get({n!r}) == {lit!r}" for n in names) + ")", True
            return "(" + " or ".join(f"{n!r} in at" for n in names) + ")", True
        if kind == "name" and value in ("contains", "starts-with", "re:test"):
            self.take()
            self.take("op", "(")
            _, arg = self.string_arg()
            self.take("op", ",")
            lit = self.literal()
            self.take("op", ")")
            if value == "contains":
                return f"({lit!r} in {arg})", lit != ""
            if value == "starts-with":
                return f"{arg}.startswith({lit!r})", lit != ""
            rx = re.compile(lit)
            seen, test = _memo_search(rx)
            seen_c, test_c = self.code.const(seen), self.code.const(test)
            call = f"({seen_c}[{arg}] if {arg} in {seen_c} else {test_c}({arg}))"
            if rx.search("") is None:  # false on "": no look-up for a missing attribute
                return f"({arg} and {call})", True
            return call, False
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


class _Member:
    """One parsed expression: its tag filter (empty: any element) and predicate code."""

    def __init__(self, path: str, code: _Code):
        src = path.strip()
        m = re.match(r"\.//(\*|[\w\-]+)", src)
        if not m:
            raise Unsupported(f"path must start with .//* or .//name: {src[:40]!r}")
        preds = _predicates(src[m.end() :])
        # A first predicate of self:: tests only becomes the C-level tag filter of the walk.
        if m.group(1) != "*":
            self.tags: tuple[str, ...] = (m.group(1),)
        elif preds and _SELF_ONLY.match(preds[0]):
            self.tags = tuple(t.strip() for t in re.findall(r"self::([\w\-]+)", preds[0]))
            preds = preds[1:]
        else:
            self.tags = ()
        bodies, self.needs_attr, self.reads_descendants = [], False, False
        for p in preds:
            parser = _Parser(p, code)
            body, needs = parser.expr()
            if parser.peek() is not None:
                raise Unsupported(f"trailing tokens {parser.toks[parser.i :]}")
            bodies.append(body)
            self.needs_attr |= needs
            self.reads_descendants |= parser.reads_descendants
        self.test = " and ".join(bodies)


class CompiledXPath:
    """A callable like ``lxml.etree.XPath`` for a run of supported expressions evaluated in ONE
    walk of the tree: ``expr(tree)`` -> the elements the first expression matches (document
    order), then those the second matches that the first did not, and so on.

    For one expression that is its node set. For a run it is what ``prune_unwanted_nodes`` gets
    from the expressions in turn, provided only the first may read descendants (``not(.//h1)``),
    the others only the element's own tag and attributes. With ``with_backup`` it keeps
    ``dict.fromkeys`` of the matches in expression order: this list. Without, it deletes each
    expression's matches before evaluating the next; deletion leaves the tag and attributes of
    every remaining element as they were, so expression k matches exactly the remaining elements
    that no earlier expression matched: those of this list outside the deleted subtrees, in the
    same order. The ones inside are deleted again within their detached subtree, which leaves the
    tree itself untouched (``trafilatura.xml.delete_element`` edits only the element's parent and
    previous sibling). A predicate reading descendants would see the tree after the deletions,
    hence first only. :func:`group` builds runs that hold to that."""

    def __init__(self, paths: str | list[str]):
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.path = self.paths[0] if len(self.paths) == 1 else None
        code = _Code()
        members = [_Member(p, code) for p in self.paths]
        if any(m.reads_descendants for m in members[1:]):
            raise Unsupported("only the first expression of a run may read descendants")
        # The walk's C-level tag filter: every member's tags, if every member has one.
        walk_tags = (
            ()
            if any(not m.tags for m in members)
            else tuple(dict.fromkeys(t for m in members for t in m.tags))
        )
        skip_bare = all(m.needs_attr for m in members)
        branches = []
        for k, m in enumerate(members):
            conds = []
            if m.tags and set(m.tags) != set(walk_tags):
                conds.append(f"tag in {code.const(frozenset(m.tags))}")
            if m.test:
                conds.append(m.test)
            branches += [
                f"        {'elif' if k else 'if'} {' and '.join(conds) or 'True'}:",
                f"            g{k}.append(el)",
            ]
        lines = ["def _walk(tree):"] + [f"    g{k} = []" for k in range(len(members))]
        if walk_tags:
            lines.append(f"    for el in tree.iterdescendants(*{code.const(walk_tags)}):")
        else:
            lines.append("    for el in tree.iterdescendants(_ELEMENT):")
        if code.reads:
            if skip_bare:
                reads = code.const(frozenset(code.reads))
                # el.keys() is cheaper than el.items(): most elements carry none of these
                lines += [f"        if {reads}.isdisjoint(el.keys()):", "            continue"]
                lines.append("        at = dict(el.items())")
            else:
                lines += ["        items = el.items()", "        at = dict(items) if items else _EMPTY"]
        if any(re.search(r"\btag\b", b) for b in branches):
            lines.append("        tag = el.tag")
        values, body = code.inline_single_use("\n".join(branches))
        lines += [f"        {var} = {expr}" for var, expr in values.items()]
        lines.append(body)
        lines.append("    return " + " + ".join(f"g{k}" for k in range(len(members))))
        self.source = "\n".join(lines) + "\n"
        from lxml import etree

        ns: dict[str, Any] = dict(code.consts, _ELEMENT=etree.Element, _EMPTY={})
        label = " | ".join(p.strip()[:30] for p in self.paths)
        exec(compile(self.source, f"<xpath {label!r}>", "exec"), ns)  # noqa: S102 - code built above from a parsed subset
        self._walk = ns["_walk"]
        self.reads_descendants = any(m.reads_descendants for m in members)

    def __call__(self, tree: Any) -> list[Any]:
        return self._walk(tree)


def group(exprs: list[Any]) -> list[Any]:
    """``exprs`` (lxml XPath objects) with each run of consecutive supported expressions replaced
    by one :class:`CompiledXPath`; an expression that reads descendants starts a new run, an
    unsupported one stays as it is, between runs."""
    out: list[Any] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(CompiledXPath(run))
            run.clear()

    for e in exprs:
        try:
            single = CompiledXPath(e.path)
        except (Unsupported, re.error, AttributeError):
            flush()
            out.append(e)
            continue
        if single.reads_descendants:  # sees the tree as it was only at the start of a run
            flush()
        run.append(e.path)
    flush()
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
    """Put the grouped compiled forms (``enabled``, :func:`group`) or trafilatura's own XPath
    objects back into its pruning lists, in place (every module that imported a list sees it).
    Returns ``{list: expressions compiled}``; cheap to call again."""
    import trafilatura.xpaths as xp

    if not _ORIGINAL:
        for name in PRUNE_LISTS:
            exprs = getattr(xp, name, None)
            if not isinstance(exprs, list):
                continue
            _ORIGINAL[name] = list(exprs)
            _COMPILED[name] = group(exprs)
    for name, exprs in (_COMPILED if enabled else _ORIGINAL).items():
        getattr(xp, name)[:] = exprs
    return {n: sum(len(e.paths) for e in c if isinstance(e, CompiledXPath)) for n, c in _COMPILED.items()}
