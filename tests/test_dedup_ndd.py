"""Near-dup detection on real data: the NDD sets (R8, WebKB) and the natural duplicates listed in
../shared/data/README.md, through the same banding/components/survivor steps as the Spark job."""

from __future__ import annotations

import gzip
import itertools
import re
import zipfile

import pytest

from pipeline.dedup.lsh import dedup_reference
from pipeline.dedup.minhash import MinHashParams, doc_shingles, jaccard
from tests.conftest import shared_data

pytestmark = pytest.mark.shared_data

NDD_CLUSTERS = [(0, 10), (11, 20), (21, 30), (31, 40), (41, 49)]
NATURAL_PAIRS = [
    ("cleaneval-dev/GoldStandard/60.txt.gz", "cleaneval-final/GoldStandard/60.txt.gz"),
    ("dragnet_data/GoldStandard/T146.txt.gz", "dragnet_data/GoldStandard/T77.txt.gz"),
    ("dragnet_data/GoldStandard/R491.txt.gz", "dragnet_data/GoldStandard/R492.txt.gz"),
    ("dragnet_data/GoldStandard/T162.txt.gz", "dragnet_data/GoldStandard/T177.txt.gz"),
    (
        "page-signal-master/GoldStandard/b82e9772-a459-46ef-9f93-84f15c773375.txt.gz",
        "page-signal-master/GoldStandard/fc246c87-b4c6-4a7b-a77f-627c7fa18004.txt.gz",
    ),
]


def _pairs(groups: dict[str, str]) -> set[tuple[str, str]]:
    by: dict[str, list[str]] = {}
    for d, c in groups.items():
        by.setdefault(c, []).append(d)
    return {tuple(sorted(p)) for ms in by.values() for p in itertools.combinations(ms, 2)}


@pytest.mark.parametrize("collection", ["R8", "webkb"])
def test_ndd_sets(collection):
    zpath = shared_data("ndd-docsets/NDD-Collection.zip")
    with zipfile.ZipFile(zpath) as z:
        names = sorted(n for n in z.namelist() if n.startswith(collection + "/") and n.endswith(".txt"))
        docs = [(n.split("/")[1][4:-4], z.read(n).decode("utf-8", "replace"), "en") for n in names]
    assert len(docs) == 1000
    res = dedup_reference(docs, MinHashParams(), seed=1234)
    truth = {f"{i:02d}": f"c{a}" for a, b in NDD_CLUSTERS for i in range(a, b + 1)}
    true_pairs = _pairs(truth)
    found = _pairs({d: c for d, (c, _) in res.items()})
    found_planted = {p for p in found if p[0] in truth or p[1] in truth}
    recall = len(found & true_pairs) / len(true_pairs)
    precision = len(found_planted & true_pairs) / len(found_planted)
    print(
        f"{collection}: pair recall {recall:.3f}, precision {precision:.3f}, clusters found "
        f"{len({c for c, s in res.values() if s > 1})}"
    )
    assert recall == 1.0  # every planted cluster is one component
    assert precision == 1.0  # no outside document is merged into a planted cluster
    for a, b in NDD_CLUSTERS:  # exactly one survivor per planted cluster
        assert len({res[f"{i:02d}"][0] for i in range(a, b + 1)}) == 1
        assert res[f"{a:02d}"][1] == b - a + 1


def _read_gold(rel: str) -> str:
    raw = gzip.open(shared_data("html-cleaning-dataset-merged") / rel).read().decode("utf-8", "replace")
    return re.sub(r"<[^>]+>", " ", raw)  # L3S gold is HTML; the others are plain text


def test_natural_duplicates():
    base = shared_data("html-cleaning-dataset-merged")
    docs = []
    for k, (a, b) in enumerate(NATURAL_PAIRS):
        docs += [(f"p{k}a", _read_gold(a), "en"), (f"p{k}b", _read_gold(b), "en")]
    # background: other Dragnet gold pages, which must stay singletons unless they are real dups
    used = {p for pair in NATURAL_PAIRS for p in pair}
    others = sorted(p for p in (base / "dragnet_data/GoldStandard").glob("*.txt.gz"))[:150]
    for p in others:
        rel = f"dragnet_data/GoldStandard/{p.name}"
        if rel not in used:
            docs.append((p.name, _read_gold(rel), "en"))
    res = dedup_reference(docs, MinHashParams(), seed=1234)
    for k in range(len(NATURAL_PAIRS)):
        assert res[f"p{k}a"][0] == res[f"p{k}b"][0], NATURAL_PAIRS[k]
        assert res[f"p{k}a"][1] == 2, (NATURAL_PAIRS[k], res[f"p{k}a"])


CLUEWEB = "resiliparse-warc/tests/data/clueweb-quirk.warc.gz"


def test_clueweb_shop_template_pages():
    """The 29 ClueWeb09 shop pages (one Japanese shop template, EUC-JP) of the shared data.

    What the pipeline does with them: stage 1's extraction (trafilatura, ``ja`` kept for the test)
    returns the same text for all 29 (the template's ranking sidebar), so they are exact duplicates
    (one ``content_hash``) and MinHash puts them in one cluster of 29. On the full visible text of
    each page (the same template with different products; pairwise word-shingle Jaccard ~0.70-0.94,
    few pairs above 0.8) LSH links enough pairs that connected components still give one cluster."""
    from pipeline.config import load_config
    from pipeline.prepare.charset import decode_html
    from pipeline.prepare.extract import parse_html, visible_text
    from pipeline.prepare.process import process_warc_file
    from pipeline.prepare.warc import iter_records

    path = shared_data(CLUEWEB)
    cfg = load_config(overrides=["prepare.keep_langs=[zh,en,ja]"])
    rows = [r for r in process_warc_file(str(path), cfg.prepare) if r["drop_reason"] is None]
    assert len(rows) == 29 and {r["lang"] for r in rows} == {"ja"}
    assert len({r["content_hash"] for r in rows}) == 1  # exact duplicates after extraction
    p = MinHashParams()
    res = dedup_reference([(r["doc_id"], r["text"], r["lang"]) for r in rows], p, seed=1234)
    assert {s for _, s in res.values()} == {29} and len({c for c, _ in res.values()}) == 1

    pages = []
    with open(path, "rb") as f:
        for rec in iter_records(f, True, cfg.prepare.max_record_bytes):
            if getattr(rec, "rec_type", None) == "response" and rec.body:
                html, _ = decode_html(rec.body, rec.content_type)
                pages.append((rec.target_uri, visible_text(parse_html(html), 10**7), "ja"))
    assert len(pages) == 29 and len({t for _, t, _ in pages}) == 29  # 29 different page texts
    shs = [doc_shingles(t, lg, p) for _, t, lg in pages]
    js = [jaccard(a, b) for a, b in itertools.combinations(shs, 2)]
    assert 0.6 < min(js) and max(js) < 1.0 and sum(j >= 0.8 for j in js) < 0.1 * len(js)
    res = dedup_reference(pages, p, seed=1234)
    assert {s for _, s in res.values()} == {29} and len({c for c, _ in res.values()}) == 1
