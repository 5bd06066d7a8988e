"""Text and markup of the synthetic sample crawl (``pipeline.prepare.samplegen``).

The words, sentence templates, site names and boilerplate live in ``samplegen_data/*.json``, the page
skins (HTML around an article) in ``samplegen_data/skins/*.html`` (``str.format`` templates); this
module fills them with a seeded RNG: articles in English, Chinese and other languages, the skins,
and tiny binary payloads (PNG, PDF). Every RNG draw happens in a fixed order, so a seed gives the
same bytes.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any


def _data(name: str) -> dict[str, Any]:
    """``samplegen_data/<name>.json`` (read through importlib.resources: works from the job zip too)."""
    return json.loads(files("pipeline.prepare").joinpath(f"samplegen_data/{name}.json").read_text(encoding="utf-8"))


@cache
def _skin(name: str) -> str:
    """The page template ``samplegen_data/skins/<name>.html``."""
    return files("pipeline.prepare").joinpath(f"samplegen_data/skins/{name}.html").read_text(encoding="utf-8")


_EN = _data("english")
_ZH = _data("chinese")
_OTHER = _data("other_languages")
_BOILER = _data("boilerplate")

# ----------------------------------------------------------------------------------------------------
# English text
# ----------------------------------------------------------------------------------------------------

EN_TOPICS: dict[str, dict[str, list[str]]] = _EN["en_topics"]
EN_PLACES: list[str] = _EN["en_places"]
EN_FIRST: list[str] = _EN["en_first"]
EN_LAST: list[str] = _EN["en_last"]
EN_ROLES: list[str] = _EN["en_roles"]
EN_MONTHS: list[str] = _EN["en_months"]
EN_DAYS: list[str] = _EN["en_days"]
EN_SENTENCES: list[str] = _EN["en_sentences"]
EN_SITES: list[str] = _EN["en_sites"]
EN_BLOGS: list[str] = _EN["en_blogs"]


def _en_fill(rng: random.Random, topic: dict[str, list[str]], place: str, template: str) -> str:
    org = rng.choice(topic["org"])
    slots = {
        "thing": rng.choice(topic["thing"]),
        "org": org,
        "Org": org[0].upper() + org[1:],
        "place": place,
        "place2": rng.choice([p for p in EN_PLACES if p != place]),
        "person": f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}",
        "last": rng.choice(EN_LAST),
        "role": rng.choice(EN_ROLES),
        "month": rng.choice(EN_MONTHS),
        "day": rng.choice(EN_DAYS),
        "year": str(rng.randint(1998, 2021)),
        "pct": str(rng.randint(6, 78)),
        "n1": str(rng.randint(3, 12)),
        "n2": str(rng.randint(2, 30)),
        "n3": str(rng.randint(120, 4800)),
        "num": f"{rng.randint(1, 9)}.{rng.randint(0, 12)}",
        "money": f"\u00a3{rng.randint(2, 95)}.{rng.randint(1, 9)} million",
    }
    return template.format(**slots)


def en_article(rng: random.Random) -> tuple[str, list[str]]:
    """(title, paragraphs) of a synthetic English news article, ~250-400 words."""
    topic = EN_TOPICS[rng.choice(sorted(EN_TOPICS))]
    place = rng.choice(EN_PLACES)
    title = _en_fill(rng, topic, place, rng.choice(topic["title"]))
    sentences = rng.sample(EN_SENTENCES, k=min(len(EN_SENTENCES), rng.randint(16, 22)))
    paras: list[str] = []
    i = 0
    while i < len(sentences):
        k = rng.randint(2, 4)
        paras.append(" ".join(_en_fill(rng, topic, place, s) for s in sentences[i : i + k]))
        i += k
    return title, paras


# ----------------------------------------------------------------------------------------------------
# Chinese text (simplified; every character is checked to be in GB2312 where a page needs it)
# ----------------------------------------------------------------------------------------------------

ZH_TOPICS: dict[str, dict[str, list[str]]] = _ZH["zh_topics"]
ZH_PLACES: list[str] = _ZH["zh_places"]
ZH_SURNAMES: list[str] = _ZH["zh_surnames"]
ZH_GIVEN: list[str] = _ZH["zh_given"]
ZH_ROLES: list[str] = _ZH["zh_roles"]
ZH_TITLES: list[str] = _ZH["zh_titles"]
ZH_SENTENCES: list[str] = _ZH["zh_sentences"]
ZH_SITES: list[str] = _ZH["zh_sites"]
ZH_LEGACY: list[str] = _ZH["zh_legacy"]


def _zh_fill(rng: random.Random, topic: dict[str, list[str]], place: str, template: str) -> str:
    slots = {
        "thing": rng.choice(topic["thing"]),
        "org": rng.choice(topic["org"]),
        "place": place,
        "place2": rng.choice([p for p in ZH_PLACES if p != place]),
        "person": rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN),
        "role": rng.choice(ZH_ROLES),
        "month": str(rng.randint(1, 12)),
        "year": str(rng.randint(2008, 2022)),
        "pct": str(rng.randint(12, 96)),
        "n1": str(rng.randint(3, 12)),
        "n2": str(rng.randint(8, 60)),
        "n3": str(rng.randint(300, 90000)),
        "money": str(rng.randint(50, 9000)),
    }
    return template.format(**slots)


def zh_article(rng: random.Random) -> tuple[str, list[str]]:
    """(title, paragraphs) of a synthetic Chinese news article, ~500-800 characters."""
    topic = ZH_TOPICS[rng.choice(sorted(ZH_TOPICS))]
    place = rng.choice(ZH_PLACES)
    title = _zh_fill(rng, topic, place, rng.choice(ZH_TITLES))
    sentences = rng.sample(ZH_SENTENCES, k=rng.randint(14, 20))
    paras: list[str] = []
    i = 0
    while i < len(sentences):
        k = rng.randint(2, 4)
        paras.append("".join(_zh_fill(rng, topic, place, s) for s in sentences[i : i + k]))
        i += k
    return title, paras


# ----------------------------------------------------------------------------------------------------
# Other languages (long articles that lid must route away from zh/en, and short pages)
# ----------------------------------------------------------------------------------------------------

OTHER_SENTENCES: dict[str, list[str]] = _OTHER["other_sentences"]
OTHER_PLACES: dict[str, list[str]] = _OTHER["other_places"]
OTHER_PEOPLE: dict[str, list[str]] = _OTHER["other_people"]
OTHER_DAYS: dict[str, list[str]] = _OTHER["other_days"]
OTHER_TITLES: dict[str, str] = _OTHER["other_titles"]
SHORT_PAGES: dict[str, list] = _OTHER["short_pages"]  # lang -> [title, paragraphs]
OTHER_NAV: dict[str, list[str]] = _OTHER["other_nav"]  # lang -> home, news, culture, contact, privacy, cookie
OTHER_SITES: dict[str, str] = _OTHER["other_sites"]


def other_article(rng: random.Random, lang: str) -> tuple[str, list[str]]:
    """(title, paragraphs) in ``lang`` (de, fr, es, ru, ja): 3-4 paragraphs, ~150+ words."""
    place = rng.choice(OTHER_PLACES[lang])
    sentences = list(OTHER_SENTENCES[lang])
    rng.shuffle(sentences)
    slots = {
        "place": place,
        "person": rng.choice(OTHER_PEOPLE[lang]),
        "day": rng.choice(OTHER_DAYS[lang]),
        "n": str(rng.randint(2, 40)),
        "year": str(rng.randint(2005, 2020)),
        "month": rng.choice(["mars", "mai", "juin", "septembre"]),
    }
    filled = [s.format(**slots) for s in sentences]
    joiner = "" if lang == "ja" else " "
    paras = [joiner.join(filled[i : i + 3]) for i in range(0, len(filled), 3)]
    return OTHER_TITLES[lang].format(place=place), paras


# ----------------------------------------------------------------------------------------------------
# Page skins: boilerplate around the article
# ----------------------------------------------------------------------------------------------------

COOKIE_EN: str = _BOILER["cookie_en"]
SHARE_EN: str = _BOILER["share_en"]
COOKIE_PROBE: str = _BOILER["cookie_probe"]
ZH_SHARE: str = _BOILER["zh_share"]
ZH_COPYRIGHT: str = _BOILER["zh_copyright"]


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _paras_html(paras: list[str]) -> str:
    return "\n".join(f"<p>{_esc(p)}</p>" for p in paras)


def _related(rng: random.Random, make_title: Callable[[random.Random], str], n: int = 5) -> str:
    return "\n".join(
        f'<li><a href="/story/{rng.randint(10000, 99999)}.html">{_esc(make_title(rng))}</a></li>'
        for _ in range(n)
    )


def _en_headline(rng: random.Random) -> str:
    return en_article(random.Random(rng.random()))[0]


def _zh_headline(rng: random.Random) -> str:
    return zh_article(random.Random(rng.random()))[0]


# Each skin draws from ``rng`` in the order its values appear on the page.


def skin_news_en(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    author = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
    return _skin("news_en").format(
        head_meta=head_meta, title=_esc(title), site=site, cookie=COOKIE_EN, author=author,
        author_slug=author.lower().replace(" ", "-"), date=date, paras=_paras_html(paras), share=SHARE_EN,
        related=_related(rng, _en_headline),
    )


def skin_blog_en(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    return _skin("blog_en").format(
        head_meta=head_meta, title=_esc(title), site=site, date=date, paras=_paras_html(paras),
        related=_related(rng, _en_headline, 4),
    )


def skin_portal_zh(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    editor = rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN)
    related = _related(rng, _zh_headline)
    return _skin("portal_zh").format(
        head_meta=head_meta, title=_esc(title), site=site, date=date, paras=_paras_html(paras), editor=editor,
        share=ZH_SHARE, related=related, copyright=ZH_COPYRIGHT, icp=rng.randint(10000000, 99999999),
    )


def skin_legacy_zh(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    """Old GB2312-era portal markup: font tags, centred fixed-width blocks, ids in pinyin."""
    clicks = rng.randint(100, 9999)
    prev_id = rng.randint(1000, 9999)
    prev_title = _esc(_zh_headline(rng))
    related = _related(rng, _zh_headline, 4)
    return _skin("legacy_zh").format(
        head_meta=head_meta, title=_esc(title), site=site, date=date, clicks=clicks, paras=_paras_html(paras),
        share=ZH_SHARE, prev_id=prev_id, prev_title=prev_title, related=related, copyright=ZH_COPYRIGHT,
        phone=rng.randint(60000000, 69999999),
    )


def skin_generic(lang: str) -> Callable[..., str]:
    home, news, culture, contact, privacy, cookie = OTHER_NAV[lang]

    def skin(rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str) -> str:
        return _skin("generic").format(
            lang=lang, head_meta=head_meta, title=_esc(title), site=site, cookie=_esc(cookie), home=home,
            news=news, culture=culture, date=date, paras=_paras_html(paras), contact=contact, privacy=privacy,
        )

    return skin


def page_almost_empty(site: str) -> str:
    """A photo gallery: navigation, captions of two words, footer: extraction finds no main text."""
    imgs = "\n".join(
        f'<figure><img src="/img/gallery/{i:03d}.jpg" alt=""><figcaption>Photo {i}</figcaption></figure>'
        for i in range(1, 9)
    )
    return _skin("almost_empty").format(site=site, imgs=imgs)


# ----------------------------------------------------------------------------------------------------
# Binary payloads
# ----------------------------------------------------------------------------------------------------


def tiny_png(rng: random.Random, w: int = 8, h: int = 8) -> bytes:
    """A valid w x h RGB PNG with seeded pixel colours."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(3 * w)) for _ in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def tiny_pdf(text: str) -> bytes:
    """A minimal one-page PDF 1.4 with one line of text (valid xref offsets)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + o + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


