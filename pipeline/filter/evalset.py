"""The labelled evaluation set of keep/remove decisions and categories (``data/labels/``).

``data/labels/labels.jsonl`` holds one record per labelled page of the shared sample crawl
(``../shared/data/warc/sample-crawl-*.warc.gz``), **without page text** (third-party pages stay out of
the repository): ``id`` (the stage-1 ``doc_id``), ``url``, ``domain``, ``site``, ``lang``, ``split``,
``verdict`` (keep | remove), ``remove_why``, ``kind``, ``category`` (English leaf name of
``conf/taxonomy.yaml``), ``category_alts`` (accepted alternatives, best first) and ``note``. How pages
were labelled: ``data/labels/GUIDELINE.md``.

Texts are joined back by re-running stage 1 (:func:`pipeline.prepare.process.process_warc_file` with the
``prepare`` defaults, as the pipeline does) on the shared WARCs: :func:`stage1_documents`, cached in a
local file because extraction takes minutes. :func:`shared_warcs` returns None and a reason when
``../shared/data`` is absent, so callers can skip saying why.

Split (dev | test) by site, never by page: :func:`split_of` hashes the site. The site is the registered
domain, except on the mirrors of gold-standard collections (hosts ending in :data:`MIRROR_SUFFIXES`),
whose pages come from many unnamed sites: there each page is its own site.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pipeline.config import REPO_ROOT

LABELS_PATH = REPO_ROOT / "data" / "labels" / "labels.jsonl"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
WARC_GLOB = "warc/sample-crawl-*.warc.gz"

VERDICTS = ("keep", "remove")
REMOVE_WHY = ("spam", "listing", "boilerplate", "machine_generated", "too_short", "adult", "toxic", "broken")
KINDS = (
    "news", "opinion", "encyclopedic", "educational", "how_to", "documentation", "forum", "blog", "academic",
    "government_legal", "product", "review", "listing", "navigation", "spam", "boilerplate",
    "machine_generated", "creative", "other",
)
SPLITS = ("dev", "test")
SPLIT_SALT = "dots-labels-v1"
TEST_PERCENT = 50
# Hosts of the shared data's gold-collection mirrors (CleanEval, L3S-GN1, Dragnet, Readability,
# trafilatura-eval): one synthetic host per collection, pages from many sites.
MIRROR_SUFFIXES = (".html-cleaning.test", ".trafilatura-eval.test")
FIELDS = ("id", "url", "domain", "site", "lang", "split", "verdict", "remove_why", "kind", "category",
          "category_alts", "note")


def site_of(url: str, domain: str | None) -> str:
    """The split unit: the registered ``domain``, or the URL itself on a gold-collection mirror host."""
    d = (domain or "").lower()
    if not d or d.endswith(MIRROR_SUFFIXES):
        return url
    return d


def split_of(site: str, test_percent: int = TEST_PERCENT) -> str:
    """``test`` for ``test_percent`` % of sites (BLAKE2b of salt + site), else ``dev``."""
    h = int.from_bytes(hashlib.blake2b(f"{SPLIT_SALT}:{site}".encode(), digest_size=8).digest(), "big")
    return "test" if h % 100 < test_percent else "dev"


@dataclasses.dataclass
class Problems:
    """Counted reasons why raw annotator records were dropped or changed while building the set."""

    dropped: Counter = dataclasses.field(default_factory=Counter)
    changed: Counter = dataclasses.field(default_factory=Counter)
    examples: dict = dataclasses.field(default_factory=dict)

    def add(self, kind: str, reason: str, example: str) -> None:
        (self.dropped if kind == "dropped" else self.changed)[reason] += 1
        self.examples.setdefault(reason, example)


def normalize_label(raw: dict, doc: dict, leaf_names: set[str], problems: Problems) -> dict | None:
    """One annotator record (guideline format, keyed ``id``) + its stage-1 row -> a label record.

    Unknown leaves in ``category_alts`` are removed (counted); an unknown best ``category`` drops the
    label's category (``category`` None: the page still counts for keep/remove); a record without a
    valid verdict is dropped (counted)."""
    rid = raw.get("id")
    verdict = raw.get("verdict")
    if verdict not in VERDICTS:
        problems.add("dropped", "bad_verdict", f"{rid}: {verdict!r}")
        return None
    why = raw.get("remove_why")
    if verdict == "keep":
        if why is not None:
            problems.add("changed", "remove_why_on_keep", f"{rid}: {why!r}")
        why = None
    elif why not in REMOVE_WHY:
        problems.add("changed", "remove_why_unknown", f"{rid}: {why!r}")
        why = None
    kind = raw.get("kind")
    if kind not in KINDS:
        problems.add("changed", "kind_unknown", f"{rid}: {kind!r}")
        kind = "other"
    cat = raw.get("category")
    if cat is not None and cat not in leaf_names:
        problems.add("changed", "category_unknown", f"{rid}: {cat!r}")
        cat = None
    alts = []
    for a in raw.get("category_alts") or []:
        if a not in leaf_names:
            problems.add("changed", "category_alt_unknown", f"{rid}: {a!r}")
        elif a != cat and a not in alts:
            alts.append(a)
    site = site_of(doc["url"], doc.get("domain"))
    return {
        "id": rid,
        "url": doc["url"],
        "domain": doc.get("domain"),
        "site": site,
        "lang": doc.get("lang"),
        "split": split_of(site),
        "verdict": verdict,
        "remove_why": why,
        "kind": kind,
        "category": cat,
        "category_alts": alts[:3],
        "note": str(raw.get("note") or "")[:200],
    }


def build_labels(raw_records: Iterable[dict], docs: dict[str, dict], leaf_names: set[str]) -> tuple[list[dict], Problems]:
    """Label records (sorted by id) from annotator records and the stage-1 rows by ``doc_id``.

    A record whose id is not a stage-1 document with text is dropped (counted); a page labelled twice
    keeps its first record (counted)."""
    problems = Problems()
    out: dict[str, dict] = {}
    for raw in raw_records:
        rid = raw.get("id")
        doc = docs.get(rid)
        if doc is None:
            problems.add("dropped", "id_not_in_crawl", str(rid))
            continue
        if not (doc.get("text") or "").strip():
            problems.add("dropped", "no_stage1_text", str(rid))
            continue
        if rid in out:
            problems.add("dropped", "duplicate_id", str(rid))
            continue
        rec = normalize_label(raw, doc, leaf_names, problems)
        if rec is not None:
            out[rid] = rec
    return [out[k] for k in sorted(out)], problems


def read_labels(path: str | Path = LABELS_PATH) -> list[dict]:
    """The label records of ``path``; a record missing a field or with a bad value is an error."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"label file {p} does not exist")
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        missing = [f for f in FIELDS if f not in rec]
        if missing:
            raise ValueError(f"{p}:{i}: missing field(s) {missing}")
        if rec["verdict"] not in VERDICTS or rec["split"] not in SPLITS:
            raise ValueError(f"{p}:{i}: verdict must be one of {VERDICTS} and split one of {SPLITS}")
        out.append(rec)
    return out


def write_labels(path: str | Path, records: list[dict]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n")
    tmp.replace(p)


# ---------------------------------------------------------------- texts: stage 1 on the shared WARCs


def shared_warcs(root: str | Path | None = None) -> tuple[list[Path] | None, str]:
    """The shared sample-crawl WARCs, or ``(None, reason)`` when they are absent."""
    base = Path(root) if root else SHARED_DATA
    files = sorted(base.glob(WARC_GLOB)) if base.is_dir() else []
    if not files:
        return None, f"no {WARC_GLOB} under {base} (the shared data folder ../shared/data is absent)"
    return files, ""


def _cache_key(warcs: list[Path]) -> str:
    from pipeline.config import load_config

    prep = dataclasses.asdict(load_config().prepare)
    ident = [(p.name, p.stat().st_size) for p in warcs]
    return hashlib.sha256(json.dumps([ident, prep], sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("DOTS_CACHE", REPO_ROOT / "out" / "cache"))


def stage1_documents(
    warcs: list[Path], cache_dir: str | Path | None = None, log=print
) -> dict[str, dict]:
    """``{doc_id: row}`` of every stage-1 row of ``warcs`` (kept rows have text, dropped rows a
    ``drop_reason``), computed with the ``prepare`` defaults and cached as
    ``<cache_dir>/stage1-<key>.jsonl.gz`` (the key hashes the WARC names/sizes and the prepare config)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"stage1-{_cache_key(warcs)}.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        return {r["doc_id"]: r for r in rows}
    from pipeline.config import load_config
    from pipeline.prepare.process import Prepare, process_warc_file

    cfg = load_config().prepare
    prep = Prepare(cfg)
    keep = ("doc_id", "url", "domain", "fetch_time", "title", "text", "lang", "lang_score", "drop_reason")
    rows = []
    for w in warcs:
        log(f"[labels] stage 1 on {w.name} (cached afterwards in {path})")
        for r in process_warc_file(str(w), cfg, prep):
            rows.append({k: (str(r.get(k)) if k == "fetch_time" and r.get(k) is not None else r.get(k)) for k in keep})
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return {r["doc_id"]: r for r in rows}


def join_texts(labels: list[dict], docs: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """Label records with ``text``, ``title``, ``fetch_time`` of their stage-1 row; returns the joined
    records and the ids whose page was not found with text (a changed WARC or prepare config)."""
    out, missing = [], []
    for r in labels:
        d = docs.get(r["id"])
        if d is None or not (d.get("text") or "").strip():
            missing.append(r["id"])
            continue
        out.append({**r, "text": d["text"], "title": d.get("title"), "fetch_time": d.get("fetch_time")})
    return out, missing


def accepted(rec: dict) -> list[str]:
    """The accepted leaves of a label: the best one, then the alternatives."""
    return ([rec["category"]] if rec.get("category") else []) + list(rec.get("category_alts") or [])


# ---------------------------------------------------------------- building the set from annotator files


def read_annotations(paths: Iterable[str | Path]) -> list[dict]:
    """Annotator records (guideline format), in file order; a line that is not JSON is an error."""
    from pipeline.filter.labeled import read_records

    return [r for p in sorted(Path(x) for x in paths) for r in read_records(p)]


def main(argv: list[str] | None = None) -> None:
    """``python -m pipeline.filter.evalset --annotations DIR/batch-*.jsonl --out data/labels/labels.jsonl``"""
    import argparse

    from pipeline.category.taxonomy import load_taxonomy

    ap = argparse.ArgumentParser(prog="pipeline.filter.evalset", description="build data/labels/labels.jsonl")
    ap.add_argument("--annotations", nargs="+", required=True, help="annotator JSONL files (guideline format)")
    ap.add_argument("--out", default=str(LABELS_PATH))
    ap.add_argument("--shared", default=None, help="shared data folder (default ../shared/data)")
    args = ap.parse_args(argv)
    warcs, why = shared_warcs(args.shared)
    if warcs is None:
        raise SystemExit(f"cannot build the label set: {why}")
    docs = stage1_documents(warcs)
    leaves = {leaf.en for leaf in load_taxonomy().leaves}
    recs, problems = build_labels(read_annotations(args.annotations), docs, leaves)
    write_labels(args.out, recs)
    n = Counter((r["lang"], r["verdict"], r["split"]) for r in recs)
    print(f"{len(recs)} labels -> {args.out}")
    for k in sorted(n, key=str):
        print(f"  {k}: {n[k]}")
    print(f"dropped: {dict(problems.dropped)}; changed: {dict(problems.changed)}")
    for k, v in problems.examples.items():
        print(f"  e.g. {k}: {v}")


if __name__ == "__main__":
    main()
