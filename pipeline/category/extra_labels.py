"""Category labels of the gold-standard texts of the shared collections (``data/labels/category_extra.jsonl``).

Annotators labelled the **gold main text** (not stage 1's extraction) of the html-cleaning collections
and the English/Chinese trafilatura-eval pages with a best leaf and accepted alternatives, following
``data/labels/GUIDELINE.md``. Every one of these pages is also a record of the shared sample crawl
(``warc/index.json`` maps each WARC URL to its source file), so each label carries the WARC URL and the
**dev/test split of that page's site** (:func:`pipeline.filter.evalset.split_of`): training uses the dev
rows only, and a test row is a second annotation of a test page of ``data/labels/labels.jsonl``
(inter-annotator agreement), never training data.

The file holds no page text (third-party pages stay in ``../shared/data``): per line ``id``, ``source``
(path under ``../shared/data``), ``url``, ``site``, ``split``, ``lang``, ``category``, ``category_alts``
and ``text_sha1`` (SHA-1 of the rebuilt text). :func:`load_extra` rebuilds each text from the shared
data the way the labelling batches were made (:func:`gold_text`) and drops, counted by reason, rows
whose source is missing or whose text no longer hashes the same.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pipeline.filter.evalset import SHARED_DATA, site_of, split_of
from pipeline.prepare.urlfilter import registered_domain

EXTRA_PATH = Path(__file__).resolve().parents[2] / "data" / "labels" / "category_extra.jsonl"
HTML_CLEANING = "html-cleaning-dataset-merged"
TRAF_EVAL = "trafilatura-eval/tests"
FIELDS = ("id", "source", "url", "site", "split", "lang", "category", "category_alts", "text_sha1")


def _read(path: Path) -> str:
    raw = gzip.open(path).read() if path.name.endswith(".gz") else path.read_bytes()
    return raw.decode("utf-8", "replace")


def gold_text(source: str, root: str | Path = SHARED_DATA) -> str:
    """The labelled text of ``source`` (relative to ``root``).

    html-cleaning gold files: the file minus a leading ``URL:`` line and the CleanEval ``<p>/<h>/<l>``
    markers, blank-line runs collapsed; HTML gold (L3S-GN1) reduced to its content spans. trafilatura-eval pages: stage 1's extractor
    (:func:`pipeline.prepare.extract.extract`) on the cached HTML with the page's evaluation key."""
    root = Path(root)
    path = root / source
    if source.startswith(HTML_CLEANING + "/"):
        text = _read(path)
        text = re.sub(r"^URL: .*\n", "", text)
        text = re.sub(r"<[phl]>", "", text)
        text = re.sub(r"\n\s*\n+", "\n", text).strip()
        if "x-nc-sel" in text:  # L3S-GN1 gold is HTML: its content spans are classes x-nc-sel1..5
            spans = re.findall(r'<span class="x-nc-sel[1-5]">([^<]*)', text)
            text = "\n".join(" ".join(html.unescape(t).split()) for t in spans if t.strip())
        return text
    if source.startswith(TRAF_EVAL + "/"):
        from pipeline.prepare.extract import extract

        key = _traf_keys(root).get(path.name.removesuffix(".gz"))
        if key is None:
            raise KeyError(f"{source} is not in {TRAF_EVAL}/evaldata.json")
        _title, text = extract(_read(path), url=key)
        return text or ""
    raise ValueError(f"unknown source collection: {source!r} (expected {HTML_CLEANING}/ or {TRAF_EVAL}/)")


_TRAF_KEYS: dict[str, dict[str, str]] = {}


def _traf_keys(root: Path) -> dict[str, str]:
    """trafilatura-eval cache file name -> its key in ``evaldata.json`` (the ``url`` the batches used)."""
    k = str(root)
    if k not in _TRAF_KEYS:
        ev = json.loads((root / TRAF_EVAL / "evaldata.json").read_text(encoding="utf-8"))
        _TRAF_KEYS[k] = {e["file"].removesuffix(".gz"): url for url, e in ev.items()}
    return _TRAF_KEYS[k]


def text_sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def read_extra(path: str | Path = EXTRA_PATH) -> list[dict]:
    """The label records (no text); a malformed record stops with its number (1 = first record)."""
    from pipeline.filter.labeled import read_records

    rows = read_records(path)
    for i, r in enumerate(rows, 1):
        missing = [k for k in FIELDS if k not in r]
        if missing:
            raise ValueError(f"{path}:{i}: missing fields {missing}")
        if r["split"] not in ("dev", "test"):
            raise ValueError(f"{path}:{i}: split must be dev or test, got {r['split']!r}")
    return rows


def load_extra(
    path: str | Path = EXTRA_PATH, root: str | Path = SHARED_DATA, splits: Iterable[str] = ("dev",)
) -> tuple[list[dict], Counter]:
    """Records of ``splits`` with their rebuilt ``text``, and the counted reasons of rows left out
    (``other_split``, ``source_missing``, ``text_changed``, ``empty_text``).

    Raises FileNotFoundError naming ``root`` when the shared data is absent (callers skip saying why)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"shared data not found at {root}: the extra category labels need its page texts")
    keep = set(splits)
    out: list[dict] = []
    dropped: Counter = Counter()
    for r in read_extra(path):
        if r["split"] not in keep:
            dropped["other_split"] += 1
            continue
        if not (root / r["source"]).is_file():
            dropped["source_missing"] += 1
            continue
        text = gold_text(r["source"], root)
        if not text.strip():
            dropped["empty_text"] += 1
        elif text_sha1(text) != r["text_sha1"]:
            dropped["text_changed"] += 1
        else:
            out.append({**r, "text": text})
    return out, dropped


def build_extra(
    batch_files: Iterable[str | Path],
    label_files: Iterable[str | Path],
    taxonomy,
    root: str | Path = SHARED_DATA,
) -> tuple[list[dict], Counter]:
    """Join annotator label files (``{id, category, category_alts}``) to their batches (``{id, source,
    lang, ...}`` of the labelling tool) into data records (site: the mirror URL, else the registered
    domain as stage 1 computes it). Returns records sorted by id and
    the counted reasons of labels left out (``no_batch_row``, ``unknown_category``, ``not_in_crawl``,
    ``source_missing``)."""
    root = Path(root)
    batch = {}
    for p in batch_files:
        for line in Path(p).read_text(encoding="utf-8").split("\n"):
            if line.strip():
                b = json.loads(line)
                batch[b["id"]] = b
    index = json.loads((root / "warc" / "index.json").read_text(encoding="utf-8"))
    by_stem = {}
    for e in index:
        src = e["source"]
        if src.startswith(HTML_CLEANING + "/"):
            ds, _input, fname = src.split("/")[1:4]
            by_stem[(ds, fname.split(".")[0])] = e["url"]
        elif src.startswith("trafilatura-eval/"):
            by_stem[("trafilatura-eval", Path(src).name.removesuffix(".gz"))] = e["url"]
    names = set(taxonomy.names())
    out: dict[str, dict] = {}
    dropped: Counter = Counter()
    for p in label_files:
        for line in Path(p).read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            lab = json.loads(line)
            b = batch.get(lab["id"])
            if b is None:
                dropped["no_batch_row"] += 1
                continue
            accepted = [lab.get("category")] + list(lab.get("category_alts") or [])
            if not accepted[0] or any(c not in names for c in accepted):
                dropped["unknown_category"] += 1
                continue
            coll, rest = b["source"].split("/", 1)
            if coll == "html-cleaning":
                ds, fname = rest.split("/", 1)
                source = f"{HTML_CLEANING}/{ds}/GoldStandard/{fname}"
                url = by_stem.get((ds, fname.split(".")[0]))
            else:
                source = f"{TRAF_EVAL}/cache/{rest}"
                if not (root / source).is_file():
                    source += ".gz"
                url = by_stem.get(("trafilatura-eval", rest.removesuffix(".gz")))
            if url is None:
                dropped["not_in_crawl"] += 1
                continue
            if not (root / source).is_file():
                dropped["source_missing"] += 1
                continue
            host = re.sub(r"^[a-z]+://", "", url).split("/")[0].lower()
            site = site_of(url, registered_domain(host))
            text = gold_text(source, root)
            out[lab["id"]] = {
                "id": lab["id"], "source": source, "url": url, "site": site, "split": split_of(site),
                "lang": b["lang"], "category": accepted[0], "category_alts": accepted[1:],
                "text_sha1": text_sha1(text),
            }
    return [out[k] for k in sorted(out)], dropped


def write_extra(records: list[dict], path: str | Path = EXTRA_PATH) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    """``python -m pipeline.category.extra_labels --batches B*.jsonl --labels L*.jsonl [--out FILE]``."""
    import argparse

    from pipeline.category.taxonomy import load_taxonomy

    p = argparse.ArgumentParser(prog="pipeline.category.extra_labels", description=main.__doc__)
    p.add_argument("--batches", nargs="+", required=True)
    p.add_argument("--labels", nargs="+", required=True)
    p.add_argument("--root", default=str(SHARED_DATA))
    p.add_argument("--out", default=str(EXTRA_PATH))
    a = p.parse_args(argv)
    recs, dropped = build_extra(a.batches, a.labels, load_taxonomy(None), a.root)
    write_extra(recs, a.out)
    print(json.dumps({"written": len(recs), "splits": Counter(r["split"] for r in recs), "dropped": dropped}))


if __name__ == "__main__":
    main()


def shingles(text: str, n: int = 5) -> set[int]:
    """CRC32 hashes of the lower-cased word ``n``-grams of ``text`` (CJK: character ``n``-grams)."""
    import zlib

    from pipeline.category.features import tokens

    toks = tokens(text, max_chars=len(text))
    return {zlib.crc32(" ".join(toks[i : i + n]).encode("utf-8")) for i in range(max(1, len(toks) - n + 1))}


def overlapping(texts: list[str], reference: list[str], threshold: float = 0.5) -> list[bool]:
    """For each of ``texts``: does it share at least ``threshold`` of the smaller shingle set with one of
    ``reference`` (containment, stricter than Jaccard, so a gold text inside a longer stage-1 text of
    the same page is caught)? Used to keep test-split pages out of training."""
    index: dict[int, list[int]] = {}
    ref_sizes = []
    for j, t in enumerate(reference):
        sh = shingles(t)
        ref_sizes.append(len(sh))
        for s in sh:
            index.setdefault(s, []).append(j)
    out = []
    for t in texts:
        sh = shingles(t)
        shared: Counter = Counter()
        for s in sh:
            for j in index.get(s, ()):
                shared[j] += 1
        out.append(any(c >= threshold * max(1, min(len(sh), ref_sizes[j])) for j, c in shared.items()))
    return out
