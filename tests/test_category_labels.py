"""Category training and evaluation on the annotator label set (``--labels``): the split discipline
(test sites never trained on, tune sites held out) and accuracy with accepted alternatives."""

from __future__ import annotations

import numpy as np

from jobs.train_category import main as train_main
from pipeline.category.metrics import evaluate_accepted
from pipeline.category.taxonomy import load_taxonomy
from pipeline.filter import evalset

SMALL = ["--num-buckets", "4096", "--dim", "16", "--epochs", "20", "--batch-size", "8", "--lr", "0.05"]


def test_evaluate_accepted_counts_alternatives():
    tax = load_taxonomy()
    phys, chem, poetry = tax.id_of("Physics"), tax.id_of("Chemistry"), tax.id_of("Poetry")
    top = np.array([[chem, phys, 0, 1, 2], [poetry, 3, 4, 5, 6], [7, 8, 9, 10, chem]])
    acc = [[phys, chem], [phys], [chem]]
    m = evaluate_accepted(top, acc, tax)
    assert m["n"] == 3
    assert m["top1"] == round(1 / 3, 4)  # row 0: an accepted alternative first
    assert m["top1_best"] == 0.0
    assert m["top5"] == round(2 / 3, 4)
    assert m["domain"] == round(2 / 3, 4)  # row 2: leaf 7 lies in the Science domain with Chemistry
    assert evaluate_accepted(np.zeros((0, 5), dtype=np.int64), [], tax)["top1"] is None


def _site(split: str, i: int) -> str:
    """A site name that falls into ``split``."""
    while True:
        s = f"site{i}.com"
        if evalset.split_of(s) == split:
            return s
        i += 1000


def test_labels_train_on_dev_sites_only(tmp_path, monkeypatch):
    docs, labels = {}, []
    for i in range(40):
        split = "dev" if i % 2 else "test"
        site = _site(split, i)
        topic, leaf = ("zorblat flux meter reading", "Physics") if i % 4 < 2 else ("quindle verse rhyme line", "Poetry")
        d = f"d{i:03d}"
        docs[d] = {"doc_id": d, "url": f"https://{site}/{i}", "domain": site, "lang": "en",
                   "text": f"{topic} {i} {topic}", "drop_reason": None}
        labels.append({"id": d, "verdict": "keep", "remove_why": None, "kind": "news", "category": leaf,
                       "category_alts": [], "note": ""})
    monkeypatch.setattr(evalset, "stage1_documents", lambda warcs, cache_dir=None, log=print: docs)
    recs, _ = evalset.build_labels(labels, docs, {"Physics", "Poetry"})
    lab_path = tmp_path / "labels.jsonl"
    evalset.write_labels(lab_path, recs)
    warc = tmp_path / "x.warc.gz"
    warc.write_bytes(b"")
    res = train_main(["--input", str(warc), "--labels", str(lab_path), "--out", str(tmp_path / "m"),
                      "--tune-percent", "0", "--keyword-prior", "0", *SMALL])
    ev = res["eval"]
    assert ev["test"]["n"] == 20 and ev["test/en"]["n"] == 20 and "dev" not in ev
    assert ev["test"]["top1"] == 1.0  # the two invented topics generalise to the unseen test sites
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "no page of a test site is trained on" in card
    # with every dev site held out for tuning nothing is left to train on
    res2 = train_main(["--input", str(warc), "--labels", str(lab_path), "--evaluate", str(tmp_path / "m"),
                       "--tune-percent", "100"])
    assert res2["eval"]["dev"]["n"] == 20 and res2["eval"]["test"]["n"] == 20


def test_labelled_corpus_never_trains_on_test_sites(tmp_path, monkeypatch):
    from jobs.train_category import labelled_corpus, parse_args

    docs = {}
    labels = []
    for i in range(60):
        site = _site("dev" if i % 3 else "test", i)
        d = f"d{i:03d}"
        docs[d] = {"doc_id": d, "url": f"https://{site}/{i}", "domain": site, "lang": "zh" if i % 5 == 0 else "en",
                   "text": f"page {i} about physics experiments and particles", "drop_reason": None}
        if i % 2:
            labels.append({"id": d, "verdict": "keep", "remove_why": None, "kind": "news", "category": "Physics",
                           "category_alts": ["Chemistry"], "note": ""})
    monkeypatch.setattr(evalset, "stage1_documents", lambda warcs, cache_dir=None, log=print: docs)
    recs, _ = evalset.build_labels(labels, docs, {"Physics", "Chemistry"})
    evalset.write_labels(tmp_path / "l.jsonl", recs)
    args = parse_args(["--input", str(tmp_path / "x.warc.gz"), "--labels", str(tmp_path / "l.jsonl"),
                       "--out", str(tmp_path / "m"), "--bootstrap", "--tune-percent", "40"])
    train, tune, test = labelled_corpus(args, load_taxonomy(), log=lambda *_: None)
    test_sites = {evalset.site_of(d["url"], d["domain"]) for d in docs.values()
                  if evalset.split_of(evalset.site_of(d["url"], d["domain"])) == "test"}
    assert test_sites and not any(r["url"].split("/")[2] in test_sites for r in train + tune)
    assert {r["split"] for r in test} == {"test"} and all(r["url"].split("/")[2] in test_sites for r in test)
    assert tune and not {r["url"] for r in tune} & {r["url"] for r in train}
    human = [r for r in train if r["human"]]
    assert human and {r["weight"] for r in human} == {args.label_weight, args.label_weight * args.alt_weight}
