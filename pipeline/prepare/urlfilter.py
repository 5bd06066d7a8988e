"""URL normalization and a RefinedWeb-style URL blocklist.

RefinedWeb (Penedo et al. 2023, sec. G.1) filters URLs before any content processing with (1) a
blocklist of domains and (2) a list of URL keywords scored on the URL's tokens. We keep the two
list kinds as plain text files in conf/blocklist/ (users add their own paths) and report a reason per
drop: ``url_invalid``, ``url_blocklist_domain`` or ``url_blocklist_keyword``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

URL_INVALID = "url_invalid"
URL_BLOCKLIST_DOMAIN = "url_blocklist_domain"
URL_BLOCKLIST_KEYWORD = "url_blocklist_keyword"

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_url(url: str) -> str | None:
    """Canonical form used for filtering and ids: lowercase scheme/host, IDNA host, no default port,
    no fragment, percent-encoding normalised, empty path -> ``/``. Returns None when not http(s)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = host if port is None or str(port) == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = quote(unquote(parts.path), safe="/%:@!$&'()*+,;=-._~") or "/"
    query = quote(unquote(parts.query), safe="=&%:@!$'()*+,;/?-._~")
    return urlunsplit((scheme, netloc, path, query, ""))


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def registered_domain(host: str) -> str:
    """Registered domain (eTLD+1) from the public suffix list shipped with ``tld``; host otherwise."""
    from tld import get_fld

    if not host:
        return ""
    fld = get_fld(host, fix_protocol=True, fail_silently=True)
    return fld or host


def _read_list(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip().lower()
        if line:
            out.append(line)
    return out


class UrlFilter:
    """Blocklist check on normalized URLs. Domain entries block the host and all its subdomains."""

    def __init__(self, domains: Iterable[str] = (), keywords: Iterable[str] = (), min_hits: int = 1):
        self.domains = frozenset(d.lstrip(".") for d in domains)
        self.keywords = frozenset(keywords)
        self.min_hits = min_hits

    @classmethod
    def from_files(cls, domain_files: Iterable[Path], keyword_files: Iterable[Path], min_hits: int = 1):
        domains = [d for f in domain_files for d in _read_list(Path(f))]
        keywords = [k for f in keyword_files for k in _read_list(Path(f))]
        return cls(domains, keywords, min_hits)

    def check(self, url: str) -> str | None:
        """Drop reason for ``url`` (already normalized), or None to keep it."""
        host = host_of(url)
        if not host:
            return URL_INVALID
        labels = host.split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in self.domains:
                return URL_BLOCKLIST_DOMAIN
        if self.keywords:
            hits = sum(1 for t in _TOKEN_RE.findall(url.lower()) if t in self.keywords)
            if hits >= self.min_hits:
                return URL_BLOCKLIST_KEYWORD
        return None
