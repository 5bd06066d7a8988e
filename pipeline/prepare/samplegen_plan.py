"""The record plan of the synthetic sample crawl (``pipeline.prepare.samplegen``): which pages, in
which charsets and declarations, with which traps, and what a correct stage 1 makes of each."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.prepare.samplegen_pages import (
    EN_BLOGS,
    EN_SITES,
    OTHER_SITES,
    SHORT_PAGES,
    ZH_LEGACY,
    ZH_SITES,
    en_article,
    other_article,
    page_almost_empty,
    skin_blog_en,
    skin_generic,
    skin_legacy_zh,
    skin_news_en,
    skin_portal_zh,
    zh_article,
)

# Languages a default ``prepare`` keeps; pages in other languages are expected to drop with "lang".
DEFAULT_KEEP_LANGS = ("en", "zh")

# Reason kinds used in the manifest (the stage's own reason constants map onto these families).
KIND_KEPT = None
KIND_URL_BLOCKLIST = "url_blocklist"
KIND_NON_HTML = "non_html"
KIND_HTTP_STATUS = "http_status"
KIND_EMPTY_TEXT = "empty_text"
KIND_LANG = "lang"
KIND_EXACT_DUP = "exact_duplicate"
KIND_ERROR = "error"
KIND_SKIP = "not_a_response"  # request / metadata / revisit / warcinfo: not documents at all

BASE_DATE = dt.datetime(2024, 5, 6, 8, 0, 0)


@dataclass
class Page:
    """One planned HTTP response: body bytes + headers + what stage 1 should make of it."""

    url: str
    body: bytes
    content_type: str | None
    status: str = "200 OK"
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _meta(charset: str | None, style: str = "html5") -> str:
    if charset is None:
        return ""
    if style == "http-equiv":
        return f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">\n'
    return f'<meta charset="{charset}">\n'


def _ct(charset: str | None, style: str = "") -> str:
    if charset is None:
        return "text/html"
    if style == "quoted":
        return f'text/html; charset="{charset}"'
    if style == "upper":
        return f"TEXT/HTML; Charset={charset.upper()}"
    return f"text/html; charset={charset}"


def _slug(rng: random.Random, title: str) -> str:
    words = [w for w in "".join(c.lower() if c.isascii() and c.isalnum() else " " for c in title).split()][:6]
    base = "-".join(words) if words else "article"
    return f"{base}-{rng.randint(100000, 999999)}"


def _date_str(rng: random.Random) -> str:
    d = BASE_DATE - dt.timedelta(days=rng.randint(0, 200))
    return d.strftime("%Y-%m-%d")


def _probe(paras: list[str], lang: str) -> str:
    """A distinctive chunk of the article that a correct extraction must contain."""
    p = paras[min(1, len(paras) - 1)]
    if lang in ("zh", "ja"):
        return p[:24]
    return " ".join(p.split()[:10])


def _words(paras: list[str], lang: str) -> int:
    return sum(len(p) for p in paras) if lang in ("zh", "ja") else sum(len(p.split()) for p in paras)


class _Planner:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.pages: list[Page] = []

    def article_page(
        self,
        lang: str,
        title: str,
        paras: list[str],
        *,
        site: str,
        skin: Callable[..., str],
        charset: str = "utf-8",
        header_cs: str | None = None,
        meta_cs: str | None = None,
        meta_style: str = "html5",
        ct_style: str = "",
        bom: bool = False,
        url: str | None = None,
        charset_source: str | None = None,
        **info: Any,
    ) -> Page:
        rng = self.rng
        html = skin(rng, site, title, paras, _meta(meta_cs, meta_style), _date_str(rng))
        body = html.encode(charset)  # strict: a template char outside the charset is a bug here
        if bom:
            body = b"\xef\xbb\xbf" + body
        if url is None:
            path = (
                "/news/" if lang != "zh" else f"/{rng.choice(['xw', 'news', 'a'])}/{rng.randint(2019, 2024)}"
            )
            url = f"https://{site}{path.rstrip('/')}/{_slug(rng, title)}.html"
        if charset_source is None:
            charset_source = (
                "bom"
                if bom
                else "header+meta"
                if header_cs and meta_cs
                else "header"
                if header_cs
                else "meta"
                if meta_cs
                else "none"
            )
        page = Page(url=url, body=body, content_type=_ct(header_cs, ct_style))
        page.info = {
            "kind": "html",
            "lang": lang,
            "charset": charset,
            "charset_source": charset_source,
            "declared_header": header_cs,
            "declared_meta": meta_cs,
            "title": title,
            "probe": _probe(paras, lang),
            "words": _words(paras, lang),
            **info,
        }
        self.pages.append(page)
        return page


def _near_dup(rng: random.Random, paras: list[str], lang: str, n_changes: int = 4) -> list[str]:
    """Change a few words (en: word swaps; zh: a few characters in one sentence) of ``paras``."""
    out = list(paras)
    if lang == "zh":
        subs = [
            ("记者", "本报记者"),
            ("今年", "今年以来"),
            ("表示", "指出"),
            ("市民", "群众"),
            ("明显", "显著"),
        ]
        done = 0
        for a, b in subs:
            for i, p in enumerate(out):
                if a in p and done < n_changes:
                    out[i] = p.replace(a, b, 1)
                    done += 1
                    break
        out[-1] = out[-1] + "（完）"
        return out
    subs_en = {
        "said": "stated",
        "about": "roughly",
        "residents": "locals",
        "several": "a number of",
        "people": "residents",
        "expected": "anticipated",
        "plans": "proposals",
        "year": "season",
    }
    done = 0
    for i, p in enumerate(out):
        words = p.split(" ")
        for j, w in enumerate(words):
            if w in subs_en and done < n_changes and rng.random() < 0.6:
                words[j] = subs_en[w]
                done += 1
        out[i] = " ".join(words)
    if done == 0:
        out[0] = out[0] + " Updated."
    return out


def _plan(seed: int, n_articles: int) -> tuple[list[Page], list[dict[str, Any]]]:
    """Plan every response page (in file order) plus the extra record specs."""
    pl = _Planner(seed)
    rng = pl.rng
    news, blog, portal, legacy = skin_news_en, skin_blog_en, skin_portal_zh, skin_legacy_zh

    # --- charset / language specials (fixed set) ---
    t, p = zh_article(rng)
    gbk_orig = pl.article_page(
        "zh",
        t,
        p,
        site=ZH_LEGACY[0],
        skin=legacy,
        charset="gbk",
        header_cs="gbk",
        meta_cs="gbk",
        meta_style="http-equiv",
    )
    # same article in UTF-8 on another site: exact duplicate after correct decoding
    pl.article_page(
        "zh",
        t,
        p,
        site=ZH_SITES[0],
        skin=portal,
        charset="utf-8",
        header_cs="utf-8",
        meta_cs="utf-8",
        duplicate_of=gbk_orig.url,
        reason=KIND_EXACT_DUP,
    )
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_LEGACY[0], skin=legacy, charset="gbk", header_cs="GBK")
    t, p = zh_article(rng)
    pl.article_page(
        "zh",
        t,
        p,
        site=ZH_LEGACY[1],
        skin=legacy,
        charset="gb2312",
        meta_cs="gb2312",
        meta_style="http-equiv",
    )
    t, p = zh_article(rng)
    pl.article_page(
        "zh", t, p, site=ZH_LEGACY[1], skin=legacy, charset="gb2312", header_cs="gb2312", ct_style="quoted"
    )
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_LEGACY[0], skin=legacy, charset="gbk")  # no declaration: detector
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_SITES[2], skin=portal, charset="gb2312")  # no declaration: detector
    # GB2312 label, GBK-only bytes (镕 and 喆 are outside GB2312): decoders must use the GBK superset
    t, p = zh_article(rng)
    p = [p[0] + "现场负责人朱镕表示，工程进度总体顺利。", *p[1:-1], p[-1] + "志愿者王喆说，大家都很期待。"]
    assert not _encodable(p[0], "gb2312")
    pl.article_page(
        "zh",
        t,
        p,
        site=ZH_LEGACY[1],
        skin=legacy,
        charset="gbk",
        meta_cs="gb2312",
        charset_source="meta(gb2312 label, gbk bytes)",
    )
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_SITES[1], skin=portal, charset="utf-8", bom=True)
    t, p = en_article(rng)
    pl.article_page("en", t, p, site=EN_SITES[2], skin=news, charset="utf-8", bom=True, meta_cs="utf-8")

    for lang, cs, hdr, meta, extra in [
        ("ja", "shift_jis", None, "Shift_JIS", {}),
        ("ja", "shift_jis", "Shift_JIS", None, {"ct_style": "upper"}),
        ("de", "iso-8859-1", "ISO-8859-1", None, {}),
        ("de", "iso-8859-1", None, "iso-8859-1", {"meta_style": "http-equiv"}),
        ("de", "iso-8859-1", None, None, {}),
        (
            "fr",
            "windows-1252",
            "iso-8859-1",
            None,
            {"charset_source": "header(iso-8859-1 label, cp1252 bytes)", "cp1252_extra": True},
        ),
        ("fr", "windows-1252", None, "windows-1252", {"cp1252_extra": True}),
        ("es", "iso-8859-1", "iso-8859-1", "iso-8859-1", {}),
        ("es", "utf-8", "utf-8", None, {}),
        ("ru", "windows-1251", None, "windows-1251", {}),
        ("ru", "utf-8", None, "utf-8", {}),
    ]:
        t, p = other_article(rng, lang)
        if extra.pop("cp1252_extra", False):
            # curly quotes, euro sign and the oe ligature live only in windows-1252, not in ISO-8859-1
            p = [
                p[0] + " Le budget atteint 3\u00a0millions d\u2019euros, soit 12\u00a0\u20ac par habitant.",
                *p[1:-1],
                p[-1] + " \u00ab\u00a0C\u2019est une \u0153uvre collective\u00a0\u00bb, conclut le maire.",
            ]
        pl.article_page(
            lang,
            t,
            p,
            site=OTHER_SITES[lang],
            skin=skin_generic(lang),
            charset=cs,
            header_cs=hdr,
            meta_cs=meta,
            reason=KIND_LANG,
            **extra,
        )

    for lang, (t, p) in SHORT_PAGES.items():
        pl.article_page(
            lang,
            t,
            list(p),
            site=OTHER_SITES[lang],
            skin=skin_generic(lang),
            header_cs="utf-8",
            reason=KIND_LANG,
            short=True,
        )

    # --- URL blocklist (ordinary articles on blocked URLs) ---
    for url in [
        f"https://ads.blocked.example/promo/{rng.randint(1000, 9999)}.html",
        f"http://ads.blocked.example/landing?id={rng.randint(1000, 9999)}",
        f"https://free-videos.example/porn/clip-{rng.randint(1000, 9999)}.html",
        f"https://xxx-deals.example/offer-{rng.randint(1000, 9999)}.html",
    ]:
        t, p = en_article(rng)
        pl.article_page(
            "en",
            t,
            p,
            site=url.split("/")[2],
            skin=news,
            header_cs="utf-8",
            url=url,
            reason=KIND_URL_BLOCKLIST,
        )

    # --- almost no text ---
    for site in (EN_SITES[0], EN_BLOGS[1]):
        page = Page(
            url=f"https://{site}/gallery/{rng.randint(100, 999)}.html",
            body=page_almost_empty(site).encode("utf-8"),
            content_type="text/html; charset=utf-8",
        )
        page.info = {
            "kind": "html",
            "lang": None,
            "charset": "utf-8",
            "charset_source": "header+meta",
            "declared_header": "utf-8",
            "declared_meta": "utf-8",
            "reason": KIND_EMPTY_TEXT,
            "title": None,
            "probe": None,
            "words": 0,
        }
        pl.pages.append(page)

    # --- bulk en/zh articles on varied skins/charset declarations, with duplicates ---
    fixed = len(pl.pages)
    n_bulk = n_articles - fixed
    if n_bulk < 12:
        raise ValueError(
            f"n_articles={n_articles} is too small: the fixed special pages alone are {fixed}; "
            f"use n_articles >= {fixed + 12}"
        )
    n_exact, n_near = max(2, n_bulk // 12), max(2, n_bulk // 14)
    n_unique = n_bulk - n_exact - n_near
    originals: list[tuple[str, str, list[str], Page]] = []
    for i in range(n_unique):
        lang = "en" if i % 5 in (0, 1, 3) else "zh"  # 60 % en, 40 % zh
        if lang == "en":
            t, p = en_article(rng)
            if i % 3 == 0:
                site, skin = rng.choice(EN_BLOGS), blog
            else:
                site, skin = rng.choice(EN_SITES), news
            hdr, meta = rng.choice([("utf-8", "utf-8"), ("UTF-8", None), (None, "utf-8"), (None, None)])
        else:
            t, p = zh_article(rng)
            site, skin = rng.choice(ZH_SITES), portal
            hdr, meta = rng.choice([("utf-8", "utf-8"), ("utf-8", None), (None, "UTF-8")])
        page = pl.article_page(lang, t, p, site=site, skin=skin, header_cs=hdr, meta_cs=meta)
        originals.append((lang, t, p, page))
    picks = rng.sample(range(len(originals)), k=n_exact + n_near)
    for j, idx in enumerate(picks):
        lang, t, p, orig = originals[idx]
        # the copy lives on another site with another skin, so only the article text is shared
        if lang == "en":
            skin = blog if orig.url.split("/")[2] not in EN_BLOGS else news
            site = rng.choice([s for s in EN_SITES + EN_BLOGS if s != orig.url.split("/")[2]])
        else:
            skin = legacy if j % 2 else portal
            site = rng.choice([s for s in ZH_SITES if s != orig.url.split("/")[2]])
        if j < n_exact:
            pl.article_page(
                lang,
                t,
                p,
                site=site,
                skin=skin,
                header_cs="utf-8",
                duplicate_of=orig.url,
                reason=KIND_EXACT_DUP,
            )
        else:
            pl.article_page(
                lang,
                t,
                _near_dup(rng, p, lang),
                site=site,
                skin=skin,
                header_cs="utf-8",
                near_duplicate_of=orig.url,
            )

    # Shuffle the bulk and specials together so the record kinds interleave in the file, but keep
    # every duplicate after its original (the "first seen" copy is the one the manifest calls original).
    order = list(range(len(pl.pages)))
    rng.shuffle(order)
    pos = {pl.pages[i].url: k for k, i in enumerate(order)}
    for pg in pl.pages:
        src = pg.info.get("duplicate_of") or pg.info.get("near_duplicate_of")
        if src and pos[src] > pos[pg.url]:
            pos[src], pos[pg.url] = pos[pg.url], pos[src]
    pages = sorted(pl.pages, key=lambda pg: pos[pg.url])
    return pages, []


def _encodable(s: str, enc: str) -> bool:
    try:
        s.encode(enc)
        return True
    except UnicodeEncodeError:
        return False


