"""Near-dup detection on real data: the NDD sets (R8, WebKB) and the natural duplicates listed in
../shared/data/README.md, through the same banding/components/survivor steps as the Spark job."""

from __future__ import annotations

import gzip
import itertools
import re
import zipfile

import pytest

from pipeline.dedup.lsh import dedup_reference
from pipeline.dedup.minhash import MinHashParams
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
